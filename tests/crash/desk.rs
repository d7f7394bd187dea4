//! One agent WebSocket connection: requests with their replies, pushes in between.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a live engine may take to answer one request (or to accept a connection).
pub(crate) const REPLY_WAIT: Duration = Duration::from_secs(10);

/// Why a connection stopped working.
#[derive(Debug)]
pub(crate) enum DeskError {
    /// The connection broke without a close frame (the engine was killed), or the engine
    /// closed it with 4503 (a cluster's workspace moving between nodes: reconnect elsewhere).
    Gone(String),
    /// The engine misbehaved while alive: no reply in time, a close frame, a reply out of order.
    Broken(String),
}

impl std::fmt::Display for DeskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeskError::Gone(why) => write!(f, "connection gone: {why}"),
            DeskError::Broken(why) => write!(f, "{why}"),
        }
    }
}

/// Numbers the connections of the test process: request ids name their connection, because
/// an engine remembers an agent's request ids across its connections (a retry repeats its
/// id), and a cluster's workspace outlives the connections of many rounds.
static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) struct Desk {
    agent: String,
    /// This connection's number, in its request ids.
    connection: u64,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    requests: u64,
    welcome: Value,
}

impl Desk {
    /// Connects with the agent's static development token to the workspace whose API is at
    /// `api` (`/v1`, `/v1/w/{id}`) and reads the `welcome`.
    pub(crate) async fn connect(addr: SocketAddr, api: &str, agent: &str) -> Result<Desk, DeskError> {
        let url = format!("ws://{addr}{api}/agent/ws?token={agent}-token");
        let (ws, _) = tokio::time::timeout(REPLY_WAIT, tokio_tungstenite::connect_async(url.as_str()))
            .await
            .map_err(|_| DeskError::Broken(format!("{agent}: connecting timed out")))?
            .map_err(|e| DeskError::Gone(format!("{agent}: cannot connect: {e}")))?;
        let mut desk = Desk {
            agent: agent.to_owned(),
            connection: CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ws,
            requests: 0,
            welcome: Value::Null,
        };
        let welcome = desk
            .next_frame(REPLY_WAIT)
            .await?
            .ok_or_else(|| DeskError::Broken(format!("{agent}: no welcome")))?;
        if welcome["type"] != "welcome" {
            return Err(DeskError::Broken(format!("{agent}: the first frame: {welcome}")));
        }
        desk.welcome = welcome;
        Ok(desk)
    }

    pub(crate) fn welcome(&self) -> &Value {
        &self.welcome
    }

    /// The next text frame. Cancel-safe: a frame is either returned or left in the stream.
    pub(crate) async fn read(&mut self) -> Result<Value, DeskError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str()).map_err(|e| {
                        DeskError::Broken(format!("{}: a frame that is not JSON ({e}): {text}", self.agent))
                    })
                }
                Some(Ok(Message::Close(Some(frame)))) if u16::from(frame.code) == 4503 => {
                    return Err(DeskError::Gone(format!(
                        "{}: the workspace moved: {frame:?}",
                        self.agent
                    )))
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(DeskError::Broken(format!(
                        "{}: the engine closed the connection: {frame:?}",
                        self.agent
                    )))
                }
                Some(Ok(Message::Binary(_))) => {
                    return Err(DeskError::Broken(format!("{}: a binary frame", self.agent)))
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(DeskError::Gone(format!("{}: {e}", self.agent))),
                None => return Err(DeskError::Gone(format!("{}: end of stream", self.agent))),
            }
        }
    }

    /// The next frame within `within`, or `None`.
    pub(crate) async fn next_frame(&mut self, within: Duration) -> Result<Option<Value>, DeskError> {
        match tokio::time::timeout(within, self.read()).await {
            Ok(frame) => frame.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Sends `request` with a fresh `id`; the reply, and the push frames that came before it.
    pub(crate) async fn request(&mut self, mut request: Value) -> Result<(Value, Vec<Value>), DeskError> {
        self.requests += 1;
        let id = format!("{}-{}-{}", self.agent, self.connection, self.requests);
        request["id"] = json!(id);
        self.ws
            .send(Message::text(request.to_string()))
            .await
            .map_err(|e| DeskError::Gone(format!("{}: send: {e}", self.agent)))?;
        let mut pushes = Vec::new();
        loop {
            let frame = self.next_frame(REPLY_WAIT).await?.ok_or_else(|| {
                DeskError::Broken(format!(
                    "{}: no reply to {request} within {REPLY_WAIT:?}",
                    self.agent
                ))
            })?;
            match frame["type"].as_str() {
                Some("push") => pushes.push(frame),
                Some("ok" | "error") if frame["id"] == id.as_str() => return Ok((frame, pushes)),
                _ => {
                    return Err(DeskError::Broken(format!(
                        "{}: waiting for the reply to {request}, got {frame}",
                        self.agent
                    )))
                }
            }
        }
    }

    /// A read-only request for the checker: retried while the connection's frame budget (50 a
    /// second) is used up. The wait lets the budget refill; it does not wait for any state.
    pub(crate) async fn query(&mut self, request: Value) -> Result<Value, DeskError> {
        for _ in 0..60 {
            let (reply, _) = self.request(request.clone()).await?;
            if reply["code"] != "rate_limited" {
                return Ok(reply);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(DeskError::Broken(format!(
            "{}: rate limited for good on {request}",
            self.agent
        )))
    }
}
