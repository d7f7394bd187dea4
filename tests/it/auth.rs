//! Who may connect and act (SECURITY.md): signed tokens with expiry and refresh, roles from the
//! token, origins, and the admin key. Each refusal changes nothing and leaves others working.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::json;
use switchboard::core::Role;
use switchboard::engine::EngineConfig;
use switchboard::ids::WorkspaceId;
use switchboard::security::{Security, Tokens};

use super::support::{refusal, ts, TestServer};

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

/// A token for admin `ana` of `default`, well formed but signed with another secret.
fn forged(server: &TestServer) -> String {
    Tokens::hs256(b"not-the-secret-not-the-secret-not!!", 0)
        .mint(
            &WorkspaceId::default_workspace(),
            "ana",
            Role::Admin,
            server.now(),
            Duration::minutes(5),
        )
        .expect("mints")
}

fn token(server: &TestServer, agent: &str, role: Role, ttl: Duration) -> String {
    Tokens::hs256(SECRET, 0)
        .mint(&WorkspaceId::default_workspace(), agent, role, server.now(), ttl)
        .expect("HS256 mints")
}

#[tokio::test]
async fn forged_expired_and_static_tokens_are_refused_before_the_upgrade() {
    let server = server().await;
    server.agent("ana");
    let forged = forged(&server);
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

/// `POST /v1/token` with `bearer`: the status and the JSON body.
async fn renew(server: &TestServer, bearer: Option<&str>) -> (StatusCode, serde_json::Value) {
    let headers: Vec<(&str, String)> = bearer
        .map(|t| vec![("authorization", format!("Bearer {t}"))])
        .unwrap_or_default();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    server.post_raw_with("/v1/token", &headers, "").await
}

#[tokio::test]
async fn a_page_renews_its_token_before_expiry_and_keeps_its_socket_until_the_session_ends() {
    let server = server().await;
    server.agent("ana");
    let first = token(&server, "ana", Role::Agent, Duration::hours(4));
    let mut desk = server.with_token("ana", &first).connect().await;
    let mut stale = server.with_token("ana", &first).connect().await;

    // Renewed by its holder: same agent and role, as long as the first was issued for.
    server.advance(Duration::hours(3));
    let (status, body) = renew(&server, Some(&first)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = body["token"].as_str().expect("a token").to_owned();
    assert_ne!(second, first);
    assert_eq!(ts(&body["expires_at"]), server.now() + Duration::hours(4));
    let verified = Tokens::hs256(SECRET, 0)
        .verify(&second, server.now())
        .expect("valid");
    assert_eq!((verified.agent.as_str(), verified.role), ("ana", Role::Agent));
    let reply = desk
        .request(json!({ "type": "refresh", "token": second }))
        .await
        .expect_ok();
    assert_eq!(reply["expires_at"], body["expires_at"]);

    // The socket that did not refresh closes at the first token's expiry; the other lives on.
    server.advance(Duration::hours(1));
    assert_eq!(stale.expect_close().await.0, 4001);
    desk.ping().await.expect_ok();

    // Renewals end 12 h after the sign-in: the last one is cut to it, then none is given.
    server.advance(Duration::hours(2));
    let (_, body) = renew(&server, Some(&second)).await;
    let third = body["token"].as_str().expect("a token").to_owned();
    server.advance(Duration::hours(3));
    let (status, body) = renew(&server, Some(&third)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let signed_in = TestServer::start_time();
    assert_eq!(ts(&body["expires_at"]), signed_in + Duration::hours(12));
    let last = body["token"].as_str().expect("a token").to_owned();
    server.advance(Duration::hours(3) - Duration::seconds(1));
    let (status, body) = renew(&server, Some(&last)).await;
    assert_eq!(status, StatusCode::OK, "one second before the end: {body}");
    server.advance(Duration::seconds(1));
    let (status, body) = renew(&server, Some(&last)).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthorized"))
    );
}

#[tokio::test]
async fn only_a_valid_signed_token_is_renewed() {
    let server = server().await;
    server.agent("ana");
    for (bearer, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("ana-token".to_owned()), StatusCode::BAD_REQUEST),
        (Some(forged(&server)), StatusCode::UNAUTHORIZED),
        (
            Some(token(&server, "ghost", Role::Agent, Duration::minutes(5))),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let (got, body) = renew(&server, bearer.as_deref()).await;
        assert_eq!(got, status, "{bearer:?}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    }
    let expired = token(&server, "ana", Role::Agent, Duration::minutes(5));
    server.advance(Duration::minutes(5));
    assert_eq!(renew(&server, Some(&expired)).await.0, StatusCode::UNAUTHORIZED);
}
