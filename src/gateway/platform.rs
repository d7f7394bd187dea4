//! The platform API (R27), under `/v1/platform/workspaces`: create, list, show, suspend,
//! resume and delete workspaces, and rotate their admin keys. Every change is answered once
//! it is on disk.
//!
//! Guarded by the platform key ([`auth::platform_only`]: `[security] platform_key`, else
//! `admin_key`; open in development). A workspace's admin key is generated here, answered
//! once (on create and on each rotation), and only its digest goes to the registry and the
//! store.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth;
use super::error::ApiError;
use super::AppState;
use crate::clock::Timestamp;
use crate::config::WorkspaceSettings;
use crate::core::ErrorCode;
use crate::ids::WorkspaceId;
use crate::refusal::Refusal;
use crate::security::AdminKey;
use crate::store::{WorkspaceRow, WorkspaceState};
use crate::workspaces::{Limits, PlatformError};

/// The longest display name accepted.
const MAX_NAME_CHARS: usize = 200;

/// The platform API's routes, behind the platform key.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/platform/workspaces", get(list).post(create))
        .route("/v1/platform/workspaces/{id}", get(show).delete(delete))
        .route("/v1/platform/workspaces/{id}/suspend", post(suspend))
        .route("/v1/platform/workspaces/{id}/resume", post(resume))
        .route("/v1/platform/workspaces/{id}/admin-key", post(rotate_admin_key))
        .route("/v1/platform/workspaces/{id}/limits", put(set_limits))
        .route_layer(axum::middleware::from_fn_with_state(state, auth::platform_only))
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
    /// Its settings (`config::WorkspaceSettings`); absent: the platform's defaults.
    #[serde(default)]
    settings: Option<WorkspaceSettings>,
}

/// A workspace as the platform API shows it.
#[derive(Debug, Serialize)]
pub struct WorkspaceView {
    id: WorkspaceId,
    name: Option<String>,
    state: WorkspaceState,
    created_at: Timestamp,
    /// Its limits (R27); `null`: none.
    limits: Limits,
}

impl From<WorkspaceRow> for WorkspaceView {
    fn from(row: WorkspaceRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            state: row.state,
            created_at: row.created_at,
            // Read when the row was loaded or set, so it reads here too.
            limits: Limits::from_stored(&row.limits).unwrap_or_default(),
        }
    }
}

/// A workspace with its admin key in clear: the answer to a create and to a rotation, the
/// only times the key is shown.
#[derive(Debug, Serialize)]
pub struct WorkspaceWithKey {
    #[serde(flatten)]
    workspace: WorkspaceView,
    /// Its new admin key: `Authorization: Bearer …` on `/v1/w/{id}/admin/*`.
    admin_key: String,
}

/// A new admin key. The operating system's generator does not fail on a running Linux; if
/// it ever does, the answer is the one of a server that cannot keep a change (503
/// `storage_unavailable`, nothing done), which the protocol has, rather than a new code.
fn new_admin_key() -> Result<AdminKey, ApiError> {
    AdminKey::generate().map_err(|e| {
        tracing::error!(error = %e, "no random bits for an admin key");
        ApiError::new(
            ErrorCode::StorageUnavailable,
            "no admin key could be generated (the system's random generator failed): nothing was changed",
        )
    })
}

impl From<PlatformError> for ApiError {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::Exists(_)
            | PlatformError::Default(_)
            | PlatformError::DefaultAdminKey
            | PlatformError::Settings(_) => ApiError::bad_request(e.to_string()),
            PlatformError::NotFound(id) => Refusal::not_found("workspace", id).into(),
            PlatformError::Fixed => ApiError::new(ErrorCode::NotFound, e.to_string()),
            PlatformError::Store(store) => ApiError::new(
                ErrorCode::StorageUnavailable,
                format!("not saved, so not done: {}", store.client_detail()),
            ),
            // Recorded, and carried out once the workspace's node lets go of it: a repeat
            // waits for that again, or finds it done.
            PlatformError::Pending { .. } => {
                ApiError::new(ErrorCode::StorageUnavailable, e.to_string()).retry_after(1)
            }
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
) -> Result<(StatusCode, Json<WorkspaceWithKey>), ApiError> {
    let Json(body) = body?;
    let id = WorkspaceId::parse(&body.id).map_err(|e| ApiError::bad_request(format!("`id`: {e}")))?;
    if let Some(name) = &body.name {
        if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(ApiError::bad_request(format!(
                "`name` must hold 1 to {MAX_NAME_CHARS} characters"
            )));
        }
    }
    let admin_key = new_admin_key()?;
    let settings = body.settings.unwrap_or_default();
    let row = state
        .workspaces
        .create(id, body.name, admin_key.digest(), settings)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WorkspaceWithKey {
            workspace: row.into(),
            admin_key: admin_key.reveal(),
        }),
    ))
}

/// `POST /v1/platform/workspaces/{id}/admin-key`: a new admin key, answered once; the one
/// before opens nothing from the moment this answers.
async fn rotate_admin_key(
    State(state): State<AppState>,
    Path(path): Path<WorkspacePath>,
) -> Result<Json<WorkspaceWithKey>, ApiError> {
    let id = path.id()?;
    let admin_key = new_admin_key()?;
    let row = state.workspaces.set_admin_key(&id, admin_key.digest()).await?;
    Ok(Json(WorkspaceWithKey {
        workspace: row.into(),
        admin_key: admin_key.reveal(),
    }))
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

/// `PUT /v1/platform/workspaces/{id}/limits`: replaces the workspace's limits (R27; a key left
/// out: no limit), enforced from the answer on; answered once stored.
async fn set_limits(
    State(state): State<AppState>,
    Path(path): Path<WorkspacePath>,
    body: Result<Json<Limits>, JsonRejection>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let id = path.id()?;
    let Json(limits) = body?;
    limits.check().map_err(ApiError::bad_request)?;
    Ok(Json(state.workspaces.set_limits(&id, limits).await?.into()))
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;

    #[test]
    fn r27_r28_a_change_another_node_has_not_carried_out_yet_answers_503_with_retry_after() {
        let id = WorkspaceId::parse("acme").expect("an id");
        let response = ApiError::from(PlatformError::Pending { id, what: "deleted" }).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(axum::http::header::RETRY_AFTER),
            Some(&axum::http::HeaderValue::from_static("1"))
        );
        let not_found = ApiError::from(PlatformError::NotFound(
            WorkspaceId::parse("acme").expect("an id"),
        ));
        assert!(not_found
            .into_response()
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .is_none());
    }
}
