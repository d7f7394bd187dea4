//! What may reach a customer once the messaging window has closed (R07), and opting out with
//! #STOP (R08).

use chrono::Duration;
use switchboard::core::Channel;
use switchboard::protocol::MessageKind;

use super::support::{ts, TestServer};

#[tokio::test]
async fn r07_after_the_window_one_template_goes_out_and_a_second_gets_push_already_sent() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100000401");
    let chat = ana.serves(&customer).await;
    ana.closes(&chat).await;
    server.advance(Duration::hours(25));
    server.sent_to_customers();
    let entry = ana.archive_entry(&chat).await;
    assert_eq!(
        (entry["reopenable"].as_bool(), entry["template_allowed"].as_bool()),
        (Some(false), Some(true))
    );

    ana.send_template(&chat, "follow_up").await.expect_ok();

    let sent = server.sent_to_customers();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].kind, sent[0].text.as_str()),
        (MessageKind::Template, "follow_up")
    );
    assert_eq!(sent[0].params, ["Ana"]);
    assert_eq!(
        server.engine.chat_state(&chat.as_str().into()),
        Some(switchboard::core::ChatState::Closed),
        "still closed"
    );
    assert_eq!(ana.archive_entry(&chat).await["template_allowed"], false);
    ana.send_template(&chat, "follow_up")
        .await
        .expect_error("push_already_sent");
    ana.reopen(&chat).await.expect_error("window_closed");
    assert!(server.sent_to_customers().is_empty());

    // The customer writes again: a new chat, and once its window is over, a new push.
    let again = customer.says("Thanks, I am back").await.chat_id();
    ana.takes(&again).await;
    ana.closes(&again).await;
    server.advance(Duration::hours(25));
    ana.send_template(&again, "follow_up").await.expect_ok();
    server.check_invariants();
}

#[tokio::test]
async fn r07_a_channel_that_allows_nothing_after_its_window_rejects_templates_with_window_closed() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("wechat", "wx-0402")).await;
    let wrote_at = server.now();
    ana.closes(&chat).await;
    server.advance(Duration::hours(49));

    let error = ana
        .send_template(&chat, "follow_up")
        .await
        .expect_error("window_closed");

    assert_eq!(ts(&error["expired_at"]), wrote_at + Duration::hours(48));
    assert_eq!(ana.archive_entry(&chat).await["template_allowed"], false);
    assert!(server
        .sent_to_customers()
        .iter()
        .all(|m| m.kind != MessageKind::Template));
    server.check_invariants();
}

#[tokio::test]
async fn r07_a_free_form_message_after_the_window_is_rejected_with_window_closed() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("whatsapp", "+4915100000403")).await;
    let wrote_at = server.now();
    server.advance(Duration::hours(25));
    server.sent_to_customers();

    let error = ana
        .send_message(&chat, "Are you still there?")
        .await
        .expect_error("window_closed");
    assert_eq!(ts(&error["expired_at"]), wrote_at + Duration::hours(24));
    ana.closes(&chat).await;
    ana.send_message(&chat, "Are you still there?")
        .await
        .expect_error("window_closed");

    assert!(server.sent_to_customers().is_empty());
    server.check_invariants();
}

#[tokio::test]
async fn r08_stop_ends_the_live_chat_opts_out_and_blocks_reopen_and_push_until_the_customer_writes() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100000404");
    let chat = ana.serves(&customer).await;

    let receipt = customer.says("  #stop ").await;

    assert_eq!(receipt.chat_id(), chat);
    assert_eq!(receipt["state"], "closed");
    let closed = ana.expect_push("chat_closed").await;
    assert_eq!(
        (closed["chat_id"].as_str(), closed["reason"].as_str()),
        (Some(chat.as_str()), Some("stop"))
    );
    let customer_id = receipt["customer_id"].as_str().expect("customer id").into();
    assert!(server.engine.is_opted_out(&customer_id, Channel::Whatsapp));
    assert_eq!(server.agent_status("ana").await["load"], 0);
    ana.reopen(&chat).await.expect_error("opted_out");
    assert_eq!(ana.archive_entry(&chat).await["reopenable"], false);
    server.advance(Duration::hours(25));
    ana.send_template(&chat, "win_back")
        .await
        .expect_error("opted_out");

    let again = customer.says("Sorry, wrong button").await.chat_id();

    assert!(!server.engine.is_opted_out(&customer_id, Channel::Whatsapp));
    ana.takes(&again).await;
    ana.closes(&again).await;
    ana.reopen(&again).await.expect_ok();
    server.check_invariants();
}

