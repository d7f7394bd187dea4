//! What the harness drives: an engine it started (`--spawn`), a cluster of engine nodes on a
//! private PostgreSQL it started (`--spawn --cluster N`), one already running (`--url`), the
//! floor relay, or the Socket.IO peer; the harness always starts the last two itself, as
//! child processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::clock;
use crate::cluster::Database;
use crate::fleet::Dialect;

/// Engine, floor or peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// The Switchboard engine.
    Engine,
    /// The bare relay (`relay` subcommand).
    Floor,
    /// The floor's shape on Socket.IO and Node (`load-tests/peer`).
    Peer,
}

/// A server under load.
pub(crate) struct Target {
    /// Engine, floor or peer.
    pub(crate) kind: Kind,
    /// `http://127.0.0.1:port`.
    pub(crate) base: String,
    /// Its process, when local and known: for RSS and CPU.
    pub(crate) pid: Option<u32>,
    /// Where its output goes, when the harness started it.
    pub(crate) log: Option<PathBuf>,
    /// A cluster's nodes (`--cluster N`), node 0 first (which is `base` and `pid`, where
    /// admin calls go); empty for a single server.
    pub(crate) nodes: Vec<Node>,
    /// The processes the harness started (a cluster's nodes in order).
    children: Vec<Child>,
    /// A spawned engine's data directory (a cluster's configurations), removed with it.
    data: Option<PathBuf>,
    /// A cluster's private PostgreSQL. Dropped after [`Drop::drop`] has killed the engines.
    pub(crate) database: Option<Database>,
}

/// One engine node of a cluster.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// Its `[cluster] node` name, `load-<i>`.
    pub(crate) name: String,
    /// `http://127.0.0.1:port`.
    pub(crate) base: String,
    pub(crate) pid: u32,
    /// Where its output goes.
    pub(crate) log: PathBuf,
}

impl Target {
    /// `ws://127.0.0.1:port`.
    pub(crate) fn ws_base(&self) -> String {
        self.base.replacen("http://", "ws://", 1)
    }

    /// Every node's `http://127.0.0.1:port` (the one server's alone unless a cluster).
    pub(crate) fn bases(&self) -> Vec<String> {
        if self.nodes.is_empty() {
            vec![self.base.clone()]
        } else {
            self.nodes.iter().map(|n| n.base.clone()).collect()
        }
    }

    /// Every node's `ws://127.0.0.1:port`: agent `i` connects to node `i % n`.
    pub(crate) fn ws_bases(&self) -> Vec<String> {
        self.bases()
            .into_iter()
            .map(|b| b.replacen("http://", "ws://", 1))
            .collect()
    }

    /// The server's processes (every node of a cluster), whose CPU and RSS the report sums.
    pub(crate) fn pids(&self) -> Vec<u32> {
        if self.nodes.is_empty() {
            self.pid.into_iter().collect()
        } else {
            self.nodes.iter().map(|n| n.pid).collect()
        }
    }

    /// How its agents' frames travel.
    pub(crate) fn dialect(&self) -> Dialect {
        match self.kind {
            Kind::Engine | Kind::Floor => Dialect::Json,
            Kind::Peer => Dialect::SocketIo,
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
        if let Some(data) = &self.data {
            let _ = std::fs::remove_dir_all(data);
        }
    }
}

/// How to start the engine.
#[derive(Clone, Debug)]
pub(crate) struct SpawnOptions {
    /// The binary; found next to the harness or in the target directory when absent.
    pub(crate) engine_bin: Option<PathBuf>,
    /// `RUST_LOG` for the engine.
    pub(crate) engine_log: String,
    /// Extra TOML appended to the generated configuration.
    pub(crate) engine_config: Option<PathBuf>,
    /// TOML the scenario itself needs in the configuration (the routing scenario's queues),
    /// written before `engine_config`'s.
    pub(crate) scenario_config: String,
    /// The engine's `--durability`.
    pub(crate) durability: String,
}

/// Refuses anything but a loopback address: this machine's servers are the only targets.
pub(crate) fn attach(url: &str, pid: Option<u32>) -> anyhow::Result<Target> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("bad --url {url}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        loopback,
        "--url must be a loopback address (127.0.0.1, localhost, [::1]), not {host}"
    );
    anyhow::ensure!(parsed.scheme() == "http", "--url must be http://");
    Ok(Target {
        kind: Kind::Engine,
        base: url.trim_end_matches('/').to_owned(),
        pid,
        log: None,
        nodes: Vec::new(),
        children: Vec::new(),
        data: None,
        database: None,
    })
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The engine binary: `--engine-bin`, else beside this binary (same target directory), else
/// `$CARGO_TARGET_DIR/release`, else the workspace's `target/release`.
fn engine_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned))
    {
        candidates.push(dir.join("switchboard"));
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("release/switchboard"));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/switchboard"));
    candidates.into_iter().find(|p| p.is_file()).context(
        "no engine binary: run `cargo build --release -p switchboard` (same CARGO_TARGET_DIR) or pass --engine-bin",
    )
}

