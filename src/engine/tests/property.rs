//! Random sequences of operations and clock steps; after every step: R01, load equals active
//! chats, load over the limit only through R05 / a forced transfer / a lowered limit, and no
//! opted-out customer is reopened or pushed to.

use std::collections::{HashMap, HashSet};

use chrono::Duration;
use proptest::prelude::*;

use super::desk::Desk;
use crate::core::{Channel, ErrorCode, Presence, Role};
use crate::ids::ChatId;
use crate::protocol::{BotRequest, Caller, MessageKind, Request};

const AGENTS: usize = 3;
const CUSTOMERS: usize = 4;
const CHANNELS: [Channel; 3] = [Channel::Whatsapp, Channel::Sms, Channel::Wechat];

#[derive(Clone, Debug)]
enum Op {
    Say {
        customer: usize,
        channel: usize,
        stop: bool,
    },
    Bot {
        customer: usize,
        channel: usize,
        hand_over: bool,
    },
    Reopen {
        agent: usize,
        chat: usize,
    },
    Accept {
        agent: usize,
        chat: usize,
    },
    Decline {
        agent: usize,
        chat: usize,
    },
    Close {
        agent: usize,
        chat: usize,
    },
    Transfer {
        agent: usize,
        chat: usize,
        to: usize,
        force: bool,
    },
    Snooze {
        agent: usize,
        chat: usize,
        minutes: Option<i64>,
    },
    Template {
        agent: usize,
        chat: usize,
    },
    Presence {
        agent: usize,
        presence: Presence,
    },
    Limit {
        agent: usize,
        limit: u32,
    },
    Advance {
        minutes: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let a = 0..AGENTS;
    let c = 0..64usize;
    prop_oneof![
        4 => (0..CUSTOMERS, 0..CHANNELS.len(), prop::bool::weighted(0.15))
            .prop_map(|(customer, channel, stop)| Op::Say { customer, channel, stop }),
        1 => (0..CUSTOMERS, 0..CHANNELS.len(), any::<bool>())
            .prop_map(|(customer, channel, hand_over)| Op::Bot { customer, channel, hand_over }),
        3 => (a.clone(), c.clone()).prop_map(|(agent, chat)| Op::Reopen { agent, chat }),
        3 => (a.clone(), c.clone()).prop_map(|(agent, chat)| Op::Accept { agent, chat }),
        1 => (a.clone(), c.clone()).prop_map(|(agent, chat)| Op::Decline { agent, chat }),
        2 => (a.clone(), c.clone()).prop_map(|(agent, chat)| Op::Close { agent, chat }),
        1 => (a.clone(), c.clone(), a.clone(), any::<bool>())
            .prop_map(|(agent, chat, to, force)| Op::Transfer { agent, chat, to, force }),
        1 => (a.clone(), c.clone(), prop::option::of(1..600i64))
            .prop_map(|(agent, chat, minutes)| Op::Snooze { agent, chat, minutes }),
        1 => (a.clone(), c.clone()).prop_map(|(agent, chat)| Op::Template { agent, chat }),
        1 => (a.clone(), prop_oneof![Just(Presence::Online), Just(Presence::Away), Just(Presence::Offline)])
            .prop_map(|(agent, presence)| Op::Presence { agent, presence }),
        1 => (a, 0..4u32).prop_map(|(agent, limit)| Op::Limit { agent, limit }),
        2 => prop_oneof![Just(1i64), Just(31), Just(600), Just(1500), Just(3000)]
            .prop_map(|minutes| Op::Advance { minutes }),
    ]
}

struct World {
    desk: Desk,
    agents: Vec<Caller>,
    chats: Vec<(ChatId, Channel, String)>,
    opted_out: HashSet<(Channel, String)>,
    /// Agents allowed over their limit until their load comes back under it.
    excused: HashSet<usize>,
}

impl World {
    fn new() -> Self {
        let mut desk = Desk::new();
        let agents = (0..AGENTS)
            .map(|i| {
                let role = if i == 0 { Role::Supervisor } else { Role::Agent };
                desk.agent_as(&format!("a{i}"), role, 2)
            })
            .collect();
        Self {
            desk,
            agents,
            chats: Vec::new(),
            opted_out: HashSet::new(),
            excused: HashSet::new(),
        }
    }

    fn chat(&self, i: usize) -> Option<(ChatId, Channel, String)> {
        (!self.chats.is_empty()).then(|| self.chats[i % self.chats.len()].clone())
    }

