//! The one translator: what an operation's events make the engine do (issue 13).
//!
//! A request takes its customer's lock, calls the core once and hands the events to an
//! [`Effects`], which turns each into everything that follows from it — journal records, pushes,
//! board changes, KPI events, timers, outbound messages, archive watchers — and then, in
//! [`Effects::finish`], delivers what routing did and submits the journal entry, still under
//! the customer's lock. No operation wires a side effect of its own.
//!
//! The router is locked the first time an event needs it (a load change, a queue, a seat's
//! figures) and held until `finish`: pushes that carry loads are made under the lock that
//! counted them, so an agent sees load figures in the order the router counted them, and the
//! offers a freed slot brings come after the push that freed it.

use crate::lock_order::Guard;

use super::timers::Timer;
use super::{journal, Engine};
use crate::clock::Timestamp;
use crate::core::analytics::{Event, EventKind};
use crate::core::{Author, Chat, CloseReason, CustomerEvent, Message};
use crate::core::{Channel, ChatState, CustomerFile, MessageKind, Router, RouterEvent, SnoozeUntil};
use crate::ids::{AgentId, ChatId, QueueId};
use crate::protocol::supervisor::ReopenOutcome;
use crate::protocol::{ActivatedBy, ChatView, OutboundMessage, Push};
use crate::store::Change;

use super::outbound::OutboxItem;

/// The effects of one operation on one customer's file, made as its events are applied.
pub(super) struct Effects<'e> {
    engine: &'e Engine,
    now: Timestamp,
    router: Option<Guard<'e, Router>>,
    routed: Vec<RouterEvent>,
    journal: journal::Entry,
    /// Each chat's view, built once per operation (the file does not change while effects run).
    views: Vec<ChatView>,
    /// Whether any event happened: archive watchers of the file's chats are told.
    changed: bool,
    /// Chats queued while their queue was closed, with that queue: their customers are told
    /// in [`Effects::follow_up`] (R21).
    after_hours: Vec<(ChatId, QueueId)>,
    /// Messages to customers this operation made: in the journal entry's commit, and handed
    /// to the outbox with that commit's receipt at `finish` (R24).
    outgoing: Vec<OutboxItem>,
    #[cfg(debug_assertions)]
    before: Option<journal::Before>,
}

impl Engine {
    /// Effects of an operation on `file`, which it is about to change at `now`.
    pub(super) fn effects<'e>(&'e self, file: &CustomerFile, now: Timestamp) -> Effects<'e> {
        #[cfg(not(debug_assertions))]
        let _ = file;
        Effects {
            engine: self,
            now,
            router: None,
            routed: Vec::new(),
            journal: journal::Entry::default(),
            views: Vec::new(),
            changed: false,
            after_hours: Vec::new(),
            outgoing: Vec::new(),
            #[cfg(debug_assertions)]
            before: self.store.is_some().then(|| journal::Before::of(file)),
        }
    }
}

impl<'e> Effects<'e> {
    /// The router, locked until [`Effects::finish`].
    pub(super) fn router(&mut self) -> &mut Router {
        self.router.get_or_insert_with(|| self.engine.router.lock())
    }

    /// Routing events of a router operation made through [`Effects::router`], delivered at
    /// `finish` (offers after the pushes that freed their slots).
    pub(super) fn routed(&mut self, events: Vec<RouterEvent>) {
        self.routed.extend(events);
    }

    /// The view of `chat` as the operation left it.
    pub(super) fn view(&mut self, file: &CustomerFile, chat: &ChatId) -> ChatView {
        if let Some(view) = self.views.iter().find(|v| &v.id == chat) {
            return view.clone();
        }
        let view = self.engine.chat_view(file, chat);
        self.views.push(view.clone());
        view
    }

