//! The KPIs of R14, counted from a known script, and the supervisor's board (R15).

use chrono::Duration;

use super::desk::{code, Desk};
use crate::core::{Channel, ErrorCode, Role};
use crate::engine::fanout::ConnId;
use crate::engine::supervision::Watch;
use crate::ids::AgentId;
use crate::protocol::supervisor::{AnalyticsQuery, SupervisorRequest};
use crate::protocol::{Durations, Figures, Push, Rejections, Request};

fn durations(count: u64, p50_ms: u64, p90_ms: u64, max_ms: u64) -> Durations {
    Durations {
        count,
        p50_ms,
        p90_ms,
        max_ms,
    }
}

#[test]
fn r14_every_figure_of_a_scripted_day_is_counted_exactly() {
    let mut desk = Desk::new();
    let t0 = super::desk::start();
    let ana = desk.agent("ana", 1);
    let ben = desk.agent("ben", 1);
    let sup = desk.agent_as("sup", Role::Supervisor, 0);

    // Three accepted offers: 2 s, 3 s and (after 10 s in the queue) 1 s to accept.
    let c1 = desk.say(Channel::Whatsapp, "+1", "hi").chat_id.expect("chat");
    desk.advance(Duration::seconds(2));
    desk.accept(&ana, &c1);
    let c2 = desk.say(Channel::Messenger, "+2", "hi").chat_id.expect("chat");
    desk.advance(Duration::seconds(3));
    desk.accept(&ben, &c2);
    let c3 = desk.say(Channel::Whatsapp, "+3", "hi").chat_id.expect("chat");
    desk.advance(Duration::seconds(10));
    desk.close(&ana, &c1);
    desk.advance(Duration::seconds(1));
    desk.accept(&ana, &c3);

    // Reopens: one replied to (over ana's limit), one declined with #STOP; three refused.
    assert!(desk.reopen(&ana, &c1).is_ok());
    assert_eq!(code(desk.reopen(&ben, &c1)), ErrorCode::ActiveElsewhere);
    desk.say(Channel::Whatsapp, "+1", "yes");
    desk.close(&ben, &c2);
    assert!(desk.reopen(&ben, &c2).is_ok());
    desk.say(Channel::Messenger, "+2", " #stop ");
    assert_eq!(code(desk.reopen(&ben, &c2)), ErrorCode::OptedOut);

    // The next day: the window has closed; one template push, a second is refused.
    desk.advance(Duration::hours(25));
    desk.close(&ana, &c3);
    assert_eq!(code(desk.reopen(&ana, &c3)), ErrorCode::WindowClosed);
    let template = |desk: &Desk| {
        desk.request(
            &ana,
            Request::SendTemplate {
                chat_id: c3.clone(),
                template: "follow_up".into(),
                params: Vec::new(),
            },
        )
    };
    assert!(template(&desk).is_ok());
    assert_eq!(code(template(&desk)), ErrorCode::PushAlreadySent);
    // A forced transfer over ben's (lowered) limit.
    let supervise = |request| desk.engine.supervise(&sup, ConnId(0), "r", request);
    supervise(SupervisorRequest::SetLimit {
        agent: ben.id.clone(),
        limit: 0,
    })
    .expect("limit set");
    supervise(SupervisorRequest::Transfer {
        chat_id: c1.clone(),
        to: ben.id.clone(),
    })
    .expect("forced transfer");

    let report = desk.engine.analytics_report(AnalyticsQuery::default());
    assert_eq!(
        report.total,
        Figures {
            sla: Default::default(),
            sla_by_queue: Vec::new(),
            reopens: 2,
            replied: 1,
            declined: 1,
            rejected: Rejections {
                active_elsewhere: 1,
                window_closed: 1,
                opted_out: 1,
            },
            templates: 1,
            overrides: 2,
            time_to_accept: durations(3, 2000, 3000, 3000),
            queue_wait: durations(3, 3000, 11_000, 11_000),
        }
    );
    let agents: Vec<&AgentId> = report.agents.iter().map(|a| &a.agent).collect();
    assert_eq!(agents, [&ana.id, &ben.id], "the supervisor had no events");
    assert_eq!(
        report.agents[0].figures,
        Figures {
            sla: Default::default(),
            sla_by_queue: Vec::new(),
            reopens: 1,
            replied: 1,
            declined: 0,
            rejected: Rejections {
                window_closed: 1,
                ..Rejections::default()
            },
            templates: 1,
            overrides: 1,
            time_to_accept: durations(2, 1000, 2000, 2000),
            queue_wait: durations(2, 2000, 11_000, 11_000),
        }
    );
    assert_eq!(
        report.agents[1].figures,
        Figures {
            sla: Default::default(),
            sla_by_queue: Vec::new(),
            reopens: 1,
            declined: 1,
            rejected: Rejections {
                active_elsewhere: 1,
                opted_out: 1,
                ..Rejections::default()
            },
            overrides: 1,
            time_to_accept: durations(1, 3000, 3000, 3000),
            queue_wait: durations(1, 3000, 3000, 3000),
            ..Figures::default()
        }
    );

    // By channel, by agent, and over a range (from inclusive, to exclusive).
    let messenger = desk.engine.analytics_report(AnalyticsQuery {
        channel: Some(crate::protocol::Channel::Messenger),
        ..AnalyticsQuery::default()
    });
    assert_eq!(
        messenger.total,
        Figures {
            sla: Default::default(),
            sla_by_queue: Vec::new(),
            reopens: 1,
            declined: 1,
            rejected: Rejections {
                opted_out: 1,
                ..Rejections::default()
            },
            time_to_accept: durations(1, 3000, 3000, 3000),
            queue_wait: durations(1, 3000, 3000, 3000),
            ..Figures::default()
        }
    );
    let around_the_reopens = desk.engine.analytics_report(AnalyticsQuery {
        from: Some(t0 + Duration::seconds(16)),
        to: Some(t0 + Duration::seconds(17)),
        agent: Some(ana.id.clone()),
        channel: None,
    });
    assert_eq!(
        around_the_reopens.total,
        Figures {
            sla: Default::default(),
            sla_by_queue: Vec::new(),
            reopens: 1,
            replied: 1,
            overrides: 1,
            time_to_accept: durations(1, 1000, 1000, 1000),
            queue_wait: durations(1, 11_000, 11_000, 11_000),
            ..Figures::default()
        }
    );

    // The live KPIs count today (UTC) only.
    let board = desk.engine.board(&Watch::All);
    assert_eq!(board.kpis.since.to_rfc3339(), "2026-03-03T00:00:00+00:00");
    assert_eq!(
        board.kpis.figures,
        Figures {
            sla: Default::default(),
            sla_by_queue: Vec::new(),
            rejected: Rejections {
                window_closed: 1,
                ..Rejections::default()
            },
            templates: 1,
            overrides: 1,
            ..Figures::default()
        }
    );
    desk.check();
}

