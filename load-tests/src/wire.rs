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

/// A frame from the supervisor socket (`/v1/supervisor/ws`): what the harness counts of it.
/// A `pushes` frame is not taken apart: its events are only counted, and their `seq`s checked
/// for order.
#[derive(Debug, Deserialize)]
pub(crate) struct SupervisorIncoming<'a> {
    /// `welcome`, `ok`, `error` or `pushes`.
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    /// The request id of an `ok` or `error`.
    #[serde(default, borrow)]
    pub(crate) id: Option<Cow<'a, str>>,
    /// The error code of an `error`.
    #[serde(default, borrow)]
    pub(crate) code: Option<Cow<'a, str>>,
    /// The kind of an `ok`'s result (`board` for a subscription).
    #[serde(default, borrow)]
    pub(crate) result: Option<ResultKind<'a>>,
    /// The events of a `pushes` frame.
    #[serde(default)]
    pub(crate) events: Option<Events>,
}

/// The kind of a supervisor reply's result.
#[derive(Debug, Deserialize)]
pub(crate) struct ResultKind<'a> {
    #[serde(borrow)]
    pub(crate) kind: Cow<'a, str>,
}

/// The events of a `pushes` frame, counted without keeping them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Events {
    /// How many.
    pub(crate) count: u64,
    /// The first and last `seq`.
    pub(crate) first: Option<u64>,
    pub(crate) last: Option<u64>,
    /// Whether every `seq` was above the one before (the engine may skip numbers: a later
    /// row of the same agent supersedes an earlier one).
    pub(crate) increasing: bool,
}

impl<'de> Deserialize<'de> for Events {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// An event's `seq`; the rest is skipped.
        #[derive(Deserialize)]
        struct Seq {
            #[serde(default)]
            seq: Option<u64>,
        }

        struct Counter;

        impl<'de> serde::de::Visitor<'de> for Counter {
            type Value = Events;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of board events")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut events: A) -> Result<Events, A::Error> {
                let mut out = Events {
                    increasing: true,
                    ..Events::default()
                };
                while let Some(Seq { seq }) = events.next_element()? {
                    out.count += 1;
                    if let Some(seq) = seq {
                        if out.last.is_some_and(|last| seq <= last) {
                            out.increasing = false;
                        }
                        out.first.get_or_insert(seq);
                        out.last = Some(seq);
                    }
                }
                Ok(out)
            }
        }

        deserializer.deserialize_seq(Counter)
    }
}

/// How the engine starts a `pushes` frame (compact JSON).
const PUSHES_HEAD: &str = r#"{"type":"pushes","events":["#;

/// How every board event starts: `seq` is its first field.
const EVENT_HEAD: &str = r#"{"seq":"#;

/// Counts the events of a `pushes` frame as the engine writes it, without parsing it: every
/// event is an object whose first field is `seq`, and `{"seq":` cannot occur inside a JSON
/// string (its quotes would be escaped), nor starts any object nested in an event. This is
/// the supervisors' hot path: a frame is tens of KiB, 20–40 times a second, per supervisor.
/// `None` when `text` is not such a frame: parse it with [`parse_supervisor`].
pub(crate) fn scan_pushes(text: &str) -> Option<Events> {
    let events = text.strip_prefix(PUSHES_HEAD)?;
    let mut out = Events {
        increasing: true,
        ..Events::default()
    };
    for (at, head) in events.match_indices(EVENT_HEAD) {
        let digits = &events[at + head.len()..];
        let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
        let seq: u64 = digits[..end].parse().ok()?;
        out.count += 1;
        if out.last.is_some_and(|last| seq <= last) {
            out.increasing = false;
        }
        out.first.get_or_insert(seq);
        out.last = Some(seq);
    }
    Some(out)
}

/// Parses one text frame of the supervisor socket.
pub(crate) fn parse_supervisor(text: &str) -> Result<SupervisorIncoming<'_>, serde_json::Error> {
    serde_json::from_str(text)
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
    fn counts_a_supervisor_pushes_frame() {
        let text = r#"{"type":"pushes","events":[{"seq":4,"kind":"agent_changed","agent":{"id":"a","name":"A","role":"agent","presence":"online","load":1,"limit":3,"offered":0,"over_limit":false,"overrides":0}},{"seq":6,"kind":"chat_reopened","chat":{"chat_id":"c","customer":{"id":"cu","name":"x \"seq\": 1"},"channel":"webchat","queue":"webchat","reopened_by":"a","reopened_at":"2026-01-01T00:00:00Z","window_expires_at":null}},{"seq":7,"kind":"kpis_changed","kpis":{"since":"2026-01-01T00:00:00Z","figures":{"chats":[1,2]}}}]}"#;
        let frame = parse_supervisor(text).expect("parses");
        assert_eq!(frame.kind, "pushes");
        let events = frame.events.expect("events");
        assert_eq!(
            events,
            Events {
                count: 3,
                first: Some(4),
                last: Some(7),
                increasing: true
            }
        );
        // The scan counts the same, without parsing.
        assert_eq!(scan_pushes(text), Some(events));
        // Not a `pushes` frame, or one the scan cannot read: the caller parses.
        assert_eq!(
            scan_pushes(r#"{"type":"ok","id":"s1","result":{"kind":"board"}}"#),
            None
        );
        assert_eq!(
            scan_pushes(r#"{"type":"pushes","events":[{"seq":1,"kpis":{"seq":[1]}}]}"#),
            None
        );
        let back = r#"{"type":"pushes","events":[{"seq":9,"kind":"x"},{"seq":9,"kind":"y"}]}"#;
        assert!(
            !parse_supervisor(back)
                .expect("parses")
                .events
                .expect("events")
                .increasing
        );
        assert!(!scan_pushes(back).expect("scans").increasing);
    }

    #[test]
    fn reads_a_supervisor_subscription_reply() {
        let ok = parse_supervisor(
            r#"{"type":"ok","id":"s1","result":{"kind":"board","seq":12,"queues":[],"agents":[],"reopened":[],"kpis":{}}}"#,
        )
        .expect("parses");
        assert_eq!((&*ok.kind, ok.id.as_deref()), ("ok", Some("s1")));
        assert_eq!(ok.result.map(|r| r.kind.into_owned()).as_deref(), Some("board"));
        assert!(ok.events.is_none());
        let welcome = parse_supervisor(r#"{"type":"welcome","protocol":1,"supervisor":{"id":"s","name":"S","role":"supervisor","limit":3,"queues":[]},"seq":0}"#)
            .expect("parses");
        assert_eq!(welcome.kind, "welcome");
    }

    #[test]
    fn builds_requests() {
        assert_eq!(
            request(format_args!("r:{}", 3), "reopen", "ch1"),
            r#"{"id":"r:3","type":"reopen","chat_id":"ch1"}"#
        );
    }
}
