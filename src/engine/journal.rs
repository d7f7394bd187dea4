//! What the store is told about one operation, derived from its events (issue 13).
//!
//! The translator notes every event of an operation in an [`Entry`]: whether the customer's
//! record changed, which chats' records changed, which messages were added, which KPI events
//! were counted. When the operation's effects are done, still under the customer's lock, the
//! entry becomes one all-or-nothing submission: the customer's record (if it changed, or is new
//! with its first chat) first, so that a chat is never stored without its customer; then each
//! changed chat, each new message, each KPI event. Submitting under the lock keeps the store's
//! order the same as the order the changes happened in, per customer, and the writer commits
//! submissions in order: if a change is on disk, so is everything it was built on.
//!
//! An operation that forgets an event would lose a change at the next restart. Debug builds
//! (every test) therefore also take a note of the whole file before the operation
//! ([`Before`]) and check afterwards that the entry covers every difference.
//!
//! The gateway does not hold the receipts: it asks the engine for a write point after the
//! operation and answers once the store has reached it (write before acknowledge).

use crate::core::analytics::Event;
use crate::core::{CustomerEvent, CustomerFile};
use crate::ids::ChatId;
use crate::store::{Change, ChatRecord, CustomerRecord};

/// What one operation changed, to be written as one submission.
#[derive(Debug, Default)]
pub(super) struct Entry {
    customer: bool,
    chats: Vec<ChatId>,
    messages: Vec<(ChatId, u64)>,
    deliveries: Vec<(ChatId, u64)>,
    kpis: Vec<Event>,
    /// The outbox's records and bookkeeping, after everything else.
    also: Vec<Change>,
}

impl Entry {
    /// Notes what `event` changed.
    pub(super) fn note(&mut self, event: &CustomerEvent) {
        self.customer |= event.changes_customer();
        if let (true, Some(chat)) = (event.changes_chat(), event.chat()) {
            if !self.chats.contains(chat) {
                self.chats.push(chat.clone());
            }
        }
        if let CustomerEvent::MessageAdded { chat, seq, .. } = event {
            self.messages.push((chat.clone(), *seq));
        }
    }

    /// Notes that a message's delivery changed (R24, R25).
    pub(super) fn delivery(&mut self, chat: ChatId, seq: u64) {
        self.deliveries.push((chat, seq));
    }

    /// Adds a change that no event describes (the outbox's own records), written last.
    pub(super) fn store_also(&mut self, change: Change) {
        self.also.push(change);
    }

    /// Notes a KPI event, stored with the change it counts.
    pub(super) fn kpi(&mut self, event: Event) {
        self.kpis.push(event);
    }

    /// The submission: records read from `file` as the operation left it.
    pub(super) fn changes(self, file: &CustomerFile) -> Vec<Change> {
        let mut changes = Vec::with_capacity(
            usize::from(self.customer)
                + self.chats.len()
                + self.messages.len()
                + self.deliveries.len()
                + self.kpis.len()
                + self.also.len(),
        );
        if self.customer {
            changes.push(Change::UpsertCustomer(CustomerRecord::of(file)));
        }
        changes.extend(
            self.chats
                .iter()
                .filter_map(|id| file.chat(id))
                .map(|chat| Change::UpsertChat(ChatRecord::of(chat))),
        );
        changes.extend(self.messages.into_iter().filter_map(|(chat, seq)| {
            let message = file
                .chat(&chat)?
                .messages
                .get(usize::try_from(seq).ok()?)?
                .clone();
            Some(Change::AppendMessage { chat, seq, message })
        }));
        changes.extend(self.deliveries.into_iter().filter_map(|(chat, seq)| {
            let message = file.chat(&chat)?.messages.get(usize::try_from(seq).ok()?)?;
            Some(Change::SetDelivery {
                chat,
                seq,
                delivery: message.delivery.clone()?,
                provider_id: message.provider_id.clone(),
            })
        }));
        changes.extend(self.kpis.into_iter().map(Change::Analytics));
        changes.extend(self.also);
        changes
    }
}

/// What a file held before an operation, to check its entry against (debug builds).
#[cfg(debug_assertions)]
pub(super) struct Before {
    customer: CustomerRecord,
    /// Each chat's record and how many messages it had.
    chats: Vec<(ChatRecord, usize)>,
}

#[cfg(debug_assertions)]
impl Before {
    pub(super) fn of(file: &CustomerFile) -> Self {
        Self {
            customer: CustomerRecord::of(file),
            chats: file
                .chats
                .iter()
                .map(|c| (ChatRecord::of(c), c.messages.len()))
                .collect(),
        }
    }

    /// Panics if `changes` misses a difference between this note and `file`.
    pub(super) fn check(&self, file: &CustomerFile, changes: &[Change]) {
        let customer = CustomerRecord::of(file);
        let new_chat = file
            .chats
            .iter()
            .any(|c| !self.chats.iter().any(|(old, _)| old.id == c.id));
        if customer != self.customer || new_chat {
            assert!(
                changes.contains(&Change::UpsertCustomer(customer)),
                "customer {} changed but no event said so",
                file.id
            );
        }
        for chat in &file.chats {
            let known = self.chats.iter().find(|(old, _)| old.id == chat.id);
            let record = ChatRecord::of(chat);
            if known.is_none_or(|(old, _)| *old != record) {
                assert!(
                    changes.contains(&Change::UpsertChat(record)),
                    "chat {} changed but no event said so",
                    chat.id
                );
            }
            let stored = known.map_or(0, |(_, n)| *n);
            for (seq, message) in chat.messages.iter().enumerate().skip(stored) {
                let append = Change::AppendMessage {
                    chat: chat.id.clone(),
                    seq: seq as u64,
                    message: message.clone(),
                };
                assert!(
                    changes.contains(&append),
                    "message {seq} of chat {} added but no event said so",
                    chat.id
                );
            }
        }
    }
}
