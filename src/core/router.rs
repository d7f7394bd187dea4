//! Queues, offers and agent capacity (R06, R10, R12, R19–R22).
//!
//! The router knows every agent's presence, limits, load and skills, every queue's plan, and
//! every chat waiting for an agent. It decides who gets offered what; it never sees message
//! content.
//!
//! # How it decides
//! At rest, no agent with room is eligible for any chat that waits in an open queue: had one
//! been, the chat would have been offered. Every operation that could break that settles it
//! again, looking only where something changed:
//! - a chat that starts waiting (new, back after an offer, on to a wider step) goes to the
//!   best eligible agent with room: the best match for its requirements (the highest levels
//!   in them), then the least loaded, then the longest idle (R06, R19);
//! - an agent that gains room (a chat closed, back online, a higher limit, new skills) takes
//!   the chat of highest effective priority it is eligible for, then the oldest (R20): one
//!   look at each bucket's first chat (`waitlist.rs`), not at every chat;
//! - the rare changes that can make many chats eligible at once (a queue opening, an agent
//!   leaving so that a declined chat may go round again) settle every agent with room.
//!
//! Eligible means: online, below its overall limit and the limit of the chat's channel (R22),
//! serving the chat's queue, holding every skill the chat requires at its current step at
//! least at the level required (R19), and not having declined the chat unless everyone
//! eligible has (R06). A closed queue's chats wait (R21).

mod free;
mod waitlist;

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::Duration;

use self::free::FreeSeats;
use self::waitlist::{BucketKey, Needs, SkillNo, Waitlist};
use super::agent::Presence;
use super::channel::Channel;
use super::queue::{QueuePlan, RoutingAsk, Skills, Ticket};
use super::rejection::Rejection;
use crate::clock::Timestamp;
use crate::ids::{AgentId, ChatId, CustomerId, QueueId};

/// How many recent answers of a queue its estimated wait is worked out from (R20).
const ANSWERS_KEPT: usize = 50;

/// What an agent brings to routing, from its profile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeatSpec {
    /// How many chats it may hold active.
    pub limit: u32,
    /// The queues it serves; empty means all.
    pub queues: Vec<QueueId>,
    /// Its skills with their levels (R19).
    pub skills: Skills,
    /// Its limit per channel, where it has one (R22).
    pub channel_limits: BTreeMap<Channel, u32>,
}

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
    /// How many times a chat took it over its limit or a channel's (R05, R22, forced transfer).
    pub overrides: u64,
    /// Its skills (R19).
    pub skills: Skills,
    /// Its limits per channel (R22).
    pub channel_limits: BTreeMap<Channel, u32>,
    /// Chats it holds or is offered, per channel (R22).
    pub channel_load: BTreeMap<Channel, u32>,
    /// Its skill levels by skill number, for quick checks.
    levels: Vec<u8>,
}

impl Seat {
    fn has_room(&self) -> bool {
        self.presence == Presence::Online && self.load + self.offered < self.limit
    }

    /// Its place among free agents that match a chat equally well.
    fn standing(&self) -> free::Standing {
        (self.load + self.offered, self.idle_since)
    }

    /// Whether it holds more than its overall limit, or more than its limit on `channel`
    /// (R05, R22, forced transfers).
    pub fn is_over(&self, channel: Channel) -> bool {
        let on_channel = self.channel_load.get(&channel).copied().unwrap_or(0);
        self.load > self.limit || self.channel_limits.get(&channel).is_some_and(|l| on_channel > *l)
    }

    fn has_channel_room(&self, channel: Channel) -> bool {
        self.channel_limits
            .get(&channel)
            .is_none_or(|limit| self.channel_load.get(&channel).copied().unwrap_or(0) < *limit)
    }

    fn serves(&self, queue: &QueueId) -> bool {
        self.queues.is_empty() || self.queues.contains(queue)
    }

    fn holds(&self, needs: &Needs) -> bool {
        needs
            .iter()
            .all(|(skill, level)| self.levels.get(usize::from(*skill)).is_some_and(|l| l >= level))
    }

    /// How well it matches `needs`: the sum of its levels in them (R19, best match first).
    fn match_score(&self, needs: &Needs) -> u32 {
        needs
            .iter()
            .map(|(skill, _)| u32::from(self.levels.get(usize::from(*skill)).copied().unwrap_or(0)))
            .sum()
    }

    /// Whether a chat of `key` may be offered to it, declines aside.
    fn eligible(&self, key: &BucketKey) -> bool {
        self.has_room()
            && self.serves(&key.queue)
            && self.has_channel_room(key.channel)
            && self.holds(&key.needs)
    }

    fn channel_up(&mut self, channel: Channel) -> bool {
        let used = self.channel_load.entry(channel).or_insert(0);
        *used += 1;
        self.channel_limits
            .get(&channel)
            .is_some_and(|limit| *used > *limit)
    }

    fn channel_down(&mut self, channel: Channel) {
        if let Some(used) = self.channel_load.get_mut(&channel) {
            *used = used.saturating_sub(1);
        }
    }
}

/// A chat coming to routing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The chat.
    pub chat: ChatId,
    /// Its customer.
    pub customer: CustomerId,
    /// Its channel.
    pub channel: Channel,
    /// The queue it is for (its channel's, or the one it asked for).
    pub queue: QueueId,
    /// Since when it has waited.
    pub since: Timestamp,
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
    /// Its channel.
    pub channel: Channel,
    /// Since when it has waited.
    pub since: Timestamp,
    /// Its own requirements and priority (R19, R20).
    pub ticket: Ticket,
    /// The step of its queue's workflow it has reached (R19), from 0.
    pub step: usize,
    /// Agents that declined it; it is offered to them again only once every online agent
    /// eligible for it has declined it. (A lapsed offer is no decline: the agent is set away
    /// instead.)
    pub declined_by: Vec<AgentId>,
}

