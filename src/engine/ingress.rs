//! Customers' messages and bot journeys arriving from the channels (R01, R05, R08–R11, R13).

use super::{Engine, QueueSetup, SharedFile, DEFAULT_AFTER_HOURS_REPLY};
use crate::channels::{Content, Delivered, DeliveryStatus, NativeMessage};
use crate::clock::Timestamp;
use crate::core::queue::{bad_level, MAX_LEVEL};
use crate::core::{
    Arrival, Channel, ChatState, CustomerFile, Delivery, Incoming, Payload, Profile, Rejection, RoutingAsk,
};
use crate::ids::{ChatId, CustomerId, QueueId};
use crate::protocol::{routing_ask, BotRequest, ChatView, InboundMessage, IngressReceipt};
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
        let ask = self.checked_ask(routing_ask(
            &message.queue,
            &message.language,
            &message.skills,
            &message.attributes,
        ))?;
        let InboundMessage {
            from,
            text,
            name,
            email,
            phone,
            ..
        } = message;
        let profile = Profile { name, email, phone };
        let incoming = Incoming::from(text.as_str());
        Ok(
            self.take_message(channel, &from, profile, incoming, ask, |file, chat| {
                self.receipt(file, chat)
            }),
        )
    }

    /// What a platform's own webhook delivered (R23, R25): customers' messages of every type,
    /// each recorded once however often the platform delivers it, and statuses of our
    /// messages. A status of a message the engine does not know is kept a minute, in case the
    /// platform's answer to the send is still on its way, then let go of (it may be of
    /// another system's sends on the same number).
    pub fn native(&self, delivered: Vec<Delivered>) {
        for item in delivered {
            match item {
                Delivered::Message(message) => self.native_message(message),
                Delivered::Status(status) => {
                    let delivery = delivery(status.status, status.reason);
                    self.delivery_status(status.channel, &status.provider_id, delivery);
                }
                Delivered::Watermark(mark) => {
                    let delivery = delivery(mark.status, None);
                    self.delivery_up_to(mark.channel, &mark.customer, mark.up_to, delivery);
                }
            }
        }
    }

    fn native_message(&self, message: NativeMessage) {
        let channel = message.channel;
        let thread = self.thread_of(&message);
        let policy = self.config.policies.of(channel);
        let (mut text, payload) = native_content(message.content);
        // A platform does not resend a shorter message when one is refused: a longer one than
        // the channel allows is kept, cut to the limit, rather than lost.
        if text.chars().count() > policy.max_len {
            text = text.chars().take(policy.max_len).collect();
        }
        let incoming = Incoming {
            text,
            payload,
            provider_id: Some(message.provider_id),
        };
        let profile = Profile {
            name: message.name,
            email: (channel == Channel::Email).then(|| message.from.clone()),
            phone: matches!(channel, Channel::Sms | Channel::Whatsapp).then(|| message.from.clone()),
        };
        // A platform wants no receipt: none is worked out (it takes the router's lock).
        let ask = RoutingAsk::default();
        if let Some(file) = thread {
            // Someone else on the customer's thread: the message joins the customer's
            // conversation (R01), and its sender becomes neither their address nor their
            // profile.
            self.take_message_into(&file, channel, None, incoming, ask, |_, _| ());
            return;
        }
        self.take_message(channel, &message.from, profile, incoming, ask, |_, _| ());
    }

    /// The customer whose email thread `message` answers, when its sender is no customer yet
    /// (R23): a colleague on copy, or the customer writing from another address, answering
    /// one of our replies (`In-Reply-To` / `References` naming its `Message-ID`). A known
    /// sender keeps their own file, as on every channel.
    fn thread_of(&self, message: &NativeMessage) -> Option<SharedFile> {
        if message.channel != Channel::Email
            || self.customers.file_at(Channel::Email, &message.from).is_some()
        {
            return None;
        }
        message.in_reply_to.iter().find_map(|id| {
            let sent = self.sent_messages.get(&(Channel::Email, id.clone()))?;
            self.customers.file(&sent.customer)
        })
    }

    /// A customer's message, however it came: R01 under the customer's lock, then its effects;
    /// `answer` reads the file as the message left it, still under the lock.
    fn take_message<R>(
        &self,
        channel: Channel,
        from: &str,
        profile: Profile,
        incoming: Incoming,
        ask: RoutingAsk,
        answer: impl FnOnce(&CustomerFile, Option<ChatId>) -> R,
    ) -> R {
        let file = self.file_for(channel, from, profile.clone());
        self.take_message_into(&file, channel, Some((from, profile)), incoming, ask, answer)
    }

    /// [`Engine::take_message`] into `file`, learning the sender's address and profile when
    /// they are the customer's (`sender`).
    fn take_message_into<R>(
        &self,
        file: &SharedFile,
        channel: Channel,
        sender: Option<(&str, Profile)>,
        incoming: Incoming,
        ask: RoutingAsk,
        answer: impl FnOnce(&CustomerFile, Option<ChatId>) -> R,
    ) -> R {
        let now = self.now();
        let policy = self.config.policies.of(channel);
        let mut file = file.lock();
        let mut effects = self.effects(&file, now);
        let mut events = match sender {
            Some((from, profile)) => file.learn(channel, from, profile),
            None => Vec::new(),
        };
        events.extend(file.receive(channel, incoming, ask, policy, now, || {
            ChatId::from(self.new_id("ch"))
        }));
        effects.apply(&file, &events);
        effects.follow_up(&mut file);
        effects.finish(&file);
        answer(&file, first_chat(&events))
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
        let ask = self.checked_ask(routing_ask(
            &request.queue,
            &request.language,
            &request.skills,
            &request.attributes,
        ))?;
        let mut file = file.lock();
        let mut effects = self.effects(&file, now);
        let events = file.hand_over(ask, now)?;
        effects.apply(&file, &events);
        effects.follow_up(&mut file);
        effects.finish(&file);
        Ok(self.receipt(&file, first_chat(&events)))
    }

    /// A queued chat coming to routing, waiting since `since`, with what it asked of routing;
    /// its offer card is captured now, under the customer's lock, for routing to show later.
    pub(super) fn arrival(
        &self,
        file: &CustomerFile,
        card: ChatView,
        since: Timestamp,
    ) -> (Arrival, RoutingAsk) {
        let chat = card.id.clone();
        let channel = card.channel.into();
        self.offer_cards.insert(chat.clone(), card);
        let ask = file.chat(&chat).map(|c| c.routing.clone()).unwrap_or_default();
        let queue = self.queue_for(channel, &ask);
        let arrival = Arrival {
            chat,
            customer: file.id.clone(),
            channel,
            queue,
            since,
        };
        (arrival, ask)
    }

    /// The queue a chat on `channel` that asked for `ask` goes to: the one it asked for, else
    /// its channel's. (Ingress refuses an unknown queue; one removed from the configuration
    /// since falls back to the channel's.)
    fn queue_for(&self, channel: Channel, ask: &RoutingAsk) -> QueueId {
        ask.queue
            .as_ref()
            .filter(|q| self.queue_setup(q).is_some())
            .cloned()
            .unwrap_or_else(|| self.queue_of[&channel].clone())
    }

    /// `ask` if routing can serve it: a queue the configuration names, levels from 1 to 5.
    fn checked_ask(&self, ask: RoutingAsk) -> Result<RoutingAsk, Refusal> {
        if let Some(queue) = &ask.queue {
            if self.queue_setup(queue).is_none() {
                return Err(Refusal::BadRequest(format!("unknown queue `{queue}`")));
            }
        }
        if let Some((skill, level)) = bad_level(&ask.skills) {
            return Err(Refusal::BadRequest(format!(
                "skill `{skill}` asks for level {level}; levels go from 1 to {MAX_LEVEL}"
            )));
        }
        Ok(ask)
    }

    /// The configuration of `queue`, if the configuration names it.
    pub(super) fn queue_setup(&self, queue: &QueueId) -> Option<&QueueSetup> {
        self.config.queues.iter().find(|q| &q.id == queue)
    }

    /// What a customer who writes while `queue` is closed is told (R21).
    pub(super) fn after_hours_reply(&self, queue: &QueueId) -> &str {
        self.queue_setup(queue)
            .map_or(DEFAULT_AFTER_HOURS_REPLY, |q| q.after_hours_reply.as_str())
    }

    pub(super) fn receipt(&self, file: &CustomerFile, chat_id: Option<ChatId>) -> IngressReceipt {
        let chat = chat_id.as_ref().and_then(|id| file.chat(id));
        let now = self.now();
        let waits = chat.filter(|c| c.state() == ChatState::Queued).and_then(|c| {
            let router = self.router.lock();
            let (queue, position) = router.position(&c.id, now)?;
            let wait = router.estimated_wait(&queue, position, now);
            Some((queue, position, wait))
        });
        IngressReceipt {
            customer_id: file.id.clone(),
            state: chat.map(|c| c.state().into()),
            owner: chat.and_then(|c| c.stage.owner().cloned()),
            chat_id,
            queue_position: waits.as_ref().map(|(_, p, _)| *p),
            queue: waits.as_ref().map(|(q, _, _)| q.clone()),
            estimated_wait_secs: waits
                .and_then(|(_, _, wait)| wait)
                .map(|w| w.num_seconds().max(0) as u64),
        }
    }
}

