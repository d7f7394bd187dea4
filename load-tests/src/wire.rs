//! The few fields of the engine's frames the harness reads, parsed without allocating.
//!
//! The harness is a black-box client: it does not link the engine, it reads the wire as a
//! browser would. Only what the scenarios need is named here; serde skips everything else.

use std::borrow::Cow;

use serde::Deserialize;

/// A frame from the engine (or the floor relay, which speaks the same shape).
#[derive(Debug, Deserialize)]
pub(crate) struct Incoming<'a> {
    /// `welcome`, `ok`, `error` or `push`.
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    /// The request id of an `ok` or `error`.
    #[serde(default, borrow)]
    pub(crate) id: Option<Cow<'a, str>>,
    /// The error code of an `error`.
    #[serde(default, borrow)]
    pub(crate) code: Option<Cow<'a, str>>,
    /// The sequence number of a `push` (or the last one, in `welcome`).
    #[serde(default)]
    pub(crate) seq: Option<u64>,
    /// What a `push` says.
    #[serde(default, borrow)]
    pub(crate) event: Option<Event<'a>>,
}

/// The event of a push.
#[derive(Debug, Deserialize)]
pub(crate) struct Event<'a> {
    /// `chat_offered`, `chat_reopened`, `chat_activated`, `customer_message`, `chat_closed`, …
    #[serde(borrow)]
    pub(crate) kind: Cow<'a, str>,
    /// The chat, on events that name it by id.
    #[serde(default, borrow)]
    pub(crate) chat_id: Option<Cow<'a, str>>,
    /// The chat, on events that carry it whole.
    #[serde(default, borrow)]
    pub(crate) chat: Option<ChatRef<'a>>,
}

impl Event<'_> {
    /// The chat the event is about.
    pub(crate) fn chat(&self) -> Option<&str> {
        self.chat_id
            .as_deref()
            .or_else(|| self.chat.as_ref().map(|c| &*c.id))
    }
}

/// A chat view, by id (and its customer's name, which the routing scenario numbers).
#[derive(Debug, Deserialize)]
pub(crate) struct ChatRef<'a> {
    #[serde(borrow)]
    pub(crate) id: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(crate) customer: Option<CustomerRef<'a>>,
}

/// A customer view, by name.
#[derive(Debug, Deserialize)]
pub(crate) struct CustomerRef<'a> {
    #[serde(default, borrow)]
    pub(crate) name: Option<Cow<'a, str>>,
}

/// Parses one text frame.
pub(crate) fn parse(text: &str) -> Result<Incoming<'_>, serde_json::Error> {
    serde_json::from_str(text)
}

/// A request frame: `{"id":…,"type":…,"chat_id":…}`. Ids and chat ids are ASCII without
/// quotes (the harness makes the former, the engine the latter), so no escaping is needed.
pub(crate) fn request(id: std::fmt::Arguments<'_>, kind: &str, chat_id: &str) -> String {
    format!(r#"{{"id":"{id}","type":"{kind}","chat_id":"{chat_id}"}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_engine_push_with_a_whole_chat() {
        let text = r#"{"type":"push","seq":7,"event":{"kind":"chat_offered","chat":{"id":"ch1","customer":{"id":"cu1","name":"n42","email":null,"phone":null},"channel":"webchat","state":"queued","owner":null,"reopened_by":null,"last_customer_message_at":"2026-01-01T00:00:00Z","window_expires_at":null,"snooze":null,"last_message":{"at":"2026-01-01T00:00:00Z","text":"a \"quoted\" word"}},"queue":"webchat","expires_at":"2026-01-01T00:00:30Z"}}"#;
        let frame = parse(text).expect("parses");
        assert_eq!(frame.kind, "push");
        assert_eq!(frame.seq, Some(7));
        let event = frame.event.expect("event");
        assert_eq!(event.kind, "chat_offered");
        assert_eq!(event.chat(), Some("ch1"));
        let name = event.chat.and_then(|c| c.customer).and_then(|c| c.name);
        assert_eq!(name.as_deref(), Some("n42"));
    }

    #[test]
    fn reads_replies_and_errors() {
        let ok = parse(r#"{"type":"ok","id":"r:3","result":{"kind":"done"}}"#).expect("parses");
        assert_eq!((&*ok.kind, ok.id.as_deref()), ("ok", Some("r:3")));
        let err = parse(r#"{"type":"error","id":"r:3","code":"active_elsewhere","message":"m","live":{"chat_id":"c","state":"reopened","owner":"a"}}"#)
            .expect("parses");
        assert_eq!(err.code.as_deref(), Some("active_elsewhere"));
        let closed = parse(
            r#"{"type":"push","seq":1,"event":{"kind":"chat_closed","chat_id":"c9","reason":"agent"}}"#,
        )
        .expect("parses");
        assert_eq!(
            closed.event.and_then(|e| e.chat().map(str::to_owned)).as_deref(),
            Some("c9")
        );
    }

    #[test]
    fn builds_requests() {
        assert_eq!(
            request(format_args!("r:{}", 3), "reopen", "ch1"),
            r#"{"id":"r:3","type":"reopen","chat_id":"ch1"}"#
        );
    }
}
