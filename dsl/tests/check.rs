//! The type and unit rules of docs/language.md, case by case: what is accepted, what
//! each mistake reports, and the exact values literals turn into.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use weir_dsl::checked::{TExprKind, Value};
use weir_dsl::types::Dimension;
use weir_dsl::{check, Code, SourceText};

const PRELUDE: &str = "ruleset t currency CNY\n\
attribute item.liquid_ml: volume = 0 ml\n\
attribute item.flammable: bool = false\n\
attribute customer.tier: enum(basic, silver, gold, black) = basic\n";

/// Checks `when CONDITION` in a promotion (or in `context` if given), returning the codes.
#[track_caller]
fn codes_in(kind: &str, condition: &str) -> Vec<Code> {
    let body = match kind {
        "promotion" => {
            format!("promotion p {{\n  when {condition}\n  then discount order ¥1\n}}\n")
        }
        "constraint" => format!("constraint c {{\n  when {condition}\n  forbid mode air\n}}\n"),
        "risk" => format!("risk r {{\n  when {condition}\n  score 1\n}}\n"),
        "route" => format!("route r {{\n  exclude when {condition}\n  score 1\n}}\n"),
        other => panic!("no context {other}"),
    };
    // Keep the attribute uses so the unused-attribute warning does not muddy results.
    let uses = "constraint uses {\n  when any(item in shipment.items where item.flammable and item.liquid_ml > 0 ml) and true == true\n  forbid mode sea\n}\npromotion tiers {\n  when customer.tier == gold\n  then discount order ¥1\n}\n";
    let text = format!("{PRELUDE}{uses}{body}");
    check(&[SourceText {
        name: "t.weir".into(),
        text,
    }])
    .diagnostics
    .into_iter()
    .map(|d| d.code)
    .collect()
}

/// Like `codes_in`, for conditions that are constant on purpose (type rules on literals).
#[track_caller]
fn codes_ignoring_constant(condition: &str) -> Vec<Code> {
    codes_in("promotion", condition)
        .into_iter()
        .filter(|c| *c != Code::ConstantCondition)
        .collect()
}

#[track_caller]
fn ok(condition: &str) {
    let found = codes_ignoring_constant(condition);
    assert!(
        found.is_empty(),
        "`{condition}` should check, got {found:?}"
    );
}

#[track_caller]
fn err(condition: &str, code: Code) {
    let found = codes_ignoring_constant(condition);
    assert_eq!(found, vec![code], "`{condition}`");
}

#[test]
fn units_compare_within_a_dimension() {
    ok("any(item in order.items where item.liquid_ml > 0.5 l)");
    ok("any(item in order.items where item.weight >= 1 kg and item.weight < 1500 g)");
    err(
        "any(item in order.items where item.liquid_ml > 1 kg)",
        Code::UnitMismatch,
    );
    err(
        "any(item in order.items where item.liquid_ml > 500)",
        Code::MissingUnit,
    );
    err(
        "any(item in order.items where item.weight + 5 > 1 kg)",
        Code::MissingUnit,
    );
    err(
        "any(item in order.items where item.weight + item.liquid_ml > 1 kg)",
        Code::UnitMismatch,
    );
}

#[test]
fn money_needs_its_currency() {
    ok("order.subtotal >= ¥299");
    ok("order.subtotal * 10% >= ¥10.50");
    ok("order.subtotal / 2 > ¥1 and order.subtotal / ¥2 > 1.5");
    err("order.subtotal >= 299", Code::MissingCurrency);
    err("order.subtotal >= $299", Code::CurrencyMismatch);
    err("order.subtotal >= ¥1.005", Code::InvalidNumber);
    err("order.subtotal + 1 > ¥1", Code::MissingCurrency);
}

#[test]
fn percent_and_numbers() {
    ok("10% * 2 < 50%");
    err("10% < 0.5", Code::BadComparison);
}

#[test]
fn enums_resolve_against_the_other_side() {
    ok("customer.tier == gold");
    ok("gold == customer.tier");
    ok("customer.tier in [gold, black]");
    ok("customer.tier not in [basic]");
    err("customer.tier == gld", Code::UnknownVariant);
    err("customer.tier in [gold, platinum]", Code::UnknownVariant);
}

