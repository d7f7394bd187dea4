//! Queue routing, ownership and transfer: R06, R10, R12.

use chrono::Duration;

use super::desk::{code, kinds, offered, Desk};
use crate::core::{Channel, ChatState, ErrorCode, Presence, Role};
use crate::ids::ChatId;
use crate::protocol::{self, ActivatedBy, Push, Request, WithdrawReason};

#[test]
fn r06_offers_go_to_the_least_loaded_agent_then_the_longest_idle() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 3);
    desk.advance(Duration::seconds(10));
    let ben = desk.agent("ben", 3);
    // Both empty: ana has been idle longer.
    let first = desk.served(&ana, Channel::Webchat, "c1");
    // ana has one, ben none: ben.
    let second = desk.say(Channel::Webchat, "c2", "hi").chat_id.expect("chat");
    assert_eq!(offered(&desk.pushes(&ben)), [second]);
    assert!(offered(&desk.pushes(&ana)).is_empty());
    assert_ne!(first, ChatId::from("none"));
    desk.check();
}

#[test]
fn r06_with_no_room_chats_wait_oldest_first_and_know_their_position() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 1);
    let busy = desk.served(&ana, Channel::Webchat, "c0");
    let a = desk.say(Channel::Webchat, "c1", "hi");
    desk.advance(Duration::seconds(1));
    let b = desk.say(Channel::Sms, "c2", "hi");
    assert_eq!(
        (a.queue_position, b.queue_position),
        (Some(1), Some(1)),
        "one queue per channel"
    );
    let c = desk.say(Channel::Webchat, "c3", "hi");
    assert_eq!(c.queue_position, Some(2));
    desk.pushes(&ana);

    // Closing frees the slot at once, and the oldest waiting chat across queues comes next.
    desk.close(&ana, &busy);
    assert_eq!(offered(&desk.pushes(&ana)), [a.chat_id.clone().expect("chat")]);
    let queues = desk.engine.queue_views();
    let webchat = queues.iter().find(|q| q.id.as_str() == "webchat").expect("queue");
    assert_eq!(webchat.waiting.len(), 1);
    assert_eq!(webchat.waiting[0].position, 1);
    desk.check();
}

#[test]
fn r06_a_declined_offer_goes_to_the_next_agent() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    desk.advance(Duration::seconds(1));
    let ben = desk.agent("ben", 2);
    let chat = desk.say(Channel::Webchat, "c1", "hi").chat_id.expect("chat");
    assert_eq!(offered(&desk.pushes(&ana)), std::slice::from_ref(&chat));
    desk.request(
        &ana,
        Request::Decline {
            chat_id: chat.clone(),
        },
    )
    .expect("declined");
    assert_eq!(offered(&desk.pushes(&ben)), std::slice::from_ref(&chat));
    // ana may no longer accept it.
    assert_eq!(
        code(desk.request(
            &ana,
            Request::Accept {
                chat_id: chat.clone()
            }
        )),
        ErrorCode::NotFound
    );
    desk.accept(&ben, &chat);
    desk.check();
}

#[test]
fn r06_an_offer_not_accepted_in_time_moves_on_and_the_silent_agent_goes_away() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    desk.advance(Duration::seconds(1));
    let ben = desk.agent("ben", 2);
    let chat = desk.say(Channel::Webchat, "c1", "hi").chat_id.expect("chat");
    assert_eq!(offered(&desk.pushes(&ana)), std::slice::from_ref(&chat));
    desk.advance(Duration::seconds(29));
    assert!(offered(&desk.pushes(&ben)).is_empty(), "not yet");
    desk.advance(Duration::seconds(1));
    let pushes = desk.pushes(&ana);
    assert!(pushes.contains(&Push::PresenceChanged {
        presence: protocol::Presence::Away
    }));
    assert!(pushes.contains(&Push::OfferWithdrawn {
        chat_id: chat.clone(),
        reason: WithdrawReason::Timeout
    }));
    assert_eq!(offered(&desk.pushes(&ben)), [chat]);
    assert_eq!(desk.engine.seat(&ana.id).map(|s| s.0), Some(Presence::Away));
    desk.check();
}

#[test]
fn r06_lowering_a_limit_live_drops_no_chat_and_raising_it_routes_the_queue() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let one = desk.served(&ana, Channel::Webchat, "c1");
    desk.served(&ana, Channel::Webchat, "c2");
    desk.engine.set_limit(&ana.id, 1).expect("lowered");
    assert_eq!(desk.load(&ana), (2, 1));
    assert_eq!(desk.engine.chat_state(&one), Some(ChatState::Active));
    let waiting = desk.say(Channel::Webchat, "c3", "hi");
    assert_eq!(waiting.queue_position, Some(1));
    desk.pushes(&ana);
    desk.engine.set_limit(&ana.id, 3).expect("raised");
    let pushes = desk.pushes(&ana);
    assert_eq!(kinds(&pushes), ["chat_offered", "limit_changed"]);
    desk.check();
}

