//! SOP work orders: list, show, complete a step with evidence.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use weir_runtime::store::{StepCompletion, WorkOrderFilter, WorkOrderState};

use super::reply;
use crate::serve::auth::{Caller, Scope};
use crate::serve::extract::{ApiJson, ApiPath, ApiQuery};
use crate::serve::problem::Problem;
use crate::serve::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorkOrderQuery {
    /// The work orders of one order.
    pub order_id: Option<String>,
    /// The work orders done at one location (a store's queue).
    pub location_id: Option<String>,
    /// `open` (default without `order_id`) or `done`.
    #[param(pattern = "^(open|done)$")]
    pub state: Option<String>,
}

/// Work orders of an order, or of a location, or all open (or done) ones.
#[utoipa::path(get, path = "/v1/work-orders", tag = "sop", params(WorkOrderQuery),
    responses((status = 200, description = "Work orders", body = serde_json::Value)),
    security(("api_key" = [])))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<WorkOrderQuery>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let state = match &query.state {
        None => None,
        Some(s) => Some(
            WorkOrderState::parse(s)
                .ok_or_else(|| Problem::invalid(format!("state `{s}`: open or done")))?,
        ),
    };
    let filter = WorkOrderFilter {
        order_id: query.order_id,
        location_id: query.location_id,
        state,
    };
    let found = app.store.list_work_orders(&caller.tenant, &filter).await?;
    Ok(reply(StatusCode::OK, &json!({ "work_orders": found })))
}

/// A work order with its steps.
#[utoipa::path(get, path = "/v1/work-orders/{id}", tag = "sop",
    params(("id" = String, Path, description = "Work order id")),
    responses(
        (status = 200, description = "The work order", body = serde_json::Value),
        (status = 404, description = "No such work order", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let found = app
        .store
        .work_order(&caller.tenant, &id)
        .await?
        .ok_or_else(|| Problem::not_found("work order", &id))?;
    Ok(reply(StatusCode::OK, &found))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteStepBody {
    /// Who did it (staff id); not blank.
    #[schema(pattern = r"[^\s\u0085]|\uFEFF")]
    pub by: String,
    /// Where the evidence is kept (a photo's storage reference …), when the step asks
    /// for it.
    #[serde(default)]
    pub evidence_ref: Option<String>,
}

/// Completes a step; the last step closes the work order.
#[utoipa::path(post, path = "/v1/work-orders/{id}/steps/{step_no}/complete", tag = "sop",
    request_body = CompleteStepBody,
    params(("id" = String, Path, description = "Work order id"),
        ("step_no" = i64, Path, description = "Step number (from 1)")),
    responses(
        (status = 200, description = "The work order now", body = serde_json::Value),
        (status = 409, description = "Already done", body = super::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Evidence missing", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn complete_step(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((id, step_no)): ApiPath<(String, i64)>,
    ApiJson(body): ApiJson<CompleteStepBody>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    if super::is_blank(&body.by) {
        return Err(Problem::invalid("by: who completed the step"));
    }
    let work_order = app
        .store
        .complete_step(
            &caller.tenant,
            &id,
            step_no,
            &StepCompletion {
                by: body.by,
                evidence_ref: body.evidence_ref,
            },
        )
        .await?;
    Ok(reply(StatusCode::OK, &work_order))
}

#[cfg(test)]
mod tests {
    /// ECMAScript's `\s` (ECMA-262, WhiteSpace and LineTerminator), in which the
    /// description's patterns are read.
    fn ecma_space(c: char) -> bool {
        matches!(
            c,
            '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
                ..='\u{200a}'
                    | '\u{2028}'
                    | '\u{2029}'
                    | '\u{202f}'
                    | '\u{205f}'
                    | '\u{3000}'
                    | '\u{feff}'
        )
    }

    /// `by`'s pattern `[^\s\u0085]|\uFEFF`, read as ECMAScript reads it, on one character.
    fn pattern_matches(c: char) -> bool {
        (!ecma_space(c) && c != '\u{85}') || c == '\u{feff}'
    }

    /// A `by` the description calls not blank is one the handlers accept (`is_blank`:
    /// completing a step, releasing an order), and back.
    #[test]
    fn the_blank_pattern_agrees_with_the_handler() {
        for c in (0..=0x3100u32)
            .chain(0xfe00..=0xff00)
            .filter_map(char::from_u32)
        {
            let name = c.to_string();
            assert_eq!(
                pattern_matches(c),
                !super::super::is_blank(&name),
                "U+{:04X}",
                c as u32
            );
        }
    }
}
