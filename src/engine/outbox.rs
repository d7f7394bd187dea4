//! What becomes of messages to customers (R24, R25): the outbox's outcomes, the platforms'
//! status webhooks, and an agent's retry of a failed message, each applied to the message in
//! its customer's file like any other operation (its events make the journal records and the
//! `message_status` push).

use std::sync::atomic::Ordering;

use dashmap::DashMap;

use super::outbound::OutboxItem;
use super::Engine;
use crate::clock::Timestamp;
use crate::core::{Channel, CustomerEvent, Delivery};
use crate::ids::{AgentId, ChatId, CustomerId};
use crate::protocol::ReplyResult;
use crate::refusal::Refusal;
use crate::store::{Change, WsKey};

/// The `Idempotency-Key` of outbox item `id` of the engine started at `boot` in workspace
/// `ws`, which the platform uses to drop a repeated send (R24).
///
/// Outbox ids are counted per workspace, and workspaces share a platform account as easily
/// as a file (R27), so the key names the workspace: `sb-w{ws}-{id}-{boot}` (hex numbers).
/// The `default` workspace keeps the key it had before workspaces, `sb-{id}-{boot}`, which
/// clients and the load harness's fake platform already parse; the two never meet, as `w` is
/// no hex digit.
pub(crate) fn idempotency_key(ws: WsKey, id: u64, boot: u64) -> String {
    if ws == WsKey::DEFAULT {
        format!("sb-{id:x}-{boot:x}")
    } else {
        format!("sb-w{:x}-{id:x}-{boot:x}", ws.get())
    }
}

/// Where a message the platform knows by its id is: for its status webhooks (R25).
#[derive(Clone, Debug)]
pub(crate) struct SentMessage {
    pub(crate) customer: CustomerId,
    pub(crate) chat: ChatId,
    pub(crate) seq: u64,
}

/// How long a status of a message not known (yet) is kept for it.
const EARLY_STATUS_TTL: chrono::Duration = chrono::Duration::seconds(60);

/// How many such statuses are kept at most: the statuses of another system's sends on the same
/// number are never claimed, and must not grow without bound.
const EARLY_STATUSES_MAX: usize = 10_000;

/// Statuses that a platform (or an adapter) reported before the outbox had recorded their
/// message as taken: the platform's answer to the send and its status webhook race, and the
/// webhook may win (all the more as sends run on a low-priority thread). Each is applied once
/// the message is recorded, in the order it came; one never claimed is let go of after
/// [`EARLY_STATUS_TTL`].
#[derive(Debug, Default)]
pub(crate) struct EarlyStatuses(DashMap<(Channel, String), (Timestamp, Vec<Delivery>)>);

impl EarlyStatuses {
    /// Keeps `delivery` for the message `key` names, as of `now`.
    fn hold(&self, key: (Channel, String), delivery: Delivery, now: Timestamp) {
        if self.0.len() >= EARLY_STATUSES_MAX {
            self.0.retain(|_, (since, _)| now - *since < EARLY_STATUS_TTL);
            if self.0.len() >= EARLY_STATUSES_MAX {
                tracing::debug!(channel = %key.0, provider_id = %key.1, "a status of an unknown message let go of: too many waiting");
                return;
            }
        }
        self.0
            .entry(key)
            .or_insert_with(|| (now, Vec::new()))
            .1
            .push(delivery);
    }

    /// What came for the message `key` names, within the last [`EARLY_STATUS_TTL`].
    fn claim(&self, key: &(Channel, String), now: Timestamp) -> Vec<Delivery> {
        match self.0.remove(key) {
            Some((_, (since, reports))) if now - since < EARLY_STATUS_TTL => reports,
            _ => Vec::new(),
        }
    }
}

impl Engine {
    /// The platform took `item`; its id of the message is `provider_id`.
    pub fn outbox_taken(&self, item: &OutboxItem, provider_id: String) {
        self.outbound.counters.sent.fetch_add(1, Ordering::Relaxed);
        let key = (item.channel(), provider_id.clone());
        if let Some(seq) = item.seq {
            self.sent_messages.insert(
                key.clone(),
                SentMessage {
                    customer: item.customer.clone(),
                    chat: item.chat().clone(),
                    seq,
                },
            );
        }
        self.settle_item(
            item,
            Delivery::Sent,
            Some(provider_id),
            Change::OutboxDone { id: item.id },
        );
        if item.seq.is_some() {
            for delivery in self.early_statuses.claim(&key, self.now()) {
                self.delivery_status(key.0, &key.1, delivery);
            }
        }
    }

    /// `item` will never go: every attempt failed, or the platform refused it for good. It
    /// stays in the outbox, marked, for its agent to send again (R24).
    pub fn outbox_failed(&self, item: &OutboxItem, reason: String) {
        self.outbound.counters.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(chat = %item.chat(), seq = ?item.seq, %reason, "a message to a customer failed");
        if let Some(seq) = item.seq {
            self.failed_outbox
                .insert((item.chat().clone(), seq), item.clone());
        }
        let marked = Change::OutboxFailed {
            id: item.id,
            reason: reason.clone(),
        };
        self.settle_item(item, Delivery::Failed { reason }, None, marked);
    }

