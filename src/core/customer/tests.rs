//! Rule tables for a customer's file (R02–R13), asserted as the events each operation returns:
//! the rules are proved here, without an engine, a lock or a socket.

use chrono::{Duration, TimeZone, Utc};

use super::*;
use crate::core::rejection::ErrorCode;
use crate::ids::QueueId;

fn t(minutes: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().expect("date") + Duration::minutes(minutes)
}

fn ana() -> AgentId {
    AgentId::from("ana")
}

fn ben() -> AgentId {
    AgentId::from("ben")
}

/// A customer on `channel` with one chat, in its state after `setup`.
struct Desk {
    file: CustomerFile,
    policy: ChannelPolicy,
    channel: Channel,
    next: u32,
}

impl Desk {
    fn on(channel: Channel) -> Self {
        Self {
            file: CustomerFile::new(
                CustomerId::from("cu1"),
                channel,
                "+49151".into(),
                Profile::default(),
            ),
            policy: channel.default_policy(),
            channel,
            next: 0,
        }
    }

    fn write(&mut self, text: &str, at: Timestamp) -> Events {
        self.next += 1;
        let id = ChatId::from(format!("ch{}", self.next));
        self.file
            .receive(self.channel, text, RoutingAsk::default(), &self.policy, at, || id)
    }

    /// The customer writes, `agent` accepts: an active chat.
    fn active(&mut self, agent: &AgentId, at: Timestamp) -> ChatId {
        let events = self.write("hello", at);
        let chat = events[0].chat().expect("a chat").clone();
        self.file.accept(&chat, agent, &routed()).expect("accepts");
        chat
    }

    /// An active chat of `agent`, closed by it.
    fn closed(&mut self, agent: &AgentId, at: Timestamp) -> ChatId {
        let chat = self.active(agent, at);
        self.file
            .close(&chat, agent, CloseReason::Agent, at)
            .expect("closes");
        chat
    }

    fn state(&self, chat: &ChatId) -> ChatState {
        self.file.chat(chat).expect("chat").state()
    }

    fn reopen(&mut self, chat: &ChatId, agent: &AgentId, at: Timestamp) -> Result<Events, Rejection> {
        self.file.reopen(chat, agent, &self.policy, at)
    }
}

fn code(result: Result<Events, Rejection>) -> ErrorCode {
    result.expect_err("refused").code()
}

fn message(chat: &ChatId, seq: u64, by_customer: bool) -> CustomerEvent {
    CustomerEvent::MessageAdded {
        chat: chat.clone(),
        seq,
        by_customer,
        human_agent_tag: false,
    }
}

#[test]
fn r02_a_closed_chat_reopens_only_while_its_window_is_open() {
    // (channel, minutes after the customer's last message, reopens?)
    let table = [
        (Channel::Whatsapp, 60, true),
        (Channel::Whatsapp, 24 * 60 - 1, true),
        (Channel::Whatsapp, 24 * 60, false),
        (Channel::Wechat, 47 * 60, true),
        (Channel::Wechat, 48 * 60, false),
        // No window: always.
        (Channel::Webchat, 30 * 24 * 60, true),
    ];
    for (channel, later, reopens) in table {
        let mut desk = Desk::on(channel);
        let chat = desk.closed(&ana(), t(0));
        let result = desk.reopen(&chat, &ana(), t(later));
        assert_eq!(result.is_ok(), reopens, "{channel} {later} min later");
        if !reopens {
            assert_eq!(code(result), ErrorCode::WindowClosed);
            assert_eq!(desk.state(&chat), ChatState::Closed, "a refusal changes nothing");
        }
    }
}

