//! Forwarding (R28): any node accepts any workspace's clients, and what belongs to a
//! workspace served by another node is relayed to that node, so that a client needs one URL
//! behind any load balancer.
//!
//! [`route`] is a middleware in front of every route, present only on a node of a cluster
//! (an [`AppState`] with a [`Forwarder`]). It finds the workspace a request is for from its
//! path ([`scope_of`]), asks the [`Directory`] where that workspace is served, and then
//! - serves it here;
//! - relays it to the owner: a plain HTTP request as it came (buffered: bodies are small) and
//!   the owner's answer as it came back; a WebSocket upgrade as two sockets, the client's here
//!   and one of this node's to the owner, with every frame relayed both ways ([`socket`]);
//! - or answers `503 storage_unavailable` with `Retry-After`: the workspace is between nodes.
//!
//! A relayed request carries [`FORWARDED_BY`]; a request carrying it is never relayed again,
//! so two nodes whose views disagree for a moment answer 503 instead of sending it round.

mod socket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::cluster::{Directory, ForwardStats, Location};
use crate::core::ErrorCode;
use crate::ids::WorkspaceId;

/// The header a node puts on what it relays: its own name (see [`Directory::node`]).
pub const FORWARDED_BY: &str = "x-switchboard-forwarded-by";

/// The largest body relayed: the largest any route takes (raw mail, `native::MAX_EMAIL_BYTES`);
/// the owner applies each route's own limit.
const MAX_RELAYED_BODY: usize = if super::native::MAX_EMAIL_BYTES > super::MAX_BODY_BYTES {
    super::native::MAX_EMAIL_BYTES
} else {
    super::MAX_BODY_BYTES
};

/// How long a connection to another node may take: nodes are near each other, and a node that
/// does not answer this fast is better reported to the client than waited for.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a relayed HTTP request may take in all: longer than the owner's own longest wait
/// (an acknowledgement waits up to 30 s for its store, `error::durable`), so that the
/// owner's answer, not ours, reaches the client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(35);

/// How long the owner may take to answer a WebSocket upgrade. An upgrade does no I/O on the
/// owner's side (the snapshot comes later), so a few seconds means the owner is stalled or
/// stopped: the client is then told to reconnect (4503) and, once the lease has moved, gets
/// the new owner. 10 s here made a client through a relaying node wait 15 s after its owner
/// was stopped (tests/cluster.rs) against 5 s when it was killed.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a request for a workspace this node does not know waits for a placement round
/// before it is answered as it stands (`not_found` if still unknown).
const UNKNOWN_CONFIRMED_WITHIN: Duration = Duration::from_secs(2);

/// Headers that belong to one hop (RFC 9110 §7.6.1) and are not relayed; the WebSocket
/// handshake's own are each hop's too (each side of a relayed socket has its own handshake),
/// and so is `Expect` (this node has read the whole body already).
const HOP_BY_HOP: [&str; 14] = [
    "expect",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
];

/// What a node needs to relay: where each workspace is, the HTTP clients to other nodes, and
/// its counts. Made once per node; [`Forwarder::stats`] is for `/metrics`.
pub struct Forwarder {
    directory: Arc<dyn Directory>,
    /// Plain requests, pooled per node, with a bounded total time.
    http: reqwest::Client,
    /// Upgrades: no total time (a socket lives for hours), only the connect and handshake
    /// bounds; an upgraded connection leaves the pool.
    sockets: reqwest::Client,
    stats: Arc<ForwardStats>,
}

impl Forwarder {
    /// A forwarder asking `directory` where workspaces are served.
    pub fn new(directory: Arc<dyn Directory>) -> Result<Self, reqwest::Error> {
        // Nodes talk plain HTTP to each other's addresses: no proxy from the environment.
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let sockets = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .http1_only()
            .build()?;
        Ok(Self {
            directory,
            http,
            sockets,
            stats: Arc::default(),
        })
    }

    /// The directory it asks.
    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.directory
    }

    /// What it relayed and what failed, so far.
    pub fn stats(&self) -> &Arc<ForwardStats> {
        &self.stats
    }
}

/// Which workspace a request is for, as far as where to serve it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Served by whichever node serves this workspace.
    Workspace(WorkspaceId),
    /// Served by any node: pages, assets, health, metrics, the platform's list and create.
    Local,
}

