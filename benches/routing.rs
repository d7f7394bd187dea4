//! One routing decision of the pure core with big queues (issue 16: p99 ≤ 20 µs): 100,000
//! waiting chats over 20 queues, 5,000 agents holding some of 10 skills, every agent full.
//!
//! - `load_down`: an agent's chat closes and its freed slot is offered its best eligible chat
//!   (R20), the decision the router makes most under load;
//! - `enqueue`: a chat arrives while every agent is full, so it is filed and waits.
//!
//! Criterion reports means; the target is a p99, so each decision is also timed alone
//! over [`DECISIONS`] runs and p50/p99/max are printed on stderr. Two mixes of ingress asks are
//! measured, since a decision looks at every bucket of chats that route alike and the asks
//! decide how many buckets there are: `languages` (a language or none) and `varied`
//! (a language, a skill at a level, a VIP attribute). `cargo bench --bench routing`.

#![allow(clippy::disallowed_methods)] // a benchmark measures wall time

#[path = "support/timing.rs"]
mod timing;

use std::time::Duration;

use chrono::TimeZone;
use criterion::{criterion_group, criterion_main, Criterion};
use timing::timed;

use switchboard::clock::Timestamp;
use switchboard::core::queue::{Boost, Rule, Step};
use switchboard::core::{
    Arrival, Channel, Presence, QueuePlan, Router, RouterEvent, RoutingAsk, SeatSpec, Skills,
};
use switchboard::ids::{AgentId, ChatId, CustomerId, QueueId};

const QUEUES: usize = 20;
const AGENTS: usize = 5_000;
const WAITING: usize = 100_000;
/// Chats an agent holds; all of them held, so every agent is full at rest.
const LIMIT: u32 = 3;
/// Individually timed decisions for the percentiles.
const DECISIONS: usize = 20_000;
/// Waiting chats arrived over the last this many seconds, so all steps are populated.
const BACKLOG_SECS: i64 = 600;

/// The 10 skills; languages are skills named `language:xx` (R19).
const LANGUAGES: [&str; 4] = ["en", "es", "de", "fr"];
const TOPICS: [&str; 6] = ["billing", "tech", "sales", "returns", "fraud", "vip"];
const CHANNELS: [Channel; 3] = [Channel::Whatsapp, Channel::Webchat, Channel::Email];

/// The instant every decision is made at; chats waited up to [`BACKLOG_SECS`] before it.
fn now() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 3, 2, 10, 0, 0)
        .single()
        .expect("a date")
}

/// A tiny deterministic generator (Knuth's MMIX LCG): the same router on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }

    fn level(&mut self, low: u8, high: u8) -> u8 {
        low + self.below(usize::from(high - low) + 1) as u8
    }

    fn topic(&mut self) -> String {
        TOPICS[self.below(TOPICS.len())].to_owned()
    }
}

/// What chats ask at ingress.
#[derive(Clone, Copy)]
enum Asks {
    /// Half give a language, the rest nothing.
    Languages,
    /// Also a skill at level 1–2 for a quarter, and a VIP attribute for a tenth.
    Varied,
}

/// A queue's workflow: 2–3 steps, the first needing 1–3 topic skills at levels 3–5, a wider
/// one needing one at 1–2, and a fallback that drops every requirement; a priority, an SLA and
/// a boost by wait and near the due time; VIPs ahead.
fn plan(rng: &mut Lcg, i: usize) -> QueuePlan {
    let mut first = Skills::new();
    for _ in 0..1 + rng.below(3) {
        first.insert(rng.topic(), rng.level(3, 5));
    }
    let mut steps = vec![Step {
        needs: first,
        keeps_chat_needs: true,
        timeout: Some(chrono::Duration::seconds(60)),
    }];
    if i % 2 == 0 {
        steps.push(Step {
            needs: Skills::from([(rng.topic(), rng.level(1, 2))]),
            keeps_chat_needs: true,
            timeout: Some(chrono::Duration::seconds(120)),
        });
    }
    steps.push(Step::default());
    QueuePlan {
        priority: (i % 4) as i32 * 10,
        sla: Some(chrono::Duration::seconds(300)),
        steps,
        boost: Boost {
            every: Some(chrono::Duration::seconds(30)),
            by: 1,
            max: Some(10),
            near_due: Some(chrono::Duration::seconds(60)),
            near_due_by: 5,
        },
        rules: vec![Rule {
            when: [("tier".to_owned(), "vip".to_owned())].into(),
            priority: 5,
            needs: Skills::new(),
        }],
        hours: None,
        overflow: None,
    }
}

