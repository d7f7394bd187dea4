//! Finishing deletes in a cluster (R27, R28): a workspace marked `deleting` is purged only
//! under its lease, taken for that with a new epoch, by whichever node's placement round finds
//! it free.
//!
//! Why this way, and not by the node the platform call landed on at once: the owner may still
//! be serving and writing (its round sees the mark up to a round later, or never, if it is
//! stalled), and a purge running beside it would leave the owner's later writes on a
//! half-purged workspace. So the owner lets go first, as of any workspace no longer active (its
//! drain commits what it acknowledged, then it releases the lease); a dead or stalled owner's
//! lease lapses. Only then can any node take the lease to purge ([`Store::take_lease_to_purge`]:
//! free, and the row still `deleting`), which raises the epoch: from that commit on, whatever
//! an earlier holder still submits is refused [`StoreError::Fenced`], nothing of it written.
//! Every batch is submitted under the new epoch, the last one deletes the `workspaces` row,
//! and then its lease row goes ([`Store::drop_lease`]): a submission under any of its epochs
//! finds no lease and is refused.
//!
//! Races: two nodes after the same free workspace (two platform calls, or any rounds) take it
//! once (the take is atomic). A purging node that stalls stops renewing; once its lease lapsed
//! another node takes it and purges on, and the stalled one's batches are refused. A node that
//! dies half-way leaves the row `deleting`, which the next round of any node finishes. Nothing
//! loads a `deleting` workspace again: placement takes only active workspaces' leases.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::ids::WorkspaceId;
use crate::store::{Lease, Store, StoreError, WorkspaceRow, WsKey};
use crate::workspaces::monotonic_now;

/// The purges this node runs, one task per workspace, beside its placement rounds (a large
/// workspace's purge does not hold up taking over another). Dropped with the node: a node
/// that dies stops purging; its lease lapses and another node goes on.
#[derive(Debug, Default)]
pub(crate) struct Purges {
    running: Mutex<HashMap<WorkspaceId, JoinHandle<()>>>,
}

impl Purges {
    /// Starts purging each of `rows` (marked `deleting`, free or last held by `node`) that is
    /// not being purged here already, under leases of `lease` time.
    pub(crate) fn start(&self, rows: Vec<WorkspaceRow>, store: &Arc<Store>, node: &str, lease: Duration) {
        let mut running = self.running.lock();
        running.retain(|_, task| !task.is_finished());
        for row in rows {
            if running.contains_key(&row.id) {
                continue;
            }
            let task = tokio::spawn(finish_delete(store.clone(), node.to_owned(), lease, row.clone()));
            running.insert(row.id, task);
        }
    }
}

impl Drop for Purges {
    fn drop(&mut self) {
        for (_, task) in self.running.lock().drain() {
            task.abort();
        }
    }
}

/// Takes `row`'s lease to purge it, and purges it; logs what came of it.
async fn finish_delete(store: Arc<Store>, node: String, ttl: Duration, row: WorkspaceRow) {
    match purge(&store, &node, ttl, row.key).await {
        Ok(true) => {
            tracing::info!(node = %node, workspace = %row.id, "workspace deleted: purged under its lease")
        }
        Ok(false) => {}
        Err(StoreError::Fenced { .. }) => {
            tracing::info!(node = %node, workspace = %row.id, "another node took over the purge")
        }
        Err(e) => tracing::warn!(node = %node, workspace = %row.id, error = %e,
            "purging a deleted workspace failed; a later round goes on"),
    }
}

/// Purges workspace `ws` under a lease taken for it: true once its rows and its own row are
/// gone, false if another node holds it (its owner still draining, or another purge).
async fn purge(store: &Arc<Store>, node: &str, ttl: Duration, ws: WsKey) -> Result<bool, StoreError> {
    let taker = node.to_owned();
    let Some(mut lease) = blocking(store, move |s| s.take_lease_to_purge(ws, &taker, ttl)).await? else {
        return Ok(false);
    };
    let mut renewed = monotonic_now();
    while blocking(store, move |s| s.holds_rows_of(ws)).await? {
        store.purge_batch(ws, Some(lease.epoch)).await?;
        // Renewed like any lease, a third of its time after the last renewal: a purge longer
        // than a lease keeps it, and one that stalls loses it to the next node.
        if renewed.elapsed() >= ttl / 3 {
            renewed = monotonic_now();
            let held = lease.clone();
            lease = blocking(store, move |s| s.renew_lease(&held, ttl))
                .await?
                .ok_or_else(|| taken_over(&lease))?;
        }
    }
    store.delete_workspace_row(ws, Some(lease.epoch)).await?;
    // Left behind if this node dies now: harmless, an epoch of a workspace that is gone.
    blocking(store, move |s| s.drop_lease(&lease)).await?;
    Ok(true)
}

/// The refusal of a purge whose lease another node took meanwhile.
fn taken_over(lease: &Lease) -> StoreError {
    StoreError::Fenced {
        ws: lease.ws,
        held: lease.epoch,
        current: None,
    }
}

/// Runs `call` on the store on a blocking thread (the store's calls are synchronous).
async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    call: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .map_err(|e| StoreError::Corrupt {
            path: Default::default(),
            what: format!("a purge's store call panicked: {e}"),
        })?
}
