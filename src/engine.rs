//! The runtime around the core: state in concurrent maps, timers, and pushes.
//!
//! # Where data enters and which lock it takes
//!
//! Every operation is synchronous and holds no lock across an `.await` (there are none).
//! Locks are taken in this order, and never in another:
//!
//! 1. one customer's file (`customers`): all rules about that customer's chats run under it,
//!    so R01 and "exactly one reopen wins" (R03) hold by construction. Never two at once.
//! 2. the router (`router`): capacity, queues and offers, for every load change.
//! 3. the timers, and each agent's fan-out hub (innermost; nothing is taken under them).
//!
//! Map shard guards (`DashMap`) are never held while taking any of these: the `Arc` inside is
//! cloned out first. Pushes caused under a lock are delivered under it, so an agent sees the
//! events of one chat (or of routing) in the order they happened.

pub mod fanout;
pub mod outbound;
pub mod ticker;
pub mod timers;
mod views;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::Duration;
use dashmap::DashMap;
use parking_lot::Mutex;

use crate::clock::{SharedClock, Timestamp};
use crate::core::{
    AgentProfile, Channel, ChatState, CustomerFile, Inbound, MessageKind, Policies, Presence, Profile,
    Rejection, Router, RouterEvent, SnoozeUntil, Waiting,
};
use crate::ids::{AgentId, ChatId, CustomerId, QueueId};
use crate::protocol::{
    ActivatedBy, ArchiveEntry, BotRequest, Caller, ChatView, InboundMessage, IngressReceipt, OfferView,
    OutboundMessage, Push, ReplyResult, Request, Scope, Snapshot,
};
use fanout::{ConnHandle, ConnId, Fanout, Resumed};
use outbound::Outbound;
use timers::{Timer, Timers};

/// How the engine behaves; see `config.rs` for the file format and defaults.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Every channel's policy.
    pub policies: Policies,
    /// How long an agent has to accept an offer (R06).
    pub accept_timeout: Duration,
    /// How long an agent without connections keeps its presence (R17).
    pub grace: Duration,
    /// Frames a connection's outbox holds before the connection is cut off as too slow.
    pub outbox_capacity: usize,
    /// Pushes kept per agent for resume (R17).
    pub log_capacity: usize,
    /// Queues and the channels they take; a channel in none gets a queue of its own name.
    pub queues: Vec<(QueueId, Vec<Channel>)>,
    /// The automatic notice a customer gets when an agent reopens its chat (R04).
    pub reopen_notice: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            policies: Policies::default(),
            accept_timeout: Duration::seconds(30),
            grace: Duration::seconds(60),
            outbox_capacity: 1024,
            log_capacity: 512,
            queues: Vec::new(),
            reopen_notice:
                "An agent has reopened your conversation. Reply here to continue, or send #STOP to end it."
                    .into(),
        }
    }
}

/// An agent as the admin API lists it.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct AgentStatus {
    /// Its standing data.
    #[serde(flatten)]
    pub profile: AgentProfile,
    /// Whether it takes chats.
    pub presence: Presence,
    /// Active and snoozed chats.
    pub load: u32,
    /// Pending offers.
    pub offered: u32,
    /// Times a chat took it over its limit.
    pub overrides: u64,
    /// Open connections.
    pub connections: usize,
}

/// A queue as the admin API lists it.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct QueueView {
    /// Its id.
    pub id: QueueId,
    /// Waiting chats, oldest (next) first.
    pub waiting: Vec<WaitingView>,
}

/// One waiting chat.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct WaitingView {
    /// The chat.
    pub chat_id: ChatId,
    /// Its customer.
    pub customer_id: CustomerId,
    /// 1 = next.
    pub position: usize,
    /// Since when.
    #[serde(with = "crate::clock::rfc3339")]
    #[schemars(with = "Timestamp")]
    pub since: Timestamp,
}

/// The routing engine.
pub struct Engine {
    clock: SharedClock,
    config: EngineConfig,
    queue_of: HashMap<Channel, QueueId>,
    agents: DashMap<AgentId, AgentProfile>,
    tokens: DashMap<String, AgentId>,
    customers: DashMap<CustomerId, Arc<Mutex<CustomerFile>>>,
    identities: DashMap<(Channel, String), CustomerId>,
    chats: DashMap<ChatId, CustomerId>,
    router: Mutex<Router>,
    timers: Timers,
    fanout: Fanout,
    /// Which connections show which archive entries (agent, to push to; conn, to unwatch).
    watchers: DashMap<ChatId, Vec<(AgentId, ConnId)>>,
    watching: DashMap<ConnId, Vec<ChatId>>,
    /// What an offer of a queued chat shows, captured under its customer's lock at enqueue,
    /// since routing may offer it later while holding only the router.
    offer_cards: DashMap<ChatId, ChatView>,
    outbound: Outbound,
    next_id: AtomicU64,
}

