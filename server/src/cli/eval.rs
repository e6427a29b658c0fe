//! `weir eval`: evaluate one ruleset over facts from a JSON file and print the
//! decisions as JSON; `--explain` adds every rule, whether it fired, the value of each
//! clause of its condition, and the values of the facts its conditions read.

use crate::cli::render::{Human, HumanStyle};
use crate::cli::sources::{self, LoadedFile};
use crate::cli::{Error, EvalArgs, EvalEngine, Status};
use serde_json::{json, Value as Json};
use std::io::Write;
use weir_compiler::evaluate::{evaluate, Context, Decisions, Engine, Interpreter};
use weir_compiler::facts;
use weir_compiler::outcome::{mode_name, Skip};
use weir_dsl::checked::{Decision, Ruleset};
use weir_dsl::{Severity, SourceText};
use weir_runtime::evaluator::WasmEngine;

pub fn run(
    args: &EvalArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    style: &HumanStyle,
) -> Result<Status, Error> {
    let groups = sources::discover(std::slice::from_ref(&args.ruleset))?;
    let files = sources::load(&groups)?;
    if groups.len() != 1 {
        writeln!(
            err,
            "weir: error: --ruleset names {} rulesets; name one folder or file",
            groups.len()
        )?;
        return Ok(Status::Failure);
    }
    let sources: Vec<SourceText> = files
        .iter()
        .map(|f| SourceText {
            name: f.name.clone(),
            text: f.text.clone(),
        })
        .collect();
    let checked = weir_dsl::check(&sources);
    let Some(ruleset) = checked.ruleset else {
        let human = Human::new(style);
        let owned: Vec<LoadedFile> = files;
        for diagnostic in checked
            .diagnostics
            .iter()
            .filter(|d| d.severity() == Severity::Error)
        {
            human.render(err, &owned, diagnostic)?;
        }
        writeln!(
            err,
            "weir: error: the ruleset has errors; nothing evaluated"
        )?;
        return Ok(Status::Problems);
    };
    let text = match std::fs::read_to_string(&args.input) {
        Ok(text) => text,
        Err(e) => {
            writeln!(
                err,
                "weir: error: cannot read {}: {e}",
                args.input.display()
            )?;
            return Ok(Status::Failure);
        }
    };
    let json: Json = match serde_json::from_str(&text) {
        Ok(json) => json,
        Err(e) => {
            writeln!(
                err,
                "weir: error: {} is not JSON: {e}",
                args.input.display()
            )?;
            return Ok(Status::Problems);
        }
    };
    let input = match facts::read(&json, &ruleset) {
        Ok(input) => input,
        Err(e) => {
            writeln!(err, "weir: error: {}: {e}", args.input.display())?;
            return Ok(Status::Problems);
        }
    };
    let label = ruleset.name.clone();
    let built = match args.engine {
        EvalEngine::Wasm => crate::cli::test::build(&ruleset, &label).map(|(c, m)| (c, Some(m))),
        EvalEngine::Interpreter => weir_compiler::compile(&ruleset)
            .map(|c| (c, None))
            .map_err(|e| e.to_string()),
    };
    let (compiled, module) = match built {
        Ok(built) => built,
        Err(e) => {
            writeln!(err, "weir: error: cannot compile `{label}`: {e}")?;
            return Ok(Status::Problems);
        }
    };
    let interpreter = Interpreter {
        compiled: &compiled,
    };
    let wasm = module.as_ref().map(|module| WasmEngine { module });
    let engine: &dyn Engine = match &wasm {
        Some(wasm) => wasm,
        None => &interpreter,
    };
    let context = Context {
        lists: input.lists.clone(),
        usage: input.usage.clone(),
    };
    let decisions = match evaluate(&compiled, &ruleset, &input.facts, &context, engine) {
        Ok(d) => d,
        Err(e) => {
            writeln!(err, "weir: error: ruleset `{label}`: {e}")?;
            return Ok(Status::Problems);
        }
    };
    let mut report = decisions_json(&decisions, &ruleset, &input.facts, &compiled);
    if args.explain {
        if let Json::Object(map) = &mut report {
            map.insert(
                "explain".to_string(),
                explain(&decisions, &ruleset, &compiled, &input, &context, &sources),
            );
        }
    }
    let pretty = serde_json::to_string_pretty(&report).unwrap_or_default();
    writeln!(out, "{pretty}")?;
    Ok(Status::Success)
}

fn money(v: i64, ruleset: &Ruleset) -> String {
    let digits = ruleset.currency.minor_digits;
    let symbol = ruleset.currency.main_symbol();
    if digits == 0 {
        return format!("{symbol}{v}");
    }
    let scale = 10_u64.pow(digits);
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!(
        "{sign}{symbol}{}.{:0w$}",
        a / scale,
        a % scale,
        w = digits as usize
    )
}

fn scaled(v: i64) -> Json {
    json!(v as f64 / 1_000_000.0)
}

fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Accept => "accept",
        Decision::Review => "review",
        Decision::Reject => "reject",
    }
}

