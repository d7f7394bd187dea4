//! Bot journeys (R09).

use chrono::Duration;
use switchboard::core::Role;

use super::support::TestServer;

#[tokio::test]
async fn r09_a_customer_in_a_bot_journey_cannot_be_reopened() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let mut bob = server.agent_with("bob", Role::Agent, 0).connect().await;
    let customer = server.customer("sms", "+4915100000501");
    let old = ana.serves(&customer).await;
    ana.closes(&old).await;
    server.advance(Duration::days(2));

    let journey = customer.starts_bot().await;
    assert_eq!(journey["state"], "bot");

    let error = bob.reopen(&old).await.expect_error("active_elsewhere");
    assert_eq!(error["live"]["chat_id"], journey["chat_id"]);
    assert_eq!(error["live"]["state"], "bot");
    assert!(error["live"]["owner"].is_null());
    assert_eq!(bob.archive_entry(&old).await["reopenable"], false);
    bob.expect_silence().await;
    server.check_invariants();
}

#[tokio::test]
async fn r09_the_bot_handing_over_queues_the_chat() {
    let server = TestServer::start().await;
    let customer = server.customer("webchat", "visitor-0502");
    let journey = customer.starts_bot().await;
    let chat = journey.chat_id();
    assert!(
        server.waiting_in("webchat").await.is_empty(),
        "no agent sees a bot journey"
    );

    let handed = customer.handed_over().await;

    assert_eq!(handed.chat_id(), chat);
    assert_eq!(handed["state"], "queued");
    assert_eq!(handed["queue_position"], 1);
    let waiting = server.waiting_in("webchat").await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["chat_id"], chat.as_str());
    let mut ana = server.agent("ana").connect().await;
    ana.takes(&chat).await;
    server.check_invariants();
}

#[tokio::test]
async fn r09_r10_the_bot_hands_a_returning_customer_to_the_assigned_agent() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("sms", "+4915100000503");
    let old = ana.serves(&customer).await;
    ana.closes(&old).await;
    // Ana is busier than Bob, so only the assignment can send the customer to her.
    ana.serves(&server.customer("sms", "+4915100000504")).await;
    let mut bob = server.agent("bob").connect().await;
    server.advance(Duration::days(2));
    customer.starts_bot().await;

    let handed = customer.handed_over().await;

    ana.takes(&handed.chat_id()).await;
    bob.expect_no_push("chat_offered").await;
    server.check_invariants();
}
