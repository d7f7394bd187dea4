//! The admin API: agents and queues, so that a harness can create thousands of agents.
//!
//! Agents created, changed or removed here are recorded in the store and answered only once
//! that is on disk, so they survive a restart (R27); static tokens are stored as SHA-256
//! digests only.

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::error::{until_durable, ApiError};
use super::tenant::Tenant;
use crate::config::AgentConfig;
use crate::engine::{AgentStatus, Engine, QueueView};
use crate::ids::AgentId;

const MAX_BATCH: usize = 20_000;

/// The agent an admin path names: `…/admin/agents/{id}` (a struct, by name, since the path
/// may name a workspace too).
#[derive(Debug, Deserialize)]
pub struct AgentPath {
    id: String,
}

fn upsert(engine: &Engine, agent: AgentConfig) -> Result<(), ApiError> {
    if agent.id.trim().is_empty() {
        return Err(ApiError::bad_request("`id` must not be empty"));
    }
    if agent.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(ApiError::bad_request(format!(
            "agent {}: `token` must not be empty",
            agent.id
        )));
    }
    let (profile, token) = agent.into_profile();
    engine.upsert_agent_live(profile, token);
    Ok(())
}

/// Refuses `agents` that would take the workspace over its `max_agents` (R27): only those not
/// there yet count, each once.
fn room_for_agents<'a>(
    tenant: &Tenant,
    agents: impl IntoIterator<Item = &'a AgentConfig>,
) -> Result<(), ApiError> {
    let engine = tenant.engine();
    let new: std::collections::BTreeSet<&str> = agents
        .into_iter()
        .map(|a| a.id.as_str())
        .filter(|id| engine.agent(&AgentId::from(*id)).is_none())
        .collect();
    // A workspace not served here has no limits: nothing can be done in it anyway.
    match tenant.workspace() {
        Some(workspace) if !new.is_empty() => Ok(workspace
            .fairness()
            .admit_agents(engine.agent_count(), new.len())?),
        _ => Ok(()),
    }
}

/// `GET /v1/admin/agents`.
pub async fn list_agents(tenant: Tenant) -> Json<Vec<AgentStatus>> {
    Json(tenant.engine().agent_statuses())
}

/// `POST /v1/admin/agents`: create (or replace) one agent; answered once it is on disk.
pub async fn create_agent(
    tenant: Tenant,
    body: Result<Json<AgentConfig>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let engine = tenant.engine();
    let Json(agent) = body?;
    room_for_agents(&tenant, [&agent])?;
    upsert(engine, agent)?;
    until_durable(engine).await?;
    Ok(StatusCode::CREATED)
}

/// `POST /v1/admin/agents/batch`: create (or replace) many agents at once.
pub async fn create_agents(
    tenant: Tenant,
    body: Result<Json<Vec<AgentConfig>>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let engine = tenant.engine();
    let Json(agents) = body?;
    if agents.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "a batch holds at most {MAX_BATCH} agents, got {}",
            agents.len()
        )));
    }
    if let Some(bad) = agents.iter().find(|a| a.id.trim().is_empty()) {
        return Err(ApiError::bad_request(format!(
            "an agent has an empty `id` (name {:?})",
            bad.name
        )));
    }
    room_for_agents(&tenant, &agents)?;
    for agent in agents {
        upsert(engine, agent)?;
    }
    until_durable(engine).await?;
    Ok(StatusCode::CREATED)
}

/// `PUT /v1/admin/agents/{id}`: update an agent; the path names it.
pub async fn update_agent(
    tenant: Tenant,
    Path(AgentPath { id }): Path<AgentPath>,
    body: Result<Json<AgentConfig>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let engine = tenant.engine();
    let Json(agent) = body?;
    if agent.id != id {
        return Err(ApiError::bad_request(format!(
            "body id `{}` differs from path id `{id}`",
            agent.id
        )));
    }
    upsert(engine, agent)?;
    until_durable(engine).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/admin/agents/{id}`: answered once the removal is on disk (R27).
pub async fn delete_agent(
    tenant: Tenant,
    Path(AgentPath { id }): Path<AgentPath>,
) -> Result<StatusCode, ApiError> {
    let engine = tenant.engine();
    engine.remove_agent(&AgentId::from(id))?;
    until_durable(engine).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of a limit change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitBody {
    limit: u32,
}

/// `PUT /v1/admin/agents/{id}/limit`: change a limit live (R06).
pub async fn set_limit(
    tenant: Tenant,
    Path(AgentPath { id }): Path<AgentPath>,
    body: Result<Json<LimitBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let engine = tenant.engine();
    let Json(LimitBody { limit }) = body?;
    engine.set_limit(&AgentId::from(id), limit)?;
    until_durable(engine).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of a skills change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillsBody {
    skills: BTreeMap<String, u8>,
}

/// `PUT /v1/admin/agents/{id}/skills`: change an agent's skills live (R19).
pub async fn set_skills(
    tenant: Tenant,
    Path(AgentPath { id }): Path<AgentPath>,
    body: Result<Json<SkillsBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let engine = tenant.engine();
    let Json(SkillsBody { skills }) = body?;
    engine.set_skills(&AgentId::from(id), skills)?;
    until_durable(engine).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/admin/queues`: every queue with its waiting chats and their positions.
pub async fn list_queues(tenant: Tenant) -> Json<Vec<QueueView>> {
    Json(tenant.engine().queue_views())
}
