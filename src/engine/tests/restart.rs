//! Issue 5: an engine restarted on its database, with the clock moved on while it was down.
//! Timers that came due meanwhile fire at once; windows are judged at the new time; queues,
//! loads, opt-outs, histories, limits and KPIs are what they were.

use chrono::Duration;

use super::desk::{code, Desk};
use crate::core::{Channel, ChatState, ErrorCode, Message, Role};
use crate::engine::fanout::ConnId;
use crate::ids::ChatId;
use crate::protocol::supervisor::{AnalyticsQuery, SupervisorRequest};
use crate::protocol::{Push, ReplyResult, Request};

fn messages(desk: &Desk, chat: &ChatId) -> Vec<Message> {
    let file = desk.engine.file_of_chat(chat).expect("the chat is in memory");
    let file = file.lock();
    file.chat(chat).expect("its chat").messages.clone()
}

#[test]
fn issue5_r13_r04_timers_that_came_due_while_down_fire_at_once_and_the_others_later() {
    timers_that_came_due_while_down_fire_at_once_and_the_others_later(Desk::durable("timers"));
}

/// The same restart with the engine's store on PostgreSQL (issue 19): what the engine
/// restores does not depend on the backend.
#[test]
fn issue19_r13_r04_on_postgres_timers_that_came_due_while_down_fire_at_once_and_the_others_later() {
    timers_that_came_due_while_down_fire_at_once_and_the_others_later(Desk::durable_on_postgres());
}

fn timers_that_came_due_while_down_fire_at_once_and_the_others_later(mut desk: Desk) {
    let ana = desk.agent("ana", 2);
    let ben = desk.agent("ben", 2);
    let snoozed = desk.served(&ana, Channel::Whatsapp, "+1");
    desk.request(
        &ana,
        Request::Snooze {
            chat_id: snoozed.clone(),
            until: Some(desk.engine.now() + Duration::minutes(10)),
        },
    )
    .expect("snoozed");
    let reopened = desk.closed_chat(&ben, Channel::Messenger, "+2");
    desk.reopen(&ben, &reopened).expect("reopened");
    desk.check();

    // Down for an hour: the snooze ended meanwhile, the reopened chat's window (24 h from
    // the customer's message) has not.
    desk.clock.advance(Duration::hours(1));
    let restored = desk.restart();
    assert_eq!(restored.fired_at_once, 1, "{restored:?}");
    assert_eq!(
        restored.timers, 2,
        "the snooze's end and the reopen's expiry: {restored:?}"
    );
    assert_eq!(desk.engine.chat_state(&snoozed), Some(ChatState::Active));
    assert_eq!(desk.engine.chat_state(&reopened), Some(ChatState::Reopened));
    assert_eq!(
        desk.load(&ana).0,
        1,
        "the woken chat still counts toward ana's load"
    );
    assert_eq!(
        desk.load(&ben).0,
        0,
        "a reopened chat does not count until the reply"
    );
    desk.check();

    // The reopen's expiry was armed again: it closes the chat when the window ends.
    desk.advance(Duration::hours(22));
    assert_eq!(desk.engine.chat_state(&reopened), Some(ChatState::Reopened));
    desk.advance(Duration::hours(2));
    assert_eq!(desk.engine.chat_state(&reopened), Some(ChatState::Closed));

    // And the close by timer is itself recorded. A day on, out of its window and past the
    // time a reply would revive it, it stays on disk.
    desk.clock.advance(Duration::hours(25));
    let restored = desk.restart();
    assert_eq!(restored.fired_at_once, 0, "{restored:?}");
    assert!(!desk.engine.customers.holds_chat(&reopened), "archive only");
    let stored = desk.engine.store().expect("a store").load().expect("loads");
    let state = stored
        .customers
        .iter()
        .flat_map(|c| &c.chats)
        .find(|c| c.id == reopened)
        .map(|c| c.state());
    assert_eq!(state, Some(ChatState::Closed));
    desk.check();
}

