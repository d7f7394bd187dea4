//! What supervisors see and do (R14, R15): the board's changes as the engine makes them, the
//! board itself, KPI events, and the supervisor's requests.

use std::sync::Arc;

use super::fanout::{ConnHandle, ConnId};
use super::supervision::{encode, Subscribed, Watch};
use super::Engine;
use crate::clock::Timestamp;
use crate::core::Changes;
use crate::core::{CustomerFile, Router};
use crate::ids::{AgentId, ChatId};
use crate::protocol::supervisor::{
    AgentRow, AnalyticsQuery, AnalyticsReport, Board, BoardChange, ReopenOutcome, ReopenedChat,
    SupervisorRequest, SupervisorResult, SupervisorServerFrame,
};
use crate::protocol::{Caller, ChatView, ReplyResult, Scope};
use crate::refusal::Refusal;

impl Engine {
    /// Turns what the router changed into board events; runs under the router's lock.
    pub(super) fn publish_router_changes(&self, router: &Router, changes: Changes) {
        let now = self.now();
        for change in changes.queues {
            match change {
                crate::core::QueueChange::Entered { waiting } => {
                    let queue = waiting.queue.clone();
                    // Where it stands now; one offered meanwhile leaves in the next change.
                    let position = router.position(&waiting.chat, now).map_or(1, |(_, p)| p);
                    self.supervision.append(
                        Some(queue.clone()),
                        BoardChange::ChatQueued {
                            queue,
                            chat: self.waiting_view(router, &waiting, position, now),
                        },
                    );
                }
                crate::core::QueueChange::Hours { queue, open } => {
                    self.supervision
                        .append(Some(queue.clone()), BoardChange::QueueHours { queue, open });
                }
                crate::core::QueueChange::Stepped { waiting } => {
                    let queue = waiting.queue.clone();
                    let position = router.position(&waiting.chat, now).map_or(1, |(_, p)| p);
                    self.supervision.append(
                        Some(queue.clone()),
                        BoardChange::ChatStepped {
                            queue,
                            chat: self.waiting_view(router, &waiting, position, now),
                        },
                    );
                }
                crate::core::QueueChange::Left {
                    queue,
                    chat,
                    offered_to,
                } => self.supervision.append(
                    Some(queue.clone()),
                    BoardChange::ChatLeftQueue {
                        queue,
                        chat_id: chat,
                        offered_to,
                    },
                ),
            }
        }
        let mut seen = Vec::with_capacity(changes.seats.len());
        for agent in changes.seats {
            if seen.contains(&agent) {
                continue;
            }
            let change = match self.agent_row(router, &agent) {
                Some(row) => BoardChange::AgentChanged { agent: row },
                None => BoardChange::AgentRemoved {
                    agent_id: agent.clone(),
                },
            };
            self.supervision.append(None, change);
            seen.push(agent);
        }
    }

    /// Every agent's row, by id.
    pub(super) fn agent_rows(&self, router: &Router) -> Vec<AgentRow> {
        let mut agents: Vec<AgentRow> = router
            .seats()
            .filter_map(|(id, _)| self.agent_row(router, id))
            .collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        agents
    }

