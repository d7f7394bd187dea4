//! Reopening a closed chat: the window (R02), conflicts (R03), who is told (R04), and the
//! concurrency override when the customer answers (R05).

use chrono::Duration;
use switchboard::core::Role;
use switchboard::protocol::MessageKind;

use super::support::{ts, TestServer};

#[tokio::test]
async fn r02_reopen_inside_the_window_succeeds_and_after_it_fails_with_window_closed() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100000101");
    let chat = ana.serves(&customer).await;
    let wrote_at = server.now();
    ana.closes(&chat).await;

    server.advance(Duration::hours(23));
    let reopened = ana.reopen(&chat).await.expect_ok();
    assert_eq!(reopened["chat"]["state"], "reopened");
    ana.closes(&chat).await;

    server.advance(Duration::hours(2));
    let error = ana.reopen(&chat).await.expect_error("window_closed");
    assert_eq!(ts(&error["expired_at"]), wrote_at + Duration::hours(24));
    let entry = ana.archive_entry(&chat).await;
    assert_eq!(entry["reopenable"], false);
    assert_eq!(entry["state"], "closed");
    server.check_invariants();
}

#[tokio::test]
async fn r02_archive_entries_carry_window_expires_at_only_on_channels_with_a_window() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let on_whatsapp = ana.serves(&server.customer("whatsapp", "+4915100000102")).await;
    let wrote_at = server.now();
    ana.closes(&on_whatsapp).await;
    let on_sms = ana.serves(&server.customer("sms", "+4915100000103")).await;
    ana.closes(&on_sms).await;

    let entries = ana.list_archive("mine").await;
    let entry = |chat: &str| {
        entries
            .iter()
            .find(|e| e["chat_id"] == chat)
            .unwrap_or_else(|| panic!("{chat} is not in {entries:#?}"))
            .clone()
    };
    let whatsapp = entry(&on_whatsapp);
    assert_eq!(ts(&whatsapp["window_expires_at"]), wrote_at + Duration::hours(24));
    assert_eq!(whatsapp["reopenable"], true);
    let sms = entry(&on_sms);
    assert!(sms["window_expires_at"].is_null(), "sms has no window: {sms:#}");
    assert_eq!(sms["reopenable"], true);
    server.check_invariants();
}

#[tokio::test]
async fn r02_a_chat_on_a_channel_without_a_window_can_be_reopened_after_thirty_days() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("sms", "+4915100000104")).await;
    ana.closes(&chat).await;

    server.advance(Duration::days(30));
    assert_eq!(ana.archive_entry(&chat).await["reopenable"], true);
    let reopened = ana.reopen(&chat).await.expect_ok();

    assert_eq!(reopened["chat"]["state"], "reopened");
    assert!(reopened["chat"]["window_expires_at"].is_null());
    server.check_invariants();
}

#[tokio::test]
async fn r03_second_reopen_is_rejected_with_active_elsewhere() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let mut bob = server.agent("bob").connect().await;
    let chat = ana.serves(&server.customer("whatsapp", "+4915100000105")).await;
    ana.closes(&chat).await;

    ana.reopen(&chat).await.expect_ok();
    let error = bob.reopen(&chat).await.expect_error("active_elsewhere");

    assert_eq!(error["live"]["chat_id"], chat.as_str());
    assert_eq!(error["live"]["state"], "reopened");
    assert_eq!(error["live"]["owner"], "ana");
    bob.expect_silence().await;
    server.check_invariants();
}

#[tokio::test]
async fn r03_reopen_while_the_customer_waits_in_the_queue_is_rejected_with_active_elsewhere() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let mut bob = server.agent_with("bob", Role::Agent, 0).connect().await;
    let customer = server.customer("sms", "+4915100000106");
    let old = ana.serves(&customer).await;
    ana.closes(&old).await;
    ana.set_presence("away").await.expect_ok();

    server.advance(Duration::days(2));
    let waiting = customer.says("Anyone there?").await;
    assert_eq!(waiting["state"], "queued");
    assert_eq!(waiting["queue_position"], 1);

    let error = bob.reopen(&old).await.expect_error("active_elsewhere");
    assert_eq!(error["live"]["chat_id"], waiting["chat_id"]);
    assert_eq!(error["live"]["state"], "queued");
    assert!(error["live"]["owner"].is_null());
    server.check_invariants();
}

