//! Signed channel webhooks: the `X-Hub-Signature-256` check (Meta's format) and the memory of
//! signatures already seen, so that a captured request cannot be played again. See SECURITY.md.
//!
//! The signature covers the raw body only, not the time it was sent, so a valid request stays
//! valid forever. Two things bound that: a message's `sent_at` must be within the replay window
//! of now, and [`WebhookGuard`] remembers every signature it admitted for as long as its
//! request could still pass that check, refusing it a second time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::Sha256;

use super::error::ApiError;
use crate::clock::Timestamp;
use crate::core::{Channel, ErrorCode};

/// The header a signed webhook carries: `sha256=<hex HMAC-SHA256 of the raw body>`.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// How many signatures [`WebhookGuard::default`] remembers at once: the signed requests one
/// replay window may carry (about 330 a second with the default 5 minutes).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// A verified HMAC-SHA256 signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signature([u8; 32]);

/// Why a signed webhook was refused; the text goes to the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No signature header on a channel that signs its webhooks.
    #[error("no X-Hub-Signature-256 header: webhooks of {0} must be signed")]
    Unsigned(Channel),
    /// A signature header that is not `sha256=` and 64 hex digits.
    #[error("malformed X-Hub-Signature-256 header: {0}")]
    Malformed(&'static str),
    /// A well-formed signature that is not the body's.
    #[error("the X-Hub-Signature-256 signature does not match the body")]
    Forged,
    /// A signed body without `sent_at`.
    #[error("a signed body needs `sent_at` (RFC 3339): when the platform sent it")]
    Undated,
    /// A signed message sent too long before or after now.
    #[error("`sent_at` {sent_at} is outside the replay window ({window_secs} s either way of {now})")]
    Stale {
        /// What the body says.
        sent_at: Timestamp,
        /// The engine's time.
        now: Timestamp,
        /// The window, in seconds.
        window_secs: i64,
    },
    /// A signature already admitted within the window.
    #[error("replay: this signature was already seen within the replay window")]
    Replayed,
    /// As many signatures remembered as allowed: the request may be retried later.
    #[error("too many signed requests within the replay window (at most {0}); retry later")]
    Full(usize),
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        let code = match e {
            WebhookError::Full(_) => ErrorCode::RateLimited,
            _ => ErrorCode::Unauthorized,
        };
        ApiError::new(code, e.to_string())
    }
}

/// Checks that `headers` carry the signature of `body` made with `secret`, in constant time.
pub fn verify(
    channel: Channel,
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Signature, WebhookError> {
    let value = headers
        .get(SIGNATURE_HEADER)
        .ok_or(WebhookError::Unsigned(channel))?;
    let hex_digits = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("sha256="))
        .ok_or(WebhookError::Malformed("it must start with `sha256=`"))?;
    let mut claimed = [0u8; 32];
    hex::decode_to_slice(hex_digits, &mut claimed)
        .map_err(|_| WebhookError::Malformed("`sha256=` must be followed by 64 hex digits"))?;
    // HMAC takes a key of any length, so this never fails; a failure would refuse, not pass.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| WebhookError::Forged)?;
    mac.update(body);
    mac.verify_slice(&claimed).map_err(|_| WebhookError::Forged)?;
    Ok(Signature(claimed))
}

/// Remembers the signatures of admitted webhooks until their requests could no longer pass
/// the replay window, and refuses each a second time. Bounded: when full it refuses new
/// requests ([`WebhookError::Full`]) rather than grow.
#[derive(Debug)]
pub struct WebhookGuard {
    capacity: usize,
    seen: Mutex<Seen>,
}

/// The signatures remembered, each until a time, and the same ordered by that time so that
/// forgetting the expired ones costs only them.
#[derive(Debug, Default)]
struct Seen {
    until: HashMap<Signature, Timestamp>,
    by_expiry: BinaryHeap<Reverse<(Timestamp, Signature)>>,
}

