//! The engine's own metrics, served at `GET /metrics` in the Prometheus text format.
//!
//! Two kinds. What only the gateway sees is counted as it goes by: requests, their outcomes
//! and how long the engine took. Everything else is read from the engine when Prometheus
//! scrapes (connections, queues, agents, pushes, the store's writer), so the engine's hot
//! paths carry no metric code beyond atomic counters (in the fan-out, per KPI event) and a
//! histogram observed per accepted chat and per group commit.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `switchboard_requests_total` | counter | `workspace`, `socket`, `type`, `outcome` (`ok` or an error code) |
//! | `switchboard_request_duration_seconds` | histogram | `workspace`, `socket`, `type` |
//! | `switchboard_pushes_total` | counter | `workspace` |
//! | `switchboard_outbox_drops_total` | counter | `workspace` |
//! | `switchboard_board_events_total` | counter | `workspace` |
//! | `switchboard_connections` | gauge | `workspace`, `role` (`agent`, `supervisor`) |
//! | `switchboard_queue_depth` | gauge | `workspace`, `queue` |
//! | `switchboard_agents` | gauge | `workspace`, `presence` |
//! | `switchboard_agent_chats` | gauge | `workspace` |
//! | `switchboard_offers_pending` | gauge | `workspace` |
//! | `switchboard_limit_overrides_total` | counter | `workspace` |
//! | `switchboard_timers_pending` | gauge | `workspace` |
//! | `switchboard_reopen_outcomes_total` | counter | `workspace`, `outcome` |
//! | `switchboard_queue_wait_seconds` | histogram | `workspace` |
//! | `switchboard_time_to_accept_seconds` | histogram | `workspace` |
//! | `switchboard_customer_messages_total` | counter | `workspace`, `outcome` |
//! | `switchboard_workspaces` | gauge | `state` |
//!
//! The `workspace` label (R27) is bounded: the first [`Workspaces::metric_labels`] workspaces in
//! load order (`default` first) carry their id, the rest are summed under [`OTHER_WORKSPACES`]
//! (histograms cannot be summed from outside, so those workspaces are left out of the two KPI
//! histograms). A connection's requests count under the label its workspace had when it opened
//! ([`Metrics::of_workspace`]).
//!
//! With a store, its writer's too (read at scrape like the engine's), once for the file every
//! workspace shares:
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `switchboard_store_commit_duration_seconds` | histogram | |
//! | `switchboard_store_group_size` | histogram | |
//! | `switchboard_store_pending_submissions` | gauge | |
//! | `switchboard_store_changes_written_total` | counter | |
//! | `switchboard_store_failed_commits_total` | counter | |
//! | `switchboard_store_stopped` | gauge | |
//! | `switchboard_store_resumes_total` | counter | |
//! | `switchboard_store_log_waits_total` | counter | |
//!
//! On a cluster node (issue 19), its placement (`cluster/node.rs`):
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `switchboard_cluster_workspaces` | gauge | |
//! | `switchboard_cluster_leases` | gauge | |
//! | `switchboard_cluster_leases_lost_total` | counter | |
//! | `switchboard_cluster_failovers_total` | counter | |
//! | `switchboard_cluster_hand_overs_total` | counter | |
//! | `switchboard_cluster_fenced_submissions_total` | counter | |
//! | `switchboard_cluster_rounds_total` | counter | |

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

pub use crate::clock::Stopwatch;
use crate::cluster::{Claims, ClusterStats, ForwardStats};
use crate::core::{ErrorCode, Presence};
use crate::engine::Engine;
use crate::ids::WorkspaceId;
use crate::refusal::wire_name;
use crate::store::{Store, WorkspaceState};
use crate::workspaces::Workspaces;

/// The `Content-Type` of [`Metrics::render`]'s output (the text format, version 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds of the request duration buckets, in seconds: 10 µs to 1 s in steps of about
/// 2.5x. The engine handles most requests in microseconds; the top buckets catch contention.
const DURATION_BUCKETS: [f64; 16] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0,
];

/// Which WebSocket a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Socket {
    /// `/v1/agent/ws`.
    Agent,
    /// `/v1/supervisor/ws`.
    Supervisor,
}

impl Socket {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Socket::Agent => "agent",
            Socket::Supervisor => "supervisor",
        }
    }
}

/// A `workspace` label as a connection keeps it: shared, so that counting a request clones a
/// pointer, not the text.
type Label = Arc<String>;

