//! The engine benchmark of issue #3: one ruleset (`fixtures/beauty40.weir`, 47 rules over
//! every hook) and one 5-line order, decided side by side by
//!
//! - (a1) weir's WebAssembly guest: `LoadedModule::call` per hook (each call an
//!   evaluation of its own: a warm instance, reset after it), `LoadedModule::call_all`
//!   (the six calls of one evaluation in one instance), and the guest code alone on a
//!   warm wasmtime instance built here with the runtime's settings, never reset (the
//!   runtime resets every instance between evaluations: docs/abi.md, "No state between
//!   evaluations");
//! - (a2) weir's whole path: encode the facts, call every hook, decode and combine
//!   (`weir_compiler::evaluate::evaluate` with `WasmEngine`);
//! - (b) the reference interpreter (`evaluate` with `Interpreter`);
//! - (c) native Rust written by hand (`weir_bench::native`);
//! - (d) the same policy in Rego on regorus; (e) as a ZEN graph on zen-engine.
//!
//! Also: check + build + precompile of a generated 1,000-rule ruleset, artifact load
//! time, module size and fuel per evaluation (printed before the measurements).
//!
//! `cargo bench -p weir-bench --features peers`; figures in docs/benchmarks.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use weir_bench::peers::{Rego, Zen};
use weir_bench::warm::{self, Warm};
use weir_bench::{generate, native, scenario, weir as fixtures};
use weir_compiler::evaluate::{evaluate, Interpreter};
use weir_compiler::interp;
use weir_runtime::evaluator::WasmEngine;
use weir_runtime::{Engine, EngineConfig, Hook};

// The allocator the `weir` binary runs with (server/src/main.rs), so the whole paths
// measured here are the ones `weir eval` and `weir serve` run; every engine, peers
// included, allocates through it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A label per hook call (the SOP hook runs once per event).
fn labels(inputs: &[(interp::Hook, Vec<u8>)]) -> Vec<String> {
    let mut sop = 0;
    inputs
        .iter()
        .map(|(hook, _)| {
            if *hook == interp::Hook::SopTriggers {
                sop += 1;
                format!("sop_triggers#{sop}")
            } else {
                hook.export_name().to_string()
            }
        })
        .collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn engines(c: &mut Criterion) {
    let loaded = fixtures::load().expect("beauty40 checks and builds");
    let order = scenario::order5();
    let (facts, context) = fixtures::facts(&order, &loaded).unwrap();
    let engine = Engine::new(&EngineConfig::default()).unwrap();
    let artifact = engine.precompile(&loaded.wasm).unwrap();
    let module = engine.load("beauty40", &artifact).unwrap();
    let interpreter = Interpreter {
        compiled: &loaded.compiled,
    };
    let wasm_engine = WasmEngine { module: &module };

    // ---- every engine makes the same decisions (asserted once) ----
    let expected = native::decide(&order).summary(&order);
    let run = |engine: &dyn weir_compiler::evaluate::Engine| {
        evaluate(&loaded.compiled, &loaded.ruleset, &facts, &context, engine).unwrap()
    };
    let by_wasm = run(&wasm_engine);
    let by_interpreter = run(&interpreter);
    assert_eq!(by_wasm.raw, by_interpreter.raw);
    assert_eq!(fixtures::summary(&by_wasm, &order), expected, "weir wasm");
    assert_eq!(
        fixtures::summary(&by_interpreter, &order),
        expected,
        "interpreter"
    );
    let mut rego = Rego::new().unwrap();
    let rego_input = Rego::input(&order);
    assert_eq!(
        Rego::summary(&rego.eval(&rego_input).unwrap()).unwrap(),
        expected,
        "regorus"
    );
    let zen = Zen::new().unwrap();
    let zen_input = Zen::input(&order);
    assert_eq!(
        Zen::summary(&zen.eval(&zen_input).unwrap()).unwrap(),
        expected,
        "zen"
    );
    eprintln!("all six engines agree on the benchmark order: {expected:?}");

    // ---- module size, fuel, hook inputs ----
    let (inputs, lists) = fixtures::hook_inputs(&loaded, &facts, &context).unwrap();
    let names = labels(&inputs);
    let mut fuel = 0;
    for ((hook, input), name) in inputs.iter().zip(&names) {
        let out = module.call(*hook, input, &lists).unwrap();
        eprintln!(
            "fuel {name}: {} (input {} bytes, output {} bytes)",
            out.fuel_used,
            input.len(),
            out.bytes.len()
        );
        fuel += out.fuel_used;
    }
    eprintln!(
        "fuel per evaluation: {fuel} over {} hook calls",
        inputs.len()
    );
    eprintln!(
        "beauty40: {} rules, module {} bytes, precompiled artifact {} bytes",
        loaded.ruleset.promotions.len()
            + 1
            + loaded.ruleset.constraints.len()
            + loaded.ruleset.risks.len()
            + loaded.ruleset.sops.len(),
        loaded.wasm.len(),
        artifact.as_bytes().len()
    );

    let hooks: Vec<Hook> = inputs.iter().map(|(hook, _)| *hook).collect();
    let mut warm = Warm::new(
        &warm::runtime_settings(),
        &loaded.wasm,
        lists.clone(),
        &hooks,
    )
    .unwrap();
    for (index, (hook, input)) in inputs.iter().enumerate() {
        warm.write(input).unwrap();
        let packed = warm.call(index, input.len()).unwrap();
        let expected = interp::run(&loaded.compiled.program, *hook, input, &lists).unwrap();
        assert_eq!(warm.output(packed).unwrap(), expected, "warm {hook:?}");
    }

    let mut group = c.benchmark_group("engines");
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(2));

    // (a1) one `LoadedModule::call` per hook call of an evaluation.
    for ((hook, input), name) in inputs.iter().zip(&names) {
        let hook = *hook;
        group.bench_function(BenchmarkId::new("a1_call", name), |b| {
            b.iter(|| module.call(hook, black_box(input), &lists).unwrap())
        });
    }
    group.bench_function("a1_call_all_hooks", |b| {
        b.iter(|| {
            for (hook, input) in &inputs {
                black_box(module.call(*hook, black_box(input), &lists).unwrap());
            }
        })
    });
    // (a1) the six calls as one evaluation makes them: one instance for all.
    let borrowed: Vec<(Hook, &[u8])> = inputs.iter().map(|(h, i)| (*h, i.as_slice())).collect();
    group.bench_function("a1_call_all_one_instance", |b| {
        b.iter(|| module.call_all(black_box(&borrowed), &lists).unwrap())
    });
    // (a1) the guest alone: the hook's input already in a warm instance's memory.
    for (index, ((_, input), name)) in inputs.iter().zip(&names).enumerate() {
        warm.write(input).unwrap();
        group.bench_function(BenchmarkId::new("a1_guest", name), |b| {
            b.iter(|| warm.call(index, black_box(input.len())).unwrap())
        });
    }
    group.bench_function("a1_guest_all_hooks_with_input_copy", |b| {
        b.iter(|| {
            for (index, (_, input)) in inputs.iter().enumerate() {
                warm.write(input).unwrap();
                black_box(warm.call(index, input.len()).unwrap());
            }
        })
    });
    // (a2) the whole path.
    group.bench_function("a2_wasm_whole_path", |b| b.iter(|| run(&wasm_engine)));
    // (b) the reference interpreter, same path.
    group.bench_function("b_interpreter", |b| b.iter(|| run(&interpreter)));
    // (c) the floor.
    group.bench_function("c_native", |b| b.iter(|| native::decide(black_box(&order))));
    // (d) regorus: set the (prebuilt) input, evaluate the decision rule.
    group.bench_function("d_regorus", |b| {
        b.iter(|| rego.eval(black_box(&rego_input)).unwrap())
    });
    // (e) zen-engine: evaluate the compiled graph on the (prebuilt) input.
    group.bench_function("e_zen_engine", |b| {
        b.iter(|| zen.eval(black_box(&zen_input)).unwrap())
    });
    // Where the whole path's time goes besides the calls: encoding the facts (interner,
    // three encodings: one for the rule hooks, one per SOP event), and decoding and
    // combining the raw words into decisions.
    group.bench_function("a2_part_encode_facts", |b| {
        b.iter(|| loaded.prepare(black_box(&facts), &context).unwrap())
    });
    // Decoding and combining, as `evaluate` does it, over the words of one evaluation.
    let prepared = loaded.prepare(&facts, &context).unwrap();
    group.bench_function("a2_part_decode_combine", |b| {
        b.iter(|| {
            loaded
                .decide(&facts, &context, &prepared, black_box(&by_wasm.raw))
                .unwrap()
        })
    });
    // The interpreter on the same hook inputs, without encoding and combination: the
    // counterpart of `a1_guest`.
    group.bench_function("b_interpreter_hooks_only", |b| {
        b.iter(|| {
            for (hook, input) in &inputs {
                black_box(
                    interp::run(&loaded.compiled.program, *hook, black_box(input), &lists).unwrap(),
                );
            }
        })
    });
    group.finish();
}

