//! What every client did, and what the engine said about it.
//!
//! Every operation is entered before its request goes out and settled when its answer comes
//! back. Times are ticks of one shared counter, taken before sending (`sent`) and after the
//! answer arrived (`done`): if `a.done < b.sent`, `a` was acknowledged before `b` was sent, so
//! the engine applied `a` first. An operation whose answer never came (the engine was killed)
//! is `Maybe`: it may or may not have been applied, and if it was, that happened before the
//! kill; so at the end of the round its `done` becomes the kill's tick.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The wall clock, only to report how long the engine took to answer.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

/// What an operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A customer's message (`POST /v1/channels/{channel}/messages`), text unique in the test.
    CustomerText { text: String },
    /// A customer's `#STOP` (R08).
    Stop,
    /// An agent accepted an offer.
    Accept,
    /// An agent's message, text unique in the test.
    AgentText { text: String },
    /// An agent closed a chat.
    Close,
    /// An agent reopened a closed chat.
    Reopen,
    /// An admin changed an agent's limit (`PUT /v1/admin/agents/{id}/limit`).
    SetLimit { agent: String, limit: u32 },
}

/// What the engine answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `ok` / 2xx: must survive any crash.
    Acked,
    /// An error that says nothing changed (or the request never left the client).
    Rejected(String),
    /// No answer (killed in flight), or `storage_unavailable`: may or may not have happened.
    Maybe,
}

/// One operation.
#[derive(Clone, Debug)]
pub(crate) struct Op {
    pub(crate) round: usize,
    /// The customer's label, the agent's id, or `admin`.
    pub(crate) actor: String,
    pub(crate) kind: Kind,
    /// The chat: the one an agent's request names, or the one a customer's receipt names.
    pub(crate) chat: Option<String>,
    pub(crate) sent: u64,
    /// When the answer came; for an unanswered operation, the kill's tick (after its round).
    pub(crate) done: Option<u64>,
    pub(crate) outcome: Outcome,
    /// When it was sent, and how long the answer took.
    pub(crate) sent_at: Instant,
    pub(crate) took: Option<Duration>,
}

impl Op {
    pub(crate) fn is_acked(&self) -> bool {
        self.outcome == Outcome::Acked
    }

    pub(crate) fn is_maybe(&self) -> bool {
        self.outcome == Outcome::Maybe
    }

    pub(crate) fn is_rejected(&self) -> bool {
        matches!(self.outcome, Outcome::Rejected(_))
    }

    /// When it was answered, or (unanswered) when the engine was killed.
    pub(crate) fn done(&self) -> u64 {
        self.done.unwrap_or(u64::MAX)
    }

    /// Whether the acknowledged `later` was certainly applied after `self` (sent after `self`
    /// was answered, or after the kill that ended `self`'s round).
    pub(crate) fn followed_by(&self, later: &Op) -> bool {
        later.is_acked() && self.done() < later.sent
    }

    /// Whether `self` certainly happened before `other` started.
    pub(crate) fn acked_before(&self, other: &Op) -> bool {
        self.is_acked() && self.done() < other.sent
    }
}

/// The shared ledger; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Ledger {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    clock: AtomicU64,
    ops: Mutex<Vec<Op>>,
}

/// An operation entered in the ledger, to settle.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry(usize);

impl Ledger {
    /// The next tick.
    pub(crate) fn tick(&self) -> u64 {
        self.inner.clock.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Enters an operation about to be sent.
    pub(crate) fn begin(&self, round: usize, actor: &str, kind: Kind, chat: Option<&str>) -> Entry {
        let mut ops = self.inner.ops.lock().expect("ledger lock");
        ops.push(Op {
            round,
            actor: actor.to_owned(),
            kind,
            chat: chat.map(str::to_owned),
            sent: self.tick(),
            done: None,
            outcome: Outcome::Maybe,
            sent_at: now(),
            took: None,
        });
        Entry(ops.len() - 1)
    }

    fn settle(&self, entry: Entry, outcome: Outcome, chat: Option<String>) {
        let done = self.tick();
        let mut ops = self.inner.ops.lock().expect("ledger lock");
        let op = &mut ops[entry.0];
        op.done = Some(done);
        op.took = Some(op.sent_at.elapsed());
        op.outcome = outcome;
        if chat.is_some() {
            op.chat = chat;
        }
    }

    /// The engine acknowledged it; `chat` is the chat a receipt named.
    pub(crate) fn ack(&self, entry: Entry, chat: Option<String>) {
        self.settle(entry, Outcome::Acked, chat);
    }

    /// The engine refused it (nothing changed), or it was never sent.
    pub(crate) fn reject(&self, entry: Entry, why: &str) {
        self.settle(entry, Outcome::Rejected(why.to_owned()), None);
    }

    /// The engine answered that it may or may not have kept it (`storage_unavailable`).
    pub(crate) fn unsure(&self, entry: Entry) {
        self.settle(entry, Outcome::Maybe, None);
    }

    /// The engine was killed at `kill`: whatever is still unanswered stays `Maybe`, done by then.
    pub(crate) fn end_round(&self, kill: u64, killed_at: Instant) -> usize {
        let mut ops = self.inner.ops.lock().expect("ledger lock");
        let mut in_flight = 0;
        for op in ops.iter_mut().filter(|op| op.done.is_none()) {
            op.done = Some(kill);
            op.took = Some(killed_at.saturating_duration_since(op.sent_at));
            in_flight += 1;
        }
        in_flight
    }

    /// Everything so far.
    pub(crate) fn ops(&self) -> Vec<Op> {
        self.inner.ops.lock().expect("ledger lock").clone()
    }
}
