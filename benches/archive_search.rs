//! Archive search (R16) over 1,000,000 archived chats of 500,000 customers and 50 agents:
//! "all", "mine", by state, by name prefix, phone prefix, whole email, full-text word, and a
//! third page by keyset cursor. The target is under 50 ms at p99, so besides criterion's means
//! every query is also run 1,000 times and its p50/p99/max printed.
//!
//! The database is built once (about a minute) and kept at
//! `$CARGO_TARGET_DIR/archive-1m.sqlite` (or `target/`); delete it to rebuild.
//! `cargo bench --bench archive_search`.

#![allow(clippy::disallowed_methods)] // a benchmark measures wall time

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeZone;
use criterion::{criterion_group, criterion_main, Criterion};

use switchboard::clock::Timestamp;
use switchboard::core::{Channel, ChatState, CloseReason, Profile, SnoozeUntil, Stage};
use switchboard::ids::{AgentId, ChatId, CustomerId};
use switchboard::store::{
    ArchiveQuery, Change, ChatRecord, CustomerRecord, Durability, Scope, Store, StoreOptions, WorkspaceStore,
    WsKey,
};

const CUSTOMERS: u64 = 500_000;
const ARCHIVED_CHATS: u64 = 1_000_000;
/// Live chats beside the archive, so a filter on a rare state has something to find.
const LIVE_CHATS: u64 = 5_000;
const AGENTS: u64 = 50;
const RUNS: usize = 1_000;

const FIRST: &[&str] = &[
    "Ana",
    "Anabela",
    "Anastasia",
    "Andre",
    "Bruno",
    "Beatriz",
    "Carla",
    "Carlos",
    "Daniel",
    "Diana",
    "Eduardo",
    "Elena",
    "Fatima",
    "Felipe",
    "Gabriel",
    "Giulia",
    "Hannah",
    "Hugo",
    "Ines",
    "Ivan",
    "Jana",
    "Jonas",
    "Julia",
    "Karim",
    "Katarina",
    "Lars",
    "Laura",
    "Leon",
    "Lucia",
    "Luis",
    "Maja",
    "Marco",
    "Maria",
    "Mateo",
    "Mia",
    "Mohamed",
    "Nadia",
    "Noah",
    "Olga",
    "Omar",
    "Paula",
    "Pedro",
    "Priya",
    "Rafael",
    "Rosa",
    "Sara",
    "Sofia",
    "Stefan",
    "Tomas",
    "Vera",
    "Yusuf",
    "Zoe",
];
const LAST: &[&str] = &[
    "Lima",
    "Silva",
    "Souza",
    "Santos",
    "Oliveira",
    "Pereira",
    "Costa",
    "Rodrigues",
    "Almeida",
    "Nunes",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Rossi",
    "Russo",
    "Ferrari",
    "Esposito",
    "Bianchi",
    "Garcia",
    "Martinez",
    "Lopez",
    "Gonzalez",
    "Sanchez",
    "Perez",
    "Martin",
    "Bernard",
    "Dubois",
    "Moreau",
    "Laurent",
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Wilson",
    "Evans",
    "Kowalski",
    "Nowak",
    "Novak",
    "Horvat",
    "Yilmaz",
    "Kaya",
    "Demir",
    "Khan",
    "Ali",
    "Hansen",
    "Johansson",
    "Nielsen",
    "Jansen",
    "De Vries",
    "Petrov",
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "web.de",
    "gmx.de",
    "mail.com",
    "icloud.com",
];
/// Country and mobile prefixes, so phone prefixes have realistic spreads.
const PHONE_PREFIXES: &[&str] = &[
    "+49 151", "+49 152", "+49 157", "+49 160", "+49 170", "+49 176", "+44 7700", "+44 7911", "+33 6",
    "+33 7", "+34 6", "+39 3", "+351 91", "+351 93", "+55 11 9", "+55 21 9", "+1 415", "+1 212", "+90 5",
    "+48 5",
];

/// A small deterministic generator (SplitMix64), so every build is the same data set.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn epoch() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date")
}