#[test]
fn r14_the_board_s_kpis_go_back_to_zero_at_midnight_without_an_event() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 2);
    let chat = desk.served(&ana, Channel::Whatsapp, "+1");
    desk.close(&ana, &chat);
    assert!(desk.reopen(&ana, &chat).is_ok());
    desk.engine.publish_kpis();
    assert_eq!(desk.engine.board(&Watch::All).kpis.figures.reopens, 1);
    let seq = desk.engine.supervision().seq();

    // 9:00 → 23:59: a timer round on the same day changes nothing.
    desk.advance(Duration::hours(14) + Duration::minutes(59));
    desk.engine.fire_due_timers();
    desk.engine.publish_kpis();
    assert_eq!(desk.engine.supervision().seq(), seq, "no new KPIs the same day");

    desk.advance(Duration::minutes(2));
    desk.engine.fire_due_timers();
    desk.engine.publish_kpis();
    assert_eq!(
        desk.engine.supervision().seq(),
        seq + 1,
        "the zeroed KPIs are on the board's feed after midnight"
    );
    let kpis = desk.engine.board(&Watch::All).kpis;
    assert_eq!(kpis.since.to_rfc3339(), "2026-03-03T00:00:00+00:00");
    assert_eq!(kpis.figures, Figures::default());
    desk.check();
}

#[test]
fn r15_the_board_lists_queues_agents_and_reopened_chats_as_of_its_seq() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 1);
    let busy = desk.served(&ana, Channel::Whatsapp, "+1");
    let waiting = desk.say(Channel::Whatsapp, "+2", "hi").chat_id.expect("chat");
    desk.advance(Duration::seconds(1));
    desk.say(Channel::Sms, "+3", "hi");
    desk.close(&ana, &busy);
    let offered = desk.pushes(&ana);
    assert!(offered
        .iter()
        .any(|p| matches!(p, Push::ChatOffered(o) if o.chat.id == waiting)));
    assert!(
        desk.reopen(&ana, &busy).is_ok(),
        "ana reopens while the queue waits"
    );

    let whatsapp = Watch::Queues(vec!["whatsapp".into()]);
    let board = desk.engine.board(&whatsapp);
    assert_eq!(board.seq, desk.engine.supervision().seq());
    assert_eq!(board.queues.len(), 1);
    // The closed chat freed ana's slot: the waiting chat is offered, no longer waiting.
    assert!(board.queues[0].waiting.is_empty());
    let row = &board.agents[0];
    assert_eq!((row.load, row.offered, row.limit), (0, 1, 1));
    assert_eq!(board.reopened.len(), 1);
    assert_eq!(board.reopened[0].chat_id, busy);
    assert_eq!(board.reopened[0].reopened_by, ana.id);

    let sms = desk.engine.board(&Watch::Queues(vec!["sms".into()]));
    assert_eq!(sms.queues[0].waiting.len(), 1);
    assert!(
        sms.reopened.is_empty(),
        "a reopened WhatsApp chat is not on the SMS board"
    );
    desk.check();
}

#[test]
fn r15_only_supervisors_and_admins_may_act_as_supervisors() {
    let mut desk = Desk::new();
    let ana = desk.agent("ana", 1);
    let refused = desk
        .engine
        .supervise(
            &ana,
            ConnId(0),
            "r",
            SupervisorRequest::SetLimit {
                agent: ana.id.clone(),
                limit: 9,
            },
        )
        .expect_err("an agent is no supervisor");
    assert_eq!(refused.code(), ErrorCode::Forbidden);
    assert_eq!(desk.load(&ana), (0, 1), "nothing changed");
}
