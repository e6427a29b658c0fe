//! The WebAssembly code generator against the reference interpreter: every emitted
//! module validates, and for every hook the module's output words equal
//! `interp::run`'s, or both fail (a trap ⇔ an interpreter error). Modules run in a
//! tiny local wasmtime harness (fuel, input at `input_base`, output read back).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use weir_compiler::abi::{self, Facts, Interner, MAGIC};
use weir_compiler::interp::{self, Hook, HostLists};
use weir_compiler::ir::*;
use weir_compiler::numeric::{ABSENT, SCALE};
use weir_compiler::Compiled;
use weir_dsl::checked::{Ruleset, Value};
use weir_dsl::schema;
use weir_dsl::types::{Dimension, Type};
use weir_dsl::{check, SourceText};

// ------------------------------------------------------------------------ harness

/// Far more than any test needs: running out would be a harness problem, and is
/// reported as one rather than as a trap.
const FUEL: u64 = 200_000_000;

fn engine() -> &'static wasmtime::Engine {
    static ENGINE: OnceLock<wasmtime::Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        wasmtime::Engine::new(&config).unwrap()
    })
}

/// Runtime list contents for one evaluation.
#[derive(Clone, Debug, Default)]
struct Lists(HashMap<u32, HashSet<i64>>);

impl Lists {
    fn insert(&mut self, list: u32, value: i64) {
        self.0.entry(list).or_default().insert(value);
    }
}

impl HostLists for Lists {
    fn contains(&self, list: u32, value: i64) -> bool {
        self.0.get(&list).is_some_and(|m| m.contains(&value))
    }
}

struct Wasm {
    module: wasmtime::Module,
    bytes: usize,
    /// Fuel the last call used (about one unit per instruction).
    fuel_used: std::sync::atomic::AtomicU64,
}

/// A trap, with wasmtime's description (shown when the engines disagree).
#[derive(Debug)]
#[allow(dead_code)]
struct Failure(String);

impl Wasm {
    fn new(bytes: &[u8]) -> Wasm {
        weir_compiler::wasm::validate(bytes).unwrap();
        Wasm {
            module: wasmtime::Module::new(engine(), bytes).unwrap(),
            bytes: bytes.len(),
            fuel_used: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn run(&self, hook: Hook, input: &[u8], lists: &Lists) -> Result<Vec<i64>, Failure> {
        self.run_at(hook, input, lists, None)
    }

    /// Runs a hook with the input at `input_base`, or at `at` when given.
    fn run_at(
        &self,
        hook: Hook,
        input: &[u8],
        lists: &Lists,
        at: Option<u32>,
    ) -> Result<Vec<i64>, Failure> {
        let mut linker = wasmtime::Linker::<Lists>::new(engine());
        linker
            .func_wrap(
                "weir",
                "list_contains",
                |caller: wasmtime::Caller<'_, Lists>, list: i32, value: i64| -> i32 {
                    i32::from(caller.data().contains(list as u32, value))
                },
            )
            .unwrap();
        let mut store = wasmtime::Store::new(engine(), lists.clone());
        store.set_fuel(FUEL).unwrap();
        let instance = linker.instantiate(&mut store, &self.module).unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        let base = instance
            .get_global(&mut store, "input_base")
            .unwrap()
            .get(&mut store)
            .i32()
            .unwrap() as u32;
        let ptr = at.unwrap_or(base);
        let end = ptr as usize + input.len();
        if end > memory.data_size(&store) {
            let pages = (end - memory.data_size(&store)).div_ceil(65536);
            memory.grow(&mut store, pages as u64).unwrap();
        }
        memory.write(&mut store, ptr as usize, input).unwrap();
        let f = instance
            .get_typed_func::<(i32, i32), i64>(&mut store, hook.export_name())
            .unwrap();
        let result = f.call(&mut store, (ptr as i32, input.len() as i32));
        self.fuel_used.store(
            FUEL - store.get_fuel().unwrap(),
            std::sync::atomic::Ordering::Relaxed,
        );
        match result {
            Ok(packed) => {
                let packed = packed as u64;
                let (out_ptr, out_len) = ((packed >> 32) as usize, (packed & 0xFFFF_FFFF) as usize);
                assert_eq!(out_len % 8, 0, "output length {out_len} is not whole words");
                assert_eq!(out_ptr % 8, 0, "output at {out_ptr} is not aligned");
                assert!(
                    out_ptr >= end,
                    "output at {out_ptr} overlaps the input ending at {end}"
                );
                let mut bytes = vec![0u8; out_len];
                memory.read(&store, out_ptr, &mut bytes).unwrap();
                Ok(bytes
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect())
            }
            Err(e) => {
                let trap = e.downcast_ref::<wasmtime::Trap>().copied();
                assert_ne!(
                    trap,
                    Some(wasmtime::Trap::OutOfFuel),
                    "the harness's fuel ran out"
                );
                assert!(
                    trap.is_some(),
                    "a failure that is not a trap: {e:?} (hook {})",
                    hook.export_name()
                );
                Err(Failure(format!("{e:?}")))
            }
        }
    }
}

/// Both engines, every hook: the same words, or both stop.
#[track_caller]
fn same_on_every_hook(compiled: &Compiled, wasm: &Wasm, input: &[u8], lists: &Lists) {
    for hook in Hook::ALL {
        let expected = interp::run(&compiled.program, hook, input, lists);
        let got = wasm.run(hook, input, lists);
        match (&expected, &got) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "hook {}", hook.export_name()),
            (Err(_), Err(_)) => {}
            _ => panic!(
                "hook {}: interpreter {expected:?}, wasm {got:?}",
                hook.export_name()
            ),
        }
    }
}

/// Like `same_on_every_hook`, returning the interpreter's results for assertions.
#[track_caller]
fn both(
    compiled: &Compiled,
    wasm: &Wasm,
    input: &[u8],
    lists: &Lists,
) -> Vec<Result<Vec<i64>, interp::Trap>> {
    same_on_every_hook(compiled, wasm, input, lists);
    Hook::ALL
        .iter()
        .map(|hook| interp::run(&compiled.program, *hook, input, lists))
        .collect()
}

// ------------------------------------------------------------------------ rulesets

fn ruleset(text: &str) -> Ruleset {
    let out = check(&[SourceText {
        name: "t.weir".into(),
        text: text.to_string(),
    }]);
    assert!(
        !out.has_errors(),
        "{:#?}",
        out.diagnostics
            .iter()
            .filter(|d| d.severity() == weir_dsl::Severity::Error)
            .collect::<Vec<_>>()
    );
    out.ruleset.unwrap()
}

struct Built {
    ruleset: Ruleset,
    compiled: Compiled,
    wasm: Wasm,
}

fn manifest_bytes(built: &Built) -> usize {
    weir_compiler::wasm::manifest::encode(&built.compiled.manifest)
        .unwrap()
        .len()
}

fn build(text: &str) -> Built {
    let ruleset = ruleset(text);
    let (compiled, bytes) = weir_compiler::build(&ruleset).unwrap();
    Built {
        wasm: Wasm::new(&bytes),
        ruleset,
        compiled,
    }
}

const BEAUTY: &str = include_str!("../../rulesets/beauty/rules.weir");
const RICH: &str = include_str!("wasm_rulesets/rich.weir");

fn rich() -> &'static Built {
    static RICH_BUILT: OnceLock<Built> = OnceLock::new();
    RICH_BUILT.get_or_init(|| build(RICH))
}

// ------------------------------------------------------------------------ facts

/// A record of `entity` with the named fields set (others take their defaults).
fn rec(r: &Ruleset, entity: usize, fields: &[(&str, Value)]) -> Value {
    let def = r.schema.entity(entity).unwrap();
    let mut slots = vec![None; def.fields.len()];
    for (name, value) in fields {
        let (i, _) = def
            .field(name)
            .unwrap_or_else(|| panic!("no field {}.{name}", def.name));
        slots[i] = Some(value.clone());
    }
    Value::Record(entity, slots)
}

/// An enum value of a field, by variant name.
fn variant(r: &Ruleset, entity: usize, field: &str, name: &str) -> Value {
    let (_, def) = r.schema.entity(entity).unwrap().field(field).unwrap();
    let Type::Enum(id) = def.ty.strip_optional() else {
        panic!("{field} is not an enum")
    };
    Value::Enum(*id, r.schema.enums[*id].variant(name).unwrap())
}

fn s(text: &str) -> Value {
    Value::String(text.to_string())
}

