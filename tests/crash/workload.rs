//! The clients of one round: customers writing on their channels, agents working their desks,
//! an admin changing limits. Each runs until the engine dies under it (or the round is told to
//! stop), entering every operation in the ledger. Their state carries over to the next round.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::desk::{Desk, DeskError};
use super::ledger::{Entry, Kind, Ledger};

/// A small deterministic generator (SplitMix64): the seed printed by the test replays the
/// choices (not the timing).
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub(crate) fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    pub(crate) fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// How long a client's request may stay unanswered after the round stopped before the client
/// gives it up (it stays unanswered in the ledger). A killed engine breaks its connections at
/// once; a stopped one (SIGSTOP, the cluster's chaos test) holds them open, and so does a node
/// relaying to it.
const ABANDON_AFTER: Duration = Duration::from_secs(2);

/// What every client of a round shares.
pub(crate) struct Round {
    pub(crate) number: usize,
    /// The engines the clients talk to: client `i` of each kind uses `nodes[i % len]` (one for
    /// the crash test; a cluster's nodes for the chaos test, which spreads a workspace's
    /// clients over them).
    pub(crate) nodes: Vec<SocketAddr>,
    /// Where the workspace's API is: `/v1` for `default`, `/v1/w/{id}` for another.
    pub(crate) api: String,
    pub(crate) ledger: Ledger,
    /// Set once the engine is killed: the clients stop.
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) http: reqwest::Client,
}

impl Round {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// The engine client `i` talks to.
    pub(crate) fn node(&self, i: usize) -> SocketAddr {
        self.nodes[i % self.nodes.len()]
    }

    /// Runs `work` to its end, or until [`ABANDON_AFTER`] after the round stopped: a request
    /// still unanswered then stays in flight in the ledger (it may or may not have happened).
    async fn until_abandoned<F: std::future::Future>(&self, work: F) -> Option<F::Output> {
        let mut stop = self.stop.subscribe();
        let abandon = async {
            let _ = stop.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(ABANDON_AFTER).await;
        };
        tokio::select! {
            done = work => Some(done),
            () = abandon => None,
        }
    }

    /// Waits `pause`, or less if the round stops meanwhile.
    async fn pause(&self, pause: Duration) {
        let mut stop = self.stop.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
    }
}

// ----- customers ----------------------------------------------------------------------------

/// `#STOP` as customers type it (R08: any case, surrounding spaces ignored).
const STOPS: [&str; 4] = ["#STOP", "#stop", " #Stop ", "  #STOP"];

/// A customer on one channel; `label` is its name in the engine too, and starts every text.
pub(crate) struct Customer {
    pub(crate) label: String,
    pub(crate) channel: &'static str,
    address: String,
    /// Which of the round's engines it writes to.
    node: usize,
    /// Milliseconds between messages.
    pace: (u64, u64),
    written: u64,
    last_was_stop: bool,
    rng: Rng,
}

impl Customer {
    pub(crate) fn new(
        label: String,
        channel: &'static str,
        address: &str,
        pace: (u64, u64),
        rng: Rng,
    ) -> Self {
        Self {
            label,
            channel,
            address: address.to_owned(),
            node: 0,
            pace,
            written: 0,
            last_was_stop: false,
            rng,
        }
    }

    /// Writes to the round's engine `node` (see [`Round::node`]).
    #[allow(dead_code)] // The cluster's chaos test spreads clients; the crash test has one engine.
    pub(crate) fn on_node(mut self, node: usize) -> Self {
        self.node = node;
        self
    }
}

/// Writes until the engine is gone: texts, now and then a `#STOP` (and then writes again).
pub(crate) async fn customer(round: Arc<Round>, mut c: Customer) -> Customer {
    round.until_abandoned(write(&round, &mut c)).await;
    c
}

