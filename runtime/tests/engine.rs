//! The engine shell against hand-written WAT modules: the guest contract
//! (`docs/abi.md`, "Calling a module"), limits, hostile modules, and the artifact cache.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::cell::RefCell;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use weir_runtime::engine::{
    ArtifactCache, CacheStatus, Engine, EngineConfig, EngineError, EvalError, EvalErrorKind, Hook,
    ListLookup, LoadedModule, NoLists,
};

/// Small pool: tests run in parallel and each engine reserves address space per slot.
fn config() -> EngineConfig {
    EngineConfig {
        max_instances: 8,
        ..EngineConfig::default()
    }
}

fn engine() -> Engine {
    Engine::new(&config()).unwrap()
}

fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap()
}

fn load(engine: &Engine, ruleset: &str, wat: &str) -> LoadedModule {
    let artifact = engine.precompile(&wasm(wat)).unwrap();
    engine.load(ruleset, &artifact).unwrap()
}

fn kind(result: Result<weir_runtime::CallOutput, EvalError>) -> EvalErrorKind {
    result.expect_err("the call should fail").kind
}

/// A fresh, empty directory under cargo's per-target temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("weir-runtime-engine")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// `(ptr << 32) | len` as WAT, for hooks returning a region.
const PACK: &str = "
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))";

/// Returns its input unchanged, for every hook. Input at 1024, one page.
fn echo_wat() -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global (export "input_base") i32 (i32.const 1024))
  {PACK}
  (func $echo (param i32 i32) (result i64) (call $pack (local.get 0) (local.get 1)))
  (export "promotions" (func $echo))
  (export "route" (func $echo))
  (export "constraints" (func $echo))
  (export "risk" (func $echo))
  (export "sop_triggers" (func $echo)))"#
    )
}

/// `promotions` echoes; `risk` loops forever; `route` grows memory by 100 pages
/// (past the 4 MiB cap); `constraints` hits `unreachable`.
fn misbehaving_wat() -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global (export "input_base") i32 (i32.const 0))
  {PACK}
  (func (export "promotions") (param i32 i32) (result i64) (call $pack (local.get 0) (local.get 1)))
  (func (export "risk") (param i32 i32) (result i64)
    (loop $forever (br $forever))
    (i64.const 0))
  (func (export "route") (param i32 i32) (result i64)
    (drop (memory.grow (i32.const 100)))
    (i64.const 0))
  (func (export "constraints") (param i32 i32) (result i64)
    unreachable))"#
    )
}

#[test]
fn echo_returns_its_input_on_every_hook() {
    let engine = engine();
    let module = load(&engine, "beauty", &echo_wat());
    let input: Vec<u8> = (0..=255).collect();
    for hook in Hook::ALL {
        let out = module.call(hook, &input, &NoLists).unwrap();
        assert_eq!(out.bytes, input, "{hook}");
        assert!(out.fuel_used > 0, "fuel is metered");
        assert!(out.fuel_used < 100, "echo is a handful of instructions");
    }
    assert_eq!(module.hooks().count(), 5);
    assert_eq!(module.ruleset(), "beauty");
}

#[test]
fn empty_input_and_input_that_needs_more_memory() {
    let engine = engine();
    let module = load(&engine, "beauty", &echo_wat());
    assert_eq!(
        module.call(Hook::Route, &[], &NoLists).unwrap().bytes,
        Vec::<u8>::new()
    );
    // 1024 + 200_000 bytes does not fit in the one initial page: the host grows memory.
    let big = vec![7u8; 200_000];
    assert_eq!(module.call(Hook::Route, &big, &NoLists).unwrap().bytes, big);
}

#[test]
fn input_larger_than_the_memory_cap_is_a_memory_limit() {
    let engine = engine();
    let module = load(&engine, "beauty", &echo_wat());
    let huge = vec![0u8; 5 * 1024 * 1024];
    assert_eq!(
        kind(module.call(Hook::Route, &huge, &NoLists)),
        EvalErrorKind::MemoryLimit {
            limit_bytes: 4 * 1024 * 1024
        }
    );
    assert_eq!(
        module.call(Hook::Route, b"ok", &NoLists).unwrap().bytes,
        b"ok"
    );
}

#[test]
fn endless_loop_runs_out_of_fuel_and_the_next_call_works() {
    let engine = engine();
    let module = load(&engine, "beauty", &misbehaving_wat());
    let error = module.call(Hook::Risk, b"x", &NoLists).unwrap_err();
    assert_eq!(error.kind, EvalErrorKind::OutOfFuel { budget: 1_000_000 });
    assert_eq!(
        error.to_string(),
        "ruleset `beauty` hook `risk`: ran out of fuel (budget 1000000)"
    );
    assert_eq!(
        module
            .call(Hook::Promotions, b"next", &NoLists)
            .unwrap()
            .bytes,
        b"next"
    );
    // And the same hook again: fresh fuel, same answer.
    assert_eq!(
        kind(module.call(Hook::Risk, b"x", &NoLists)),
        EvalErrorKind::OutOfFuel { budget: 1_000_000 }
    );
}