impl Default for WebhookGuard {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl WebhookGuard {
    /// A guard remembering at most `capacity` signatures at once.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Admits a signed message once: its `sent_at` must be within `window` of `now`, either
    /// way. Its signature is remembered until `sent_at` leaves the window (a message dated
    /// ahead stays acceptable longer than one dated now).
    pub fn admit_message(
        &self,
        signature: Signature,
        sent_at: Option<Timestamp>,
        now: Timestamp,
        window: chrono::Duration,
    ) -> Result<(), WebhookError> {
        let sent_at = sent_at.ok_or(WebhookError::Undated)?;
        if (now - sent_at).abs() > window {
            return Err(WebhookError::Stale {
                sent_at,
                now,
                window_secs: window.num_seconds(),
            });
        }
        self.admit(signature, now, sent_at.max(now) + window)
    }

    /// Admits a signed call whose body carries no time (the bot calls) once within `window`
    /// of `now`.
    pub fn admit_undated(
        &self,
        signature: Signature,
        now: Timestamp,
        window: chrono::Duration,
    ) -> Result<(), WebhookError> {
        self.admit(signature, now, now + window)
    }

    /// How many signatures are remembered.
    pub fn len(&self) -> usize {
        self.seen.lock().until.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn admit(&self, signature: Signature, now: Timestamp, until: Timestamp) -> Result<(), WebhookError> {
        let mut seen = self.seen.lock();
        seen.forget_before(now);
        if seen.until.contains_key(&signature) {
            return Err(WebhookError::Replayed);
        }
        if seen.until.len() >= self.capacity {
            return Err(WebhookError::Full(self.capacity));
        }
        seen.until.insert(signature, until);
        seen.by_expiry.push(Reverse((until, signature)));
        Ok(())
    }

    /// Panics if the map and the heap disagree.
    #[cfg(test)]
    fn check_invariants(&self) {
        let seen = self.seen.lock();
        assert_eq!(seen.until.len(), seen.by_expiry.len());
        for Reverse((until, signature)) in seen.by_expiry.iter() {
            assert_eq!(seen.until.get(signature), Some(until));
        }
        assert!(seen.until.len() <= self.capacity);
    }
}

impl Seen {
    /// Forgets every signature remembered until before `now`. A signature is inserted only
    /// when absent, so each one is in the heap exactly once.
    fn forget_before(&mut self, now: Timestamp) {
        while let Some(Reverse((until, signature))) = self.by_expiry.peek().copied() {
            if until >= now {
                break;
            }
            self.by_expiry.pop();
            self.until.remove(&signature);
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use chrono::{Duration, TimeZone, Utc};

    use super::*;

    const SECRET: &[u8] = b"whatsapp-app-secret";
    const BODY: &[u8] = br#"{"from": "+4915100000001", "text": "Hello"}"#;

    fn now() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().expect("date")
    }

    fn headers(signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_str(signature).expect("a header value"),
        );
        headers
    }

    /// The header value signing `body` with `secret`.
    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn signature(n: u8) -> Signature {
        Signature([n; 32])
    }

    #[test]
    fn a_body_verifies_only_with_its_own_signature_made_with_the_secret() {
        // Computed independently: python3 -c 'import hmac, hashlib; print(hmac.new(SECRET, BODY,
        // hashlib.sha256).hexdigest())'.
        let signed = "sha256=811b3cc1190a4e33594163518e0c86b13cdc754ba2d8b133eea02aa62de46f3d";
        assert_eq!(sign(SECRET, BODY), signed);
        assert!(verify(Channel::Whatsapp, SECRET, &headers(signed), BODY).is_ok());
        assert!(
            verify(
                Channel::Whatsapp,
                SECRET,
                &headers(&signed.to_uppercase().replace("SHA256", "sha256")),
                BODY
            )
            .is_ok(),
            "hex digits in either case"
        );
        let other_body = br#"{"from": "+4915100000001", "text": "Hellp"}"#;
        assert_eq!(
            verify(Channel::Whatsapp, SECRET, &headers(signed), other_body),
            Err(WebhookError::Forged)
        );
        let other_secret = sign(b"guess", BODY);
        assert_eq!(
            verify(Channel::Whatsapp, SECRET, &headers(&other_secret), BODY),
            Err(WebhookError::Forged)
        );
    }