    /// An attempt at `item` failed and another is due at `item.next_at`: kept across restarts.
    pub fn outbox_retry(&self, item: &OutboxItem, error: &str) {
        self.outbound.counters.retried.fetch_add(1, Ordering::Relaxed);
        tracing::info!(chat = %item.chat(), attempts = item.attempts, %error, "a message to a customer will be sent again");
        if let (Some(store), Some(next_at)) = (&self.store, item.next_at) {
            let _receipt = store.submit(vec![Change::OutboxAttempt {
                id: item.id,
                attempts: item.attempts,
                next_at,
                error: error.to_owned(),
            }]);
        }
    }

    /// The change that caused `items` was not committed: they are not sent (R24).
    pub fn outbox_uncommitted(&self, items: &[OutboxItem]) {
        self.outbound
            .counters
            .uncommitted
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        tracing::error!(
            count = items.len(),
            "messages to customers not sent: the change that caused them was not saved"
        );
    }

    /// The platform's news about a message it knows as `provider_id` on `channel` (R25);
    /// false if no message of ours has that id (yet: the news is kept a while for it, see
    /// [`EarlyStatuses`]).
    pub fn delivery_status(&self, channel: Channel, provider_id: &str, delivery: Delivery) -> bool {
        let Some(sent) = self
            .sent_messages
            .get(&(channel, provider_id.to_owned()))
            .map(|s| s.clone())
        else {
            self.early_statuses
                .hold((channel, provider_id.to_owned()), delivery, self.now());
            return false;
        };
        let Some(file) = self.customers.file(&sent.customer) else {
            return false;
        };
        // Read and failed are the last news a platform sends: the id need not be kept.
        if matches!(delivery, Delivery::Read | Delivery::Failed { .. }) {
            self.sent_messages.remove(&(channel, provider_id.to_owned()));
        }
        let now = self.now();
        let mut file = file.lock();
        let mut effects = self.effects(&file, now);
        let events = file.delivery(&sent.chat, sent.seq, delivery, None);
        effects.apply(&file, &events);
        effects.finish(&file);
        true
    }

    /// The platform's news about every message it took for the customer at `address` on
    /// `channel` up to `up_to` (R25): Messenger's receipts name a moment, not messages. Nothing
    /// happens for an address the engine does not know.
    pub fn delivery_up_to(&self, channel: Channel, address: &str, up_to: Timestamp, delivery: Delivery) {
        let Some(file) = self.customers.file_at(channel, address) else {
            return;
        };
        let last_news = matches!(delivery, Delivery::Read);
        let now = self.now();
        let read_ids: Vec<String> = {
            let mut file = file.lock();
            let mut effects = self.effects(&file, now);
            let events = file.delivery_up_to(channel, up_to, delivery);
            effects.apply(&file, &events);
            effects.finish(&file);
            events
                .iter()
                .filter(|_| last_news)
                .filter_map(|e| match e {
                    CustomerEvent::DeliveryChanged { chat, seq } => file
                        .chat(chat)
                        .and_then(|c| c.messages.get(usize::try_from(*seq).ok()?))
                        .and_then(|m| m.provider_id.clone()),
                    _ => None,
                })
                .collect()
        };
        // Read is the last news a platform sends: the ids need not be kept (as above).
        for id in read_ids {
            self.sent_messages.remove(&(channel, id));
        }
    }

    /// The owner sends a failed message again (R24).
    pub(super) fn retry_message(
        &self,
        me: &AgentId,
        chat_id: &ChatId,
        seq: u64,
        now: Timestamp,
    ) -> Result<ReplyResult, Refusal> {
        let file = self.file_of_chat(chat_id)?;
        let mut file = file.lock();
        let mut effects = self.effects(&file, now);
        let events = file.retry_delivery(chat_id, seq, me)?;
        effects.apply(&file, &events);
        effects.finish(&file);
        Ok(ReplyResult::Done)
    }

    /// Records what became of `item` on its message (pushing the news to the chat's owner)
    /// and in the stored outbox (`done`), in one commit.
    fn settle_item(&self, item: &OutboxItem, delivery: Delivery, provider_id: Option<String>, done: Change) {
        let Some(file) = self.customers.file(&item.customer) else {
            if let Some(store) = &self.store {
                let _receipt = store.submit(vec![done]);
            }
            return;
        };
        let now = self.now();
        let mut file = file.lock();
        let mut effects = self.effects(&file, now);
        let events = match item.seq {
            Some(seq) => file.delivery(item.chat(), seq, delivery, provider_id),
            None => Vec::new(),
        };
        effects.apply(&file, &events);
        effects.store_also(done);
        effects.finish(&file);
    }
}

#[cfg(test)]
mod tests {
    use super::idempotency_key;
    use crate::store::WsKey;

    #[test]
    fn r27_idempotency_keys_of_two_workspaces_never_collide_and_default_keeps_its_format() {
        let (id, boot) = (0x2a, 0x5f00);
        let default = idempotency_key(WsKey::DEFAULT, id, boot);
        let other = idempotency_key(WsKey::new(2), id, boot);
        assert_eq!(default, "sb-2a-5f00");
        assert_eq!(other, "sb-w2-2a-5f00");
        assert_ne!(other, idempotency_key(WsKey::new(3), id, boot));
    }
}
