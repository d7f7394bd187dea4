//! What an agent asks over its WebSocket (R02–R07, R12, R13, R16, R17).

use super::fanout::{ConnId, Resumed};
use super::{archive, views, Engine, SharedFile};
use crate::clock::Timestamp;
use crate::core::analytics::EventKind;
use crate::core::{Channel, ChatState, CustomerFile, Presence, Rejection, SnoozeUntil};
use crate::ids::{AgentId, ChatId, CustomerId};
use crate::protocol::HistoryMessage;
use crate::protocol::{Caller, ChatView, OfferView, ReplyResult, Request, Snapshot};
use crate::refusal::Refusal;
use crate::store::MAX_HISTORY_PAGE;
use chrono::Duration;

/// Messages per history page when the request does not say.
const DEFAULT_HISTORY_PAGE: u32 = 50;

/// A chat with a page of its history, for either socket's reply.
pub(super) struct HistoryView {
    pub(super) chat: ChatView,
    /// Oldest first.
    pub(super) messages: Vec<HistoryMessage>,
    pub(super) next_before_seq: Option<u64>,
}

impl Engine {
    /// Carries out one request of `caller` on connection `conn`.
    pub fn handle(&self, caller: &Caller, conn: ConnId, request: Request) -> Result<ReplyResult, Refusal> {
        let now = self.now();
        let me = &caller.id;
        if !self.directory.contains(me) {
            return Err(Refusal::Forbidden("this agent has been removed"));
        }
        match request {
            Request::Reopen { chat_id } => self.reopen(me, &chat_id, now),
            Request::SendMessage {
                chat_id,
                text,
                human_agent_tag,
            } => self.send_message(me, &chat_id, &text, human_agent_tag, now),
            Request::RetryMessage { chat_id, seq } => self.retry_message(me, &chat_id, seq, now),
            Request::SendTemplate {
                chat_id,
                template,
                params,
            } => self.send_template(me, &chat_id, template, params, now),
            Request::Accept { chat_id } => self.accept(me, &chat_id, now),
            Request::Decline { chat_id } => {
                // The card stays: the chat waits or is offered to someone else.
                self.try_router(|r| r.decline(&chat_id, me, now))?;
                Ok(ReplyResult::Done)
            }
            Request::Transfer { chat_id, to, force } => {
                if force && !caller.role.supervises() {
                    return Err(Refusal::Forbidden(
                        "only supervisors and admins may force a transfer",
                    ));
                }
                self.transfer(me, &chat_id, &to, force, now)
            }
            Request::Close { chat_id } => self.close_as(me, &chat_id, crate::core::CloseReason::Agent, now),
            Request::Snooze { chat_id, until } => {
                // Beyond what the database can hold (2262) a snooze would fail its write, and
                // with it the store; no one means a snooze of years.
                if let Some(at) = until.filter(|at| *at > now + Duration::days(366)) {
                    return Err(Refusal::BadRequest(format!(
                        "a snooze may last at most a year; {} is later",
                        at.to_rfc3339()
                    )));
                }
                let until = until.map_or(SnoozeUntil::Reply, |at| SnoozeUntil::Time { at });
                self.snooze(me, &chat_id, until, now)
            }
            Request::SetPresence { presence } => {
                self.try_router(|r| r.set_presence(me, presence.into(), now))?;
                Ok(ReplyResult::Presence { presence })
            }
            Request::ListArchive {
                scope,
                state,
                query,
                limit,
                before,
            } => {
                let ask = archive::ArchiveAsk::new(scope, state.map(Into::into), &query, &before, limit);
                let (entries, next) = self.archive(me, ask, now)?;
                Ok(ReplyResult::Archive { entries, next })
            }
            Request::WatchArchive { chat_ids } => {
                if chat_ids.len() > 1000 {
                    return Err(Refusal::BadRequest(format!(
                        "watch_archive takes at most 1000 chat ids, got {}",
                        chat_ids.len()
                    )));
                }
                self.watchers.watch(me, conn, chat_ids);
                Ok(ReplyResult::Done)
            }
            Request::GetChat {
                chat_id,
                before_seq,
                limit,
            } => {
                let page = self.history(caller, &chat_id, before_seq, limit)?;
                Ok(ReplyResult::History {
                    chat: page.chat,
                    messages: page.messages,
                    next_before_seq: page.next_before_seq,
                })
            }
            Request::Resume { after_seq } => match self.fanout.resume(me, conn, after_seq) {
                Resumed::Replayed(replayed) => Ok(ReplyResult::Resumed { replayed }),
                Resumed::Gone => Ok(ReplyResult::Snapshot(self.snapshot(me))),
            },
            Request::Snapshot => Ok(ReplyResult::Snapshot(self.snapshot(me))),
            Request::Ack { seq } => {
                let last = self.fanout.seq(me);
                if seq > last {
                    return Err(Refusal::BadRequest(format!(
                        "ack for seq {seq}, but the last push to you was {last}"
                    )));
                }
                Ok(ReplyResult::Done)
            }
            Request::Ping => Ok(ReplyResult::Pong),
            Request::ListAgents => Ok(ReplyResult::Agents {
                agents: self.agent_rows(&self.router.lock()),
            }),
            // Credentials are the gateway's business; it answers these itself.
            Request::Refresh { .. } => Err(Refusal::BadRequest("refresh is answered by the gateway".into())),
        }
    }

