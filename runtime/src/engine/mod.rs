//! The engine shell: runs compiled rulesets in wasmtime, one sandboxed call per hook.
//!
//! - [`Engine`] holds the wasmtime engine (Cranelift, fuel, pooling allocator) and the
//!   host functions. Build one per process from an [`EngineConfig`].
//! - [`Engine::precompile`] validates a module against the guest contract
//!   (`docs/abi.md`, "Calling a module") and compiles it to an [`Artifact`];
//!   [`ArtifactCache`] keeps artifacts on disk, keyed by content, so a ruleset is compiled
//!   once per host and engine settings.
//! - [`Engine::load`] turns an artifact into a [`LoadedModule`] (deserialized and
//!   pre-linked).
//! - [`LoadedModule::call_all`] runs the hook calls of one evaluation;
//!   [`LoadedModule::call`] runs one hook on one input.
//!
//! **No evaluation sees another's state.** Each `call_all` runs in an instance no other
//! evaluation is using: a warm one, reset to the module's initial state, or a fresh one
//! instantiated from the pre-linked `InstancePre` (cheap with the pooling allocator: a
//! slot is taken, the memory image is mapped copy-on-write). After a successful
//! evaluation the instance is reset — its whole linear memory restored to the initial
//! image, every mutable global (the guest contract makes them all exported) set back to
//! its initial value — and kept for the next evaluation; an instance whose memory grew,
//! whose module has state the host cannot reset (a table, a reference-typed global), or
//! whose evaluation failed (fuel, memory, trap) is dropped instead. So nothing an evaluation writes can be seen by a later one, and a failure
//! leaves nothing behind. The hooks of one evaluation share the instance: they see the
//! same facts (docs/abi.md, "No state between evaluations").
//!
//! Nothing here panics on a hostile module: the returned `(ptr, len)` is bounds-checked
//! before it is read, and every wasmtime error becomes an [`EvalError`].

mod artifact;
mod config;
mod error;
mod validate;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};
use wasmtime::{
    Extern, ExternType, Global, InstanceAllocationStrategy, InstancePre, Linker, Module,
    ModuleExport, Mutability, OptLevel, PoolingAllocationConfig, ResourceLimiter, Store,
    StoreLimits, StoreLimitsBuilder, Strategy, Trap, TypedFunc, Val,
};

pub use artifact::{Artifact, ArtifactCache, ArtifactKey, CacheStatus};
pub use config::EngineConfig;
pub use error::{EngineError, EvalError, EvalErrorKind};

use config::WASM_PAGE;

/// Version of the host side of the ABI; part of every [`ArtifactKey`], so changing the
/// contract invalidates cached artifacts.
const ABI_VERSION: &str = "weir-abi-1";

/// Linear memory a pooled slot keeps resident between instances (see `Engine::new`).
const KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// The hooks a ruleset module can export (defined once, in the compiler).
pub use weir_compiler::interp::Hook;

/// Where a hook's export sits in [`LoadedModule`]'s table.
fn hook_index(hook: Hook) -> usize {
    hook as usize
}

/// Runtime lists a module can query through the host function
/// `weir.list_contains(list_id, value)`.
///
/// `list_id` is the id the compiler gave the list; `value` is an interned id or an
/// integer, as the compiler encoded it. The lookup is borrowed only for the duration of
/// one [`LoadedModule::call`], on the calling thread. (`'static` here means the
/// implementing type owns its data, e.g. an `Arc` of a snapshot, not that the reference
/// must live forever.)
pub trait ListLookup: 'static {
    /// Whether list `list_id` contains `value`. Unknown lists contain nothing.
    fn contains(&self, list_id: u32, value: i64) -> bool;
}

/// A [`ListLookup`] in which every list is empty.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLists;

impl ListLookup for NoLists {
    fn contains(&self, _list_id: u32, _value: i64) -> bool {
        false
    }
}

impl<F: Fn(u32, i64) -> bool + 'static> ListLookup for F {
    fn contains(&self, list_id: u32, value: i64) -> bool {
        self(list_id, value)
    }
}