fn build(c: &mut Criterion) {
    let engine = Engine::new(&EngineConfig::default()).unwrap();
    let sources = generate::ruleset(1_000);
    let bytes: usize = sources.iter().map(|s| s.text.len()).sum();

    // Where the time goes, once (median of 3).
    let mut check = Vec::new();
    let mut build = Vec::new();
    let mut precompile = Vec::new();
    let mut artifact = None;
    let mut wasm_len = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let out = weir_dsl::check(&sources);
        check.push(t.elapsed());
        let rs = out.ruleset.expect("the generated ruleset checks");
        let t = Instant::now();
        let (_, wasm) = weir_compiler::build(&rs).unwrap();
        build.push(t.elapsed());
        let t = Instant::now();
        artifact = Some(engine.precompile(&wasm).unwrap());
        precompile.push(t.elapsed());
        wasm_len = wasm.len();
    }
    let artifact = artifact.unwrap();
    eprintln!(
        "1,000 rules ({} KiB of source): check {:?}, build {:?}, precompile {:?}; module {} bytes, artifact {} bytes",
        bytes / 1024,
        median(check),
        median(build),
        median(precompile),
        wasm_len,
        artifact.as_bytes().len()
    );

    let loaded = fixtures::load().unwrap();
    let small = engine.precompile(&loaded.wasm).unwrap();

    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("compile_precompile_1000_rules", |b| {
        b.iter(|| {
            let rs = weir_dsl::check(black_box(&sources)).ruleset.unwrap();
            let (_, wasm) = weir_compiler::build(&rs).unwrap();
            engine.precompile(&wasm).unwrap()
        })
    });
    group.bench_function("compile_precompile_beauty40", |b| {
        b.iter(|| {
            let loaded = fixtures::load().unwrap();
            engine.precompile(&loaded.wasm).unwrap()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("load");
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("load_beauty40", |b| {
        b.iter(|| engine.load("beauty40", black_box(&small)).unwrap())
    });
    group.bench_function("load_1000_rules", |b| {
        b.iter(|| engine.load("generated", black_box(&artifact)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, engines, build);
criterion_main!(benches);