#[test]
fn r10_a_returning_customer_goes_to_the_originally_assigned_agent_if_online() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    desk.advance(Duration::seconds(1));
    let ben = desk.agent("ben", 0);
    desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    desk.engine.set_limit(&ben.id, 2).expect("limit");
    desk.advance(Duration::days(2));
    // ben is idle longer and has the same load, but ana was assigned first.
    let chat = desk
        .say(Channel::Whatsapp, "+491", "hi again")
        .chat_id
        .expect("chat");
    assert_eq!(offered(&desk.pushes(&ana)), [chat]);
    assert!(offered(&desk.pushes(&ben)).is_empty());
    desk.check();
}

#[test]
fn r10_when_the_assigned_agent_is_offline_the_chat_goes_to_the_queue() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    desk.closed_chat(&ana, Channel::Whatsapp, "+491");
    desk.request(
        &ana,
        Request::SetPresence {
            presence: protocol::Presence::Offline,
        },
    )
    .expect("offline");
    let ben = desk.agent("ben", 2);
    desk.advance(Duration::days(2));
    let chat = desk
        .say(Channel::Whatsapp, "+491", "hi again")
        .chat_id
        .expect("chat");
    assert_eq!(offered(&desk.pushes(&ben)), [chat]);
    desk.check();
}

#[test]
fn r10_a_transfer_moves_ownership_but_not_the_original_assignment() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let ben = desk.agent("ben", 0);
    let chat = desk.served(&ana, Channel::Whatsapp, "+491");
    desk.engine.set_limit(&ben.id, 2).expect("limit");
    desk.request(
        &ana,
        Request::Transfer {
            chat_id: chat.clone(),
            to: ben.id.clone(),
            force: false,
        },
    )
    .expect("transferred");
    desk.close(&ben, &chat);
    desk.advance(Duration::days(2));
    desk.pushes(&ana);
    desk.pushes(&ben);
    let back = desk
        .say(Channel::Whatsapp, "+491", "hello again")
        .chat_id
        .expect("chat");
    assert_eq!(offered(&desk.pushes(&ana)), [back]);
    desk.check();
}

#[test]
fn r12_only_the_owner_may_write_close_or_transfer() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let ben = desk.agent("ben", 0);
    let chat = desk.served(&ana, Channel::Webchat, "c1");
    let send = Request::SendMessage {
        chat_id: chat.clone(),
        text: "hi".into(),
        human_agent_tag: false,
    };
    assert_eq!(code(desk.request(&ben, send.clone())), ErrorCode::NotOwner);
    assert_eq!(
        code(desk.request(
            &ben,
            Request::Close {
                chat_id: chat.clone()
            }
        )),
        ErrorCode::NotOwner
    );
    assert!(desk.request(&ana, send).is_ok());
    assert_eq!(desk.outbound.try_recv().map(|m| m.text).ok(), Some("hi".into()));
    desk.check();
}

#[test]
fn r12_transfer_respects_the_target_limit_unless_a_supervisor_forces_it() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let sam = desk.agent_as("sam", Role::Supervisor, 2);
    let ben = desk.agent("ben", 0);
    let chat = desk.served(&ana, Channel::Webchat, "c1");
    let to_ben = |force| Request::Transfer {
        chat_id: chat.clone(),
        to: ben.id.clone(),
        force,
    };
    assert_eq!(code(desk.request(&ana, to_ben(false))), ErrorCode::OverLimit);
    assert_eq!(code(desk.request(&ana, to_ben(true))), ErrorCode::Forbidden);
    assert_eq!(desk.engine.chat_state(&chat), Some(ChatState::Active));
    assert_eq!(desk.load(&ana), (1, 2), "nothing moved");

    // sam takes it, then forces it onto ben.
    desk.request(
        &ana,
        Request::Transfer {
            chat_id: chat.clone(),
            to: sam.id.clone(),
            force: false,
        },
    )
    .expect("within sam's limit");
    desk.pushes(&ben);
    desk.request(&sam, to_ben(true)).expect("forced");
    let pushes = desk.pushes(&ben);
    assert!(matches!(
        pushes.as_slice(),
        [Push::ChatActivated {
            by: ActivatedBy::Transfer,
            over_limit: true,
            load: 1,
            limit: 0,
            ..
        }]
    ));
    assert_eq!(
        desk.engine.seat(&ben.id).map(|s| s.3),
        Some(1),
        "override counted"
    );
    desk.check();
}