#[tokio::test]
async fn r03_reopen_while_another_agent_holds_an_active_or_snoozed_chat_is_rejected() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let mut bob = server.agent_with("bob", Role::Agent, 0).connect().await;
    let customer = server.customer("sms", "+4915100000107");
    let old = ana.serves(&customer).await;
    ana.closes(&old).await;
    server.advance(Duration::days(2));
    let live = ana.serves(&customer).await;
    assert_ne!(live, old);

    let error = bob.reopen(&old).await.expect_error("active_elsewhere");
    assert_eq!(error["live"]["chat_id"], live.as_str());
    assert_eq!(error["live"]["state"], "active");
    assert_eq!(error["live"]["owner"], "ana");

    ana.snooze(&live, None).await.expect_ok();
    let error = bob.reopen(&old).await.expect_error("active_elsewhere");
    assert_eq!(error["live"]["state"], "snoozed");
    server.check_invariants();
}

#[tokio::test]
async fn r04_reopen_is_pushed_to_every_connection_of_the_reopener_and_to_no_other_agent() {
    let server = TestServer::start().await;
    let mut bob = server.agent("bob").connect().await;
    let customer = server.customer("whatsapp", "+4915100000108");
    let chat = bob.serves(&customer).await;
    bob.closes(&chat).await;
    server.sent_to_customers();
    let ana = server.agent("ana");
    let (mut ana_laptop, mut ana_phone) = (ana.connect().await, ana.connect().await);
    let mut carl = server.agent("carl").connect().await;
    carl.watch_archive(&[&chat]).await.expect_ok();

    let reopened = ana_laptop.reopen(&chat).await.expect_ok();

    assert_eq!(reopened["chat"]["owner"], "ana", "the reopener owns it, not bob");
    assert_eq!(reopened["chat"]["reopened_by"], "ana");
    let on_laptop = ana_laptop.expect_push("chat_reopened").await;
    let on_phone = ana_phone.expect_push("chat_reopened").await;
    assert_eq!(on_laptop["chat"]["id"], chat.as_str());
    assert_eq!(on_laptop.seq, on_phone.seq);
    assert_eq!(on_laptop.event, on_phone.event);
    let changed = carl.expect_push("archive_entry_changed").await;
    assert_eq!(changed["entry"]["chat_id"], chat.as_str());
    assert_eq!(changed["entry"]["reopenable"], false);
    assert_eq!(changed["entry"]["state"], "reopened");
    carl.expect_silence().await;
    bob.expect_silence().await;

    let sent = server.sent_to_customers();
    assert_eq!(sent.len(), 1, "one notice: {sent:#?}");
    assert_eq!(sent[0].kind, MessageKind::Notice);
    assert_eq!(sent[0].chat_id.as_str(), chat);
    assert_eq!(sent[0].to, customer.address());
    server.check_invariants();
}

#[tokio::test]
async fn r04_reopen_assigns_a_transferred_chat_to_the_reopener() {
    let server = TestServer::start().await;
    let mut bob = server.agent("bob").connect().await;
    let customer = server.customer("whatsapp", "+4915100000109");
    let chat = bob.serves(&customer).await;
    let mut carl = server.agent("carl").connect().await;
    bob.transfer(&chat, "carl", false).await.expect_ok();
    carl.expect_push("chat_activated").await;
    carl.closes(&chat).await;
    let mut ana = server.agent("ana").connect().await;

    ana.reopen(&chat).await.expect_ok();
    ana.expect_push("chat_reopened").await;
    let receipt = customer.says("Yes, still need help").await;

    assert_eq!(receipt["state"], "active");
    assert_eq!(receipt["owner"], "ana");
    let activated = ana.expect_push("chat_activated").await;
    assert_eq!(activated["by"], "customer_replied");
    carl.expect_silence().await;
    bob.expect_no_push("chat_activated").await;
    server.check_invariants();
}

