//! A queue's arithmetic (R19, R20): tickets, steps, effective priority.

use chrono::{Duration, TimeZone, Utc};

use super::*;

fn t(s: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("a date")
        + Duration::seconds(s)
}

fn skills(list: &[(&str, u8)]) -> Skills {
    list.iter().map(|(s, l)| (s.to_string(), *l)).collect()
}

#[test]
fn r19_a_ticket_gathers_channel_language_ingress_and_rule_needs_keeping_the_highest_level() {
    let plan = QueuePlan {
        rules: vec![
            Rule {
                when: [("tier".to_string(), "vip".to_string())].into(),
                priority: 7,
                needs: skills(&[("billing", 4)]),
            },
            Rule {
                when: [("tier".to_string(), "gold".to_string())].into(),
                priority: 100,
                needs: Skills::new(),
            },
        ],
        ..QueuePlan::default()
    };
    let ask = RoutingAsk {
        language: Some(" PT ".into()),
        skills: skills(&[("billing", 2)]),
        attributes: [("tier".to_string(), "vip".to_string())].into(),
        ..RoutingAsk::default()
    };
    let ticket = plan.ticket(&ask, &skills(&[("whatsapp", 1)]));
    assert_eq!(
        ticket.needs,
        skills(&[("billing", 4), ("language:pt", 1), ("whatsapp", 1)]),
        "the rule's billing 4 wins over the ingress 2"
    );
    assert_eq!(ticket.priority, 7, "only the matching rule counts");
}

#[test]
fn r19_steps_add_up_their_timeouts_and_the_last_is_the_fallback() {
    let plan = QueuePlan {
        steps: vec![
            Step {
                needs: skills(&[("billing", 3)]),
                keeps_chat_needs: true,
                timeout: Some(Duration::seconds(30)),
            },
            Step {
                needs: skills(&[("billing", 1)]),
                keeps_chat_needs: false,
                timeout: Some(Duration::seconds(30)),
            },
            Step {
                needs: Skills::new(),
                keeps_chat_needs: false,
                // Ignored: the last step never times out.
                timeout: Some(Duration::seconds(1)),
            },
        ],
        ..QueuePlan::default()
    };
    assert_eq!(plan.step_at(t(0), t(29)), 0);
    assert_eq!(plan.step_at(t(0), t(30)), 1);
    assert_eq!(plan.step_at(t(0), t(60)), 2);
    assert_eq!(plan.step_at(t(0), t(10_000)), 2);
    assert_eq!(plan.step_timeout(2), None);
    let ticket = Ticket {
        needs: skills(&[("language:es", 1)]),
        priority: 0,
    };
    assert_eq!(
        plan.needs_at(0, &ticket),
        skills(&[("billing", 3), ("language:es", 1)])
    );
    assert_eq!(plan.needs_at(1, &ticket), skills(&[("billing", 1)]));
    assert_eq!(
        QueuePlan::default().needs_at(0, &ticket),
        ticket.needs,
        "no workflow: the chat's own"
    );
}

#[test]
fn r20_effective_priority_never_falls_as_a_chat_waits() {
    let plan = QueuePlan {
        priority: 2,
        sla: Some(Duration::seconds(60)),
        boost: Boost {
            every: Some(Duration::seconds(7)),
            by: 3,
            max: Some(12),
            near_due: Some(Duration::seconds(10)),
            near_due_by: 5,
        },
        ..QueuePlan::default()
    };
    let mut last = i64::MIN;
    for s in 0..200 {
        let p = plan.effective_priority(1, t(0), t(s));
        assert!(p >= last, "fell at {s} s: {last} then {p}");
        last = p;
    }
    assert_eq!(plan.effective_priority(1, t(0), t(0)), 3);
    assert_eq!(plan.effective_priority(1, t(0), t(49)), 3 + 12, "capped");
    assert_eq!(
        plan.effective_priority(1, t(0), t(50)),
        3 + 12 + 5,
        "10 s before due"
    );
}
