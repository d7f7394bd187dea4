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
//! | `switchboard_requests_total` | counter | `socket`, `type`, `outcome` (`ok` or an error code) |
//! | `switchboard_request_duration_seconds` | histogram | `socket`, `type` |
//! | `switchboard_pushes_total` | counter | |
//! | `switchboard_outbox_drops_total` | counter | |
//! | `switchboard_connections` | gauge | `role` (`agent`, `supervisor`) |
//! | `switchboard_queue_depth` | gauge | `queue` |
//! | `switchboard_agents` | gauge | `presence` |
//! | `switchboard_agent_chats` | gauge | |
//! | `switchboard_offers_pending` | gauge | |
//! | `switchboard_limit_overrides_total` | counter | |
//! | `switchboard_timers_pending` | gauge | |
//! | `switchboard_reopen_outcomes_total` | counter | `outcome` |
//! | `switchboard_queue_wait_seconds` | histogram | |
//! | `switchboard_time_to_accept_seconds` | histogram | |
//!
//! With a store, its writer's too (read at scrape like the engine's):
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `switchboard_store_commit_duration_seconds` | histogram | |
//! | `switchboard_store_group_size` | histogram | |
//! | `switchboard_store_pending_submissions` | gauge | |
//! | `switchboard_store_changes_written_total` | counter | |
//! | `switchboard_store_failed_commits_total` | counter | |
//! | `switchboard_store_stopped` | gauge | |

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

pub use crate::clock::Stopwatch;
use crate::core::{ErrorCode, Presence};
use crate::engine::analytics::LiveKpis;
use crate::engine::outbound::OutboxCounters;
use crate::engine::Engine;
use crate::refusal::wire_name;
use crate::store::Store;

/// How many workspaces get a `workspace` label of their own unless `[metrics]` says otherwise.
pub const WORKSPACE_LABELS: usize = 50;

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

/// `switchboard_requests_total`'s labels. `&'static str` throughout, so that counting a
/// request allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    socket: &'static str,
    r#type: &'static str,
    outcome: &'static str,
}

/// `switchboard_request_duration_seconds`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestTypeLabels {
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
    supervisor_connections: Gauge,
}

impl Metrics {
    /// The metrics of a server in front of `engine`. They hold it weakly: an engine let go of
    /// (its workspace unloaded) is not kept alive by them, and is no longer reported.
    pub fn new(engine: &Arc<Engine>) -> Self {
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
        let supervisor_connections = Gauge::default();
        registry.register_collector(Box::new(EngineCollector {
            engine: Arc::downgrade(engine),
            supervisor_connections: supervisor_connections.clone(),
        }));
        Self {
            registry,
            requests,
            durations,
            supervisor_connections,
        }
    }

    /// Counts a request of type `kind` on `socket` that the engine handled in `took`, and
    /// refused with `refused` if it did.
    pub fn request(&self, socket: Socket, kind: &'static str, refused: Option<ErrorCode>, took: Duration) {
        let outcome = refused.map_or("ok", wire_name);
        let socket = socket.as_str();
        self.requests
            .get_or_create(&RequestLabels {
                socket,
                r#type: kind,
                outcome,
            })
            .inc();
        self.durations
            .get_or_create(&RequestTypeLabels { socket, r#type: kind })
            .observe(took.as_secs_f64());
    }

    /// Counts a frame that did not decode into a request (R18): type `invalid`, outcome
    /// `bad_request`.
    pub fn invalid_frame(&self, socket: Socket) {
        self.requests
            .get_or_create(&RequestLabels {
                socket: socket.as_str(),
                r#type: "invalid",
                outcome: wire_name(ErrorCode::BadRequest),
            })
            .inc();
    }

    /// Counts one open supervisor connection, as `switchboard_connections{role="supervisor"}`,
    /// until the returned guard is dropped. (Agent connections are read from the engine.)
    pub fn supervisor_connected(&self) -> OpenConnection {
        self.supervisor_connections.inc();
        OpenConnection(self.supervisor_connections.clone())
    }

    /// Every metric in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// One open connection counted in a gauge; dropping it counts it out.
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
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

/// Reads the engine's state on each scrape.
struct EngineCollector {
    engine: Weak<Engine>,
    supervisor_connections: Gauge,
}

impl fmt::Debug for EngineCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineCollector").finish_non_exhaustive()
    }
}

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Some(engine) = self.engine.upgrade() else {
            return Ok(());
        };
        let fanout = engine.fanout();
        counter(
            &mut encoder,
            "switchboard_pushes",
            "Pushes to agents, each counted once however many connections it went to",
            fanout.pushes_total.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "switchboard_outbox_drops",
            "Connections cut off because their outbox was full (slow consumers), agents' and supervisors'",
            fanout.kicked_total.load(Ordering::Relaxed)
                + engine.supervision().kicked_total.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "switchboard_board_events",
            "Changes of the supervisors' board (queues, agents, reopened chats, KPIs)",
            engine.supervision().seq(),
        )?;
        // A supervisor socket's connections are counted where it serves them, through
        // `Metrics::supervisor_connected`; if the engine comes to track them, read them here.
        gauges(
            &mut encoder,
            "switchboard_connections",
            "Open WebSocket connections, by socket",
            [
                ([("role", "agent")], fanout.total_connections() as i64),
                ([("role", "supervisor")], self.supervisor_connections.get()),
            ],
        )?;
        let queues = engine.queue_views();
        gauges(
            &mut encoder,
            "switchboard_queue_depth",
            "Chats waiting in each queue",
            queues
                .iter()
                .map(|q| ([("queue", q.id.as_str())], q.waiting.len() as i64)),
        )?;

