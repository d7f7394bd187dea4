//! The lease statements on PostgreSQL (`store/leases.rs` says what a lease is). Each is one
//! statement in a transaction of its own on a read pool connection, its times PostgreSQL's
//! `clock_timestamp()`: the moment the statement looks, after any wait for a row lock, not the
//! start of its transaction (`now()`) nor any node's clock.

use std::time::Duration;

use chrono::DateTime;
use postgres::Row;

use super::super::leases::{Epoch, Lease};
use super::super::{StoreError, WorkspaceState, WsKey};
use super::{Database, PgReads};

/// Takes the lease: a new row at epoch 1, or the row of a lapsed lease (or of one `$2` holds)
/// at its epoch plus one; no row back if another node holds an unexpired one, or if the
/// workspace's row is not in state `$4` (a workspace is served only while `active` and purged
/// only while `deleting`: `Store::take_lease`, `Store::take_lease_to_purge`).
///
/// Race-free in one statement: the unique key on `ws` sends every concurrent take of one
/// workspace through the same row. An `INSERT … ON CONFLICT DO UPDATE` locks the conflicting
/// row before it evaluates `WHERE`, and a take that finds the row locked by another take waits
/// for that one's commit, then evaluates `WHERE` against the row as the other left it: lapsing
/// far in the future, held by someone else, so it updates nothing. Two takes of a workspace
/// without a row: one inserts, the other's insert waits on the key, conflicts, and takes the
/// same path. So of the takes of one lapsed lease exactly one raises the epoch.
///
/// The state is read as of the statement's start (READ COMMITTED): a take that started before
/// a change of state committed may still get the lease. That node then holds it as an owner
/// does, and lets go at its next round; whatever it wrote is purged later under a newer epoch.
const TAKE: &str = "
    INSERT INTO leases (ws, node, epoch, expires_at)
    SELECT $1, $2, 1, clock_timestamp() + make_interval(secs => $3)
    WHERE EXISTS (SELECT 1 FROM workspaces WHERE key = $1 AND state = $4)
    ON CONFLICT (ws) DO UPDATE
        SET node = excluded.node, epoch = leases.epoch + 1, expires_at = excluded.expires_at,
            released = false
        WHERE leases.expires_at <= clock_timestamp() OR leases.node = excluded.node
    RETURNING node, epoch, (extract(epoch FROM expires_at) * 1000000)::bigint";

/// Extends the lease while its epoch is still the row's (a take would have raised it). A
/// lapsed one only while its workspace is active: a node that stalled past its lease while the
/// workspace was suspended or marked for deletion must not come back to serve it (an
/// unexpired one is renewed whatever the state, so that its holder drains and releases it).
const RENEW: &str = "
    UPDATE leases SET expires_at = clock_timestamp() + make_interval(secs => $4)
    WHERE ws = $1 AND node = $2 AND epoch = $3
      AND (expires_at > clock_timestamp()
           OR EXISTS (SELECT 1 FROM workspaces WHERE key = $1 AND state = 'active'))
    RETURNING node, epoch, (extract(epoch FROM expires_at) * 1000000)::bigint";

/// Lets the lease lapse now, marked released (the next holder's take is a hand-over, not a
/// failover); the epoch stays, so the next take raises it.
const RELEASE: &str = "
    UPDATE leases SET expires_at = LEAST(expires_at, clock_timestamp()), released = true
    WHERE ws = $1 AND node = $2 AND epoch = $3";

/// Deletes the lease row, while it is still `$2`'s at epoch `$3`, of a workspace whose row is
/// gone. One statement in a transaction of its own: it waits for groups that hold the row
/// `FOR SHARE`, and holds nothing they could wait for.
const DROP: &str = "
    DELETE FROM leases
    WHERE ws = $1 AND node = $2 AND epoch = $3
      AND NOT EXISTS (SELECT 1 FROM workspaces WHERE key = $1)";

/// The unexpired lease, if any.
const HOLDER: &str = "
    SELECT node, epoch, (extract(epoch FROM expires_at) * 1000000)::bigint
    FROM leases WHERE ws = $1 AND expires_at > clock_timestamp()";

/// The epochs of a group's fenced workspaces (`$1`), read by the writer in the group's
/// transaction (`postgres/writer.rs` says why `FOR SHARE`). In `ws` order, so that two
/// writers lock the rows in one order.
/// A released lease has no epoch to write under: its holder drained the workspace before it
/// released it, so whatever it still submits under that epoch (a request that outlived the
/// unload's grace, or one made before its store stopped and resumed) is refused, even before
/// another node takes the lease and raises the epoch.
pub(super) const EPOCHS_FOR_SHARE: &str = "
    SELECT ws, epoch FROM leases WHERE ws = ANY($1) AND NOT released ORDER BY ws FOR SHARE";

impl PgReads {
    /// [`Store::take_lease`](super::super::Store::take_lease).
    pub(crate) fn take(
        &self,
        ws: WsKey,
        node: &str,
        ttl: Duration,
        state: WorkspaceState,
    ) -> Result<Option<Lease>, StoreError> {
        self.with(|client, db| {
            let row = client
                .query_opt(TAKE, &[&ws.get(), &node, &ttl.as_secs_f64(), &state.stored()])
                .map_err(|e| db.error(e))?;
            row.map(|row| lease(db, ws, &row)).transpose()
        })
    }

    /// [`Store::renew_lease`](super::super::Store::renew_lease).
    pub(crate) fn renew(&self, held: &Lease, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        self.with(|client, db| {
            let row = client
                .query_opt(
                    RENEW,
                    &[&held.ws.get(), &held.node, &held.epoch.get(), &ttl.as_secs_f64()],
                )
                .map_err(|e| db.error(e))?;
            row.map(|row| lease(db, held.ws, &row)).transpose()
        })
    }

    /// [`Store::release_lease`](super::super::Store::release_lease).
    pub(crate) fn release(&self, held: &Lease) -> Result<bool, StoreError> {
        self.with(|client, db| {
            let released = client
                .execute(RELEASE, &[&held.ws.get(), &held.node, &held.epoch.get()])
                .map_err(|e| db.error(e))?;
            Ok(released == 1)
        })
    }

    /// [`Store::drop_lease`](super::super::Store::drop_lease).
    pub(crate) fn drop_lease(&self, held: &Lease) -> Result<bool, StoreError> {
        self.with(|client, db| {
            let dropped = client
                .execute(DROP, &[&held.ws.get(), &held.node, &held.epoch.get()])
                .map_err(|e| db.error(e))?;
            Ok(dropped == 1)
        })
    }

    /// [`Store::lease_holder`](super::super::Store::lease_holder).
    pub(crate) fn holder(&self, ws: WsKey) -> Result<Option<Lease>, StoreError> {
        self.with(|client, db| {
            let row = client.query_opt(HOLDER, &[&ws.get()]).map_err(|e| db.error(e))?;
            row.map(|row| lease(db, ws, &row)).transpose()
        })
    }
}

/// A lease from the columns every statement answers: holder, epoch and expiry (in
/// microseconds since 1970, which `timestamptz` holds exactly).
fn lease(db: &Database, ws: WsKey, row: &Row) -> Result<Lease, StoreError> {
    let micros: i64 = row.get(2);
    let expires_at = DateTime::from_timestamp_micros(micros).ok_or_else(|| StoreError::Corrupt {
        path: db.name(),
        what: format!(
            "lease of workspace {} lapses at {micros} µs, out of range",
            ws.get()
        ),
    })?;
    Ok(Lease {
        ws,
        node: row.get(0),
        epoch: Epoch::new(row.get(1)),
        expires_at,
    })
}
