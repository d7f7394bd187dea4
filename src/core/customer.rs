//! A customer and every chat it has had: the unit that R01 (one live chat) is kept in.
//!
//! Each operation takes `now` and the channel's policy, and either refuses with a
//! [`Rejection`], leaving the file exactly as it was, or changes it and returns the
//! [`CustomerEvent`]s that say what happened, from which the engine derives every effect.

mod events;
#[cfg(test)]
mod tests;

pub use events::CustomerEvent;

use super::channel::{AfterWindow, Channel, ChannelPolicy};
use super::chat::{
    Author, Chat, ChatState, CloseReason, Delivery, Incoming, MessageKind, SnoozeUntil, Stage,
};
use super::queue::RoutingAsk;
use super::rejection::{LiveElsewhere, Rejection};
use super::router::Accepted;
use crate::clock::Timestamp;
use crate::ids::{AgentId, ChatId, CustomerId};
use CustomerEvent as E;

/// How a customer can be reached and found.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Profile {
    /// Display name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
}

/// What an operation did, in the order the engine should act on it.
pub type Events = Vec<CustomerEvent>;

/// A customer, its identities, and all its chats.
#[derive(Clone, Debug)]
pub struct CustomerFile {
    /// Its id.
    pub id: CustomerId,
    /// Name, email, phone.
    pub profile: Profile,
    /// One address per channel (`+4915…` on whatsapp).
    pub identities: Vec<(Channel, String)>,
    /// Every chat, oldest first; at most one live (R01).
    pub chats: Vec<Chat>,
    /// Channels the customer opted out of with #STOP and has not written on since (R08).
    pub opted_out: Vec<Channel>,
    /// Channels a template was pushed on since the customer last wrote there (R07).
    pub pushed: Vec<Channel>,
    /// The customer's originally assigned agent: the one who last accepted one of its chats
    /// from routing; a transfer or a reopen does not change it (R10).
    pub assigned_agent: Option<AgentId>,
}

impl CustomerFile {
    /// A customer with no chats yet.
    pub fn new(id: CustomerId, channel: Channel, address: String, profile: Profile) -> Self {
        Self {
            id,
            profile,
            identities: vec![(channel, address)],
            chats: Vec::new(),
            opted_out: Vec::new(),
            pushed: Vec::new(),
            assigned_agent: None,
        }
    }

    /// The live chat, if any.
    pub fn live(&self) -> Option<&Chat> {
        self.chats.iter().rev().find(|c| c.stage.is_live())
    }

    /// One chat of this customer.
    pub fn chat(&self, id: &ChatId) -> Option<&Chat> {
        self.chats.iter().find(|c| &c.id == id)
    }

    fn chat_mut(&mut self, id: &ChatId) -> Result<&mut Chat, Rejection> {
        self.chats
            .iter_mut()
            .find(|c| &c.id == id)
            .ok_or_else(|| Rejection::not_found("chat", id))
    }

    /// The address on `channel`.
    pub fn address(&self, channel: Channel) -> Option<&str> {
        self.identities
            .iter()
            .find(|(c, _)| *c == channel)
            .map(|(_, a)| a.as_str())
    }

    /// Whether the customer opted out on `channel`.
    pub fn is_opted_out(&self, channel: Channel) -> bool {
        self.opted_out.contains(&channel)
    }

    /// Overwrites the profile fields given (the channel knows best) and adds an identity the
    /// first time it is seen.
    pub fn learn(&mut self, channel: Channel, address: &str, profile: Profile) -> Events {
        let mut learned = false;
        if self.address(channel).is_none() {
            self.identities.push((channel, address.to_owned()));
            learned = true;
        }
        let Profile { name, email, phone } = profile;
        for (field, value) in [
            (&mut self.profile.name, name),
            (&mut self.profile.email, email),
            (&mut self.profile.phone, phone),
        ] {
            if value.is_some() && *field != value {
                *field = value;
                learned = true;
            }
        }
        if learned {
            vec![E::ProfileLearned]
        } else {
            Vec::new()
        }
    }

