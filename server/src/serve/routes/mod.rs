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

/// Checks an identifier chosen by the client (order ids, location ids, list names …):
/// 1 to 128 characters (Unicode scalar values, as JSON Schema's `maxLength` counts
/// them), none of them a control character. The OpenAPI description states the same
/// rule on every such field (`minLength`, `maxLength` and a `pattern` excluding
/// U+0000–U+001F and U+007F–U+009F, which is what `char::is_control` refuses).
pub fn check_id(what: &str, id: &str) -> Result<(), super::problem::Problem> {
    if id.is_empty() || id.chars().count() > 128 || id.chars().any(char::is_control) {
        return Err(super::problem::Problem::invalid(format!(
            "{what}: 1 to 128 characters, no control characters"
        )));
    }
    Ok(())
}

/// Whether a name (who did something) is blank: no character outside Unicode
/// White_Space. The OpenAPI description states the same rule with the pattern
/// `[^\s\u0085]|\uFEFF` (ECMAScript's `\s` differs from White_Space by those two
/// characters; `sop.rs` tests that the two agree).
pub fn is_blank(name: &str) -> bool {
    name.chars().all(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::check_id;

    /// Characters, not bytes: what the OpenAPI description's `maxLength` says.
    #[test]
    fn ids_are_counted_in_characters_and_refuse_control_characters() {
        assert!(check_id("id", &"货".repeat(128)).is_ok());
        assert!(check_id("id", &"货".repeat(129)).is_err());
        assert!(check_id("id", &"a".repeat(128)).is_ok());
        assert!(check_id("id", "").is_err());
        assert!(check_id("id", "a\u{7}b").is_err());
        assert!(check_id("id", "a\u{85}b").is_err());
        assert!(check_id("id", "a b/c-é").is_ok());
    }
}
