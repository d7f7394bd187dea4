//! The configuration file (TOML). Every key is optional; with no file at all the engine runs
//! with the platform defaults and three demo agents, so a first `cargo run` needs nothing.
//!
//! `accept_timeout_secs`, `grace_secs`, `reopen_notice`, `[[queues]]`, `[channels.*]`,
//! `[platforms.*]` and `[security] ingress_key` are the `default` workspace's settings
//! (R27); every other workspace sets the same keys for itself, as JSON, over
//! `PUT /v1/w/{workspace}/admin/settings` (see `config/workspace.rs`). The rest is the
//! process's, for every workspace.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! accept_timeout_secs = 30        # R06
//! grace_secs = 60                 # R17
//! outbox_capacity = 1024          # frames per connection before it is cut off as too slow
//! log_capacity = 512              # pushes kept per agent for resume
//! log_bytes = 65536               # and at most this many bytes of them
//! # What the customer gets on the channel when an agent reopens its chat (R04); the chat's
//! # history records a "reopened" notice instead. Default:
//! reopen_notice = "An agent has reopened your conversation. Reply here to continue, or send #STOP to end it."
//! board_interval_ms = 50          # supervisors get the board's changes at most this often
//! board_log_capacity = 65536      # board changes kept for supervisors' resume
//! board_log_bytes = 16777216      # and at most this many bytes of them
//!
//! [storage]                       # where acknowledged changes are kept (issue 5)
//! path = "data/switchboard.sqlite"  # relative to the working directory; created if missing
//! durability = "full"             # full: fsync per group commit | normal: survives a process
//!                                 # crash, not a power loss | memory: no database at all
//! # max_size_mb = 10240           # refuse writes beyond this size, as on a full disk
//!
//! [outbound]
//! webhook_url = "http://127.0.0.1:9000/outbound"   # absent: outbound messages are logged
//! attempts = 8                    # then the message is marked failed, for its agent to retry (R24)
//! first_backoff_ms = 500          # doubled after each failed attempt...
//! max_backoff_ms = 300000         # ...up to this; a platform's Retry-After is heeded
//!
//! [security]                      # see SECURITY.md; absent: the development setup
//! jwt_secret = "change-me-to-32-or-more-random-bytes"  # HS256 key of agents' and supervisors' tokens
//! # jwt_public_key_file = "jwt.pem"  # instead: verify RS256 or ES256 tokens with this key
//! # jwt_algorithm = "RS256"          # HS256 (with jwt_secret), RS256 or ES256
//! leeway_secs = 30                # clock skew allowed on exp and nbf
//! static_tokens = false           # accept the per-agent `token`s too (development, load tests)
//! claimless_tokens = "default"    # signed tokens without a `ws` claim open `default` ("refuse": none)
//! allowed_origins = ["https://desk.example.com"]   # empty: any browser origin
//! admin_key = "admin-key"         # Bearer for default's admin API (/v1/admin/*); absent, and
//!                                 # no platform_key: the admin and platform APIs are open
//! platform_key = "platform-key"   # Bearer for /v1/platform/* and every workspace's admin API
//!                                 # (/v1/w/{ws}/admin/*); absent: admin_key stands in for it
//! ingress_key = "ingress-key"     # Bearer for channels without a webhook_secret; absent: open
//! replay_window_secs = 300        # a signed webhook's sent_at must be this close to now
//! frames_per_second = 50          # per WebSocket connection (bursts of twice that)
//! max_connections_per_agent = 16
//!
//! [workspace_defaults]            # R27: limits of workspaces created over the platform API;
//! max_connections = 500           # every key optional, absent: no limit (`default` has none
//! max_agents = 200                # unless set with PUT /v1/platform/workspaces/default/limits)
//! ingress_per_second = 100        # channel calls (bursts of twice that; then 429 rate_limited)
//! max_stored_bytes = 1073741824   # message text and payloads; then new customer messages 429
//!
//! [metrics]
//! workspace_labels = 50           # workspaces with their own `workspace` label; the rest "_other"
//!
//! [cluster]                       # issue 19: the state in PostgreSQL instead of [storage] path
//! database = "postgres://switchboard:secret@db.example.com:5432/switchboard"
//! node = "engine-1"               # unique in the cluster; default: <hostname>-<pid>
//! advertise = "http://10.0.0.5:8080"  # where other nodes reach this one; default: http:// + listen
//! lease_ms = 5000                 # a workspace's lease; a dead node's workspaces move after it
//! renew_ms = 1666                 # placement round (renewals, taking, handing over); default lease_ms / 3
//!
//! [[agents]]                      # present: exactly these agents (no demo agents)
//! id = "ana"
//! name = "Ana"
//! role = "agent"                  # agent | supervisor | admin
//! limit = 2
//! token = "ana-token"
//! queues = []                     # empty: all queues
//! skills = { billing = 3, "language:es" = 5 }   # levels 1-5 (R19)
//! channel_limits = { email = 5 }  # besides `limit` (R22)
//!
//! [[queues]]                      # default: one queue per channel, named after it
//! id = "messaging"
//! channels = ["whatsapp", "messenger", "instagram"]
//! # priority, sla_secs, steps, boost, rules, hours, overflow: see config/routing.rs (R19–R21)
//!
//! [channels.whatsapp]             # override any platform default
//! window_secs = 86400             # 0: no window
//! after_window = "templates"      # templates | human_agent_tag | nothing
//! human_agent_tag_secs = 604800   # only with after_window = "human_agent_tag" (here, or the
//!                                 # channel's default: Messenger, Instagram); else ignored
//! max_len = 1024
//! revive_window_secs = 86400
//! webhook_secret = "whatsapp-app-secret"   # bodies must carry X-Hub-Signature-256
//! requires = { whatsapp = 1 }     # skills every chat of the channel requires (R19)
//!
//! [channels.sms]                  # R26: replace the channel's opt-out and opt-in words
//! opt_out_words = ["stop", "stopall", "unsubscribe", "cancel", "end", "quit", "#stop"]
//! opt_in_words = ["start", "unstop"]
//!
//! # The platforms' own APIs and webhooks (R23–R25), one table per channel; see SECURITY.md.
//! # `base_url` defaults to the platform's (Graph API v21.0, api.telegram.org, api.twilio.com);
//! # every other key is a setting of the channel's adapter (src/channels/*.rs). Webhooks go to
//! # /v1/native/meta, /v1/native/telegram, /v1/native/twilio and /v1/native/email (another
//! # workspace's, with its own platforms, to /v1/w/<workspace>/native/…).
//! [platforms.whatsapp]
//! access_token = "EAAG…"          # Authorization: Bearer of the Graph API
//! phone_number_id = "106540352242922"
//! app_secret = "meta-app-secret"  # checks X-Hub-Signature-256 (required)
//! verify_token = "meta-verify-token"  # the hub.challenge handshake
//! template_language = "en_US"     # language of templates sent (default en_US)
//!
//! [platforms.telegram]
//! bot_token = "123456:ABC…"
//! secret_token = "telegram-secret-token"  # X-Telegram-Bot-Api-Secret-Token (required)
//!
//! [platforms.sms]                 # Twilio
//! account_sid = "AC0123456789abcdef0123456789abcdef"
//! auth_token = "twilio-auth-token"  # Basic auth of the API; signs X-Twilio-Signature (required)
//! from = "+15005550006"
//! webhook_url = "https://switchboard.example.com/v1/native/twilio"  # exactly as given to Twilio (required)
//!
//! [platforms.email]
//! token = "mail-server-token"     # Bearer / X-Switchboard-Mail-Token of raw posts (required)
//! from = "Support <support@example.com>"
//! smtp_host = "smtp.example.com"
//! smtp_port = 587
//! subject = "Re: your message"    # the replies' subject (default)
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use chrono::Duration;
use serde::{Deserialize, Serialize};

