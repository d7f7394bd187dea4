//! Customers writing in: one live chat per customer (R01), and coming back (R11).

use chrono::Duration;

use super::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r01_concurrent_first_messages_of_one_customer_open_exactly_one_chat() {
    let server = TestServer::start().await;
    let customer = server.customer("whatsapp", "+4915100000001");

    let writes: Vec<_> = (0..20)
        .map(|i| {
            let customer = customer.clone();
            tokio::spawn(async move { customer.says(&format!("message {i}")).await })
        })
        .collect();
    let mut receipts = Vec::new();
    for write in writes {
        receipts.push(write.await.expect("the write task"));
    }

    let chat = receipts[0].chat_id();
    for receipt in &receipts {
        assert_eq!(receipt.chat_id(), chat, "every message joins the same chat");
        assert_eq!(receipt["customer_id"], receipts[0]["customer_id"]);
        assert_eq!(receipt["state"], "queued");
    }
    let waiting = server.waiting_in("whatsapp").await;
    assert_eq!(waiting.len(), 1, "one chat waits: {waiting:#?}");
    assert_eq!(waiting[0]["chat_id"], chat.as_str());
    server.check_invariants();

    // Nothing was lost either: the agent who takes the chat sees all twenty messages.
    let mut ana = server.agent("ana").connect().await;
    ana.takes(&chat).await;
    let history = ana.get_chat(&chat).await.expect_ok();
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(20));
    server.check_invariants();
}

#[tokio::test]
async fn r11_customer_returning_within_the_window_revives_the_same_chat_with_its_history() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100000002");
    let chat = ana.serves(&customer).await;
    ana.send_message(&chat, "How can I help?").await.expect_ok();
    ana.closes(&chat).await;

    server.advance(Duration::hours(3));
    let receipt = customer.says("One more thing").await;

    assert_eq!(receipt.chat_id(), chat, "same chat id");
    assert_eq!(receipt["state"], "queued");
    ana.takes(&chat).await;
    let history = ana.get_chat(&chat).await.expect_ok();
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["Hello", "How can I help?", "One more thing"]);
    server.check_invariants();
}

#[tokio::test]
async fn r11_customer_returning_after_the_window_starts_a_new_chat() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100000003");
    let old = ana.serves(&customer).await;
    ana.closes(&old).await;

    server.advance(Duration::hours(25));
    let receipt = customer.says("Hello again").await;

    let new = receipt.chat_id();
    assert_ne!(new, old, "a new chat starts after the window");
    ana.takes(&new).await;
    let history = ana.get_chat(&new).await.expect_ok();
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(ana.archive_entry(&old).await["state"], "closed");
    server.check_invariants();
}