    /// What routing asks of the customer's file after the operation's events: the
    /// after-hours reply to a chat that came while its queue was closed (R21), which the core
    /// adds to the chat's history (once per chat) and whose effects are made like any other.
    pub(super) fn follow_up(&mut self, file: &mut CustomerFile) {
        for (chat, queue) in std::mem::take(&mut self.after_hours) {
            let text = self.engine.after_hours_reply(&queue);
            let events = file.reply_after_hours(&chat, text, self.now);
            self.apply(file, &events);
        }
    }

    /// Makes every effect of `events`, which an operation on `file` just returned.
    pub(super) fn apply(&mut self, file: &CustomerFile, events: &[CustomerEvent]) {
        for event in events {
            self.changed = true;
            self.journal.note(event);
            self.one(file, event);
        }
    }

    fn one(&mut self, file: &CustomerFile, event: &CustomerEvent) {
        let engine = self.engine;
        let now = self.now;
        match event {
            CustomerEvent::ProfileLearned
            | CustomerEvent::OptedOut { .. }
            | CustomerEvent::OptOutLifted { .. }
            | CustomerEvent::PushRearmed { .. }
            | CustomerEvent::StickyAgentSet { .. } => {}
            CustomerEvent::ChatStarted { chat, .. } => {
                engine.customers.chat_added(chat.clone(), file.id.clone());
            }
            CustomerEvent::MessageAdded {
                chat: id,
                seq,
                human_agent_tag,
                ..
            } => {
                let Some((chat, message)) = message(file, id, *seq) else {
                    return;
                };
                self.message_added(file, chat, *seq, message, *human_agent_tag);
            }
            CustomerEvent::Queued { chat, sticky } => {
                let card = self.view(file, chat);
                let (arrival, ask) = engine.arrival(file, card, now);
                let events = self.router().enqueue(arrival, &ask, sticky.as_ref(), now);
                for event in &events {
                    if let RouterEvent::ArrivedAfterHours { chat, queue, .. } = event {
                        self.after_hours.push((chat.clone(), queue.clone()));
                    }
                }
                self.routed(events);
            }
            CustomerEvent::Accepted {
                chat,
                agent,
                queue,
                waited,
                to_accept,
                within_sla,
            } => {
                let kind = EventKind::Accepted {
                    waited_ms: waited.num_milliseconds().max(0) as u64,
                    to_accept_ms: to_accept.num_milliseconds().max(0) as u64,
                    within_sla: *within_sla,
                };
                self.kpi_of_queue(agent, channel(file, chat), Some(queue.clone()), kind);
                engine.offer_cards.remove(chat);
                let (load, limit) = self.seat(agent);
                let chat = self.view(file, chat);
                engine.fanout.push(
                    agent,
                    Push::ChatActivated {
                        chat,
                        by: ActivatedBy::Accepted,
                        load,
                        limit,
                        over_limit: false,
                    },
                );
            }
            CustomerEvent::Reopened { chat, by, until } => {
                self.kpi(by, channel(file, chat), EventKind::Reopened);
                let view = self.view(file, chat);
                engine.board_reopened(&view, by, now);
                engine.timers.schedule(
                    *until,
                    Timer::ReopenExpiry {
                        customer: file.id.clone(),
                        chat: chat.clone(),
                        reopened_at: now,
                    },
                );
                engine.fanout.push(by, Push::ChatReopened { chat: view });
            }
            CustomerEvent::ReopenAnswered { chat, agent } => {
                let channel = channel(file, chat);
                engine.board_reopen_ended(file, chat, ReopenOutcome::Replied);
                self.kpi(agent, channel, EventKind::ReopenReplied);
                let (load, limit, over_limit) = match self.router().load_up(agent, channel, now) {
                    Ok((change, routed)) => {
                        self.routed(routed);
                        (change.load, change.limit, change.over_limit)
                    }
                    Err(_) => (0, 0, false),
                };
                if over_limit {
                    self.kpi(agent, channel, EventKind::LimitOverride);
                }
                let chat = self.view(file, chat);
                engine.fanout.push(
                    agent,
                    Push::ChatActivated {
                        chat,
                        by: ActivatedBy::CustomerReplied,
                        load,
                        limit,
                        over_limit,
                    },
                );
            }
            CustomerEvent::Snoozed { chat, owner, until } => {
                if let SnoozeUntil::Time { at } = until {
                    engine.timers.schedule(
                        *at,
                        Timer::SnoozeEnd {
                            customer: file.id.clone(),
                            chat: chat.clone(),
                        },
                    );
                }
                let chat = self.view(file, chat);
                engine.fanout.push(owner, Push::ChatUpdated { chat });
            }
            CustomerEvent::SnoozeEnded { chat, owner } => {
                let (load, limit) = self.seat(owner);
                let chat = self.view(file, chat);
                engine.fanout.push(
                    owner,
                    Push::ChatActivated {
                        chat,
                        by: ActivatedBy::SnoozeEnded,
                        load,
                        limit,
                        over_limit: false,
                    },
                );
            }
            CustomerEvent::Transferred { chat, from, to } => {
                // The router has moved the load (the request did, through `router`).
                let channel = channel(file, chat);
                let (load, limit) = self.seat(to);
                let over_limit = self.router().seat(to).is_some_and(|s| s.is_over(channel));
                if over_limit {
                    self.kpi(to, channel, EventKind::LimitOverride);
                }
                engine.fanout.push(
                    from,
                    Push::ChatTransferred {
                        chat_id: chat.clone(),
                        to: to.clone(),
                    },
                );
                let chat = self.view(file, chat);
                engine.fanout.push(
                    to,
                    Push::ChatActivated {
                        chat,
                        by: ActivatedBy::Transfer,
                        load,
                        limit,
                        over_limit,
                    },
                );
            }
            CustomerEvent::TemplatePushed {
                chat,
                agent,
                template,
                params,
            } => {
                self.kpi(agent, channel(file, chat), EventKind::TemplatePushed);
                let mut message =
                    outbound_message(file, chat, MessageKind::Template, template.clone(), Some(agent));
                message.params = params.clone();
                // The history's template message (added with this event) shows its delivery.
                let seq = file.chat(chat).and_then(|c| {
                    c.messages
                        .iter()
                        .rposition(|m| m.kind == MessageKind::Template)
                        .map(|i| i as u64)
                });
                self.send_out(file, seq, message);
            }
            CustomerEvent::DeliveryChanged { chat, seq } => {
                self.journal.delivery(chat.clone(), *seq);
                let found = file.chat(chat).and_then(|c| {
                    let message = c.messages.get(usize::try_from(*seq).ok()?)?;
                    Some((c.stage.owner()?.clone(), message.delivery.clone()?))
                });
                if let Some((owner, delivery)) = found {
                    engine.fanout.push(
                        &owner,
                        Push::MessageStatus {
                            chat_id: chat.clone(),
                            seq: *seq,
                            delivery: (&delivery).into(),
                        },
                    );
                }
            }
            CustomerEvent::DeliveryRetried { chat, seq } => {
                let failed = engine
                    .failed_outbox
                    .remove(&(chat.clone(), *seq))
                    .map(|(_, item)| item);
                let message = match &failed {
                    Some(item) => item.message.clone(),
                    // Failed before the outbox kept failed messages: rebuilt from the history.
                    None => match file
                        .chat(chat)
                        .and_then(|c| c.messages.get(usize::try_from(*seq).ok()?))
                    {
                        Some(m) => {
                            let agent = match &m.author {
                                Author::Agent { agent } => Some(agent),
                                _ => None,
                            };
                            outbound_message(file, chat, m.kind, m.text.clone(), agent)
                        }
                        None => return,
                    },
                };
                if let Some(item) = failed {
                    self.journal.store_also(Change::OutboxDone { id: item.id });
                }
                self.send_out(file, Some(*seq), message);
            }
            CustomerEvent::Closed {
                chat,
                prior,
                owner,
                reason,
            } => self.closed(file, chat, *prior, owner.as_ref(), *reason),
        }
    }

