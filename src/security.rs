//! Who may do what at the edge: signed tokens for agents and supervisors, keys for the channel
//! and admin HTTP APIs, webhook secrets, allowed browser origins and per-connection limits.
//! The gateway consults it; the engine never sees a credential. See SECURITY.md.

mod credentials;

pub use credentials::{Credentials, IngressKey};

use std::collections::{BTreeMap, HashMap};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::core::{Channel, Role};
use crate::ids::{AgentId, WorkspaceId};
use crate::protocol;

/// The secret of the development setup: used only when no key is configured, with a warning,
/// so that `cargo run` and `switchboard token` work out of the box.
pub const DEV_SECRET: &str = "switchboard-dev-secret-do-not-use-in-production";

/// Frames per second per connection once a `[security]` section exists: well above what a
/// person at a desk sends, well below a flood.
pub const FRAMES_PER_SECOND: u32 = 50;

/// The development setup's frame rate: effectively none, so that the load harness and the
/// tests, which act out a shift in milliseconds, are not throttled.
pub const DEVELOPMENT_FRAMES_PER_SECOND: u32 = 1_000_000;

/// What a token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The agent id.
    pub sub: String,
    /// The role, spelled as on the wire (`agent`, `supervisor`, `admin`).
    pub role: protocol::Role,
    /// The workspace the token is for (R27): it opens that workspace's paths and no other's.
    /// Tokens from before workspaces have none; see [`ClaimlessTokens`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// When the bearer signed in (OIDC's `auth_time`), seconds since the epoch: a renewed
    /// token keeps its ancestor's, so renewals cannot outlast [`MAX_SESSION`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

/// The longest a chain of renewed tokens lasts after the sign-in it began with: a token that
/// leaked cannot be renewed for ever.
pub const MAX_SESSION: chrono::Duration = chrono::Duration::hours(12);
/// How long a renewed token lasts when the one presented does not say how long it was issued
/// for (no `iat` or `nbf`).
const RENEWAL_DEFAULT: chrono::Duration = chrono::Duration::hours(1);

/// A renewed token and its expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renewed {
    /// The JWT.
    pub token: String,
    /// Its `exp`.
    pub expires_at: Timestamp,
}

/// A verified token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Who.
    pub agent: AgentId,
    /// With which role.
    pub role: Role,
    /// The workspace it is for: its `ws` claim, or, once [`Verified::for_workspace`] has let a
    /// token without one in, the workspace that did; none for a claimless token not yet
    /// checked.
    pub workspace: Option<WorkspaceId>,
    /// Until when; none for a static token.
    pub expires_at: Option<Timestamp>,
    /// How long it was issued for (`exp` less `iat`, else `nbf`); none when it does not say.
    pub lifetime: Option<chrono::Duration>,
    /// When its bearer signed in: `auth_time`, else `iat`, else `nbf`.
    pub signed_in_at: Option<Timestamp>,
}

/// Why a token was refused; the text goes to the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token we issued or accept.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Past its `exp`.
    #[error("the token expired at {0}")]
    Expired(Timestamp),
    /// Before its `nbf`.
    #[error("the token is not valid before {0}")]
    NotYetValid(Timestamp),
    /// A renewal past [`MAX_SESSION`] after the sign-in.
    #[error("the session began at {0} and may not be renewed any more: sign in again")]
    SessionOver(Timestamp),
    /// Signed for another workspace than the one whose path it was presented on. The text
    /// names neither workspace, so that it reads the same whether the token's exists or not.
    #[error("the token is not valid in this workspace")]
    OtherWorkspace,
    /// Without a `ws` claim where claimless tokens are refused (see [`ClaimlessTokens`]).
    #[error("the token names no workspace (no `ws` claim), and tokens without one are refused here")]
    NoWorkspace,
    /// A renewal where the engine holds only a public key.
    #[error("this engine verifies tokens with a public key and issues none: renew the token at your identity provider")]
    CannotSign,
}