    fn live_elsewhere(&self) -> Option<LiveElsewhere> {
        self.live().map(|c| LiveElsewhere {
            chat_id: c.id.clone(),
            state: c.state(),
            owner: c.stage.owner().cloned(),
        })
    }

    /// The newest chat on `channel`.
    fn latest_on(&self, channel: Channel) -> Option<&Chat> {
        self.chats.iter().rev().find(|c| c.channel == channel)
    }

    /// Whether a closed chat may be reopened by an agent at `now` (R02, R03, R08).
    pub fn reopenable(&self, chat: &Chat, policy: &ChannelPolicy, now: Timestamp) -> bool {
        !chat.stage.is_live()
            && self.live().is_none()
            && !self.is_opted_out(chat.channel)
            && self.latest_on(chat.channel).map(|c| &c.id) == Some(&chat.id)
            && policy.window_open(chat.last_customer_message_at, now)
    }

    /// A customer's message on `channel` (R05, R08, R10, R11, R13, R23, R26). A platform's
    /// retried delivery of a message already recorded changes nothing.
    pub fn receive(
        &mut self,
        channel: Channel,
        incoming: impl Into<Incoming>,
        ask: RoutingAsk,
        policy: &ChannelPolicy,
        now: Timestamp,
        new_chat_id: impl FnOnce() -> ChatId,
    ) -> Events {
        let incoming = incoming.into();
        if let Some(id) = &incoming.provider_id {
            let seen = self
                .chats
                .iter()
                .any(|c| c.messages.iter().any(|m| m.provider_id.as_ref() == Some(id)));
            if seen {
                return Vec::new();
            }
        }
        let text = incoming.text.as_str();
        if policy.is_opt_out(text) {
            return self.stop(channel, text.trim(), now);
        }
        let mut events = Vec::new();
        // The channel's opt-in word only lifts an opt-out (R26); from a customer who had not
        // opted out it is a message like any other.
        if policy.is_opt_in(text) && self.opted_out.contains(&channel) {
            remove(&mut self.opted_out, channel);
            events.push(E::OptOutLifted { channel });
            return events;
        }
        // Writing again lifts an opt-out and re-arms the single template push.
        if remove(&mut self.opted_out, channel) {
            events.push(E::OptOutLifted { channel });
        }
        if remove(&mut self.pushed, channel) {
            events.push(E::PushRearmed { channel });
        }

        let live_index = self.chats.iter().rposition(|c| c.stage.is_live());
        if let Some(i) = live_index {
            let chat = &mut self.chats[i];
            if chat.channel == channel {
                chat.last_customer_message_at = Some(now);
            }
            let id = chat.id.clone();
            match &chat.stage {
                Stage::Reopened { owner, .. } => {
                    let agent = owner.clone();
                    chat.stage = Stage::Active { owner: agent.clone() };
                    events.push(E::ReopenAnswered {
                        chat: id.clone(),
                        agent,
                    });
                }
                Stage::Snoozed { owner, .. } => {
                    // Any reply ends a snooze, timed or not (R13).
                    let owner = owner.clone();
                    chat.stage = Stage::Active { owner: owner.clone() };
                    events.push(E::SnoozeEnded {
                        chat: id.clone(),
                        owner,
                    });
                }
                _ => {}
            }
            events.push(chat.add_incoming(now, incoming));
            return events;
        }

        let (i, revived) = self.start_chat(channel, Stage::Queued { since: now }, policy, now, new_chat_id);
        let chat = &mut self.chats[i];
        chat.last_customer_message_at = Some(now);
        chat.routing = ask;
        let id = chat.id.clone();
        events.push(E::ChatStarted {
            chat: id.clone(),
            revived,
        });
        events.push(chat.add_incoming(now, incoming));
        events.push(E::Queued {
            chat: id,
            sticky: self.assigned_agent.clone(),
        });
        events
    }

