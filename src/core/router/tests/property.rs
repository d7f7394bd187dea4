//! Random agents, skills, arrivals, answers and clock steps (issue 16). After every step:
//! - no chat is offered to an agent lacking a requirement of its current step (R19);
//! - an agent offered a chat was eligible for no waiting chat of higher effective priority,
//!   or of equal priority and older (R20);
//! - at rest, no agent with room is eligible for a waiting chat of an open queue, so nothing
//!   waits while someone could take it (`Router::check_invariants`).
//!
//! At the end, once everyone may take everything, every chat has been offered: none starves.

use std::collections::{BTreeMap, HashMap};

use chrono::Duration;
use proptest::prelude::*;

use super::{skills, t, Floor};
use crate::core::queue::{Boost, QueuePlan, RoutingAsk, Skills, Step};
use crate::core::router::{RouterEvent, SeatSpec};
use crate::core::{Channel, Presence};
use crate::ids::{AgentId, ChatId, QueueId};

const AGENTS: usize = 4;
const SKILLS: [&str; 4] = ["billing", "tech", "language:es", "vip_care"];
const QUEUES: [&str; 3] = ["general", "priority", "tiered"];
const CHANNELS: [Channel; 2] = [Channel::Whatsapp, Channel::Email];

/// The plans, in the order of [`QUEUES`].
fn plans() -> Vec<QueuePlan> {
    vec![
        // Billing 2 for 30 s, then anyone, the chat's own needs dropped.
        QueuePlan {
            steps: vec![
                Step {
                    needs: skills(&[("billing", 2)]),
                    keeps_chat_needs: true,
                    timeout: Some(Duration::seconds(30)),
                },
                Step::default(),
            ],
            ..QueuePlan::default()
        },
        // Higher priority, rising with the wait and near its SLA.
        QueuePlan {
            priority: 3,
            sla: Some(Duration::seconds(60)),
            boost: Boost {
                every: Some(Duration::seconds(10)),
                by: 1,
                max: Some(5),
                near_due: Some(Duration::seconds(20)),
                near_due_by: 4,
            },
            ..QueuePlan::default()
        },
        // Tech 3, then tech 1 with the chat's needs, then anyone.
        QueuePlan {
            priority: 1,
            steps: vec![
                Step {
                    needs: skills(&[("tech", 3)]),
                    keeps_chat_needs: true,
                    timeout: Some(Duration::seconds(20)),
                },
                Step {
                    needs: skills(&[("tech", 1)]),
                    keeps_chat_needs: true,
                    timeout: Some(Duration::seconds(20)),
                },
                Step::default(),
            ],
            ..QueuePlan::default()
        },
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Arrive {
        queue: usize,
        channel: usize,
        /// Required levels of the four skills; 0 is none.
        needs: [u8; 4],
    },
    Accept {
        agent: usize,
        nth: usize,
    },
    Decline {
        agent: usize,
        nth: usize,
    },
    Close {
        agent: usize,
        nth: usize,
    },
    Presence {
        agent: usize,
        online: bool,
    },
    SetSkills {
        agent: usize,
        levels: [u8; 4],
    },
    Wait {
        secs: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let levels = prop::array::uniform4(prop_oneof![3 => Just(0u8), 2 => 1u8..=5]);
    let needs = prop::array::uniform4(prop_oneof![6 => Just(0u8), 1 => 1u8..=3]);
    prop_oneof![
        4 => (0..QUEUES.len(), 0..CHANNELS.len(), needs).prop_map(|(queue, channel, needs)| Op::Arrive { queue, channel, needs }),
        3 => (0..AGENTS, 0..3usize).prop_map(|(agent, nth)| Op::Accept { agent, nth }),
        1 => (0..AGENTS, 0..3usize).prop_map(|(agent, nth)| Op::Decline { agent, nth }),
        3 => (0..AGENTS, 0..3usize).prop_map(|(agent, nth)| Op::Close { agent, nth }),
        1 => (0..AGENTS, any::<bool>()).prop_map(|(agent, online)| Op::Presence { agent, online }),
        1 => (0..AGENTS, levels).prop_map(|(agent, levels)| Op::SetSkills { agent, levels }),
        2 => (1i64..40).prop_map(|secs| Op::Wait { secs }),
    ]
}

fn to_skills(levels: &[u8; 4]) -> Skills {
    SKILLS
        .iter()
        .zip(levels)
        .filter(|(_, l)| **l > 0)
        .map(|(s, l)| (s.to_string(), *l))
        .collect()
}

/// What the test knows, apart from the router: each chat's queue, channel and ask, each
/// agent's skills, and the chats each agent holds.
struct World {
    floor: Floor,
    plans: HashMap<QueueId, QueuePlan>,
    asks: HashMap<ChatId, (QueueId, Channel, RoutingAsk)>,
    skills: Vec<Skills>,
    agents: Vec<AgentId>,
    held: Vec<Vec<(ChatId, Channel)>>,
    now: chrono::DateTime<chrono::Utc>,
    next: u64,
}

impl World {
    fn new(levels: &[[u8; 4]; AGENTS], limits: &[u32; AGENTS]) -> Self {
        let mut floor = Floor::new();
        let mut by_queue = HashMap::new();
        for (id, plan) in QUEUES.into_iter().zip(plans()) {
            floor.queue(id, plan.clone());
            by_queue.insert(QueueId::from(id), plan);
        }
        let mut agents = Vec::new();
        let mut skills = Vec::new();
        for (i, (levels, limit)) in levels.iter().zip(limits).enumerate() {
            // Every other agent takes one WhatsApp chat at a time (R22).
            let channel_limits = match i % 2 {
                0 => BTreeMap::from([(Channel::Whatsapp, 1)]),
                _ => BTreeMap::new(),
            };
            agents.push(floor.agent_with(&format!("a{i}"), *limit, to_skills(levels), channel_limits, t(0)));
            skills.push(to_skills(levels));
        }
        Self {
            floor,
            plans: by_queue,
            asks: HashMap::new(),
            skills,
            agents,
            held: vec![Vec::new(); AGENTS],
            now: t(0),
            next: 0,
        }
    }

    fn offers_of(&self, agent: usize) -> Vec<ChatId> {
        let mut chats: Vec<ChatId> = self
            .floor
            .router
            .offers()
            .filter(|o| o.agent == self.agents[agent])
            .map(|o| o.waiting.chat.clone())
            .collect();
        chats.sort();
        chats
    }

    fn apply(&mut self, op: &Op) -> Vec<RouterEvent> {
        let now = self.now;
        match op {
            Op::Arrive {
                queue,
                channel,
                needs,
            } => {
                self.next += 1;
                let ask = RoutingAsk {
                    skills: to_skills(needs),
                    ..RoutingAsk::default()
                };
                let (chat, events) = self
                    .floor
                    .arrive(QUEUES[*queue], CHANNELS[*channel], ask.clone(), now);
                self.asks
                    .insert(chat, (QueueId::from(QUEUES[*queue]), CHANNELS[*channel], ask));
                events
            }
            Op::Accept { agent, nth } => {
                let Some(chat) = self.offers_of(*agent).get(*nth).cloned() else {
                    return Vec::new();
                };
                self.floor
                    .router
                    .accept(&chat, &self.agents[*agent], now)
                    .expect("an offer of the agent");
                let channel = self.asks[&chat].1;
                self.held[*agent].push((chat, channel));
                Vec::new()
            }
            Op::Decline { agent, nth } => {
                let Some(chat) = self.offers_of(*agent).get(*nth).cloned() else {
                    return Vec::new();
                };
                self.floor
                    .router
                    .decline(&chat, &self.agents[*agent], now)
                    .expect("an offer of the agent")
            }
            Op::Close { agent, nth } => {
                if *nth >= self.held[*agent].len() {
                    return Vec::new();
                }
                let (_, channel) = self.held[*agent].remove(*nth);
                self.floor.router.load_down(&self.agents[*agent], channel, now)
            }
            Op::Presence { agent, online } => {
                let presence = if *online { Presence::Online } else { Presence::Away };
                self.floor
                    .router
                    .set_presence(&self.agents[*agent], presence, now)
                    .expect("a seat")
            }
            Op::SetSkills { agent, levels } => {
                self.skills[*agent] = to_skills(levels);
                self.floor
                    .router
                    .set_skills(&self.agents[*agent], to_skills(levels), now)
                    .expect("a seat")
            }
            Op::Wait { secs } => {
                self.now += Duration::seconds(*secs);
                self.floor.router.tick(self.now)
            }
        }
    }

    /// What `chat` requires at `step`, worked out from its ask and its queue's plan.
    fn needs(&self, chat: &ChatId, step: usize) -> Skills {
        let (queue, _, ask) = &self.asks[chat];
        let plan = &self.plans[queue];
        let ticket = plan.ticket(ask, &Skills::new());
        plan.needs_at(step, &ticket)
    }

    fn holds(&self, agent: usize, needs: &Skills) -> bool {
        needs
            .iter()
            .all(|(skill, level)| self.skills[agent].get(skill).is_some_and(|l| l >= level))
    }

    fn check(&self, events: &[RouterEvent]) {
        let router = &self.floor.router;
        router.check_invariants();
        // Offers made by this operation, per agent, on each channel.
        let mut made: HashMap<(usize, Channel), u32> = HashMap::new();
        for event in events {
            let RouterEvent::Offered { chat, agent, .. } = event else {
                continue;
            };
            let i = self
                .agents
                .iter()
                .position(|a| a == agent)
                .expect("a known agent");
            // A later event of the same operation may have taken the offer back.
            let Some(offer) = router.offer(chat) else { continue };
            let needs = self.needs(chat, offer.waiting.step);
            assert!(
                self.holds(i, &needs),
                "{chat} offered to {agent} lacking {needs:?} (holds {:?})",
                self.skills[i]
            );
            *made.entry((i, offer.waiting.channel)).or_default() += 1;
        }
        // The same offers again, in order: each against the chats still waiting, with the
        // agent's channel room as it was when that offer was made.
        let mut before: HashMap<(usize, Channel), u32> = HashMap::new();
        for event in events {
            let RouterEvent::Offered { chat, agent, .. } = event else {
                continue;
            };
            let Some(offer) = router.offer(chat) else { continue };
            let i = self
                .agents
                .iter()
                .position(|a| a == agent)
                .expect("a known agent");
            let plan = &self.plans[&offer.waiting.queue];
            let mine = (
                plan.effective_priority(offer.waiting.ticket.priority, offer.waiting.since, self.now),
                offer.waiting.since,
            );
            let seat = router.seat(agent).expect("a seat");
            let room = |channel: Channel| {
                let key = (i, channel);
                let used = seat.channel_load.get(&channel).copied().unwrap_or(0)
                    - made.get(&key).copied().unwrap_or(0)
                    + before.get(&key).copied().unwrap_or(0);
                seat.channel_limits
                    .get(&channel)
                    .is_none_or(|limit| used < *limit)
            };
            for (queue, waiting) in router.queues(self.now) {
                for w in waiting {
                    let eligible = router.is_open(queue)
                        && room(w.channel)
                        && !w.declined_by.contains(agent)
                        && self.holds(i, &self.needs(&w.chat, w.step));
                    let theirs = (
                        self.plans[queue].effective_priority(w.ticket.priority, w.since, self.now),
                        w.since,
                    );
                    assert!(
                        !eligible || theirs.0 < mine.0 || (theirs.0 == mine.0 && theirs.1 >= mine.1),
                        "{agent} was offered {chat} {mine:?} while {} {theirs:?} it could take waits",
                        w.chat
                    );
                }
            }
            *before.entry((i, offer.waiting.channel)).or_default() += 1;
        }
    }

    /// Everyone online with every skill and room for all: every chat must now be offered.
    fn drain(&mut self) {
        self.now += Duration::seconds(1000);
        let now = self.now;
        let router = &mut self.floor.router;
        router.tick(now);
        for (i, agent) in self.agents.iter().enumerate() {
            let spec = everything();
            self.skills[i] = spec.skills.clone();
            router.upsert_seat(agent, spec, now);
            router.set_presence(agent, Presence::Online, now).expect("a seat");
        }
        router.check_invariants();
        assert_eq!(
            router.waiting_count(),
            0,
            "chats starve though everyone could take them"
        );
    }
}

/// Room for all and every skill at the top level.
fn everything() -> SeatSpec {
    SeatSpec {
        limit: 1000,
        queues: Vec::new(),
        skills: SKILLS.iter().map(|s| (s.to_string(), 5)).collect(),
        channel_limits: BTreeMap::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn issue16_routing_never_offers_an_ineligible_agent_nor_skips_a_better_chat_nor_starves_one(
        levels in prop::array::uniform4(prop::array::uniform4(prop_oneof![2 => Just(0u8), 3 => 1u8..=5])),
        limits in prop::array::uniform4(1u32..=3),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut world = World::new(&levels, &limits);
        for op in &ops {
            let events = world.apply(op);
            world.check(&events);
        }
        world.drain();
    }
}