/// `switchboard_requests_total`'s labels. `&'static str` or shared, so that counting a
/// request allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    workspace: Label,
    socket: &'static str,
    r#type: &'static str,
    outcome: &'static str,
}

/// `switchboard_request_duration_seconds`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestTypeLabels {
    workspace: Label,
    socket: &'static str,
    r#type: &'static str,
}

type Durations = Family<RequestTypeLabels, Histogram, fn() -> Histogram>;

/// Every metric of one server, in its own registry (so that servers in one process, as in
/// the tests, count apart).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Durations,
    /// What the collector reads, to hand out `workspace` labels the same way.
    source: Source,
}

impl Metrics {
    /// The metrics of a server in front of `engine` alone, reported as workspace `default`.
    /// They hold it weakly: an engine let go of is not kept alive by them, and is no longer
    /// reported.
    pub fn new(engine: &Arc<Engine>) -> Self {
        Self::reading(Source::Engine(Arc::downgrade(engine)))
    }

    /// The metrics of a server of `workspaces`: every engine's series with a `workspace`
    /// label (see [`Workspaces::in_load_order`] and [`Workspaces::metric_labels`]), the store's
    /// once. Held weakly, like [`Metrics::new`]'s engine.
    pub fn for_workspaces(workspaces: &Arc<Workspaces>) -> Self {
        Self::reading(Source::Workspaces(Arc::downgrade(workspaces)))
    }

    /// Reports what a cluster node relays (`switchboard_cluster_forwarded_*`) beside the rest.
    pub fn report_forwarding(&mut self, stats: Arc<ForwardStats>) {
        self.registry
            .register_collector(Box::new(ForwardCollector(stats)));
    }

    fn reading(source: Source) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "switchboard_requests",
            "WebSocket requests by socket, type and outcome (ok, or the error code sent back)",
            requests.clone(),
        );
        let durations: Durations = Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
        registry.register_with_unit(
            "switchboard_request_duration",
            "Time the engine took to handle a request, by socket and type",
            Unit::Seconds,
            durations.clone(),
        );
        registry.register_collector(Box::new(EngineCollector {
            source: source.clone(),
        }));
        Self {
            registry,
            requests,
            durations,
            source,
        }
    }

    /// The request counters of a connection to `workspace`, under the label its engine's
    /// series have now (its id, or [`OTHER_WORKSPACES`] past the cap), kept for the
    /// connection's life.
    pub fn of_workspace(self: &Arc<Self>, workspace: &WorkspaceId) -> WorkspaceMetrics {
        let labelled = match &self.source {
            Source::Engine(_) => workspace.is_default(),
            Source::Workspaces(workspaces) => workspaces.upgrade().is_some_and(|workspaces| {
                workspaces
                    .in_load_order()
                    .iter()
                    .take(workspaces.metric_labels())
                    .any(|w| w.id() == workspace)
            }),
        };
        let label = if labelled {
            workspace.as_str()
        } else {
            OTHER_WORKSPACES
        };
        WorkspaceMetrics {
            metrics: self.clone(),
            workspace: Arc::new(label.to_owned()),
        }
    }

    /// Every metric in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// A server's request counters as one workspace's connection counts into them.
#[derive(Clone, Debug)]
pub struct WorkspaceMetrics {
    metrics: Arc<Metrics>,
    workspace: Label,
}

impl WorkspaceMetrics {
    /// Counts a request of type `kind` on `socket` that the engine handled in `took`, and
    /// refused with `refused` if it did.
    pub fn request(&self, socket: Socket, kind: &'static str, refused: Option<ErrorCode>, took: Duration) {
        let outcome = refused.map_or("ok", wire_name);
        let socket = socket.as_str();
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                workspace: self.workspace.clone(),
                socket,
                r#type: kind,
                outcome,
            })
            .inc();
        self.metrics
            .durations
            .get_or_create(&RequestTypeLabels {
                workspace: self.workspace.clone(),
                socket,
                r#type: kind,
            })
            .observe(took.as_secs_f64());
    }

    /// Counts a frame that did not decode into a request (R18): type `invalid`, outcome
    /// `bad_request`.
    pub fn invalid_frame(&self, socket: Socket) {
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                workspace: self.workspace.clone(),
                socket: socket.as_str(),
                r#type: "invalid",
                outcome: wire_name(ErrorCode::BadRequest),
            })
            .inc();
    }
}

/// Every presence with its label, in the order `switchboard_agents` lists them.
const PRESENCES: [(Presence, &str); 3] = [
    (Presence::Online, "online"),
    (Presence::Away, "away"),
    (Presence::Offline, "offline"),
];

