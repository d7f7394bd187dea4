//! Queues, offers and agent capacity (R06, R10, R12).
//!
//! The router knows every agent's presence, limit and load, and every chat waiting for an
//! agent. It decides who gets offered what; it never sees message content.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::agent::Presence;
use super::rejection::Rejection;
use crate::clock::Timestamp;
use crate::ids::{AgentId, ChatId, CustomerId, QueueId};

/// An agent's capacity, as routing sees it.
#[derive(Clone, Debug)]
pub struct Seat {
    /// How many chats it may hold active.
    pub limit: u32,
    /// Whether it takes offers.
    pub presence: Presence,
    /// Active and snoozed chats it owns.
    pub load: u32,
    /// Offers it has not answered yet; they hold a slot.
    pub offered: u32,
    /// Since it last came online or last had a chat stop counting toward its load; the
    /// longest idle is preferred on ties.
    pub idle_since: Timestamp,
    /// The queues it serves; empty means all.
    pub queues: Vec<QueueId>,
    /// How many times a chat took it over its limit (R05, forced transfer).
    pub overrides: u64,
}

impl Seat {
    fn has_room(&self) -> bool {
        self.presence == Presence::Online && self.load + self.offered < self.limit
    }

    fn serves(&self, queue: &QueueId) -> bool {
        self.queues.is_empty() || self.queues.contains(queue)
    }
}

/// A chat waiting for an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// The chat.
    pub chat: ChatId,
    /// Its customer.
    pub customer: CustomerId,
    /// The queue it waits in.
    pub queue: QueueId,
    /// Since when it has waited.
    pub since: Timestamp,
    /// Agents that declined it; it is offered to them again only once every online agent
    /// serving its queue has declined it. (A lapsed offer is no decline: the agent is set
    /// away instead.)
    pub declined_by: Vec<AgentId>,
}

/// A chat offered to one agent, holding one of its slots until answered.
#[derive(Clone, Debug)]
pub struct Offer {
    /// What is offered.
    pub waiting: Waiting,
    /// To whom.
    pub agent: AgentId,
    /// When.
    pub offered_at: Timestamp,
    /// When it lapses (the accept timeout).
    pub expires_at: Timestamp,
}

/// Why an offer was taken back.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawReason {
    /// Not accepted within the accept timeout; the agent was set away.
    Timeout,
    /// The chat ended (the customer wrote #STOP).
    ChatClosed,
    /// The agent went away or offline.
    AgentUnavailable,
    /// The agent's limit was lowered below what its offers needed.
    LimitLowered,
}

/// Something routing did that someone must be told about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouterEvent {
    /// A chat was offered to an agent.
    Offered {
        /// The chat.
        chat: ChatId,
        /// Its customer.
        customer: CustomerId,
        /// The agent.
        agent: AgentId,
        /// The queue it came from.
        queue: QueueId,
        /// When the offer lapses.
        expires_at: Timestamp,
    },
    /// An offer was taken back.
    OfferWithdrawn {
        /// The chat.
        chat: ChatId,
        /// The agent it had been offered to.
        agent: AgentId,
        /// Why.
        reason: WithdrawReason,
    },
    /// An agent's presence changed by the engine's hand (accept timeout, grace period).
    PresenceChanged {
        /// The agent.
        agent: AgentId,
        /// The new presence.
        presence: Presence,
    },
}

/// The result of an accepted offer, with the figures analytics wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The queue the chat came from.
    pub queue: QueueId,
    /// Time from entering the queue to the accept.
    pub waited: Duration,
    /// Time from the offer to the accept.
    pub to_accept: Duration,
}

/// Whether a load change took the agent over its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadChange {
    /// The load after the change.
    pub load: u32,
    /// The limit.
    pub limit: u32,
    /// Whether this change went over the limit (and was counted as an override).
    pub over_limit: bool,
}

/// How a queue changed, for supervisors who watch it (R15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueChange {
    /// A chat joined its queue at `position` (1 = next): new, or back after an offer.
    Entered {
        /// The chat, as it waits.
        waiting: Waiting,
        /// Where it went in.
        position: usize,
    },
    /// A chat left its queue.
    Left {
        /// The queue.
        queue: QueueId,
        /// The chat.
        chat: ChatId,
        /// To whom it was offered; none when it ended while waiting.
        offered_to: Option<AgentId>,
    },
}

