//! What a queue asks of routing (R19–R21): its priority and SLA, the steps of its workflow,
//! its boosts, its opening hours and its overflow; and what a chat asked for at ingress.
//!
//! Everything here is plain data and arithmetic on a `now` that is passed in: the router
//! (`router.rs`) decides with it, the engine builds it from the configuration.

use std::collections::BTreeMap;

use chrono::Duration;

use super::hours::Hours;
use crate::clock::Timestamp;
use crate::ids::QueueId;

/// Skills by name, each with a level from 1 to [`MAX_LEVEL`] (R19). Held by an agent, it says
/// how good the agent is; required by a chat, it says the least level that will do.
pub type Skills = BTreeMap<String, u8>;

/// The highest skill level.
pub const MAX_LEVEL: u8 = 5;

/// The skill a language requirement stands for: a chat in Spanish needs `language:es`.
/// Languages are skills like any other, so agents list them with their levels.
pub fn language_skill(language: &str) -> String {
    format!("language:{}", language.trim().to_ascii_lowercase())
}

/// Whether every level in `skills` is between 1 and [`MAX_LEVEL`]; the first that is not.
pub fn bad_level(skills: &Skills) -> Option<(&str, u8)> {
    skills
        .iter()
        .find(|(_, level)| !(1..=MAX_LEVEL).contains(*level))
        .map(|(skill, level)| (skill.as_str(), *level))
}

/// Adds `more` to `needs`, keeping the higher level where both name a skill.
pub fn merge_needs(needs: &mut Skills, more: &Skills) {
    for (skill, level) in more {
        let held = needs.entry(skill.clone()).or_insert(*level);
        *held = (*held).max(*level);
    }
}

/// What a chat asked of routing when it came in (R19), kept with the chat so that it waits
/// for the same agents after a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingAsk {
    /// The queue it asked for; none means its channel's queue.
    pub queue: Option<QueueId>,
    /// The customer's language, a requirement of [`language_skill`] at level 1.
    pub language: Option<String>,
    /// Skills it requires, with their least levels.
    pub skills: Skills,
    /// Customer attributes that routing rules match (`tier = "vip"`).
    pub attributes: BTreeMap<String, String>,
}

impl RoutingAsk {
    /// Whether it asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.queue.is_none()
            && self.language.is_none()
            && self.skills.is_empty()
            && self.attributes.is_empty()
    }
}

/// One step of a queue's workflow (R19): the requirements it adds, and how long a chat waits
/// at it before the next, wider step. The last step is the fallback and never times out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Requirements of the queue at this step.
    pub needs: Skills,
    /// Whether the chat's own requirements (channel, language, ingress skills, rules) still
    /// hold at this step; a wider step may drop them.
    pub keeps_chat_needs: bool,
    /// How long a chat stays at this step.
    pub timeout: Option<Duration>,
}

/// How a waiting chat's priority rises with time (R20).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Boost {
    /// Every this long of waiting adds [`Boost::by`].
    pub every: Option<Duration>,
    /// What each `every` adds.
    pub by: i32,
    /// The most the wait may add.
    pub max: Option<i32>,
    /// From this long before the SLA is due (and after), [`Boost::near_due_by`] is added.
    pub near_due: Option<Duration>,
    /// What a near or missed SLA adds.
    pub near_due_by: i32,
}

/// A routing rule of a queue: chats whose attributes all match get its priority and needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// Attribute values that must all match.
    pub when: BTreeMap<String, String>,
    /// What it adds to the chat's priority.
    pub priority: i32,
    /// What it adds to the chat's requirements.
    pub needs: Skills,
}

/// Everything routing knows about one queue.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueuePlan {
    /// The queue's priority; higher goes first (R20).
    pub priority: i32,
    /// Answer within this long (R20).
    pub sla: Option<Duration>,
    /// The workflow (R19); empty means one step with the chat's own requirements.
    pub steps: Vec<Step>,
    /// How priority rises with waiting (R20).
    pub boost: Boost,
    /// Rules over customer attributes (R19, R20).
    pub rules: Vec<Rule>,
    /// Opening hours; none means always open (R21).
    pub hours: Option<Hours>,
    /// Where chats go while it is closed, if anywhere (R21).
    pub overflow: Option<QueueId>,
}

