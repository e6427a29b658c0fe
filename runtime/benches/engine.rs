//! Per-call overhead of the engine shell: one whole `LoadedModule::call` (new store,
//! instantiate from the pooling allocator, write the input, call, bounds-check and copy
//! the output, drop the instance) on an echo module with a 256-byte input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use weir_runtime::engine::{Engine, EngineConfig, Hook, NoLists};

const ECHO: &str = r#"(module
  (memory (export "memory") 1)
  (global (export "input_base") i32 (i32.const 1024))
  (func (export "promotions") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len)))))"#;

fn per_call(c: &mut Criterion) {
    let engine = Engine::new(&EngineConfig::default()).expect("engine");
    let wasm = wat::parse_str(ECHO).expect("wat");
    let artifact = engine.precompile(&wasm).expect("precompile");
    let module = engine.load("bench", &artifact).expect("load");
    let input = [0x5au8; 256];

    let out = module
        .call(Hook::Promotions, &input, &NoLists)
        .expect("call");
    assert_eq!(out.bytes, input);

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    group.bench_function("call_echo_256b", |b| {
        b.iter(|| {
            module
                .call(Hook::Promotions, black_box(&input), &NoLists)
                .expect("call")
        })
    });
    group.finish();
}

criterion_group!(benches, per_call);
criterion_main!(benches);
