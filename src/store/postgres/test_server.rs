//! A private PostgreSQL server for one test, from the system's binaries (issue 19).
//!
//! `initdb` into a temp dir, `postgres` on 127.0.0.1 at a free port with its socket in that
//! dir, ready once a connection succeeds; stopped and removed on drop, or by its watchdog once
//! the test process is gone without dropping it (a static, a binary killed by a timeout).
//! PostgreSQL refuses to run as root, and CI runs as root: then both run as `nobody` (through
//! `setpriv`), which owns the temp dir.
//!
//! Plain `std` and the `postgres` client, so that the library's tests and `tests/it` (which
//! includes this file by path) share one copy.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How often, and how far apart, a starting server is tried: 30 s in all, counted in tries
/// so that no wall clock is read.
const READY_TRIES: u32 = 1_500;
const TRY_AGAIN_AFTER: Duration = Duration::from_millis(20);

/// The user the server runs as when the tests run as root.
const UNPRIVILEGED: (&str, &str) = ("nobody", "nogroup");

/// A running server with one empty database, `switchboard`; stopped and removed on drop.
pub(crate) struct PgServer {
    dir: PathBuf,
    port: u16,
    server: Child,
    /// Stops and removes the server when this process ends without dropping it.
    watchdog: Child,
}

impl PgServer {
    /// Starts a fresh server; panics saying what is missing or what the server said.
    pub(crate) fn start() -> PgServer {
        Self::start_with(&[])
    }