    fn message_added(
        &mut self,
        file: &CustomerFile,
        chat: &Chat,
        seq: u64,
        message: &Message,
        human_agent_tag: bool,
    ) {
        let engine = self.engine;
        match (&message.author, message.kind) {
            (Author::Customer, _) => {
                // Its owner reads it; a chat it closed (#STOP) or that waits has no reader.
                if let Some(owner) = chat.stage.live_owner() {
                    engine.fanout.push(
                        owner,
                        Push::CustomerMessage {
                            chat_id: chat.id.clone(),
                            message: message.into(),
                        },
                    );
                }
            }
            (Author::Agent { agent }, MessageKind::Text) => {
                engine.fanout.push(
                    agent,
                    Push::MessageSent {
                        chat_id: chat.id.clone(),
                        message: message.into(),
                    },
                );
                let mut outbound = outbound_message(
                    file,
                    &chat.id,
                    MessageKind::Text,
                    message.text.clone(),
                    Some(agent),
                );
                outbound.human_agent_tag = human_agent_tag;
                self.send_out(file, Some(seq), outbound);
            }
            // The template's own event sends it, with its name and parameters.
            (Author::Agent { .. }, _) => {}
            (Author::System, MessageKind::AfterHours) => {
                self.send_out(
                    file,
                    Some(seq),
                    outbound_message(
                        file,
                        &chat.id,
                        MessageKind::AfterHours,
                        message.text.clone(),
                        None,
                    ),
                );
            }
            (Author::System, _) => {
                let notice = engine.config.reopen_notice.clone();
                self.send_out(
                    file,
                    Some(seq),
                    outbound_message(file, &chat.id, MessageKind::Notice, notice, None),
                );
            }
        }
    }

