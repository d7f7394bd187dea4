//! `routing`: new customers write over HTTP at a steady rate (open loop); the engine queues
//! each chat and offers it to an online agent below its limit (R06); the agent accepts at once
//! and closes after a think time, which frees its slot for the next offer.
//!
//! Measured: new chat sent → `chat_offered` (time to offer, which includes the time the chat
//! waited in the queue when every agent was full), and `accept` → its reply. The queue length
//! is sampled every second from the admin API.
//!
//! With `--skills N` and `--priorities` ([`Mix`]) the agents hold skills and the chats ask for
//! skills and queues, routed by the workflows and priorities of the spawned engine's queues
//! (R19, R20); without them the agents, the bodies and the configuration are as before.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{Common, RoutingArgs};
use crate::clock;
use crate::fleet::{self, Behaviour, ConnectPlan, Out};
use crate::http::{self, Ask, Job, Message, Pool, Stamps};
use crate::report::{self, Report, Window};
use crate::scenario::{run_prefix, Pacer};
use crate::stats::{Path, Stats};
use crate::supervisors::Watchers;
use crate::target::Target;
use crate::wire::{self, Incoming};
use crate::workspaces::Workspaces;

/// One agent: accepts every offer, closes each chat `think` later.
pub(crate) struct RoutingAgent {
    stamps: Stamps,
    stats: Arc<Stats>,
    think: Duration,
    accepts: HashMap<Box<str>, Instant>,
    closes: BinaryHeap<Reverse<(Instant, Box<str>)>>,
}

impl Behaviour for RoutingAgent {
    type Command = ();

    fn command(&mut self, _: (), _: &mut Out) {}

    fn frame(&mut self, _conn: usize, frame: Incoming<'_>, out: &mut Out) {
        match &*frame.kind {
            "push" => {
                let Some(event) = &frame.event else { return };
                if event.kind != "chat_offered" {
                    return;
                }
                let Some(chat) = &event.chat else { return };
                let n = chat
                    .customer
                    .as_ref()
                    .and_then(|c| c.name.as_deref())
                    .and_then(|name| name.strip_prefix('n'))
                    .and_then(|n| n.parse::<usize>().ok());
                if let Some(stamp) = n.and_then(|n| self.stamps.get(n)) {
                    let sent = stamp.load(Ordering::Acquire);
                    if sent != 0 {
                        self.stats
                            .record(Path::Offer, clock::since_stamp(sent).as_micros() as u64);
                    }
                }
                out.send(
                    0,
                    wire::request(format_args!("a:{}", chat.id), "accept", &chat.id),
                );
                self.accepts.insert((*chat.id).into(), clock::now());
            }
            "ok" | "error" => {
                let Some(id) = frame.id.as_deref() else { return };
                if let Some(chat) = id.strip_prefix("a:") {
                    if let Some(sent) = self.accepts.remove(chat) {
                        self.stats.record(Path::AcceptReply, clock::micros_since(sent));
                    }
                    if frame.kind == "ok" {
                        self.closes
                            .push(Reverse((clock::now() + self.think, chat.into())));
                    }
                } else if id.starts_with("c:") && frame.kind == "ok" {
                    Stats::bump(&self.stats.done);
                }
            }
            _ => {}
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.closes.peek().map(|Reverse((at, _))| *at)
    }

    fn timer(&mut self, out: &mut Out) {
        let now = clock::now();
        while let Some(Reverse((at, _))) = self.closes.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, chat))) = self.closes.pop() {
                out.send(0, wire::request(format_args!("c:{chat}"), "close", &chat));
            }
        }
    }
}

/// Seconds a chat waits at the first step (its own skill required) before the fallback step,
/// which drops it: long beside a time to offer of milliseconds, so a chat an agent with the
/// skill can take is not widened first, yet a queue cannot starve for want of one skill.
const STEP_SECS: u32 = 2;

/// Queues of `--priorities`, with their priorities: the first also takes the channel's chats.
const PRIORITY_QUEUES: [(&str, i32); 4] = [("lt-p0", 0), ("lt-p1", 10), ("lt-p2", 20), ("lt-p3", 30)];

/// Skills each agent holds (fewer if `--skills` names fewer).
const SKILLS_PER_AGENT: u32 = 3;

/// What the agents hold and the chats ask (`--skills`, `--priorities`), the same on every run:
/// each agent's skills and each chat's ask follow from their numbers alone.
pub(crate) struct Mix {
    skills: Option<u32>,
    priorities: bool,
    agents: u64,
}

