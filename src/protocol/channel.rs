//! The channels as clients and platforms' connectors read them, mapped from the core's
//! [`Channel`](crate::core::Channel) one variant at a time (see [`super::agent`] for why).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::channel as core;

/// A messaging channel a customer writes on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
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

impl From<core::Channel> for Channel {
    fn from(channel: core::Channel) -> Self {
        match channel {
            core::Channel::Whatsapp => Channel::Whatsapp,
            core::Channel::Messenger => Channel::Messenger,
            core::Channel::Instagram => Channel::Instagram,
            core::Channel::Wechat => Channel::Wechat,
            core::Channel::Telegram => Channel::Telegram,
            core::Channel::Line => Channel::Line,
            core::Channel::Webchat => Channel::Webchat,
            core::Channel::Sms => Channel::Sms,
            core::Channel::Email => Channel::Email,
        }
    }
}

impl From<Channel> for core::Channel {
    fn from(channel: Channel) -> Self {
        match channel {
            Channel::Whatsapp => core::Channel::Whatsapp,
            Channel::Messenger => core::Channel::Messenger,
            Channel::Instagram => core::Channel::Instagram,
            Channel::Wechat => core::Channel::Wechat,
            Channel::Telegram => core::Channel::Telegram,
            Channel::Line => core::Channel::Line,
            Channel::Webchat => core::Channel::Webchat,
            Channel::Sms => core::Channel::Sms,
            Channel::Email => core::Channel::Email,
        }
    }
}
