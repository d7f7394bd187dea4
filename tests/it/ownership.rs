//! Owning a chat: writing, transferring and closing it (R12), and snoozing it (R13).

use chrono::Duration;
use serde_json::json;
use switchboard::core::{Channel, Role};
use switchboard::engine::EngineConfig;
use switchboard::protocol::MessageKind;

use super::support::{ts, TestServer};

#[tokio::test]
async fn r12_only_the_owner_may_act_on_a_live_chat_anyone_else_gets_not_owner() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("whatsapp", "+4915100000301")).await;
    let mut bob = server.agent("bob").connect().await;
    server.sent_to_customers();

    let error = bob
        .send_message(&chat, "Hi, Bob here")
        .await
        .expect_error("not_owner");
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains("ana")),
        "{error:#}"
    );
    bob.close(&chat).await.expect_error("not_owner");
    bob.transfer(&chat, "ana", false).await.expect_error("not_owner");
    bob.snooze(&chat, None).await.expect_error("not_owner");
    bob.get_chat(&chat).await.expect_error("not_owner");
    assert!(server.sent_to_customers().is_empty(), "bob sent nothing");

    ana.send_message(&chat, "Hi, Ana here").await.expect_ok();
    let sent = server.sent_to_customers();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].kind, sent[0].text.as_str()),
        (MessageKind::Text, "Hi, Ana here")
    );
    assert_eq!(sent[0].agent.as_ref().map(|a| a.as_str()), Some("ana"));
    let echoed = ana.expect_push("message_sent").await;
    assert_eq!(echoed["message"]["text"], "Hi, Ana here");
    ana.expect_silence().await;
    server.check_invariants();
}

#[tokio::test]
async fn r12_a_transfer_respects_the_target_limit_and_needs_an_online_target() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("whatsapp", "+4915100000302")).await;
    let mut bob = server.agent_with("bob", Role::Agent, 1).connect().await;
    bob.serves(&server.customer("whatsapp", "+4915100000303")).await;
    server.agent("dave");

    ana.transfer(&chat, "bob", false).await.expect_error("over_limit");
    ana.transfer(&chat, "dave", false)
        .await
        .expect_error("agent_unavailable");
    let mut carl = server.agent("carl").connect().await;
    let moved = ana.transfer(&chat, "carl", false).await.expect_ok();

    assert_eq!(moved["chat"]["owner"], "carl");
    assert_eq!(ana.expect_push("chat_transferred").await["to"], "carl");
    let activated = carl.expect_push("chat_activated").await;
    assert_eq!(activated["by"], "transfer");
    assert_eq!(activated["over_limit"], false);
    assert_eq!(activated["load"], 1);
    bob.expect_silence().await;
    ana.send_message(&chat, "Still me?")
        .await
        .expect_error("not_owner");
    assert_eq!(server.agent_status("ana").await["load"], 0);
    server.check_invariants();
}

#[tokio::test]
async fn r12_a_supervisor_may_force_a_transfer_over_the_limit_and_it_is_counted() {
    let server = TestServer::start().await;
    let mut bob = server.agent_with("bob", Role::Agent, 1).connect().await;
    bob.serves(&server.customer("whatsapp", "+4915100000304")).await;
    let mut sam = server.agent_with("sam", Role::Supervisor, 3).connect().await;
    let chat = sam.serves(&server.customer("whatsapp", "+4915100000305")).await;

    sam.transfer(&chat, "bob", false).await.expect_error("over_limit");
    sam.transfer(&chat, "bob", true).await.expect_ok();

    let activated = bob.expect_push("chat_activated").await;
    assert_eq!(activated["by"], "transfer");
    assert_eq!(activated["over_limit"], true);
    assert_eq!(
        (activated["load"].as_u64(), activated["limit"].as_u64()),
        (Some(2), Some(1))
    );
    let status = server.agent_status("bob").await;
    assert_eq!(
        (status["load"].as_u64(), status["overrides"].as_u64()),
        (Some(2), Some(1))
    );
    server.check_invariants();
}

#[tokio::test]
async fn r12_an_agent_may_not_force_a_transfer() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("whatsapp", "+4915100000306")).await;
    let mut bob = server.agent_with("bob", Role::Agent, 0).connect().await;

    ana.transfer(&chat, "bob", true).await.expect_error("forbidden");

    assert_eq!(ana.get_chat(&chat).await.expect_ok()["chat"]["owner"], "ana");
    bob.expect_silence().await;
    assert_eq!(server.agent_status("bob").await["overrides"], 0);
    server.check_invariants();
}

#[tokio::test]
async fn r12_closing_frees_the_slot_at_once_and_the_next_queued_chat_is_offered() {
    let server = TestServer::start().await;
    let mut ana = server.agent_with("ana", Role::Agent, 1).connect().await;
    let first = ana.serves(&server.customer("whatsapp", "+4915100000307")).await;
    let next = server.customer("whatsapp", "+4915100000308").says("Hello").await;
    assert_eq!(next["state"], "queued");
    ana.expect_no_push("chat_offered").await;

    ana.closes(&first).await;

    ana.takes(&next.chat_id()).await;
    assert!(server.waiting_in("whatsapp").await.is_empty());
    server.check_invariants();
}

