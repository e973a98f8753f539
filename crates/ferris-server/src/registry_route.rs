//! The query registry over HTTP: register an annotated application, read a group's releases,
//! queries and history, and deploy, promote or roll back a release (changes need the
//! bearer token). See [`crate::registry`].

use crate::api::{AppState, authorize, json_body};
use crate::error::{ApiError, ErrorBody, ServerError};
use crate::registry::ChangeRecord;
use crate::store::Store;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// `POST /api/v1/registry`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The annotated application (with `-- @group: NAME`).
    pub sql: String,
    /// Who registers it.
    pub author: String,
    /// What the change is about.
    #[serde(default)]
    pub description: String,
}

/// `POST /api/v1/registry/{group}/deploy`, `…/promote`, `…/rollback`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// Who moves it.
    pub author: String,
    /// The environment (deploy, rollback) or the one promoted to.
    pub environment: String,
    /// Deploy: the release (default: the latest). Rollback: the release number or
    /// `QUERY@VERSION`. Promote: the environment promoted from.
    #[serde(default)]
    pub from: Option<String>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn store(state: &AppState) -> Result<&Store, ApiError> {
    state.jobs.store().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_registry",
            "the query registry lives in the server's data directory: start the server with \
             --data-dir DIR",
        )
    })
}

/// A registry refusal as an HTTP error: 404 for an unknown group, 409 otherwise.
fn refused(e: ServerError) -> ApiError {
    match e {
        ServerError::Registry(m) if m.starts_with("unknown query group") => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", m)
        }
        ServerError::Registry(m) => ApiError::new(StatusCode::CONFLICT, "refused", m),
        other => ApiError::internal(other.to_string()),
    }
}

/// Registers an annotated application: a new release of its group when anything changed.
#[utoipa::path(post, path = "/api/v1/registry", request_body = RegisterRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The release made (null: nothing changed) and its changes", body = Object),
        (status = 400, description = "Invalid body, SQL or annotation (with line and column)", body = ErrorBody),
        (status = 401, description = "No bearer token", body = ErrorBody),
        (status = 403, description = "Wrong token", body = ErrorBody),
        (status = 404, description = "The server has no data directory, so no registry", body = ErrorBody),
        (status = 409, description = "Refused: a changed query keeps its version", body = ErrorBody),
    ))]
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let req: RegisterRequest = json_body(&bytes, "a valid request")?;
    let app = ferris_plan::plan_application(&req.sql)
        .map_err(|e| crate::jobs::plan_error(&req.sql, &e))?;
    let annotations = ferris_plan::annotations::read(&app)
        .map_err(|e| crate::jobs::plan_error(&req.sql, &ferris_plan::AppError::Plan(e)))?;
    let r = store(&state)?
        .register(&app, &annotations, &req.author, &req.description, &now())
        .map_err(refused)?;
    Ok(Json(json!({
        "group": r.group,
        "release": r.release,
        "changes": r.changes.iter().map(|(q, k)| json!({"query": q, "change_type": k.as_str()})).collect::<Vec<_>>(),
    })))
}

fn change_json(c: &ChangeRecord) -> Value {
    json!({
        "at": c.at, "query": c.query, "environment": c.environment,
        "change_type": c.change_type, "author": c.author, "description": c.description,
        "diff": c.diff,
    })
}

/// A group's releases, where each runs, and its latest release's queries.
#[utoipa::path(get, path = "/api/v1/registry/{group}",
    params(("group" = String, Path, description = "The query group")),
    responses(
        (status = 200, description = "Releases, deployments and queries", body = Object),
        (status = 404, description = "Unknown group", body = ErrorBody),
    ))]
pub async fn group(
    State(state): State<AppState>,
    Path(group): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = store(&state)?;
    let releases = store.releases(&group).map_err(refused)?;
    let deployments = store.deployments(&group).map_err(refused)?;
    let latest = releases.last().map_or(0, |r| r.0);
    let queries = store.entries(&group, latest).map_err(refused)?;
    Ok(Json(json!({
        "group": group,
        "releases": releases.iter().map(|(seq, author, description, at)| json!({
            "release": seq, "author": author, "description": description, "created_at": at,
        })).collect::<Vec<_>>(),
        "deployments": deployments.iter().map(|(env, (seq, at))| (env.clone(), json!({
            "release": seq, "deployed_at": at,
        }))).collect::<serde_json::Map<_, _>>(),
        "queries": queries.iter().map(|q| json!({
            "query": q.query, "version": q.version, "sql": q.sql, "metadata": q.metadata,
            "settings": q.settings, "output": q.output,
        })).collect::<Vec<_>>(),
    })))
}

/// Every recorded change of a group, oldest first.
#[utoipa::path(get, path = "/api/v1/registry/{group}/history",
    params(("group" = String, Path, description = "The query group")),
    responses(
        (status = 200, description = "The changes", body = Object),
        (status = 404, description = "Unknown group", body = ErrorBody),
    ))]
pub async fn history(
    State(state): State<AppState>,
    Path(group): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let changes = store(&state)?.history(&group).map_err(refused)?;
    Ok(Json(json!({
        "group": group,
        "changes": changes.iter().map(change_json).collect::<Vec<_>>(),
    })))
}

/// Deploys, promotes or rolls back (`action`) a release of a group.
#[utoipa::path(post, path = "/api/v1/registry/{group}/{action}", request_body = MoveRequest,
    params(
        ("group" = String, Path, description = "The query group"),
        ("action" = String, Path, description = "deploy, promote or rollback"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The release the environment runs now", body = Object),
        (status = 400, description = "Invalid body or action", body = ErrorBody),
        (status = 401, description = "No bearer token", body = ErrorBody),
        (status = 403, description = "Wrong token", body = ErrorBody),
        (status = 404, description = "Unknown group", body = ErrorBody),
        (status = 409, description = "Refused (no such release, a rollback forward)", body = ErrorBody),
    ))]
pub async fn move_release(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((group, action)): Path<(String, String)>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let req: MoveRequest = json_body(&bytes, "a valid request")?;
    let store = store(&state)?;
    let env = &req.environment;
    let seq = match action.as_str() {
        "deploy" => {
            let release = match &req.from {
                None => None,
                Some(r) => Some(r.trim().parse::<i64>().map_err(|_| {
                    ApiError::bad_field("from", format!("'{r}' is not a release number"))
                })?),
            };
            store.deploy(&group, env, release, &req.author, &now())
        }
        "promote" => {
            let from = req.from.as_deref().ok_or_else(|| {
                ApiError::bad_field("from", "promote needs the environment promoted from")
            })?;
            store.promote(&group, from, env, &req.author, &now())
        }
        "rollback" => {
            let to = req.from.as_deref().ok_or_else(|| {
                ApiError::bad_field("from", "rollback needs a release number or QUERY@VERSION")
            })?;
            store.rollback(&group, env, to, &req.author, &now())
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no registry action '{other}' (deploy, promote, rollback)"),
            ));
        }
    }
    .map_err(refused)?;
    Ok(Json(
        json!({"group": group, "environment": env, "release": seq}),
    ))
}