fn money(yuan: i64) -> Value {
    Value::Money(yuan * 100)
}

fn dec(millionths: i64) -> Value {
    Value::Decimal(millionths)
}

fn qty(millionths: i64, d: Dimension) -> Value {
    Value::Quantity(millionths, d)
}

/// Encodes facts and runtime-list contents (list index → members as values).
fn encode(
    built: &Built,
    facts: &Facts,
    lists: &[(usize, Vec<Value>)],
) -> Result<(Vec<u8>, Lists), abi::EncodeError> {
    let mut interner = Interner::new(&built.compiled.manifest.strings);
    let input = abi::encode(&built.ruleset, facts, &mut interner)?;
    let mut out = Lists::default();
    for (list, values) in lists {
        for value in values {
            let member = match value {
                Value::String(s) => interner.intern(s),
                Value::Int(v) | Value::Decimal(v) | Value::Money(v) => *v,
                Value::Enum(_, v) => i64::from(*v),
                other => panic!("list member {other:?}"),
            };
            out.insert(*list as u32, member);
        }
    }
    Ok((input, out))
}

fn list_index(r: &Ruleset, name: &str) -> usize {
    r.lists.iter().position(|l| l.name == name).unwrap()
}

/// Runs every test block of a ruleset on both engines (every hook, every SOP event).
fn test_blocks_agree(built: &Built) -> usize {
    let mut compared = 0;
    for test in &built.ruleset.tests {
        let mut facts = weir_compiler::testing::facts_of(test, &built.compiled);
        for event in 0..schema::EVENTS.len() as i64 {
            facts.event = event;
            let (input, lists) = encode(built, &facts, &test.lists).unwrap();
            same_on_every_hook(&built.compiled, &built.wasm, &input, &lists);
            compared += 1;
        }
    }
    compared
}

// ------------------------------------------------------------------------ structure

fn imports_and_exports(bytes: &[u8]) -> (Vec<String>, Vec<String>) {
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.unwrap() {
            wasmparser::Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.unwrap();
                    imports.push(format!("{}.{}", import.module, import.name));
                }
            }
            wasmparser::Payload::ExportSection(reader) => {
                for export in reader {
                    exports.push(export.unwrap().name.to_string());
                }
            }
            wasmparser::Payload::StartSection { .. } => panic!("a start function"),
            _ => {}
        }
    }
    (imports, exports)
}

#[test]
fn modules_validate_export_every_hook_and_import_only_what_they_use() {
    for (text, uses_lists) in [(BEAUTY, true), (RICH, true), (EMPTY, false), (TRAPS, false)] {
        let r = ruleset(text);
        let (compiled, bytes) = weir_compiler::build(&r).unwrap();
        weir_compiler::wasm::validate(&bytes).unwrap();
        wasmparser::Validator::new().validate_all(&bytes).unwrap();
        let (imports, exports) = imports_and_exports(&bytes);
        if uses_lists {
            assert_eq!(imports, vec!["weir.list_contains".to_string()]);
        } else {
            assert!(imports.is_empty(), "{imports:?}");
        }
        for name in [
            "memory",
            "input_base",
            "promotions",
            "route",
            "constraints",
            "risk",
            "sop_triggers",
            "state_in_ptr",
            "state_limit",
            "state_out_base",
            "state_out_ptr",
        ] {
            assert!(exports.iter().any(|e| e == name), "{name} missing");
        }
        assert_eq!(exports.len(), 11, "{exports:?}");
        let manifest = weir_compiler::wasm::read_manifest(&bytes).unwrap();
        assert_eq!(manifest, compiled.manifest);
    }
}

#[test]
fn manifest_section_is_versioned_json() {
    let r = ruleset(BEAUTY);
    let (_, bytes) = weir_compiler::build(&r).unwrap();
    let mut section = None;
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        if let wasmparser::Payload::CustomSection(c) = payload.unwrap() {
            if c.name() == "weir.manifest" {
                section = Some(c.data().to_vec());
            }
        }
    }
    let section = section.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&section).unwrap();
    assert_eq!(json["format"], "weir.manifest");
    assert_eq!(json["version"], 2);
    assert_eq!(json["ruleset"], "beauty_flagship");
    assert_eq!(json["decide"][0], "reject");
    assert_eq!(
        json["promotions"][0]["actions"][0]["kind"],
        "discount_order"
    );
    assert_eq!(json["velocities"][0]["kind"], "orders");
    assert_eq!(json["velocities"][0]["key_path"], "customer.device");
    let newer = br#"{"format":"weir.manifest","version":3}"#;
    assert!(matches!(
        weir_compiler::wasm::manifest::decode(newer),
        Err(weir_compiler::wasm::ManifestError::Version { version: 3, .. })
    ));
    let older = br#"{"format":"weir.manifest","version":0}"#;
    assert!(matches!(
        weir_compiler::wasm::manifest::decode(older),
        Err(weir_compiler::wasm::ManifestError::Version { version: 0, .. })
    ));
    // Version 1 had no counter `kind`: every counter counted orders.
    let mut v1 = json.clone();
    v1["version"] = 1.into();
    for need in v1["velocities"].as_array_mut().unwrap() {
        need.as_object_mut().unwrap().remove("kind");
    }
    let read = weir_compiler::wasm::manifest::decode(&serde_json::to_vec(&v1).unwrap()).unwrap();
    let written = weir_compiler::wasm::manifest::decode(&section).unwrap();
    assert_eq!(read, written);
    assert!(read
        .velocities
        .iter()
        .all(|need| need.kind == weir_compiler::manifest::CounterKind::Orders));
}

const COUNTERS: &str = r#"ruleset counters currency CNY

risk busy_address {
  when orders(order.address, 30 d) >= 10
  score 10 reason "many orders to one address"
}

risk many_accounts {
  when customers(order.address, 30 d) >= 4
  score 40 reason "many accounts at one address"
}

risk device {
  when orders(customer.device, 1 h) > 5
  score 1
}

test "four accounts, three orders" {
  given { order: { address: "a-1" } }
  counter customers(order.address, 30 d) = 4
  counter orders(order.address, 30 d) = 3
  expect risk score 40
  expect fired many_accounts
  expect not fired busy_address
}

test "three accounts, ten orders" {
  given { order: { address: "a-1" } }
  counter customers(order.address, 30 d) = 3
  counter orders(order.address, 30 d) = 10
  expect risk score 10
  expect fired busy_address
  expect not fired many_accounts
}
"#;

#[test]
fn customers_and_orders_counters_are_separate_slots_on_both_engines() {
    use weir_compiler::manifest::CounterKind;
    let built = build(COUNTERS);
    let needs: Vec<(CounterKind, &str, i64)> = built
        .compiled
        .manifest
        .velocities
        .iter()
        .map(|n| (n.kind, n.key_path.as_str(), n.window_seconds))
        .collect();
    assert_eq!(
        needs,
        vec![
            (CounterKind::Orders, "order.address", 2_592_000),
            (CounterKind::Customers, "order.address", 2_592_000),
            (CounterKind::Orders, "customer.device", 3600),
        ]
    );
    let bytes = weir_compiler::build(&built.ruleset).unwrap().1;
    assert_eq!(
        weir_compiler::wasm::read_manifest(&bytes).unwrap(),
        built.compiled.manifest
    );
    assert!(test_blocks_agree(&built) > 0);
    // Slot by slot: only the customers slot (1) at 4 fires `many_accounts`.
    let r = &built.ruleset;
    for (counters, score) in [
        (vec![0, 4, 0], 40),
        (vec![4, 3, 0], 0),
        (vec![10, 4, 6], 51),
    ] {
        let facts = Facts {
            order: Some(rec(r, schema::ORDER, &[("address", s("a-1"))])),
            counters,
            ..Facts::default()
        };
        let (input, lists) = encode(&built, &facts, &[]).unwrap();
        let results = both(&built.compiled, &built.wasm, &input, &lists);
        let risk = Hook::ALL.iter().position(|h| *h == Hook::Risk).unwrap();
        let words = results[risk].as_ref().unwrap();
        // `n`, then `fired, points` per rule, then the total.
        assert_eq!(words[1 + 2 * words[0] as usize], score, "{words:?}");
    }
}

// ------------------------------------------------------------------------ beauty

