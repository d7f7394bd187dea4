//! End to end in a real browser: the real engine binary, two agent desks and the supervisor
//! wall in Debian's headless Chromium, driven by `web/e2e/desk-and-wall.mjs` (playwright-core,
//! never a downloaded browser). The scenario — a reopen that wins, a rival's Reopen button
//! turning off live and its attempt refused as "active elsewhere", the customer's reply taking
//! the agent over its limit, the wall showing the override; then a snooze and a transfer from
//! the desk, a forced transfer picked on the wall, paging back through a long history, a
//! waiting customer shown by name, a desk whose socket is cut resuming with what it missed,
//! and the wall renewing its short-lived token; then routing like a contact centre (R19–R21): a
//! billing chat in Spanish waiting at step 1 of 2 with its requirements, priority and SLA due
//! time on the wall, a skills edit refused, the skill given on the wall and the chat offered to
//! that agent with its requirements on the desk, and SLA attainment counted; and delivery
//! (R24, R25): an agent's message reaching sent, one the platform refuses shown failed with its
//! reason, and its Retry sending it — is told at the top of the script. The engine runs with
//! WhatsApp's length configured to 900, a billing queue on Telegram with priority 7 and a
//! 75-second SLA, its outbound webhook pointed at a fake platform in this test that refuses a
//! "FAIL-ONCE" text the first time, and the wall signs in with a 15-second token, so that all
//! are taken from the engine or the test fails.
//!
//! Needs Node.js ≥ 20 with npm, and Chromium at `/usr/bin/chromium` (or `CHROMIUM`):
//! `cargo xtask test` installs both. Without Chromium the test fails saying so; with
//! `SWITCHBOARD_SKIP_BROWSER=1` it is skipped instead (for machines that cannot have a
//! browser; CI does not set it). `web/e2e/node_modules` is installed with `npm ci` when missing.
//!
//! A second test, `r27_desk_and_wall_of_a_workspace`, runs the same script's workspace scenario
//! (R27) against an engine of its own: a workspace created over the platform API, its agent's
//! desk at `/w/acme/` and its wall at `/w/acme/wall`, each signed in with a token signed for
//! that workspace (the wall's short-lived, renewed at `/v1/w/acme/token`), and nothing of
//! `default` on either page while ana works there. The two never run at the same time.
//!
//! Run them with `cargo test --test browser` (after `cargo xtask test` has installed Chromium
//! and Node.js once; add `-- --nocapture` to watch the steps).
//!
//! Screenshots of the pages (`desk-ana.png`, `desk-ben.png`, `wall.png`; `desk-acme.png`,
//! `wall-acme.png`) are saved in `target/screenshots/` (or `SCREENSHOTS`), on success and on
//! failure.

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the engine may take to start listening.
const ENGINE_START: Duration = Duration::from_secs(10);
/// The whole browser run's bound (the script bounds each of its waits to 10 s, and itself to 120 s).
const SCENARIO: Duration = Duration::from_secs(180);
/// WhatsApp's message length in the engine's configuration: not the default (1,024), so that
/// the desk's composer can only show it if it takes it from the engine.
const WHATSAPP_MAX_LEN: usize = 900;
/// The wall signs in with a signed token this short-lived, so that it must renew it (and
/// refresh its socket) during the scenario or be closed with 4001.
const WALL_TOKEN_TTL_SECS: u32 = 15;
/// A queue with a two-step workflow (R19): its first step requires billing ≥3 (the demo agent
/// ana has it, ben does not) and lasts longer than the whole run, so no chat moves on to the
/// second, the fallback, while the test looks at the first.
const BILLING_QUEUE: &str = "billing";
/// The channel that feeds it: one the rest of the scenario leaves alone.
const BILLING_CHANNEL: &str = "telegram";
/// Its priority and SLA: neither a default, so that the wall can only show them if it takes
/// them from the engine.
const BILLING_PRIORITY: i32 = 7;
const BILLING_SLA_SECS: u64 = 75;
/// A queue with opening hours and no open hour in its week: the wall shows it closed (R21).
const CLOSED_QUEUE: &str = "after-hours";
const CLOSED_CHANNEL: &str = "line";

/// A message to a customer whose text holds this is refused by the fake platform the first
/// time it is sent (400, with [`REFUSAL`] as its body), and taken when sent again: the desk
/// shows it failed with that reason and its Retry sends it (R24).
const FAIL_ONCE: &str = "FAIL-ONCE";
const REFUSAL: &str = "the test platform refuses this message once";