    /// Revives the newest chat on `channel` if the customer is back within its window (R11),
    /// or starts a new one; either way at `stage`. Returns its index and whether it was revived.
    fn start_chat(
        &mut self,
        channel: Channel,
        stage: Stage,
        policy: &ChannelPolicy,
        now: Timestamp,
        new_chat_id: impl FnOnce() -> ChatId,
    ) -> (usize, bool) {
        let revivable = self
            .chats
            .iter()
            .rposition(|c| c.channel == channel)
            .filter(|&i| {
                let c = &self.chats[i];
                match (policy.window, c.stage.closed()) {
                    (Some(_), _) => policy.window_open(c.last_customer_message_at, now),
                    (None, Some((closed_at, _))) => now < closed_at + policy.revive_window,
                    (None, None) => false,
                }
            });
        if let Some(i) = revivable {
            let chat = &mut self.chats[i];
            chat.stage = stage;
            chat.reopened_by = None;
            return (i, true);
        }
        let chat = Chat::new(new_chat_id(), self.id.clone(), channel, stage, now);
        self.chats.push(chat);
        (self.chats.len() - 1, false)
    }

    fn stop(&mut self, channel: Channel, word: &str, now: Timestamp) -> Events {
        let mut events = Vec::new();
        if !self.opted_out.contains(&channel) {
            self.opted_out.push(channel);
            events.push(E::OptedOut { channel });
        }
        if let Some(chat) = self.chats.iter_mut().rev().find(|c| c.stage.is_live()) {
            let (prior, owner) = chat.close(now, CloseReason::Stop);
            events.push(E::Closed {
                chat: chat.id.clone(),
                prior,
                owner,
                reason: CloseReason::Stop,
            });
            events.push(chat.add(now, Author::Customer, MessageKind::Text, word));
        }
        events
    }

    /// An agent reopens a closed chat (R02, R03, R04, R08, R09).
    pub fn reopen(
        &mut self,
        chat_id: &ChatId,
        agent: &AgentId,
        policy: &ChannelPolicy,
        now: Timestamp,
    ) -> Result<Events, Rejection> {
        let chat = self
            .chat(chat_id)
            .ok_or_else(|| Rejection::not_found("chat", chat_id))?;
        if matches!(&chat.stage, Stage::Reopened { owner, .. } if owner == agent) {
            // The caller holds it reopened already (a retry after a lost reply, another tab):
            // not a conflict with oneself. Nothing changes, and the chat is the answer (R17).
            return Ok(Vec::new());
        }
        if let Some(live) = self.live_elsewhere() {
            return Err(Rejection::ActiveElsewhere { live });
        }
        if self.is_opted_out(chat.channel) {
            return Err(Rejection::OptedOut {
                channel: chat.channel,
            });
        }
        if !policy.window_open(chat.last_customer_message_at, now) {
            return Err(Rejection::WindowClosed {
                expired_at: policy.window_expires_at(chat.last_customer_message_at),
            });
        }
        if self.latest_on(chat.channel).map(|c| &c.id) != Some(chat_id) {
            return Err(Rejection::WrongState {
                chat: chat_id.clone(),
                state: chat.state(),
                why: "a newer chat with this customer exists on the channel; reopen that one",
            });
        }
        let until = policy
            .window_expires_at(chat.last_customer_message_at)
            .unwrap_or(now + policy.revive_window);
        // The reopener owns the reopened chat (R04, R05), but is not the customer's
        // originally assigned agent: a chat the customer starts on its own still goes to the
        // one who last accepted it from routing (R10).
        let mut events = Vec::new();
        let chat = self.chat_mut(chat_id)?;
        chat.stage = Stage::Reopened {
            owner: agent.clone(),
            since: now,
        };
        chat.reopened_by = Some(agent.clone());
        events.push(E::Reopened {
            chat: chat_id.clone(),
            by: agent.clone(),
            until,
        });
        events.push(chat.add(now, Author::System, MessageKind::Notice, "reopened"));
        Ok(events)
    }

