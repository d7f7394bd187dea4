//! Routing like a contact centre over the wire (R19–R22): skills and workflow steps,
//! priorities and SLAs, opening hours, capacity per channel. The rules themselves are proven
//! at the core (`core/router/tests.rs`); these check what clients send and see.

use std::path::Path;

use chrono::Duration;
use serde_json::{json, Value};
use switchboard::config::Config;
use switchboard::engine::EngineConfig;
use switchboard::protocol::MessageKind;

use super::support::{apply, Backend, TestServer};

/// The engine configuration `toml` describes.
fn config(toml: &str) -> EngineConfig {
    Config::parse(toml, Path::new("routing.toml"))
        .and_then(|c| c.engine())
        .unwrap_or_else(|e| panic!("the test's configuration: {e}"))
}

/// Billing on web chat: level 3 for a minute, then anyone with billing; answer within 2 min.
const BILLING: &str = r#"
[[queues]]
id = "billing"
channels = ["webchat"]
sla_secs = 120

[[queues.steps]]
requires = { billing = 3 }
timeout_secs = 60

[[queues.steps]]
requires = { billing = 1 }
keep_chat_requirements = false
"#;

#[tokio::test]
async fn r19_a_chat_asking_for_spanish_goes_to_the_agent_with_billing_and_spanish_and_the_offer_says_why() {
    let server = TestServer::start_with(config(BILLING)).await;
    let mut ana = server
        .skilled_agent("ana", 2, &[("billing", 5)], &[])
        .connect()
        .await;
    let mut ben = server
        .skilled_agent("ben", 2, &[("billing", 3), ("language:es", 4)], &[])
        .connect()
        .await;
    let receipt = server
        .customer("webchat", "w-es-1")
        .asking(json!({ "language": "es" }))
        .says("Hola, una factura")
        .await;
    assert_eq!(receipt["queue"], Value::Null, "offered at once: it does not wait");
    let offer = ben.expect_push("chat_offered").await;
    assert_eq!(offer["chat"]["id"], receipt.chat_id().as_str());
    assert_eq!(offer["queue"], "billing");
    assert_eq!(offer["requires"], json!({ "billing": 3, "language:es": 1 }));
    assert_eq!(offer["step"], 0);
    ana.expect_no_push("chat_offered").await;
    server.check_invariants();
}

#[tokio::test]
async fn r19_a_waiting_chat_moves_on_a_step_on_the_board_and_goes_to_the_agent_a_supervisor_trains() {
    let server = TestServer::start_with(config(BILLING)).await;
    let mut sam = server.supervisor("sam").connect().await;
    let mut board = sam.subscribe(&["billing"]).await;
    let mut ben = server
        .skilled_agent("ben", 2, &[("language:en", 5)], &[])
        .connect()
        .await;

    let receipt = server
        .customer("webchat", "w-1")
        .says("My invoice is wrong")
        .await;
    let chat = receipt.chat_id();
    assert_eq!(
        (receipt["queue"].as_str(), receipt["queue_position"].as_u64()),
        (Some("billing"), Some(1))
    );
    let queued = sam
        .expect_event("chat_queued", |e| e["chat"]["chat_id"] == chat.as_str())
        .await;
    apply(&mut board, &queued);
    let waiting = &queued["chat"];
    assert_eq!(
        (waiting["step"].as_u64(), waiting["steps"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(waiting["requires"], json!({ "billing": 3 }));
    let due = TestServer::start_time() + Duration::seconds(120);
    assert_eq!(
        waiting["due_at"],
        json!(due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    );

    // A minute on, anyone with billing will do: the board shows the wider step.
    server.advance(Duration::seconds(60));
    let stepped = sam
        .expect_event("chat_stepped", |e| e["chat"]["chat_id"] == chat.as_str())
        .await;
    assert_eq!(stepped["chat"]["step"], 1);
    assert_eq!(stepped["chat"]["requires"], json!({ "billing": 1 }));
    apply(&mut board, &stepped);
    ben.expect_no_push("chat_offered").await;

    // The supervisor gives ben billing; the chat that waited for it is his.
    sam.request(
        json!({ "type": "set_skills", "agent": "ben", "skills": { "language:en": 5, "billing": 1 } }),
    )
    .await
    .expect_ok();
    let offer = ben.expect_push("chat_offered").await;
    assert_eq!(
        (offer["chat"]["id"].as_str(), offer["step"].as_u64()),
        (Some(chat.as_str()), Some(1))
    );
    let row = sam
        .expect_event("agent_changed", |e| {
            e["agent"]["id"] == "ben" && e["agent"]["skills"]["billing"] == 1
        })
        .await;
    assert_eq!(row["agent"]["skills"], json!({ "billing": 1, "language:en": 5 }));

    // Levels go from 1 to 5: a sixth is refused, naming the skill.
    let refused = sam
        .request(json!({ "type": "set_skills", "agent": "ben", "skills": { "billing": 6 } }))
        .await
        .expect_error("bad_request");
    assert!(
        refused["message"].as_str().is_some_and(|m| m.contains("billing")),
        "{refused:#}"
    );
    server.check_invariants();
}

#[tokio::test]
async fn r19_ingress_refuses_an_unknown_queue_and_a_level_out_of_range_naming_them() {
    let server = TestServer::start_with(config(BILLING)).await;
    let (status, body) = server
        .post_raw(
            "/v1/channels/webchat/messages",
            r#"{"from": "w-2", "text": "hi", "queue": "nowhere"}"#,
        )
        .await;
    assert_eq!(status, 400, "{body:#}");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("nowhere")),
        "{body:#}"
    );
    let (status, body) = server
        .post_raw(
            "/v1/channels/webchat/messages",
            r#"{"from": "w-2", "text": "hi", "skills": {"billing": 0}}"#,
        )
        .await;
    assert_eq!(status, 400, "{body:#}");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("billing")),
        "{body:#}"
    );
    assert_eq!(
        server
            .engine
            .queue_views()
            .iter()
            .map(|q| q.waiting.len())
            .sum::<usize>(),
        0,
        "nothing was queued"
    );
}