/// Customer `i`: the same on every build, so queries can name one.
fn customer(i: u64) -> CustomerRecord {
    let mut rng = Rng(i.wrapping_mul(7919) ^ 0xC0FFEE);
    let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
    let email = format!(
        "{}.{}{}@{}",
        first.to_lowercase(),
        last.to_lowercase().replace(' ', ""),
        i % 1000,
        rng.pick(DOMAINS)
    );
    let phone = format!("{} {:07}", rng.pick(PHONE_PREFIXES), rng.below(10_000_000));
    CustomerRecord {
        id: CustomerId::from(format!("cust-{i:06}")),
        profile: Profile {
            name: Some(format!("{first} {last}")),
            email: Some(email),
            phone: Some(phone.clone()),
        },
        identities: vec![(Channel::Whatsapp, phone)],
        opted_out: Vec::new(),
        pushed: Vec::new(),
        assigned_agent: Some(AgentId::from(format!("agent-{:02}", i % AGENTS))),
    }
}

fn chat(rng: &mut Rng, i: u64) -> ChatRecord {
    let live = i >= ARCHIVED_CHATS;
    // Two years of chats, one about every minute.
    let created_at = epoch() + chrono::Duration::seconds((i * 63) as i64 + rng.below(60) as i64);
    let state = if live {
        [
            ChatState::Active,
            ChatState::Reopened,
            ChatState::Snoozed,
            ChatState::Queued,
        ][rng.below(4) as usize]
    } else {
        ChatState::Closed
    };
    let last_message = created_at + chrono::Duration::seconds(rng.below(1800) as i64);
    let customer = CustomerId::from(format!("cust-{:06}", rng.below(CUSTOMERS)));
    let channel = [
        Channel::Whatsapp,
        Channel::Messenger,
        Channel::Webchat,
        Channel::Sms,
    ][rng.below(4) as usize];
    let mut owner = || AgentId::from(format!("agent-{:02}", rng.below(AGENTS)));
    let stage = match state {
        ChatState::Queued => Stage::Queued { since: created_at },
        ChatState::Reopened => Stage::Reopened {
            owner: owner(),
            since: created_at,
        },
        ChatState::Snoozed => Stage::Snoozed {
            owner: owner(),
            until: SnoozeUntil::Reply,
        },
        ChatState::Closed => Stage::Closed {
            at: last_message + chrono::Duration::seconds(600),
            why: CloseReason::Agent,
            owner: Some(owner()),
        },
        _ => Stage::Active { owner: owner() },
    };
    ChatRecord {
        id: ChatId::from(format!("chat-{i:07}")),
        customer,
        channel,
        stage,
        reopened_by: None,
        created_at,
        last_customer_message_at: Some(last_message),
        routing: Default::default(),
    }
}

fn database() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    target.join("archive-1m.sqlite")
}

/// Builds the data set at `path` unless a finished one is there (built under another name
/// and renamed when complete, so an interrupted build is never taken for a finished one).
fn build(path: &Path) {
    if path.exists() {
        return;
    }
    let building = path.with_extension("building");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", building.display()));
    }
    let started = Instant::now();
    let options = StoreOptions {
        durability: Durability::Normal,
        ..StoreOptions::default()
    };
    let store = Arc::new(Store::open(&building, options).expect("the bench database opens"))
        .workspace(WsKey::DEFAULT);
    let mut pending = Vec::new();
    let mut batch = Vec::with_capacity(4096);
    let send = |batch: &mut Vec<Change>, pending: &mut Vec<_>| {
        pending.push(store.submit(std::mem::take(batch)));
        // Keeps a few batches in flight without queueing the whole data set in memory.
        if pending.len() >= 8 {
            for receipt in pending.drain(..) {
                switchboard::store::Receipt::wait(receipt).expect("batch committed");
            }
        }
    };
    for i in 0..CUSTOMERS {
        batch.push(Change::UpsertCustomer(customer(i)));
        if batch.len() == 4096 {
            send(&mut batch, &mut pending);
        }
    }
    let mut rng = Rng(42);
    for i in 0..ARCHIVED_CHATS + LIVE_CHATS {
        batch.push(Change::UpsertChat(chat(&mut rng, i)));
        if batch.len() == 4096 {
            send(&mut batch, &mut pending);
        }
    }
    send(&mut batch, &mut pending);
    for receipt in pending {
        receipt.wait().expect("batch committed");
    }
    drop(store);
    std::fs::rename(&building, path).expect("the finished database is renamed");
    eprintln!("built {} in {:.1?}", path.display(), started.elapsed());
}