/// Checks signed tokens (JWT). Time is checked against the engine's clock, not the wall, so
/// that tests can drive it; jsonwebtoken checks only the signature and the algorithm.
#[derive(Clone)]
pub struct Tokens {
    algorithm: Algorithm,
    decoding: DecodingKey,
    /// Only with a shared secret: lets `switchboard token` and tests mint tokens.
    encoding: Option<EncodingKey>,
    leeway_secs: i64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("algorithm", &self.algorithm)
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8], leeway_secs: i64) -> Self {
        Self {
            algorithm: Algorithm::HS256,
            decoding: DecodingKey::from_secret(secret),
            encoding: Some(EncodingKey::from_secret(secret)),
            leeway_secs,
        }
    }

    /// RS256 or ES256 with a public key in PEM.
    pub fn public_key(algorithm: Algorithm, pem: &[u8], leeway_secs: i64) -> Result<Self, String> {
        let decoding = match algorithm {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(pem),
            Algorithm::ES256 => DecodingKey::from_ec_pem(pem),
            other => {
                return Err(format!(
                    "unsupported algorithm {other:?}: use HS256, RS256 or ES256"
                ))
            }
        }
        .map_err(|e| format!("cannot read the {algorithm:?} public key: {e}"))?;
        Ok(Self {
            algorithm,
            decoding,
            encoding: None,
            leeway_secs,
        })
    }

    /// Verifies `token` as of `now`.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Verified, TokenError> {
        let mut validation = Validation::new(self.algorithm);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = ["exp", "sub"].iter().map(|s| s.to_string()).collect();
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let claims = data.claims;
        let at = |secs: i64| Timestamp::from_timestamp(secs, 0).unwrap_or_default();
        let now_secs = now.timestamp();
        if now_secs >= claims.exp + self.leeway_secs {
            return Err(TokenError::Expired(at(claims.exp)));
        }
        if let Some(nbf) = claims.nbf {
            if now_secs + self.leeway_secs < nbf {
                return Err(TokenError::NotYetValid(at(nbf)));
            }
        }
        if claims.sub.is_empty() {
            return Err(TokenError::Invalid("`sub` is empty".into()));
        }
        let workspace = claims
            .ws
            .map(|ws| WorkspaceId::parse(&ws))
            .transpose()
            .map_err(|_| TokenError::Invalid("the `ws` claim is not a workspace id".into()))?;
        Ok(Verified {
            agent: AgentId::from(claims.sub),
            role: claims.role.into(),
            workspace,
            expires_at: Some(at(claims.exp + self.leeway_secs)),
            lifetime: claims
                .iat
                .or(claims.nbf)
                .map(|start| chrono::Duration::seconds(claims.exp - start))
                .filter(|lifetime| *lifetime > chrono::Duration::zero()),
            signed_in_at: claims.auth_time.or(claims.iat).or(claims.nbf).map(at),
        })
    }

    /// Signs a token for `agent` of `workspace` with `role`, valid from `now` for `ttl`; only
    /// with a shared secret.
    pub fn mint(
        &self,
        workspace: &WorkspaceId,
        agent: &str,
        role: Role,
        now: Timestamp,
        ttl: chrono::Duration,
    ) -> Option<String> {
        self.sign(Claims {
            sub: agent.to_owned(),
            role: role.into(),
            ws: Some(workspace.as_str().to_owned()),
            exp: (now + ttl).timestamp(),
            nbf: Some(now.timestamp()),
            iat: Some(now.timestamp()),
            auth_time: None,
        })
    }

    /// A fresh token for the bearer of the verified token `presented`: same agent, role and
    /// workspace, for as long as `presented` was issued for, but never past [`MAX_SESSION`]
    /// after the sign-in it descends from. A claimless token let in by
    /// [`Verified::for_workspace`] is renewed with the claim of the workspace that let it in.
    pub fn renew(&self, presented: &Verified, now: Timestamp) -> Result<Renewed, TokenError> {
        let signed_in = presented.signed_in_at.unwrap_or(now);
        let session_ends = signed_in + MAX_SESSION;
        if now >= session_ends {
            return Err(TokenError::SessionOver(signed_in));
        }
        let lifetime = presented.lifetime.unwrap_or(RENEWAL_DEFAULT).min(MAX_SESSION);
        let exp = (now + lifetime).min(session_ends).timestamp();
        let token = self
            .sign(Claims {
                sub: presented.agent.as_str().to_owned(),
                role: presented.role.into(),
                ws: presented.workspace.as_ref().map(|ws| ws.as_str().to_owned()),
                exp,
                nbf: Some(now.timestamp()),
                iat: Some(now.timestamp()),
                auth_time: Some(signed_in.timestamp()),
            })
            .ok_or(TokenError::CannotSign)?;
        Ok(Renewed {
            token,
            expires_at: Timestamp::from_timestamp(exp, 0).unwrap_or(now + lifetime),
        })
    }

    fn sign(&self, claims: Claims) -> Option<String> {
        let key = self.encoding.as_ref()?;
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key).ok()
    }
}