/// A presence's index in [`PRESENCES`].
fn presence_index(presence: Presence) -> usize {
    match presence {
        Presence::Online => 0,
        Presence::Away => 1,
        Presence::Offline => 2,
    }
}

/// The `workspace` label of the workspaces past `[metrics] workspace_labels`, summed.
pub const OTHER_WORKSPACES: &str = "_other";

/// Where the collector finds its engines.
#[derive(Clone, Debug)]
enum Source {
    /// One engine, as `default` (a server built around one engine, and unit tests).
    Engine(Weak<Engine>),
    /// Every workspace of a registry.
    Workspaces(Weak<Workspaces>),
}

/// Reads the engines' state on each scrape.
struct EngineCollector {
    source: Source,
}

impl fmt::Debug for EngineCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineCollector").finish_non_exhaustive()
    }
}

/// One `workspace` label's engines: one workspace's, or every one past the cap.
struct Group {
    label: String,
    engines: Vec<Arc<Engine>>,
}

impl EngineCollector {
    /// The engines to report, grouped by label: the first `cap` workspaces in load order under
    /// their ids, the rest under [`OTHER_WORKSPACES`]; and the registry's state counts.
    #[allow(clippy::type_complexity)]
    fn groups(&self) -> Option<(Vec<Group>, Option<Vec<(WorkspaceState, usize)>>)> {
        match &self.source {
            Source::Engine(engine) => {
                let engine = engine.upgrade()?;
                let default = Group {
                    label: WorkspaceId::default_workspace().as_str().to_owned(),
                    engines: vec![engine],
                };
                Some((vec![default], None))
            }
            Source::Workspaces(workspaces) => {
                let workspaces = workspaces.upgrade()?;
                let cap = workspaces.metric_labels();
                let mut groups = Vec::new();
                let mut other = Group {
                    label: OTHER_WORKSPACES.to_owned(),
                    engines: Vec::new(),
                };
                for (i, workspace) in workspaces.in_load_order().into_iter().enumerate() {
                    let engine = workspace.engine().clone();
                    if i < cap {
                        groups.push(Group {
                            label: workspace.id().as_str().to_owned(),
                            engines: vec![engine],
                        });
                    } else {
                        other.engines.push(engine);
                    }
                }
                if !other.engines.is_empty() {
                    groups.push(other);
                }
                Some((groups, workspaces.state_counts()))
            }
        }
    }
}

/// What one group's engines hold, summed.
#[derive(Default)]
struct Sums {
    pushes: u64,
    drops: u64,
    board_events: u64,
    agent_connections: i64,
    supervisor_connections: i64,
    queues: std::collections::BTreeMap<String, i64>,
    presences: [i64; PRESENCES.len()],
    chats: i64,
    offers: i64,
    overrides: u64,
    timers: i64,
    reopens: [u64; REOPEN_OUTCOMES.len()],
    outbox_pending: u64,
    outbox: [u64; OUTBOX_OUTCOMES.len()],
    retries: u64,
}

/// The outcomes `switchboard_reopen_outcomes` counts, in order.
const REOPEN_OUTCOMES: [&str; 6] = [
    "reopened",
    "replied",
    "declined",
    "active_elsewhere",
    "window_closed",
    "opted_out",
];

/// The outcomes `switchboard_customer_messages` counts, in order.
const OUTBOX_OUTCOMES: [&str; 3] = ["sent", "failed", "uncommitted"];

impl Sums {
    fn of(engines: &[Arc<Engine>]) -> Self {
        let mut sums = Self::default();
        for engine in engines {
            sums.add(engine);
        }
        sums
    }

