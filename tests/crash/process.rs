//! The engine as a real process that the test kills, and the scratch directory its database
//! lives in. Both clean up when dropped, so a failing test leaves no process and no files.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// How long the engine may take to restore and start listening.
const START: Duration = Duration::from_secs(15);
/// Log lines kept for a failure message.
const LOG_LINES: usize = 300;

/// A fresh directory under the system's temp dir, removed when dropped.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    pub(crate) fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("switchboard-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("create the scratch directory {}: {e}", dir.display()));
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where the engine keeps its state: the embedded default, or a cluster's database.
#[derive(Clone, Debug)]
pub(crate) enum Data {
    /// A SQLite file (`--data`).
    Sqlite(PathBuf),
    /// A PostgreSQL database (`--cluster`), which outlives every engine killed on it.
    Postgres(String),
}

/// The real `switchboard` binary on a free port, on the given config and database; killed
/// (SIGKILL) when dropped.
pub(crate) struct EngineProcess {
    child: Child,
    pub(crate) addr: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl EngineProcess {
    /// Starts the engine and waits until it listens (it restores the database first).
    pub(crate) fn start(config: &Path, data: &Data) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command
            .args(["--listen", "127.0.0.1:0", "--durability", "full", "--config"])
            .arg(config);
        match data {
            Data::Sqlite(path) => command.arg("--data").arg(path),
            Data::Postgres(url) => command.arg("--cluster").arg(url),
        };
        let mut child = command
            .env_remove("SWITCHBOARD_CONFIG")
            .env_remove("SWITCHBOARD_CLUSTER")
            .env_remove("SWITCHBOARD_LISTEN")
            .env_remove("SWITCHBOARD_WEBHOOK_URL")
            .env_remove("SWITCHBOARD_DATA")
            .env_remove("SWITCHBOARD_DURABILITY")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchboard");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (listening_tx, listening) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        // Both streams are drained for as long as the engine runs, so that it never blocks on
        // them; the senders go away with the threads, so an engine that exits early is noticed
        // at once rather than after the start timeout.
        for (stream, tx) in [
            (Box::new(stdout) as Box<dyn Read + Send>, Some(listening_tx)),
            (Box::new(stderr), None),
        ] {
            let kept = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let line = strip_ansi(&line);
                    if let Some(tx) = tx.as_ref().filter(|_| line.contains("switchboard listening")) {
                        let _ = tx.send(line.clone());
                    }
                    let mut kept = kept.lock().expect("log lock");
                    if kept.len() == LOG_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                }
            });
        }
        let mut engine = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let line = listening.recv_timeout(START).unwrap_or_else(|e| {
            panic!(
                "the engine did not start listening on {data:?} ({e}):\n{}",
                engine.log_tail(60)
            )
        });
        engine.addr = line
            .split_whitespace()
            .find_map(|field| field.strip_prefix("addr="))
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line}"));
        engine.wait_ready();
        engine
    }

    /// Waits until `/readyz` answers 200: at once for one engine on SQLite; a cluster node
    /// once its first placement round has taken its workspaces (issue 19). Bounded by [`START`]
    /// in tries, polled every 20 ms.
    fn wait_ready(&self) {
        let tries = START.as_millis() / 20;
        for _ in 0..tries {
            if readyz(self.addr).is_some_and(|status| status == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the engine at {} was not ready within {START:?}:\n{}",
            self.addr,
            self.log_tail(60)
        );
    }

    /// SIGKILL (what `Child::kill` sends on Unix): no shutdown, no flush, no goodbye to clients.
    /// Returns once the process is gone.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the process, as `kill -<signal>` does.
    #[allow(dead_code)] // The cluster test stops and continues nodes; the crash test only kills.
    pub(crate) fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status();
        assert!(
            sent.is_ok_and(|s| s.success()),
            "kill -{signal} {}",
            self.child.id()
        );
    }

    /// The engine's last `n` log lines.
    pub(crate) fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().expect("log lock");
        let skip = log.len().saturating_sub(n);
        log.iter().skip(skip).cloned().collect::<Vec<_>>().join("\n")
    }

    /// The line the engine logged about what it restored, if it did yet.
    pub(crate) fn restored_line(&self) -> Option<String> {
        let log = self.log.lock().expect("log lock");
        log.iter()
            .find(|l| l.contains("state restored from the store"))
            .map(|l| {
                l.split_once("restored=")
                    .map_or(l.as_str(), |(_, r)| r)
                    .to_owned()
            })
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The status of `GET /readyz`, by hand over a plain TCP stream (this runs on a plain thread
/// or before any runtime), or `None` when the engine does not answer.
fn readyz(addr: SocketAddr) -> Option<u16> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nhost: engine\r\nconnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
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
