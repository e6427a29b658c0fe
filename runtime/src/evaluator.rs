//! A loaded WebAssembly module as an evaluation engine (`weir_compiler::evaluate::Engine`),
//! so `weir test`, `weir eval` and the differential tests run it exactly like the
//! reference interpreter.

use crate::engine::{EvalErrorKind, Hook, ListLookup, LoadedModule};
use weir_compiler::evaluate::{Engine, EvalFailure, Lists};
use weir_compiler::interp;

/// Runtime lists of one evaluation, answered inside `weir.list_contains`.
impl ListLookup for Lists {
    fn contains(&self, list_id: u32, value: i64) -> bool {
        interp::HostLists::contains(self, list_id, value)
    }
}

fn hook_of(hook: interp::Hook) -> Hook {
    match hook {
        interp::Hook::Promotions => Hook::Promotions,
        interp::Hook::Route => Hook::Route,
        interp::Hook::Constraints => Hook::Constraints,
        interp::Hook::Risk => Hook::Risk,
        interp::Hook::SopTriggers => Hook::SopTriggers,
    }
}

/// Runs hooks in a compiled module; every call gets a fresh instance.
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
        let output =
            self.module
                .call(hook_of(hook), input, lists)
                .map_err(|error| match error.kind {
                    EvalErrorKind::Trap(_) => EvalFailure::Trap(error.to_string()),
                    _ => EvalFailure::Engine(error.to_string()),
                })?;
        if output.bytes.len() % 8 != 0 {
            return Err(EvalFailure::Engine(format!(
                "ruleset `{}` hook `{}` returned {} bytes, not whole words",
                self.module.ruleset(),
                hook.export_name(),
                output.bytes.len()
            )));
        }
        Ok(output
            .bytes
            .chunks_exact(8)
            .map(|chunk| {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                i64::from_le_bytes(word)
            })
            .collect())
    }
}
