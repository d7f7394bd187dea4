//! A workspace's settings (R27): what one contact centre sets for itself. Its queues and
//! routing, its channels' policies, the reopen notice and the timeouts the engine takes, and
//! its channel credentials: the ingress key, the webhook secrets and its native platforms.
//!
//! `default`'s are the configuration file's top-level keys of the same names
//! ([`Config::default_workspace`]), and they are checked by the same code
//! ([`WorkspaceSettings::engine`], [`WorkspaceSettings::credentials`]) as those every other
//! workspace is given as JSON over `PUT /v1/w/{workspace}/admin/settings`:
//!
//! ```json
//! { "accept_timeout_secs": 30, "grace_secs": 60, "reopen_notice": "…",
//!   "queues": [{ "id": "billing", "channels": ["whatsapp"], "sla_secs": 60 }],
//!   "channels": { "whatsapp": { "window_secs": 86400, "webhook_secret": "…" } },
//!   "ingress_key": "…",
//!   "platforms": { "telegram": { "bot_token": "…", "secret_token": "…" } } }
//! ```
//!
//! What a running workspace takes without a reload ([`WorkspaceSettings::needs_reload`]): its
//! `ingress_key` and its channels' `webhook_secret`s, which only verify calls. Everything else
//! is the engine's (queues, policies, timeouts, the notice) or its outbox's (the platforms send
//! with their settings), so a change to it reloads the workspace: unloaded and loaded again,
//! its agents resuming as after a failover (R17).
//!
//! Secrets are stored in clear in `workspaces.settings` (they are needed to verify and to
//! sign; SECURITY.md) and never shown again: [`WorkspaceSettings::redacted`] says which are
//! set, not what they are.
//!
//! [`Config::default_workspace`]: super::Config::default_workspace

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    names, positive, routing, AfterWindowName, ChannelConfig, ConfigError, PlatformTable, QueueConfig,
};
use crate::core::{AfterWindow, Channel, ChannelPolicy};
use crate::engine::EngineConfig;
use crate::security::Credentials;

/// The shortest webhook secret accepted: shorter ones are guessable.
const MIN_WEBHOOK_SECRET_BYTES: usize = 16;

/// The platform settings that are not secrets, shown as they are; every other one is a
/// credential (an access token, an app secret, a password) and only said to be set.
const PUBLIC_PLATFORM_SETTINGS: [&str; 9] = [
    "base_url",
    "phone_number_id",
    "template_language",
    "account_sid",
    "from",
    "webhook_url",
    "smtp_host",
    "smtp_port",
    "subject",
];

/// What [`WorkspaceSettings::redacted`] shows in place of a secret.
fn set_marker() -> Value {
    serde_json::json!({ "set": true })
}

/// One workspace's settings; every key optional, absent ones the platform's defaults.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSettings {
    /// R06 accept timeout, in seconds.
    #[serde(default)]
    pub accept_timeout_secs: Option<i64>,
    /// R17 grace period, in seconds.
    #[serde(default)]
    pub grace_secs: Option<i64>,
    /// What the customer gets when an agent reopens its chat (R04).
    #[serde(default)]
    pub reopen_notice: Option<String>,
    /// The queues; none: one per channel.
    #[serde(default)]
    pub queues: Vec<QueueConfig>,
    /// Channel policy overrides and webhook secrets.
    #[serde(
        default,
        deserialize_with = "names::by_channel",
        serialize_with = "names::by_channel_out"
    )]
    pub channels: BTreeMap<Channel, ChannelConfig>,
    /// The bearer key of its generic ingress, for channels without a webhook secret.
    #[serde(default)]
    pub ingress_key: Option<String>,
    /// Its native platforms (R23–R25), as `[platforms.<channel>]` tables.
    #[serde(
        default,
        deserialize_with = "names::by_channel",
        serialize_with = "names::by_channel_out"
    )]
    pub platforms: BTreeMap<Channel, PlatformTable>,
    /// Where its messages on channels without a platform go: the embedding product's
    /// webhook for this workspace. Absent: the configuration's `[outbound] webhook_url`,
    /// whose bodies then name the workspace (`workspace`).
    #[serde(default)]
    pub outbound_webhook_url: Option<String>,
}

