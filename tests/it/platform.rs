//! R27 over the wire: the platform API creates, suspends, resumes and deletes workspaces, and
//! what it does is durable; an agent of one workspace neither sees nor changes another's.
//! Servers here load their workspaces from their store (`TestServer::start_platform`).

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};

use switchboard::core::{Channel, Role};
use switchboard::ids::WorkspaceId;
use switchboard::security::{Security, Tokens};

use super::native::support as native;
use super::support::{refusal, Backend, TestServer};

const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!!";

/// Signed tokens with [`SECRET`]; static tokens as in development; no admin key; Telegram's
/// webhook checked against [`native::TG_SECRET`].
pub(super) fn security() -> Security {
    let telegram = native::platform(
        "http://127.0.0.1:9",
        &[
            ("bot_token", native::BOT_TOKEN),
            ("secret_token", native::TG_SECRET),
        ],
    );
    Security {
        tokens: Tokens::hs256(SECRET, 0),
        platforms: [(Channel::Telegram, telegram)].into(),
        ..Security::default()
    }
}

/// Posts the documented Telegram update to workspace `ws`'s webhook with `secret`.
async fn telegram_update(server: &TestServer, ws: &str, secret: &str) -> (StatusCode, String) {
    let headers = [("X-Telegram-Bot-Api-Secret-Token", secret.to_owned())];
    let update = native::fixture("telegram/fixtures/text.json");
    native::post(server, &format!("/v1/w/{ws}/native/telegram"), &headers, update).await
}

/// A token of `agent` for workspace `ws`.
pub(super) fn token(server: &TestServer, ws: &str, agent: &str) -> String {
    token_with_role(server, ws, agent, Role::Agent)
}

/// A token of `agent` with `role` for workspace `ws`.
pub(super) fn token_with_role(server: &TestServer, ws: &str, agent: &str, role: Role) -> String {
    let ws = WorkspaceId::parse(ws).unwrap_or_else(|e| panic!("{e}"));
    Tokens::hs256(SECRET, 0)
        .mint(&ws, agent, role, server.now(), Duration::minutes(30))
        .expect("HS256 mints")
}