/// What changed since the last [`Router::take_changes`]: seats to show again, queue moves.
#[derive(Debug, Default)]
pub struct Changes {
    /// Agents whose seat changed, in order, possibly more than once.
    pub seats: Vec<AgentId>,
    /// Queue moves, in order.
    pub queues: Vec<QueueChange>,
}

/// Queues, offers and capacity.
#[derive(Debug)]
pub struct Router {
    seats: HashMap<AgentId, Seat>,
    queues: BTreeMap<QueueId, VecDeque<Waiting>>,
    offers: HashMap<ChatId, Offer>,
    accept_timeout: Duration,
    overrides: u64,
    changes: Changes,
}

impl Router {
    /// An empty router whose offers lapse after `accept_timeout`.
    pub fn new(accept_timeout: Duration) -> Self {
        Self {
            seats: HashMap::new(),
            queues: BTreeMap::new(),
            offers: HashMap::new(),
            accept_timeout,
            overrides: 0,
            changes: Changes::default(),
        }
    }

    /// What changed since the last call: every seat and queue mutation is logged until taken.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// The seat of `agent`, noted as changed.
    fn touch(&mut self, agent: &AgentId) -> Option<&mut Seat> {
        let seat = self.seats.get_mut(agent)?;
        self.changes.seats.push(agent.clone());
        Some(seat)
    }

    /// Declares a queue, so that it is listed while empty.
    pub fn add_queue(&mut self, queue: QueueId) {
        self.queues.entry(queue).or_default();
    }

    /// Adds an agent, offline, or updates its limit and queues if it exists.
    pub fn upsert_seat(
        &mut self,
        agent: &AgentId,
        limit: u32,
        queues: Vec<QueueId>,
        now: Timestamp,
    ) -> Vec<RouterEvent> {
        match self.touch(agent) {
            Some(seat) => {
                seat.queues = queues;
                // Like a live limit change: offers that no longer fit are taken back.
                return self.set_limit(agent, limit, now).unwrap_or_default();
            }
            None => {
                self.changes.seats.push(agent.clone());
                self.seats.insert(
                    agent.clone(),
                    Seat {
                        limit,
                        presence: Presence::Offline,
                        load: 0,
                        offered: 0,
                        idle_since: now,
                        queues,
                        overrides: 0,
                    },
                );
            }
        }
        self.route(now)
    }

    /// Takes an agent out of routing: offline, its pending offers back in the queue. The seat
    /// itself stays, so that the load of the chats it still owns keeps being counted (and is
    /// there again if the agent is re-added).
    pub fn retire_seat(&mut self, agent: &AgentId, now: Timestamp) -> Vec<RouterEvent> {
        self.set_presence(agent, Presence::Offline, now)
            .unwrap_or_default()
    }

    /// One agent's seat.
    pub fn seat(&self, agent: &AgentId) -> Option<&Seat> {
        self.seats.get(agent)
    }

    /// Every seat.
    pub fn seats(&self) -> impl Iterator<Item = (&AgentId, &Seat)> {
        self.seats.iter()
    }

    /// Every queue with its waiting chats, oldest first. Offered chats are not listed.
    pub fn queues(&self) -> impl Iterator<Item = (&QueueId, &VecDeque<Waiting>)> {
        self.queues.iter()
    }

    /// Every pending offer.
    pub fn offers(&self) -> impl Iterator<Item = &Offer> {
        self.offers.values()
    }

    /// The pending offer of `chat`.
    pub fn offer(&self, chat: &ChatId) -> Option<&Offer> {
        self.offers.get(chat)
    }

    /// Over-limit events since start.
    pub fn overrides(&self) -> u64 {
        self.overrides
    }

    /// Where `chat` waits: its queue and 1-based position.
    pub fn position(&self, chat: &ChatId) -> Option<(QueueId, usize)> {
        self.queues.iter().find_map(|(q, waiting)| {
            waiting
                .iter()
                .position(|w| &w.chat == chat)
                .map(|i| (q.clone(), i + 1))
        })
    }

