//! Routing rules R19–R22 at the core, with the clock passed in: skills and workflow steps,
//! priorities and boosts, opening hours, capacity per channel. The engine's routing tests
//! (`engine/tests/routing.rs`) cover R06 and R10 through the runtime.

use chrono::{Duration, TimeZone, Utc};

use super::*;
use crate::core::hours::Hours;
use crate::core::queue::{Boost, QueuePlan, Rule, Step};

mod property;

/// 2026-03-02 was a Monday; `t(s)` is 09:00 UTC plus `s` seconds.
pub(super) fn t(s: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("a date")
        + Duration::seconds(s)
}

pub(super) fn skills(list: &[(&str, u8)]) -> Skills {
    list.iter().map(|(s, l)| (s.to_string(), *l)).collect()
}

/// A router and the chats it has seen, for short stories.
pub(super) struct Floor {
    pub(super) router: Router,
    next: u64,
}

impl Floor {
    pub(super) fn new() -> Self {
        Self {
            router: Router::new(Duration::seconds(30)),
            next: 0,
        }
    }

    pub(super) fn queue(&mut self, id: &str, plan: QueuePlan) -> &mut Self {
        self.router.set_queue(QueueId::from(id), plan, t(0));
        self
    }

    /// An online agent with `limit`, `skills` and per-channel limits, serving every queue.
    pub(super) fn agent(&mut self, id: &str, limit: u32, skills: Skills) -> AgentId {
        self.agent_with(id, limit, skills, BTreeMap::new(), t(0))
    }

    pub(super) fn agent_with(
        &mut self,
        id: &str,
        limit: u32,
        skills: Skills,
        channel_limits: BTreeMap<Channel, u32>,
        now: Timestamp,
    ) -> AgentId {
        let agent = AgentId::from(id);
        let spec = SeatSpec {
            limit,
            queues: Vec::new(),
            skills,
            channel_limits,
        };
        self.router.upsert_seat(&agent, spec, now);
        self.router
            .set_presence(&agent, Presence::Online, now)
            .expect("a seat");
        agent
    }

    /// A chat arriving on `channel` for `queue` at `now`, asking for `ask`; its events.
    pub(super) fn arrive(
        &mut self,
        queue: &str,
        channel: Channel,
        ask: RoutingAsk,
        now: Timestamp,
    ) -> (ChatId, Vec<RouterEvent>) {
        self.next += 1;
        let chat = ChatId::from(format!("ch{}", self.next));
        let arrival = Arrival {
            chat: chat.clone(),
            customer: CustomerId::from(format!("cu{}", self.next)),
            channel,
            queue: QueueId::from(queue),
            since: now,
        };
        let events = self.router.enqueue(arrival, &ask, None, now);
        self.router.check_invariants();
        (chat, events)
    }

    /// A web chat for `queue` asking for nothing special.
    pub(super) fn plain(&mut self, queue: &str, now: Timestamp) -> ChatId {
        self.arrive(queue, Channel::Webchat, RoutingAsk::default(), now).0
    }

    /// Who `chat` is offered to, if anyone.
    pub(super) fn offered_to(&self, chat: &ChatId) -> Option<AgentId> {
        self.router.offer(chat).map(|o| o.agent.clone())
    }

    /// The chats `queue` shows at `now`, in offer order.
    pub(super) fn order(&self, queue: &str, now: Timestamp) -> Vec<ChatId> {
        self.router
            .queues(now)
            .into_iter()
            .find(|(q, _)| q.as_str() == queue)
            .map(|(_, w)| w.into_iter().map(|w| w.chat.clone()).collect())
            .unwrap_or_default()
    }

    /// `agent` accepts and then closes `chat`, freeing its slot at `now`.
    pub(super) fn finish(
        &mut self,
        agent: &AgentId,
        chat: &ChatId,
        channel: Channel,
        now: Timestamp,
    ) -> Vec<RouterEvent> {
        self.router.accept(chat, agent, now).expect("offered");
        let events = self.router.load_down(agent, channel, now);
        self.router.check_invariants();
        events
    }
}

fn needs(list: &[(&str, u8)]) -> RoutingAsk {
    RoutingAsk {
        skills: skills(list),
        ..RoutingAsk::default()
    }
}