/// `POST /v1/platform/workspaces`, expecting 201; the workspace as answered.
pub(super) async fn create(server: &TestServer, id: &str) -> Value {
    let (status, body) = server
        .post_raw(
            "/v1/platform/workspaces",
            &json!({ "id": id, "name": id.to_uppercase() }).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body:#}");
    body
}

/// `POST /v1/w/{ws}/admin/agents`, expecting 201.
pub(super) async fn create_agent(server: &TestServer, ws: &str, agent: &str, limit: u32) {
    let (status, body) = server
        .post_raw(
            &format!("/v1/w/{ws}/admin/agents"),
            &json!({ "id": agent, "limit": limit }).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body:#}");
}

/// The ids of the agents `GET /v1/w/{ws}/admin/agents` lists.
pub(super) async fn agent_ids(server: &TestServer, ws: &str) -> Vec<String> {
    let (status, body) = server.get_raw(&format!("/v1/w/{ws}/admin/agents")).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let mut ids: Vec<String> = body
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {body:#}"))
        .iter()
        .map(|a| a["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

/// The ids and states `GET /v1/platform/workspaces` lists.
async fn listed(server: &TestServer) -> Vec<(String, String)> {
    let (status, body) = server.get_raw("/v1/platform/workspaces").await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    body.as_array()
        .unwrap_or_else(|| panic!("not a list: {body:#}"))
        .iter()
        .map(|w| {
            (
                w["id"].as_str().unwrap_or_default().to_owned(),
                w["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[tokio::test]
async fn r27_workspaces_created_over_the_platform_api_survive_a_restart() {
    workspaces_created_over_the_platform_api_survive_a_restart(Backend::Sqlite).await;
}

#[tokio::test]
async fn r27_workspaces_created_over_the_platform_api_survive_a_restart_on_postgres() {
    workspaces_created_over_the_platform_api_survive_a_restart(Backend::Postgres).await;
}

async fn workspaces_created_over_the_platform_api_survive_a_restart(backend: Backend) {
    let server = TestServer::start_platform_on(backend, security()).await;
    let acme = create(&server, "acme").await;
    assert_eq!(
        (&acme["id"], &acme["name"], &acme["state"]),
        (&json!("acme"), &json!("ACME"), &json!("active")),
        "{acme:#}"
    );
    create_agent(&server, "acme", "ana", 2).await;

    let server = server.restart_platform(security()).await;
    assert_eq!(
        listed(&server).await,
        pairs(&[("acme", "active"), ("default", "active")])
    );
    let (status, shown) = server.get_raw("/v1/platform/workspaces/acme").await;
    assert_eq!(
        (status, &shown["name"]),
        (StatusCode::OK, &json!("ACME")),
        "{shown:#}"
    );
    assert_eq!(agent_ids(&server, "acme").await, ["ana"]);
    assert!(
        agent_ids(&server, "default").await.is_empty(),
        "ana is acme's only"
    );

    // Its agent connects on acme's socket with a token claiming acme, and takes a chat there.
    let ana = server
        .with_token("ana", &token(&server, "acme", "ana"))
        .in_workspace("acme");
    let mut ana = ana.connect().await;
    let welcome = ana.welcome();
    assert_eq!(
        (&welcome["agent"]["id"], &welcome["agent"]["limit"]),
        (&json!("ana"), &json!(2)),
        "the profile stored over the admin API: {welcome:#}"
    );
    let customer = server.customer("whatsapp", "+4915100002901").in_workspace("acme");
    ana.serves(&customer).await;
}

#[tokio::test]
async fn r27_the_platform_api_refuses_bad_ids_taken_ids_and_changes_to_default() {
    let server = TestServer::start_platform(security()).await;
    for bad in [
        r#"{"id": "Acme"}"#,
        r#"{"id": "-acme"}"#,
        r#"{"id": ""}"#,
        r#"{"name": "x"}"#,
    ] {
        let (status, body) = server.post_raw("/v1/platform/workspaces", bad).await;
        assert_eq!(
            (status, &body["code"]),
            (StatusCode::BAD_REQUEST, &json!("bad_request")),
            "{bad}: {body:#}"
        );
    }
    let (_, body) = server
        .post_raw("/v1/platform/workspaces", r#"{"id": "Acme"}"#)
        .await;
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("`id`")),
        "{body:#}"
    );

    create(&server, "acme").await;
    for id in ["acme", "default"] {
        let (status, body) = server
            .post_raw("/v1/platform/workspaces", &json!({ "id": id }).to_string())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:#}");
        assert_eq!(body["message"], format!("workspace {id} exists already"));
    }
    let (status, body) = server
        .post_raw("/v1/platform/workspaces/default/suspend", "")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:#}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot be suspended")),
        "{body:#}"
    );
    let (status, body) = server.delete("/v1/platform/workspaces/default").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:#}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot be deleted")),
        "{body:#}"
    );
    for path in [
        "/v1/platform/workspaces/globex",
        "/v1/platform/workspaces/Not-An-Id",
    ] {
        let (status, body) = server.get_raw(path).await;
        assert_eq!(
            (status, &body["code"]),
            (StatusCode::NOT_FOUND, &json!("not_found")),
            "{path}: {body:#}"
        );
    }
}

#[tokio::test]
async fn r27_the_platform_api_needs_the_admin_key_when_one_is_set() {
    let security = Security {
        admin_key: Some("the-admin-key".into()),
        ..security()
    };
    let server = TestServer::start_platform(security).await;
    let (status, body) = server
        .post_raw("/v1/platform/workspaces", r#"{"id": "acme"}"#)
        .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthorized")),
        "{body:#}"
    );
    let (status, body) = server.get_as("/v1/platform/workspaces", "the-admin-key").await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let (status, _) = server.get_as("/v1/platform/workspaces", "a-wrong-key").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn r27_a_suspended_workspace_refuses_its_sockets_and_webhooks_and_resumes() {
    a_suspended_workspace_refuses_its_sockets_and_webhooks_and_resumes(Backend::Sqlite).await;
}

#[tokio::test]
async fn r27_a_suspended_workspace_refuses_its_sockets_and_webhooks_and_resumes_on_postgres() {
    a_suspended_workspace_refuses_its_sockets_and_webhooks_and_resumes(Backend::Postgres).await;
}

async fn a_suspended_workspace_refuses_its_sockets_and_webhooks_and_resumes(backend: Backend) {
    let server = TestServer::start_platform_on(backend, security()).await;
    // acme connects Telegram with its own settings (default's is the configuration's).
    let telegram = json!({
        "base_url": "http://127.0.0.1:9",
        "bot_token": native::BOT_TOKEN,
        "secret_token": native::TG_SECRET,
    });
    let body = json!({ "id": "acme", "settings": { "platforms": { "telegram": telegram } } });
    let (status, created) = server
        .post_raw("/v1/platform/workspaces", &body.to_string())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created:#}");
    create_agent(&server, "acme", "ana", 2).await;
    let ana_token = token(&server, "acme", "ana");
    let mut ana = server
        .with_token("ana", &ana_token)
        .in_workspace("acme")
        .connect()
        .await;
    let (status, text) = telegram_update(&server, "acme", native::TG_SECRET).await;
    assert_eq!(status, StatusCode::OK, "served while active: {text}");
    let offered = ana.expect_push("chat_offered").await;
    let chat = offered["chat"]["id"].as_str().expect("a chat id").to_owned();
    ana.accept(&chat).await.expect_ok();

    let (status, body) = server.post_raw("/v1/platform/workspaces/acme/suspend", "").await;
    assert_eq!(
        (status, &body["state"]),
        (StatusCode::OK, &json!("suspended")),
        "{body:#}"
    );
    // Its sockets are closed as on any unload; then every door answers as a served
    // workspace's answers wrong credentials (R27: whether it exists is not told).
    assert_eq!(ana.expect_close().await.0, 4503);
    let refused = refusal(&server, "/v1/w/acme/agent/ws", &ana_token, None).await;
    let stranger = token(&server, "default", "ana");
    assert_eq!(
        refused,
        refusal(&server, "/v1/agent/ws", &stranger, None).await,
        "a token of an agent default does not have"
    );
    assert_eq!(refused.map(|(status, _)| status), Some(StatusCode::UNAUTHORIZED));
    // The platform's own secret is refused as a wrong one is where the platform is connected.
    let suspended = telegram_update(&server, "acme", native::TG_SECRET).await;
    assert_eq!(
        suspended,
        telegram_update(&server, "default", "a-wrong-secret").await
    );
    assert_eq!(suspended.0, StatusCode::UNAUTHORIZED, "{}", suspended.1);
    // Where no key is configured, every door of a served workspace is open; a suspended one
    // still lets no one in. Its admin API, open to everyone here as the platform API is (no
    // platform key), says it is not served.
    let (status, body) = server
        .post_raw(
            "/v1/w/acme/channels/whatsapp/messages",
            r#"{"from": "+4915100002902", "text": "Hi"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body:#}");
    let (status, body) = server.get_raw("/v1/w/acme/admin/agents").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body:#}");

    // It stays suspended across a restart.
    let server = server.restart_platform(security()).await;
    assert_eq!(
        listed(&server).await,
        pairs(&[("acme", "suspended"), ("default", "active")])
    );
    let (status, _) = server.get_raw("/v1/w/acme/admin/agents").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        telegram_update(&server, "acme", native::TG_SECRET).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (status, body) = server.post_raw("/v1/platform/workspaces/acme/resume", "").await;
    assert_eq!(
        (status, &body["state"]),
        (StatusCode::OK, &json!("active")),
        "{body:#}"
    );
    assert_eq!(
        agent_ids(&server, "acme").await,
        ["ana"],
        "restored from the store"
    );
    let ana_token = token(&server, "acme", "ana");
    let mut ana = server
        .with_token("ana", &ana_token)
        .in_workspace("acme")
        .connect()
        .await;
    // Both kinds of webhook are served again: the platform's and the ingress.
    let (status, text) = telegram_update(&server, "acme", native::TG_SECRET).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let customer = server.customer("whatsapp", "+4915100002903").in_workspace("acme");
    ana.serves(&customer).await;
}

/// Every table of the database with a `ws` column holding a workspace's key (not the search
/// index, whose `ws` is a text token; it is checked against `customers`).
fn tables_with_ws(db: &rusqlite::Connection) -> Vec<String> {
    let mut st = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'workspaces'")
        .expect("prepares");
    let tables: Vec<String> = st
        .query_map([], |r| r.get(0))
        .expect("reads")
        .collect::<Result<_, _>>()
        .expect("reads");
    tables
        .into_iter()
        .filter(|t| {
            db.prepare(&format!("SELECT ws FROM \"{t}\" LIMIT 0")).is_ok()
                && !t.starts_with("customer_search")
        })
        .collect()
}

fn count(db: &rusqlite::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// On SQLite only: it reads the rows left behind from SQLite's file beside the server.
#[tokio::test]
async fn r27_a_deleted_workspace_leaves_no_row_in_the_store() {
    let server = TestServer::start_platform(security()).await;
    create(&server, "acme").await;
    create_agent(&server, "acme", "ana", 2).await;
    let (status, _) = server
        .put_raw("/v1/w/acme/admin/agents/ana/skills", r#"{"skills": {"de": 3}}"#)
        .await;
    assert!(status.is_success(), "{status}");
    let mut ana = server
        .with_token("ana", &token(&server, "acme", "ana"))
        .in_workspace("acme")
        .connect()
        .await;
    let customer = server
        .customer("whatsapp", "+4915100003001")
        .named("Erika Mustermann")
        .in_workspace("acme");
    let chat = ana.serves(&customer).await;
    ana.send_message(&chat, "Hello Erika").await.expect_ok();
    // default has rows of its own, which must stay.
    let _in_default = server
        .customer("whatsapp", "+4915100003002")
        .named("Max Mustermann")
        .says("Hello")
        .await;

    let path = server.database_path().expect("a durable server");
    let db = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("the database opens");
    let tables = tables_with_ws(&db);
    for table in [
        "customers",
        "chats",
        "messages",
        "analytics_events",
        "agents",
        "agent_skills",
    ] {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} is not among {tables:?}"
        );
    }
    let acme_key = count(&db, "SELECT key FROM workspaces WHERE id = 'acme'");
    for table in ["customers", "chats", "messages", "agents"] {
        let rows = count(
            &db,
            &format!("SELECT count(*) FROM {table} WHERE ws = {acme_key}"),
        );
        assert!(rows > 0, "acme has no rows in {table} to delete");
    }
    let default_rows_before = count(&db, "SELECT count(*) FROM messages WHERE ws = 1");

    let (status, body) = server.delete("/v1/platform/workspaces/acme").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body:#}");
    assert_eq!(ana.expect_close().await.0, 4503);

    // Answered once durable: the file holds nothing of acme.
    assert_eq!(count(&db, "SELECT count(*) FROM workspaces WHERE id = 'acme'"), 0);
    for table in &tables {
        let orphans = count(
            &db,
            &format!("SELECT count(*) FROM \"{table}\" WHERE ws NOT IN (SELECT key FROM workspaces)"),
        );
        assert_eq!(orphans, 0, "{table} keeps rows of the deleted workspace");
    }
    assert_eq!(
        count(&db, "SELECT count(*) FROM customer_search"),
        count(&db, "SELECT count(*) FROM customers"),
        "the search index keeps rows of deleted customers"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM messages WHERE ws = 1"),
        default_rows_before
    );
    assert_eq!(listed(&server).await, pairs(&[("default", "active")]));
    let (status, _) = server.get_raw("/v1/w/acme/admin/agents").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the admin API, open without keys, finds no deleted workspace"
    );

    // The id is free again: a new, empty acme.
    create(&server, "acme").await;
    assert!(agent_ids(&server, "acme").await.is_empty());
    let server = server.restart_platform(security()).await;
    assert!(agent_ids(&server, "acme").await.is_empty());
}

#[tokio::test]
async fn r27_an_agent_of_one_workspace_cannot_see_or_change_another() {
    let server = TestServer::start_platform(security()).await;
    // Created in the same instant as default: the one id counter they share keeps acme's chat
    // ids apart from default's, so an id of one is absent, not merely another chat, in the other.
    create(&server, "acme").await;
    create_agent(&server, "acme", "ana", 2).await;
    let mut ana = server
        .with_token("ana", &token(&server, "acme", "ana"))
        .in_workspace("acme")
        .connect()
        .await;
    let mut ben = server.agent("ben").connect().await;

    // A customer writes to default: ben is offered the chat, ana hears nothing of it.
    let customer = server.customer("whatsapp", "+4915100003101");
    let in_default = customer.says("Hello").await.chat_id();
    ben.expect_push("chat_offered").await;
    ben.accept(&in_default).await.expect_ok();
    ana.expect_no_push("chat_offered").await;
    // Its id answers `not_found` on acme's socket, whatever ana tries.
    ana.get_chat(&in_default).await.expect_error("not_found");
    ana.accept(&in_default).await.expect_error("not_found");
    ana.send_message(&in_default, "Hi from acme")
        .await
        .expect_error("not_found");

    // The same customer address in acme is another customer, whose chat is acme's only.
    let in_acme = server
        .customer("whatsapp", "+4915100003101")
        .in_workspace("acme")
        .says("Hello")
        .await
        .chat_id();
    assert_ne!(in_acme, in_default);
    ana.expect_push("chat_offered").await;
    ana.accept(&in_acme).await.expect_ok();
    ben.expect_no_push("chat_offered").await;
    ben.get_chat(&in_acme).await.expect_error("not_found");
    ben.accept(&in_acme).await.expect_error("not_found");
    ben.send_message(&in_acme, "Hi from default")
        .await
        .expect_error("not_found");
    // Whatever else reached each, none of it was about the other's chat.
    for (client, foreign) in [(&mut ben, &in_acme), (&mut ana, &in_default)] {
        for push in client.drain_pushes().await {
            assert!(!format!("{push:?}").contains(foreign.as_str()), "{push:?}");
        }
    }

    // Nothing of one is listed in the other.
    assert_eq!(agent_ids(&server, "acme").await, ["ana"]);
    assert_eq!(agent_ids(&server, "default").await, ["ben"]);
    server.check_invariants();
}