impl Engine {
    /// An engine with no agents and no customers.
    pub fn new(config: EngineConfig, clock: SharedClock, outbound: Outbound) -> Arc<Self> {
        let mut queue_of = HashMap::new();
        let mut router = Router::new(config.accept_timeout);
        for (queue, channels) in &config.queues {
            router.add_queue(queue.clone());
            for channel in channels {
                queue_of.insert(*channel, queue.clone());
            }
        }
        for channel in Channel::ALL {
            let queue = queue_of
                .entry(channel)
                .or_insert_with(|| QueueId::from(channel.as_str()));
            router.add_queue(queue.clone());
        }
        // Ids start from the clock so that those of a restarted engine do not collide.
        let first_id = clock.now().timestamp_millis().max(0) as u64 * 1000;
        let fanout = Fanout::new(config.outbox_capacity, config.log_capacity);
        Arc::new(Self {
            clock,
            config,
            queue_of,
            agents: DashMap::new(),
            tokens: DashMap::new(),
            customers: DashMap::new(),
            identities: DashMap::new(),
            chats: DashMap::new(),
            router: Mutex::new(router),
            timers: Timers::default(),
            fanout,
            watchers: DashMap::new(),
            watching: DashMap::new(),
            offer_cards: DashMap::new(),
            outbound,
            next_id: AtomicU64::new(first_id),
        })
    }

    /// The clock the engine reads.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The pending timers.
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// The fan-out, for connection counts.
    pub fn fanout(&self) -> &Fanout {
        &self.fanout
    }

