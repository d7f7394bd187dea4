//! `switchboard`: runs the engine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use switchboard::clock::{Clock, SystemClock};
use switchboard::cluster::{Claims, Directory, Node};
use switchboard::config::{Backend, Config, DurabilityConfig};
use switchboard::engine::outbound::connector::Connector;
use switchboard::engine::outbound::send_thread;
use switchboard::gateway;
use switchboard::gateway::board_runtime;
use switchboard::gateway::forward::Forwarder;
use switchboard::ids::WorkspaceId;
use switchboard::security::Security;
use switchboard::store::Store;
use switchboard::workspaces::{Credentials, Provisioning, Workspaces};

/// The allocator: see Cargo.toml for why (and `benches/core.rs`, which measures with it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process.
///
/// mimalloc asks for huge pages on its arenas (`MADV_HUGEPAGE`), so the first touch of each
/// 2 MiB of a growing heap faults in and zeroes a whole huge page while a worker waits. On
/// this project's 2-core VM that stalled a worker for 5–9 ms at a time, once or twice a second
/// under load, and was the whole of the routing scenario's p99 (6.5 ms with huge pages, 1.3 ms
/// without; load-tests/README.md, "Issue 16"). Redis turns them off for the same reason.
fn keep_pages_small() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!(error = %e, "transparent huge pages stay as the system has them: expect latency spikes while the heap grows");
    }
}

