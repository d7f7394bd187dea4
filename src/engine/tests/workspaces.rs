//! R27: three workspaces' engines on one store file, sharing one id counter as the registry
//! builds them, driven by random sequences of operations. Every text, address and agent of
//! workspace `n` carries the marker `w{n}-`; every output of a workspace (pushes, board frames,
//! replies, error texts, archive searches, history pages, KPIs, messages to customers) is
//! checked to carry no other workspace's marker, chat id or customer id.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::Duration;
use proptest::prelude::*;

use super::desk::Desk;
use crate::core::{Channel, ErrorCode, Role};
use crate::engine::fanout::ConnHandle;
use crate::engine::id_source::IdSource;
use crate::engine::supervision::{Watch, ROUND_GROUPS};
use crate::ids::ChatId;
use crate::protocol::supervisor::{AnalyticsQuery, SupervisorRequest};
use crate::protocol::{Caller, Request, Scope};
use crate::store::{Store, StoreOptions, WsKey};

const WORKSPACES: usize = 3;
const AGENTS: usize = 2;
const CUSTOMERS: usize = 3;
const CHANNELS: [Channel; 2] = [Channel::Whatsapp, Channel::Sms];

/// What a foreign request tries on another workspace's chat.
#[derive(Clone, Copy, Debug)]
enum Try {
    Reopen,
    Accept,
    Reply,
    Close,
    Transfer,
    History,
}