    fn new_id(&self, prefix: &str) -> String {
        format!("{prefix}{:x}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    // ----- agents -------------------------------------------------------------------------

    /// Creates or updates an agent; `token` (if given) then identifies it on the WebSocket.
    pub fn upsert_agent(&self, profile: AgentProfile, token: Option<String>) {
        let id = profile.id.clone();
        let (limit, queues) = (profile.limit, profile.queues.clone());
        let existed = self.agents.insert(id.clone(), profile).is_some();
        if let Some(token) = token {
            self.tokens.retain(|_, a| a != &id);
            self.tokens.insert(token, id.clone());
        }
        let now = self.now();
        self.with_router(|r| ((), r.upsert_seat(&id, limit, queues, now)));
        if existed {
            self.push_limit(&id);
        }
    }

    /// Removes an agent. Its chats stay as they are; its pending offers go back to the queue.
    pub fn remove_agent(&self, id: &AgentId) -> Result<(), Rejection> {
        self.agents.remove(id).ok_or_else(|| Rejection::NotFound {
            what: "agent",
            id: id.to_string(),
        })?;
        self.tokens.retain(|_, a| a != id);
        let now = self.now();
        self.with_router(|r| ((), r.remove_seat(id, now)));
        Ok(())
    }

    /// The agent a token stands for.
    pub fn agent_by_token(&self, token: &str) -> Option<AgentProfile> {
        let id = self.tokens.get(token)?.clone();
        self.agent(&id)
    }

    /// One agent's profile.
    pub fn agent(&self, id: &AgentId) -> Option<AgentProfile> {
        self.agents.get(id).map(|a| a.clone())
    }

    /// Changes an agent's limit live; lowering it never drops a chat (R06).
    pub fn set_limit(&self, id: &AgentId, limit: u32) -> Result<(), Rejection> {
        self.agents
            .get_mut(id)
            .ok_or_else(|| Rejection::NotFound {
                what: "agent",
                id: id.to_string(),
            })?
            .limit = limit;
        let now = self.now();
        self.with_router(|r| match r.set_limit(id, limit, now) {
            Ok(events) => (Ok(()), events),
            Err(e) => (Err(e), Vec::new()),
        })?;
        self.push_limit(id);
        Ok(())
    }

    fn push_limit(&self, id: &AgentId) {
        let router = self.router.lock();
        if let Some(seat) = router.seat(id) {
            self.fanout.push(
                id,
                Push::LimitChanged {
                    limit: seat.limit,
                    load: seat.load,
                },
            );
        }
    }

    /// Every agent with its live figures, sorted by id.
    pub fn agent_statuses(&self) -> Vec<AgentStatus> {
        let mut profiles: Vec<AgentProfile> = self.agents.iter().map(|a| a.clone()).collect();
        profiles.sort_by(|a, b| a.id.cmp(&b.id));
        let connections: Vec<usize> = profiles.iter().map(|p| self.fanout.connections(&p.id)).collect();
        let router = self.router.lock();
        profiles
            .into_iter()
            .zip(connections)
            .filter_map(|(profile, connections)| {
                let seat = router.seat(&profile.id)?;
                Some(AgentStatus {
                    presence: seat.presence,
                    load: seat.load,
                    offered: seat.offered,
                    overrides: seat.overrides,
                    connections,
                    profile,
                })
            })
            .collect()
    }

    /// Every queue with its waiting chats.
    pub fn queue_views(&self) -> Vec<QueueView> {
        let router = self.router.lock();
        router
            .queues()
            .map(|(id, waiting)| QueueView {
                id: id.clone(),
                waiting: waiting
                    .iter()
                    .enumerate()
                    .map(|(i, w)| WaitingView {
                        chat_id: w.chat.clone(),
                        customer_id: w.customer.clone(),
                        position: i + 1,
                        since: w.since,
                    })
                    .collect(),
            })
            .collect()
    }

    // ----- connections --------------------------------------------------------------------

    /// A new connection of `agent`, and the last sequence number pushed before it joined.
    /// An offline agent comes online with it.
    pub fn connect(&self, agent: &AgentId) -> (ConnHandle, u64) {
        let (handle, seq) = self.fanout.connect(agent);
        let now = self.now();
        self.with_router(|r| {
            let offline = r.seat(agent).is_some_and(|s| s.presence == Presence::Offline);
            let events = if offline {
                r.set_presence(agent, Presence::Online, now).unwrap_or_default()
            } else {
                Vec::new()
            };
            ((), events)
        });
        (handle, seq)
    }

    /// A connection ended. The agent keeps its chats; if no connection comes back within the
    /// grace period it is set offline (R17).
    pub fn disconnect(&self, agent: &AgentId, conn: ConnId) {
        self.unwatch_all(conn);
        if let Some(epoch) = self.fanout.disconnect(agent, conn) {
            self.timers.schedule(
                self.now() + self.config.grace,
                Timer::Grace {
                    agent: agent.clone(),
                    epoch,
                },
            );
        }
    }

    // ----- agent requests -----------------------------------------------------------------

    /// Carries out one request of `caller` on connection `conn`.
    pub fn handle(&self, caller: &Caller, conn: ConnId, request: Request) -> Result<ReplyResult, Rejection> {
        let now = self.now();
        let me = &caller.id;
        match request {
            Request::Reopen { chat_id } => self.reopen(me, &chat_id, now),
            Request::SendMessage {
                chat_id,
                text,
                human_agent_tag,
            } => self.send_message(me, &chat_id, &text, human_agent_tag, now),
            Request::SendTemplate {
                chat_id,
                template,
                params,
            } => self.send_template(me, &chat_id, template, params, now),
            Request::Accept { chat_id } => self.accept(me, &chat_id, now),
            Request::Decline { chat_id } => {
                // The card stays: the chat waits or is offered to someone else.
                self.with_router(|r| match r.decline(&chat_id, me, now) {
                    Ok(events) => (Ok(()), events),
                    Err(e) => (Err(e), Vec::new()),
                })?;
                Ok(ReplyResult::Done)
            }
            Request::Transfer { chat_id, to, force } => {
                if force && !caller.role.supervises() {
                    return Err(Rejection::Forbidden(
                        "only supervisors and admins may force a transfer",
                    ));
                }
                self.transfer(me, &chat_id, &to, force, now)
            }
            Request::Close { chat_id } => self.close(me, &chat_id, now),
            Request::Snooze { chat_id, until } => {
                let until = until.map_or(SnoozeUntil::Reply, |at| SnoozeUntil::Time { at });
                self.snooze(me, &chat_id, until, now)
            }
            Request::SetPresence { presence } => {
                self.with_router(|r| match r.set_presence(me, presence, now) {
                    Ok(events) => (Ok(()), events),
                    Err(e) => (Err(e), Vec::new()),
                })?;
                self.fanout.push(me, Push::PresenceChanged { presence });
                Ok(ReplyResult::Presence { presence })
            }
            Request::ListArchive {
                scope,
                state,
                query,
                limit,
            } => Ok(ReplyResult::Archive {
                entries: self.archive(
                    me,
                    scope,
                    state,
                    query.as_deref(),
                    limit.unwrap_or(50).min(500),
                    now,
                ),
            }),
            Request::WatchArchive { chat_ids } => {
                if chat_ids.len() > 1000 {
                    return Err(Rejection::Invalid(format!(
                        "watch_archive takes at most 1000 chat ids, got {}",
                        chat_ids.len()
                    )));
                }
                self.watch(me, conn, chat_ids);
                Ok(ReplyResult::Done)
            }
            Request::GetChat { chat_id } => self.history(caller, &chat_id),
            Request::Resume { after_seq } => match self.fanout.resume(me, conn, after_seq) {
                Resumed::Replayed(replayed) => Ok(ReplyResult::Resumed { replayed }),
                Resumed::Gone => Ok(ReplyResult::Snapshot(self.snapshot(me))),
            },
            Request::Snapshot => Ok(ReplyResult::Snapshot(self.snapshot(me))),
            Request::Ack { seq } => {
                let last = self.fanout.seq(me);
                if seq > last {
                    return Err(Rejection::Invalid(format!(
                        "ack for seq {seq}, but the last push to you was {last}"
                    )));
                }
                Ok(ReplyResult::Done)
            }
            Request::Ping => Ok(ReplyResult::Pong),
        }
    }

    fn file_of_chat(&self, chat: &ChatId) -> Result<Arc<Mutex<CustomerFile>>, Rejection> {
        let customer = self
            .chats
            .get(chat)
            .map(|c| c.clone())
            .ok_or_else(|| Rejection::NotFound {
                what: "chat",
                id: chat.to_string(),
            })?;
        self.customers
            .get(&customer)
            .map(|f| f.clone())
            .ok_or_else(|| Rejection::NotFound {
                what: "customer",
                id: customer.to_string(),
            })
    }

    fn chat_view(&self, file: &CustomerFile, chat: &ChatId) -> ChatView {
        let chat = file.chat(chat).expect("the caller found the chat in this file");
        views::chat_view(file, chat, self.config.policies.of(chat.channel))
    }

    fn channel_of(file: &CustomerFile, chat: &ChatId) -> Result<Channel, Rejection> {
        file.chat(chat)
            .map(|c| c.channel)
            .ok_or_else(|| Rejection::NotFound {
                what: "chat",
                id: chat.to_string(),
            })
    }

    fn reopen(&self, me: &AgentId, chat_id: &ChatId, now: Timestamp) -> Result<ReplyResult, Rejection> {
        let file = self.file_of_chat(chat_id)?;
        let mut file = file.lock();
        let channel = Self::channel_of(&file, chat_id)?;
        let reopened = file.reopen(chat_id, me, self.config.policies.of(channel), now)?;
        self.timers.schedule(
            reopened.expires_at,
            Timer::ReopenExpiry {
                customer: file.id.clone(),
                chat: chat_id.clone(),
                reopened_at: now,
            },
        );
        let chat = self.chat_view(&file, chat_id);
        self.fanout.push(me, Push::ChatReopened { chat: chat.clone() });
        self.send_out(
            &file,
            chat_id,
            MessageKind::Notice,
            self.config.reopen_notice.clone(),
            None,
        );
        self.archive_changed(&file, now);
        Ok(ReplyResult::Chat { chat })
    }

    fn send_message(
        &self,
        me: &AgentId,
        chat_id: &ChatId,
        text: &str,
        human_agent_tag: bool,
        now: Timestamp,
    ) -> Result<ReplyResult, Rejection> {
        let file = self.file_of_chat(chat_id)?;
        let mut file = file.lock();
        let channel = Self::channel_of(&file, chat_id)?;
        file.send(
            chat_id,
            me,
            text,
            human_agent_tag,
            self.config.policies.of(channel),
            now,
        )?;
        if let Some(message) = file.chat(chat_id).and_then(|c| c.messages.last()) {
            self.fanout.push(
                me,
                Push::MessageSent {
                    chat_id: chat_id.clone(),
                    message: message.clone(),
                },
            );
        }
        let mut message = self.outbound_message(&file, chat_id, MessageKind::Text, text.to_owned(), Some(me));
        message.human_agent_tag = human_agent_tag;
        self.outbound.send(message);
        Ok(ReplyResult::Done)
    }

    fn send_template(
        &self,
        me: &AgentId,
        chat_id: &ChatId,
        template: String,
        params: Vec<String>,
        now: Timestamp,
    ) -> Result<ReplyResult, Rejection> {
        let file = self.file_of_chat(chat_id)?;
        let mut file = file.lock();
        let channel = Self::channel_of(&file, chat_id)?;
        let text = if params.is_empty() {
            template.clone()
        } else {
            format!("{template}({})", params.join(", "))
        };
        file.push_template(chat_id, me, &text, self.config.policies.of(channel), now)?;
        let mut message = self.outbound_message(&file, chat_id, MessageKind::Template, template, Some(me));
        message.params = params;
        self.outbound.send(message);
        self.archive_changed(&file, now);
        Ok(ReplyResult::Done)
    }

    fn accept(&self, me: &AgentId, chat_id: &ChatId, now: Timestamp) -> Result<ReplyResult, Rejection> {
        let file = self.file_of_chat(chat_id)?;
        let mut file = file.lock();
        let state = file.chat(chat_id).map(|c| c.state);
        if state != Some(ChatState::Queued) {
            return Err(Rejection::NotFound {
                what: "offer of chat",
                id: chat_id.to_string(),
            });
        }
        let load = self.with_router(|r| match r.accept(chat_id, me, now) {
            Ok(_) => (
                Ok(r.seat(me).map(|s| (s.load, s.limit)).unwrap_or_default()),
                Vec::new(),
            ),
            Err(e) => (Err(e), Vec::new()),
        })?;
        file.accept(chat_id, me)
            .expect("a queued chat whose offer the router accepted becomes active");
        self.offer_cards.remove(chat_id);
        let chat = self.chat_view(&file, chat_id);
        self.fanout.push(
            me,
            Push::ChatActivated {
                chat: chat.clone(),
                by: ActivatedBy::Accepted,
                load: load.0,
                limit: load.1,
                over_limit: false,
            },
        );
        self.archive_changed(&file, now);
        Ok(ReplyResult::Chat { chat })
    }

    fn transfer(
        &self,
        me: &AgentId,
        chat_id: &ChatId,
        to: &AgentId,
        force: bool,
        now: Timestamp,
    ) -> Result<ReplyResult, Rejection> {
        if to == me {
            return Err(Rejection::Invalid(
                "a chat cannot be transferred to its owner".into(),
            ));
        }
        let file = self.file_of_chat(chat_id)?;
        let mut file = file.lock();
        file.transfer(chat_id, me, to)?;
        let moved = self.with_router(|r| match r.transfer(me, to, force, now) {
            Ok((change, events)) => (Ok(change), events),
            Err(e) => (Err(e), Vec::new()),
        });
        let change = match moved {
            Ok(change) => change,
            Err(e) => {
                file.transfer(chat_id, to, me)
                    .expect("undoing the transfer just made");
                return Err(e);
            }
        };
        let chat = self.chat_view(&file, chat_id);
        self.fanout.push(
            me,
            Push::ChatTransferred {
                chat_id: chat_id.clone(),
                to: to.clone(),
            },
        );
        self.fanout.push(
            to,
            Push::ChatActivated {
                chat: chat.clone(),
                by: ActivatedBy::Transfer,
                load: change.load,
                limit: change.limit,
                over_limit: change.over_limit,
            },
        );
        self.archive_changed(&file, now);
        Ok(ReplyResult::Chat { chat })
    }

    fn close(&self, me: &AgentId, chat_id: &ChatId, now: Timestamp) -> Result<ReplyResult, Rejection> {
        let file = self.file_of_chat(chat_id)?;
        let mut file = file.lock();
        let prior = file.close(chat_id, me, now)?;
        if prior.counts_toward_load() {
            self.with_router(|r| ((), r.load_down(me, now)));
        }
        self.fanout.push(
            me,
            Push::ChatClosed {
                chat_id: chat_id.clone(),
                reason: crate::core::CloseReason::Agent,
            },
        );
        self.archive_changed(&file, now);
        Ok(ReplyResult::Done)
    }

    fn snooze(
        &self,
        me: &AgentId,
        chat_id: &ChatId,
        until: SnoozeUntil,
        now: Timestamp,
    ) -> Result<ReplyResult, Rejection> {
        let file = self.file_of_chat(chat_id)?;
        let mut file = file.lock();
        file.snooze(chat_id, me, until, now)?;
        if let SnoozeUntil::Time { at } = until {
            self.timers.schedule(
                at,
                Timer::SnoozeEnd {
                    customer: file.id.clone(),
                    chat: chat_id.clone(),
                },
            );
        }
        let chat = self.chat_view(&file, chat_id);
        self.fanout.push(me, Push::ChatUpdated { chat: chat.clone() });
        self.archive_changed(&file, now);
        Ok(ReplyResult::Chat { chat })
    }

    fn history(&self, caller: &Caller, chat_id: &ChatId) -> Result<ReplyResult, Rejection> {
        let file = self.file_of_chat(chat_id)?;
        let file = file.lock();
        let chat = file.chat(chat_id).ok_or_else(|| Rejection::NotFound {
            what: "chat",
            id: chat_id.to_string(),
        })?;
        if chat.owner.as_ref() != Some(&caller.id) && !caller.role.supervises() {
            return Err(Rejection::NotOwner {
                owner: chat.owner.clone(),
            });
        }
        Ok(ReplyResult::History {
            chat: self.chat_view(&file, chat_id),
            messages: chat.messages.clone(),
        })
    }

    /// Archive entries, newest first (R16). Scans every customer: fine in memory, and the
    /// durable archive answers this from its index instead.
    fn archive(
        &self,
        me: &AgentId,
        scope: Scope,
        state: Option<ChatState>,
        query: Option<&str>,
        limit: u32,
        now: Timestamp,
    ) -> Vec<ArchiveEntry> {
        let files: Vec<Arc<Mutex<CustomerFile>>> = self.customers.iter().map(|f| f.clone()).collect();
        let mut entries: Vec<(Timestamp, ArchiveEntry)> = Vec::new();
        for file in files {
            let file = file.lock();
            if query.is_some_and(|q| !views::matches_query(&file, q)) {
                continue;
            }
            for chat in &file.chats {
                let mine = chat.owner.as_ref() == Some(me);
                if (scope == Scope::Mine && !mine) || state.is_some_and(|s| s != chat.state) {
                    continue;
                }
                let newest = chat.closed.map_or(chat.created_at, |(at, _)| at);
                let policy = self.config.policies.of(chat.channel);
                entries.push((newest, views::archive_entry(&file, chat, policy, now)));
            }
        }
        entries.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.chat_id.cmp(&b.1.chat_id)));
        entries.into_iter().take(limit as usize).map(|(_, e)| e).collect()
    }

