//! The email channel against fixture messages (R23), its replies' exact headers and an SMTP
//! exchange with a fake relay on 127.0.0.1 (R24).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::TimeZone;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::timeout;

use super::*;
use crate::channels::{EmailThread, SendOutcome};

const PLAIN: &[u8] = include_bytes!("fixtures/r23_plain.eml");
const ALTERNATIVE: &[u8] = include_bytes!("fixtures/r23_alternative.eml");
const HTML_ONLY: &[u8] = include_bytes!("fixtures/r23_html_only.eml");
const REPLY: &[u8] = include_bytes!("fixtures/r23_reply.eml");
const ATTACHMENTS: &[u8] = include_bytes!("fixtures/r23_attachments.eml");
const NO_MESSAGE_ID: &[u8] = include_bytes!("fixtures/r23_no_message_id.eml");
const AUTO_REPLY: &[u8] = include_bytes!("fixtures/r23_auto_reply.eml");

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

fn messages(raw: &[u8]) -> Vec<NativeMessage> {
    parse(raw)
        .expect("the fixture parses")
        .into_iter()
        .map(|d| match d {
            Delivered::Message(m) => m,
            other => panic!("an email delivers only messages, got {other:?}"),
        })
        .collect()
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("a valid time")
}

#[test]
fn r23_plain_text_message() {
    assert_eq!(
        messages(PLAIN),
        vec![NativeMessage {
            channel: Channel::Email,
            from: "ana.perez@example.com".into(),
            name: Some("Ana Pérez".into()),
            provider_id: "CAF1plain.0001@mail.example.com".into(),
            sent_at: Some(utc(2026, 12, 1, 9, 15, 30)),
            content: Content::Text("Hello,\n\norder 1234 has not arrived yet. Could you check? Grüße".into()),
            in_reply_to: vec![],
        }]
    );
}

#[test]
fn r23_multipart_alternative_takes_the_text_part() {
    let got = messages(ALTERNATIVE);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].from, "bo@example.org");
    assert_eq!(got[0].name.as_deref(), Some("Bo Lindqvist"));
    assert_eq!(got[0].provider_id, "alt-42@example.org");
    assert_eq!(got[0].content, Content::Text("Why was I charged twice?".into()));
}

#[test]
fn r23_html_only_message_becomes_text() {
    let got = messages(HTML_ONLY);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, None);
    let Content::Text(text) = &got[0].content else {
        panic!("expected text, got {:?}", got[0].content)
    };
    assert!(text.contains("Please refund & close"), "{text:?}");
    assert!(text.contains("my account."), "{text:?}");
    assert!(!text.contains('<'), "tags left in {text:?}");
}

#[test]
fn r23_reply_is_threaded_and_its_quote_trimmed() {
    let got = messages(REPLY);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].provider_id, "CAF1reply.0003@mail.example.com");
    // In-Reply-To first, then References newest first, each id once.
    assert_eq!(
        got[0].in_reply_to,
        vec![
            "reply-2.chat-77@support.example.com".to_owned(),
            "reply-1.chat-77@support.example.com".to_owned(),
            "CAF1plain.0001@mail.example.com".to_owned(),
        ]
    );
    // The trailing quote and its wrapped attribution go; the inline quote stays.
    assert_eq!(
        got[0].content,
        Content::Text("Thanks, it arrived today.\n> a line I answer inline\nBye".into())
    );
}

