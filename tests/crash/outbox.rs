//! R24 against the fake platform (`platform.rs`): what had to reach it, and what it got,
//! checked against a workspace's ledger and the histories the last `verify` read. Shared by
//! the crash test (one engine, killed and restarted) and the cluster's chaos test (three
//! nodes, ten workspaces: called once per workspace with that workspace's posts).

use std::collections::{BTreeMap, BTreeSet};

use super::ledger::{Kind, Op};
use super::platform::Post;

/// Who delivered a post: the node (empty for the crash test's one engine) and the platform's
/// epoch (the engine's incarnation; in a cluster, the rounds between two hits). One sender
/// delivers a key at most once: it records the delivery before it would send again. Another
/// sender delivers it again when the first one died, was stopped, or let the workspace go
/// (a hand-over drops sends on their way) before recording it: at least once, under the same
/// idempotency key (R24).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sender {
    pub(crate) node: String,
    pub(crate) epoch: usize,
}

impl Sender {
    pub(crate) fn of(post: &Post) -> Self {
        Self {
            node: post.node.clone(),
            epoch: post.epoch,
        }
    }
}

/// The agent messages that must reach the platform: every acknowledged one, and every other
/// one a history holds (`in_history`: it was committed, the answer was lost).
pub(crate) fn must_arrive(ops: &[Op], in_history: &BTreeSet<String>) -> BTreeSet<String> {
    ops.iter()
        .filter_map(|op| match &op.kind {
            Kind::AgentText { text } if op.is_acked() || in_history.contains(text) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// What the platform got, against the ledger: every agent message it got is one whose change
/// was committed (its text is in a history) and was not refused, in its chat; one key carries
/// one message; a key is delivered again only by another sender, a later engine or another
/// node (see [`Sender`]; the earlier one was killed, stopped or let the workspace go before
/// it recorded the delivery); each chat's messages were first delivered in the order
/// their acknowledgements imply. Also returns how many agent messages were never committed.
pub(crate) fn check_outbox(
    ops: &[Op],
    posts: &[Post],
    in_history: &BTreeSet<String>,
) -> (Vec<String>, usize) {
    let mut f = Vec::new();
    let agent_texts: BTreeMap<&str, &Op> = ops
        .iter()
        .filter_map(|op| match &op.kind {
            Kind::AgentText { text } => Some((text.as_str(), op)),
            _ => None,
        })
        .collect();
    let mut never_committed = 0;
    for op in agent_texts.values() {
        if let Kind::AgentText { text } = &op.kind {
            if !op.is_acked() && !in_history.contains(text) {
                never_committed += 1;
                if posts.iter().any(|p| p.text == *text) {
                    f.push(format!(
                        "SENT UNCOMMITTED: {text:?} reached the platform but is in no history ({:?}, {:?})",
                        op.outcome, op.kind
                    ));
                }
            }
        }
    }
    let mut key_text: BTreeMap<&str, &str> = BTreeMap::new();
    for post in posts {
        if let Some(earlier) = key_text.insert(&post.key, &post.text) {
            if earlier != post.text {
                f.push(format!(
                    "key {} carried {earlier:?} and {:?}",
                    post.key, post.text
                ));
            }
        }
        if post.kind != "text" {
            continue;
        }
        match agent_texts.get(post.text.as_str()) {
            None => f.push(format!("the platform got {:?}, which no agent sent", post.text)),
            Some(op) => {
                if op.is_rejected() {
                    f.push(format!(
                        "the platform got {:?}, which the engine refused: {:?}",
                        post.text, op.outcome
                    ));
                }
                if !in_history.contains(&post.text) {
                    f.push(format!(
                        "the platform got {:?}, which no history holds",
                        post.text
                    ));
                }
                if op.chat.as_deref() != Some(post.chat.as_str()) {
                    f.push(format!(
                        "{:?} went out for chat {}, sent in {:?}",
                        post.text, post.chat, op.chat
                    ));
                }
            }
        }
    }
    let mut senders_of: BTreeMap<&str, Vec<Sender>> = BTreeMap::new();
    for post in posts.iter().filter(|p| p.delivered) {
        senders_of.entry(&post.key).or_default().push(Sender::of(post));
    }
    for (key, senders) in &senders_of {
        if senders.windows(2).any(|w| w[0] == w[1]) {
            f.push(format!(
                "DUPLICATE not explained by a kill: key {key} delivered by {senders:?} \
                 (the same engine delivered it twice)"
            ));
        }
    }
    // Order per chat: the first delivery of each agent message.
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, post) in posts.iter().enumerate().filter(|(_, p)| p.delivered) {
        first.entry(&post.text).or_insert(i);
    }
    let mut by_chat: BTreeMap<&str, Vec<(&Op, usize)>> = BTreeMap::new();
    for (text, op) in &agent_texts {
        if let (Some(chat), Some(at)) = (op.chat.as_deref(), first.get(text)) {
            by_chat.entry(chat).or_default().push((op, *at));
        }
    }
    for (chat, sent) in &by_chat {
        for (a, at_a) in sent {
            for (b, at_b) in sent {
                if a.acked_before(b) && at_b < at_a {
                    f.push(format!(
                        "ORDER: in chat {chat}, {:?} reached the platform before {:?}, which was \
                         acknowledged before the first was sent",
                        b.kind, a.kind
                    ));
                }
            }
        }
    }
    (f, never_committed)
}
