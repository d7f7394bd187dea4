//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Load tests for Switchboard: real WebSocket and HTTP clients against a local engine, and a
/// bare relay (the floor) to compare it with. Every run is bounded by --duration and --ops.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) scenario: Scenario,
    #[command(flatten)]
    pub(crate) common: Common,
}

/// Options of every scenario.
#[derive(Debug, Args, Clone)]
pub(crate) struct Common {
    /// The engine to drive (loopback only). Ignored with --spawn.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    pub(crate) url: String,
    /// Start a fresh release engine on a free port, and kill it at the end.
    #[arg(long, global = true)]
    pub(crate) spawn: bool,
    /// The engine binary for --spawn [default: beside this binary, else
    /// $CARGO_TARGET_DIR/release/switchboard, else target/release/switchboard].
    #[arg(long, global = true)]
    pub(crate) engine_bin: Option<PathBuf>,
    /// RUST_LOG of a spawned engine (at `info` it logs every outbound message).
    #[arg(long, global = true, default_value = "warn")]
    pub(crate) engine_log: String,
    /// TOML appended to the spawned engine's generated configuration.
    #[arg(long, global = true)]
    pub(crate) engine_config: Option<PathBuf>,
    /// What a spawned engine's acknowledgements wait for: full (fsynced), normal (survives
    /// the process) or memory (no database). The database is a fresh file in the temp dir,
    /// removed at the end.
    #[arg(long, global = true, default_value = "full")]
    pub(crate) durability: String,
    /// With --spawn (issue 19): start a private PostgreSQL for the run (initdb into a temp
    /// dir, on 127.0.0.1) and N engine nodes on it (`--cluster <url>`, `[cluster] node =
    /// "load-<i>"`), instead of one engine on a SQLite file. Agent i connects to node i % N,
    /// customers' posts spread over the nodes, admin calls go to node 0. With --durability
    /// full PostgreSQL fsyncs its commits (the test server's default is fsync off). The
    /// report sums the server's CPU over the nodes and shows the database's apart. Not with
    /// the floor or the peer.
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub(crate) cluster: Option<u64>,
    /// The pid of the engine behind --url, to read its RSS and CPU from /proc.
    #[arg(long, global = true)]
    pub(crate) pid: Option<u32>,
    /// Seconds of the measured window.
    #[arg(long, global = true, default_value_t = 10.0)]
    pub(crate) duration: f64,
    /// Seconds of load before the window opens (not measured).
    #[arg(long, global = true, default_value_t = 1.0)]
    pub(crate) warmup: f64,
    /// At most this many requests in the measured window (WebSocket requests + HTTP posts).
    #[arg(long, global = true, default_value_t = 50_000_000)]
    pub(crate) ops: u64,
    /// WebSocket handshakes in progress at once while connecting.
    #[arg(long, global = true, default_value_t = 100)]
    pub(crate) connect_concurrency: usize,
    /// HTTP ingress workers (each one request at a time, over its keep-alive connection)
    /// [default: the cycles in flight, between 16 and 256].
    #[arg(long, global = true)]
    pub(crate) http_workers: Option<usize>,
    /// Serve the floor relay with the socket setup the engine had before tuning: axum's
    /// defaults (`axum::serve` on `tokio::net::TcpListener::bind`), so no TCP_NODELAY (Nagle's
    /// algorithm on) and a listen backlog of 128. Without it the floor sets TCP_NODELAY and a
    /// backlog of 4096, as the engine does now. Its 4 KiB WebSocket buffers stay either way.
    #[arg(long, global = true)]
    pub(crate) floor_axum_defaults: bool,
    /// Before each run, wait up to this many seconds for the machine to be idle (other
    /// processes' CPU skews the figures; the report shows how much they took).
    #[arg(long, global = true, default_value_t = 0.0)]
    pub(crate) wait_quiet: f64,
    /// With --spawn: start a fake platform (an HTTP server on 127.0.0.1 inside the harness)
    /// and set the engine's `[outbound] webhook_url` to it, so every outbound message is
    /// POSTed there; the report counts them per second and checks each chat's order (issue 17).
    /// Without it a spawned engine logs its outbound messages (at --engine-log warn: nothing).
    #[arg(long, global = true)]
    pub(crate) fake_platform: bool,
    /// Tokio worker threads of the harness [default: one per core].
    #[arg(long, global = true)]
    pub(crate) threads: Option<usize>,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub(crate) enum Scenario {
    /// Hold N agent connections; report the server's RSS per connection.
    Idle {
        #[command(flatten)]
        idle: IdleArgs,
        #[command(flatten)]
        watch: SupervisorArgs,
        #[command(flatten)]
        beside: BesideArgs,
    },
    /// Agents reopen closed chats while customers reply over HTTP and agents close again.
    ReopenStorm {
        #[command(flatten)]
        storm: StormArgs,
        #[command(flatten)]
        watch: SupervisorArgs,
        #[command(flatten)]
        beside: BesideArgs,
    },
    /// K agents reopen the same customer at once, over many customers: exactly one wins each.
    Race(RaceArgs),
    /// New chats arrive over HTTP at a steady rate; agents accept and close after a think time.
    Routing(RoutingArgs),
    /// A shape (reopen-storm or idle) against the bare relay only.
    Floor(ShapeArgs),
    /// A shape (reopen-storm or idle) against the Socket.IO peer only.
    Peer(ShapeArgs),
    /// Serve the floor relay (started by the harness itself).
    #[command(hide = true)]
    Relay {
        /// Where to listen.
        #[arg(long)]
        listen: SocketAddr,
        /// The engine's socket setup before tuning (axum's defaults): no TCP_NODELAY, backlog 128.
        #[arg(long)]
        axum_defaults: bool,
    },
}

/// The traffic shapes the floor and the peer serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Shape {
    /// As `reopen-storm`.
    ReopenStorm,
    /// As `idle`.
    Idle,
}