#[test]
fn r23_attachments_arrive_as_media_items() {
    let got = messages(ATTACHMENTS);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[0].content,
        Content::Text("The item came broken, photo and receipt attached.".into())
    );
    assert_eq!(got[0].provider_id, "att-9@example.com");
    assert_eq!(got[0].sent_at, Some(utc(2026, 12, 4, 12, 30, 0)));
    assert_eq!(got[1].provider_id, "att-9@example.com#1");
    assert_eq!(
        got[1].content,
        Content::Media(Media {
            kind: MediaKind::Image,
            id: Some("att-9@example.com#1".into()),
            url: None,
            mime: Some("image/png".into()),
            filename: Some("photo.png".into()),
            caption: None,
        })
    );
    assert_eq!(got[2].provider_id, "att-9@example.com#2");
    assert_eq!(
        got[2].content,
        Content::Media(Media {
            kind: MediaKind::Document,
            id: Some("att-9@example.com#2".into()),
            url: None,
            mime: Some("application/pdf".into()),
            filename: Some("receipt.pdf".into()),
            caption: None,
        })
    );
    for m in &got {
        assert_eq!(m.from, "dan@example.com");
    }
    // The bytes, decoded from base64, for whoever stores them.
    assert_eq!(
        attachment(ATTACHMENTS, 1).as_deref(),
        Some(&b"\x89PNG\r\n\x1a\n"[..])
    );
    assert_eq!(attachment(ATTACHMENTS, 2).as_deref(), Some(&b"%PDF-1.4\n"[..]));
    assert_eq!(attachment(ATTACHMENTS, 0), None);
    assert_eq!(attachment(ATTACHMENTS, 3), None);
}

#[test]
fn r23_attachment_only_message_has_no_empty_text_item() {
    let raw = b"From: x@example.com\r\nMessage-ID: <only@example.com>\r\n\
        Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\n\
        Content-Type: audio/ogg\r\nContent-Disposition: attachment; filename=\"note.ogg\"\r\n\r\n\
        OggS\r\n--m--\r\n";
    let got = messages(raw);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].provider_id, "only@example.com#1");
    let Content::Media(media) = &got[0].content else {
        panic!("expected media, got {:?}", got[0].content)
    };
    assert_eq!(media.kind, MediaKind::Audio);
    assert_eq!(media.filename.as_deref(), Some("note.ogg"));
}

#[test]
fn r23_missing_message_id_is_malformed() {
    match parse(NO_MESSAGE_ID) {
        Err(WebhookError::Malformed(what)) => assert!(what.contains("Message-ID"), "{what}"),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn r23_missing_from_and_garbage_are_malformed() {
    let text = String::from_utf8_lossy(PLAIN);
    let no_from: String = text
        .lines()
        .filter(|l| !l.starts_with("From:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    match parse(no_from.as_bytes()) {
        Err(WebhookError::Malformed(what)) => assert!(what.contains("From"), "{what}"),
        other => panic!("expected Malformed, got {other:?}"),
    }
    assert!(matches!(parse(b""), Err(WebhookError::Malformed(_))));
    assert!(matches!(
        parse(b"{\"not\": \"an email\"}"),
        Err(WebhookError::Malformed(_))
    ));
}

#[test]
fn r23_auto_replies_are_recognised() {
    assert!(is_auto_reply(AUTO_REPLY));
    assert!(!is_auto_reply(PLAIN));
    assert!(!is_auto_reply(REPLY));
    assert!(!is_auto_reply(
        b"From: a@example.com\r\nAuto-Submitted: no\r\n\r\nhi\r\n"
    ));
    assert!(is_auto_reply(
        b"From: a@example.com\r\nPrecedence: bulk\r\n\r\nnews\r\n"
    ));
    assert!(is_auto_reply(
        b"From: a@example.com\r\nX-Autoreply: yes\r\n\r\naway\r\n"
    ));
    assert!(!is_auto_reply(b""));
}

#[test]
fn r23_quote_trimming() {
    assert_eq!(
        trim_quoted("Yes please.\n\nOn Mon, 1 Dec 2026, Support wrote:\n> Shall we?\n"),
        "Yes please."
    );
    // No attribution line: only the quote goes.
    assert_eq!(trim_quoted("Fine\r\n> earlier\r\n>> older\r\n"), "Fine");
    // A line ending in "wrote:" that is not after a quote stays.
    assert_eq!(trim_quoted("On Monday she wrote:"), "On Monday she wrote:");
    // Only a quote: kept whole rather than dropped.
    assert_eq!(trim_quoted("> just this\n"), "> just this");
}

#[test]
fn r23_mail_token() {
    let token = "s3cret-token";
    assert_eq!(verify_token(Some("Bearer s3cret-token"), token), Ok(()));
    assert_eq!(verify_token(Some("bearer  s3cret-token "), token), Ok(()));
    assert_eq!(verify_token(Some("s3cret-token"), token), Ok(()));
    assert!(matches!(
        verify_token(Some("Bearer s3cret-tokem"), token),
        Err(WebhookError::BadSignature(_))
    ));
    assert!(matches!(
        verify_token(Some("Bearer s3cret"), token),
        Err(WebhookError::BadSignature(_))
    ));
    assert!(matches!(
        verify_token(None, token),
        Err(WebhookError::Unsigned(_))
    ));
    // An unconfigured (empty) token lets nothing in, not even an empty header.
    assert!(matches!(
        verify_token(Some(""), ""),
        Err(WebhookError::BadSignature(_))
    ));
}

fn config(extra: &[(&str, &str)]) -> PlatformConfig {
    let mut settings = BTreeMap::new();
    settings.insert("from".to_owned(), "Support <support@example.com>".to_owned());
    for (k, v) in extra {
        settings.insert((*k).to_owned(), (*v).to_owned());
    }
    PlatformConfig {
        base_url: String::new(),
        settings,
    }
}

fn reply() -> Outgoing {
    Outgoing {
        channel: Channel::Email,
        to: "ana.perez@example.com".into(),
        body: OutgoingBody::Text("Hello Ana,\n\nglad it arrived. Grüße".into()),
        human_agent_tag: false,
        idempotency_key: "out-77-3".into(),
        email: Some(EmailThread {
            subject: "Re: My order has not arrived".into(),
            in_reply_to: Some("CAF1reply.0003@mail.example.com".into()),
            references: vec![
                "CAF1plain.0001@mail.example.com".into(),
                "<reply-1.chat-77@support.example.com>".into(),
            ],
            message_id: "reply-3.chat-77@support.example.com".into(),
        }),
    }
}

/// The message's header fields, unfolded, in order.
fn headers(raw: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8(raw.to_vec()).expect("a built message is ASCII");
    let (head, _) = text.split_once("\r\n\r\n").expect("headers end");
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut().expect("a continuation follows a field");
            last.1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').expect("a header field");
            fields.push((name.to_owned(), value.trim_start().to_owned()));
        }
    }
    fields
}

fn header<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    let found: Vec<_> = fields.iter().filter(|(n, _)| n == name).collect();
    assert_eq!(found.len(), 1, "{name} once in {fields:?}");
    &found[0].1
}

