//! Exhaustion (SECURITY.md): what one client may take of the engine, and what happens to the
//! client that takes more. Everyone else carries on.
//!
//! Proven elsewhere: a frame over 64 KiB gets `bad_request` and the connection stays
//! (`bad_input::r18_broken_frames_get_a_bad_request_naming_the_problem_and_change_nothing`); a
//! client that stops reading is cut off with 4008 and catches up on reconnect
//! (`reconnect::r17_a_connection_that_does_not_read_is_cut_off_and_catches_up_on_reconnect`).

use std::sync::atomic::Ordering;

use chrono::Duration;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::core::Role;
use switchboard::engine::EngineConfig;
use switchboard::gateway::connection::HARD_FRAME_LIMIT;
use switchboard::ids::AgentId;
use switchboard::security::Security;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::platform;
use super::support::{refusal, schema, Backend, TestServer, WAIT};

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

// ----- Fairness between workspaces (R27) ---------------------------------------------------
// Servers that load their workspaces from their store (`TestServer::start_platform`), limits
// set over the platform API.

/// `PUT /v1/platform/workspaces/{ws}/limits` with `limits`, expecting 200; the workspace.
async fn set_limits(server: &TestServer, ws: &str, limits: Value) -> Value {
    let (status, body) = server
        .put_raw(
            &format!("/v1/platform/workspaces/{ws}/limits"),
            &limits.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    body
}

/// Asserts a 429 `code` whose message names `limit` and its value.
fn assert_over(answer: &(StatusCode, Value), code: &str, limit: &str) {
    let (status, body) = answer;
    assert_eq!(
        (*status, &body["code"]),
        (StatusCode::TOO_MANY_REQUESTS, &json!(code)),
        "{body:#}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains(limit)),
        "the message names {limit}: {body:#}"
    );
}

/// A platform server with workspaces `acme` and `globex`, each with agent `ana`.
async fn acme_and_globex() -> TestServer {
    acme_and_globex_on(Backend::Sqlite).await
}

/// [`acme_and_globex`] on `backend`.
async fn acme_and_globex_on(backend: Backend) -> TestServer {
    let server = TestServer::start_platform_on(backend, platform::security()).await;
    for ws in ["acme", "globex"] {
        platform::create(&server, ws).await;
        platform::create_agent(&server, ws, "ana", 2).await;
    }
    server
}

#[tokio::test]
async fn r27_a_workspace_at_its_connection_limit_does_not_stop_another() {
    let server = acme_and_globex().await;
    platform::create_agent(&server, "acme", "ben", 2).await;
    let acme = set_limits(&server, "acme", json!({ "max_connections": 1 })).await;
    assert_eq!(acme["limits"]["max_connections"], 1, "{acme:#}");

    let _ana = server
        .with_token("ana", &platform::token(&server, "acme", "ana"))
        .in_workspace("acme")
        .connect()
        .await;
    // Another agent of acme, and ana on a second tab: the workspace holds as many as it may.
    for agent in ["ben", "ana"] {
        let token = platform::token(&server, "acme", agent);
        let refused = refusal(&server, "/v1/w/acme/agent/ws", &token, None)
            .await
            .unwrap_or_else(|| panic!("{agent} connected past acme's limit"));
        assert_over(&refused, "quota_exceeded", "`max_connections` is 1");
    }
    // Supervisors' sockets count too.
    let (status, _) = server
        .post_raw(
            "/v1/w/acme/admin/agents",
            &json!({ "id": "sam", "role": "supervisor", "limit": 0 }).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let sam = platform::token_with_role(&server, "acme", "sam", Role::Supervisor);
    let refused = refusal(&server, "/v1/w/acme/supervisor/ws", &sam, None)
        .await
        .expect("a supervisor past acme's limit is refused");
    assert_over(&refused, "quota_exceeded", "`max_connections` is 1");

    // globex has no limit: its agent opens as many as its own limit per agent allows.
    let globex = server
        .with_token("ana", &platform::token(&server, "globex", "ana"))
        .in_workspace("globex");
    let _first = globex.connect().await;
    let mut second = globex.connect().await;
    let customer = server
        .customer("whatsapp", "+4915100002701")
        .in_workspace("globex");
    second.serves(&customer).await;
}

#[tokio::test]
async fn r27_ingress_rate_is_per_workspace() {
    let server = acme_and_globex().await;
    set_limits(&server, "acme", json!({ "ingress_per_second": 2 })).await;
    let acme = server.customer("whatsapp", "+4915100002711").in_workspace("acme");
    let globex = server
        .customer("whatsapp", "+4915100002712")
        .in_workspace("globex");

    // A burst of twice the rate, on a clock that does not move.
    for i in 0..4 {
        acme.says(&format!("acme {i}")).await;
    }
    let refused = acme.tries_to_say("one too many").await;
    assert_over(
        &refused,
        "rate_limited",
        "2 channel calls per second (`ingress_per_second`",
    );
    let refused = acme.tries_to_start_bot().await;
    assert_eq!(refused.0, StatusCode::TOO_MANY_REQUESTS, "{:#}", refused.1);
    // globex's calls are not acme's: none of them is refused.
    for i in 0..10 {
        globex.says(&format!("globex {i}")).await;
    }

    // A second on the engine's clock earns acme two calls back, and only two.
    server.clock.advance(Duration::seconds(1));
    acme.says("after a second").await;
    acme.says("and another").await;
    let refused = acme.tries_to_say("and one more").await;
    assert_over(&refused, "rate_limited", "`ingress_per_second`");
}

#[tokio::test]
async fn r27_a_workspace_over_its_stored_bytes_is_refused_and_the_store_keeps_writing_for_others() {
    a_workspace_over_its_stored_bytes_is_refused_and_the_store_keeps_writing_for_others(Backend::Sqlite)
        .await;
}

#[tokio::test]
async fn r27_a_workspace_over_its_stored_bytes_is_refused_and_the_store_keeps_writing_for_others_on_postgres()
{
    a_workspace_over_its_stored_bytes_is_refused_and_the_store_keeps_writing_for_others(Backend::Postgres)
        .await;
}

async fn a_workspace_over_its_stored_bytes_is_refused_and_the_store_keeps_writing_for_others(
    backend: Backend,
) {
    let server = acme_and_globex_on(backend).await;
    set_limits(&server, "acme", json!({ "max_stored_bytes": 10 })).await;
    let acme = server.customer("whatsapp", "+4915100002721").in_workspace("acme");
    let globex = server
        .customer("whatsapp", "+4915100002722")
        .in_workspace("globex");

    // Under the limit when it came: taken, and stored (ten bytes of text).
    acme.says("0123456789").await;
    let refused = acme.tries_to_say("one more").await;
    assert_over(&refused, "quota_exceeded", "`max_stored_bytes` is 10");
    let other = server.customer("sms", "+4915100002723").in_workspace("acme");
    assert_over(
        &other.tries_to_start_bot().await,
        "quota_exceeded",
        "`max_stored_bytes` is 10",
    );

    // The store was never asked to write past the quota, so it writes on for everyone else.
    for i in 0..5 {
        globex.says(&format!("globex {i}")).await;
    }
    server
        .customer("whatsapp", "+4915100002724")
        .says("default too")
        .await;

    // The count is stored beside the workspace: a restart neither forgets nor recounts it.
    let server = server.restart_platform(platform::security()).await;
    let acme = server.customer("whatsapp", "+4915100002721").in_workspace("acme");
    assert_over(
        &acme.tries_to_say("after the restart").await,
        "quota_exceeded",
        "the workspace stores 10 bytes",
    );
    let globex = server
        .customer("whatsapp", "+4915100002722")
        .in_workspace("globex");
    globex.says("globex after the restart").await;
    // Raised, the limit lets acme's customers in again.
    set_limits(&server, "acme", json!({ "max_stored_bytes": 1000 })).await;
    acme.says("after the raise").await;
}

#[tokio::test]
async fn r27_agents_beyond_the_limit_are_refused() {
    let server = acme_and_globex().await;
    set_limits(&server, "acme", json!({ "max_agents": 2 })).await;
    platform::create_agent(&server, "acme", "ben", 2).await;

    let cid = json!({ "id": "cid", "limit": 2 }).to_string();
    let refused = server.post_raw("/v1/w/acme/admin/agents", &cid).await;
    assert_over(&refused, "quota_exceeded", "`max_agents` is 2");
    // A batch with one new agent is refused whole.
    let batch = json!([{ "id": "ana", "limit": 3 }, { "id": "dan", "limit": 2 }]).to_string();
    let refused = server.post_raw("/v1/w/acme/admin/agents/batch", &batch).await;
    assert_over(&refused, "quota_exceeded", "`max_agents` is 2");
    assert_eq!(platform::agent_ids(&server, "acme").await, ["ana", "ben"]);
    // Changing an agent that exists is not a new one.
    platform::create_agent(&server, "acme", "ana", 3).await;

    // globex's agents are not counted against acme's.
    for agent in ["ben", "cid", "dan"] {
        platform::create_agent(&server, "globex", agent, 2).await;
    }
    assert_eq!(
        platform::agent_ids(&server, "globex").await,
        ["ana", "ben", "cid", "dan"]
    );
}

#[tokio::test]
async fn r27_limits_set_over_the_api_survive_a_restart() {
    limits_set_over_the_api_survive_a_restart(Backend::Sqlite).await;
}

#[tokio::test]
async fn r27_limits_set_over_the_api_survive_a_restart_on_postgres() {
    limits_set_over_the_api_survive_a_restart(Backend::Postgres).await;
}

async fn limits_set_over_the_api_survive_a_restart(backend: Backend) {
    let server = acme_and_globex_on(backend).await;
    let limits = json!({
        "max_connections": 1,
        "max_agents": 5,
        "ingress_per_second": 10,
        "max_stored_bytes": 1000,
    });
    assert_eq!(
        set_limits(&server, "acme", limits.clone()).await["limits"],
        limits
    );
    let (_, globex) = server.get_raw("/v1/platform/workspaces/globex").await;
    assert_eq!(
        globex["limits"],
        json!({ "max_connections": null, "max_agents": null, "ingress_per_second": null, "max_stored_bytes": null }),
        "no limits unless set"
    );
    for (bad, names) in [
        (json!({ "max_conections": 1 }), "max_conections"),
        (json!({ "ingress_per_second": 0 }), "ingress_per_second"),
        (json!({ "max_agents": -1 }), "max_agents"),
    ] {
        let (status, body) = server
            .put_raw("/v1/platform/workspaces/acme/limits", &bad.to_string())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body:#}");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains(names)),
            "{bad}: {body:#}"
        );
    }
    let (status, body) = server
        .put_raw("/v1/platform/workspaces/initech/limits", "{}")
        .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );

    let server = server.restart_platform(platform::security()).await;
    let (_, acme) = server.get_raw("/v1/platform/workspaces/acme").await;
    assert_eq!(acme["limits"], limits, "{acme:#}");
    // And enforced again.
    let token = platform::token(&server, "acme", "ana");
    let _ana = server
        .with_token("ana", &token)
        .in_workspace("acme")
        .connect()
        .await;
    let refused = refusal(&server, "/v1/w/acme/agent/ws", &token, None)
        .await
        .expect("a second connection is over acme's limit");
    assert_over(&refused, "quota_exceeded", "`max_connections` is 1");
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
