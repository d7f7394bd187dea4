//! Customers' messages and bot journeys arriving from the channels (R01, R05, R08–R11, R13).

use super::{Engine, SharedFile};
use crate::clock::Timestamp;
use crate::core::{Channel, ChatState, CustomerFile, Profile, Rejection, Waiting};
use crate::ids::{ChatId, CustomerId};
use crate::protocol::{BotRequest, ChatView, InboundMessage, IngressReceipt};
use crate::refusal::Refusal;

impl Engine {
    /// The customer's file for an address, created on first contact. Concurrent first
    /// messages of one customer find the same file (R01).
    pub(super) fn file_for(&self, channel: Channel, from: &str, profile: Profile) -> SharedFile {
        self.customers
            .file_for(channel, from, profile, || CustomerId::from(self.new_id("cu")))
    }

    /// A customer's message arrives on `channel` (R05, R08, R10, R11, R13).
    pub fn customer_message(
        &self,
        channel: Channel,
        message: InboundMessage,
    ) -> Result<IngressReceipt, Refusal> {
        let now = self.now();
        let policy = self.config.policies.of(channel);
        let len = message.text.chars().count();
        if len > policy.max_len {
            return Err(Rejection::MessageTooLong {
                len,
                max: policy.max_len,
                channel,
            }
            .into());
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
        let mut file = file.lock();
        let mut effects = self.effects(&file, now);
        let mut events = file.learn(channel, &from, profile);
        events.extend(file.receive(channel, &text, policy, now, || ChatId::from(self.new_id("ch"))));
        effects.apply(&file, &events);
        effects.finish(&file);
        Ok(self.receipt(&file, first_chat(&events)))
    }

    /// A customer enters a bot journey (R09).
    pub fn start_bot(&self, channel: Channel, request: BotRequest) -> Result<IngressReceipt, Refusal> {
        let now = self.now();
        let profile = Profile {
            name: request.name,
            ..Profile::default()
        };
        let file = self.file_for(channel, &request.from, profile);
        let mut file = file.lock();
        let mut effects = self.effects(&file, now);
        let events = file.start_bot(channel, self.config.policies.of(channel), now, || {
            ChatId::from(self.new_id("ch"))
        })?;
        effects.apply(&file, &events);
        effects.finish(&file);
        Ok(self.receipt(&file, first_chat(&events)))
    }

    /// The bot hands the customer over to the queue, or its sticky agent (R09, R10).
    pub fn hand_over(&self, channel: Channel, request: BotRequest) -> Result<IngressReceipt, Refusal> {
        let now = self.now();
        let file = self
            .customers
            .file_at(channel, &request.from)
            .ok_or_else(|| Refusal::not_found("customer", format!("{channel}:{}", request.from)))?;
        let mut file = file.lock();
        let mut effects = self.effects(&file, now);
        let events = file.hand_over(now)?;
        effects.apply(&file, &events);
        effects.finish(&file);
        Ok(self.receipt(&file, first_chat(&events)))
    }

    /// A queued chat's place in its queue, waiting since `since`; its offer card is captured
    /// now, under the customer's lock, for routing to show later.
    pub(super) fn waiting(&self, file: &CustomerFile, chat: &ChatId, since: Timestamp) -> Waiting {
        self.waiting_with(file, self.chat_view(file, chat), since)
    }

    /// [`Engine::waiting`] with the chat's view already built.
    pub(super) fn waiting_with(&self, file: &CustomerFile, card: ChatView, since: Timestamp) -> Waiting {
        let chat = card.id.clone();
        let queue = self.queue_of[&card.channel].clone();
        self.offer_cards.insert(chat.clone(), card);
        Waiting {
            chat,
            customer: file.id.clone(),
            queue,
            since,
            declined_by: Vec::new(),
        }
    }

    pub(super) fn receipt(&self, file: &CustomerFile, chat_id: Option<ChatId>) -> IngressReceipt {
        let chat = chat_id.as_ref().and_then(|id| file.chat(id));
        let queue_position = chat
            .filter(|c| c.state() == ChatState::Queued)
            .and_then(|c| self.router.lock().position(&c.id))
            .map(|(_, p)| p);
        IngressReceipt {
            customer_id: file.id.clone(),
            state: chat.map(|c| c.state().into()),
            owner: chat.and_then(|c| c.stage.owner().cloned()),
            chat_id,
            queue_position,
        }
    }
}

/// The chat an operation was about, for the ingress receipt.
fn first_chat(events: &[crate::core::CustomerEvent]) -> Option<ChatId> {
    events.iter().find_map(|e| e.chat().cloned())
}
