//! How the configuration file (and the admin API's agent bodies, which share its shape) spell
//! channels and roles. The core's types carry no serde: the names are written here, and each
//! `From` matches every variant, so renaming a core variant cannot change what a config file
//! must say. A wrong name is refused by serde, naming it and the names it expected.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serializer};

use crate::core::{Channel, Role};

/// A channel as the configuration names it (`[channels.whatsapp]`, `channels = ["sms"]`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ChannelName {
    Whatsapp,
    Messenger,
    Instagram,
    Wechat,
    Telegram,
    Line,
    Webchat,
    Sms,
    Email,
}

impl From<ChannelName> for Channel {
    fn from(name: ChannelName) -> Self {
        match name {
            ChannelName::Whatsapp => Channel::Whatsapp,
            ChannelName::Messenger => Channel::Messenger,
            ChannelName::Instagram => Channel::Instagram,
            ChannelName::Wechat => Channel::Wechat,
            ChannelName::Telegram => Channel::Telegram,
            ChannelName::Line => Channel::Line,
            ChannelName::Webchat => Channel::Webchat,
            ChannelName::Sms => Channel::Sms,
            ChannelName::Email => Channel::Email,
        }
    }
}

/// A role as the configuration names it (`role = "supervisor"`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RoleName {
    Agent,
    Supervisor,
    Admin,
}

impl From<RoleName> for Role {
    fn from(name: RoleName) -> Self {
        match name {
            RoleName::Agent => Role::Agent,
            RoleName::Supervisor => Role::Supervisor,
            RoleName::Admin => Role::Admin,
        }
    }
}

/// Reads a role (`#[serde(deserialize_with = "names::role")]`).
pub(super) fn role<'de, D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
    RoleName::deserialize(d).map(Role::from)
}

/// Reads a list of channels.
pub(super) fn channels<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Channel>, D::Error> {
    Ok(Vec::<ChannelName>::deserialize(d)?
        .into_iter()
        .map(Channel::from)
        .collect())
}

/// Reads a table keyed by channel (`[channels.<channel>]`, `channel_limits = { email = 5 }`).
pub(super) fn by_channel<'de, D, V>(d: D) -> Result<BTreeMap<Channel, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    Ok(BTreeMap::<ChannelName, V>::deserialize(d)?
        .into_iter()
        .map(|(name, value)| (name.into(), value))
        .collect())
}

/// Writes a list of channels as [`channels`] reads it (`#[serde(serialize_with = …)]`).
pub(super) fn channels_out<S: Serializer>(channels: &[Channel], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(channels.iter().map(|c| c.as_str()))
}

/// Writes a table keyed by channel as [`by_channel`] reads it.
pub(super) fn by_channel_out<S, V>(table: &BTreeMap<Channel, V>, s: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    V: serde::Serialize,
{
    s.collect_map(table.iter().map(|(channel, value)| (channel.as_str(), value)))
}

/// A role named on the command line (`switchboard token --role supervisor`), as the
/// configuration names it.
pub fn parse_role(name: &str) -> Option<Role> {
    RoleName::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(
        name,
    ))
    .ok()
    .map(Role::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue13_every_channel_and_role_has_its_config_name() {
        // The names config files already use: they must not change.
        let channels = [
            ("whatsapp", Channel::Whatsapp),
            ("messenger", Channel::Messenger),
            ("instagram", Channel::Instagram),
            ("wechat", Channel::Wechat),
            ("telegram", Channel::Telegram),
            ("line", Channel::Line),
            ("webchat", Channel::Webchat),
            ("sms", Channel::Sms),
            ("email", Channel::Email),
        ];
        assert_eq!(channels.len(), Channel::ALL.len());
        let list = format!("[{}]", channels.map(|(name, _)| format!("{name:?}")).join(", "));
        #[derive(Deserialize)]
        struct Channels {
            #[serde(deserialize_with = "super::channels")]
            channels: Vec<Channel>,
        }
        let parsed: Channels = toml::from_str(&format!("channels = {list}")).expect("every name parses");
        assert_eq!(parsed.channels, channels.map(|(_, c)| c));

        for (name, role) in [
            ("agent", Role::Agent),
            ("supervisor", Role::Supervisor),
            ("admin", Role::Admin),
        ] {
            assert_eq!(parse_role(name), Some(role));
        }
        assert_eq!(parse_role("root"), None);
    }
}
