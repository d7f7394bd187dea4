//! What must hold after a restart, given the ledger: nothing acknowledged is lost, nothing is
//! there twice, nothing is there that the engine refused, and R01 / R08 hold.
//!
//! Runs while no client works (the engine only restored itself), reading as `sam`, a
//! supervisor, who may read every chat (`get_chat`) and list everyone's archive.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;

use serde_json::{json, Value};

use super::desk::{Desk, REPLY_WAIT};
use super::ledger::{Kind, Ledger, Op};

const LIVE: [&str; 5] = ["bot", "queued", "active", "reopened", "snoozed"];

/// A chat as the engine shows it after the restart.
struct ChatRead {
    id: String,
    customer: String,
    label: String,
    channel: String,
    state: String,
    owner: Option<String>,
    messages: Vec<Value>,
}

/// What a verification looked at.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    pub(crate) chats: usize,
    pub(crate) live: usize,
    pub(crate) messages: usize,
    pub(crate) states_checked: usize,
    pub(crate) opt_outs_checked: usize,
    pub(crate) acked: usize,
    pub(crate) maybe: usize,
    /// The text of every message in a history, for the outbox's checks (`crash.rs`).
    pub(crate) texts: BTreeSet<String>,
}

/// Checks the restarted engine at `addr` against the ledger, in the workspace whose API is at
/// `api` (`/v1`, `/v1/w/{id}`); every violation found, or what was checked. `customers`: each customer's label and channel; `limits`: the agents whose
/// limit the admin changes, with the limit they start with.
pub(crate) async fn verify(
    addr: SocketAddr,
    api: &str,
    http: &reqwest::Client,
    ledger: &Ledger,
    customers: &BTreeMap<String, &'static str>,
    limits: &[(&str, u64)],
) -> Result<Checked, Vec<String>> {
    let mut f: Vec<String> = Vec::new();
    let ops = ledger.ops();
    let mut checked = Checked {
        acked: ops.iter().filter(|o| o.is_acked()).count(),
        maybe: ops.iter().filter(|o| o.is_maybe()).count(),
        ..Checked::default()
    };

    // The admin API first, before any agent connects and takes offers.
    let agents = get_json(http, &format!("http://{addr}{api}/admin/agents"))
        .await
        .map_err(one)?;
    let queues = get_json(http, &format!("http://{addr}{api}/admin/queues"))
        .await
        .map_err(one)?;

    let mut sam = Desk::connect(addr, api, "sam")
        .await
        .map_err(|e| one(e.to_string()))?;

    // Every chat: the archive's list, and every chat the clients ever heard of.
    let entries = list_archive(&mut sam).await.map_err(one)?;
    let mut listed = BTreeSet::new();
    for entry in &entries {
        let id = entry["chat_id"].as_str().unwrap_or_default().to_owned();
        if !listed.insert(id.clone()) {
            f.push(format!("list_archive lists chat {id} twice"));
        }
    }
    let mut required: BTreeMap<String, &Op> = BTreeMap::new();
    let mut ids = listed.clone();
    for op in &ops {
        if let Some(chat) = &op.chat {
            ids.insert(chat.clone());
            if op.is_acked() {
                required.entry(chat.clone()).or_insert(op);
            }
        }
    }
    let mut chats: BTreeMap<String, ChatRead> = BTreeMap::new();
    for id in &ids {
        match read_chat(&mut sam, id, &mut f).await.map_err(one)? {
            Some(chat) => {
                chats.insert(id.clone(), chat);
            }
            None => {
                if let Some(op) = required.get(id) {
                    f.push(format!("LOST: chat {id} is not found, after {}", describe(op)));
                } else if listed.contains(id) {
                    f.push(format!(
                        "list_archive lists chat {id}, but get_chat does not find it"
                    ));
                }
            }
        }
    }
    checked.chats = chats.len();
    checked.messages = chats.values().map(|c| c.messages.len()).sum();
    checked.texts = chats
        .values()
        .flat_map(|c| &c.messages)
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect();

    // R01, and no customer twice.
    let mut live_of: BTreeMap<&str, Vec<&ChatRead>> = BTreeMap::new();
    let mut ids_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for chat in chats.values() {
        match customers.get(&chat.label) {
            None => f.push(format!(
                "chat {} belongs to an unknown customer {:?}",
                chat.id, chat.label
            )),
            Some(channel) if *channel != chat.channel => f.push(format!(
                "chat {} of {} is on {}, the customer writes on {channel}",
                chat.id, chat.label, chat.channel
            )),
            Some(_) => {}
        }
        ids_of.entry(&chat.label).or_default().insert(&chat.customer);
        if LIVE.contains(&chat.state.as_str()) {
            checked.live += 1;
            live_of.entry(&chat.customer).or_default().push(chat);
        }
    }
    for (customer, live) in &live_of {
        if live.len() > 1 {
            let list: Vec<String> = live.iter().map(|c| format!("{} ({})", c.id, c.state)).collect();
            f.push(format!(
                "R01: customer {customer} ({}) has {} live chats: {}",
                live[0].label,
                live.len(),
                list.join(", ")
            ));
        }
    }
    for (label, ids) in &ids_of {
        if ids.len() > 1 {
            f.push(format!("customer {label} exists {} times: {ids:?}", ids.len()));
        }
    }

    check_messages(&chats, &ops, &mut f);
    checked.states_checked = check_states(&chats, &ops, &mut f);
    checked.opt_outs_checked = check_opt_outs(&mut sam, &chats, &ops, customers, &mut f)
        .await
        .map_err(one)?;
    check_limits(&agents, &ops, limits, &mut f);
    check_loads_and_queues(&agents, &queues, &chats, &mut f);

    if f.is_empty() {
        Ok(checked)
    } else {
        Err(f)
    }
}

