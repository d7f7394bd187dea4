//! The engine's one lock order, written down and checked.
//!
//! Every lock the engine and the store take is an [`Ordered`] mutex with a [`Level`]. A thread
//! may take a lock only if it holds none of the same or a deeper level, so the order below is
//! the only order in which locks nest, and two of one level (two customers' files) never
//! nest. Debug builds (every test run) check it on each acquisition and panic naming both
//! locks; release builds compile the check away.
//!
//! A [`Guard`] cannot be held across an `.await` in a spawned task: like parking_lot's, it is
//! not `Send`, so a future holding one is not `Send` and `tokio::spawn` refuses it at compile
//! time.
//!
//! Map shard guards (`DashMap`) are not in the order: they are never held while taking one of
//! these locks (the `Arc` inside is cloned out first). Nor is the workspaces registry's map
//! (`workspaces.rs`), for the same reason: it is held only to clone an `Arc<Workspace>` out (or
//! to put one in or take one out), never across an `.await` and never while taking any lock.
//! Nor is a workspace's admin key (`Workspace::admin_key`): held only to copy its digest in
//! or out; nor its credentials (`Workspace::credentials`), cloned out or swapped the same way.
//! Nor are a cluster node's maps (`cluster/claims.rs`: the leases held; `cluster/directory.rs`:
//! where workspaces are served; the workspaces it handed over lately): each is held only to
//! copy an entry in or out, never across an `.await` and never while taking any lock.
//! The levels are per engine, and no request or task touches two workspaces' engines.

use std::ops::{Deref, DerefMut};

/// Where a lock sits in the order, outermost first. A thread holding a lock of one level may
/// take only locks of deeper (greater) levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// One caller's replies kept for retries: held while its request runs (R17).
    Retries,
    /// One customer's file: every rule about that customer's chats runs under it (R01, R03).
    Customer,
    /// The router: capacity, queues and offers.
    Router,
    /// The pending timers.
    Timers,
    /// The supervisors' subscriber list (taken before the feed when a subscriber catches up).
    BoardSubscribers,
    /// The supervisors' feed of board changes.
    BoardFeed,
    /// One logged board change, while it is encoded for the first subscriber that needs it
    /// (under the subscriber list, after the feed is let go; one at a time).
    BoardEntry,
    /// The live KPI counters.
    Analytics,
    /// One agent's fan-out hub: its connections and its log of pushes.
    Hub,
    /// Why a connection was cut off.
    CutOff,
    /// The store's submit lock: the order of submissions is the order of commits.
    StoreSubmit,
    /// The store's record of how far the writer has committed.
    StoreProgress,
    /// The store's pool of idle read connections.
    StoreReaders,
    /// SQLite's turn to checkpoint the log: taken alone, by the store's writer and
    /// checkpointer threads (`store/checkpoints.rs`).
    StoreCheckpoint,
    /// A workspace's limits and its ingress bucket (R27): taken alone, before any engine work.
    WorkspaceLimits,
}

/// A mutex with a place in the lock order.
#[derive(Debug)]
pub struct Ordered<T> {
    level: Level,
    mutex: parking_lot::Mutex<T>,
}

impl<T: Default> Ordered<T> {
    /// The default value, at `level`.
    pub fn default_at(level: Level) -> Self {
        Self::new(level, T::default())
    }
}

impl<T> Ordered<T> {
    /// `value` behind a lock at `level`.
    pub const fn new(level: Level, value: T) -> Self {
        Self {
            level,
            mutex: parking_lot::Mutex::new(value),
        }
    }

    /// Takes the lock; in debug builds, panics if this thread holds one at this level or deeper.
    pub fn lock(&self) -> Guard<'_, T> {
        held::enter(self.level);
        Guard {
            level: self.level,
            guard: self.mutex.lock(),
        }
    }

    /// Takes the lock if it is free, checked as [`Ordered::lock`] is.
    pub fn try_lock(&self) -> Option<Guard<'_, T>> {
        held::enter(self.level);
        let Some(guard) = self.mutex.try_lock() else {
            held::leave(self.level);
            return None;
        };
        Some(Guard {
            level: self.level,
            guard,
        })
    }
}

/// A held [`Ordered`] lock.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct Guard<'a, T> {
    level: Level,
    guard: parking_lot::MutexGuard<'a, T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        held::leave(self.level);
    }
}

#[cfg(debug_assertions)]
mod held {
    use std::cell::RefCell;

    use super::Level;

    thread_local! {
        /// The levels this thread holds, in the order it took them.
        static HELD: RefCell<Vec<Level>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn enter(level: Level) {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(deepest) = held.iter().max() {
                assert!(
                    level > *deepest,
                    "lock order violated: taking {level:?} while holding {deepest:?} (held: {held:?}); \
                     see src/lock_order.rs"
                );
            }
            held.push(level);
        });
    }

    pub(super) fn leave(level: Level) {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(at) = held.iter().rposition(|l| *l == level) {
                held.remove(at);
            }
        });
    }
}

#[cfg(not(debug_assertions))]
mod held {
    use super::Level;

    #[inline(always)]
    pub(super) fn enter(_: Level) {}

    #[inline(always)]
    pub(super) fn leave(_: Level) {}
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    #[test]
    fn locks_nest_outermost_first() {
        let file = Ordered::new(Level::Customer, 1);
        let router = Ordered::new(Level::Router, 2);
        let hub = Ordered::new(Level::Hub, 3);
        let f = file.lock();
        let r = router.lock();
        let h = hub.lock();
        assert_eq!(*f + *r + *h, 6);
    }

    #[test]
    fn a_lock_is_free_again_once_its_guard_is_dropped() {
        let router = Ordered::new(Level::Router, ());
        let file = Ordered::new(Level::Customer, ());
        drop(router.lock());
        let _file = file.lock();
        let _router = router.lock();
    }

    #[test]
    #[should_panic(expected = "taking Customer while holding Router")]
    fn a_customer_s_file_taken_under_the_router_panics() {
        let router = Ordered::new(Level::Router, ());
        let file = Ordered::new(Level::Customer, ());
        let _router = router.lock();
        let _file = file.lock();
    }

    #[test]
    #[should_panic(expected = "taking Customer while holding Customer")]
    fn two_customers_files_never_nest() {
        let ana = Ordered::new(Level::Customer, ());
        let ben = Ordered::new(Level::Customer, ());
        let _ana = ana.lock();
        let _ben = ben.lock();
    }

    #[test]
    fn another_thread_s_locks_do_not_count() {
        let router = Ordered::new(Level::Router, ());
        let file = std::sync::Arc::new(Ordered::new(Level::Customer, ()));
        let _router = router.lock();
        let other = file.clone();
        std::thread::spawn(move || drop(other.lock()))
            .join()
            .expect("no panic");
    }
}