    /// The owner writes to its live chat (R07, R12).
    pub fn send(
        &mut self,
        chat_id: &ChatId,
        agent: &AgentId,
        text: &str,
        human_agent_tag: bool,
        policy: &ChannelPolicy,
        now: Timestamp,
    ) -> Result<Events, Rejection> {
        let chat = self.chat_mut(chat_id)?;
        let last = chat.last_customer_message_at;
        if !chat.stage.is_live() {
            if !policy.window_open(last, now) {
                return Err(Rejection::WindowClosed {
                    expired_at: policy.window_expires_at(last),
                });
            }
            return Err(Rejection::WrongState {
                chat: chat_id.clone(),
                state: chat.state(),
                why: "the chat is closed: reopen it first",
            });
        }
        if chat.stage.owner() != Some(agent) {
            return Err(Rejection::NotOwner {
                owner: chat.stage.owner().cloned(),
            });
        }
        check_length(text, chat.channel, policy)?;
        if !policy.window_open(last, now) {
            let expired_at = match policy.after_window {
                // Tagged messages have their own, longer limit: that is the one that closed.
                AfterWindow::HumanAgentTag { until } if human_agent_tag => {
                    let tag_expires = last.map_or(Timestamp::MIN_UTC, |l| l + until);
                    (now >= tag_expires).then_some(tag_expires)
                }
                _ => policy.window_expires_at(last),
            };
            if let Some(expired_at) = expired_at {
                return Err(Rejection::WindowClosed {
                    expired_at: Some(expired_at),
                });
            }
        }
        let mut added = chat.add(
            now,
            Author::Agent { agent: agent.clone() },
            MessageKind::Text,
            text,
        );
        if let E::MessageAdded {
            human_agent_tag: tag, ..
        } = &mut added
        {
            *tag = human_agent_tag;
        }
        Ok(vec![added])
    }

    /// Whether the one template push after the window may go out now (R07, R08).
    pub fn template_check(
        &self,
        chat_id: &ChatId,
        policy: &ChannelPolicy,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let chat = self
            .chat(chat_id)
            .ok_or_else(|| Rejection::not_found("chat", chat_id))?;
        let (channel, last, state) = (chat.channel, chat.last_customer_message_at, chat.state());
        if let Some(live) = self.live_elsewhere() {
            return Err(Rejection::ActiveElsewhere { live });
        }
        if self.is_opted_out(channel) {
            return Err(Rejection::OptedOut { channel });
        }
        let Some(expired_at) = policy.window_expires_at(last) else {
            return Err(Rejection::WrongState {
                chat: chat_id.clone(),
                state,
                why: "the channel has no messaging window: reopen the chat instead",
            });
        };
        if now < expired_at {
            return Err(Rejection::WrongState {
                chat: chat_id.clone(),
                state,
                why: "the messaging window is still open: reopen the chat instead",
            });
        }
        match policy.after_window {
            AfterWindow::Nothing => {
                return Err(Rejection::WindowClosed {
                    expired_at: Some(expired_at),
                })
            }
            AfterWindow::HumanAgentTag { until } => {
                let tag_expires = last.map_or(Timestamp::MIN_UTC, |l| l + until);
                if now >= tag_expires {
                    return Err(Rejection::WindowClosed {
                        expired_at: Some(tag_expires),
                    });
                }
            }
            AfterWindow::Templates => {}
        }
        if self.pushed.contains(&channel) {
            return Err(Rejection::PushAlreadySent);
        }
        Ok(())
    }

    /// The one template push after the window has closed (R07, R08). The history records it
    /// as `name(param, …)`.
    pub fn push_template(
        &mut self,
        chat_id: &ChatId,
        agent: &AgentId,
        template: String,
        params: Vec<String>,
        policy: &ChannelPolicy,
        now: Timestamp,
    ) -> Result<Events, Rejection> {
        self.template_check(chat_id, policy, now)?;
        let text = if params.is_empty() {
            template.clone()
        } else {
            format!("{template}({})", params.join(", "))
        };
        let chat = self.chat_mut(chat_id)?;
        let channel = chat.channel;
        check_length(&text, channel, policy)?;
        let added = chat.add(
            now,
            Author::Agent { agent: agent.clone() },
            MessageKind::Template,
            text,
        );
        self.pushed.push(channel);
        Ok(vec![
            E::TemplatePushed {
                chat: chat_id.clone(),
                agent: agent.clone(),
                template,
                params,
            },
            added,
        ])
    }

