//! The `/v1` handlers, one module per resource. Every handler takes the [`Caller`]
//! (authentication), checks its scope, and passes the caller's tenant to every store
//! call: no handler reads a tenant from the request.
//!
//! [`Caller`]: super::auth::Caller

pub mod admin;
pub mod inventory;
pub mod orders;
pub mod rules;
pub mod sop;
pub mod system;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A JSON answer with a status.
pub fn reply<T: Serialize>(status: StatusCode, body: &T) -> Response {
    (status, axum::Json(body)).into_response()
}

/// An RFC 9457 problem document (`application/problem+json`); `docs/api.md` lists the
/// types.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemDoc {
    /// `urn:weir:problem:<slug>`: stable, for clients to branch on.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

/// Checks an identifier chosen by the client (order ids, location ids, list names …).
pub fn check_id(what: &str, id: &str) -> Result<(), super::problem::Problem> {
    if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
        return Err(super::problem::Problem::invalid(format!(
            "{what}: 1 to 128 characters, no control characters"
        )));
    }
    Ok(())
}
