//! Which workspace a request is for (R27): the one `/v1/w/{workspace}/…` names, or `default`
//! on the unprefixed paths of before workspaces.
//!
//! A workspace id must not be probeable: a workspace that is not served here (unknown,
//! suspended, being unloaded) answers exactly as a served one does to a caller with wrong
//! credentials. So it is not refused here: the request goes on as a [`Tenant`] that is not
//! [served](Tenant::is_served), whose engine is a vacant one of its own (no agents, no
//! customers, no store) and whose keys match nothing. Every credential check runs as usual
//! and refuses as it refuses a wrong credential: a token names no agent of the vacant engine,
//! its [credentials](Tenant::credentials) open nothing (no ingress key, empty platform
//! secrets, which every adapter refuses), and a check that could still pass ends with
//! [`Tenant::served_or`]. Only a malformed id answers
//! `not_found` at once: no workspace can have it, so that says nothing about any.

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use super::error::ApiError;
use super::AppState;
use crate::channels::PlatformConfig;
use crate::core::ErrorCode;
use crate::engine::outbound::Outbound;
use crate::engine::{Engine, EngineConfig};
use crate::ids::WorkspaceId;
use crate::refusal::Refusal;
use crate::workspaces::{Admission, Credentials, IngressKey, Workspace};

/// The path parameter that names the workspace (`/v1/w/{workspace}/…`).
pub const PATH_PARAM: &str = "workspace";

/// The workspace a request or socket is for: admitted, if it is served here (unloading it
/// waits until this is dropped: a handler holds it to its end, a socket for its life).
pub struct Tenant {
    id: WorkspaceId,
    engine: Arc<Engine>,
    served: Option<Served>,
}

struct Served {
    workspace: Arc<Workspace>,
    _admission: Admission,
}

impl Tenant {
    /// Its engine: every handler's way to its workspace's state. For a workspace not served
    /// here, the vacant engine, which knows no one.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The id the path names (`default` on the unprefixed paths), served here or not.
    pub fn id(&self) -> &WorkspaceId {
        &self.id
    }

    /// The workspace, if it is served here.
    pub fn workspace(&self) -> Option<&Arc<Workspace>> {
        self.served.as_ref().map(|s| &s.workspace)
    }

    /// Whether the workspace is served here; if not, nothing may be done in it.
    pub fn is_served(&self) -> bool {
        self.served.is_some()
    }

    /// What its channels' calls are verified with: its own credentials, or the
    /// configuration's (`default`'s) when it has none. The one place the gateway looks them up.
    /// A workspace not served here has none that open anything ([`keyless`]).
    pub fn credentials(&self, state: &AppState) -> Arc<Credentials> {
        match self.workspace() {
            Some(workspace) => workspace
                .credentials()
                .unwrap_or_else(|| state.credentials.clone()),
            None => Arc::new(keyless(&state.credentials)),
        }
    }

    /// Ends a credential check that a workspace not served here could still pass (an empty
    /// webhook secret is one anyone can sign with): such a workspace has no keys, so it is
    /// refused with `wrong_credentials`, the answer that check gives a wrong key.
    pub fn served_or<E>(&self, wrong_credentials: impl FnOnce() -> E) -> Result<(), E> {
        if self.is_served() {
            Ok(())
        } else {
            Err(wrong_credentials())
        }
    }
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("id", &self.id)
            .field("served", &self.is_served())
            .finish_non_exhaustive()
    }
}

/// The workspace a request names, served here, but not admitted: for the calls that unload
/// and load it again themselves (a settings change), which must not wait for their own
/// admission to leave.
#[derive(Debug)]
pub struct Named(pub WorkspaceId);

impl FromRequestParts<AppState> for Named {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let tenant = Tenant::from_request_parts(parts, state).await?;
        // Its admin middleware answered a caller it let in to a workspace not served here;
        // this is for one that went away since.
        match tenant.workspace() {
            Some(workspace) => Ok(Self(workspace.id().clone())),
            None => Err(Refusal::not_found("workspace", tenant.id()).into()),
        }
    }
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let id = match named(parts, state).await? {
            // The reason names the id cut short: a path segment may be long.
            Some(text) => {
                WorkspaceId::parse(&text).map_err(|e| ApiError::new(ErrorCode::NotFound, e.to_string()))?
            }
            None => WorkspaceId::default_workspace(),
        };
        // Refused while it is being unloaded too: to the caller, it is already gone.
        let served = state.workspaces.get(&id).and_then(|workspace| {
            let admission = workspace.admit()?;
            Some(Served {
                workspace,
                _admission: admission,
            })
        });
        let engine = match &served {
            Some(served) => served.workspace.engine().clone(),
            None => vacant_engine(state.clock.clone()),
        };
        Ok(Self { id, engine, served })
    }
}

/// The credentials of a workspace not served here: shaped as `configured` (the configuration's,
/// which every workspace without its own has), so that its answers read the same, but opening
/// nothing: no ingress key opens the ingress, and every secret is empty, which each platform's
/// adapter refuses as a wrong one. An empty webhook secret is one anyone can sign with, so the
/// ingress ends its check with [`Tenant::served_or`] too.
fn keyless(configured: &Credentials) -> Credentials {
    let blank = |platform: &PlatformConfig| PlatformConfig {
        base_url: platform.base_url.clone(),
        settings: platform
            .settings
            .keys()
            .map(|k| (k.clone(), String::new()))
            .collect(),
    };
    Credentials {
        ingress_key: IngressKey::Unset,
        webhook_secrets: configured
            .webhook_secrets
            .keys()
            .map(|channel| (*channel, String::new()))
            .collect(),
        platforms: configured
            .platforms
            .iter()
            .map(|(channel, platform)| (*channel, blank(platform)))
            .collect(),
    }
}

/// The engine a request to a workspace not served here runs its credential checks against:
/// no agents, no customers, no store, on `clock` (the served engines' own, so that a token's
/// times are judged alike). Every check refuses before anything is done in it; and it is the
/// request's own, so that even a request let in just before its workspace went away (the
/// admin API checks its key in a middleware, then takes the tenant again) changes nothing
/// anyone sees.
fn vacant_engine(clock: crate::clock::SharedClock) -> Arc<Engine> {
    // Its outbox is nobody's: nothing reaches it.
    Engine::new(EngineConfig::default(), clock, Outbound::channel().0)
}

/// The workspace the path names, if it names one (`None`: an unprefixed path, `default`).
pub(super) async fn named(parts: &mut Parts, state: &AppState) -> Result<Option<String>, ApiError> {
    let params = match RawPathParams::from_request_parts(parts, state).await {
        Ok(params) => params,
        // No parameters at all: an unprefixed path with none of its own.
        Err(axum::extract::rejection::RawPathParamsRejection::MissingPathParams(_)) => return Ok(None),
        Err(e) => {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no such workspace: {}", e.body_text()),
            ))
        }
    };
    Ok(params
        .iter()
        .find(|(name, _)| *name == PATH_PARAM)
        .map(|(_, value)| value.to_owned()))
}
