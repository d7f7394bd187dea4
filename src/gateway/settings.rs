//! A workspace's settings over its admin API (R27), behind the admin guard:
//!
//! - `GET …/admin/settings`: `{"workspace", "settings"}`, every secret shown as
//!   `{"set": true}` (never what it is). `default`'s are the configuration's.
//! - `PUT …/admin/settings` with the whole settings (`config::WorkspaceSettings`, JSON): they
//!   replace the stored ones, secrets included (a secret left out is removed). Checked first,
//!   400 naming the field; stored and on disk next; then applied, live or by a reload (see
//!   `workspaces/settings.rs`): `{"workspace", "settings", "applied": "live" | "reloaded" |
//!   "on_resume"}`. `default`'s are the configuration file's: 400.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::tenant::Named;
use super::AppState;
use crate::config::WorkspaceSettings;
use crate::ids::WorkspaceId;
use crate::workspaces::SettingsApplied;

/// What both routes answer.
#[derive(Debug, Serialize)]
pub struct SettingsView {
    workspace: WorkspaceId,
    /// Redacted: see [`WorkspaceSettings::redacted`].
    settings: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<SettingsApplied>,
}

/// `GET /v1/w/{workspace}/admin/settings`.
pub async fn show(State(state): State<AppState>, Named(id): Named) -> Result<Json<SettingsView>, ApiError> {
    let settings = state.workspaces.settings(&id).await?;
    Ok(Json(SettingsView {
        workspace: id,
        settings: settings.redacted(),
        applied: None,
    }))
}

/// `PUT /v1/w/{workspace}/admin/settings`. Not through `Tenant`: a reload unloads the
/// workspace, which waits for every admitted request, this one's included.
pub async fn replace(
    State(state): State<AppState>,
    Named(id): Named,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SettingsView>, ApiError> {
    let body =
        body.map_err(|e| ApiError::bad_request(format!("the body could not be read: {}", e.body_text())))?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("the body is not UTF-8 JSON"))?;
    let settings = WorkspaceSettings::parse(text)
        .map_err(|e| ApiError::bad_request(format!("invalid settings: {}", e.reason())))?;
    let redacted = settings.redacted();
    let applied = state.workspaces.set_settings(&id, settings).await?;
    Ok(Json(SettingsView {
        workspace: id,
        settings: redacted,
        applied: Some(applied),
    }))
}