async fn write(round: &Round, c: &mut Customer) {
    let url = format!(
        "http://{}{}/channels/{}/messages",
        round.node(c.node),
        round.api,
        c.channel
    );
    while !round.stopped() {
        // Pacing: how fast this customer types. Not a wait for anything.
        round.pause(ms(c.rng.between(c.pace.0, c.pace.1))).await;
        if round.stopped() {
            break;
        }
        let stop = !c.last_was_stop && c.rng.percent(8);
        c.last_was_stop = stop;
        let sends: Vec<(Kind, String)> = if stop {
            vec![(Kind::Stop, STOPS[c.rng.below(STOPS.len())].to_owned())]
        } else {
            // Now and then several messages at the same instant (R01 must hold then too).
            let burst = if c.rng.percent(10) { 3 } else { 1 };
            (0..burst)
                .map(|_| {
                    c.written += 1;
                    let text = format!("{}-m{}", c.label, c.written);
                    (Kind::CustomerText { text: text.clone() }, text)
                })
                .collect()
        };
        let posts = sends
            .into_iter()
            .map(|(kind, text)| post(round, &url, c, kind, text));
        if join_all(posts).await.contains(&Posted::EngineGone) {
            break;
        }
    }
}

#[derive(PartialEq, Eq)]
enum Posted {
    Answered,
    EngineGone,
}

/// One customer message, entered in the ledger with what the engine answered.
async fn post(round: &Round, url: &str, c: &Customer, kind: Kind, text: String) -> Posted {
    let entry = round.ledger.begin(round.number, &c.label, kind, None);
    let body = json!({ "from": c.address, "text": text, "name": c.label });
    match round.http.post(url).json(&body).send().await {
        Err(e) if e.is_connect() => {
            round.ledger.reject(entry, "not sent: no connection");
            Posted::EngineGone
        }
        // In flight when the engine died: it may or may not have been applied.
        Err(_) => Posted::EngineGone,
        Ok(response) => {
            let status = response.status();
            let Ok(receipt) = response.json::<Value>().await else {
                return Posted::EngineGone;
            };
            if status == StatusCode::OK {
                let chat = receipt["chat_id"].as_str().map(str::to_owned);
                round.ledger.ack(entry, chat);
            } else if status == StatusCode::SERVICE_UNAVAILABLE {
                round.ledger.unsure(entry);
            } else {
                round.ledger.reject(entry, &format!("{status}: {receipt}"));
            }
            Posted::Answered
        }
    }
}

// ----- agents -------------------------------------------------------------------------------

/// An agent working its desk: accepts every offer, writes in its chats, closes them, reopens
/// chats it closed before.
pub(crate) struct Agent {
    pub(crate) id: String,
    /// Which of the round's engines its desk connects to.
    node: usize,
    /// Chats it saw closed, newest last: candidates for a reopen.
    closed: VecDeque<String>,
    /// A chat it just closed and means to reopen at once (before the customer writes again).
    reopen_next: Option<String>,
    written: u64,
    rng: Rng,
}

impl Agent {
    pub(crate) fn new(id: &str, rng: Rng) -> Self {
        Self {
            id: id.to_owned(),
            node: 0,
            closed: VecDeque::new(),
            reopen_next: None,
            written: 0,
            rng,
        }
    }

    /// Connects to the round's engine `node` (see [`Round::node`]).
    #[allow(dead_code)] // The cluster's chaos test spreads clients; the crash test has one engine.
    pub(crate) fn on_node(mut self, node: usize) -> Self {
        self.node = node;
        self
    }

    fn remember_closed(&mut self, chat: &str) {
        self.closed.retain(|c| c != chat);
        self.closed.push_back(chat.to_owned());
        if self.closed.len() > 16 {
            self.closed.pop_front();
        }
    }
}

/// What the agent's screen shows: its live chats and its pending offers.
#[derive(Default)]
struct Screen {
    owned: BTreeMap<String, String>,
    offers: VecDeque<String>,
}

impl Screen {
    fn apply(&mut self, agent: &mut Agent, event: &Value) {
        let chat = event["chat"]["id"]
            .as_str()
            .or_else(|| event["chat_id"].as_str())
            .unwrap_or_default()
            .to_owned();
        match event["kind"].as_str().unwrap_or_default() {
            "chat_offered" if !self.offers.contains(&chat) => self.offers.push_back(chat),
            "offer_withdrawn" => self.offers.retain(|c| *c != chat),
            "chat_activated" => {
                self.offers.retain(|c| *c != chat);
                self.owned.insert(chat, "active".into());
            }
            "chat_reopened" => {
                self.owned.insert(chat, "reopened".into());
            }
            "chat_closed" => {
                self.owned.remove(&chat);
                agent.remember_closed(&chat);
            }
            "chat_transferred" => {
                self.owned.remove(&chat);
            }
            _ => {}
        }
    }
}

