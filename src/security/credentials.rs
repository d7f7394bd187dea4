//! What a workspace's channels prove themselves with (R27): the generic ingress's key, the
//! webhook secrets of signed channels, and the native platforms' settings (their app secrets,
//! secret tokens and auth tokens, and what their APIs are sent with). One value per
//! workspace, so that a webhook signed with one workspace's secret verifies at its own URLs
//! and at no other's. The gateway reads it through `Tenant::credentials`, nowhere else.
//!
//! `default`'s are the configuration's (`[security] ingress_key`, `[channels.*]
//! webhook_secret`, `[platforms.*]`); every other workspace's come from its own settings
//! (`config::WorkspaceSettings`) and share nothing with `default`'s, with one rule for the
//! ingress key: where the configuration closes the ingress (it sets a key), a workspace that
//! set none of its own is closed too, rather than open or opened by `default`'s key.

use std::collections::{BTreeMap, HashMap};

use super::{PlatformConfig, Security};
use crate::core::Channel;

/// Who may call a workspace's generic ingress on a channel without a webhook secret.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum IngressKey {
    /// Anyone (the development setup).
    #[default]
    Open,
    /// The bearer of this key.
    Required(String),
    /// No one: the configuration closes the ingress, and the workspace set no key of its own.
    Unset,
}

impl std::fmt::Debug for IngressKey {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Open => "Open",
            Self::Required(_) => "Required(..)",
            Self::Unset => "Unset",
        })
    }
}

/// One workspace's channel credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The generic ingress's key.
    pub ingress_key: IngressKey,
    /// Per channel: the HMAC-SHA256 secret its webhook signs bodies with.
    pub webhook_secrets: HashMap<Channel, String>,
    /// Per channel connected to its platform: the platform's settings, among them the secrets
    /// its webhooks are verified with (R23) and those its API is called with (R24).
    pub platforms: BTreeMap<Channel, PlatformConfig>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("ingress_key", &self.ingress_key)
            .field(
                "signed_channels",
                &self.webhook_secrets.keys().collect::<Vec<_>>(),
            )
            .field("platforms", &self.platforms.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// The configuration's: `default`'s.
    pub fn configured(security: &Security) -> Self {
        Self {
            ingress_key: match &security.ingress_key {
                Some(key) => IngressKey::Required(key.clone()),
                None => IngressKey::Open,
            },
            webhook_secrets: security.webhook_secrets.clone(),
            platforms: security.platforms.clone(),
        }
    }

    /// A workspace's own, from its settings (`ingress_key`, `webhook_secrets`, `platforms`,
    /// checked already), beside the configuration's `configured`, which decide only whether
    /// an ingress without a key of its own is open or closed.
    pub fn own(
        ingress_key: Option<String>,
        webhook_secrets: HashMap<Channel, String>,
        platforms: BTreeMap<Channel, PlatformConfig>,
        configured: &Credentials,
    ) -> Self {
        let ingress_key = match (ingress_key, &configured.ingress_key) {
            (Some(key), _) => IngressKey::Required(key),
            (None, IngressKey::Open) => IngressKey::Open,
            (None, _) => IngressKey::Unset,
        };
        Self {
            ingress_key,
            webhook_secrets,
            platforms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r27_a_workspace_without_an_ingress_key_is_closed_where_the_configuration_closes_it() {
        let closed = Credentials::configured(&Security {
            ingress_key: Some("the-configured-key".into()),
            ..Security::default()
        });
        let open = Credentials::configured(&Security::default());
        let own = |key: Option<&str>, configured| {
            Credentials::own(key.map(Into::into), HashMap::new(), BTreeMap::new(), configured).ingress_key
        };
        assert_eq!(own(None, &closed), IngressKey::Unset, "not the configured key");
        assert_eq!(own(None, &open), IngressKey::Open, "development");
        assert_eq!(own(Some("k"), &closed), IngressKey::Required("k".into()));
        assert!(!format!("{:?}", own(Some("k"), &open)).contains('k'));
    }
}