/// A platform's status in the core's terms; a failure keeps the platform's reason.
fn delivery(status: DeliveryStatus, reason: Option<String>) -> Delivery {
    match status {
        DeliveryStatus::Sent => Delivery::Sent,
        DeliveryStatus::Delivered => Delivery::Delivered,
        DeliveryStatus::Read => Delivery::Read,
        DeliveryStatus::Failed => Delivery::Failed {
            reason: reason.unwrap_or_else(|| "the platform gave no reason".into()),
        },
    }
}

/// The chat an operation was about, for the ingress receipt.
fn first_chat(events: &[crate::core::CustomerEvent]) -> Option<ChatId> {
    events.iter().find_map(|e| e.chat().cloned())
}

/// A platform's content in the core's terms: the text (a caption, a place's name, a reply's
/// title, or a note of what the message was) and its payload (R23).
fn native_content(content: Content) -> (String, Option<Payload>) {
    match content {
        Content::Text(text) => (text, None),
        Content::Media(media) => {
            let payload = Payload::Media {
                kind: media.kind,
                id: media.id,
                url: media.url,
                mime: media.mime,
                filename: media.filename,
            };
            (media.caption.unwrap_or_default(), Some(payload))
        }
        Content::Location {
            latitude,
            longitude,
            name,
            address,
        } => {
            let text = name.clone().unwrap_or_default();
            let payload = Payload::Location {
                latitude: latitude.to_string(),
                longitude: longitude.to_string(),
                name,
                address,
            };
            (text, Some(payload))
        }
        Content::Reply { id, title } => (title, Some(Payload::Reply { id })),
        Content::Unsupported { kind } => (String::new(), Some(Payload::Unsupported { kind })),
    }
}
