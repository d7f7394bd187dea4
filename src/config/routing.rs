//! The routing part of the configuration (R19–R22): queues with their priority, SLA,
//! workflow steps, boosts, rules, opening hours and overflow.
//!
//! ```toml
//! [[queues]]
//! id = "billing"
//! channels = ["whatsapp", "webchat"]   # new chats of these channels come here; may be empty
//! priority = 10                         # higher goes first (R20)
//! sla_secs = 60                         # answer within (R20)
//! overflow = "night"                    # where chats go while it is closed (R21)
//! after_hours_reply = "We are closed; we answer from 9:00."   # sent once per chat (R21)
//!
//! [[queues.steps]]                      # the workflow (R19): each step after the previous's timeout
//! requires = { billing = 3 }            # skill = least level (1-5)
//! timeout_secs = 60
//! [[queues.steps]]                      # the last step is the fallback; no timeout
//! requires = { billing = 1 }
//! keep_chat_requirements = false        # drop the chat's own (language, ingress skills)
//!
//! [queues.boost]                        # priority rises as a chat waits (R20)
//! every_secs = 30                       # +by for every 30 s waited
//! by = 1
//! max = 10
//! near_due_secs = 15                    # +near_due_by from 15 s before the SLA is due
//! near_due_by = 5
//!
//! [[queues.rules]]                      # customer attributes given at ingress (R19, R20)
//! when = { tier = "vip" }
//! priority = 20
//! requires = {}
//!
//! [queues.hours]                        # opening hours (R21); absent: always open
//! time_zone = "Europe/Madrid"
//! week = { mon = ["09:00-17:00"], tue = ["09:00-17:00"], sat = ["10:00-14:00"] }
//! holidays = ["2026-12-25"]
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{positive, ConfigError};
use crate::core::queue::{bad_level, Boost, QueuePlan, Rule, Skills, Step};
use crate::core::{Channel, Hours};
use crate::engine::{QueueSetup, DEFAULT_AFTER_HOURS_REPLY};
use crate::ids::QueueId;