    /// An agent's row; none for an agent that has been removed.
    fn agent_row(&self, router: &Router, id: &AgentId) -> Option<AgentRow> {
        let profile = self.directory.profile(id)?;
        let seat = router.seat(id)?;
        Some(AgentRow {
            id: id.clone(),
            name: profile.name.clone(),
            role: profile.role.into(),
            presence: seat.presence.into(),
            load: seat.load,
            limit: seat.limit,
            offered: seat.offered,
            over_limit: seat.load > seat.limit,
            overrides: seat.overrides,
            skills: seat.skills.clone(),
            channel_limits: seat
                .channel_limits
                .iter()
                .map(|(c, n)| ((*c).into(), *n))
                .collect(),
            channel_load: seat
                .channel_load
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(c, n)| ((*c).into(), *n))
                .collect(),
        })
    }

    /// A chat was reopened; runs under its customer's lock.
    pub(super) fn board_reopened(&self, view: &ChatView, agent: &AgentId, now: Timestamp) {
        let queue = self.queue_of[&view.channel.into()].clone();
        self.supervision.append(
            Some(queue.clone()),
            BoardChange::ChatReopened {
                chat: ReopenedChat {
                    chat_id: view.id.clone(),
                    customer: view.customer.clone(),
                    channel: view.channel,
                    queue,
                    reopened_by: agent.clone(),
                    reopened_at: now,
                    window_expires_at: view.window_expires_at,
                },
            },
        );
    }

    /// A reopened chat stopped waiting; runs under its customer's lock.
    pub(super) fn board_reopen_ended(&self, file: &CustomerFile, chat_id: &ChatId, outcome: ReopenOutcome) {
        if !self.supervision.is_reopened(chat_id) {
            return;
        }
        let queue = file.chat(chat_id).map(|c| self.queue_of[&c.channel].clone());
        self.supervision.append(
            queue,
            BoardChange::ReopenEnded {
                chat_id: chat_id.clone(),
                outcome,
            },
        );
    }

    /// Appends today's KPIs if an event came since they were last sent.
    pub fn publish_kpis(&self) {
        if self.analytics.take_changed() {
            let kpis = self.analytics.kpis(self.now());
            self.supervision.append(None, BoardChange::KpisChanged { kpis });
        }
    }

    /// The board `watch` shows, as of its sequence number.
    pub fn board(&self, watch: &Watch) -> Board {
        // The router first (the lock order): its changes are appended under it, so none is
        // in flight; the reopened chats and the number come together from the feed.
        let router = self.router.lock();
        let (seq, reopened, kpis) = self
            .supervision
            .board_part(watch, || self.analytics.kpis(self.now()));
        let now = self.now();
        let queues = router
            .queues(now)
            .into_iter()
            .filter(|(id, _)| watch.shows(Some(id)))
            .map(|(id, waiting)| self.queue_view(&router, id, &waiting, now))
            .collect();
        let agents = self.agent_rows(&router);
        Board {
            seq,
            queues,
            agents,
            reopened,
            kpis,
        }
    }

    /// The KPIs of R14 over a range.
    pub fn analytics_report(&self, query: AnalyticsQuery) -> AnalyticsReport {
        self.analytics.report(query)
    }

    /// A new connection of supervisor `agent` and the board's sequence number now.
    pub fn connect_supervisor(&self, agent: &AgentId) -> (ConnHandle, u64) {
        (self.supervision.connect(agent), self.supervision.seq())
    }

    /// A supervisor connection ended.
    pub fn disconnect_supervisor(&self, conn: ConnId) {
        self.timers.cancel_token_expiry(conn);
        self.supervision.disconnect(conn);
    }

    /// Carries out one supervisor request. `Ok(None)`: the reply is already queued on the
    /// connection (a subscription, whose reply must come before or after certain pushes).
    pub fn supervise(
        &self,
        caller: &Caller,
        conn: ConnId,
        id: &str,
        request: SupervisorRequest,
    ) -> Result<Option<SupervisorResult>, Refusal> {
        // The role is the token's (the gateway checked it), not the directory's.
        if !caller.role.supervises() || !self.directory.contains(&caller.id) {
            return Err(Refusal::Forbidden(
                "supervisor actions need the supervisor or admin role",
            ));
        }
        let now = self.now();
        match request {
            SupervisorRequest::Subscribe { queues, after_seq } => {
                let watch = match queues {
                    None => Watch::All,
                    Some(queues) => {
                        // Any queue routing knows: one a channel feeds, or one reached only
                        // through ingress's `queue` or as an overflow (R19, R21).
                        let router = self.router.lock();
                        let unknown = queues.iter().find(|q| !router.has_queue(q)).cloned();
                        drop(router);
                        if let Some(unknown) = unknown {
                            return Err(Refusal::not_found("queue", unknown));
                        }
                        Watch::Queues(queues)
                    }
                };
                self.subscribe(conn, id, watch, after_seq);
                Ok(None)
            }
            SupervisorRequest::SetLimit { agent, limit } => {
                self.set_limit(&agent, limit)?;
                Ok(Some(SupervisorResult::Done))
            }
            SupervisorRequest::SetSkills { agent, skills } => {
                self.set_skills(&agent, skills)?;
                Ok(Some(SupervisorResult::Done))
            }
            SupervisorRequest::SetPresence { agent, presence } => {
                self.try_router(|r| r.set_presence(&agent, presence.into(), now))?;
                Ok(Some(SupervisorResult::Done))
            }
            SupervisorRequest::Transfer { chat_id, to } => {
                let owner = self.owner_of(&chat_id)?;
                match self.transfer(&owner, &chat_id, &to, true, now)? {
                    ReplyResult::Chat { chat } => Ok(Some(SupervisorResult::Chat { chat })),
                    _ => Ok(Some(SupervisorResult::Done)),
                }
            }
            SupervisorRequest::Close { chat_id } => {
                let owner = self.owner_of(&chat_id)?;
                self.close_as(&owner, &chat_id, crate::core::CloseReason::Supervisor, now)?;
                Ok(Some(SupervisorResult::Done))
            }
            SupervisorRequest::GetChat {
                chat_id,
                before_seq,
                limit,
            } => {
                let page = self.history(caller, &chat_id, before_seq, limit)?;
                Ok(Some(SupervisorResult::History {
                    chat: page.chat,
                    messages: page.messages,
                    next_before_seq: page.next_before_seq,
                }))
            }
            SupervisorRequest::ListArchive {
                state,
                query,
                limit,
                before,
            } => {
                let ask = super::archive::ArchiveAsk::new(
                    Scope::All,
                    state.map(Into::into),
                    &query,
                    &before,
                    limit,
                );
                let (entries, next) = self.archive(&caller.id, ask, now)?;
                Ok(Some(SupervisorResult::Archive { entries, next }))
            }
            SupervisorRequest::GetAnalytics { query } => {
                Ok(Some(SupervisorResult::Analytics(self.analytics_report(query))))
            }
            SupervisorRequest::Ping => Ok(Some(SupervisorResult::Pong)),
            SupervisorRequest::Refresh { .. } => {
                Err(Refusal::BadRequest("refresh is answered by the gateway".into()))
            }
        }
    }

    fn subscribe(&self, conn: ConnId, id: &str, watch: Watch, after_seq: Option<u64>) {
        let reply = |result| {
            encode(&SupervisorServerFrame::Ok {
                id: id.to_owned(),
                result,
            })
        };
        if let Some(after_seq) = after_seq {
            let resumed = self
                .supervision
                .resume(conn, watch.clone(), after_seq, |replayed| {
                    reply(SupervisorResult::Resumed { replayed })
                });
            if let Subscribed::Replayed(_) = resumed {
                return;
            }
        }
        let board = self.board(&watch);
        let seq = board.seq;
        self.supervision
            .start(conn, watch, seq, reply(SupervisorResult::Board(board)));
    }

    /// The owner of a live chat.
    fn owner_of(&self, chat_id: &ChatId) -> Result<AgentId, Refusal> {
        let file = self.file_of_chat(chat_id)?;
        let file = file.lock();
        file.chat(chat_id)
            .and_then(|c| c.stage.live_owner().cloned())
            .ok_or_else(|| {
                Refusal::BadRequest(format!(
                    "chat {chat_id} has no owner: it is not live with an agent"
                ))
            })
    }

    /// The supervisors' task: sends the board's changes out in batches until `shutdown`.
    pub async fn run_supervision(self: Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let interval = self.config.board_interval;
        self.supervision
            .run(interval, || self.publish_kpis(), shutdown)
            .await;
    }
}