    fn closed(
        &mut self,
        file: &CustomerFile,
        chat: &ChatId,
        prior: ChatState,
        owner: Option<&AgentId>,
        reason: CloseReason,
    ) {
        let engine = self.engine;
        let now = self.now;
        // Told before the offer that the freed slot may bring (delivered at `finish`).
        if let Some(owner) = owner {
            engine.fanout.push(
                owner,
                Push::ChatClosed {
                    chat_id: chat.clone(),
                    reason: reason.into(),
                },
            );
        }
        match prior {
            ChatState::Active | ChatState::Snoozed => {
                if let Some(owner) = owner {
                    let events = self.router().load_down(owner, channel(file, chat), now);
                    self.routed(events);
                }
            }
            ChatState::Queued => {
                let events = self.router().withdraw(chat, now);
                self.routed(events);
                engine.offer_cards.remove(chat);
            }
            ChatState::Reopened => {
                let outcome = match reason {
                    // A #STOP answering a reopen is a declined chat (R08, R14).
                    CloseReason::Stop => ReopenOutcome::Declined,
                    CloseReason::Timeout => ReopenOutcome::Expired,
                    CloseReason::Agent | CloseReason::Supervisor => ReopenOutcome::Closed,
                };
                engine.board_reopen_ended(file, chat, outcome);
                if let (CloseReason::Stop, Some(owner)) = (reason, owner) {
                    self.kpi(owner, channel(file, chat), EventKind::ReopenDeclined);
                }
            }
            ChatState::Bot | ChatState::Closed => {}
        }
    }

    /// A message to the customer: an outbox item in this operation's commit, handed to the
    /// outbox once that commit is on disk (R24).
    fn send_out(&mut self, file: &CustomerFile, seq: Option<u64>, message: OutboundMessage) {
        let id = self.engine.outbound.next_id();
        let item = OutboxItem {
            id,
            customer: file.id.clone(),
            seq,
            message,
            key: super::outbox::idempotency_key(self.engine.ws(), id, self.engine.boot),
            attempts: 0,
            next_at: None,
        };
        if self.engine.store.is_some() {
            self.journal.store_also(Change::Outbox(item.record()));
        }
        self.outgoing.push(item);
    }

    /// A change the operation makes beyond what its events say (the outbox's bookkeeping),
    /// stored in the same commit.
    pub(super) fn store_also(&mut self, change: Change) {
        if self.engine.store.is_some() {
            self.journal.store_also(change);
        }
    }