impl WorkspaceSettings {
    /// Reads settings stored as JSON (the `workspaces.settings` column) and checks them as a
    /// whole against `base` ([`Self::check`]).
    pub fn from_json(text: &str, base: &EngineConfig) -> Result<Self, ConfigError> {
        let settings = Self::parse(text)?;
        settings.check(base)?;
        Ok(settings)
    }

    /// Reads settings given as JSON, naming the field that is wrong (`queues[0].sla_secs:
    /// invalid type …`, `unknown field …`); not yet checked as a whole.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut reader = serde_json::Deserializer::from_str(text);
        let settings: Self = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
            let at = e.path().to_string();
            ConfigError::Invalid(if at == "." {
                e.inner().to_string()
            } else {
                format!("{at}: {}", e.inner())
            })
        })?;
        reader.end().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(settings)
    }

    /// The settings as stored in `workspaces.settings`, secrets included.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("settings are plain data")
    }

    /// Checks what the types cannot: the engine takes them, the secrets are long enough, the
    /// platforms have what verifies their webhooks.
    pub fn check(&self, base: &EngineConfig) -> Result<(), ConfigError> {
        self.engine(base.clone())?;
        self.credentials(&Credentials::default())?;
        if let Some(url) = &self.outbound_webhook_url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| ConfigError::Invalid(format!("outbound_webhook_url: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::Invalid(
                    "outbound_webhook_url must be an http or https URL".into(),
                ));
            }
        }
        Ok(())
    }

    /// `base` (the process's engine settings: log and board bounds) with these settings.
    pub fn engine(&self, base: EngineConfig) -> Result<EngineConfig, ConfigError> {
        let mut engine = base;
        if let Some(secs) = self.accept_timeout_secs {
            engine.accept_timeout = positive("accept_timeout_secs", secs)?;
        }
        if let Some(secs) = self.grace_secs {
            engine.grace = positive("grace_secs", secs)?;
        }
        if let Some(notice) = &self.reopen_notice {
            if notice.trim().is_empty() {
                return Err(ConfigError::Invalid("reopen_notice must not be empty".into()));
            }
            engine.reopen_notice = notice.clone();
        }
        engine.queues = routing::setups(&self.queues)?;
        for (channel, c) in &self.channels {
            if !c.requires.is_empty() {
                routing::levels(&format!("channels.{channel}.requires"), &c.requires)?;
                engine.channel_needs.insert(*channel, c.requires.clone());
            }
            let policy = c.policy(*channel, engine.policies.of(*channel).to_owned())?;
            engine.policies.set(*channel, policy);
        }
        Ok(engine)
    }

    /// Its channel credentials, beside the configuration's `configured` (see
    /// [`Credentials::own`]); or which secret is missing or too short.
    pub fn credentials(&self, configured: &Credentials) -> Result<Credentials, ConfigError> {
        if self.ingress_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            return Err(ConfigError::Invalid("ingress_key must not be empty".into()));
        }
        let mut webhook_secrets = HashMap::new();
        for (channel, c) in &self.channels {
            if let Some(secret) = &c.webhook_secret {
                if secret.len() < MIN_WEBHOOK_SECRET_BYTES {
                    return Err(ConfigError::Invalid(format!(
                        "channels.{channel}.webhook_secret must be at least {MIN_WEBHOOK_SECRET_BYTES} bytes"
                    )));
                }
                webhook_secrets.insert(*channel, secret.clone());
            }
        }
        let mut platforms = BTreeMap::new();
        for (channel, table) in &self.platforms {
            platforms.insert(*channel, table.platform(*channel)?);
        }
        Ok(Credentials::own(
            self.ingress_key.clone(),
            webhook_secrets,
            platforms,
            configured,
        ))
    }

    /// Whether a running workspace must be reloaded to go from `self` to `new`: yes unless
    /// they differ only in what verifies calls (the ingress key, the webhook secrets).
    pub fn needs_reload(&self, new: &Self) -> bool {
        self.without_verification() != new.without_verification()
    }

    fn without_verification(&self) -> Value {
        let mut settings = self.clone();
        settings.ingress_key = None;
        for channel in settings.channels.values_mut() {
            channel.webhook_secret = None;
        }
        // A channel's table that held only its secret overrides nothing the engine takes.
        let untouched = serde_json::to_value(ChannelConfig::default()).expect("plain data");
        settings
            .channels
            .retain(|_, c| serde_json::to_value(&*c).expect("plain data") != untouched);
        serde_json::to_value(&settings).expect("settings are plain data")
    }

    /// The settings as `GET …/admin/settings` shows them: every secret replaced by
    /// `{"set": true}`, so that a reader learns which are set and nothing of them.
    pub fn redacted(&self) -> Value {
        let mut value = serde_json::to_value(self).expect("settings are plain data");
        let mark = |slot: &mut Value| {
            if !slot.is_null() {
                *slot = set_marker();
            }
        };
        if let Some(key) = value.get_mut("ingress_key") {
            mark(key);
        }
        if let Some(Value::Object(channels)) = value.get_mut("channels") {
            for channel in channels.values_mut() {
                if let Some(secret) = channel.get_mut("webhook_secret") {
                    mark(secret);
                }
            }
        }
        if let Some(Value::Object(platforms)) = value.get_mut("platforms") {
            for table in platforms.values_mut() {
                if let Value::Object(settings) = table {
                    for (key, setting) in settings.iter_mut() {
                        if !PUBLIC_PLATFORM_SETTINGS.contains(&key.as_str()) {
                            mark(setting);
                        }
                    }
                }
            }
        }
        value
    }
}

