//! The client side of Socket.IO (protocol 5 over Engine.IO 4, WebSocket transport only), as
//! far as the harness needs it to drive the peer (`load-tests/peer`) over the same
//! tokio-tungstenite client it drives the engine and the floor with: what differs is the
//! server, not the client.
//!
//! A session, one packet per WebSocket text frame:
//! - `GET /socket.io/?EIO=4&transport=websocket&token=…` (upgrade);
//! - the server's Engine.IO open packet `0{"sid":…,"pingInterval":…,…}`;
//! - the client connects to the main namespace with `40`, the server accepts with `40{"sid":…}`;
//! - events both ways are `42["frame",<frame>]`, where `<frame>` is the JSON object the engine
//!   and the floor send bare (the welcome is the first one);
//! - the server pings with `2` every `pingInterval` (25 s by default) and closes the session if
//!   no `3` comes back within `pingTimeout`.
//!
//! Unwrapping an event is two slice operations and wrapping one a `format!`, so the client
//! does about the work it does for a bare frame.

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::fleet::Ws;

/// The path and query of the Socket.IO WebSocket, before the token.
pub(crate) const PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// What a `frame` event starts with.
const EVENT_HEAD: &str = r#"42["frame","#;

/// The client's answer to a ping.
pub(crate) const PONG: &str = "3";

/// One packet from the server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Packet<'a> {
    /// A `frame` event: the JSON object inside.
    Frame(&'a str),
    /// An Engine.IO ping: answer [`PONG`].
    Ping,
    /// The server closed the namespace (`41`) or the session (`1`).
    Closed,
    /// Anything else (the harness sends nothing that would cause it).
    Other(&'a str),
}

/// Reads one packet.
pub(crate) fn packet(text: &str) -> Packet<'_> {
    if let Some(frame) = text.strip_prefix(EVENT_HEAD).and_then(|t| t.strip_suffix(']')) {
        return Packet::Frame(frame);
    }
    match text {
        "2" => Packet::Ping,
        "1" | "41" => Packet::Closed,
        _ => Packet::Other(text),
    }
}

/// A request frame as a `frame` event.
pub(crate) fn event(frame: &str) -> String {
    format!("{EVENT_HEAD}{frame}]")
}

/// The Engine.IO open and the Socket.IO namespace connect, right after the upgrade; the
/// `welcome` frame comes next.
pub(crate) async fn handshake(ws: &mut Ws) -> anyhow::Result<()> {
    let open = next_text(ws).await?;
    anyhow::ensure!(
        open.starts_with("0{"),
        "expected the Engine.IO open packet, got {open:?}"
    );
    ws.send(Message::text("40")).await?;
    let connected = next_text(ws).await?;
    anyhow::ensure!(
        connected.starts_with("40"),
        "expected the namespace connect, got {connected:?}"
    );
    Ok(())
}

async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws
            .next()
            .await
            .context("closed during the Socket.IO handshake")??
        {
            Message::Text(text) => return Ok(text.as_str().to_owned()),
            Message::Close(close) => anyhow::bail!("closed during the Socket.IO handshake: {close:?}"),
            _ => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_packets_the_peer_sends() {
        assert_eq!(
            packet(r#"42["frame",{"type":"ok","id":"r:1","result":{"kind":"done"}}]"#),
            Packet::Frame(r#"{"type":"ok","id":"r:1","result":{"kind":"done"}}"#)
        );
        assert_eq!(packet("2"), Packet::Ping);
        assert_eq!(packet("41"), Packet::Closed);
        assert_eq!(packet("1"), Packet::Closed);
        // Another event, or an acknowledgement, is not a frame.
        assert_eq!(packet(r#"42["other",{}]"#), Packet::Other(r#"42["other",{}]"#));
        assert_eq!(packet(r#"431[{}]"#), Packet::Other("431[{}]"));
    }

    #[test]
    fn wraps_a_request() {
        assert_eq!(
            event(r#"{"id":"r:1","type":"reopen","chat_id":"c1"}"#),
            r#"42["frame",{"id":"r:1","type":"reopen","chat_id":"c1"}]"#
        );
    }
}

/// The peer itself, started as the harness starts it, on 127.0.0.1.
#[cfg(test)]
mod peer_tests {
    use std::time::Duration;

    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    use super::*;
    use crate::fleet::{self, Dialect};
    use crate::target;
    use crate::wire;

    /// The next `frame` event's JSON, answering pings on the way.
    async fn next_frame(ws: &mut Ws) -> anyhow::Result<String> {
        loop {
            let text = next_text(ws).await?;
            match packet(&text) {
                Packet::Frame(frame) => return Ok(frame.to_owned()),
                Packet::Ping => ws.send(Message::text(PONG)).await?,
                other => anyhow::bail!("expected a frame, got {other:?}"),
            }
        }
    }

    /// `(type, id or event kind, seq)` of a frame.
    fn summary(text: &str) -> (String, String, Option<u64>) {
        let frame = wire::parse(text).expect("the peer sends the floor's frames");
        let what = match (&frame.event, &frame.id) {
            (Some(event), _) => event.kind.to_string(),
            (None, Some(id)) => id.to_string(),
            (None, None) => String::new(),
        };
        (frame.kind.into_owned(), what, frame.seq)
    }

    async fn reopen_then_customer_reply() -> anyhow::Result<()> {
        let client = crate::http::client(2)?;
        let peer = target::spawn_peer(&client).await?;
        let ws = peer.ws_base();
        // Two tabs of one agent: the second sees what the first did.
        let (mut first, seq) = fleet::connect_agent(&ws, "/v1", "t-ana", Dialect::SocketIo).await?;
        assert_eq!(seq, 0);
        let (mut second, seq) = fleet::connect_agent(&ws, "/v1", "t-ana", Dialect::SocketIo).await?;
        assert_eq!(seq, 0);

        let reopen = wire::request(format_args!("r:1"), "reopen", "cust-1");
        first.send(Message::text(event(&reopen))).await?;
        let ok = ("ok".to_owned(), "r:1".to_owned(), None);
        let reopened = ("push".to_owned(), "chat_reopened".to_owned(), Some(1));
        assert_eq!(summary(&next_frame(&mut first).await?), ok);
        assert_eq!(summary(&next_frame(&mut first).await?), reopened);
        assert_eq!(summary(&next_frame(&mut second).await?), reopened);

        // The customer writes over HTTP: forwarded to the chat's owner, on every tab.
        let receipt: serde_json::Value = client
            .post(format!("{}/v1/channels/webchat/messages", peer.base))
            .json(&serde_json::json!({ "from": "cust-1", "text": "thanks" }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        assert_eq!(receipt["chat_id"], "cust-1");
        let activated = ("push".to_owned(), "chat_activated".to_owned(), Some(2));
        let message = ("push".to_owned(), "customer_message".to_owned(), Some(3));
        assert_eq!(summary(&next_frame(&mut second).await?), activated);
        assert_eq!(summary(&next_frame(&mut second).await?), message);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_peer_answers_and_forwards_over_socket_io() {
        if target::node_version().is_none() {
            eprintln!(
                "SKIPPED: node is not installed, so the Socket.IO peer cannot run \
                 (install Node.js >= 20, then `npm ci --prefix load-tests/peer`)"
            );
            return;
        }
        tokio::time::timeout(Duration::from_secs(20), reopen_then_customer_reply())
            .await
            .expect("the round trip took more than 20 s")
            .expect("the round trip works");
    }
}
