//! Which workspace a request is for (R27): the one `/v1/w/{workspace}/…` names, or `default`
//! on the unprefixed paths of before workspaces. A workspace not served here answers
//! `not_found`, the same whether its id is unknown, malformed or being unloaded.

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use super::error::ApiError;
use super::AppState;
use crate::engine::Engine;
use crate::ids::WorkspaceId;
use crate::refusal::Refusal;
use crate::workspaces::{Admission, Workspace};

/// The path parameter that names the workspace (`/v1/w/{workspace}/…`).
pub const PATH_PARAM: &str = "workspace";

/// The workspace a request or socket is for, admitted: unloading it waits until this is
/// dropped (a handler holds it to its end, a socket for its life).
#[derive(Debug)]
pub struct Tenant {
    workspace: Arc<Workspace>,
    _admission: Admission,
}

impl Tenant {
    /// Its engine: every handler's way to its workspace's state.
    pub fn engine(&self) -> &Arc<Engine> {
        self.workspace.engine()
    }

    /// The workspace.
    pub fn workspace(&self) -> &Arc<Workspace> {
        &self.workspace
    }
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let id = match named(parts, state).await? {
            // The reason names the id cut short: a path segment may be long.
            Some(text) => WorkspaceId::parse(&text)
                .map_err(|e| ApiError::new(crate::core::ErrorCode::NotFound, e.to_string()))?,
            None => WorkspaceId::default_workspace(),
        };
        let unknown = || ApiError::from(Refusal::not_found("workspace", &id));
        let workspace = state.workspaces.get(&id).ok_or_else(unknown)?;
        // Refused while it is being unloaded: to the caller, it is already gone.
        let admission = workspace.admit().ok_or_else(unknown)?;
        Ok(Self {
            workspace,
            _admission: admission,
        })
    }
}

/// The workspace the path names, if it names one (`None`: an unprefixed path, `default`).
pub(super) async fn named(parts: &mut Parts, state: &AppState) -> Result<Option<String>, ApiError> {
    let params = match RawPathParams::from_request_parts(parts, state).await {
        Ok(params) => params,
        // No parameters at all: an unprefixed path with none of its own.
        Err(axum::extract::rejection::RawPathParamsRejection::MissingPathParams(_)) => return Ok(None),
        Err(e) => {
            return Err(ApiError::new(
                crate::core::ErrorCode::NotFound,
                format!("no such workspace: {}", e.body_text()),
            ))
        }
    };
    Ok(params
        .iter()
        .find(|(name, _)| *name == PATH_PARAM)
        .map(|(_, value)| value.to_owned()))
}
