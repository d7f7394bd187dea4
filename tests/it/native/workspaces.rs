//! R27 for the channels: each workspace verifies its channels' webhooks with its own secrets
//! (its settings), so a webhook signed for one workspace lands at its URLs and at no other's.

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::security::Security;

use super::support::{fixture, meta_signature, post, PHONE_NUMBER_ID};
use crate::it::platform::create;
use crate::it::support::TestServer;

const ACME_APP_SECRET: &str = "acme-meta-app-secret-0123";
const GLOBEX_APP_SECRET: &str = "globex-meta-app-secret-456";
const ACME_WEBHOOK_SECRET: &str = "acme-generic-webhook-secret";
const GLOBEX_WEBHOOK_SECRET: &str = "globex-generic-webhook-secret";

/// A workspace's settings with a WhatsApp app of its own (never called: only received here)
/// and a signing secret on its generic webchat ingress.
fn settings(app_secret: &str, webhook_secret: &str) -> Value {
    json!({
        "platforms": { "whatsapp": {
            "base_url": "http://127.0.0.1:9",
            "access_token": "EAAG-never-used",
            "phone_number_id": PHONE_NUMBER_ID,
            "app_secret": app_secret,
        } },
        "channels": { "webchat": { "webhook_secret": webhook_secret } },
    })
}

/// Customers of workspace `ws` in the store.
fn customers_of(server: &TestServer, ws: &str) -> i64 {
    let path = server.database_path().expect("a durable server");
    let db = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("the database opens");
    db.query_row(
        "SELECT count(*) FROM customers WHERE ws = (SELECT key FROM workspaces WHERE id = ?1)",
        [ws],
        |r| r.get(0),
    )
    .expect("counts")
}

async fn post_meta_to(server: &TestServer, ws: &str, body: &str, secret: &str) -> (StatusCode, String) {
    let headers = [
        ("X-Hub-Signature-256", meta_signature(body.as_bytes(), secret)),
        ("Content-Type", "application/json".to_owned()),
    ];
    post(server, &format!("/v1/w/{ws}/native/meta"), &headers, body).await
}

#[tokio::test]
async fn r27_a_channel_webhook_of_one_workspace_cannot_reach_another() {
    let server = TestServer::start_platform(Security::default()).await;
    // One workspace given its settings when created, the other over its admin API.
    let (status, body) = server
        .post_raw(
            "/v1/platform/workspaces",
            &json!({ "id": "acme", "settings": settings(ACME_APP_SECRET, ACME_WEBHOOK_SECRET) }).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body:#}");
    create(&server, "globex").await;
    let (status, body) = server
        .put_raw(
            "/v1/w/globex/admin/settings",
            &settings(GLOBEX_APP_SECRET, GLOBEX_WEBHOOK_SECRET).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");

    // A native webhook signed with acme's app secret, at globex's URL: refused.
    let update = fixture("meta/fixtures/whatsapp_text.json");
    let (status, text) = post_meta_to(&server, "globex", &update, ACME_APP_SECRET).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    // At default's (the configuration's, with no platforms): not a channel there.
    let (status, text) = post_meta_to(&server, "default", &update, ACME_APP_SECRET).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    // A generic webhook signed with acme's secret, at globex's URL: refused too.
    let message = json!({ "from": "visitor-1", "text": "Hi", "sent_at": server.now() }).to_string();
    let generic = |secret: &str| {
        [
            ("X-Hub-Signature-256", meta_signature(message.as_bytes(), secret)),
            ("Content-Type", "application/json".to_owned()),
        ]
    };
    let (status, text) = post(
        &server,
        "/v1/w/globex/channels/webchat/messages",
        &generic(ACME_WEBHOOK_SECRET),
        message.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert_eq!(customers_of(&server, "globex"), 0, "nothing reached globex");

    // The same payloads at acme's URLs land.
    let (status, text) = post_meta_to(&server, "acme", &update, ACME_APP_SECRET).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, r#"{"received":1}"#));
    let (status, text) = post(
        &server,
        "/v1/w/acme/channels/webchat/messages",
        &generic(ACME_WEBHOOK_SECRET),
        message.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        customers_of(&server, "acme"),
        2,
        "the WhatsApp and the webchat customer"
    );
    assert_eq!(customers_of(&server, "globex"), 0);
    // And globex's own secret works at its own URL.
    let (status, text) = post_meta_to(&server, "globex", &update, GLOBEX_APP_SECRET).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(customers_of(&server, "globex"), 1);
}