fn one(failure: String) -> Vec<String> {
    vec![failure]
}

fn describe(op: &Op) -> String {
    let outcome = match &op.outcome {
        super::ledger::Outcome::Acked => "acknowledged".to_owned(),
        super::ledger::Outcome::Maybe => "unanswered".to_owned(),
        super::ledger::Outcome::Rejected(why) => format!("refused ({why})"),
    };
    format!(
        "{outcome} {:?} by {} on chat {} in round {} (ticks {}..{})",
        op.kind,
        op.actor,
        op.chat.as_deref().unwrap_or("-"),
        op.round,
        op.sent,
        op.done()
    )
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = tokio::time::timeout(REPLY_WAIT, http.get(url).send())
        .await
        .map_err(|_| format!("GET {url} timed out"))?
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| format!("GET {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("GET {url}: {status} {body}"));
    }
    Ok(body)
}

/// Every archive entry, following `next` pages where the engine pages.
async fn list_archive(sam: &mut Desk) -> Result<Vec<Value>, String> {
    let mut entries = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..100 {
        let mut request = json!({ "type": "list_archive", "scope": "all", "limit": 200 });
        if let Some(before) = &before {
            request["before"] = json!(before);
        }
        let reply = sam.query(request).await.map_err(|e| e.to_string())?;
        if reply["type"] != "ok" {
            return Err(format!("list_archive: {reply}"));
        }
        entries.extend(
            reply["result"]["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .cloned(),
        );
        match reply["result"]["next"].as_str() {
            Some(next) => before = Some(next.to_owned()),
            None => return Ok(entries),
        }
    }
    Err("list_archive: more than 100 pages".into())
}

/// One chat with its whole history (following `next_before_seq` pages where the engine pages),
/// oldest first; `None` if the engine does not know it.
async fn read_chat(sam: &mut Desk, id: &str, f: &mut Vec<String>) -> Result<Option<ChatRead>, String> {
    let mut pages: Vec<Vec<Value>> = Vec::new();
    let mut before: Option<u64> = None;
    let mut view = Value::Null;
    for _ in 0..100 {
        let mut request = json!({ "type": "get_chat", "chat_id": id, "limit": 500 });
        if let Some(before) = before {
            request["before_seq"] = json!(before);
        }
        let reply = sam.query(request).await.map_err(|e| e.to_string())?;
        if reply["type"] != "ok" {
            if reply["code"] == "not_found" && pages.is_empty() {
                return Ok(None);
            }
            return Err(format!("get_chat {id}: {reply}"));
        }
        let result = &reply["result"];
        if view.is_null() {
            view = result["chat"].clone();
        }
        pages.push(result["messages"].as_array().cloned().unwrap_or_default());
        match result["next_before_seq"].as_u64() {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    // Newest page first: older pages go in front.
    let messages: Vec<Value> = pages.into_iter().rev().flatten().collect();
    if messages.iter().all(|m| m["seq"].is_u64()) {
        let seqs: Vec<u64> = messages.iter().filter_map(|m| m["seq"].as_u64()).collect();
        if seqs.iter().enumerate().any(|(i, s)| *s != i as u64) {
            f.push(format!(
                "the history of chat {id} is not numbered 0, 1, 2, …: {seqs:?}"
            ));
        }
    }
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    Ok(Some(ChatRead {
        id: id.to_owned(),
        customer: text(&view["customer"]["id"]),
        label: text(&view["customer"]["name"]),
        channel: text(&view["channel"]),
        state: text(&view["state"]),
        owner: view["owner"].as_str().map(str::to_owned),
        messages,
    }))
}

/// Every acknowledged message exactly once, in its chat, by its author, in the order the
/// acknowledgements imply; unanswered ones at most once; refused ones and unknown ones never.
fn check_messages(chats: &BTreeMap<String, ChatRead>, ops: &[Op], f: &mut Vec<String>) {
    struct Seen<'a> {
        chat: &'a ChatRead,
        pos: usize,
        by: &'a str,
        agent: Option<&'a str>,
    }
    let mut seen: BTreeMap<&str, Vec<Seen>> = BTreeMap::new();
    let mut stops: BTreeMap<&str, usize> = BTreeMap::new();
    for chat in chats.values() {
        for (pos, m) in chat.messages.iter().enumerate() {
            let by = m["author"]["by"].as_str().unwrap_or_default();
            let text = m["text"].as_str().unwrap_or_default();
            match by {
                "system" => {}
                // Stored as typed since the outbox commit (R26 keywords), so any case.
                "customer" if text.trim().eq_ignore_ascii_case("#STOP") => {
                    *stops.entry(&chat.id).or_default() += 1
                }
                _ => seen.entry(text).or_default().push(Seen {
                    chat,
                    pos,
                    by,
                    agent: m["author"]["agent"].as_str(),
                }),
            }
        }
    }
    let mut by_text: BTreeMap<&str, &Op> = BTreeMap::new();
    for op in ops {
        if let Kind::CustomerText { text } | Kind::AgentText { text } = &op.kind {
            by_text.insert(text, op);
        }
    }
    let mut in_chat: BTreeMap<&str, Vec<(usize, &Op)>> = BTreeMap::new();
    for (text, places) in &seen {
        let where_ = places
            .iter()
            .map(|s| format!("{}#{}", s.chat.id, s.pos))
            .collect::<Vec<_>>()
            .join(", ");
        let Some(op) = by_text.get(text) else {
            f.push(format!("a message nobody sent, {text:?}, is in {where_}"));
            continue;
        };
        if places.len() > 1 {
            f.push(format!(
                "DUPLICATED: {text:?} is there {} times ({where_}); {}",
                places.len(),
                describe(op)
            ));
        }
        if op.is_rejected() {
            f.push(format!(
                "{text:?} is in {where_}, but the engine {}",
                describe(op)
            ));
        }
        for place in places {
            let author_ok = match &op.kind {
                Kind::CustomerText { .. } => place.by == "customer",
                _ => place.by == "agent" && place.agent == Some(op.actor.as_str()),
            };
            if !author_ok {
                f.push(format!(
                    "{text:?} in {where_} has the wrong author ({} {:?})",
                    place.by, place.agent
                ));
            }
            let chat_ok = match (&op.kind, &op.chat) {
                (_, Some(chat)) => place.chat.id == *chat,
                // An unanswered customer message: in one of that customer's chats.
                (_, None) => place.chat.label == op.actor,
            };
            if !chat_ok {
                f.push(format!(
                    "{text:?} is in {where_}, not in the chat of {}",
                    describe(op)
                ));
            }
            in_chat.entry(&place.chat.id).or_default().push((place.pos, op));
        }
    }
    for op in ops.iter().filter(|o| o.is_acked()) {
        if let Kind::CustomerText { text } | Kind::AgentText { text } = &op.kind {
            if !seen.contains_key(text.as_str()) {
                f.push(format!("LOST: {text:?} is in no history, after {}", describe(op)));
            }
        }
    }
    // Order: a message acknowledged before another was sent comes before it.
    for (chat, mut placed) in in_chat {
        placed.sort_by_key(|(pos, _)| *pos);
        for (i, (pos_a, a)) in placed.iter().enumerate() {
            for (pos_b, b) in &placed[i + 1..] {
                if b.acked_before(a) {
                    f.push(format!(
                        "ORDER: in chat {chat}, #{pos_a} {:?} comes before #{pos_b} {:?}, which was \
                         acknowledged before the first was sent",
                        a.kind, b.kind
                    ));
                }
            }
        }
    }
    // #STOPs all read alike: between the acknowledged ones and those plus the unanswered ones.
    for chat in chats.values() {
        let count = stops.get(chat.id.as_str()).copied().unwrap_or(0);
        let stop_ops = ops
            .iter()
            .filter(|o| o.kind == Kind::Stop && o.actor == chat.label);
        let acked = stop_ops
            .clone()
            .filter(|o| o.is_acked() && o.chat.as_deref() == Some(&chat.id))
            .count();
        let maybe = stop_ops.filter(|o| o.is_maybe()).count();
        if count < acked || count > acked + maybe {
            f.push(format!(
                "chat {} ({}) has {count} #STOP messages; {acked} were acknowledged in it and {maybe} \
                 more of the customer's were unanswered",
                chat.id, chat.label
            ));
        }
    }
}

/// The states an operation can leave a chat in, if it is the last one applied to it.
fn effect(op: &Op, channel: &str) -> Vec<(&'static str, Option<String>)> {
    match &op.kind {
        Kind::Accept => vec![("active", Some(op.actor.clone()))],
        Kind::Close | Kind::Stop => vec![("closed", None)],
        Kind::Reopen => {
            let mut states = vec![("reopened", Some(op.actor.clone()))];
            if channel == "line" {
                // `line` is configured with a 1 s revive window: a reopened chat there closes
                // (reason `timeout`) a second after the reopen if the customer does not answer.
                states.push(("closed", None));
            }
            states
        }
        // Joins the live chat (an answer to a reopen makes it active), or revives or starts one
        // in the queue.
        Kind::CustomerText { .. } => vec![("queued", None), ("active", None)],
        Kind::AgentText { .. } | Kind::SetLimit { .. } => Vec::new(),
    }
}

/// Every chat's state and owner are what its last applied operation left. The operations that
/// may have been applied last are those that no acknowledged operation certainly followed;
/// unanswered operations after them may not have been applied at all. Returns how many chats
/// were constrained.
fn check_states(chats: &BTreeMap<String, ChatRead>, ops: &[Op], f: &mut Vec<String>) -> usize {
    let mut constrained = 0;
    for chat in chats.values() {
        let relevant: Vec<&Op> = ops
            .iter()
            .filter(|o| !o.is_rejected())
            .filter(|o| match &o.kind {
                Kind::Accept | Kind::Close | Kind::Reopen => o.chat.as_deref() == Some(&chat.id),
                Kind::CustomerText { .. } | Kind::Stop => {
                    o.actor == chat.label
                        && (o.chat.as_deref() == Some(&chat.id) || (o.is_maybe() && o.chat.is_none()))
                }
                Kind::AgentText { .. } | Kind::SetLimit { .. } => false,
            })
            .collect();
        if !relevant.iter().any(|o| o.is_acked()) {
            continue;
        }
        let last: Vec<&Op> = relevant
            .iter()
            .copied()
            .filter(|x| !relevant.iter().any(|y| x.followed_by(y)))
            .collect();
        let allowed: Vec<(&str, Option<String>)> =
            last.iter().flat_map(|op| effect(op, &chat.channel)).collect();
        constrained += 1;
        let ok = allowed.iter().any(|(state, owner)| {
            *state == chat.state && owner.as_ref().is_none_or(|o| Some(o) == chat.owner.as_ref())
        });
        if !ok {
            let mut why = String::new();
            for op in &last {
                let _ = write!(why, "\n      {}", describe(op));
            }
            f.push(format!(
                "chat {} ({}) is {} with owner {:?}, but its last operations allow only {allowed:?}:{why}",
                chat.id, chat.label, chat.state, chat.owner
            ));
        }
    }
    constrained
}

/// R08: a customer whose last message was an acknowledged #STOP cannot be reopened
/// (`opted_out`) until it writes again. Returns how many customers were checked.
async fn check_opt_outs(
    sam: &mut Desk,
    chats: &BTreeMap<String, ChatRead>,
    ops: &[Op],
    customers: &BTreeMap<String, &'static str>,
    f: &mut Vec<String>,
) -> Result<usize, String> {
    let mut checked = 0;
    for label in customers.keys() {
        let mine: Vec<&Op> = ops
            .iter()
            .filter(|o| o.actor == *label && !o.is_rejected())
            .filter(|o| matches!(o.kind, Kind::CustomerText { .. } | Kind::Stop))
            .collect();
        // An acknowledged #STOP that every other message of the customer certainly preceded.
        let last = mine.iter().copied().find(|x| {
            x.kind == Kind::Stop
                && x.is_acked()
                && mine.iter().all(|y| std::ptr::eq(*x, *y) || y.followed_by(x))
        });
        let Some(last) = last else {
            continue;
        };
        // Any chat of the customer: `opted_out` is checked before which chat is the newest.
        let Some(chat) = chats.values().find(|c| c.label == *label) else {
            continue;
        };
        checked += 1;
        let reply = sam
            .query(json!({ "type": "reopen", "chat_id": chat.id }))
            .await
            .map_err(|e| e.to_string())?;
        if reply["code"] != "opted_out" {
            f.push(format!(
                "R08: reopening chat {} of {label} answered {reply} instead of opted_out, after {}",
                chat.id,
                describe(last)
            ));
        }
    }
    Ok(checked)
}

/// The admin's last acknowledged limit survives (or one it sent later and got no answer to).
fn check_limits(agents: &Value, ops: &[Op], limits: &[(&str, u64)], f: &mut Vec<String>) {
    for (agent, initial) in limits {
        let changes: Vec<&Op> = ops
            .iter()
            .filter(|o| !o.is_rejected())
            .filter(|o| matches!(&o.kind, Kind::SetLimit { agent: a, .. } if a == agent))
            .collect();
        let limit_of = |o: &Op| match o.kind {
            Kind::SetLimit { limit, .. } => u64::from(limit),
            _ => 0,
        };
        let mut allowed: BTreeSet<u64> = changes
            .iter()
            .filter(|x| !changes.iter().any(|y| x.followed_by(y)))
            .map(|o| limit_of(o))
            .collect();
        if !changes.iter().any(|o| o.is_acked()) {
            allowed.insert(*initial);
        }
        let actual = agents
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["id"] == *agent)
            .and_then(|a| a["limit"].as_u64());
        if !actual.is_some_and(|l| allowed.contains(&l)) {
            let last = changes.iter().rev().find(|o| o.is_acked());
            f.push(format!(
                "LOST: {agent}'s limit is {actual:?}, expected one of {allowed:?} (last acknowledged: {})",
                last.map_or("none".to_owned(), |o| describe(o))
            ));
        }
    }
}

/// What the engine derives on restore agrees with the chats: each agent's load is its active
/// chats; the queues hold the queued chats (those not offered), each once.
fn check_loads_and_queues(
    agents: &Value,
    queues: &Value,
    chats: &BTreeMap<String, ChatRead>,
    f: &mut Vec<String>,
) {
    let mut offered = 0;
    for agent in agents.as_array().into_iter().flatten() {
        let id = agent["id"].as_str().unwrap_or_default();
        let load = agent["load"].as_u64().unwrap_or(u64::MAX);
        offered += agent["offered"].as_u64().unwrap_or(0);
        let active = chats
            .values()
            .filter(|c| c.owner.as_deref() == Some(id) && matches!(c.state.as_str(), "active" | "snoozed"))
            .count() as u64;
        if load != active {
            f.push(format!(
                "agent {id} has load {load} after the restart, but owns {active} active chats"
            ));
        }
    }
    let mut waiting = BTreeSet::new();
    for queue in queues.as_array().into_iter().flatten() {
        for w in queue["waiting"].as_array().into_iter().flatten() {
            let id = w["chat_id"].as_str().unwrap_or_default();
            if !waiting.insert(id) {
                f.push(format!("chat {id} waits in the queues twice"));
            }
            match chats.get(id) {
                Some(chat) if chat.state == "queued" => {}
                Some(chat) => f.push(format!(
                    "chat {id} waits in queue {} but is {}",
                    queue["id"], chat.state
                )),
                None => f.push(format!(
                    "chat {id} waits in queue {} but does not exist",
                    queue["id"]
                )),
            }
        }
    }
    let queued = chats.values().filter(|c| c.state == "queued").count() as u64;
    if queued != waiting.len() as u64 + offered {
        f.push(format!(
            "{queued} chats are queued, but {} wait in the queues and {offered} are offered",
            waiting.len()
        ));
    }
}