    fn remember(&mut self, chat: Option<ChatId>, channel: Channel, from: &str) {
        if let Some(chat) = chat {
            if !self.chats.iter().any(|(c, _, _)| c == &chat) {
                self.chats.push((chat, channel, from.to_owned()));
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        let overrides_before: Vec<u64> = self.seats().iter().map(|s| s.3).collect();
        let mut lowered = None;
        match *op {
            Op::Say {
                customer,
                channel,
                stop,
            } => {
                let (channel, from) = (CHANNELS[channel], format!("c{customer}"));
                let receipt = self
                    .desk
                    .say(channel, &from, if stop { "#STOP" } else { "hello" });
                if stop {
                    self.opted_out.insert((channel, from.clone()));
                } else {
                    self.opted_out.remove(&(channel, from.clone()));
                }
                self.remember(receipt.chat_id, channel, &from);
            }
            Op::Bot {
                customer,
                channel,
                hand_over,
            } => {
                let (channel, from) = (CHANNELS[channel], format!("c{customer}"));
                let request = BotRequest {
                    from: from.clone(),
                    name: None,
                    sent_at: None,
                    ..Default::default()
                };
                let engine = &self.desk.engine;
                let result = if hand_over {
                    engine.hand_over(channel, request)
                } else {
                    engine.start_bot(channel, request)
                };
                if let Ok(receipt) = result {
                    self.remember(receipt.chat_id, channel, &from);
                }
            }
            Op::Reopen { agent, chat } | Op::Template { agent, chat } => {
                let Some((chat_id, channel, from)) = self.chat(chat) else {
                    return;
                };
                let request = match op {
                    Op::Reopen { .. } => Request::Reopen { chat_id },
                    _ => Request::SendTemplate {
                        chat_id,
                        template: "t".into(),
                        params: vec![],
                    },
                };
                let result = self.desk.request(&self.agents[agent], request);
                if self.opted_out.contains(&(channel, from)) {
                    let code = result.as_ref().err().map(|e| e.code());
                    assert!(
                        matches!(code, Some(ErrorCode::OptedOut | ErrorCode::ActiveElsewhere)),
                        "opted-out customer reached by {op:?}: {result:?}"
                    );
                }
            }
            Op::Accept { agent, chat } | Op::Decline { agent, chat } | Op::Close { agent, chat } => {
                let Some((chat_id, ..)) = self.chat(chat) else {
                    return;
                };
                let request = match op {
                    Op::Accept { .. } => Request::Accept { chat_id },
                    Op::Decline { .. } => Request::Decline { chat_id },
                    _ => Request::Close { chat_id },
                };
                let _ = self.desk.request(&self.agents[agent], request);
            }
            Op::Transfer {
                agent,
                chat,
                to,
                force,
            } => {
                let Some((chat_id, ..)) = self.chat(chat) else {
                    return;
                };
                let to = self.agents[to].id.clone();
                let _ = self
                    .desk
                    .request(&self.agents[agent], Request::Transfer { chat_id, to, force });
            }
            Op::Snooze { agent, chat, minutes } => {
                let Some((chat_id, ..)) = self.chat(chat) else {
                    return;
                };
                let until = minutes.map(|m| self.desk.engine.now() + Duration::minutes(m));
                let _ = self
                    .desk
                    .request(&self.agents[agent], Request::Snooze { chat_id, until });
            }
            Op::Presence { agent, presence } => {
                let _ = self.desk.request(
                    &self.agents[agent],
                    Request::SetPresence {
                        presence: presence.into(),
                    },
                );
            }
            Op::Limit { agent, limit } => {
                if limit < self.seats()[agent].2 {
                    lowered = Some(agent);
                }
                self.desk
                    .engine
                    .set_limit(&self.agents[agent].id, limit)
                    .expect("agent exists");
            }
            Op::Advance { minutes } => self.desk.advance(Duration::minutes(minutes)),
        }
        self.check(&overrides_before, lowered);
    }

    fn seats(&self) -> Vec<(Presence, u32, u32, u64)> {
        self.agents
            .iter()
            .map(|a| self.desk.engine.seat(&a.id).expect("seated"))
            .collect()
    }

    fn check(&mut self, overrides_before: &[u64], lowered: Option<usize>) {
        self.desk.check();
        for (i, (_, load, limit, overrides)) in self.seats().into_iter().enumerate() {
            if overrides > overrides_before[i] || lowered == Some(i) {
                self.excused.insert(i);
            }
            if load <= limit {
                self.excused.remove(&i);
            }
            assert!(
                load <= limit || self.excused.contains(&i),
                "agent {i} at {load}/{limit} without an override"
            );
        }
        // Nothing reached an opted-out customer: no notice, no template.
        let mut sent: HashMap<(Channel, String), usize> = HashMap::new();
        while let Ok(m) = self.desk.outbound.try_recv() {
            if matches!(m.kind, MessageKind::Notice | MessageKind::Template) {
                *sent.entry((m.channel.into(), m.to)).or_default() += 1;
            }
        }
        for key in sent.keys() {
            assert!(!self.opted_out.contains(key), "pushed to opted-out {key:?}");
        }
        for agent in self.agents.clone() {
            self.desk.pushes(&agent);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn rules_hold_after_every_step_of_any_sequence(ops in prop::collection::vec(op(), 1..80)) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
        }
    }
}