#[test]
fn optional_fields() {
    ok("order.pickup_store != none");
    ok("order.pickup_store == \"S12\"");
    ok("default(order.promised_at, now) > now");
    err("order.channel != none", Code::NeverAbsent);
    err("order.promised_at - now > 1 h", Code::MaybeAbsent);
    err("default(order.channel, \"x\") == \"y\"", Code::NeverAbsent);
    err("order.pickup_store < none", Code::BadComparison);
}

#[test]
fn conditions_are_booleans() {
    err("order.subtotal", Code::NotBool);
    err("order.subtotal and true", Code::NotBool);
    err("any(item in order.items where item.qty)", Code::NotBool);
}

#[test]
fn quantifiers() {
    ok("count(item in order.items where item.qty > 1) >= 2");
    ok("sum(item.qty for item in order.items) > 3");
    ok("sum(item.subtotal for item in order.items where item.category == \"x\") > ¥10");
    ok("all(item in order.items where item.cold_chain)");
    err(
        "any(item in order.subtotal where true)",
        Code::NotACollection,
    );
    err(
        "sum(item.sku for item in order.items) > 1",
        Code::BadOperator,
    );
    err("any(order in order.items where true)", Code::Shadowing);
    err(
        "any(i in order.items where any(i in order.items where i.qty > 1))",
        Code::Shadowing,
    );
}

#[test]
fn names_and_fields() {
    err("order.chanel == \"tmall\"", Code::UnknownField);
    err("ordr.channel == \"tmall\"", Code::UnknownName);
    err("order.subtotal.amount > ¥1", Code::UnknownField);
    err("shipment.mode == air", Code::FactNotAvailable);
    err("frobnicate(order.channel)", Code::UnknownFunction);
    err("min(order.subtotal) > ¥1", Code::WrongArgCount);
}

#[test]
fn facts_follow_the_rule_kind() {
    assert_eq!(codes_in("constraint", "shipment.mode == air"), vec![]);
    assert_eq!(codes_in("route", "location.kind == store"), vec![]);
    assert_eq!(
        codes_in("promotion", "location.kind == store"),
        vec![Code::FactNotAvailable]
    );
    assert_eq!(codes_in("risk", "orders(customer.device, 1 h) > 5"), vec![]);
    assert_eq!(
        codes_in("promotion", "orders(customer.device, 1 h) > 5"),
        vec![Code::FactNotAvailable]
    );
    assert_eq!(
        codes_in("risk", "orders(customer.device, 5) > 5"),
        vec![Code::MissingUnit]
    );
    assert_eq!(
        codes_in("risk", "orders(order.subtotal, 1 h) > 5"),
        vec![Code::TypeMismatch]
    );
}

#[test]
fn customers_checks_like_orders() {
    assert_eq!(
        codes_in("risk", "customers(order.address, 30 d) >= 4"),
        vec![]
    );
    assert_eq!(
        codes_in("risk", "customers(customer.device, 1 h) > 2"),
        vec![]
    );
    assert_eq!(
        codes_in("risk", "customers(order.address, 30 d) + 1 > 2"),
        vec![]
    );
    for kind in ["promotion", "constraint", "route"] {
        assert_eq!(
            codes_in(kind, "customers(order.address, 30 d) >= 4"),
            vec![Code::FactNotAvailable],
            "{kind}"
        );
    }
    assert_eq!(
        codes_in("risk", "customers(order.address, 30) >= 4"),
        vec![Code::MissingUnit]
    );
    assert_eq!(
        codes_in("risk", "customers(order.address, 0 d) >= 4"),
        vec![Code::OutOfRange]
    );
    assert_eq!(
        codes_in(
            "risk",
            "customers(order.address, order.placed_at - now) >= 4"
        ),
        vec![Code::TypeMismatch]
    );
    assert_eq!(
        codes_in("risk", "customers(order.subtotal, 30 d) >= 4"),
        vec![Code::TypeMismatch]
    );
    assert_eq!(
        codes_in("risk", "customers(\"addr\", 30 d) >= 4"),
        vec![Code::TypeMismatch]
    );
    assert_eq!(
        codes_in("risk", "customers(order.address) >= 4"),
        vec![Code::WrongArgCount]
    );
    // Every diagnostic is the one `orders` gets in the same place.
    for condition in [
        "F(order.address, 30 d) >= ¥4",
        "F(order.address, 30 d) == true",
        "F(order.address, 30 d)",
        "F(order.address, 30 d) > 1.5",
        "F(customer.phone, 30 d) > 1",
        "F(customer.id, 2 h) > 1",
        "F(order.channel, 2 h) > 1",
        "F(customer.account_age, 2 h) > 1",
        "F(order.address, 30 d, 1) > 1",
        "F(order.address, -1 d) > 1",
        "F(order.address, 1 kg) > 1",
        "F(nothing.here, 1 d) > 1",
    ] {
        let orders = codes_in("risk", &condition.replace('F', "orders"));
        let customers = codes_in("risk", &condition.replace('F', "customers"));
        assert_eq!(customers, orders, "{condition}");
    }
    assert_eq!(
        codes_in("risk", "customers(order.address, 30 d) == true"),
        vec![Code::BadComparison]
    );
}