        let mut presences = [0_i64; PRESENCES.len()];
        let (mut chats, mut offers) = (0_i64, 0_i64);
        for agent in engine.agent_statuses() {
            presences[presence_index(agent.presence.into())] += 1;
            chats += i64::from(agent.load);
            offers += i64::from(agent.offered);
        }
        gauges(
            &mut encoder,
            "switchboard_agents",
            "Agents by presence",
            PRESENCES
                .iter()
                .zip(presences)
                .map(|((_, label), count)| ([("presence", *label)], count)),
        )?;
        gauge(
            &mut encoder,
            "switchboard_agent_chats",
            "Chats held by agents (active and snoozed: their load), summed over agents",
            chats,
        )?;
        gauge(
            &mut encoder,
            "switchboard_offers_pending",
            "Chats offered to an agent and not yet accepted, declined or expired",
            offers,
        )?;
        counter(
            &mut encoder,
            "switchboard_limit_overrides",
            "Times a chat took an agent over its concurrency limit (R05, forced transfers)",
            engine.overrides_total(),
        )?;
        gauge(
            &mut encoder,
            "switchboard_timers_pending",
            "Pending timers (offer and reopen expiries, snooze ends, grace periods)",
            engine.timers().len() as i64,
        )?;
        encode_kpis(&mut encoder, engine.live_kpis())?;
        encode_outbox(&mut encoder, engine.outbox_counters())?;
        if let Some(store) = engine.store() {
            encode_store(&mut encoder, store.shared())?;
        }
        Ok(())
    }
}

/// The KPI events of this run: how reopens ended, how long accepted chats waited.
fn encode_kpis(encoder: &mut DescriptorEncoder, kpis: &LiveKpis) -> fmt::Result {
    let o = kpis.reopen_outcomes();
    counters(
        encoder,
        "switchboard_reopen_outcomes",
        "How reopens ended (R14): reopened, then replied or declined by the customer, or refused by a rule",
        [
            ("reopened", o.reopened),
            ("replied", o.replied),
            ("declined", o.declined),
            ("active_elsewhere", o.rejected.active_elsewhere),
            ("window_closed", o.rejected.window_closed),
            ("opted_out", o.rejected.opted_out),
        ]
        .map(|(outcome, value)| ([("outcome", outcome)], value)),
    )?;
    histogram(
        encoder,
        "switchboard_queue_wait",
        "Time an accepted chat waited, from entering the queue to the accept",
        Some(&Unit::Seconds),
        kpis.queue_waits(),
    )?;
    histogram(
        encoder,
        "switchboard_time_to_accept",
        "Time from an offer to its accept",
        Some(&Unit::Seconds),
        kpis.times_to_accept(),
    )
}

/// Messages to customers (R24): what the outbox holds and what became of the rest.
fn encode_outbox(encoder: &mut DescriptorEncoder, outbox: &OutboxCounters) -> fmt::Result {
    let read = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    gauge(
        encoder,
        "switchboard_customer_messages_pending",
        "Messages to customers in the outbox: waiting for their commit, on their way, or waiting to be retried",
        i64::try_from(outbox.pending()).unwrap_or(i64::MAX),
    )?;
    counters(
        encoder,
        "switchboard_customer_messages",
        "What became of messages to customers: sent (the platform took them), failed (for good, shown to \
         their agent), uncommitted (their change was not saved, so they were not sent)",
        [
            ("sent", read(&outbox.sent)),
            ("failed", read(&outbox.failed)),
            ("uncommitted", read(&outbox.uncommitted)),
        ]
        .map(|(outcome, value)| ([("outcome", outcome)], value)),
    )?;
    counter(
        encoder,
        "switchboard_customer_message_retries",
        "Attempts to send a message to a customer that failed and were made again",
        read(&outbox.retried),
    )
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
        "1 once a commit failed: the store writes nothing more and changes are refused until a restart",
        i64::from(stats.stopped),
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