fn offered(events: &[RouterEvent]) -> Vec<(ChatId, AgentId)> {
    events
        .iter()
        .filter_map(|e| match e {
            RouterEvent::Offered { chat, agent, .. } => Some((chat.clone(), agent.clone())),
            _ => None,
        })
        .collect()
}

/// Billing: level 3 for the first 60 s, anyone with billing after, with the chat's language
/// dropped at the wider step.
fn billing() -> QueuePlan {
    QueuePlan {
        steps: vec![
            Step {
                needs: skills(&[("billing", 3)]),
                keeps_chat_needs: true,
                timeout: Some(Duration::seconds(60)),
            },
            Step {
                needs: skills(&[("billing", 1)]),
                keeps_chat_needs: false,
                timeout: None,
            },
        ],
        ..QueuePlan::default()
    }
}

#[test]
fn r19_a_chat_is_offered_only_to_an_agent_holding_every_required_skill_at_its_level() {
    let mut floor = Floor::new();
    floor.queue("support", QueuePlan::default());
    let novice = floor.agent("novice", 3, skills(&[("billing", 2), ("language:es", 5)]));
    let (chat, events) = floor.arrive("support", Channel::Webchat, needs(&[("billing", 3)]), t(0));
    assert!(offered(&events).is_empty(), "billing 2 is below the 3 required");
    assert_eq!(floor.offered_to(&chat), None);

    let expert = floor.agent("expert", 3, skills(&[("billing", 4)]));
    assert_eq!(
        floor.offered_to(&chat),
        Some(expert.clone()),
        "offered as soon as an eligible agent is online"
    );

    // A second requirement the expert lacks: only someone holding both.
    let ask = RoutingAsk {
        language: Some("ES".into()),
        ..needs(&[("billing", 1)])
    };
    let (spanish, _) = floor.arrive("support", Channel::Webchat, ask, t(1));
    assert_eq!(
        floor.offered_to(&spanish),
        Some(novice),
        "language `ES` is the skill language:es"
    );
}

#[test]
fn r19_the_best_match_comes_first_then_the_least_loaded() {
    let mut floor = Floor::new();
    floor.queue("support", QueuePlan::default());
    let good = floor.agent("good", 3, skills(&[("billing", 3)]));
    let best = floor.agent("best", 3, skills(&[("billing", 5)]));
    let c1 = floor
        .arrive("support", Channel::Webchat, needs(&[("billing", 2)]), t(0))
        .0;
    assert_eq!(
        floor.offered_to(&c1),
        Some(best.clone()),
        "the higher level is the better match"
    );
    // With no requirement every agent matches alike: the least loaded wins (R06).
    let c2 = floor.plain("support", t(1));
    assert_eq!(floor.offered_to(&c2), Some(good));
}

#[test]
fn r19_the_best_match_is_found_past_better_placed_agents_and_once_the_top_one_is_full() {
    // Free agents are walked least loaded first, then longest idle, then by id: amy, bob and
    // zoe stand in that order, and the best match stands last.
    let mut floor = Floor::new();
    floor.queue("support", QueuePlan::default());
    floor.agent("amy", 5, skills(&[("billing", 3)]));
    let bob = floor.agent("bob", 5, skills(&[("billing", 4)]));
    let zoe = floor.agent("zoe", 1, skills(&[("billing", 5)]));
    let first = floor
        .arrive("support", Channel::Webchat, needs(&[("billing", 1)]), t(0))
        .0;
    assert_eq!(
        floor.offered_to(&first),
        Some(zoe),
        "the walk goes past amy and bob"
    );
    // zoe is full (limit 1): the best of the rest, though level 5 is still the best held.
    let second = floor
        .arrive("support", Channel::Webchat, needs(&[("billing", 1)]), t(1))
        .0;
    assert_eq!(floor.offered_to(&second), Some(bob), "bob, not the first in line");
    floor.router.check_invariants();
}