#[test]
fn issue5_r05_a_reopened_chat_whose_window_ended_while_down_is_closed_on_start() {
    let mut desk = Desk::durable("reopen-expired");
    let ben = desk.agent("ben", 2);
    let chat = desk.closed_chat(&ben, Channel::Messenger, "+2");
    desk.reopen(&ben, &chat).expect("reopened");

    desk.clock.advance(Duration::hours(30));
    let restored = desk.restart();
    assert_eq!(restored.fired_at_once, 1, "{restored:?}");
    assert_eq!(desk.engine.chat_state(&chat), Some(ChatState::Closed));
    desk.check();
}

#[test]
fn issue5_r01_r08_the_queue_loads_and_opt_outs_survive_a_restart() {
    the_queue_loads_and_opt_outs_survive_a_restart(Desk::durable("queue"));
}

/// The same on PostgreSQL (issue 19).
#[test]
fn issue19_r01_r08_on_postgres_the_queue_loads_and_opt_outs_survive_a_restart() {
    the_queue_loads_and_opt_outs_survive_a_restart(Desk::durable_on_postgres());
}

fn the_queue_loads_and_opt_outs_survive_a_restart(mut desk: Desk) {
    let ana = desk.agent("ana", 1);
    let stopped = desk.closed_chat(&ana, Channel::Messenger, "+3");
    desk.say(Channel::Messenger, "+3", "#STOP");
    let served = desk.served(&ana, Channel::Whatsapp, "+1");
    let waiting = desk
        .say(Channel::Whatsapp, "+2", "anyone?")
        .chat_id
        .expect("a chat");
    assert_eq!(desk.engine.chat_state(&waiting), Some(ChatState::Queued));
    let history = messages(&desk, &served);

    desk.clock.advance(Duration::minutes(1));
    let restored = desk.restart();
    assert_eq!(restored.queued, 1, "{restored:?}");
    assert_eq!(desk.engine.chat_state(&waiting), Some(ChatState::Queued));
    assert_eq!(desk.engine.chat_state(&served), Some(ChatState::Active));
    assert_eq!(desk.load(&ana), (1, 1));
    assert_eq!(messages(&desk, &served), history, "the history is back, in order");
    let customer = desk
        .engine
        .file_of_chat(&stopped)
        .expect("in memory")
        .lock()
        .id
        .clone();
    assert!(desk.engine.is_opted_out(&customer, Channel::Messenger));
    desk.check();

    // Ana comes back: still full, so the queued chat waits until she closes one.
    desk.connect(&ana);
    assert_eq!(code(desk.reopen(&ana, &stopped)), ErrorCode::OptedOut);
    desk.close(&ana, &served);
    assert!(
        desk.pushes(&ana)
            .iter()
            .any(|p| matches!(p, Push::ChatOffered(o) if o.chat.id == waiting)),
        "the queued chat is offered once ana has room"
    );
    desk.accept(&ana, &waiting);
    // R01: the customer of the closed chat writing again gets one live chat, not two.
    let again = desk.say(Channel::Whatsapp, "+2", "thanks").chat_id;
    assert_eq!(again.as_ref(), Some(&waiting));
    desk.check();
}

