//! Supervisors on their own WebSocket: the live board (R15), its KPIs (R14), their actions
//! (R06, R12) and resume (R17).

use chrono::Duration;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::core::Role;

use super::support::{apply, schema, SupervisorClient, TestServer};

/// A marker: the supervisor changes `agent`'s limit to `limit` and waits for its row, so that
/// every event caused before it has arrived too.
async fn events_until_limit(sup: &mut SupervisorClient, agent: &str, limit: u32) -> Vec<Value> {
    sup.request(json!({ "type": "set_limit", "agent": agent, "limit": limit }))
        .await
        .expect_ok();
    sup.events_until(|e| {
        e["kind"] == "agent_changed" && e["agent"]["id"] == agent && e["agent"]["limit"] == limit
    })
    .await
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// The board with its lists in a fixed order, for comparing two boards.
fn normalized(mut board: Value) -> Value {
    for (list, key) in [("agents", "id"), ("reopened", "chat_id"), ("queues", "id")] {
        if let Some(items) = board[list].as_array_mut() {
            items.sort_by(|a, b| a[key].as_str().cmp(&b[key].as_str()));
        }
    }
    board["seq"] = Value::Null;
    // The KPIs are sent once per batch, after the changes that moved them: compared apart.
    board["kpis"] = Value::Null;
    board
}

#[tokio::test]
async fn r15_a_supervisor_subscribed_before_a_reopen_race_sees_exactly_one_reopened_chat_with_the_winner() {
    let server = TestServer::start().await;
    let mut sup = server.supervisor("sam").connect().await;
    let mut owner = server.agent("ana").connect().await;
    let chat = owner.serves(&server.customer("whatsapp", "+4915100000901")).await;
    owner.closes(&chat).await;
    let mut racers = Vec::new();
    for i in 0..8 {
        racers.push(server.agent(&format!("racer{i}")).connect().await);
    }
    sup.subscribe_all().await;

    let replies = join_all(racers.iter_mut().map(|r| r.reopen(&chat))).await;
    let winners: Vec<&str> = racers
        .iter()
        .zip(&replies)
        .filter(|(_, reply)| reply.is_ok())
        .map(|(racer, _)| racer.id())
        .collect();
    assert_eq!(winners.len(), 1, "exactly one reopen wins");

    let events = events_until_limit(&mut sup, "ana", 5).await;
    let reopened = of_kind(&events, "chat_reopened");
    assert_eq!(reopened.len(), 1, "{events:#?}");
    assert_eq!(reopened[0]["chat"]["chat_id"], chat);
    assert_eq!(reopened[0]["chat"]["reopened_by"], winners[0]);
    assert_eq!(reopened[0]["chat"]["queue"], "whatsapp");

    // A fresh board shows the same, and the race in the KPIs.
    let board = server.supervisor("sue").connect().await.subscribe_all().await;
    assert_eq!(board["reopened"].as_array().map(Vec::len), Some(1));
    assert_eq!(board["reopened"][0]["reopened_by"], winners[0]);
    let figures = &board["kpis"]["figures"];
    assert_eq!(figures["reopens"], 1);
    assert_eq!(figures["rejected"]["active_elsewhere"], 7);
    server.check_invariants();
}

#[tokio::test]
async fn r15_a_supervisor_sees_a_queue_grow_and_drain_with_its_positions() {
    let server = TestServer::start().await;
    let ana = server.agent_with("ana", Role::Agent, 1);
    let mut sup = server.supervisor("sam").connect().await;
    let mut board = sup.subscribe(&["whatsapp"]).await;
    assert_eq!(
        board["queues"].as_array().map(Vec::len),
        Some(1),
        "only the subscribed queue"
    );

    // Nobody online: the queue grows.
    let mut chats = Vec::new();
    for i in 0..3 {
        let receipt = server
            .customer("whatsapp", &format!("+49151000009{i:02}"))
            .says("Hello")
            .await;
        assert_eq!(receipt["queue_position"], i + 1);
        chats.push(receipt.chat_id());
    }
    let grown = sup
        .events_until(|e| e["kind"] == "chat_queued" && e["chat"]["chat_id"] == chats[2])
        .await;
    let queued = of_kind(&grown, "chat_queued");
    let positions: Vec<(&Value, &Value)> = queued
        .iter()
        .map(|e| (&e["chat"]["chat_id"], &e["chat"]["position"]))
        .collect();
    assert_eq!(
        positions,
        [
            (&json!(chats[0]), &json!(1)),
            (&json!(chats[1]), &json!(2)),
            (&json!(chats[2]), &json!(3))
        ]
    );
    for event in &grown {
        apply(&mut board, event);
    }

    // Ana comes online with room for one: the oldest leaves, the others move up.
    let mut ana = ana.connect().await;
    let left = sup.expect_event("chat_left_queue", |_| true).await;
    assert_eq!(left["chat_id"], chats[0]);
    assert_eq!(left["offered_to"], "ana");
    apply(&mut board, &left);
    let waiting = &board["queues"][0]["waiting"];
    assert_eq!(waiting[0]["chat_id"], chats[1]);
    assert_eq!(waiting[0]["position"], 1);
    assert_eq!(waiting[1]["position"], 2);

    // It drains as she works through it; a declined offer comes back at the front, and her
    // freed slot goes to the next chat first (the declined one is hers again after that).
    ana.takes(&chats[0]).await;
    ana.closes(&chats[0]).await;
    let offer = ana.expect_push("chat_offered").await;
    assert_eq!(offer["chat"]["id"], chats[1]);
    ana.decline(&chats[1]).await.expect_ok();
    ana.takes(&chats[2]).await;
    ana.closes(&chats[2]).await;
    ana.takes(&chats[1]).await;

    let newcomer = server.supervisor("sue");
    let drained = events_until_limit(&mut sup, "ana", 2).await;
    let back = of_kind(&drained, "chat_queued");
    assert_eq!(back.len(), 1, "the declined chat came back once: {drained:#?}");
    assert_eq!(back[0]["chat"]["chat_id"], chats[1]);
    assert_eq!(back[0]["chat"]["position"], 1);
    for event in &drained {
        apply(&mut board, event);
    }
    assert_eq!(board["queues"][0]["waiting"], json!([]));

    // Everything the events said adds up to the board a newcomer gets.
    let fresh = newcomer.connect().await.subscribe(&["whatsapp"]).await;
    assert_eq!(normalized(board), normalized(fresh));
    server.check_invariants();
}

#[tokio::test]
async fn r05_a_supervisor_sees_an_agent_go_over_its_limit_and_the_override_counted() {
    let server = TestServer::start().await;
    let mut ana = server.agent_with("ana", Role::Agent, 1).connect().await;
    ana.serves(&server.customer("whatsapp", "+4915100000910")).await;
    let mut bob = server.agent("bob").connect().await;
    let customer = server.customer("whatsapp", "+4915100000911");
    let chat = bob.serves(&customer).await;
    bob.closes(&chat).await;
    let mut sup = server.supervisor("sam").connect().await;
    let board = sup.subscribe_all().await;
    assert_eq!(board["kpis"]["figures"]["overrides"], 0);

    ana.reopen(&chat).await.expect_ok();
    let tip = sup.expect_event("chat_reopened", |_| true).await;
    assert_eq!(tip["chat"]["reopened_by"], "ana");
    customer.says("Yes please").await;

    let ended = sup.expect_event("reopen_ended", |_| true).await;
    assert_eq!(
        (&ended["chat_id"], &ended["outcome"]),
        (&json!(chat), &json!("replied"))
    );
    let row = sup
        .expect_event("agent_changed", |e| e["agent"]["id"] == "ana")
        .await;
    assert_eq!(row["agent"]["load"], 2);
    assert_eq!(row["agent"]["limit"], 1);
    assert_eq!(row["agent"]["over_limit"], true);
    assert_eq!(row["agent"]["overrides"], 1);
    let kpis = sup
        .expect_event("kpis_changed", |e| e["kpis"]["figures"]["overrides"] == 1)
        .await;
    let figures = &kpis["kpis"]["figures"];
    assert_eq!((&figures["reopens"], &figures["replied"]), (&json!(1), &json!(1)));
    server.check_invariants();
}

#[tokio::test]
async fn r06_supervisor_actions_change_a_limit_force_a_transfer_set_away_and_close() {
    let server = TestServer::start().await;
    let mut ana = server.agent_with("ana", Role::Agent, 2).connect().await;
    let first = ana.serves(&server.customer("whatsapp", "+4915100000920")).await;
    let second = ana.serves(&server.customer("whatsapp", "+4915100000921")).await;
    let mut bob = server.agent_with("bob", Role::Agent, 1).connect().await;
    bob.serves(&server.customer("whatsapp", "+4915100000922")).await;
    let mut sup = server.supervisor("sam").connect().await;
    sup.subscribe_all().await;

    // Lowering a limit takes no chat away.
    sup.request(json!({ "type": "set_limit", "agent": "ana", "limit": 1 }))
        .await
        .expect_ok();
    let changed = ana.expect_push("limit_changed").await;
    assert_eq!((&changed["limit"], &changed["load"]), (&json!(1), &json!(2)));
    assert_eq!(
        server.engine.seat(&"ana".into()).map(|s| (s.1, s.2)),
        Some((2, 1))
    );

    // A forced transfer goes over bob's limit and is counted.
    let moved = sup
        .request(json!({ "type": "transfer", "chat_id": first, "to": "bob" }))
        .await
        .expect_ok();
    assert_eq!(moved["chat"]["owner"], "bob");
    let activated = bob.expect_push("chat_activated").await;
    assert_eq!(
        (&activated["by"], &activated["over_limit"]),
        (&json!("transfer"), &json!(true))
    );
    ana.expect_push("chat_transferred").await;
    let row = sup
        .expect_event("agent_changed", |e| {
            e["agent"]["id"] == "bob" && e["agent"]["load"] == 2
        })
        .await;
    assert_eq!(row["agent"]["over_limit"], true);

    // Away, on the agent's behalf: the agent is told.
    sup.request(json!({ "type": "set_presence", "agent": "ana", "presence": "away" }))
        .await
        .expect_ok();
    assert_eq!(ana.expect_push("presence_changed").await["presence"], "away");

    // Closing on the owner's behalf.
    sup.request(json!({ "type": "close", "chat_id": second }))
        .await
        .expect_ok();
    let closed = ana.expect_push("chat_closed").await;
    assert_eq!(
        (&closed["chat_id"], &closed["reason"]),
        (&json!(second), &json!("supervisor"))
    );
    sup.request(json!({ "type": "close", "chat_id": second }))
        .await
        .expect_error("bad_request");

    let report = sup
        .request(json!({ "type": "get_analytics", "agent": "bob" }))
        .await
        .expect_ok();
    assert_eq!(report["total"]["overrides"], 1);
    server.check_invariants();
}

#[tokio::test]
async fn r15_agents_are_forbidden_the_supervisor_socket_and_analytics() {
    let server = TestServer::start().await;
    server.agent("ana");
    server.supervisor("sam");
    let url = format!("ws://{}/v1/supervisor/ws?token=ana-token", server.addr);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
        }
        other => panic!("an agent got onto the supervisor socket: {other:?}"),
    }
    let (status, body) = server.get_as("/v1/analytics", "ana-token").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "forbidden");
    let (status, body) = server.get_as("/v1/analytics", "sam-token").await;
    assert_eq!(status, StatusCode::OK);
    schema::check(schema::ANALYTICS_REPORT, &body);
}

