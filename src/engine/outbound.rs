//! The one way out to customers (R24): every reopen notice, agent message, template push and
//! after-hours reply is an outbox item, written in the same commit as the change that caused
//! it, and sent only once that commit is on disk — in order per chat, retried with backoff
//! across restarts under one idempotency key, until its platform takes it or it finally
//! fails, visibly.
//!
//! - [`Outbound`] is the engine's end: the translator hands it a commit's items with the
//!   receipt of that commit.
//! - [`sender::run_outbox`] is the runtime's end: it waits for each commit, sends through a
//!   [`connector::Connector`] (a webhook, the platforms' own APIs, or the log), and tells the
//!   engine what became of each item.

pub mod connector;
pub mod send_thread;
pub mod sender;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::clock::Timestamp;
use crate::core::Channel;
use crate::ids::{ChatId, CustomerId};
use crate::protocol::OutboundMessage;
use crate::store::{OutboxRecord, Receipt};

/// One message to a customer in the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxItem {
    /// Its number: increasing in the order the engine made them (the order per chat).
    pub id: u64,
    /// The customer.
    pub customer: CustomerId,
    /// The message of the chat's history it sends, if it is one (delivery is shown there).
    pub seq: Option<u64>,
    /// What goes out.
    pub message: OutboundMessage,
    /// The same on every attempt: a platform that takes one drops a repeat.
    pub key: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not before this (a backoff, or the platform's `Retry-After`); none for at once.
    pub next_at: Option<Timestamp>,
}

impl OutboxItem {
    /// The chat it belongs to: items of one chat go out one after another.
    pub fn chat(&self) -> &ChatId {
        &self.message.chat_id
    }

    /// The channel it goes out on.
    pub fn channel(&self) -> Channel {
        self.message.channel.into()
    }

    /// Its stored form.
    pub fn record(&self) -> OutboxRecord {
        OutboxRecord {
            id: self.id,
            customer: self.customer.clone(),
            chat: self.message.chat_id.clone(),
            seq: self.seq,
            message: serde_json::to_string(&self.message).unwrap_or_default(),
            idempotency_key: self.key.clone(),
            attempts: self.attempts,
            next_at: self.next_at,
            last_error: None,
            failed: None,
        }
    }

    /// Back from its stored form; none if the stored message no longer reads (it is logged).
    pub fn from_record(record: OutboxRecord) -> Option<Self> {
        let message = serde_json::from_str(&record.message)
            .map_err(
                |e| tracing::error!(id = record.id, error = %e, "an outbox entry does not read; skipped"),
            )
            .ok()?;
        Some(Self {
            id: record.id,
            customer: record.customer,
            seq: record.seq,
            message,
            key: record.idempotency_key,
            attempts: record.attempts,
            next_at: record.next_at,
        })
    }
}

/// Items handed over together, after the commit they wait for.
#[derive(Debug)]
pub struct Dispatch {
    /// The items, in order.
    pub items: Vec<OutboxItem>,
    /// The commit of the change that caused them; none when there is no store (or they were
    /// committed before a restart).
    pub committed: Option<Receipt>,
}

/// Counts of the outbox, for `/metrics`.
#[derive(Debug, Default)]
pub struct OutboxCounters {
    /// Items handed over.
    pub queued: AtomicU64,
    /// Items the platform took.
    pub sent: AtomicU64,
    /// Items that finally failed.
    pub failed: AtomicU64,
    /// Attempts that failed and will be made again.
    pub retried: AtomicU64,
    /// Items dropped because the change that caused them was not committed.
    pub uncommitted: AtomicU64,
}

impl OutboxCounters {
    /// Items still in the outbox: handed over and neither sent nor failed nor dropped.
    pub fn pending(&self) -> u64 {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        read(&self.queued).saturating_sub(read(&self.sent) + read(&self.failed) + read(&self.uncommitted))
    }
}

/// The engine's end of the outbox.
#[derive(Debug)]
pub struct Outbound {
    tx: mpsc::UnboundedSender<Dispatch>,
    next_id: AtomicU64,
    /// What became of the items so far.
    pub counters: OutboxCounters,
}

impl Outbound {
    /// The engine's end and the runtime's (for [`sender::run_outbox`], or a test to read).
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Dispatch>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbound = Self {
            tx,
            next_id: AtomicU64::new(1),
            counters: OutboxCounters::default(),
        };
        (outbound, rx)
    }

    /// A fresh item number, past every number of a restored outbox.
    pub(super) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes the next numbers come after `id` (a restored outbox's highest).
    pub(super) fn numbers_after(&self, id: u64) {
        self.next_id.fetch_max(id + 1, Ordering::Relaxed);
    }

    /// Hands `items` over, to go once `committed` resolves.
    pub(super) fn dispatch(&self, items: Vec<OutboxItem>, committed: Option<Receipt>) {
        if items.is_empty() {
            return;
        }
        self.counters
            .queued
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        if self.tx.send(Dispatch { items, committed }).is_err() {
            // Only when the runtime is shutting down: the items stay in the store's outbox
            // and go after the restart.
            tracing::warn!("the outbox sender is gone; messages wait in the store for the next start");
        }
    }
}

/// How the outbox retries.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts in all, the first included; then the message fails, visibly.
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time after.
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 8,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl Retry {
    /// The wait after failed attempt number `attempts` (1 for the first).
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doubled = self
            .first_backoff
            .saturating_mul(1u32.checked_shl(attempts.saturating_sub(1)).unwrap_or(u32::MAX));
        doubled.min(self.max_backoff)
    }
}