mod limits;
mod names;
mod node;
mod routing;
mod workspace;

pub use limits::Limits;
pub use names::parse_role;
pub use node::NodeSettings;
pub use routing::QueueConfig;
pub use workspace::WorkspaceSettings;

use crate::channels::PlatformConfig;
use crate::core::{AgentProfile, Channel, Role};
use crate::engine::outbound::Retry;
use crate::engine::EngineConfig;
use crate::ids::{AgentId, QueueId};
use crate::security::Credentials;
use crate::security::{ClaimlessTokens, Security, Tokens, FRAMES_PER_SECOND};

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// Which file.
        path: PathBuf,
        /// Where and why.
        source: Box<toml::de::Error>,
    },
    /// A value makes no sense.
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl ConfigError {
    /// What is wrong, without the "invalid config" of a file: for an API's answer.
    pub fn reason(&self) -> String {
        match self {
            Self::Invalid(reason) => reason.clone(),
            other => other.to_string(),
        }
    }
}

/// One agent of the configuration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Its id.
    pub id: String,
    /// Its display name (defaults to the id).
    #[serde(default)]
    pub name: Option<String>,
    /// Its role.
    #[serde(default, deserialize_with = "names::role")]
    pub role: Role,
    /// Its concurrency limit.
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// The token it connects with.
    #[serde(default)]
    pub token: Option<String>,
    /// The queues it serves; empty means all.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Its skills with their levels, 1 to 5 (R19).
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// Its limits per channel (R22), besides `limit`.
    #[serde(default, deserialize_with = "names::by_channel")]
    pub channel_limits: BTreeMap<Channel, u32>,
}

fn default_limit() -> u32 {
    3
}

impl AgentConfig {
    /// The profile and token this describes.
    pub fn into_profile(self) -> (AgentProfile, Option<String>) {
        let profile = AgentProfile {
            name: self.name.unwrap_or_else(|| self.id.clone()),
            id: AgentId::from(self.id),
            role: self.role,
            limit: self.limit,
            queues: self.queues.into_iter().map(QueueId::from).collect(),
            skills: self.skills,
            channel_limits: self.channel_limits,
        };
        (profile, self.token)
    }
}

/// Overrides of one channel's policy.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    window_secs: Option<i64>,
    after_window: Option<AfterWindowName>,
    human_agent_tag_secs: Option<i64>,
    max_len: Option<usize>,
    revive_window_secs: Option<i64>,
    /// The HMAC-SHA256 secret the channel's webhooks sign their bodies with.
    webhook_secret: Option<String>,
    /// Skills every chat of the channel requires (R19).
    #[serde(default)]
    requires: BTreeMap<String, u8>,
    /// Words that opt the customer out (R26), replacing the channel's defaults.
    opt_out_words: Option<Vec<String>>,
    /// Words that opt the customer back in (R26), replacing the channel's defaults.
    opt_in_words: Option<Vec<String>>,
}