#[test]
fn r03_a_customer_with_a_live_chat_cannot_be_reopened() {
    // Each way a customer can be live elsewhere: queued, active, reopened, snoozed, bot.
    let mut desk = Desk::on(Channel::Whatsapp);
    let old = desk.closed(&ana(), t(0));
    let queued = desk.write("again", t(1));
    assert!(matches!(
        queued[..],
        [CustomerEvent::ChatStarted { revived: true, .. }, ..]
    ));
    assert_eq!(code(desk.reopen(&old, &ben(), t(2))), ErrorCode::ActiveElsewhere);

    let mut desk = Desk::on(Channel::Webchat);
    let old = desk.closed(&ana(), t(0));
    desk.reopen(&old, &ana(), t(1)).expect("the first wins");
    assert_eq!(
        code(desk.reopen(&old, &ben(), t(1))),
        ErrorCode::ActiveElsewhere,
        "the second of two racing agents loses"
    );

    let mut desk = Desk::on(Channel::Telegram);
    let old = desk.closed(&ana(), t(0));
    desk.file
        .start_bot(Channel::Sms, &Channel::Sms.default_policy(), t(1), || {
            "bot1".into()
        })
        .expect("bot starts");
    assert_eq!(code(desk.reopen(&old, &ana(), t(2))), ErrorCode::ActiveElsewhere);
}

#[test]
fn r04_a_reopen_makes_the_chat_reopened_with_its_reopener_and_sends_a_notice() {
    let mut desk = Desk::on(Channel::Whatsapp);
    let chat = desk.closed(&ana(), t(0));
    let events = desk.reopen(&chat, &ben(), t(10)).expect("reopens");
    assert_eq!(
        events,
        vec![
            CustomerEvent::Reopened {
                chat: chat.clone(),
                by: ben(),
                until: t(24 * 60),
            },
            message(&chat, 1, false),
        ]
    );
    let reopened = desk.file.chat(&chat).expect("chat");
    assert_eq!(
        reopened.stage,
        Stage::Reopened {
            owner: ben(),
            since: t(10)
        }
    );
    assert_eq!(reopened.messages[1].kind, MessageKind::Notice);
    assert_eq!(
        desk.file.assigned_agent,
        Some(ana()),
        "the reopener owns the chat, not the customer (R10)"
    );
}

/// Reopening a chat one holds reopened already changes nothing and is no conflict; another
/// agent still gets `active_elsewhere` (R03).
#[test]
fn r17_a_reopen_of_a_chat_the_caller_holds_reopened_answers_with_no_change() {
    let mut desk = Desk::on(Channel::Whatsapp);
    let chat = desk.closed(&ana(), t(0));
    desk.reopen(&chat, &ben(), t(10)).expect("reopens");
    let before = format!("{:?}", desk.file);
    assert_eq!(desk.reopen(&chat, &ben(), t(11)), Ok(Vec::new()));
    assert_eq!(
        format!("{:?}", desk.file),
        before,
        "nothing changed: no second notice"
    );
    assert_eq!(
        code(desk.reopen(&chat, &ana(), t(12))),
        ErrorCode::ActiveElsewhere
    );
}

#[test]
fn r05_the_customer_s_reply_makes_a_reopened_chat_active_with_the_reopener() {
    let mut desk = Desk::on(Channel::Webchat);
    let chat = desk.closed(&ana(), t(0));
    desk.reopen(&chat, &ben(), t(1)).expect("reopens");
    let events = desk.write("yes?", t(2));
    assert_eq!(
        events,
        vec![
            CustomerEvent::ReopenAnswered {
                chat: chat.clone(),
                agent: ben()
            },
            message(&chat, 2, true),
        ],
        "no queue, no bot: straight to the reopener (the engine moves its load)"
    );
    assert_eq!(desk.state(&chat), ChatState::Active);
}

#[test]
fn r07_one_template_after_the_window_until_the_customer_writes_again() {
    let mut desk = Desk::on(Channel::Whatsapp);
    let chat = desk.closed(&ana(), t(0));
    let late = t(25 * 60);
    let push = |desk: &mut Desk, at| {
        desk.file.push_template(
            &chat,
            &ana(),
            "order_ready".into(),
            vec!["42".into()],
            &desk.policy,
            at,
        )
    };
    let events = push(&mut desk, late).expect("the one push");
    assert!(
        matches!(&events[..], [CustomerEvent::TemplatePushed { template, .. }, CustomerEvent::MessageAdded { .. }] if template == "order_ready")
    );
    assert_eq!(
        desk.file
            .chat(&chat)
            .expect("chat")
            .messages
            .last()
            .expect("message")
            .text,
        "order_ready(42)"
    );
    assert_eq!(
        desk.state(&chat),
        ChatState::Closed,
        "a push does not make the chat live"
    );
    assert_eq!(code(push(&mut desk, late)), ErrorCode::PushAlreadySent);
    // Free text after the window is refused outright.
    assert_eq!(
        code(desk.file.send(&chat, &ana(), "hi", false, &desk.policy, late)),
        ErrorCode::WindowClosed
    );
    // The customer writes again: a new window, and the push is re-armed.
    let events = desk.write("thanks", late);
    assert!(events.contains(&CustomerEvent::PushRearmed {
        channel: Channel::Whatsapp
    }));
}

