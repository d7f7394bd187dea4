//! The cluster (issue 19, R28–R29): several engines on one PostgreSQL database, each
//! workspace decided by exactly one node at a time, which holds its lease (`store::leases`).
//!
//! - [`Directory`]: where a workspace is served from, as this node knows it; the gateway asks
//!   it for every request and forwards what is served elsewhere (`gateway/forward.rs`).
//! - [`Node`] (`node.rs`): the placement loop of one node: heartbeat, renew, take a fair share,
//!   hand over the rest, stop deciding when it cannot renew; and the graceful leave.
//! - [`Claims`] (`claims.rs`): the leases this node holds, shared by the loop, the registry
//!   (which builds a placed workspace on its lease) and the metrics.
//! - `share.rs`: what a round decides from what it read (pure).
//! - `purge.rs`: deletes finished under the workspace's lease, by any node's round.
//! - [`Placed`] (`directory.rs`): the [`Directory`] the loop keeps current.
//!
//! See docs/design/cluster.md for the design and what is built.

mod directory;
mod node;
mod purge;
mod share;
mod stats;

#[cfg(test)]
mod tests;

pub use crate::config::NodeSettings as Settings;
pub use crate::workspaces::{Claims, ClusterStats, Held};
pub use directory::Placed;
pub use node::Node;
pub use stats::ForwardStats;

use crate::ids::WorkspaceId;

/// Where a workspace is served from, as this node knows it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// Here: this node holds its lease and has it loaded (or it is not a workspace any node
    /// serves: unknown, suspended, deleted; then this node answers as for a wrong credential,
    /// R27's no-probing rule).
    Here,
    /// Another node holds its lease: requests go to that node's base URL
    /// (`http://host:port`, no trailing slash).
    At(String),
    /// An active workspace that no node serves at this moment (its lease lapsed and nobody
    /// has taken it yet, or it is being handed over): the client is told to retry shortly.
    Nowhere,
}

/// What the gateway asks, per request, to know whether to serve or forward. Answers from
/// memory (no I/O, no await): the node keeps what it learnt from the database current in the
/// background.
pub trait Directory: Send + Sync + 'static {
    /// Where `ws` is served from.
    fn locate(&self, ws: &WorkspaceId) -> Location;
    /// This node's name, unique in the cluster (put in the header of what it forwards, so
    /// that a forwarded request is never forwarded again).
    fn node(&self) -> &str;
}
