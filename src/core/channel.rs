//! Channels and their messaging policies (window, what may follow it, message length).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::Duration;

use crate::clock::Timestamp;

/// A messaging channel a customer writes on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Channel {
    /// WhatsApp Business.
    Whatsapp,
    /// Facebook Messenger.
    Messenger,
    /// Instagram direct messages.
    Instagram,
    /// WeChat.
    Wechat,
    /// Telegram.
    Telegram,
    /// LINE.
    Line,
    /// The website chat widget.
    Webchat,
    /// SMS.
    Sms,
    /// Email.
    Email,
}

impl Channel {
    /// Every channel, in a stable order.
    pub const ALL: [Channel; 9] = [
        Channel::Whatsapp,
        Channel::Messenger,
        Channel::Instagram,
        Channel::Wechat,
        Channel::Telegram,
        Channel::Line,
        Channel::Webchat,
        Channel::Sms,
        Channel::Email,
    ];

    /// The channel's name (`whatsapp`, `webchat`, …) in URLs, default queue ids and messages;
    /// the same as the wire's (`protocol::Channel`), which the protocol's tests check.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Whatsapp => "whatsapp",
            Channel::Messenger => "messenger",
            Channel::Instagram => "instagram",
            Channel::Wechat => "wechat",
            Channel::Telegram => "telegram",
            Channel::Line => "line",
            Channel::Webchat => "webchat",
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }

    /// The published platform rules, used when the configuration says nothing.
    pub fn default_policy(self) -> ChannelPolicy {
        let day = Duration::hours(24);
        let (window, after_window) = match self {
            Channel::Whatsapp => (Some(day), AfterWindow::Templates),
            Channel::Messenger | Channel::Instagram => (
                Some(day),
                AfterWindow::HumanAgentTag {
                    until: Duration::days(7),
                },
            ),
            Channel::Wechat => (Some(Duration::hours(48)), AfterWindow::Nothing),
            Channel::Telegram | Channel::Line | Channel::Webchat | Channel::Sms | Channel::Email => {
                (None, AfterWindow::Templates)
            }
        };
        let max_len = match self {
            Channel::Email => 10_240,
            Channel::Sms => 1_600,
            Channel::Messenger | Channel::Instagram => 2_000,
            _ => 1_024,
        };
        let words = |list: &[&str]| list.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let (opt_out_words, opt_in_words) = match self {
            // The carriers' conventions, which Twilio and others also enforce themselves.
            Channel::Sms => (
                words(&["#stop", "stop", "stopall", "unsubscribe", "cancel", "end", "quit"]),
                words(&["start", "unstop"]),
            ),
            _ => (words(&["#stop"]), Vec::new()),
        };
        ChannelPolicy {
            window,
            after_window,
            max_len,
            revive_window: day,
            opt_out_words,
            opt_in_words,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a channel name.
#[derive(Debug, thiserror::Error)]
#[error("unknown channel `{0}` (expected one of whatsapp, messenger, instagram, wechat, telegram, line, webchat, sms, email)")]
pub struct UnknownChannel(pub String);

impl FromStr for Channel {
    type Err = UnknownChannel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownChannel(s.to_owned()))
    }
}

/// What a business may still send once the messaging window has closed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AfterWindow {
    /// One template ("utility push") message (R07).
    Templates,
    /// Messages tagged `human_agent` (any number), and one template, until this long after
    /// the customer's last message.
    HumanAgentTag {
        /// Measured from the customer's last message.
        until: Duration,
    },
    /// Nothing until the customer writes again.
    Nothing,
}

/// A channel's messaging rules.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ChannelPolicy {
    /// How long after the customer's last message the business may write freely; `None` for
    /// channels without a window.
    pub window: Option<Duration>,
    /// What may be sent after the window.
    pub after_window: AfterWindow,
    /// Maximum message length, in characters.
    pub max_len: usize,
    /// On channels without a window: how long after a close the customer's return revives the
    /// same chat (R11), and how long a reopened chat waits for the customer.
    pub revive_window: Duration,
    /// Whole messages that opt the customer out (R08, R26), lowercase: `#stop` everywhere,
    /// and the channel's own conventions (SMS: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT).
    pub opt_out_words: Vec<String>,
    /// Whole messages that opt the customer back in (R26; SMS: START, UNSTOP), lowercase.
    pub opt_in_words: Vec<String>,
}

impl ChannelPolicy {
    /// Whether `text`, as a whole message, opts out (R08, R26): compared without case and
    /// surrounding space.
    pub fn is_opt_out(&self, text: &str) -> bool {
        let text = text.trim().to_lowercase();
        self.opt_out_words.contains(&text)
    }

    /// Whether `text`, as a whole message, opts back in (R26).
    pub fn is_opt_in(&self, text: &str) -> bool {
        let text = text.trim().to_lowercase();
        self.opt_in_words.contains(&text)
    }

    /// When the messaging window that `last_customer_message` opened closes, if it does.
    pub fn window_expires_at(&self, last_customer_message: Option<Timestamp>) -> Option<Timestamp> {
        let window = self.window?;
        // A chat the customer never wrote in (none today) has a window that closed at once.
        Some(last_customer_message.map_or(Timestamp::MIN_UTC, |at| at + window))
    }

    /// Whether the window is open at `now` (always, on a channel without one).
    pub fn window_open(&self, last_customer_message: Option<Timestamp>, now: Timestamp) -> bool {
        self.window_expires_at(last_customer_message)
            .is_none_or(|expires| now < expires)
    }
}

/// The policy of every channel: the defaults, overridden by configuration.
#[derive(Clone, Debug)]
pub struct Policies(BTreeMap<Channel, ChannelPolicy>);

impl Policies {
    /// Overrides the policy of one channel.
    pub fn set(&mut self, channel: Channel, policy: ChannelPolicy) {
        self.0.insert(channel, policy);
    }

    /// The policy of `channel`.
    pub fn of(&self, channel: Channel) -> &ChannelPolicy {
        // Every channel is filled in by `default`; `set` only replaces.
        &self.0[&channel]
    }
}

impl Default for Policies {
    fn default() -> Self {
        Self(
            Channel::ALL
                .into_iter()
                .map(|c| (c, c.default_policy()))
                .collect(),
        )
    }
}