#[test]
fn r07_a_channel_that_allows_nothing_after_its_window_refuses_even_the_template() {
    let mut desk = Desk::on(Channel::Wechat);
    let chat = desk.closed(&ana(), t(0));
    let result = desk
        .file
        .push_template(&chat, &ana(), "x".into(), Vec::new(), &desk.policy, t(49 * 60));
    assert_eq!(code(result), ErrorCode::WindowClosed);
}

#[test]
fn r08_stop_closes_the_live_chat_opts_out_and_blocks_reopen_until_the_customer_writes() {
    // (state before #STOP) → the Closed event's prior state and owner
    let mut desk = Desk::on(Channel::Whatsapp);
    let chat = desk.closed(&ana(), t(0));
    desk.reopen(&chat, &ana(), t(1)).expect("reopens");
    let events = desk.write("  #stop ", t(2));
    assert_eq!(
        events,
        vec![
            CustomerEvent::OptedOut {
                channel: Channel::Whatsapp
            },
            CustomerEvent::Closed {
                chat: chat.clone(),
                prior: ChatState::Reopened,
                owner: Some(ana()),
                reason: CloseReason::Stop,
            },
            message(&chat, 2, true),
        ],
        "a #STOP on a reopened chat: the engine counts it as declined"
    );
    assert_eq!(code(desk.reopen(&chat, &ana(), t(3))), ErrorCode::OptedOut);
    let push = desk
        .file
        .push_template(&chat, &ana(), "x".into(), Vec::new(), &desk.policy, t(25 * 60));
    assert_eq!(code(push), ErrorCode::OptedOut);

    let events = desk.write("sorry, back", t(4));
    assert_eq!(
        events[0],
        CustomerEvent::OptOutLifted {
            channel: Channel::Whatsapp
        }
    );
    assert!(!desk.file.is_opted_out(Channel::Whatsapp));
}

#[test]
fn r08_stop_without_a_live_chat_only_opts_out() {
    let mut desk = Desk::on(Channel::Sms);
    assert_eq!(
        desk.write("#STOP", t(0)),
        vec![CustomerEvent::OptedOut {
            channel: Channel::Sms
        }]
    );
    assert!(
        desk.write("#STOP", t(1)).is_empty(),
        "already opted out: nothing new"
    );
}

#[test]
fn r09_a_bot_journey_hands_over_to_the_queue_with_the_sticky_agent() {
    let mut desk = Desk::on(Channel::Webchat);
    desk.closed(&ana(), t(0));
    let events = desk
        .file
        .start_bot(Channel::Webchat, &desk.policy, t(5), || "unused".into())
        .expect("starts");
    let chat = events[0].chat().expect("chat").clone();
    assert_eq!(desk.state(&chat), ChatState::Bot);
    assert_eq!(
        desk.file
            .hand_over(RoutingAsk::default(), t(6))
            .expect("hands over"),
        vec![CustomerEvent::Queued {
            chat: chat.clone(),
            sticky: Some(ana())
        }]
    );
    assert_eq!(
        desk.file
            .hand_over(RoutingAsk::default(), t(7))
            .expect_err("twice")
            .code(),
        ErrorCode::BadRequest,
        "only a bot journey can be handed over"
    );
}

#[test]
fn r10_a_customer_starting_again_is_queued_with_its_assigned_agent() {
    let mut desk = Desk::on(Channel::Whatsapp);
    desk.closed(&ana(), t(0));
    let events = desk.write("it's me again", t(25 * 60));
    assert!(matches!(&events[..], [
        CustomerEvent::ChatStarted { revived: false, .. },
        CustomerEvent::MessageAdded { .. },
        CustomerEvent::Queued { sticky: Some(agent), .. },
    ] if *agent == ana()));
}