#[test]
fn r19_steps_relax_on_their_timeouts_and_the_waiting_chat_knows_its_step() {
    let mut floor = Floor::new();
    floor.queue("billing", billing());
    let junior = floor.agent("junior", 3, skills(&[("billing", 1)]));
    let ask = RoutingAsk {
        language: Some("es".into()),
        ..RoutingAsk::default()
    };
    let (chat, events) = floor.arrive("billing", Channel::Whatsapp, ask, t(0));
    assert!(offered(&events).is_empty());
    let waiting = floor.router.waitlist.get(&chat).expect("waits").clone();
    let standing = floor.router.standing(&waiting, t(0));
    assert_eq!((standing.step, standing.steps), (0, 2));
    assert_eq!(standing.needs, skills(&[("billing", 3), ("language:es", 1)]));
    assert_eq!(
        floor.router.next_deadline(),
        Some(t(60)),
        "the ticker wakes when the step times out"
    );

    assert!(floor.router.tick(t(59)).is_empty(), "not before its timeout");
    let events = floor.router.tick(t(60));
    assert_eq!(
        offered(&events),
        vec![(chat.clone(), junior)],
        "billing 1 will do at step 2, language dropped"
    );
    let changes = floor.router.take_changes();
    assert!(
        changes.queues.iter().any(
            |c| matches!(c, QueueChange::Stepped { waiting } if waiting.chat == chat && waiting.step == 1)
        ),
        "supervisors are told the chat moved on a step"
    );
    floor.router.check_invariants();
}

#[test]
fn r19_a_chat_back_from_an_offer_keeps_the_step_its_wait_reached() {
    let mut floor = Floor::new();
    floor.queue("billing", billing());
    let (chat, _) = floor.arrive("billing", Channel::Whatsapp, RoutingAsk::default(), t(0));
    floor.router.tick(t(60));
    let junior = floor.agent_with("junior", 3, skills(&[("billing", 1)]), BTreeMap::new(), t(61));
    assert_eq!(floor.offered_to(&chat), Some(junior.clone()));
    floor.router.decline(&chat, &junior, t(62)).expect("declines");
    // Junior is the only one eligible, so it goes round to junior again (R06), at step 2.
    let again = floor.router.offer(&chat).expect("offered again");
    assert_eq!(
        (&again.agent, again.waiting.step),
        (&junior, 1),
        "not back at the start of the workflow"
    );
}

#[test]
fn r19_an_agent_given_a_skill_live_is_offered_the_chat_that_waited_for_it() {
    let mut floor = Floor::new();
    floor.queue("support", QueuePlan::default());
    let ben = floor.agent("ben", 2, skills(&[("language:en", 4)]));
    let ask = RoutingAsk {
        language: Some("es".into()),
        ..RoutingAsk::default()
    };
    let (chat, _) = floor.arrive("support", Channel::Webchat, ask, t(0));
    assert_eq!(floor.offered_to(&chat), None);
    let events = floor
        .router
        .set_skills(&ben, skills(&[("language:en", 4), ("language:es", 2)]), t(5))
        .expect("a seat");
    assert_eq!(offered(&events), vec![(chat, ben)]);
    floor.router.check_invariants();
}

#[test]
fn r19_rules_over_attributes_add_priority_and_requirements() {
    let mut floor = Floor::new();
    let plan = QueuePlan {
        rules: vec![Rule {
            when: [("tier".to_string(), "vip".to_string())].into(),
            priority: 50,
            needs: skills(&[("vip_care", 1)]),
        }],
        ..QueuePlan::default()
    };
    floor.queue("support", plan);
    let vip = RoutingAsk {
        attributes: [("tier".to_string(), "vip".to_string())].into(),
        ..RoutingAsk::default()
    };
    let (chat, _) = floor.arrive("support", Channel::Webchat, vip, t(0));
    let waiting = floor.router.waitlist.get(&chat).expect("waits").clone();
    assert_eq!(waiting.ticket.priority, 50);
    assert_eq!(
        floor.router.standing(&waiting, t(0)).needs,
        skills(&[("vip_care", 1)])
    );
    let plain = floor.agent("plain", 1, Skills::new());
    assert_eq!(floor.offered_to(&chat), None, "no vip_care");
    let carer = floor.agent("carer", 1, skills(&[("vip_care", 2)]));
    assert_eq!(floor.offered_to(&chat), Some(carer));
    let _ = plain;
}

