//! weir's side of the benchmark: checking and compiling the ruleset, building `Facts`
//! from a [`Scenario`], the exact hook inputs `evaluate` sends, and reading `Decisions`
//! back as a [`Summary`].

use crate::scenario::{Item, Location, Scenario};
use crate::{err, BenchError, Summary};
use std::sync::Arc;
use weir_compiler::abi::Facts;
use weir_compiler::evaluate::{
    self, Context, Decisions, EvaluateError, Lists, Prepared, SopEvents,
};
use weir_compiler::interp::Hook;
use weir_compiler::lists::ListMembers;
use weir_compiler::outcome::mode_name;
use weir_compiler::Compiled;
use weir_dsl::checked::{Decision, Ruleset, Value};
use weir_dsl::schema;
use weir_dsl::types::{Dimension, EntityId};
use weir_dsl::SourceText;

/// A checked and compiled ruleset with its WebAssembly module.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub ruleset: Ruleset,
    pub compiled: Compiled,
    pub wasm: Vec<u8>,
}

impl Loaded {
    /// Encodes the facts as `evaluate` does for this ruleset, for every SOP event: the
    /// encoding part every bench and example times or counts.
    pub fn prepare(&self, facts: &Facts, context: &Context) -> Result<Prepared, EvaluateError> {
        evaluate::prepare(
            &self.compiled,
            &self.ruleset,
            facts,
            context,
            SopEvents::All,
        )
    }

    /// Decodes and combines one evaluation's raw words as `evaluate` does.
    pub fn decide(
        &self,
        facts: &Facts,
        context: &Context,
        prepared: &Prepared,
        raw: &[(Hook, Vec<i64>)],
    ) -> Result<Decisions<'_>, EvaluateError> {
        evaluate::decide(&self.compiled, &self.ruleset, facts, context, prepared, raw)
    }

    /// The whole path with `engine`.
    pub fn evaluate(
        &self,
        facts: &Facts,
        context: &Context,
        engine: &dyn evaluate::Engine,
    ) -> Result<Decisions<'_>, EvaluateError> {
        evaluate::evaluate(&self.compiled, &self.ruleset, facts, context, engine)
    }
}

/// Checks (no errors allowed) and builds a ruleset from its files.
pub fn load_sources(sources: &[SourceText]) -> Result<Loaded, BenchError> {
    let out = weir_dsl::check(sources);
    if out.has_errors() {
        let first = out
            .diagnostics
            .first()
            .map(|d| format!("{d:?}"))
            .unwrap_or_default();
        return Err(BenchError(format!("the ruleset does not check: {first}")));
    }
    let ruleset = out
        .ruleset
        .ok_or_else(|| BenchError("the checker returned no ruleset".to_string()))?;
    let (compiled, wasm) = weir_compiler::build(&ruleset).map_err(|e| err("build", e))?;
    Ok(Loaded {
        ruleset,
        compiled,
        wasm,
    })
}

/// The benchmark ruleset, checked and built.
pub fn load() -> Result<Loaded, BenchError> {
    load_sources(&[SourceText {
        name: "beauty40.weir".to_string(),
        text: crate::RULESET.to_string(),
    }])
}

/// Builds schema records by field name.
struct Records<'a> {
    ruleset: &'a Ruleset,
}