/// How long `npm ci` may take when `node_modules` is missing.
const NPM_CI: Duration = Duration::from_secs(300);

const INSTALL_CHROMIUM: &str = "cargo xtask test    (or: sudo apt-get install -y chromium)";

/// The workspace of `r27_desk_and_wall_of_a_workspace`, its agent and its supervisor.
const WORKSPACE: &str = "acme";
const WORKSPACE_AGENT: &str = "zoe";
const WORKSPACE_SUPERVISOR: &str = "max";

/// Held by each browser test: one Chromium at a time on a small machine.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// The wall clock: this test bounds real processes (the engine, node, Chromium), not the
/// engine's injected clock.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real `switchboard` binary with the demo agents on a free port; killed when dropped.
struct Engine {
    child: Child,
    addr: SocketAddr,
    /// Its configuration file.
    config: PathBuf,
    /// The engine's last log lines, for a failure message.
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Engine {
    /// `name` tells apart the data of this process's engines.
    fn start(name: &str, webhook: SocketAddr) -> Self {
        // A database of its own, so that no earlier run's chats are restored into this one.
        let data = std::env::temp_dir().join(format!("switchboard-browser-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let config = write_config(&data, webhook);
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(data.join("switchboard.sqlite"))
            .arg("--config")
            .arg(&config)
            .env_remove("SWITCHBOARD_CONFIG")
            .env_remove("SWITCHBOARD_LISTEN")
            .env_remove("SWITCHBOARD_WEBHOOK_URL")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn switchboard");
        let stdout = child.stdout.take().expect("piped stdout");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (lines, listening) = mpsc::channel();
        let kept = log.clone();
        // Drains the log for as long as the engine runs, so that it never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let line = strip_ansi(&line);
                if line.contains("switchboard listening") {
                    let _ = lines.send(line.clone());
                }
                let mut kept = kept.lock().expect("log lock");
                if kept.len() == 200 {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        let mut engine = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            config,
            log,
        };
        let line = listening
            .recv_timeout(ENGINE_START)
            .unwrap_or_else(|e| panic!("the engine did not start listening: {e}\n{}", engine.log_tail()));
        engine.addr = line
            .split_whitespace()
            .find_map(|field| field.strip_prefix("addr="))
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line}"));
        engine
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().expect("log lock");
        log.iter()
            .rev()
            .take(40)
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The engine's configuration: the development setup (demo agents, the development token
/// secret) with WhatsApp's length changed, the billing queue and the closed queue, and every
/// message to a customer sent to the fake platform at `webhook` (one attempt: a refusal fails
/// the message at once). Every other channel keeps its own queue with no requirements, as the
/// rest of the scenario expects.
fn write_config(data: &Path, webhook: SocketAddr) -> PathBuf {
    std::fs::create_dir_all(data).expect("create the data directory");
    let config = data.join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            r#"[outbound]
webhook_url = "http://{webhook}/outbound"
attempts = 2
first_backoff_ms = 50
max_backoff_ms = 200

[channels.whatsapp]
max_len = {WHATSAPP_MAX_LEN}

[[queues]]
id = "{BILLING_QUEUE}"
channels = ["{BILLING_CHANNEL}"]
priority = {BILLING_PRIORITY}
sla_secs = {BILLING_SLA_SECS}

[[queues.steps]]
requires = {{ billing = 3 }}
timeout_secs = 3600

[[queues.steps]]
requires = {{ billing = 1 }}

[[queues]]
id = "{CLOSED_QUEUE}"
channels = ["{CLOSED_CHANNEL}"]
hours = {{ time_zone = "UTC" }}
"#
        ),
    )
    .expect("write the config");
    config
}

/// The platform the engine's outbound webhook posts to, on a free port: it takes every message
/// (200 with an `id` naming its text), except the first sending of a text holding [`FAIL_ONCE`], which it
/// refuses for good (400, [`REFUSAL`]). Runs for as long as the test.
fn fake_platform() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake platform");
    let addr = listener.local_addr().expect("the fake platform's address");
    std::thread::spawn(move || {
        let mut refused = HashSet::new();
        for stream in listener.incoming().map_while(Result::ok) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let Some(body) = read_request(&stream) else {
                continue;
            };
            let text = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|m| m.get("text").and_then(|t| t.as_str()).map(str::to_owned))
                .unwrap_or_default();
            let (status, answer) = if text.contains(FAIL_ONCE) && refused.insert(text.clone()) {
                ("400 Bad Request", REFUSAL.to_owned())
            } else {
                // The id names the text, so the page's script can report the message's
                // delivery by it (POST /v1/channels/{channel}/statuses).
                let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
                ("200 OK", format!(r#"{{"id":"fake-{hex}"}}"#))
            };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    addr
}

/// One HTTP request's body (by its `content-length`), or `None` if it broke off.
fn read_request(stream: &TcpStream) -> Option<Vec<u8>> {
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

/// A supervisor token for sam, signed as the engine started from `config` verifies it.
fn short_wall_token(config: &Path) -> String {
    token(config, "default", "sam", "supervisor", WALL_TOKEN_TTL_SECS)
}

/// A token for `agent` of `workspace` with `role`, valid for `ttl_secs`, signed as the engine
/// started from `config` verifies it (`switchboard token`).
fn token(config: &Path, workspace: &str, agent: &str, role: &str, ttl_secs: u32) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(config)
        .args([
            "token",
            agent,
            "--workspace",
            workspace,
            "--role",
            role,
            "--ttl-secs",
        ])
        .arg(ttl_secs.to_string())
        .env_remove("SWITCHBOARD_CONFIG")
        .output()
        .expect("run switchboard token");
    assert!(output.status.success(), "switchboard token: {output:?}");
    String::from_utf8(output.stdout)
        .expect("a UTF-8 token")
        .trim()
        .to_owned()
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs `command` in its own process group, echoing and collecting its output; kills the whole
/// group (a browser included) if it outlives `within`. The status (`None`: timed out) and output.
fn run_bounded(command: &mut Command, within: Duration) -> (Option<ExitStatus>, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let output = Arc::new(Mutex::new(String::new()));
    let readers: Vec<JoinHandle<()>> = [
        Box::new(child.stdout.take().expect("piped stdout")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("piped stderr")),
    ]
    .into_iter()
    .map(|stream| {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                // Shown by the test harness on failure, or with --nocapture.
                println!("{line}");
                let mut output = output.lock().expect("output lock");
                output.push_str(&line);
                output.push('\n');
            }
        })
    })
    .collect();
    // A thread waits for the child and says when it exited; this one waits for that word
    // until `within`, then kills the group (node and the Chromium it started) and lets the
    // waiter reap it.
    let group = child.id();
    let (exited, exit) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait().expect("wait for the child");
        let _ = exited.send(());
        status
    });
    let timed_out = exit.recv_timeout(within).is_err();
    if timed_out {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{group}")])
            .status();
    }
    let status = waiter.join().expect("the waiter thread");
    let status = (!timed_out).then_some(status);
    for reader in readers {
        let _ = reader.join();
    }
    let output = output.lock().expect("output lock").clone();
    (status, output)
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    path.is_file().then_some(path)
}

