//! R27: a signed token carries its workspace (the `ws` claim) and opens that workspace's paths
//! and no other's: `/v1/w/{ws}/…`, and the unprefixed ones when it names `default`. Every door a
//! token opens is tried: the agent and supervisor sockets, the analytics and the renewal. A
//! server of `default` and `acme` stands for the many workspaces to come.

use chrono::Duration;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::core::Role;
use switchboard::ids::WorkspaceId;
use switchboard::security::{ClaimlessTokens, Claims, Security, Tokens};

use super::support::{refusal, TestServer};

const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!!";

/// Signed tokens only, with `claimless` deciding what a token without a claim opens.
fn secured(claimless: ClaimlessTokens) -> Security {
    Security {
        tokens: Tokens::hs256(SECRET, 0),
        static_tokens: false,
        claimless_tokens: claimless,
        ..Security::default()
    }
}

/// `default` and `acme`, with supervisor `sam` in both and agent `ana` in both.
async fn server(claimless: ClaimlessTokens) -> TestServer {
    let server = TestServer::start_workspaces(secured(claimless), &["acme"]).await;
    server.supervisor("sam");
    server.agent("ana");
    server.agent_in("acme", "sam", Role::Supervisor);
    server.agent_in("acme", "ana", Role::Agent);
    server
}

fn workspace(id: &str) -> WorkspaceId {
    WorkspaceId::parse(id).unwrap_or_else(|e| panic!("{e}"))
}

/// A token of `agent` with `role` for workspace `ws`, signed with `key`.
fn signed_by(key: &[u8], server: &TestServer, ws: &str, agent: &str, role: Role) -> String {
    Tokens::hs256(key, 0)
        .mint(&workspace(ws), agent, role, server.now(), Duration::minutes(10))
        .expect("HS256 mints")
}

/// A token of `agent` with `role` for workspace `ws`.
fn token(server: &TestServer, ws: &str, agent: &str, role: Role) -> String {
    signed_by(SECRET, server, ws, agent, role)
}