#[test]
fn counter_messages_name_the_function() {
    let out = check(&[SourceText {
        name: "t.weir".into(),
        text: "ruleset t currency CNY\npromotion p {\n  when customers(order.address, 30 d) > 3\n  then discount order ¥1\n}\n".into(),
    }]);
    let d = &out.diagnostics[0];
    assert_eq!(d.code, Code::FactNotAvailable);
    assert_eq!(
        d.message,
        "customer counters are not available in a promotion"
    );
    assert_eq!(
        d.help.as_deref(),
        Some("use `customers(...)` in risk rules")
    );
}

#[test]
fn arithmetic_table() {
    ok("1 + 2 * 3 == 7");
    ok("1 / 2 == 0.5");
    ok("now + 1 h > now");
    ok("now - order.placed_at < 30 min");
    ok("(count(x in order.items) == 1) or true");
    err("\"a\" + \"b\" == \"ab\"", Code::BadOperator);
    err("-\"a\" == \"a\"", Code::BadOperator);
    err("if true then 1 else \"x\"", Code::TypeMismatch);
}

#[test]
fn lists() {
    ok("order.channel in [\"tmall\", \"jd\"]");
    err("order.channel in [\"tmall\", 3]", Code::MixedList);
    err("order.channel in \"tmall\"", Code::NotACollection);
    err("order.channel in [1, 2]", Code::BadComparison);
}

#[test]
fn constant_conditions_warn() {
    assert_eq!(
        codes_in("promotion", "1 < 2"),
        vec![Code::ConstantCondition]
    );
    assert_eq!(codes_in("promotion", "true"), vec![Code::ConstantCondition]);
}

fn checked(text: &str) -> weir_dsl::checked::Ruleset {
    let out = check(&[SourceText {
        name: "t.weir".into(),
        text: text.to_string(),
    }]);
    assert!(out.diagnostics.is_empty(), "{:#?}", out.diagnostics);
    out.ruleset.unwrap()
}

fn when_right_value(ruleset: &weir_dsl::checked::Ruleset, promotion: usize) -> Value {
    let when = ruleset.promotions[promotion].when.as_ref().unwrap();
    let TExprKind::Compare(_, _, right) = &when.kind else {
        panic!("not a comparison: {when:?}");
    };
    match &right.kind {
        TExprKind::Const(v) => v.clone(),
        other => panic!("not a constant: {other:?}"),
    }
}

#[test]
fn literals_become_exact_values() {
    let r = checked(
        "ruleset t currency CNY\n\
         promotion a { when order.subtotal >= ¥12.50 then discount order 10% }\n\
         promotion b { when sum(i.weight for i in order.items) > 1.5 kg then discount order ¥1 }\n\
         promotion c { when order.placed_at > 2026-11-11T20:00:00+08:00 then discount order ¥1 }\n\
         promotion d { when sum(i.qty for i in order.items) / 3 > 0.333333 then discount order ¥1 }\n",
    );
    assert_eq!(when_right_value(&r, 0), Value::Money(1250));
    assert_eq!(
        when_right_value(&r, 1),
        Value::Quantity(1_500_000_000, Dimension::Mass)
    );
    assert_eq!(when_right_value(&r, 2), Value::Time(1_794_398_400));
    assert_eq!(when_right_value(&r, 3), Value::Decimal(333_333));
    let weir_dsl::checked::Action::DiscountOrder { amount, .. } = &r.promotions[0].actions[0]
    else {
        panic!()
    };
    assert_eq!(amount.kind, TExprKind::Const(Value::Percent(100_000)));
}

