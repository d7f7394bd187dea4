//! Credentials at the edge: who a WebSocket belongs to (a signed token, or a static one where
//! allowed), from which browser origin, and the keys of the HTTP APIs. The agent id and role
//! come from here, never from a frame; and a token opens only the workspace it was issued for
//! (R27): a signed token's `ws` claim must name the workspace of the path it comes in on, and
//! a static token is looked up among that workspace's agents only.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::tenant::{self, Tenant};
use super::AppState;
use crate::clock::Timestamp;
use crate::core::ErrorCode;
use crate::engine::fanout::ConnId;
use crate::engine::Engine;
use crate::ids::WorkspaceId;
use crate::protocol::Caller;
use crate::refusal::Refusal;
use crate::security::{constant_time_eq, Renewed, Security, TokenError, TokenHash, Verified};

/// The handshake's query string.
#[derive(Debug, Default, Deserialize)]
pub struct Handshake {
    token: Option<String>,
}

/// An authenticated connection: who, and until when its token holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Who, with which role.
    pub caller: Caller,
    /// When the token expires; none for a static token.
    pub expires_at: Option<Timestamp>,
    /// The workspace it was let into: a `refresh` must be valid there too.
    pub workspace: WorkspaceId,
}

/// The bearer token of a request: `Authorization: Bearer …`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Whether `token` has the shape of a JWT (three base64url parts).
fn is_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// Checks a signed token presented on `workspace`'s paths: its signature and times, then that
/// it is for `workspace` (before anything about its agent is looked up, so that a token of
/// another workspace learns nothing of this one's agents), then that its agent exists.
fn verified(
    engine: &Engine,
    workspace: &WorkspaceId,
    security: &Security,
    token: &str,
) -> Result<Verified, ApiError> {
    let verified = security
        .tokens
        .verify(token, engine.now())
        .and_then(|v| v.for_workspace(workspace, security.claimless_tokens))
        .map_err(|e| ApiError::new(ErrorCode::Unauthorized, e.to_string()))?;
    if engine.agent(&verified.agent).is_none() {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            format!("the token names agent {}, which does not exist", verified.agent),
        ));
    }
    Ok(verified)
}

/// Checks a token presented on `workspace`'s paths (`engine` is that workspace's) and returns
/// the session it opens there.
pub fn session_of(
    engine: &Engine,
    workspace: &WorkspaceId,
    security: &Security,
    token: &str,
) -> Result<Session, ApiError> {
    if is_jwt(token) {
        let verified = verified(engine, workspace, security, token)?;
        return Ok(Session {
            caller: Caller {
                id: verified.agent,
                role: verified.role,
            },
            expires_at: verified.expires_at,
            workspace: workspace.clone(),
        });
    }
    if !security.static_tokens {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "not a signed token (static tokens are turned off): get a JWT from your identity provider",
        ));
    }
    let agent = engine
        .agent_by_token(token)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "unknown token"))?;
    Ok(Session {
        caller: Caller {
            id: agent.id,
            role: agent.role,
        },
        expires_at: None,
        workspace: workspace.clone(),
    })
}

/// Authenticates a WebSocket upgrade or an HTTP request to `tenant`'s paths: the browser's
/// origin, then the token (query or bearer).
pub fn authenticate(
    tenant: &Tenant,
    security: &Security,
    query: &Handshake,
    headers: &HeaderMap,
) -> Result<Session, ApiError> {
    let origin = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    if !security.origin_allowed(origin) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("origin {} is not allowed", origin.unwrap_or_default()),
        ));
    }
    let token = query.token.as_deref().or(bearer(headers)).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthorized,
            "no token: pass ?token=… or Authorization: Bearer …",
        )
    })?;
    session_of(tenant.engine(), tenant.id(), security, token)
}

/// Authenticates a WebSocket upgrade and checks that the agent may open one more.
pub fn admit_socket(
    tenant: &Tenant,
    security: &Security,
    query: &Handshake,
    headers: &HeaderMap,
) -> Result<Session, ApiError> {
    let session = authenticate(tenant, security, query, headers)?;
    room_for_connection(tenant.engine(), security, &session)?;
    // The workspace's limit (R27) after the agent's own: an agent over its own hears that.
    // (A workspace not served here has none: no socket is let into it.)
    if let Some(workspace) = tenant.workspace() {
        let engine = tenant.engine();
        workspace
            .fairness()
            .admit_connection(|| engine.fanout().total_connections() + engine.supervision().connections())?;
    }
    Ok(session)
}

/// Refuses another WebSocket of an agent that has as many as it may (tabs, devices).
fn room_for_connection(engine: &Engine, security: &Security, session: &Session) -> Result<(), ApiError> {
    let agent = &session.caller.id;
    let open = engine.fanout().connections(agent) + engine.supervision().connections_of(agent);
    if open >= security.max_connections_per_agent {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            format!("{agent} already has {open} connections, the most allowed"),
        ));
    }
    Ok(())
}

