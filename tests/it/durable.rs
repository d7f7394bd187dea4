//! Issue 5 over the wire: what an engine restarted on its database still knows; R27: what
//! was created over the APIs is part of it.

use reqwest::StatusCode;
use serde_json::json;

use switchboard::core::Role;

use crate::it::support::{refusal, Backend, TestServer};

#[tokio::test]
async fn issue5_r06_limits_changed_live_over_the_admin_api_survive_a_restart() {
    limits_changed_live_survive_a_restart(Backend::Sqlite).await;
}

#[tokio::test]
async fn issue5_r06_limits_changed_live_over_the_admin_api_survive_a_restart_on_postgres() {
    limits_changed_live_survive_a_restart(Backend::Postgres).await;
}

async fn limits_changed_live_survive_a_restart(backend: Backend) {
    let server = TestServer::start_durable_on(backend, Default::default()).await;
    let mut ana = server.agent_with("ana", Role::Agent, 3).connect().await;
    let customer = server.customer("whatsapp", "+4915100000001");
    let chat = ana.serves(&customer).await;

    server.set_limit("ana", 5).await;
    let (status, body) = server
        .post_raw(
            "/v1/admin/agents",
            &json!({ "id": "ben", "limit": 4, "token": "ben-token" }).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    ana.disconnect().await;

    // Configured as before the changes: ana 3, ben 2.
    let server = server
        .restart_with(&[("ana", Role::Agent, 3), ("ben", Role::Agent, 2)])
        .await;
    let ana_status = server.agent_status("ana").await;
    assert_eq!(ana_status["limit"], 5, "{ana_status:#}");
    assert_eq!(
        ana_status["load"], 1,
        "ana's active chat counts again: {ana_status:#}"
    );
    assert_eq!(server.agent_status("ben").await["limit"], 4);
    assert_eq!(
        server.engine.chat_state(&chat.as_str().into()),
        Some(switchboard::core::ChatState::Active)
    );
    server.check_invariants();
}

/// A full disk: every write is refused with `storage_unavailable`, naming what happened but
/// never where the database lives; reads of what is in memory, and the connection, carry on.
/// On SQLite only: its full disk is SQLite's size cap (`max_size_bytes`, a pragma), and the
/// path it must not name is the file's.
#[tokio::test]
async fn issue13_a_store_failure_tells_the_client_its_kind_and_never_the_database_s_path() {
    let options = switchboard::store::StoreOptions {
        max_size_bytes: Some(192 * 1024),
        ..Default::default()
    };
    let server = TestServer::start_durable_with(Default::default(), options).await;
    let dir = server.database_dir().expect("a durable server");
    let long = "x".repeat(1000);
    let mut refused = None;
    for i in 0..2_000 {
        let body = json!({ "from": format!("+49151{i:07}"), "text": long }).to_string();
        let (status, answer) = server.post_raw("/v1/channels/whatsapp/messages", &body).await;
        if status != StatusCode::OK && status != StatusCode::CREATED && status != StatusCode::ACCEPTED {
            refused = Some((status, answer));
            break;
        }
    }
    let (status, answer) = refused.expect("192 KiB fill up well before 2,000 messages of 1 KB");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["code"], "storage_unavailable", "{answer}");
    let text = answer.to_string();
    assert!(text.contains("full"), "says what happened: {text}");
    assert!(
        !text.contains(&*dir.to_string_lossy()) && !text.contains(".sqlite"),
        "names no path: {text}"
    );
    // The server still answers: health, and a clear refusal of the next write.
    let (status, _) = server.get_as("/healthz", "").await;
    assert!(status.is_success(), "{status}");
    let body = json!({ "from": "+4915199999999", "text": "hello" }).to_string();
    let (status, answer) = server.post_raw("/v1/channels/whatsapp/messages", &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(!answer.to_string().contains(".sqlite"), "{answer}");
}

#[tokio::test]
async fn r27_an_agent_created_over_the_admin_api_survives_a_restart() {
    an_agent_created_over_the_admin_api_survives_a_restart(Backend::Sqlite).await;
}

#[tokio::test]
async fn r27_an_agent_created_over_the_admin_api_survives_a_restart_on_postgres() {
    an_agent_created_over_the_admin_api_survives_a_restart(Backend::Postgres).await;
}

async fn an_agent_created_over_the_admin_api_survives_a_restart(backend: Backend) {
    let server = TestServer::start_durable_on(backend, Default::default()).await;
    let created = json!({
        "id": "cara",
        "name": "Cara Díaz",
        "limit": 2,
        "token": "cara-secret",
        "queues": ["support"],
        "skills": { "language:es": 4 },
        "channel_limits": { "whatsapp": 1 }
    });
    let (status, body) = server.post_raw("/v1/admin/agents", &created.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Changed without a token: she keeps the one she has, across the restart too.
    let changed = json!({
        "id": "cara",
        "name": "Cara Díaz",
        "limit": 2,
        "skills": { "language:es": 5 },
        "channel_limits": { "whatsapp": 1 }
    });
    let (status, body) = server
        .put_raw("/v1/admin/agents/cara", &changed.to_string())
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Nobody configured: the store is her only record.
    let server = server.restart().await;
    let status = server.agent_status("cara").await;
    assert_eq!(
        (
            &status["name"],
            &status["limit"],
            &status["queues"],
            &status["skills"],
            &status["channel_limits"]
        ),
        (
            &json!("Cara Díaz"),
            &json!(2),
            &json!([]),
            &json!({ "language:es": 5 }),
            &json!({ "whatsapp": 1 })
        ),
        "{status:#}"
    );
    let mut cara = server.with_token("cara", "cara-secret").connect().await;
    let customer = server.customer("whatsapp", "+4915100000027");
    cara.serves(&customer).await;
    assert_eq!(server.agent_status("cara").await["load"], 1);
    server.check_invariants();
}

#[tokio::test]
async fn r27_an_agent_deleted_over_the_admin_api_stays_deleted() {
    an_agent_deleted_over_the_admin_api_stays_deleted(Backend::Sqlite).await;
}

#[tokio::test]
async fn r27_an_agent_deleted_over_the_admin_api_stays_deleted_on_postgres() {
    an_agent_deleted_over_the_admin_api_stays_deleted(Backend::Postgres).await;
}

async fn an_agent_deleted_over_the_admin_api_stays_deleted(backend: Backend) {
    let server = TestServer::start_durable_on(backend, Default::default()).await;
    let (status, body) = server
        .post_raw(
            "/v1/admin/agents",
            &json!({ "id": "dan", "limit": 2, "token": "dan-secret" }).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server.set_limit("dan", 3).await;
    let dan = server.with_token("dan", "dan-secret").connect().await;
    let (status, body) = server.delete("/v1/admin/agents/dan").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    drop(dan);

    let server = server.restart().await;
    assert!(!server.lists_agent("dan").await, "dan is not listed");
    assert_eq!(
        refusal(&server, "/v1/agent/ws", "dan-secret", None)
            .await
            .map(|(status, _)| status),
        Some(StatusCode::UNAUTHORIZED),
        "his token opens nothing"
    );
    let stored = server
        .engine
        .store()
        .expect("a durable server")
        .load()
        .expect("the store reads");
    assert!(
        stored.agents.is_empty() && stored.agent_limits.is_empty(),
        "nothing of dan is left: {:?} {:?}",
        stored.agents,
        stored.agent_limits
    );
}