#[test]
fn beauty_flagship_agrees_and_reports_its_size() {
    let built = build(BEAUTY);
    println!(
        "beauty_flagship: {} bytes of WebAssembly ({} of them the manifest; {} IR locals)",
        built.wasm.bytes,
        manifest_bytes(&built),
        built.compiled.program.locals
    );
    assert!(built.wasm.bytes <= 16 * 1024, "{} bytes", built.wasm.bytes);
    assert!(test_blocks_agree(&built) > 0);

    let r = &built.ruleset;
    let serum = |n: i64, price: i64| {
        rec(
            r,
            schema::ITEM,
            &[
                ("sku", s("SERUM-30")),
                ("category", s("skincare")),
                ("qty", Value::Int(n)),
                ("price", money(price)),
                ("liquid_ml", qty(30_000_000, Dimension::Volume)),
                ("flammable", Value::Bool(true)),
            ],
        )
    };
    let lipstick = rec(
        r,
        schema::ITEM,
        &[
            ("sku", s("LIP-1")),
            ("category", s("makeup")),
            ("qty", Value::Int(1)),
            ("price", money(199)),
            ("battery_wh", qty(150_000_000, Dimension::Energy)),
        ],
    );
    let location = |id: &str, kind: &str, km: i64| {
        rec(
            r,
            schema::LOCATION,
            &[
                ("id", s(id)),
                ("kind", variant(r, schema::LOCATION, "kind", kind)),
                ("distance", qty(km * 1_000_000_000, Dimension::Distance)),
                ("distance_km", dec(km * SCALE)),
                ("eta_hours", dec(2_500_000)),
                ("margin_pct", dec(31_000_000)),
                ("cost_coefficient", dec(1_200_000)),
            ],
        )
    };
    let blocked = list_index(r, "blocked_devices");
    let mut max_fuel = [0u64; 5];
    for (tier, channel, pickup, device, counter) in [
        ("gold", "miniapp", None, Some("d-1"), 0),
        ("silver", "store", Some("S-9"), Some("d-2"), 9),
        ("basic", "tmall", None, None, 6),
        ("black", "jd", Some("W-1"), Some("d-3"), 2),
    ] {
        let facts = Facts {
            order: Some(rec(
                r,
                schema::ORDER,
                &[
                    ("channel", s(channel)),
                    (
                        "items",
                        Value::List(vec![serum(2, 160), lipstick.clone(), serum(1, 90)]),
                    ),
                    ("pickup_store", pickup.map_or(Value::None, s)),
                ],
            )),
            customer: Some(rec(
                r,
                schema::CUSTOMER,
                &[
                    ("tier", variant(r, schema::CUSTOMER, "tier", tier)),
                    ("device", device.map_or(Value::None, s)),
                ],
            )),
            now: 1_762_790_400,
            location: Some(location("S-9", "store", 3)),
            locations: vec![
                location("W-1", "warehouse", 400),
                location("S-9", "store", 3),
                location("S-10", "store", 45),
                location("F-1", "front_warehouse", 8),
            ],
            shipment: Some(rec(
                r,
                schema::SHIPMENT,
                &[("items", Value::List(vec![serum(1, 160), lipstick.clone()]))],
            )),
            carrier: None,
            event: 2,
            counters: vec![counter],
        };
        for members in [vec![], vec![s("d-2"), s("d-3")]] {
            let (input, lists) = encode(&built, &facts, &[(blocked, members)]).unwrap();
            let results = both(&built.compiled, &built.wasm, &input, &lists);
            assert!(results.iter().all(Result::is_ok), "{results:?}");
            for hook in Hook::ALL {
                built.wasm.run(hook, &input, &lists).unwrap();
                let fuel = built
                    .wasm
                    .fuel_used
                    .load(std::sync::atomic::Ordering::Relaxed);
                max_fuel[hook as usize] = max_fuel[hook as usize].max(fuel);
            }
        }
    }
    println!("beauty_flagship: most fuel per call, by hook: {max_fuel:?}");
    assert!(max_fuel.iter().all(|f| *f < 20_000), "{max_fuel:?}");
}

#[test]
fn a_forty_rule_ruleset_stays_small() {
    let mut text = String::from(
        "ruleset forty currency CNY\n\
         attribute customer.tier: enum(basic, silver, gold, black) = basic\n\
         attribute item.flammable: bool = false\n\
         attribute item.liquid_ml: volume = 0 ml\n\
         list blocked_devices: string\n",
    );
    for i in 0..16 {
        text.push_str(&format!(
            "promotion p{i} {{\n  priority {i}\n  when order.channel in [\"tmall\", \"c{i}\"] and order.subtotal >= ¥{}\n  then discount items where item.category == \"cat{i}\" by {}%\n  then gift \"G{i}\" qty count(item in order.items where item.qty > {i})\n}}\n",
            100 + i,
            1 + i % 9
        ));
    }
    for i in 0..8 {
        text.push_str(&format!(
            "constraint c{i} {{\n  when any(item in shipment.items where item.flammable and item.liquid_ml > {i} ml)\n  forbid mode air\n}}\n"
        ));
    }
    for i in 0..12 {
        text.push_str(&format!(
            "risk r{i} {{\n  when orders(customer.device, {} h) > {i} or customer.device in blocked_devices\n  score {}\n}}\n",
            i + 1,
            5 + i
        ));
    }
    text.push_str(
        "decide risk {\n  score >= 80 => reject\n  score >= 50 => review\n  else => accept\n}\n",
    );
    for i in 0..4 {
        text.push_str(&format!(
            "sop s{i} {{\n  on shipment.assigned when location.kind == store and any(item in shipment.items where item.liquid_ml > {i} ml)\n  step a role picker within 15 min\n}}\n"
        ));
    }
    let built = build(&text);
    let rules = 16 + 8 + 12 + 4;
    println!(
        "{rules}-rule ruleset: {} bytes of WebAssembly ({} of them the manifest)",
        built.wasm.bytes,
        manifest_bytes(&built)
    );
    assert!(built.wasm.bytes <= 64 * 1024, "{} bytes", built.wasm.bytes);
    let facts = Facts::default();
    let (input, lists) = encode(&built, &facts, &[]).unwrap();
    same_on_every_hook(&built.compiled, &built.wasm, &input, &lists);
}

// ------------------------------------------------------------------------ rich

/// A varied, hand-written order for the rich ruleset.
fn rich_facts(r: &Ruleset, variant_no: i64) -> Facts {
    let item = |sku: &str, cat: &str, n: i64, price: i64, flammable: bool, ml: i64| {
        rec(
            r,
            schema::ITEM,
            &[
                ("sku", s(sku)),
                ("category", s(cat)),
                ("qty", Value::Int(n)),
                ("price", Value::Money(price)),
                ("flammable", Value::Bool(flammable)),
                ("liquid_ml", qty(ml, Dimension::Volume)),
                ("markup", Value::Percent(125_000)),
                ("ratio", dec(333_333)),
                ("battery_wh", qty(ml * 4, Dimension::Energy)),
            ],
        )
    };
    let items = vec![
        item("SERUM-30", "skincare", 2, 16_000, true, 30_000_000),
        item("SERUM-30", "skincare", 1 + variant_no, 9_999, false, 0),
        item("LIP", "makeup", 3, 12_345, variant_no % 2 == 0, 50_000_000),
    ];
    let tiers = ["basic", "silver", "gold", "black"];
    let location = |id: &str, kind: &str, km: i64, cold: bool| {
        rec(
            r,
            schema::LOCATION,
            &[
                ("id", s(id)),
                ("kind", variant(r, schema::LOCATION, "kind", kind)),
                ("distance", qty(km * 1_000_000_000, Dimension::Distance)),
                ("distance_km", dec(km * SCALE)),
                ("eta_hours", dec(1_750_000)),
                ("margin_pct", dec(22_500_000)),
                ("cost_coefficient", dec(800_000)),
                ("stock_turnover", dec(km * 100_000)),
                ("cold_chain", Value::Bool(cold)),
            ],
        )
    };
    Facts {
        order: Some(rec(
            r,
            schema::ORDER,
            &[
                (
                    "channel",
                    s(["tmall", "jd", "miniapp", "store"][variant_no as usize % 4]),
                ),
                ("items", Value::List(items.clone())),
                ("placed_at", Value::Time(1_762_790_000 - variant_no * 1000)),
                (
                    "promised_at",
                    if variant_no % 3 == 0 {
                        Value::None
                    } else {
                        Value::Time(1_762_790_400 + variant_no * 3000)
                    },
                ),
                (
                    "pickup_store",
                    if variant_no % 2 == 0 {
                        s("S1")
                    } else {
                        Value::None
                    },
                ),
                (
                    "coupon",
                    if variant_no == 1 {
                        s("VIP")
                    } else {
                        Value::None
                    },
                ),
                (
                    "session",
                    if variant_no == 2 {
                        s("live-1")
                    } else {
                        Value::None
                    },
                ),
            ],
        )),
        customer: Some(rec(
            r,
            schema::CUSTOMER,
            &[
                ("id", s(&format!("c-{variant_no}"))),
                (
                    "tier",
                    variant(r, schema::CUSTOMER, "tier", tiers[variant_no as usize % 4]),
                ),
                ("factor", dec(1_250_000 + variant_no * 700_001)),
                ("rate", Value::Percent(75_000 * variant_no)),
                ("bonus", Value::Money(250 * variant_no)),
                (
                    "tags",
                    Value::List(vec![s("new"), s(if variant_no > 2 { "vip" } else { "x" })]),
                ),
                (
                    "lucky",
                    Value::List(vec![Value::Int(7), Value::Int(variant_no)]),
                ),
                (
                    "device",
                    if variant_no == 3 {
                        Value::None
                    } else {
                        s("d-1")
                    },
                ),
                (
                    "phone",
                    if variant_no % 2 == 1 {
                        s("p-1")
                    } else {
                        Value::None
                    },
                ),
                (
                    "account_age",
                    qty(variant_no * 40_000 * SCALE, Dimension::Duration),
                ),
                ("order_count", Value::Int(variant_no)),
            ],
        )),
        now: 1_762_790_400,
        location: Some(location("S1", "store", 3, false)),
        locations: vec![
            location("W1", "warehouse", 40, false),
            location("S1", "store", 3, false),
            location("S2", "store", 31, true),
            location("F1", "front_warehouse", 8, variant_no % 2 == 0),
        ],
        shipment: Some(rec(
            r,
            schema::SHIPMENT,
            &[
                ("items", Value::List(items)),
                ("weight", qty(25_000 * SCALE * variant_no, Dimension::Mass)),
                ("mode", variant(r, schema::SHIPMENT, "mode", "air")),
            ],
        )),
        carrier: Some(rec(
            r,
            schema::CARRIER,
            &[("mode", variant(r, schema::CARRIER, "mode", "air"))],
        )),
        event: variant_no % 7,
        counters: vec![variant_no * 3; 3],
    }
}