impl ChannelConfig {
    /// `policy` (the channel's so far) with these overrides.
    fn policy(&self, channel: Channel, mut policy: ChannelPolicy) -> Result<ChannelPolicy, ConfigError> {
        if let Some(secs) = self.window_secs {
            policy.window = (secs != 0).then(|| positive("window_secs", secs)).transpose()?;
        }
        let tag = self
            .human_agent_tag_secs
            .map(|s| positive("human_agent_tag_secs", s))
            .transpose()?;
        match self.after_window {
            Some(AfterWindowName::Templates) => policy.after_window = AfterWindow::Templates,
            Some(AfterWindowName::Nothing) => policy.after_window = AfterWindow::Nothing,
            Some(AfterWindowName::HumanAgentTag) => {
                policy.after_window = AfterWindow::HumanAgentTag {
                    until: tag.unwrap_or(chrono::Duration::days(7)),
                }
            }
            None => {
                if let (AfterWindow::HumanAgentTag { until }, Some(t)) = (&mut policy.after_window, tag) {
                    *until = t;
                }
            }
        }
        if let Some(n) = self.max_len {
            if n == 0 {
                return Err(ConfigError::Invalid(format!(
                    "channels.{channel}.max_len must be positive"
                )));
            }
            policy.max_len = n;
        }
        if let Some(secs) = self.revive_window_secs {
            policy.revive_window = positive("revive_window_secs", secs)?;
        }
        // The core compares lowercased, trimmed text with these.
        let lower = |words: &[String]| words.iter().map(|w| w.trim().to_lowercase()).collect::<Vec<_>>();
        if let Some(words) = &self.opt_out_words {
            policy.opt_out_words = lower(words);
        }
        if let Some(words) = &self.opt_in_words {
            policy.opt_in_words = lower(words);
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests;
