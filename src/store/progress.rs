//! How far the writer has got, and who is waiting for which submission.
//!
//! Every submission is numbered. A caller waiting for number `n` is parked under `n` and woken
//! once, by the group commit that reaches it, and by no other: a broadcast (a `watch` channel)
//! woke every waiter on every commit to check its number again, and with tens of requests in
//! flight and a commit every millisecond those wake-ups were most of what durability cost.

use std::collections::{BTreeMap, HashMap};

use crate::lock_order::{Level, Ordered};
use tokio::sync::oneshot;

use super::{Epoch, StoreError, WsKey};

/// A waiter's lease, if it waits for a fenced workspace's submissions (R28): its point also
/// fails once one of them was refused.
pub(crate) type Fence = Option<(WsKey, Epoch)>;

type Waiter = (Fence, oneshot::Sender<Result<(), StoreError>>);

/// The writer's progress and the parked waiters; shared by the store, its write points and
/// the writer thread.
#[derive(Debug)]
pub(crate) struct Progress {
    state: Ordered<State>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            state: Ordered::default_at(Level::StoreProgress),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Every submission up to this number is decided.
    through: u64,
    /// The first submission that failed, and why: it and every later one failed (after one
    /// failure the writer writes nothing), up to a resume if one was asked for.
    stopped: Option<(u64, StoreError)>,
    /// While a resume is on its way to the writer: the last submission sent before it. Those
    /// after it are decided by the writer once it resumed (or failed to).
    resume_after: Option<u64>,
    /// The submissions that failed before each resume (first, last, why): they stay failed.
    failed_before: Vec<(u64, u64, StoreError)>,
    /// The writer thread has returned: nothing undecided will ever be decided.
    writer_gone: bool,
    /// The first refused submission under each lost lease, and why: the workspace wrote
    /// nothing under that epoch from it on (the others carry on).
    fenced: HashMap<(WsKey, Epoch), (u64, StoreError)>,
    /// Waiters by the submission they wait for.
    waiters: BTreeMap<u64, Vec<Waiter>>,
}

impl State {
    /// Whether submission `seq` is committed (and, under `fence`, nothing of that lease's
    /// up to it was refused): `None` while it is not decided yet.
    fn outcome(&self, seq: u64, fence: Fence) -> Option<Result<(), StoreError>> {
        let refused = fence.and_then(|fence| self.fenced.get(&fence));
        if let Some((_, _, e)) = self
            .failed_before
            .iter()
            .find(|(f, l, _)| (*f..=*l).contains(&seq))
        {
            return Some(Err(e.clone()));
        }
        let stopped_at = |first: u64| first <= seq && self.resume_after.is_none_or(|last| seq <= last);
        match (&self.stopped, refused) {
            (Some((first, e)), _) if stopped_at(*first) => Some(Err(e.clone())),
            (_, Some((first, e))) if *first <= seq => Some(Err(e.clone())),
            _ if seq <= self.through => Some(Ok(())),
            _ if self.writer_gone => Some(Err(StoreError::WriterStopped)),
            _ => None,
        }
    }
}

impl Progress {
    /// The outcome of submission `seq` (under `fence`), if it is decided.
    pub(crate) fn outcome(&self, seq: u64, fence: Fence) -> Option<Result<(), StoreError>> {
        self.state.lock().outcome(seq, fence)
    }

    /// Waits until submission `seq` (under `fence`) is decided.
    pub(crate) async fn wait(&self, seq: u64, fence: Fence) -> Result<(), StoreError> {
        let rx = {
            let mut state = self.state.lock();
            if let Some(outcome) = state.outcome(seq, fence) {
                return outcome;
            }
            let (tx, rx) = oneshot::channel();
            state.waiters.entry(seq).or_default().push((fence, tx));
            rx
        };
        rx.await.unwrap_or(Err(StoreError::WriterStopped))
    }

    /// The writer refused submission `seq` of workspace `ws`, made under lease epoch `held`
    /// (R28), because of `refusal`. Call it before [`decided`](Self::decided) of its group, so
    /// that the waiters woken there see it. Answers whether it is the first refusal under that
    /// lease.
    pub(crate) fn fenced(&self, ws: WsKey, held: Epoch, seq: u64, refusal: &StoreError) -> bool {
        let mut state = self.state.lock();
        let mut first = false;
        state.fenced.entry((ws, held)).or_insert_with(|| {
            first = true;
            (seq, refusal.clone())
        });
        first
    }