#[tokio::test]
async fn r05_customer_reply_activates_a_reopened_chat_even_over_the_limit_and_it_is_counted() {
    let server = TestServer::start().await;
    let mut ana = server.agent_with("ana", Role::Agent, 1).connect().await;
    ana.serves(&server.customer("whatsapp", "+4915100000110")).await;
    let mut bob = server.agent("bob").connect().await;
    let customer = server.customer("whatsapp", "+4915100000111");
    let chat = bob.serves(&customer).await;
    bob.closes(&chat).await;

    ana.reopen(&chat).await.expect_ok();
    ana.expect_push("chat_reopened").await;
    let receipt = customer.says("Yes please").await;

    assert_eq!(receipt["state"], "active", "no bot, no queue");
    assert_eq!(receipt["owner"], "ana");
    let activated = ana.expect_push("chat_activated").await;
    assert_eq!(activated["by"], "customer_replied");
    assert_eq!(activated["over_limit"], true);
    assert_eq!(activated["load"], 2);
    assert_eq!(activated["limit"], 1);
    let message = ana.expect_push("customer_message").await;
    assert_eq!(message["message"]["text"], "Yes please");
    let (_, load, limit, overrides) = server.engine.seat(&"ana".into()).expect("ana's seat");
    assert_eq!((load, limit, overrides), (2, 1, 1));
    assert_eq!(server.agent_status("ana").await["overrides"], 1);
    assert!(server.waiting_in("whatsapp").await.is_empty());
    bob.expect_silence().await;
    server.check_invariants();
}

#[tokio::test]
async fn r02_a_reopened_chat_the_customer_does_not_answer_closes_when_the_window_does() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("whatsapp", "+4915100000112")).await;
    ana.closes(&chat).await;
    server.advance(Duration::hours(20));
    ana.reopen(&chat).await.expect_ok();
    ana.expect_push("chat_reopened").await;

    server.advance(Duration::hours(3));
    ana.expect_no_push("chat_closed").await;
    server.advance(Duration::hours(2));

    let closed = ana.expect_push("chat_closed").await;
    assert_eq!(
        (closed["chat_id"].as_str(), closed["reason"].as_str()),
        (Some(chat.as_str()), Some("timeout"))
    );
    let entry = ana.archive_entry(&chat).await;
    assert_eq!(
        (entry["state"].as_str(), entry["close_reason"].as_str()),
        (Some("closed"), Some("timeout"))
    );
    ana.reopen(&chat).await.expect_error("window_closed");
    server.check_invariants();
}

#[tokio::test]
async fn r03_active_elsewhere_names_the_owner_as_people_know_it() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let mut bob = server.agent("bob").connect().await;
    let customer = server.customer("sms", "+4915100000108");
    let old = ana.serves(&customer).await;
    ana.closes(&old).await;
    ana.reopen(&old).await.expect_ok();

    // The desk shows "with ANA" (the display name), not the id.
    let error = bob.reopen(&old).await.expect_error("active_elsewhere");
    assert_eq!(error["live"]["owner"], "ana");
    assert_eq!(error["live"]["owner_name"], "ANA");

    // No owner, no name: the customer waits in the queue.
    ana.closes(&old).await;
    ana.set_presence("away").await.expect_ok();
    bob.set_presence("away").await.expect_ok();
    server.advance(Duration::days(2));
    assert_eq!(customer.says("Anyone there?").await["state"], "queued");
    let error = bob.reopen(&old).await.expect_error("active_elsewhere");
    assert!(error["live"]["owner"].is_null());
    assert!(error["live"]["owner_name"].is_null());
    server.check_invariants();
}