#[test]
fn r24_build_message_headers() {
    let raw = build_message(&reply(), &config(&[]), utc(2026, 12, 3, 12, 30, 0)).expect("the reply builds");
    let fields = headers(&raw);
    assert_eq!(header(&fields, "From"), "Support <support@example.com>");
    assert_eq!(header(&fields, "To"), "ana.perez@example.com");
    assert_eq!(header(&fields, "Subject"), "Re: My order has not arrived");
    assert_eq!(
        header(&fields, "Message-ID"),
        "<reply-3.chat-77@support.example.com>"
    );
    assert_eq!(
        header(&fields, "In-Reply-To"),
        "<CAF1reply.0003@mail.example.com>"
    );
    assert_eq!(
        header(&fields, "References"),
        "<CAF1plain.0001@mail.example.com> <reply-1.chat-77@support.example.com> \
         <CAF1reply.0003@mail.example.com>"
    );
    assert_eq!(header(&fields, "X-Switchboard-Idempotency-Key"), "out-77-3");
    assert_eq!(header(&fields, "Date"), "Thu, 03 Dec 2026 12:30:00 +0000");
    assert_eq!(header(&fields, "MIME-Version"), "1.0");
    assert_eq!(header(&fields, "Content-Type"), "text/plain; charset=utf-8");
    // Pure: the same arguments give the same bytes.
    let again = build_message(&reply(), &config(&[]), utc(2026, 12, 3, 12, 30, 0));
    assert_eq!(again.as_deref(), Ok(&raw[..]));

    // Our own parser reads it back as the customer's client would.
    let back = messages(&raw);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].from, "support@example.com");
    assert_eq!(back[0].provider_id, "reply-3.chat-77@support.example.com");
    assert_eq!(
        back[0].content,
        Content::Text("Hello Ana,\n\nglad it arrived. Grüße".into())
    );
    assert_eq!(
        back[0].in_reply_to,
        vec![
            "CAF1reply.0003@mail.example.com".to_owned(),
            "reply-1.chat-77@support.example.com".to_owned(),
            "CAF1plain.0001@mail.example.com".to_owned(),
        ]
    );
}

