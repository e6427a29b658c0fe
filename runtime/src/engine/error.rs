//! Typed errors of the engine shell: [`EngineError`] for building the engine and turning
//! WASM into loaded modules, [`EvalError`] for one call of one hook.

use std::path::PathBuf;

use super::Hook;

/// Why the engine could not be built, or a module could not be validated, compiled,
/// cached or loaded. No guest code has run when one of these is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// An [`EngineConfig`](super::EngineConfig) value is out of range.
    #[error("invalid engine configuration: {0}")]
    InvalidConfig(String),

    /// wasmtime refused the configuration (for example: the pooling allocator could not
    /// reserve its address space).
    #[error("could not create the wasmtime engine: {0}")]
    Wasmtime(String),

    /// The bytes are not a valid WebAssembly module.
    #[error("invalid WebAssembly module: {0}")]
    InvalidWasm(String),

    /// The module has a start function; rule modules must not run code at
    /// instantiation.
    #[error("module has a start function; rule modules must not run code when instantiated")]
    StartFunction,

    /// A mutable global is not exported: the host could not reset it when it reuses an
    /// instance for the next evaluation (docs/abi.md, "No state between evaluations").
    #[error("mutable global {index} is not exported; rule modules must export every mutable global so the host can reset it between evaluations")]
    HiddenGlobal {
        /// The global's index in the module.
        index: u32,
    },

    /// The module has no memory or more than one.
    #[error("module must define exactly one memory, found {found}")]
    MemoryCount {
        /// Number of memories (defined and imported) in the module.
        found: u32,
    },

    /// The memory is not a plain 32-bit, unshared memory with 64 KiB pages.
    #[error("unsupported memory: {0}")]
    UnsupportedMemory(String),

    /// The memory's initial size already exceeds the engine's memory cap.
    #[error("module's initial memory of {initial_bytes} bytes exceeds the memory limit of {limit_bytes} bytes")]
    MemoryTooLarge {
        /// Initial size declared by the module.
        initial_bytes: u64,
        /// [`EngineConfig::memory_limit_bytes`](super::EngineConfig::memory_limit_bytes).
        limit_bytes: usize,
    },

    /// The module imports something other than the host functions of the ABI.
    #[error("module imports `{module}.{name}`, which the host does not provide (only `weir.list_contains` is allowed)")]
    ForbiddenImport {
        /// Import module name, e.g. `env` or `wasi_snapshot_preview1`.
        module: String,
        /// Import field name, e.g. `clock` or `fd_write`.
        name: String,
    },

    /// The module imports a host function with the wrong type.
    #[error("module imports `{module}.{name}` as {found}, but the host provides {expected}")]
    ImportType {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
        /// What the module declared.
        found: String,
        /// What the host provides.
        expected: &'static str,
    },

    /// A required export (`memory`, `input_base`) is missing.
    #[error("module does not export `{0}`")]
    MissingExport(&'static str),

    /// An export of the ABI has the wrong kind or type.
    #[error("export `{name}` {problem}")]
    BadExport {
        /// Export name.
        name: String,
        /// What is wrong with it.
        problem: String,
    },

    /// Cranelift could not compile the module (it passed validation, but uses a
    /// feature this engine does not enable, for example).
    #[error("could not compile module: {0}")]
    Compile(String),

    /// wasmtime rejected a precompiled artifact (built by another wasmtime version or
    /// with other settings).
    #[error("could not load precompiled artifact: {0}")]
    Load(String),

    /// The host functions could not be linked to the module.
    #[error("could not link module `{ruleset}`: {reason}")]
    Link {
        /// Ruleset name given to [`Engine::load`](super::Engine::load).
        ruleset: String,
        /// wasmtime's reason.
        reason: String,
    },

    /// A cache file is not an intact artifact (truncated, bit-flipped, wrong format).
    /// The file is left in place; [`ArtifactCache::get_or_compile`](super::ArtifactCache::get_or_compile)
    /// replaces it.
    #[error("corrupt artifact file {}: {reason}", path.display())]
    CorruptArtifact {
        /// The cache file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },

    /// Reading or writing the artifact cache failed.
    #[error("artifact cache I/O on {}: {source}", path.display())]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// One failed hook call: which ruleset, which hook, and why.
///
/// Displays as e.g. ``ruleset `beauty` hook `promotions`: ran out of fuel (budget 1000000)``.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ruleset `{ruleset}` hook `{hook}`: {kind}")]
pub struct EvalError {
    /// Ruleset name the module was loaded under.
    pub ruleset: String,
    /// The hook that was called.
    pub hook: Hook,
    /// What went wrong.
    pub kind: EvalErrorKind,
}

/// Why a hook call failed. Every kind leaves the [`LoadedModule`](super::LoadedModule)
/// usable: the instance that failed is dropped, never reused, and the next call gets a
/// clean one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalErrorKind {
    /// The call used up its fuel budget
    /// ([`EngineConfig::fuel_per_call`](super::EngineConfig::fuel_per_call)).
    #[error("ran out of fuel (budget {budget})")]
    OutOfFuel {
        /// Fuel the call was given.
        budget: u64,
    },
    /// The module tried to grow its memory past the cap, or the input did not fit under
    /// it.
    #[error("exceeded the memory limit of {limit_bytes} bytes")]
    MemoryLimit {
        /// [`EngineConfig::memory_limit_bytes`](super::EngineConfig::memory_limit_bytes).
        limit_bytes: usize,
    },
    /// The guest trapped (`unreachable`, out-of-bounds access, division by zero, stack
    /// overflow, ...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The module does not export this hook.
    #[error("module does not export this hook")]
    MissingExport,
    /// The returned `(ptr, len)` does not describe bytes inside the guest's memory.
    #[error("bad output: {0}")]
    BadOutput(String),
    /// The instance could not be created (for example: all
    /// [`EngineConfig::max_instances`](super::EngineConfig::max_instances) slots are in use).
    #[error("could not instantiate: {0}")]
    Instantiate(String),
}
