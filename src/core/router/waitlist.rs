//! The waiting chats, indexed so that a routing decision never scans them all (R19, R20).
//!
//! Chats are kept in buckets of chats that route alike: the same queue, channel, workflow
//! step, requirements and base priority. Within a bucket they are ordered by age, and since
//! effective priority never falls with waiting, a bucket's oldest chat is also its first. An
//! agent's next chat is therefore the best of the buckets' heads it is eligible for: one look
//! per bucket, however long the queues. Buckets are few (queues × steps × the distinct
//! requirement sets and priorities chats bring) and are kept when they empty.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

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

/// Where a chat sits within its bucket: by age, then by id among chats of one instant — the
/// order every listing and every decision uses (effective priority, then age, then id).
pub(super) type Slot = (Timestamp, ChatId);

/// When a chat's step times out: by time, then by filing among chats due at one instant.
type Due = (Timestamp, u64);

#[derive(Debug)]
pub(super) struct Bucket {
    pub(super) key: BucketKey,
    pub(super) chats: BTreeMap<Slot, Waiting>,
    /// The same slots in order, for counting the chats ahead of a point by binary search
    /// (positions, R20) without walking them. New chats are the youngest and go at the back;
    /// offered chats are the oldest and leave at the front.
    pub(super) order: VecDeque<Slot>,
}

impl Bucket {
    /// How many of its chats come before the first for which `behind` holds, given that
    /// `behind` holds for every chat after one it holds for.
    pub(super) fn count_before(&self, behind: impl Fn(&Slot) -> bool) -> usize {
        // Most buckets are wholly ahead or wholly behind: two looks settle them.
        match (self.order.front(), self.order.back()) {
            (None, _) | (_, None) => 0,
            (Some(first), _) if behind(first) => 0,
            (_, Some(last)) if !behind(last) => self.order.len(),
            _ => self.order.partition_point(|slot| !behind(slot)),
        }
    }
}

/// The buckets of one queue, so that a decision looks up the queue once.
#[derive(Debug)]
pub(super) struct Lane {
    pub(super) queue: QueueId,
    /// Its non-empty buckets by base priority, each group by its first chat, oldest first:
    /// an agent's best chat of a group is in the first bucket it is eligible for, so a
    /// decision stops there instead of looking at every bucket (R20).
    pub(super) by_head: BTreeMap<std::cmp::Reverse<i32>, BTreeSet<(Slot, usize)>>,
}

#[derive(Debug, Clone)]
struct Place {
    bucket: usize,
    slot: Slot,
    /// When it moves on to its next step, if it has one.
    step_due: Option<Due>,
}

/// The waiting chats by bucket, with where each one is and when each moves on a step.
#[derive(Debug, Default)]
pub(super) struct Waitlist {
    buckets: Vec<Bucket>,
    lanes: Vec<Lane>,
    by_key: HashMap<BucketKey, usize>,
    places: HashMap<ChatId, Place>,
    /// Chats by the time their step times out.
    step_dues: BTreeMap<Due, ChatId>,
    next_slot: u64,
}

impl Waitlist {
    /// Files `waiting` in the bucket of `key`; it moves on a step at `step_due`, if given.
    pub(super) fn insert(&mut self, key: BucketKey, waiting: Waiting, step_due: Option<Timestamp>) {
        let bucket = match self.by_key.get(&key) {
            Some(b) => *b,
            None => {
                let no = self.buckets.len();
                if !self.lanes.iter().any(|l| l.queue == key.queue) {
                    self.lanes.push(Lane {
                        queue: key.queue.clone(),
                        by_head: BTreeMap::new(),
                    });
                }
                self.buckets.push(Bucket {
                    key: key.clone(),
                    chats: BTreeMap::new(),
                    order: VecDeque::new(),
                });
                self.by_key.insert(key, no);
                no
            }
        };
        self.next_slot += 1;
        let slot = (waiting.since, waiting.chat.clone());
        let step_due = step_due.map(|at| {
            let due = (at, self.next_slot);
            self.step_dues.insert(due, waiting.chat.clone());
            due
        });
        self.places.insert(
            waiting.chat.clone(),
            Place {
                bucket,
                slot: slot.clone(),
                step_due,
            },
        );
        let no = bucket;
        let bucket = &mut self.buckets[no];
        let before = bucket.order.front().cloned();
        let at = bucket.order.partition_point(|s| *s < slot);
        bucket.order.insert(at, slot.clone());
        bucket.chats.insert(slot, waiting);
        self.rehead(no, before);
    }

    /// Keeps bucket `no`'s entry among its lane's heads in step after its first chat may have
    /// changed from `before`.
    fn rehead(&mut self, no: usize, before: Option<Slot>) {
        let bucket = &self.buckets[no];
        let after = bucket.order.front().cloned();
        if before == after {
            return;
        }
        let base = std::cmp::Reverse(bucket.key.base);
        let Some(lane) = self.lanes.iter_mut().find(|l| l.queue == bucket.key.queue) else {
            return;
        };
        let group = lane.by_head.entry(base).or_default();
        if let Some(old) = before {
            group.remove(&(old, no));
        }
        if let Some(new) = after {
            group.insert((new, no));
        }
        if group.is_empty() {
            lane.by_head.remove(&base);
        }
    }

    /// Takes `chat` out, if it waits.
    pub(super) fn remove(&mut self, chat: &ChatId) -> Option<Waiting> {
        let place = self.places.remove(chat)?;
        if let Some(due) = place.step_due {
            self.step_dues.remove(&due);
        }
        let bucket = &mut self.buckets[place.bucket];
        let before = bucket.order.front().cloned();
        if let Ok(at) = bucket.order.binary_search(&place.slot) {
            bucket.order.remove(at);
        }
        let waiting = bucket.chats.remove(&place.slot);
        self.rehead(place.bucket, before);
        waiting
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

    /// The buckets by queue.
    pub(super) fn lanes(&self) -> &[Lane] {
        &self.lanes
    }

    /// The non-empty buckets of `queue`.
    pub(super) fn lane<'w>(&'w self, queue: &'w QueueId) -> impl Iterator<Item = &'w Bucket> {
        self.lanes
            .iter()
            .filter(move |l| &l.queue == queue)
            .flat_map(|l| l.by_head.values().flatten().map(|(_, no)| &self.buckets[*no]))
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
