//! Who may connect and act (SECURITY.md): signed tokens with expiry and refresh, roles from the
//! token, origins, and the admin key. Each refusal changes nothing and leaves others working.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::json;
use switchboard::core::Role;
use switchboard::engine::EngineConfig;
use switchboard::security::{Security, Tokens};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::support::TestServer;

const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!!";

fn secured() -> Security {
    Security {
        tokens: Tokens::hs256(SECRET, 0),
        static_tokens: false,
        allowed_origins: vec!["https://desk.example".into()],
        admin_key: Some("admin-key".into()),
        ..Security::default()
    }
}

async fn server() -> TestServer {
    TestServer::start_secured(EngineConfig::default(), secured()).await
}

fn token(server: &TestServer, agent: &str, role: Role, ttl: Duration) -> String {
    Tokens::hs256(SECRET, 0)
        .mint(agent, role, server.now(), ttl)
        .expect("HS256 mints")
}

/// Tries an upgrade; the HTTP status and JSON body of a refusal, or none when it connected.
async fn refusal(
    server: &TestServer,
    path: &str,
    token: &str,
    origin: Option<&str>,
) -> Option<(StatusCode, serde_json::Value)> {
    let mut request = format!("ws://{}{path}?token={token}", server.addr)
        .into_client_request()
        .expect("a request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(origin).expect("a header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            Some((response.status(), body))
        }
        Err(e) => panic!("the upgrade failed otherwise: {e}"),
    }
}

#[tokio::test]
async fn forged_expired_and_static_tokens_are_refused_before_the_upgrade() {
    let server = server().await;
    server.agent("ana");
    let forged = Tokens::hs256(b"not-the-secret-not-the-secret-not!!", 0)
        .mint("ana", Role::Admin, server.now(), Duration::minutes(5))
        .expect("mints");
    let (status, body) = refusal(&server, "/v1/agent/ws", &forged, None)
        .await
        .expect("refused");
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthorized"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid token"),
        "{body}"
    );

    let expired = token(&server, "ana", Role::Agent, Duration::minutes(5));
    server.advance(Duration::minutes(5));
    let (status, body) = refusal(&server, "/v1/agent/ws", &expired, None)
        .await
        .expect("refused");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"].as_str().unwrap_or_default().contains("expired"),
        "{body}"
    );

    // Static tokens are off once security is configured.
    let (status, _) = refusal(&server, "/v1/agent/ws", "ana-token", None)
        .await
        .expect("refused");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A token for an agent that does not exist.
    let ghost = token(&server, "ghost", Role::Admin, Duration::minutes(5));
    assert_eq!(
        refusal(&server, "/v1/agent/ws", &ghost, None).await.map(|r| r.0),
        Some(StatusCode::UNAUTHORIZED)
    );
    assert_eq!(server.engine.fanout().total_connections(), 0, "nobody got in");

    let valid = token(&server, "ana", Role::Agent, Duration::minutes(5));
    let mut ana = server.with_token("ana", &valid).connect().await;
    ana.ping().await.expect_ok();
}

#[tokio::test]
async fn the_role_comes_from_the_token_and_an_agent_token_opens_no_supervisor_socket() {
    let server = server().await;
    server.agent("ana");
    let agent = token(&server, "ana", Role::Agent, Duration::minutes(5));
    let (status, body) = refusal(&server, "/v1/supervisor/ws", &agent, None)
        .await
        .expect("refused");
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );
    let (status, _) = server.get_as("/v1/analytics", &agent).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A supervisor's token: the socket opens and its actions work.
    let supervisor = token(&server, "ana", Role::Supervisor, Duration::minutes(5));
    let mut sup = server.supervisor_with_token("ana", &supervisor).connect().await;
    sup.subscribe_all().await;
    sup.request(json!({ "type": "set_limit", "agent": "ana", "limit": 1 }))
        .await
        .expect_ok();
}

#[tokio::test]
async fn an_expired_token_closes_its_socket_with_4001_and_a_refresh_keeps_it_open() {
    let server = server().await;
    server.agent("ana");
    server.agent("ben");
    let short = token(&server, "ana", Role::Agent, Duration::minutes(1));
    let mut refreshed = server.with_token("ana", &short).connect().await;
    let mut lapsing = server.with_token("ana", &short).connect().await;

    server.advance(Duration::seconds(50));
    let fresh = token(&server, "ana", Role::Agent, Duration::minutes(10));
    let reply = refreshed
        .request(json!({ "type": "refresh", "token": fresh }))
        .await
        .expect_ok();
    assert_eq!(reply["kind"], "refreshed");
    // Someone else's token, or a forged one, does not refresh.
    let bens = token(&server, "ben", Role::Agent, Duration::minutes(10));
    refreshed
        .request(json!({ "type": "refresh", "token": bens }))
        .await
        .expect_error("forbidden");
    refreshed
        .request(json!({ "type": "refresh", "token": "ana-token" }))
        .await
        .expect_error("bad_request");

    server.advance(Duration::seconds(11));
    let (code, reason) = lapsing.expect_close().await;
    assert_eq!(code, 4001, "{reason}");
    refreshed.ping().await.expect_ok();

    server.advance(Duration::minutes(10));
    assert_eq!(refreshed.expect_close().await.0, 4001);
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_the_admin_api_needs_its_key() {
    let server = server().await;
    server.agent("ana");
    let valid = token(&server, "ana", Role::Agent, Duration::minutes(5));
    let (status, body) = refusal(&server, "/v1/agent/ws", &valid, Some("https://evil.example"))
        .await
        .expect("refused");
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );
    assert!(
        refusal(&server, "/v1/agent/ws", &valid, Some("https://desk.example"))
            .await
            .is_none(),
        "the allowed origin connects"
    );

    let (status, body) = server.get_as("/v1/admin/agents", "wrong").await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthorized"))
    );
    let (status, _) = server.get_as("/v1/admin/agents", "admin-key").await;
    assert_eq!(status, StatusCode::OK);
}