    fn snapshot(&self, me: &AgentId) -> Snapshot {
        let seq = self.fanout.seq(me);
        let files: Vec<Arc<Mutex<CustomerFile>>> = self.customers.iter().map(|f| f.clone()).collect();
        let mut chats = Vec::new();
        for file in files {
            let file = file.lock();
            if let Some(chat) = file.live().filter(|c| c.owner.as_ref() == Some(me)) {
                chats.push(self.chat_view(&file, &chat.id));
            }
        }
        let router = self.router.lock();
        let offers = router
            .offers()
            .filter(|o| &o.agent == me)
            .filter_map(|o| {
                Some(OfferView {
                    chat: self.offer_cards.get(&o.waiting.chat)?.clone(),
                    queue: o.waiting.queue.clone(),
                    expires_at: o.expires_at,
                })
            })
            .collect();
        let seat = router.seat(me);
        Snapshot {
            seq,
            presence: seat.map_or(Presence::Offline, |s| s.presence),
            load: seat.map_or(0, |s| s.load),
            limit: seat.map_or(0, |s| s.limit),
            chats,
            offers,
        }
    }

    // ----- archive subscriptions ------------------------------------------------------------

    fn watch(&self, me: &AgentId, conn: ConnId, chat_ids: Vec<ChatId>) {
        self.unwatch_all(conn);
        for chat in &chat_ids {
            self.watchers
                .entry(chat.clone())
                .or_default()
                .push((me.clone(), conn));
        }
        self.watching.insert(conn, chat_ids);
    }