// The `ListLookup` of the call running on this thread. wasmtime requires a store's data
// to be `'static`, so the borrowed lookup cannot live in `HostState`; a scoped
// thread-local lends it to the host function for exactly the duration of the call
// (guest code runs synchronously on the calling thread).
scoped_tls_hkt::scoped_thread_local!(static CALL_LISTS: dyn ListLookup);

/// Per-call store data.
struct HostState {
    limiter: CallLimiter,
}

/// `StoreLimits` (the memory cap) plus a record of whether the cap was hit, so the error
/// of a call that hit it is reported as [`EvalErrorKind::MemoryLimit`].
struct CallLimiter {
    limits: StoreLimits,
    memory_limit_hit: bool,
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let result = self.limits.memory_growing(current, desired, maximum);
        if !matches!(result, Ok(true)) {
            self.memory_limit_hit = true;
        }
        result
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_limit_hit = true;
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// Feeds `std::hash::Hash` output into SHA-256 (for wasmtime's compatibility hash).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Only the digest is used; `finish` exists to satisfy the trait.
        0
    }
}

/// The wasmtime engine, configured for rule modules, plus the host functions.
///
/// Cheap to clone (shared state); one per process is enough.
#[derive(Clone)]
pub struct Engine {
    inner: wasmtime::Engine,
    linker: Linker<HostState>,
    config: EngineConfig,
    /// SHA-256 of everything besides the WASM bytes that decides the compiled code.
    fingerprint: [u8; 32],
    compiled: Arc<AtomicU64>,
    /// Warm instances kept by every module of this engine (at most `max_instances / 2`).
    warm_total: Arc<AtomicUsize>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds the engine: Cranelift at `OptLevel::Speed`, fuel metering, the pooling
    /// instance allocator sized from `config`, and the host function
    /// `weir.list_contains`. No WASI.
    pub fn new(config: &EngineConfig) -> Result<Engine, EngineError> {
        config.validate()?;

        let mut pooling = PoolingAllocationConfig::new();
        pooling
            .total_core_instances(config.max_instances)
            .total_memories(config.max_instances)
            .total_tables(config.max_instances)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .max_memory_size(config.memory_limit_bytes)
            // Resetting a slot for the next instance: zero (or restore) up to 1 MiB of
            // dirty memory in place rather than `madvise` it away and fault it back in
            // on the next call; PAGEMAP_SCAN (Linux 6.7+, used when available) finds
            // exactly the dirty pages. Halves the per-call cost of small modules
            // (`benches/engine.rs`); the rest of a slot is still decommitted.
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .pagemap_scan(wasmtime::Enabled::Auto)
            .table_keep_resident(WASM_PAGE);

        let mut wasm_config = wasmtime::Config::new();
        wasm_config
            .strategy(Strategy::Cranelift)
            .cranelift_opt_level(OptLevel::Speed)
            .consume_fuel(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));

        let inner = wasmtime::Engine::new(&wasm_config)
            .map_err(|e| EngineError::Wasmtime(format!("{e:#}")))?;

        let mut linker = Linker::new(&inner);
        linker
            .func_wrap(
                validate::HOST_MODULE,
                validate::LIST_CONTAINS,
                |list_id: i32, value: i64| -> wasmtime::Result<i32> {
                    if !CALL_LISTS.is_set() {
                        wasmtime::bail!("list_contains called outside a hook call");
                    }
                    // The guest's i32 is an unsigned list id.
                    let found = CALL_LISTS.with(|lists| lists.contains(list_id as u32, value));
                    Ok(i32::from(found))
                },
            )
            .map_err(|e| EngineError::Wasmtime(format!("{e:#}")))?;

        let mut hasher = Sha256Hasher(Sha256::new());
        hasher.0.update(ABI_VERSION.as_bytes());
        // Covers the wasmtime version, target and CPU features, Cranelift flags, tunables
        // (fuel, memory reservation) and enabled WASM features.
        inner.precompile_compatibility_hash().hash(&mut hasher);
        let fingerprint = hasher.0.finalize().into();