    /// The owner closes its chat (R12), or a supervisor on its behalf (`reason` says which).
    pub fn close(
        &mut self,
        chat_id: &ChatId,
        agent: &AgentId,
        reason: CloseReason,
        now: Timestamp,
    ) -> Result<Events, Rejection> {
        let chat = self.owned_live(chat_id, agent)?;
        let (prior, _) = chat.close(now, reason);
        Ok(vec![E::Closed {
            chat: chat_id.clone(),
            prior,
            owner: Some(agent.clone()),
            reason,
        }])
    }

    /// The owner snoozes its active chat (R13).
    pub fn snooze(
        &mut self,
        chat_id: &ChatId,
        agent: &AgentId,
        until: SnoozeUntil,
        now: Timestamp,
    ) -> Result<Events, Rejection> {
        if let SnoozeUntil::Time { at } = until {
            if at <= now {
                return Err(Rejection::WrongState {
                    chat: chat_id.clone(),
                    state: ChatState::Active,
                    why: "a snooze must end in the future",
                });
            }
        }
        let chat = self.owned_live(chat_id, agent)?;
        if !matches!(chat.stage, Stage::Active { .. } | Stage::Snoozed { .. }) {
            return Err(Rejection::WrongState {
                chat: chat_id.clone(),
                state: chat.state(),
                why: "only an active chat can be snoozed",
            });
        }
        chat.stage = Stage::Snoozed {
            owner: agent.clone(),
            until,
        };
        Ok(vec![E::Snoozed {
            chat: chat_id.clone(),
            owner: agent.clone(),
            until,
        }])
    }

    /// A timed snooze ran out (R13). No events if the chat woke or changed meanwhile.
    pub fn wake(&mut self, chat_id: &ChatId, now: Timestamp) -> Events {
        let Ok(chat) = self.chat_mut(chat_id) else {
            return Vec::new();
        };
        match &chat.stage {
            Stage::Snoozed {
                owner,
                until: SnoozeUntil::Time { at },
            } if *at <= now => {
                let owner = owner.clone();
                chat.stage = Stage::Active { owner: owner.clone() };
                vec![E::SnoozeEnded {
                    chat: chat_id.clone(),
                    owner,
                }]
            }
            _ => Vec::new(),
        }
    }

    /// A reopened chat's wait for the customer ran out. No events if it was answered, closed
    /// or reopened again since the timer was set.
    pub fn expire_reopen(&mut self, chat_id: &ChatId, reopened_at: Timestamp, now: Timestamp) -> Events {
        let Ok(chat) = self.chat_mut(chat_id) else {
            return Vec::new();
        };
        if !matches!(chat.stage, Stage::Reopened { since, .. } if since == reopened_at) {
            return Vec::new();
        }
        let (prior, owner) = chat.close(now, CloseReason::Timeout);
        vec![E::Closed {
            chat: chat_id.clone(),
            prior,
            owner,
            reason: CloseReason::Timeout,
        }]
    }

    /// Moves an active chat to another agent (R12). The "originally assigned" mark stays (R10).
    pub fn transfer(&mut self, chat_id: &ChatId, from: &AgentId, to: &AgentId) -> Result<Events, Rejection> {
        let chat = self.owned_live(chat_id, from)?;
        if !matches!(chat.stage, Stage::Active { .. }) {
            return Err(Rejection::WrongState {
                chat: chat_id.clone(),
                state: chat.state(),
                why: "only an active chat can be transferred",
            });
        }
        chat.stage = Stage::Active { owner: to.clone() };
        Ok(vec![E::Transferred {
            chat: chat_id.clone(),
            from: from.clone(),
            to: to.clone(),
        }])
    }