/// Two queues on one channel set by ingress: `vip` first, `general` rising with the wait.
const PRIORITIES: &str = r#"
[[queues]]
id = "general"
channels = ["webchat"]
sla_secs = 30
[queues.boost]
every_secs = 60
by = 1

[[queues]]
id = "vip"
priority = 5
sla_secs = 30
"#;

#[tokio::test]
async fn r20_positions_follow_priority_and_sla_attainment_is_counted_per_queue_and_channel() {
    let server = TestServer::start_with(config(PRIORITIES)).await;
    let general = server.customer("webchat", "w-g").says("hello").await;
    server.advance(Duration::seconds(10));
    let vip = server
        .customer("webchat", "w-v")
        .asking(json!({ "queue": "vip" }))
        .says("hello, it's urgent")
        .await;
    assert_eq!(general["queue_position"], 1);
    assert_eq!(vip["queue"], "vip");
    assert_eq!(vip["queue_position"], 1, "positions are per queue");
    assert_eq!(
        vip["estimated_wait_secs"],
        Value::Null,
        "no answers yet to estimate from"
    );

    // Ana takes the vip chat first though it came later, then the general one.
    let mut ana = server.skilled_agent("ana", 1, &[], &[]).connect().await;
    let first = ana.expect_push("chat_offered").await;
    assert_eq!(first["chat"]["id"], vip.chat_id().as_str());
    server.advance(Duration::seconds(5));
    ana.accept(&vip.chat_id()).await.expect_ok();
    ana.close(&vip.chat_id()).await.expect_ok();
    let second = ana.expect_push("chat_offered").await;
    assert_eq!(second["chat"]["id"], general.chat_id().as_str());
    // Within the accept timeout (30 s), but past general's SLA: it has waited 40 s.
    server.advance(Duration::seconds(25));
    ana.accept(&general.chat_id()).await.expect_ok();

    // vip was answered within its 30 s (5 s), general not (40 s).
    let mut sam = server.supervisor("sam").connect().await;
    let board = sam.subscribe_all().await;
    let figures = &board["kpis"]["figures"];
    assert_eq!(figures["sla"], json!({ "answered": 2, "within": 1 }));
    assert_eq!(
        figures["sla_by_queue"],
        json!([
            { "queue": "general", "channel": "webchat", "answered": 1, "within": 0 },
            { "queue": "vip", "channel": "webchat", "answered": 1, "within": 1 },
        ])
    );
    server.check_invariants();
}

/// Open 10:00–18:00 UTC on weekdays; the tests start on Monday 2025-03-03 at 09:00.
const OFFICE: &str = r#"
[[queues]]
id = "office"
channels = ["whatsapp"]
after_hours_reply = "We open at 10:00 and will answer then."
[queues.hours]
time_zone = "UTC"
week = { mon = ["10:00-18:00"], tue = ["10:00-18:00"], wed = ["10:00-18:00"], thu = ["10:00-18:00"], fri = ["10:00-18:00"] }
holidays = ["2025-12-25"]
"#;

#[tokio::test]
async fn r21_a_customer_who_writes_before_opening_is_told_once_and_is_offered_at_opening() {
    let server = TestServer::start_with(config(OFFICE)).await;
    let mut ana = server.skilled_agent("ana", 2, &[], &[]).connect().await;
    let customer = server.customer("whatsapp", "+4915100000901");
    let chat = customer.says("Hello?").await.chat_id();
    customer.says("Anyone there?").await;
    let replies: Vec<_> = server
        .sent_to_customers()
        .into_iter()
        .filter(|m| m.kind == MessageKind::AfterHours)
        .collect();
    assert_eq!(
        replies.len(),
        1,
        "told once per chat, not per message: {replies:?}"
    );
    assert_eq!(
        (
            replies[0].text.as_str(),
            replies[0].to.as_str(),
            replies[0].chat_id.as_str()
        ),
        (
            "We open at 10:00 and will answer then.",
            "+4915100000901",
            chat.as_str()
        )
    );
    ana.expect_no_push("chat_offered").await;
    let queues = server.engine.queue_views();
    assert!(
        queues.iter().any(|q| q.id.as_str() == "office" && !q.open),
        "the board shows it closed"
    );
    let mut sam = server.supervisor("sam").connect().await;
    sam.subscribe(&["office"]).await;

    server.advance(Duration::hours(1));
    let opened = sam.expect_event("queue_hours", |e| e["queue"] == "office").await;
    assert_eq!(opened["open"], true, "supervisors see the queue open at 10:00");
    let offer = ana.expect_push("chat_offered").await;
    assert_eq!(offer["chat"]["id"], chat.as_str());
    ana.accept(&chat).await.expect_ok();
    let history = ana.get_chat(&chat).await.expect_ok();
    let kinds: Vec<&str> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["text", "after_hours", "text"],
        "the reply is in the chat's history"
    );
    server.check_invariants();
}