impl Records<'_> {
    fn record(&self, entity: EntityId, fields: Vec<(&str, Value)>) -> Result<Value, BenchError> {
        let def = self
            .ruleset
            .schema
            .entity(entity)
            .ok_or_else(|| BenchError(format!("no entity {entity}")))?;
        let mut slots = vec![None; def.fields.len()];
        for (name, value) in fields {
            let (index, _) = def
                .field(name)
                .ok_or_else(|| BenchError(format!("`{}` has no field `{name}`", def.name)))?;
            if let Some(slot) = slots.get_mut(index) {
                *slot = Some(value);
            }
        }
        Ok(Value::Record(entity, slots))
    }

    fn enum_id(&self, name: &str) -> Result<usize, BenchError> {
        self.ruleset
            .schema
            .enums
            .iter()
            .position(|e| e.name == name)
            .ok_or_else(|| BenchError(format!("no enum `{name}`")))
    }

    fn item(&self, item: &Item) -> Result<Value, BenchError> {
        let quantity = |v: i64, d| Value::Quantity(v * 1_000_000, d);
        self.record(
            schema::ITEM,
            vec![
                ("sku", Value::String(item.sku.clone())),
                ("category", Value::String(item.category.clone())),
                ("qty", Value::Int(item.qty)),
                ("price", Value::Money(item.price)),
                ("weight", quantity(item.weight_g, Dimension::Mass)),
                ("cold_chain", Value::Bool(item.cold_chain)),
                ("hazmat", Value::Bool(item.hazmat)),
                ("liquid_ml", quantity(item.liquid_ml, Dimension::Volume)),
                ("flammable", Value::Bool(item.flammable)),
                ("aerosol", Value::Bool(item.aerosol)),
                ("fragile", Value::Bool(item.fragile)),
                ("battery_wh", quantity(item.battery_wh, Dimension::Energy)),
            ],
        )
    }

    fn location(&self, location: &Location) -> Result<Value, BenchError> {
        self.record(
            schema::LOCATION,
            vec![
                ("id", Value::String(location.id.clone())),
                (
                    "kind",
                    Value::Enum(schema::LOCATION_KIND, location.kind as u32),
                ),
                // km millionths → m millionths
                (
                    "distance",
                    Value::Quantity(location.distance_km * 1000, Dimension::Distance),
                ),
                ("distance_km", Value::Decimal(location.distance_km)),
                // h millionths → s millionths
                (
                    "eta",
                    Value::Quantity(location.eta_hours * 3600, Dimension::Duration),
                ),
                ("eta_hours", Value::Decimal(location.eta_hours)),
                ("margin_pct", Value::Decimal(location.margin_pct)),
                (
                    "cost_coefficient",
                    Value::Decimal(location.cost_coefficient),
                ),
                ("stock_turnover", Value::Decimal(location.stock_turnover)),
                ("cold_chain", Value::Bool(location.cold_chain)),
                ("hazmat_certified", Value::Bool(location.hazmat_certified)),
            ],
        )
    }
}

fn optional(value: &Option<String>) -> Value {
    value.clone().map_or(Value::None, Value::String)
}