#[test]
fn r24_build_message_refusals_name_the_problem() {
    let now = utc(2026, 12, 3, 12, 30, 0);
    let mut template = reply();
    template.body = OutgoingBody::Template {
        name: "order_update".into(),
        language: "en_US".into(),
        params: vec![],
    };
    let err = build_message(&template, &config(&[]), now).expect_err("templates refused");
    assert!(err.contains("template `order_update`"), "{err}");

    let mut sms = reply();
    sms.channel = Channel::Sms;
    let err = build_message(&sms, &config(&[]), now).expect_err("not email");
    assert!(err.contains("Sms"), "{err}");

    let mut unthreaded = reply();
    unthreaded.email = None;
    let err = build_message(&unthreaded, &config(&[]), now).expect_err("no thread");
    assert!(err.contains("`email`"), "{err}");

    let err = build_message(&reply(), &PlatformConfig::default(), now).expect_err("no from");
    assert!(err.contains("`from`"), "{err}");

    let mut injected = reply();
    if let Some(thread) = injected.email.as_mut() {
        thread.message_id = "x@y>\r\nBcc: victim@example.com".into();
    }
    let err = build_message(&injected, &config(&[]), now).expect_err("bad id");
    assert!(err.contains("message_id"), "{err}");

    let mut bad_to = reply();
    bad_to.to = "not an address".into();
    let err = build_message(&bad_to, &config(&[]), now).expect_err("bad recipient");
    assert!(err.contains("not an address"), "{err}");
}

/// What the fake relay saw.
#[derive(Debug, Default)]
struct Recorded {
    commands: Vec<String>,
    data: String,
}

/// A fake SMTP relay for one connection: 220, 250 to EHLO/MAIL/RCPT, 354 to DATA, then
/// `after_data` to the message, 221 to QUIT. Every read is bounded by [`WAIT`].
async fn fake_relay(listener: TcpListener, after_data: &'static str) -> Recorded {
    let (stream, _) = timeout(WAIT, listener.accept())
        .await
        .expect("the client connects in time")
        .expect("accept");
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut recorded = Recorded::default();
    let mut in_data = false;
    write.write_all(b"220 fake.test ESMTP\r\n").await.expect("greet");
    loop {
        let mut line = String::new();
        let n = timeout(WAIT, read.read_line(&mut line))
            .await
            .expect("the client speaks in time")
            .expect("read");
        if n == 0 {
            break;
        }
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                write.write_all(after_data.as_bytes()).await.expect("reply");
            } else {
                recorded.data.push_str(&line);
            }
            continue;
        }
        let command = line.trim_end().to_owned();
        let verb = command.to_ascii_uppercase();
        let answer = if verb.starts_with("EHLO") || verb.starts_with("HELO") {
            "250 fake.test\r\n"
        } else if verb == "DATA" {
            in_data = true;
            "354 end with <CRLF>.<CRLF>\r\n"
        } else if verb == "QUIT" {
            "221 bye\r\n"
        } else {
            "250 OK\r\n"
        };
        recorded.commands.push(command);
        write.write_all(answer.as_bytes()).await.expect("answer");
        if verb == "QUIT" {
            break;
        }
    }
    recorded
}

async fn send_to_fake(after_data: &'static str, message: Vec<u8>) -> (SendOutcome, Recorded) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let relay = tokio::spawn(fake_relay(listener, after_data));
    let config = config(&[
        ("smtp_host", "127.0.0.1"),
        ("smtp_port", &port),
        ("smtp_tls", "none"),
        ("smtp_timeout_secs", "5"),
    ]);
    let outcome = timeout(
        WAIT,
        send_smtp(message, "support@example.com", "ana.perez@example.com", &config),
    )
    .await
    .expect("send_smtp ends in time");
    let recorded = timeout(WAIT, relay)
        .await
        .expect("the relay ends in time")
        .expect("the relay does not panic");
    (outcome, recorded)
}