/// The reference's case (002, last FAQ): Ana accepts, transfers to Ben, who closes; Cleo
/// reopens and closes again. The customer writes on their own: the chat goes to Ana.
#[test]
fn r10_neither_a_transfer_nor_a_reopen_changes_the_originally_assigned_agent() {
    let cleo = AgentId::from("cleo");
    let mut desk = Desk::on(Channel::Whatsapp);
    let chat = desk.active(&ana(), t(0));
    desk.file.transfer(&chat, &ana(), &ben()).expect("transfers");
    desk.file
        .close(&chat, &ben(), CloseReason::Agent, t(1))
        .expect("closes");
    let reopened = desk.reopen(&chat, &cleo, t(2)).expect("reopens");
    assert!(
        !reopened
            .iter()
            .any(|e| matches!(e, CustomerEvent::StickyAgentSet { .. })),
        "{reopened:?}"
    );
    desk.file
        .close(&chat, &cleo, CloseReason::Agent, t(3))
        .expect("closes");
    assert_eq!(desk.file.assigned_agent, Some(ana()));

    let events = desk.write("hello again", t(25 * 60));
    assert!(
        matches!(&events[..], [
            CustomerEvent::ChatStarted { revived: false, .. },
            CustomerEvent::MessageAdded { .. },
            CustomerEvent::Queued { sticky: Some(agent), .. },
        ] if *agent == ana()),
        "{events:?}"
    );
}

/// The last acceptance from routing makes the assigned agent: a chat Ben accepts from the
/// queue after Ana's makes Ben the one a returning customer goes to.
#[test]
fn r10_the_agent_who_last_accepted_from_routing_is_the_assigned_agent() {
    let mut desk = Desk::on(Channel::Whatsapp);
    desk.closed(&ana(), t(0));
    let first = desk.write("again", t(25 * 60));
    let chat = first[0].chat().expect("a chat").clone();
    let accepted = desk.file.accept(&chat, &ben(), &routed()).expect("accepts");
    assert!(
        accepted.contains(&CustomerEvent::StickyAgentSet { agent: ben() }),
        "{accepted:?}"
    );
    assert_eq!(desk.file.assigned_agent, Some(ben()));
}

#[test]
fn r11_a_return_within_the_window_revives_the_same_chat_and_after_it_starts_a_new_one() {
    // (channel, minutes after the close, revived?)
    let table = [
        (Channel::Whatsapp, 60, true),
        (Channel::Whatsapp, 25 * 60, false),
        (Channel::Webchat, 23 * 60, true),
        (Channel::Webchat, 24 * 60, false),
    ];
    for (channel, later, revived) in table {
        let mut desk = Desk::on(channel);
        let old = desk.closed(&ana(), t(0));
        let events = desk.write("back", t(later));
        let CustomerEvent::ChatStarted { chat, revived: was } = &events[0] else {
            panic!("{channel}: a chat starts, got {events:?}");
        };
        assert_eq!(*was, revived, "{channel} {later} min later");
        assert_eq!(*chat == old, revived, "same id only when revived");
        let history = desk.file.chat(chat).expect("chat").messages.len();
        assert_eq!(
            history,
            if revived { 2 } else { 1 },
            "a revived chat keeps its history"
        );
    }
}

#[test]
fn r12_only_the_owner_writes_transfers_or_closes() {
    let mut desk = Desk::on(Channel::Webchat);
    let chat = desk.active(&ana(), t(0));
    let policy = desk.policy;
    assert_eq!(
        code(desk.file.send(&chat, &ben(), "hi", false, &policy, t(1))),
        ErrorCode::NotOwner
    );
    assert_eq!(
        code(desk.file.transfer(&chat, &ben(), &ana())),
        ErrorCode::NotOwner
    );
    assert_eq!(
        code(desk.file.close(&chat, &ben(), CloseReason::Agent, t(1))),
        ErrorCode::NotOwner
    );
    assert_eq!(
        desk.file.transfer(&chat, &ana(), &ben()).expect("moves"),
        vec![CustomerEvent::Transferred {
            chat: chat.clone(),
            from: ana(),
            to: ben()
        }]
    );
    assert_eq!(
        desk.file
            .close(&chat, &ben(), CloseReason::Agent, t(2))
            .expect("closes"),
        vec![CustomerEvent::Closed {
            chat: chat.clone(),
            prior: ChatState::Active,
            owner: Some(ben()),
            reason: CloseReason::Agent
        }],
        "an active chat's close frees its owner's slot (the engine does it)"
    );
}