    /// Whether a submission of `ws` under epoch `held` was refused.
    pub(crate) fn was_fenced(&self, ws: WsKey, held: Epoch) -> bool {
        self.state.lock().fenced.contains_key(&(ws, held))
    }

    /// The writer decided every submission up to `last`: committed, or failed from `first`
    /// on if `failure`. Wakes the waiters it decided, and only those.
    pub(crate) fn decided(&self, first: u64, last: u64, failure: Option<&StoreError>) {
        let woken = {
            let mut state = self.state.lock();
            state.through = last;
            if let (Some(e), None) = (failure, &state.stopped) {
                state.stopped = Some((first, e.clone()));
            }
            if state.stopped.is_some() {
                // Every later submission fails too (up to a resume asked for): nobody should
                // wait for one.
                let waiters = std::mem::take(&mut state.waiters);
                let (decided, undecided): (BTreeMap<_, _>, _) = waiters
                    .into_iter()
                    .partition(|(seq, _)| *seq <= last || state.outcome(*seq, None).is_some());
                state.waiters = undecided;
                decided
            } else {
                let later = state.waiters.split_off(&(last + 1));
                std::mem::replace(&mut state.waiters, later)
            }
        };
        // Told outside the lock; each outcome is worked out again for its own number.
        for (seq, waiters) in woken {
            for (fence, waiter) in waiters {
                let outcome = self.outcome(seq, fence).unwrap_or(Err(StoreError::WriterStopped));
                let _ = waiter.send(outcome);
            }
        }
    }

    /// A resume is sent to the writer after submission `last` (numbered `last + 1` itself):
    /// those after it are not failed by the stop (the writer decides them after the resume).
    pub(crate) fn resume_asked(&self, last: u64) {
        self.state.lock().resume_after = Some(last);
    }

    /// The writer resumed: every submission it decided so far that failed stays failed, the
    /// later ones are decided as they are written.
    pub(crate) fn resumed(&self) {
        let mut state = self.state.lock();
        let through = state.through;
        state.resume_after = None;
        if let Some((first, e)) = state.stopped.take() {
            state.failed_before.push((first, through, e));
        }
    }

    /// The writer could not resume: it is still stopped, for every later submission too.
    pub(crate) fn resume_failed(&self) {
        self.state.lock().resume_after = None;
    }

    /// The writer thread returned: whoever still waits is told it stopped.
    pub(crate) fn writer_gone(&self) {
        let waiters = {
            let mut state = self.state.lock();
            state.writer_gone = true;
            std::mem::take(&mut state.waiters)
        };
        // Dropping the senders answers each waiter `WriterStopped`.
        drop(waiters);
    }