#[test]
fn fuel_budget_comes_from_the_config() {
    let engine = Engine::new(&EngineConfig {
        fuel_per_call: 5_000,
        ..config()
    })
    .unwrap();
    let module = load(&engine, "beauty", &misbehaving_wat());
    let error = module.call(Hook::Risk, b"", &NoLists).unwrap_err();
    assert_eq!(error.kind, EvalErrorKind::OutOfFuel { budget: 5_000 });
}

#[test]
fn growing_memory_past_the_cap_is_a_memory_limit_and_the_next_call_works() {
    let engine = engine();
    let module = load(&engine, "beauty", &misbehaving_wat());
    let error = module.call(Hook::Route, b"", &NoLists).unwrap_err();
    assert_eq!(
        error.kind,
        EvalErrorKind::MemoryLimit {
            limit_bytes: 4 * 1024 * 1024
        }
    );
    assert_eq!(
        error.to_string(),
        "ruleset `beauty` hook `route`: exceeded the memory limit of 4194304 bytes"
    );
    assert_eq!(
        module
            .call(Hook::Promotions, b"after", &NoLists)
            .unwrap()
            .bytes,
        b"after"
    );
}

#[test]
fn growing_memory_within_the_cap_works() {
    let engine = engine();
    let module = load(
        &engine,
        "beauty",
        &format!(
            r#"(module
  (memory (export "memory") 1)
  (global (export "input_base") i32 (i32.const 0))
  {PACK}
  (func (export "route") (param i32 i32) (result i64)
    ;; 63 more pages = exactly 4 MiB; write the old size at the very end.
    (i32.store (i32.const 4194300) (memory.grow (i32.const 63)))
    (call $pack (i32.const 4194300) (i32.const 4))))"#
        ),
    );
    let out = module.call(Hook::Route, b"", &NoLists).unwrap();
    assert_eq!(out.bytes, 1i32.to_le_bytes());
}

#[test]
fn unreachable_is_a_trap() {
    let engine = engine();
    let module = load(&engine, "beauty", &misbehaving_wat());
    let error = module.call(Hook::Constraints, b"", &NoLists).unwrap_err();
    let EvalErrorKind::Trap(message) = &error.kind else {
        panic!("expected a trap, got {error}");
    };
    assert!(message.contains("unreachable"), "{message}");
    assert!(error
        .to_string()
        .starts_with("ruleset `beauty` hook `constraints`: trapped: "));
    assert_eq!(
        module
            .call(Hook::Promotions, b"ok", &NoLists)
            .unwrap()
            .bytes,
        b"ok"
    );
}

#[test]
fn other_traps_are_traps() {
    let engine = engine();
    let module = load(
        &engine,
        "beauty",
        r#"(module
  (memory (export "memory") 1)
  (global (export "input_base") i32 (i32.const 0))
  (func (export "risk") (param i32 i32) (result i64)
    (i64.extend_i32_u (i32.div_u (i32.const 1) (i32.const 0))))
  (func (export "route") (param i32 i32) (result i64)
    (i64.load (i32.const 70000)))
  (func $down (export "constraints") (param i32 i32) (result i64)
    (call $down (local.get 0) (local.get 1))))"#,
    );
    for (hook, needle) in [
        (Hook::Risk, "divide by zero"),
        (Hook::Route, "out of bounds"),
        (Hook::Constraints, "stack"),
    ] {
        match kind(module.call(hook, b"", &NoLists)) {
            EvalErrorKind::Trap(message) => assert!(message.contains(needle), "{message}"),
            // Deep recursion may use up the fuel before the stack.
            EvalErrorKind::OutOfFuel { .. } if hook == Hook::Constraints => {}
            other => panic!("{hook}: {other:?}"),
        }
    }
}

#[test]
fn out_of_bounds_output_is_bad_output_not_a_panic() {
    let engine = engine();
    let module = load(
        &engine,
        "beauty",
        r#"(module
  (memory (export "memory") 1)
  (global (export "input_base") i32 (i32.const 0))
  ;; ptr 65535, len 16: runs off the end of the one page.
  (func (export "promotions") (param i32 i32) (result i64) (i64.const 0x0000ffff00000010))
  ;; ptr 0xffffffff, len 0xffffffff.
  (func (export "route") (param i32 i32) (result i64) (i64.const -1))
  ;; ptr 0x80000000, len 0.
  (func (export "risk") (param i32 i32) (result i64) (i64.const 0x8000000000000000))
  ;; ptr 65536, len 0: the empty region right at the end is fine.
  (func (export "constraints") (param i32 i32) (result i64) (i64.const 0x0001000000000000)))"#,
    );
    for hook in [Hook::Promotions, Hook::Route, Hook::Risk] {
        match kind(module.call(hook, b"", &NoLists)) {
            EvalErrorKind::BadOutput(message) => {
                assert!(message.contains("outside"), "{message}")
            }
            other => panic!("{hook}: {other:?}"),
        }
    }
    assert!(module
        .call(Hook::Constraints, b"", &NoLists)
        .unwrap()
        .bytes
        .is_empty());
}

