//! The differential property test's generator and checker: random well-typed rulesets
//! and random facts, run through the reference interpreter and the compiled WebAssembly
//! module; both must produce the same output words, or both must fail. Every module
//! built here is also validated by wasmparser (inside `weir_compiler::build`).
//!
//! CI runs [`Config::default`] (`tests/tests/differential.rs`); long runs use the
//! `weir-diff` binary (`--cases`, `--facts`, `--seed`, `--replay`, `--jobs`), see
//! docs/architecture.md (`tests/`).

use std::sync::Arc;
use weir_compiler::abi::Facts;
use weir_compiler::evaluate::{evaluate, Context, Interpreter};
use weir_compiler::lists::ListMembers;
use weir_dsl::checked::Value;
use weir_runtime::evaluator::WasmEngine;
use weir_runtime::Engine;

/// How much to compare.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Random rulesets to generate (the `--cases` of `weir-diff`).
    pub rulesets: u64,
    /// Random fact sets evaluated against each ruleset.
    pub facts_per_ruleset: u64,
    /// The base seed; ruleset `n` is generated from [`ruleset_seed`]`(seed, n)`.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rulesets: 400,
            facts_per_ruleset: 12,
            seed: 0x5EED,
        }
    }
}

/// What a run compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Evaluations run through both engines.
    pub compared: u64,
    /// Of those, the ones both engines finished (the rest both stopped with an error).
    pub both_ok: u64,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.compared += other.compared;
        self.both_ok += other.both_ok;
    }
}

/// A case the engines do not agree on, or a generator or set-up failure. Every variant
/// that comes from a ruleset names its seed: `weir-diff --replay SEED` runs it again.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(
        "ruleset seed {seed}: the generator made an ill-typed ruleset:\n{text}\n{diagnostics}"
    )]
    IllTyped {
        seed: u64,
        text: String,
        diagnostics: String,
    },
    #[error("ruleset seed {seed}: the compiler failed: {error}\n{text}")]
    Build {
        seed: u64,
        text: String,
        error: String,
    },
    #[error("ruleset seed {seed}: the engine could not load the module: {error}")]
    Load { seed: u64, error: String },
    #[error("ruleset seed {seed}: the engines disagree\n{text}\nfacts: {facts}\ninterpreter: {interpreter}\nwebassembly: {webassembly}")]
    Disagree {
        seed: u64,
        text: String,
        facts: String,
        interpreter: String,
        webassembly: String,
    },
    #[error("the generator is out of step with the schema: {0}")]
    Generator(String),
}

