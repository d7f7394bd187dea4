//! The core's hot operations through the engine (locks, rules, push encoding), without the
//! network: reopen, customer reply, route an offer, accept, close. Each runs single-threaded
//! and on two threads over disjoint customers, so a regression in the core shows apart from
//! the gateway. `cargo bench --bench core`.

#![allow(clippy::disallowed_methods)] // a benchmark measures wall time

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::TimeZone;
use criterion::{criterion_group, criterion_main, Criterion};

use switchboard::clock::ManualClock;
use switchboard::core::{AgentProfile, Channel, Role};
use switchboard::engine::fanout::ConnHandle;
use switchboard::engine::outbound::Outbound;
use switchboard::engine::{Engine, EngineConfig};
use switchboard::ids::{AgentId, ChatId};
use switchboard::protocol::{Caller, InboundMessage, Request};

/// The allocator the engine ships with (src/main.rs), so that this measures what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CUSTOMERS_PER_LANE: usize = 2_000;

/// One agent and its own customers, so two lanes never touch the same lock but the router's.
struct Lane {
    caller: Caller,
    conn: ConnHandle,
    customers: Vec<(String, ChatId)>,
}

struct World {
    engine: Arc<Engine>,
    lanes: Vec<Lane>,
    /// Messages for customers, taken and dropped as the sender would take them: left queued,
    /// each reopen's notice stayed allocated, and the bench measured fresh memory being
    /// faulted in (a third of the reopen loop's time) rather than the engine.
    outbound: Mutex<tokio::sync::mpsc::UnboundedReceiver<switchboard::engine::outbound::Dispatch>>,
}

fn say(engine: &Engine, from: &str, text: &str) -> Option<ChatId> {
    engine
        .customer_message(
            Channel::Webchat,
            InboundMessage {
                from: from.into(),
                text: text.into(),
                name: Some("Mia Muster".into()),
                email: None,
                phone: None,
                sent_at: None,
                ..Default::default()
            },
        )
        .expect("accepted")
        .chat_id
}

impl Lane {
    fn drain(&mut self) {
        while self.conn.outbox.try_recv().is_ok() {}
    }

    fn request(&self, engine: &Engine, request: Request) {
        engine.handle(&self.caller, self.conn.id, request).expect("ok");
    }
}

/// `lanes` agents, each with closed chats of its own customers (web chat: no window).
fn world(lanes: usize) -> World {
    let start = chrono::Utc
        .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("date");
    let (outbound, rx) = Outbound::channel();
    let config = EngineConfig {
        outbox_capacity: 1 << 16,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, Arc::new(ManualClock::new(start)), outbound);
    let mut all = Vec::new();
    for l in 0..lanes {
        let id = AgentId::from(format!("agent{l}"));
        engine.upsert_agent(
            AgentProfile {
                id: id.clone(),
                name: format!("Agent {l}"),
                role: Role::Agent,
                limit: 0,
                queues: Vec::new(),
                skills: Default::default(),
                channel_limits: Default::default(),
            },
            None,
        );
        let (conn, _) = engine.connect(&id);
        all.push(Lane {
            caller: Caller {
                id,
                role: Role::Agent,
            },
            conn,
            customers: Vec::new(),
        });
    }
    // Serve every customer once so that it has a closed chat: one lane at a time has room.
    for lane in &mut all {
        engine.set_limit(&lane.caller.id, 1).expect("agent");
        for c in 0..CUSTOMERS_PER_LANE {
            let from = format!("{}-c{c}", lane.caller.id);
            let chat = say(&engine, &from, "hello").expect("chat");
            lane.request(
                &engine,
                Request::Accept {
                    chat_id: chat.clone(),
                },
            );
            lane.request(
                &engine,
                Request::Close {
                    chat_id: chat.clone(),
                },
            );
            lane.customers.push((from, chat));
        }
        engine.set_limit(&lane.caller.id, 0).expect("agent");
        lane.drain();
    }
    World {
        engine,
        lanes: all,
        outbound: Mutex::new(rx),
    }
}