        Ok(Engine {
            inner,
            linker,
            config: config.clone(),
            fingerprint,
            compiled: Arc::new(AtomicU64::new(0)),
            warm_total: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The configuration the engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The content hash an artifact of `wasm` has under this engine: SHA-256 of the ABI
    /// version, wasmtime's compatibility hash (its version, the target and CPU
    /// features, codegen flags and tunables) and the WASM bytes.
    pub fn artifact_key(&self, wasm: &[u8]) -> ArtifactKey {
        let mut hasher = Sha256::new();
        hasher.update(self.fingerprint);
        hasher.update((wasm.len() as u64).to_le_bytes());
        hasher.update(wasm);
        ArtifactKey::from_digest(hasher.finalize().into())
    }

    /// Validates `wasm` (wasmparser, default features) and checks the guest contract,
    /// without compiling.
    pub fn validate(&self, wasm: &[u8]) -> Result<(), EngineError> {
        validate::check_wasm(wasm, self.config.memory_limit_bytes)
    }

    /// Validates and compiles `wasm` ahead of time.
    pub fn precompile(&self, wasm: &[u8]) -> Result<Artifact, EngineError> {
        self.validate(wasm)?;
        let bytes = self
            .inner
            .precompile_module(wasm)
            .map_err(|e| EngineError::Compile(format!("{e:#}")))?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        Ok(Artifact::new(self.artifact_key(wasm), bytes))
    }

    /// How many modules this engine (and its clones) has compiled.
    pub fn modules_compiled(&self) -> u64 {
        self.compiled.load(Ordering::Relaxed)
    }

    /// Loads a precompiled artifact under the ruleset name `ruleset` (used in errors):
    /// deserializes it without compiling, re-checks its imports and exports, and links
    /// the host functions once, so each call only instantiates.
    pub fn load(&self, ruleset: &str, artifact: &Artifact) -> Result<LoadedModule, EngineError> {
        // SAFETY: `Module::deserialize` maps the bytes as machine code, so they must be
        // the unmodified output of `Engine::precompile_module`. `Artifact` has no public
        // constructor from bytes: it is made only by `Engine::precompile` (this engine's
        // own compiler) or read back by `ArtifactCache`, which stores those same bytes
        // content-addressed and rejects a file whose SHA-256 checksum no longer matches
        // before it gets here. wasmtime itself checks the header: an artifact from
        // another wasmtime version or from an engine with incompatible settings is an
        // error, not undefined behaviour.
        #[allow(unsafe_code)]
        let module = unsafe { Module::deserialize(&self.inner, artifact.as_bytes()) }
            .map_err(|e| EngineError::Load(format!("{e:#}")))?;
        validate::check_module(&module, self.config.memory_limit_bytes)?;

        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| EngineError::Link {
                ruleset: ruleset.to_owned(),
                reason: format!("{e:#}"),
            })?;
        let memory = module
            .get_export_index(validate::MEMORY_EXPORT)
            .ok_or(EngineError::MissingExport(validate::MEMORY_EXPORT))?;
        let input_base = module
            .get_export_index(validate::INPUT_BASE_EXPORT)
            .ok_or(EngineError::MissingExport(validate::INPUT_BASE_EXPORT))?;
        let hooks = Hook::ALL.map(|hook| module.get_export_index(hook.export_name()));
        // Every mutable global is exported (`validate::check_wasm`), so these are all of
        // the module's global state.
        let mutable_globals: Vec<(ModuleExport, wasmtime::GlobalType)> = module
            .exports()
            .filter_map(|export| match export.ty() {
                ExternType::Global(g) if g.mutability() == Mutability::Var => {
                    Some((module.get_export_index(export.name())?, g))
                }
                _ => None,
            })
            .collect();
        // Instances are reused only when all their state can be put back from outside:
        // a table could be changed by the guest, and a reference-typed global's initial
        // value belongs to the store it was read in. Modules with either (weir's
        // compiler emits neither) get a fresh instance per evaluation.
        let resettable = module.resources_required().num_tables == 0
            && mutable_globals
                .iter()
                .all(|(_, g)| g.content().is_num() || g.content().is_v128());
        let warm = (self.config.warm_instances > 0 && resettable).then(|| WarmPool {
            instances: Mutex::new(Vec::new()),
            per_module: self.config.warm_instances as usize,
            total: self.warm_total.clone(),
            total_cap: self.config.max_instances as usize / 2,
            initial: OnceLock::new(),
        });
        // Only a reused instance needs its globals at hand (to reset them).
        let state = match warm {
            Some(_) => mutable_globals
                .into_iter()
                .map(|(export, _)| export)
                .collect(),
            None => Vec::new(),
        };

        Ok(LoadedModule {
            ruleset: ruleset.to_owned(),
            engine: self.inner.clone(),
            pre,
            memory,
            input_base,
            hooks,
            state,
            warm,
            instantiated: AtomicU64::new(0),
            fuel_per_call: self.config.fuel_per_call,
            memory_limit_bytes: self.config.memory_limit_bytes,
        })
    }
}

/// Instances of one module waiting for the next evaluation, already reset.
struct WarmPool {
    instances: Mutex<Vec<Live>>,
    per_module: usize,
    /// The engine-wide count of warm instances, shared by every module.
    total: Arc<AtomicUsize>,
    total_cap: usize,
    /// The state a fresh instance starts in, captured from the first one.
    initial: OnceLock<Initial>,
}

/// What a fresh instance of a module holds before any call: a reused instance is reset
/// to exactly this.
struct Initial {
    memory_len: usize,
    /// The initial memory, or `None` when it is all zeros (no data segments).
    image: Option<Box<[u8]>>,
    /// Initial values of the module's mutable globals, in `LoadedModule::state` order.
    globals: Vec<Val>,
}

impl WarmPool {
    fn take(&self) -> Option<Live> {
        let live = self.instances.lock().ok()?.pop()?;
        self.total.fetch_sub(1, Ordering::Relaxed);
        Some(live)
    }