fn node_version() -> Option<String> {
    let output = Command::new("node").arg("--version").output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `web/e2e/node_modules/playwright-core`, installed from the lockfile when missing.
fn ensure_playwright(e2e: &Path) {
    if e2e.join("node_modules/playwright-core/package.json").is_file() {
        return;
    }
    println!("web/e2e/node_modules is missing: npm ci --prefix web/e2e");
    let (status, output) = run_bounded(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(e2e)
            .current_dir(root()),
        NPM_CI,
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "`npm ci --prefix web/e2e` failed ({}):\n{output}",
        status.map_or("timed out".to_owned(), |s| s.to_string())
    );
}

/// What a browser test needs, found (or installed: playwright-core) before the engine starts.
struct Browser {
    chromium: PathBuf,
    node: String,
    e2e: PathBuf,
    screenshots: PathBuf,
}

/// The browser set-up, or `None` when `SWITCHBOARD_SKIP_BROWSER=1`; panics saying what is
/// missing otherwise.
fn browser() -> Option<Browser> {
    if std::env::var("SWITCHBOARD_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("browser test skipped: SWITCHBOARD_SKIP_BROWSER=1");
        return None;
    }
    let Some(chromium) = chromium() else {
        panic!(
            "the browser test needs Debian's Chromium at /usr/bin/chromium (or set CHROMIUM to \
             another path). Install it with:\n\n    {INSTALL_CHROMIUM}\n\nor skip this test on a \
             machine that cannot have a browser with SWITCHBOARD_SKIP_BROWSER=1"
        );
    };
    let Some(node) = node_version() else {
        panic!(
            "the browser test needs Node.js ≥ 20 with npm on the PATH (`node --version` failed); \
             or skip it with SWITCHBOARD_SKIP_BROWSER=1"
        );
    };
    let e2e = root().join("web/e2e");
    ensure_playwright(&e2e);
    let screenshots = std::env::var_os("SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/screenshots"));
    std::fs::create_dir_all(&screenshots).expect("create the screenshots directory");
    Some(Browser {
        chromium,
        node,
        e2e,
        screenshots,
    })
}