    fn unwatch_all(&self, conn: ConnId) {
        let Some((_, chats)) = self.watching.remove(&conn) else {
            return;
        };
        for chat in chats {
            if let Some(mut w) = self.watchers.get_mut(&chat) {
                w.retain(|(_, c)| *c != conn);
            }
            self.watchers.remove_if(&chat, |_, w| w.is_empty());
        }
    }

    /// Tells every agent watching one of this customer's entries how it looks now (R04).
    fn archive_changed(&self, file: &CustomerFile, now: Timestamp) {
        for chat in &file.chats {
            let Some(watchers) = self.watchers.get(&chat.id).map(|w| w.clone()) else {
                continue;
            };
            let mut agents: Vec<AgentId> = watchers.into_iter().map(|(a, _)| a).collect();
            agents.sort();
            agents.dedup();
            let entry = views::archive_entry(file, chat, self.config.policies.of(chat.channel), now);
            for agent in agents {
                self.fanout
                    .push(&agent, Push::ArchiveEntryChanged { entry: entry.clone() });
            }
        }
    }

    // ----- channel ingress ------------------------------------------------------------------

    /// The customer's file for an address, created on first contact. Concurrent first
    /// messages of one customer find the same file (R01).
    fn file_for(&self, channel: Channel, from: &str, profile: Profile) -> Arc<Mutex<CustomerFile>> {
        let id = self
            .identities
            .entry((channel, from.to_owned()))
            .or_insert_with(|| CustomerId::from(self.new_id("cu")))
            .clone();
        self.customers
            .entry(id.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(CustomerFile::new(
                    id,
                    channel,
                    from.to_owned(),
                    profile,
                )))
            })
            .clone()
    }

    /// A customer's message arrives on `channel` (R05, R08, R10, R11, R13).
    pub fn customer_message(
        &self,
        channel: Channel,
        message: InboundMessage,
    ) -> Result<IngressReceipt, Rejection> {
        let now = self.now();
        let policy = self.config.policies.of(channel);
        let len = message.text.chars().count();
        if len > policy.max_len {
            return Err(Rejection::MessageTooLong {
                len,
                max: policy.max_len,
                channel,
            });
        }
        let InboundMessage {
            from,
            text,
            name,
            email,
            phone,
        } = message;
        let profile = Profile { name, email, phone };
        let file = self.file_for(channel, &from, profile.clone());
        let mut file = file.lock();
        file.learn(channel, &from, profile);
        let inbound = file.receive(channel, &text, policy, now, || ChatId::from(self.new_id("ch")));
        let chat_id = match inbound {
            Inbound::Appended { chat, owner, .. } => {
                if let Some(owner) = owner {
                    self.push_customer_message(&file, &chat, &owner);
                }
                Some(chat)
            }
            Inbound::ReopenAnswered { chat, agent } => {
                let change = self.with_router(|r| (r.load_up(&agent), Vec::new()));
                let (load, limit, over_limit) =
                    change.map_or((0, 0, false), |c| (c.load, c.limit, c.over_limit));
                self.fanout.push(
                    &agent,
                    Push::ChatActivated {
                        chat: self.chat_view(&file, &chat),
                        by: ActivatedBy::CustomerReplied,
                        load,
                        limit,
                        over_limit,
                    },
                );
                self.push_customer_message(&file, &chat, &agent);
                Some(chat)
            }
            Inbound::SnoozeEnded { chat, agent } => {
                self.push_snooze_ended(&file, &chat, &agent);
                self.push_customer_message(&file, &chat, &agent);
                Some(chat)
            }
            Inbound::NeedsRouting { chat, sticky, .. } => {
                self.route_new(&file, &chat, sticky.as_ref(), now);
                Some(chat)
            }
            Inbound::Stopped { ended } => ended.map(|ended| {
                match ended.prior {
                    ChatState::Active | ChatState::Snoozed => {
                        if let Some(owner) = &ended.owner {
                            self.with_router(|r| ((), r.load_down(owner, now)));
                        }
                    }
                    ChatState::Queued => {
                        self.with_router(|r| ((), r.withdraw(&ended.chat, now)));
                        self.offer_cards.remove(&ended.chat);
                    }
                    ChatState::Reopened | ChatState::Bot | ChatState::Closed => {}
                }
                if let Some(owner) = &ended.owner {
                    self.fanout.push(
                        owner,
                        Push::ChatClosed {
                            chat_id: ended.chat.clone(),
                            reason: crate::core::CloseReason::Stop,
                        },
                    );
                }
                ended.chat
            }),
        };
        self.archive_changed(&file, now);
        Ok(self.receipt(&file, chat_id))
    }

    /// A customer enters a bot journey (R09).
    pub fn start_bot(&self, channel: Channel, request: BotRequest) -> Result<IngressReceipt, Rejection> {
        let now = self.now();
        let profile = Profile {
            name: request.name,
            ..Profile::default()
        };
        let file = self.file_for(channel, &request.from, profile);
        let mut file = file.lock();
        let chat = file.start_bot(channel, self.config.policies.of(channel), now, || {
            ChatId::from(self.new_id("ch"))
        })?;
        self.chats.insert(chat.clone(), file.id.clone());
        self.archive_changed(&file, now);
        Ok(self.receipt(&file, Some(chat)))
    }

    /// The bot hands the customer over to the queue, or its sticky agent (R09, R10).
    pub fn hand_over(&self, channel: Channel, request: BotRequest) -> Result<IngressReceipt, Rejection> {
        let now = self.now();
        let customer = self
            .identities
            .get(&(channel, request.from.clone()))
            .map(|c| c.clone())
            .ok_or_else(|| Rejection::NotFound {
                what: "customer",
                id: format!("{channel}:{}", request.from),
            })?;
        let file = self
            .customers
            .get(&customer)
            .map(|f| f.clone())
            .ok_or_else(|| Rejection::NotFound {
                what: "customer",
                id: customer.to_string(),
            })?;
        let mut file = file.lock();
        let (chat, sticky) = file.hand_over(now)?;
        self.route_new(&file, &chat, sticky.as_ref(), now);
        self.archive_changed(&file, now);
        Ok(self.receipt(&file, Some(chat)))
    }

    /// A chat just became `queued`: into its queue, or to its sticky agent (R10).
    fn route_new(&self, file: &CustomerFile, chat: &ChatId, sticky: Option<&AgentId>, now: Timestamp) {
        self.chats.insert(chat.clone(), file.id.clone());
        let card = self.chat_view(file, chat);
        let queue = self.queue_of[&card.channel].clone();
        self.offer_cards.insert(chat.clone(), card);
        let waiting = Waiting {
            chat: chat.clone(),
            customer: file.id.clone(),
            queue,
            since: now,
            declined_by: Vec::new(),
        };
        self.with_router(|r| ((), r.enqueue(waiting, sticky, now)));
    }

    fn receipt(&self, file: &CustomerFile, chat_id: Option<ChatId>) -> IngressReceipt {
        let chat = chat_id.as_ref().and_then(|id| file.chat(id));
        let queue_position = chat
            .filter(|c| c.state == ChatState::Queued)
            .and_then(|c| self.router.lock().position(&c.id))
            .map(|(_, p)| p);
        IngressReceipt {
            customer_id: file.id.clone(),
            state: chat.map(|c| c.state),
            owner: chat.and_then(|c| c.owner.clone()),
            chat_id,
            queue_position,
        }
    }

    fn push_customer_message(&self, file: &CustomerFile, chat: &ChatId, to: &AgentId) {
        if let Some(message) = file.chat(chat).and_then(|c| c.messages.last()) {
            self.fanout.push(
                to,
                Push::CustomerMessage {
                    chat_id: chat.clone(),
                    message: message.clone(),
                },
            );
        }
    }

    fn push_snooze_ended(&self, file: &CustomerFile, chat: &ChatId, agent: &AgentId) {
        let (load, limit) = self
            .router
            .lock()
            .seat(agent)
            .map_or((0, 0), |s| (s.load, s.limit));
        self.fanout.push(
            agent,
            Push::ChatActivated {
                chat: self.chat_view(file, chat),
                by: ActivatedBy::SnoozeEnded,
                load,
                limit,
                over_limit: false,
            },
        );
    }

    fn outbound_message(
        &self,
        file: &CustomerFile,
        chat_id: &ChatId,
        kind: MessageKind,
        text: String,
        agent: Option<&AgentId>,
    ) -> OutboundMessage {
        let channel = file.chat(chat_id).map_or(Channel::Webchat, |c| c.channel);
        OutboundMessage {
            channel,
            to: file.address(channel).unwrap_or_default().to_owned(),
            customer_id: file.id.clone(),
            chat_id: chat_id.clone(),
            kind,
            text,
            params: Vec::new(),
            human_agent_tag: false,
            agent: agent.cloned(),
        }
    }

    fn send_out(
        &self,
        file: &CustomerFile,
        chat_id: &ChatId,
        kind: MessageKind,
        text: String,
        agent: Option<&AgentId>,
    ) {
        self.outbound
            .send(self.outbound_message(file, chat_id, kind, text, agent));
    }

    // ----- routing and timers ---------------------------------------------------------------

    /// Runs `f` on the router and delivers the routing events it caused before letting go.
    fn with_router<R>(&self, f: impl FnOnce(&mut Router) -> (R, Vec<RouterEvent>)) -> R {
        let mut router = self.router.lock();
        let (result, events) = f(&mut router);
        for event in events {
            match event {
                RouterEvent::Offered {
                    chat,
                    agent,
                    queue,
                    expires_at,
                    ..
                } => {
                    self.timers.schedule(
                        expires_at,
                        Timer::OfferExpiry {
                            chat: chat.clone(),
                            agent: agent.clone(),
                        },
                    );
                    if let Some(card) = self.offer_cards.get(&chat).map(|c| c.clone()) {
                        self.fanout.push(
                            &agent,
                            Push::ChatOffered(OfferView {
                                chat: card,
                                queue,
                                expires_at,
                            }),
                        );
                    }
                }
                RouterEvent::OfferWithdrawn { chat, agent, reason } => {
                    self.fanout.push(
                        &agent,
                        Push::OfferWithdrawn {
                            chat_id: chat,
                            reason,
                        },
                    );
                }
                RouterEvent::PresenceChanged { agent, presence } => {
                    self.fanout.push(&agent, Push::PresenceChanged { presence });
                }
            }
        }
        result
    }

    /// Fires every timer due by the engine's clock; returns how many ran. The runtime calls
    /// this from its ticker; tests call it after moving a manual clock.
    pub fn fire_due_timers(&self) -> usize {
        let now = self.now();
        let due = self.timers.take_due(now);
        let count = due.len();
        for timer in due {
            match timer {
                Timer::OfferExpiry { chat, agent } => {
                    self.with_router(|r| ((), r.expire_offer(&chat, &agent, now)));
                }
                Timer::SnoozeEnd { customer, chat } => {
                    let Some(file) = self.customers.get(&customer).map(|f| f.clone()) else {
                        continue;
                    };
                    let mut file = file.lock();
                    if let Some(owner) = file.wake(&chat, now) {
                        self.push_snooze_ended(&file, &chat, &owner);
                        self.archive_changed(&file, now);
                    }
                }
                Timer::ReopenExpiry {
                    customer,
                    chat,
                    reopened_at,
                } => {
                    let Some(file) = self.customers.get(&customer).map(|f| f.clone()) else {
                        continue;
                    };
                    let mut file = file.lock();
                    if let Some(owner) = file.expire_reopen(&chat, reopened_at, now) {
                        self.fanout.push(
                            &owner,
                            Push::ChatClosed {
                                chat_id: chat.clone(),
                                reason: crate::core::CloseReason::Timeout,
                            },
                        );
                        self.archive_changed(&file, now);
                    }
                }
                Timer::Grace { agent, epoch } => {
                    if self.fanout.gone_since(&agent, epoch) {
                        let changed = self.with_router(|r| {
                            let was = r.seat(&agent).map(|s| s.presence);
                            let events = r.set_presence(&agent, Presence::Offline, now).unwrap_or_default();
                            (was.is_some_and(|p| p != Presence::Offline), events)
                        });
                        if changed {
                            // Kept in the log: the agent sees it when it resumes.
                            self.fanout.push(
                                &agent,
                                Push::PresenceChanged {
                                    presence: Presence::Offline,
                                },
                            );
                        }
                    }
                }
            }
        }
        count
    }

    /// Panics if the engine's books do not balance; for tests, with no operation in flight.
    pub fn check_invariants(&self) {
        let files: Vec<Arc<Mutex<CustomerFile>>> = self.customers.iter().map(|f| f.clone()).collect();
        let mut load: HashMap<AgentId, u32> = HashMap::new();
        let mut queued = Vec::new();
        for file in files {
            let file = file.lock();
            file.check_invariants();
            for chat in &file.chats {
                if chat.state.counts_toward_load() {
                    *load.entry(chat.owner.clone().expect("owned")).or_default() += 1;
                }
                if chat.state == ChatState::Queued {
                    queued.push(chat.id.clone());
                }
            }
        }
        let router = self.router.lock();
        router.check_invariants();
        for (agent, seat) in router.seats() {
            assert_eq!(
                seat.load,
                load.get(agent).copied().unwrap_or(0),
                "load of {agent} does not match its active and snoozed chats"
            );
        }
        let mut routed: Vec<ChatId> = router
            .queues()
            .flat_map(|(_, w)| w.iter().map(|w| w.chat.clone()))
            .chain(router.offers().map(|o| o.waiting.chat.clone()))
            .collect();
        routed.sort();
        queued.sort();
        assert_eq!(
            routed, queued,
            "queued chats and the router's queues and offers differ"
        );
    }

    /// The router's seat of an agent: (presence, load, limit, overrides); for tests and admin.
    pub fn seat(&self, agent: &AgentId) -> Option<(Presence, u32, u32, u64)> {
        self.router
            .lock()
            .seat(agent)
            .map(|s| (s.presence, s.load, s.limit, s.overrides))
    }

    /// Whether the customer has opted out on `channel`; for tests.
    pub fn is_opted_out(&self, customer: &CustomerId, channel: Channel) -> bool {
        self.customers
            .get(customer)
            .map(|f| f.clone())
            .is_some_and(|f| f.lock().is_opted_out(channel))
    }

    /// The state of a chat; for tests.
    pub fn chat_state(&self, chat: &ChatId) -> Option<ChatState> {
        let file = self.file_of_chat(chat).ok()?;
        let file = file.lock();
        file.chat(chat).map(|c| c.state)
    }
}

#[cfg(test)]
mod tests;
