//! Exhaustion (SECURITY.md): what one client may take of the engine, and what happens to the
//! client that takes more. Everyone else carries on.
//!
//! Proven elsewhere: a frame over 64 KiB gets `bad_request` and the connection stays
//! (`bad_input::r18_broken_frames_get_a_bad_request_naming_the_problem_and_change_nothing`); a
//! client that stops reading is cut off with 4008 and catches up on reconnect
//! (`reconnect::r17_a_connection_that_does_not_read_is_cut_off_and_catches_up_on_reconnect`).

use std::sync::atomic::Ordering;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use switchboard::engine::EngineConfig;
use switchboard::gateway::connection::HARD_FRAME_LIMIT;
use switchboard::ids::AgentId;
use switchboard::security::Security;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::support::{schema, TestServer, WAIT};

type RawSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens an agent socket with `token`, bypassing the harness (which checks every frame it
/// sends), and reads the welcome.
async fn raw_connect(server: &TestServer, token: &str) -> RawSocket {
    let url = format!("ws://{}/v1/agent/ws?token={token}", server.addr);
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url.as_str()))
        .await
        .expect("connecting timed out")
        .expect("the upgrade is accepted");
    let welcome = next_frame(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome:#}");
    ws
}

/// The next text frame, checked against the schema; panics on anything else.
async fn next_frame(ws: &mut RawSocket) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no frame in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).expect("JSON");
                schema::check(schema::SERVER_FRAME, &frame);
                return frame;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads until the server closes; returns the text frames before the close, and its code.
async fn frames_until_close(ws: &mut RawSocket) -> (Vec<Value>, u16) {
    let mut frames = Vec::new();
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap_or_else(|_| panic!("the server did not close; got {} frames", frames.len()));
        match message {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).expect("JSON");
                schema::check(schema::SERVER_FRAME, &frame);
                frames.push(frame);
            }
            Some(Ok(Message::Close(Some(close)))) => return (frames, u16::from(close.code)),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!(
                "expected a close frame, got {other:?} after {} frames",
                frames.len()
            ),
        }
    }
}

#[tokio::test]
async fn an_agent_over_its_connection_limit_is_refused_with_429_while_its_others_carry_on() {
    let security = Security {
        max_connections_per_agent: 2,
        ..Security::default()
    };
    let server = TestServer::start_secured(EngineConfig::default(), security).await;
    let ana = server.agent("ana");
    let (mut laptop, mut phone) = (ana.connect().await, ana.connect().await);

    let url = format!("ws://{}/v1/agent/ws?token=ana-token", server.addr);
    let refused = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url.as_str()))
        .await
        .expect("the upgrade is answered in time");
    match refused {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).expect("a JSON body");
            assert_eq!(body["code"], "rate_limited", "{body:#}");
        }
        Err(other) => panic!("expected 429, got {other}"),
        Ok(_) => panic!("a third connection was accepted"),
    }

    assert_eq!(laptop.ping().await.expect_ok()["kind"], "pong");
    assert_eq!(phone.ping().await.expect_ok()["kind"], "pong");
    let mut bob = server.agent("bob").connect().await;
    assert_eq!(
        bob.ping().await.expect_ok()["kind"],
        "pong",
        "other agents connect"
    );
    assert_eq!(server.engine.fanout().connections(&AgentId::from("ana")), 2);
    // The limit counts open connections: one closed makes room for another.
    phone.disconnect().await;
    let mut tablet = ana.connect().await;
    assert_eq!(tablet.ping().await.expect_ok()["kind"], "pong");
    server.check_invariants();
}