/// How a waiting chat stands, for views (R19, R20).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    /// Its step, from 0.
    pub step: usize,
    /// How many steps its queue's workflow has.
    pub steps: usize,
    /// What it requires at its step.
    pub needs: Skills,
    /// Its effective priority now.
    pub priority: i64,
    /// When its SLA is due, if its queue has one.
    pub due_at: Option<Timestamp>,
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
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WithdrawReason {
    /// Not accepted within the accept timeout; the agent was set away.
    Timeout,
    /// The chat ended (the customer wrote #STOP).
    ChatClosed,
    /// The agent went away or offline.
    AgentUnavailable,
    /// The agent's limit was lowered below what its offers needed.
    LimitLowered,
    /// A chat that came outside an offer (a customer's reply to the agent's reopened chat,
    /// R05, or a forced transfer) took the slot the offer held.
    RoomTaken,
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
    /// A chat arrived while its queue was closed and waits for it to open (R21): its customer
    /// gets the queue's after-hours reply, once.
    ArrivedAfterHours {
        /// The chat.
        chat: ChatId,
        /// Its customer.
        customer: CustomerId,
        /// The closed queue whose reply it gets (the first one it came to).
        queue: QueueId,
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
    /// Whether it was answered within its queue's SLA; none when the queue has none (R20).
    pub within_sla: Option<bool>,
}

/// Whether a load change took the agent over its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadChange {
    /// The load after the change.
    pub load: u32,
    /// The limit.
    pub limit: u32,
    /// Whether this change went over the overall limit or the channel's (and was counted as
    /// an override).
    pub over_limit: bool,
}

