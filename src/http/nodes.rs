//! `/api/nodes`: the nodes sharing this database, and draining one for a
//! rolling upgrade.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiError, AppState, Result};
use crate::jobs::JobError;
use crate::nodes::NodeView;

/// Every node the database knows.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeList {
    pub count: usize,
    pub nodes: Vec<NodeView>,
}

#[utoipa::path(
    get,
    path = "/api/nodes",
    operation_id = "list_nodes",
    tag = "nodes",
    summary = "The nodes sharing this database",
    description = "Each node's status (judged by its lease, never by a clock), since when it holds its lease, the jobs it holds against its capacity, its processing slots, labels and version. Also served with a trailing slash.",
    responses(
        (status = 200, description = "The nodes", body = NodeList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<NodeList>> {
    let nodes = state.nodes.list().await.map_err(JobError::from)?;
    Ok(Json(NodeList {
        count: nodes.len(),
        nodes,
    }))
}

#[utoipa::path(
    post,
    path = "/api/nodes/{id}/drain",
    operation_id = "drain_node",
    tag = "nodes",
    summary = "Drain a node",
    description = "The node takes no new job (starts sent to it are placed on other nodes); the jobs it runs finish. For rolling upgrades: drain, wait until its `jobs` is 0, restart it (a node takes jobs again when it starts). Also served with a trailing slash.",
    params(("id" = String, Path, description = "The node's id")),
    responses(
        (status = 200, description = "The node, draining", body = NodeView),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`node_not_found`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn drain(
    State(state): State<AppState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<NodeView>> {
    let Path(id) = id?;
    set_draining(&state, id, true).await
}

#[utoipa::path(
    delete,
    path = "/api/nodes/{id}/drain",
    operation_id = "resume_node",
    tag = "nodes",
    summary = "Let a drained node take jobs again",
    description = "Also served with a trailing slash.",
    params(("id" = String, Path, description = "The node's id")),
    responses(
        (status = 200, description = "The node, taking jobs", body = NodeView),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`node_not_found`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<NodeView>> {
    let Path(id) = id?;
    set_draining(&state, id, false).await
}

async fn set_draining(state: &AppState, id: String, on: bool) -> Result<Json<NodeView>> {
    match state
        .nodes
        .set_draining(&id, on)
        .await
        .map_err(JobError::from)?
    {
        Some(node) => Ok(Json(node)),
        None => Err(ApiError::NodeNotFound { id }),
    }
}