/// One `[platforms.<channel>]` table: where the platform's API is, and the settings its
/// adapter reads (credentials, ids, webhook secrets). Settings are strings; numbers and
/// booleans are taken as their text, so `smtp_port = 587` reads as written.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct PlatformTable {
    /// The API's base URL; absent: the platform's own.
    #[serde(default)]
    base_url: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    settings: BTreeMap<String, toml::Value>,
}

/// The platform's own API, for channels with an adapter; none for those without one.
fn default_base_url(channel: Channel) -> Option<&'static str> {
    match channel {
        Channel::Whatsapp | Channel::Messenger | Channel::Instagram => {
            Some("https://graph.facebook.com/v21.0")
        }
        Channel::Telegram => Some("https://api.telegram.org"),
        Channel::Sms => Some("https://api.twilio.com"),
        // SMTP has no base URL: `smtp_host` and friends say where replies go.
        Channel::Email => Some(""),
        _ => None,
    }
}

/// The settings without which a channel's webhooks cannot be verified: refusing to start is
/// better than accepting unsigned webhooks or refusing every real one.
fn required_secrets(channel: Channel) -> &'static [&'static str] {
    match channel {
        Channel::Whatsapp | Channel::Messenger | Channel::Instagram => &["app_secret"],
        Channel::Telegram => &["secret_token"],
        Channel::Sms => &["auth_token", "webhook_url"],
        Channel::Email => &["token"],
        _ => &[],
    }
}

impl PlatformTable {
    /// The adapter's configuration for `channel`, or what is wrong with the table.
    fn platform(&self, channel: Channel) -> Result<PlatformConfig, ConfigError> {
        let default = default_base_url(channel).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "platforms.{channel}: {channel} has no native platform adapter (there are whatsapp, messenger, instagram, telegram, sms and email); use the generic ingress and [outbound] instead"
            ))
        })?;
        let mut settings = BTreeMap::new();
        for (key, value) in &self.settings {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(ConfigError::Invalid(format!(
                        "platforms.{channel}.{key} must be a string, not {}",
                        other.type_str()
                    )))
                }
            };
            settings.insert(key.clone(), text);
        }
        for key in required_secrets(channel) {
            if settings.get(*key).is_none_or(|v| v.is_empty()) {
                return Err(ConfigError::Invalid(format!(
                    "platforms.{channel}.{key} is missing: the channel's webhooks cannot be verified without it"
                )));
            }
        }
        Ok(PlatformConfig {
            base_url: self.base_url.clone().unwrap_or_else(|| default.to_owned()),
            settings,
        })
    }
}

/// The `[security]` section; see SECURITY.md.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    jwt_secret: Option<String>,
    jwt_public_key_file: Option<PathBuf>,
    jwt_algorithm: Option<String>,
    leeway_secs: Option<i64>,
    static_tokens: Option<bool>,
    claimless_tokens: Option<ClaimlessTokens>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    admin_key: Option<String>,
    platform_key: Option<String>,
    ingress_key: Option<String>,
    replay_window_secs: Option<i64>,
    frames_per_second: Option<u32>,
    max_connections_per_agent: Option<usize>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
enum AfterWindowName {
    Templates,
    HumanAgentTag,
    Nothing,
}

/// How hard the engine keeps what it acknowledges.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityConfig {
    /// Every group commit is fsynced before its acknowledgements go out.
    #[default]
    Full,
    /// Committed to the OS before acknowledging: survives a crash of the process, not of the
    /// machine.
    Normal,
    /// No database: everything is lost on restart (tests, load-test baselines).
    Memory,
}

/// Where the engine keeps its durable state.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The SQLite database file, relative to the working directory.
    #[serde(default = "default_storage_path")]
    pub path: PathBuf,
    /// What "acknowledged" means.
    #[serde(default)]
    pub durability: DurabilityConfig,
    /// Refuse writes that would grow the database beyond this many MiB.
    #[serde(default)]
    pub max_size_mb: Option<u64>,
}

fn default_storage_path() -> PathBuf {
    PathBuf::from("data/switchboard.sqlite")
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: default_storage_path(),
            durability: DurabilityConfig::default(),
            max_size_mb: None,
        }
    }
}

/// Where a process keeps its acknowledged changes: what [`StorageConfig::backend`] decides.
#[derive(Clone, Debug)]
pub enum Backend {
    /// The embedded default: one SQLite file.
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// How to open it.
        options: crate::store::StoreOptions,
    },
    /// A cluster's system of record (issue 19): a PostgreSQL database.
    Postgres {
        /// Its connection string (may hold a password: never log it; the store names the
        /// database without one).
        url: String,
        /// How to open it.
        options: crate::store::StoreOptions,
    },
    /// No database: nothing survives a restart.
    Memory,
}

impl StorageConfig {
    /// The backend: PostgreSQL when a cluster database is given (`[cluster] database`, or
    /// `--cluster`), else the SQLite file at `path`, else memory when `durability = "memory"`.
    /// A cluster in memory is refused: its nodes share nothing but the database.
    pub fn backend(&self, cluster_database: Option<&str>) -> Result<Backend, ConfigError> {
        match (self.store_options(), cluster_database) {
            (Some(options), Some(url)) => Ok(Backend::Postgres {
                url: url.to_owned(),
                options,
            }),
            (None, Some(_)) => Err(ConfigError::Invalid(
                "a cluster keeps its state in PostgreSQL: durability \"memory\" cannot be \
                 combined with a cluster database"
                    .into(),
            )),
            (Some(options), None) => Ok(Backend::Sqlite {
                path: self.path.clone(),
                options,
            }),
            (None, None) => Ok(Backend::Memory),
        }
    }