#[tokio::test]
async fn r17_a_supervisor_resumes_from_its_last_seq_after_a_reconnect() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let supervisor = server.supervisor("sam");
    let mut sup = supervisor.connect().await;
    sup.subscribe_all().await;
    let chat = ana.serves(&server.customer("whatsapp", "+4915100000930")).await;
    events_until_limit(&mut sup, "ana", 4).await;
    let last = sup.last_seq();
    sup.disconnect().await;

    // Missed while away: a close, a reopen.
    ana.closes(&chat).await;
    ana.reopen(&chat).await.expect_ok();

    let mut sup = supervisor.connect().await;
    assert!(
        sup.welcome()["seq"].as_u64() > Some(last),
        "the welcome tells the board moved on"
    );
    let reply = sup
        .request(json!({ "type": "subscribe", "after_seq": last }))
        .await
        .expect_ok();
    assert_eq!(reply["kind"], "resumed", "{reply:#}");
    let missed = events_until_limit(&mut sup, "ana", 5).await;
    assert!(
        missed.first().and_then(|e| e["seq"].as_u64()) > Some(last),
        "{missed:#?}"
    );
    let reopened = of_kind(&missed, "chat_reopened");
    assert_eq!(reopened.len(), 1, "{missed:#?}");
    assert_eq!(reopened[0]["chat"]["chat_id"], chat);

    // From a number the engine never sent, a board instead.
    let board = sup
        .request(json!({ "type": "subscribe", "after_seq": 1_000_000 }))
        .await
        .expect_ok();
    assert_eq!(board["kind"], "board");
    assert_eq!(board["reopened"][0]["chat_id"], chat);
}