#[derive(Clone, Debug)]
enum Op {
    /// A customer of `ws` writes.
    Say {
        ws: usize,
        customer: usize,
        channel: usize,
    },
    Accept {
        ws: usize,
        agent: usize,
        chat: usize,
    },
    Reply {
        ws: usize,
        agent: usize,
        chat: usize,
    },
    Close {
        ws: usize,
        agent: usize,
        chat: usize,
    },
    Reopen {
        ws: usize,
        agent: usize,
        chat: usize,
    },
    Transfer {
        ws: usize,
        agent: usize,
        chat: usize,
        to: usize,
    },
    /// `ws`'s agent searches everyone's archive for a customer of workspace `target`.
    Search {
        ws: usize,
        agent: usize,
        target: usize,
        customer: usize,
    },
    History {
        ws: usize,
        agent: usize,
        chat: usize,
    },
    /// `ws`'s KPI report and whole board.
    Report {
        ws: usize,
    },
    /// `ws`'s agent tries a chat id of workspace `target`.
    Foreign {
        ws: usize,
        agent: usize,
        target: usize,
        chat: usize,
        what: Try,
    },
    /// Every clock moves; closed chats older than an hour leave memory (read from the store
    /// from then on).
    Advance {
        minutes: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let w = 0..WORKSPACES;
    let a = 0..AGENTS;
    let c = 0..16usize;
    let what = prop_oneof![
        Just(Try::Reopen),
        Just(Try::Accept),
        Just(Try::Reply),
        Just(Try::Close),
        Just(Try::Transfer),
        Just(Try::History),
    ];
    prop_oneof![
        4 => (w.clone(), 0..CUSTOMERS, 0..CHANNELS.len())
            .prop_map(|(ws, customer, channel)| Op::Say { ws, customer, channel }),
        3 => (w.clone(), a.clone(), c.clone()).prop_map(|(ws, agent, chat)| Op::Accept { ws, agent, chat }),
        2 => (w.clone(), a.clone(), c.clone()).prop_map(|(ws, agent, chat)| Op::Reply { ws, agent, chat }),
        2 => (w.clone(), a.clone(), c.clone()).prop_map(|(ws, agent, chat)| Op::Close { ws, agent, chat }),
        2 => (w.clone(), a.clone(), c.clone()).prop_map(|(ws, agent, chat)| Op::Reopen { ws, agent, chat }),
        1 => (w.clone(), a.clone(), c.clone(), a.clone())
            .prop_map(|(ws, agent, chat, to)| Op::Transfer { ws, agent, chat, to }),
        2 => (w.clone(), a.clone(), w.clone(), 0..CUSTOMERS)
            .prop_map(|(ws, agent, target, customer)| Op::Search { ws, agent, target, customer }),
        1 => (w.clone(), a.clone(), c.clone()).prop_map(|(ws, agent, chat)| Op::History { ws, agent, chat }),
        1 => w.clone().prop_map(|ws| Op::Report { ws }),
        2 => (w.clone(), a, w, c, what)
            .prop_map(|(ws, agent, target, chat, what)| Op::Foreign { ws, agent, target, chat, what }),
        1 => prop_oneof![Just(1i64), Just(90)].prop_map(|minutes| Op::Advance { minutes }),
    ]
}

/// The marker every text, address and agent id of workspace `ws` carries.
fn marker(ws: usize) -> String {
    format!("w{ws}-")
}

/// One workspace: its desk, its agents, its supervisor's board connection, the chat and
/// customer ids it made, and how many texts it wrote.
struct Tenant {
    desk: Desk,
    agents: Vec<Caller>,
    supervisor: Caller,
    board: ConnHandle,
    chats: Vec<ChatId>,
    ids: HashSet<String>,
    texts: usize,
}

struct World {
    tenants: Vec<Tenant>,
    dir: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl World {
    fn open() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("switchboard-r27-property-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(
            Store::open(&dir.join("switchboard.sqlite"), StoreOptions::default()).expect("the store opens"),
        );
        let ids = IdSource::starting_at(super::desk::start());
        let tenants = (0..WORKSPACES)
            .map(|ws| {
                let key = WsKey::new(ws as i64 + 1);
                let mut desk = Desk::on_sharing(store.workspace(key), ids.clone());
                let agents = (0..AGENTS)
                    .map(|a| desk.agent(&format!("{}a{a}", marker(ws)), 2))
                    .collect();
                let supervisor = desk.agent_as(&format!("{}sup", marker(ws)), Role::Supervisor, 0);
                let (board, _) = desk.engine.connect_supervisor(&supervisor.id);
                let subscribe = SupervisorRequest::Subscribe {
                    queues: None,
                    after_seq: None,
                };
                desk.engine
                    .supervise(&supervisor, board.id, "board", subscribe)
                    .expect("the supervisor subscribes");
                Tenant {
                    desk,
                    agents,
                    supervisor,
                    board,
                    chats: Vec::new(),
                    ids: HashSet::new(),
                    texts: 0,
                }
            })
            .collect();
        Self { tenants, dir }
    }

    fn chat(&self, ws: usize, i: usize) -> Option<ChatId> {
        let chats = &self.tenants[ws].chats;
        (!chats.is_empty()).then(|| chats[i % chats.len()].clone())
    }