/// The workspace of a request path: `/v1/w/{ws}/…` is `ws`'s; the platform's operations on one
/// workspace (`/v1/platform/workspaces/{id}…`) are `id`'s; the rest of `/v1/platform/…` is
/// any node's; any other `/v1/…` is `default`'s (its unprefixed paths); everything else is any
/// node's. A malformed id is served here, which answers `not_found` as it always does.
pub fn scope_of(path: &str) -> Scope {
    let Some(api) = path.strip_prefix("/v1/") else {
        return Scope::Local;
    };
    let named = |rest: &str| {
        let id = rest.split('/').next().unwrap_or_default();
        WorkspaceId::parse(id).map_or(Scope::Local, Scope::Workspace)
    };
    if let Some(rest) = api.strip_prefix("w/") {
        return named(rest);
    }
    if let Some(platform) = api.strip_prefix("platform") {
        return match platform.strip_prefix("/workspaces/") {
            Some(rest) if !rest.is_empty() => named(rest),
            _ => Scope::Local,
        };
    }
    Scope::Workspace(WorkspaceId::default_workspace())
}

/// The middleware: serves here, relays, or answers 503 (see the module's documentation).
pub async fn route(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(forwarder) = state.forward.clone() else {
        return next.run(request).await;
    };
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path().to_owned(), |u| u.path().to_owned());
    let Scope::Workspace(ws) = scope_of(&path) else {
        return next.run(request).await;
    };
    let relayed_already = request.headers().contains_key(FORWARDED_BY);
    let mut location = forwarder.directory.locate(&ws);
    if matches!(location, Location::Here) && !relayed_already && state.workspaces.get(&ws).is_none() {
        if let Some(claims) = state.workspaces.cluster() {
            // Neither served here nor known elsewhere: perhaps created on another node since
            // this one's last round. One fresh round (shared with other such requests)
            // decides between relaying it and `not_found`.
            claims.rounds().fresh(UNKNOWN_CONFIRMED_WITHIN).await;
            location = forwarder.directory.locate(&ws);
        }
    }
    match location {
        Location::Here => next.run(request).await,
        Location::At(_) if relayed_already => {
            // Two nodes each think the other serves it: a moment of disagreement while a
            // lease moves. Sending it back would loop; the client retries shortly.
            tracing::debug!(workspace = %ws, "a relayed request for a workspace not served here");
            unserved(&forwarder, &ws)
        }
        Location::Nowhere => unserved(&forwarder, &ws),
        Location::At(base) => {
            let (parts, body) = request.into_parts();
            if is_upgrade(&parts.headers) {
                socket::relay(state, forwarder, &base, parts).await
            } else {
                relay_http(&forwarder, &base, parts, body).await
            }
        }
    }
}

/// `503 storage_unavailable` with `Retry-After: 1`: no node serves `ws` at this moment.
fn unserved(forwarder: &Forwarder, ws: &WorkspaceId) -> Response {
    ForwardStats::count(&forwarder.stats.unserved);
    retry_shortly(format!(
        "workspace {ws} is moving to another node: retry in a moment"
    ))
}

/// The engine's `storage_unavailable` answer, with `Retry-After: 1`.
fn retry_shortly(message: String) -> Response {
    let mut response = ApiError::new(ErrorCode::StorageUnavailable, message).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Whether a request asks for a WebSocket (`Upgrade: websocket` on a GET).
fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The headers to send on to the owner: the client's, less those of one hop, with where it
/// came from (`x-forwarded-for`, `x-forwarded-host`) and this node's name.
fn relayed_headers(parts: &Parts, node: &str) -> HeaderMap {
    let incoming = &parts.headers;
    // `Connection` may name more headers that are this hop's only.
    let named_by_connection: Vec<String> = incoming
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut headers = HeaderMap::with_capacity(incoming.len() + 3);
    for (name, value) in incoming {
        let lower = name.as_str();
        let dropped = HOP_BY_HOP.contains(&lower)
            || named_by_connection.iter().any(|n| n == lower)
            // The client for the owner sets its own, for the owner's address and the body
            // as relayed.
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || lower == "x-forwarded-for";
        if !dropped {
            headers.append(name.clone(), value.clone());
        }
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    let earlier = incoming
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let chain = match (earlier.is_empty(), peer) {
        (true, Some(peer)) => Some(peer),
        (false, Some(peer)) => Some(format!("{earlier}, {peer}")),
        (false, None) => Some(earlier),
        (true, None) => None,
    };
    if let Some(value) = chain.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), value);
    }
    if let Some(host) = incoming.get(header::HOST) {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host.clone());
    }
    if let Ok(node) = HeaderValue::from_str(node) {
        headers.insert(HeaderName::from_static(FORWARDED_BY), node);
    }
    headers
}

