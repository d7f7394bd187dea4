//! Sequence numbers, dropped connections and resume (R17), and shutdown.

use std::sync::atomic::Ordering;

use chrono::Duration;
use serde_json::json;
use switchboard::engine::EngineConfig;

use super::support::TestServer;

#[tokio::test]
async fn r17_every_connection_of_an_agent_gets_every_push_numbered_in_order_without_gaps() {
    let server = TestServer::start().await;
    let ana = server.agent("ana");
    let (mut laptop, mut phone) = (ana.connect().await, ana.connect().await);
    let start = laptop.welcome()["seq"].as_u64().expect("welcome seq");
    // The laptop's connection brought ana online (push start + 1) before the phone joined.
    assert_eq!(phone.welcome()["seq"].as_u64(), Some(start + 1));
    let customer = server.customer("whatsapp", "+4915100000601");

    let chat = laptop.serves(&customer).await;
    customer.says("Are you there?").await;
    phone.set_presence("away").await.expect_ok();
    laptop.set_presence("online").await.expect_ok();
    phone.send_message(&chat, "Yes").await.expect_ok();
    laptop.closes(&chat).await;

    let on_phone = phone.drain_pushes().await;
    let kinds: Vec<&str> = on_phone.iter().map(|p| p.kind()).collect();
    assert_eq!(
        kinds,
        [
            "chat_offered",
            "chat_activated",
            "customer_message",
            "presence_changed",
            "presence_changed",
            "message_sent",
            "chat_closed"
        ]
    );
    // Numbers continue after the laptop's presence push, which the phone's welcome counted.
    let base = start + 1;
    let seqs: Vec<u64> = on_phone.iter().map(|p| p.seq).collect();
    let expected: Vec<u64> = (base + 1..=base + 7).collect();
    assert_eq!(seqs, expected);
    // The laptop's story level consumed some of them; what is left continues the same numbers.
    let rest: Vec<u64> = laptop.drain_pushes().await.iter().map(|p| p.seq).collect();
    assert_eq!(rest, [base + 3, base + 4, base + 5, base + 6]);
    assert_eq!(laptop.last_seq(), base + 7);
    laptop.ack(base + 7).await.expect_ok();
    server.check_invariants();
}