/// The router, full, with what the bench needs to put it back after each decision.
struct Bench {
    router: Router,
    rng: Lcg,
    asks: Asks,
    next: u64,
    /// The channels of the chats each agent holds, to close one of them.
    holds: Vec<Vec<Channel>>,
    agents: Vec<AgentId>,
    queues: Vec<QueueId>,
    /// The agent whose slot the next `load_down` frees, and the chat `enqueue` files.
    freeing: usize,
    pending: Option<(Arrival, RoutingAsk)>,
    last: Vec<RouterEvent>,
}

impl Bench {
    fn new(asks: Asks) -> Self {
        let mut rng = Lcg(16);
        let mut router = Router::new(chrono::Duration::seconds(30));
        let queues: Vec<QueueId> = (0..QUEUES).map(|i| QueueId::from(format!("q{i:02}"))).collect();
        for (i, queue) in queues.iter().enumerate() {
            let plan = plan(&mut rng, i);
            router.set_queue(queue.clone(), plan, now());
        }
        let agents: Vec<AgentId> = (0..AGENTS)
            .map(|i| AgentId::from(format!("agent-{i:04}")))
            .collect();
        for agent in &agents {
            // One or two languages and two or three topics, at random levels.
            let mut skills = Skills::new();
            for _ in 0..1 + rng.below(2) {
                skills.insert(
                    format!("language:{}", LANGUAGES[rng.below(LANGUAGES.len())]),
                    rng.level(1, 5),
                );
            }
            for _ in 0..2 + rng.below(2) {
                skills.insert(rng.topic(), rng.level(1, 5));
            }
            let spec = SeatSpec {
                limit: LIMIT,
                skills,
                ..SeatSpec::default()
            };
            router.upsert_seat(agent, spec, now());
        }
        let mut bench = Self {
            router,
            rng,
            asks,
            next: 0,
            holds: vec![Vec::new(); AGENTS],
            agents,
            queues,
            freeing: 0,
            pending: None,
            last: Vec::new(),
        };
        // Chats first, agents online after: each agent takes its best chats until full (no
        // agent is left with room, since every queue's fallback step requires nothing).
        for _ in 0..WAITING + AGENTS * LIMIT as usize {
            let ago = bench.rng.below(BACKLOG_SECS as usize * 1000) as i64;
            let (arrival, ask) = bench.chat(now() - chrono::Duration::milliseconds(ago));
            let events = bench.router.enqueue(arrival, &ask, None, now());
            assert!(events.is_empty(), "nobody is online yet");
        }
        for i in 0..AGENTS {
            let agent = bench.agents[i].clone();
            let events = bench
                .router
                .set_presence(&agent, Presence::Online, now())
                .expect("a seat");
            bench.last = events;
            bench.accept_offers();
        }
        bench.router.take_changes();
        assert_eq!(bench.router.waiting_count(), WAITING, "every agent full");
        bench
    }

    /// A new chat, waiting since `since`, and what it asks.
    fn chat(&mut self, since: Timestamp) -> (Arrival, RoutingAsk) {
        self.next += 1;
        let rng = &mut self.rng;
        let queue = self.queues[rng.below(QUEUES)].clone();
        let mut ask = RoutingAsk::default();
        if rng.below(2) == 0 {
            ask.language = Some(LANGUAGES[rng.below(LANGUAGES.len())].to_owned());
        }
        if let Asks::Varied = self.asks {
            if rng.below(4) == 0 {
                ask.skills.insert(rng.topic(), rng.level(1, 2));
            }
            if rng.below(10) == 0 {
                ask.attributes.insert("tier".to_owned(), "vip".to_owned());
            }
        }
        let arrival = Arrival {
            chat: ChatId::from(format!("ch{}", self.next)),
            customer: CustomerId::from(format!("cu{}", self.next)),
            channel: CHANNELS[rng.below(CHANNELS.len())],
            queue: queue.clone(),
            since,
        };
        ask.queue = Some(queue);
        (arrival, ask)
    }