fn location_id(facts: &weir_compiler::abi::Facts, index: usize, ruleset: &Ruleset) -> String {
    let field = ruleset
        .schema
        .entity(weir_dsl::schema::LOCATION)
        .and_then(|e| e.field("id"))
        .map(|(i, _)| i);
    match (facts.locations.get(index), field) {
        (Some(weir_dsl::checked::Value::Record(_, slots)), Some(i)) => match slots.get(i) {
            Some(Some(weir_dsl::checked::Value::String(s))) => s.clone(),
            _ => format!("#{index}"),
        },
        _ => format!("#{index}"),
    }
}

/// A skipped promotion: the reason in words for people, and the decision record's stable
/// code (with the promotion that took the group, for `excluded_by`) for scripts.
fn skipped(name: &str, why: &Skip<'_>) -> Json {
    let mut entry = json!({"promotion": name, "reason": why.to_string(), "code": why.code()});
    if let (Skip::ExcludedBy(by), Some(map)) = (why, entry.as_object_mut()) {
        map.insert("by".into(), json!(by));
    }
    entry
}

fn decisions_json(
    d: &Decisions,
    ruleset: &Ruleset,
    facts: &weir_compiler::abi::Facts,
    compiled: &weir_compiler::Compiled,
) -> Json {
    let mut out = serde_json::Map::new();
    out.insert("ruleset".into(), json!(ruleset.name));
    if let Some(p) = &d.promotions {
        out.insert(
            "promotions".into(),
            json!({
                "total_discount": money(p.total_discount, ruleset),
                "total_discount_minor": p.total_discount,
                "line_discounts_minor": p.line_discounts,
                "applied": p.applied.iter().map(|a| json!({"promotion": a.name, "discount": money(a.discount, ruleset)})).collect::<Vec<_>>(),
                "skipped": p.skipped.iter().map(|(name, why)| skipped(name, why)).collect::<Vec<_>>(),
                "gifts": d.gifts.iter().map(|(sku, qty)| json!({"sku": sku, "qty": qty})).collect::<Vec<_>>(),
                "points_multiplier": scaled(p.points_multiplier),
                "consumption": p.consumption.iter().map(|c| json!({"promotion": c.promotion, "uses": c.uses, "budget": money(c.budget, ruleset)})).collect::<Vec<_>>(),
            }),
        );
    }
    if let Some(r) = &d.route {
        out.insert(
            "route".into(),
            json!({
                "ranking": r.ranking.iter().map(|(i, score)| json!({"location": location_id(facts, *i, ruleset), "score": scaled(*score)})).collect::<Vec<_>>(),
                "prefer_fewer_splits": r.prefer_fewer_splits,
            }),
        );
    }
    if let Some(c) = &d.constraints {
        out.insert(
            "constraints".into(),
            json!({
                "fired": c.fired,
                "blocked": c.blocked,
                "conflicts": c.conflicts,
                "forbidden_modes": c.forbidden_modes.iter().map(|m| mode_name(*m)).collect::<Vec<_>>(),
                "mode": c.mode.map(mode_name),
                "packaging": c.packaging,
            }),
        );
    }
    if let Some(r) = &d.risk {
        out.insert(
            "risk".into(),
            json!({
                "decision": decision_name(r.decision),
                "score": r.score,
                "fired": r.fired.iter().map(|(name, points)| json!({"rule": name, "score": points})).collect::<Vec<_>>(),
                "reasons": r.reasons,
            }),
        );
    }
    if !compiled.manifest.sops.is_empty() {
        out.insert("sops".into(), json!(d.sops));
    }
    Json::Object(out)
}

/// Every rule: fired or not, its condition as written, and the facts it reads.
pub(crate) fn explain(
    d: &Decisions,
    ruleset: &Ruleset,
    compiled: &weir_compiler::Compiled,
    input: &facts::Input,
    context: &Context,
    sources: &[SourceText],
) -> Json {
    let fired = weir_compiler::testing::fired_rules(d);
    let mut probe = weir_compiler::explain::Probe::new(ruleset, compiled, &input.facts, context);
    let seen = probe.as_mut().map(|p| p.fact_values()).unwrap_or_default();
    let clauses = probe
        .as_mut()
        .map(|p| p.clause_values())
        .unwrap_or_default();
    let quote = |origin: weir_dsl::checked::Origin| {
        sources
            .get(origin.file)
            .and_then(|s| s.text.get(origin.span.range()))
            .map(str::to_string)
    };
    let mut rules = Vec::new();
    for (name, kind, at) in weir_compiler::explain::rules(ruleset) {
        let condition = at.and_then(quote);
        let parts: Vec<Json> = clauses
            .iter()
            .filter(|c| c.rule == name)
            .map(|c| json!({"clause": quote(c.at), "value": c.value}))
            .collect();
        let values: Vec<Json> = seen
            .iter()
            .filter(|v| v.rule == name)
            .map(|v| json!({"fact": v.path, "value": v.value}))
            .collect();
        rules.push(json!({
            "rule": name,
            "kind": kind,
            "fired": fired.contains(name.as_str()),
            "condition": condition,
            "clauses": parts,
            "saw": values,
        }));
    }
    Json::Array(rules)
}
