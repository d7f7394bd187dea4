//! R27 over the wire: a workspace's settings, set over its admin API, are checked, stored,
//! shown without their secrets, applied to that workspace only (live, or by a reload its agents
//! resume from), and survive a restart. Servers here load their workspaces from their store.

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::security::Security;

use super::platform::{create, create_agent};
use super::support::{Backend, TestServer};

const INGRESS_KEY: &str = "acme-ingress-key";

/// `PUT /v1/w/{ws}/admin/settings`, expecting 200; the answer.
async fn put_settings(server: &TestServer, ws: &str, settings: Value) -> Value {
    let (status, body) = server
        .put_raw(&format!("/v1/w/{ws}/admin/settings"), &settings.to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    body
}

/// `GET /v1/w/{ws}/admin/settings`: the settings shown.
async fn settings_of(server: &TestServer, ws: &str) -> Value {
    let (status, body) = server.get_raw(&format!("/v1/w/{ws}/admin/settings")).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    body["settings"].clone()
}

/// The ids of the queues `GET /v1/w/{ws}/admin/queues` lists.
async fn queue_ids(server: &TestServer, ws: &str) -> Vec<String> {
    let (status, body) = server.get_raw(&format!("/v1/w/{ws}/admin/queues")).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let mut ids: Vec<String> = body
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {body:#}"))
        .iter()
        .map(|q| q["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

/// A customer message posted to workspace `ws`'s ingress with `key` as bearer, if any.
async fn ingress_status(server: &TestServer, ws: &str, key: Option<&str>) -> StatusCode {
    let bearer = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("authorization", b.as_str())).collect();
    let (status, _) = server
        .post_raw_with(
            &format!("/v1/w/{ws}/channels/sms/messages"),
            &headers,
            r#"{"from": "+4915100004001", "text": "Hello"}"#,
        )
        .await;
    status
}

/// An agent of `ws` created over the admin API, with static token `<id>-token`, connected.
async fn connected(server: &TestServer, ws: &str, id: &str) -> super::support::AgentClient {
    let (status, body) = server
        .post_raw(
            &format!("/v1/w/{ws}/admin/agents"),
            &json!({ "id": id, "limit": 2, "token": format!("{id}-token") }).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body:#}");
    server
        .with_token(id, &format!("{id}-token"))
        .in_workspace(ws)
        .connect()
        .await
}

#[tokio::test]
async fn r27_settings_set_over_the_api_survive_a_restart() {
    settings_set_over_the_api_survive_a_restart(Backend::Sqlite).await;
}

#[tokio::test]
async fn r27_settings_set_over_the_api_survive_a_restart_on_postgres() {
    settings_set_over_the_api_survive_a_restart(Backend::Postgres).await;
}

async fn settings_set_over_the_api_survive_a_restart(backend: Backend) {
    let server = TestServer::start_platform_on(backend, Security::default()).await;
    create(&server, "acme").await;
    create_agent(&server, "acme", "ana", 2).await;
    let answer = put_settings(
        &server,
        "acme",
        json!({
            "grace_secs": 90,
            "reopen_notice": "Acme is back on your case.",
            "queues": [{ "id": "vip", "channels": ["sms", "whatsapp"], "sla_secs": 30 }],
            "ingress_key": INGRESS_KEY,
        }),
    )
    .await;
    assert_eq!(answer["applied"], "reloaded", "{answer:#}");
    assert!(!answer.to_string().contains(INGRESS_KEY), "{answer:#}");

    let server = server.restart_platform(Security::default()).await;
    let shown = settings_of(&server, "acme").await;
    assert_eq!(
        (
            &shown["grace_secs"],
            &shown["reopen_notice"],
            &shown["queues"][0]["id"]
        ),
        (&json!(90), &json!("Acme is back on your case."), &json!("vip")),
        "{shown:#}"
    );
    assert_eq!(shown["ingress_key"], json!({ "set": true }), "set, not shown");
    assert!(!shown.to_string().contains(INGRESS_KEY), "{shown:#}");
    // The engine runs with them: its queue, its key.
    assert!(queue_ids(&server, "acme").await.contains(&"vip".to_owned()));
    assert_eq!(
        ingress_status(&server, "acme", None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ingress_status(&server, "acme", Some("a-wrong-key")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ingress_status(&server, "acme", Some(INGRESS_KEY)).await,
        StatusCode::OK
    );
    let (status, body) = server.get_raw("/v1/w/acme/admin/queues").await;
    assert_eq!(status, StatusCode::OK);
    let vip = body
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["id"] == "vip"))
        .cloned()
        .unwrap_or_else(|| panic!("{body:#}"));
    assert_eq!(vip["waiting"].as_array().map(Vec::len), Some(1), "{vip:#}");
}

#[tokio::test]
async fn r27_a_settings_change_applies_to_its_workspace_only() {
    let server = TestServer::start_platform(Security::default()).await;
    create(&server, "acme").await;
    create(&server, "globex").await;
    let mut ana = connected(&server, "acme", "ana").await;
    let mut gil = connected(&server, "globex", "gil").await;
    let default_queues = queue_ids(&server, "globex").await;

    // An engine setting: acme is reloaded, its agent told to resume; globex carries on.
    let answer = put_settings(
        &server,
        "acme",
        json!({ "queues": [{ "id": "vip", "channels": ["whatsapp"] }] }),
    )
    .await;
    assert_eq!(answer["applied"], "reloaded", "{answer:#}");
    assert_eq!(ana.expect_close().await.0, 4503);
    let vip = "vip".to_owned();
    assert!(queue_ids(&server, "acme").await.contains(&vip));
    assert!(
        !queue_ids(&server, "acme").await.contains(&"whatsapp".to_owned()),
        "vip takes it"
    );
    assert_eq!(queue_ids(&server, "globex").await, default_queues);
    assert!(!default_queues.contains(&vip));
    assert_eq!(settings_of(&server, "globex").await["queues"], json!([]));
    let globex_customer = server
        .customer("whatsapp", "+4915100004101")
        .in_workspace("globex");
    gil.serves(&globex_customer).await;

    // Its agent reconnects and works in the reloaded workspace.
    let mut ana = server
        .with_token("ana", "ana-token")
        .in_workspace("acme")
        .connect()
        .await;
    let acme_customer = server.customer("whatsapp", "+4915100004102").in_workspace("acme");
    ana.serves(&acme_customer).await;

    // A key only verifies calls: it is taken live, and no one is disconnected.
    let answer = put_settings(
        &server,
        "acme",
        json!({ "queues": [{ "id": "vip", "channels": ["whatsapp"] }], "ingress_key": INGRESS_KEY }),
    )
    .await;
    assert_eq!(answer["applied"], "live", "{answer:#}");
    assert_eq!(
        ingress_status(&server, "acme", None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ingress_status(&server, "acme", Some(INGRESS_KEY)).await,
        StatusCode::OK
    );
    assert_eq!(
        ingress_status(&server, "globex", None).await,
        StatusCode::OK,
        "globex keeps its own"
    );
    ana.ping().await.expect_ok();
    gil.ping().await.expect_ok();
}

#[tokio::test]
async fn r27_bad_settings_are_refused_with_400_naming_the_field() {
    let server = TestServer::start_platform(Security::default()).await;
    create(&server, "acme").await;
    put_settings(&server, "acme", json!({ "grace_secs": 90 })).await;
    let cases = [
        (r#"{"grace_secs": -5}"#, "grace_secs"),
        (r#"{"grace_secs": "soon"}"#, "grace_secs"),
        (r#"{"queue": []}"#, "queue"),
        (
            r#"{"queues": [{"id": "a", "overflow": "b"}]}"#,
            "queues.a.overflow",
        ),
        (
            r#"{"queues": [{"id": "a", "priority": "high"}]}"#,
            "queues[0].priority",
        ),
        (
            r#"{"channels": {"sms": {"webhook_secret": "short"}}}"#,
            "channels.sms.webhook_secret",
        ),
        (
            r#"{"platforms": {"telegram": {"bot_token": "1:x"}}}"#,
            "platforms.telegram.secret_token",
        ),
        ("not json", "expected"),
    ];
    for (body, named) in cases {
        let (status, answer) = server.put_raw("/v1/w/acme/admin/settings", body).await;
        assert_eq!(
            (status, &answer["code"]),
            (StatusCode::BAD_REQUEST, &json!("bad_request")),
            "{body}: {answer:#}"
        );
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{body}: {message}");
    }
    assert_eq!(
        settings_of(&server, "acme").await["grace_secs"],
        90,
        "nothing was stored"
    );

    // The same checks on create; and default's are the configuration file's.
    let (status, answer) = server
        .post_raw(
            "/v1/platform/workspaces",
            r#"{"id": "globex", "settings": {"queues": [{"id": "a", "overflow": "a"}]}}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer:#}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("queues.a.overflow")),
        "{answer:#}"
    );
    let (status, _) = server.get_raw("/v1/platform/workspaces/globex").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not created");
    let (status, answer) = server.put_raw("/v1/admin/settings", "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer:#}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("configuration file")),
        "{answer:#}"
    );
}

#[tokio::test]
async fn r27_the_configured_ingress_key_opens_default_s_ingress_only() {
    let configured = "the-configured-ingress-key";
    let security = Security {
        ingress_key: Some(configured.into()),
        ..Security::default()
    };
    let server = TestServer::start_platform(security).await;
    create(&server, "acme").await;
    assert_eq!(
        ingress_status(&server, "default", Some(configured)).await,
        StatusCode::OK
    );
    // acme set no key of its own: closed, and default's key does not open it.
    for key in [None, Some(configured), Some("")] {
        assert_eq!(
            ingress_status(&server, "acme", key).await,
            StatusCode::UNAUTHORIZED,
            "{key:?}"
        );
    }
    put_settings(&server, "acme", json!({ "ingress_key": INGRESS_KEY })).await;
    assert_eq!(
        ingress_status(&server, "acme", Some(INGRESS_KEY)).await,
        StatusCode::OK
    );
    assert_eq!(
        ingress_status(&server, "acme", Some(configured)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ingress_status(&server, "default", Some(INGRESS_KEY)).await,
        StatusCode::UNAUTHORIZED,
        "nor does acme's open default's"
    );
}