#[test]
fn rich_ruleset_agrees_on_hand_written_facts() {
    let built = rich();
    let r = &built.ruleset;
    let lists = [
        (list_index(r, "blocked_devices"), vec![s("d-1"), s("p-1")]),
        (list_index(r, "vip_ids"), vec![s("c-2")]),
        (list_index(r, "lucky_numbers"), vec![Value::Int(3)]),
    ];
    println!(
        "rich: {} bytes of WebAssembly ({} of them the manifest)",
        built.wasm.bytes,
        manifest_bytes(built)
    );
    let mut ok = [0usize; 5];
    for variant_no in 0..8 {
        let facts = rich_facts(r, variant_no);
        for with_lists in [false, true] {
            let (input, lists) =
                encode(built, &facts, if with_lists { &lists[..] } else { &[] }).unwrap();
            for (i, result) in both(&built.compiled, &built.wasm, &input, &lists)
                .iter()
                .enumerate()
            {
                ok[i] += usize::from(result.is_ok());
            }
        }
    }
    // Most evaluations succeed (the differential check covers the traps too).
    assert!(ok.iter().all(|n| *n >= 8), "{ok:?}");
}

#[test]
fn dead_rules_emit_no_code_and_empty_hooks_return_nothing() {
    let built = rich();
    let never = built
        .compiled
        .manifest
        .promotions
        .iter()
        .position(|p| p.name == "never")
        .unwrap();
    assert_eq!(
        built.compiled.program.promotions[never].when,
        Some(Ir::Const(0))
    );
    assert!(built.compiled.program.promotions[never].actions.is_empty());

    let empty = build(EMPTY);
    let (input, lists) = encode(&empty, &Facts::default(), &[]).unwrap();
    for hook in Hook::ALL {
        let words = empty.wasm.run(hook, &input, &lists).unwrap();
        let expected = interp::run(&empty.compiled.program, hook, &input, &lists).unwrap();
        assert_eq!(words, expected);
    }
    // Only risk writes something without rules: no rules evaluated, total 0, no arm.
    assert_eq!(
        empty.wasm.run(Hook::Risk, &input, &lists).unwrap(),
        vec![0, 0, -2]
    );
    assert!(empty
        .wasm
        .run(Hook::Promotions, &input, &lists)
        .unwrap()
        .is_empty());
}

const EMPTY: &str = "ruleset empty currency CNY\n";

/// Overflow, division by zero, a table with no matching row, a reject that stops the
/// risk rules, and quantifiers over list literals.
const TRAPS: &str = r#"ruleset traps currency CNY

attribute customer.tier: enum(basic, silver, gold, black) = basic
attribute customer.big: int = 0
attribute customer.divisor: decimal = 0
attribute customer.f: decimal = 1

table tier_points(customer.tier) -> int {
  gold => 3
  silver => 2
}

promotion overflow_add {
  when customer.big + customer.big > 0
  then points multiplier 1
}

promotion overflow_mul {
  when customer.big * customer.big > 0
  then points multiplier customer.f * customer.f
}

promotion overflow_neg {
  when -customer.big < 0
  then points multiplier customer.big / 1
}

promotion divide {
  when customer.order_count / customer.divisor > 1
  then points multiplier customer.f / customer.divisor
}

promotion table_points {
  then points multiplier tier_points(customer.tier)
}

promotion summed {
  then gift "G" qty sum(x * customer.big for x in [1, 2, customer.order_count]) + count(y in [customer.big, 3] where y > 2)
}

risk first {
  when customer.order_count > 1
  score 10
}

risk stop {
  when customer.order_count > 2
  reject "stop"
}

risk after {
  when customer.big > 0
  score customer.big * 2
}

decide risk {
  score >= 20 => reject
  score >= 10 => review
  else => accept
}
"#;

#[test]
fn traps_happen_exactly_where_the_interpreter_fails() {
    let built = build(TRAPS);
    let r = &built.ruleset;
    let cases: Vec<(&str, i64, i64, i64, i64)> = vec![
        // tier, big, divisor (millionths), f (millionths), order_count
        ("gold", 1, SCALE, SCALE, 0),
        ("silver", i64::MAX / 2 + 1, SCALE, SCALE, 1), // add overflows
        ("gold", 3_037_000_500, SCALE, SCALE, 3),      // mul overflows
        ("gold", i64::MIN + 1, SCALE, SCALE, 2),       // neg fine, add overflows
        ("gold", 1, 0, SCALE, 5),                      // division by zero
        ("basic", 1, SCALE, SCALE, 0),                 // no table row
        ("gold", 1, SCALE, i64::MAX, 0),               // mul_scaled overflows
        ("gold", 1, 1, SCALE, 0),                      // div_scaled overflows
        ("gold", 4, SCALE, -3 * SCALE, 3),             // reject stops risk
        ("silver", 6, SCALE, 1, 2),                    // risk total 22
        ("gold", i64::MAX / 3, SCALE, SCALE, 1),       // risk score overflows
        ("gold", -1, SCALE, SCALE, 0),                 // negative scores
    ];
    let mut traps = [0usize; 5];
    for (tier, big, divisor, f, count) in cases {
        let facts = Facts {
            customer: Some(rec(
                r,
                schema::CUSTOMER,
                &[
                    ("tier", variant(r, schema::CUSTOMER, "tier", tier)),
                    ("big", Value::Int(big)),
                    ("divisor", dec(divisor)),
                    ("f", dec(f)),
                    ("order_count", Value::Int(count)),
                ],
            )),
            ..Facts::default()
        };
        let (input, lists) = encode(&built, &facts, &[]).unwrap();
        for (i, result) in both(&built.compiled, &built.wasm, &input, &lists)
            .iter()
            .enumerate()
        {
            traps[i] += usize::from(result.is_err());
        }
    }
    assert!(traps[0] >= 6, "promotions trapped {} times", traps[0]);
    assert!(traps[3] >= 1, "risk trapped {} times", traps[3]);
    assert!(test_blocks_agree(&built) == 0);
}

