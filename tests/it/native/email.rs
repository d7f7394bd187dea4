//! Email (R23–R25): raw RFC 5322 messages posted by the mail server with its token, threaded by
//! `In-Reply-To`/`References`, and replies over SMTP to a fake relay on 127.0.0.1.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::timeout;

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::channels::PlatformConfig;
use switchboard::core::Channel;

use super::support::{
    contents, customer_messages, fixture, history, media, platform, post, server_with, status_until,
    take_offer, MAIL_TOKEN,
};
use crate::it::support::{AgentClient, TestServer, WAIT};

/// What a one-connection fake SMTP relay saw: the commands and the message.
#[derive(Debug, Default)]
struct Relayed {
    commands: Vec<String>,
    data: String,
}

/// A fake SMTP relay on `listener` for one connection, taking every command.
async fn fake_relay(listener: TcpListener) -> Relayed {
    let (stream, _) = timeout(WAIT, listener.accept())
        .await
        .expect("connects in time")
        .expect("accept");
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut relayed = Relayed::default();
    let mut in_data = false;
    write.write_all(b"220 fake.test ESMTP\r\n").await.expect("greet");
    loop {
        let mut line = String::new();
        let n = timeout(WAIT, read.read_line(&mut line))
            .await
            .expect("speaks in time")
            .expect("read");
        if n == 0 {
            break;
        }
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                write.write_all(b"250 2.0.0 queued\r\n").await.expect("reply");
            } else {
                relayed.data.push_str(&line);
            }
            continue;
        }
        let verb = line.trim_end().to_ascii_uppercase();
        let answer: &[u8] = if verb.starts_with("EHLO") || verb.starts_with("HELO") {
            b"250 fake.test\r\n"
        } else if verb == "DATA" {
            in_data = true;
            b"354 go ahead\r\n"
        } else if verb == "QUIT" {
            b"221 bye\r\n"
        } else {
            b"250 OK\r\n"
        };
        relayed.commands.push(line.trim_end().to_owned());
        write.write_all(answer).await.expect("answer");
        if verb == "QUIT" {
            break;
        }
    }
    relayed
}

/// A server whose email channel takes mail with [`MAIL_TOKEN`] and sends over SMTP to a fake
/// relay on 127.0.0.1, for one connection; the relay's task, to see what it got.
async fn server_with_relay() -> (TestServer, tokio::task::JoinHandle<Relayed>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let relay = tokio::spawn(fake_relay(listener));
    let config = platform(
        "",
        &[
            ("token", MAIL_TOKEN),
            ("from", "Support <support@example.com>"),
            ("smtp_host", "127.0.0.1"),
            ("smtp_port", &port),
            ("smtp_tls", "none"),
            ("smtp_timeout_secs", "5"),
        ],
    );
    let server = server_with(vec![(Channel::Email, config)]).await;
    (server, relay)
}