#[test]
fn issue5_r02_chats_out_of_their_window_stay_on_disk_and_ids_do_not_repeat() {
    let mut desk = Desk::durable("window");
    let ana = desk.agent("ana", 2);
    let old = desk.closed_chat(&ana, Channel::Whatsapp, "+1");
    let customer = desk
        .engine
        .file_of_chat(&old)
        .expect("in memory")
        .lock()
        .id
        .clone();
    let live = desk.served(&ana, Channel::Whatsapp, "+2");

    // The WhatsApp window is 24 h: after 25 h the closed chat is archive only.
    desk.clock.advance(Duration::hours(25));
    let restored = desk.restart();
    assert_eq!(restored.chats_archived, 1, "{restored:?}");
    assert_eq!(restored.chats_in_memory, 1, "{restored:?}");
    assert!(
        !desk.engine.customers.holds_chat(&old),
        "the old chat is not in memory"
    );
    assert_eq!(desk.engine.chat_state(&live), Some(ChatState::Active));

    // The customer is known still: writing again makes a new chat of the same customer,
    // with an id the engine has not used before (the clock could have gone back).
    desk.connect(&ana);
    let new = desk
        .say(Channel::Whatsapp, "+1", "back again")
        .chat_id
        .expect("a chat");
    assert_ne!(new, old);
    assert_ne!(new, live);
    assert_eq!(
        desk.engine.file_of_chat(&new).expect("in memory").lock().id,
        customer
    );
    desk.check();
}

#[test]
fn issue5_r02_r07_a_chat_left_on_disk_still_answers_reopen_and_takes_its_one_template() {
    let mut desk = Desk::durable("archived-template");
    let ana = desk.agent("ana", 2);
    let old = desk.closed_chat(&ana, Channel::Whatsapp, "+1");
    desk.clock.advance(Duration::hours(25));
    let restored = desk.restart();
    assert_eq!(restored.chats_archived, 1, "{restored:?}");
    desk.connect(&ana);

    // Read back from the database on demand: the window is closed, not the chat unknown.
    assert_eq!(code(desk.reopen(&ana, &old)), ErrorCode::WindowClosed);
    let template = |desk: &Desk| {
        desk.request(
            &ana,
            Request::SendTemplate {
                chat_id: old.clone(),
                template: "follow_up".into(),
                params: Vec::new(),
            },
        )
    };
    assert!(template(&desk).is_ok(), "{:?}", template(&desk));
    assert_eq!(code(template(&desk)), ErrorCode::PushAlreadySent);

    // The push is recorded: after another restart the one template is still used up.
    desk.restart();
    desk.connect(&ana);
    assert_eq!(code(template(&desk)), ErrorCode::PushAlreadySent);
    desk.check();
}

#[test]
fn issue5_messages_after_a_restart_follow_the_stored_ones_without_duplicates() {
    let mut desk = Desk::durable("history");
    let ana = desk.agent("ana", 2);
    let chat = desk.served(&ana, Channel::Whatsapp, "+1");
    desk.say(Channel::Whatsapp, "+1", "second");
    let before = messages(&desk, &chat);

    desk.restart();
    desk.connect(&ana);
    desk.say(Channel::Whatsapp, "+1", "third");
    desk.request(
        &ana,
        Request::SendMessage {
            chat_id: chat.clone(),
            text: "hello again".into(),
            human_agent_tag: false,
        },
    )
    .expect("sent");
    let after = messages(&desk, &chat);
    assert_eq!(after.len(), before.len() + 2);
    assert_eq!(after[..before.len()], before[..]);

    desk.restart();
    assert_eq!(messages(&desk, &chat), after, "stored once each, in order");
}

#[test]
fn issue5_r06_r14_limits_set_by_a_supervisor_and_the_kpis_survive_a_restart() {
    let mut desk = Desk::durable("kpis");
    let ana = desk.agent("ana", 2);
    let sup = desk.agent_as("sup", Role::Supervisor, 0);
    let chat = desk.closed_chat(&ana, Channel::Whatsapp, "+1");
    desk.reopen(&ana, &chat).expect("reopened");
    desk.say(Channel::Whatsapp, "+1", "yes?");
    desk.engine
        .supervise(
            &sup,
            ConnId(0),
            "r",
            SupervisorRequest::SetLimit {
                agent: ana.id.clone(),
                limit: 5,
            },
        )
        .expect("limit set");
    let report = desk.engine.analytics_report(AnalyticsQuery::default());

    desk.restart();
    assert_eq!(
        desk.load(&ana),
        (1, 5),
        "the limit set live outlives the configured 2"
    );
    assert_eq!(
        serde_json::to_value(desk.engine.analytics_report(AnalyticsQuery::default())).expect("json"),
        serde_json::to_value(report).expect("json"),
        "every KPI event is back"
    );
}