fn start(kind: Kind, mut command: Command, name: &str) -> anyhow::Result<(Target, u16)> {
    let port = free_port()?;
    let log = std::env::temp_dir().join(format!("switchboard-load-{}-{name}.log", std::process::id()));
    let out = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    command
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let child = command
        .spawn()
        .with_context(|| format!("cannot start the {name}"))?;
    let target = Target {
        kind,
        base: format!("http://127.0.0.1:{port}"),
        pid: Some(child.id()),
        log: Some(log),
        nodes: Vec::new(),
        children: vec![child],
        data: None,
        database: None,
    };
    Ok((target, port))
}

/// A spawned engine's generated configuration: no agents (the scenario creates its own), the
/// scenario's TOML, then `--engine-config`'s.
fn engine_config(options: &SpawnOptions) -> anyhow::Result<String> {
    let mut config = String::from("# generated by switchboard-load\nagents = []\n");
    config.push_str(&options.scenario_config);
    if let Some(extra) = &options.engine_config {
        config.push_str(
            &std::fs::read_to_string(extra).with_context(|| format!("cannot read {}", extra.display()))?,
        );
    }
    Ok(config)
}

/// The engine `bin` on the configuration at `config`, with the run's durability and log
/// filter; the caller adds where its state lives (`--data` or `--cluster`).
fn engine_command(bin: &Path, config: &Path, options: &SpawnOptions) -> Command {
    let mut command = Command::new(bin);
    command
        .arg("--config")
        .arg(config)
        .arg("--durability")
        .arg(&options.durability)
        .env("RUST_LOG", &options.engine_log);
    command
}