#[tokio::test]
async fn r18_a_bad_supervisor_frame_gets_an_error_and_the_board_carries_on() {
    let server = TestServer::start().await;
    server.agent("ana");
    let mut sup = server.supervisor("sam").connect().await;
    sup.subscribe_all().await;
    sup.request(json!({ "type": "subscribe", "queues": ["nowhere"] }))
        .await
        .expect_error("not_found");
    sup.request(json!({ "type": "set_limit", "agent": "ghost", "limit": 1 }))
        .await
        .expect_error("not_found");
    let events = events_until_limit(&mut sup, "ana", 7).await;
    assert_eq!(
        events.len(),
        1,
        "the failed requests changed nothing: {events:#?}"
    );
}

#[tokio::test]
async fn r14_analytics_over_http_count_a_scripted_day_exactly() {
    let server = TestServer::start().await;
    let mut bob = server.agent("bob").connect().await;
    server.supervisor("sam");
    let customer = server.customer("whatsapp", "+4915100000940");
    let chat = bob.serves(&customer).await;
    bob.closes(&chat).await;
    let sms = bob.serves(&server.customer("sms", "+4915100000941")).await;
    bob.closes(&sms).await;
    let mut ana = server.agent_with("ana", Role::Agent, 1).connect().await;

    server.advance(Duration::minutes(10));
    let reopened_at = server.now();
    ana.reopen(&chat).await.expect_ok();
    bob.reopen(&chat).await.expect_error("active_elsewhere");
    customer.says("#STOP").await;
    ana.reopen(&chat).await.expect_error("opted_out");
    bob.reopen(&sms).await.expect_ok();

    let (status, all) = server.get_as("/v1/analytics", "sam-token").await;
    assert_eq!(status, StatusCode::OK);
    schema::check(schema::ANALYTICS_REPORT, &all);
    let total = &all["total"];
    assert_eq!(total["reopens"], 2);
    assert_eq!(total["declined"], 1);
    assert_eq!(
        total["rejected"],
        json!({ "active_elsewhere": 1, "window_closed": 0, "opted_out": 1 })
    );
    assert_eq!(total["time_to_accept"]["count"], 2);

    let since = reopened_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let path = format!(
        "/v1/analytics?from={}&channel=whatsapp",
        since.replace('+', "%2B")
    );
    let (_, whatsapp) = server.get_as(&path, "sam-token").await;
    assert_eq!(whatsapp["total"]["reopens"], 1);
    assert_eq!(
        whatsapp["total"]["time_to_accept"]["count"], 0,
        "the accepts came before"
    );
    let agents: Vec<&Value> = whatsapp["agents"].as_array().expect("agents").iter().collect();
    assert_eq!(agents.len(), 2);
    assert_eq!(agents[0]["agent"], "ana");
    assert_eq!(agents[0]["figures"]["reopens"], 1);
    assert_eq!(agents[0]["figures"]["rejected"]["opted_out"], 1);
    assert_eq!(agents[1]["agent"], "bob");
    assert_eq!(agents[1]["figures"]["rejected"]["active_elsewhere"], 1);

    let (_, bob_only) = server.get_as("/v1/analytics?agent=bob", "sam-token").await;
    assert_eq!(bob_only["total"]["reopens"], 1);
    assert_eq!(
        bob_only["total"]["declined"], 0,
        "the #STOP answered ana's reopen"
    );
}