/// A properly signed token without a `ws` claim, as every token was before workspaces.
fn claimless(server: &TestServer, agent: &str, role: Role) -> String {
    let now = server.now().timestamp();
    let claims = Claims {
        sub: agent.to_owned(),
        role: role.into(),
        ws: None,
        exp: now + 600,
        nbf: Some(now),
        iat: Some(now),
        auth_time: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("encodes")
}

/// `POST {api}/token` with `bearer`: the status and the JSON body.
async fn renew(server: &TestServer, api: &str, bearer: &str) -> (StatusCode, Value) {
    let authorization = format!("Bearer {bearer}");
    server
        .post_raw_with(&format!("{api}/token"), &[("authorization", &authorization)], "")
        .await
}

/// Tries `token` (a supervisor's) at every door below `api` (`/v1` or `/v1/w/{ws}`): each
/// door's name and its refusal (status and body), or none where it let the token in.
async fn doors(server: &TestServer, api: &str, token: &str) -> Vec<(String, Option<(StatusCode, Value)>)> {
    let refused = |(status, body): (StatusCode, Value)| (!status.is_success()).then_some((status, body));
    vec![
        (
            format!("{api}/agent/ws"),
            refusal(server, &format!("{api}/agent/ws"), token, None).await,
        ),
        (
            format!("{api}/supervisor/ws"),
            refusal(server, &format!("{api}/supervisor/ws"), token, None).await,
        ),
        (
            format!("{api}/analytics"),
            refused(server.get_as(&format!("{api}/analytics"), token).await),
        ),
        (format!("{api}/token"), refused(renew(server, api, token).await)),
    ]
}

/// Asserts that every door below `api` refuses `token` with 401 `unauthorized`; the messages.
async fn all_refuse(server: &TestServer, api: &str, token: &str) -> Vec<String> {
    let mut messages = Vec::new();
    for (door, refused) in doors(server, api, token).await {
        let (status, body) = refused.unwrap_or_else(|| panic!("{door} let the token in"));
        assert_eq!(
            (status, &body["code"]),
            (StatusCode::UNAUTHORIZED, &json!("unauthorized")),
            "{door}: {body:#}"
        );
        messages.push(body["message"].as_str().unwrap_or_default().to_owned());
    }
    messages
}

/// Asserts that every door below `api` lets `token` in.
async fn all_open(server: &TestServer, api: &str, token: &str) {
    for (door, refused) in doors(server, api, token).await {
        assert!(refused.is_none(), "{door} refused the token: {refused:?}");
    }
}

#[tokio::test]
async fn r27_a_token_naming_another_workspace_is_refused_on_defaults_paths_alike_whether_it_exists_or_not() {
    let server = server(ClaimlessTokens::Default).await;
    // `acme` is served here, `globex` is not: the answers must not tell them apart.
    let mut messages = Vec::new();
    for claim in ["acme", "globex"] {
        let foreign = token(&server, claim, "sam", Role::Supervisor);
        for api in ["/v1", "/v1/w/default"] {
            messages.extend(all_refuse(&server, api, &foreign).await);
        }
    }
    assert!(
        messages
            .iter()
            .all(|m| m == "the token is not valid in this workspace"),
        "{messages:#?}"
    );
    assert_eq!(server.engine.fanout().total_connections(), 0, "nobody got in");
    assert_eq!(server.engine.supervision().connections(), 0);

    // The same token opens its own workspace's paths; and `default`'s does not open them.
    all_open(
        &server,
        "/v1/w/acme",
        &token(&server, "acme", "sam", Role::Supervisor),
    )
    .await;
    let defaults = token(&server, "default", "sam", Role::Supervisor);
    let messages = all_refuse(&server, "/v1/w/acme", &defaults).await;
    assert!(
        messages
            .iter()
            .all(|m| m == "the token is not valid in this workspace"),
        "{messages:#?}"
    );
    all_open(&server, "/v1", &defaults).await;
    all_open(&server, "/v1/w/default", &defaults).await;
}

#[tokio::test]
async fn r27_a_forged_workspace_claim_is_refused() {
    let server = server(ClaimlessTokens::Default).await;
    let other_key = b"not-the-secret-not-the-secret-not!!";
    for (claim, api) in [
        ("default", "/v1"),
        ("default", "/v1/w/default"),
        ("acme", "/v1/w/acme"),
    ] {
        let forged = signed_by(other_key, &server, claim, "sam", Role::Supervisor);
        for message in all_refuse(&server, api, &forged).await {
            assert!(message.contains("invalid token"), "{api}: {message}");
        }
    }
    assert_eq!(server.engine.fanout().total_connections(), 0);
    assert_eq!(server.engine_of("acme").fanout().total_connections(), 0);
}

#[tokio::test]
async fn r27_a_claimless_token_is_refused_when_claimless_tokens_are_off() {
    let server = server(ClaimlessTokens::Refuse).await;
    let old = claimless(&server, "sam", Role::Supervisor);
    for api in ["/v1", "/v1/w/default", "/v1/w/acme"] {
        for message in all_refuse(&server, api, &old).await {
            assert!(message.contains("no `ws` claim"), "{api}: {message}");
        }
    }
    // A token naming its workspace is let in as ever.
    all_open(
        &server,
        "/v1",
        &token(&server, "default", "sam", Role::Supervisor),
    )
    .await;
}

#[tokio::test]
async fn r27_a_claimless_token_opens_default_only_when_claimless_tokens_are_on() {
    let server = server(ClaimlessTokens::Default).await;
    let old = claimless(&server, "sam", Role::Supervisor);
    all_open(&server, "/v1", &old).await;
    all_open(&server, "/v1/w/default", &old).await;
    // Never another workspace, though `sam` is one of its agents.
    for message in all_refuse(&server, "/v1/w/acme", &old).await {
        assert!(message.contains("no `ws` claim"), "{message}");
    }

    // Renewed, it names `default` from now on.
    let (status, body) = renew(&server, "/v1", &old).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let renewed = body["token"].as_str().expect("a token");
    let verified = Tokens::hs256(SECRET, 0)
        .verify(renewed, server.now())
        .expect("valid");
    assert_eq!(verified.workspace, Some(WorkspaceId::default_workspace()));
}

#[tokio::test]
async fn r27_a_renewal_keeps_the_workspace_claim() {
    let server = server(ClaimlessTokens::Default).await;
    let first = token(&server, "acme", "ana", Role::Agent);
    let mut desk = server
        .with_token("ana", &first)
        .in_workspace("acme")
        .connect()
        .await;

    let (status, body) = renew(&server, "/v1/w/acme", &first).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let second = body["token"].as_str().expect("a token").to_owned();
    let verified = Tokens::hs256(SECRET, 0)
        .verify(&second, server.now())
        .expect("valid");
    assert_eq!(
        (verified.agent.as_str(), verified.role, verified.workspace),
        ("ana", Role::Agent, Some(workspace("acme")))
    );
    desk.request(json!({ "type": "refresh", "token": second }))
        .await
        .expect_ok();

    // A token of the same agent id in another workspace refreshes nothing here, and a token
    // is renewed on its own workspace's path only.
    let defaults = token(&server, "default", "ana", Role::Agent);
    let refused = desk
        .request(json!({ "type": "refresh", "token": defaults }))
        .await
        .expect_error("unauthorized");
    assert_eq!(refused["message"], "the token is not valid in this workspace");
    let (status, body) = renew(&server, "/v1", &first).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthorized"))
    );
    desk.ping().await.expect_ok();
}