    /// Counts a KPI event (R14): in memory now, in the store with the operation's changes.
    pub(super) fn kpi(&mut self, agent: &AgentId, channel: Channel, kind: EventKind) {
        self.kpi_of_queue(agent, channel, None, kind);
    }

    /// [`Effects::kpi`] of an event of routing, counted for its queue too (R20).
    fn kpi_of_queue(&mut self, agent: &AgentId, channel: Channel, queue: Option<QueueId>, kind: EventKind) {
        let event = Event {
            at: self.now,
            agent: agent.clone(),
            channel,
            queue,
            kind,
        };
        if self.engine.store.is_some() {
            self.journal.kpi(event.clone());
        }
        self.engine.analytics.record_new(event);
        self.engine.supervision.nudge();
    }

    /// An agent's (load, limit), read under the router lock this operation holds.
    fn seat(&mut self, agent: &AgentId) -> (u32, u32) {
        self.router().seat(agent).map_or((0, 0), |s| (s.load, s.limit))
    }

    /// Delivers what routing did, tells archive watchers, and submits the journal entry; the
    /// caller still holds `file`'s lock.
    // `mut` only for the debug-build check of the journal against the diff.
    #[cfg_attr(not(debug_assertions), allow(unused_mut))]
    pub(super) fn finish(mut self, file: &CustomerFile) {
        #[cfg(debug_assertions)]
        let before = self.before.take();
        let Effects {
            engine,
            now,
            router,
            routed,
            journal,
            changed,
            outgoing,
            ..
        } = self;
        if let Some(mut router) = router {
            engine.deliver(&mut router, routed);
        }
        if changed {
            engine.archive_changed(file, now);
        }
        if let Some(store) = &engine.store {
            let changes = journal.changes(file);
            #[cfg(debug_assertions)]
            if let Some(before) = &before {
                before.check(file, &changes);
            }
            if !changes.is_empty() {
                // Callers wait on a write point; the outbox waits on the receipt (R24).
                let receipt = store.submit(changes);
                engine.outbound.dispatch(outgoing, Some(receipt));
            }
        } else {
            engine.outbound.dispatch(outgoing, None);
        }
    }
}

/// The chat and message an event names, as the operation left them.
fn message<'f>(file: &'f CustomerFile, chat: &ChatId, seq: u64) -> Option<(&'f Chat, &'f Message)> {
    let chat = file.chat(chat)?;
    let message = chat.messages.get(usize::try_from(seq).ok()?)?;
    Some((chat, message))
}

fn channel(file: &CustomerFile, chat: &ChatId) -> Channel {
    file.chat(chat).map_or(Channel::Webchat, |c| c.channel)
}

/// A message for the customer of `file`, on the channel of `chat_id`.
pub(super) fn outbound_message(
    file: &CustomerFile,
    chat_id: &ChatId,
    kind: MessageKind,
    text: String,
    agent: Option<&AgentId>,
) -> OutboundMessage {
    let channel = channel(file, chat_id);
    OutboundMessage {
        channel: channel.into(),
        to: file.address(channel).unwrap_or_default().to_owned(),
        customer_id: file.id.clone(),
        chat_id: chat_id.clone(),
        kind: kind.into(),
        text,
        params: Vec::new(),
        human_agent_tag: false,
        agent: agent.cloned(),
        // The platform's id of the customer's last message: an email reply threads under it.
        // Only the last one is looked at: on channels whose messages carry no id, looking
        // further back walked the chat's whole history for every message sent (a twentieth
        // of the engine's CPU in the reopen storm).
        reply_to: file.chat(chat_id).and_then(|chat| {
            chat.messages
                .iter()
                .rev()
                .find(|m| m.author == Author::Customer)
                .and_then(|m| m.provider_id.clone())
        }),
        // An engine does not know which workspace it is: its webhook connector says so.
        workspace: None,
    }
}