#[test]
fn a_hook_the_module_does_not_export_is_missing_export() {
    let engine = engine();
    let module = load(
        &engine,
        "beauty",
        &format!(
            r#"(module
  (memory (export "memory") 1)
  (global (export "input_base") i32 (i32.const 0))
  {PACK}
  (func (export "promotions") (param i32 i32) (result i64) (call $pack (local.get 0) (local.get 1))))"#
        ),
    );
    assert!(module.has_hook(Hook::Promotions));
    assert!(!module.has_hook(Hook::SopTriggers));
    assert_eq!(module.hooks().collect::<Vec<_>>(), [Hook::Promotions]);
    let error = module.call(Hook::SopTriggers, b"", &NoLists).unwrap_err();
    assert_eq!(error.kind, EvalErrorKind::MissingExport);
    assert_eq!(
        error.to_string(),
        "ruleset `beauty` hook `sop_triggers`: module does not export this hook"
    );
}

/// Records every query; contains exactly (7, 42) and (9, -1).
#[derive(Default)]
struct RecordingLists {
    queries: RefCell<Vec<(u32, i64)>>,
}

impl ListLookup for RecordingLists {
    fn contains(&self, list_id: u32, value: i64) -> bool {
        self.queries.borrow_mut().push((list_id, value));
        matches!((list_id, value), (7, 42) | (9, -1))
    }
}

#[test]
fn list_contains_calls_through_to_the_list_lookup() {
    let engine = engine();
    let module = load(
        &engine,
        "beauty",
        &format!(
            r#"(module
  (import "weir" "list_contains" (func $contains (param i32 i64) (result i32)))
  (memory (export "memory") 1)
  (global (export "input_base") i32 (i32.const 64))
  {PACK}
  ;; Queries (7, 42), (7, 43), (9, -1), (4294967295, 0); one result byte each at 0..4.
  (func (export "risk") (param i32 i32) (result i64)
    (i32.store8 (i32.const 0) (call $contains (i32.const 7) (i64.const 42)))
    (i32.store8 (i32.const 1) (call $contains (i32.const 7) (i64.const 43)))
    (i32.store8 (i32.const 2) (call $contains (i32.const 9) (i64.const -1)))
    (i32.store8 (i32.const 3) (call $contains (i32.const -1) (i64.const 0)))
    (call $pack (i32.const 0) (i32.const 4))))"#
        ),
    );
    let lists = RecordingLists::default();
    let out = module.call(Hook::Risk, b"", &lists).unwrap();
    assert_eq!(out.bytes, [1, 0, 1, 0]);
    assert_eq!(
        *lists.queries.borrow(),
        [(7, 42), (7, 43), (9, -1), (u32::MAX, 0)]
    );

    // Closures are lookups too; each call sees the lookup passed to it.
    let out = module
        .call(Hook::Risk, b"", &|_: u32, _: i64| true)
        .unwrap();
    assert_eq!(out.bytes, [1, 1, 1, 1]);
    let out = module.call(Hook::Risk, b"", &NoLists).unwrap();
    assert_eq!(out.bytes, [0, 0, 0, 0]);
}

#[test]
fn state_does_not_leak_between_calls() {
    let engine = engine();
    let module = load(
        &engine,
        "beauty",
        &format!(
            r#"(module
  (memory (export "memory") 1)
  (global (export "input_base") i32 (i32.const 64))
  (global $count (export "count") (mut i32) (i32.const 0))
  {PACK}
  ;; Bumps a global and a memory cell; both start from scratch in every evaluation.
  (func (export "promotions") (param i32 i32) (result i64)
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (i32.store (i32.const 0) (global.get $count))
    (i32.store (i32.const 4) (i32.add (i32.load (i32.const 4)) (i32.const 1)))
    (call $pack (i32.const 0) (i32.const 8))))"#
        ),
    );
    let expected = [1i32.to_le_bytes(), 1i32.to_le_bytes()].concat();
    for _ in 0..5 {
        assert_eq!(
            module.call(Hook::Promotions, b"", &NoLists).unwrap().bytes,
            expected
        );
    }
    // ...although every call ran in the same, reset, instance.
    assert!(module.reuses_instances());
    assert_eq!(module.instances_created(), 1);

    // The same without warm instances: a fresh instance per call.
    let cold = Engine::new(&EngineConfig {
        warm_instances: 0,
        ..config()
    })
    .unwrap();
    let artifact = cold.precompile(&wasm(&counter_wat())).unwrap();
    let module = cold.load("beauty", &artifact).unwrap();
    assert!(!module.reuses_instances());
    for _ in 0..3 {
        let out = module.call(Hook::Promotions, b"", &NoLists).unwrap();
        assert_eq!(out.bytes, 1i32.to_le_bytes());
    }
    assert_eq!(module.instances_created(), 3);
}