#[tokio::test]
async fn r23_r24_an_email_posted_with_the_token_opens_a_chat_and_the_reply_goes_over_smtp() {
    let (server, relay) = server_with_relay().await;
    let mut ana = server.agent("ana").connect().await;
    let raw = fixture("email/fixtures/r23_plain.eml");

    let (status, _) = post(
        &server,
        "/v1/native/email",
        &[("Authorization", "Bearer guess".into())],
        raw.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let auto = fixture("email/fixtures/r23_auto_reply.eml");
    let (status, text) = post(
        &server,
        "/v1/native/email",
        &[("X-Switchboard-Mail-Token", MAIL_TOKEN.into())],
        auto,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    ana.expect_no_push("chat_offered").await;

    let (status, text) = post(
        &server,
        "/v1/native/email",
        &[("Authorization", format!("Bearer {MAIL_TOKEN}"))],
        raw.clone(),
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, r#"{"received":1}"#));
    let (chat, _) = take_offer(&mut ana).await;
    // The mail server posts it again (its retry after a timeout): recorded once.
    let (status, _) = post(
        &server,
        "/v1/native/email",
        &[("Authorization", format!("Bearer {MAIL_TOKEN}"))],
        raw,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        history(&mut ana, &chat).await.len(),
        1,
        "a reposted email is recorded once"
    );

    ana.send_message(&chat, "We are on it").await.expect_ok();

    let relayed = timeout(WAIT, relay)
        .await
        .expect("the relay ends in time")
        .expect("no panic");
    assert!(
        relayed
            .commands
            .iter()
            .any(|c| c.eq_ignore_ascii_case("MAIL FROM:<support@example.com>")),
        "{relayed:?}"
    );
    assert!(
        relayed
            .commands
            .iter()
            .any(|c| c.eq_ignore_ascii_case("RCPT TO:<ana.perez@example.com>")),
        "{relayed:?}"
    );
    assert!(
        relayed
            .data
            .contains("In-Reply-To: <CAF1plain.0001@mail.example.com>"),
        "{}",
        relayed.data
    );
    assert!(
        relayed.data.contains("Subject: Re: your message"),
        "{}",
        relayed.data
    );
    assert!(relayed.data.contains("We are on it"), "{}", relayed.data);
    status_until(&mut ana, "sent").await;
}

#[tokio::test]
async fn r23_a_raw_email_may_exceed_the_json_body_limit() {
    let config = platform("", &[("token", MAIL_TOKEN), ("from", "support@example.com")]);
    let server = server_with(vec![(Channel::Email, config)]).await;
    let mut ana = server.agent("ana").connect().await;
    // 300 KiB: over the 256 KiB of JSON bodies, as a message with an attachment easily is.
    let raw = format!(
        "From: Ana <ana@example.com>\r\nTo: support@example.com\r\nSubject: big\r\nMessage-ID: <big.1@example.com>\r\n\r\nSee below.\r\n{}\r\n",
        "x".repeat(300 * 1024)
    );
    let headers = [("X-Switchboard-Mail-Token", MAIL_TOKEN.to_owned())];

    let (status, text) = post(&server, "/v1/native/email", &headers, raw).await;

    assert_eq!(status, StatusCode::OK, "{text}");
    take_offer(&mut ana).await;
}

/// Email that is only received: no relay behind it.
fn receiving_only() -> PlatformConfig {
    platform(
        "",
        &[("token", MAIL_TOKEN), ("from", "Support <support@example.com>")],
    )
}

async fn post_email(server: &TestServer, raw: impl Into<Vec<u8>>) -> (StatusCode, String) {
    let headers = [("X-Switchboard-Mail-Token", MAIL_TOKEN.to_owned())];
    post(server, "/v1/native/email", &headers, raw).await
}

#[tokio::test]
async fn r23_an_emails_attachments_reach_the_agent_as_attachments_and_a_reposted_email_is_recorded_once() {
    let server = server_with(vec![(Channel::Email, receiving_only())]).await;
    let mut ana = server.agent("ana").connect().await;
    // Dan wrote before; his chat is Ana's.
    let first = "From: Dan <dan@example.com>\r\nTo: support@example.com\r\nSubject: Broken item\r\n\
                 Date: Fri, 4 Dec 2026 07:00:00 -0500\r\nMessage-ID: <first-9@example.com>\r\n\r\n\
                 My order came broken.\r\n";
    assert_eq!(post_email(&server, first).await.0, StatusCode::OK);
    let (chat, _) = take_offer(&mut ana).await;
    let raw = fixture("email/fixtures/r23_attachments.eml");

    let (status, text) = post_email(&server, raw.clone()).await;

    assert_eq!((status, text.as_str()), (StatusCode::OK, r#"{"received":3}"#));
    let expected = vec![
        (
            json!("The item came broken, photo and receipt attached."),
            Value::Null,
        ),
        // The id names the attachment within the stored message, to fetch its bytes with.
        (
            json!(""),
            media(
                "image",
                Some("att-9@example.com#1"),
                None,
                Some("image/png"),
                Some("photo.png"),
            ),
        ),
        (
            json!(""),
            media(
                "document",
                Some("att-9@example.com#2"),
                None,
                Some("application/pdf"),
                Some("receipt.pdf"),
            ),
        ),
    ];
    assert_eq!(contents(&customer_messages(&mut ana, &chat, 3).await), expected);
    assert_eq!(contents(&history(&mut ana, &chat).await[1..]), expected);

    // The mail server posts it again (the same Message-ID): text and attachments once.
    assert_eq!(
        post_email(&server, raw).await,
        (StatusCode::OK, r#"{"received":3}"#.to_owned())
    );
    ana.expect_no_push("customer_message").await;
    assert_eq!(history(&mut ana, &chat).await.len(), 4);
}

#[tokio::test]
async fn r23_an_email_without_the_mail_token_is_401_and_records_nothing() {
    let server = server_with(vec![(Channel::Email, receiving_only())]).await;
    let mut ana = server.agent("ana").connect().await;
    let raw = fixture("email/fixtures/r23_plain.eml");

    for headers in [
        vec![],
        vec![("X-Switchboard-Mail-Token", "mail-server-tokeN".to_owned())],
        vec![("Authorization", format!("Basic {MAIL_TOKEN}"))],
        vec![("Authorization", "Bearer ".to_owned())],
    ] {
        let (status, text) = post(&server, "/v1/native/email", &headers, raw.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}: {text}");
    }
    ana.expect_no_push("chat_offered").await;

    // Nothing of the refused posts was kept: the message, posted rightly, is new.
    assert_eq!(post_email(&server, raw).await.0, StatusCode::OK);
    let (chat, offer) = take_offer(&mut ana).await;
    assert_eq!(offer["chat"]["channel"], "email");
    assert_eq!(history(&mut ana, &chat).await.len(), 1);
}

/// The value of header `name` in the raw message `data`.
fn header_of<'a>(data: &'a str, name: &str) -> &'a str {
    data.lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
        .unwrap_or_else(|| panic!("no {name} header in {data}"))
}

/// A customer who wrote by email, ana's chat with her, and the `Message-ID` (with its `<>`) of
/// ana's reply, which the fake relay took.
async fn a_thread_we_answered() -> (TestServer, AgentClient, String, String) {
    let (server, relay) = server_with_relay().await;
    let mut ana = server.agent("ana").connect().await;
    assert_eq!(
        post_email(&server, fixture("email/fixtures/r23_plain.eml"))
            .await
            .0,
        StatusCode::OK
    );
    let (chat, _) = take_offer(&mut ana).await;
    ana.send_message(&chat, "Your parcel is on its way")
        .await
        .expect_ok();
    let relayed = timeout(WAIT, relay)
        .await
        .expect("the relay ends in time")
        .expect("no panic");
    let ours = header_of(&relayed.data, "Message-ID").to_owned();
    assert!(ours.starts_with('<') && ours.ends_with("@example.com>"), "{ours}");
    // The engine has taken the relay's answer: our message is on record under its Message-ID.
    status_until(&mut ana, "sent").await;
    (server, ana, chat, ours)
}

#[tokio::test]
async fn r23_a_customers_answer_to_our_reply_threads_into_the_same_chat_with_its_quote_trimmed() {
    let (server, mut ana, chat, ours) = a_thread_we_answered().await;
    // Ana answers our reply: the documented reply, its thread headers naming our message.
    let answer =
        fixture("email/fixtures/r23_reply.eml").replace("<reply-2.chat-77@support.example.com>", &ours);
    assert!(answer.contains(&format!("In-Reply-To: {ours}")), "{answer}");
    let (status, text) = post_email(&server, answer).await;

    assert_eq!((status, text.as_str()), (StatusCode::OK, r#"{"received":1}"#));
    let pushed = customer_messages(&mut ana, &chat, 1).await;
    // The trailing quote of our message goes; her inline answer stays.
    assert_eq!(
        pushed[0]["text"],
        "Thanks, it arrived today.\n> a line I answer inline\nBye"
    );
    ana.expect_no_push("chat_offered").await;
    let messages = history(&mut ana, &chat).await;
    assert_eq!(messages.len(), 3, "hers, ours, her answer: {messages:#?}");
    assert_eq!(messages[2]["text"], pushed[0]["text"]);
}

#[tokio::test]
async fn r23_someone_else_answering_our_reply_joins_the_customers_chat_without_becoming_her_address() {
    let (server, mut ana, chat, ours) = a_thread_we_answered().await;
    // Her colleague, on copy, answers our reply from an address no customer has.
    let colleague = fixture("email/fixtures/r23_reply.eml")
        .replace(
            r#""Ana Perez" <ana.perez@example.com>"#,
            "Bo Lind <bo.lind@example.org>",
        )
        .replace("<reply-2.chat-77@support.example.com>", &ours)
        .replace(
            "<CAF1reply.0003@mail.example.com>",
            "<CAF1colleague.0004@mail.example.org>",
        );
    assert!(
        colleague.contains("From: Bo Lind <bo.lind@example.org>"),
        "{colleague}"
    );
    assert_eq!(post_email(&server, colleague).await.0, StatusCode::OK);
    let pushed = customer_messages(&mut ana, &chat, 1).await;
    assert!(
        pushed[0]["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Thanks"),
        "{pushed:?}"
    );
    ana.expect_no_push("chat_offered").await;
    assert_eq!(
        history(&mut ana, &chat).await.len(),
        3,
        "hers, ours, her colleague's"
    );

    // Writing afresh, not on the thread, the colleague is a customer of their own.
    let fresh = fixture("email/fixtures/r23_plain.eml")
        .replace(
            "=?UTF-8?Q?Ana_P=C3=A9rez?= <Ana.Perez@Example.COM>",
            "Bo Lind <bo.lind@example.org>",
        )
        .replace(
            "<CAF1plain.0001@mail.example.com>",
            "<CAF1fresh.0005@mail.example.org>",
        );
    assert!(fresh.contains("From: Bo Lind <bo.lind@example.org>"), "{fresh}");
    assert_eq!(post_email(&server, fresh).await.0, StatusCode::OK);
    let (other, _) = take_offer(&mut ana).await;
    assert_ne!(other, chat, "a new customer's chat");
}
