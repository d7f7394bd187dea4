//! Reopening closed chats: R02, R03, R04, R05, R08, R09, R10, R11.

use chrono::Duration;

use super::desk::{code, kinds, offered, Desk};
use crate::core::{Channel, ErrorCode};
use crate::protocol::{ActivatedBy, ChatState, MessageKind, Push, ReplyResult, Request};

#[test]
fn r02_reopen_inside_the_window_succeeds_and_after_it_is_window_closed() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let early = desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    let late = desk.closed_chat(&ana, Channel::Whatsapp, "+492");
    desk.advance(Duration::hours(23));
    assert!(desk.reopen(&ana, &early).is_ok());

    desk.advance(Duration::hours(1) + Duration::seconds(1));
    let err = desk.reopen(&ana, &late).expect_err("window closed");
    assert_eq!(err.code(), ErrorCode::WindowClosed);
    let crate::refusal::Refusal::Rule(crate::core::Rejection::WindowClosed { expired_at }) = err else {
        panic!("{err:?}")
    };
    assert_eq!(expired_at, Some(super::desk::start() + Duration::hours(24)));
    desk.check();
}

#[test]
fn r02_archive_entries_carry_window_expiry_and_windowless_channels_have_none() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    desk.closed_chat(&ana, Channel::Sms, "+492");
    let Ok(ReplyResult::Archive { entries, .. }) = desk.request(
        &ana,
        Request::ListArchive {
            scope: crate::protocol::Scope::Mine,
            state: Some(ChatState::Closed),
            query: None,
            limit: None,
            before: None,
        },
    ) else {
        panic!("archive")
    };
    assert_eq!(entries.len(), 2);
    for e in &entries {
        assert!(e.reopenable);
        match e.channel {
            crate::protocol::Channel::Whatsapp => {
                assert_eq!(
                    e.window_expires_at,
                    Some(super::desk::start() + Duration::hours(24))
                )
            }
            _ => assert_eq!(e.window_expires_at, None),
        }
    }
}

#[test]
fn r02_a_channel_without_window_can_always_be_reopened() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.closed_chat(&ana, Channel::Sms, "+491");
    desk.advance(Duration::days(90));
    assert!(desk.reopen(&ana, &chat).is_ok());
}

#[test]
fn r03_r17_reopen_while_live_elsewhere_is_rejected_and_says_where_and_the_owner_s_again_is_ok() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let ben = desk.agent("ben", 0);
    let chat = desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    assert!(desk.reopen(&ana, &chat).is_ok());
    let err = desk.reopen(&ben, &chat).expect_err("live with ana");
    let crate::refusal::Refusal::Rule(crate::core::Rejection::ActiveElsewhere { live }) = err else {
        panic!("{err:?}")
    };
    assert_eq!(live.state, crate::core::ChatState::Reopened);
    assert_eq!(live.owner, Some(ana.id.clone()));
    // The owner's second reopen (a retry, another tab) is no conflict with itself: it answers
    // with the chat and changes nothing, no second notice, no second push (R17).
    while desk.outbound.try_recv().is_ok() {}
    desk.pushes(&ana);
    let Ok(ReplyResult::Chat { chat: view }) = desk.reopen(&ana, &chat) else {
        panic!("the owner's reopen answers with the chat")
    };
    assert_eq!(
        (view.state, view.owner),
        (ChatState::Reopened, Some(ana.id.clone()))
    );
    assert!(desk.outbound.try_recv().is_err(), "no second notice");
    assert!(desk.pushes(&ana).is_empty());
    desk.check();
}

#[test]
fn r03_a_customer_waiting_in_the_queue_cannot_be_reopened() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 1);
    let chat = desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    desk.request(
        &ana,
        Request::SetPresence {
            presence: crate::protocol::Presence::Away,
        },
    )
    .expect("away");
    let receipt = desk.say(Channel::Whatsapp, "+491", "me again");
    assert_eq!(receipt.state, Some(ChatState::Queued));
    assert_eq!(receipt.chat_id.as_ref(), Some(&chat), "revived (R11)");
    assert_eq!(code(desk.reopen(&ana, &chat)), ErrorCode::ActiveElsewhere);
    desk.check();
}

#[test]
fn r04_reopen_pushes_to_every_connection_of_the_reopener_and_no_other_agent() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let ben = desk.agent("ben", 2);
    desk.connect(&ana);
    let chat = desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    desk.frames_on(&ana, 1);
    desk.pushes(&ben);
    desk.reopen(&ana, &chat).expect("reopened");
    for conn in [0, 1] {
        let pushes: Vec<_> = desk.frames_on(&ana, conn).into_iter().map(|(_, p)| p).collect();
        assert_eq!(kinds(&pushes), ["chat_reopened"], "connection {conn}");
        let Push::ChatReopened { chat: view } = &pushes[0] else {
            unreachable!()
        };
        assert_eq!(view.state, ChatState::Reopened);
        assert_eq!(view.owner, Some(ana.id.clone()));
    }
    assert!(desk.pushes(&ben).is_empty());
    desk.check();
}