impl Verified {
    /// Lets the token into `workspace`, the one named by the path it was presented on (R27):
    /// only if its claim names that workspace, or, without a claim, if `workspace` is `default`
    /// and `claimless` allows it. The claim's own workspace is never looked up, so the refusal
    /// is the same whether it exists or not.
    pub fn for_workspace(
        mut self,
        workspace: &WorkspaceId,
        claimless: ClaimlessTokens,
    ) -> Result<Self, TokenError> {
        match &self.workspace {
            Some(claimed) if claimed == workspace => Ok(self),
            Some(_) => Err(TokenError::OtherWorkspace),
            None if claimless == ClaimlessTokens::Default && workspace.is_default() => {
                self.workspace = Some(workspace.clone());
                Ok(self)
            }
            None => Err(TokenError::NoWorkspace),
        }
    }
}

/// What a signed token without a `ws` claim opens (`[security] claimless_tokens`). Tokens
/// signed before workspaces, and those of identity providers not yet told to add the claim,
/// have none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimlessTokens {
    /// The paths of `default` (the unprefixed ones and `/v1/w/default/…`), and no other
    /// workspace's: what every token opened before workspaces, so an upgrade locks no one out.
    #[default]
    Default,
    /// None: every signed token must name its workspace.
    Refuse,
}

/// Everything the gateway checks.
#[derive(Clone, Debug)]
pub struct Security {
    /// Signed tokens; always on.
    pub tokens: Tokens,
    /// Whether per-agent static tokens (config, admin API) are accepted too.
    pub static_tokens: bool,
    /// What a signed token without a workspace claim opens.
    pub claimless_tokens: ClaimlessTokens,
    /// Browser origins allowed on the WebSocket upgrade; empty: any (development).
    pub allowed_origins: Vec<String>,
    /// The bearer key of `default`'s admin API (its admin key: `default` has no generated
    /// one); while no [`Security::platform_key`] is set, the platform's key too. None, and no
    /// platform key: both APIs are open (development).
    pub admin_key: Option<String>,
    /// The bearer key of the platform API, which also opens every workspace's admin API;
    /// none: the admin key stands in for it (see [`Security::effective_platform_key`]).
    pub platform_key: Option<String>,
    /// The bearer key of the channel ingress for channels without a webhook secret; none:
    /// open (development).
    pub ingress_key: Option<String>,
    /// Per channel: the HMAC-SHA256 secret its webhook signs bodies with.
    pub webhook_secrets: HashMap<Channel, String>,
    /// Per channel connected to its platform: the platform's settings, among them the secrets
    /// its own webhooks are verified with (R23; see SECURITY.md).
    pub platforms: BTreeMap<Channel, PlatformConfig>,
    /// How far a signed webhook's `sent_at` may be from now, either way.
    pub replay_window: chrono::Duration,
    /// Frames a connection may send per second (a burst of twice that is allowed).
    pub frames_per_second: u32,
    /// Open connections per agent (tabs, devices).
    pub max_connections_per_agent: usize,
}

impl Default for Security {
    /// The development setup: the dev secret, static tokens on, no frame rate limit,
    /// everything else open.
    fn default() -> Self {
        Self {
            tokens: Tokens::hs256(DEV_SECRET.as_bytes(), 0),
            static_tokens: true,
            claimless_tokens: ClaimlessTokens::Default,
            allowed_origins: Vec::new(),
            admin_key: None,
            platform_key: None,
            ingress_key: None,
            webhook_secrets: HashMap::new(),
            platforms: BTreeMap::new(),
            replay_window: chrono::Duration::minutes(5),
            frames_per_second: DEVELOPMENT_FRAMES_PER_SECOND,
            max_connections_per_agent: 16,
        }
    }
}

