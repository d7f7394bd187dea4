//! The one I/O function of the email channel: handing a built reply to the SMTP relay.

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::Error as SmtpError;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use mail_parser::MessageParser;

use crate::channels::{PlatformConfig, SendOutcome};

/// How long one SMTP exchange may take unless `smtp_timeout_secs` says otherwise: lettre
/// applies it to the connection and to each command, so a stalled relay becomes a retry.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `message` (the bytes of [`super::build_message`]) through the configured SMTP relay,
/// with `envelope_from` as `MAIL FROM` and `to` as the only `RCPT TO`.
///
/// Settings: `smtp_host`; `smtp_tls` = `starttls` (the default: STARTTLS required, port 587),
/// `tls` (implicit TLS, port 465) or `none` (plain text, for a fake server in tests; port 25);
/// `smtp_port` to override the port; `smtp_user` and `smtp_password` to log in (both or
/// neither); `smtp_timeout_secs`.
///
/// The outcome: the relay took it → [`SendOutcome::Sent`] with the message's `Message-ID`
/// (without `<>`; the relay's answer if the message has none). A transient SMTP reply (4xx),
/// a refused or broken connection, a timeout or a TLS failure → [`SendOutcome::Retry`]. A
/// permanent reply (5xx) → [`SendOutcome::Failed`] with the server's code and text; so does
/// a setting or address that is wrong, since retrying cannot fix it.
pub async fn send_smtp(
    message: Vec<u8>,
    envelope_from: &str,
    to: &str,
    config: &PlatformConfig,
) -> SendOutcome {
    let failed = |reason: String| SendOutcome::Failed { reason };
    let transport = match transport(config) {
        Ok(transport) => transport,
        Err(reason) => return failed(reason),
    };
    let from: Address = match envelope_from.parse() {
        Ok(a) => a,
        Err(e) => return failed(format!("the envelope sender `{envelope_from}` is bad: {e}")),
    };
    let rcpt: Address = match to.parse() {
        Ok(a) => a,
        Err(e) => return failed(format!("the recipient `{to}` is not an email address: {e}")),
    };
    let envelope = match Envelope::new(Some(from), vec![rcpt]) {
        Ok(envelope) => envelope,
        Err(e) => return failed(format!("the SMTP envelope is bad: {e}")),
    };
    match transport.send_raw(&envelope, &message).await {
        Ok(response) => {
            let message_id = MessageParser::default()
                .parse_headers(&message)
                .and_then(|m| m.message_id().map(str::to_owned));
            let provider_id = message_id.unwrap_or_else(|| response.message().collect::<Vec<_>>().join(" "));
            SendOutcome::Sent { provider_id }
        }
        Err(e) => classify(&e),
    }
}

/// The transport the settings describe, or which setting is wrong.
fn transport(config: &PlatformConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let host = config.get("smtp_host")?;
    let tls = config.settings.get("smtp_tls").map_or("starttls", String::as_str);
    let (builder, default_port) = match tls {
        "none" => (AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host), 25),
        "starttls" => (
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| format!("the SMTP relay `{host}` cannot be used with STARTTLS: {e}"))?,
            587,
        ),
        "tls" => (
            AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| format!("the SMTP relay `{host}` cannot be used with TLS: {e}"))?,
            465,
        ),
        other => {
            return Err(format!(
                "the `smtp_tls` setting `{other}` is not `starttls`, `tls` or `none`"
            ))
        }
    };
    let port = match config.settings.get("smtp_port") {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("the `smtp_port` setting `{p}` is not a port number"))?,
        None => default_port,
    };
    let timeout = match config.settings.get("smtp_timeout_secs") {
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| format!("the `smtp_timeout_secs` setting `{t}` is not a number of seconds"))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    let mut builder = builder.port(port).timeout(Some(timeout));
    match (
        config.settings.get("smtp_user"),
        config.settings.get("smtp_password"),
    ) {
        (Some(user), Some(password)) => {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        (None, None) => {}
        _ => return Err("`smtp_user` and `smtp_password` must be set together".to_owned()),
    }
    Ok(builder.build())
}

/// What an SMTP failure means for the outbox (R24).
fn classify(e: &SmtpError) -> SendOutcome {
    let reason = e.to_string();
    if e.is_permanent() || e.is_client() {
        // 5xx: the relay will never take this message (a bad mailbox, a policy refusal);
        // a client error is ours (an envelope lettre cannot write): neither heals by waiting.
        SendOutcome::Failed { reason }
    } else {
        // 4xx (greylisting, a full queue), refused or dropped connections, timeouts, TLS
        // handshakes and garbled answers: the relay or the network may recover.
        SendOutcome::Retry { after: None, reason }
    }
}
