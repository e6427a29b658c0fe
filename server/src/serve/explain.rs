//! The explain view of a placed order: the version that decided it re-run (in the
//! reference interpreter) on the facts stored with the order.

use serde_json::Value as Json;
use weir_compiler::evaluate::{evaluate, Context, Interpreter};

use super::problem::Problem;
use super::registry::Version;

/// Every rule of `version`: fired or not, its condition as written, the facts it read.
pub fn explain(version: &Version, facts: &Json) -> Result<Json, Problem> {
    let rules = &version.rules;
    let input = weir_compiler::facts::read(facts, &rules.ruleset).map_err(|e| {
        Problem::internal(format!(
            "the stored facts no longer read: {}: {}",
            e.path, e.message
        ))
    })?;
    let context = Context {
        lists: input.lists.clone(),
        usage: input.usage.clone(),
    };
    let interpreter = Interpreter {
        compiled: &rules.compiled,
    };
    let decisions = evaluate(
        &rules.compiled,
        &rules.ruleset,
        &input.facts,
        &context,
        &interpreter,
    )
    .map_err(|e| Problem::internal(format!("re-running the ruleset failed: {e}")))?;
    Ok(crate::cli::eval::explain(
        &decisions,
        &rules.ruleset,
        &rules.compiled,
        &input,
        &context,
        &version.sources,
    ))
}