    /// An agent accepted the offer of a queued chat (R06); the router has checked the offer
    /// and says how long the chat and the offer waited.
    pub fn accept(
        &mut self,
        chat_id: &ChatId,
        agent: &AgentId,
        routed: &Accepted,
    ) -> Result<Events, Rejection> {
        let chat = self.chat_mut(chat_id)?;
        if !matches!(chat.stage, Stage::Queued { .. }) {
            return Err(Rejection::WrongState {
                chat: chat_id.clone(),
                state: chat.state(),
                why: "only a queued chat can be accepted",
            });
        }
        chat.stage = Stage::Active { owner: agent.clone() };
        let mut events = vec![E::Accepted {
            chat: chat_id.clone(),
            agent: agent.clone(),
            queue: routed.queue.clone(),
            waited: routed.waited,
            to_accept: routed.to_accept,
            within_sla: routed.within_sla,
        }];
        // R10: the originally assigned agent is the one who last accepted the customer's
        // chat from routing (a transfer or a reopen never gets here).
        if self.assigned_agent.as_ref() != Some(agent) {
            self.assigned_agent = Some(agent.clone());
            events.push(E::StickyAgentSet { agent: agent.clone() });
        }
        Ok(events)
    }

    /// The customer enters a bot journey (R09); it is then live, and cannot be reopened.
    pub fn start_bot(
        &mut self,
        channel: Channel,
        policy: &ChannelPolicy,
        now: Timestamp,
        new_chat_id: impl FnOnce() -> ChatId,
    ) -> Result<Events, Rejection> {
        if let Some(live) = self.live_elsewhere() {
            return Err(Rejection::ActiveElsewhere { live });
        }
        let (i, revived) = self.start_chat(channel, Stage::Bot, policy, now, new_chat_id);
        Ok(vec![E::ChatStarted {
            chat: self.chats[i].id.clone(),
            revived,
        }])
    }

    /// The bot hands the customer over: the chat is queued (R09) or goes to its sticky agent
    /// (R10), with what the bot learnt for routing (R19) when it says anything.
    pub fn hand_over(&mut self, ask: RoutingAsk, now: Timestamp) -> Result<Events, Rejection> {
        let sticky = self.assigned_agent.clone();
        let chat = self
            .chats
            .iter_mut()
            .rev()
            .find(|c| c.stage.is_live())
            .ok_or_else(|| Rejection::not_found("bot journey of customer", &self.id))?;
        if chat.stage != Stage::Bot {
            return Err(Rejection::WrongState {
                chat: chat.id.clone(),
                state: chat.state(),
                why: "only a chat in a bot journey can be handed over",
            });
        }
        chat.stage = Stage::Queued { since: now };
        if !ask.is_empty() {
            chat.routing = ask;
        }
        Ok(vec![E::Queued {
            chat: chat.id.clone(),
            sticky,
        }])
    }

    /// Tells the customer of a queued chat that its queue is closed, once per chat (R21).
    pub fn reply_after_hours(&mut self, chat_id: &ChatId, text: &str, now: Timestamp) -> Events {
        let Ok(chat) = self.chat_mut(chat_id) else {
            return Vec::new();
        };
        let told = chat.messages.iter().any(|m| m.kind == MessageKind::AfterHours);
        if told || chat.state() != ChatState::Queued {
            return Vec::new();
        }
        vec![chat.add(now, Author::System, MessageKind::AfterHours, text)]
    }

    /// What the platform says of message `seq` of `chat` (R24, R25): taken (with its id for
    /// later status webhooks), delivered, read or failed. A status only moves a message
    /// forward; an old or repeated one changes nothing.
    pub fn delivery(
        &mut self,
        chat_id: &ChatId,
        seq: u64,
        next: Delivery,
        provider_id: Option<String>,
    ) -> Events {
        let Some(message) = self
            .chat_mut(chat_id)
            .ok()
            .and_then(|c| c.messages.get_mut(usize::try_from(seq).ok()?))
        else {
            return Vec::new();
        };
        match &message.delivery {
            Some(now) if now.may_become(&next) => {}
            _ => return Vec::new(),
        }
        message.delivery = Some(next);
        if provider_id.is_some() {
            message.provider_id = provider_id;
        }
        vec![E::DeliveryChanged {
            chat: chat_id.clone(),
            seq,
        }]
    }