#[test]
fn a_module_with_a_hidden_mutable_global_is_rejected() {
    let error = rejection(&format!(
        r#"(module {MEMORY_AND_BASE} (global (mut i64) (i64.const 0)) (global $seen (mut i32) (i32.const 0)) (export "seen" (global $seen)))"#
    ));
    assert!(
        matches!(error, EngineError::HiddenGlobal { index: 1 }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("mutable global 1 is not exported"),
        "{error}"
    );
    // Immutable globals need not be exported: they cannot change.
    let engine = engine();
    engine
        .precompile(&wasm(&format!(
            "(module {MEMORY_AND_BASE} (global i64 (i64.const 7)))"
        )))
        .unwrap();
}

/// A module whose memory starts with data: `promotions` returns the first 8 bytes and
/// the last 4 of its page as they were when it was called, then overwrites both and
/// bumps a global; `route` also grows memory by a page; `risk` writes then traps.
fn scribbling_wat() -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (data (i32.const 0) "WEIR-ABI")
  (global (export "input_base") i32 (i32.const 64))
  (global $calls (export "calls") (mut i64) (i64.const 100))
  {PACK}
  (func $scribble
    (global.set $calls (i64.add (global.get $calls) (i64.const 1)))
    (i64.store (i32.const 0) (i64.const -1))
    (i32.store (i32.const 65532) (i32.const -1)))
  (func (export "promotions") (param i32 i32) (result i64)
    (i64.store (i32.const 32) (i64.load (i32.const 0)))
    (i32.store (i32.const 40) (i32.load (i32.const 65532)))
    (i64.store (i32.const 44) (global.get $calls))
    (call $scribble)
    (call $pack (i32.const 32) (i32.const 20)))
  (func (export "route") (param i32 i32) (result i64)
    (i32.store (i32.const 32) (memory.size))
    (drop (memory.grow (i32.const 1)))
    (call $pack (i32.const 32) (i32.const 4)))
  (func (export "risk") (param i32 i32) (result i64)
    (call $scribble)
    unreachable))"#
    )
}

#[test]
fn a_reused_instance_is_reset_to_its_initial_memory_image_and_globals() {
    let engine = engine();
    let module = load(&engine, "beauty", &scribbling_wat());
    assert!(module.reuses_instances());
    let fresh = [b"WEIR-ABI".as_slice(), &[0; 4], &100i64.to_le_bytes()].concat();
    for _ in 0..4 {
        let out = module.call(Hook::Promotions, b"", &NoLists).unwrap();
        assert_eq!(out.bytes, fresh);
    }
    assert_eq!(
        module.instances_created(),
        1,
        "one instance, reset each time"
    );

    // Two calls in one evaluation share the instance: the second sees the first's
    // writes. The next evaluation does not.
    let calls: [(Hook, &[u8]); 2] = [(Hook::Promotions, b""), (Hook::Promotions, b"")];
    let outputs = module.call_all(&calls, &NoLists).unwrap();
    assert_eq!(outputs[0].bytes, fresh);
    let scribbled = [[0xff; 8].as_slice(), &[0xff; 4], &101i64.to_le_bytes()].concat();
    assert_eq!(outputs[1].bytes, scribbled);
    let out = module.call(Hook::Promotions, b"", &NoLists).unwrap();
    assert_eq!(out.bytes, fresh);
    assert_eq!(module.instances_created(), 1);
}

#[test]
fn instances_that_grew_or_failed_are_dropped_not_reused() {
    let engine = engine();
    let module = load(&engine, "beauty", &scribbling_wat());
    let fresh = [b"WEIR-ABI".as_slice(), &[0; 4], &100i64.to_le_bytes()].concat();
    // Every evaluation sees one page: an instance whose memory grew is not kept.
    for created in 1..=3 {
        let out = module.call(Hook::Route, b"", &NoLists).unwrap();
        assert_eq!(out.bytes, 1i32.to_le_bytes());
        assert_eq!(module.instances_created(), created);
    }
    // A trap after scribbling: the instance is dropped; the next evaluation is clean.
    assert!(matches!(
        kind(module.call(Hook::Risk, b"", &NoLists)),
        EvalErrorKind::Trap(_)
    ));
    assert_eq!(module.instances_created(), 4);
    let out = module.call(Hook::Promotions, b"", &NoLists).unwrap();
    assert_eq!(out.bytes, fresh);
    assert_eq!(module.instances_created(), 5);
    let out = module.call(Hook::Promotions, b"", &NoLists).unwrap();
    assert_eq!(out.bytes, fresh);
    assert_eq!(module.instances_created(), 5, "kept after a success");
}