/// What runs before the engine, with the same options (`idle`, `reopen-storm`).
#[derive(Debug, Args, Clone, Copy)]
pub(crate) struct BesideArgs {
    /// Run the same against the floor relay first, and report the ratios (the floor has
    /// no supervisor socket: it runs without --supervisors).
    #[arg(long)]
    pub(crate) with_floor: bool,
    /// Run the same against the peer (the floor's shape on Socket.IO and Node,
    /// load-tests/peer) after the floor and before the engine, and report the ratios
    /// (without --supervisors, as the floor). Needs `npm ci --prefix load-tests/peer`.
    #[arg(long)]
    pub(crate) with_peer: bool,
}

/// A traffic shape and its options (`floor`, `peer`).
#[derive(Debug, Args, Clone)]
pub(crate) struct ShapeArgs {
    /// Which traffic shape.
    #[arg(long, value_enum, default_value_t = Shape::ReopenStorm)]
    pub(crate) shape: Shape,
    #[command(flatten)]
    pub(crate) storm: StormArgs,
    #[command(flatten)]
    pub(crate) idle: IdleArgs,
}

/// Options of `idle`.
#[derive(Debug, Args, Clone)]
pub(crate) struct IdleArgs {
    /// Connections to hold (at most 19,000: the open-file limit is ~20,000 per process).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=19_000))]
    pub(crate) conns: u64,
    /// Connections per agent.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=2))]
    pub(crate) conns_per_agent: u64,
}

/// Options of `reopen-storm` (and the floor's storm shape).
#[derive(Debug, Args, Clone)]
pub(crate) struct StormArgs {
    /// Agents, each with two connections (one sends, the other only receives pushes).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=9_500))]
    pub(crate) agents: u64,
    /// Customers (closed chats) per agent.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub(crate) customers_per_agent: u64,
    /// Open loop: offer this many requests per second (a cycle is reopen + customer reply +
    /// close: three requests). Absent: closed loop, as fast as the target answers.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Closed loop: cycles in flight. Open loop: the cap on cycles in flight.
    #[arg(long, default_value_t = 256)]
    pub(crate) concurrency: u64,
    /// Engine only: besides the cycles, agents send this many `send_message` per second (open
    /// loop) in chats of their own, one per agent, reopened before the load and never closed:
    /// each is one more outbound message (a reopen is one too, its notice).
    #[arg(long)]
    pub(crate) outbound_rate: Option<f64>,
    /// Workspaces (R27) to spread the agents over evenly (agent i in workspace i % N, with the
    /// customers it serves), each created over the platform API and reached below
    /// `/v1/w/{id}`. 1: `default` on the unprefixed paths, as before workspaces. Engine only.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub(crate) workspaces: u64,
}

/// Supervisors watching while a scenario runs (`idle`, `reopen-storm`, `routing`; engine only).
#[derive(Debug, Args, Clone)]
pub(crate) struct SupervisorArgs {
    /// Before the measured phase, register this many supervisors, connect each to
    /// /v1/supervisor/ws (--connect-concurrency at a time) subscribed to every queue, and read
    /// them for the whole run. The agents' figures are measured as without them.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000))]
    pub(crate) supervisors: u64,
}

/// Options of `race`.
#[derive(Debug, Args, Clone)]
pub(crate) struct RaceArgs {
    /// Customers, each raced for once. The race stops after max(--duration, 120) seconds.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) customers: u64,
    /// Agents racing for each customer (K).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(2..=1_000))]
    pub(crate) agents: u64,
    /// Customers raced for at the same moment (each agent sends this many reopens at once).
    #[arg(long, default_value_t = 32)]
    pub(crate) wave: u64,
}