#[tokio::test]
async fn r21_reopening_is_not_affected_by_opening_hours() {
    let server = TestServer::start_with(config(OFFICE)).await;
    server.advance(Duration::hours(2)); // 11:00, open
    let mut ana = server.skilled_agent("ana", 2, &[], &[]).connect().await;
    let chat = ana.serves(&server.customer("whatsapp", "+4915100000902")).await;
    ana.closes(&chat).await;
    server.advance(Duration::hours(8)); // 19:00, closed
    ana.reopen(&chat).await.expect_ok();
    let sent = server.sent_to_customers();
    assert!(
        sent.iter().any(|m| m.kind == MessageKind::Notice),
        "the reopen notice went out"
    );
    assert!(
        !sent.iter().any(|m| m.kind == MessageKind::AfterHours),
        "no after-hours reply: {sent:?}"
    );
    server.check_invariants();
}

#[tokio::test]
async fn r22_a_whatsapp_limit_holds_an_agent_back_on_whatsapp_but_not_on_email() {
    let server = TestServer::start().await;
    let mut ana = server
        .skilled_agent("ana", 5, &[], &[("whatsapp", 1)])
        .connect()
        .await;
    let first = server
        .customer("whatsapp", "+4915100000911")
        .says("one")
        .await
        .chat_id();
    ana.takes(&first).await;
    let second = server.customer("whatsapp", "+4915100000912").says("two").await;
    assert_eq!(second["queue_position"], 1, "it waits though ana is far below 5");
    let email = server
        .customer("email", "mia@example.com")
        .says("three")
        .await
        .chat_id();
    ana.takes(&email).await;
    let row = server.agent_status("ana").await;
    assert_eq!(row["load"], 2);
    ana.closes(&first).await;
    let offer = ana.expect_push("chat_offered").await;
    assert_eq!(offer["chat"]["id"], second.chat_id().as_str());
    server.check_invariants();
}

#[tokio::test]
async fn r19_skills_set_live_and_what_a_waiting_chat_asked_for_survive_a_restart() {
    skills_set_live_and_what_a_waiting_chat_asked_for_survive_a_restart(Backend::Sqlite).await;
}

#[tokio::test]
async fn r19_skills_set_live_and_what_a_waiting_chat_asked_for_survive_a_restart_on_postgres() {
    skills_set_live_and_what_a_waiting_chat_asked_for_survive_a_restart(Backend::Postgres).await;
}

async fn skills_set_live_and_what_a_waiting_chat_asked_for_survive_a_restart(backend: Backend) {
    let server = TestServer::start_durable_on(backend, config(BILLING)).await;
    server.skilled_agent("ben", 2, &[("billing", 1)], &[]);
    let mut sam = server.supervisor("sam").connect().await;
    sam.request(json!({ "type": "set_skills", "agent": "ben", "skills": { "billing": 4 } }))
        .await
        .expect_ok();
    let chat = server
        .customer("webchat", "w-restart")
        .asking(json!({ "language": "es" }))
        .says("Hola")
        .await
        .chat_id();
    drop(sam);

    let server = server
        .restart_with(&[
            ("ben", switchboard::core::Role::Agent, 2),
            ("sam", switchboard::core::Role::Supervisor, 0),
        ])
        .await;
    assert_eq!(
        server.agent_status("ben").await["skills"],
        json!({ "billing": 4 }),
        "the live change outlived the configured skills"
    );
    let waiting = server
        .engine
        .queue_views()
        .into_iter()
        .find(|q| q.id.as_str() == "billing")
        .expect("the billing queue");
    assert_eq!(waiting.waiting.len(), 1);
    assert_eq!(
        waiting.waiting[0]
            .requires
            .clone()
            .into_iter()
            .collect::<Vec<_>>(),
        [("billing".to_string(), 3), ("language:es".to_string(), 1)],
        "it still asks for Spanish"
    );
    // Ben learns Spanish: the chat that waited through the restart is his.
    let mut ben = server.with_token("ben", "ben-token").connect().await;
    ben.expect_no_push("chat_offered").await;
    server
        .engine
        .set_skills(
            &"ben".into(),
            [("billing".to_string(), 4), ("language:es".to_string(), 2)].into(),
        )
        .expect("ben");
    let offer = ben.expect_push("chat_offered").await;
    assert_eq!(offer["chat"]["id"], chat.as_str());
    server.check_invariants();
}