    fn add(&mut self, engine: &Engine) {
        let read = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let fanout = engine.fanout();
        let supervision = engine.supervision();
        self.pushes += read(&fanout.pushes_total);
        self.drops += read(&fanout.kicked_total) + read(&supervision.kicked_total);
        self.board_events += supervision.seq();
        self.agent_connections += fanout.total_connections() as i64;
        self.supervisor_connections += supervision.connections() as i64;
        for queue in engine.queue_views() {
            *self.queues.entry(queue.id.as_str().to_owned()).or_default() += queue.waiting.len() as i64;
        }
        for agent in engine.agent_statuses() {
            self.presences[presence_index(agent.presence.into())] += 1;
            self.chats += i64::from(agent.load);
            self.offers += i64::from(agent.offered);
        }
        self.overrides += engine.overrides_total();
        self.timers += engine.timers().len() as i64;
        let o = engine.live_kpis().reopen_outcomes();
        let reopens = [
            o.reopened,
            o.replied,
            o.declined,
            o.rejected.active_elsewhere,
            o.rejected.window_closed,
            o.rejected.opted_out,
        ];
        for (sum, value) in self.reopens.iter_mut().zip(reopens) {
            *sum += value;
        }
        let outbox = engine.outbox_counters();
        self.outbox_pending += outbox.pending();
        let outcomes = [
            read(&outbox.sent),
            read(&outbox.failed),
            read(&outbox.uncommitted),
        ];
        for (sum, value) in self.outbox.iter_mut().zip(outcomes) {
            *sum += value;
        }
        self.retries += read(&outbox.retried);
    }
}

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Some((groups, states)) = self.groups() else {
            return Ok(());
        };
        let sums: Vec<(&str, Sums)> = groups
            .iter()
            .map(|g| (g.label.as_str(), Sums::of(&g.engines)))
            .collect();
        let e = &mut encoder;
        let ws = |label| [("workspace", label)];
        counters(
            e,
            "switchboard_pushes",
            "Pushes to agents, each counted once however many connections it went to",
            sums.iter().map(|(w, s)| (ws(*w), s.pushes)),
        )?;
        counters(
            e,
            "switchboard_outbox_drops",
            "Connections cut off because their outbox was full (slow consumers), agents' and supervisors'",
            sums.iter().map(|(w, s)| (ws(*w), s.drops)),
        )?;
        counters(
            e,
            "switchboard_board_events",
            "Changes of the supervisors' board (queues, agents, reopened chats, KPIs)",
            sums.iter().map(|(w, s)| (ws(*w), s.board_events)),
        )?;
        gauges(
            e,
            "switchboard_connections",
            "Open WebSocket connections, by socket",
            sums.iter().flat_map(|(w, s)| {
                [
                    ([("workspace", *w), ("role", "agent")], s.agent_connections),
                    (
                        [("workspace", *w), ("role", "supervisor")],
                        s.supervisor_connections,
                    ),
                ]
            }),
        )?;
        gauges(
            e,
            "switchboard_queue_depth",
            "Chats waiting in each queue",
            sums.iter().flat_map(|(w, s)| {
                s.queues
                    .iter()
                    .map(move |(queue, depth)| ([("workspace", *w), ("queue", queue.as_str())], *depth))
            }),
        )?;
        gauges(
            e,
            "switchboard_agents",
            "Agents by presence",
            sums.iter().flat_map(|(w, s)| {
                PRESENCES
                    .iter()
                    .zip(s.presences)
                    .map(move |((_, label), count)| ([("workspace", *w), ("presence", *label)], count))
            }),
        )?;
        gauges(
            e,
            "switchboard_agent_chats",
            "Chats held by agents (active and snoozed: their load), summed over agents",
            sums.iter().map(|(w, s)| (ws(*w), s.chats)),
        )?;
        gauges(
            e,
            "switchboard_offers_pending",
            "Chats offered to an agent and not yet accepted, declined or expired",
            sums.iter().map(|(w, s)| (ws(*w), s.offers)),
        )?;
        counters(
            e,
            "switchboard_limit_overrides",
            "Times a chat took an agent over its concurrency limit (R05, forced transfers)",
            sums.iter().map(|(w, s)| (ws(*w), s.overrides)),
        )?;
        gauges(
            e,
            "switchboard_timers_pending",
            "Pending timers (offer and reopen expiries, snooze ends, grace periods)",
            sums.iter().map(|(w, s)| (ws(*w), s.timers)),
        )?;
        counters(
            e,
            "switchboard_reopen_outcomes",
            "How reopens ended (R14): reopened, then replied or declined by the customer, or refused by a rule",
            sums.iter().flat_map(|(w, s)| {
                REOPEN_OUTCOMES
                    .iter()
                    .zip(s.reopens)
                    .map(move |(outcome, value)| ([("workspace", *w), ("outcome", *outcome)], value))
            }),
        )?;
        // A histogram cannot be summed from outside: workspaces past the cap are left out of
        // these two.
        let labelled = || groups.iter().filter(|g| g.label != OTHER_WORKSPACES);
        histograms(
            e,
            "switchboard_queue_wait",
            "Time an accepted chat waited, from entering the queue to the accept",
            labelled().flat_map(|g| {
                g.engines
                    .iter()
                    .map(|en| (ws(g.label.as_str()), en.live_kpis().queue_waits()))
            }),
        )?;
        histograms(
            e,
            "switchboard_time_to_accept",
            "Time from an offer to its accept",
            labelled().flat_map(|g| {
                g.engines
                    .iter()
                    .map(|en| (ws(g.label.as_str()), en.live_kpis().times_to_accept()))
            }),
        )?;
        gauges(
            e,
            "switchboard_customer_messages_pending",
            "Messages to customers in the outbox: waiting for their commit, on their way, or waiting to be retried",
            sums.iter()
                .map(|(w, s)| (ws(*w), i64::try_from(s.outbox_pending).unwrap_or(i64::MAX))),
        )?;
        counters(
            e,
            "switchboard_customer_messages",
            "What became of messages to customers: sent (the platform took them), failed (for good, shown to \
             their agent), uncommitted (their change was not saved, so they were not sent)",
            sums.iter().flat_map(|(w, s)| {
                OUTBOX_OUTCOMES
                    .iter()
                    .zip(s.outbox)
                    .map(move |(outcome, value)| ([("workspace", *w), ("outcome", *outcome)], value))
            }),
        )?;
        counters(
            e,
            "switchboard_customer_message_retries",
            "Attempts to send a message to a customer that failed and were made again",
            sums.iter().map(|(w, s)| (ws(*w), s.retries)),
        )?;
        if let Some(states) = states {
            gauges(
                e,
                "switchboard_workspaces",
                "Workspaces by state (active ones are served)",
                states
                    .iter()
                    .map(|(state, n)| ([("state", state.stored())], *n as i64)),
            )?;
        }
        let workspaces = match &self.source {
            Source::Workspaces(workspaces) => workspaces.upgrade(),
            Source::Engine(_) => None,
        };
        let claims = workspaces.as_ref().and_then(|w| w.cluster().cloned());
        // One file behind every workspace: its writer is reported once (a cluster node
        // serving no workspace yet reports its database's all the same).
        let store = groups
            .iter()
            .flat_map(|g| &g.engines)
            .find_map(|engine| engine.store().map(|s| s.shared()))
            .or(claims.as_ref().map(|c| &**c.store()));
        if let Some(store) = store {
            encode_store(e, store)?;
        }
        if let (Some(claims), Some(workspaces)) = (claims, workspaces) {
            encode_cluster(e, &claims, &workspaces)?;
        }
        Ok(())
    }
}