/// The facts and context of one evaluation of `scenario`.
pub fn facts(scenario: &Scenario, loaded: &Loaded) -> Result<(Facts, Context), BenchError> {
    let r = Records {
        ruleset: &loaded.ruleset,
    };
    let items = scenario
        .order
        .items
        .iter()
        .map(|i| r.item(i))
        .collect::<Result<Vec<_>, _>>()?;
    let order = &scenario.order;
    let order_record = r.record(
        schema::ORDER,
        vec![
            ("id", Value::String(order.id.clone())),
            ("channel", Value::String(order.channel.clone())),
            ("items", Value::List(items.clone())),
            ("placed_at", Value::Time(scenario.now)),
            ("address", Value::String(order.address.clone())),
            ("city", Value::String(order.city.clone())),
            ("pickup_store", optional(&order.pickup_store)),
            ("coupon", optional(&order.coupon)),
            ("session", optional(&order.session)),
            ("presale", Value::Bool(order.presale)),
        ],
    )?;
    let customer = &scenario.customer;
    let customer_record = r.record(
        schema::CUSTOMER,
        vec![
            ("id", Value::String(customer.id.clone())),
            ("device", optional(&customer.device)),
            ("phone", optional(&customer.phone)),
            (
                "account_age",
                Value::Quantity(
                    customer.account_age_days * 86_400 * 1_000_000,
                    Dimension::Duration,
                ),
            ),
            ("order_count", Value::Int(customer.order_count)),
            (
                "tier",
                Value::Enum(r.enum_id("customer.tier")?, customer.tier as u32),
            ),
        ],
    )?;
    let shipment = r.record(
        schema::SHIPMENT,
        vec![
            ("items", Value::List(items)),
            (
                "mode",
                Value::Enum(schema::MODE, scenario.shipment_mode as u32),
            ),
            (
                "weight",
                Value::Quantity(scenario.shipment_weight_g() * 1_000_000, Dimension::Mass),
            ),
        ],
    )?;
    let carrier = &scenario.carrier;
    let carrier_record = r.record(
        schema::CARRIER,
        vec![
            ("id", Value::String(carrier.id.clone())),
            ("mode", Value::Enum(schema::MODE, carrier.mode as u32)),
            ("cold_chain", Value::Bool(carrier.cold_chain)),
            ("hazmat", Value::Bool(carrier.hazmat)),
        ],
    )?;
    let locations = scenario
        .locations
        .iter()
        .map(|l| r.location(l))
        .collect::<Result<Vec<_>, _>>()?;
    let c = &scenario.counters;
    let counters = loaded
        .compiled
        .manifest
        .velocities
        .iter()
        .map(|need| match (need.key_path.as_str(), need.window_seconds) {
            ("customer.device", 3_600) => Ok(c.device_1h),
            ("customer.phone", 86_400) => Ok(c.phone_1d),
            ("order.address", 86_400) => Ok(c.address_1d),
            ("customer.id", 86_400) => Ok(c.customer_1d),
            (key, window) => Err(BenchError(format!(
                "no counter orders({key}, {window} s) in the scenario"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let facts = Facts {
        order: Some(order_record),
        customer: Some(customer_record),
        now: scenario.now,
        location: Some(r.location(&scenario.ship_from)?),
        locations,
        shipment: Some(shipment),
        carrier: Some(carrier_record),
        event: 0,
        counters,
    };
    let list = |name: &str, values: &[String]| -> Result<(usize, Arc<ListMembers>), BenchError> {
        let index = loaded
            .ruleset
            .lists
            .iter()
            .position(|l| l.name == name)
            .ok_or_else(|| BenchError(format!("no list `{name}`")))?;
        let values: Vec<Value> = values.iter().cloned().map(Value::String).collect();
        Ok((index, Arc::new(ListMembers::from_values(&values))))
    };
    let context = Context {
        lists: vec![
            list("blocked_devices", &scenario.blocked_devices)?,
            list("reseller_phones", &scenario.reseller_phones)?,
        ],
        usage: Default::default(),
    };
    Ok((facts, context))
}

/// Encoded inputs, one per hook call.
pub type HookInputs = Vec<(Hook, Vec<u8>)>;

/// The inputs `evaluate` gives each hook for these facts: the encoded facts for every
/// hook that has rules, then one SOP input per event some SOP listens to; and the
/// runtime lists as the engines see them (resolving this evaluation's string ids).
pub fn hook_inputs(
    loaded: &Loaded,
    facts: &Facts,
    context: &Context,
) -> Result<(HookInputs, Lists), BenchError> {
    let prepared = loaded
        .prepare(facts, context)
        .map_err(|e| err("encode", e))?;
    let calls = prepared
        .calls()
        .into_iter()
        .map(|(hook, input)| (hook, input.to_vec()))
        .collect();
    Ok((calls, prepared.lists))
}

/// Reads weir's decisions as a [`Summary`]; `scenario` names the route candidates.
pub fn summary(decisions: &Decisions, scenario: &Scenario) -> Summary {
    let mut s = Summary {
        points_multiplier: 1_000_000,
        risk: "accept".to_string(),
        ..Summary::default()
    };
    if let Some(p) = &decisions.promotions {
        s.applied = p.applied.iter().map(|a| a.name.to_string()).collect();
        s.discount = p.total_discount;
        s.points_multiplier = p.points_multiplier;
    }
    s.gifts = decisions
        .gifts
        .iter()
        .map(|(sku, qty)| (sku.to_string(), *qty))
        .collect();
    if let Some(route) = &decisions.route {
        let id = |index: usize| scenario.locations.get(index).map(|l| l.id.clone());
        s.route = route.ranking.first().and_then(|(i, _)| id(*i));
        s.route_eligible = route.ranking.iter().filter_map(|(i, _)| id(*i)).collect();
    }
    if let Some(c) = &decisions.constraints {
        s.constraints = owned(&c.fired);
        s.blocked = c.mode.is_none();
        s.mode = c.mode.map(|m| mode_name(m).to_string());
        s.packaging = owned(&c.packaging);
    }
    if let Some(r) = &decisions.risk {
        s.risk = match r.decision {
            Decision::Accept => "accept",
            Decision::Review => "review",
            Decision::Reject => "reject",
        }
        .to_string();
        s.risk_score = r.score;
    }
    s.sops = owned(&decisions.sops);
    s.normalised()
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_ruleset_checks_without_warnings_and_has_at_least_40_rules_over_every_hook() {
        let out = weir_dsl::check(&[SourceText {
            name: "beauty40.weir".to_string(),
            text: crate::RULESET.to_string(),
        }]);
        assert!(out.diagnostics.is_empty(), "{:#?}", out.diagnostics);
        let rs = out.ruleset.unwrap();
        let rules = rs.promotions.len()
            + usize::from(rs.route.is_some())
            + rs.constraints.len()
            + rs.risks.len()
            + rs.sops.len();
        assert!(rules >= 40, "{rules} rules");
        assert!(rs.promotions.len() >= 20 && rs.route.is_some() && rs.decide.is_some());
        assert!(rs.constraints.len() >= 5 && rs.risks.len() >= 5 && rs.sops.len() >= 3);
        assert!(rs.tables.len() >= 2 && !rs.velocities.is_empty() && !rs.lists.is_empty());
    }

    #[test]
    fn the_ruleset_s_own_tests_pass_on_both_engines() {
        let loaded = load().unwrap();
        let interpreter = weir_compiler::evaluate::Interpreter {
            compiled: &loaded.compiled,
        };
        let report =
            weir_compiler::testing::run_tests(&loaded.ruleset, &loaded.compiled, &[&interpreter]);
        assert_eq!(report.results.len(), 3);
        assert_eq!(report.failed(), 0, "{:#?}", report.results);
    }

    /// The compiled module gives the interpreter's raw words on every variant, and the
    /// hook inputs built here are the ones `evaluate` sends (same words back).
    #[test]
    fn webassembly_agrees_with_the_interpreter_and_hook_inputs_match_evaluate() {
        use weir_compiler::evaluate::{evaluate, Interpreter};
        use weir_runtime::evaluator::WasmEngine;
        let loaded = load().unwrap();
        let engine = weir_runtime::Engine::new(&weir_runtime::EngineConfig::default()).unwrap();
        let artifact = engine.precompile(&loaded.wasm).unwrap();
        let module = engine.load("beauty40", &artifact).unwrap();
        let interpreter = Interpreter {
            compiled: &loaded.compiled,
        };
        for (name, scenario) in crate::scenario::variants() {
            let (facts, context) = facts(&scenario, &loaded).unwrap();
            let a = evaluate(
                &loaded.compiled,
                &loaded.ruleset,
                &facts,
                &context,
                &interpreter,
            )
            .unwrap();
            let b = evaluate(
                &loaded.compiled,
                &loaded.ruleset,
                &facts,
                &context,
                &WasmEngine { module: &module },
            )
            .unwrap();
            assert_eq!(a.raw, b.raw, "{name}");
            assert_eq!(summary(&a, &scenario), summary(&b, &scenario), "{name}");
            let (inputs, lists) = hook_inputs(&loaded, &facts, &context).unwrap();
            assert_eq!(inputs.len(), a.raw.len(), "{name}");
            for ((hook, input), (raw_hook, words)) in inputs.iter().zip(&a.raw) {
                assert_eq!(hook, raw_hook);
                let out =
                    weir_compiler::interp::run(&loaded.compiled.program, *hook, input, &lists)
                        .unwrap();
                assert_eq!(&out, words, "{name}: {hook:?}");
            }
        }
    }
}