impl Security {
    /// Whether a WebSocket upgrade from `origin` may proceed. A request without an Origin
    /// header is not from a browser (no cross-site risk) and passes.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(_) if self.allowed_origins.is_empty() => true,
            Some(origin) => self.allowed_origins.iter().any(|o| o == origin),
        }
    }

    /// The key of the platform API: `platform_key`, else `admin_key` (as before there was a
    /// platform key, so that an upgrade locks no one out). Whoever holds it can rotate any
    /// workspace's admin key, so it opens every workspace's admin API as well.
    pub fn effective_platform_key(&self) -> Option<&str> {
        self.platform_key.as_deref().or(self.admin_key.as_deref())
    }

    /// Checks the bearer `presented` on the platform API. Open when no key is configured
    /// (development).
    pub fn admit_platform(&self, presented: Option<&str>) -> Result<(), KeyError> {
        let Some(key) = self.effective_platform_key() else {
            return Ok(());
        };
        let presented = presented.ok_or(KeyError::Missing("platform"))?;
        if same_key(presented, &TokenHash::of(key)) {
            Ok(())
        } else {
            Err(KeyError::Wrong("platform"))
        }
    }

    /// Checks the bearer `presented` on the admin API of a workspace whose own admin key has
    /// the digest `workspace_key` (none: no workspace of that id, or one without a key): it
    /// must be that key or the platform key. The refusal is the same for a key of another
    /// workspace as for a made-up one, and whether the path's workspace exists or not, so
    /// that a caller learns nothing of other workspaces (R27). Open when no key is configured
    /// (development).
    pub fn admit_admin(
        &self,
        workspace_key: Option<&TokenHash>,
        presented: Option<&str>,
    ) -> Result<(), KeyError> {
        let Some(platform) = self.effective_platform_key() else {
            return Ok(());
        };
        let presented = presented.ok_or(KeyError::Missing("admin"))?;
        // Both compared, whichever matches: the time taken says nothing of which did.
        let own = workspace_key.is_some_and(|key| same_key(presented, key));
        let platform = same_key(presented, &TokenHash::of(platform));
        if own | platform {
            Ok(())
        } else {
            Err(KeyError::Wrong("admin"))
        }
    }
}

/// Whether the key `presented` has the digest `key`, compared in constant time (digests, so
/// that not even the key's length shows in the time taken).
fn same_key(presented: &str, key: &TokenHash) -> bool {
    constant_time_eq(TokenHash::of(presented).as_bytes(), key.as_bytes())
}

/// Why a bearer key was refused on the admin or the platform API (`.0` names which). The text
/// goes to the client: it never names a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No `Authorization: Bearer …`.
    #[error("the {0} API needs Authorization: Bearer <{0} key>")]
    Missing(&'static str),
    /// A key, but not one that opens this API.
    #[error("wrong {0} key")]
    Wrong(&'static str),
}

/// A workspace's admin key, just generated (R27): 256 bits from the operating system's
/// generator, in URL-safe base64 without padding (43 characters). The platform API shows it
/// once; only its digest ([`AdminKey::digest`]) is kept.
pub struct AdminKey(String);

impl AdminKey {
    /// A new, random key.
    pub fn generate() -> Result<Self, getrandom::Error> {
        use base64::Engine as _;
        let mut bits = [0u8; 32];
        getrandom::getrandom(&mut bits)?;
        Ok(Self(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bits),
        ))
    }

    /// What is stored and checked against.
    pub fn digest(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }

    /// The key itself, to be shown once.
    pub fn reveal(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey(..)")
    }
}

/// A SHA-256 digest of a static agent token or of a workspace's admin key: what the engine
/// keeps and the store records instead of the secret, so that neither memory dumps nor the
/// database file hand out a working credential. A presented token or key is hashed and
/// looked up, or compared, by its digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The digest of `token`.
    pub fn of(token: &str) -> Self {
        use sha2::{Digest, Sha256};
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// A digest read back from storage; none unless it is 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for TokenHash {
    // A digest of a short development token is easy to reverse: kept out of logs anyway.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Credentials and addresses of one channel's platform, from the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlatformConfig {
    /// Where its API is (`https://graph.facebook.com/v21.0`, `https://api.telegram.org`,
    /// `https://api.twilio.com`); tests point it at a fake platform on 127.0.0.1.
    pub base_url: String,
    /// Named secrets and ids (`access_token`, `phone_number_id`, `app_secret`,
    /// `verify_token`, `bot_token`, `secret_token`, `account_sid`, `auth_token`, `from`,
    /// `webhook_url`, `smtp_host`, …): each module documents the ones it reads.
    pub settings: BTreeMap<String, String>,
}

impl PlatformConfig {
    /// A setting the module needs, or what is missing.
    pub fn get(&self, key: &str) -> Result<&str, String> {
        self.settings
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("the channel's platform settings have no `{key}`"))
    }
}

#[cfg(test)]
mod tests;