/// A queue, the channels that feed it, and how it routes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Its id.
    pub id: String,
    /// The channels whose new chats wait in it.
    #[serde(
        default,
        deserialize_with = "super::names::channels",
        serialize_with = "super::names::channels_out"
    )]
    pub channels: Vec<Channel>,
    #[serde(default)]
    priority: i32,
    sla_secs: Option<i64>,
    #[serde(default)]
    steps: Vec<StepConfig>,
    #[serde(default)]
    boost: BoostConfig,
    #[serde(default)]
    rules: Vec<RuleConfig>,
    hours: Option<HoursConfig>,
    overflow: Option<String>,
    after_hours_reply: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct StepConfig {
    #[serde(default)]
    requires: Skills,
    #[serde(default = "yes")]
    keep_chat_requirements: bool,
    timeout_secs: Option<i64>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct BoostConfig {
    every_secs: Option<i64>,
    #[serde(default)]
    by: i32,
    max: Option<i32>,
    near_due_secs: Option<i64>,
    #[serde(default)]
    near_due_by: i32,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    when: BTreeMap<String, String>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    requires: Skills,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct HoursConfig {
    time_zone: String,
    #[serde(default)]
    week: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    holidays: Vec<String>,
}

/// Checks that every level of `skills` (named by `key`) is from 1 to 5.
pub(super) fn levels(key: &str, skills: &Skills) -> Result<(), ConfigError> {
    match bad_level(skills) {
        Some((skill, level)) => Err(ConfigError::Invalid(format!(
            "{key}: skill `{skill}` has level {level}; levels go from 1 to 5"
        ))),
        None => Ok(()),
    }
}

impl QueueConfig {
    /// The queue as the engine takes it, or what is wrong with it (naming the queue and key).
    pub(super) fn setup(&self) -> Result<QueueSetup, ConfigError> {
        let at = |key: &str| format!("queues.{}.{key}", self.id);
        let mut steps = Vec::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            levels(&at(&format!("steps[{i}].requires")), &step.requires)?;
            let last = i + 1 == self.steps.len();
            let timeout = match (step.timeout_secs, last) {
                (Some(secs), _) => Some(positive(&at(&format!("steps[{i}].timeout_secs")), secs)?),
                (None, true) => None,
                (None, false) => {
                    return Err(ConfigError::Invalid(format!(
                        "{}: only the last step may go without timeout_secs",
                        at(&format!("steps[{i}]"))
                    )))
                }
            };
            steps.push(Step {
                needs: step.requires.clone(),
                keeps_chat_needs: step.keep_chat_requirements,
                timeout,
            });
        }
        let b = &self.boost;
        if b.by < 0 || b.near_due_by < 0 || b.max.is_some_and(|m| m < 0) {
            // A boost that lowered priority would let a younger chat overtake an older one of
            // the same kind, which the router's index relies on never happening.
            return Err(ConfigError::Invalid(format!(
                "{}: by, max and near_due_by may not be negative",
                at("boost")
            )));
        }
        let boost = Boost {
            every: b
                .every_secs
                .map(|s| positive(&at("boost.every_secs"), s))
                .transpose()?,
            by: b.by,
            max: b.max,
            near_due: b
                .near_due_secs
                .map(|s| positive(&at("boost.near_due_secs"), s))
                .transpose()?,
            near_due_by: b.near_due_by,
        };
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, rule) in self.rules.iter().enumerate() {
            levels(&at(&format!("rules[{i}].requires")), &rule.requires)?;
            if rule.priority < 0 {
                return Err(ConfigError::Invalid(format!(
                    "{}: priority may not be negative (raise the queue's instead)",
                    at(&format!("rules[{i}]"))
                )));
            }
            rules.push(Rule {
                when: rule.when.clone(),
                priority: rule.priority,
                needs: rule.requires.clone(),
            });
        }
        let hours = self
            .hours
            .as_ref()
            .map(|h| {
                let week: Vec<(String, Vec<String>)> = h.week.clone().into_iter().collect();
                Hours::new(&h.time_zone, &week, &h.holidays)
                    .map_err(|e| ConfigError::Invalid(format!("{}: {e}", at("hours"))))
            })
            .transpose()?;
        if self.overflow.as_deref() == Some(self.id.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "{}: a queue cannot overflow to itself",
                at("overflow")
            )));
        }
        Ok(QueueSetup {
            id: QueueId::from(self.id.as_str()),
            channels: self.channels.clone(),
            plan: QueuePlan {
                priority: self.priority,
                sla: self.sla_secs.map(|s| positive(&at("sla_secs"), s)).transpose()?,
                steps,
                boost,
                rules,
                hours,
                overflow: self.overflow.as_deref().map(QueueId::from),
            },
            after_hours_reply: self
                .after_hours_reply
                .clone()
                .unwrap_or_else(|| DEFAULT_AFTER_HOURS_REPLY.into()),
        })
    }
}

/// Every queue of the configuration, checked as a whole: ids once each, overflows to queues
/// that exist, a channel in one queue at most.
pub(super) fn setups(queues: &[QueueConfig]) -> Result<Vec<QueueSetup>, ConfigError> {
    let setups = queues
        .iter()
        .map(QueueConfig::setup)
        .collect::<Result<Vec<_>, _>>()?;
    for (i, q) in setups.iter().enumerate() {
        if setups[..i].iter().any(|p| p.id == q.id) {
            return Err(ConfigError::Invalid(format!(
                "queue `{}` is configured twice",
                q.id
            )));
        }
        if let Some(overflow) = &q.plan.overflow {
            if !setups.iter().any(|p| &p.id == overflow) {
                return Err(ConfigError::Invalid(format!(
                    "queues.{}.overflow: no queue `{overflow}`",
                    q.id
                )));
            }
        }
        for channel in &q.channels {
            if let Some(other) = setups[..i].iter().find(|p| p.channels.contains(channel)) {
                return Err(ConfigError::Invalid(format!(
                    "channel {channel} is in queues `{}` and `{}`; new chats of a channel go to one queue",
                    other.id, q.id
                )));
            }
        }
    }
    Ok(setups)
}