    /// Whether `request` may read the database: an archive search, or a chat that is not in
    /// memory (it is read back, or its page read, from disk). The gateway runs such requests
    /// off the async workers.
    pub fn reads_store(&self, request: &Request) -> bool {
        if self.store.is_none() {
            return false;
        }
        match request {
            Request::ListArchive { .. } => true,
            // A pending offer is the router's, in memory: declining one reads nothing.
            Request::Decline { .. } => false,
            _ => request
                .chat_id()
                .is_some_and(|chat| !self.customers.holds_chat(chat)),
        }
    }

    /// The customer file of a chat in memory; `None` for one only in the database.
    pub(super) fn file_in_memory(&self, chat: &ChatId) -> Option<SharedFile> {
        self.customers.file_of_chat(chat)
    }

    pub(super) fn file_of_chat(&self, chat: &ChatId) -> Result<SharedFile, Refusal> {
        let customer = match self.customers.customer_of(chat) {
            Some(customer) => customer,
            None => self.bring_back(chat)?,
        };
        self.customers
            .file(&customer)
            .ok_or_else(|| Refusal::not_found("customer", &customer))
    }

    /// A chat only in the database (closed, out of its window when the engine started) is
    /// read back into its customer's file, so that what an agent may still do with it — a
    /// template push (R07), or a reopen answered `window_closed` rather than `not_found` —
    /// works as before a restart. Its customer is always in memory.
    fn bring_back(&self, chat: &ChatId) -> Result<CustomerId, Refusal> {
        let not_found = || Rejection::NotFound {
            what: "chat",
            id: chat.to_string(),
        };
        let store = self.store.as_ref().ok_or_else(not_found)?;
        let (record, _) = store
            .chat(chat)
            .map_err(archive::unreadable)?
            .ok_or_else(not_found)?;
        let customer = record.customer.clone();
        let file = self.customers.file(&customer).ok_or_else(not_found)?;
        // The rules ask which chat is the newest on its channel (only that one can be
        // reopened, or take a template): if a newer one is on disk only, it comes back too.
        let mut back = vec![(record.clone(), store.messages(chat).map_err(archive::unreadable)?)];
        if let Some(newest) = store
            .newest_chat_on(&customer, record.channel)
            .map_err(archive::unreadable)?
            .filter(|newest| newest != chat && !self.customers.holds_chat(newest))
        {
            if let Some((newer, _)) = store.chat(&newest).map_err(archive::unreadable)? {
                back.push((newer, store.messages(&newest).map_err(archive::unreadable)?));
            }
        }
        let mut file = file.lock();
        for (record, messages) in back {
            // Another request may have brought it back meanwhile.
            if file.chat(&record.id).is_some() {
                continue;
            }
            let id = record.id.clone();
            let mut restored = record.into_chat();
            restored.messages = messages;
            let at = file
                .chats
                .iter()
                .position(|c| (c.created_at, &c.id) > (restored.created_at, &restored.id))
                .unwrap_or(file.chats.len());
            file.chats.insert(at, restored);
            self.customers.chat_added(id, customer.clone());
        }
        Ok(customer)
    }

    pub(super) fn chat_view(&self, file: &CustomerFile, chat: &ChatId) -> ChatView {
        let chat = file.chat(chat).expect("the caller found the chat in this file");
        views::chat_view(file, chat, self.config.policies.of(chat.channel))
    }

    pub(super) fn channel_of(file: &CustomerFile, chat: &ChatId) -> Result<Channel, Rejection> {
        file.chat(chat)
            .map(|c| c.channel)
            .ok_or_else(|| Rejection::NotFound {
                what: "chat",
                id: chat.to_string(),
            })
    }