#[test]
fn r12_transfer_to_an_agent_who_is_not_online_is_agent_unavailable() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let ben = desk.agent("ben", 0);
    let chat = desk.served(&ana, Channel::Webchat, "c1");
    desk.request(
        &ben,
        Request::SetPresence {
            presence: protocol::Presence::Away,
        },
    )
    .expect("away");
    let transfer = Request::Transfer {
        chat_id: chat,
        to: ben.id.clone(),
        force: false,
    };
    assert_eq!(code(desk.request(&ana, transfer)), ErrorCode::AgentUnavailable);
    desk.check();
}

#[test]
fn r06_a_declined_chat_that_waits_is_still_offered_later_with_its_card() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let ben = desk.agent("ben", 0);
    let chat = desk.say(Channel::Webchat, "c1", "hi").chat_id.expect("chat");
    assert_eq!(offered(&desk.pushes(&ana)), std::slice::from_ref(&chat));
    desk.request(
        &ana,
        Request::Decline {
            chat_id: chat.clone(),
        },
    )
    .expect("declined");
    assert_eq!(
        desk.engine
            .queue_views()
            .iter()
            .map(|q| q.waiting.len())
            .sum::<usize>(),
        1
    );
    desk.engine.set_limit(&ben.id, 1).expect("limit");
    assert_eq!(offered(&desk.pushes(&ben)), std::slice::from_ref(&chat));
    desk.accept(&ben, &chat);
    desk.check();
}

#[test]
fn r06_a_chat_whose_offer_lapsed_reaches_its_only_agent_once_back_online() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.say(Channel::Webchat, "c1", "hi").chat_id.expect("chat");
    desk.advance(Duration::seconds(30));
    assert_eq!(desk.engine.seat(&ana.id).map(|s| s.0), Some(Presence::Away));
    desk.pushes(&ana);
    desk.request(
        &ana,
        Request::SetPresence {
            presence: protocol::Presence::Online,
        },
    )
    .expect("online");
    assert_eq!(offered(&desk.pushes(&ana)), [chat]);
    desk.check();
}

#[test]
fn r06_a_chat_declined_by_every_online_agent_goes_round_again() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    desk.advance(Duration::seconds(1));
    let ben = desk.agent("ben", 2);
    let chat = desk.say(Channel::Webchat, "c1", "hi").chat_id.expect("chat");
    desk.request(
        &ana,
        Request::Decline {
            chat_id: chat.clone(),
        },
    )
    .expect("declined");
    desk.pushes(&ana);
    assert_eq!(offered(&desk.pushes(&ben)), std::slice::from_ref(&chat));
    desk.request(
        &ben,
        Request::Decline {
            chat_id: chat.clone(),
        },
    )
    .expect("declined");
    assert_eq!(offered(&desk.pushes(&ana)), [chat]);
    desk.check();
}

#[test]
fn r06_a_removed_agent_keeps_its_load_counted_loses_its_sockets_and_may_come_back() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.served(&ana, Channel::Webchat, "c1");
    desk.engine.remove_agent(&ana.id).expect("removed");
    assert_eq!(
        desk.engine.fanout().connections(&ana.id),
        0,
        "its sockets are closed"
    );
    assert_eq!(
        desk.engine.seat(&ana.id).map(|s| (s.0, s.1)),
        Some((Presence::Offline, 1))
    );
    assert_eq!(
        code(desk.request(
            &ana,
            Request::Close {
                chat_id: chat.clone()
            }
        )),
        ErrorCode::Forbidden
    );
    desk.check();
    // Back again: the chat it still owns is still counted.
    desk.agent("ana", 2);
    assert_eq!(desk.load(&ana), (1, 2));
    desk.close(&ana, &chat);
    desk.check();
}

#[test]
fn r06_an_admin_update_that_lowers_a_limit_takes_back_offers_that_no_longer_fit() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 1);
    let chat = desk.say(Channel::Webchat, "c1", "hi").chat_id.expect("chat");
    desk.pushes(&ana);
    desk.agent_as("ana", Role::Agent, 0);
    assert!(desk.pushes(&ana).contains(&Push::OfferWithdrawn {
        chat_id: chat.clone(),
        reason: WithdrawReason::LimitLowered
    }));
    assert_eq!(
        code(desk.request(&ana, Request::Accept { chat_id: chat })),
        ErrorCode::NotFound
    );
    desk.check();
}

#[test]
fn r12_closing_tells_the_agent_before_the_offer_its_free_slot_brings() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 1);
    let busy = desk.served(&ana, Channel::Webchat, "c1");
    desk.say(Channel::Webchat, "c2", "hi");
    desk.pushes(&ana);
    desk.close(&ana, &busy);
    assert_eq!(kinds(&desk.pushes(&ana)), ["chat_closed", "chat_offered"]);
    desk.check();
}