#[tokio::test]
async fn r15_waiting_chats_on_the_board_name_their_customers() {
    let server = TestServer::start().await;
    let mut sup = server.supervisor("sam").connect().await;
    sup.subscribe(&["whatsapp"]).await;

    // Nobody online: both wait, one with a name, one with a number only.
    let named = server
        .customer("whatsapp", "+4915100000930")
        .named("Lea Roth")
        .says("Hello")
        .await
        .chat_id();
    let unnamed = server
        .customer("whatsapp", "+4915100000931")
        .says("Hi")
        .await
        .chat_id();
    let queued = sup
        .events_until(|e| e["kind"] == "chat_queued" && e["chat"]["chat_id"] == unnamed)
        .await;
    let customer_of = |chat: &str| {
        of_kind(&queued, "chat_queued")
            .into_iter()
            .find(|e| e["chat"]["chat_id"] == chat)
            .map(|e| e["chat"]["customer"].clone())
    };
    assert_eq!(
        customer_of(&named).map(|c| c["name"].clone()),
        Some(json!("Lea Roth"))
    );
    // Without a name the wall falls back to the customer's id, as everywhere.
    let unnamed_customer = customer_of(&unnamed).expect("queued");
    assert!(unnamed_customer["name"].is_null(), "{unnamed_customer}");
    assert!(unnamed_customer["id"].is_string(), "{unnamed_customer}");

    // The board a newcomer gets, and the admin API, say the same.
    let board = server
        .supervisor("sue")
        .connect()
        .await
        .subscribe(&["whatsapp"])
        .await;
    let waiting = &board["queues"][0]["waiting"];
    assert_eq!(waiting[0]["customer"]["name"], "Lea Roth");
    assert_eq!(waiting[0]["customer"]["id"], waiting[0]["customer_id"]);
    assert_eq!(waiting[1]["customer"]["id"], waiting[1]["customer_id"]);
    let listed = server.waiting_in("whatsapp").await;
    assert_eq!(listed[0]["customer"]["name"], "Lea Roth");
    server.check_invariants();
}

