//! weir-runtime hosts compiled rulesets (issues #3 and #6).
//!
//! Today it holds the engine shell ([`engine`]): the wasmtime host that validates,
//! precompiles, caches, loads and calls ruleset modules under fuel and memory limits,
//! following the guest contract in `docs/abi.md`. The storage layer of the order,
//! inventory and fulfillment services ([`store`], on SQLite or PostgreSQL, issue #6), the
//! inventory service ([`services`]) and the outbox publisher ([`events`]) sit beside it;
//! `docs/storage.md` and `docs/inventory.md` describe them.

pub mod digest;
pub mod engine;
pub mod evaluator;
pub mod events;
pub mod services;
pub mod store;

pub use engine::{
    Artifact, ArtifactCache, ArtifactKey, CacheStatus, CallOutput, Engine, EngineConfig,
    EngineError, EvalError, EvalErrorKind, Hook, ListLookup, LoadedModule, NoLists,
};