#[test]
fn modules_with_a_table_or_a_reference_global_never_reuse_instances() {
    let engine = engine();
    // `risk` returns nothing; `extra` declares the state the host cannot reset.
    let with = |extra: &str| {
        load(
            &engine,
            "beauty",
            &format!(
                r#"(module {MEMORY_AND_BASE} {extra} {PACK}
  (func (export "risk") (param i32 i32) (result i64) (call $pack (i32.const 0) (i32.const 0))))"#
            ),
        )
    };
    // A reference global's initialiser costs fuel at instantiation: the store has fuel
    // from the start.
    for extra in [
        "(table 1 funcref)",
        r#"(global (export "f") (mut funcref) (ref.null func))"#,
    ] {
        let module = with(extra);
        assert!(!module.reuses_instances(), "{extra}");
        for _ in 0..2 {
            module.call(Hook::Risk, b"", &NoLists).unwrap();
        }
        assert_eq!(module.instances_created(), 2, "{extra}");
    }
}

#[test]
fn warm_instances_across_modules_stay_under_half_the_pool() {
    // 8 slots: at most 4 warm instances engine-wide, so 6 modules called once each keep
    // 4 warm, and a second round instantiates only for the other 2.
    let engine = engine();
    let modules: Vec<LoadedModule> = (0..6)
        .map(|i| load(&engine, &format!("ruleset-{i}"), &counter_wat()))
        .collect();
    for module in &modules {
        module.call(Hook::Promotions, b"", &NoLists).unwrap();
    }
    for module in &modules {
        let out = module.call(Hook::Promotions, b"", &NoLists).unwrap();
        assert_eq!(out.bytes, 1i32.to_le_bytes());
    }
    let created: u64 = modules.iter().map(LoadedModule::instances_created).sum();
    assert_eq!(created, 8);
    // Dropping modules gives their warm instances back: a new module can keep one.
    drop(modules);
    let module = load(&engine, "again", &counter_wat());
    for _ in 0..3 {
        module.call(Hook::Promotions, b"", &NoLists).unwrap();
    }
    assert_eq!(module.instances_created(), 1);
}

/// Bumps a global on every call and returns it: shows which calls share an instance.
fn counter_wat() -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global (export "input_base") i32 (i32.const 64))
  (global $count (export "count") (mut i32) (i32.const 0))
  {PACK}
  (func $bump (param i32 i32) (result i64)
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (i32.store (i32.const 0) (global.get $count))
    (call $pack (i32.const 0) (i32.const 4)))
  (export "promotions" (func $bump))
  (export "route" (func $bump))
  (export "sop_triggers" (func $bump)))"#
    )
}

#[test]
fn call_all_runs_one_evaluation_in_one_instance_and_the_next_starts_fresh() {
    let engine = engine();
    let module = load(&engine, "beauty", &counter_wat());
    let calls: [(Hook, &[u8]); 3] = [
        (Hook::Promotions, b""),
        (Hook::Route, b""),
        (Hook::SopTriggers, b""),
    ];
    for _ in 0..3 {
        let outputs = module.call_all(&calls, &NoLists).unwrap();
        let counts: Vec<i32> = outputs
            .iter()
            .map(|o| i32::from_le_bytes(o.bytes.clone().try_into().unwrap()))
            .collect();
        // Shared within the evaluation, never across evaluations.
        assert_eq!(counts, [1, 2, 3]);
        assert!(outputs.iter().all(|o| o.fuel_used > 0));
    }
    assert!(module.call_all(&[], &NoLists).unwrap().is_empty());
}

#[test]
fn call_all_gives_each_call_its_own_input_and_fuel() {
    let engine = engine();
    let module = load(&engine, "beauty", &echo_wat());
    let long = vec![7u8; 3 * 65536];
    let calls: [(Hook, &[u8]); 3] = [
        (Hook::Promotions, &long),
        (Hook::Route, b"short"),
        (Hook::Risk, b""),
    ];
    let outputs = module.call_all(&calls, &NoLists).unwrap();
    assert_eq!(outputs[0].bytes, long);
    assert_eq!(outputs[1].bytes, b"short");
    assert!(outputs[2].bytes.is_empty());
    for ((hook, input), output) in calls.iter().zip(&outputs) {
        assert_eq!(module.call(*hook, input, &NoLists).unwrap(), *output);
    }
}

#[test]
fn call_all_stops_at_the_first_failure_naming_its_hook_and_the_next_works() {
    let engine = engine();
    let module = load(&engine, "beauty", &misbehaving_wat());
    let calls: [(Hook, &[u8]); 3] = [
        (Hook::Promotions, b"ok"),
        (Hook::Risk, b""),
        (Hook::Constraints, b""),
    ];
    let error = module.call_all(&calls, &NoLists).unwrap_err();
    assert_eq!(error.hook, Hook::Risk);
    assert!(matches!(error.kind, EvalErrorKind::OutOfFuel { .. }));
    let missing = module
        .call_all(&[(Hook::SopTriggers, b"")], &NoLists)
        .unwrap_err();
    assert_eq!(missing.kind, EvalErrorKind::MissingExport);
    let outputs = module
        .call_all(&[(Hook::Promotions, b"again")], &NoLists)
        .unwrap();
    assert_eq!(outputs[0].bytes, b"again");
}