/// Times `op` over `iters` runs spread across the lanes in parallel; `prepare` and `reset`
/// run untimed around each one.
fn run(
    world: &mut World,
    iters: u64,
    prepare: impl Fn(&Engine, &mut Lane, usize) + Sync,
    op: impl Fn(&Engine, &mut Lane, usize) + Sync,
    reset: impl Fn(&Engine, &mut Lane, usize) + Sync,
) -> Duration {
    let per_lane = iters.div_ceil(world.lanes.len() as u64);
    let (engine, outbound) = (&world.engine, &world.outbound);
    let (prepare, op, reset) = (&prepare, &op, &reset);
    let times: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = world
            .lanes
            .iter_mut()
            .map(|lane| {
                s.spawn(move || {
                    let mut total = Duration::ZERO;
                    for i in 0..per_lane as usize {
                        let c = i % CUSTOMERS_PER_LANE;
                        prepare(engine, lane, c);
                        let t = Instant::now();
                        op(engine, lane, c);
                        total += t.elapsed();
                        reset(engine, lane, c);
                        if i % 256 == 0 {
                            lane.drain();
                            let mut outbound = outbound.lock().expect("not poisoned");
                            while outbound.try_recv().is_ok() {}
                        }
                    }
                    total
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("lane")).collect()
    });
    // Lanes ran side by side: the wall time of the batch is the slowest lane's, spread over
    // all the operations done.
    let slowest = times.into_iter().max().unwrap_or_default();
    slowest.mul_f64(iters as f64 / (per_lane * world.lanes.len() as u64) as f64)
}

fn reopen(e: &Engine, l: &mut Lane, c: usize) {
    l.request(
        e,
        Request::Reopen {
            chat_id: l.customers[c].1.clone(),
        },
    );
}

fn reply(e: &Engine, l: &mut Lane, c: usize) {
    say(e, &l.customers[c].0, "yes please");
}

fn close(e: &Engine, l: &mut Lane, c: usize) {
    l.request(
        e,
        Request::Close {
            chat_id: l.customers[c].1.clone(),
        },
    );
}

fn nothing(_: &Engine, _: &mut Lane, _: usize) {}

fn benches(c: &mut Criterion) {
    for threads in [1usize, 2] {
        let mut group = c.benchmark_group(format!("core/{threads}-thread"));
        let mut w = world(threads);
        group.bench_function("reopen", |b| {
            b.iter_custom(|iters| {
                run(&mut w, iters, nothing, reopen, |e, l, c| {
                    reply(e, l, c);
                    close(e, l, c);
                })
            })
        });
        group.bench_function("customer_reply", |b| {
            b.iter_custom(|iters| run(&mut w, iters, reopen, reply, close))
        });
        group.bench_function("close", |b| {
            b.iter_custom(|iters| {
                run(
                    &mut w,
                    iters,
                    |e, l, c| {
                        reopen(e, l, c);
                        reply(e, l, c);
                    },
                    close,
                    nothing,
                )
            })
        });
        // A customer back within the revive window: its chat is queued and offered (R06,
        // R10, R11), then accepted.
        for lane in &w.lanes {
            w.engine.set_limit(&lane.caller.id, 1).expect("agent");
        }
        group.bench_function("route_offer", |b| {
            b.iter_custom(|iters| {
                run(&mut w, iters, nothing, reply, |e, l, c| {
                    l.request(
                        e,
                        Request::Accept {
                            chat_id: l.customers[c].1.clone(),
                        },
                    );
                    close(e, l, c);
                })
            })
        });
        group.bench_function("accept", |b| {
            b.iter_custom(|iters| {
                run(
                    &mut w,
                    iters,
                    reply,
                    |e, l, c| {
                        l.request(
                            e,
                            Request::Accept {
                                chat_id: l.customers[c].1.clone(),
                            },
                        )
                    },
                    close,
                )
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = core;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(core);