#[test]
fn bad_inputs_trap_like_the_interpreter() {
    let built = rich();
    let facts = rich_facts(&built.ruleset, 1);
    let (input, lists) = encode(built, &facts, &[]).unwrap();
    // Truncated inputs, down to nothing.
    for len in [
        0,
        4,
        7,
        8,
        15,
        16,
        40,
        79,
        80,
        81,
        input.len() / 2,
        input.len() - 1,
    ] {
        same_on_every_hook(&built.compiled, &built.wasm, &input[..len], &lists);
    }
    // A wrong magic word.
    let mut wrong = input.clone();
    wrong[0] ^= 1;
    let results = both(&built.compiled, &built.wasm, &wrong, &lists);
    assert!(results.iter().all(Result::is_err));
    // Every word in turn replaced by hostile values.
    let words = input.len() / 8;
    let len = input.len() as i64;
    for w in 1..words {
        for value in [
            -8,
            -1,
            len - 8,
            len - 7,
            len,
            i64::MAX,
            i64::MIN,
            ((len - 8) << 32) | 1,
            (len << 32) | 1,
            (8 << 32) | 3,
            (-8i64 << 32) | 2,
        ] {
            let mut hostile = input.clone();
            hostile[w * 8..w * 8 + 8].copy_from_slice(&value.to_le_bytes());
            same_on_every_hook(&built.compiled, &built.wasm, &hostile, &lists);
        }
    }
}

/// A list descriptor that claims more elements than the input holds stops both engines
/// before any element is looked at. Without the check, a loop that reads nothing from
/// its elements (`count` without a filter, a per-line discount of a constant) ran four
/// billion times in the interpreter — the module ran out of fuel — and the
/// interpreter's per-line output grew without bound.
#[test]
fn lists_that_overrun_the_input_stop_both_engines() {
    let built = build(
        "ruleset t currency CNY

promotion counted {
  when count(x in order.items) >= 0
  then discount order ¥1
}

promotion every_line {
  then discount items by ¥1
}
",
    );
    let r = &built.ruleset;
    let line = |sku: &str| rec(r, schema::ITEM, &[("sku", s(sku)), ("qty", Value::Int(1))]);
    let facts = Facts {
        order: Some(rec(
            r,
            schema::ORDER,
            &[("items", Value::List(vec![line("A"), line("B"), line("C")]))],
        )),
        ..Facts::default()
    };
    let (input, lists) = encode(&built, &facts, &[]).unwrap();
    assert!(both(&built.compiled, &built.wasm, &input, &lists)[0].is_ok());
    // Every word that looks like the three-line list's descriptor, made to claim
    // 2³² - 1 lines; and the same lists, empty but starting past the input's end.
    let len = input.len() as i64;
    let mut stopped = 0;
    for w in 1..input.len() / 8 {
        let word = i64::from_le_bytes(input[w * 8..w * 8 + 8].try_into().unwrap());
        let (offset, count) = abi::unpack(word);
        if count != 3 || i64::from(offset) >= len {
            continue;
        }
        for hostile in [(i64::from(offset) << 32) | 0xFFFF_FFFF, (len + 8) << 32] {
            let mut patched = input.clone();
            patched[w * 8..w * 8 + 8].copy_from_slice(&hostile.to_le_bytes());
            let results = both(&built.compiled, &built.wasm, &patched, &lists);
            if results[0] == Err(interp::Trap::BadInput) {
                stopped += 1;
            }
        }
    }
    assert_eq!(
        stopped, 2,
        "the order's item list was not found or not refused"
    );
    // An empty list that starts exactly at the input's end is inside it.
    let empty = Facts {
        order: Some(rec(r, schema::ORDER, &[("items", Value::List(vec![]))])),
        ..Facts::default()
    };
    let (input, lists) = encode(&built, &empty, &[]).unwrap();
    assert!(both(&built.compiled, &built.wasm, &input, &lists)[0].is_ok());
}

#[test]
fn the_module_works_wherever_the_input_is() {
    let built = rich();
    let facts = rich_facts(&built.ruleset, 2);
    let (input, lists) = encode(built, &facts, &[]).unwrap();
    for at in [3u32, 1000, 65_530, 200_001] {
        for hook in Hook::ALL {
            let expected = interp::run(&built.compiled.program, hook, &input, &lists);
            let got = built.wasm.run_at(hook, &input, &lists, Some(at));
            match (expected, got) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{a:?} vs {b:?}"),
            }
        }
    }
}

#[test]
fn outputs_larger_than_memory_grow_it() {
    // Route writes two words per candidate: 5000 candidates need more than the page
    // left after the input.
    let built = rich();
    let mut facts = rich_facts(&built.ruleset, 1);
    let one = facts.locations[1].clone();
    facts.locations = vec![one; 5000];
    let (input, lists) = encode(built, &facts, &[]).unwrap();
    let words = built.wasm.run(Hook::Route, &input, &lists).unwrap();
    assert_eq!(words.len(), 10_000);
    same_on_every_hook(&built.compiled, &built.wasm, &input, &lists);
}

// ------------------------------------------------------------------------ proptest: facts

fn big() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => -1_000i64..100_000,
        1 => any::<i64>().prop_map(|v| if v == ABSENT { 0 } else { v }),
        1 => Just(i64::MAX),
    ]
}

fn small_or_big() -> impl Strategy<Value = i64> {
    prop_oneof![
        10 => -3i64..12,
        1 => big(),
    ]
}

fn opt_string(options: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::None),
        3 => proptest::sample::select(options).prop_map(s),
    ]
}

#[derive(Clone, Debug)]
struct RandomItem {
    sku: &'static str,
    category: &'static str,
    qty: i64,
    price: i64,
    subtotal: Option<i64>,
    flammable: bool,
    ml: i64,
    markup: i64,
    ratio: i64,
}

fn random_item() -> impl Strategy<Value = RandomItem> {
    (
        proptest::sample::select(&["SERUM-30", "LIP", "X"][..]),
        proptest::sample::select(&["skincare", "makeup"][..]),
        small_or_big(),
        big(),
        proptest::option::of(big()),
        any::<bool>(),
        prop_oneof![Just(0i64), 0i64..200_000_000, big()],
        big(),
        big(),
    )
        .prop_map(
            |(sku, category, qty, price, subtotal, flammable, ml, markup, ratio)| RandomItem {
                sku,
                category,
                qty,
                price,
                subtotal,
                flammable,
                ml,
                markup,
                ratio,
            },
        )
}