/// SplitMix64's finalizer: a well-spread number from `x`, so that asks need no shared state.
fn spread(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Mix {
    /// The mix of `args`.
    pub(crate) fn of(args: &RoutingArgs) -> Self {
        Self {
            skills: args.skills,
            priorities: args.priorities,
            agents: args.agents,
        }
    }

    /// The skills of agent `i`: up to [`SKILLS_PER_AGENT`] distinct names at levels 1–5.
    fn agent_skills(&self, i: u64) -> BTreeMap<String, u8> {
        let Some(n) = self.skills else {
            return BTreeMap::new();
        };
        let mut skills = BTreeMap::new();
        let mut h = spread(i);
        for _ in 0..SKILLS_PER_AGENT.min(n) {
            // Distinct names: the next free one after a random pick.
            let mut skill = (h % u64::from(n)) as u32;
            while skills.contains_key(&format!("sk{skill}")) {
                skill = (skill + 1) % n;
            }
            h = spread(h);
            skills.insert(format!("sk{skill}"), 1 + (h % 5) as u8);
            h = spread(h);
        }
        skills
    }

    /// What new chat `n` asks: with skills, one skill of a random agent at a level that agent
    /// holds, so some agent can always take it; with priorities, one of the queues.
    fn ask(&self, n: u64) -> Ask {
        let h = spread(n ^ 0x5eed);
        let mut ask = Ask::default();
        if self.priorities {
            ask.queue = Some(
                PRIORITY_QUEUES[(h % PRIORITY_QUEUES.len() as u64) as usize]
                    .0
                    .to_owned(),
            );
        }
        if self.skills.is_some() {
            let held = self.agent_skills(h % self.agents.max(1));
            let pick = spread(h);
            if let Some((skill, level)) = held.iter().nth((pick % held.len().max(1) as u64) as usize) {
                ask.skills
                    .insert(skill.clone(), 1 + (spread(pick) % u64::from(*level)) as u8);
            }
        }
        ask
    }

    /// The queues a spawned engine needs (TOML, `src/config/routing.rs`); empty without flags.
    pub(crate) fn engine_config(&self) -> String {
        let queues: Vec<(&str, i32)> = match (self.priorities, self.skills) {
            (true, _) => PRIORITY_QUEUES.to_vec(),
            (false, Some(_)) => vec![(http::CHANNEL, 0)],
            (false, None) => return String::new(),
        };
        let mut toml = String::new();
        for (i, (id, priority)) in queues.into_iter().enumerate() {
            let channels = if i == 0 {
                format!("[\"{}\"]", http::CHANNEL)
            } else {
                "[]".to_owned()
            };
            let _ = writeln!(
                toml,
                "\n[[queues]]\nid = \"{id}\"\nchannels = {channels}\npriority = {priority}"
            );
            if self.priorities {
                let _ = writeln!(toml, "sla_secs = 5");
                let _ = writeln!(
                    toml,
                    "[queues.boost]\nevery_secs = 1\nby = 1\nmax = 10\nnear_due_secs = 2\nnear_due_by = 5"
                );
            }
            if self.skills.is_some() {
                let _ = writeln!(
                    toml,
                    "[[queues.steps]]\ntimeout_secs = {STEP_SECS}\n[[queues.steps]]\nkeep_chat_requirements = false"
                );
            }
        }
        toml
    }

    /// A line for the report's driver.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.skills {
            parts.push(format!(
                "{n} skills, {} per agent, one required per chat, fallback after {STEP_SECS} s",
                SKILLS_PER_AGENT.min(n)
            ));
        }
        if self.priorities {
            parts.push(format!(
                "{} queues of priority 0–30 with boosts",
                PRIORITY_QUEUES.len()
            ));
        }
        parts.join("; ")
    }
}

#[derive(serde::Deserialize)]
struct Queue {
    waiting: Vec<serde::de::IgnoredAny>,
}