    /// Changes an agent's limit live; lowering it never takes a chat away (R06), but takes
    /// back the newest pending offers that no longer fit, so that accepting cannot go over it.
    pub fn set_limit(
        &mut self,
        agent: &AgentId,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<RouterEvent>, Rejection> {
        let seat = self.seat_mut(agent)?;
        seat.limit = limit;
        let excess = (seat.load + seat.offered).saturating_sub(limit).min(seat.offered);
        let mut newest: Vec<(Timestamp, ChatId)> = self
            .offers
            .values()
            .filter(|o| &o.agent == agent)
            .map(|o| (o.offered_at, o.waiting.chat.clone()))
            .collect();
        newest.sort();
        let mut events = Vec::new();
        for (_, chat) in newest.into_iter().rev().take(excess as usize) {
            let offer = self.take_offer(&chat, agent)?;
            // Not a decline: the agent may get the chat again once it has room.
            self.requeue_front(offer.waiting, None);
            events.push(RouterEvent::OfferWithdrawn {
                chat,
                agent: agent.clone(),
                reason: WithdrawReason::LimitLowered,
            });
        }
        events.extend(self.route(now));
        Ok(events)
    }

    /// Sets an agent's presence; going away takes back its pending offers.
    pub fn set_presence(
        &mut self,
        agent: &AgentId,
        presence: Presence,
        now: Timestamp,
    ) -> Result<Vec<RouterEvent>, Rejection> {
        let seat = self.seat_mut(agent)?;
        if seat.presence == presence {
            return Ok(Vec::new());
        }
        if presence == Presence::Online {
            seat.idle_since = now;
        }
        seat.presence = presence;
        // Told under the router's lock, so that every connection sees presence in the order
        // the router changed it.
        let mut events = vec![RouterEvent::PresenceChanged {
            agent: agent.clone(),
            presence,
        }];
        if presence != Presence::Online {
            events.extend(self.withdraw_offers_of(agent, WithdrawReason::AgentUnavailable));
        }
        events.extend(self.route(now));
        Ok(events)
    }

    /// Puts a chat in its queue, or offers it straight to its sticky agent when that agent is
    /// online with room (R10), then routes.
    pub fn enqueue(
        &mut self,
        waiting: Waiting,
        sticky: Option<&AgentId>,
        now: Timestamp,
    ) -> Vec<RouterEvent> {
        let sticky = sticky.filter(|a| {
            self.seats
                .get(*a)
                .is_some_and(|s| s.has_room() && s.serves(&waiting.queue))
        });
        let mut events = Vec::new();
        match sticky {
            Some(agent) => events.push(self.offer_to(waiting, agent.clone(), now)),
            None => {
                let queue = self.queues.entry(waiting.queue.clone()).or_default();
                queue.push_back(waiting.clone());
                let position = queue.len();
                self.changes
                    .queues
                    .push(QueueChange::Entered { waiting, position });
            }
        }
        events.extend(self.route(now));
        events
    }

    /// The agent takes an offered chat: its slot turns from offer into load.
    pub fn accept(&mut self, chat: &ChatId, agent: &AgentId, now: Timestamp) -> Result<Accepted, Rejection> {
        let offer = self.take_offer(chat, agent)?;
        let seat = self.seat_mut(agent)?;
        seat.load += 1;
        Ok(Accepted {
            queue: offer.waiting.queue,
            waited: now - offer.waiting.since,
            to_accept: now - offer.offered_at,
        })
    }

    /// The agent declines; the chat goes to the front of its queue and on to someone else.
    pub fn decline(
        &mut self,
        chat: &ChatId,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<RouterEvent>, Rejection> {
        let offer = self.take_offer(chat, agent)?;
        self.requeue_front(offer.waiting, Some(agent.clone()));
        Ok(self.route(now))
    }

    /// An offer's accept timeout ran out: the silent agent is set away and the chat goes on
    /// (R06). Does nothing if the offer was answered meanwhile.
    pub fn expire_offer(&mut self, chat: &ChatId, agent: &AgentId, now: Timestamp) -> Vec<RouterEvent> {
        let due = self
            .offers
            .get(chat)
            .is_some_and(|o| &o.agent == agent && o.expires_at <= now);
        if !due {
            return Vec::new();
        }
        // Away, and its other offers go too: an away agent holds none.
        let mut events = Vec::new();
        for mut e in self.set_presence(agent, Presence::Away, now).unwrap_or_default() {
            if let RouterEvent::OfferWithdrawn { chat: c, reason, .. } = &mut e {
                if c == chat {
                    *reason = WithdrawReason::Timeout;
                }
            }
            events.push(e);
        }
        events.extend(self.route(now));
        events
    }

    /// The chat ended while waiting or offered; take it out of routing.
    pub fn withdraw(&mut self, chat: &ChatId, now: Timestamp) -> Vec<RouterEvent> {
        for waiting in self.queues.values_mut() {
            if let Some(i) = waiting.iter().position(|w| &w.chat == chat) {
                if let Some(w) = waiting.remove(i) {
                    self.changes.queues.push(QueueChange::Left {
                        queue: w.queue,
                        chat: w.chat,
                        offered_to: None,
                    });
                }
                return Vec::new();
            }
        }
        let Some(offer) = self.offers.remove(chat) else {
            return Vec::new();
        };
        if let Some(seat) = self.touch(&offer.agent) {
            seat.offered -= 1;
        }
        let mut events = vec![RouterEvent::OfferWithdrawn {
            chat: chat.clone(),
            agent: offer.agent,
            reason: WithdrawReason::ChatClosed,
        }];
        events.extend(self.route(now));
        events
    }

    /// A chat became active for `agent` outside an offer (R05, a snooze ending does not count
    /// since snoozed chats keep their slot). May take it over its limit; that is counted.
    pub fn load_up(&mut self, agent: &AgentId) -> Result<LoadChange, Rejection> {
        let seat = self.seat_mut(agent)?;
        seat.load += 1;
        let over_limit = seat.load > seat.limit;
        if over_limit {
            seat.overrides += 1;
        }
        let change = LoadChange {
            load: seat.load,
            limit: seat.limit,
            over_limit,
        };
        if over_limit {
            self.overrides += 1;
        }
        Ok(change)
    }

    /// Counts a chat that `agent` already owned before a restart toward its load; unlike
    /// [`Router::load_up`] this is not a new assignment, so it is never an override. False if
    /// the agent has no seat (it was removed from the configuration).
    pub fn restore_load(&mut self, agent: &AgentId) -> bool {
        match self.touch(agent) {
            Some(seat) => {
                seat.load += 1;
                true
            }
            None => false,
        }
    }

    /// A chat of `agent` stopped counting (closed); its slot is free for the queue (R12).
    pub fn load_down(&mut self, agent: &AgentId, now: Timestamp) -> Vec<RouterEvent> {
        if let Some(seat) = self.touch(agent) {
            seat.load = seat.load.saturating_sub(1);
            seat.idle_since = now;
        }
        self.route(now)
    }

    /// Moves one chat's load from `from` to `to` (R12). Without `force` the target's limit
    /// applies; a forced transfer over it is counted as an override.
    pub fn transfer(
        &mut self,
        from: &AgentId,
        to: &AgentId,
        force: bool,
        now: Timestamp,
    ) -> Result<(LoadChange, Vec<RouterEvent>), Rejection> {
        let target = self
            .seats
            .get(to)
            .ok_or_else(|| Rejection::not_found("agent", to))?;
        if target.presence != Presence::Online {
            return Err(Rejection::AgentUnavailable { agent: to.clone() });
        }
        if !force && target.load + target.offered >= target.limit {
            return Err(Rejection::OverLimit {
                agent: to.clone(),
                load: target.load,
                limit: target.limit,
            });
        }
        let change = self.load_up(to)?;
        Ok((change, self.load_down(from, now)))
    }

    fn seat_mut(&mut self, agent: &AgentId) -> Result<&mut Seat, Rejection> {
        self.touch(agent)
            .ok_or_else(|| Rejection::not_found("agent", agent))
    }

    fn take_offer(&mut self, chat: &ChatId, agent: &AgentId) -> Result<Offer, Rejection> {
        match self.offers.get(chat) {
            Some(o) if &o.agent == agent => {}
            _ => return Err(Rejection::not_found("offer of chat", chat)),
        }
        let offer = self.offers.remove(chat).expect("checked above");
        if let Some(seat) = self.touch(agent) {
            seat.offered -= 1;
        }
        Ok(offer)
    }

    fn requeue_front(&mut self, mut waiting: Waiting, declined_by: Option<AgentId>) {
        if let Some(agent) = declined_by.filter(|a| !waiting.declined_by.contains(a)) {
            waiting.declined_by.push(agent);
        }
        self.queues
            .entry(waiting.queue.clone())
            .or_default()
            .push_front(waiting.clone());
        self.changes
            .queues
            .push(QueueChange::Entered { waiting, position: 1 });
    }

    fn withdraw_offers_of(&mut self, agent: &AgentId, reason: WithdrawReason) -> Vec<RouterEvent> {
        let mut chats: Vec<ChatId> = self
            .offers
            .values()
            .filter(|o| &o.agent == agent)
            .map(|o| o.waiting.chat.clone())
            .collect();
        // The oldest must end up first in its queue.
        chats.sort_by_key(|c| std::cmp::Reverse(self.offers[c].waiting.since));
        chats
            .into_iter()
            .map(|chat| {
                let offer = self.take_offer(&chat, agent).expect("listed above");
                // Not a decline: the agent gets it again once back with room.
                self.requeue_front(offer.waiting, None);
                RouterEvent::OfferWithdrawn {
                    chat,
                    agent: agent.clone(),
                    reason,
                }
            })
            .collect()
    }

    fn offer_to(&mut self, waiting: Waiting, agent: AgentId, now: Timestamp) -> RouterEvent {
        let expires_at = now + self.accept_timeout;
        if let Some(seat) = self.touch(&agent) {
            seat.offered += 1;
        }
        let event = RouterEvent::Offered {
            chat: waiting.chat.clone(),
            customer: waiting.customer.clone(),
            agent: agent.clone(),
            queue: waiting.queue.clone(),
            expires_at,
        };
        self.offers.insert(
            waiting.chat.clone(),
            Offer {
                waiting,
                agent,
                offered_at: now,
                expires_at,
            },
        );
        event
    }

    /// The best agent for a chat of `queue`: online with room, serving the queue; least loaded
    /// first, then longest idle (R06). Agents who declined the chat are passed over while any
    /// other online agent serves the queue; once all have declined, it goes round again
    /// rather than waiting for ever.
    fn pick_agent(&self, queue: &QueueId, declined: &[AgentId]) -> Option<AgentId> {
        let everyone_declined = !declined.is_empty()
            && self
                .seats
                .iter()
                .filter(|(_, s)| s.presence == Presence::Online && s.serves(queue))
                .all(|(a, _)| declined.contains(a));
        self.seats
            .iter()
            .filter(|(a, s)| s.has_room() && s.serves(queue) && (everyone_declined || !declined.contains(a)))
            .min_by(|(a1, s1), (a2, s2)| {
                (s1.load + s1.offered, s1.idle_since, *a1).cmp(&(s2.load + s2.offered, s2.idle_since, *a2))
            })
            .map(|(a, _)| a.clone())
    }

    /// Offers waiting chats, oldest first across queues, while any agent has room.
    fn route(&mut self, now: Timestamp) -> Vec<RouterEvent> {
        let mut events = Vec::new();
        while self.seats.values().any(Seat::has_room) {
            let mut best: Option<(Timestamp, QueueId, usize, AgentId)> = None;
            for (queue, waiting) in &self.queues {
                for (i, w) in waiting.iter().enumerate() {
                    if best.as_ref().is_some_and(|b| w.since >= b.0) {
                        break;
                    }
                    if let Some(agent) = self.pick_agent(queue, &w.declined_by) {
                        best = Some((w.since, queue.clone(), i, agent));
                        break;
                    }
                }
            }
            let Some((_, queue, i, agent)) = best else { break };
            let waiting = self
                .queues
                .get_mut(&queue)
                .and_then(|q| q.remove(i))
                .expect("found above");
            self.changes.queues.push(QueueChange::Left {
                queue: waiting.queue.clone(),
                chat: waiting.chat.clone(),
                offered_to: Some(agent.clone()),
            });
            events.push(self.offer_to(waiting, agent, now));
        }
        events
    }

    /// Panics if the router's books do not balance; for tests.
    pub fn check_invariants(&self) {
        for (agent, seat) in &self.seats {
            let offered = self.offers.values().filter(|o| &o.agent == agent).count() as u32;
            assert_eq!(seat.offered, offered, "offers held by {agent}");
        }
        for offer in self.offers.values() {
            assert!(
                self.position(&offer.waiting.chat).is_none(),
                "offered chat also queued"
            );
        }
        let mut seen = std::collections::HashSet::new();
        for waiting in self.queues.values() {
            for w in waiting {
                assert!(seen.insert(w.chat.clone()), "chat {} queued twice", w.chat);
            }
        }
    }
}