#[test]
fn r20_an_agent_with_room_takes_the_highest_priority_chat_it_is_eligible_for_then_the_oldest() {
    let mut floor = Floor::new();
    floor.queue("low", QueuePlan::default());
    floor.queue(
        "high",
        QueuePlan {
            priority: 10,
            ..QueuePlan::default()
        },
    );
    let old_low = floor.plain("low", t(0));
    let high = floor.plain("high", t(10));
    let young_low = floor.plain("low", t(20));
    assert_eq!(
        floor.order("low", t(20)),
        vec![old_low.clone(), young_low.clone()]
    );

    let ana = floor.agent_with("ana", 1, Skills::new(), BTreeMap::new(), t(30));
    assert_eq!(floor.offered_to(&high), Some(ana.clone()), "priority before age");
    floor.finish(&ana, &high, Channel::Webchat, t(31));
    assert_eq!(
        floor.offered_to(&old_low),
        Some(ana.clone()),
        "then the oldest of equals"
    );
    floor.finish(&ana, &old_low, Channel::Webchat, t(32));
    assert_eq!(floor.offered_to(&young_low), Some(ana));
}

#[test]
fn r20_boosts_by_wait_reorder_a_queue_and_its_positions() {
    let mut floor = Floor::new();
    floor.queue(
        "vip",
        QueuePlan {
            priority: 5,
            ..QueuePlan::default()
        },
    );
    floor.queue(
        "general",
        QueuePlan {
            boost: Boost {
                every: Some(Duration::seconds(10)),
                by: 1,
                max: Some(20),
                ..Boost::default()
            },
            ..QueuePlan::default()
        },
    );
    let general = floor.plain("general", t(0));
    let vip = floor.plain("vip", t(30));
    // At t=40 the general chat has +4, below vip's 5; at t=60 it has +6.
    let waiting = floor.router.waitlist.get(&general).expect("waits").clone();
    assert_eq!(floor.router.standing(&waiting, t(40)).priority, 4);
    assert_eq!(floor.router.standing(&waiting, t(60)).priority, 6);
    assert_eq!(
        floor.router.standing(&waiting, t(10_000)).priority,
        20,
        "capped at max"
    );

    let ana = floor.agent_with("ana", 1, Skills::new(), BTreeMap::new(), t(60));
    assert_eq!(
        floor.offered_to(&general),
        Some(ana),
        "the boost took it past the vip queue"
    );
    let _ = vip;
}

#[test]
fn r20_a_chat_near_its_sla_overtakes_and_its_position_follows() {
    let mut floor = Floor::new();
    floor.queue(
        "chat",
        QueuePlan {
            priority: 1,
            sla: Some(Duration::seconds(60)),
            boost: Boost {
                near_due: Some(Duration::seconds(15)),
                near_due_by: 10,
                ..Boost::default()
            },
            ..QueuePlan::default()
        },
    );
    floor.queue(
        "email",
        QueuePlan {
            priority: 5,
            ..QueuePlan::default()
        },
    );
    let c1 = floor.plain("chat", t(0));
    let c2 = floor.plain("chat", t(5));
    assert_eq!(
        floor.router.position(&c1, t(10)),
        Some((QueueId::from("chat"), 1))
    );
    assert_eq!(
        floor.router.position(&c2, t(10)),
        Some((QueueId::from("chat"), 2))
    );
    let waiting = floor.router.waitlist.get(&c1).expect("waits").clone();
    assert_eq!(floor.router.standing(&waiting, t(10)).due_at, Some(t(60)));
    let e = floor.plain("email", t(10));
    // At t=45 c1 is 15 s from due: 1 + 10 beats email's 5; c2 is not yet near.
    let ana = floor.agent_with("ana", 2, Skills::new(), BTreeMap::new(), t(45));
    assert_eq!(floor.offered_to(&c1), Some(ana.clone()));
    assert_eq!(floor.offered_to(&e), Some(ana), "then email (5) before c2 (1)");
    assert_eq!(floor.offered_to(&c2), None);
}

