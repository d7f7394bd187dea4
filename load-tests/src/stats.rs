//! What a run measures: latency histograms per path, counters, and errors by code. Shared by
//! every task of the harness; each record is one short uncontended lock or one atomic add.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Highest latency a histogram holds, in microseconds (a minute); larger values saturate.
const MAX_MICROS: u64 = 60_000_000;

/// A measured path, from the moment the harness acts to the moment it sees the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// TCP connect + WebSocket handshake + `welcome` frame.
    Connect,
    /// `reopen` sent → its `ok`/`error` reply on the same connection.
    ReopenReply,
    /// `reopen` sent → `chat_reopened` push on the agent's other connection.
    ReopenPush,
    /// A customer message waiting for a free HTTP worker of the harness: if this grows, the
    /// harness, not the server, is the bottleneck (raise --http-workers).
    IngressQueue,
    /// Customer message over HTTP ingress: request → response.
    IngressHttp,
    /// Customer message sent over HTTP → `chat_activated` push to the owning agent.
    IngressPush,
    /// `close` sent → its reply.
    CloseReply,
    /// `close` sent → `chat_closed` push on the agent's other connection.
    ClosePush,
    /// A whole reopen → customer reply → close cycle.
    Cycle,
    /// New chat sent over HTTP → `chat_offered` push to some agent (time to offer; includes
    /// the time it waited in the queue).
    Offer,
    /// `accept` sent → its reply.
    AcceptReply,
    /// `send_message` sent → its reply (`reopen-storm --outbound-rate`).
    SendReply,
}

impl Path {
    /// Every path, in report order.
    pub(crate) const ALL: [Path; 12] = [
        Path::Connect,
        Path::ReopenReply,
        Path::ReopenPush,
        Path::IngressQueue,
        Path::IngressHttp,
        Path::IngressPush,
        Path::CloseReply,
        Path::ClosePush,
        Path::Cycle,
        Path::Offer,
        Path::AcceptReply,
        Path::SendReply,
    ];

    /// The name in the table and the JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Path::Connect => "connect",
            Path::ReopenReply => "reopen_reply",
            Path::ReopenPush => "reopen_push_other_conn",
            Path::IngressQueue => "harness_http_queue",
            Path::IngressHttp => "ingress_http",
            Path::IngressPush => "ingress_push_owner",
            Path::CloseReply => "close_reply",
            Path::ClosePush => "close_push_other_conn",
            Path::Cycle => "cycle",
            Path::Offer => "ingress_to_offer",
            Path::AcceptReply => "accept_reply",
            Path::SendReply => "send_message_reply",
        }
    }
}

/// A histogram's summary, in microseconds.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Summary {
    pub(crate) count: u64,
    pub(crate) p50: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) p999: u64,
    pub(crate) max: u64,
    pub(crate) mean: f64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// Everything one run counts.
pub(crate) struct Stats {
    histograms: Vec<Mutex<Histogram<u64>>>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// Requests the harness sent: WebSocket requests and HTTP ingress posts.
    pub(crate) ops: AtomicU64,
    /// Whole cycles (or chats, or races) completed.
    pub(crate) done: AtomicU64,
    /// Pushes received, over all connections.
    pub(crate) pushes: AtomicU64,
    /// Text frames received, and their bytes.
    pub(crate) frames_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    /// Starts the driver wanted but no idle customer was free for.
    pub(crate) skipped: AtomicU64,
    /// Cycles under way.
    pub(crate) in_flight: AtomicI64,
    /// Connections open now.
    pub(crate) conns: AtomicI64,
}

impl Stats {
    /// Empty.
    pub(crate) fn new() -> Self {
        Self {
            histograms: Path::ALL.iter().map(|_| Mutex::new(histogram())).collect(),
            errors: Mutex::new(BTreeMap::new()),
            ops: AtomicU64::new(0),
            done: AtomicU64::new(0),
            pushes: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            conns: AtomicI64::new(0),
        }
    }

    /// Records one latency of `path`, in microseconds.
    pub(crate) fn record(&self, path: Path, micros: u64) {
        self.histograms[path as usize]
            .lock()
            .saturating_record(micros.clamp(1, MAX_MICROS));
    }

    /// Counts one error under `code`.
    pub(crate) fn error(&self, code: &str) {
        let mut errors = self.errors.lock();
        match errors.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                errors.insert(code.to_owned(), 1);
            }
        }
    }

    /// Adds one to a counter.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets every latency, error and counter except the connection count: called when
    /// the warm-up or the setup ends, so the report covers only the measured window.
    pub(crate) fn reset(&self) {
        for h in &self.histograms {
            h.lock().reset();
        }
        self.errors.lock().clear();
        for c in [
            &self.ops,
            &self.done,
            &self.pushes,
            &self.frames_in,
            &self.bytes_in,
            &self.skipped,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Errors so far.
    pub(crate) fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().clone()
    }

    /// How many errors so far, of any code.
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.lock().values().sum()
    }

    /// The summary of every path that recorded something.
    pub(crate) fn summaries(&self) -> BTreeMap<&'static str, Summary> {
        Path::ALL
            .iter()
            .filter_map(|&path| {
                let h = self.histograms[path as usize].lock();
                (!h.is_empty()).then(|| {
                    (
                        path.name(),
                        Summary {
                            count: h.len(),
                            p50: h.value_at_quantile(0.50),
                            p90: h.value_at_quantile(0.90),
                            p99: h.value_at_quantile(0.99),
                            p999: h.value_at_quantile(0.999),
                            max: h.max(),
                            mean: (h.mean() * 10.0).round() / 10.0,
                        },
                    )
                })
            })
            .collect()
    }

    /// A counter's value.
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