#[test]
fn zero_decimal_currencies_have_no_minor_digits() {
    let r = checked("ruleset t currency JPY\npromotion a { when order.subtotal >= ¥3000 then discount order ¥300 }\n");
    assert_eq!(when_right_value(&r, 0), Value::Money(3000));
    let out = check(&[SourceText {
        name: "t".into(),
        text: "ruleset t currency JPY\npromotion a { when order.subtotal >= ¥30.5 then discount order ¥1 }\n".into(),
    }]);
    assert_eq!(out.diagnostics[0].code, Code::InvalidNumber);
}

#[test]
fn velocities_are_collected_for_the_manifest() {
    let r = checked(
        "ruleset t currency CNY\n\
         risk a { when orders(customer.device, 1 h) > 5 score 40 }\n\
         risk b { when orders(customer.device, 60 min) > 9 or orders(order.address, 1 d) > 3 score 20 }\n\
         decide risk { score >= 50 => review else => accept }\n",
    );
    let needs: Vec<(&str, i64)> = r
        .velocities
        .iter()
        .map(|v| (v.key_path.as_str(), v.window_seconds))
        .collect();
    assert_eq!(
        needs,
        vec![("customer.device", 3600), ("order.address", 86_400)]
    );
}

#[test]
fn each_kind_key_and_window_is_one_counter() {
    use weir_dsl::checked::CounterKind::{Customers, Orders};
    let r = checked(
        "ruleset t currency CNY\n\
         risk a { when customers(order.address, 30 d) >= 4 score 40 }\n\
         risk b { when orders(order.address, 30 d) >= 4 or customers(order.address, 720 h) > 9 score 20 }\n\
         risk c { when customers(order.address, 1 d) > 1 or customers(customer.phone, 30 d) > 1 score 5 }\n\
         decide risk { score >= 50 => review else => accept }\n\
         test \"t\" {\n  counter customers(order.address, 30 d) = 4\n  counter orders(order.address, 30 d) = 2\n  expect risk score 40\n}\n",
    );
    let needs: Vec<_> = r
        .velocities
        .iter()
        .map(|v| (v.kind, v.key_path.as_str(), v.window_seconds))
        .collect();
    assert_eq!(
        needs,
        vec![
            (Customers, "order.address", 2_592_000),
            (Orders, "order.address", 2_592_000),
            (Customers, "order.address", 86_400),
            (Customers, "customer.phone", 2_592_000),
        ]
    );
    let counters: Vec<_> = r.tests[0]
        .counters
        .iter()
        .map(|(k, n)| (k.kind, k.key_path.as_str(), k.window_seconds, *n))
        .collect();
    assert_eq!(
        counters,
        vec![
            (Customers, "order.address", 2_592_000, 4),
            (Orders, "order.address", 2_592_000, 2),
        ]
    );
}

#[test]
fn test_counters_are_orders_or_customers() {
    let text = |counter: &str| {
        format!(
            "ruleset t currency CNY\n\
             risk a {{ when customers(order.address, 30 d) >= 4 score 40 }}\n\
             test \"t\" {{\n  {counter}\n  expect risk score 40\n}}\n"
        )
    };
    let codes = |counter: &str| -> Vec<Code> {
        check(&[SourceText {
            name: "t.weir".into(),
            text: text(counter),
        }])
        .diagnostics
        .into_iter()
        .map(|d| d.code)
        .collect()
    };
    assert_eq!(codes("counter customers(order.address, 30 d) = 4"), vec![]);
    assert_eq!(
        codes("counter accounts(order.address, 30 d) = 4"),
        vec![Code::BadFact]
    );
    assert_eq!(
        codes("counter customers(order.address, 30) = 4"),
        vec![Code::TypeMismatch]
    );
    assert_eq!(
        codes("counter customers(order.address, 30 d) = \"4\""),
        vec![Code::BadFact]
    );
}

#[test]
fn attribute_defaults_fill_the_defaults_table() {
    let r = checked(
        "ruleset t currency CNY\n\
         attribute item.liquid_ml: volume = 30 ml\n\
         attribute customer.tier: enum(basic, gold) = gold\n\
         attribute order.weight_limit: decimal = 2\n\
         promotion a { when customer.tier == gold and order.weight_limit > 1 and any(i in order.items where i.liquid_ml > 0 ml) then discount order ¥1 }\n",
    );
    let item = r.schema.entity_by_name("item").unwrap();
    let (index, _) = r.schema.entities[item].field("liquid_ml").unwrap();
    assert_eq!(
        r.defaults[item][index],
        Value::Quantity(30_000_000, Dimension::Volume)
    );
    let order = r.schema.entity_by_name("order").unwrap();
    let (index, _) = r.schema.entities[order].field("weight_limit").unwrap();
    assert_eq!(r.defaults[order][index], Value::Decimal(2_000_000));
}

