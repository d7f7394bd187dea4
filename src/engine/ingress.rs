//! Customers' messages and bot journeys arriving from the channels (R01, R05, R08–R11, R13).

use std::sync::Arc;

use parking_lot::Mutex;

use super::*;
use crate::core::analytics::EventKind;
use crate::protocol::supervisor::ReopenOutcome;

impl Engine {
    /// The customer's file for an address, created on first contact. Concurrent first
    /// messages of one customer find the same file (R01).
    pub(super) fn file_for(
        &self,
        channel: Channel,
        from: &str,
        profile: Profile,
    ) -> Arc<Mutex<CustomerFile>> {
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
            sent_at: _,
        } = message;
        let profile = Profile { name, email, phone };
        let file = self.file_for(channel, &from, profile.clone());
        let mut file = self.edit(&file);
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
                self.board_reopen_ended(&file, &chat, ReopenOutcome::Replied);
                self.record(&agent, channel, EventKind::ReopenReplied, now);
                // Pushed under the router's lock: the push carries the load it counted.
                self.with_router(|r| {
                    let change = r.load_up(&agent);
                    let (load, limit, over_limit) =
                        change.map_or((0, 0, false), |c| (c.load, c.limit, c.over_limit));
                    if over_limit {
                        self.record(&agent, channel, EventKind::LimitOverride, now);
                    }
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
                    ((), Vec::new())
                });
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
                // Told before the offer that the freed slot may bring, as after `close`.
                if let Some(owner) = &ended.owner {
                    self.fanout.push(
                        owner,
                        Push::ChatClosed {
                            chat_id: ended.chat.clone(),
                            reason: crate::core::CloseReason::Stop,
                        },
                    );
                }
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
                    ChatState::Reopened => {
                        // A #STOP answering a reopen is a declined chat (R08, R14).
                        self.board_reopen_ended(&file, &ended.chat, ReopenOutcome::Declined);
                        if let Some(owner) = &ended.owner {
                            self.record(owner, channel, EventKind::ReopenDeclined, now);
                        }
                    }
                    ChatState::Bot | ChatState::Closed => {}
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
        let mut file = self.edit(&file);
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
        let mut file = self.edit(&file);
        let (chat, sticky) = file.hand_over(now)?;
        self.route_new(&file, &chat, sticky.as_ref(), now);
        self.archive_changed(&file, now);
        Ok(self.receipt(&file, Some(chat)))
    }

    /// A chat just became `queued`: into its queue, or to its sticky agent (R10).
    pub(super) fn route_new(
        &self,
        file: &CustomerFile,
        chat: &ChatId,
        sticky: Option<&AgentId>,
        now: Timestamp,
    ) {
        self.chats.insert(chat.clone(), file.id.clone());
        let waiting = self.waiting(file, chat, now);
        self.with_router(|r| ((), r.enqueue(waiting, sticky, now)));
    }

    /// A queued chat's place in its queue, waiting since `since`; its offer card is captured
    /// now, under the customer's lock, for routing to show later.
    pub(super) fn waiting(&self, file: &CustomerFile, chat: &ChatId, since: Timestamp) -> Waiting {
        let card = self.chat_view(file, chat);
        let queue = self.queue_of[&card.channel].clone();
        self.offer_cards.insert(chat.clone(), card);
        Waiting {
            chat: chat.clone(),
            customer: file.id.clone(),
            queue,
            since,
            declined_by: Vec::new(),
        }
    }

    pub(super) fn receipt(&self, file: &CustomerFile, chat_id: Option<ChatId>) -> IngressReceipt {
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

    pub(super) fn push_customer_message(&self, file: &CustomerFile, chat: &ChatId, to: &AgentId) {
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

    pub(super) fn push_snooze_ended(&self, file: &CustomerFile, chat: &ChatId, agent: &AgentId) {
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

    pub(super) fn outbound_message(
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
}
