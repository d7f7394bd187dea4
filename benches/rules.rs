//! The pure core's operations, without the engine: no lock, no push, no encoding, no clock
//! (`now` is passed in). Issue 13's target is ≤ 1 µs each; `benches/core.rs` measures the same
//! operations through the engine, pushes encoded. `cargo bench --bench rules`.

#![allow(clippy::disallowed_methods)] // a benchmark measures wall time

#[path = "support/timing.rs"]
mod timing;

use std::time::Duration;

use chrono::TimeZone;
use criterion::{criterion_group, criterion_main, Criterion};
use timing::timed;

use switchboard::clock::Timestamp;
use switchboard::core::{
    Accepted, Arrival, Channel, CloseReason, CustomerFile, Presence, Profile, Router, RoutingAsk, SeatSpec,
};
use switchboard::ids::{AgentId, ChatId, CustomerId, QueueId};

fn t0() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("a date")
}

/// One customer with one closed WhatsApp chat, inside its window; ana closed it.
struct File {
    file: CustomerFile,
    chat: ChatId,
    ana: AgentId,
}

impl File {
    fn new() -> Self {
        let ana = AgentId::from("ana");
        let policy = Channel::Whatsapp.default_policy();
        let mut file = CustomerFile::new(
            CustomerId::from("cu1"),
            Channel::Whatsapp,
            "+4915100000001".into(),
            Profile::default(),
        );
        let chat = ChatId::from("ch1");
        let id = chat.clone();
        file.receive(
            Channel::Whatsapp,
            "hello",
            RoutingAsk::default(),
            &policy,
            t0(),
            || id,
        );
        let routed = Accepted {
            queue: QueueId::from("whatsapp"),
            waited: chrono::Duration::zero(),
            to_accept: chrono::Duration::zero(),
            within_sla: None,
        };
        file.accept(&chat, &ana, &routed).expect("accepts");
        file.close(&chat, &ana, CloseReason::Agent, t0()).expect("closes");
        Self { file, chat, ana }
    }

    fn reopen(&mut self) {
        let policy = Channel::Whatsapp.default_policy();
        let events = self
            .file
            .reopen(&self.chat, &self.ana, &policy, t0())
            .expect("reopens");
        std::hint::black_box(events);
    }

    fn reply(&mut self) {
        let policy = Channel::Whatsapp.default_policy();
        let chat = self.chat.clone();
        let events = self.file.receive(
            Channel::Whatsapp,
            "yes please",
            RoutingAsk::default(),
            &policy,
            t0(),
            || chat,
        );
        std::hint::black_box(events);
    }

    fn close(&mut self) {
        let events = self
            .file
            .close(&self.chat, &self.ana, CloseReason::Agent, t0())
            .expect("closes");
        std::hint::black_box(events);
    }

    /// Keeps the history from growing across a long run, as eviction would.
    fn trim(&mut self) {
        if let Some(chat) = self.file.chats.last_mut() {
            chat.messages.truncate(1);
        }
    }
}

/// A router with one queue and 50 online agents, each with room.
struct Routing {
    router: Router,
    queue: QueueId,
    next: u64,
    pending: Option<Arrival>,
    offered: Option<(ChatId, AgentId)>,
}

impl Routing {
    fn new() -> Self {
        let mut router = Router::new(chrono::Duration::seconds(30));
        let queue = QueueId::from("whatsapp");
        router.add_queue(queue.clone());
        for i in 0..50 {
            let agent = AgentId::from(format!("agent-{i:02}"));
            let spec = SeatSpec {
                limit: 4,
                ..SeatSpec::default()
            };
            router.upsert_seat(&agent, spec, t0());
            router
                .set_presence(&agent, Presence::Online, t0())
                .expect("a seat");
        }
        router.take_changes();
        Self {
            router,
            queue,
            next: 0,
            pending: None,
            offered: None,
        }
    }

    /// Makes the next chat to route before the clock starts (its ids are strings).
    fn next_chat(&mut self) {
        self.next += 1;
        self.pending = Some(Arrival {
            chat: ChatId::from(format!("ch{}", self.next)),
            customer: CustomerId::from(format!("cu{}", self.next)),
            channel: Channel::Whatsapp,
            queue: self.queue.clone(),
            since: t0(),
        });
    }

    /// The chat enters the queue and is offered to the agent with the most room (R06).
    fn route(&mut self) {
        let arrival = self.pending.take().expect("a chat made by next_chat");
        let events = self.router.enqueue(arrival, &RoutingAsk::default(), None, t0());
        std::hint::black_box(events);
    }

    /// Which agent the last routed chat was offered to, for accepting it.
    fn note_offer(&mut self) {
        let chat = ChatId::from(format!("ch{}", self.next));
        let agent = self
            .router
            .offer(&chat)
            .map(|o| o.agent.clone())
            .expect("offered at once");
        self.offered = Some((chat, agent));
    }

    fn accept(&mut self) {
        let (chat, agent) = self.offered.as_ref().expect("an offer");
        let accepted = self.router.accept(chat, agent, t0()).expect("accepts");
        std::hint::black_box(accepted);
    }

    /// The chat is closed: its slot is free again, and the change log does not grow.
    fn release(&mut self) {
        if let Some((_, agent)) = self.offered.take() {
            self.router.load_down(&agent, Channel::Whatsapp, t0());
        }
        self.router.take_changes();
    }
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("rules");
    let mut file = File::new();
    group.bench_function("reopen", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                &mut file,
                |_| {},
                File::reopen,
                |f| {
                    f.reply();
                    f.close();
                    f.trim();
                },
            )
        })
    });
    group.bench_function("customer_reply", |b| {
        b.iter_custom(|iters| {
            timed(iters, &mut file, File::reopen, File::reply, |f| {
                f.close();
                f.trim();
            })
        })
    });
    group.bench_function("close", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                &mut file,
                |f| {
                    f.reopen();
                    f.reply();
                },
                File::close,
                File::trim,
            )
        })
    });
    let mut routing = Routing::new();
    group.bench_function("route_offer", |b| {
        b.iter_custom(|iters| {
            timed(iters, &mut routing, Routing::next_chat, Routing::route, |r| {
                r.note_offer();
                r.accept();
                r.release();
            })
        })
    });
    group.bench_function("accept", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                &mut routing,
                |r| {
                    r.next_chat();
                    r.route();
                    r.note_offer();
                },
                Routing::accept,
                Routing::release,
            )
        })
    });
    group.finish();
}

criterion_group! {
    name = rules;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(rules);