#[tokio::test]
async fn r12_a_supervisor_lists_the_active_chats_and_forces_a_transfer_of_one_picked_from_it() {
    let server = TestServer::start().await;
    let mut ana = server.agent_with("ana", Role::Agent, 1).connect().await;
    let mia = ana
        .serves(&server.customer("whatsapp", "+4915100000940").named("Mia Berg"))
        .await;
    let mut bob = server.agent_with("bob", Role::Agent, 1).connect().await;
    let tom = bob.serves(&server.customer("sms", "+4915100000941")).await;
    bob.closes(&tom).await;
    let mut sup = server.supervisor("sam").connect().await;

    // Everyone's active chats, without an id typed in: Mia's with ana; Tom's closed one not.
    let listed = sup
        .request(json!({ "type": "list_archive", "state": "active" }))
        .await
        .expect_ok();
    assert_eq!(listed["kind"], "archive");
    let entries = listed["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{listed:#}");
    assert_eq!(
        (
            &entries[0]["chat_id"],
            &entries[0]["owner"],
            &entries[0]["customer"]["name"]
        ),
        (&json!(mia), &json!("ana"), &json!("Mia Berg"))
    );
    let found = sup
        .request(json!({ "type": "list_archive", "query": "mia" }))
        .await
        .expect_ok();
    assert_eq!(found["entries"][0]["chat_id"], mia.as_str());

    // The one picked goes to bob, over his limit if need be.
    let picked = entries[0]["chat_id"].as_str().expect("an id").to_owned();
    bob.serves(&server.customer("sms", "+4915100000942")).await;
    let moved = sup
        .request(json!({ "type": "transfer", "chat_id": picked, "to": "bob" }))
        .await
        .expect_ok();
    assert_eq!(moved["chat"]["owner"], "bob");
    ana.expect_push("chat_transferred").await;
    assert_eq!(
        bob.expect_push("chat_activated").await["chat"]["id"],
        mia.as_str()
    );
    let after = sup
        .request(json!({ "type": "list_archive", "state": "active" }))
        .await
        .expect_ok();
    let owners: Vec<(&Value, &Value)> = after["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (&e["chat_id"], &e["owner"]))
        .collect();
    assert!(owners.contains(&(&json!(mia), &json!("bob"))), "{after:#}");
    server.check_invariants();
}
