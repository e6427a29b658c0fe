//! A loop over one part of the benchmark order's evaluation for a sampling profiler, so
//! that where the time goes can be read off `perf report` rather than guessed:
//!
//! ```sh
//! cargo build --release -p weir-bench --example profile
//! perf record -g target/release/examples/profile whole      # or: prepare, decide
//! perf report --no-children --sort sym
//! ```
//!
//! `whole` is the WASM whole path (`evaluate` with `WasmEngine`), `prepare` the encoding
//! of the facts, `decide` the decoding and combining. The parts build no wasmtime engine,
//! so they also run under `valgrind --tool=callgrind`, whose instruction counts (unlike
//! times on this machine) repeat exactly:
//!
//! ```sh
//! valgrind --tool=callgrind --toggle-collect='weir_compiler::evaluate::prepare' \
//!     target/release/examples/profile prepare
//! ```
//!
//! It prints the mean time per evaluation, which is only a sanity check: criterion's
//! figures are the engines bench's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;
use weir_bench::{scenario, weir as fixtures};
use weir_compiler::evaluate::Interpreter;
use weir_runtime::engine::{Engine, EngineConfig};
use weir_runtime::evaluator::WasmEngine;

// The server's allocator, as in the engines bench.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVALUATIONS: u32 = 300_000;

fn main() {
    let part = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "whole".to_owned());
    let loaded = fixtures::load().unwrap();
    let order = scenario::order5();
    let (facts, context) = fixtures::facts(&order, &loaded).unwrap();
    let prepare = || loaded.prepare(&facts, &context).unwrap();
    // The raw words `decide` combines, from the interpreter (the module's are the same,
    // word for word): the parts need no wasmtime, so they also run under valgrind,
    // which cannot reserve the instance pool.
    let interpreter = Interpreter {
        compiled: &loaded.compiled,
    };
    let raw = loaded.evaluate(&facts, &context, &interpreter).unwrap().raw;
    let prepared = prepare();
    let decide = || loaded.decide(&facts, &context, &prepared, &raw).unwrap();
    let whole: Box<dyn Fn()> = if part == "whole" {
        let engine = Engine::new(&EngineConfig::default()).unwrap();
        let artifact = engine.precompile(&loaded.wasm).unwrap();
        let module = engine.load("beauty40", &artifact).unwrap();
        let (loaded, facts, context) = (&loaded, &facts, &context);
        Box::new(move || {
            let wasm = WasmEngine { module: &module };
            drop(black_box(loaded.evaluate(facts, context, &wasm).unwrap()));
        })
    } else {
        Box::new(|| {})
    };
    let run: &dyn Fn() = match part.as_str() {
        "whole" => &*whole,
        "prepare" => &|| drop(black_box(prepare())),
        "decide" => &|| drop(black_box(decide())),
        other => {
            eprintln!("profile: unknown part `{other}`; use whole, prepare or decide");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    for _ in 0..EVALUATIONS {
        run();
    }
    println!("{part}: {:?} per evaluation", start.elapsed() / EVALUATIONS);
}