    /// How to open the store, or `None` to keep everything in memory.
    pub fn store_options(&self) -> Option<crate::store::StoreOptions> {
        let durability = match self.durability {
            DurabilityConfig::Full => crate::store::Durability::Full,
            DurabilityConfig::Normal => crate::store::Durability::Normal,
            DurabilityConfig::Memory => return None,
        };
        Some(crate::store::StoreOptions {
            durability,
            max_size_bytes: self.max_size_mb.map(|mb| mb.saturating_mul(1024 * 1024)),
            ..Default::default()
        })
    }
}

/// Where outbound messages go.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// POST every outbound message here; absent: log them.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Attempts per message.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// First retry delay, doubled each retry.
    #[serde(default = "default_backoff_ms")]
    pub first_backoff_ms: u64,
    /// The longest delay between attempts.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

fn default_max_backoff_ms() -> u64 {
    Retry::default().max_backoff.as_millis() as u64
}

fn default_attempts() -> u32 {
    Retry::default().attempts
}

fn default_backoff_ms() -> u64 {
    Retry::default().first_backoff.as_millis() as u64
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            attempts: default_attempts(),
            first_backoff_ms: default_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

impl OutboundConfig {
    /// The retry policy.
    pub fn retry(&self) -> Retry {
        Retry {
            attempts: self.attempts.max(1),
            first_backoff: StdDuration::from_millis(self.first_backoff_ms),
            max_backoff: StdDuration::from_millis(self.max_backoff_ms.max(self.first_backoff_ms)),
        }
    }
}

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to listen.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// R06 accept timeout.
    #[serde(default)]
    pub accept_timeout_secs: Option<i64>,
    /// R17 grace period.
    #[serde(default)]
    pub grace_secs: Option<i64>,
    /// Outbox size per connection.
    #[serde(default)]
    pub outbox_capacity: Option<usize>,
    /// Replay log size per agent.
    #[serde(default)]
    pub log_capacity: Option<usize>,
    /// Replay log bytes per agent.
    #[serde(default)]
    pub log_bytes: Option<usize>,
    /// The automatic notice sent to the customer on the channel when an agent reopens its chat
    /// (R04); absent: the built-in English text.
    #[serde(default)]
    pub reopen_notice: Option<String>,
    /// How often, at most, supervisors get a frame of the board's changes.
    #[serde(default)]
    pub board_interval_ms: Option<u64>,
    /// Board changes kept for supervisors' resume.
    #[serde(default)]
    pub board_log_capacity: Option<usize>,
    /// Bytes of board changes kept.
    #[serde(default)]
    pub board_log_bytes: Option<usize>,
    /// The durable store.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The outbound connector.
    #[serde(default)]
    pub outbound: OutboundConfig,
    /// The agents; absent means the demo agents.
    #[serde(default)]
    pub agents: Option<Vec<AgentConfig>>,
    /// The queues; absent means one per channel.
    #[serde(default)]
    pub queues: Vec<QueueConfig>,
    /// Channel policy overrides.
    #[serde(default, deserialize_with = "names::by_channel")]
    pub channels: BTreeMap<Channel, ChannelConfig>,
    /// Credentials and limits; absent: the development setup.
    #[serde(default)]
    pub security: Option<SecurityConfig>,
    /// The platforms' own APIs and webhooks, per channel (R23–R25).
    #[serde(default, deserialize_with = "names::by_channel")]
    pub platforms: BTreeMap<Channel, PlatformTable>,
    /// The limits every workspace created over the platform API starts with (R27); none by
    /// default. `default`'s are set over the API only.
    #[serde(default)]
    pub workspace_defaults: Limits,
    /// What `/metrics` reports.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// A cluster on PostgreSQL (issue 19); absent: one engine on its SQLite file.
    #[serde(default)]
    pub cluster: ClusterConfig,
}

/// `[cluster]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The cluster's PostgreSQL database (`postgres://user:password@host:port/name`, or the
    /// `key=value` form), which replaces `[storage] path`. Absent: SQLite.
    #[serde(default)]
    pub database: Option<String>,
    /// This node's name, unique in the cluster; absent: `<hostname>-<pid>`. A restarted node
    /// may reuse its name (taking a lease again raises its epoch, which fences the old run).
    #[serde(default)]
    pub node: Option<String>,
    /// The base URL other nodes forward this node's workspaces' requests to
    /// (`http://host:port`); absent: `http://` + the listen address.
    #[serde(default)]
    pub advertise: Option<String>,
    /// How long a lease lasts unless renewed, in ms (default 5000): a dead node's workspaces
    /// are served again by others within about this plus one round, well under 10 s.
    #[serde(default)]
    pub lease_ms: Option<u64>,
    /// How often the placement round runs (renewals among its work), in ms; default
    /// `lease_ms / 3`, so two renewals can fail before a lease lapses.
    #[serde(default)]
    pub renew_ms: Option<u64>,
}