#[derive(Clone, Debug)]
struct RandomFacts {
    items: Vec<RandomItem>,
    shipment_items: Vec<RandomItem>,
    channel: &'static str,
    subtotal: Option<i64>,
    placed_at: i64,
    promised_at: Option<i64>,
    pickup: Value,
    coupon: Value,
    tier: &'static str,
    factor: i64,
    rate: i64,
    bonus: i64,
    order_count: i64,
    device: Value,
    phone: Value,
    account_age: i64,
    locations: Vec<(&'static str, i64, i64, bool)>,
    weight: i64,
    now: i64,
    event: i64,
    counters: Vec<i64>,
    blocked: Vec<&'static str>,
    lucky: Vec<i64>,
}

fn random_facts() -> impl Strategy<Value = RandomFacts> {
    let order = (
        proptest::collection::vec(random_item(), 0..4),
        proptest::collection::vec(random_item(), 0..3),
        proptest::sample::select(&["tmall", "jd", "miniapp", "livestream"][..]),
        proptest::option::of(big()),
        prop_oneof![1_762_000_000i64..1_763_000_000, big()],
        proptest::option::of(prop_oneof![1_762_000_000i64..1_763_000_000, big()]),
        opt_string(&["S1", "S2", "S3"]),
        opt_string(&["VIP", "X"]),
    );
    let customer = (
        proptest::sample::select(&["basic", "silver", "gold", "black"][..]),
        prop_oneof![-3_000_000i64..5_000_000, big()],
        prop_oneof![0i64..1_000_000, big()],
        big(),
        small_or_big(),
        opt_string(&["d-1", "d-2"]),
        opt_string(&["p-1", "p-2"]),
        prop_oneof![0i64..200_000 * SCALE, big()],
    );
    let rest = (
        proptest::collection::vec(
            (
                proptest::sample::select(&["warehouse", "front_warehouse", "store"][..]),
                prop_oneof![0i64..60, big()],
                prop_oneof![-5_000_000i64..50_000_000, big()],
                any::<bool>(),
            ),
            0..4,
        ),
        prop_oneof![0i64..40_000 * SCALE, big()],
        prop_oneof![1_762_000_000i64..1_763_000_000, big()],
        0i64..7,
        proptest::collection::vec(small_or_big(), 3),
        proptest::collection::vec(proptest::sample::select(&["d-1", "d-2", "p-1"][..]), 0..3),
        proptest::collection::vec(-2i64..8, 0..3),
    );
    (order, customer, rest).prop_map(
        |(
            (items, shipment_items, channel, subtotal, placed_at, promised_at, pickup, coupon),
            (tier, factor, rate, bonus, order_count, device, phone, account_age),
            (locations, weight, now, event, counters, blocked, lucky),
        )| RandomFacts {
            items,
            shipment_items,
            channel,
            subtotal,
            placed_at,
            promised_at,
            pickup,
            coupon,
            tier,
            factor,
            rate,
            bonus,
            order_count,
            device,
            phone,
            account_age,
            locations,
            weight,
            now,
            event,
            counters,
            blocked,
            lucky,
        },
    )
}

fn to_facts(r: &Ruleset, f: &RandomFacts) -> Facts {
    let item = |i: &RandomItem| {
        let mut fields = vec![
            ("sku", s(i.sku)),
            ("category", s(i.category)),
            ("qty", Value::Int(i.qty)),
            ("price", Value::Money(i.price)),
            ("flammable", Value::Bool(i.flammable)),
            ("liquid_ml", qty(i.ml, Dimension::Volume)),
            ("battery_wh", qty(i.ml, Dimension::Energy)),
            ("markup", Value::Percent(i.markup)),
            ("ratio", dec(i.ratio)),
        ];
        // Given subtotals keep the encoder from refusing an overflowing price × qty.
        fields.push((
            "subtotal",
            Value::Money(
                i.subtotal
                    .unwrap_or(i.price.wrapping_mul(i.qty))
                    .max(ABSENT + 1),
            ),
        ));
        rec(r, schema::ITEM, &fields)
    };
    let items: Vec<Value> = f.items.iter().map(item).collect();
    let mut order = vec![
        ("channel", s(f.channel)),
        ("items", Value::List(items)),
        ("placed_at", Value::Time(f.placed_at)),
        (
            "promised_at",
            f.promised_at.map_or(Value::None, Value::Time),
        ),
        ("pickup_store", f.pickup.clone()),
        ("coupon", f.coupon.clone()),
    ];
    order.push((
        "subtotal",
        Value::Money(f.subtotal.unwrap_or(f.placed_at % 100_000)),
    ));
    Facts {
        order: Some(rec(r, schema::ORDER, &order)),
        customer: Some(rec(
            r,
            schema::CUSTOMER,
            &[
                ("id", s("c-1")),
                ("tier", variant(r, schema::CUSTOMER, "tier", f.tier)),
                ("factor", dec(f.factor)),
                ("rate", Value::Percent(f.rate)),
                ("bonus", Value::Money(f.bonus)),
                ("order_count", Value::Int(f.order_count)),
                ("device", f.device.clone()),
                ("phone", f.phone.clone()),
                ("account_age", qty(f.account_age, Dimension::Duration)),
                (
                    "lucky",
                    Value::List(f.lucky.iter().map(|v| Value::Int(*v)).collect()),
                ),
                ("tags", Value::List(vec![s("vip")])),
            ],
        )),
        now: f.now,
        location: f.locations.first().map(|(kind, km, d, cold)| {
            rec(
                r,
                schema::LOCATION,
                &[
                    ("kind", variant(r, schema::LOCATION, "kind", kind)),
                    ("distance_km", dec(*d)),
                    ("distance", qty(km.wrapping_mul(1000), Dimension::Distance)),
                    ("cold_chain", Value::Bool(*cold)),
                ],
            )
        }),
        locations: f
            .locations
            .iter()
            .map(|(kind, km, d, cold)| {
                rec(
                    r,
                    schema::LOCATION,
                    &[
                        ("id", s("S1")),
                        ("kind", variant(r, schema::LOCATION, "kind", kind)),
                        (
                            "distance",
                            qty(
                                km.wrapping_mul(1_000_000_000).max(ABSENT + 1),
                                Dimension::Distance,
                            ),
                        ),
                        ("distance_km", dec(*d)),
                        ("eta_hours", dec(d / 3)),
                        ("margin_pct", dec(*d)),
                        ("cost_coefficient", dec(d / 7)),
                        ("stock_turnover", dec(*d)),
                        ("cold_chain", Value::Bool(*cold)),
                    ],
                )
            })
            .collect(),
        shipment: Some(rec(
            r,
            schema::SHIPMENT,
            &[
                (
                    "items",
                    Value::List(f.shipment_items.iter().map(item).collect()),
                ),
                ("weight", qty(f.weight, Dimension::Mass)),
            ],
        )),
        carrier: None,
        event: f.event,
        counters: f.counters.clone(),
    }
}

proptest! {
    /// Random quantities, prices, counts and absent optionals for the rich ruleset:
    /// both engines agree on every hook (PROPTEST_CASES sets the number of cases).
    #[test]
    fn random_facts_agree(f in random_facts()) {
        let built = rich();
        let r = &built.ruleset;
        let facts = to_facts(r, &f);
        let lists = [
            (list_index(r, "blocked_devices"), f.blocked.iter().map(|v| s(v)).collect::<Vec<_>>()),
            (list_index(r, "lucky_numbers"), f.lucky.iter().map(|v| Value::Int(*v)).collect()),
        ];
        let Ok((input, lists)) = encode(built, &facts, &lists) else {
            return Ok(());
        };
        same_on_every_hook(&built.compiled, &built.wasm, &input, &lists);
    }
}

// ------------------------------------------------------------------------ proptest: IR

/// `Program::locals`: the interpreter has locals `0..=LOCALS`.
const LOCALS: u32 = 6;

fn arb_cmp() -> impl Strategy<Value = Cmp> {
    proptest::sample::select(&[Cmp::Eq, Cmp::Ne, Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge][..])
}

fn arb_const() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => -3i64..12,
        2 => proptest::sample::select(&[0i64, 8, 16, 80, 88, SCALE, -SCALE, 2 * SCALE + 500_000][..]),
        1 => proptest::sample::select(&[ABSENT, i64::MAX, i64::MIN + 1, i64::MAX / 2, 3_037_000_500][..]),
        1 => any::<i64>(),
    ]
}

fn arb_ir() -> impl Strategy<Value = Ir> {
    ir_strategy(true)
}

fn arb_slot() -> impl Strategy<Value = HeaderSlot> {
    proptest::sample::select(
        &[
            HeaderSlot::Order,
            HeaderSlot::Customer,
            HeaderSlot::Now,
            HeaderSlot::Location,
            HeaderSlot::Shipment,
            HeaderSlot::Carrier,
            HeaderSlot::Locations,
            HeaderSlot::Event,
            HeaderSlot::Counters,
        ][..],
    )
}

/// A list descriptor read from the input (whose counts `arb_input` keeps small) or a
/// small constant one, so that record loops, which read nothing themselves, end soon.
fn arb_descriptor() -> impl Strategy<Value = Ir> {
    let load = |record: Ir, field: u32| Ir::Load {
        record: record.boxed(),
        field,
    };
    prop_oneof![
        arb_slot().prop_map(Ir::Header),
        (arb_slot(), 0u32..5).prop_map(move |(slot, f)| load(Ir::Header(slot), f)),
        (arb_slot(), 0u32..5, 0u32..5)
            .prop_map(move |(slot, f, g)| load(load(Ir::Header(slot), f), g)),
        (0i64..12, 0i64..4).prop_map(|(w, c)| Ir::Const(((w * 8) << 32) | c)),
    ]
}