    pub(super) fn reopen(
        &self,
        me: &AgentId,
        chat_id: &ChatId,
        now: Timestamp,
    ) -> Result<ReplyResult, Refusal> {
        let file = self.file_of_chat(chat_id)?;
        let mut file = file.lock();
        let channel = Self::channel_of(&file, chat_id)?;
        let mut effects = self.effects(&file, now);
        match file.reopen(chat_id, me, self.config.policies.of(channel), now) {
            Ok(events) => effects.apply(&file, &events),
            Err(rejection) => {
                effects.kpi(me, channel, EventKind::ReopenRejected(rejection.code()));
                effects.finish(&file);
                return Err(rejection.into());
            }
        }
        let chat = effects.view(&file, chat_id);
        effects.finish(&file);
        Ok(ReplyResult::Chat { chat })
    }

    pub(super) fn send_message(
        &self,
        me: &AgentId,
        chat_id: &ChatId,
        text: &str,
        human_agent_tag: bool,
        now: Timestamp,
    ) -> Result<ReplyResult, Refusal> {
        let file = self.file_of_chat(chat_id)?;
        let mut file = file.lock();
        let policy = self.config.policies.of(Self::channel_of(&file, chat_id)?);
        let mut effects = self.effects(&file, now);
        let events = file.send(chat_id, me, text, human_agent_tag, policy, now)?;
        effects.apply(&file, &events);
        effects.finish(&file);
        Ok(ReplyResult::Done)
    }

    pub(super) fn send_template(
        &self,
        me: &AgentId,
        chat_id: &ChatId,
        template: String,
        params: Vec<String>,
        now: Timestamp,
    ) -> Result<ReplyResult, Refusal> {
        let file = self.file_of_chat(chat_id)?;
        let mut file = file.lock();
        let policy = self.config.policies.of(Self::channel_of(&file, chat_id)?);
        let mut effects = self.effects(&file, now);
        let events = file.push_template(chat_id, me, template, params, policy, now)?;
        effects.apply(&file, &events);
        effects.finish(&file);
        Ok(ReplyResult::Done)
    }

    pub(super) fn accept(
        &self,
        me: &AgentId,
        chat_id: &ChatId,
        now: Timestamp,
    ) -> Result<ReplyResult, Refusal> {
        let file = self.file_of_chat(chat_id)?;
        let mut file = file.lock();
        if file.chat(chat_id).map(|c| c.state()) != Some(ChatState::Queued) {
            return Err(Refusal::not_found("offer of chat", chat_id));
        }
        let mut effects = self.effects(&file, now);
        // The router checks the offer first; the push that carries the new load is made
        // under the same lock (see `effects`).
        let accepted = effects.router().accept(chat_id, me, now)?;
        let events = file
            .accept(chat_id, me, &accepted)
            .expect("a queued chat whose offer the router accepted becomes active");
        effects.apply(&file, &events);
        let chat = effects.view(&file, chat_id);
        effects.finish(&file);
        Ok(ReplyResult::Chat { chat })
    }

    pub(super) fn transfer(
        &self,
        me: &AgentId,
        chat_id: &ChatId,
        to: &AgentId,
        force: bool,
        now: Timestamp,
    ) -> Result<ReplyResult, Refusal> {
        if to == me {
            return Err(Refusal::BadRequest(
                "a chat cannot be transferred to its owner".into(),
            ));
        }
        let file = self.file_of_chat(chat_id)?;
        let mut file = file.lock();
        let mut effects = self.effects(&file, now);
        let events = file.transfer(chat_id, me, to)?;
        // The rules of the chat first, then the target's capacity; a refusal of the router
        // puts the chat back, and nothing has been told yet.
        let channel = file.chat(chat_id).map_or(Channel::Webchat, |c| c.channel);
        match effects.router().transfer(me, to, channel, force, now) {
            Ok((_, routed)) => effects.routed(routed),
            Err(e) => {
                let _undone = file
                    .transfer(chat_id, to, me)
                    .expect("undoing the transfer just made");
                return Err(e.into());
            }
        }
        effects.apply(&file, &events);
        let chat = effects.view(&file, chat_id);
        effects.finish(&file);
        Ok(ReplyResult::Chat { chat })
    }

    /// The owner `me` closes its chat (or a supervisor on its behalf, with that reason).
    pub(super) fn close_as(
        &self,
        me: &AgentId,
        chat_id: &ChatId,
        reason: crate::core::CloseReason,
        now: Timestamp,
    ) -> Result<ReplyResult, Refusal> {
        let file = self.file_of_chat(chat_id)?;
        let mut file = file.lock();
        let mut effects = self.effects(&file, now);
        let events = file.close(chat_id, me, reason, now)?;
        effects.apply(&file, &events);
        effects.finish(&file);
        Ok(ReplyResult::Done)
    }