#[test]
fn r04_watchers_of_the_archive_entry_see_the_reopen_button_turn_off() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let ben = desk.agent("ben", 2);
    let cleo = desk.agent("cleo", 2);
    let chat = desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    desk.pushes(&ben);
    desk.request(
        &ben,
        Request::WatchArchive {
            chat_ids: vec![chat.clone()],
        },
    )
    .expect("watching");
    desk.reopen(&ana, &chat).expect("reopened");
    let pushes = desk.pushes(&ben);
    let [Push::ArchiveEntryChanged { entry }] = pushes.as_slice() else {
        panic!("{pushes:?}")
    };
    assert_eq!(entry.chat_id, chat);
    assert!(!entry.reopenable);
    assert!(desk
        .pushes(&cleo)
        .iter()
        .all(|p| !matches!(p, Push::ArchiveEntryChanged { .. })));
}

#[test]
fn r04_reopen_notifies_the_customer_and_gives_the_chat_to_the_reopener() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let ben = desk.agent("ben", 0);
    let chat = desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    while desk.outbound.try_recv().is_ok() {}
    desk.engine.set_limit(&ben.id, 2).expect("limit");
    let Ok(ReplyResult::Chat { chat: view }) = desk.reopen(&ben, &chat) else {
        panic!("reopen")
    };
    assert_eq!(view.owner, Some(ben.id.clone()), "ana owned it before");
    let notice = desk.outbound.try_recv().expect("a notice went out");
    assert_eq!((notice.kind, notice.to.as_str()), (MessageKind::Notice, "+491"));
    // The customer's reply goes to ben, who reopened the chat (R05).
    let receipt = desk.say(Channel::Whatsapp, "+491", "ok");
    assert_eq!(receipt.owner, Some(ben.id.clone()));
    desk.close(&ben, &chat);
    desk.check();
}

/// A reopen does not make the reopener the customer's assigned agent: when the customer later
/// starts on their own, the chat goes to the agent who accepted it from routing (R10), even
/// though the reopener is less loaded.
#[test]
fn r10_a_customer_starting_on_their_own_after_a_reopen_goes_to_the_originally_assigned_agent() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let ben = desk.agent("ben", 0);
    let chat = desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    desk.engine.set_limit(&ben.id, 2).expect("limit");
    desk.reopen(&ben, &chat).expect("reopened");
    desk.say(Channel::Whatsapp, "+491", "ok");
    desk.close(&ben, &chat);
    // Ana is busier than ben: only the assignment can send the customer to her.
    desk.served(&ana, Channel::Whatsapp, "+492");
    desk.pushes(&ana);
    desk.pushes(&ben);
    desk.advance(Duration::days(2));
    let back = desk
        .say(Channel::Whatsapp, "+491", "new question")
        .chat_id
        .expect("a new chat");
    assert_ne!(back, chat, "after the window, a new chat");
    assert_eq!(offered(&desk.pushes(&ana)), [back]);
    assert!(!desk
        .pushes(&ben)
        .iter()
        .any(|p| matches!(p, Push::ChatOffered(_))));
    desk.check();
}

#[test]
fn r05_customer_reply_activates_the_reopened_chat_over_the_limit() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 1);
    let old = desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    desk.served(&ana, Channel::Whatsapp, "+492");
    assert_eq!(desk.load(&ana), (1, 1));
    desk.reopen(&ana, &old).expect("reopen does not need a free slot");
    assert_eq!(desk.load(&ana), (1, 1), "a reopened chat does not count");
    desk.pushes(&ana);

    let receipt = desk.say(Channel::Whatsapp, "+491", "yes, still broken");
    assert_eq!(receipt.state, Some(ChatState::Active));
    assert_eq!(receipt.owner, Some(ana.id.clone()));
    let pushes = desk.pushes(&ana);
    assert_eq!(kinds(&pushes), ["chat_activated", "customer_message"]);
    let Push::ChatActivated {
        by,
        load,
        limit,
        over_limit,
        ..
    } = &pushes[0]
    else {
        unreachable!()
    };
    assert_eq!(
        (*by, *load, *limit, *over_limit),
        (ActivatedBy::CustomerReplied, 2, 1, true)
    );
    let (_, _, _, overrides) = desk.engine.seat(&ana.id).expect("seat");
    assert_eq!(overrides, 1);
    desk.check();
}

