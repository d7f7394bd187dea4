//! The statements of `store/nodes.rs` on PostgreSQL, timed by `clock_timestamp()` as the
//! leases are.

use std::time::Duration;

use super::super::leases::Epoch;
use super::super::nodes::{ClusterView, LeaseRow, NodeRow};
use super::super::{StoreError, WsKey};
use super::PgReads;

/// Records a node as seen now.
const HEARTBEAT: &str = "
    INSERT INTO nodes (name, address, seen_at, leaving) VALUES ($1, $2, clock_timestamp(), $3)
    ON CONFLICT (name) DO UPDATE
        SET address = excluded.address, seen_at = excluded.seen_at, leaving = excluded.leaving";

/// The nodes seen within `$1` seconds.
const LIVE_NODES: &str = "
    SELECT name, address, leaving FROM nodes
    WHERE seen_at > clock_timestamp() - make_interval(secs => $1) ORDER BY name";

/// Every lease, with its holder's address.
const LEASES: &str = "
    SELECT l.ws, l.node, l.epoch, l.expires_at > clock_timestamp(), l.released, n.address
    FROM leases l LEFT JOIN nodes n ON n.name = l.node ORDER BY l.ws";

impl PgReads {
    /// [`Store::heartbeat`](super::super::Store::heartbeat).
    pub(crate) fn heartbeat(&self, node: &str, address: &str, leaving: bool) -> Result<(), StoreError> {
        self.with(|client, db| {
            client
                .execute(HEARTBEAT, &[&node, &address, &leaving])
                .map_err(|e| db.error(e))?;
            Ok(())
        })
    }

    /// [`Store::cluster_view`](super::super::Store::cluster_view): both reads in one
    /// repeatable-read transaction, so the leases and the nodes are of one moment.
    pub(crate) fn view(&self, live_within: Duration) -> Result<ClusterView, StoreError> {
        self.with(|client, db| {
            let err = |e| db.error(e);
            let mut tx = client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(err)?;
            let nodes = tx
                .query(LIVE_NODES, &[&live_within.as_secs_f64()])
                .map_err(err)?
                .iter()
                .map(|r| NodeRow {
                    name: r.get(0),
                    address: r.get(1),
                    leaving: r.get(2),
                })
                .collect();
            let leases = tx
                .query(LEASES, &[])
                .map_err(err)?
                .iter()
                .map(|r| LeaseRow {
                    ws: WsKey::new(r.get(0)),
                    node: r.get(1),
                    epoch: Epoch::new(r.get(2)),
                    unexpired: r.get(3),
                    released: r.get(4),
                    address: r.get(5),
                })
                .collect();
            tx.commit().map_err(err)?;
            Ok(ClusterView { nodes, leases })
        })
    }
}
