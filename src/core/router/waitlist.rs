//! The waiting chats, indexed so that a routing decision never scans them all (R19, R20).
//!
//! Chats are kept in buckets of chats that route alike: the same queue, channel, workflow
//! step, requirements and base priority. Within a bucket they are ordered by age, and since
//! effective priority never falls with waiting, a bucket's oldest chat is also its first. An
//! agent's next chat is therefore the best of the buckets' heads it is eligible for: one look
//! per bucket, however long the queues. Buckets are few (queues × steps × the distinct
//! requirement sets and priorities chats bring) and are kept when they empty.

use std::collections::{BTreeMap, HashMap};

use super::Waiting;
use crate::clock::Timestamp;
use crate::core::channel::Channel;
use crate::ids::{ChatId, QueueId};

/// A skill as the router counts it: an index into its skill book.
pub(super) type SkillNo = u16;

/// Requirements by skill number, sorted: what a bucket's chats need at its step.
pub(super) type Needs = Vec<(SkillNo, u8)>;

/// What the chats of one bucket share.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct BucketKey {
    pub(super) queue: QueueId,
    pub(super) channel: Channel,
    pub(super) step: usize,
    pub(super) needs: Needs,
    /// The queue's priority plus the chats' tickets'.
    pub(super) base: i32,
}

/// Where a chat sits within its bucket: by age, then by arrival among chats of one instant.
pub(super) type Slot = (Timestamp, u64);

#[derive(Debug)]
pub(super) struct Bucket {
    pub(super) key: BucketKey,
    pub(super) chats: BTreeMap<Slot, Waiting>,
}

#[derive(Debug, Clone)]
struct Place {
    bucket: usize,
    slot: Slot,
    /// When it moves on to its next step, if it has one.
    step_due: Option<Slot>,
}

/// The waiting chats by bucket, with where each one is and when each moves on a step.
#[derive(Debug, Default)]
pub(super) struct Waitlist {
    buckets: Vec<Bucket>,
    by_key: HashMap<BucketKey, usize>,
    places: HashMap<ChatId, Place>,
    /// Chats by the time their step times out.
    step_dues: BTreeMap<Slot, ChatId>,
    next_slot: u64,
}

impl Waitlist {
    /// Files `waiting` in the bucket of `key`; it moves on a step at `step_due`, if given.
    pub(super) fn insert(&mut self, key: BucketKey, waiting: Waiting, step_due: Option<Timestamp>) {
        let bucket = match self.by_key.get(&key) {
            Some(b) => *b,
            None => {
                self.buckets.push(Bucket {
                    key: key.clone(),
                    chats: BTreeMap::new(),
                });
                self.by_key.insert(key, self.buckets.len() - 1);
                self.buckets.len() - 1
            }
        };
        self.next_slot += 1;
        let slot = (waiting.since, self.next_slot);
        let step_due = step_due.map(|at| {
            let due = (at, self.next_slot);
            self.step_dues.insert(due, waiting.chat.clone());
            due
        });
        self.places.insert(
            waiting.chat.clone(),
            Place {
                bucket,
                slot,
                step_due,
            },
        );
        self.buckets[bucket].chats.insert(slot, waiting);
    }

    /// Takes `chat` out, if it waits.
    pub(super) fn remove(&mut self, chat: &ChatId) -> Option<Waiting> {
        let place = self.places.remove(chat)?;
        if let Some(due) = place.step_due {
            self.step_dues.remove(&due);
        }
        self.buckets[place.bucket].chats.remove(&place.slot)
    }

    /// The waiting chat `chat`.
    pub(super) fn get(&self, chat: &ChatId) -> Option<&Waiting> {
        let place = self.places.get(chat)?;
        self.buckets[place.bucket].chats.get(&place.slot)
    }

    /// The bucket `chat` waits in.
    pub(super) fn bucket_of(&self, chat: &ChatId) -> Option<&Bucket> {
        self.places.get(chat).map(|p| &self.buckets[p.bucket])
    }

    /// Every bucket, empty ones included.
    pub(super) fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    /// Whether nothing waits.
    pub(super) fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    /// How many chats wait.
    pub(super) fn len(&self) -> usize {
        self.places.len()
    }

    /// The next time a chat moves on a step.
    pub(super) fn next_step_due(&self) -> Option<Timestamp> {
        self.step_dues.keys().next().map(|(at, _)| *at)
    }

    /// The chats whose step has timed out by `now`, oldest due first.
    pub(super) fn steps_due(&self, now: Timestamp) -> Vec<ChatId> {
        self.step_dues
            .range(..(now, u64::MAX))
            .map(|(_, chat)| chat.clone())
            .collect()
    }

    /// Every waiting chat, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&BucketKey, &Waiting)> {
        self.buckets
            .iter()
            .flat_map(|b| b.chats.values().map(move |w| (&b.key, w)))
    }
}