#[test]
fn r20_sla_attainment_and_estimated_wait_come_from_answers() {
    let mut floor = Floor::new();
    floor.queue(
        "chat",
        QueuePlan {
            sla: Some(Duration::seconds(30)),
            ..QueuePlan::default()
        },
    );
    let ana = floor.agent("ana", 1, Skills::new());
    assert_eq!(
        floor.router.estimated_wait(&QueueId::from("chat"), 1, t(0)),
        None,
        "no answers yet"
    );
    let fast = floor.plain("chat", t(0));
    let accepted = floor.router.accept(&fast, &ana, t(20)).expect("offered");
    assert_eq!(accepted.within_sla, Some(true));
    let slow = floor.plain("chat", t(20));
    floor.router.load_down(&ana, Channel::Webchat, t(30));
    assert_eq!(floor.offered_to(&slow), Some(ana.clone()));
    let accepted = floor.router.accept(&slow, &ana, t(60)).expect("offered");
    assert_eq!(accepted.within_sla, Some(false), "40 s against 30");
    // Two answers in the 40 s since the first: one every 20 s, so 40 s for the second place.
    let wait = floor.router.estimated_wait(&QueueId::from("chat"), 2, t(60));
    assert_eq!(wait, Some(Duration::seconds(40)));
}

/// Open 09:00–17:00 on weekdays in UTC, closed on 2026-03-03.
fn office_hours() -> Hours {
    let days = ["mon", "tue", "wed", "thu", "fri"];
    let week: Vec<(String, Vec<String>)> = days
        .iter()
        .map(|d| (d.to_string(), vec!["09:00-17:00".to_string()]))
        .collect();
    Hours::new("UTC", &week, &["2026-03-03".to_string()]).expect("valid hours")
}

#[test]
fn r21_a_chat_that_comes_while_closed_waits_is_told_once_and_is_offered_at_opening() {
    let mut floor = Floor::new();
    floor.queue(
        "office",
        QueuePlan {
            hours: Some(office_hours()),
            ..QueuePlan::default()
        },
    );
    let ana = floor.agent("ana", 2, Skills::new());
    let evening = t(9 * 3600); // 18:00 Monday
    let (chat, events) = floor.arrive("office", Channel::Webchat, RoutingAsk::default(), evening);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RouterEvent::ArrivedAfterHours { chat: c, queue, .. } if c == &chat && queue.as_str() == "office")),
        "the customer is to be told: {events:?}"
    );
    assert_eq!(
        floor.offered_to(&chat),
        None,
        "ana is online with room, but the queue is closed"
    );
    // Tuesday 2026-03-03 is a holiday: still closed at 10:00 that day.
    let tuesday_ten = t(25 * 3600);
    assert!(
        offered(&floor.router.tick(tuesday_ten)).is_empty(),
        "a holiday closes the queue"
    );
    let wednesday_nine = t(48 * 3600);
    assert_eq!(
        floor.router.next_deadline(),
        Some(wednesday_nine),
        "the ticker wakes at opening"
    );
    let events = floor.router.tick(wednesday_nine);
    assert_eq!(offered(&events), vec![(chat, ana)]);
    floor.router.check_invariants();
}

#[test]
fn r21_a_closed_queue_sends_its_chats_to_its_overflow() {
    let mut floor = Floor::new();
    floor.queue(
        "office",
        QueuePlan {
            hours: Some(office_hours()),
            overflow: Some(QueueId::from("night")),
            ..QueuePlan::default()
        },
    );
    floor.queue("night", QueuePlan::default());
    let owl = floor.agent("owl", 2, Skills::new());
    let (chat, events) = floor.arrive("office", Channel::Webchat, RoutingAsk::default(), t(10 * 3600));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, RouterEvent::ArrivedAfterHours { .. })),
        "an open overflow answers: no after-hours reply"
    );
    assert_eq!(
        floor.router.offer(&chat).map(|o| o.waiting.queue.as_str()),
        Some("night")
    );
    assert_eq!(floor.offered_to(&chat), Some(owl));
    // In opening hours (Wednesday 10:00) the queue keeps its own chats.
    let (day, _) = floor.arrive("office", Channel::Webchat, RoutingAsk::default(), t(49 * 3600));
    assert_eq!(
        floor.router.offer(&day).map(|o| o.waiting.queue.as_str()),
        Some("office")
    );
}