/// What routing holds for one waiting chat, worked out once when it is queued: its own
/// requirements and its priority over the queue's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ticket {
    /// The chat's own requirements: its channel's, its language, its ingress skills, and
    /// those of the rules it matched.
    pub needs: Skills,
    /// Added to the queue's priority by the rules it matched.
    pub priority: i32,
}

impl QueuePlan {
    /// The ticket of a chat that asked for `ask` on a channel that requires `channel_needs`.
    pub fn ticket(&self, ask: &RoutingAsk, channel_needs: &Skills) -> Ticket {
        let mut ticket = Ticket {
            needs: channel_needs.clone(),
            priority: 0,
        };
        if let Some(language) = &ask.language {
            merge_needs(&mut ticket.needs, &Skills::from([(language_skill(language), 1)]));
        }
        merge_needs(&mut ticket.needs, &ask.skills);
        for rule in &self.rules {
            let matches = rule
                .when
                .iter()
                .all(|(key, value)| ask.attributes.get(key) == Some(value));
            if matches {
                ticket.priority += rule.priority;
                merge_needs(&mut ticket.needs, &rule.needs);
            }
        }
        ticket
    }

    /// How many steps the workflow has (at least one).
    pub fn step_count(&self) -> usize {
        self.steps.len().max(1)
    }

    /// What a chat with `ticket` requires at `step`.
    pub fn needs_at(&self, step: usize, ticket: &Ticket) -> Skills {
        match self.steps.get(step) {
            None => ticket.needs.clone(),
            Some(s) => {
                let mut needs = s.needs.clone();
                if s.keeps_chat_needs {
                    merge_needs(&mut needs, &ticket.needs);
                }
                needs
            }
        }
    }

    /// How long a chat stays at `step`; none at the last.
    pub fn step_timeout(&self, step: usize) -> Option<Duration> {
        if step + 1 >= self.step_count() {
            return None;
        }
        self.steps.get(step).and_then(|s| s.timeout)
    }

    /// The step a chat that has waited since `since` has reached at `now`.
    pub fn step_at(&self, since: Timestamp, now: Timestamp) -> usize {
        let mut until = since;
        for step in 0..self.step_count() {
            match self.step_timeout(step) {
                Some(t) if until + t <= now => until += t,
                _ => return step,
            }
        }
        self.step_count() - 1
    }

    /// When the SLA of a chat waiting since `since` is due.
    pub fn due_at(&self, since: Timestamp) -> Option<Timestamp> {
        self.sla.map(|sla| since + sla)
    }

    /// A waiting chat's effective priority at `now` (R20): the queue's, plus its ticket's,
    /// plus what waiting and a near SLA add. Never falls as the chat waits longer, so the
    /// oldest of chats alike is always the first of them.
    pub fn effective_priority(&self, ticket_priority: i32, since: Timestamp, now: Timestamp) -> i64 {
        let mut priority = i64::from(self.priority) + i64::from(ticket_priority);
        let waited = now - since;
        if let Some(every) = self.boost.every.filter(|e| *e > Duration::zero()) {
            let steps =
                (waited.num_milliseconds().max(0) / every.num_milliseconds()).min(i64::from(i32::MAX));
            let mut add = steps.saturating_mul(i64::from(self.boost.by));
            if let Some(max) = self.boost.max {
                add = add.min(i64::from(max));
            }
            priority += add;
        }
        if let (Some(due), Some(near)) = (self.due_at(since), self.boost.near_due) {
            if now >= due - near {
                priority += i64::from(self.boost.near_due_by);
            }
        }
        priority
    }

    /// Whether the queue takes offers at `now` (R21).
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.hours.as_ref().is_none_or(|h| h.is_open(now))
    }
}

#[cfg(test)]
mod tests;
