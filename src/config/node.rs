//! How one node takes part in the cluster (`[cluster]` of the configuration, filled in by
//! `ClusterConfig::node_settings`).

use std::time::Duration;

/// One node's placement settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSettings {
    /// Its name, unique in the cluster (a restarted node may reuse it).
    pub node: String,
    /// The base URL other nodes reach it at (`http://host:port`, no trailing slash).
    pub advertise: String,
    /// How long a lease lasts unless renewed; also how long a node counts as live after its
    /// last heartbeat.
    pub lease: Duration,
    /// How often a placement round runs; shorter than `lease`.
    pub round: Duration,
}