#[test]
fn issue5_r13_a_snooze_past_a_year_is_refused_and_the_store_keeps_writing() {
    let mut desk = Desk::durable("long-snooze");
    let ana = desk.agent("ana", 2);
    let chat = desk.served(&ana, Channel::Whatsapp, "+1");
    let snooze = |desk: &Desk, days| {
        desk.request(
            &ana,
            Request::Snooze {
                chat_id: chat.clone(),
                until: Some(desk.engine.now() + Duration::days(days)),
            },
        )
    };
    // Year 2300 cannot be stored: refused before it changes anything.
    assert_eq!(code(snooze(&desk, 100_000)), ErrorCode::BadRequest);
    assert_eq!(desk.engine.chat_state(&chat), Some(ChatState::Active));
    assert!(snooze(&desk, 30).is_ok());
    desk.restart();
    assert_eq!(desk.engine.chat_state(&chat), Some(ChatState::Snoozed));
}

#[test]
fn issue5_r17_a_resume_from_before_a_restart_gets_a_snapshot_not_a_tail_of_the_new_run() {
    let mut desk = Desk::durable("resume");
    let ana = desk.agent("ana", 2);
    let chat = desk.served(&ana, Channel::Webchat, "w1");
    desk.say(Channel::Webchat, "w1", "one more");
    let last_seen = desk
        .frames_on(&ana, 0)
        .last()
        .map(|(seq, _)| *seq)
        .expect("ana was pushed to");

    desk.clock.advance(Duration::minutes(1));
    desk.restart();
    desk.connect(&ana);
    // The new run pushes more to ana than she had seen before the restart.
    for i in 0..=last_seen.min(20) + 2 {
        desk.say(Channel::Webchat, "w1", &format!("again {i}"));
    }
    let reply = desk
        .request(&ana, Request::Resume { after_seq: last_seen })
        .expect("resume answered");
    match reply {
        ReplyResult::Snapshot(snapshot) => {
            assert!(snapshot.chats.iter().any(|c| c.id == chat), "{snapshot:?}")
        }
        other => panic!("a replay of the new run's pushes after seq {last_seen}: {other:?}"),
    }
}

#[test]
fn issue5_r02_chats_that_leave_their_window_are_let_go_of_and_read_back_on_demand() {
    let mut desk = Desk::durable("evict");
    let ana = desk.agent("ana", 2);
    let old = desk.closed_chat(&ana, Channel::Whatsapp, "+1");
    let live = desk.served(&ana, Channel::Whatsapp, "+2");
    let history = messages(&desk, &old);

    desk.advance(Duration::hours(2));
    assert_eq!(desk.engine.evict_archived(), 0, "still inside its window");
    desk.advance(Duration::hours(23));
    assert_eq!(desk.engine.evict_archived(), 1);
    assert!(!desk.engine.customers.holds_chat(&old));
    assert_eq!(desk.engine.chat_state(&live), Some(ChatState::Active));
    desk.check();

    // Asked for, it comes back from the database as it was.
    assert_eq!(code(desk.reopen(&ana, &old)), ErrorCode::WindowClosed);
    assert_eq!(desk.engine.chat_state(&old), Some(ChatState::Closed));
    assert_eq!(messages(&desk, &old), history);
}

#[test]
fn issue5_an_engine_without_a_database_keeps_every_chat() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let old = desk.closed_chat(&ana, Channel::Whatsapp, "+1");
    desk.advance(Duration::days(3));
    assert_eq!(desk.engine.evict_archived(), 0);
    assert_eq!(desk.engine.chat_state(&old), Some(ChatState::Closed));
}

