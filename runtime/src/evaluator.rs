//! A loaded WebAssembly module as an evaluation engine (`weir_compiler::evaluate::Engine`),
//! so `weir test`, `weir eval` and the differential tests run it exactly like the
//! reference interpreter.

use crate::engine::{EvalError, EvalErrorKind, ListLookup, LoadedModule};
use weir_compiler::evaluate::{Engine, EvalFailure, Lists};
use weir_compiler::interp;

/// Runtime lists of one evaluation, answered inside `weir.list_contains`.
impl ListLookup for Lists {
    fn contains(&self, list_id: u32, value: i64) -> bool {
        interp::HostLists::contains(self, list_id, value)
    }
}

/// Runs hooks in a compiled module: one instance per evaluation (`run_all`), or per
/// call (`run`), warm and reset or fresh (`LoadedModule::call_all`).
pub struct WasmEngine<'a> {
    pub module: &'a LoadedModule,
}

impl Engine for WasmEngine<'_> {
    fn name(&self) -> &'static str {
        "wasm"
    }

    fn run(
        &self,
        hook: interp::Hook,
        input: &[u8],
        lists: &Lists,
    ) -> Result<Vec<i64>, EvalFailure> {
        self.module
            .call_with(hook, input, lists, |bytes, _| words(bytes))
            .map_err(failure)
    }

    fn run_all(
        &self,
        calls: &[(interp::Hook, &[u8])],
        lists: &Lists,
    ) -> Result<Vec<Vec<i64>>, (interp::Hook, EvalFailure)> {
        self.module
            .call_all_with(calls, lists, |bytes, _| words(bytes))
            .map_err(|error| (error.hook, failure(error)))
    }
}

fn failure(error: EvalError) -> EvalFailure {
    match error.kind {
        EvalErrorKind::Trap(_) => EvalFailure::Trap(error.to_string()),
        _ => EvalFailure::Engine(error.to_string()),
    }
}

/// The output bytes as words, read in place; a ragged output is the module's fault.
fn words(bytes: &[u8]) -> Result<Vec<i64>, EvalErrorKind> {
    if !bytes.len().is_multiple_of(8) {
        return Err(EvalErrorKind::BadOutput(format!(
            "{} bytes, not whole words",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|chunk| {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            i64::from_le_bytes(word)
        })
        .collect())
}
