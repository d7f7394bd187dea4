//! Replies kept for retries (R17). A client whose connection dropped after it sent a request
//! cannot know whether the request landed, so it sends it again, with the same `id`. A request
//! that changes something, repeated with the same id by the same caller on the same socket
//! within the grace period, gets its first reply again instead of running twice, like an
//! idempotency key: on any of the caller's connections, across a reconnect.
//!
//! Each caller keeps its last [`KEPT_PER_CALLER`] replies, none older than the window; its lock
//! is held while its request runs, so that the same id sent on two connections at once runs
//! once and the second waits for the first's reply.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use chrono::Duration;
use dashmap::DashMap;

use super::fanout::Frame;
use crate::clock::Timestamp;
use crate::ids::AgentId;
use crate::lock_order::{Level, Ordered};
use crate::refusal::Refusal;

/// Replies kept per caller: more than a client has in flight on a few connections (the
/// gateway reads at most 32 requests ahead per connection).
pub const KEPT_PER_CALLER: usize = 128;

/// Which socket a request came on: the agent's and the supervisor's ids are apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Agent,
    Supervisor,
}

/// The replies kept, per caller.
#[derive(Debug)]
pub struct Retries {
    window: Duration,
    callers: DashMap<(Side, AgentId), Arc<Ordered<Kept>>>,
}

/// One caller's replies, oldest first.
#[derive(Debug, Default)]
struct Kept(VecDeque<Answer>);

#[derive(Debug)]
struct Answer {
    id: Box<str>,
    /// A hash of `id`, compared first: a scan of the ids themselves showed in profiles.
    id_hash: u64,
    /// A hash of the request: the same id with another request is refused, not answered.
    fingerprint: u64,
    at: Timestamp,
    reply: Frame,
}

impl Retries {
    /// Replies are kept for `window` (the grace period).
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            callers: DashMap::new(),
        }
    }

    /// The reply to `request`, sent with `id` by `caller` at `now`: `run`'s, or the one kept
    /// for the same request and id. `Err` if the id was used for a different request within
    /// the window.
    /// `fingerprint` is the request's [`fingerprint`].
    pub fn once(
        &self,
        side: Side,
        caller: &AgentId,
        id: &str,
        fingerprint: u64,
        now: Timestamp,
        run: impl FnOnce() -> Frame,
    ) -> Result<Frame, Refusal> {
        let kept = self.kept_of(side, caller);
        let mut kept = kept.lock();
        kept.forget_before(now - self.window);
        let id_hash = self::fingerprint(&id);
        if let Some(answer) = kept.0.iter().find(|a| a.id_hash == id_hash && &*a.id == id) {
            if answer.fingerprint == fingerprint {
                return Ok(answer.reply.clone());
            }
            return Err(Refusal::BadRequest(format!(
                "request id {id:?} was used for a different request {} s ago; a retry repeats \
                 its request unchanged, and a new request needs a new id",
                (now - answer.at).num_seconds()
            )));
        }
        let reply = run();
        if kept.0.len() >= KEPT_PER_CALLER {
            kept.0.pop_front();
        }
        kept.0.push_back(Answer {
            id: id.into(),
            id_hash,
            fingerprint,
            at: now,
            reply: reply.clone(),
        });
        Ok(reply)
    }

    /// Forgets `caller`'s replies: its grace period ended, so no retry of its can come.
    pub fn forget(&self, side: Side, caller: &AgentId) {
        self.callers.remove(&(side, caller.clone()));
    }

    fn kept_of(&self, side: Side, caller: &AgentId) -> Arc<Ordered<Kept>> {
        let key = (side, caller.clone());
        // Cloned out of the map: its shard guard is never held while the caller's lock is.
        if let Some(kept) = self.callers.get(&key) {
            return kept.clone();
        }
        self.callers
            .entry(key)
            .or_insert_with(|| Arc::new(Ordered::default_at(Level::Retries)))
            .clone()
    }
}

impl Kept {
    fn forget_before(&mut self, oldest: Timestamp) {
        while self.0.front().is_some_and(|a| a.at < oldest) {
            self.0.pop_front();
        }
    }
}

/// A hash of a decoded request: the same request, however its JSON was spelled, has the same.
pub fn fingerprint(request: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    request.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use chrono::TimeZone;

    use super::*;

    fn at(seconds: i64) -> Timestamp {
        chrono::Utc
            .timestamp_opt(1_700_000_000 + seconds, 0)
            .single()
            .expect("a time")
    }

    fn reply(text: &'static str) -> Frame {
        Arc::new(Bytes::from_static(text.as_bytes()))
    }

    #[test]
    fn r17_a_repeated_id_gets_the_first_reply_within_the_window_and_runs_again_after_it() {
        let retries = Retries::new(Duration::seconds(60));
        let ana = AgentId::from("ana");
        let mut runs = 0;
        let mut once = |id: &str, request: &str, now| {
            retries.once(Side::Agent, &ana, id, fingerprint(&request), now, || {
                runs += 1;
                reply(if runs == 1 { "first" } else { "later" })
            })
        };
        assert_eq!(once("r1", "close c1", at(0)).expect("runs"), reply("first"));
        assert_eq!(once("r1", "close c1", at(59)).expect("kept"), reply("first"));
        let refused = once("r1", "close c2", at(59)).expect_err("another request");
        assert!(refused.to_string().contains("\"r1\""), "{refused}");
        assert_eq!(once("r1", "close c1", at(61)).expect("forgotten"), reply("later"));
        assert_eq!(runs, 2);
    }

    #[test]
    fn r17_ids_are_per_caller_and_per_socket_and_only_the_last_ones_are_kept() {
        let retries = Retries::new(Duration::seconds(60));
        let (ana, ben) = (AgentId::from("ana"), AgentId::from("ben"));
        let first = retries.once(Side::Agent, &ana, "r1", fingerprint(&1), at(0), || reply("ana"));
        assert_eq!(first.expect("runs"), reply("ana"));
        let ben_s = retries.once(Side::Agent, &ben, "r1", fingerprint(&1), at(0), || reply("ben"));
        assert_eq!(
            ben_s.expect("runs"),
            reply("ben"),
            "another agent's id is its own"
        );
        let sup = retries.once(Side::Supervisor, &ana, "r1", fingerprint(&1), at(0), || {
            reply("sup")
        });
        assert_eq!(
            sup.expect("runs"),
            reply("sup"),
            "the supervisor socket's ids are apart"
        );

        for i in 0..KEPT_PER_CALLER {
            let id = format!("n{i}");
            retries
                .once(Side::Agent, &ana, &id, fingerprint(&1), at(1), || reply("n"))
                .expect("runs");
        }
        let again = retries.once(Side::Agent, &ana, "r1", fingerprint(&1), at(2), || reply("again"));
        assert_eq!(again.expect("runs"), reply("again"), "the oldest is dropped");

        retries.forget(Side::Agent, &ben);
        let after = retries.once(Side::Agent, &ben, "r1", fingerprint(&1), at(3), || reply("after"));
        assert_eq!(after.expect("runs"), reply("after"));
    }
}