    /// Keeps `live` (already reset) unless this module or the engine has enough warm
    /// instances; what is not kept is handed back to be dropped outside the lock.
    fn put(&self, live: Live) -> Option<Live> {
        let Ok(mut instances) = self.instances.lock() else {
            return Some(live);
        };
        if instances.len() >= self.per_module {
            return Some(live);
        }
        if self.total.fetch_add(1, Ordering::Relaxed) >= self.total_cap {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Some(live);
        }
        instances.push(live);
        None
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        let kept = self
            .instances
            .get_mut()
            .map_or(0, |instances| instances.len());
        self.total.fetch_sub(kept, Ordering::Relaxed);
    }
}

/// A store with one instance of a module: used by one evaluation at a time.
struct Live {
    store: Store<HostState>,
    memory: wasmtime::Memory,
    input_ptr: u32,
    /// The hook functions, by `hook_index`.
    hooks: [Option<TypedFunc<(i32, i32), i64>>; 5],
    /// The module's mutable globals (`LoadedModule::state`).
    state: Vec<Global>,
}

impl Live {
    /// Puts the instance back in the state `initial` describes: whole memory, every
    /// mutable global, the limiter's flag. False when it cannot be (its memory grew):
    /// then it must be dropped, not reused.
    fn reset(&mut self, initial: &Initial) -> bool {
        let data = self.memory.data_mut(&mut self.store);
        if data.len() != initial.memory_len {
            return false;
        }
        match &initial.image {
            None => data.fill(0),
            Some(image) => data.copy_from_slice(image),
        }
        for (global, value) in self.state.iter().zip(&initial.globals) {
            if global.set(&mut self.store, *value).is_err() {
                return false;
            }
        }
        self.store.data_mut().limiter.memory_limit_hit = false;
        true
    }
}

/// The result of a successful hook call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutput {
    /// The output bytes the hook returned (copied out of the instance's memory).
    pub bytes: Vec<u8>,
    /// Fuel the hook consumed (out of [`EngineConfig::fuel_per_call`]); about one unit
    /// per WebAssembly instruction executed.
    pub fuel_used: u64,
}