/// The path and query of a request as the client sent it.
fn path_and_query(parts: &Parts) -> String {
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |u| u.0.clone());
    uri.path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned())
}

/// Relays a plain HTTP request to the node at `base` and answers what it answered.
async fn relay_http(forwarder: &Forwarder, base: &str, parts: Parts, body: Body) -> Response {
    ForwardStats::count(&forwarder.stats.requests);
    let url = format!("{base}{}", path_and_query(&parts));
    let headers = relayed_headers(&parts, forwarder.directory.node());
    let method = parts.method.clone();
    let body = match axum::body::to_bytes(body, MAX_RELAYED_BODY).await {
        Ok(body) => body,
        Err(_) => {
            // Over every route's limit, or the client stopped sending: the owner would refuse
            // it the same way.
            return (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response();
        }
    };
    let mut outgoing = forwarder.http.request(method.clone(), &url).headers(headers);
    if !body.is_empty() || method_has_body(&method) {
        outgoing = outgoing.body(body);
    }
    match outgoing.send().await {
        Ok(answered) => answer_of(forwarder, &url, answered).await,
        Err(e) => failed(forwarder, &url, &e),
    }
}

/// The owner's answer, as it came: status, headers but those of one hop, body.
async fn answer_of(forwarder: &Forwarder, url: &str, answered: reqwest::Response) -> Response {
    let status = answered.status();
    let mut headers = HeaderMap::with_capacity(answered.headers().len());
    for (name, value) in answered.headers() {
        let dropped = HOP_BY_HOP.contains(&name.as_str()) || name == header::CONTENT_LENGTH;
        if !dropped {
            headers.append(name.clone(), value.clone());
        }
    }
    let body = match answered.bytes().await {
        Ok(body) => body,
        Err(e) => return failed(forwarder, url, &e),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Whether a request of `method` carries a body even when empty (`Content-Length: 0`).
fn method_has_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// The answer when the owner could not be reached or did not answer: the client retries
/// (by then the workspace may be served elsewhere).
fn failed(forwarder: &Forwarder, url: &str, error: &reqwest::Error) -> Response {
    ForwardStats::count(&forwarder.stats.failures);
    tracing::warn!(%url, error = %error, "relaying to the node serving a workspace failed");
    retry_shortly("the node serving this workspace did not answer: retry in a moment".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(id: &str) -> Scope {
        Scope::Workspace(WorkspaceId::parse(id).expect("a workspace id"))
    }

    #[test]
    fn r28_a_request_belongs_to_the_workspace_its_path_names() {
        assert_eq!(scope_of("/v1/w/acme/agent/ws"), ws("acme"));
        assert_eq!(scope_of("/v1/w/acme/admin/agents/ana/limit"), ws("acme"));
        assert_eq!(scope_of("/v1/w/acme"), ws("acme"));
        assert_eq!(scope_of("/v1/agent/ws"), ws("default"));
        assert_eq!(scope_of("/v1/channels/whatsapp/messages"), ws("default"));
        assert_eq!(scope_of("/v1/platform/workspaces/acme/suspend"), ws("acme"));
        assert_eq!(scope_of("/v1/platform/workspaces/acme"), ws("acme"));
    }

    #[test]
    fn r28_pages_health_and_the_platforms_lists_are_served_by_any_node() {
        for path in [
            "/",
            "/wall",
            "/w/acme/",
            "/assets/desk.js",
            "/healthz",
            "/readyz",
            "/metrics",
            "/v1/platform/workspaces",
            "/v1/platform/workspaces/",
            "/v1/platform",
            // No workspace can have this id: served here, which answers not_found.
            "/v1/w/NOT%20AN%20ID/agent/ws",
        ] {
            assert_eq!(scope_of(path), Scope::Local, "{path}");
        }
    }
}