/// Switchboard: a real-time routing engine for customer-support chat.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on [default: the config's `listen`, else 127.0.0.1:8080].
    #[arg(long, env = "SWITCHBOARD_LISTEN")]
    listen: Option<SocketAddr>,
    /// TOML configuration file (see src/config.rs); without one, built-in defaults and demo
    /// agents ana, ben and sam (tokens ana-token, ben-token, sam-token).
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// The database file (overrides the config's `[storage] path`).
    #[arg(long, env = "SWITCHBOARD_DATA")]
    data: Option<PathBuf>,
    /// What an acknowledgement waits for (overrides `[storage] durability`): `full` (on disk,
    /// fsynced), `normal` (survives the process, not the machine) or `memory` (no database:
    /// nothing survives a restart).
    #[arg(long, value_enum, env = "SWITCHBOARD_DURABILITY")]
    durability: Option<DurabilityConfig>,
    /// Keep the state in this PostgreSQL database instead of the SQLite file (overrides the
    /// config's `[cluster] database`): `postgres://user:password@host:port/name`.
    #[arg(long, env = "SWITCHBOARD_CLUSTER")]
    cluster: Option<String>,
    /// This node's name in the cluster (overrides `[cluster] node`; default
    /// `<hostname>-<pid>`).
    #[arg(long, env = "SWITCHBOARD_NODE")]
    node: Option<String>,
    /// The base URL other nodes reach this one at (overrides `[cluster] advertise`; default
    /// `http://` + the listen address).
    #[arg(long, env = "SWITCHBOARD_ADVERTISE")]
    advertise: Option<String>,
    /// POST outbound customer messages to this URL (overrides the config's webhook_url).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_URL")]
    webhook_url: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Prints a signed token (JWT) for an agent, with the configured HS256 secret (or the
    /// development one): `switchboard token ana`.
    Token {
        /// The agent's id.
        agent: String,
        /// The workspace it is for (R27): the token opens that workspace's paths only.
        #[arg(long, default_value = "default")]
        workspace: WorkspaceId,
        /// Its role [default: the role the config gives the agent, else agent].
        #[arg(long)]
        role: Option<String>,
        /// How long it is valid, in seconds.
        #[arg(long, default_value_t = 8 * 3600)]
        ttl_secs: i64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    keep_pages_small();
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    let security = config.security()?;
    if let Some(Command::Token {
        agent,
        workspace,
        role,
        ttl_secs,
    }) = &cli.command
    {
        let ttl = chrono::Duration::seconds(*ttl_secs);
        let token = mint(&config, &security, workspace, agent, role.as_deref(), ttl)?;
        println!("{token}");
        return Ok(());
    }
    if config.is_development() {
        tracing::warn!(
            "development security: tokens signed with the built-in dev secret, static tokens, open \
             admin and channel APIs; add a [security] section before exposing this (SECURITY.md)"
        );
    } else if security.effective_platform_key().is_none() {
        tracing::warn!(
            "[security] sets neither platform_key nor admin_key: the platform API and every \
             workspace's admin API are open (SECURITY.md)"
        );
    } else if security.platform_key.is_none() {
        tracing::info!(
            "no [security] platform_key: the admin_key is the platform key, and opens the \
             platform API and every workspace's admin API (SECURITY.md)"
        );
    }
    let engine_config = config.engine()?;
    let mut storage = config.storage.clone();
    if let Some(path) = cli.data {
        storage.path = path;
    }
    if let Some(durability) = cli.durability {
        storage.durability = durability;
    }
    let cluster_database = cli.cluster.or(config.cluster.database.clone());
    let listen = cli.listen.unwrap_or(config.listen);
    // Bound before the store opens: a cluster node advertises the port it really has (with
    // `--listen 127.0.0.1:0`, the one the system gave it). Connections wait in the backlog
    // until the workspaces are restored.
    let listener = gateway::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    let mut cluster_config = config.cluster.clone();
    cluster_config.node = cli.node.or(cluster_config.node);
    cluster_config.advertise = cli.advertise.or(cluster_config.advertise);
    // On PostgreSQL the engine is a node of a cluster: its placement loop decides which
    // workspaces it serves (possibly none), each under a lease (R28).
    let mut node_settings = None;
    // An unusable store (no permission, full disk, a newer schema, a database that refuses the
    // connection) stops the engine here with the store's error, which names the file or the
    // database (without its password) and what is wrong.
    let store = match storage.backend(cluster_database.as_deref())? {
        Backend::Sqlite { path, options } => {
            let store = Store::open(&path, options)?;
            tracing::info!(path = %path.display(), durability = ?storage.durability, "durable store open");
            Some(Arc::new(store))
        }
        Backend::Postgres { url, options } => {
            let store = Store::open_postgres(&url, options)?;
            tracing::info!(database = %store.path().display(), durability = ?storage.durability, "durable store open on PostgreSQL");
            let settings = cluster_config.node_settings(bound)?;
            if bound.ip().is_unspecified() && cluster_config.advertise.is_none() {
                tracing::warn!(advertise = %settings.advertise,
                    "listening on all addresses without [cluster] advertise: other nodes cannot forward to this one");
            }
            node_settings = Some(settings);
            Some(Arc::new(store))
        }
        Backend::Memory => {
            tracing::warn!("storage durability = memory: nothing survives a restart");
            None
        }
    };

    let connector = match cli.webhook_url.or(config.outbound.webhook_url.clone()) {
        Some(url) => {
            tracing::info!(%url, "outbound messages go to the webhook");
            Connector::webhook(url)
        }
        None => {
            tracing::info!("no webhook configured: outbound messages are logged");
            Connector::Log
        }
    };
    // Channels with a platform configured send through its own API (each workspace through
    // its own platforms, `default` through the configuration's); the rest as above.
    if !security.platforms.is_empty() {
        let channels: Vec<String> = security.platforms.keys().map(ToString::to_string).collect();
        tracing::info!(?channels, "these channels send through their platforms' own APIs");
    }
    // Every active workspace of the store (`default` always, with the configured agents and
    // settings), each restored, with its tasks: the ticker, the outbox's sender and the board.
    // The others get their own settings over the process's engine bounds.
    let boards = board_runtime::start().context("cannot start the board's runtime")?;
    // One sending thread for every workspace's outbox (if it cannot start, each sender tries
    // one of its own).
    let sends = send_thread::start()
        .inspect_err(|e| tracing::warn!(error = %e, "no sending thread for the process"))
        .ok();
    let provisioning = Provisioning {
        store: store.clone(),
        clock: Arc::new(SystemClock),
        default_config: engine_config,
        default_settings: config.default_workspace(),
        configured: Arc::new(Credentials::configured(&security)),
        default_agents: config.agents().into_iter().map(|a| a.into_profile()).collect(),
        others: config.engine_base(),
        new_limits: config.workspace_defaults,
        boards: boards.handle(),
        ticker: true,
        sending: Some((connector, config.outbound.retry())),
        sends: sends.as_ref().map(|thread| thread.handle()),
    };
    let workspaces = match (&node_settings, &store) {
        (Some(settings), Some(store)) => {
            let claims = Claims::new(settings.node.clone(), store.clone());
            Workspaces::open_cluster(provisioning, claims).await?
        }
        _ => Workspaces::open(provisioning).await?,
    };
    workspaces.label_metrics_of(config.metrics.workspace_labels);
    let workspaces = Arc::new(workspaces);
    // The node's directory (`node.directory()`) is what the gateway's forwarding asks.
    let node = node_settings
        .map(|settings| Node::start(settings, workspaces.clone()))
        .transpose()?;
    tracing::info!(addr = %bound, agents = config.agents().len(), "switchboard listening");
    // A node relays what it does not serve to the node that does (R28).
    let forwarder = match &node {
        Some(node) => {
            let directory: Arc<dyn Directory> = node.directory();
            Some(Arc::new(
                Forwarder::new(directory).context("cannot build the forwarding client")?,
            ))
        }
        None => None,
    };
    gateway::serve_node(
        listener,
        workspaces.clone(),
        boards.handle(),
        security,
        forwarder,
        shutdown_signal(),
        Duration::from_secs(5),
    )
    .await?;
    // A cluster node hands its workspaces over (each drained, its lease released), so the
    // others take them at once instead of after the lease lapses.
    if let Some(node) = node {
        node.leave().await;
    }
    // The sockets had their drain: this stops the tasks and waits for the store.
    workspaces.unload_all(Duration::ZERO).await?;
    drop(boards);
    drop(sends);
    tracing::info!("stopped");
    Ok(())
}

/// `switchboard token`: a token for `agent` of `workspace`, valid from now for `ttl`, with
/// `role` or else the role the config gives the agent.
fn mint(
    config: &Config,
    security: &Security,
    workspace: &WorkspaceId,
    agent: &str,
    role: Option<&str>,
    ttl: chrono::Duration,
) -> anyhow::Result<String> {
    let role = match role {
        Some(r) => switchboard::config::parse_role(r)
            .with_context(|| format!("unknown role {r}: agent, supervisor or admin"))?,
        None => config
            .agents()
            .into_iter()
            .find(|a| a.id == agent)
            .map(|a| a.role)
            .unwrap_or_default(),
    };
    security
        .tokens
        .mint(workspace, agent, role, SystemClock.now(), ttl)
        .context("tokens are verified with a public key here: mint them where the private key is")
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use switchboard::core::Role;
    use switchboard::security::{ClaimlessTokens, TokenError};

    use super::*;

    #[test]
    fn r27_switchboard_token_mints_the_workspace_claim() {
        let config = Config::default();
        let security = config.security().expect("the development setup");
        let acme = WorkspaceId::parse("acme").expect("a workspace id");
        let ttl = chrono::Duration::hours(1);
        let token = mint(&config, &security, &acme, "sam", None, ttl).expect("mints");
        let verified = security
            .tokens
            .verify(&token, SystemClock.now())
            .expect("verifies");
        assert_eq!(
            (
                verified.agent.as_str(),
                verified.role,
                verified.workspace.as_ref()
            ),
            ("sam", Role::Supervisor, Some(&acme)),
            "the role the config gives sam"
        );
        assert_eq!(
            verified.for_workspace(&WorkspaceId::default_workspace(), ClaimlessTokens::Default),
            Err(TokenError::OtherWorkspace)
        );

        // Without `--workspace`: `default`, so the README's commands work as before.
        let cli = Cli::try_parse_from(["switchboard", "token", "ana"]).expect("parses");
        let Some(Command::Token { workspace, .. }) = cli.command else {
            panic!("not the token command: {cli:?}");
        };
        assert!(workspace.is_default());
        let token = mint(&config, &security, &workspace, "ana", Some("agent"), ttl).expect("mints");
        let verified = security
            .tokens
            .verify(&token, SystemClock.now())
            .and_then(|v| v.for_workspace(&workspace, ClaimlessTokens::Refuse))
            .expect("opens default");
        assert_eq!(verified.workspace, Some(WorkspaceId::default_workspace()));
        assert!(Cli::try_parse_from(["switchboard", "token", "ana", "--workspace", "Acme"]).is_err());
    }
}
