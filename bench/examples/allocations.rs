//! Heap allocations per evaluation of the benchmark order: the whole path with each
//! engine, and its host-side parts (encoding the facts, decoding and combining the
//! outcomes). Counted with dhat's allocator, so the figures are exact and repeatable
//! where the criterion times move by ±20% between runs on this machine; an allocation
//! costs tens of nanoseconds, so fewer of them is a speed-up the times cannot resolve.
//!
//! `cargo run --release -p weir-bench --example allocations`
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use weir_bench::{scenario, weir as fixtures};
use weir_compiler::evaluate::{self, Interpreter};
use weir_runtime::engine::{Engine, EngineConfig};
use weir_runtime::evaluator::WasmEngine;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const EVALUATIONS: u64 = 1_000;

/// Allocations and bytes allocated per call of `f`, after one call to warm caches
/// (the warm-instance pool, lazily built tables).
fn per_call(mut f: impl FnMut()) -> (u64, u64) {
    f();
    let before = dhat::HeapStats::get();
    for _ in 0..EVALUATIONS {
        f();
    }
    let after = dhat::HeapStats::get();
    (
        (after.total_blocks - before.total_blocks) / EVALUATIONS,
        (after.total_bytes - before.total_bytes) / EVALUATIONS,
    )
}

fn main() {
    // Testing mode: counts without writing a profile file on exit.
    let _profiler = dhat::Profiler::builder().testing().build();
    let loaded = fixtures::load().unwrap();
    let order = scenario::order5();
    let (facts, context) = fixtures::facts(&order, &loaded).unwrap();
    let engine = Engine::new(&EngineConfig::default()).unwrap();
    let artifact = engine.precompile(&loaded.wasm).unwrap();
    let module = engine.load("beauty40", &artifact).unwrap();
    let wasm = WasmEngine { module: &module };
    let interpreter = Interpreter {
        compiled: &loaded.compiled,
    };
    let run = |engine: &dyn evaluate::Engine| loaded.evaluate(&facts, &context, engine).unwrap();
    let decided = run(&wasm);
    let prepared = loaded.prepare(&facts, &context).unwrap();

    let rows = [
        ("weir WASM, whole path", per_call(|| drop(run(&wasm)))),
        (
            "interpreter, whole path",
            per_call(|| drop(run(&interpreter))),
        ),
        (
            "part: encode the facts (prepare)",
            per_call(|| drop(loaded.prepare(&facts, &context).unwrap())),
        ),
        (
            "part: decode and combine",
            per_call(|| {
                drop(
                    loaded
                        .decide(&facts, &context, &prepared, &decided.raw)
                        .unwrap(),
                )
            }),
        ),
    ];
    println!("| what | allocations | bytes allocated |");
    println!("| --- | --- | --- |");
    for (what, (blocks, bytes)) in rows {
        println!("| {what} | {blocks} | {bytes} |");
    }
}
