//! [`EngineConfig`]: the limits every call runs under.

use super::error::EngineError;

/// WebAssembly page size: the ABI only allows 64 KiB pages.
pub(crate) const WASM_PAGE: usize = 64 * 1024;

/// Largest linear memory a 32-bit module can address.
const MAX_32BIT_MEMORY: u64 = 1 << 32;

/// Limits and sizing of an [`Engine`](super::Engine). One engine serves every ruleset of
/// a process; the limits apply to each call separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Fuel given to each hook call. One unit is roughly one WebAssembly instruction
    /// (wasmtime's default costs); a call that uses it up stops with
    /// [`EvalErrorKind::OutOfFuel`](super::EvalErrorKind::OutOfFuel). This is what
    /// bounds a non-terminating or very long rule. Default: 1,000,000. Must be at
    /// least 1.
    pub fuel_per_call: u64,

    /// Cap on a module's linear memory, in bytes, including the input the host copies
    /// in. Growing past it (by `memory.grow` or by a large input) fails the call with
    /// [`EvalErrorKind::MemoryLimit`](super::EvalErrorKind::MemoryLimit); a module whose
    /// initial memory is already larger is rejected at validation. Also the size of each
    /// memory slot of the pooling allocator. Default: 4 MiB. Must be between 64 KiB and
    /// 4 GiB.
    pub memory_limit_bytes: usize,

    /// How many instances may exist at the same time, across all modules and threads:
    /// the pooling allocator reserves this many instance and memory slots up front.
    /// Evaluations running at the same time each hold one, and so does every warm
    /// instance waiting for reuse (at most half of them, see `warm_instances`); one more
    /// fails with [`EvalErrorKind::Instantiate`](super::EvalErrorKind::Instantiate).
    /// Address space reserved is about 4 GiB per slot (guard regions that let compiled
    /// code skip bounds checks), but only touched pages use memory. Default: 256. Must
    /// be at least 1.
    pub max_instances: u32,

    /// How many instances of one module are kept warm, reset to their initial state,
    /// for the next evaluations (docs/abi.md, "No state between evaluations"): taking a
    /// warm instance skips creating a store and instantiating. Across all modules at
    /// most half of `max_instances` are kept, so warm instances never starve new
    /// evaluations. Set it to the number of threads that evaluate at the same time;
    /// 0 creates a fresh instance for every evaluation. Default: 8.
    pub warm_instances: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            fuel_per_call: 1_000_000,
            memory_limit_bytes: 4 * 1024 * 1024,
            max_instances: 256,
            warm_instances: 8,
        }
    }
}

impl EngineConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.fuel_per_call == 0 {
            return Err(EngineError::InvalidConfig(
                "fuel_per_call must be at least 1".to_owned(),
            ));
        }
        if self.memory_limit_bytes < WASM_PAGE || self.memory_limit_bytes as u64 > MAX_32BIT_MEMORY
        {
            return Err(EngineError::InvalidConfig(format!(
                "memory_limit_bytes must be between 64 KiB and 4 GiB, got {}",
                self.memory_limit_bytes
            )));
        }
        if self.max_instances == 0 {
            return Err(EngineError::InvalidConfig(
                "max_instances must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}
