//! Leases with fencing epochs (R28): at any moment at most one node decides for a workspace,
//! and a node that has lost that claim can no longer write.
//!
//! A lease is a row of `leases` in PostgreSQL: the workspace, the node that holds it, its epoch
//! and when it lapses. Every take raises the epoch by one; the holder renews before it lapses
//! and releases it when it hands the workspace over. All times are PostgreSQL's
//! (`clock_timestamp()`), never a node's, so the nodes' clocks need not agree
//! (`postgres/leases.rs` holds the statements).
//!
//! Fencing: a workspace's handle made under a lease ([`Store::fenced_workspace`]) submits its
//! changes with the lease's epoch, and the writer checks that epoch against `leases` in the
//! same transaction as the changes (`postgres/writer.rs`). Once another node has taken the
//! workspace (a higher epoch), every submission made under the old epoch is refused with
//! [`StoreError::Fenced`] and nothing of it is written; the other workspaces' changes in the
//! same group commit.
//!
//! A lapsed lease that nobody took yet still fences nobody: its epoch is still the newest, so
//! no other node has written under a later one. Lapsing only lets another node take it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::scoped::WorkspaceStore;
use super::writer::Job;
use super::{Reads, Store, StoreError, WorkspaceState, WsKey};
use crate::clock::Timestamp;

/// A lease's fencing epoch: raised by one on every take of the workspace's lease, so a higher
/// epoch is always a later owner.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Epoch(i64);

impl Epoch {
    /// The epoch stored as `epoch`.
    pub const fn new(epoch: i64) -> Epoch {
        Epoch(epoch)
    }

    /// The epoch as stored.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One node's claim on one workspace, as the database granted it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Lease {
    /// The workspace.
    pub ws: WsKey,
    /// The node that holds it (any name unique in the cluster).
    pub node: String,
    /// Its fencing epoch.
    pub epoch: Epoch,
    /// When it lapses, by the database's clock. A holder must stop deciding before then by its
    /// own clock: counted from before it asked, the TTL ends no later than this.
    pub expires_at: Timestamp,
}

impl Store {
    /// Takes workspace `ws`'s lease for `node` for `ttl`, raising its epoch by one: the new
    /// lease, or `None` while another node holds an unexpired one. A take by the node that
    /// holds it also raises the epoch, which fences whatever that node still writes under the
    /// old one (a restarted node under the same name). Of several nodes taking a lapsed lease
    /// at once, exactly one gets it.
    ///
    /// Only an `active` workspace's lease is taken: one being suspended or deleted is never
    /// taken to be served again, whatever the taker last read of it.
    pub fn take_lease(&self, ws: WsKey, node: &str, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        self.leases("taking a lease")?
            .take(ws, node, ttl, WorkspaceState::Active)
    }

    /// [`Store::take_lease`] of a workspace marked [`WorkspaceState::Deleting`], to purge it
    /// under the new epoch ([`Store::purge_batch`]): `None` while another node holds it (its
    /// owner, still draining), or once it is gone. The take fences whatever an earlier holder
    /// still submits, so nothing of it lands on the half-purged workspace.
    pub fn take_lease_to_purge(
        &self,
        ws: WsKey,
        node: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        self.leases("taking a lease to purge")?
            .take(ws, node, ttl, WorkspaceState::Deleting)
    }