/// What a cluster node relayed to the owners of workspaces it does not serve (issue 19).
struct ForwardCollector(Arc<ForwardStats>);

impl std::fmt::Debug for ForwardCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ForwardCollector").finish_non_exhaustive()
    }
}

impl Collector for ForwardCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let (e, stats) = (&mut encoder, &self.0);
        counter(
            e,
            "switchboard_cluster_forwarded_requests",
            "HTTP requests this node relayed to the node serving their workspace",
            stats.requests(),
        )?;
        counter(
            e,
            "switchboard_cluster_forwarded_sockets",
            "WebSockets this node relayed to the node serving their workspace, since start",
            stats.sockets_opened(),
        )?;
        gauge(
            e,
            "switchboard_cluster_forwarded_sockets_live",
            "WebSockets this node relays now",
            i64::try_from(stats.sockets_live()).unwrap_or(i64::MAX),
        )?;
        counter(
            e,
            "switchboard_cluster_forward_failures",
            "Relays that failed: the owner unreachable, too slow, or its socket gone without a close",
            stats.failures(),
        )?;
        counter(
            e,
            "switchboard_cluster_unserved",
            "Requests answered 503 storage_unavailable because no node served their workspace at that moment",
            stats.unserved(),
        )
    }
}

/// A cluster node's placement (issue 19).
fn encode_cluster(encoder: &mut DescriptorEncoder, claims: &Claims, workspaces: &Workspaces) -> fmt::Result {
    let stats = claims.stats();
    let read = ClusterStats::read;
    gauge(
        encoder,
        "switchboard_cluster_workspaces",
        "Workspaces this node serves (loaded on the leases it holds)",
        workspaces.ids().len() as i64,
    )?;
    gauge(
        encoder,
        "switchboard_cluster_leases",
        "Workspace leases this node holds",
        claims.count() as i64,
    )?;
    counter(
        encoder,
        "switchboard_cluster_leases_lost",
        "Leases this node lost: taken by another node, not renewed in time by its own clock, or a write refused as fenced",
        read(&stats.leases_lost),
    )?;
    counter(
        encoder,
        "switchboard_cluster_failovers",
        "Workspaces this node took whose previous lease lapsed without being released (a node died or stalled)",
        read(&stats.failovers),
    )?;
    counter(
        encoder,
        "switchboard_cluster_hand_overs",
        "Workspaces this node handed over: unloaded with their drain, then their lease released",
        read(&stats.hand_overs),
    )?;
    counter(
        encoder,
        "switchboard_cluster_fenced_submissions",
        "Submissions the store refused because their workspace's lease had moved on (nothing of them written)",
        claims.store().stats().fenced_submissions,
    )?;
    counter(
        encoder,
        "switchboard_cluster_rounds",
        "Placement rounds this node finished",
        claims.rounds().finished(),
    )
}