    /// Runs `op`; answers what it produced, by workspace.
    fn apply(&mut self, op: &Op) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        match *op {
            Op::Say {
                ws,
                customer,
                channel,
            } => {
                let t = &mut self.tenants[ws];
                t.texts += 1;
                let from = format!("{}c{customer}", marker(ws));
                let text = format!("{}text-{}", marker(ws), t.texts);
                let receipt = t.desk.say(CHANNELS[channel], &from, &text);
                t.ids.insert(receipt.customer_id.as_str().to_owned());
                if let Some(chat) = &receipt.chat_id {
                    t.ids.insert(chat.as_str().to_owned());
                    if !t.chats.contains(chat) {
                        t.chats.push(chat.clone());
                    }
                }
                out.push((ws, serde_json::to_string(&receipt).expect("serializes")));
            }
            Op::Accept { ws, agent, chat }
            | Op::Reply { ws, agent, chat }
            | Op::Close { ws, agent, chat }
            | Op::Reopen { ws, agent, chat }
            | Op::History { ws, agent, chat }
            | Op::Transfer { ws, agent, chat, .. } => {
                let Some(chat_id) = self.chat(ws, chat) else {
                    return out;
                };
                let request = match *op {
                    Op::Accept { .. } => Request::Accept { chat_id },
                    Op::Reply { .. } => Request::SendMessage {
                        chat_id,
                        text: format!("{}reply", marker(ws)),
                        human_agent_tag: false,
                    },
                    Op::Close { .. } => Request::Close { chat_id },
                    Op::Reopen { .. } => Request::Reopen { chat_id },
                    Op::Transfer { to, .. } => Request::Transfer {
                        chat_id,
                        to: self.tenants[ws].agents[to].id.clone(),
                        force: false,
                    },
                    _ => Request::GetChat {
                        chat_id,
                        before_seq: None,
                        limit: None,
                    },
                };
                out.push((ws, self.request(ws, agent, request)));
            }
            Op::Search {
                ws,
                agent,
                target,
                customer,
            } => {
                let request = Request::ListArchive {
                    scope: Scope::All,
                    state: None,
                    query: Some(format!("{}c{customer}", marker(target))),
                    limit: None,
                    before: None,
                };
                let found = self.request(ws, agent, request);
                if target != ws {
                    assert!(
                        !found.contains("chat_id"),
                        "{}'s search for another workspace's customer found: {found}",
                        marker(ws)
                    );
                }
                out.push((ws, found));
            }
            Op::Report { ws } => {
                let engine = &self.tenants[ws].desk.engine;
                let report = engine.analytics_report(AnalyticsQuery::default());
                out.push((ws, serde_json::to_string(&report).expect("serializes")));
                let board = engine.board(&Watch::All);
                out.push((ws, serde_json::to_string(&board).expect("serializes")));
            }
            Op::Foreign {
                ws,
                agent,
                target,
                chat,
                what,
            } => {
                if target == ws {
                    return out;
                }
                let Some(chat_id) = self.chat(target, chat) else {
                    return out;
                };
                let request = match what {
                    Try::Reopen => Request::Reopen {
                        chat_id: chat_id.clone(),
                    },
                    Try::Accept => Request::Accept {
                        chat_id: chat_id.clone(),
                    },
                    Try::Reply => Request::SendMessage {
                        chat_id: chat_id.clone(),
                        text: format!("{}stray", marker(ws)),
                        human_agent_tag: false,
                    },
                    Try::Close => Request::Close {
                        chat_id: chat_id.clone(),
                    },
                    Try::Transfer => Request::Transfer {
                        chat_id: chat_id.clone(),
                        to: self.tenants[ws].agents[(agent + 1) % AGENTS].id.clone(),
                        force: false,
                    },
                    Try::History => Request::GetChat {
                        chat_id: chat_id.clone(),
                        before_seq: None,
                        limit: None,
                    },
                };
                let t = &self.tenants[ws];
                let refused = t
                    .desk
                    .request(&t.agents[agent], request)
                    .expect_err("an id of another workspace is refused");
                assert_eq!(
                    refused.code(),
                    ErrorCode::NotFound,
                    "{what:?} {chat_id}: {refused}"
                );
                // The id the caller sent may be named back; nothing else of its workspace.
                out.push((ws, refused.to_string().replace(chat_id.as_str(), "<sent>")));
            }
            Op::Advance { minutes } => {
                for t in &self.tenants {
                    t.desk.advance(Duration::minutes(minutes));
                    t.desk.engine.evict_archived();
                }
            }
        }
        out.extend(self.drain());
        out
    }

    /// A request of `ws`'s agent: the reply or the refusal, as text.
    fn request(&self, ws: usize, agent: usize, request: Request) -> String {
        let t = &self.tenants[ws];
        match t.desk.request(&t.agents[agent], request) {
            Ok(reply) => serde_json::to_string(&reply).expect("serializes"),
            Err(refusal) => refusal.to_string(),
        }
    }