#[tokio::test]
async fn a_flood_of_frames_gets_rate_limited_then_is_closed_with_4029_and_others_carry_on() {
    // A burst of 20; the 40th refusal closes.
    let security = Security {
        frames_per_second: 10,
        ..Security::default()
    };
    let burst = 20;
    let server = TestServer::start_secured(EngineConfig::default(), security).await;
    server.agent("ana");
    let mut bob = server.agent("bob").connect().await;
    let ana = raw_connect(&server, "ana-token").await;
    let pushes = server.engine.fanout().pushes_total.load(Ordering::Relaxed);
    let bob_before = server.agent_status("bob").await;

    // Ten bursts' worth of pings, as fast as the socket takes them, while reading.
    let (mut tx, mut rx) = ana.split();
    let sender = tokio::spawn(async move {
        for i in 0..10 * burst {
            let ping = format!(r#"{{"id": "p{i}", "type": "ping"}}"#);
            if tx.feed(Message::text(ping)).await.is_err() {
                return;
            }
        }
        let _ = tx.flush().await;
    });
    let mut frames = Vec::new();
    let code = loop {
        let message = tokio::time::timeout(WAIT, rx.next())
            .await
            .unwrap_or_else(|_| panic!("ana was not closed; got {frames:#?}"));
        match message {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).expect("JSON");
                schema::check(schema::SERVER_FRAME, &frame);
                frames.push(frame);
            }
            Some(Ok(Message::Close(Some(close)))) => break u16::from(close.code),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!(
                "expected frames then a close, got {other:?} after {}: {:#?}",
                frames.len(),
                frames.last()
            ),
        }
    };
    let _ = tokio::time::timeout(WAIT, sender).await;

    assert_eq!(code, 4029);
    let pongs: Vec<&Value> = frames.iter().filter(|f| f["type"] == "ok").collect();
    let refused: Vec<&Value> = frames.iter().filter(|f| f["type"] == "error").collect();
    assert!(pongs.len() >= burst, "the burst passes: {} pongs", pongs.len());
    assert!(!refused.is_empty(), "refusals come before the close");
    assert!(
        pongs.len() + refused.len() < 10 * burst,
        "not every frame was answered before the close"
    );
    for error in &refused {
        assert_eq!(error["code"], "rate_limited", "{error:#}");
        let id = error["id"].as_str().unwrap_or_default();
        assert!(id.starts_with('p'), "a refusal names its request: {error:#}");
        assert!(
            !pongs.iter().any(|p| p["id"] == id),
            "{id} was both answered and refused"
        );
    }

    assert_eq!(bob.ping().await.expect_ok()["kind"], "pong", "others carry on");
    bob.expect_silence().await;
    assert_eq!(server.agent_status("bob").await, bob_before);
    assert_eq!(
        server.engine.fanout().pushes_total.load(Ordering::Relaxed),
        pushes,
        "the flood changed nothing"
    );
    let mut ana = server.agent("ana").connect().await;
    assert_eq!(ana.ping().await.expect_ok()["kind"], "pong", "slowed down, back");
    server.check_invariants();
}

#[tokio::test]
async fn a_frame_over_1_mib_closes_the_connection_with_1009_and_others_carry_on() {
    let server = TestServer::start().await;
    server.agent("ana");
    let mut bob = server.agent("bob").connect().await;
    let mut ana = raw_connect(&server, "ana-token").await;

    // The server refuses it from its header and closes; the rest of it may no longer be taken.
    let _ = ana.send(Message::text("x".repeat(HARD_FRAME_LIMIT + 1))).await;
    let (_, code) = frames_until_close(&mut ana).await;

    assert_eq!(code, 1009);
    assert_eq!(bob.ping().await.expect_ok()["kind"], "pong", "others carry on");
    let mut ana = server.agent("ana").connect().await;
    assert_eq!(ana.ping().await.expect_ok()["kind"], "pong");
    server.check_invariants();
}

/// Running out of file descriptors: the real binary under a low limit.
#[cfg(target_os = "linux")]
mod descriptors {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    use super::WAIT;

    /// The engine's descriptor limit: room for a few dozen connections.
    const FD_LIMIT: usize = 64;

    /// How long a request goes unanswered before the engine counts as out of descriptors; axum
    /// retries a failed accept every second.
    const STALLED: Duration = Duration::from_secs(2);

