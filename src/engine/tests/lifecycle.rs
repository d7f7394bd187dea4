//! Customers' messages, templates and snoozes: R01, R07, R13.

use std::sync::Arc;

use chrono::Duration;

use super::desk::{code, kinds, Desk};
use crate::core::{Channel, ChatState, ErrorCode};
use crate::protocol::{ActivatedBy, InboundMessage, MessageKind, Push, Request};

#[test]
fn r01_simultaneous_first_messages_of_one_customer_share_one_chat() {
    for _ in 0..50 {
        let desk = Desk::new();
        let engine = Arc::clone(&desk.engine);
        let chats: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let engine = &engine;
                    s.spawn(move || {
                        engine
                            .customer_message(
                                Channel::Whatsapp,
                                InboundMessage {
                                    from: "+491".into(),
                                    text: format!("message {i}"),
                                    name: None,
                                    email: None,
                                    phone: None,
                                    sent_at: None,
                                    ..Default::default()
                                },
                            )
                            .expect("accepted")
                            .chat_id
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("no panic")).collect()
        });
        assert!(chats.windows(2).all(|w| w[0] == w[1]), "{chats:?}");
        desk.check();
    }
}

#[test]
fn r01_a_second_message_joins_the_live_chat() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.served(&ana, Channel::Whatsapp, "+491");
    let receipt = desk.say(Channel::Whatsapp, "+491", "still there?");
    assert_eq!(receipt.chat_id, Some(chat));
    desk.check();
}

fn template(chat: &crate::ids::ChatId) -> Request {
    Request::SendTemplate {
        chat_id: chat.clone(),
        template: "order_update".into(),
        params: vec!["42".into()],
    }
}

#[test]
fn r07_after_the_window_exactly_one_template_until_the_customer_writes_again() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    // Inside the window the agent reopens instead.
    assert_eq!(code(desk.request(&ana, template(&chat))), ErrorCode::BadRequest);
    desk.advance(Duration::hours(25));
    while desk.outbound.try_recv().is_ok() {}
    desk.request(&ana, template(&chat)).expect("first push");
    let sent = desk.outbound.try_recv().expect("sent");
    assert_eq!(
        (sent.kind, sent.params.as_slice()),
        (MessageKind::Template, ["42".to_string()].as_slice())
    );
    assert_eq!(
        code(desk.request(&ana, template(&chat))),
        ErrorCode::PushAlreadySent
    );
    assert_eq!(
        desk.engine.chat_state(&chat),
        Some(ChatState::Closed),
        "a push does not make it live"
    );

    // The customer answers (a new chat, outside the window) and the push is re-armed for later.
    let new_chat = desk
        .say(Channel::Whatsapp, "+491", "got it")
        .chat_id
        .expect("chat");
    desk.accept(&ana, &new_chat);
    desk.close(&ana, &new_chat);
    desk.advance(Duration::hours(25));
    assert!(desk.request(&ana, template(&new_chat)).is_ok());
    desk.check();
}

#[test]
fn r07_free_text_after_the_window_is_window_closed() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.served(&ana, Channel::Whatsapp, "+491");
    desk.advance(Duration::hours(25));
    let send = Request::SendMessage {
        chat_id: chat,
        text: "are you there?".into(),
        human_agent_tag: false,
    };
    assert_eq!(code(desk.request(&ana, send)), ErrorCode::WindowClosed);
}

#[test]
fn r07_messenger_allows_human_agent_tagged_messages_for_seven_days() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.served(&ana, Channel::Messenger, "psid-1");
    desk.advance(Duration::days(3));
    let send = |tag| Request::SendMessage {
        chat_id: chat.clone(),
        text: "update on your case".into(),
        human_agent_tag: tag,
    };
    assert_eq!(code(desk.request(&ana, send(false))), ErrorCode::WindowClosed);
    assert!(desk.request(&ana, send(true)).is_ok());
    desk.advance(Duration::days(5));
    assert_eq!(code(desk.request(&ana, send(true))), ErrorCode::WindowClosed);
}

#[test]
fn r07_wechat_allows_nothing_after_its_48_hour_window() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.closed_chat(&ana, Channel::Wechat, "wx-1");
    desk.advance(Duration::hours(47));
    assert!(desk.reopen(&ana, &chat).is_ok(), "48 h window");
    desk.say(Channel::Wechat, "wx-1", "hi");
    desk.close(&ana, &chat);
    desk.advance(Duration::hours(49));
    assert_eq!(code(desk.request(&ana, template(&chat))), ErrorCode::WindowClosed);
}

#[test]
fn r07_messages_longer_than_the_channel_allows_are_rejected() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.served(&ana, Channel::Sms, "+491");
    let send = |n| Request::SendMessage {
        chat_id: chat.clone(),
        text: "é".repeat(n),
        human_agent_tag: false,
    };
    assert!(desk.request(&ana, send(1_600)).is_ok(), "characters, not bytes");
    assert_eq!(code(desk.request(&ana, send(1_601))), ErrorCode::MessageTooLong);
}

#[test]
fn r13_a_chat_snoozed_until_a_time_returns_to_active_and_the_agent_is_told() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.served(&ana, Channel::Webchat, "c1");
    let at = desk.engine.now() + Duration::hours(2);
    desk.request(
        &ana,
        Request::Snooze {
            chat_id: chat.clone(),
            until: Some(at),
        },
    )
    .expect("snoozed");
    assert_eq!(desk.engine.chat_state(&chat), Some(ChatState::Snoozed));
    assert_eq!(desk.load(&ana), (1, 2), "a snoozed chat keeps its slot");
    desk.pushes(&ana);
    desk.advance(Duration::hours(2));
    assert_eq!(desk.engine.chat_state(&chat), Some(ChatState::Active));
    assert!(matches!(
        desk.pushes(&ana).as_slice(),
        [Push::ChatActivated {
            by: ActivatedBy::SnoozeEnded,
            ..
        }]
    ));
    desk.check();
}

#[test]
fn r13_a_chat_snoozed_until_reply_wakes_on_the_customer_message() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.served(&ana, Channel::Webchat, "c1");
    desk.request(
        &ana,
        Request::Snooze {
            chat_id: chat.clone(),
            until: None,
        },
    )
    .expect("snoozed");
    desk.advance(Duration::days(3));
    desk.pushes(&ana);
    desk.say(Channel::Webchat, "c1", "back");
    assert_eq!(kinds(&desk.pushes(&ana)), ["chat_activated", "customer_message"]);
    assert_eq!(desk.engine.chat_state(&chat), Some(ChatState::Active));
    desk.check();
}
