//! `cargo xtask cluster [NODES]`: a local cluster for developers (issue 19). A private
//! PostgreSQL from Debian's binaries and NODES engines (default 3) on it, on 127.0.0.1:8081,
//! 8082, …, each named `node-<n>`, with the demo agents; every node serves every workspace
//! (forwarding to its owner). Ctrl-C stops them all: the terminal sends it to the whole group.
//!
//! The database lives in the temp dir and is wiped at the next start. As root (PostgreSQL
//! refuses root) the server runs as `nobody`, as the tests' private server does.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{cargo, postgres_bin, run, say, target_dir, Outcome};

/// The database's port, and the first node's.
const DATABASE_PORT: u16 = 54329;
const FIRST_NODE_PORT: u16 = 8081;
/// How long PostgreSQL may take to accept connections: 30 s, in tries.
const READY_TRIES: u32 = 300;

pub(super) fn cluster(args: &[std::ffi::OsString]) -> Outcome {
    let nodes: u16 = match args.first().and_then(|a| a.to_str()) {
        None => 3,
        Some(n) => n
            .parse()
            .ok()
            .filter(|n| (1..=9).contains(n))
            .ok_or_else(|| format!("NODES must be 1 to 9, not {n}"))?,
    };
    super::ensure_postgres()?;
    let bin = postgres_bin().ok_or("PostgreSQL's binaries are missing")?;
    say("building the engine: cargo build --release -p switchboard");
    run(cargo().args(["build", "--release", "-p", "switchboard"]))?;
    let engine = target_dir().join("release/switchboard");

    let dir = std::env::temp_dir().join("switchboard-dev-cluster");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let as_root = super::output(Command::new("id").arg("-u")).is_some_and(|id| id.trim() == "0");
    if as_root {
        run(Command::new("chown").arg("nobody:nogroup").arg(&dir))?;
    }
    let data = dir.join("data");
    run(unprivileged(as_root, &bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-instructions",
        ])
        .stdout(Stdio::null()))?;
    let port = DATABASE_PORT.to_string();
    let database = unprivileged(as_root, &bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-h", "127.0.0.1", "-p", &port, "-k"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("postgres.log")).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot start postgres: {e}"))?;
    let _database = Stop(database);
    let ready = (0..READY_TRIES).any(|_| {
        let ok = super::output(Command::new(bin.join("pg_isready")).args(["-h", "127.0.0.1", "-p", &port]))
            .is_some();
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    if !ready {
        return Err(format!(
            "PostgreSQL did not accept connections; see {}",
            dir.join("postgres.log").display()
        ));
    }
    run(Command::new(bin.join("createdb")).args([
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "postgres",
        "switchboard",
    ]))?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/switchboard");
    say(&format!("PostgreSQL: {url} (data in {})", data.display()));

    let mut running = Vec::new();
    for n in 1..=nodes {
        let name = format!("node-{n}");
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, format!("[cluster]\nnode = \"{name}\"\n")).map_err(|e| e.to_string())?;
        let listen = format!("127.0.0.1:{}", FIRST_NODE_PORT + n - 1);
        let mut child = Command::new(&engine)
            .args(["--listen", &listen, "--cluster", &url, "--config"])
            .arg(&config)
            .env_remove("SWITCHBOARD_DATA")
            .env_remove("SWITCHBOARD_CLUSTER")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        prefix_lines(&name, child.stdout.take());
        prefix_lines(&name, child.stderr.take());
        say(&format!("{name}: http://{listen}/ (desk), http://{listen}/wall"));
        running.push(Stop(child));
    }
    say("every node serves every workspace; Ctrl-C stops the nodes and the database");
    for Stop(child) in &mut running {
        let _ = child.wait();
    }
    Ok(())
}

/// Prints a node's output lines with its name in front.
fn prefix_lines(name: &str, stream: Option<impl std::io::Read + Send + 'static>) {
    let Some(stream) = stream else { return };
    let name = name.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            println!("[{name}] {line}");
        }
    });
}

/// A child process, killed when this goes out of scope (an error on the way, or the end).
struct Stop(Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `program`, as `nobody` when this runs as root.
fn unprivileged(as_root: bool, program: &Path) -> Command {
    if !as_root {
        return Command::new(program);
    }
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(program);
    command
}