#[test]
fn loaded_modules_are_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LoadedModule>();
    assert_send_sync::<Engine>();

    let engine = engine();
    let module = Arc::new(load(&engine, "beauty", &echo_wat()));
    let threads: Vec<_> = (0..4u8)
        .map(|i| {
            let module = Arc::clone(&module);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let out = module.call(Hook::Route, &[i; 32], &NoLists).unwrap();
                    assert_eq!(out.bytes, [i; 32]);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

// ---- validation: rejected before compiling, never run --------------------------------

fn rejection(wat: &str) -> EngineError {
    let engine = engine();
    let wasm = wasm(wat);
    let error = engine.precompile(&wasm).unwrap_err();
    assert_eq!(engine.modules_compiled(), 0, "rejected before compiling");
    error
}

const MEMORY_AND_BASE: &str = r#"
  (memory (export "memory") 1)
  (global (export "input_base") i32 (i32.const 0))"#;

#[test]
fn a_module_importing_a_clock_is_rejected_naming_the_import() {
    let error = rejection(&format!(
        r#"(module
  (import "env" "clock" (func $clock (result i64)))
  {MEMORY_AND_BASE}
  (func (export "risk") (param i32 i32) (result i64) (call $clock)))"#
    ));
    assert!(
        matches!(&error, EngineError::ForbiddenImport { module, name } if module == "env" && name == "clock"),
        "{error:?}"
    );
    assert!(error.to_string().contains("`env.clock`"), "{error}");
}

#[test]
fn a_wasi_module_is_rejected_naming_the_import() {
    let error = rejection(&format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  {MEMORY_AND_BASE})"#
    ));
    assert!(
        error
            .to_string()
            .contains("`wasi_snapshot_preview1.fd_write`"),
        "{error}"
    );
}

