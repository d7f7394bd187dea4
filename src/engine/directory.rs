//! Who the agents are: their profiles, and the tokens that stand for them.
//!
//! A component with its own maps and no lock of the engine's order: its shard guards are never
//! held while anything else is taken, and what it returns is cloned out. Keeping a profile and
//! the router's seat in step is the caller's job (under the router's lock: `agents.rs`).
//!
//! Tokens are kept as SHA-256 digests ([`TokenHash`]), never in clear: the store records the
//! same digest (R27), so a token given over the admin API still opens the agent's socket after
//! a restart, and the database holds nothing that opens one.

use dashmap::DashMap;

use crate::core::{AgentProfile, Skills};
use crate::ids::AgentId;
use crate::security::TokenHash;

/// Every agent's profile and token.
#[derive(Debug, Default)]
pub(super) struct Directory {
    profiles: DashMap<AgentId, AgentProfile>,
    tokens: DashMap<TokenHash, AgentId>,
    /// The other way round, so that replacing or revoking a token is not a scan.
    token_of: DashMap<AgentId, TokenHash>,
}

impl Directory {
    /// The token whose digest is `token` now stands for `agent`, and the agent's previous
    /// token for nobody.
    pub(super) fn set_token(&self, agent: &AgentId, token: TokenHash) {
        if let Some(old) = self.token_of.insert(agent.clone(), token) {
            self.tokens.remove(&old);
        }
        self.tokens.insert(token, agent.clone());
    }

    /// Records `profile`; whether the agent existed before.
    pub(super) fn insert(&self, profile: AgentProfile) -> bool {
        self.profiles.insert(profile.id.clone(), profile).is_some()
    }

    /// Forgets the agent's profile; whether it had one. Its token stays until
    /// [`Directory::revoke_token`].
    pub(super) fn remove(&self, agent: &AgentId) -> bool {
        self.profiles.remove(agent).is_some()
    }

    /// The agent's token stands for nobody any more.
    pub(super) fn revoke_token(&self, agent: &AgentId) {
        if let Some((_, token)) = self.token_of.remove(agent) {
            self.tokens.remove(&token);
        }
    }

    /// Whether the agent exists.
    pub(super) fn contains(&self, agent: &AgentId) -> bool {
        self.profiles.contains_key(agent)
    }

    /// How many agents there are.
    pub(super) fn len(&self) -> usize {
        self.profiles.len()
    }

    /// One agent's profile.
    pub(super) fn profile(&self, agent: &AgentId) -> Option<AgentProfile> {
        self.profiles.get(agent).map(|p| p.clone())
    }

    /// The agent `token` stands for: looked up by its digest.
    pub(super) fn by_token(&self, token: &str) -> Option<AgentProfile> {
        let agent = self.tokens.get(&TokenHash::of(token))?.clone();
        self.profile(&agent)
    }

    /// Sets the agent's limit in its profile; whether the agent exists.
    pub(super) fn set_limit(&self, agent: &AgentId, limit: u32) -> bool {
        match self.profiles.get_mut(agent) {
            Some(mut profile) => {
                profile.limit = limit;
                true
            }
            None => false,
        }
    }

    /// Sets an agent's skills (R19); false if there is no such agent.
    pub(super) fn set_skills(&self, agent: &AgentId, skills: Skills) -> bool {
        match self.profiles.get_mut(agent) {
            Some(mut profile) => {
                profile.skills = skills;
                true
            }
            None => false,
        }
    }

    /// Every profile, sorted by id.
    pub(super) fn profiles(&self) -> Vec<AgentProfile> {
        let mut profiles: Vec<AgentProfile> = self.profiles.iter().map(|p| p.clone()).collect();
        profiles.sort_by(|a, b| a.id.cmp(&b.id));
        profiles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(id: &str) -> AgentProfile {
        AgentProfile {
            id: AgentId::from(id),
            name: id.to_owned(),
            role: crate::core::Role::default(),
            limit: 3,
            queues: Vec::new(),
            skills: Default::default(),
            channel_limits: Default::default(),
        }
    }

    #[test]
    fn a_new_token_replaces_the_old_one_and_a_revoked_one_stands_for_nobody() {
        let d = Directory::default();
        let ana = AgentId::from("ana");
        d.insert(profile("ana"));
        d.set_token(&ana, TokenHash::of("t1"));
        d.set_token(&ana, TokenHash::of("t2"));
        assert!(d.by_token("t1").is_none(), "the old token is gone");
        assert_eq!(d.by_token("t2").map(|p| p.id), Some(ana.clone()));
        assert!(d.remove(&ana));
        assert!(d.by_token("t2").is_none(), "no profile, no agent");
        d.revoke_token(&ana);
        assert!(d.tokens.is_empty() && d.token_of.is_empty());
    }
}