/// Runs `web/e2e/desk-and-wall.mjs` against `engine` with `env`, and fails unless it passes
/// and saved the screenshots `shots`.
fn run_script(browser: &Browser, engine: Engine, env: &[(&str, String)], shots: &[&str]) {
    let url = format!("http://{}", engine.addr);
    println!(
        "engine at {url}; node {}; chromium {}; screenshots in {}",
        browser.node,
        browser.chromium.display(),
        browser.screenshots.display()
    );
    let started = now();
    let mut command = Command::new("node");
    command
        .arg(browser.e2e.join("desk-and-wall.mjs"))
        .arg(&url)
        .env("CHROMIUM", &browser.chromium)
        .env("SCREENSHOTS", &browser.screenshots)
        .current_dir(root());
    for (name, value) in env {
        command.env(name, value);
    }
    let (status, output) = run_bounded(&mut command, SCENARIO);
    let log = engine.log_tail();
    drop(engine);
    let screenshots = &browser.screenshots;
    match status {
        Some(status) if status.success() => {
            for file in shots {
                let path = screenshots.join(file);
                assert!(path.is_file(), "no screenshot {}", path.display());
            }
            println!(
                "browser scenario passed in {:.1} s; screenshots in {}",
                started.elapsed().as_secs_f64(),
                screenshots.display()
            );
        }
        Some(status) => panic!(
            "the browser scenario failed ({status}); screenshots in {}:\n{output}\n--- the engine's \
             last log lines:\n{log}",
            screenshots.display()
        ),
        None => panic!(
            "the browser scenario did not finish within {SCENARIO:?} and was killed:\n{output}\n--- \
             the engine's last log lines:\n{log}"
        ),
    }
}

#[test]
fn two_desks_and_the_wall_in_chromium_reopen_rival_refused_reply_over_limit() {
    let Some(browser) = browser() else { return };
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let engine = Engine::start("contact-centre", fake_platform());
    let wall_token = short_wall_token(&engine.config);
    let env = [
        ("WALL_TOKEN", wall_token),
        ("WHATSAPP_MAX_LEN", WHATSAPP_MAX_LEN.to_string()),
        ("BILLING_QUEUE", BILLING_QUEUE.to_owned()),
        ("BILLING_CHANNEL", BILLING_CHANNEL.to_owned()),
        ("BILLING_PRIORITY", BILLING_PRIORITY.to_string()),
        ("BILLING_SLA_SECS", BILLING_SLA_SECS.to_string()),
        ("CLOSED_QUEUE", CLOSED_QUEUE.to_owned()),
        ("FAIL_ONCE", FAIL_ONCE.to_owned()),
        ("REFUSAL", REFUSAL.to_owned()),
    ];
    run_script(
        &browser,
        engine,
        &env,
        &["desk-ana.png", "desk-ben.png", "wall.png"],
    );
}

#[test]
fn r27_desk_and_wall_of_a_workspace() {
    let Some(browser) = browser() else { return };
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let engine = Engine::start("workspace", fake_platform());
    // Signed for the workspace: a token of `default` opens none of its paths. The wall's is
    // short-lived, so that it must be renewed at the workspace's own `…/token`.
    let agent_token = token(&engine.config, WORKSPACE, WORKSPACE_AGENT, "agent", 3600);
    let wall_token = token(
        &engine.config,
        WORKSPACE,
        WORKSPACE_SUPERVISOR,
        "supervisor",
        WALL_TOKEN_TTL_SECS,
    );
    let env = [
        ("WORKSPACE", WORKSPACE.to_owned()),
        ("WORKSPACE_AGENT", WORKSPACE_AGENT.to_owned()),
        ("WORKSPACE_AGENT_TOKEN", agent_token),
        ("WORKSPACE_SUPERVISOR", WORKSPACE_SUPERVISOR.to_owned()),
        ("WALL_TOKEN", wall_token),
    ];
    let desk = format!("desk-{WORKSPACE}.png");
    let wall = format!("wall-{WORKSPACE}.png");
    run_script(&browser, engine, &env, &[&desk, &wall, "desk-ana.png"]);
}
