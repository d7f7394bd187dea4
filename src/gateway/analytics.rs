//! `GET /v1/analytics`: the KPIs of R14 over a range, for supervisors and admins.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;

use super::auth::{authenticate, Handshake};
use super::error::ApiError;
use super::tenant::Tenant;
use super::AppState;
use crate::core::ErrorCode;
use crate::protocol::supervisor::{AnalyticsQuery, AnalyticsReport};

/// `GET /v1/analytics?from=…&to=…&agent=…&channel=…` (every part optional; `from` inclusive,
/// `to` exclusive, RFC 3339), with a supervisor's or admin's token.
pub async fn report(
    State(state): State<AppState>,
    tenant: Tenant,
    Query(auth): Query<Handshake>,
    Query(query): Query<AnalyticsQuery>,
    headers: HeaderMap,
) -> Result<Json<AnalyticsReport>, ApiError> {
    let caller = authenticate(&tenant, &state.security, &auth, &headers)?.caller;
    if !caller.role.supervises() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "analytics need the supervisor or admin role",
        ));
    }
    Ok(Json(tenant.engine().analytics_report(query)))
}
