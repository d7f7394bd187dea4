//! How core state looks on the wire.

use crate::clock::Timestamp;
use crate::core::{Channel, ChannelPolicy, Chat, CustomerFile, Message, Router, Waiting};
use crate::ids::QueueId;
use crate::protocol::supervisor::{QueueView, WaitingView};
use crate::protocol::{ArchiveEntry, ChannelLimits, ChatView, CustomerView};
use crate::store::{ArchiveRow, ChatRecord, CustomerRecord};

pub(crate) fn customer_view(file: &CustomerFile) -> CustomerView {
    CustomerView {
        id: file.id.clone(),
        name: file.profile.name.clone(),
        email: file.profile.email.clone(),
        phone: file.profile.phone.clone(),
    }
}

pub(crate) fn chat_view(file: &CustomerFile, chat: &Chat, policy: &ChannelPolicy) -> ChatView {
    ChatView {
        id: chat.id.clone(),
        customer: customer_view(file),
        channel: chat.channel.into(),
        state: chat.state().into(),
        owner: chat.stage.owner().cloned(),
        reopened_by: chat.reopened_by.clone(),
        last_customer_message_at: chat.last_customer_message_at,
        window_expires_at: policy.window_expires_at(chat.last_customer_message_at),
        snooze: chat.stage.snooze().map(Into::into),
        last_message: chat.messages.last().map(Into::into),
    }
}

pub(crate) fn archive_entry(
    file: &CustomerFile,
    chat: &Chat,
    policy: &ChannelPolicy,
    now: Timestamp,
) -> ArchiveEntry {
    ArchiveEntry {
        chat_id: chat.id.clone(),
        customer: customer_view(file),
        channel: chat.channel.into(),
        state: chat.state().into(),
        owner: chat.stage.owner().cloned(),
        closed_at: chat.stage.closed().map(|(at, _)| at),
        close_reason: chat.stage.closed().map(|(_, why)| why.into()),
        last_customer_message_at: chat.last_customer_message_at,
        window_expires_at: policy.window_expires_at(chat.last_customer_message_at),
        reopenable: file.reopenable(chat, policy, now),
        template_allowed: file.template_check(&chat.id, policy, now).is_ok(),
    }
}

/// The archive entry of a chat that is only in the store: closed, and outside its window
/// (the engine keeps every other chat in memory), so it can be neither reopened nor pushed to.
pub(crate) fn stored_archive_entry(row: &ArchiveRow, policy: &ChannelPolicy) -> ArchiveEntry {
    ArchiveEntry {
        chat_id: row.chat.clone(),
        customer: CustomerView {
            id: row.customer.clone(),
            name: row.profile.name.clone(),
            email: row.profile.email.clone(),
            phone: row.profile.phone.clone(),
        },
        channel: row.channel.into(),
        state: row.state.into(),
        owner: row.owner.clone(),
        closed_at: row.closed.map(|(at, _)| at),
        close_reason: row.closed.map(|(_, why)| why.into()),
        last_customer_message_at: row.last_customer_message_at,
        window_expires_at: policy.window_expires_at(row.last_customer_message_at),
        reopenable: false,
        template_allowed: false,
    }
}

/// A chat that is only in the store, as agents see it (`get_chat`).
pub(crate) fn stored_chat_view(
    chat: &ChatRecord,
    customer: Option<&CustomerRecord>,
    last_message: Option<Message>,
    policy: &ChannelPolicy,
) -> ChatView {
    let profile = customer.map(|c| c.profile.clone()).unwrap_or_default();
    ChatView {
        id: chat.id.clone(),
        customer: CustomerView {
            id: chat.customer.clone(),
            name: profile.name,
            email: profile.email,
            phone: profile.phone,
        },
        channel: chat.channel.into(),
        state: chat.state().into(),
        owner: chat.stage.owner().cloned(),
        reopened_by: chat.reopened_by.clone(),
        last_customer_message_at: chat.last_customer_message_at,
        window_expires_at: policy.window_expires_at(chat.last_customer_message_at),
        snooze: chat.stage.snooze().map(Into::into),
        last_message: last_message.as_ref().map(Into::into),
    }
}

/// Whether the customer matches an archive search (name, phone, email or address; any case).
pub(crate) fn matches_query(file: &CustomerFile, query: &str) -> bool {
    let query = query.trim().to_lowercase();
    let profile = &file.profile;
    [&profile.name, &profile.email, &profile.phone]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .chain(file.identities.iter().map(|(_, a)| a.as_str()))
        .any(|field| field.to_lowercase().contains(&query))
}

impl super::Engine {
    /// Every channel's limits, as configured (the agent's `welcome`).
    pub fn channel_limits(&self) -> Vec<ChannelLimits> {
        Channel::ALL
            .into_iter()
            .map(|channel| ChannelLimits {
                channel: channel.into(),
                max_message_length: self.config.policies.of(channel).max_len,
            })
            .collect()
    }

    /// A queue with its waiting chats in offer order (R20), numbered from 1.
    pub(crate) fn queue_view(
        &self,
        router: &Router,
        id: &QueueId,
        waiting: &[&Waiting],
        now: Timestamp,
    ) -> QueueView {
        let plan = router.plan(id);
        QueueView {
            id: id.clone(),
            waiting: waiting
                .iter()
                .enumerate()
                .map(|(i, w)| self.waiting_view(router, w, i + 1, now))
                .collect(),
            priority: plan.map_or(0, |p| p.priority),
            sla_secs: plan
                .and_then(|p| p.sla)
                .map(|sla| sla.num_seconds().max(0) as u64),
            open: router.is_open(id),
        }
    }

    /// One waiting chat at `position`, with its customer as the offer card captured when it
    /// was queued shows it (a map read, so it may run under the router's lock), and how it
    /// stands in routing (R19, R20).
    pub(crate) fn waiting_view(
        &self,
        router: &Router,
        waiting: &Waiting,
        position: usize,
        now: Timestamp,
    ) -> WaitingView {
        let standing = router.standing(waiting, now);
        WaitingView {
            chat_id: waiting.chat.clone(),
            customer_id: waiting.customer.clone(),
            customer: self
                .offer_cards
                .get(&waiting.chat)
                .map(|card| card.customer.clone()),
            position,
            since: waiting.since,
            channel: Some(waiting.channel.into()),
            step: standing.step,
            steps: standing.steps,
            requires: standing.needs,
            priority: standing.priority,
            due_at: standing.due_at,
            estimated_wait_secs: router
                .estimated_wait(&waiting.queue, position, now)
                .map(|w| w.num_seconds().max(0) as u64),
        }
    }
}