    /// Everything the workspaces pushed since the last call: to agents, to the board, to
    /// customers.
    fn drain(&mut self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (ws, t) in self.tenants.iter_mut().enumerate() {
            let everyone: Vec<Caller> = t.agents.iter().chain([&t.supervisor]).cloned().collect();
            for who in &everyone {
                for push in t.desk.pushes(who) {
                    out.push((ws, serde_json::to_string(&push).expect("serializes")));
                }
            }
            t.desk.engine.publish_kpis();
            for group in 0..ROUND_GROUPS {
                t.desk.engine.supervision().round(group);
            }
            while let Ok(frame) = t.board.outbox.try_recv() {
                out.push((ws, String::from_utf8_lossy(&frame).into_owned()));
            }
            while let Ok(message) = t.desk.outbound.try_recv() {
                out.push((ws, serde_json::to_string(&message).expect("serializes")));
            }
        }
        out
    }

    /// Panics if an output of one workspace carries another's marker or ids.
    fn check(&self, outputs: &[(usize, String)], op: &Op) {
        for (ws, text) in outputs {
            for (other, t) in self.tenants.iter().enumerate().filter(|(o, _)| o != ws) {
                assert!(
                    !text.contains(&marker(other)),
                    "after {op:?}, an output of w{ws} carries w{other}'s marker: {text}"
                );
                if let Some(id) = t.ids.iter().find(|id| text.contains(id.as_str())) {
                    panic!("after {op:?}, an output of w{ws} carries w{other}'s id {id}: {text}");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn r27_property_no_output_of_one_workspace_reaches_another(ops in prop::collection::vec(op(), 1..60)) {
        let mut world = World::open();
        let first = world.drain();
        world.check(&first, &Op::Report { ws: 0 });
        for op in &ops {
            let outputs = world.apply(op);
            world.check(&outputs, op);
        }
        for t in &world.tenants {
            t.desk.check();
        }
    }
}

/// R27: a restored engine mints no id that it or another workspace of the file used, even when
/// the restarted process's clock starts where the last one's did (it went back).
#[test]
fn r27_restored_engines_mint_no_id_any_workspace_used() {
    let mut world = World::open();
    let mut used = HashSet::new();
    for ws in 0..WORKSPACES {
        for customer in 0..CUSTOMERS {
            world.apply(&Op::Say {
                ws,
                customer,
                channel: 0,
            });
        }
        used.extend(world.tenants[ws].ids.iter().cloned());
    }
    // Every engine stops; the file is opened again by a process whose clock reads what the
    // first one's read at its start, so that its counter starts at the very first id.
    let path = world.dir.join("switchboard.sqlite");
    for t in &mut world.tenants {
        t.desk.stop();
    }
    let store = Arc::new(Store::open(&path, StoreOptions::default()).expect("the store opens"));
    let ids = IdSource::starting_at(super::desk::start());
    for (ws, t) in world.tenants.iter_mut().enumerate() {
        let key = WsKey::new(ws as i64 + 1);
        let desk = Desk::on_sharing(store.workspace(key), ids.clone());
        let restored = desk
            .engine
            .restore(desk.engine.store().expect("a store"))
            .expect("the store restores");
        assert_eq!(restored.customers, CUSTOMERS, "w{ws}: {restored:?}");
        t.desk = desk;
    }
    // New customers in every workspace: none gets an id any workspace had.
    for ws in 0..WORKSPACES {
        let receipt = world.tenants[ws]
            .desk
            .say(Channel::Sms, &format!("{}new", marker(ws)), "hi");
        let chat = receipt.chat_id.expect("a chat").as_str().to_owned();
        for id in [receipt.customer_id.as_str().to_owned(), chat] {
            assert!(
                used.insert(id.clone()),
                "w{ws} minted {id}, which was used already"
            );
        }
    }
}