#[tokio::test]
async fn r13_a_chat_snoozed_until_a_time_returns_to_active_then_and_the_owner_is_told() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("whatsapp", "+4915100000309")).await;
    let until = server.now() + Duration::hours(1);

    let snoozed = ana.snooze(&chat, Some(until)).await.expect_ok();

    assert_eq!(snoozed["chat"]["state"], "snoozed");
    assert_eq!(snoozed["chat"]["snooze"]["until"], "time");
    assert_eq!(ts(&snoozed["chat"]["snooze"]["at"]), until);
    assert_eq!(ana.expect_push("chat_updated").await["chat"]["state"], "snoozed");
    assert_eq!(
        server.agent_status("ana").await["load"],
        1,
        "a snoozed chat keeps its slot"
    );
    server.advance(Duration::minutes(59));
    ana.expect_no_push("chat_activated").await;
    server.advance(Duration::minutes(1));
    let activated = ana.expect_push("chat_activated").await;
    assert_eq!(activated["by"], "snooze_ended");
    assert_eq!(activated["chat"]["state"], "active");
    assert_eq!(activated["load"], 1);
    server.check_invariants();
}

#[tokio::test]
async fn r13_a_chat_snoozed_until_the_reply_returns_to_active_when_the_customer_writes() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100000310");
    let chat = ana.serves(&customer).await;

    let snoozed = ana.snooze(&chat, None).await.expect_ok();
    assert_eq!(snoozed["chat"]["snooze"]["until"], "reply");
    ana.expect_push("chat_updated").await;
    server.advance(Duration::hours(6));
    ana.expect_no_push("chat_activated").await;

    let receipt = customer.says("Any news?").await;

    assert_eq!(receipt["state"], "active");
    let activated = ana.expect_push("chat_activated").await;
    assert_eq!(activated["by"], "snooze_ended");
    assert_eq!(
        ana.expect_push("customer_message").await["message"]["text"],
        "Any news?"
    );
    server.check_invariants();
}

#[tokio::test]
async fn r12_the_welcome_tells_each_channel_s_configured_length_and_sending_holds_to_it() {
    let mut config = EngineConfig::default();
    let mut sms = Channel::Sms.default_policy();
    sms.max_len = 160;
    config.policies.set(Channel::Sms, sms);
    let server = TestServer::start_with(config).await;
    let mut ana = server.agent("ana").connect().await;

    let channels = ana.welcome()["channels"].as_array().expect("channels").clone();
    let length_of = |name: &str| {
        channels
            .iter()
            .find(|c| c["channel"] == name)
            .map(|c| c["max_message_length"].clone())
    };
    assert_eq!(channels.len(), Channel::ALL.len());
    assert_eq!(length_of("sms"), Some(json!(160)), "configured");
    assert_eq!(length_of("email"), Some(json!(10_240)), "the default");

    // The composer's limit is the engine's: one more character is refused.
    let chat = ana.serves(&server.customer("sms", "+4915100000330")).await;
    ana.send_message(&chat, &"x".repeat(161))
        .await
        .expect_error("message_too_long");
    ana.send_message(&chat, &"x".repeat(160)).await.expect_ok();
    server.check_invariants();
}

#[tokio::test]
async fn r12_an_agent_lists_whom_it_can_transfer_to_and_transfers_to_one_with_room() {
    let server = TestServer::start().await;
    // One at a time, so that each customer goes to the agent meant to serve them.
    let mut bob = server.agent_with("bob", Role::Agent, 1).connect().await;
    bob.serves(&server.customer("webchat", "bob-visitor")).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("webchat", "ana-visitor")).await;
    let mut cid = server.agent("cid").connect().await;
    let mut dan = server.agent("dan").connect().await;
    dan.set_presence("away").await.expect_ok();

    let listed = ana.request(json!({ "type": "list_agents" })).await.expect_ok();
    assert_eq!(listed["kind"], "agents");
    let rows: Vec<(&str, &str, u64, u64)> = listed["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap_or_default(),
                a["presence"].as_str().unwrap_or_default(),
                a["load"].as_u64().unwrap_or_default(),
                a["limit"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("ana", "online", 1, 3),
            ("bob", "online", 1, 1),
            ("cid", "online", 0, 3),
            ("dan", "away", 0, 3)
        ]
    );
    assert_eq!(
        listed["agents"][1]["name"], "BOB",
        "the display name, for the picker"
    );

    // Of the others, only cid is online with room: bob is full, dan away.
    ana.transfer(&chat, "bob", false).await.expect_error("over_limit");
    ana.transfer(&chat, "dan", false)
        .await
        .expect_error("agent_unavailable");
    let moved = ana.transfer(&chat, "cid", false).await.expect_ok();
    assert_eq!(moved["chat"]["owner"], "cid");
    assert_eq!(cid.expect_push("chat_activated").await["by"], "transfer");
    server.check_invariants();
}