/// Random IR of every node kind; loops only when `loops`, and then not nested (their
/// filters and bodies are loop-free), to keep evaluations short.
fn ir_strategy(loops: bool) -> BoxedStrategy<Ir> {
    let leaf = prop_oneof![
        8 => arb_const().prop_map(Ir::Const),
        4 => arb_slot().prop_map(Ir::Header),
        6 => (0..LOCALS + 1).prop_map(Ir::Local),
        // The interpreter has locals 0..=LOCALS: these two do not exist.
        1 => (LOCALS + 1..LOCALS + 3).prop_map(Ir::Local),
        2 => (0u32..4).prop_map(Ir::Counter),
        1 => Just(Ir::Trap(TrapCode::Overflow, 0)),
    ];
    leaf.prop_recursive(5, 64, 4, move |inner| {
        let arith = proptest::sample::select(
            &[
                Arith::Add,
                Arith::Sub,
                Arith::Mul,
                Arith::MulScaled,
                Arith::DivScaled,
            ][..],
        );
        let local = 0..LOCALS + 2;
        let mut options: Vec<BoxedStrategy<Ir>> = vec![
            (inner.clone(), 0u32..5)
                .prop_map(|(r, field)| Ir::Load {
                    record: r.boxed(),
                    field,
                })
                .boxed(),
            (local.clone(), inner.clone(), inner.clone())
                .prop_map(|(local, v, b)| Ir::Let {
                    local,
                    value: v.boxed(),
                    body: b.boxed(),
                })
                .boxed(),
            inner.clone().prop_map(|a| Ir::Not(a.boxed())).boxed(),
            inner.clone().prop_map(|a| Ir::Neg(a.boxed())).boxed(),
            (arith, inner.clone(), inner.clone())
                .prop_map(|(op, a, b)| Ir::Arith(op, a.boxed(), b.boxed()))
                .boxed(),
            inner.clone().prop_map(|a| Ir::Scale(a.boxed())).boxed(),
            inner.clone().prop_map(|a| Ir::Unscale(a.boxed())).boxed(),
            (arb_cmp(), any::<bool>(), inner.clone(), inner.clone())
                .prop_map(|(op, aware, l, r)| Ir::Compare {
                    op,
                    absent_aware: aware,
                    left: l.boxed(),
                    right: r.boxed(),
                })
                .boxed(),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Ir::And(a.boxed(), b.boxed()))
                .boxed(),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Ir::Or(a.boxed(), b.boxed()))
                .boxed(),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| Ir::If(c.boxed(), a.boxed(), b.boxed()))
                .boxed(),
            (
                inner.clone(),
                proptest::collection::vec(arb_const(), 0..4),
                any::<bool>(),
            )
                .prop_map(|(v, consts, negated)| Ir::InConsts {
                    value: v.boxed(),
                    consts,
                    negated,
                })
                .boxed(),
            (inner.clone(), inner.clone(), any::<bool>())
                .prop_map(|(v, l, negated)| Ir::InList {
                    value: v.boxed(),
                    list: l.boxed(),
                    negated,
                })
                .boxed(),
            (0u32..3, inner.clone(), any::<bool>())
                .prop_map(|(list, v, negated)| Ir::HostList {
                    list,
                    value: v.boxed(),
                    negated,
                })
                .boxed(),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Ir::Default(a.boxed(), b.boxed()))
                .boxed(),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Ir::Min(a.boxed(), b.boxed()))
                .boxed(),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Ir::Max(a.boxed(), b.boxed()))
                .boxed(),
            (
                proptest::collection::vec((local.clone(), inner.clone()), 0..3),
                proptest::collection::vec(
                    (
                        proptest::collection::vec((local.clone(), arb_cmp(), arb_const()), 0..3),
                        arb_const(),
                    )
                        .prop_map(|(tests, value)| TableRowIr { tests, value }),
                    0..4,
                ),
            )
                .prop_map(|(args, rows)| Ir::Table {
                    table: 0,
                    args,
                    rows,
                })
                .boxed(),
        ];
        if loops {
            let kind = proptest::sample::select(
                &[LoopKind::Any, LoopKind::All, LoopKind::Count, LoopKind::Sum][..],
            );
            let element = prop_oneof![
                (0u32..4).prop_map(|n| Element::Record { stride: 8 * n }),
                Just(Element::Scalar),
            ];
            options.push(
                (
                    kind,
                    local.clone(),
                    arb_descriptor(),
                    element,
                    proptest::option::of(ir_strategy(false)),
                    proptest::option::of(ir_strategy(false)),
                )
                    .prop_map(|(kind, local, list, element, filter, body)| Ir::Loop {
                        kind,
                        local,
                        list: list.boxed(),
                        element,
                        filter: filter.map(Ir::boxed),
                        body: body.map(Ir::boxed),
                    })
                    .boxed(),
            );
        }
        proptest::strategy::Union::new(options)
    })
    .boxed()
}

/// A random input: the magic word (usually), then words that are mostly small
/// offsets into the input, packed lists with few elements, small numbers and edge
/// values, so that loads, lists and loops find something to read.
fn arb_input() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(0u8..8, 1..24),
        proptest::bool::weighted(0.9),
        0usize..8,
    )
        .prop_flat_map(|(kinds, magic, cut)| {
            let n = kinds.len() as i64;
            let words: Vec<BoxedStrategy<i64>> = kinds
                .iter()
                .map(|k| match k {
                    0 | 1 => (0..n + 1).prop_map(|w| w * 8).boxed(),
                    2 | 3 => (0..n, 0i64..4)
                        .prop_map(|(w, c)| ((w * 8) << 32) | c)
                        .boxed(),
                    4 | 5 => arb_const().boxed(),
                    6 => Just(ABSENT).boxed(),
                    _ => any::<i64>().boxed(),
                })
                .collect();
            (words, Just(magic), Just(cut))
        })
        .prop_map(|(words, magic, cut)| {
            let mut bytes: Vec<u8> = Vec::new();
            for (i, w) in words.iter().enumerate() {
                let w = if i == 0 && magic { MAGIC } else { *w };
                bytes.extend_from_slice(&w.to_le_bytes());
            }
            // Loops over records read nothing themselves, so the lists they walk must
            // be short: every word, read as a list descriptor, counts at most 192
            // elements, and every word that could be an offset into the input is a
            // multiple of 8, so that no read is unaligned (an unaligned read could see
            // any count).
            for (i, chunk) in bytes.chunks_exact_mut(8).enumerate() {
                let mut w = i64::from_le_bytes(chunk.try_into().unwrap());
                if i == 0 && magic {
                    continue;
                }
                if w & 0xFFFF_FFFF > 192 {
                    w = (w & !0xFFFF_FFFF) | (w & 7);
                }
                if (0..4096).contains(&w) {
                    w &= !7;
                }
                chunk.copy_from_slice(&w.to_le_bytes());
            }
            // Sometimes a ragged end.
            if cut > 0 && cut < 8 && bytes.len() > 8 {
                bytes.truncate(bytes.len() - cut);
            }
            bytes
        })
}

fn program_of(irs: &[Ir], rejects: bool) -> Program {
    let ir = |i: usize| irs[i % irs.len()].clone();
    Program {
        promotions: vec![
            PromotionIr {
                when: Some(ir(0)),
                actions: vec![
                    ActionIr::DiscountOrder {
                        amount: ir(1),
                        cap: Some(ir(2)),
                        percent: false,
                    },
                    ActionIr::DiscountItems {
                        line_local: 3,
                        filter: Some(ir(3)),
                        amount: ir(2),
                        cap: None,
                        percent: true,
                    },
                ],
            },
            PromotionIr {
                when: None,
                actions: vec![
                    ActionIr::Gift {
                        sku: ir(1),
                        qty: ir(3),
                    },
                    ActionIr::DiscountItems {
                        line_local: 4,
                        filter: None,
                        amount: ir(0),
                        cap: Some(ir(1)),
                        percent: false,
                    },
                ],
            },
            PromotionIr {
                when: Some(Ir::Const(0)),
                actions: vec![],
            },
        ],
        route: Some(RouteIr {
            location_local: 1,
            eligible: ir(0),
            score: ir(1),
        }),
        constraints: vec![Some(ir(2)), None, Some(ir(3))],
        risks: vec![
            RiskIr {
                when: Some(ir(0)),
                score: Some(ir(1)),
                rejects,
            },
            RiskIr {
                when: None,
                score: Some(ir(2)),
                rejects: false,
            },
            RiskIr {
                when: Some(ir(3)),
                score: None,
                rejects: true,
            },
        ],
        decide: vec![Some(ir(2)), Some(ir(0)), None],
        score_local: 0,
        sops: vec![
            SopIr {
                event: 2,
                when: Some(ir(1)),
            },
            SopIr {
                event: 0,
                when: None,
            },
            SopIr {
                event: 3,
                when: Some(ir(3)),
            },
        ],
        locals: LOCALS,
        order_items_field: 3,
        item_stride: 16,
        location_stride: 24,
    }
}

fn any_manifest() -> weir_compiler::manifest::Manifest {
    weir_compiler::compile(&ruleset(EMPTY)).unwrap().manifest
}