#[tokio::test]
async fn r08_stop_on_a_reopened_chat_ends_it_and_tells_the_reopener() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100000405");
    let chat = ana.serves(&customer).await;
    ana.closes(&chat).await;
    ana.reopen(&chat).await.expect_ok();
    ana.expect_push("chat_reopened").await;

    customer.says("#STOP").await;

    let closed = ana.expect_push("chat_closed").await;
    assert_eq!(closed["reason"], "stop");
    assert_eq!(
        server.engine.chat_state(&chat.as_str().into()),
        Some(switchboard::core::ChatState::Closed)
    );
    let status = server.agent_status("ana").await;
    assert_eq!(
        (status["load"].as_u64(), status["overrides"].as_u64()),
        (Some(0), Some(0))
    );
    ana.expect_no_push("chat_activated").await;
    ana.reopen(&chat).await.expect_error("opted_out");
    server.check_invariants();
}

#[tokio::test]
async fn r07_messenger_allows_messages_tagged_human_agent_for_seven_days_after_the_last_message() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("messenger", "psid-0406")).await;
    server.advance(Duration::hours(25));
    server.sent_to_customers();
    let tagged = serde_json::json!({
        "type": "send_message",
        "chat_id": chat,
        "text": "Your replacement has shipped",
        "human_agent_tag": true,
    });

    ana.send_message(&chat, "Untagged")
        .await
        .expect_error("window_closed");
    ana.request(tagged.clone()).await.expect_ok();
    let sent = server.sent_to_customers();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].human_agent_tag);

    server.advance(Duration::days(6));
    ana.request(tagged).await.expect_error("window_closed");
    server.check_invariants();
}

#[tokio::test]
async fn r08_stop_without_a_live_chat_still_opts_the_customer_out() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100000407");
    let chat = ana.serves(&customer).await;
    ana.closes(&chat).await;

    let receipt = customer.says("#Stop").await;

    assert!(
        receipt["chat_id"].is_null(),
        "no live chat was ended: {:#}",
        receipt.0
    );
    let customer_id = receipt["customer_id"].as_str().expect("customer id").into();
    assert!(server.engine.is_opted_out(&customer_id, Channel::Whatsapp));
    ana.expect_no_push("chat_closed").await;
    ana.reopen(&chat).await.expect_error("opted_out");
    server.check_invariants();
}

#[tokio::test]
async fn r08_stop_while_the_chat_is_offered_takes_the_offer_back() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100000408");
    let chat = customer.says("Hello").await.chat_id();
    ana.expect_push("chat_offered").await;

    let receipt = customer.says("#STOP").await;

    assert_eq!(
        (receipt.chat_id(), receipt["state"].as_str()),
        (chat.clone(), Some("closed"))
    );
    let withdrawn = ana.expect_push("offer_withdrawn").await;
    assert_eq!(
        (withdrawn["chat_id"].as_str(), withdrawn["reason"].as_str()),
        (Some(chat.as_str()), Some("chat_closed"))
    );
    ana.accept(&chat).await.expect_error("not_found");
    let status = server.agent_status("ana").await;
    assert_eq!(
        (status["load"].as_u64(), status["offered"].as_u64()),
        (Some(0), Some(0))
    );
    server.check_invariants();
}