/// The seed of ruleset `n` of a run with base seed `seed`.
pub fn ruleset_seed(seed: u64, n: u64) -> u64 {
    seed.wrapping_add(n).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// Generates the ruleset of `seed`, builds it, and compares both engines on
/// `facts_per_ruleset` random fact sets drawn from the same seed.
pub fn check_ruleset(engine: &Engine, seed: u64, facts_per_ruleset: u64) -> Result<Tally, Failure> {
    let mut r = Rng(seed);
    let text = ruleset(&mut r);
    let out = weir_dsl::check(&[weir_dsl::SourceText {
        name: "diff.weir".into(),
        text: text.clone(),
    }]);
    let Some(rs) = out.ruleset else {
        return Err(Failure::IllTyped {
            seed,
            text,
            diagnostics: format!("{:#?}", out.diagnostics),
        });
    };
    let (compiled, wasm) = weir_compiler::build(&rs).map_err(|e| Failure::Build {
        seed,
        text: text.clone(),
        error: e.to_string(),
    })?;
    let module = engine
        .precompile(&wasm)
        .and_then(|artifact| engine.load("diff", &artifact))
        .map_err(|e| Failure::Load {
            seed,
            error: e.to_string(),
        })?;
    let interpreter = Interpreter {
        compiled: &compiled,
    };
    let webassembly = WasmEngine { module: &module };
    let mut tally = Tally::default();
    for _ in 0..facts_per_ruleset {
        let facts = facts(&mut r, &rs)?;
        let mut context = Context::default();
        if r.chance(50) {
            let member = Value::String(format!("d{}", r.below(3)));
            context
                .lists
                .push((0, Arc::new(ListMembers::from_values(&[member]))));
        }
        let a = evaluate(&compiled, &rs, &facts, &context, &interpreter);
        let b = evaluate(&compiled, &rs, &facts, &context, &webassembly);
        let agree = match (&a, &b) {
            (Ok(x), Ok(y)) => {
                tally.both_ok += 1;
                // The members found are what a decision record keeps of the lists.
                x.raw == y.raw && x.list_hits == y.list_hits
            }
            (Err(_), Err(_)) => true,
            _ => false,
        };
        if !agree {
            return Err(Failure::Disagree {
                seed,
                text,
                facts: format!("{facts:#?}"),
                interpreter: format!("{:?}", a.map(|e| (e.raw, e.list_hits))),
                webassembly: format!("{:?}", b.map(|e| (e.raw, e.list_hits))),
            });
        }
        tally.compared += 1;
    }
    Ok(tally)
}

/// A small deterministic generator (xorshift64*), so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick(&mut self, items: &[&'static str]) -> &'static str {
        let at = self.below(items.len() as u64) as usize;
        items.get(at).copied().unwrap_or_default()
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const PRELUDE: &str = "ruleset diff currency CNY

attribute item.flammable: bool = false
attribute item.liquid_ml: volume = 0 ml
attribute item.points: decimal = 0.5
attribute customer.tier: enum(basic, silver, gold, black) = basic
attribute customer.trust: percent = 50%
list blocked: string

table tier_points(customer.tier, order.channel) -> int {
  gold, _ => 3
  silver, \"store\" => 2
  _, _ => 1
}
";

const CHANNELS: &[&str] = &["tmall", "jd", "miniapp", "store", "livestream"];
const CATEGORIES: &[&str] = &["skincare", "makeup", "fragrance", "tools"];
const TIERS: &[&str] = &["basic", "silver", "gold", "black"];

fn int_expr(r: &mut Rng, depth: u32, item: Option<&str>) -> String {
    let leaf = depth == 0 || r.chance(40);
    if leaf {
        return match (r.below(6), item) {
            (0, Some(i)) => format!("{i}.qty"),
            (1, _) => format!("{}", r.below(2000) as i64 - 100),
            (2, _) => "count(x in order.items)".to_string(),
            (3, _) => "customer.order_count".to_string(),
            (4, _) => "tier_points(customer.tier, order.channel)".to_string(),
            _ => format!("{}", r.below(10)),
        };
    }
    match r.below(6) {
        0 => format!(
            "({} + {})",
            int_expr(r, depth - 1, item),
            int_expr(r, depth - 1, item)
        ),
        1 => format!(
            "({} - {})",
            int_expr(r, depth - 1, item),
            int_expr(r, depth - 1, item)
        ),
        2 => format!(
            "({} * {})",
            int_expr(r, depth - 1, item),
            int_expr(r, depth - 1, item)
        ),
        3 => format!(
            "sum(y.qty for y in order.items where {})",
            item_bool(r, depth - 1, "y")
        ),
        4 => format!(
            "count(y in order.items where {})",
            item_bool(r, depth - 1, "y")
        ),
        _ => format!(
            "(if {} then {} else {})",
            bool_expr(r, depth - 1),
            int_expr(r, depth - 1, item),
            int_expr(r, depth - 1, item)
        ),
    }
}

thread_local! {
    /// Whether the expression being generated is in the route (the only place that
    /// sees `location`).
    static IN_ROUTE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn decimal_expr(r: &mut Rng, depth: u32) -> String {
    if depth == 0 || r.chance(35) {
        let in_route = IN_ROUTE.with(std::cell::Cell::get);
        return match r.below(5) {
            0 => format!("{}.{}", r.below(50), r.below(1000)),
            1 if in_route => "location.distance_km".to_string(),
            2 if in_route => "location.margin_pct".to_string(),
            1 | 2 => format!("(customer.trust / {}%)", 1 + r.below(90)),
            3 => "sum(y.points for y in order.items)".to_string(),
            _ => format!("{}", r.below(7)),
        };
    }
    match r.below(5) {
        0 => format!(
            "({} * {})",
            decimal_expr(r, depth - 1),
            decimal_expr(r, depth - 1)
        ),
        1 => format!(
            "({} / {})",
            decimal_expr(r, depth - 1),
            decimal_expr(r, depth - 1)
        ),
        2 => format!(
            "({} - {})",
            decimal_expr(r, depth - 1),
            int_expr(r, depth - 1, None)
        ),
        3 => format!(
            "({} / {})",
            int_expr(r, depth - 1, None),
            int_expr(r, depth - 1, None)
        ),
        _ => format!(
            "min({}, {})",
            decimal_expr(r, depth - 1),
            decimal_expr(r, depth - 1)
        ),
    }
}

fn money_expr(r: &mut Rng, depth: u32) -> String {
    if depth == 0 || r.chance(40) {
        return match r.below(4) {
            0 => "order.subtotal".to_string(),
            1 => format!("¥{}.{:02}", 1 + r.below(500), r.below(100)),
            2 => "sum(y.subtotal for y in order.items)".to_string(),
            _ => format!("¥{}", 1 + r.below(100)),
        };
    }
    match r.below(5) {
        0 => format!(
            "({} + {})",
            money_expr(r, depth - 1),
            money_expr(r, depth - 1)
        ),
        1 => format!("({} * {}%)", money_expr(r, depth - 1), r.below(150)),
        2 => format!(
            "({} / {})",
            money_expr(r, depth - 1),
            int_expr(r, depth - 1, None)
        ),
        3 => format!("({} * customer.trust)", money_expr(r, depth - 1)),
        _ => format!(
            "({} * {})",
            money_expr(r, depth - 1),
            decimal_expr(r, depth - 1)
        ),
    }
}

fn item_bool(r: &mut Rng, depth: u32, i: &str) -> String {
    if depth == 0 || r.chance(50) {
        return match r.below(6) {
            0 => format!("{i}.flammable"),
            1 => format!("{i}.liquid_ml > {} ml", r.below(200)),
            2 => format!("{i}.category == \"{}\"", r.pick(CATEGORIES)),
            3 => format!("{i}.qty >= {}", r.below(5)),
            4 => format!("{i}.price * {i}.qty > ¥{}", r.below(300)),
            _ => format!("{i}.weight <= {}.{} kg", r.below(3), r.below(10)),
        };
    }
    match r.below(3) {
        0 => format!(
            "({} and {})",
            item_bool(r, depth - 1, i),
            item_bool(r, depth - 1, i)
        ),
        1 => format!(
            "({} or {})",
            item_bool(r, depth - 1, i),
            item_bool(r, depth - 1, i)
        ),
        _ => format!("not {}", item_bool(r, depth - 1, i)),
    }
}

fn bool_expr(r: &mut Rng, depth: u32) -> String {
    if depth == 0 || r.chance(30) {
        return match r.below(9) {
            0 => format!(
                "order.channel in [\"{}\", \"{}\"]",
                r.pick(CHANNELS),
                r.pick(CHANNELS)
            ),
            1 => format!("customer.tier in [{}, {}]", r.pick(TIERS), r.pick(TIERS)),
            2 => "customer.device in blocked".to_string(),
            3 => "order.pickup_store != none".to_string(),
            4 => format!("customer.device == \"d{}\"", r.below(3)),
            5 => format!("customer.phone not in [\"p1\", \"p{}\"]", r.below(3)),
            6 => format!("order.subtotal >= ¥{}", r.below(500)),
            7 => format!("customer.account_age < {} d", r.below(30)),
            _ => format!("default(order.promised_at, now) - now > {} h", r.below(4)),
        };
    }
    match r.below(8) {
        0 => format!(
            "({} and {})",
            bool_expr(r, depth - 1),
            bool_expr(r, depth - 1)
        ),
        1 => format!(
            "({} or {})",
            bool_expr(r, depth - 1),
            bool_expr(r, depth - 1)
        ),
        2 => format!("not {}", bool_expr(r, depth - 1)),
        3 => format!(
            "any(x in order.items where {})",
            item_bool(r, depth - 1, "x")
        ),
        4 => format!(
            "all(x in order.items where {})",
            item_bool(r, depth - 1, "x")
        ),
        5 => format!(
            "{} > {}",
            int_expr(r, depth - 1, None),
            int_expr(r, depth - 1, None)
        ),
        6 => format!(
            "{} <= {}",
            money_expr(r, depth - 1),
            money_expr(r, depth - 1)
        ),
        _ => format!(
            "{} >= {}",
            decimal_expr(r, depth - 1),
            decimal_expr(r, depth - 1)
        ),
    }
}

fn ruleset(r: &mut Rng) -> String {
    let mut text = String::from(PRELUDE);
    let depth = 1 + r.below(3) as u32;
    for p in 0..(1 + r.below(5)) {
        let group = if r.chance(40) {
            format!("  group g{} exclusive\n", r.below(2))
        } else {
            String::new()
        };
        let action = match r.below(5) {
            0 => format!("discount order {}", money_expr(r, depth)),
            1 => format!(
                "discount order {}% max ¥{}",
                1 + r.below(60),
                1 + r.below(200)
            ),
            2 => format!(
                "discount items where {} by {}%",
                item_bool(r, depth, "item"),
                1 + r.below(90)
            ),
            3 => format!("gift \"G{}\" qty {}", r.below(3), 1 + r.below(3)),
            _ => format!("points multiplier {}", decimal_expr(r, depth)),
        };
        text.push_str(&format!(
            "\npromotion p{p} {{\n  priority {}\n{group}  when {}\n  then {action}\n}}\n",
            r.below(5),
            bool_expr(r, depth)
        ));
    }
    for c in 0..r.below(3) {
        text.push_str(&format!(
            "\nconstraint c{c} {{\n  when any(item in shipment.items where {})\n  forbid mode air\n}}\n",
            item_bool(r, depth, "item")
        ));
    }
    for k in 0..r.below(4) {
        let outcome = match r.below(3) {
            0 => format!("score {}", int_expr(r, depth, None)),
            1 => "reject \"no\"".to_string(),
            _ => "review \"look\"".to_string(),
        };
        let velocity = if r.chance(30) {
            " or orders(customer.device, 1 h) > 3"
        } else {
            ""
        };
        text.push_str(&format!(
            "\nrisk r{k} {{\n  when {}{velocity}\n  {outcome}\n}}\n",
            bool_expr(r, depth)
        ));
    }
    if r.chance(60) {
        text.push_str("\ndecide risk {\n  score >= 50 => reject\n  score >= 20 => review\n  else => accept\n}\n");
    }
    if r.chance(60) {
        IN_ROUTE.with(|c| c.set(true));
        let score = decimal_expr(r, depth);
        IN_ROUTE.with(|c| c.set(false));
        text.push_str(&format!(
            "\nroute main {{\n  consider warehouse, store within {} km\n  score {}\n}}\n",
            1 + r.below(50),
            score
        ));
    }
    text
}

fn record(
    entity: usize,
    fields: &[(&str, Value)],
    rs: &weir_dsl::checked::Ruleset,
) -> Result<Value, Failure> {
    let def = rs
        .schema
        .entity(entity)
        .ok_or_else(|| Failure::Generator(format!("no entity #{entity} in the schema")))?;
    let mut slots = vec![None; def.fields.len()];
    for (name, value) in fields {
        let slot = def
            .field(name)
            .and_then(|(i, _)| slots.get_mut(i))
            .ok_or_else(|| Failure::Generator(format!("no field `{name}` in the schema")))?;
        *slot = Some(value.clone());
    }
    Ok(Value::Record(entity, slots))
}

fn facts(r: &mut Rng, rs: &weir_dsl::checked::Ruleset) -> Result<Facts, Failure> {
    use weir_dsl::schema::*;
    use weir_dsl::types::Dimension;
    let tier_enum = rs
        .schema
        .enums
        .iter()
        .position(|e| e.name == "customer.tier")
        .ok_or_else(|| Failure::Generator("no enum customer.tier".into()))?;
    let items: Vec<Value> = (0..r.below(6))
        .map(|n| {
            record(
                ITEM,
                &[
                    ("sku", Value::String(format!("S{n}"))),
                    ("category", Value::String(r.pick(CATEGORIES).to_string())),
                    ("qty", Value::Int(r.below(5) as i64)),
                    ("price", Value::Money(r.below(50_000) as i64)),
                    (
                        "weight",
                        Value::Quantity(r.below(3_000_000_000) as i64, Dimension::Mass),
                    ),
                    ("flammable", Value::Bool(r.chance(30))),
                    (
                        "liquid_ml",
                        Value::Quantity(r.below(300) as i64 * 1_000_000, Dimension::Volume),
                    ),
                    ("points", Value::Decimal(r.below(3_000_000) as i64)),
                ],
                rs,
            )
        })
        .collect::<Result<_, _>>()?;
    let optional = |r: &mut Rng, s: String| {
        if r.chance(70) {
            Value::String(s)
        } else {
            Value::None
        }
    };
    let mut order_fields = vec![
        ("channel", Value::String(r.pick(CHANNELS).to_string())),
        ("items", Value::List(items.clone())),
        ("pickup_store", optional(r, "S1".to_string())),
    ];
    if r.chance(50) {
        order_fields.push((
            "promised_at",
            Value::Time(1_790_000_000 + r.below(20_000) as i64),
        ));
    }
    let device_name = format!("d{}", r.below(3));
    let device = optional(r, device_name);
    let phone_name = format!("p{}", r.below(3));
    let phone = optional(r, phone_name);
    let customer = record(
        CUSTOMER,
        &[
            ("tier", Value::Enum(tier_enum, r.below(4) as u32)),
            ("device", device),
            ("phone", phone),
            ("order_count", Value::Int(r.below(50) as i64)),
            (
                "account_age",
                Value::Quantity(r.below(40) as i64 * 86_400_000_000, Dimension::Duration),
            ),
            ("trust", Value::Percent(r.below(1_000_000) as i64)),
        ],
        rs,
    )?;
    let locations = (0..r.below(4))
        .map(|n| {
            let km = r.below(60) as i64;
            record(
                LOCATION,
                &[
                    ("id", Value::String(format!("L{n}"))),
                    ("kind", Value::Enum(LOCATION_KIND, r.below(3) as u32)),
                    (
                        "distance",
                        Value::Quantity(km * 1_000_000_000, Dimension::Distance),
                    ),
                    ("distance_km", Value::Decimal(km * 1_000_000)),
                    ("margin_pct", Value::Decimal(r.below(40_000_000) as i64)),
                ],
                rs,
            )
        })
        .collect::<Result<_, _>>()?;
    Ok(Facts {
        order: Some(record(ORDER, &order_fields, rs)?),
        customer: Some(customer),
        now: 1_790_000_000,
        location: None,
        locations,
        shipment: Some(record(SHIPMENT, &[("items", Value::List(items))], rs)?),
        carrier: None,
        event: 0,
        counters: vec![r.below(6) as i64; rs.velocities.len()],
    })
}