    /// Extends `lease` to `ttl` from now (the database's now): the renewed lease, or `None`
    /// once it was lost (another node took it: its epoch moved on). A lease that lapsed but
    /// that nobody took is still renewed: nobody else has written under a later epoch; but only
    /// while its workspace is active (one suspended or being deleted meanwhile is not served
    /// again by a node that stalled past its lease).
    pub fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        self.leases("renewing a lease")?.renew(lease, ttl)
    }

    /// Lets `lease` lapse now, so another node can take the workspace at once; the epoch stays,
    /// so the next take raises it. Answers whether it was still held (false: lost already).
    pub fn release_lease(&self, lease: &Lease) -> Result<bool, StoreError> {
        self.leases("releasing a lease")?.release(lease)
    }

    /// Deletes `lease`'s row once its workspace's row is gone (the last step of a purge under
    /// it): keys are never handed out again, so no epoch comes back; a submission still made
    /// under any of its epochs finds no row and is refused ([`StoreError::Fenced`]), and no
    /// take makes a new one (a take needs the workspace's row). Answers whether it was
    /// dropped (false: the workspace is still there, or the lease was taken meanwhile).
    pub fn drop_lease(&self, lease: &Lease) -> Result<bool, StoreError> {
        self.leases("dropping a lease")?.drop_lease(lease)
    }

    /// Who holds workspace `ws`'s lease now (by the database's clock): `None` if nobody holds
    /// an unexpired one.
    pub fn lease_holder(&self, ws: WsKey) -> Result<Option<Lease>, StoreError> {
        self.leases("reading a lease")?.holder(ws)
    }

    /// The handle through which the node holding `lease` writes and reads its workspace: every
    /// submission carries the lease's epoch, and is refused with [`StoreError::Fenced`] once
    /// another node took the workspace. A new lease (after a take) needs a new handle.
    pub fn fenced_workspace(self: &Arc<Self>, lease: &Lease) -> Result<WorkspaceStore, StoreError> {
        self.leases("fencing a workspace's writes")?;
        Ok(WorkspaceStore {
            store: self.clone(),
            ws: lease.ws,
            epoch: Some(lease.epoch),
        })
    }

    /// Whether the writer refused a submission made under `lease` ([`StoreError::Fenced`]):
    /// another node took the workspace, so the holder must stop deciding for it. Answers from
    /// memory, for a node's placement loop to look at every round.
    pub fn was_fenced(&self, lease: &Lease) -> bool {
        self.progress.was_fenced(lease.ws, lease.epoch)
    }

    /// The lease statements' connections, or the refusal of `what` on SQLite.
    pub(super) fn leases(&self, what: &'static str) -> Result<&super::postgres::PgReads, StoreError> {
        match &self.reads {
            Reads::Postgres(pg) => Ok(pg),
            Reads::Sqlite(_) => Err(StoreError::NeedsPostgres {
                what,
                path: self.path.clone(),
            }),
        }
    }
}

/// The epochs `leases` holds, in a group's transaction, for each workspace that one of the
/// group's submissions was fenced on (`None`: no lease row). Empty when no submission of the
/// group carries an epoch, as always on SQLite.
#[derive(Debug, Default)]
pub(crate) struct Epochs(HashMap<WsKey, Option<Epoch>>);

impl Epochs {
    /// The workspaces whose epochs are to be read for `group`: those of its fenced submissions.
    pub(crate) fn fenced_in(group: &[Job]) -> Vec<WsKey> {
        let mut wss: Vec<WsKey> = group.iter().filter(|j| j.epoch.is_some()).map(|j| j.ws).collect();
        wss.sort_by_key(|ws| ws.get());
        wss.dedup();
        wss
    }

    /// The epochs read for `wss`: `found` holds those with a lease row.
    pub(crate) fn read(wss: &[WsKey], found: impl IntoIterator<Item = (WsKey, Epoch)>) -> Epochs {
        let mut epochs: HashMap<WsKey, Option<Epoch>> = wss.iter().map(|ws| (*ws, None)).collect();
        for (ws, epoch) in found {
            epochs.insert(ws, Some(epoch));
        }
        Epochs(epochs)
    }

    /// Why `job` is refused: it was made under an epoch that is not the lease's any more.
    /// The backend skips such a job's changes and the writer answers its receipt with this,
    /// by the same rule.
    pub(crate) fn refusal(&self, job: &Job) -> Option<StoreError> {
        let held = job.epoch?;
        let current = *self.0.get(&job.ws)?;
        (current != Some(held)).then_some(StoreError::Fenced {
            ws: job.ws,
            held,
            current,
        })
    }
}