/// Works until the engine is gone; an engine that misbehaves while alive is an error.
pub(crate) async fn agent(round: Arc<Round>, mut a: Agent) -> Result<Agent, String> {
    match round.until_abandoned(work(&round, &mut a)).await {
        None | Some(Ok(()) | Err(DeskError::Gone(_))) => Ok(a),
        Some(Err(DeskError::Broken(why))) => Err(format!("round {}: agent {}: {why}", round.number, a.id)),
    }
}

async fn work(round: &Round, a: &mut Agent) -> Result<(), DeskError> {
    let mut desk = Desk::connect(round.node(a.node), &round.api, &a.id).await?;
    let mut screen = Screen::default();
    if desk.welcome()["presence"] != "online" {
        desk.request(json!({ "type": "set_presence", "presence": "online" }))
            .await?;
    }
    // A restarted engine numbers pushes afresh: start from a snapshot, then apply the pushes
    // above its seq.
    let (reply, pushes) = desk.request(json!({ "type": "snapshot" })).await?;
    let snapshot = &reply["result"];
    let seq = snapshot["seq"].as_u64().unwrap_or(0);
    for chat in snapshot["chats"].as_array().into_iter().flatten() {
        let (id, state) = (chat["id"].as_str(), chat["state"].as_str());
        if let (Some(id), Some(state)) = (id, state) {
            screen.owned.insert(id.to_owned(), state.to_owned());
        }
    }
    for offer in snapshot["offers"].as_array().into_iter().flatten() {
        if let Some(id) = offer["chat"]["id"].as_str() {
            screen.offers.push_back(id.to_owned());
        }
    }
    for push in pushes.iter().filter(|p| p["seq"].as_u64() > Some(seq)) {
        screen.apply(a, &push["event"]);
    }

    while !round.stopped() {
        // Pacing: read pushes for a few tens of milliseconds between actions, which also keeps
        // the connection under the engine's 50 frames a second. Not a wait for anything.
        let pause = tokio::time::sleep(ms(a.rng.between(25, 60)));
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                frame = desk.read() => {
                    let frame = frame?;
                    if frame["type"] != "push" {
                        return Err(DeskError::Broken(format!("{}: a frame out of turn: {frame}", a.id)));
                    }
                    screen.apply(a, &frame["event"]);
                }
            }
        }
        if round.stopped() {
            break;
        }
        act(round, a, &mut desk, &mut screen).await?;
        if a.reopen_next.is_some() {
            // Straight after the close, before the customer writes again (which would revive
            // the chat and make the reopen `active_elsewhere`).
            act(round, a, &mut desk, &mut screen).await?;
        }
    }
    Ok(())
}