#[tokio::test]
async fn r17_resume_after_a_reconnect_replays_exactly_what_was_missed() {
    let server = TestServer::start().await;
    let ana = server.agent("ana");
    let mut tab = ana.connect().await;
    let customer = server.customer("whatsapp", "+4915100000602");
    let chat = tab.serves(&customer).await;
    let seen = tab.last_seq();
    tab.disconnect().await;

    customer.says("Hello?").await;
    customer.says("Still there?").await;
    let mut tab = ana.connect().await;
    assert_eq!(tab.welcome()["seq"].as_u64(), Some(seen + 2));
    assert_eq!(tab.welcome()["presence"], "online");
    let resumed = tab.resume(seen).await.expect_ok();

    assert_eq!(resumed["kind"], "resumed");
    assert_eq!(resumed["replayed"], 2);
    let missed = tab.drain_pushes().await;
    let got: Vec<(u64, &str, &str)> = missed
        .iter()
        .map(|p| (p.seq, p.kind(), p["message"]["text"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        got,
        [
            (seen + 1, "customer_message", "Hello?"),
            (seen + 2, "customer_message", "Still there?")
        ]
    );
    assert!(missed.iter().all(|p| p["chat_id"] == chat.as_str()));
    server.check_invariants();
}

#[tokio::test]
async fn r17_resume_from_a_sequence_number_no_longer_kept_gets_a_snapshot() {
    let config = EngineConfig {
        log_capacity: 4,
        ..EngineConfig::default()
    };
    let server = TestServer::start_with(config).await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100000603");
    let chat = ana.serves(&customer).await;
    for i in 0..5 {
        customer.says(&format!("message {i}")).await;
    }
    ana.drain_pushes().await;

    let snapshot = ana.resume(0).await.expect_ok();

    assert_eq!(snapshot["kind"], "snapshot");
    assert_eq!(snapshot["seq"].as_u64(), Some(ana.last_seq()));
    assert_eq!(snapshot["presence"], "online");
    assert_eq!(
        (snapshot["load"].as_u64(), snapshot["limit"].as_u64()),
        (Some(1), Some(3))
    );
    let chats = snapshot["chats"].as_array().expect("chats");
    assert_eq!(chats.len(), 1);
    assert_eq!(chats[0]["id"], chat.as_str());
    assert_eq!(chats[0]["last_message"]["text"], "message 4");
    // Still inside the log: a plain replay.
    let resumed = ana.resume(ana.last_seq() - 2).await.expect_ok();
    assert_eq!(resumed["replayed"], 2);
    server.check_invariants();
}

#[tokio::test]
async fn r17_an_agent_gone_longer_than_the_grace_period_is_set_offline() {
    let server = TestServer::start().await;
    let ana = server.agent("ana");
    let tab = ana.connect().await;
    let seen = tab.last_seq();
    tab.disconnect().await;
    server.advance(Duration::seconds(59));
    assert_eq!(server.agent_status("ana").await["presence"], "online");

    server.advance(Duration::seconds(2));

    let status = server.agent_status("ana").await;
    assert_eq!(status["presence"], "offline");
    assert_eq!(status["connections"], 0);
    let mut back = ana.connect().await;
    assert_eq!(back.welcome()["presence"], "online");
    back.expect_silence().await;
    // What it missed, in order: set offline, then back online with this connection. Applied
    // in seq order, the client ends up showing what the router has.
    assert_eq!(back.resume(seen).await.expect_ok()["replayed"], 2);
    let missed: Vec<_> = back
        .drain_pushes()
        .await
        .iter()
        .map(|p| (p.kind().to_owned(), p["presence"].as_str().map(str::to_owned)))
        .collect();
    assert_eq!(
        missed,
        [
            ("presence_changed".to_owned(), Some("offline".to_owned())),
            ("presence_changed".to_owned(), Some("online".to_owned()))
        ]
    );
    server.check_invariants();
}

#[tokio::test]
async fn r17_an_agent_back_within_the_grace_period_keeps_its_presence_and_chats() {
    let server = TestServer::start().await;
    let ana = server.agent("ana");
    let mut tab = ana.connect().await;
    let customer = server.customer("whatsapp", "+4915100000604");
    let chat = tab.serves(&customer).await;
    tab.disconnect().await;

    server.advance(Duration::seconds(30));
    let mut tab = ana.connect().await;
    server.advance(Duration::seconds(31));

    assert_eq!(tab.welcome()["presence"], "online");
    let status = server.agent_status("ana").await;
    assert_eq!(
        (status["presence"].as_str(), status["load"].as_u64()),
        (Some("online"), Some(1))
    );
    tab.expect_no_push("presence_changed").await;
    customer.says("Thanks!").await;
    let message = tab.expect_push("customer_message").await;
    assert_eq!(message["chat_id"], chat.as_str());
    tab.send_message(&chat, "You are welcome").await.expect_ok();
    server.check_invariants();
}

#[tokio::test]
async fn shutdown_closes_every_agent_socket_with_going_away_1001() {
    let mut server = TestServer::start().await;
    let ana = server.agent("ana");
    let (mut laptop, mut phone) = (ana.connect().await, ana.connect().await);
    let mut bob = server.agent("bob").connect().await;

    server.stop().await;

    for client in [&mut laptop, &mut phone, &mut bob] {
        let (code, reason) = client.expect_close().await;
        assert_eq!(code, 1001, "{}: {reason}", client.id());
    }
    assert_eq!(server.engine.fanout().total_connections(), 0);
    server.check_invariants();
}

#[tokio::test]
async fn r17_a_connection_that_does_not_read_is_cut_off_and_catches_up_on_reconnect() {
    let config = EngineConfig {
        outbox_capacity: 16,
        log_capacity: 8,
        ..EngineConfig::default()
    };
    let server = TestServer::start_with(config).await;
    let ana = server.agent("ana");
    let mut tab = ana.connect().await;
    let customer = server.customer("whatsapp", "+4915100000605");
    let chat = tab.serves(&customer).await;
    let seen = tab.last_seq();

    // The test runtime has one thread and this loop never yields, so the server writes none of
    // them: sixteen pushes fill the outbox and the seventeenth cuts the connection off.
    for i in 0..17 {
        server.customer_writes_now(&customer, &format!("message {i}"));
    }

    assert_eq!(server.engine.fanout().kicked_total.load(Ordering::Relaxed), 1);
    let (code, reason) = tab.expect_close().await;
    assert_eq!(code, 4008, "{reason}");
    let mut tab = ana.connect().await;
    let snapshot = tab.resume(seen).await.expect_ok();
    assert_eq!(snapshot["kind"], "snapshot", "17 missed pushes, 8 kept");
    assert_eq!(snapshot["seq"].as_u64(), Some(seen + 17));
    assert_eq!(snapshot["chats"][0]["id"], chat.as_str());
    assert_eq!(snapshot["chats"][0]["last_message"]["text"], "message 16");
    customer.says("And now?").await;
    let next = tab.expect_push("customer_message").await;
    assert_eq!(next.seq, seen + 18);
    server.check_invariants();
}

#[tokio::test]
async fn r17_a_resume_of_more_pushes_than_an_outbox_holds_replays_them_all() {
    let config = EngineConfig {
        outbox_capacity: 8,
        log_capacity: 64,
        ..EngineConfig::default()
    };
    let server = TestServer::start_with(config).await;
    let ana = server.agent("ana");
    let mut tab = ana.connect().await;
    let customer = server.customer("whatsapp", "+4915100000606");
    tab.serves(&customer).await;
    let seen = tab.last_seq();
    tab.disconnect().await;
    for i in 0..20 {
        customer.says(&format!("message {i}")).await;
    }

    let mut tab = ana.connect().await;
    let resumed = tab.resume(seen).await.expect_ok();

    // All twenty are still in the log, so nothing may be lost: either they are replayed, or
    // (if they cannot be) a snapshot is sent; cutting the connection off loops forever.
    if resumed["kind"] == "resumed" {
        assert_eq!(resumed["replayed"], 20);
        let seqs: Vec<u64> = tab.drain_pushes().await.iter().map(|p| p.seq).collect();
        assert_eq!(seqs, (seen + 1..=seen + 20).collect::<Vec<u64>>());
    } else {
        assert_eq!(resumed["kind"], "snapshot");
        assert_eq!(resumed["seq"].as_u64(), Some(seen + 20));
    }
    server.check_invariants();
}

/// A client whose connection dropped after it sent a request cannot know whether it landed:
/// the same request with the same id, on a new connection within the grace period, gets the
/// first reply again and runs once. The same id with another request is refused; after the
/// grace period the id is forgotten.
#[tokio::test]
async fn r17_a_request_retried_with_its_id_after_a_reconnect_gets_the_first_reply_and_runs_once() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100000240");
    let chat = ana.serves(&customer).await;
    ana.closes(&chat).await;
    server.sent_to_customers();
    let reopen = json!({ "type": "reopen", "chat_id": chat });

    let first = ana.request_as("retry-1", reopen.clone()).await;
    assert!(first.is_ok(), "{:#}", first.0);
    ana.disconnect().await;
    let mut ana = server.agent("ana").connect().await;
    let again = ana.request_as("retry-1", reopen.clone()).await;
    assert_eq!(again.0, first.0, "the first reply, word for word");
    let notices = server.sent_to_customers();
    assert_eq!(notices.len(), 1, "one reopen notice, not two: {notices:?}");

    let close = json!({ "type": "close", "chat_id": chat });
    ana.request_as("retry-2", close.clone()).await.expect_ok();
    ana.expect_push("chat_closed").await;
    ana.request_as("retry-2", close.clone()).await.expect_ok();
    ana.expect_no_push("chat_closed").await;

    let reused = ana
        .request_as("retry-2", reopen.clone())
        .await
        .expect_error("bad_request");
    let message = reused["message"].as_str().unwrap_or_default();
    assert!(message.contains("\"retry-2\""), "names the id: {message}");

    server.advance(Duration::seconds(61));
    let later = ana.request_as("retry-2", close).await.expect_error("bad_request");
    assert!(
        later["message"].as_str().unwrap_or_default().contains("closed"),
        "after the grace period the id is new again, and the close runs: {later:#}"
    );
    server.check_invariants();
}

/// A reopen of a chat the caller itself holds reopened, with a new id (another tab), answers
/// `ok` with the chat instead of a conflict with oneself, and sends no second notice.
#[tokio::test]
async fn r17_an_agent_reopening_a_chat_it_holds_reopened_gets_ok_with_the_chat() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let mut ben = server.agent("ben").connect().await;
    let customer = server.customer("whatsapp", "+4915100000241");
    let chat = ana.serves(&customer).await;
    ana.closes(&chat).await;
    ana.reopen(&chat).await.expect_ok();
    server.sent_to_customers();

    let mut tab = server.agent("ana").connect().await;
    let result = tab.reopen(&chat).await.expect_ok();
    assert_eq!(
        (&result["kind"], &result["chat"]["id"]),
        (&json!("chat"), &json!(chat))
    );
    assert_eq!(result["chat"]["state"], "reopened");
    assert!(server.sent_to_customers().is_empty(), "no second notice");
    let live = ben.reopen(&chat).await.expect_error("active_elsewhere");
    assert_eq!(live["live"]["owner"], "ana");
    server.check_invariants();
}

/// The supervisor socket keeps its replies for retries too: a repeated forced close gets the
/// first `ok`, not "the chat is closed".
#[tokio::test]
async fn r17_a_supervisor_s_retried_request_gets_the_first_reply() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("whatsapp", "+4915100000242")).await;
    let mut sam = server.supervisor("sam").connect().await;
    let close = json!({ "type": "close", "chat_id": chat });
    let first = sam.request_as("s-retry-1", close.clone()).await;
    assert_eq!(first.0["type"], "ok", "{:#}", first.0);
    let mut sam = server.supervisor("sam").connect().await;
    let again = sam.request_as("s-retry-1", close.clone()).await;
    assert_eq!(again.0, first.0);
    let fresh = sam.request_as("s-retry-2", close).await;
    assert_eq!(fresh.0["code"], "bad_request", "a new id runs: {:#}", fresh.0);
    server.check_invariants();
}
