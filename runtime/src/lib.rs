//! weir-runtime hosts compiled rulesets (issues #3 and #6).
//!
//! Today it holds the engine shell ([`engine`]): the wasmtime host that validates,
//! precompiles, caches, loads and calls ruleset modules under fuel and memory limits,
//! following the guest contract in `docs/abi.md`. The fact ABI and the order, inventory
//! and fulfillment services come later.

pub mod engine;
pub mod evaluator;

pub use engine::{
    Artifact, ArtifactCache, ArtifactKey, CacheStatus, CallOutput, Engine, EngineConfig,
    EngineError, EvalError, EvalErrorKind, Hook, ListLookup, LoadedModule, NoLists,
};