proptest! {


    /// Random IR (every node kind, out-of-range locals, traps, absent values) over
    /// random, often hostile inputs: the same words or both stop.
    #[test]
    fn random_ir_agrees(
        irs in proptest::collection::vec(arb_ir(), 1..5),
        rejects in any::<bool>(),
        inputs in proptest::collection::vec(arb_input(), 1..6),
        members in proptest::collection::vec((0u32..3, -3i64..12), 0..6),
    ) {
        let compiled = Compiled::new(program_of(&irs, rejects), any_manifest());
        let bytes = weir_compiler::wasm::emit(&compiled).unwrap();
        let wasm = Wasm::new(&bytes);
        let mut lists = Lists::default();
        for (list, value) in members {
            lists.insert(list, value);
        }
        for input in &inputs {
            same_on_every_hook(&compiled, &wasm, input, &lists);
        }
    }
}

// ------------------------------------------------------------------------ kernels

/// The kernels directly, on edge values: a program whose promotions hook outputs
/// `op(a, b)` for each pair.
#[test]
fn kernels_agree_on_edge_values() {
    let edges = [
        0,
        1,
        -1,
        2,
        -2,
        7,
        SCALE - 1,
        SCALE,
        SCALE + 1,
        -SCALE,
        SCALE / 2,
        -SCALE / 2,
        500_000,
        -500_000,
        499_999,
        1_500_000,
        -2_500_000,
        3_037_000_499,
        3_037_000_500,
        -3_037_000_500,
        i64::MAX / SCALE,
        i64::MAX / 10,
        i64::MAX / 2,
        i64::MAX,
        i64::MIN,
        i64::MIN + 1,
        i64::MIN / 2,
        9_223_372_036_854,
        9_223_372_036_855,
        // Around the range in which a product needs no division to be checked.
        (1 << 31) - 1,
        1 << 31,
        -(1 << 31),
        -(1 << 31) - 1,
        1 << 32,
        (1 << 32) + 1,
        -(1 << 32),
    ];
    let ops = [
        Arith::Add,
        Arith::Sub,
        Arith::Mul,
        Arith::MulScaled,
        Arith::DivScaled,
    ];
    // Each pair in its own program, so one trap does not hide the rest.
    let pairs: Vec<(i64, i64)> = edges
        .iter()
        .flat_map(|a| edges.iter().map(move |b| (*a, *b)))
        .collect();
    let mut values = Vec::new();
    for op in ops {
        for (a, b) in &pairs {
            values.push(Ir::Arith(op, Ir::Const(*a).boxed(), Ir::Const(*b).boxed()));
        }
    }
    for a in edges {
        values.push(Ir::Neg(Ir::Const(a).boxed()));
        values.push(Ir::Scale(Ir::Const(a).boxed()));
        values.push(Ir::Unscale(Ir::Const(a).boxed()));
    }
    let traps = agree_on_each(&values);
    assert!(
        traps > 100 && traps < values.len() / 2,
        "{traps} of {}",
        values.len()
    );
}

/// Evaluates each node on its own (promotion `i` fires when `now` is `i` and outputs
/// node `i`), on both engines; returns how many stopped.
fn agree_on_each(values: &[Ir]) -> usize {
    let program = Program {
        promotions: values
            .iter()
            .enumerate()
            .map(|(i, value)| PromotionIr {
                when: Some(Ir::Compare {
                    op: Cmp::Eq,
                    absent_aware: false,
                    left: Ir::Header(HeaderSlot::Now).boxed(),
                    right: Ir::Const(i as i64).boxed(),
                }),
                actions: vec![ActionIr::PointsMultiplier(value.clone())],
            })
            .collect(),
        route: None,
        constraints: vec![],
        risks: vec![],
        decide: vec![],
        score_local: 0,
        sops: vec![],
        locals: 2,
        order_items_field: 0,
        item_stride: 8,
        location_stride: 8,
    };
    let compiled = Compiled::new(program, any_manifest());
    let wasm = Wasm::new(&weir_compiler::wasm::emit(&compiled).unwrap());
    let mut traps = 0;
    for (i, value) in values.iter().enumerate() {
        let mut input = MAGIC.to_le_bytes().to_vec();
        input.extend_from_slice(&[0u8; 8 * 9]);
        input[8 * HeaderSlot::Now.word() as usize..][..8]
            .copy_from_slice(&(i as i64).to_le_bytes());
        input[8 * HeaderSlot::Counters.word() as usize..][..8]
            .copy_from_slice(&((8i64 << 32) | 0x8000_0001).to_le_bytes());
        // The promotions hook unpacks the order's item list before any rule: the order
        // record starts at the (zero) carrier slot, so that list is empty and inside
        // the input.
        input[8 * HeaderSlot::Order.word() as usize..][..8]
            .copy_from_slice(&(8 * i64::from(HeaderSlot::Carrier.word())).to_le_bytes());
        let expected = interp::run(
            &compiled.program,
            Hook::Promotions,
            &input,
            &interp::NoLists,
        );
        let got = wasm.run(Hook::Promotions, &input, &Lists::default());
        match (&expected, &got) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{value:?}"),
            (Err(_), Err(_)) => traps += 1,
            _ => panic!("{value:?}: interpreter {expected:?}, wasm {got:?}"),
        }
    }
    traps
}

/// Absent values meeting every node that treats them specially.
#[test]
fn absent_values_agree_node_by_node() {
    let c = |v: i64| Ir::Const(v).boxed();
    let ops = [Cmp::Eq, Cmp::Ne, Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge];
    let probes = [ABSENT, ABSENT + 1, -1, 0, 1, i64::MAX];
    let mut values = Vec::new();
    for v in probes {
        for negated in [false, true] {
            for consts in [
                vec![],
                vec![1],
                vec![ABSENT],
                vec![ABSENT, 0, 1],
                vec![i64::MAX, -1],
            ] {
                values.push(Ir::InConsts {
                    value: c(v),
                    consts,
                    negated,
                });
            }
        }
        for w in probes {
            for op in ops {
                for absent_aware in [false, true] {
                    values.push(Ir::Compare {
                        op,
                        absent_aware,
                        left: c(v),
                        right: c(w),
                    });
                }
            }
            values.push(Ir::Default(c(v), c(w)));
            values.push(Ir::Min(c(v), c(w)));
            values.push(Ir::Max(c(v), c(w)));
        }
        // One-column tables: every comparison against every probe constant; the
        // last row, when present, catches what the others do not.
        for op in ops {
            for constant in probes {
                for fallback in [false, true] {
                    let mut rows = vec![TableRowIr {
                        tests: vec![(1, op, constant)],
                        value: 10,
                    }];
                    if fallback {
                        rows.push(TableRowIr {
                            tests: vec![],
                            value: 20,
                        });
                    }
                    values.push(Ir::Table {
                        table: 0,
                        args: vec![(1, Ir::Const(v))],
                        rows,
                    });
                }
            }
        }
        values.push(Ir::Unscale(c(v)));
        values.push(Ir::HostList {
            list: 0,
            value: c(v),
            negated: true,
        });
    }
    for v in [-1_500_000, -500_000, -499_999, 499_999, 500_000, 1_500_000] {
        values.push(Ir::Unscale(c(v)));
    }
    // Scalar lists over the 80-byte input (the header: magic, then zeros but for
    // `now`, the counters and the order), with counts that fit (up to 9 words from
    // byte 8) and counts that run past its end, some beyond 2³¹: both engines refuse
    // those before looking at any element.
    for count in [0i64, 1, 3, 9, 10, 0x8000_0001, 0xFFFF_FFFF] {
        for (value, negated) in [(0, false), (0, true), (5, false), (ABSENT, true)] {
            values.push(Ir::InList {
                value: c(value),
                list: c((8 << 32) | count),
                negated,
            });
        }
    }
    // Loops over scalars run off the input as well; the counters header says there are
    // 2³¹ + 1 counters from byte 8.
    for count in [0i64, 2, 0x8000_0001] {
        for kind in [LoopKind::Count, LoopKind::All, LoopKind::Sum] {
            values.push(Ir::Loop {
                kind,
                local: 1,
                list: c((8 << 32) | count),
                element: Element::Scalar,
                filter: Some(Ir::Not(Ir::Local(1).boxed()).boxed()),
                body: Some(c(1)),
            });
        }
    }
    for index in [0, 8, 9, 100] {
        values.push(Ir::Counter(index));
    }
    // Locals the interpreter does not have (it has 0..=2 here).
    values.push(Ir::Let {
        local: 3,
        value: c(1),
        body: c(2),
    });
    values.push(Ir::Local(3));
    values.push(Ir::Let {
        local: 2,
        value: c(7),
        body: Ir::Local(2).boxed(),
    });
    let traps = agree_on_each(&values);
    assert!(traps >= 2 && traps < values.len() / 4, "{traps}");
}