    #[test]
    fn a_missing_or_malformed_header_names_what_is_wrong() {
        assert_eq!(
            verify(Channel::Whatsapp, SECRET, &HeaderMap::new(), BODY),
            Err(WebhookError::Unsigned(Channel::Whatsapp))
        );
        let digits = "ab".repeat(32);
        for malformed in [
            digits.clone(),
            format!("sha1={digits}"),
            "sha256=".to_owned(),
            format!("sha256={}", &digits[1..]),
            format!("sha256={digits}00"),
            format!("sha256={}", "zz".repeat(32)),
        ] {
            assert!(
                matches!(
                    verify(Channel::Whatsapp, SECRET, &headers(&malformed), BODY),
                    Err(WebhookError::Malformed(_))
                ),
                "{malformed}"
            );
        }
    }

    #[test]
    fn a_message_is_admitted_once_and_only_inside_the_window() {
        let guard = WebhookGuard::default();
        let window = Duration::minutes(5);
        assert_eq!(
            guard.admit_message(signature(1), None, now(), window),
            Err(WebhookError::Undated)
        );
        for sent_at in [now() - Duration::seconds(301), now() + Duration::seconds(301)] {
            assert!(matches!(
                guard.admit_message(signature(1), Some(sent_at), now(), window),
                Err(WebhookError::Stale { .. })
            ));
        }
        assert!(guard.is_empty(), "a refused request is not remembered");

        let at_the_edge = now() - window;
        assert_eq!(
            guard.admit_message(signature(1), Some(at_the_edge), now(), window),
            Ok(())
        );
        assert_eq!(
            guard.admit_message(signature(1), Some(at_the_edge), now(), window),
            Err(WebhookError::Replayed)
        );
        guard.check_invariants();
    }

    #[test]
    fn a_signature_is_remembered_exactly_as_long_as_its_message_could_pass() {
        let guard = WebhookGuard::default();
        let window = Duration::minutes(5);
        let ahead = now() + Duration::minutes(4);
        assert_eq!(
            guard.admit_message(signature(1), Some(ahead), now(), window),
            Ok(())
        );

        // Nine minutes on, the message is still inside the window: still a replay.
        let later = ahead + window;
        assert_eq!(
            guard.admit_message(signature(1), Some(ahead), later, window),
            Err(WebhookError::Replayed)
        );
        // A moment after, the window refuses it and the memory may go.
        let after = later + Duration::milliseconds(1);
        assert!(matches!(
            guard.admit_message(signature(1), Some(ahead), after, window),
            Err(WebhookError::Stale { .. })
        ));
        assert_eq!(guard.admit_undated(signature(2), after, window), Ok(()));
        assert_eq!(guard.len(), 1, "the expired signature was forgotten");
        guard.check_invariants();
    }

    #[test]
    fn a_full_guard_refuses_rather_than_grows_and_makes_room_as_signatures_expire() {
        let guard = WebhookGuard::with_capacity(3);
        let window = Duration::minutes(5);
        for n in 0..3 {
            let at = now() + Duration::minutes(i64::from(n));
            assert_eq!(guard.admit_undated(signature(n), at, window), Ok(()));
        }
        let at = now() + Duration::minutes(3);
        assert_eq!(
            guard.admit_undated(signature(9), at, window),
            Err(WebhookError::Full(3))
        );
        assert_eq!(
            guard.admit_undated(signature(0), at, window),
            Err(WebhookError::Replayed),
            "a replay is named as one even when full"
        );
        guard.check_invariants();

        // The first signature expires: there is room for one more, and only one.
        let at = now() + window + Duration::seconds(1);
        assert_eq!(guard.admit_undated(signature(9), at, window), Ok(()));
        assert_eq!(
            guard.admit_undated(signature(10), at, window),
            Err(WebhookError::Full(3))
        );
        assert_eq!(guard.len(), 3);
        guard.check_invariants();
    }
}