    /// Every message to the customer on `channel` that the platform took and that was written
    /// at or before `up_to` moves on to `next` (R25), for a platform's receipt that names a
    /// moment rather than messages (Messenger's watermark). A message still pending, or failed,
    /// is left as it is: the platform never had it. A message written just before `up_to` but
    /// taken by the platform after it would be counted too; the outbox sends within
    /// milliseconds, and a platform's watermark is no finer than that.
    pub fn delivery_up_to(&mut self, channel: Channel, up_to: Timestamp, next: Delivery) -> Events {
        let mut events = Vec::new();
        for chat in self.chats.iter_mut().filter(|c| c.channel == channel) {
            for (seq, message) in chat.messages.iter_mut().enumerate() {
                let taken = matches!(message.delivery, Some(Delivery::Sent | Delivery::Delivered));
                match &message.delivery {
                    Some(now) if taken && message.at <= up_to && now.may_become(&next) => {}
                    _ => continue,
                }
                message.delivery = Some(next.clone());
                events.push(E::DeliveryChanged {
                    chat: chat.id.clone(),
                    seq: seq as u64,
                });
            }
        }
        events
    }

    /// The chat's owner sends a failed message again (R24).
    pub fn retry_delivery(
        &mut self,
        chat_id: &ChatId,
        seq: u64,
        agent: &AgentId,
    ) -> Result<Events, Rejection> {
        let chat = self.chat_mut(chat_id)?;
        if chat.stage.owner() != Some(agent) {
            return Err(Rejection::NotOwner {
                owner: chat.stage.owner().cloned(),
            });
        }
        let state = chat.state();
        let message = usize::try_from(seq)
            .ok()
            .and_then(|i| chat.messages.get_mut(i))
            .ok_or_else(|| Rejection::not_found("message", format!("{chat_id}#{seq}")))?;
        if !matches!(message.delivery, Some(Delivery::Failed { .. })) {
            return Err(Rejection::WrongState {
                chat: chat_id.clone(),
                state,
                why: "only a failed message can be sent again",
            });
        }
        message.delivery = Some(Delivery::Pending);
        Ok(vec![
            E::DeliveryChanged {
                chat: chat_id.clone(),
                seq,
            },
            E::DeliveryRetried {
                chat: chat_id.clone(),
                seq,
            },
        ])
    }

    fn owned_live(&mut self, chat_id: &ChatId, agent: &AgentId) -> Result<&mut Chat, Rejection> {
        let chat = self.chat_mut(chat_id)?;
        if !chat.stage.is_live() {
            return Err(Rejection::WrongState {
                chat: chat_id.clone(),
                state: chat.state(),
                why: "the chat is closed",
            });
        }
        if chat.stage.owner() != Some(agent) {
            return Err(Rejection::NotOwner {
                owner: chat.stage.owner().cloned(),
            });
        }
        Ok(chat)
    }

    /// Panics if R01 does not hold; for tests. (An owner where one is needed, a snooze only
    /// while snoozed: [`Stage`] cannot say otherwise.)
    pub fn check_invariants(&self) {
        let live = self.chats.iter().filter(|c| c.stage.is_live()).count();
        assert!(live <= 1, "R01: customer {} has {live} live chats", self.id);
    }
}

/// Takes `channel` out of `list`; whether it was in.
fn remove(list: &mut Vec<Channel>, channel: Channel) -> bool {
    let before = list.len();
    list.retain(|c| *c != channel);
    list.len() != before
}

fn check_length(text: &str, channel: Channel, policy: &ChannelPolicy) -> Result<(), Rejection> {
    let len = text.chars().count();
    if len > policy.max_len {
        return Err(Rejection::MessageTooLong {
            len,
            max: policy.max_len,
            channel,
        });
    }
    Ok(())
}