#[test]
fn r13_a_snooze_ends_by_its_time_or_the_customer_s_reply() {
    let mut desk = Desk::on(Channel::Webchat);
    let chat = desk.active(&ana(), t(0));
    let until = SnoozeUntil::Time { at: t(30) };
    assert_eq!(
        desk.file.snooze(&chat, &ana(), until, t(1)).expect("snoozes"),
        vec![CustomerEvent::Snoozed {
            chat: chat.clone(),
            owner: ana(),
            until
        }]
    );
    assert!(desk.file.wake(&chat, t(29)).is_empty(), "not yet");
    assert_eq!(
        desk.file.wake(&chat, t(30)),
        vec![CustomerEvent::SnoozeEnded {
            chat: chat.clone(),
            owner: ana()
        }]
    );
    assert!(desk.file.wake(&chat, t(31)).is_empty(), "once");

    desk.file
        .snooze(&chat, &ana(), SnoozeUntil::Reply, t(40))
        .expect("snoozes until a reply");
    let events = desk.write("still there?", t(41));
    assert_eq!(
        events[0],
        CustomerEvent::SnoozeEnded {
            chat: chat.clone(),
            owner: ana()
        }
    );
    assert_eq!(desk.state(&chat), ChatState::Active);
    assert_eq!(
        desk.file
            .snooze(&chat, &ana(), SnoozeUntil::Time { at: t(40) }, t(42))
            .expect_err("past")
            .code(),
        ErrorCode::BadRequest,
        "a snooze must end in the future"
    );
}

#[test]
fn a_reopen_that_timed_out_closes_once_and_only_the_reopen_it_was_set_for() {
    let mut desk = Desk::on(Channel::Webchat);
    let chat = desk.closed(&ana(), t(0));
    desk.reopen(&chat, &ana(), t(1)).expect("reopens");
    assert!(
        desk.file.expire_reopen(&chat, t(0), t(2)).is_empty(),
        "a timer of an earlier reopen does nothing"
    );
    assert_eq!(
        desk.file.expire_reopen(&chat, t(1), t(24 * 60 + 1)),
        vec![CustomerEvent::Closed {
            chat: chat.clone(),
            prior: ChatState::Reopened,
            owner: Some(ana()),
            reason: CloseReason::Timeout
        }]
    );
    assert!(desk.file.expire_reopen(&chat, t(1), t(24 * 60 + 2)).is_empty());
}

#[test]
fn a_refused_operation_leaves_the_file_as_it_was() {
    let mut desk = Desk::on(Channel::Whatsapp);
    let chat = desk.closed(&ana(), t(0));
    let before = format!("{:?}", desk.file);
    let policy = desk.policy;
    let refusals = [
        desk.file.reopen(&chat, &ana(), &policy, t(25 * 60)).map(|_| ()),
        desk.file
            .send(&chat, &ana(), "hi", false, &policy, t(1))
            .map(|_| ()),
        desk.file
            .close(&chat, &ana(), CloseReason::Agent, t(1))
            .map(|_| ()),
        desk.file
            .snooze(&chat, &ana(), SnoozeUntil::Reply, t(1))
            .map(|_| ()),
        desk.file.transfer(&chat, &ana(), &ben()).map(|_| ()),
        desk.file
            .push_template(&chat, &ana(), "x".into(), Vec::new(), &policy, t(1))
            .map(|_| ()),
    ];
    assert!(refusals.iter().all(Result::is_err));
    assert_eq!(format!("{:?}", desk.file), before);
}

