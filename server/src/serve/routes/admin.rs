//! The tenant's API keys (scope `admin`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::reply;
use crate::serve::auth::{issue_key, Caller, Scope};
use crate::serve::extract::{ApiJson, ApiPath};
use crate::serve::problem::Problem;
use crate::serve::AppState;

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeName {
    Orders,
    Rules,
    Admin,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// What the key is for (`pos-store-12`).
    #[schema(min_length = 1, max_length = 128)]
    pub label: String,
    #[schema(min_items = 1)]
    pub scopes: Vec<ScopeName>,
}

/// Issues a key; its secret is in this answer only.
#[utoipa::path(post, path = "/v1/api-keys", tag = "admin", request_body = NewKeyBody,
    responses(
        (status = 201, description = "The key and its secret", body = serde_json::Value),
        (status = 403, description = "Needs scope admin", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewKeyBody>,
) -> Result<Response, Problem> {
    caller.require(Scope::Admin)?;
    if body.scopes.is_empty() || body.label.is_empty() || body.label.chars().count() > 128 {
        return Err(Problem::invalid(
            "a key needs a label (1 to 128 characters) and at least one scope",
        ));
    }
    let mut scopes: Vec<String> = body
        .scopes
        .iter()
        .map(|s| match s {
            ScopeName::Orders => "orders".to_owned(),
            ScopeName::Rules => "rules".to_owned(),
            ScopeName::Admin => "admin".to_owned(),
        })
        .collect();
    scopes.sort();
    scopes.dedup();
    let (key, secret) = issue_key(app.store.as_ref(), &caller.tenant, &body.label, &scopes).await?;
    Ok(reply(
        StatusCode::CREATED,
        &json!({"id": key.id, "label": key.label, "scopes": key.scopes, "created_at": key.created_at, "secret": secret}),
    ))
}

/// The tenant's keys (never their secrets).
#[utoipa::path(get, path = "/v1/api-keys", tag = "admin",
    responses((status = 200, description = "Keys", body = serde_json::Value)),
    security(("api_key" = [])))]
pub async fn list(State(app): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.require(Scope::Admin)?;
    let keys = app.store.api_keys(&caller.tenant).await?;
    Ok(reply(StatusCode::OK, &json!({ "api_keys": keys })))
}

/// Revokes a key at once (other server processes stop accepting it within 10 s).
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "admin",
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 200, description = "Revoked", body = serde_json::Value),
        (status = 404, description = "No such key", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::Admin)?;
    let changed = app.store.revoke_api_key(&caller.tenant, &id).await?;
    app.keys.forget(&id);
    Ok(reply(
        StatusCode::OK,
        &json!({"id": id, "revoked": true, "already_revoked": !changed}),
    ))
}