impl ClusterConfig {
    /// This node's placement settings, listening on `listen`: the defaults filled in, and a
    /// round that is shorter than the lease.
    pub fn node_settings(&self, listen: SocketAddr) -> Result<NodeSettings, ConfigError> {
        let lease = StdDuration::from_millis(self.lease_ms.unwrap_or(5000));
        let round = self.renew_ms.map_or(lease / 3, StdDuration::from_millis);
        if lease < StdDuration::from_millis(100) {
            return Err(ConfigError::Invalid(format!(
                "cluster.lease_ms = {}: at least 100",
                lease.as_millis()
            )));
        }
        if round.is_zero() || round >= lease {
            return Err(ConfigError::Invalid(format!(
                "cluster.renew_ms = {} must be above 0 and below lease_ms = {}",
                round.as_millis(),
                lease.as_millis()
            )));
        }
        let node = match &self.node {
            Some(node) if node.trim().is_empty() => {
                return Err(ConfigError::Invalid("cluster.node is empty".into()))
            }
            Some(node) => node.clone(),
            None => format!("{}-{}", hostname(), std::process::id()),
        };
        let advertise = match &self.advertise {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{listen}"),
        };
        Ok(NodeSettings {
            node,
            advertise,
            lease,
            round,
        })
    }
}

/// The machine's name, for a node's default name (`localhost` if it cannot be read).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `[metrics]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Workspaces reported under their own `workspace` label, in load order (`default`
    /// first); the rest are summed under `workspace="_other"`.
    #[serde(default = "default_workspace_labels")]
    pub workspace_labels: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            workspace_labels: default_workspace_labels(),
        }
    }
}

/// How many workspaces get a `workspace` label of their own on `/metrics` unless `[metrics]
/// workspace_labels` says otherwise; the rest are summed under `_other`.
pub const WORKSPACE_LABELS: usize = 50;