    /// How many callers are parked; for tests.
    #[cfg(test)]
    pub(crate) fn parked(&self) -> usize {
        self.state.lock().waiters.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk_full() -> StoreError {
        StoreError::DiskFull { path: "db".into() }
    }

    #[tokio::test]
    async fn issue13_a_commit_wakes_only_the_waiters_it_reached() {
        let progress = std::sync::Arc::new(Progress::default());
        let waiting: Vec<_> = (1..=4)
            .map(|seq| {
                let progress = progress.clone();
                tokio::spawn(async move { progress.wait(seq, None).await })
            })
            .collect();
        while progress.parked() < 4 {
            tokio::task::yield_now().await;
        }
        progress.decided(1, 2, None);
        assert_eq!(progress.parked(), 2, "3 and 4 still wait");
        let mut waiting = waiting.into_iter();
        for _ in 0..2 {
            let done = waiting.next().expect("four").await.expect("joins");
            assert!(done.is_ok());
        }
        assert!(progress.outcome(3, None).is_none());
        progress.decided(3, 4, None);
        for rest in waiting {
            assert!(rest.await.expect("joins").is_ok());
        }
        assert_eq!(progress.parked(), 0);
        assert!(
            progress.wait(4, None).await.is_ok(),
            "a decided point answers at once"
        );
    }

    #[tokio::test]
    async fn issue13_a_failure_fails_its_point_and_every_later_one_and_keeps_earlier_ones() {
        let progress = Progress::default();
        progress.decided(1, 3, None);
        progress.decided(4, 5, Some(&disk_full()));
        assert!(progress.wait(3, None).await.is_ok());
        assert!(matches!(
            progress.wait(4, None).await,
            Err(StoreError::DiskFull { .. })
        ));
        assert!(
            matches!(progress.wait(9, None).await, Err(StoreError::DiskFull { .. })),
            "nothing is written after a failure"
        );
        // A later group that the writer refuses does not move the first failure.
        progress.decided(6, 6, Some(&StoreError::WriterStopped));
        assert!(matches!(
            progress.outcome(5, None),
            Some(Err(StoreError::DiskFull { .. }))
        ));
    }

    #[tokio::test]
    async fn r28_a_refused_submission_fails_its_lease_s_points_and_no_one_else_s() {
        let progress = std::sync::Arc::new(Progress::default());
        let (ws, old, new) = (WsKey::new(2), Epoch::new(1), Epoch::new(2));
        let lost = Some((ws, old));
        let parked = {
            let progress = progress.clone();
            tokio::spawn(async move { progress.wait(3, lost).await })
        };
        while progress.parked() < 1 {
            tokio::task::yield_now().await;
        }
        let refusal = StoreError::Fenced {
            ws,
            held: old,
            current: Some(new),
        };
        assert!(
            progress.fenced(ws, old, 2, &refusal),
            "the first refusal under it"
        );
        progress.decided(1, 3, None);
        assert!(matches!(
            parked.await.expect("joins"),
            Err(StoreError::Fenced { .. })
        ));
        assert!(progress.wait(1, lost).await.is_ok(), "before the refusal");
        assert!(matches!(
            progress.wait(9, lost).await,
            Err(StoreError::Fenced { .. })
        ));
        assert!(progress.wait(3, None).await.is_ok(), "the store's point");
        assert!(progress.wait(3, Some((ws, new))).await.is_ok(), "the new lease's");
        assert!(
            !progress.fenced(ws, old, 5, &refusal),
            "one refusal is remembered"
        );
        assert!(matches!(
            progress.wait(2, lost).await,
            Err(StoreError::Fenced { .. })
        ));
    }

    #[tokio::test]
    async fn issue19_a_resume_keeps_what_failed_failed_and_decides_later_submissions_as_written() {
        let progress = std::sync::Arc::new(Progress::default());
        let (ws, held) = (WsKey::new(2), Epoch::new(1));
        let refusal = StoreError::Fenced {
            ws,
            held,
            current: Some(Epoch::new(2)),
        };
        progress.fenced(ws, held, 1, &refusal);
        progress.decided(1, 1, None);
        progress.decided(2, 3, Some(&disk_full()));
        // Submission 4 was sent before the resume, 5 after it.
        progress.resume_asked(4);
        assert!(matches!(
            progress.outcome(4, None),
            Some(Err(StoreError::DiskFull { .. }))
        ));
        let after = {
            let progress = progress.clone();
            tokio::spawn(async move { progress.wait(5, None).await })
        };
        while progress.parked() < 1 {
            tokio::task::yield_now().await;
        }
        progress.decided(4, 4, Some(&disk_full()));
        assert_eq!(
            progress.parked(),
            1,
            "5 is not failed by the stop: it comes after the resume"
        );
        progress.resumed();
        progress.decided(5, 5, None);
        assert!(after.await.expect("joins").is_ok());
        for failed in 2..=4 {
            assert!(
                matches!(
                    progress.wait(failed, None).await,
                    Err(StoreError::DiskFull { .. })
                ),
                "{failed} stays failed"
            );
        }
        assert!(progress.wait(1, None).await.is_ok());
        assert!(progress.was_fenced(ws, held), "fencing outlives the resume");

        // A later failure stops it again; a resume that fails leaves it stopped.
        progress.decided(6, 6, Some(&StoreError::WriterStopped));
        progress.resume_asked(6);
        progress.resume_failed();
        assert!(matches!(
            progress.outcome(7, None),
            Some(Err(StoreError::WriterStopped))
        ));
        assert!(matches!(
            progress.outcome(3, None),
            Some(Err(StoreError::DiskFull { .. }))
        ));
    }

    #[tokio::test]
    async fn issue13_waiters_are_told_when_the_writer_is_gone() {
        let progress = std::sync::Arc::new(Progress::default());
        let waiter = {
            let progress = progress.clone();
            tokio::spawn(async move { progress.wait(7, None).await })
        };
        while progress.parked() < 1 {
            tokio::task::yield_now().await;
        }
        progress.writer_gone();
        assert!(matches!(
            waiter.await.expect("joins"),
            Err(StoreError::WriterStopped)
        ));
        assert!(matches!(
            progress.wait(8, None).await,
            Err(StoreError::WriterStopped)
        ));
    }
}
