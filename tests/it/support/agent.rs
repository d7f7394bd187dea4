//! An agent and its WebSocket connections.
//!
//! An [`AgentClient`] is one connection (a tab). It reads frames in order: replies go to the
//! request that waits for them, pushes are buffered until a test asks for them by kind. Every
//! push is checked to continue the agent's sequence without a gap (R17), and every frame both
//! ways is checked against the published schemas.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Index;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::customer::Customer;
use super::{schema, WAIT};
use switchboard::clock::Timestamp;

/// A registered agent; each [`Agent::connect`] opens one more connection of it.
#[derive(Clone, Debug)]
pub(crate) struct Agent {
    id: String,
    token: String,
    addr: SocketAddr,
    /// Where the API is: `/v1`, or a workspace's `/v1/w/{workspace}` (R27).
    api: String,
}

impl Agent {
    pub(super) fn new(id: &str, token: &str, addr: SocketAddr) -> Self {
        Self {
            id: id.to_owned(),
            token: token.to_owned(),
            addr,
            api: "/v1".to_owned(),
        }
    }

    /// The same agent, connecting through workspace `workspace`'s paths (`/v1/w/{workspace}/…`).
    pub(crate) fn in_workspace(&self, workspace: &str) -> Self {
        Self {
            api: format!("/v1/w/{workspace}"),
            ..self.clone()
        }
    }

    /// The same agent, connecting to the node at `addr` (a cluster's other node, R28).
    pub(crate) fn via(&self, addr: SocketAddr) -> Self {
        Self { addr, ..self.clone() }
    }

    /// Opens a connection and reads its `welcome`.
    pub(crate) async fn connect(&self) -> AgentClient {
        let url = format!("ws://{}{}/agent/ws?token={}", self.addr, self.api, self.token);
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url.as_str()))
            .await
            .unwrap_or_else(|_| panic!("{}: connecting timed out", self.id))
            .unwrap_or_else(|e| panic!("{}: cannot connect: {e}", self.id));
        let mut client = AgentClient {
            id: self.id.clone(),
            ws,
            pushes: VecDeque::new(),
            last_seq: 0,
            welcome: Value::Null,
        };
        let welcome = match tokio::time::timeout(WAIT, client.read_frame()).await {
            Ok(frame) => frame,
            Err(_) => client.timed_out("welcome"),
        };
        assert_eq!(
            welcome["type"], "welcome",
            "{}: the first frame: {welcome:#}",
            self.id
        );
        client.last_seq = welcome["seq"].as_u64().expect("welcome carries a seq");
        client.welcome = welcome;
        // A connection brings an offline agent online, and that is pushed right after the
        // welcome: part of connecting, so it is consumed here (the seq check still sees it).
        client.ping().await.expect_ok();
        client
            .pushes
            .retain(|p| !(p.event["kind"] == "presence_changed" && p.event["presence"] == "online"));
        client
    }
}

/// A push as it arrived: its sequence number and its event.
#[derive(Clone, Debug)]
pub(crate) struct Pushed {
    /// The agent's sequence number (R17).
    pub(crate) seq: u64,
    /// The event; `event["kind"]` says what happened.
    pub(crate) event: Value,
}

impl Pushed {
    /// The event's kind (`chat_offered`, `chat_reopened`, …).
    pub(crate) fn kind(&self) -> &str {
        self.event["kind"].as_str().unwrap_or_default()
    }
}

impl Index<&str> for Pushed {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        &self.event[key]
    }
}

/// The one `ok` or `error` frame answering a request.
#[derive(Clone, Debug)]
pub(crate) struct Reply(pub(crate) Value);

impl Reply {
    /// The result of a successful request; panics with the frame on an error.
    #[track_caller]
    pub(crate) fn expect_ok(self) -> Value {
        assert_eq!(self.0["type"], "ok", "expected ok, got {:#}", self.0);
        self.0["result"].clone()
    }

    /// The error frame; panics unless the request failed with `code`.
    #[track_caller]
    pub(crate) fn expect_error(self, code: &str) -> Value {
        assert_eq!(self.0["type"], "error", "expected error {code}, got {:#}", self.0);
        assert_eq!(self.0["code"], code, "expected error {code}, got {:#}", self.0);
        self.0
    }

    /// Whether the request succeeded.
    pub(crate) fn is_ok(&self) -> bool {
        self.0["type"] == "ok"
    }
}

/// One WebSocket connection of an agent.
pub(crate) struct AgentClient {
    id: String,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Pushes read but not yet asked for, in arrival order.
    pushes: VecDeque<Pushed>,
    /// The highest sequence number seen on this connection.
    last_seq: u64,
    welcome: Value,
}