#[test]
fn imported_memories_globals_and_mistyped_host_functions_are_rejected() {
    let error = rejection(
        r#"(module
  (import "weir" "memory" (memory 1))
  (global (export "input_base") i32 (i32.const 0)))"#,
    );
    assert!(
        matches!(&error, EngineError::ForbiddenImport { name, .. } if name == "memory"),
        "{error:?}"
    );
    let error = rejection(&format!(
        r#"(module
  (import "weir" "list_contains" (func (param i32 i32) (result i32)))
  {MEMORY_AND_BASE})"#
    ));
    assert!(matches!(error, EngineError::ImportType { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("as func (param i32 i32) (result i32), but the host provides func (param i32 i64) (result i32)"),
        "{error}"
    );
}

#[test]
fn structural_rules_of_the_contract() {
    assert!(matches!(
        rejection(&format!(
            "(module {MEMORY_AND_BASE} (func $init) (start $init))"
        )),
        EngineError::StartFunction
    ));
    assert!(matches!(
        rejection(&format!("(module {MEMORY_AND_BASE} (memory 1))")),
        EngineError::MemoryCount { found: 2 }
    ));
    assert!(matches!(
        rejection(r#"(module (global (export "input_base") i32 (i32.const 0)))"#),
        EngineError::MemoryCount { found: 0 }
    ));
    assert!(matches!(
        rejection(r#"(module (memory 1) (global (export "input_base") i32 (i32.const 0)))"#),
        EngineError::MissingExport("memory")
    ));
    assert!(matches!(
        rejection(r#"(module (memory (export "memory") 1))"#),
        EngineError::MissingExport("input_base")
    ));
    assert!(matches!(
        rejection(
            r#"(module (memory (export "memory") 1) (global (export "input_base") (mut i32) (i32.const 0)))"#
        ),
        EngineError::BadExport { .. }
    ));
    let error = rejection(&format!(
        r#"(module {MEMORY_AND_BASE} (func (export "route") (param i32) (result i32) (i32.const 0)))"#
    ));
    assert!(
        error
            .to_string()
            .contains("export `route` must be a func (param i32 i32) (result i64)"),
        "{error}"
    );
    assert!(matches!(
        rejection(
            r#"(module (memory (export "memory") i64 1) (global (export "input_base") i32 (i32.const 0)))"#
        ),
        EngineError::UnsupportedMemory(_)
    ));
    // 65 pages > the 4 MiB cap.
    assert!(matches!(
        rejection(
            r#"(module (memory (export "memory") 65) (global (export "input_base") i32 (i32.const 0)))"#
        ),
        EngineError::MemoryTooLarge { .. }
    ));
}

#[test]
fn invalid_wasm_is_rejected() {
    let engine = engine();
    assert!(matches!(
        engine.precompile(b"not wasm at all"),
        Err(EngineError::InvalidWasm(_))
    ));
    // Well-formed but ill-typed: returns an i32 where an i64 is declared.
    let ill_typed = wat::parse_str(format!(
        r#"(module {MEMORY_AND_BASE} (func (export "risk") (param i32 i32) (result i64) (i32.const 0)))"#
    ));
    if let Ok(bytes) = ill_typed {
        assert!(matches!(
            engine.precompile(&bytes),
            Err(EngineError::InvalidWasm(_))
        ));
    }
    assert_eq!(engine.modules_compiled(), 0);
}

#[test]
fn config_is_checked() {
    for bad in [
        EngineConfig {
            fuel_per_call: 0,
            ..config()
        },
        EngineConfig {
            memory_limit_bytes: 1000,
            ..config()
        },
        EngineConfig {
            max_instances: 0,
            ..config()
        },
    ] {
        assert!(matches!(
            Engine::new(&bad),
            Err(EngineError::InvalidConfig(_))
        ));
    }
    let defaults = EngineConfig::default();
    assert_eq!(defaults.fuel_per_call, 1_000_000);
    assert_eq!(defaults.memory_limit_bytes, 4 * 1024 * 1024);
    assert_eq!(defaults.max_instances, 256);
    assert_eq!(defaults.warm_instances, 8);
}

// ---- artifacts and the cache ---------------------------------------------------------

#[test]
fn precompile_cache_load_round_trip_and_second_load_hits_the_cache() {
    let dir = temp_dir("round-trip");
    let wasm = wasm(&echo_wat());

    let engine = engine();
    let cache = ArtifactCache::open(&dir).unwrap();
    let key = engine.artifact_key(&wasm);
    let path = cache.path_for(&key);
    assert!(!path.exists());
    assert!(cache.get(&engine, &wasm).unwrap().is_none());

    let (artifact, status) = cache.get_or_compile(&engine, &wasm).unwrap();
    assert_eq!(status, CacheStatus::Compiled);
    assert_eq!(engine.modules_compiled(), 1);
    assert_eq!(*artifact.key(), key);
    assert!(path.exists(), "written as <hash>.cwasm");
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        format!("{key}.cwasm")
    );
    assert_eq!(key.to_string().len(), 64);
    let module = engine.load("beauty", &artifact).unwrap();
    assert_eq!(
        module.call(Hook::Risk, b"abc", &NoLists).unwrap().bytes,
        b"abc"
    );

    // Second load, through a new cache handle: read from the file, nothing compiled.
    let cache = ArtifactCache::open(&dir).unwrap();
    let (again, status) = cache.get_or_compile(&engine, &wasm).unwrap();
    assert_eq!(status, CacheStatus::Hit);
    assert_eq!(engine.modules_compiled(), 1, "a hit does not compile");
    assert_eq!(again.as_bytes(), artifact.as_bytes());
    let module = engine.load("beauty", &again).unwrap();
    assert_eq!(
        module.call(Hook::Risk, b"def", &NoLists).unwrap().bytes,
        b"def"
    );

    // A second engine with the same settings (a restarted process) hits as well.
    let restarted = Engine::new(&config()).unwrap();
    assert_eq!(restarted.artifact_key(&wasm), key);
    let (_, status) = cache.get_or_compile(&restarted, &wasm).unwrap();
    assert_eq!(status, CacheStatus::Hit);
    assert_eq!(restarted.modules_compiled(), 0);

    // No temporary files are left behind.
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [format!("{key}.cwasm")]);
}

#[test]
fn artifact_key_depends_on_the_wasm_and_the_codegen_settings() {
    let engine = engine();
    let a = wasm(&echo_wat());
    let b = wasm(&misbehaving_wat());
    assert_eq!(engine.artifact_key(&a), engine.artifact_key(&a));
    assert_ne!(engine.artifact_key(&a), engine.artifact_key(&b));
    // Fuel per call and the memory cap do not change the generated code...
    let other_limits = Engine::new(&EngineConfig {
        fuel_per_call: 10,
        memory_limit_bytes: 1 << 20,
        max_instances: 2,
        warm_instances: 0,
    })
    .unwrap();
    assert_eq!(other_limits.artifact_key(&a), engine.artifact_key(&a));
}

#[test]
fn corrupted_artifact_files_are_rejected_not_run() {
    let dir = temp_dir("corrupt");
    let engine = engine();
    let cache = ArtifactCache::open(&dir).unwrap();
    let wasm = wasm(&echo_wat());
    let (artifact, _) = cache.get_or_compile(&engine, &wasm).unwrap();
    let path = cache.path_for(artifact.key());
    let good = fs::read(&path).unwrap();

    // A flipped bit in the code.
    let mut flipped = good.clone();
    let last = flipped.len() - 100;
    flipped[last] ^= 0x01;
    fs::write(&path, &flipped).unwrap();
    let error = cache.get(&engine, &wasm).unwrap_err();
    assert!(
        matches!(error, EngineError::CorruptArtifact { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("checksum mismatch"), "{error}");

    // Truncated, and not an artifact at all.
    for bytes in [&good[..good.len() / 2], &good[..10], b"garbage".as_slice()] {
        fs::write(&path, bytes).unwrap();
        assert!(matches!(
            cache.get(&engine, &wasm),
            Err(EngineError::CorruptArtifact { .. })
        ));
    }

    // get_or_compile replaces a corrupt file.
    let (artifact, status) = cache.get_or_compile(&engine, &wasm).unwrap();
    assert_eq!(status, CacheStatus::Replaced);
    assert_eq!(fs::read(&path).unwrap(), good);
    let module = engine.load("beauty", &artifact).unwrap();
    assert_eq!(
        module.call(Hook::Route, b"x", &NoLists).unwrap().bytes,
        b"x"
    );
}

#[test]
fn an_intact_file_that_is_not_wasmtime_code_fails_to_load() {
    use sha2::{Digest, Sha256};

    let dir = temp_dir("not-code");
    let engine = engine();
    let cache = ArtifactCache::open(&dir).unwrap();
    let wasm = wasm(&echo_wat());
    let key = engine.artifact_key(&wasm);
    // A well-formed cache file whose payload is not a wasmtime artifact.
    let payload = b"\x7fELF definitely not a wasmtime module";
    let mut file = b"WEIRCWA1".to_vec();
    file.extend_from_slice(key.as_bytes());
    file.extend_from_slice(&Sha256::digest(payload));
    file.extend_from_slice(payload);
    fs::write(cache.path_for(&key), file).unwrap();

    let artifact = cache.get(&engine, &wasm).unwrap().unwrap();
    let error = engine.load("beauty", &artifact).unwrap_err();
    assert!(matches!(error, EngineError::Load(_)), "{error:?}");
}

#[test]
fn memory_is_reset_between_calls_even_when_much_of_it_was_dirtied() {
    let engine = engine();
    // `route` grows to 4 MiB and dirties a byte in every 64 KiB page (so both the part
    // of a pool slot that is kept resident and the part that is decommitted are used);
    // `risk` grows the same way and returns the sum of those bytes, which must be 0.
    let module = load(
        &engine,
        "beauty",
        &format!(
            r#"(module
  (memory (export "memory") 1)
  (global (export "input_base") i32 (i32.const 0))
  {PACK}
  (func (export "route") (param i32 i32) (result i64) (local $a i32)
    (drop (memory.grow (i32.const 63)))
    (loop $fill
      (i32.store8 (i32.add (local.get $a) (i32.const 100)) (i32.const 0xff))
      (local.set $a (i32.add (local.get $a) (i32.const 65536)))
      (br_if $fill (i32.lt_u (local.get $a) (i32.const 4194304))))
    (i64.const 0))
  (func (export "risk") (param i32 i32) (result i64) (local $a i32) (local $sum i32)
    (drop (memory.grow (i32.const 63)))
    (loop $scan
      (local.set $sum (i32.add (local.get $sum)
        (i32.load8_u (i32.add (local.get $a) (i32.const 100)))))
      (local.set $a (i32.add (local.get $a) (i32.const 65536)))
      (br_if $scan (i32.lt_u (local.get $a) (i32.const 4194304))))
    (i32.store (i32.const 0) (local.get $sum))
    (call $pack (i32.const 0) (i32.const 4))))"#
        ),
    );
    for _ in 0..3 {
        module.call(Hook::Route, b"", &NoLists).unwrap();
        let out = module.call(Hook::Risk, b"", &NoLists).unwrap();
        assert_eq!(out.bytes, 0i32.to_le_bytes());
    }
}

#[test]
fn wasm_engine_reads_whole_words_and_refuses_a_ragged_output() {
    use weir_compiler::abi::Interner;
    use weir_compiler::evaluate::{Engine as _, EvalFailure, Lists};
    use weir_runtime::evaluator::WasmEngine;

    let engine = engine();
    let module = load(&engine, "beauty", &echo_wat());
    let wasm = WasmEngine { module: &module };
    let lists = Lists::new(&[], Arc::new(Interner::new(&[])));
    let mut input = Vec::new();
    for word in [7i64, -1, i64::MAX] {
        input.extend_from_slice(&word.to_le_bytes());
    }
    assert_eq!(
        wasm.run(Hook::Route, &input, &lists).unwrap(),
        vec![7, -1, i64::MAX]
    );
    let outputs = wasm
        .run_all(&[(Hook::Route, &input), (Hook::Risk, &input[..8])], &lists)
        .unwrap();
    assert_eq!(outputs, vec![vec![7, -1, i64::MAX], vec![7]]);

    // Five bytes are not whole words: the module's fault, named, and nothing panics.
    let failure = wasm.run(Hook::Route, &input[..5], &lists).unwrap_err();
    let EvalFailure::Engine(message) = &failure else {
        panic!("not an engine failure: {failure:?}");
    };
    assert!(
        message.contains("ruleset `beauty` hook `route`")
            && message.contains("5 bytes, not whole words"),
        "{message}"
    );
    let (hook, _) = wasm
        .run_all(&[(Hook::Route, &input), (Hook::Risk, &input[..3])], &lists)
        .unwrap_err();
    assert_eq!(hook, Hook::Risk);
    // The engine is still usable afterwards.
    assert_eq!(wasm.run(Hook::Route, &input[..8], &lists).unwrap(), vec![7]);
}