#[test]
fn r08_stop_ends_the_chat_opts_out_and_blocks_reopen_until_the_customer_writes() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.served(&ana, Channel::Whatsapp, "+491");
    desk.pushes(&ana);
    let receipt = desk.say(Channel::Whatsapp, "+491", "  #Stop ");
    assert_eq!(receipt.state, Some(ChatState::Closed));
    let pushes = desk.pushes(&ana);
    assert!(matches!(
        pushes.as_slice(),
        [Push::ChatClosed {
            reason: crate::protocol::CloseReason::Stop,
            ..
        }]
    ));
    assert_eq!(desk.load(&ana), (0, 2), "the slot is free");
    assert!(desk.engine.is_opted_out(&receipt.customer_id, Channel::Whatsapp));
    assert_eq!(code(desk.reopen(&ana, &chat)), ErrorCode::OptedOut);
    desk.advance(Duration::hours(25));
    let template = Request::SendTemplate {
        chat_id: chat.clone(),
        template: "follow_up".into(),
        params: vec![],
    };
    assert_eq!(code(desk.request(&ana, template.clone())), ErrorCode::OptedOut);

    desk.say(Channel::Whatsapp, "+491", "sorry, I need help after all");
    assert!(!desk.engine.is_opted_out(&receipt.customer_id, Channel::Whatsapp));
    desk.check();
}

#[test]
fn r08_stop_on_a_reopened_chat_closes_it_as_declined() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    desk.reopen(&ana, &chat).expect("reopened");
    desk.pushes(&ana);
    desk.say(Channel::Whatsapp, "+491", "#STOP");
    assert_eq!(
        desk.engine.chat_state(&chat),
        Some(crate::core::ChatState::Closed)
    );
    assert_eq!(kinds(&desk.pushes(&ana)), ["chat_closed"]);
    assert_eq!(desk.load(&ana), (0, 2), "a declined reopen never counted");
    desk.check();
}

#[test]
fn r09_a_customer_in_a_bot_journey_cannot_be_reopened_and_handover_queues_it() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    let bot = crate::protocol::BotRequest {
        from: "+491".into(),
        name: None,
        sent_at: None,
        ..Default::default()
    };
    desk.advance(Duration::days(3));
    let receipt = desk
        .engine
        .start_bot(Channel::Whatsapp, bot.clone())
        .expect("bot");
    assert_eq!(receipt.state, Some(ChatState::Bot));
    let bot_chat = receipt.chat_id.expect("chat");
    assert_ne!(bot_chat, chat, "outside the window: a new chat");
    assert_eq!(code(desk.reopen(&ana, &chat)), ErrorCode::ActiveElsewhere);
    assert!(desk.pushes(&ana).is_empty(), "no agent sees a bot journey");

    desk.request(
        &ana,
        Request::SetPresence {
            presence: crate::protocol::Presence::Away,
        },
    )
    .expect("away");
    let receipt = desk.engine.hand_over(Channel::Whatsapp, bot).expect("handover");
    assert_eq!(receipt.state, Some(ChatState::Queued));
    assert_eq!(receipt.queue_position, Some(1));
    desk.check();
}

#[test]
fn r11_a_customer_back_within_the_window_revives_the_same_chat_with_history() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    desk.advance(Duration::hours(3));
    let receipt = desk.say(Channel::Whatsapp, "+491", "one more thing");
    assert_eq!(receipt.chat_id.as_ref(), Some(&chat));
    desk.accept(&ana, &chat);
    let Ok(ReplyResult::History { messages, .. }) = desk.request(
        &ana,
        Request::GetChat {
            chat_id: chat.clone(),
            before_seq: None,
            limit: None,
        },
    ) else {
        panic!("history")
    };
    let texts: Vec<&str> = messages.iter().map(|m| m.message.text.as_str()).collect();
    assert_eq!(texts, ["hello", "one more thing"]);
    desk.close(&ana, &chat);

    desk.advance(Duration::hours(25));
    let receipt = desk.say(Channel::Whatsapp, "+491", "new problem");
    assert_ne!(
        receipt.chat_id.as_ref(),
        Some(&chat),
        "after the window: a new chat"
    );
    desk.check();
}

#[test]
fn r11_reopened_chat_closes_when_its_window_runs_out_unanswered() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    desk.advance(Duration::hours(20));
    desk.reopen(&ana, &chat).expect("reopened");
    desk.pushes(&ana);
    desk.advance(Duration::hours(4));
    assert_eq!(
        desk.engine.chat_state(&chat),
        Some(crate::core::ChatState::Closed)
    );
    assert!(matches!(
        desk.pushes(&ana).as_slice(),
        [Push::ChatClosed {
            reason: crate::protocol::CloseReason::Timeout,
            ..
        }]
    ));
    desk.check();
}
