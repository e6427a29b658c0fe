//! The sandbox around compiled rulesets: a fuel budget stops a long evaluation with a
//! clear error naming the ruleset and hook, and the next call on the same engine works;
//! compiled modules import nothing the host does not provide.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use weir_compiler::abi::{encode, Facts, Interner};
use weir_compiler::evaluate::Lists;
use weir_dsl::checked::Value;
use weir_dsl::schema::{ITEM, ORDER};
use weir_runtime::{Engine, EngineConfig, EvalErrorKind, Hook};

const RULES: &str = "ruleset sandbox currency CNY

list vip: string

promotion bulk {
  when count(i in order.items where i.qty > 0) > 3 and sum(i.qty for i in order.items) > 3
  then discount order 5%
}

risk vip_customer {
  when customer.phone in vip
  score 1
}
";

fn order(ruleset: &weir_dsl::checked::Ruleset, lines: usize) -> Facts {
    let item_fields = ruleset.schema.entity(ITEM).unwrap().fields.len();
    let order_fields = ruleset.schema.entity(ORDER).unwrap().fields.len();
    let (qty, _) = ruleset.schema.entity(ITEM).unwrap().field("qty").unwrap();
    let (items, _) = ruleset
        .schema
        .entity(ORDER)
        .unwrap()
        .field("items")
        .unwrap();
    let item = |_| {
        let mut slots = vec![None; item_fields];
        slots[qty] = Some(Value::Int(1));
        Value::Record(ITEM, slots)
    };
    let mut slots = vec![None; order_fields];
    slots[items] = Some(Value::List((0..lines).map(item).collect()));
    Facts {
        order: Some(Value::Record(ORDER, slots)),
        ..Facts::default()
    }
}

fn ruleset() -> weir_dsl::checked::Ruleset {
    let out = weir_dsl::check(&[weir_dsl::SourceText {
        name: "sandbox.weir".into(),
        text: RULES.into(),
    }]);
    out.ruleset.unwrap()
}

#[test]
fn a_tiny_fuel_budget_stops_the_evaluation_and_the_next_call_works() {
    let rs = ruleset();
    let (compiled, wasm) = weir_compiler::build(&rs).unwrap();
    let engine = Engine::new(&EngineConfig {
        fuel_per_call: 20_000,
        ..EngineConfig::default()
    })
    .unwrap();
    let module = engine
        .load("sandbox", &engine.precompile(&wasm).unwrap())
        .unwrap();
    let mut interner = Interner::new(&compiled.manifest.strings);
    let big = encode(&rs, &order(&rs, 5_000), &mut interner).unwrap();
    let error = module
        .call(Hook::Promotions, &big, &Lists::default())
        .unwrap_err();
    assert!(
        matches!(error.kind, EvalErrorKind::OutOfFuel { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("sandbox") && message.contains("promotions") && message.contains("fuel"),
        "{message}"
    );
    let small = encode(&rs, &order(&rs, 5), &mut interner).unwrap();
    let output = module
        .call(Hook::Promotions, &small, &Lists::default())
        .unwrap();
    assert!(!output.bytes.is_empty());
    assert!(output.fuel_used > 0 && output.fuel_used <= 20_000);
}

#[test]
fn a_memory_cap_smaller_than_the_input_is_a_clear_error() {
    let rs = ruleset();
    let (compiled, wasm) = weir_compiler::build(&rs).unwrap();
    let engine = Engine::new(&EngineConfig {
        memory_limit_bytes: 128 * 1024,
        ..EngineConfig::default()
    })
    .unwrap();
    let module = engine
        .load("sandbox", &engine.precompile(&wasm).unwrap())
        .unwrap();
    let mut interner = Interner::new(&compiled.manifest.strings);
    let big = encode(&rs, &order(&rs, 5_000), &mut interner).unwrap();
    let error = module
        .call(Hook::Promotions, &big, &Lists::default())
        .unwrap_err();
    assert!(
        matches!(error.kind, EvalErrorKind::MemoryLimit { .. }),
        "{error}"
    );
    let small = encode(&rs, &order(&rs, 2), &mut interner).unwrap();
    assert!(module
        .call(Hook::Promotions, &small, &Lists::default())
        .is_ok());
}

#[test]
fn compiled_modules_import_only_what_the_host_provides() {
    let rs = ruleset();
    let (_, wasm) = weir_compiler::build(&rs).unwrap();
    let imports: Vec<(String, String)> = wasmparser::Parser::new(0)
        .parse_all(&wasm)
        .filter_map(Result::ok)
        .filter_map(|payload| match payload {
            wasmparser::Payload::ImportSection(reader) => Some(reader),
            _ => None,
        })
        .flat_map(|reader| {
            reader
                .into_imports()
                .filter_map(Result::ok)
                .map(|i| (i.module.to_string(), i.name.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        imports,
        vec![("weir".to_string(), "list_contains".to_string())]
    );
}