    /// `switchboard` with demo agents on a free port, limited to [`FD_LIMIT`] descriptors;
    /// killed when dropped.
    struct Engine {
        child: Child,
        addr: SocketAddr,
        log: mpsc::Receiver<String>,
    }

    impl Engine {
        fn start() -> Self {
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(format!(r#"ulimit -n {FD_LIMIT} && exec "$0" "$@""#))
                .arg(env!("CARGO_BIN_EXE_switchboard"))
                // About descriptors, not data: no database to leave behind.
                .args(["--listen", "127.0.0.1:0", "--durability", "memory"])
                .env_remove("SWITCHBOARD_CONFIG")
                .env_remove("SWITCHBOARD_LISTEN")
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn switchboard");
            let stdout = child.stdout.take().expect("piped stdout");
            let (lines, log) = mpsc::channel();
            // Drains the log for as long as the engine runs, so that it never blocks on it.
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = lines.send(line);
                }
            });
            let mut engine = Self {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                log,
            };
            let listening = engine.wait_for_log("switchboard listening");
            let addr = listening
                .split_whitespace()
                .find_map(|field| field.strip_prefix("addr="))
                .and_then(|addr| addr.parse().ok())
                .unwrap_or_else(|| panic!("no address in {listening}"));
            engine.addr = addr;
            engine
        }

        /// The first log line from now on that contains `text`.
        fn wait_for_log(&mut self, text: &str) -> String {
            loop {
                match self.log.recv_timeout(WAIT) {
                    Ok(line) if line.contains(text) => return line,
                    Ok(_) => {}
                    Err(e) => panic!("no log line with `{text}`: {e}"),
                }
            }
        }

        /// CPU time the engine has used, in clock ticks (user and system).
        fn cpu_ticks(&self) -> u64 {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("/proc");
            // After the command name: state is field 3, utime 14 and stime 15.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .expect("a stat line")
                .1
                .split_whitespace()
                .collect();
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
        }
    }

    impl Drop for Engine {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A connection with one `GET /healthz` sent on it.
    fn healthz(addr: SocketAddr) -> TcpStream {
        let mut conn = TcpStream::connect(addr).expect("the kernel completes the handshake");
        conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: switchboard\r\n\r\n")
            .expect("send the request");
        conn
    }

    /// Reads the answer to [`healthz`] within `within`: whether it came.
    fn answered(conn: &mut TcpStream, within: Duration) -> bool {
        conn.set_read_timeout(Some(within)).expect("a read timeout");
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while !got.ends_with(b"\r\n\r\nok") {
            match conn.read(&mut buf) {
                Ok(0) => panic!(
                    "the engine closed the connection: {}",
                    String::from_utf8_lossy(&got)
                ),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(e) => panic!("read failed: {e}"),
            }
        }
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        true
    }

    #[test]
    fn running_out_of_file_descriptors_makes_the_accept_loop_back_off_and_recover() {
        let mut engine = Engine::start();
        let mut held = Vec::new();
        let (mut stalled, spent) = loop {
            assert!(
                held.len() < FD_LIMIT,
                "{} connections and none refused",
                held.len()
            );
            let before = engine.cpu_ticks();
            let mut conn = healthz(engine.addr);
            if answered(&mut conn, STALLED) {
                held.push(conn);
            } else {
                break (conn, engine.cpu_ticks() - before);
            }
        };
        engine.wait_for_log("Too many open files");

        assert!(
            held.len() > FD_LIMIT / 2,
            "out of descriptors after {}",
            held.len()
        );
        // A loop retrying at once would burn a core: 200 ticks in those 2 s (at 100 a second).
        assert!(spent < 50, "{spent} ticks of CPU while out of descriptors");
        assert!(
            engine.child.try_wait().expect("the engine's status").is_none(),
            "it crashed"
        );
        drop(held);
        assert!(
            answered(&mut stalled, WAIT),
            "the waiting connection is served once descriptors are free"
        );
        let mut fresh = healthz(engine.addr);
        assert!(answered(&mut fresh, WAIT), "new connections are served");
    }
}