    pub(super) fn snooze(
        &self,
        me: &AgentId,
        chat_id: &ChatId,
        until: SnoozeUntil,
        now: Timestamp,
    ) -> Result<ReplyResult, Refusal> {
        let file = self.file_of_chat(chat_id)?;
        let mut file = file.lock();
        let mut effects = self.effects(&file, now);
        let events = file.snooze(chat_id, me, until, now)?;
        effects.apply(&file, &events);
        let chat = effects.view(&file, chat_id);
        effects.finish(&file);
        Ok(ReplyResult::Chat { chat })
    }

    /// A page of a chat's history for `caller`: its owner (or last owner), or a supervisor.
    ///
    /// A chat in memory is read there, under its customer's lock, so the page agrees with the
    /// chat view (the store may be a group commit behind). One that is not (closed and outside
    /// its window after a restart) is read from the store, which is complete for it: the
    /// engine changes only chats in memory.
    pub(super) fn history(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        before_seq: Option<u64>,
        limit: Option<u32>,
    ) -> Result<HistoryView, Refusal> {
        let limit = match limit {
            Some(0) => {
                return Err(Refusal::BadRequest(
                    "a history page holds at least 1 message".into(),
                ))
            }
            Some(n) => n.min(MAX_HISTORY_PAGE),
            None => DEFAULT_HISTORY_PAGE,
        };
        let may_read = |owner: Option<&AgentId>| {
            if owner == Some(&caller.id) || caller.role.supervises() {
                Ok(())
            } else {
                Err(Rejection::NotOwner {
                    owner: owner.cloned(),
                })
            }
        };
        let not_found = || Rejection::not_found("chat", chat_id);
        if let Some(file) = self.file_in_memory(chat_id) {
            let file = file.lock();
            let chat = file.chat(chat_id).ok_or_else(not_found)?;
            may_read(chat.stage.owner())?;
            let end = before_seq.map_or(chat.messages.len(), |b| {
                usize::try_from(b).unwrap_or(usize::MAX).min(chat.messages.len())
            });
            let start = end.saturating_sub(limit as usize);
            return Ok(HistoryView {
                chat: self.chat_view(&file, chat_id),
                messages: chat.messages[start..end]
                    .iter()
                    .zip(start as u64..)
                    .map(|(message, seq)| HistoryMessage {
                        seq,
                        message: message.into(),
                    })
                    .collect(),
                next_before_seq: (start > 0).then_some(start as u64),
            });
        }
        let store = self.store.as_ref().ok_or_else(not_found)?;
        let (record, customer) = store
            .chat(chat_id)
            .map_err(archive::unreadable)?
            .ok_or_else(not_found)?;
        may_read(record.stage.owner())?;
        let page = store
            .history(chat_id, before_seq, limit)
            .map_err(archive::unreadable)?;
        let last_message = match (before_seq, page.messages.first()) {
            (None, newest) => newest.map(|m| m.message.clone()),
            (Some(_), _) => store
                .history(chat_id, None, 1)
                .map_err(archive::unreadable)?
                .messages
                .pop()
                .map(|m| m.message),
        };
        let policy = self.config.policies.of(record.channel);
        Ok(HistoryView {
            chat: views::stored_chat_view(&record, customer.as_ref(), last_message, policy),
            // The store pages newest first; the wire keeps each page in reading order.
            messages: page
                .messages
                .into_iter()
                .rev()
                .map(|m| HistoryMessage {
                    seq: m.seq,
                    message: (&m.message).into(),
                })
                .collect(),
            next_before_seq: page.next_before,
        })
    }

    pub(super) fn snapshot(&self, me: &AgentId) -> Snapshot {
        let seq = self.fanout.seq(me);
        let files = self.customers.files();
        let mut chats = Vec::new();
        for file in files {
            let file = file.lock();
            if let Some(chat) = file.live().filter(|c| c.stage.owner() == Some(me)) {
                chats.push(self.chat_view(&file, &chat.id));
            }
        }
        let router = self.router.lock();
        let now = self.now();
        let offers = router
            .offers()
            .filter(|o| &o.agent == me)
            .filter_map(|o| {
                Some(OfferView {
                    chat: self.offer_cards.get(&o.waiting.chat)?.clone(),
                    queue: o.waiting.queue.clone(),
                    expires_at: o.expires_at,
                    requires: router.standing(&o.waiting, now).needs,
                    step: o.waiting.step,
                })
            })
            .collect();
        let seat = router.seat(me);
        Snapshot {
            seq,
            presence: seat.map_or(Presence::Offline, |s| s.presence).into(),
            load: seat.map_or(0, |s| s.load),
            limit: seat.map_or(0, |s| s.limit),
            chats,
            offers,
        }
    }
}
