//! Rulesets (upload, activate, roll back, dry-run) and runtime lists.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use weir_runtime::services::orders;

use super::orders::CreateOrder;
use super::{check_id, reply};
use crate::serve::auth::{Caller, Scope};
use crate::serve::extract::{object, optional_integer, ApiJson, ApiPath};
use crate::serve::problem::Problem;
use crate::serve::registry::{ActivateError, BuildError};
use crate::serve::AppState;

impl From<BuildError> for Problem {
    fn from(error: BuildError) -> Self {
        match error {
            BuildError::Files(detail) => Problem::invalid(detail),
            BuildError::Diagnostics { errors, report } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ruleset-invalid",
                "The ruleset has errors",
                format!("{errors} error(s); see `diagnostics`"),
            )
            .with("diagnostics", report),
            BuildError::Compile(detail) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ruleset-compile-failed",
                "The ruleset could not be compiled",
                detail,
            ),
            BuildError::Store(e) => e.into(),
        }
    }
}

impl From<ActivateError> for Problem {
    fn from(error: ActivateError) -> Self {
        match error {
            ActivateError::UnknownVersion(v) => Problem::not_found("ruleset version", &v),
            ActivateError::Build(e) => e.into(),
            ActivateError::Store(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadBody {
    /// File name (`promotions.weir`) → text: one ruleset of 1 to 64 files
    /// (`minProperties`/`maxProperties`, which utoipa's attributes cannot state, are
    /// set in `openapi::document`).
    pub files: BTreeMap<String, String>,
    /// Activate the version at once when it is clean (default false).
    #[serde(default)]
    pub activate: bool,
}

/// Checks and compiles a set of files as one ruleset and keeps it as a version (named
/// by its content hash). The diagnostics are `weir check --format json`'s document.
#[utoipa::path(post, path = "/v1/rulesets", tag = "rulesets", request_body = UploadBody,
    responses(
        (status = 201, description = "Saved (and activated if asked)", body = serde_json::Value),
        (status = 422, description = "Errors: `diagnostics` has them", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn upload(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UploadBody>,
) -> Result<Response, Problem> {
    caller.require(Scope::Rules)?;
    let report = {
        let files = body.files.clone();
        tokio::task::spawn_blocking(move || {
            crate::serve::registry::check_files(&files).map(|c| c.report)
        })
        .await
        .map_err(|e| Problem::internal(format!("the check task failed: {e}")))??
    };
    let (stored, _version) = app.rules.save(&caller.tenant, body.files).await?;
    let active = if body.activate {
        app.rules
            .activate(&caller.tenant, &stored.name, &stored.content_hash)
            .await?;
        app.metrics.activated(&caller.tenant, &stored.name);
        true
    } else {
        stored.active
    };
    Ok(reply(
        StatusCode::CREATED,
        &json!({
            "name": stored.name,
            "version": stored.content_hash,
            "created_at": stored.created_at,
            "active": active,
            "diagnostics": report,
        }),
    ))
}

/// The tenant's rulesets with their active versions.
#[utoipa::path(get, path = "/v1/rulesets", tag = "rulesets",
    responses((status = 200, description = "Active rulesets", body = serde_json::Value)),
    security(("api_key" = [])))]
pub async fn list(State(app): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.require(Scope::Rules)?;
    let active: Vec<_> = app
        .rules
        .active_names(&caller.tenant)
        .into_iter()
        .map(|(name, version)| json!({"name": name, "active_version": version}))
        .collect();
    Ok(reply(StatusCode::OK, &json!({ "rulesets": active })))
}

/// A ruleset: its active version and every saved version (without their files).
#[utoipa::path(get, path = "/v1/rulesets/{name}", tag = "rulesets",
    params(("name" = String, Path, description = "Ruleset name (its `ruleset` header)")),
    responses(
        (status = 200, description = "The ruleset", body = serde_json::Value),
        (status = 404, description = "No such ruleset", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::Rules)?;
    let versions = app.store.ruleset_versions(&caller.tenant, &name).await?;
    if versions.is_empty() {
        return Err(Problem::not_found("ruleset", &name));
    }
    let active = app
        .rules
        .active(&caller.tenant, &name)
        .map(|v| v.rules.version.clone());
    let versions: Vec<_> = versions
        .iter()
        .map(|v| json!({"version": v.content_hash, "created_at": v.created_at, "active": v.active}))
        .collect();
    Ok(reply(
        StatusCode::OK,
        &json!({"name": name, "active_version": active, "versions": versions}),
    ))
}

/// The files of one saved version.
#[utoipa::path(get, path = "/v1/rulesets/{name}/versions/{version}", tag = "rulesets",
    params(("name" = String, Path, description = "Ruleset name"),
        ("version" = String, Path, description = "Content hash")),
    responses(
        (status = 200, description = "The version and its files", body = serde_json::Value),
        (status = 404, description = "No such version", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_version(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> Result<Response, Problem> {
    caller.require(Scope::Rules)?;
    let versions = app.store.ruleset_versions(&caller.tenant, &name).await?;
    let found = versions
        .into_iter()
        .find(|v| v.content_hash == version)
        .ok_or_else(|| Problem::not_found("ruleset version", &format!("{name}@{version}")))?;
    Ok(reply(StatusCode::OK, &found))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateBody {
    /// The content hash of a saved version.
    pub version: String,
}

/// Makes a saved version the one deciding orders; orders in flight finish on the
/// version they started with.
#[utoipa::path(post, path = "/v1/rulesets/{name}/activate", tag = "rulesets", request_body = ActivateBody,
    params(("name" = String, Path, description = "Ruleset name")),
    responses(
        (status = 200, description = "Active", body = serde_json::Value),
        (status = 404, description = "No such version", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn activate(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ActivateBody>,
) -> Result<Response, Problem> {
    caller.require(Scope::Rules)?;
    let stored = app
        .rules
        .activate(&caller.tenant, &name, &body.version)
        .await?;
    app.metrics.activated(&caller.tenant, &name);
    Ok(reply(
        StatusCode::OK,
        &json!({"name": stored.name, "active_version": stored.content_hash}),
    ))
}

/// Re-activates the version active before the current one.
#[utoipa::path(post, path = "/v1/rulesets/{name}/rollback", tag = "rulesets",
    params(("name" = String, Path, description = "Ruleset name")),
    responses(
        (status = 200, description = "Rolled back", body = serde_json::Value),
        (status = 409, description = "Nothing to roll back to", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn rollback(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::Rules)?;
    let stored = app.rules.rollback(&caller.tenant, &name).await?;
    app.metrics.activated(&caller.tenant, &name);
    Ok(reply(
        StatusCode::OK,
        &json!({"name": stored.name, "active_version": stored.content_hash}),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunBody {
    /// A saved version's content hash (default: the active one).
    #[serde(default)]
    pub version: Option<String>,
    #[serde(deserialize_with = "object")]
    pub order: CreateOrder,
}

/// Decides an order with any saved version, on current stock, and writes nothing.
#[utoipa::path(post, path = "/v1/rulesets/{name}/dry-run", tag = "rulesets", request_body = DryRunBody,
    params(("name" = String, Path, description = "Ruleset name")),
    responses(
        (status = 200, description = "What the order would become", body = serde_json::Value),
        (status = 404, description = "No such version", body = super::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "The order would be refused", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn dry_run(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<DryRunBody>,
) -> Result<Response, Problem> {
    caller.require(Scope::Rules)?;
    if body.order.ruleset.as_deref().is_some_and(|r| r != name) {
        return Err(Problem::invalid(
            "order.ruleset names another ruleset than the path",
        ));
    }
    let version = match &body.version {
        Some(hash) => app
            .rules
            .version(&caller.tenant, &name, hash)
            .await?
            .ok_or_else(|| Problem::not_found("ruleset version", &format!("{name}@{hash}")))?,
        None => app
            .rules
            .active(&caller.tenant, &name)
            .ok_or_else(|| Problem::not_found("active ruleset", &name))?,
    };
    let run = orders::dry_run(
        app.store.as_ref(),
        &version.rules,
        &caller.tenant,
        &body.order.request(),
    )
    .await?;
    Ok(reply(
        StatusCode::OK,
        &json!({"version": version.rules.version, "order": run.order, "decisions": run.decisions}),
    ))
}

/// Names of the tenant's runtime lists.
#[utoipa::path(get, path = "/v1/lists", tag = "lists",
    responses((status = 200, description = "List names", body = serde_json::Value)),
    security(("api_key" = [])))]
pub async fn lists(State(app): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.require(Scope::Rules)?;
    let names = app.store.list_names(&caller.tenant).await?;
    Ok(reply(StatusCode::OK, &json!({ "lists": names })))
}

/// A runtime list's members and version.
#[utoipa::path(get, path = "/v1/lists/{name}", tag = "lists",
    params(("name" = String, Path, description = "List name", min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")),
    responses(
        (status = 200, description = "The list", body = serde_json::Value),
        (status = 404, description = "No such list", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_list(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::Rules)?;
    let list = app
        .store
        .list(&caller.tenant, &name)
        .await?
        .ok_or_else(|| Problem::not_found("list", &name))?;
    Ok(reply(StatusCode::OK, list.as_ref()))
}

/// Most members one list may have.
pub const MAX_LIST_MEMBERS: usize = 100_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceListBody {
    #[schema(max_items = 100_000)]
    pub members: Vec<String>,
    /// Fail with 409 unless the list is at this version.
    #[serde(default, deserialize_with = "optional_integer")]
    pub expected_version: Option<i64>,
}

/// Replaces a list's members (rules read them on the next order).
#[utoipa::path(put, path = "/v1/lists/{name}", tag = "lists", request_body = ReplaceListBody,
    params(("name" = String, Path, description = "List name", min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")),
    responses(
        (status = 200, description = "The list now", body = serde_json::Value),
        (status = 409, description = "Version moved on", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn replace_list(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ReplaceListBody>,
) -> Result<Response, Problem> {
    caller.require(Scope::Rules)?;
    check_id("list name", &name)?;
    if body.members.len() > MAX_LIST_MEMBERS {
        return Err(Problem::invalid(format!(
            "a list has at most {MAX_LIST_MEMBERS} members"
        )));
    }
    let list = app
        .store
        .replace_list(&caller.tenant, &name, &body.members, body.expected_version)
        .await?;
    Ok(reply(StatusCode::OK, &list))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchListBody {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default, deserialize_with = "optional_integer")]
    pub expected_version: Option<i64>,
}

/// Adds and removes members.
#[utoipa::path(patch, path = "/v1/lists/{name}", tag = "lists", request_body = PatchListBody,
    params(("name" = String, Path, description = "List name", min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")),
    responses(
        (status = 200, description = "The list now", body = serde_json::Value),
        (status = 409, description = "Version moved on", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn patch_list(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PatchListBody>,
) -> Result<Response, Problem> {
    caller.require(Scope::Rules)?;
    check_id("list name", &name)?;
    if body.add.len() + body.remove.len() > MAX_LIST_MEMBERS {
        return Err(Problem::invalid(format!(
            "a patch changes at most {MAX_LIST_MEMBERS} members"
        )));
    }
    let list = app
        .store
        .patch_list(
            &caller.tenant,
            &name,
            &body.add,
            &body.remove,
            body.expected_version,
        )
        .await?;
    Ok(reply(StatusCode::OK, &list))
}