impl fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentClient")
            .field("id", &self.id)
            .field("last_seq", &self.last_seq)
            .field("pushes", &self.pushes)
            .finish()
    }
}

impl AgentClient {
    /// The agent's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The `welcome` frame this connection started with.
    pub(crate) fn welcome(&self) -> &Value {
        &self.welcome
    }

    /// The highest sequence number this connection has seen.
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    // ----- requests -------------------------------------------------------------------------

    /// Sends `request` with a fresh `id` and waits for its reply; pushes arriving meanwhile are
    /// kept for [`expect_push`](Self::expect_push).
    pub(crate) async fn request(&mut self, request: Value) -> Reply {
        // New for every request of the run, across connections: a repeated id is a retry (R17).
        let id = format!("{}-{}", self.id, super::next_request_number());
        self.request_as(&id, request).await
    }

    /// Sends `request` with `id` (a retry repeats one) and waits for its reply.
    pub(crate) async fn request_as(&mut self, id: &str, mut request: Value) -> Reply {
        request["id"] = json!(id);
        schema::check(schema::CLIENT_FRAME, &request);
        self.send(Message::text(request.to_string())).await;
        let reply = match tokio::time::timeout(WAIT, self.read_reply()).await {
            Ok(reply) => reply,
            Err(_) => self.timed_out(&format!("reply to {request}")),
        };
        assert_eq!(reply["id"], id, "{}: replies out of order: {reply:#}", self.id);
        Reply(reply)
    }

    /// Sends `text` as it is, bypassing the schema, and returns the reply (R18).
    pub(crate) async fn send_raw_text(&mut self, text: String) -> Value {
        self.send(Message::text(text)).await;
        match tokio::time::timeout(WAIT, self.read_reply()).await {
            Ok(reply) => reply,
            Err(_) => self.timed_out("reply to a raw text frame"),
        }
    }

    /// Sends a binary frame and returns the reply (R18).
    pub(crate) async fn send_raw_binary(&mut self, bytes: Vec<u8>) -> Value {
        self.send(Message::binary(bytes)).await;
        match tokio::time::timeout(WAIT, self.read_reply()).await {
            Ok(reply) => reply,
            Err(_) => self.timed_out("reply to a binary frame"),
        }
    }

    /// `reopen` (R02–R04).
    pub(crate) async fn reopen(&mut self, chat: &str) -> Reply {
        self.request(json!({ "type": "reopen", "chat_id": chat })).await
    }

    /// `accept` an offer (R06).
    pub(crate) async fn accept(&mut self, chat: &str) -> Reply {
        self.request(json!({ "type": "accept", "chat_id": chat })).await
    }

    /// `decline` an offer (R06).
    pub(crate) async fn decline(&mut self, chat: &str) -> Reply {
        self.request(json!({ "type": "decline", "chat_id": chat })).await
    }

    /// `close` a chat (R12).
    pub(crate) async fn close(&mut self, chat: &str) -> Reply {
        self.request(json!({ "type": "close", "chat_id": chat })).await
    }

    /// `send_message` (R07, R12).
    pub(crate) async fn send_message(&mut self, chat: &str, text: &str) -> Reply {
        self.request(json!({ "type": "send_message", "chat_id": chat, "text": text }))
            .await
    }

    /// `send_template`, the one push after the window (R07).
    pub(crate) async fn send_template(&mut self, chat: &str, template: &str) -> Reply {
        self.request(json!({
            "type": "send_template",
            "chat_id": chat,
            "template": template,
            "params": ["Ana"],
        }))
        .await
    }

    /// `transfer` to another agent (R12); `force` ignores its limit.
    pub(crate) async fn transfer(&mut self, chat: &str, to: &str, force: bool) -> Reply {
        self.request(json!({ "type": "transfer", "chat_id": chat, "to": to, "force": force }))
            .await
    }

    /// `snooze` until a time, or with `None` until the customer replies (R13).
    pub(crate) async fn snooze(&mut self, chat: &str, until: Option<Timestamp>) -> Reply {
        self.request(json!({ "type": "snooze", "chat_id": chat, "until": until }))
            .await
    }

    /// `set_presence`.
    pub(crate) async fn set_presence(&mut self, presence: &str) -> Reply {
        self.request(json!({ "type": "set_presence", "presence": presence }))
            .await
    }