#[test]
fn r22_a_channel_limit_holds_an_agent_back_on_that_channel_only() {
    let mut floor = Floor::new();
    floor.queue("any", QueuePlan::default());
    let limits = BTreeMap::from([(Channel::Whatsapp, 1), (Channel::Email, 2)]);
    let ana = floor.agent_with("ana", 5, Skills::new(), limits, t(0));
    let (w1, _) = floor.arrive("any", Channel::Whatsapp, RoutingAsk::default(), t(0));
    let (w2, _) = floor.arrive("any", Channel::Whatsapp, RoutingAsk::default(), t(1));
    let (e1, _) = floor.arrive("any", Channel::Email, RoutingAsk::default(), t(2));
    assert_eq!(floor.offered_to(&w1), Some(ana.clone()));
    assert_eq!(
        floor.offered_to(&w2),
        None,
        "one WhatsApp chat at a time, though the overall limit is 5"
    );
    assert_eq!(
        floor.offered_to(&e1),
        Some(ana.clone()),
        "email has room of its own"
    );
    // The WhatsApp chat closes: the second one comes.
    let events = floor.finish(&ana, &w1, Channel::Whatsapp, t(3));
    assert_eq!(offered(&events), vec![(w2, ana)]);
}

#[test]
fn r22_a_customer_reply_and_a_forced_transfer_may_exceed_a_channel_limit_and_are_counted() {
    let mut floor = Floor::new();
    floor.queue("any", QueuePlan::default());
    let limits = BTreeMap::from([(Channel::Whatsapp, 1)]);
    let ana = floor.agent_with("ana", 5, Skills::new(), limits.clone(), t(0));
    let ben = floor.agent_with("ben", 5, Skills::new(), limits, t(0));
    let (w1, _) = floor.arrive("any", Channel::Whatsapp, RoutingAsk::default(), t(0));
    floor.router.accept(&w1, &ana, t(1)).expect("offered");
    // R05: the customer of a chat ana reopened replies; it counts against both limits.
    let (change, _) = floor
        .router
        .load_up(&ana, Channel::Whatsapp, t(2))
        .expect("a seat");
    assert!(
        change.over_limit,
        "over the WhatsApp limit, though under the overall one"
    );
    assert_eq!(floor.router.seat(&ana).map(|s| s.overrides), Some(1));
    // A transfer to ben, who holds one WhatsApp chat already: refused unless forced.
    floor
        .router
        .load_up(&ben, Channel::Whatsapp, t(2))
        .expect("a seat");
    let refused = floor.router.transfer(&ana, &ben, Channel::Whatsapp, false, t(2));
    assert!(matches!(refused, Err(Rejection::OverLimit { .. })), "{refused:?}");
    let (change, _) = floor
        .router
        .transfer(&ana, &ben, Channel::Whatsapp, true, t(3))
        .expect("forced");
    assert!(change.over_limit);
    assert_eq!(
        floor.router.overrides(),
        2,
        "ana's reply and ben's forced transfer; ben's first chat was within"
    );
}

#[test]
fn r06_a_reply_that_takes_an_offered_slot_takes_the_newest_offer_back_for_someone_else() {
    let mut floor = Floor::new();
    floor.queue("any", QueuePlan::default());
    let ana = floor.agent("ana", 2, Skills::new());
    let older = floor.plain("any", t(1));
    let newer = floor.plain("any", t(2));
    assert_eq!(floor.offered_to(&newer), Some(ana.clone()), "both slots offered");
    let ben = floor.agent("ben", 2, Skills::new());
    // R05: the customer of a chat ana reopened replies; it takes one of her two slots, so
    // one offer no longer fits: accepting both would take her over her limit unasked.
    let (change, events) = floor
        .router
        .load_up(&ana, Channel::Webchat, t(3))
        .expect("a seat");
    floor.router.check_invariants();
    assert!(!change.over_limit, "1 of 2, with one offer left");
    assert!(events.contains(&RouterEvent::OfferWithdrawn {
        chat: newer.clone(),
        agent: ana.clone(),
        reason: WithdrawReason::RoomTaken,
    }));
    assert_eq!(offered(&events), vec![(newer.clone(), ben)], "the chat goes on");
    assert_eq!(
        floor.offered_to(&older),
        Some(ana.clone()),
        "the older offer stays"
    );
    assert!(floor.router.accept(&newer, &ana, t(4)).is_err());
    floor.router.accept(&older, &ana, t(4)).expect("still hers");
    assert_eq!(floor.router.seat(&ana).map(|s| (s.load, s.limit)), Some((2, 2)));
}