#[test]
fn all_independent_errors_are_reported() {
    let text = "ruleset t currency CNY\n\
        promotion a { when order.chanel == \"x\" then discount order 5 }\n\
        promotion b { when order.subtotal > 1 kg then gift 3 }\n\
        constraint c { when shipment.wieght > 1 kg forbid mode plane }\n";
    let codes: Vec<Code> = check(&[SourceText {
        name: "t".into(),
        text: text.into(),
    }])
    .diagnostics
    .into_iter()
    .map(|d| d.code)
    .collect();
    assert_eq!(
        codes,
        vec![
            Code::UnknownField,
            Code::TypeMismatch,
            Code::BadComparison,
            Code::TypeMismatch,
            Code::UnknownField,
            Code::UnknownMode
        ]
    );
}

#[test]
fn files_of_one_ruleset_see_each_other() {
    let a = SourceText {
        name: "a.weir".into(),
        text: "ruleset t currency CNY\npromotion p { when customer.tier == gold then discount order ¥1 }\n".into(),
    };
    let b = SourceText {
        name: "b.weir".into(),
        text: "ruleset t currency CNY\nattribute customer.tier: enum(basic, gold) = basic\n".into(),
    };
    let out = check(&[a.clone(), b]);
    assert!(out.diagnostics.is_empty(), "{:#?}", out.diagnostics);
    let c = SourceText {
        name: "c.weir".into(),
        text: "ruleset other currency CNY\n".into(),
    };
    let out = check(&[a, c]);
    assert!(out
        .diagnostics
        .iter()
        .any(|d| d.code == Code::HeaderConflict && d.file == 1));
}

fn codes_of(text: &str) -> Vec<Code> {
    check(&[SourceText {
        name: "t.weir".into(),
        text: text.to_string(),
    }])
    .diagnostics
    .into_iter()
    .map(|d| d.code)
    .collect()
}

#[test]
fn a_table_column_may_be_an_order_line_field() {
    // Keyed by `item.category` and `item.weight`, called per line inside quantifiers
    // and item discounts.
    let text = "ruleset t currency CNY
attribute customer.tier: enum(basic, gold) = basic

table min_shelf_life(item.category) -> duration {
  \"dairy\" => 3 d
  _       => 1 d
}

table member_rate(customer.tier, item.category, item.weight) -> percent {
  gold, \"skincare\", < 1 kg => 10%
  _,    _,          _      => 0%
}

constraint fresh_enough {
  when any(item in shipment.items where now + min_shelf_life(item.category) > now + location.eta)
  block \"short-dated\"
}

promotion member {
  when any(line in order.items where member_rate(customer.tier, line.category, line.weight) > 0%)
  then discount items by member_rate(customer.tier, item.category, item.weight)
}
";
    let r = checked(text);
    assert_eq!(r.tables.len(), 2);
    assert_eq!(r.tables[0].keys, vec![weir_dsl::types::Type::String]);
    assert_eq!(
        r.tables[1].keys[2],
        weir_dsl::types::Type::Quantity(Dimension::Mass)
    );
}

#[test]
fn an_order_line_column_keeps_the_usual_checks() {
    let table = |header: &str, call: &str| {
        format!(
            "ruleset t currency CNY
table t({header}) -> int {{
  _ => 1
}}
promotion p {{
  when any(item in order.items where {call} > 0)
  then discount order ¥1
}}
"
        )
    };
    // An unknown line field, with the usual suggestion.
    assert_eq!(
        codes_of(&table("item.categry", "t(item.category)")),
        vec![Code::UnknownField]
    );
    // The argument must fit the column's type.
    assert_eq!(
        codes_of(&table("item.category", "t(item.qty)")),
        vec![Code::BadComparison]
    );
    // Only `item` names a line in a header; other names are still unknown.
    assert_eq!(
        codes_of(&table("line.category", "t(item.category)")),
        vec![Code::UnknownName]
    );
    // Outside the header `item` still needs a quantifier.
    assert_eq!(
        codes_of(
            "ruleset t currency CNY
table t(item.category) -> int {
  _ => 1
}
promotion p {
  when t(item.category) > 0
  then discount order ¥1
}
"
        ),
        vec![Code::UnknownName]
    );
}
