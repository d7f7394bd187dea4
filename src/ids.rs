//! Id newtypes, so an agent id can never be passed where a chat id is meant.

use std::fmt;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(Arc::from(s))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }
    };
}

id_type!(
    /// An agent (or supervisor, or admin): the person behind one or more connections.
    AgentId
);
id_type!(
    /// A customer, across all of its channel identities.
    CustomerId
);
id_type!(
    /// A chat (conversation): one customer on one channel.
    ChatId
);
id_type!(
    /// A routing queue. By default there is one per channel, named after it.
    QueueId
);

/// A workspace: one contact centre of the engine (R27), named in paths as
/// `/v1/w/{workspace}/…`. Unlike the other ids it is checked when made, because it comes from
/// URLs and will name rows and leases: 1 to 63 characters, lowercase letters, digits and `-`,
/// not starting with `-` (`^[a-z0-9][a-z0-9-]{0,62}$`), so that it is safe in a path, a metric
/// label and a DNS name alike.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkspaceId(Arc<str>);

/// Why a text is not a [`WorkspaceId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{id}` is not a workspace id: {why} (1 to 63 of a-z, 0-9 and `-`, starting with a letter or digit)")]
pub struct InvalidWorkspaceId {
    /// The text, shortened if it was long.
    pub id: String,
    /// What is wrong with it.
    pub why: String,
}

impl WorkspaceId {
    /// The longest id allowed: a DNS label's limit.
    pub const MAX_LEN: usize = 63;

    /// The workspace the unprefixed paths serve and the first run creates.
    pub fn default_workspace() -> Self {
        Self(Arc::from("default"))
    }

    /// Checks `id`.
    pub fn parse(id: &str) -> Result<Self, InvalidWorkspaceId> {
        let invalid = |why: String| InvalidWorkspaceId {
            // Echoed in errors and logs: a hostile path must not make them long.
            id: id.chars().take(Self::MAX_LEN + 1).collect(),
            why,
        };
        let Some(first) = id.chars().next() else {
            return Err(invalid("it is empty".into()));
        };
        if first == '-' {
            return Err(invalid("it starts with `-`".into()));
        }
        if let Some(bad) = id
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(invalid(format!("it contains {bad:?}")));
        }
        // Only ASCII from here on: bytes are characters.
        if id.len() > Self::MAX_LEN {
            return Err(invalid(format!("it has {} characters", id.len())));
        }
        Ok(Self(Arc::from(id)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `default`, the workspace of the unprefixed paths.
    pub fn is_default(&self) -> bool {
        &*self.0 == "default"
    }
}

impl std::str::FromStr for WorkspaceId {
    type Err = InvalidWorkspaceId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for WorkspaceId {
    type Error = InvalidWorkspaceId;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<WorkspaceId> for String {
    fn from(id: WorkspaceId) -> Self {
        id.0.to_string()
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkspaceId({:?})", &*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r27_workspace_ids_are_validated() {
        for good in ["default", "a", "acme-1", "0", "9lives", &"a".repeat(63)] {
            let id = WorkspaceId::parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!(id.as_str(), good);
        }
        let refused = |id: &str| WorkspaceId::parse(id).expect_err(id).to_string();
        assert!(refused("").contains("it is empty"), "{}", refused(""));
        assert!(refused("-acme").contains("starts with `-`"));
        assert!(refused("Acme").contains("contains 'A'"), "{}", refused("Acme"));
        assert!(refused("ac_me").contains("contains '_'"));
        assert!(refused("a/b").contains("contains '/'"));
        assert!(refused("acmé").contains("contains 'é'"));
        assert!(refused(&"a".repeat(64)).contains("it has 64 characters"));
        // Every message names the id and the rule, so that a caller can fix it.
        let message = refused("Acme");
        assert!(message.starts_with("`Acme` is not a workspace id"), "{message}");
        assert!(message.contains("a-z, 0-9 and `-`"), "{message}");
        // A hostile id is not echoed at any length.
        assert!(refused(&"x".repeat(10_000)).len() < 250);
        // The same rule when read from JSON or text.
        assert!(serde_json::from_str::<WorkspaceId>("\"Acme\"").is_err());
        assert_eq!(
            serde_json::from_str::<WorkspaceId>("\"acme\"").ok(),
            Some(WorkspaceId::parse("acme").expect("valid"))
        );
        assert_eq!(
            "acme".parse::<WorkspaceId>().map(|w| w.to_string()).ok(),
            Some("acme".into())
        );
        assert_eq!(WorkspaceId::default_workspace().as_str(), "default");
    }
}