#[test]
fn issue5_r03_an_older_chat_read_back_from_disk_is_not_reopened_over_a_newer_one() {
    let mut desk = Desk::durable("newest");
    let ana = desk.agent("ana", 2);
    // Web chat has no window: only the newest chat of the channel may be reopened.
    let older = desk.closed_chat(&ana, Channel::Webchat, "w1");
    desk.advance(Duration::hours(25));
    let newer = desk.closed_chat(&ana, Channel::Webchat, "w1");
    assert_ne!(older, newer, "past the revive window the customer got a new chat");
    assert_eq!(code(desk.reopen(&ana, &older)), ErrorCode::BadRequest);

    desk.advance(Duration::hours(25));
    assert_eq!(desk.engine.evict_archived(), 2);
    assert_eq!(
        code(desk.reopen(&ana, &older)),
        ErrorCode::BadRequest,
        "read back alone, the older chat would look like the newest"
    );
    assert!(desk.reopen(&ana, &newer).is_ok());
    desk.check();
}

#[test]
fn r27_chats_of_an_api_created_agent_count_toward_its_load_after_a_restart() {
    let mut desk = Desk::durable("api-agent");
    // Created over the admin API: the restart registers nobody, the store has her.
    let cara = desk.api_agent("cara", 2);
    let chat = desk.served(&cara, Channel::Whatsapp, "+1");
    assert_eq!(desk.load(&cara), (1, 2));

    desk.clock.advance(Duration::minutes(1));
    let restored = desk.restart();
    assert_eq!(restored.agents, 1, "{restored:?}");
    assert_eq!(
        desk.engine.agent(&cara.id).map(|p| p.name),
        Some("CARA".to_owned())
    );
    assert_eq!(
        desk.engine.agent_by_token("cara-api-token").map(|p| p.id),
        Some(cara.id.clone()),
        "her token still stands for her"
    );
    assert_eq!(desk.engine.chat_state(&chat), Some(ChatState::Active));
    assert_eq!(desk.load(&cara), (1, 2), "her chat counts toward her load again");
    desk.check();

    // So she has room for one more chat, not two.
    desk.connect(&cara);
    desk.served(&cara, Channel::Whatsapp, "+2");
    assert_eq!(desk.load(&cara), (2, 2));
    let waiting = desk
        .say(Channel::Whatsapp, "+3", "anyone?")
        .chat_id
        .expect("a chat");
    assert_eq!(desk.engine.chat_state(&waiting), Some(ChatState::Queued));
    desk.check();
}

#[test]
fn r27_an_agent_changed_over_the_api_keeps_its_changes_over_the_configured_profile() {
    let mut desk = Desk::durable("api-over-config");
    // Configured with limit 1 (and registered so again on every restart).
    let ana = desk.agent("ana", 1);
    desk.engine.upsert_agent_live(
        crate::core::AgentProfile {
            id: ana.id.clone(),
            name: "Ana Lima".into(),
            role: Role::Agent,
            limit: 3,
            queues: Vec::new(),
            skills: [("language:es".to_owned(), 4)].into_iter().collect(),
            channel_limits: Default::default(),
        },
        None,
    );
    // A live limit after the change applies on top of it.
    desk.engine.set_limit(&ana.id, 4).expect("limit set");

    desk.restart();
    let profile = desk.engine.agent(&ana.id).expect("ana");
    assert_eq!(
        (
            profile.name.as_str(),
            profile.limit,
            profile.skills.get("language:es")
        ),
        ("Ana Lima", 4, Some(&4)),
        "the recorded profile replaced the configured one, the live limit on top"
    );
    assert!(
        desk.engine.agent_by_token("ana-token").is_some(),
        "changed without a token, she keeps the configured one"
    );

    // Removed over the API: the configuration still names her, so she is back on the next
    // start, as configured and without the live limit.
    desk.engine.remove_agent(&ana.id).expect("removed");
    desk.restart();
    let profile = desk.engine.agent(&ana.id).expect("configured");
    assert_eq!((profile.name.as_str(), profile.limit), ("ANA", 1));
    desk.check();
}