/// How a queue changed, for supervisors who watch it (R15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueChange {
    /// A chat joined its queue: new, or back after an offer. (Its position is worked out
    /// when someone shows it: [`Router::position`].)
    Entered {
        /// The chat, as it waits.
        waiting: Waiting,
    },
    /// A waiting chat moved on to a wider step of its workflow (R19).
    Stepped {
        /// The chat, as it waits now.
        waiting: Waiting,
    },
    /// A queue opened or closed by its hours (R21).
    Hours {
        /// The queue.
        queue: QueueId,
        /// Whether it takes offers now.
        open: bool,
    },
    /// A chat left its queue.
    Left {
        /// The queue.
        queue: QueueId,
        /// The chat.
        chat: ChatId,
        /// To whom it was offered; none when it ended while waiting, or moved to the queue's
        /// overflow.
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

/// A queue's plan and what routing tracks of it.
#[derive(Debug)]
struct Queue {
    plan: QueuePlan,
    /// Whether it was open when last looked at, and until when that holds (R21).
    open: bool,
    open_until: Option<Timestamp>,
    /// When its last offers were accepted, for its estimated wait (R20).
    answered: VecDeque<Timestamp>,
}

impl Queue {
    fn new(plan: QueuePlan, now: Option<Timestamp>) -> Self {
        let mut queue = Self {
            plan,
            open: true,
            open_until: None,
            answered: VecDeque::new(),
        };
        if let Some(now) = now {
            queue.look(now);
        }
        queue
    }

    /// Brings `open` up to `now`; whether it opened or closed, if it did.
    fn look(&mut self, now: Timestamp) -> Option<bool> {
        let hours = self.plan.hours.as_ref()?;
        if self.open_until.is_some_and(|until| now < until) {
            return None;
        }
        let was = self.open;
        self.open = hours.is_open(now);
        // Always open or always closed: look again in a day rather than on every operation.
        self.open_until = hours.next_change(now).or(Some(now + Duration::days(1)));
        (self.open != was).then_some(self.open)
    }
}

/// Queues, offers and capacity.
#[derive(Debug)]
pub struct Router {
    seats: HashMap<AgentId, Seat>,
    /// Online agents below their overall limit, the only ones a chat can go to, in the
    /// order they are preferred.
    free: FreeSeats,
    /// The highest level any agent has held in each skill, by skill number: what a match
    /// can score at best, so that looking for the best match can stop once it is found. It
    /// only grows (a lowered skill leaves it high, which costs a longer look, never a worse
    /// choice).
    top_levels: Vec<u8>,
    queues: BTreeMap<QueueId, Queue>,
    /// Requirements of every chat of a channel (R19).
    channel_needs: BTreeMap<Channel, Skills>,
    skill_names: Vec<String>,
    skill_nos: HashMap<String, SkillNo>,
    waitlist: Waitlist,
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
            free: FreeSeats::default(),
            top_levels: Vec::new(),
            queues: BTreeMap::new(),
            channel_needs: BTreeMap::new(),
            skill_names: Vec::new(),
            skill_nos: HashMap::new(),
            waitlist: Waitlist::default(),
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

    /// Declares a queue that always takes offers, so that it is listed while empty.
    pub fn add_queue(&mut self, queue: QueueId) {
        self.queues
            .entry(queue)
            .or_insert_with(|| Queue::new(QueuePlan::default(), None));
    }

    /// Declares a queue with its plan, or changes the plan of one (R19–R21). Chats already
    /// waiting keep the ticket they were given.
    pub fn set_queue(&mut self, queue: QueueId, plan: QueuePlan, now: Timestamp) -> Vec<RouterEvent> {
        for needs in plan
            .steps
            .iter()
            .map(|s| &s.needs)
            .chain(plan.rules.iter().map(|r| &r.needs))
        {
            self.learn_skills(needs);
        }
        match self.queues.get_mut(&queue) {
            Some(q) => {
                q.plan = plan;
                q.open_until = None;
                q.look(now);
            }
            None => {
                self.queues.insert(queue, Queue::new(plan, Some(now)));
            }
        }
        self.settle_everyone(now)
    }

    /// What every chat of `channel` requires (R19).
    pub fn set_channel_needs(&mut self, channel: Channel, needs: Skills) {
        self.learn_skills(&needs);
        self.channel_needs.insert(channel, needs);
    }

    /// A queue's plan.
    pub fn plan(&self, queue: &QueueId) -> Option<&QueuePlan> {
        self.queues.get(queue).map(|q| &q.plan)
    }

    /// Whether `queue` is known.
    pub fn has_queue(&self, queue: &QueueId) -> bool {
        self.queues.contains_key(queue)
    }

    /// The seat of `agent`, noted as changed.
    fn touch(&mut self, agent: &AgentId) -> Option<&mut Seat> {
        let seat = self.seats.get_mut(agent)?;
        self.changes.seats.push(agent.clone());
        Some(seat)
    }

    /// Keeps `free` in step with a seat after a change.
    fn refresh(&mut self, agent: &AgentId) {
        let standing = self.seats.get(agent).filter(|s| s.has_room()).map(Seat::standing);
        self.free.set(agent, standing);
    }

    /// Notes the levels an agent now holds in what a match can score at best.
    fn raise_top_levels(&mut self, levels: &[u8]) {
        if self.top_levels.len() < levels.len() {
            self.top_levels.resize(levels.len(), 0);
        }
        for (top, level) in self.top_levels.iter_mut().zip(levels) {
            *top = (*top).max(*level);
        }
    }

    /// The best score any agent could have for `needs` (R19).
    fn best_possible_score(&self, needs: &Needs) -> u32 {
        needs
            .iter()
            .map(|(skill, _)| u32::from(self.top_levels.get(usize::from(*skill)).copied().unwrap_or(0)))
            .sum()
    }

    fn skill_no(&mut self, skill: &str) -> SkillNo {
        if let Some(no) = self.skill_nos.get(skill) {
            return *no;
        }
        let no = SkillNo::try_from(self.skill_names.len()).unwrap_or(SkillNo::MAX);
        self.skill_names.push(skill.to_owned());
        self.skill_nos.insert(skill.to_owned(), no);
        // Every seat's levels grow with the book, so a lookup by number never misses.
        for seat in self.seats.values_mut() {
            seat.levels.push(seat.skills.get(skill).copied().unwrap_or(0));
        }
        no
    }

    fn learn_skills(&mut self, skills: &Skills) {
        for skill in skills.keys() {
            self.skill_no(skill);
        }
    }

    fn needs_of(&mut self, skills: &Skills) -> Needs {
        skills
            .iter()
            .map(|(skill, level)| (self.skill_no(skill), *level))
            .collect()
    }

    fn levels_of(&mut self, skills: &Skills) -> Vec<u8> {
        self.learn_skills(skills);
        self.skill_names
            .iter()
            .map(|name| skills.get(name).copied().unwrap_or(0))
            .collect()
    }

    /// Adds an agent, offline, or updates its limits, queues and skills if it exists.
    pub fn upsert_seat(&mut self, agent: &AgentId, spec: SeatSpec, now: Timestamp) -> Vec<RouterEvent> {
        self.refresh_hours(now);
        for queue in &spec.queues {
            self.add_queue(queue.clone());
        }
        let levels = self.levels_of(&spec.skills);
        self.raise_top_levels(&levels);
        match self.touch(agent) {
            Some(seat) => {
                seat.queues = spec.queues;
                seat.skills = spec.skills;
                seat.levels = levels;
                seat.channel_limits = spec.channel_limits;
                // Like a live limit change: offers that no longer fit are taken back.
                let mut events = self.set_limit(agent, spec.limit, now).unwrap_or_default();
                events.extend(self.settle_agent(agent, now));
                events.extend(self.settle_if_declines_changed(now));
                return events;
            }
            None => {
                self.changes.seats.push(agent.clone());
                self.seats.insert(
                    agent.clone(),
                    Seat {
                        limit: spec.limit,
                        presence: Presence::Offline,
                        load: 0,
                        offered: 0,
                        idle_since: now,
                        queues: spec.queues,
                        overrides: 0,
                        skills: spec.skills,
                        channel_limits: spec.channel_limits,
                        channel_load: BTreeMap::new(),
                        levels,
                    },
                );
            }
        }
        Vec::new()
    }

    /// Changes an agent's skills live (R19): it may now be offered chats it could not be
    /// before; offers it holds stay.
    pub fn set_skills(
        &mut self,
        agent: &AgentId,
        skills: Skills,
        now: Timestamp,
    ) -> Result<Vec<RouterEvent>, Rejection> {
        self.refresh_hours(now);
        let levels = self.levels_of(&skills);
        self.raise_top_levels(&levels);
        let seat = self.seat_mut(agent)?;
        seat.skills = skills;
        seat.levels = levels;
        let mut events = self.settle_agent(agent, now);
        events.extend(self.settle_if_declines_changed(now));
        Ok(events)
    }

    /// After a change that may leave a declined chat with no one eligible but those who
    /// declined it (skills or queues taken away), lets it go round again (R06).
    fn settle_if_declines_changed(&mut self, now: Timestamp) -> Vec<RouterEvent> {
        let any_declined = self.waitlist.iter().any(|(_, w)| !w.declined_by.is_empty());
        match any_declined {
            true => self.settle_everyone(now),
            false => Vec::new(),
        }
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

    /// Every queue with its waiting chats in offer order (R20): effective priority at `now`,
    /// then age. Offered chats are not listed.
    pub fn queues(&self, now: Timestamp) -> Vec<(&QueueId, Vec<&Waiting>)> {
        let mut by_queue: BTreeMap<&QueueId, Vec<(i64, &Waiting)>> =
            self.queues.keys().map(|q| (q, Vec::new())).collect();
        for (_, waiting) in self.waitlist.iter() {
            let priority = self.priority_of(waiting, now);
            by_queue
                .entry(&waiting.queue)
                .or_default()
                .push((priority, waiting));
        }
        by_queue
            .into_iter()
            .map(|(queue, mut list)| {
                list.sort_by(|(p1, w1), (p2, w2)| {
                    p2.cmp(p1)
                        .then(w1.since.cmp(&w2.since))
                        .then(w1.chat.cmp(&w2.chat))
                });
                (queue, list.into_iter().map(|(_, w)| w).collect())
            })
            .collect()
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

    /// How many chats wait, over all queues.
    pub fn waiting_count(&self) -> usize {
        self.waitlist.len()
    }

    /// Where `chat` waits at `now`: its queue and 1-based position in offer order (R20).
    pub fn position(&self, chat: &ChatId, now: Timestamp) -> Option<(QueueId, usize)> {
        let me = self.waitlist.get(chat)?;
        let mine = (std::cmp::Reverse(self.priority_of(me, now)), me.since, &me.chat);
        // The offer order is (effective priority, then age, then id), and within a bucket it
        // is the bucket's own order: the chats ahead of mine are a prefix of each bucket,
        // found by binary search rather than by walking the queue.
        let ahead: usize = self
            .waitlist
            .lane(&me.queue)
            .map(|bucket| {
                bucket.count_before(|slot| {
                    let Some(w) = bucket.chats.get(slot) else {
                        return true;
                    };
                    (std::cmp::Reverse(self.priority_of(w, now)), w.since, &w.chat) >= mine
                })
            })
            .sum();
        Some((me.queue.clone(), ahead + 1))
    }

    /// How long a chat at `position` of `queue` may wait, from the queue's recent answer rate
    /// (R20); none until the queue has answered a few chats.
    pub fn estimated_wait(&self, queue: &QueueId, position: usize, now: Timestamp) -> Option<Duration> {
        let answered = &self.queues.get(queue)?.answered;
        let (first, n) = (answered.front()?, answered.len());
        if n < 2 {
            return None;
        }
        let span = now - *first;
        if span <= Duration::zero() {
            return Some(Duration::zero());
        }
        // n answers over `span`: one every span / n.
        let per_answer_ms = span.num_milliseconds() / n as i64;
        Some(Duration::milliseconds(
            per_answer_ms.saturating_mul(position as i64),
        ))
    }

    /// How a waiting chat stands at `now` (R19, R20).
    pub fn standing(&self, waiting: &Waiting, now: Timestamp) -> Standing {
        // A chat's queue is always declared (`admit` adds it); the default is for a plan
        // removed since, and costs nothing to build (no allocation).
        let default;
        let plan = match self.queues.get(&waiting.queue) {
            Some(q) => &q.plan,
            None => {
                default = QueuePlan::default();
                &default
            }
        };
        Standing {
            step: waiting.step,
            steps: plan.step_count(),
            needs: plan.needs_at(waiting.step, &waiting.ticket),
            priority: plan.effective_priority(waiting.ticket.priority, waiting.since, now),
            due_at: plan.due_at(waiting.since),
        }
    }

    fn priority_of(&self, waiting: &Waiting, now: Timestamp) -> i64 {
        match self.queues.get(&waiting.queue) {
            Some(q) => q
                .plan
                .effective_priority(waiting.ticket.priority, waiting.since, now),
            None => i64::from(waiting.ticket.priority),
        }
    }

    /// Changes an agent's limit live; lowering it never takes a chat away (R06), but takes
    /// back the newest pending offers that no longer fit, so that accepting cannot go over it.
    pub fn set_limit(
        &mut self,
        agent: &AgentId,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<RouterEvent>, Rejection> {
        self.refresh_hours(now);
        self.seat_mut(agent)?.limit = limit;
        self.refresh(agent);
        let mut events = self.take_back_offers_over_limit(agent, WithdrawReason::LimitLowered, now)?;
        events.extend(self.settle_agent(agent, now));
        Ok(events)
    }

    /// Takes back `agent`'s newest pending offers beyond its limit, newest first, and routes
    /// their chats again: an offer holds a slot, so once the slots are gone (a lowered limit,
    /// or a chat that came outside an offer, R05 or a forced transfer) accepting it would go
    /// over the limit without anyone having decided so (R06).
    fn take_back_offers_over_limit(
        &mut self,
        agent: &AgentId,
        reason: WithdrawReason,
        now: Timestamp,
    ) -> Result<Vec<RouterEvent>, Rejection> {
        let seat = self.seat_mut(agent)?;
        let excess = (seat.load + seat.offered)
            .saturating_sub(seat.limit)
            .min(seat.offered);
        let mut events = Vec::new();
        if excess == 0 {
            return Ok(events);
        }
        let mut newest: Vec<(Timestamp, ChatId)> = self
            .offers
            .values()
            .filter(|o| &o.agent == agent)
            .map(|o| (o.offered_at, o.waiting.chat.clone()))
            .collect();
        newest.sort();
        let mut back = Vec::new();
        for (_, chat) in newest.into_iter().rev().take(excess as usize) {
            let offer = self.take_offer(&chat, agent)?;
            // Not a decline: the agent may get the chat again once it has room.
            back.push(self.requeue(offer.waiting, None, now));
            events.push(RouterEvent::OfferWithdrawn {
                chat,
                agent: agent.clone(),
                reason,
            });
        }
        self.refresh(agent);
        events.extend(self.settle_chats(back, now));
        Ok(events)
    }

    /// Sets an agent's presence; going away takes back its pending offers.
    pub fn set_presence(
        &mut self,
        agent: &AgentId,
        presence: Presence,
        now: Timestamp,
    ) -> Result<Vec<RouterEvent>, Rejection> {
        self.refresh_hours(now);
        let seat = self.seat_mut(agent)?;
        if seat.presence == presence {
            return Ok(Vec::new());
        }
        if presence == Presence::Online {
            seat.idle_since = now;
        }
        seat.presence = presence;
        self.refresh(agent);
        // Told under the router's lock, so that every connection sees presence in the order
        // the router changed it.
        let mut events = vec![RouterEvent::PresenceChanged {
            agent: agent.clone(),
            presence,
        }];
        if presence == Presence::Online {
            events.extend(self.settle_agent(agent, now));
        } else {
            events.extend(self.withdraw_offers_of(agent, WithdrawReason::AgentUnavailable, now));
            // One fewer agent to decline a chat: a declined chat may now go round again.
            events.extend(self.settle_everyone(now));
        }
        Ok(events)
    }

    /// Puts a chat in its queue, or offers it straight to its sticky agent when that agent is
    /// eligible for it (R10). A chat that comes to a closed queue goes on to its overflow, or
    /// waits and gets the after-hours reply (R21).
    pub fn enqueue(
        &mut self,
        arrival: Arrival,
        ask: &RoutingAsk,
        sticky: Option<&AgentId>,
        now: Timestamp,
    ) -> Vec<RouterEvent> {
        self.refresh_hours(now);
        let mut events = Vec::new();
        let first = arrival.queue.clone();
        let queue = self.overflow_of(&first);
        if !self.is_open(&queue) {
            events.push(RouterEvent::ArrivedAfterHours {
                chat: arrival.chat.clone(),
                customer: arrival.customer.clone(),
                queue: first,
            });
        }
        events.extend(self.admit(Arrival { queue, ..arrival }, ask, sticky, now));
        events
    }

    /// Puts a chat that was waiting before a restart back in its queue, as [`Router::enqueue`]
    /// but without telling its customer again that the queue is closed.
    pub fn restore_waiting(
        &mut self,
        arrival: Arrival,
        ask: &RoutingAsk,
        sticky: Option<&AgentId>,
        now: Timestamp,
    ) -> Vec<RouterEvent> {
        self.refresh_hours(now);
        let queue = self.overflow_of(&arrival.queue);
        self.admit(Arrival { queue, ..arrival }, ask, sticky, now)
    }

    /// Where a chat for `queue` goes: the queue, or while it is closed, its overflow (and that
    /// one's, while closed), never round in a circle.
    fn overflow_of(&self, queue: &QueueId) -> QueueId {
        let mut at = queue.clone();
        let mut seen = vec![at.clone()];
        while !self.is_open(&at) {
            match self.queues.get(&at).and_then(|q| q.plan.overflow.clone()) {
                Some(next) if !seen.contains(&next) && self.queues.contains_key(&next) => {
                    seen.push(next.clone());
                    at = next;
                }
                _ => break,
            }
        }
        at
    }

    /// Whether `queue` took offers when last looked at (R21).
    pub fn is_open(&self, queue: &QueueId) -> bool {
        self.queues.get(queue).is_none_or(|q| q.open)
    }

    fn admit(
        &mut self,
        arrival: Arrival,
        ask: &RoutingAsk,
        sticky: Option<&AgentId>,
        now: Timestamp,
    ) -> Vec<RouterEvent> {
        self.add_queue(arrival.queue.clone());
        let plan = &self.queues[&arrival.queue].plan;
        let channel_needs = self
            .channel_needs
            .get(&arrival.channel)
            .cloned()
            .unwrap_or_default();
        let ticket = plan.ticket(ask, &channel_needs);
        let step = plan.step_at(arrival.since, now);
        let waiting = Waiting {
            chat: arrival.chat,
            customer: arrival.customer,
            queue: arrival.queue,
            channel: arrival.channel,
            since: arrival.since,
            ticket,
            step,
            declined_by: Vec::new(),
        };
        let key = self.key_of(&waiting);
        let sticky = sticky
            .filter(|a| self.is_open(&waiting.queue) && self.seats.get(*a).is_some_and(|s| s.eligible(&key)));
        if let Some(agent) = sticky {
            return vec![self.offer_to(waiting, agent.clone(), now)];
        }
        let chat = waiting.chat.clone();
        self.file(waiting, key);
        if let Some(waiting) = self.waitlist.get(&chat) {
            self.changes.queues.push(QueueChange::Entered {
                waiting: waiting.clone(),
            });
        }
        self.settle_chat(&chat, now)
    }

    /// The bucket a waiting chat belongs in, at its step.
    fn key_of(&mut self, waiting: &Waiting) -> BucketKey {
        let (needs, priority) = match self.queues.get(&waiting.queue) {
            Some(q) => (q.plan.needs_at(waiting.step, &waiting.ticket), q.plan.priority),
            None => (waiting.ticket.needs.clone(), 0),
        };
        BucketKey {
            queue: waiting.queue.clone(),
            channel: waiting.channel,
            step: waiting.step,
            needs: self.needs_of(&needs),
            base: priority.saturating_add(waiting.ticket.priority),
        }
    }

    /// Files a waiting chat in its bucket, with the time its step times out.
    fn file(&mut self, waiting: Waiting, key: BucketKey) {
        let step_due = self.queues.get(&waiting.queue).and_then(|q| {
            let plan = &q.plan;
            let mut until = waiting.since;
            for step in 0..=waiting.step {
                until += plan.step_timeout(step)?;
            }
            Some(until)
        });
        self.waitlist.insert(key, waiting, step_due);
    }

    /// The agent takes an offered chat: its slot turns from offer into load.
    pub fn accept(&mut self, chat: &ChatId, agent: &AgentId, now: Timestamp) -> Result<Accepted, Rejection> {
        let offer = self.take_offer(chat, agent)?;
        let seat = self.seat_mut(agent)?;
        seat.load += 1;
        seat.channel_up(offer.waiting.channel);
        self.refresh(agent);
        let waited = now - offer.waiting.since;
        let within_sla = self.queues.get_mut(&offer.waiting.queue).and_then(|q| {
            q.answered.push_back(now);
            if q.answered.len() > ANSWERS_KEPT {
                q.answered.pop_front();
            }
            q.plan.sla.map(|sla| waited <= sla)
        });
        Ok(Accepted {
            queue: offer.waiting.queue,
            waited,
            to_accept: now - offer.offered_at,
            within_sla,
        })
    }

    /// The agent declines; the chat goes back to its queue and on to someone else.
    pub fn decline(
        &mut self,
        chat: &ChatId,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<RouterEvent>, Rejection> {
        self.refresh_hours(now);
        let offer = self.take_offer(chat, agent)?;
        let chat = self.requeue(offer.waiting, Some(agent.clone()), now);
        // The decliner's freed slot first goes to the best other chat it may take; then the
        // declined chat goes on, back to the decliner only if no one else can take it.
        let mut events = self.settle_agent_except(agent, Some(&chat), now);
        events.extend(self.settle_chat(&chat, now));
        Ok(events)
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
        events
    }

    /// The chat ended while waiting or offered; take it out of routing.
    pub fn withdraw(&mut self, chat: &ChatId, now: Timestamp) -> Vec<RouterEvent> {
        if let Some(w) = self.waitlist.remove(chat) {
            self.changes.queues.push(QueueChange::Left {
                queue: w.queue,
                chat: w.chat,
                offered_to: None,
            });
            return Vec::new();
        }
        let Some(offer) = self.offers.remove(chat) else {
            return Vec::new();
        };
        if let Some(seat) = self.touch(&offer.agent) {
            seat.offered -= 1;
            seat.channel_down(offer.waiting.channel);
        }
        self.refresh(&offer.agent);
        let mut events = vec![RouterEvent::OfferWithdrawn {
            chat: chat.clone(),
            agent: offer.agent.clone(),
            reason: WithdrawReason::ChatClosed,
        }];
        events.extend(self.settle_agent(&offer.agent, now));
        events
    }

    /// Moves every waiting chat whose step timed out on to its next, wider step (R19), and
    /// opens the queues whose hours began (R21); then offers what became eligible.
    pub fn tick(&mut self, now: Timestamp) -> Vec<RouterEvent> {
        let opened = self.refresh_hours(now);
        let stepped = self.waitlist.steps_due(now);
        for chat in &stepped {
            let Some(mut waiting) = self.waitlist.remove(chat) else {
                continue;
            };
            let steps = self.queues.get(&waiting.queue).map_or(1, |q| q.plan.step_count());
            waiting.step = (waiting.step + 1).min(steps - 1);
            let key = self.key_of(&waiting);
            self.changes.queues.push(QueueChange::Stepped {
                waiting: waiting.clone(),
            });
            self.file(waiting, key);
        }
        match opened {
            true => self.settle_everyone(now),
            false => self.settle_chats(stepped, now),
        }
    }

    /// When [`Router::tick`] has something to do next: a step timing out or a queue with
    /// waiting chats opening.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        // Closing too, so that supervisors see a queue close when it does.
        let opening = self
            .queues
            .values()
            .filter(|q| q.plan.hours.is_some())
            .filter_map(|q| q.open_until)
            .min();
        [self.waitlist.next_step_due(), opening]
            .into_iter()
            .flatten()
            .min()
    }

    /// Brings every queue's open or closed up to `now`; true if one opened.
    fn refresh_hours(&mut self, now: Timestamp) -> bool {
        let mut opened = false;
        for (id, queue) in self.queues.iter_mut() {
            if let Some(open) = queue.look(now) {
                opened |= open;
                self.changes.queues.push(QueueChange::Hours {
                    queue: id.clone(),
                    open,
                });
            }
        }
        opened
    }

    /// A chat became active for `agent` outside an offer (R05, a snooze ending does not count
    /// since snoozed chats keep their slot). May take it over its limit or its channel's;
    /// that is counted, and its pending offers that no longer fit are taken back.
    pub fn load_up(
        &mut self,
        agent: &AgentId,
        channel: Channel,
        now: Timestamp,
    ) -> Result<(LoadChange, Vec<RouterEvent>), Rejection> {
        let seat = self.seat_mut(agent)?;
        seat.load += 1;
        let over_channel = seat.channel_up(channel);
        let over_limit = seat.load > seat.limit || over_channel;
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
        self.refresh(agent);
        let events = self.take_back_offers_over_limit(agent, WithdrawReason::RoomTaken, now)?;
        Ok((change, events))
    }

    /// Counts a chat that `agent` already owned before a restart toward its load; unlike
    /// [`Router::load_up`] this is not a new assignment, so it is never an override. False if
    /// the agent has no seat (it was removed from the configuration).
    pub fn restore_load(&mut self, agent: &AgentId, channel: Channel) -> bool {
        let found = match self.touch(agent) {
            Some(seat) => {
                seat.load += 1;
                seat.channel_up(channel);
                true
            }
            None => false,
        };
        self.refresh(agent);
        found
    }

    /// A chat of `agent` on `channel` stopped counting (closed); its slot is free for the
    /// queue (R12).
    pub fn load_down(&mut self, agent: &AgentId, channel: Channel, now: Timestamp) -> Vec<RouterEvent> {
        self.refresh_hours(now);
        if let Some(seat) = self.touch(agent) {
            seat.load = seat.load.saturating_sub(1);
            seat.channel_down(channel);
            seat.idle_since = now;
        }
        self.refresh(agent);
        self.settle_agent(agent, now)
    }

    /// Moves one chat's load on `channel` from `from` to `to` (R12). Without `force` the
    /// target's limits apply; a forced transfer over them is counted as an override (R22).
    pub fn transfer(
        &mut self,
        from: &AgentId,
        to: &AgentId,
        channel: Channel,
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
        if !force && (target.load + target.offered >= target.limit || !target.has_channel_room(channel)) {
            return Err(Rejection::OverLimit {
                agent: to.clone(),
                load: target.load,
                limit: target.limit,
            });
        }
        let (change, mut events) = self.load_up(to, channel, now)?;
        events.extend(self.load_down(from, channel, now));
        Ok((change, events))
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
            seat.channel_down(offer.waiting.channel);
        }
        self.refresh(agent);
        Ok(offer)
    }

    /// Puts an offered chat back among the waiting, at its place by age and at the step its
    /// wait has reached; returns it, to be settled once the caller's books balance.
    fn requeue(&mut self, mut waiting: Waiting, declined_by: Option<AgentId>, now: Timestamp) -> ChatId {
        if let Some(agent) = declined_by.filter(|a| !waiting.declined_by.contains(a)) {
            waiting.declined_by.push(agent);
        }
        if let Some(plan) = self.queues.get(&waiting.queue).map(|q| &q.plan) {
            waiting.step = waiting.step.max(plan.step_at(waiting.since, now));
        }
        let chat = waiting.chat.clone();
        let key = self.key_of(&waiting);
        self.file(waiting, key);
        if let Some(waiting) = self.waitlist.get(&chat) {
            self.changes.queues.push(QueueChange::Entered {
                waiting: waiting.clone(),
            });
        }
        chat
    }

    fn withdraw_offers_of(
        &mut self,
        agent: &AgentId,
        reason: WithdrawReason,
        now: Timestamp,
    ) -> Vec<RouterEvent> {
        let mut chats: Vec<ChatId> = self
            .offers
            .values()
            .filter(|o| &o.agent == agent)
            .map(|o| o.waiting.chat.clone())
            .collect();
        chats.sort_by_key(|c| self.offers[c].waiting.since);
        let mut events = Vec::new();
        let mut back = Vec::new();
        for chat in chats {
            let offer = self.take_offer(&chat, agent).expect("listed above");
            // Not a decline: the agent gets it again once back with room.
            back.push(self.requeue(offer.waiting, None, now));
            events.push(RouterEvent::OfferWithdrawn {
                chat,
                agent: agent.clone(),
                reason,
            });
        }
        events.extend(self.settle_chats(back, now));
        events
    }

    fn offer_to(&mut self, waiting: Waiting, agent: AgentId, now: Timestamp) -> RouterEvent {
        let expires_at = now + self.accept_timeout;
        if let Some(seat) = self.touch(&agent) {
            seat.offered += 1;
            seat.channel_up(waiting.channel);
        }
        self.refresh(&agent);
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

    /// Whether every online agent eligible for the chat in `key`, room aside, has declined it:
    /// then it goes round again rather than waiting for ever (R06).
    fn everyone_declined(&self, waiting: &Waiting, key: &BucketKey) -> bool {
        !waiting.declined_by.is_empty()
            && self
                .seats
                .iter()
                .filter(|(_, s)| {
                    s.presence == Presence::Online && s.serves(&key.queue) && s.holds(&key.needs)
                })
                .all(|(a, _)| waiting.declined_by.contains(a))
    }

    fn may_offer(&self, agent: &AgentId, waiting: &Waiting, key: &BucketKey) -> bool {
        !waiting.declined_by.contains(agent) || self.everyone_declined(waiting, key)
    }

    /// Offers one waiting chat to the best eligible agent with room, if there is one (R06,
    /// R19): the best match, then the least loaded, then the longest idle.
    fn settle_chat(&mut self, chat: &ChatId, now: Timestamp) -> Vec<RouterEvent> {
        let Some(bucket) = self.waitlist.bucket_of(chat) else {
            return Vec::new();
        };
        let key = &bucket.key;
        let (Some(waiting), true) = (self.waitlist.get(chat), self.is_open(&key.queue)) else {
            return Vec::new();
        };
        // Free agents come least loaded, then longest idle: among equal matches the first
        // eligible one is the choice, so the walk ends at the first that scores the best
        // any agent could.
        let best_possible = self.best_possible_score(&key.needs);
        let mut best: Option<(u32, &AgentId)> = None;
        for agent in self.free.iter() {
            let Some(seat) = self.seats.get(agent) else {
                continue;
            };
            if !(seat.eligible(key) && self.may_offer(agent, waiting, key)) {
                continue;
            }
            let score = seat.match_score(&key.needs);
            if best.is_none_or(|(top, _)| score > top) {
                best = Some((score, agent));
            }
            if score >= best_possible {
                break;
            }
        }
        let best = best.map(|(_, agent)| agent.clone());
        let Some(agent) = best else {
            return Vec::new();
        };
        vec![self.offer_waiting(chat, agent, now)]
    }

    /// Settles several chats that started waiting at once, the first in offer order first, so
    /// that none takes an agent a better one could have had (R20).
    fn settle_chats(&mut self, mut chats: Vec<ChatId>, now: Timestamp) -> Vec<RouterEvent> {
        let rank = |router: &Self, chat: &ChatId| {
            router
                .waitlist
                .get(chat)
                .map(|w| (std::cmp::Reverse(router.priority_of(w, now)), w.since))
        };
        chats.sort_by_cached_key(|chat| rank(self, chat));
        chats
            .iter()
            .flat_map(|chat| self.settle_chat(chat, now))
            .collect()
    }

    /// Offers `agent` the chats of highest effective priority it is eligible for, then the
    /// oldest, while it has room (R20).
    fn settle_agent(&mut self, agent: &AgentId, now: Timestamp) -> Vec<RouterEvent> {
        self.settle_agent_except(agent, None, now)
    }

    /// [`Router::settle_agent`] passing over `except`.
    fn settle_agent_except(
        &mut self,
        agent: &AgentId,
        except: Option<&ChatId>,
        now: Timestamp,
    ) -> Vec<RouterEvent> {
        let mut events = Vec::new();
        while let Some(chat) = self.best_chat_for(agent, except, now) {
            events.push(self.offer_waiting(&chat, agent.clone(), now));
        }
        events
    }

    /// The next chat for `agent` other than `except`: one look at the first chat of each
    /// bucket it is eligible for (passing over those it declined).
    fn best_chat_for(&self, agent: &AgentId, except: Option<&ChatId>, now: Timestamp) -> Option<ChatId> {
        let seat = self.seats.get(agent).filter(|s| s.has_room())?;
        // The channels it has room on, looked up once rather than per bucket (R22).
        let room: Vec<bool> = Channel::ALL.iter().map(|c| seat.has_channel_room(*c)).collect();
        let mut best: Option<((i64, std::cmp::Reverse<Timestamp>), &Waiting)> = None;
        for lane in self.waitlist.lanes() {
            // The queue once per lane: open (R21), served by the agent, its plan.
            let Some(queue) = self.queues.get(&lane.queue).filter(|q| q.open) else {
                continue;
            };
            if !seat.serves(&lane.queue) {
                continue;
            }
            // Each group of buckets of one base priority, by their first chats, oldest first:
            // effective priority only rises with base and wait, so the group's best chat for
            // this agent is in the first bucket it is eligible for, unless that bucket's first
            // chat is one it declined — then the search goes on while the buckets' first chats
            // are no younger than the best found.
            let mut lane_best: Option<&Waiting> = None;
            for group in lane.by_head.values() {
                let mut group_best: Option<&Waiting> = None;
                for ((head_since, head_chat), no) in group {
                    if group_best.is_some_and(|b| (b.since, &b.chat) < (*head_since, head_chat)) {
                        break;
                    }
                    let bucket = &self.waitlist.buckets()[*no];
                    let key = &bucket.key;
                    if !room[key.channel as usize] || !seat.holds(&key.needs) {
                        continue;
                    }
                    let Some(first) = bucket
                        .chats
                        .values()
                        .find(|w| Some(&w.chat) != except && self.may_offer(agent, w, key))
                    else {
                        continue;
                    };
                    if group_best.is_none_or(|b| (first.since, &first.chat) < (b.since, &b.chat)) {
                        group_best = Some(first);
                    }
                }
                let Some(candidate) = group_best else { continue };
                let better = lane_best.is_none_or(|w| {
                    let rank = |w: &Waiting| {
                        (
                            queue.plan.effective_priority(w.ticket.priority, w.since, now),
                            std::cmp::Reverse(w.since),
                        )
                    };
                    let (mine, theirs) = (rank(candidate), rank(w));
                    mine > theirs || (mine == theirs && candidate.chat < w.chat)
                });
                if better {
                    lane_best = Some(candidate);
                }
            }
            let Some(first) = lane_best else { continue };
            let rank = (
                queue
                    .plan
                    .effective_priority(first.ticket.priority, first.since, now),
                std::cmp::Reverse(first.since),
            );
            if best
                .as_ref()
                .is_none_or(|(r, w)| rank > *r || (rank == *r && first.chat < w.chat))
            {
                best = Some((rank, first));
            }
        }
        best.map(|(_, w)| w.chat.clone())
    }

    fn offer_waiting(&mut self, chat: &ChatId, agent: AgentId, now: Timestamp) -> RouterEvent {
        let waiting = self.waitlist.remove(chat).expect("offered from the waitlist");
        self.changes.queues.push(QueueChange::Left {
            queue: waiting.queue.clone(),
            chat: waiting.chat.clone(),
            offered_to: Some(agent.clone()),
        });
        self.offer_to(waiting, agent, now)
    }

    /// Settles every agent with room, least loaded and longest idle first: after a change
    /// that may make many chats eligible at once.
    fn settle_everyone(&mut self, now: Timestamp) -> Vec<RouterEvent> {
        if self.waitlist.is_empty() || self.free.is_empty() {
            return Vec::new();
        }
        let agents: Vec<AgentId> = self.free.iter().cloned().collect();
        let mut events = Vec::new();
        for agent in agents {
            events.extend(self.settle_agent(&agent, now));
        }
        events
    }

    /// Panics if the router's books do not balance, or if an agent with room is eligible for
    /// a chat that waits in an open queue; for tests.
    pub fn check_invariants(&self) {
        for (agent, seat) in &self.seats {
            let offered = self.offers.values().filter(|o| &o.agent == agent).count() as u32;
            assert_eq!(seat.offered, offered, "offers held by {agent}");
            let expected = seat.has_room().then(|| seat.standing());
            assert_eq!(self.free.standing(agent), expected, "free set of {agent}");
        }
        for offer in self.offers.values() {
            assert!(
                self.waitlist.get(&offer.waiting.chat).is_none(),
                "offered chat also queued"
            );
        }
        for (key, waiting) in self.waitlist.iter() {
            if !self.is_open(&key.queue) {
                continue;
            }
            for agent in self.free.iter() {
                let seat = &self.seats[agent];
                assert!(
                    !(seat.eligible(key) && self.may_offer(agent, waiting, key)),
                    "{agent} has room and is eligible for waiting chat {}",
                    waiting.chat
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