fn queries(store: &WorkspaceStore) -> Vec<(&'static str, ArchiveQuery)> {
    let base = ArchiveQuery {
        agent: AgentId::from("agent-07"),
        scope: Scope::All,
        state: None,
        text: None,
        before: None,
        limit: 50,
    };
    let text = |t: &str| ArchiveQuery {
        text: Some(t.into()),
        ..base.clone()
    };
    // The email of a customer that has chats: the one of the 10th newest.
    let email = store.search_archive(&base).expect("first page").rows[10]
        .profile
        .email
        .clone()
        .expect("every customer has an email");
    // The cursor of the second page, so the query is "page 3".
    let page_2 = store
        .search_archive(&base)
        .and_then(|p1| {
            store.search_archive(&ArchiveQuery {
                before: p1.next,
                ..base.clone()
            })
        })
        .expect("pages 1 and 2");
    vec![
        ("all, newest first", base.clone()),
        (
            "mine",
            ArchiveQuery {
                scope: Scope::Mine,
                ..base.clone()
            },
        ),
        (
            "state closed",
            ArchiveQuery {
                state: Some(ChatState::Closed),
                ..base.clone()
            },
        ),
        (
            "state reopened (rare)",
            ArchiveQuery {
                state: Some(ChatState::Reopened),
                ..base.clone()
            },
        ),
        (
            "mine + state active",
            ArchiveQuery {
                scope: Scope::Mine,
                state: Some(ChatState::Active),
                ..base.clone()
            },
        ),
        ("name prefix `ana`", text("ana")),
        ("name prefix `ana lim`", text("ana lim")),
        ("phone prefix `+4915`", text("+4915")),
        ("phone prefix `+49 151 1`", text("+49 151 1")),
        ("phone prefix `+49 151 12`", text("+49 151 12")),
        (
            "mine + `+49 151 1`",
            ArchiveQuery {
                scope: Scope::Mine,
                ..text("+49 151 1")
            },
        ),
        ("whole email", text(&email)),
        ("full-text word `souza`", text("souza")),
        (
            "mine + `souza`",
            ArchiveQuery {
                scope: Scope::Mine,
                ..text("souza")
            },
        ),
        (
            "page 3 (keyset cursor)",
            ArchiveQuery {
                before: page_2.next,
                ..base.clone()
            },
        ),
    ]
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(p * sorted.len()).div_ceil(100).max(1) - 1]
}

fn archive_search(c: &mut Criterion) {
    let path = database();
    build(&path);
    let store = Arc::new(Store::open(&path, StoreOptions::default()).expect("the bench database opens"))
        .workspace(WsKey::DEFAULT);
    let queries = queries(&store);

    println!(
        "\n{:<28} {:>6} {:>10} {:>10} {:>10}",
        "query", "rows", "p50", "p99", "max"
    );
    for (name, q) in &queries {
        let mut times = Vec::with_capacity(RUNS);
        let mut rows = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            rows = store.search_archive(q).expect("searches").rows.len();
            times.push(t.elapsed());
        }
        times.sort_unstable();
        println!(
            "{name:<28} {rows:>6} {:>10.2?} {:>10.2?} {:>10.2?}",
            percentile(&times, 50),
            percentile(&times, 99),
            times[times.len() - 1]
        );
    }

    let mut group = c.benchmark_group("archive_search");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(1));
    for (name, q) in &queries {
        group.bench_function(*name, |b| b.iter(|| store.search_archive(q).expect("searches")));
    }
    group.finish();
}

criterion_group!(benches, archive_search);
criterion_main!(benches);
