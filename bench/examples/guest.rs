//! The benchmark ruleset's guest code alone (the six hook calls of one evaluation on a
//! warm instance, inputs already in memory) against native Rust, under the runtime's
//! compiler settings and with wasmtime's inliner turned on (`Inlining::Yes`, off in
//! wasmtime by default and in weir-runtime). A quick check of the guest without the
//! peers' half-hour build; the criterion bench (`benches/engines.rs`) is the reference.
//!
//! `cargo run --release -p weir-bench --example guest`
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use wasmtime::Inlining;
use weir_bench::warm::{self, Warm};
use weir_bench::{native, scenario, weir as fixtures};
use weir_compiler::interp::{self, Hook};

const ROUNDS: usize = 15;
const CALLS_PER_ROUND: u32 = 20_000;

/// The median over `ROUNDS` of the mean time of one `f()`.
fn time(mut f: impl FnMut()) -> Duration {
    let mut rounds: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS_PER_ROUND {
                f();
            }
            start.elapsed() / CALLS_PER_ROUND
        })
        .collect();
    rounds.sort();
    rounds[ROUNDS / 2]
}

fn main() {
    let loaded = fixtures::load().unwrap();
    let order = scenario::order5();
    let (facts, context) = fixtures::facts(&order, &loaded).unwrap();
    let (inputs, lists) = fixtures::hook_inputs(&loaded, &facts, &context).unwrap();
    let hooks: Vec<Hook> = inputs.iter().map(|(hook, _)| *hook).collect();

    let native = time(|| {
        black_box(native::decide(black_box(&order)));
    });
    println!("native Rust: {native:.2?}");

    let mut inlined = warm::runtime_settings();
    inlined.compiler_inlining(Inlining::Yes);
    for (label, config) in [
        ("runtime settings", warm::runtime_settings()),
        ("with Inlining::Yes", inlined),
    ] {
        let started = Instant::now();
        let mut warm = Warm::new(&config, &loaded.wasm, lists.clone(), &hooks).unwrap();
        let compiled = started.elapsed();
        let mut total = Duration::ZERO;
        let mut per_call = Vec::new();
        let mut fuel = 0;
        for (index, (hook, input)) in inputs.iter().enumerate() {
            warm.write(input).unwrap();
            let before = warm.fuel().unwrap();
            let packed = warm.call(index, input.len()).unwrap();
            fuel += before - warm.fuel().unwrap();
            // Same words as the reference interpreter, or the timing means nothing.
            let expected = interp::run(&loaded.compiled.program, *hook, input, &lists).unwrap();
            assert_eq!(warm.output(packed).unwrap(), expected, "{label}: {hook:?}");
            let t = time(|| {
                black_box(warm.call(index, black_box(input.len())).unwrap());
            });
            total += t;
            per_call.push(format!("{} {t:.0?}", hook.export_name()));
        }
        println!(
            "{label}: guest {total:.2?} ({:.2}× native), fuel {fuel}, compiled in {compiled:.1?}\n  {}",
            total.as_secs_f64() / native.as_secs_f64(),
            per_call.join(", ")
        );
    }
}