fn default_workspace_labels() -> usize {
    WORKSPACE_LABELS
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for Config {
    fn default() -> Self {
        Self::parse("", Path::new("<defaults>")).expect("the empty config is valid")
    }
}

/// The agents a first run starts with: two agents and a supervisor, tokens `<id>-token`,
/// with a few skills to show on the desk and the wall (R19).
pub fn demo_agents() -> Vec<AgentConfig> {
    [
        (
            "ana",
            "Ana",
            Role::Agent,
            2,
            &[("billing", 3), ("language:en", 5)][..],
        ),
        (
            "ben",
            "Ben",
            Role::Agent,
            2,
            &[("language:en", 4), ("language:es", 5)][..],
        ),
        ("sam", "Sam", Role::Supervisor, 3, &[][..]),
    ]
    .into_iter()
    .map(|(id, name, role, limit, skills)| AgentConfig {
        id: id.into(),
        name: Some(name.into()),
        role,
        limit,
        token: Some(format!("{id}-token")),
        queues: Vec::new(),
        skills: skills.iter().map(|(s, l)| (s.to_string(), *l)).collect(),
        channel_limits: BTreeMap::new(),
    })
    .collect()
}

impl Config {
    /// Reads `path`, or the defaults when there is none.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses TOML text; `path` is only for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        config.engine()?;
        config.security()?;
        config
            .workspace_defaults
            .check()
            .map_err(|e| ConfigError::Invalid(format!("workspace_defaults: {e}")))?;
        for agent in config.agents.iter().flatten() {
            routing::levels(&format!("agents.{}.skills", agent.id), &agent.skills)?;
        }
        Ok(config)
    }

    /// Whether this is the development setup (no `[security]` section): open admin and
    /// ingress APIs, the development token secret.
    pub fn is_development(&self) -> bool {
        self.security.is_none()
    }

    /// What the gateway checks.
    pub fn security(&self) -> Result<Security, ConfigError> {
        let mut security = Security::default();
        // Webhook secrets and platforms count even in the development setup: a channel
        // configured to sign is checked, and platforms' webhooks are always verified.
        let credentials = self.default_workspace().credentials(&Credentials::default())?;
        security.webhook_secrets = credentials.webhook_secrets;
        security.platforms = credentials.platforms;
        let Some(c) = &self.security else {
            return Ok(security);
        };
        let leeway = c.leeway_secs.unwrap_or(30);
        if leeway < 0 {
            return Err(ConfigError::Invalid(format!(
                "security.leeway_secs must not be negative, got {leeway}"
            )));
        }
        let algorithm = c.jwt_algorithm.as_deref().map(str::to_ascii_uppercase);
        security.tokens = match (&c.jwt_secret, &c.jwt_public_key_file, algorithm.as_deref()) {
            (Some(secret), None, None | Some("HS256")) => {
                if secret.len() < 32 {
                    return Err(ConfigError::Invalid(
                        "security.jwt_secret must be at least 32 bytes".into(),
                    ));
                }
                Tokens::hs256(secret.as_bytes(), leeway)
            }
            (None, Some(path), alg) => {
                let alg = match alg.unwrap_or("RS256") {
                    "RS256" => jsonwebtoken::Algorithm::RS256,
                    "ES256" => jsonwebtoken::Algorithm::ES256,
                    other => {
                        return Err(ConfigError::Invalid(format!(
                            "security.jwt_algorithm {other} does not go with a public key: use RS256 or ES256"
                        )))
                    }
                };
                let pem = std::fs::read(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Tokens::public_key(alg, &pem, leeway).map_err(ConfigError::Invalid)?
            }
            (Some(_), Some(_), _) => {
                return Err(ConfigError::Invalid(
                    "security: set jwt_secret or jwt_public_key_file, not both".into(),
                ))
            }
            (Some(_), None, Some(other)) => {
                return Err(ConfigError::Invalid(format!(
                    "security.jwt_algorithm {other} does not go with jwt_secret: use HS256"
                )))
            }
            (None, None, _) => {
                return Err(ConfigError::Invalid(
                    "security needs jwt_secret or jwt_public_key_file".into(),
                ))
            }
        };
        security.static_tokens = c.static_tokens.unwrap_or(false);
        // Accepted unless refused: tokens signed before workspaces carry no claim, and an
        // upgrade must not lock their holders out (SECURITY.md, "Workspaces").
        security.claimless_tokens = c.claimless_tokens.unwrap_or_default();
        security.allowed_origins = c.allowed_origins.clone();
        security.admin_key = c.admin_key.clone();
        security.platform_key = c.platform_key.clone();
        security.ingress_key = c.ingress_key.clone();
        if let Some(secs) = c.replay_window_secs {
            security.replay_window = positive("security.replay_window_secs", secs)?;
        }
        security.frames_per_second = c.frames_per_second.unwrap_or(FRAMES_PER_SECOND).max(1);
        if let Some(n) = c.max_connections_per_agent {
            security.max_connections_per_agent = n.max(1);
        }
        Ok(security)
    }

    /// The configured agents, or the demo agents.
    pub fn agents(&self) -> Vec<AgentConfig> {
        self.agents.clone().unwrap_or_else(demo_agents)
    }

    /// The engine's settings: the process's bounds ([`Config::engine_base`]) with `default`'s
    /// settings.
    pub fn engine(&self) -> Result<EngineConfig, ConfigError> {
        self.default_workspace().engine(self.engine_base())
    }

    /// The engine settings that are the process's, not a workspace's: per-connection and
    /// per-agent log bounds and the board's pace and memory (docs/design/workspaces.md, R4).
    /// Every workspace's engine starts from these.
    pub fn engine_base(&self) -> EngineConfig {
        let mut engine = EngineConfig::default();
        if let Some(n) = self.outbox_capacity {
            engine.outbox_capacity = n.max(1);
        }
        if let Some(n) = self.log_capacity {
            engine.log_capacity = n.max(1);
        }
        if let Some(n) = self.log_bytes {
            engine.log_bytes = n.max(1);
        }
        if let Some(ms) = self.board_interval_ms {
            engine.board_interval = StdDuration::from_millis(ms);
        }
        if let Some(n) = self.board_log_capacity {
            engine.board_log_capacity = n.max(1);
        }
        if let Some(n) = self.board_log_bytes {
            engine.board_log_bytes = n.max(1);
        }
        engine
    }

    /// `default`'s settings (R27): the top-level keys that a workspace sets for itself
    /// (`accept_timeout_secs`, `grace_secs`, `reopen_notice`, `[[queues]]`, `[channels.*]`,
    /// `[platforms.*]`) and `[security] ingress_key`.
    pub fn default_workspace(&self) -> WorkspaceSettings {
        WorkspaceSettings {
            accept_timeout_secs: self.accept_timeout_secs,
            grace_secs: self.grace_secs,
            reopen_notice: self.reopen_notice.clone(),
            queues: self.queues.clone(),
            channels: self.channels.clone(),
            ingress_key: self.security.as_ref().and_then(|s| s.ingress_key.clone()),
            platforms: self.platforms.clone(),
            // `default`'s outbound messages go where `[outbound] webhook_url` (or
            // `--webhook-url`) says, as before workspaces.
            outbound_webhook_url: None,
        }
    }
}

fn positive(key: &str, secs: i64) -> Result<Duration, ConfigError> {
    if secs <= 0 {
        return Err(ConfigError::Invalid(format!(
            "{key} must be positive, got {secs}"
        )));
    }
    Ok(Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::AfterWindow;

    #[test]
    fn empty_config_gives_demo_agents_and_platform_defaults() {
        let config = Config::default();
        let ids: Vec<String> = config.agents().into_iter().map(|a| a.id).collect();
        assert_eq!(ids, ["ana", "ben", "sam"]);
        let engine = config.engine().expect("valid");
        assert_eq!(
            engine.policies.of(Channel::Whatsapp).window,
            Some(Duration::hours(24))
        );
        assert_eq!(
            engine.policies.of(Channel::Wechat).after_window,
            AfterWindow::Nothing
        );
        assert_eq!(engine.policies.of(Channel::Email).max_len, 10_240);
    }

    #[test]
    fn r28_a_node_s_settings_default_to_a_failover_well_under_ten_seconds() {
        let listen: SocketAddr = "10.0.0.5:8080".parse().expect("an address");
        let settings = |text: &str| {
            Config::parse(text, Path::new("t.toml"))
                .expect("parses")
                .cluster
                .node_settings(listen)
        };
        let defaults = settings("").expect("valid");
        assert_eq!(defaults.lease, StdDuration::from_secs(5));
        assert_eq!(defaults.round, StdDuration::from_secs(5) / 3);
        assert_eq!(defaults.advertise, "http://10.0.0.5:8080");
        assert!(defaults.node.ends_with(&format!("-{}", std::process::id())));
        assert!(defaults.lease + defaults.round < StdDuration::from_secs(10));

        let set = settings(
            "[cluster]\nnode = \"engine-1\"\nadvertise = \"http://e1:8080/\"\nlease_ms = 3000\nrenew_ms = 500\n",
        )
        .expect("valid");
        assert_eq!(
            (set.node.as_str(), set.advertise.as_str(), set.lease, set.round),
            (
                "engine-1",
                "http://e1:8080",
                StdDuration::from_secs(3),
                StdDuration::from_millis(500)
            )
        );
        for wrong in [
            "[cluster]\nlease_ms = 1000\nrenew_ms = 1000\n",
            "[cluster]\nrenew_ms = 0\n",
            "[cluster]\nlease_ms = 10\n",
            "[cluster]\nnode = \" \"\n",
        ] {
            assert!(settings(wrong).is_err(), "accepted {wrong:?}");
        }
    }

    #[test]
    fn issue19_a_cluster_database_puts_the_state_in_postgresql_and_refuses_memory() {
        let backend = |text: &str, flag: Option<&str>| {
            let config = Config::parse(text, Path::new("t.toml")).expect("parses");
            config
                .storage
                .backend(flag.or(config.cluster.database.as_deref()))
        };
        assert!(
            matches!(backend("", None), Ok(Backend::Sqlite { path, .. }) if path == Path::new("data/switchboard.sqlite"))
        );
        let url = "postgres://sb@127.0.0.1:5432/sb";
        let in_file = format!("[cluster]\ndatabase = \"{url}\"\n");
        assert!(matches!(backend(&in_file, None), Ok(Backend::Postgres { url: u, .. }) if u == url));
        // The flag wins over the file, as every flag does.
        let other = "postgres://sb@10.0.0.2/sb";
        assert!(matches!(backend(&in_file, Some(other)), Ok(Backend::Postgres { url: u, .. }) if u == other));
        assert!(matches!(
            backend("[storage]\ndurability = \"memory\"\n", None),
            Ok(Backend::Memory)
        ));
        let refused = backend("[storage]\ndurability = \"memory\"\n", Some(url))
            .expect_err("a cluster in memory is refused");
        assert!(refused.to_string().contains("memory"), "{refused}");
        assert!(
            Config::parse("[cluster]\nurl = \"x\"\n", Path::new("t.toml")).is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn r27_claimless_tokens_open_default_unless_refused() {
        let security = |section: &str| {
            Config::parse(section, Path::new("t.toml"))
                .and_then(|c| c.security())
                .map(|s| s.claimless_tokens)
        };
        let secret = "[security]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n";
        assert_eq!(security("").ok(), Some(ClaimlessTokens::Default), "development");
        assert_eq!(
            security(secret).ok(),
            Some(ClaimlessTokens::Default),
            "an upgrade"
        );
        assert_eq!(
            security(&format!("{secret}claimless_tokens = \"refuse\"\n")).ok(),
            Some(ClaimlessTokens::Refuse)
        );
        assert!(security(&format!("{secret}claimless_tokens = \"acme\"\n")).is_err());
    }

    #[test]
    fn r27_the_platform_key_is_read_beside_the_admin_key() {
        let secret = "[security]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n";
        let security = Config::parse(
            &format!("{secret}admin_key = \"a\"\nplatform_key = \"p\"\n"),
            Path::new("t.toml"),
        )
        .and_then(|c| c.security())
        .expect("valid");
        assert_eq!(
            (security.admin_key.as_deref(), security.platform_key.as_deref()),
            (Some("a"), Some("p"))
        );
        assert_eq!(security.effective_platform_key(), Some("p"));
    }

    #[test]
    fn channel_overrides_replace_only_what_they_name() {
        let config = Config::parse(
            "[channels.sms]\nwindow_secs = 3600\nafter_window = \"nothing\"\n[[agents]]\nid = \"x\"\n",
            Path::new("t.toml"),
        )
        .expect("valid");
        let engine = config.engine().expect("valid");
        let sms = engine.policies.of(Channel::Sms);
        assert_eq!(sms.window, Some(Duration::hours(1)));
        assert_eq!(sms.after_window, AfterWindow::Nothing);
        assert_eq!(sms.max_len, 1_600);
        assert_eq!(config.agents().len(), 1);
    }

    #[test]
    fn the_documented_example_parses_and_means_what_it_says() {
        let example: String = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start_matches(' ')))
            .collect();
        let config = Config::parse(&example, Path::new("example.toml")).expect("the example parses");
        let engine = config.engine().expect("valid");
        assert_eq!(engine.board_interval, StdDuration::from_millis(50));
        assert_eq!(engine.board_log_capacity, 65_536);
        assert_eq!(engine.log_bytes, 65_536);
        assert_eq!(config.agents().len(), 1);
    }

    #[test]
    fn the_documented_routing_example_parses_and_means_what_it_says() {
        let example: String = include_str!("config/routing.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| {
                format!(
                    "{}\n",
                    l.trim_start_matches("//!")
                        .split(" #")
                        .next()
                        .unwrap_or("")
                        .trim()
                )
            })
            .collect();
        let example = format!("{example}\n[[queues]]\nid = \"night\"\n");
        let engine = Config::parse(&example, Path::new("example.toml"))
            .and_then(|c| c.engine())
            .unwrap_or_else(|e| panic!("{e}\n{example}"));
        let billing = &engine.queues[0];
        assert_eq!(billing.id.as_str(), "billing");
        assert_eq!(billing.channels, [Channel::Whatsapp, Channel::Webchat]);
        let plan = &billing.plan;
        assert_eq!((plan.priority, plan.sla), (10, Some(Duration::seconds(60))));
        assert_eq!(plan.steps.len(), 2);
        assert_eq!(plan.steps[0].timeout, Some(Duration::seconds(60)));
        assert!(!plan.steps[1].keeps_chat_needs);
        assert_eq!(plan.boost.near_due_by, 5);
        assert_eq!(plan.rules[0].priority, 20);
        assert_eq!(plan.overflow.as_ref().map(|q| q.as_str()), Some("night"));
        assert!(plan.hours.is_some());
        assert_eq!(billing.after_hours_reply, "We are closed; we answer from 9:00.");
    }

    #[test]
    fn bad_routing_values_are_named() {
        let cases = [
            ("[[queues]]\nid = \"a\"\noverflow = \"b\"", "no queue `b`"),
            (
                "[[queues]]\nid = \"a\"\n[[queues.steps]]\nrequires = { billing = 6 }",
                "billing",
            ),
            (
                "[[queues]]\nid = \"a\"\n[queues.boost]\nby = -1",
                "queues.a.boost",
            ),
            (
                "[[queues]]\nid = \"a\"\n[[queues.steps]]\nrequires = {}\n[[queues.steps]]\nrequires = {}",
                "queues.a.steps[0]",
            ),
            (
                "[[queues]]\nid = \"a\"\n[queues.hours]\ntime_zone = \"Mars/Olympus\"",
                "Mars/Olympus",
            ),
            (
                "[[queues]]\nid = \"a\"\nchannels = [\"sms\"]\n[[queues]]\nid = \"b\"\nchannels = [\"sms\"]",
                "sms",
            ),
            ("[[agents]]\nid = \"ana\"\nskills = { billing = 0 }", "billing"),
        ];
        for (toml, named) in cases {
            let err = Config::parse(toml, Path::new("t.toml")).expect_err(toml);
            assert!(err.to_string().contains(named), "{toml}: {err}");
        }
    }

    #[test]
    fn r23_platforms_fill_security_with_default_base_urls() {
        let config = Config::parse(
            "[platforms.whatsapp]\napp_secret = \"s\"\naccess_token = \"t\"\n\
             [platforms.telegram]\nsecret_token = \"x\"\nbase_url = \"http://127.0.0.1:1\"\n\
             [platforms.email]\ntoken = \"m\"\nsmtp_port = 2525\n",
            Path::new("t.toml"),
        )
        .expect("valid");
        let platforms = config.security().expect("valid").platforms;
        let whatsapp = &platforms[&Channel::Whatsapp];
        assert_eq!(whatsapp.base_url, "https://graph.facebook.com/v21.0");
        assert_eq!(whatsapp.get("access_token"), Ok("t"));
        assert_eq!(platforms[&Channel::Telegram].base_url, "http://127.0.0.1:1");
        assert_eq!(platforms[&Channel::Email].get("smtp_port"), Ok("2525"));
    }

    #[test]
    fn r23_a_platform_without_an_adapter_or_its_webhook_secret_is_named() {
        let cases = [
            ("[platforms.wechat]\ntoken = \"x\"", "platforms.wechat"),
            (
                "[platforms.whatsapp]\naccess_token = \"x\"",
                "platforms.whatsapp.app_secret",
            ),
            (
                "[platforms.telegram]\nbot_token = \"x\"",
                "platforms.telegram.secret_token",
            ),
            ("[platforms.sms]\nauth_token = \"x\"", "platforms.sms.webhook_url"),
            ("[platforms.email]\nfrom = \"a@b.c\"", "platforms.email.token"),
            ("[platforms.sms]\nauth_token = [1]", "platforms.sms.auth_token"),
        ];
        for (toml, named) in cases {
            let err = Config::parse(toml, Path::new("t.toml")).expect_err(toml);
            assert!(err.to_string().contains(named), "{toml}: {err}");
        }
    }

    #[test]
    fn r26_opt_words_are_overridden_lowercased() {
        let config = Config::parse(
            "[channels.sms]\nopt_out_words = [\"HALT\"]\nopt_in_words = [\" Resume \"]",
            Path::new("t.toml"),
        )
        .expect("valid");
        let engine = config.engine().expect("valid");
        let sms = engine.policies.of(Channel::Sms);
        assert!(sms.is_opt_out("Halt") && !sms.is_opt_out("stop"));
        assert!(sms.is_opt_in("RESUME"));
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::parse("grace_secs = -1", Path::new("t.toml")).expect_err("invalid");
        assert!(err.to_string().contains("grace_secs"), "{err}");
        let err = Config::parse("[channels.fax]\nmax_len = 3", Path::new("t.toml")).expect_err("invalid");
        assert!(err.to_string().contains("fax"), "{err}");
        let err = Config::parse("[[agents]]\nid = \"x\"\nrole = \"root\"", Path::new("t.toml"))
            .expect_err("invalid");
        assert!(
            err.to_string().contains("root") && err.to_string().contains("supervisor"),
            "{err}"
        );
        let err = Config::parse(
            "[[agents]]\nid = \"x\"\nchannel_limits = { fax = 1 }",
            Path::new("t.toml"),
        )
        .expect_err("invalid");
        assert!(err.to_string().contains("fax"), "{err}");
        let err = Config::parse(
            "[[queues]]\nid = \"q\"\nchannels = [\"fax\"]",
            Path::new("t.toml"),
        )
        .expect_err("invalid");
        assert!(err.to_string().contains("fax"), "{err}");
    }
}