/// Starts a fresh engine on a free port with a generated configuration (no agents; the
/// scenario creates its own), and waits until it answers `/healthz`.
pub(crate) async fn spawn_engine(options: &SpawnOptions, client: &reqwest::Client) -> anyhow::Result<Target> {
    let bin = engine_bin(options.engine_bin.as_deref())?;
    let config = engine_config(options)?;
    let path = std::env::temp_dir().join(format!("switchboard-load-{}.toml", std::process::id()));
    std::fs::write(&path, config)?;
    // A fresh database per run, so that no earlier run's chats are restored into this one.
    let data = std::env::temp_dir().join(format!("switchboard-load-{}-data", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut command = engine_command(&bin, &path, options);
    command.arg("--data").arg(data.join("switchboard.sqlite"));
    let (mut target, _) = start(Kind::Engine, command, "engine")?;
    target.data = Some(data);
    wait_healthy(&mut target, client).await?;
    eprintln!(
        "engine {} (pid {}) on {}",
        bin.display(),
        target.pid.unwrap_or(0),
        target.base
    );
    Ok(target)
}

/// Starts the floor relay (this binary's hidden `relay` subcommand).
pub(crate) async fn spawn_floor(client: &reqwest::Client, axum_defaults: bool) -> anyhow::Result<Target> {
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    command.arg("relay");
    if axum_defaults {
        command.arg("--axum-defaults");
    }
    let (mut target, _) = start(Kind::Floor, command, "floor")?;
    wait_healthy(&mut target, client).await?;
    let sockets = if axum_defaults {
        "axum defaults: Nagle on, backlog 128"
    } else {
        "TCP_NODELAY, backlog 4096"
    };
    eprintln!(
        "floor relay (pid {}) on {} ({sockets})",
        target.pid.unwrap_or(0),
        target.base
    );
    Ok(target)
}

/// The peer's directory: `server.js`, its `package.json` and lock file, and `node_modules`
/// once `npm ci` has run there.
pub(crate) fn peer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peer")
}

/// What to run to get the peer going.
const PEER_SETUP: &str = "install Node.js >= 20 (Debian: `apt-get install nodejs npm`), then \
     `npm ci --prefix load-tests/peer` in the workspace";

/// The node binary: `$NODE`, else `node` on the PATH.
fn node() -> PathBuf {
    std::env::var_os("NODE").map_or_else(|| PathBuf::from("node"), PathBuf::from)
}

/// `node --version`, if node runs.
pub(crate) fn node_version() -> Option<String> {
    Command::new(node())
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Checks that node runs and the peer's npm packages are installed, saying how to fix it if not.
pub(crate) fn peer_ready() -> anyhow::Result<()> {
    let Some(version) = node_version() else {
        anyhow::bail!(
            "the peer needs Node.js, and `{}` does not run: {PEER_SETUP}",
            node().display()
        );
    };
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    anyhow::ensure!(
        major.is_some_and(|m| m >= 20),
        "the peer needs Node.js >= 20, and `{}` is {version}: {PEER_SETUP}",
        node().display()
    );
    let installed = peer_dir().join("node_modules/socket.io/package.json");
    anyhow::ensure!(
        installed.is_file(),
        "the peer's npm packages are missing ({} does not exist): run `npm ci --prefix load-tests/peer` \
         in the workspace (`cargo xtask test` and `cargo xtask bench` do it)",
        installed.display()
    );
    Ok(())
}

/// Starts the peer (`node load-tests/peer/server.js`) and waits until it answers `/healthz`.
pub(crate) async fn spawn_peer(client: &reqwest::Client) -> anyhow::Result<Target> {
    peer_ready()?;
    let dir = peer_dir();
    let mut command = Command::new(node());
    command.arg(dir.join("server.js")).current_dir(&dir);
    let (mut target, _) = start(Kind::Peer, command, "peer")?;
    wait_healthy(&mut target, client).await?;
    eprintln!(
        "peer: Socket.IO on Node (pid {}) on {}",
        target.pid.unwrap_or(0),
        target.base
    );
    Ok(target)
}

/// Polls `/healthz` until it answers, the process dies, or 20 s pass.
pub(crate) async fn wait_healthy(target: &mut Target, client: &reqwest::Client) -> anyhow::Result<()> {
    let log = target.log.clone();
    wait_for(
        client,
        &target.base,
        "healthz",
        Duration::from_secs(20),
        target.children.first_mut(),
        log.as_deref(),
    )
    .await
}

/// Polls `{base}/{path}` until it answers 200, `child` (if any) exits, or `bound` passes.
async fn wait_for(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    bound: Duration,
    mut child: Option<&mut Child>,
    log: Option<&Path>,
) -> anyhow::Result<()> {
    let start = clock::now();
    loop {
        if let Some(child) = child.as_deref_mut() {
            if let Some(status) = child.try_wait()? {
                let log = log.map(std::fs::read_to_string).transpose()?.unwrap_or_default();
                anyhow::bail!("the server at {base} exited ({status}) before /{path} answered:\n{log}");
            }
        }
        let ok = client
            .get(format!("{base}/{path}"))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < bound,
            "{base}/{path} does not answer 200 after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long a cluster's node may take to be ready (`/readyz`: its first placement round).
const READY_BOUND: Duration = Duration::from_secs(60);

/// Starts a private PostgreSQL and `n` engine nodes on it (`--cluster <url>`), each with its
/// own generated configuration (`[cluster] node = "load-<i>"`), and waits until every node
/// answers `/healthz` and `/readyz`. Node 0 is the target's `base` and `pid`.
pub(crate) async fn spawn_cluster(
    options: &SpawnOptions,
    n: usize,
    client: &reqwest::Client,
) -> anyhow::Result<Target> {
    let bin = engine_bin(options.engine_bin.as_deref())?;
    let database = Database::start(&options.durability).await?;
    let url = database.url();
    let dir = std::env::temp_dir().join(format!("switchboard-load-{}-cluster", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut target = Target {
        kind: Kind::Engine,
        base: String::new(),
        pid: None,
        log: None,
        nodes: Vec::with_capacity(n),
        children: Vec::with_capacity(n),
        data: Some(dir.clone()),
        database: Some(database),
    };
    for i in 0..n {
        let name = format!("load-{i}");
        let mut config = engine_config(options)?;
        config.push_str(&format!("\n[cluster]\nnode = \"{name}\"\n"));
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config)?;
        let mut command = engine_command(&bin, &path, options);
        command.arg("--cluster").arg(&url);
        let (mut started, _) = start(Kind::Engine, command, &name)?;
        let child = started.children.pop().context("a started node has its process")?;
        target.nodes.push(Node {
            name,
            base: started.base.clone(),
            pid: child.id(),
            log: started.log.take().unwrap_or_default(),
        });
        target.children.push(child);
    }
    target.base = target.nodes[0].base.clone();
    target.pid = Some(target.nodes[0].pid);
    target.log = Some(target.nodes[0].log.clone());
    for (node, child) in target.nodes.iter().zip(target.children.iter_mut()) {
        let bound = Duration::from_secs(20);
        wait_for(client, &node.base, "healthz", bound, Some(child), Some(&node.log)).await?;
    }
    for (node, child) in target.nodes.iter().zip(target.children.iter_mut()) {
        wait_for(
            client,
            &node.base,
            "readyz",
            READY_BOUND,
            Some(child),
            Some(&node.log),
        )
        .await?;
        eprintln!(
            "engine node {} {} (pid {}) on {}",
            node.name,
            bin.display(),
            node.pid,
            node.base
        );
    }
    Ok(target)
}