#[tokio::test]
async fn r24_smtp_send_delivers_the_built_message() {
    let message =
        build_message(&reply(), &config(&[]), utc(2026, 12, 3, 12, 30, 0)).expect("the reply builds");
    let (outcome, recorded) = send_to_fake("250 2.0.0 queued as A1B2\r\n", message.clone()).await;
    assert_eq!(
        outcome,
        SendOutcome::Sent {
            provider_id: "reply-3.chat-77@support.example.com".into()
        }
    );
    let commands: Vec<&str> = recorded.commands.iter().map(String::as_str).collect();
    assert!(commands[0].starts_with("EHLO "), "{commands:?}");
    assert_eq!(
        &commands[1..],
        [
            "MAIL FROM:<support@example.com>",
            "RCPT TO:<ana.perez@example.com>",
            "DATA",
            "QUIT"
        ],
    );
    let sent = String::from_utf8(message).expect("ASCII");
    assert_eq!(recorded.data.trim_end(), sent.trim_end());
}

#[tokio::test]
async fn r24_smtp_transient_reply_is_retried() {
    let message =
        build_message(&reply(), &config(&[]), utc(2026, 12, 3, 12, 30, 0)).expect("the reply builds");
    let (outcome, _) = send_to_fake("451 4.3.0 try again later\r\n", message).await;
    match outcome {
        SendOutcome::Retry { after: None, reason } => {
            assert!(reason.contains("451"), "{reason}");
            assert!(reason.contains("try again later"), "{reason}");
        }
        other => panic!("expected Retry, got {other:?}"),
    }
}

#[tokio::test]
async fn r24_smtp_permanent_reply_fails_with_the_servers_text() {
    let message =
        build_message(&reply(), &config(&[]), utc(2026, 12, 3, 12, 30, 0)).expect("the reply builds");
    let (outcome, _) = send_to_fake("550 5.1.1 mailbox unavailable\r\n", message).await;
    match outcome {
        SendOutcome::Failed { reason } => {
            assert!(reason.contains("550"), "{reason}");
            assert!(reason.contains("mailbox unavailable"), "{reason}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn r24_smtp_connection_refused_is_retried() {
    // A port that was just free: nothing listens on it any more.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    drop(listener);
    let config = config(&[
        ("smtp_host", "127.0.0.1"),
        ("smtp_port", &port),
        ("smtp_tls", "none"),
        ("smtp_timeout_secs", "5"),
    ]);
    let outcome = timeout(
        WAIT,
        send_smtp(b"x".to_vec(), "support@example.com", "a@example.com", &config),
    )
    .await
    .expect("send_smtp ends in time");
    assert!(matches!(outcome, SendOutcome::Retry { .. }), "{outcome:?}");
}

#[tokio::test]
async fn r24_smtp_bad_settings_fail_naming_them() {
    let outcome = send_smtp(
        b"x".to_vec(),
        "support@example.com",
        "a@example.com",
        &config(&[]),
    )
    .await;
    assert!(
        matches!(&outcome, SendOutcome::Failed { reason } if reason.contains("`smtp_host`")),
        "{outcome:?}"
    );
    let outcome = send_smtp(
        b"x".to_vec(),
        "support@example.com",
        "a@example.com",
        &config(&[("smtp_host", "127.0.0.1"), ("smtp_tls", "maybe")]),
    )
    .await;
    assert!(
        matches!(&outcome, SendOutcome::Failed { reason } if reason.contains("`smtp_tls`")),
        "{outcome:?}"
    );
    let outcome = send_smtp(
        b"x".to_vec(),
        "support@example.com",
        "a@example.com",
        &config(&[("smtp_host", "127.0.0.1"), ("smtp_user", "u")]),
    )
    .await;
    assert!(
        matches!(&outcome, SendOutcome::Failed { reason } if reason.contains("smtp_password")),
        "{outcome:?}"
    );
}