/// Handles a `refresh` request: the new token must be valid in the session's workspace and
/// name the same agent with the same role; the connection's expiry moves to the new token's.
pub fn refresh(
    engine: &Engine,
    security: &Security,
    session: &mut Session,
    conn: ConnId,
    token: &str,
) -> Result<Option<Timestamp>, Refusal> {
    if !is_jwt(token) {
        return Err(Refusal::BadRequest("refresh takes a signed token (JWT)".into()));
    }
    let fresh = session_of(engine, &session.workspace, security, token)
        .map_err(|e| Refusal::Unauthorized(e.message().to_owned()))?;
    if fresh.caller != session.caller {
        return Err(Refusal::Forbidden(
            "a refresh must name the same agent with the same role",
        ));
    }
    if let Some(at) = fresh.expires_at {
        engine.expire_session_at(&session.caller.id, conn, at);
    }
    session.expires_at = fresh.expires_at;
    Ok(fresh.expires_at)
}

/// `POST /v1/token` with `Authorization: Bearer <a valid signed token>`: a fresh token of the
/// same agent, role and workspace ([`crate::security::Tokens::renew`]), so that a page can
/// `refresh` its connections before they expire; a token is renewed only on its own
/// workspace's paths. Only an engine that signs with a shared secret issues tokens; with a
/// public key they come from the identity provider, and this answers 404.
pub async fn renew(State(state): State<AppState>, tenant: Tenant, headers: HeaderMap) -> Response {
    match renewed(&tenant, &state.security, &headers) {
        Ok(renewed) => axum::Json(RenewedToken {
            token: renewed.token,
            expires_at: renewed.expires_at,
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The body of `POST /v1/token`.
#[derive(Debug, Serialize)]
struct RenewedToken {
    token: String,
    #[serde(with = "crate::clock::rfc3339")]
    expires_at: Timestamp,
}

fn renewed(tenant: &Tenant, security: &Security, headers: &HeaderMap) -> Result<Renewed, ApiError> {
    let engine = tenant.engine();
    let token = bearer(headers).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthorized,
            "POST /v1/token needs Authorization: Bearer <a signed token>",
        )
    })?;
    if !is_jwt(token) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "only a signed token (JWT) is renewed: a static token does not expire",
        ));
    }
    let presented = verified(engine, tenant.id(), security, token)?;
    security
        .tokens
        .renew(&presented, engine.now())
        .map_err(|e| match e {
            TokenError::CannotSign => ApiError::new(ErrorCode::NotFound, e.to_string()),
            _ => ApiError::new(ErrorCode::Unauthorized, e.to_string()),
        })
}

/// Requires `Authorization: Bearer <key>` when `key` is configured.
pub fn require_key(key: Option<&str>, headers: &HeaderMap, what: &str) -> Result<(), ApiError> {
    let Some(key) = key else { return Ok(()) };
    match bearer(headers) {
        Some(given) if constant_time_eq(given.as_bytes(), key.as_bytes()) => Ok(()),
        _ => Err(wrong_key(headers, what)),
    }
}

/// How [`require_key`] refuses a request without the right key: the key is wrong, or missing.
pub fn wrong_key(headers: &HeaderMap, what: &str) -> ApiError {
    let message = match bearer(headers) {
        Some(_) => format!("wrong {what} key"),
        None => format!("the {what} API needs Authorization: Bearer <{what} key>"),
    };
    ApiError::new(ErrorCode::Unauthorized, message)
}

/// Middleware of a workspace's admin API (`/v1/w/{ws}/admin/*`, and `/v1/admin/*` for
/// `default`): that workspace's admin key or the platform key ([`Security::admit_admin`]).
/// It runs before the workspace is looked up for the handler, and refuses alike whether the
/// path's workspace exists or not.
pub async fn workspace_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let workspace = match tenant::named(&mut parts, &state).await {
        Ok(Some(text)) => {
            WorkspaceId::parse(&text).map_err(|e| ApiError::new(ErrorCode::NotFound, e.to_string()))
        }
        Ok(None) => Ok(WorkspaceId::default_workspace()),
        Err(e) => Err(e),
    };
    // A path that names no workspace served here gives no key of its own to match.
    let own_key = workspace.as_ref().ok().and_then(|id| admin_key_of(&state, id));
    if let Err(e) = state
        .security
        .admit_admin(own_key.as_ref(), bearer(&parts.headers))
    {
        return ApiError::new(ErrorCode::Unauthorized, e.to_string()).into_response();
    }
    // Let in with the platform key (or in development) to a workspace not served here: the
    // caller may know which exist (the platform API lists them), and its handler would find
    // no one there (R27: see `tenant`).
    let workspace = match workspace {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let served = state.workspaces.get(&workspace).and_then(|w| w.admit());
    if served.is_none() {
        return ApiError::from(Refusal::not_found("workspace", &workspace)).into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// The digest of workspace `id`'s admin key: `default`'s is `[security] admin_key`, every
/// other's is generated by the platform API; none for a workspace not served here.
fn admin_key_of(state: &AppState, id: &WorkspaceId) -> Option<TokenHash> {
    if id.is_default() {
        return state.security.admin_key.as_deref().map(TokenHash::of);
    }
    state.workspaces.get(id).and_then(|w| w.admin_key())
}

/// Middleware of the platform API: the platform key ([`Security::admit_platform`]).
pub async fn platform_only(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match state.security.admit_platform(bearer(request.headers())) {
        Ok(()) => next.run(request).await,
        Err(e) => ApiError::new(ErrorCode::Unauthorized, e.to_string()).into_response(),
    }
}