#[test]
fn issue13_a_chat_s_stage_carries_its_owner_snooze_and_close_through_its_life() {
    let stage = |desk: &Desk, chat: &ChatId| desk.file.chat(chat).expect("chat").stage.clone();
    let mut desk = Desk::on(Channel::Webchat);
    desk.write("hello", t(0));
    let chat = desk.file.live().expect("live").id.clone();
    assert_eq!(stage(&desk, &chat), Stage::Queued { since: t(0) });
    desk.file.accept(&chat, &ana(), &routed()).expect("accepts");
    assert_eq!(stage(&desk, &chat), Stage::Active { owner: ana() });
    desk.file.transfer(&chat, &ana(), &ben()).expect("transfers");
    assert_eq!(stage(&desk, &chat), Stage::Active { owner: ben() });
    let until = SnoozeUntil::Time { at: t(30) };
    desk.file.snooze(&chat, &ben(), until, t(1)).expect("snoozes");
    assert_eq!(stage(&desk, &chat), Stage::Snoozed { owner: ben(), until });
    desk.file.wake(&chat, t(30));
    desk.file
        .close(&chat, &ben(), CloseReason::Agent, t(31))
        .expect("closes");
    assert_eq!(
        stage(&desk, &chat),
        Stage::Closed {
            at: t(31),
            why: CloseReason::Agent,
            owner: Some(ben())
        },
        "the last owner stays, for the archive's \"mine\""
    );
    desk.reopen(&chat, &ana(), t(32)).expect("reopens");
    desk.write("thanks", t(33));
    let answered = desk.file.chat(&chat).expect("chat");
    assert_eq!(answered.stage, Stage::Active { owner: ana() });
    assert_eq!(answered.reopened_by, Some(ana()), "kept after the reply (R05)");
    desk.file
        .close(&chat, &ana(), CloseReason::Agent, t(34))
        .expect("closes");
    desk.write("a new question", t(40));
    let revived = desk.file.chat(&chat).expect("revived within the window (R11)");
    assert_eq!(revived.stage, Stage::Queued { since: t(40) });
    assert_eq!(revived.reopened_by, None, "a revived chat is a new conversation");
}

/// What routing says of an offer accepted at once from a queue without an SLA.
fn routed() -> Accepted {
    Accepted {
        queue: QueueId::from("webchat"),
        waited: Duration::zero(),
        to_accept: Duration::zero(),
        within_sla: None,
    }
}

#[test]
fn r25_a_watermark_moves_only_what_the_platform_took_up_to_it_and_only_forward() {
    let mut desk = Desk::on(Channel::Messenger);
    let chat = desk.active(&ana(), t(0));
    let policy = desk.policy.clone();
    for (text, at) in [("a", 1), ("b", 2), ("c", 3), ("d", 5)] {
        desk.file
            .send(&chat, &ana(), text, false, &policy, t(at))
            .expect("sends");
    }
    // Seqs 1 to 4 are a, b, c, d: a taken, b refused for good, c still in the outbox, d taken.
    desk.file.delivery(&chat, 1, Delivery::Sent, Some("m_a".into()));
    let failed = Delivery::Failed {
        reason: "blocked".into(),
    };
    desk.file.delivery(&chat, 2, failed.clone(), None);
    desk.file.delivery(&chat, 4, Delivery::Sent, Some("m_d".into()));
    let status = |desk: &Desk, seq: usize| {
        desk.file.chat(&chat).expect("chat").messages[seq]
            .delivery
            .clone()
    };

    let read = desk.file.delivery_up_to(Channel::Messenger, t(3), Delivery::Read);

    assert_eq!(
        read,
        vec![E::DeliveryChanged {
            chat: chat.clone(),
            seq: 1
        }]
    );
    assert_eq!(status(&desk, 2), Some(failed), "the platform never had it");
    assert_eq!(status(&desk, 3), Some(Delivery::Pending), "not sent yet");
    assert_eq!(
        status(&desk, 4),
        Some(Delivery::Sent),
        "written after the watermark"
    );
    assert!(
        desk.file
            .delivery_up_to(Channel::Whatsapp, t(10), Delivery::Read)
            .is_empty(),
        "another channel's receipt"
    );
    let delivered = desk
        .file
        .delivery_up_to(Channel::Messenger, t(10), Delivery::Delivered);
    assert_eq!(
        delivered,
        vec![E::DeliveryChanged {
            chat: chat.clone(),
            seq: 4
        }]
    );
    assert_eq!(status(&desk, 1), Some(Delivery::Read), "read stays read");
    desk.file.check_invariants();
}