/// A call's output copied out of the instance's memory.
fn copy_out(bytes: &[u8], fuel_used: u64) -> Result<CallOutput, EvalErrorKind> {
    Ok(CallOutput {
        bytes: bytes.to_vec(),
        fuel_used,
    })
}

/// A ruleset module, deserialized and pre-linked, ready to call. `Send + Sync`: share it
/// (e.g. in an `Arc`) across threads; calls are independent.
pub struct LoadedModule {
    ruleset: String,
    engine: wasmtime::Engine,
    pre: InstancePre<HostState>,
    memory: ModuleExport,
    input_base: ModuleExport,
    hooks: [Option<ModuleExport>; 5],
    /// The exported mutable globals — all of the module's global state — when
    /// instances are reused; empty otherwise.
    state: Vec<ModuleExport>,
    /// `None` when instances are never reused (configured off, or state the host
    /// cannot reset: a table, a reference-typed global).
    warm: Option<WarmPool>,
    instantiated: AtomicU64,
    fuel_per_call: u64,
    memory_limit_bytes: usize,
}

impl fmt::Debug for LoadedModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedModule")
            .field("ruleset", &self.ruleset)
            .field("hooks", &self.hooks().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LoadedModule {
    /// The ruleset name given to [`Engine::load`].
    pub fn ruleset(&self) -> &str {
        &self.ruleset
    }

    /// Whether the module exports `hook`.
    pub fn has_hook(&self, hook: Hook) -> bool {
        self.hook_export(hook).is_some()
    }

    /// The hooks the module exports, in ABI order.
    pub fn hooks(&self) -> impl Iterator<Item = Hook> + '_ {
        Hook::ALL.into_iter().filter(|hook| self.has_hook(*hook))
    }

    fn hook_export(&self, hook: Hook) -> Option<&ModuleExport> {
        self.hooks.get(hook_index(hook)).and_then(Option::as_ref)
    }

    /// How many instances this module has created: with warm instances, far fewer than
    /// evaluations.
    pub fn instances_created(&self) -> u64 {
        self.instantiated.load(Ordering::Relaxed)
    }

    /// Whether instances of this module are reset and reused between evaluations.
    pub fn reuses_instances(&self) -> bool {
        self.warm.is_some()
    }

    /// Runs `hook` on `input` as an evaluation of its own (a warm, reset instance or a
    /// fresh one), with `lists` answering `weir.list_contains`, and returns the output
    /// bytes and the fuel used. See the [module docs](self).
    pub fn call(
        &self,
        hook: Hook,
        input: &[u8],
        lists: &dyn ListLookup,
    ) -> Result<CallOutput, EvalError> {
        self.call_with(hook, input, lists, copy_out)
    }

    /// [`call`](Self::call), with the output read by `read` in place (see
    /// [`call_all_with`](Self::call_all_with)).
    pub fn call_with<T>(
        &self,
        hook: Hook,
        input: &[u8],
        lists: &dyn ListLookup,
        read: impl FnMut(&[u8], u64) -> Result<T, EvalErrorKind>,
    ) -> Result<T, EvalError> {
        let mut outputs = self.call_all_with(&[(hook, input)], lists, read)?;
        outputs.pop().ok_or_else(|| EvalError {
            ruleset: self.ruleset.clone(),
            hook,
            kind: EvalErrorKind::BadOutput("no output".to_owned()),
        })
    }

    /// Runs the hook calls of ONE evaluation in order, in one instance no other
    /// evaluation is using, each call with its own fuel budget; stops at the first
    /// failure. The calls of one evaluation see the same facts, so sharing an instance
    /// between them exposes nothing new; afterwards the instance is reset to its
    /// initial state and kept warm, or dropped (see the [module docs](self)), so nothing
    /// reaches the next evaluation.
    pub fn call_all(
        &self,
        calls: &[(Hook, &[u8])],
        lists: &dyn ListLookup,
    ) -> Result<Vec<CallOutput>, EvalError> {
        self.call_all_with(calls, lists, copy_out)
    }

    /// [`call_all`](Self::call_all), with each call's output read by `read` straight
    /// from the instance's memory (with the fuel the call used) rather than copied out
    /// first: a caller that turns the bytes into something else makes one copy, not two.
    /// An error from `read` fails the evaluation like a bad output.
    pub fn call_all_with<T>(
        &self,
        calls: &[(Hook, &[u8])],
        lists: &dyn ListLookup,
        mut read: impl FnMut(&[u8], u64) -> Result<T, EvalErrorKind>,
    ) -> Result<Vec<T>, EvalError> {
        let first = calls.first().map_or(Hook::Promotions, |(hook, _)| *hook);
        let error = |hook, kind| EvalError {
            ruleset: self.ruleset.clone(),
            hook,
            kind,
        };
        if let Some((hook, _)) = calls.iter().find(|(hook, _)| !self.has_hook(*hook)) {
            return Err(error(*hook, EvalErrorKind::MissingExport));
        }
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        CALL_LISTS.set(lists, || {
            let warm = self.warm.as_ref().and_then(WarmPool::take);
            let mut live = match warm {
                Some(live) => live,
                None => self.instantiate().map_err(|kind| error(first, kind))?,
            };
            let mut outputs = Vec::with_capacity(calls.len());
            for (hook, input) in calls {
                // On failure `live` is dropped here: a failed instance is never reused.
                outputs.push(
                    self.invoke(&mut live, *hook, input, &mut read)
                        .map_err(|kind| error(*hook, kind))?,
                );
            }
            self.release(live);
            Ok(outputs)
        })
    }

    /// Resets an instance after a successful evaluation and keeps it warm, or drops it.
    fn release(&self, mut live: Live) {
        let Some(warm) = &self.warm else { return };
        let Some(initial) = warm.initial.get() else {
            return;
        };
        if live.reset(initial) {
            // What the pool does not keep is dropped here, outside its lock.
            drop(warm.put(live));
        }
    }

    /// A fresh store and instance under this module's limits; the first one of a
    /// reusable module also records the initial state warm instances are reset to.
    fn instantiate(&self) -> Result<Live, EvalErrorKind> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.memory_limit_bytes)
            .instances(1)
            .memories(1)
            .tables(1)
            // A guest's `memory.grow` past the cap traps instead of returning -1, so the
            // call ends with `MemoryLimit` rather than continuing on a failed allocation.
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &self.engine,
            HostState {
                limiter: CallLimiter {
                    limits,
                    memory_limit_hit: false,
                },
            },
        );
        store.limiter(|state| &mut state.limiter);
        // Instantiation evaluates global initialisers under fuel metering too (a
        // `ref.func` or `ref.null` initialiser costs fuel): a store with none would trap.
        store
            .set_fuel(self.fuel_per_call)
            .map_err(|e| EvalErrorKind::Instantiate(format!("{e:#}")))?;

        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| self.classify(&store, e, EvalErrorKind::Instantiate))?;

        let memory = instance
            .get_module_export(&mut store, &self.memory)
            .and_then(Extern::into_memory)
            .ok_or_else(|| EvalErrorKind::Instantiate("no `memory` export".to_owned()))?;
        let input_base = instance
            .get_module_export(&mut store, &self.input_base)
            .and_then(Extern::into_global)
            .and_then(|global| global.get(&mut store).i32())
            .ok_or_else(|| EvalErrorKind::Instantiate("no i32 `input_base` export".to_owned()))?;
        let mut hooks = [None, None, None, None, None];
        for (slot, export) in hooks.iter_mut().zip(&self.hooks) {
            let Some(export) = export else { continue };
            let func = instance
                .get_module_export(&mut store, export)
                .and_then(Extern::into_func)
                .ok_or(EvalErrorKind::MissingExport)?;
            *slot = Some(
                func.typed::<(i32, i32), i64>(&store)
                    .map_err(|e| EvalErrorKind::Instantiate(format!("{e:#}")))?,
            );
        }
        let state = self
            .state
            .iter()
            .map(|export| {
                instance
                    .get_module_export(&mut store, export)
                    .and_then(Extern::into_global)
                    .ok_or_else(|| EvalErrorKind::Instantiate("a state global vanished".to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.instantiated.fetch_add(1, Ordering::Relaxed);
        if let Some(warm) = &self.warm {
            warm.initial.get_or_init(|| {
                let data = memory.data(&store);
                Initial {
                    memory_len: data.len(),
                    image: data.iter().any(|b| *b != 0).then(|| data.into()),
                    globals: state.iter().map(|g| g.get(&mut store)).collect(),
                }
            });
        }
        Ok(Live {
            store,
            memory,
            // WASM addresses are unsigned.
            input_ptr: input_base as u32,
            hooks,
            state,
        })
    }

    /// One hook call on a live instance, with a full fuel budget.
    fn invoke<T>(
        &self,
        live: &mut Live,
        hook: Hook,
        input: &[u8],
        read: &mut impl FnMut(&[u8], u64) -> Result<T, EvalErrorKind>,
    ) -> Result<T, EvalErrorKind> {
        let Live {
            store,
            memory,
            input_ptr,
            hooks,
            ..
        } = live;
        let input_ptr = *input_ptr;
        store
            .set_fuel(self.fuel_per_call)
            .map_err(|e| EvalErrorKind::Instantiate(format!("{e:#}")))?;
        let memory_limit = EvalErrorKind::MemoryLimit {
            limit_bytes: self.memory_limit_bytes,
        };

        // Grow memory (through the limiter) if the input does not fit above input_base.
        let input_len = u32::try_from(input.len()).map_err(|_| memory_limit.clone())?;
        let input_end = (input_ptr as usize)
            .checked_add(input.len())
            .ok_or_else(|| memory_limit.clone())?;
        let size = memory.data_size(&*store);
        if input_end > size {
            let pages = (input_end - size).div_ceil(WASM_PAGE) as u64;
            memory
                .grow(&mut *store, pages)
                .map_err(|e| self.classify(store, e, EvalErrorKind::Trap))?;
        }
        memory
            .write(&mut *store, input_ptr as usize, input)
            .map_err(|e| EvalErrorKind::Trap(format!("could not write the input: {e}")))?;

        let func = hooks
            .get(hook_index(hook))
            .and_then(Option::as_ref)
            .ok_or(EvalErrorKind::MissingExport)?;
        let packed = func
            .call(&mut *store, (input_ptr as i32, input_len as i32))
            .map_err(|e| self.classify(store, e, EvalErrorKind::Trap))?;
        let fuel_used = self
            .fuel_per_call
            .saturating_sub(store.get_fuel().unwrap_or(0));

        // (output_ptr << 32) | output_len, both unsigned.
        let packed = packed as u64;
        let out_ptr = (packed >> 32) as usize;
        let out_len = (packed & 0xffff_ffff) as usize;
        let data = memory.data(&*store);
        let bytes = out_ptr
            .checked_add(out_len)
            .and_then(|end| data.get(out_ptr..end))
            .ok_or_else(|| {
                EvalErrorKind::BadOutput(format!(
                    "output at {out_ptr}..{} is outside the module's {} bytes of memory",
                    out_ptr.saturating_add(out_len),
                    data.len()
                ))
            })?;
        read(bytes, fuel_used)
    }

    /// Maps a wasmtime error to the kind of failure: fuel, memory cap, trap, or
    /// `fallback` with the error's message.
    fn classify(
        &self,
        store: &Store<HostState>,
        error: wasmtime::Error,
        fallback: fn(String) -> EvalErrorKind,
    ) -> EvalErrorKind {
        let trap = error.downcast_ref::<Trap>().copied();
        if trap == Some(Trap::OutOfFuel) {
            EvalErrorKind::OutOfFuel {
                budget: self.fuel_per_call,
            }
        } else if store.data().limiter.memory_limit_hit {
            EvalErrorKind::MemoryLimit {
                limit_bytes: self.memory_limit_bytes,
            }
        } else if let Some(trap) = trap {
            let message = trap.to_string();
            EvalErrorKind::Trap(
                message
                    .strip_prefix("wasm trap: ")
                    .unwrap_or(&message)
                    .to_owned(),
            )
        } else {
            fallback(format!("{error:#}"))
        }
    }
}
