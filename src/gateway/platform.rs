//! The platform API (R27), under `/v1/platform/workspaces`: create, list, show, suspend,
//! resume and delete workspaces. Every change is answered once it is on disk.
//!
//! Guarded, for now, by the admin key (`[security] admin_key`, [`auth::admin_only`]): an
//! interim until the platform key and per-workspace admin keys (the rest of increment 7 of
//! docs/design/workspaces.md). In development (no `[security]`) it is open, like the admin API.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth;
use super::error::ApiError;
use super::AppState;
use crate::clock::Timestamp;
use crate::core::ErrorCode;
use crate::ids::WorkspaceId;
use crate::refusal::Refusal;
use crate::store::{WorkspaceRow, WorkspaceState};
use crate::workspaces::PlatformError;

/// The longest display name accepted.
const MAX_NAME_CHARS: usize = 200;

/// The platform API's routes, behind the admin key.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/platform/workspaces", get(list).post(create))
        .route("/v1/platform/workspaces/{id}", get(show).delete(delete))
        .route("/v1/platform/workspaces/{id}/suspend", post(suspend))
        .route("/v1/platform/workspaces/{id}/resume", post(resume))
        .route_layer(axum::middleware::from_fn_with_state(state, auth::admin_only))
}

/// `POST /v1/platform/workspaces`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    /// `^[a-z0-9][a-z0-9-]{0,62}$`.
    id: String,
    /// A display name.
    #[serde(default)]
    name: Option<String>,
}

/// A workspace as the platform API shows it.
#[derive(Debug, Serialize)]
pub struct WorkspaceView {
    id: WorkspaceId,
    name: Option<String>,
    state: WorkspaceState,
    created_at: Timestamp,
}

impl From<WorkspaceRow> for WorkspaceView {
    fn from(row: WorkspaceRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            state: row.state,
            created_at: row.created_at,
        }
    }
}

impl From<PlatformError> for ApiError {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::Exists(_) | PlatformError::Default(_) => ApiError::bad_request(e.to_string()),
            PlatformError::NotFound(id) => Refusal::not_found("workspace", id).into(),
            PlatformError::Fixed => ApiError::new(ErrorCode::NotFound, e.to_string()),
            PlatformError::Store(store) => ApiError::new(
                ErrorCode::StorageUnavailable,
                format!("not saved, so not done: {}", store.client_detail()),
            ),
            PlatformError::Unload(unload) => {
                tracing::error!(error = %unload, "unloading a workspace");
                ApiError::new(
                    ErrorCode::StorageUnavailable,
                    "the workspace was let go of, but its last changes may not be saved",
                )
            }
        }
    }
}

/// The workspace a path names; a malformed id is one that does not exist.
#[derive(Debug, Deserialize)]
pub struct WorkspacePath {
    id: String,
}

impl WorkspacePath {
    fn id(&self) -> Result<WorkspaceId, ApiError> {
        WorkspaceId::parse(&self.id).map_err(|_| Refusal::not_found("workspace", &self.id).into())
    }
}

async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateWorkspace>, JsonRejection>,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    let Json(body) = body?;
    let id = WorkspaceId::parse(&body.id).map_err(|e| ApiError::bad_request(format!("`id`: {e}")))?;
    if let Some(name) = &body.name {
        if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(ApiError::bad_request(format!(
                "`name` must hold 1 to {MAX_NAME_CHARS} characters"
            )));
        }
    }
    let row = state.workspaces.create(id, body.name).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<WorkspaceView>>, ApiError> {
    let rows = state.workspaces.rows().await?;
    Ok(Json(rows.into_iter().map(WorkspaceView::from).collect()))
}

async fn show(
    State(state): State<AppState>,
    Path(path): Path<WorkspacePath>,
) -> Result<Json<WorkspaceView>, ApiError> {
    Ok(Json(state.workspaces.row(&path.id()?).await?.into()))
}

async fn suspend(
    State(state): State<AppState>,
    Path(path): Path<WorkspacePath>,
) -> Result<Json<WorkspaceView>, ApiError> {
    Ok(Json(state.workspaces.suspend(&path.id()?).await?.into()))
}

async fn resume(
    State(state): State<AppState>,
    Path(path): Path<WorkspacePath>,
) -> Result<Json<WorkspaceView>, ApiError> {
    Ok(Json(state.workspaces.resume(&path.id()?).await?.into()))
}

async fn delete(
    State(state): State<AppState>,
    Path(path): Path<WorkspacePath>,
) -> Result<StatusCode, ApiError> {
    state.workspaces.delete(&path.id()?).await?;
    Ok(StatusCode::NO_CONTENT)
}