/// Runs the routing scenario.
pub(crate) async fn run(target: &Target, common: &Common, args: &RoutingArgs) -> anyhow::Result<Report> {
    let stats = Arc::new(Stats::new());
    let workers = http::workers_for(64, common.http_workers);
    let client = http::client(workers)?;
    let agents = args.agents as usize;
    let mix = Arc::new(Mix::of(args));
    if !common.spawn && !mix.engine_config().is_empty() {
        // The queues' workflows and priorities live in the engine's configuration.
        eprintln!("routing: --url engine: its own queues apply; asked-for queues it lacks are made plain");
    }
    anyhow::ensure!(
        args.workspaces == 1 || mix.engine_config().is_empty(),
        "--skills and --priorities configure the queues of `default` only: run them with \
         --workspaces 1 (a workspace's own queues come with its settings, issue 18's increment 8)"
    );
    anyhow::ensure!(
        args.workspaces <= args.agents,
        "--workspaces {} needs at least as many --agents (got {agents})",
        args.workspaces
    );
    let workspaces = Workspaces::create(&client, &target.base, args.workspaces as usize).await?;
    let mut specs = http::agents(agents, args.limit);
    for (i, spec) in specs.iter_mut().enumerate() {
        spec.skills = mix.agent_skills(i as u64);
    }
    http::create_spread(&client, &target.base, &workspaces, &specs).await?;
    crate::cluster::settle(target, &workspaces, &specs).await?;
    let total_secs = common.warmup + common.duration;
    let max_chats = ((args.rate * total_secs) as u64 + 16).min(common.ops);
    let stamps: Stamps = Arc::new((0..max_chats).map(|_| AtomicU64::new(0)).collect());
    let plan = ConnectPlan {
        ws_bases: target.ws_bases(),
        dialect: target.dialect(),
        tokens: specs.iter().map(|s| s.token.clone()).collect(),
        workspaces: workspaces.clone(),
        conns_per_agent: 1,
        concurrency: common.connect_concurrency,
    };
    let bar = report::bar(agents as u64, "connecting");
    let think = Duration::from_millis(args.think_ms);
    let fleet = fleet::launch(plan, stats.clone(), &bar, |_| RoutingAgent {
        stamps: stamps.clone(),
        stats: stats.clone(),
        think,
        accepts: HashMap::new(),
        closes: BinaryHeap::new(),
    })
    .await;
    bar.finish_and_clear();
    anyhow::ensure!(
        fleet.connected == agents,
        "only {} of {agents} agents connected: {:?}",
        fleet.connected,
        stats.errors()
    );

    // Subscribed before the load starts, read until the end.
    let watchers = Watchers::start(
        &client,
        &target.base,
        &target.ws_base(),
        &workspaces,
        args.watch.supervisors as usize,
        common.connect_concurrency,
    )
    .await?;

    let capacity = agents as f64 * f64::from(args.limit) / think.as_secs_f64().max(1e-3);
    let mut driver = format!(
        "open loop: {:.0} new chats/s; capacity ≈ {capacity:.0} chats/s ({agents} agents × limit {} / {} ms think)",
        args.rate, args.limit, args.think_ms
    );
    let described = mix.describe();
    if !described.is_empty() {
        let _ = write!(driver, "; {described}");
    }
    if workspaces.len() > 1 {
        let _ = write!(
            driver,
            "; agents and new chats over {} workspaces",
            workspaces.len()
        );
    }
    eprintln!("routing: {driver}");
    let pool = Pool::start(
        client.clone(),
        &target.bases(),
        &workspaces,
        workers,
        stats.clone(),
    )?;
    let prefix: Arc<str> = run_prefix().into();
    let arrivals = {
        let (pool, stamps, rate, mix) = (pool.clone(), stamps.clone(), args.rate, mix.clone());
        tokio::spawn(async move {
            let mut pacer = Pacer::new(rate);
            let mut n = 0u64;
            while n < max_chats {
                for _ in 0..pacer.due().await {
                    if n >= max_chats {
                        break;
                    }
                    pool.submit(Job::new(Message::New {
                        n,
                        prefix: prefix.clone(),
                        stamps: stamps.clone(),
                        ask: mix.ask(n),
                    }));
                    n += 1;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs_f64(common.warmup)).await;
    let window = Window::open(target, &stats);
    let watched = watchers.mark();
    let bar = report::bar(common.duration.ceil() as u64, "routing (s)");
    let live = report::live(bar.clone(), stats.clone());
    let (mut max_waiting, mut last_waiting) = (0usize, 0usize);
    // Every workspace's queues, summed: one GET each per second.
    let queues_urls: Vec<String> = (0..workspaces.len())
        .map(|k| format!("{}{}/admin/queues", target.base, workspaces.api(k)))
        .collect();
    while window.elapsed().as_secs_f64() < common.duration && !arrivals.is_finished() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (mut waiting, mut read) = (0, false);
        for url in &queues_urls {
            if let Ok(response) = client.get(url).send().await {
                if let Ok(queues) = response.json::<Vec<Queue>>().await {
                    waiting += queues.iter().map(|q| q.waiting.len()).sum::<usize>();
                    read = true;
                }
            }
        }
        if read {
            last_waiting = waiting;
            max_waiting = max_waiting.max(last_waiting);
        }
    }
    let mut report = window.close("routing", target, &stats);
    let mut watching = watchers.figures(&watched);
    arrivals.abort();
    bar.finish_and_clear();
    let _ = live.await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    report = report.finish(&stats);
    watching.closed_early = watchers.figures(&watched).closed_early;
    report.errors.extend(watchers.errors());
    report.supervisors = Some(watching);
    report.driver = driver;
    report.agents = agents;
    report.unit = "chats closed";
    report.extra.insert("queue_waiting_max", max_waiting.into());
    report.extra.insert("queue_waiting_last", last_waiting.into());
    if workspaces.len() > 1 {
        report.extra.insert("workspaces", workspaces.len().into());
    }
    pool.close();
    watchers.shutdown().await;
    fleet.shutdown().await;
    Ok(report)
}