/// Options of `routing`.
#[derive(Debug, Args, Clone)]
pub(crate) struct RoutingArgs {
    /// Agents (one connection each).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=19_000))]
    pub(crate) agents: u64,
    /// Each agent's concurrency limit.
    #[arg(long, default_value_t = 4)]
    pub(crate) limit: u32,
    /// New chats per second (open loop).
    #[arg(long, default_value_t = 500.0)]
    pub(crate) rate: f64,
    /// Milliseconds an agent keeps a chat before closing it.
    #[arg(long, default_value_t = 200)]
    pub(crate) think_ms: u64,
    /// Skills (R19): each agent holds up to 3 of N skill names (`sk0`…) at random levels, each
    /// new chat requires one skill at a level some agent holds, and a spawned engine's queues
    /// get a workflow whose fallback step drops that requirement after a timeout.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) skills: Option<u32>,
    /// Priorities (R20): a spawned engine gets several queues of different priorities with a
    /// boost by wait and near the SLA, and each new chat asks for one of them.
    #[arg(long)]
    pub(crate) priorities: bool,
    /// Workspaces (R27) to spread the agents over evenly (agent i in workspace i % N, with the
    /// customers it serves), each created over the platform API and reached below
    /// `/v1/w/{id}`. 1: `default` on the unprefixed paths, as before workspaces. Engine only.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub(crate) workspaces: u64,
    #[command(flatten)]
    pub(crate) watch: SupervisorArgs,
}

/// Why `--cluster` cannot run as asked, if it cannot: it starts its own engines (--spawn)
/// and measures the engine alone (no floor, no peer, no run beside them), on a database
/// (durability full or normal: a cluster in memory shares nothing).
pub(crate) fn cluster_refusal(cli: &Cli) -> Option<&'static str> {
    cli.common.cluster?;
    if !cli.common.spawn {
        return Some("--cluster starts its own database and engines: it needs --spawn");
    }
    if cli.common.durability == "memory" {
        return Some(
            "--cluster keeps the state in PostgreSQL: --durability memory cannot be combined with it",
        );
    }
    let beside = match &cli.scenario {
        Scenario::Floor(_) | Scenario::Peer(_) | Scenario::Relay { .. } => {
            return Some("--cluster runs the engine: not with `floor`, `peer` or `relay`");
        }
        Scenario::Idle { beside, .. } | Scenario::ReopenStorm { beside, .. } => Some(beside),
        Scenario::Race(_) | Scenario::Routing(_) => None,
    };
    if beside.is_some_and(|b| b.with_floor || b.with_peer) {
        return Some("--cluster measures the engine alone: not with --with-floor or --with-peer");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(args: &[&str]) -> Option<&'static str> {
        let cli = Cli::try_parse_from(std::iter::once("switchboard-load").chain(args.iter().copied()))
            .expect("the arguments parse");
        cluster_refusal(&cli)
    }

    #[test]
    fn issue19_cluster_runs_spawned_engines_alone_with_workspaces_and_durability() {
        assert_eq!(refusal(&["reopen-storm", "--spawn", "--cluster", "3"]), None);
        assert_eq!(
            refusal(&[
                "reopen-storm",
                "--spawn",
                "--cluster",
                "1",
                "--workspaces",
                "4",
                "--durability",
                "normal"
            ]),
            None
        );
        assert_eq!(refusal(&["--cluster", "2", "--spawn", "race"]), None);
        // Without --cluster nothing changes.
        assert_eq!(refusal(&["floor"]), None);
        assert_eq!(refusal(&["reopen-storm", "--with-floor"]), None);
    }

    #[test]
    fn issue19_cluster_is_refused_without_spawn_in_memory_and_beside_the_floor_or_peer() {
        let refused = |args: &[&str], word: &str| {
            let why = refusal(args).unwrap_or_else(|| panic!("{args:?} is refused"));
            assert!(why.contains(word), "{args:?}: {why}");
        };
        refused(&["reopen-storm", "--cluster", "3"], "--spawn");
        refused(
            &[
                "reopen-storm",
                "--spawn",
                "--cluster",
                "1",
                "--durability",
                "memory",
            ],
            "memory",
        );
        refused(&["floor", "--spawn", "--cluster", "1"], "floor");
        refused(&["peer", "--spawn", "--cluster", "1"], "peer");
        refused(
            &["reopen-storm", "--spawn", "--cluster", "1", "--with-floor"],
            "--with-floor",
        );
        refused(
            &["idle", "--spawn", "--cluster", "1", "--with-peer"],
            "--with-peer",
        );
        assert!(
            Cli::try_parse_from(["switchboard-load", "reopen-storm", "--spawn", "--cluster", "0"]).is_err(),
            "at least one node"
        );
    }
}
