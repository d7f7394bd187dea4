//! A workspace's limits (R27) as data: what the platform API sets and shows, `workspaces.limits`
//! stores, and `[workspace_defaults]` gives new workspaces. Enforcing them is the workspaces
//! registry's (`workspaces::Fairness`).

use serde::{Deserialize, Serialize};

/// A workspace's limits, as the platform API sets and shows them and `workspaces.limits`
/// stores them. `None`: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Open WebSockets, agents' and supervisors' together.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// Agents (of any role).
    #[serde(default)]
    pub max_agents: Option<u32>,
    /// Channel calls (customer messages, bot journeys, statuses, native webhooks) per second,
    /// in bursts of twice that.
    #[serde(default)]
    pub ingress_per_second: Option<u32>,
    /// Bytes of message text and payload stored; new customer messages are refused once the
    /// workspace holds this many.
    #[serde(default)]
    pub max_stored_bytes: Option<u64>,
}

impl Limits {
    /// No limit at all.
    pub const UNLIMITED: Self = Self {
        max_connections: None,
        max_agents: None,
        ingress_per_second: None,
        max_stored_bytes: None,
    };

    /// Checks values that make no sense: a rate of 0 would refuse every call, which is what
    /// suspending a workspace is for.
    pub fn check(&self) -> Result<(), String> {
        if self.ingress_per_second == Some(0) {
            return Err("`ingress_per_second` must be at least 1 (null: no limit)".into());
        }
        Ok(())
    }

    /// As stored in `workspaces.limits`.
    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).expect("limits are plain numbers")
    }

    /// Read back from `workspaces.limits` (`{}`, the column's default: no limit).
    pub fn from_stored(text: &str) -> Result<Self, String> {
        let limits: Self = serde_json::from_str(text).map_err(|e| format!("limits {text:?}: {e}"))?;
        limits.check()?;
        Ok(limits)
    }
}