/// One action: reopen the chat just closed if meant to, else accept the oldest offer if there
/// is one, else write, close or reopen.
async fn act(round: &Round, a: &mut Agent, desk: &mut Desk, screen: &mut Screen) -> Result<(), DeskError> {
    let owned: Vec<String> = screen.owned.keys().cloned().collect();
    let roll = a.rng.below(100);
    let (kind, chat, request) = if let Some(chat) = a.reopen_next.take() {
        let request = json!({ "type": "reopen", "chat_id": chat });
        (Kind::Reopen, chat, request)
    } else if let Some(chat) = screen.offers.pop_front() {
        let request = json!({ "type": "accept", "chat_id": chat });
        (Kind::Accept, chat, request)
    } else if !owned.is_empty() && roll < 55 {
        let chat = owned[a.rng.below(owned.len())].clone();
        a.written += 1;
        let text = format!("{}-t{}", a.id, a.written);
        let request = json!({ "type": "send_message", "chat_id": chat, "text": text });
        (Kind::AgentText { text }, chat, request)
    } else if !owned.is_empty() && roll < 80 {
        let chat = owned[a.rng.below(owned.len())].clone();
        let request = json!({ "type": "close", "chat_id": chat });
        (Kind::Close, chat, request)
    } else if (roll >= 80 || owned.is_empty() && roll >= 40) && !a.closed.is_empty() {
        let i = a.rng.below(a.closed.len());
        let chat = a.closed.remove(i).expect("an index below the length");
        let request = json!({ "type": "reopen", "chat_id": chat });
        (Kind::Reopen, chat, request)
    } else {
        return Ok(());
    };
    let entry = round.ledger.begin(round.number, &a.id, kind.clone(), Some(&chat));
    // A failed request leaves the entry in flight: the engine died before answering.
    let (reply, pushes) = desk.request(request).await?;
    for push in &pushes {
        screen.apply(a, &push["event"]);
    }
    if reply["type"] == "ok" {
        round.ledger.ack(entry, None);
        match kind {
            Kind::Accept => {
                screen.owned.insert(chat, "active".into());
            }
            Kind::Close => {
                screen.owned.remove(&chat);
                a.remember_closed(&chat);
                if a.rng.percent(40) {
                    a.reopen_next = Some(chat);
                }
            }
            Kind::Reopen => {
                screen.owned.insert(chat, "reopened".into());
            }
            _ => {}
        }
    } else {
        settle_error(round, entry, &reply);
        if matches!(kind, Kind::AgentText { .. } | Kind::Close) {
            screen.owned.remove(&chat);
        }
    }
    Ok(())
}

fn settle_error(round: &Round, entry: Entry, reply: &Value) {
    let code = reply["code"].as_str().unwrap_or("?");
    if code == "storage_unavailable" {
        round.ledger.unsure(entry);
    } else {
        round.ledger.reject(entry, code);
    }
}

// ----- the admin ----------------------------------------------------------------------------

/// The agents whose limit the admin changes, and the limit they have without a change.
pub(crate) const LIMITED: [&str; 2] = ["ana", "ben"];

/// The admin: changes ana's and ben's limits now and then, through one of the round's engines.
pub(crate) struct Admin {
    /// Which of the round's engines it calls.
    node: usize,
    rng: Rng,
}

impl Admin {
    pub(crate) fn new(rng: Rng) -> Self {
        Self { node: 0, rng }
    }

    /// Calls the round's engine `node` (see [`Round::node`]).
    #[allow(dead_code)] // The cluster's chaos test spreads its admins; the crash test has one engine.
    pub(crate) fn on_node(mut self, node: usize) -> Self {
        self.node = node;
        self
    }
}

/// Changes ana's and ben's limits now and then (R06: live; persisted, issue 5).
pub(crate) async fn admin(round: Arc<Round>, mut a: Admin) -> Admin {
    round.until_abandoned(change_limits(&round, &mut a)).await;
    a
}

async fn change_limits(round: &Round, a: &mut Admin) {
    let rng = &mut a.rng;
    while !round.stopped() {
        // Pacing: an occasional change. Not a wait for anything.
        round.pause(ms(rng.between(120, 300))).await;
        if round.stopped() {
            break;
        }
        let agent = LIMITED[rng.below(LIMITED.len())];
        let limit = rng.between(1, 4) as u32;
        let kind = Kind::SetLimit {
            agent: agent.to_owned(),
            limit,
        };
        let entry = round.ledger.begin(round.number, "admin", kind, None);
        let url = format!(
            "http://{}{}/admin/agents/{agent}/limit",
            round.node(a.node),
            round.api
        );
        match round.http.put(&url).json(&json!({ "limit": limit })).send().await {
            Err(e) if e.is_connect() => {
                round.ledger.reject(entry, "not sent: no connection");
                break;
            }
            Err(_) => break,
            Ok(response) => match response.status() {
                StatusCode::NO_CONTENT => round.ledger.ack(entry, None),
                StatusCode::SERVICE_UNAVAILABLE => round.ledger.unsure(entry),
                status => {
                    let body = response.text().await.unwrap_or_default();
                    round.ledger.reject(entry, &format!("{status}: {body}"));
                }
            },
        }
    }
}