/// Writes one histogram with a sample for each label set.
fn histograms<'h, L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, &'h Histogram)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, histogram) in samples {
        histogram.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The store's writer (only when the engine has a store).
fn encode_store(encoder: &mut DescriptorEncoder, store: &Store) -> fmt::Result {
    let stats = store.stats();
    histogram(
        encoder,
        "switchboard_store_commit_duration",
        "Time of one group commit, from its transaction's start through the commit (fsync included)",
        Some(&Unit::Seconds),
        store.commit_durations(),
    )?;
    histogram(
        encoder,
        "switchboard_store_group_size",
        "Submissions in each group commit",
        None,
        store.group_sizes(),
    )?;
    gauge(
        encoder,
        "switchboard_store_pending_submissions",
        "Submissions handed to the store's writer and not yet committed (or failed)",
        i64::try_from(stats.pending_submissions).unwrap_or(i64::MAX),
    )?;
    counter(
        encoder,
        "switchboard_store_changes_written",
        "Changes committed to the store",
        stats.changes_written,
    )?;
    counter(
        encoder,
        "switchboard_store_failed_commits",
        "Group commits that failed (their changes were refused with storage_unavailable)",
        stats.groups_failed,
    )?;
    gauge(
        encoder,
        "switchboard_store_stopped",
        "1 once a commit failed: the store writes nothing more and changes are refused until a restart (a cluster node's resumes)",
        i64::from(stats.stopped),
    )?;
    counter(
        encoder,
        "switchboard_store_resumes",
        "Times the store wrote again on a fresh connection after it stopped (a cluster node, once it let go of everything)",
        stats.resumes,
    )?;
    counter(
        encoder,
        "switchboard_store_log_waits",
        "Times SQLite's writer waited for a checkpoint slower than the writes before its next group (a slow or saturated disk)",
        stats.log_waits,
    )
}

/// Writes one counter without labels.
fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

/// Writes one gauge without labels.
fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> fmt::Result {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// Writes one counter with a sample for each label set.
fn counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let samples = samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v)));
    family(encoder, name, help, MetricType::Counter, samples)
}

/// Writes one histogram without labels.
fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    histogram: &Histogram,
) -> fmt::Result {
    histogram.encode(encoder.encode_descriptor(name, help, unit, MetricType::Histogram)?)
}

/// Writes one gauge with a sample for each label set.
fn gauges<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, i64)>,
) -> fmt::Result {
    let samples = samples.into_iter().map(|(l, v)| (l, ConstGauge::new(v)));
    family(encoder, name, help, MetricType::Gauge, samples)
}

/// Writes one metric of type `kind` with a sample for each label set.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, sample) in samples {
        sample.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::*;
    use crate::protocol::tests::schema_names as wire_names;

    fn parse<T: DeserializeOwned>(name: &str) -> T {
        serde_json::from_value(Value::from(name)).expect("a wire name parses")
    }

    #[test]
    fn outcome_labels_are_the_error_codes_as_sent_on_the_wire() {
        let names = wire_names::<crate::protocol::ErrorCode>();
        assert!(names.len() >= 13, "{names:?}");
        for name in names {
            let code: crate::protocol::ErrorCode = parse(&name);
            assert_eq!(wire_name(code.into()), name);
        }
    }

    #[test]
    fn presence_labels_are_the_presences_as_sent_on_the_wire() {
        let names = wire_names::<crate::protocol::Presence>();
        assert_eq!(names.len(), PRESENCES.len(), "{names:?}");
        for name in names {
            let presence: crate::protocol::Presence = parse(&name);
            let presence = Presence::from(presence);
            assert_eq!(PRESENCES[presence_index(presence)], (presence, name.as_str()));
        }
    }
}
