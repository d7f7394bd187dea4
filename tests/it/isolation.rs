//! R27 over the wire: nothing of one workspace can be seen or changed from another. A server
//! of `default` and `acme` (`TestServer::start_workspaces`, one id counter for both, as the
//! registry builds them); acme's supervisor and agent try default's board, KPIs and ids.

use serde_json::{json, Value};

use switchboard::core::Role;
use switchboard::security::Security;

use super::support::{refusal, AgentClient, SupervisorClient, TestServer};

/// Asserts that `what` (a board, events, a report, as JSON) names none of `foreign`.
fn names_none_of(what: &Value, foreign: &[&str], context: &str) {
    let text = what.to_string();
    for marker in foreign {
        assert!(!text.contains(marker), "{context} names {marker}: {what:#}");
    }
}

/// acme's supervisor `sue` and agent `ana`, connected through acme's paths.
async fn acme_desk(server: &TestServer) -> (SupervisorClient, AgentClient) {
    server.agent_in("acme", "sue", Role::Supervisor);
    let ana = server.agent_in("acme", "ana", Role::Agent).connect().await;
    let sue = server
        .supervisor_with_token("sue", "sue-token")
        .in_workspace("acme")
        .connect()
        .await;
    (sue, ana)
}

#[tokio::test]
async fn r27_a_supervisor_sees_only_its_workspace_board() {
    let server = TestServer::start_workspaces(Security::default(), &["acme"]).await;
    // default: bob (room for one) serves Dora, Dirk waits; sam supervises.
    let mut bob = server.agent_with("bob", Role::Agent, 1).connect().await;
    let mut sam = server.supervisor("sam").connect().await;
    sam.subscribe_all().await;
    let dora = server
        .customer("whatsapp", "+4915100004001")
        .named("Dora Default");
    let served = bob.serves(&dora).await;
    bob.send_message(&served, "default-reply-text").await.expect_ok();
    let waiting = server
        .customer("telegram", "dirk-default")
        .says("default-waiting-text")
        .await
        .chat_id();
    sam.events_until(|e| e.to_string().contains(&waiting)).await;
    let mut foreign = vec![
        "bob",
        "sam",
        served.as_str(),
        waiting.as_str(),
        "+4915100004001",
        "Dora Default",
        "dirk-default",
    ];

    let (mut sue, mut ana) = acme_desk(&server).await;
    let board = sue.subscribe_all().await;
    assert!(
        board.to_string().contains("\"ana\""),
        "acme's own agent is on its board: {board:#}"
    );
    names_none_of(&board, &foreign, "acme's board");
    let kpis = |report: Value| report["total"].clone();
    let acme_before = kpis(sue.request(json!({ "type": "get_analytics" })).await.expect_ok());
    let default_before = kpis(sam.request(json!({ "type": "get_analytics" })).await.expect_ok());

    // default goes on: bob closes Dora's chat and takes Dirk's; Emil writes. sam sees all of it.
    bob.closes(&served).await;
    bob.takes(&waiting).await;
    let later = server
        .customer("whatsapp", "+4915100004002")
        .says("default-later-text")
        .await
        .chat_id();
    sam.events_until(|e| e.to_string().contains(&later)).await;
    foreign.push(later.as_str());
    // Then acme: a customer of its own, whom ana serves. sue's events up to that name none
    // of default's: its board is fed by acme's engine alone.
    let own = ana
        .serves(&server.customer("whatsapp", "+4915100004003").in_workspace("acme"))
        .await;
    let events = sue.events_until(|e| e.to_string().contains(&own)).await;
    names_none_of(&Value::from(events), &foreign, "acme's board events");

    // The KPIs: default's moved, acme's only by acme's own chat, and none names default's.
    let default_after = kpis(sam.request(json!({ "type": "get_analytics" })).await.expect_ok());
    assert_ne!(default_after, default_before, "default's KPIs count bob's work");
    let acme_report = sue.request(json!({ "type": "get_analytics" })).await.expect_ok();
    names_none_of(&acme_report, &foreign, "acme's KPIs");
    let (status, over_http) = server.get_as("/v1/w/acme/analytics", "sue-token").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{over_http:#}");
    assert_eq!(over_http["total"], acme_report["total"]);
    assert_eq!(
        sue.request(json!({ "type": "get_analytics", "agent": "bob" }))
            .await
            .expect_ok()["total"],
        acme_before,
        "bob's figures are nowhere in acme"
    );
    // Nor can sue act on default's agents and queues.
    sue.request(json!({ "type": "set_limit", "agent": "bob", "limit": 5 }))
        .await
        .expect_error("not_found");
    assert_eq!(server.engine.seat(&"bob".into()).map(|s| s.2), Some(1));

    // acme's token opens acme's sockets only: at default's paths it is unknown.
    for socket in ["/v1/supervisor/ws", "/v1/w/default/supervisor/ws", "/v1/agent/ws"] {
        let refused = refusal(&server, socket, "sue-token", None).await;
        assert_eq!(
            refused.map(|(status, body)| (status.as_u16(), body["code"].clone())),
            Some((401, json!("unauthorized"))),
            "{socket}"
        );
    }
    server.check_invariants();
    server.engine_of("acme").check_invariants();
}

#[tokio::test]
async fn r27_an_id_of_another_workspace_answers_not_found() {
    let server = TestServer::start_workspaces(Security::default(), &["acme"]).await;
    // default: bob serves Dora (active) and served Dirk (closed).
    let mut bob = server.agent("bob").connect().await;
    let dora = server.customer("whatsapp", "+4915100004101");
    let active = dora.says("Hello").await;
    let active_chat = active.chat_id();
    bob.takes(&active_chat).await;
    let closed = bob.serves(&server.customer("whatsapp", "+4915100004102")).await;
    bob.send_message(&closed, "default-reply-text").await.expect_ok();
    bob.closes(&closed).await;
    let history_before = bob.get_chat(&active_chat).await.expect_ok();
    let _ = bob.drain_pushes().await;

    let (mut sue, mut ana) = acme_desk(&server).await;
    // acme's own ids work (the requests below are refused for their ids, not their kind).
    let own = ana
        .serves(&server.customer("whatsapp", "+4915100004101").in_workspace("acme"))
        .await;
    assert_ne!(own, active_chat, "one id counter: no id is two workspaces'");
    ana.get_chat(&own).await.expect_ok();

    // Every request with an id of default's: `not_found`, never `forbidden`.
    for chat in [&active_chat, &closed] {
        ana.reopen(chat).await.expect_error("not_found");
        ana.get_chat(chat).await.expect_error("not_found");
        ana.accept(chat).await.expect_error("not_found");
        ana.send_message(chat, "from acme")
            .await
            .expect_error("not_found");
        ana.transfer(chat, "bob", false).await.expect_error("not_found");
        ana.close(chat).await.expect_error("not_found");
        sue.request(json!({ "type": "transfer", "chat_id": chat, "to": "ana" }))
            .await
            .expect_error("not_found");
        sue.request(json!({ "type": "close", "chat_id": chat }))
            .await
            .expect_error("not_found");
    }
    // Customers: searching acme's archive for default's customer id, address or text finds
    // nothing (acme's own customer of the same address is another customer).
    let customer_id = active["customer_id"].as_str().expect("a customer id").to_owned();
    for query in [customer_id.as_str(), "+4915100004102", "default-reply-text"] {
        let (entries, _) = ana
            .list_archive_page(json!({ "scope": "all", "query": query }))
            .await;
        names_none_of(
            &Value::from(entries),
            &[&active_chat, &closed, &customer_id],
            query,
        );
    }
    names_none_of(
        &Value::from(ana.list_archive("all").await),
        &[&active_chat, &closed],
        "acme's archive",
    );

    // default is as it was: bob still has Dora's chat, its history did not change, and bob
    // heard nothing.
    assert_eq!(
        server.engine.chat_state(&active_chat.clone().into()),
        Some(switchboard::core::ChatState::Active)
    );
    assert_eq!(
        server.engine.chat_state(&closed.clone().into()),
        Some(switchboard::core::ChatState::Closed)
    );
    assert_eq!(bob.get_chat(&active_chat).await.expect_ok(), history_before);
    bob.expect_silence().await;
    server.check_invariants();
    server.engine_of("acme").check_invariants();
}
