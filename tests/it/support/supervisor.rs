//! A supervisor and its WebSocket connection to the board (R14, R15).
//!
//! A [`SupervisorClient`] reads frames in order: replies go to the request that waits for
//! them, board events (unpacked from `pushes` frames) are kept until a test asks for them.
//! Every event is checked to come after the one before it, and every frame both ways against
//! the published schemas.

use std::collections::VecDeque;
use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::agent::Reply;
use super::{schema, WAIT};

/// A registered supervisor; each [`Supervisor::connect`] opens one more connection.
#[derive(Clone, Debug)]
pub(crate) struct Supervisor {
    id: String,
    token: String,
    addr: SocketAddr,
    /// Where the API is: `/v1`, or a workspace's `/v1/w/{workspace}` (R27).
    api: String,
}

impl Supervisor {
    pub(super) fn new(id: &str, token: &str, addr: SocketAddr) -> Self {
        Self {
            id: id.to_owned(),
            token: token.to_owned(),
            addr,
            api: "/v1".to_owned(),
        }
    }

    /// The same supervisor, connecting through workspace `workspace`'s paths (`/v1/w/{workspace}/…`).
    pub(crate) fn in_workspace(&self, workspace: &str) -> Self {
        Self {
            api: format!("/v1/w/{workspace}"),
            ..self.clone()
        }
    }

    /// The same supervisor, connecting to the node at `addr` (a cluster's other node, R28).
    pub(crate) fn via(&self, addr: SocketAddr) -> Self {
        Self { addr, ..self.clone() }
    }

    /// Opens a connection and reads its `welcome`; nothing is pushed until it subscribes.
    pub(crate) async fn connect(&self) -> SupervisorClient {
        let url = format!(
            "ws://{}{}/supervisor/ws?token={}",
            self.addr, self.api, self.token
        );
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url.as_str()))
            .await
            .unwrap_or_else(|_| panic!("{}: connecting timed out", self.id))
            .unwrap_or_else(|e| panic!("{}: cannot connect: {e}", self.id));
        let mut client = SupervisorClient {
            id: self.id.clone(),
            ws,
            events: VecDeque::new(),
            last_seq: 0,
            welcome: Value::Null,
        };
        let welcome = tokio::time::timeout(WAIT, client.read_frame())
            .await
            .unwrap_or_else(|_| panic!("{}: no welcome", self.id));
        assert_eq!(
            welcome["type"], "welcome",
            "{}: the first frame: {welcome:#}",
            self.id
        );
        client.welcome = welcome;
        client
    }
}

/// One supervisor connection.
pub(crate) struct SupervisorClient {
    id: String,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Board events read but not yet asked for, in order.
    events: VecDeque<Value>,
    /// The highest sequence number seen on this connection.
    last_seq: u64,
    welcome: Value,
}

impl SupervisorClient {
    /// The `welcome` frame.
    pub(crate) fn welcome(&self) -> &Value {
        &self.welcome
    }

    /// The highest sequence number of a board event seen (or of the board received).
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Sends `request` with a fresh `id` and waits for its reply; events arriving meanwhile
    /// are kept.
    pub(crate) async fn request(&mut self, request: Value) -> Reply {
        // New for every request of the run, across connections: a repeated id is a retry (R17).
        let id = format!("{}-{}", self.id, super::next_request_number());
        self.request_as(&id, request).await
    }