    /// Accepts every offer in the last events, so that their agents are full again.
    fn accept_offers(&mut self) {
        for event in std::mem::take(&mut self.last) {
            if let RouterEvent::Offered { chat, agent, .. } = event {
                let channel = self.router.offer(&chat).expect("offered").waiting.channel;
                self.router.accept(&chat, &agent, now()).expect("accepts");
                let i: usize = agent.as_str()["agent-".len()..].parse().expect("an agent number");
                self.holds[i].push(channel);
            }
        }
    }

    /// Picks the agent whose chat closes next (untimed).
    fn pick_agent(&mut self) {
        self.freeing = self.rng.below(AGENTS);
    }

    /// The decision: a chat of the agent closes and its slot is offered its best chat.
    fn load_down(&mut self) {
        let i = self.freeing;
        let channel = self.holds[i].pop().expect("a full agent holds chats");
        self.last = self.router.load_down(&self.agents[i], channel, now());
    }

    /// Back to rest: the offer accepted (the agent is full again) and a chat of the backlog
    /// in place of the one offered, so that 100,000 keep waiting.
    fn refill(&mut self) {
        let offered = self
            .last
            .iter()
            .filter(|e| matches!(e, RouterEvent::Offered { .. }))
            .count();
        self.accept_offers();
        for _ in 0..offered {
            let ago = self.rng.below(BACKLOG_SECS as usize * 1000) as i64;
            let (arrival, ask) = self.chat(now() - chrono::Duration::milliseconds(ago));
            let events = self.router.enqueue(arrival, &ask, None, now());
            assert!(events.is_empty(), "every agent is full");
        }
        self.router.take_changes();
    }

    /// Makes the arriving chat (untimed): it has just come in.
    fn next_arrival(&mut self) {
        self.pending = Some(self.chat(now()));
    }

    /// The decision: a chat arrives while every agent is full; it is filed and waits.
    fn enqueue(&mut self) {
        let (arrival, ask) = self.pending.take().expect("a chat made by next_arrival");
        self.last = self.router.enqueue(arrival, &ask, None, now());
    }

    /// Takes the arrived chat out again, so that the backlog stays at 100,000.
    fn unqueue(&mut self) {
        assert!(self.last.is_empty(), "every agent is full");
        let chat = ChatId::from(format!("ch{}", self.next));
        self.router.withdraw(&chat, now());
        self.router.take_changes();
    }
}

/// Times [`DECISIONS`] runs of `op` one by one and prints p50, p99 and max.
fn percentiles<S>(
    name: &str,
    state: &mut S,
    mut prepare: impl FnMut(&mut S),
    mut op: impl FnMut(&mut S),
    mut reset: impl FnMut(&mut S),
) {
    let mut times: Vec<Duration> = (0..DECISIONS)
        .map(|_| timed(1, state, &mut prepare, &mut op, &mut reset))
        .collect();
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    eprintln!(
        "routing/{name}: {DECISIONS} decisions one by one: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        at(0.50),
        at(0.99),
        times[times.len() - 1]
    );
}

fn benches(c: &mut Criterion) {
    for (label, asks) in [("languages", Asks::Languages), ("varied", Asks::Varied)] {
        let mut group = c.benchmark_group(format!("routing_{label}"));
        let mut bench = Bench::new(asks);
        percentiles(
            &format!("{label}/load_down"),
            &mut bench,
            Bench::pick_agent,
            Bench::load_down,
            Bench::refill,
        );
        percentiles(
            &format!("{label}/enqueue"),
            &mut bench,
            Bench::next_arrival,
            Bench::enqueue,
            Bench::unqueue,
        );
        group.bench_function("load_down", |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    &mut bench,
                    Bench::pick_agent,
                    Bench::load_down,
                    Bench::refill,
                )
            })
        });
        group.bench_function("enqueue", |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    &mut bench,
                    Bench::next_arrival,
                    Bench::enqueue,
                    Bench::unqueue,
                )
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = routing;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(routing);