    /// `list_archive` of `scope` (`mine` or `all`), as its entries.
    pub(crate) async fn list_archive(&mut self, scope: &str) -> Vec<Value> {
        let result = self
            .request(json!({ "type": "list_archive", "scope": scope }))
            .await
            .expect_ok();
        result["entries"].as_array().cloned().unwrap_or_default()
    }

    /// `list_archive` with every field of `query` (`scope`, `state`, `query`, `limit`,
    /// `before`): the entries and the cursor of the next page.
    pub(crate) async fn list_archive_page(&mut self, query: Value) -> (Vec<Value>, Option<String>) {
        let mut request = json!({ "type": "list_archive" });
        request
            .as_object_mut()
            .expect("an object")
            .extend(query.as_object().cloned().unwrap_or_default());
        let result = self.request(request).await.expect_ok();
        let entries = result["entries"].as_array().cloned().unwrap_or_default();
        (entries, result["next"].as_str().map(str::to_owned))
    }

    /// The archive entry of one chat.
    pub(crate) async fn archive_entry(&mut self, chat: &str) -> Value {
        let entries = self.list_archive("all").await;
        entries
            .into_iter()
            .find(|e| e["chat_id"] == chat)
            .unwrap_or_else(|| panic!("chat {chat} is not in the archive"))
    }

    /// `watch_archive`: the entries this connection shows.
    pub(crate) async fn watch_archive(&mut self, chats: &[&str]) -> Reply {
        self.request(json!({ "type": "watch_archive", "chat_ids": chats }))
            .await
    }

    /// `get_chat`: the chat with the newest page of its history.
    pub(crate) async fn get_chat(&mut self, chat: &str) -> Reply {
        self.request(json!({ "type": "get_chat", "chat_id": chat })).await
    }

    /// `get_chat` of the page before `before_seq` (the newest with `None`), `limit` long.
    pub(crate) async fn get_chat_page(&mut self, chat: &str, before_seq: Option<u64>, limit: u32) -> Reply {
        self.request(json!({ "type": "get_chat", "chat_id": chat, "before_seq": before_seq, "limit": limit }))
            .await
    }

    /// `resume` after `after_seq` (R17).
    pub(crate) async fn resume(&mut self, after_seq: u64) -> Reply {
        self.request(json!({ "type": "resume", "after_seq": after_seq }))
            .await
    }

    /// `ack` up to `seq`.
    pub(crate) async fn ack(&mut self, seq: u64) -> Reply {
        self.request(json!({ "type": "ack", "seq": seq })).await
    }

    /// `ping`; its `pong` is a barrier: every push caused before it was sent has arrived.
    pub(crate) async fn ping(&mut self) -> Reply {
        self.request(json!({ "type": "ping" })).await
    }

    // ----- the story level ------------------------------------------------------------------

    /// The customer writes; the chat is offered to this agent, who takes it. Returns the chat.
    pub(crate) async fn serves(&mut self, customer: &Customer) -> String {
        let chat = customer.says("Hello").await.chat_id();
        self.takes(&chat).await;
        chat
    }

    /// Waits for the offer of `chat` and accepts it.
    pub(crate) async fn takes(&mut self, chat: &str) {
        let offer = self.expect_push("chat_offered").await;
        assert_eq!(offer["chat"]["id"], chat, "{}: offered another chat", self.id);
        let taken = self.accept(chat).await.expect_ok();
        assert_eq!(taken["chat"]["state"], "active");
        let activated = self.expect_push("chat_activated").await;
        assert_eq!(activated["by"], "accepted");
    }

    /// Closes `chat`, which must succeed, and takes the `chat_closed` push.
    pub(crate) async fn closes(&mut self, chat: &str) {
        self.close(chat).await.expect_ok();
        let closed = self.expect_push("chat_closed").await;
        assert_eq!(closed["chat_id"], chat);
    }

    // ----- pushes ---------------------------------------------------------------------------

    /// The next push of `kind`, waiting for it if none has arrived. Earlier pushes of other
    /// kinds stay buffered.
    pub(crate) async fn expect_push(&mut self, kind: &str) -> Pushed {
        if let Some(i) = self.pushes.iter().position(|p| p.kind() == kind) {
            return self.pushes.remove(i).expect("found above");
        }
        match tokio::time::timeout(WAIT, self.read_push_of(kind)).await {
            Ok(frame) => Pushed::from(frame),
            Err(_) => self.timed_out(&format!("`{kind}` push")),
        }
    }