    /// Sends `request` with `id` (a retry repeats one) and waits for its reply.
    pub(crate) async fn request_as(&mut self, id: &str, mut request: Value) -> Reply {
        request["id"] = json!(id);
        schema::check(schema::SUPERVISOR_FRAME, &request);
        self.ws
            .send(Message::text(request.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{}: send failed: {e}", self.id));
        let reply = tokio::time::timeout(WAIT, async {
            loop {
                let frame = self.read_frame().await;
                match frame["type"].as_str() {
                    Some("ok" | "error") => return frame,
                    _ => self.keep(frame),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{}: no reply to {request}", self.id));
        assert_eq!(reply["id"], id, "{}: replies out of order: {reply:#}", self.id);
        Reply(reply)
    }

    /// Subscribes to every queue and returns the board.
    pub(crate) async fn subscribe_all(&mut self) -> Value {
        self.start(json!({ "type": "subscribe" })).await
    }

    /// Subscribes to `queues` and returns the board.
    pub(crate) async fn subscribe(&mut self, queues: &[&str]) -> Value {
        self.start(json!({ "type": "subscribe", "queues": queues })).await
    }

    async fn start(&mut self, request: Value) -> Value {
        let board = self.request(request).await.expect_ok();
        assert_eq!(board["kind"], "board", "{board:#}");
        // Events that came before the board belong to an earlier subscription: it covers
        // them, and what follows it continues from its number.
        self.events.clear();
        self.last_seq = board["seq"].as_u64().expect("a board carries its seq");
        board
    }

    /// Every event up to and including the first one `until` accepts, in order, waiting for
    /// them as long as it takes (within the harness's timeout).
    pub(crate) async fn events_until(&mut self, mut until: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            while let Some(event) = self.events.pop_front() {
                let done = until(&event);
                seen.push(event);
                if done {
                    return seen;
                }
            }
            let frame = tokio::time::timeout(WAIT, self.read_frame())
                .await
                .unwrap_or_else(|_| panic!("{}: waited in vain; saw {seen:#?}", self.id));
            self.keep(frame);
        }
    }

    /// The next event of `kind` that `matches` accepts; earlier events are dropped.
    pub(crate) async fn expect_event(&mut self, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let events = self.events_until(|e| e["kind"] == kind && matches(e)).await;
        events.last().cloned().expect("events_until returns the match")
    }

    /// Closes the connection and waits until the server has let go of it.
    pub(crate) async fn disconnect(mut self) {
        let _ = self.ws.close(None).await;
        let drained =
            tokio::time::timeout(WAIT, async { while let Some(Ok(_)) = self.ws.next().await {} }).await;
        assert!(
            drained.is_ok(),
            "{}: the server did not close the socket",
            self.id
        );
    }

    fn keep(&mut self, frame: Value) {
        assert_eq!(frame["type"], "pushes", "{}: unexpected frame {frame:#}", self.id);
        for event in frame["events"].as_array().expect("pushes carry events") {
            let seq = event["seq"].as_u64().expect("every event has a seq");
            assert!(
                seq > self.last_seq,
                "{}: event {seq} after {}: {event:#}",
                self.id,
                self.last_seq
            );
            self.last_seq = seq;
            self.events.push_back(event.clone());
        }
    }

    async fn read_frame(&mut self) -> Value {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {text}", self.id));
                    schema::check(schema::SUPERVISOR_SERVER_FRAME, &frame);
                    return frame;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("{}: the connection ended: {other:?}", self.id),
            }
        }
    }
}

/// Applies board events to a board, as a supervisor's screen would; for checking that the
/// events and a later board agree.
pub(crate) fn apply(board: &mut Value, event: &Value) {
    match event["kind"].as_str() {
        Some("agent_changed") => {
            let agents = board["agents"].as_array_mut().expect("agents");
            let row = event["agent"].clone();
            match agents.iter_mut().find(|a| a["id"] == row["id"]) {
                Some(a) => *a = row,
                None => agents.push(row),
            }
        }
        Some("agent_removed") => {
            let agents = board["agents"].as_array_mut().expect("agents");
            agents.retain(|a| a["id"] != event["agent_id"]);
        }
        Some("chat_queued") => {
            let queue = queue_of(board, &event["queue"]);
            let chat = event["chat"].clone();
            let at = chat["position"].as_u64().expect("a position") as usize - 1;
            queue.insert(at.min(queue.len()), chat);
            renumber(queue);
        }
        Some("chat_stepped") => {
            let queue = queue_of(board, &event["queue"]);
            let chat = event["chat"].clone();
            match queue.iter_mut().find(|c| c["chat_id"] == chat["chat_id"]) {
                Some(entry) => *entry = chat,
                None => panic!("chat_stepped for a chat not on the board: {event}"),
            }
        }
        Some("queue_hours") => {
            let id = event["queue"].clone();
            let queue = board["queues"]
                .as_array_mut()
                .and_then(|qs| qs.iter_mut().find(|q| q["id"] == id))
                .unwrap_or_else(|| panic!("queue {id} is not on the board"));
            queue["open"] = event["open"].clone();
        }
        Some("chat_left_queue") => {
            let queue = queue_of(board, &event["queue"]);
            queue.retain(|c| c["chat_id"] != event["chat_id"]);
            renumber(queue);
        }
        Some("chat_reopened") => board["reopened"]
            .as_array_mut()
            .expect("reopened")
            .push(event["chat"].clone()),
        Some("reopen_ended") => board["reopened"]
            .as_array_mut()
            .expect("reopened")
            .retain(|c| c["chat_id"] != event["chat_id"]),
        Some("kpis_changed") => board["kpis"] = event["kpis"].clone(),
        other => panic!("unknown board event {other:?}"),
    }
}

fn queue_of<'a>(board: &'a mut Value, id: &Value) -> &'a mut Vec<Value> {
    board["queues"]
        .as_array_mut()
        .and_then(|qs| qs.iter_mut().find(|q| q["id"] == *id))
        .and_then(|q| q["waiting"].as_array_mut())
        .unwrap_or_else(|| panic!("queue {id} is not on the board"))
}

fn renumber(queue: &mut [Value]) {
    for (i, chat) in queue.iter_mut().enumerate() {
        chat["position"] = json!(i + 1);
    }
}
