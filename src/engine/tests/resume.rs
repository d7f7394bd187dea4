//! Sequence numbers, resume and the grace period: R17.

use chrono::Duration;

use super::desk::Desk;
use crate::core::{Channel, Presence};
use crate::protocol::{ReplyResult, Request};

#[test]
fn r17_pushes_are_numbered_in_order_and_the_same_on_every_connection() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 5);
    desk.connect(&ana);
    for i in 0..5 {
        desk.served(&ana, Channel::Webchat, &format!("c{i}"));
    }
    // Push 1 (presence online, from the first connection) came before the second joined.
    let seqs =
        |frames: Vec<(u64, crate::protocol::Push)>| frames.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
    assert_eq!(
        seqs(desk.frames_on(&ana, 1)),
        (2..=11).collect::<Vec<_>>(),
        "offer + activation per chat"
    );
}

#[test]
fn r17_resume_after_a_drop_replays_exactly_what_was_missed() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 5);
    desk.served(&ana, Channel::Webchat, "c1");
    let seen = desk.frames_on(&ana, 0);
    let last = seen.last().map(|(s, _)| *s).unwrap_or(0);
    desk.disconnect(&ana, 0);
    let missed = desk.say(Channel::Webchat, "c2", "hi").chat_id.expect("chat");
    desk.connect(&ana);
    let reply = desk
        .request(&ana, Request::Resume { after_seq: last })
        .expect("resumed");
    assert_eq!(reply, ReplyResult::Resumed { replayed: 1 });
    let replayed = desk.frames_on(&ana, 0);
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].0, last + 1);
    assert!(matches!(&replayed[0].1, crate::protocol::Push::ChatOffered(o) if o.chat.id == missed));
    desk.check();
}

#[test]
fn r17_resume_from_a_seq_no_longer_kept_gets_a_snapshot() {
    let config = crate::engine::EngineConfig {
        log_capacity: 4,
        ..Default::default()
    };
    let mut desk = Desk::with(config);
    let ana = desk.agent("ana", 10);
    for i in 0..4 {
        desk.served(&ana, Channel::Webchat, &format!("c{i}"));
    }
    desk.pushes(&ana);
    let reply = desk
        .request(&ana, Request::Resume { after_seq: 1 })
        .expect("answered");
    let ReplyResult::Snapshot(snapshot) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(
        snapshot.seq, 9,
        "presence online, then an offer and an activation per chat"
    );
    assert_eq!(snapshot.chats.len(), 4);
    assert_eq!((snapshot.load, snapshot.limit), (4, 10));
}

#[test]
fn r17_an_agent_back_within_the_grace_period_keeps_presence_and_chats() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 5);
    let chat = desk.served(&ana, Channel::Webchat, "c1");
    desk.disconnect(&ana, 0);
    desk.advance(Duration::seconds(59));
    desk.connect(&ana);
    desk.advance(Duration::seconds(5));
    assert_eq!(desk.engine.seat(&ana.id).map(|s| s.0), Some(Presence::Online));
    assert!(desk.request(&ana, Request::Close { chat_id: chat }).is_ok());
    desk.check();
}

#[test]
fn r17_an_agent_gone_past_the_grace_period_goes_offline_but_keeps_its_chats() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 5);
    let chat = desk.served(&ana, Channel::Webchat, "c1");
    desk.disconnect(&ana, 0);
    desk.advance(Duration::seconds(61));
    assert_eq!(
        desk.engine.seat(&ana.id).map(|s| (s.0, s.1)),
        Some((Presence::Offline, 1))
    );
    assert_eq!(
        desk.engine.chat_state(&chat),
        Some(crate::core::ChatState::Active)
    );
    desk.check();
}

#[test]
fn r17_a_replay_larger_than_the_outbox_gets_a_snapshot_instead_of_a_cut_off() {
    let config = crate::engine::EngineConfig {
        outbox_capacity: 8,
        log_capacity: 64,
        ..Default::default()
    };
    let mut desk = Desk::with(config);
    let ana = desk.agent("ana", 20);
    for i in 0..3 {
        desk.served(&ana, Channel::Webchat, &format!("c{i}"));
    }
    desk.disconnect(&ana, 0);
    // Ten offers while away: more than the outbox holds.
    for i in 3..13 {
        desk.say(Channel::Webchat, &format!("c{i}"), "hi");
    }
    desk.connect(&ana);
    let reply = desk
        .request(&ana, Request::Resume { after_seq: 6 })
        .expect("answered");
    assert!(
        matches!(reply, ReplyResult::Snapshot(ref s) if s.offers.len() == 10),
        "{reply:?}"
    );
    assert_eq!(desk.engine.fanout().connections(&ana.id), 1, "still connected");
}

#[test]
fn r17_the_replay_log_is_bounded_in_bytes_and_older_pushes_get_a_snapshot() {
    let config = crate::engine::EngineConfig {
        log_bytes: 4 * 1024,
        ..Default::default()
    };
    let mut desk = Desk::with(config);
    let ana = desk.agent("ana", 100);
    for i in 0..40 {
        desk.served(&ana, Channel::Webchat, &format!("c{i}"));
    }
    // 80 pushes of several hundred bytes each cannot all be kept in 4 KiB.
    let reply = desk
        .request(&ana, Request::Resume { after_seq: 1 })
        .expect("answered");
    assert!(
        matches!(reply, ReplyResult::Snapshot(ref s) if s.chats.len() == 40),
        "{reply:?}"
    );
    let recent = desk
        .request(&ana, Request::Resume { after_seq: 79 })
        .expect("answered");
    assert_eq!(recent, ReplyResult::Resumed { replayed: 2 });
}