    /// Asserts that no push of `kind` has arrived. Sound without waiting: the pong comes
    /// after every push caused before the ping (call it after the causing request returned).
    pub(crate) async fn expect_no_push(&mut self, kind: &str) {
        self.ping().await.expect_ok();
        let unexpected: Vec<&Pushed> = self.pushes.iter().filter(|p| p.kind() == kind).collect();
        assert!(
            unexpected.is_empty(),
            "{}: expected no `{kind}` push, got {unexpected:#?}",
            self.id
        );
    }

    /// Asserts that no push at all is waiting to be looked at.
    pub(crate) async fn expect_silence(&mut self) {
        self.ping().await.expect_ok();
        assert!(
            self.pushes.is_empty(),
            "{}: expected no pushes, got {:#?}",
            self.id,
            self.pushes
        );
    }

    /// Every push that arrived until now (a ping barrier), in order.
    pub(crate) async fn drain_pushes(&mut self) -> Vec<Pushed> {
        self.ping().await.expect_ok();
        self.pushes.drain(..).collect()
    }

    // ----- closing --------------------------------------------------------------------------

    /// Closes the connection and waits until the server has let go of it (it drops the socket
    /// only after the engine has forgotten the connection).
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

    /// Waits for the server to close the connection; returns the close code and reason.
    pub(crate) async fn expect_close(&mut self) -> (u16, String) {
        let read = tokio::time::timeout(WAIT, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Close(frame))) => {
                        return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    }
                    Some(Ok(Message::Text(text))) => {
                        let frame = self.checked(&text);
                        self.keep_push(frame);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return None,
                }
            }
        })
        .await;
        match read {
            Ok(Some(close)) => close,
            Ok(None) => panic!("{}: the connection ended without a close frame", self.id),
            Err(_) => panic!("{}: the server did not close the connection", self.id),
        }
    }

    // ----- reading --------------------------------------------------------------------------

    async fn send(&mut self, message: Message) {
        self.ws
            .send(message)
            .await
            .unwrap_or_else(|e| panic!("{}: send failed: {e}", self.id));
    }

    /// Fails the test: nothing came in time. Names what was buffered.
    fn timed_out(&self, what: &str) -> ! {
        panic!(
            "{}: no {what} within {WAIT:?}; pushes not yet looked at: {:#?}",
            self.id, self.pushes
        )
    }

    /// The next `ok` or `error` frame; pushes before it are buffered.
    async fn read_reply(&mut self) -> Value {
        loop {
            let frame = self.read_frame().await;
            match frame["type"].as_str() {
                Some("ok" | "error") => return frame,
                Some("push") => self.keep_push(frame),
                _ => panic!("{}: unexpected frame {frame:#}", self.id),
            }
        }
    }

    /// The next push of `kind` as a frame; other pushes are buffered.
    async fn read_push_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.read_frame().await;
            if frame["type"] != "push" {
                panic!("{}: a reply nobody asked for: {frame:#}", self.id);
            }
            if frame["event"]["kind"] == kind {
                return frame;
            }
            self.keep_push(frame);
        }
    }

    /// The next text frame, checked against the schema and the sequence.
    async fn read_frame(&mut self) -> Value {
        loop {
            let message = match self.ws.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => panic!("{}: read failed: {e}; buffered: {:#?}", self.id, self.pushes),
                None => panic!("{}: the server closed the connection", self.id),
            };
            match message {
                Message::Text(text) => return self.checked(&text),
                Message::Close(frame) => panic!("{}: closed by the server: {frame:?}", self.id),
                Message::Binary(_) => panic!("{}: the server sent a binary frame", self.id),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    fn checked(&mut self, text: &str) -> Value {
        let frame: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{}: the server sent malformed JSON ({e}): {text}", self.id));
        schema::check(schema::SERVER_FRAME, &frame);
        if frame["type"] == "push" {
            let seq = frame["seq"].as_u64().expect("a push carries a seq");
            // Replays of a resume repeat older numbers; anything new must come next in line.
            if seq > self.last_seq {
                assert_eq!(
                    seq,
                    self.last_seq + 1,
                    "{}: a gap in the sequence: {frame:#}",
                    self.id
                );
                self.last_seq = seq;
            }
        }
        frame
    }

    fn keep_push(&mut self, frame: Value) {
        if frame["type"] == "push" {
            self.pushes.push_back(Pushed::from(frame));
        }
    }
}

impl From<Value> for Pushed {
    /// From a `push` frame.
    fn from(frame: Value) -> Self {
        Pushed {
            seq: frame["seq"].as_u64().expect("a push carries a seq"),
            event: frame["event"].clone(),
        }
    }
}