    /// As [`PgServer::start`], with `settings` (`name=value`) after the defaults, which they
    /// override: the load harness turns fsync back on to measure a durable database.
    pub(crate) fn start_with(settings: &[&str]) -> PgServer {
        let bin = binaries().unwrap_or_else(|| {
            panic!(
                "PostgreSQL's server binaries are missing (no /usr/lib/postgresql/*/bin/initdb, none on \
                 PATH): `cargo xtask test` installs them, or `apt-get install -y postgresql`"
            )
        });
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("switchboard-pg-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("the server's temp dir is creatable");
        let as_root = running_as_root();
        if as_root {
            let status = Command::new("chown")
                .arg(format!("{}:{}", UNPRIVILEGED.0, UNPRIVILEGED.1))
                .arg(&dir)
                .status()
                .expect("chown runs");
            assert!(
                status.success(),
                "cannot hand {} to {}",
                dir.display(),
                UNPRIVILEGED.0
            );
        }
        let data = dir.join("data");
        let out = unprivileged(as_root, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = fs::File::create(dir.join("server.log")).expect("the server's log is creatable");
        // fsync off: a test server's data is thrown away; durability is PostgreSQL's to test.
        let mut postgres = unprivileged(as_root, &bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args([
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=50",
            ]);
        // The last of two `-c` for one setting wins.
        for setting in settings {
            postgres.arg("-c").arg(setting);
        }
        let server = postgres
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        let watchdog = watchdog(server.id(), &dir);
        let mut server = PgServer {
            dir,
            port,
            server,
            watchdog,
        };
        server.wait_ready();
        server.admin("CREATE DATABASE switchboard");
        server
    }

    /// The connection string of its `switchboard` database.
    pub(crate) fn url(&self) -> String {
        self.url_of("switchboard")
    }

    /// The connection string of its database `db`.
    pub(crate) fn url_of(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?connect_timeout=5",
            self.port
        )
    }

    /// Runs `sql` on the `postgres` database (outside any transaction, as CREATE DATABASE needs).
    pub(crate) fn admin(&self, sql: &str) {
        let url = self.url_of("postgres");
        off_runtime(move || {
            let mut client =
                postgres::Client::connect(&url, postgres::NoTls).expect("the test server takes connections");
            client
                .batch_execute(sql)
                .expect("the test server runs the statement");
        });
    }

    /// Waits, up to [`READY_TRIES`] tries, until a connection succeeds; panics with the server's log
    /// if it exits or never does.
    fn wait_ready(&mut self) {
        let mut last_error = None;
        for _ in 0..READY_TRIES {
            let url = self.url_of("postgres");
            match off_runtime(move || postgres::Client::connect(&url, postgres::NoTls).map(drop)) {
                Ok(()) => return,
                Err(e) => {
                    if let Ok(Some(status)) = self.server.try_wait() {
                        panic!(
                            "postgres exited ({status}) before it took connections: {}",
                            self.log()
                        );
                    }
                    last_error = Some(e);
                    // The server is starting (connection refused at once): try again shortly.
                    std::thread::sleep(TRY_AGAIN_AFTER);
                }
            }
        }
        panic!(
            "postgres took no connection in {READY_TRIES} tries {TRY_AGAIN_AFTER:?} apart ({last_error:?}): {}",
            self.log()
        );
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // The watchdog goes first: once the server is reaped its pid is free, and a watchdog
        // woken later would signal whatever process has it then.
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        // Unless it is gone (and reaped: its pid may be another's now).
        if let Ok(None) = self.server.try_wait() {
            // SIGQUIT: immediate shutdown, no checkpoint (the data is thrown away).
            let quit = Command::new("kill")
                .args(["-QUIT", &self.server.id().to_string()])
                .status();
            if !quit.is_ok_and(|s| s.success()) {
                let _ = self.server.kill();
            }
            let _ = self.server.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A shell that waits for end of file on its stdin, whose only writer is this process (std
/// opens its pipes close-on-exec, so no other child inherits it): the kernel closes it however
/// this process ends, even by SIGKILL. Then it stops the server at `pid` as [`PgServer`]'s
/// drop does, waits up to 10 s for it to go, and removes `dir`. In a process group of its own,
/// so that a Ctrl-C or a timeout's signal to the tests' group does not end it first.
fn watchdog(pid: u32, dir: &Path) -> Child {
    const SCRIPT: &str = r#"read _
kill -QUIT "$1" 2>/dev/null
tries=0
while kill -0 "$1" 2>/dev/null && [ "$tries" -lt 100 ]; do sleep 0.1; tries=$((tries + 1)); done
kill -KILL "$1" 2>/dev/null
rm -rf "$2""#;
    let child = Command::new("sh")
        .args(["-c", SCRIPT, "pg-watchdog"])
        .arg(pid.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("the server's watchdog starts");
    // Its stdin stays open, unwritten, for as long as `child` (and so this process) holds it.
    child
}

/// The directory of `initdb` and `postgres`: the newest of Debian's
/// `/usr/lib/postgresql/<major>/bin`, else wherever PATH has `initdb`.
fn binaries() -> Option<PathBuf> {
    let newest = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .max_by_key(|(major, _)| *major);
    if let Some((_, bin)) = newest {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
    })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `program`, run as [`UNPRIVILEGED`] when the tests run as root.
fn unprivileged(as_root: bool, program: &Path) -> Command {
    if !as_root {
        return Command::new(program);
    }
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={}", UNPRIVILEGED.0))
        .arg(format!("--regid={}", UNPRIVILEGED.1))
        .arg("--clear-groups")
        .arg(program);
    command
}

/// Runs `f` on a thread of its own: the synchronous client runs a runtime of its own, which
/// tokio refuses to start inside an async test.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("the client's thread does not panic"))
}

/// A port nobody listens on now (the OS's choice); the server binds it a moment later.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::process::Command;

    use super::{watchdog, PgServer, READY_TRIES, TRY_AGAIN_AFTER};

    #[test]
    fn a_private_postgres_starts_takes_queries_and_is_removed_on_drop() {
        let server = PgServer::start();
        let mut client = postgres::Client::connect(&server.url(), postgres::NoTls).expect("connects");
        let one: i32 = client.query_one("SELECT 1", &[]).expect("runs").get(0);
        assert_eq!(one, 1);
        drop(client);
        let dir = server.dir.clone();
        drop(server);
        assert!(!dir.exists(), "the server's dir is removed on drop");
    }

    /// What the watchdog sees when the test process ends, however it ends: its stdin closed.
    /// A stand-in server (a `sleep`), so that no second PostgreSQL starts for this.
    #[test]
    fn a_server_left_behind_by_its_process_is_stopped_and_removed_by_its_watchdog() {
        let dir = std::env::temp_dir().join(format!("switchboard-pg-watchdog-{}", std::process::id()));
        fs::create_dir_all(dir.join("data")).expect("the stand-in's dir is creatable");
        let mut server = Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("the stand-in starts");
        let mut watchdog = watchdog(server.id(), &dir);
        drop(watchdog.stdin.take());
        // Another process's doing: polled, up to 30 s each. The stand-in is this process's
        // child, reaped here as init reaps an orphan.
        let poll = |done: &mut dyn FnMut() -> bool| {
            (0..READY_TRIES).any(|_| {
                std::thread::sleep(TRY_AGAIN_AFTER);
                done()
            })
        };
        let stopped = poll(&mut || matches!(server.try_wait(), Ok(Some(_))));
        let removed = poll(&mut || !dir.exists());
        let _ = server.kill();
        let _ = server.wait();
        let _ = watchdog.wait();
        assert!(stopped, "the watchdog stops the server");
        assert!(removed, "the watchdog removes {}", dir.display());
    }
}
