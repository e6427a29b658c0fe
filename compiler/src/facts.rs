//! Facts as JSON (for `weir eval` and the order service) → the checked values the
//! engines encode. Every field is checked against the ruleset's schema: unknown fields,
//! wrong types, unknown enum variants and negative quantities are errors that name the
//! path (`order.items[2].qty`), never a trap inside an engine.
//!
//! Value forms: money as `"¥12.50"` or a number of major units (`12.5`); quantities as
//! `"30 km"` or a number of base units (g, ml, Wh, m, s); percents as `"10%"`; times as
//! RFC 3339 or epoch seconds; enums by variant name; optional fields `null` when absent.
//! Fields left out take the ruleset's defaults (see docs/language.md).

use crate::abi::Facts;
use crate::lists::ListMembers;
use crate::outcome::Usage;
use serde_json::Value as Json;
use std::sync::Arc;
use weir_dsl::ast::{ExprKind, Literal, UnaryOp};
use weir_dsl::check::values::{literal_value, scaled, ScaledError};
use weir_dsl::checked::{CounterKind, Ruleset, Value};
use weir_dsl::diagnostic::did_you_mean;
use weir_dsl::schema;
use weir_dsl::types::Type;

/// A fact that does not fit the schema, with the path to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for FactError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for FactError {}

/// Everything an evaluation takes, read from one JSON document.
#[derive(Debug, Default)]
pub struct Input {
    pub facts: Facts,
    pub lists: Vec<(usize, Arc<ListMembers>)>,
    pub usage: Usage,
}

fn error(path: &str, message: impl Into<String>) -> FactError {
    FactError {
        path: path.to_string(),
        message: message.into(),
    }
}

const TOP_LEVEL: &[&str] = &[
    "now",
    "order",
    "customer",
    "location",
    "locations",
    "shipment",
    "carrier",
    "counters",
    "lists",
    "usage",
];

/// Reads an evaluation input. `json` must be an object with the keys of `TOP_LEVEL`.
pub fn read(json: &Json, ruleset: &Ruleset) -> Result<Input, FactError> {
    let Json::Object(top) = json else {
        return Err(error(
            "$",
            "the input is a JSON object: { \"order\": {...}, \"customer\": {...}, ... }",
        ));
    };
    let mut input = Input::default();
    for (key, value) in top {
        let entity = |e| Type::Entity(e);
        match key.as_str() {
            "now" => input.facts.now = time(value, "now")?,
            "order" => {
                input.facts.order = Some(convert(value, &entity(schema::ORDER), "order", ruleset)?)
            }
            "customer" => {
                input.facts.customer = Some(convert(
                    value,
                    &entity(schema::CUSTOMER),
                    "customer",
                    ruleset,
                )?)
            }
            "location" => {
                let location = convert(value, &entity(schema::LOCATION), "location", ruleset)?;
                input.facts.location = Some(location.clone());
                if input.facts.locations.is_empty() {
                    input.facts.locations = vec![location];
                }
            }
            "locations" => {
                let ty = Type::List(Box::new(entity(schema::LOCATION)));
                if let Value::List(items) = convert(value, &ty, "locations", ruleset)? {
                    input.facts.locations = items;
                }
            }
            "shipment" => {
                input.facts.shipment = Some(convert(
                    value,
                    &entity(schema::SHIPMENT),
                    "shipment",
                    ruleset,
                )?)
            }
            "carrier" => {
                input.facts.carrier = Some(convert(
                    value,
                    &entity(schema::CARRIER),
                    "carrier",
                    ruleset,
                )?)
            }
            "counters" => input.facts.counters = counters(value, ruleset)?,
            "lists" => input.lists = lists(value, ruleset)?,
            "usage" => input.usage = usage(value)?,
            other => {
                let help = did_you_mean(other, TOP_LEVEL.iter().copied()).unwrap_or_default();
                return Err(error(
                    other,
                    format!("unknown key {help}").trim_end().to_string(),
                ));
            }
        }
    }
    if input.facts.counters.len() != ruleset.velocities.len() {
        input.facts.counters = vec![0; ruleset.velocities.len()];
    }
    Ok(input)
}

fn time(value: &Json, path: &str) -> Result<i64, FactError> {
    match value {
        Json::Number(n) => n.as_i64().ok_or_else(|| {
            error(
                path,
                "a time is epoch seconds (a whole number) or RFC 3339 text",
            )
        }),
        Json::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp())
            .map_err(|e| error(path, format!("`{s}` is not an RFC 3339 time: {e}"))),
        _ => Err(error(path, "a time is epoch seconds or RFC 3339 text")),
    }
}

/// Currency symbols as the grammar writes them (`currency_symbol` in `weir.pest`).
const CURRENCY_SYMBOLS: &[&str] = &["¥", "￥", "$", "€", "£", "₩"];

/// Length of the `number` at the start of `text` as the grammar reads it
/// (`digits ("." digits)?`, with `_` allowed between digits), or `None`.
fn number_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let digits = |from: usize| -> Option<usize> {
        let mut end = from;
        if !bytes.get(end)?.is_ascii_digit() {
            return None;
        }
        end += 1;
        loop {
            match bytes.get(end) {
                Some(b) if b.is_ascii_digit() => end += 1,
                Some(b'_') if bytes.get(end + 1).is_some_and(u8::is_ascii_digit) => end += 2,
                _ => return Some(end),
            }
        }
    };
    let end = digits(0)?;
    if bytes.get(end) == Some(&b'.') {
        if let Some(fraction_end) = digits(end + 1) {
            return Some(fraction_end);
        }
    }
    Some(end)
}

/// The literal a fact value writes in one of its usual forms (`¥12.50`, `-5`, `10%`,
/// `30 km`), without the parser: these are read on every order, and the general
/// expression parser costs tens of microseconds each. Anything else, including every
/// malformed text, returns `None` and goes through the parser, which also gives the
/// error. A property test holds the two paths to the same answers.
fn simple_literal(text: &str) -> Option<Literal> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (symbol, rest) = CURRENCY_SYMBOLS
        .iter()
        .find_map(|s| rest.strip_prefix(s).map(|r| (Some(*s), r)))
        .unwrap_or((None, rest));
    let (number, tail) = rest.split_at(number_len(rest)?);
    let amount = if negative {
        format!("-{number}")
    } else {
        number.to_owned()
    };
    match (symbol, tail) {
        (Some(symbol), "") => Some(Literal::Money {
            symbol: symbol.to_owned(),
            amount,
        }),
        (Some(_), _) => None,
        (None, "") => Some(Literal::Number(amount)),
        (None, "%") => Some(Literal::Percent(amount)),
        (None, unit) => weir_dsl::ast::Unit::from_symbol(unit.trim_start_matches([' ', '\t']))
            .map(|unit| Literal::Quantity { amount, unit }),
    }
}

/// Parses a weir literal such as `¥12.50`, `30 km`, `10%` or `-5` from text.
fn literal(text: &str, path: &str, ruleset: &Ruleset) -> Result<(Value, Type), FactError> {
    match simple_literal(text) {
        Some(lit) => literal_value(&lit, weir_dsl::span::Span::default(), ruleset.currency)
            .map_err(|d| error(path, d.message)),
        None => parsed_literal(text, path, ruleset),
    }
}

/// [`literal`] through the expression parser: every form, and the errors.
fn parsed_literal(text: &str, path: &str, ruleset: &Ruleset) -> Result<(Value, Type), FactError> {
    let (expr, diagnostics) = weir_dsl::parse_expr(text);
    let bad = || error(path, format!("`{text}` is not a value"));
    let Some(expr) = expr.filter(|_| diagnostics.is_empty()) else {
        return Err(bad());
    };
    let (negative, inner) = match &expr.kind {
        ExprKind::Unary(UnaryOp::Neg, inner) => (true, inner.as_ref()),
        _ => (false, &expr),
    };
    let ExprKind::Literal(lit) = &inner.kind else {
        return Err(bad());
    };
    let lit = if negative {
        match lit {
            Literal::Number(n) => Literal::Number(format!("-{n}")),
            Literal::Money { symbol, amount } => Literal::Money {
                symbol: symbol.clone(),
                amount: format!("-{amount}"),
            },
            Literal::Percent(p) => Literal::Percent(format!("-{p}")),
            Literal::Quantity { amount, unit } => Literal::Quantity {
                amount: format!("-{amount}"),
                unit: *unit,
            },
            _ => return Err(bad()),
        }
    } else {
        lit.clone()
    };
    literal_value(&lit, inner.span, ruleset.currency).map_err(|d| error(path, d.message))
}

/// Why a JSON number does not fit a fixed-point type: too many digits after the point,
/// or too large for 64 bits once scaled (the two need different fixes, so the message
/// says which).
fn number_error(
    path: &str,
    n: &serde_json::Number,
    why: ScaledError,
    what: &str,
    digits: u32,
) -> FactError {
    match why {
        ScaledError::TooLarge => error(path, format!("`{n}` is too large for {what}")),
        ScaledError::TooPrecise => error(
            path,
            format!(
                "`{n}` has more than {digits} digits after the point, the most {what} can hold"
            ),
        ),
    }
}

fn number_text(n: &serde_json::Number) -> String {
    n.to_string()
}

fn convert(value: &Json, ty: &Type, path: &str, ruleset: &Ruleset) -> Result<Value, FactError> {
    let wanted = ruleset.schema.type_name(ty);
    let mismatch = || {
        error(
            path,
            format!("expected {wanted}, found {}", describe(value)),
        )
    };
    match (ty, value) {
        (Type::Optional(_), Json::Null) => Ok(Value::None),
        (Type::Optional(inner), v) => convert(v, inner, path, ruleset),
        (_, Json::Null) => Err(error(
            path,
            format!("`null` is only allowed for optional fields; this is {wanted}"),
        )),
        (Type::Bool, Json::Bool(b)) => Ok(Value::Bool(*b)),
        (Type::Int, Json::Number(n)) => n.as_i64().map(Value::Int).ok_or_else(mismatch),
        (Type::Decimal, Json::Number(n)) => scaled(&number_text(n), 6)
            .map(Value::Decimal)
            .map_err(|e| number_error(path, n, e, "a decimal", 6)),
        (Type::Money, Json::Number(n)) => {
            let digits = ruleset.currency.minor_digits;
            scaled(&number_text(n), digits)
                .map(Value::Money)
                .map_err(|e| {
                    number_error(
                        path,
                        n,
                        e,
                        &format!("{} money", ruleset.currency.code),
                        digits,
                    )
                })
        }
        (Type::Percent, Json::Number(n)) => scaled(&number_text(n), 4)
            .map(Value::Percent)
            .map_err(|e| number_error(path, n, e, "a percent", 4)),
        (Type::Quantity(d), Json::Number(n)) => scaled(&number_text(n), 6)
            .map(|v| Value::Quantity(v, *d))
            .map_err(|e| number_error(path, n, e, "a quantity", 6)),
        (Type::Time, v) => time(v, path).map(Value::Time),
        (Type::String, Json::String(s)) => Ok(Value::String(s.clone())),
        (Type::Enum(id), Json::String(s)) => {
            let def = ruleset.schema.enum_def(*id).ok_or_else(mismatch)?;
            def.variant(s).map(|v| Value::Enum(*id, v)).ok_or_else(|| {
                let help = did_you_mean(s, def.variants.iter().map(String::as_str))
                    .map(|h| format!("; {h}"))
                    .unwrap_or_default();
                error(
                    path,
                    format!("`{s}` is not one of {}{help}", def.variants.join(", ")),
                )
            })
        }
        (
            Type::Money | Type::Percent | Type::Quantity(_) | Type::Decimal | Type::Int,
            Json::String(s),
        ) => {
            let (v, found) = literal(s, path, ruleset)?;
            let ok = found == *ty || (found == Type::Int && *ty == Type::Decimal);
            if !ok {
                return Err(error(
                    path,
                    format!(
                        "expected {wanted}, found `{s}` ({})",
                        ruleset.schema.type_name(&found)
                    ),
                ));
            }
            Ok(match (v, ty) {
                (Value::Int(n), Type::Decimal) => Value::Decimal(n.saturating_mul(1_000_000)),
                (v, _) => v,
            })
        }
        (Type::List(inner), Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| convert(item, inner, &format!("{path}[{i}]"), ruleset))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::List),
        (Type::Entity(entity), Json::Object(fields)) => {
            let def = ruleset.schema.entity(*entity).ok_or_else(mismatch)?;
            let mut slots: Vec<Option<Value>> = vec![None; def.fields.len()];
            for (name, field_value) in fields {
                let field_path = format!("{path}.{name}");
                let Some((index, field)) = def.field(name) else {
                    let help = did_you_mean(name, def.fields.iter().map(|f| f.name.as_str()))
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default();
                    return Err(error(
                        &field_path,
                        format!("`{}` has no field `{name}`{help}", def.name),
                    ));
                };
                let converted = convert(field_value, &field.ty, &field_path, ruleset)?;
                non_negative(*entity, name, &converted, &field_path)?;
                if let Some(slot) = slots.get_mut(index) {
                    *slot = Some(converted);
                }
            }
            Ok(Value::Record(*entity, slots))
        }
        _ => Err(mismatch()),
    }
}

/// Quantities and prices of order lines are never negative: a negative one is a bug in
/// the caller, not something a rule should see.
fn non_negative(entity: usize, field: &str, value: &Value, path: &str) -> Result<(), FactError> {
    let negative = match value {
        Value::Int(v) | Value::Money(v) | Value::Quantity(v, _) => *v < 0,
        _ => false,
    };
    let guarded = matches!(
        (entity, field),
        (schema::ITEM, "qty" | "price" | "subtotal" | "weight") | (schema::ORDER, "subtotal")
    );
    if negative && guarded {
        return Err(error(path, "must not be negative"));
    }
    Ok(())
}

fn describe(value: &Json) -> String {
    match value {
        Json::Null => "null".to_string(),
        Json::Bool(b) => format!("`{b}`"),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) => format!("the text \"{}\"", s.chars().take(40).collect::<String>()),
        Json::Array(_) => "a list".to_string(),
        Json::Object(_) => "an object".to_string(),
    }
}

/// `"counters": [{"key": "customer.device", "window": "1 h", "count": 6}]`, with an
/// optional `"kind"`: `"orders"` (the default, `orders(KEY, WINDOW)`) or `"customers"`
/// (`customers(KEY, WINDOW)`). Entries for counters the ruleset does not use are ignored.
fn counters(value: &Json, ruleset: &Ruleset) -> Result<Vec<i64>, FactError> {
    let Json::Array(entries) = value else {
        return Err(error(
            "counters",
            "a list of {\"kind\" (optional), \"key\", \"window\", \"count\"}",
        ));
    };
    let mut out = vec![0; ruleset.velocities.len()];
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("counters[{i}]");
        let kind = match entry.get("kind") {
            None => CounterKind::Orders,
            Some(kind) => kind
                .as_str()
                .and_then(CounterKind::from_name)
                .ok_or_else(|| error(&path, "`kind` is \"orders\" or \"customers\""))?,
        };
        let key = entry
            .get("key")
            .and_then(Json::as_str)
            .ok_or_else(|| error(&path, "`key` is missing"))?;
        let window = entry
            .get("window")
            .and_then(Json::as_str)
            .ok_or_else(|| error(&path, "`window` is missing"))?;
        let count = entry
            .get("count")
            .and_then(Json::as_i64)
            .ok_or_else(|| error(&path, "`count` is missing"))?;
        let seconds = match literal(window, &path, ruleset)? {
            (Value::Quantity(micro, weir_dsl::types::Dimension::Duration), _) => micro / 1_000_000,
            _ => return Err(error(&path, "`window` is a duration such as \"1 h\"")),
        };
        if let Some(slot) = ruleset
            .velocities
            .iter()
            .position(|v| v.kind == kind && v.key_path == key && v.window_seconds == seconds)
            .and_then(|i| out.get_mut(i))
        {
            *slot = count;
        }
    }
    Ok(out)
}

/// `"lists": {"blocked_devices": ["d1"]}`
fn lists(value: &Json, ruleset: &Ruleset) -> Result<Vec<(usize, Arc<ListMembers>)>, FactError> {
    let Json::Object(map) = value else {
        return Err(error("lists", "an object of list name → values"));
    };
    let mut out = Vec::new();
    for (name, items) in map {
        let path = format!("lists.{name}");
        let Some(index) = ruleset.lists.iter().position(|l| l.name == *name) else {
            return Err(error(&path, "the ruleset declares no such list"));
        };
        let Json::Array(items) = items else {
            return Err(error(
                &path,
                format!("expected a list of members, found {}", describe(items)),
            ));
        };
        out.push((index, Arc::new(list_members(items, index, ruleset)?)));
    }
    Ok(out)
}

/// The members of the ruleset's list number `index`, each checked against the list's
/// element type; a member's JSON is kept for the decision record (`ListMembers::json_of`).
pub fn list_members(
    items: &[Json],
    index: usize,
    ruleset: &Ruleset,
) -> Result<ListMembers, FactError> {
    let Some(list) = ruleset.lists.get(index) else {
        return Err(error(
            "lists",
            format!("the ruleset declares no list #{index}"),
        ));
    };
    let mut members = ListMembers::default();
    for (i, item) in items.iter().enumerate() {
        let path = format!("lists.{}[{i}]", list.name);
        let value = convert(item, &list.element, &path, ruleset)?;
        members.insert(&value, Some(item));
    }
    Ok(members)
}

/// `"usage": {"budget_used": {"promo": 1000}, "limit_used": {"promo": 1}}` (minor units).
fn usage(value: &Json) -> Result<Usage, FactError> {
    let mut usage = Usage::default();
    let read = |key: &str| -> Result<Vec<(String, i64)>, FactError> {
        match value.get(key) {
            None => Ok(Vec::new()),
            Some(Json::Object(map)) => map
                .iter()
                .map(|(k, v)| {
                    v.as_i64()
                        .map(|n| (k.clone(), n))
                        .ok_or_else(|| error(&format!("usage.{key}.{k}"), "a whole number"))
                })
                .collect(),
            Some(_) => Err(error(
                &format!("usage.{key}"),
                "an object of promotion → amount",
            )),
        }
    };
    usage.budget_used = read("budget_used")?.into_iter().collect();
    usage.limit_used = read("limit_used")?.into_iter().collect();
    Ok(usage)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cny() -> Ruleset {
        let out = weir_dsl::check(&[weir_dsl::SourceText {
            name: "t.weir".into(),
            text: "ruleset t currency CNY\n".into(),
        }]);
        out.ruleset.expect("an empty ruleset checks")
    }

    #[test]
    fn runtime_lists_are_read_against_their_declared_type() {
        let out = weir_dsl::check(&[weir_dsl::SourceText {
            name: "t.weir".into(),
            text: "ruleset t currency CNY\nlist devices: string\nlist amounts: money\n\
                   risk r { when customer.device in devices or order.subtotal in amounts \
                   reject \"x\" }\n"
                .into(),
        }]);
        let ruleset = out.ruleset.expect("the ruleset checks");
        let json =
            serde_json::json!({"lists": {"devices": ["d-1", "d-2"], "amounts": [12.5, "¥3"]}});
        let input = read(&json, &ruleset).expect("the lists read");
        let mut lengths: Vec<(usize, usize)> =
            input.lists.iter().map(|(i, m)| (*i, m.len())).collect();
        lengths.sort();
        assert_eq!(lengths, vec![(0, 2), (1, 2)], "by index in the ruleset");

        let bad = serde_json::json!({"lists": {"amounts": [12.5, "d-1"]}});
        let error = read(&bad, &ruleset).expect_err("a string in a money list");
        assert_eq!(error.path, "lists.amounts[1]");
        let bad = serde_json::json!({"lists": {"devices": "d-1"}});
        let error = read(&bad, &ruleset).expect_err("not a list");
        assert_eq!(error.path, "lists.devices");
        assert!(
            error.message.contains("expected a list"),
            "{}",
            error.message
        );
        let bad = serde_json::json!({"lists": {"phones": []}});
        assert_eq!(
            read(&bad, &ruleset).expect_err("undeclared").path,
            "lists.phones"
        );
    }

    #[test]
    fn simple_literals_read_the_usual_forms() {
        let ruleset = cny();
        let read = |text: &str| literal(text, "x", &ruleset).map(|(v, _)| v);
        assert_eq!(read("¥12.50"), Ok(Value::Money(1250)));
        assert_eq!(read("-¥1_000"), Ok(Value::Money(-100_000)));
        assert_eq!(read("10%"), Ok(Value::Percent(100_000)));
        assert_eq!(read("-5"), Ok(Value::Int(-5)));
        assert!(matches!(
            read("30 km"),
            Ok(Value::Quantity(30_000_000_000, _))
        ));
        assert!(read("$5").is_err(), "dollars in a yuan ruleset");
        assert!(read("5 ms").is_err(), "no such unit");
        assert!(read("¥5.").is_err());
        assert!(
            simple_literal("¥5 + 1").is_none(),
            "anything else is parsed"
        );
    }

    #[test]
    fn a_json_number_that_does_not_fit_says_whether_it_is_too_large_or_too_precise() {
        let ruleset = cny();
        let money = |json: serde_json::Value| convert(&json, &Type::Money, "price", &ruleset);
        assert_eq!(money(serde_json::json!(12.5)), Ok(Value::Money(1250)));
        let large = money(serde_json::json!(922_337_203_685_477_580_i64)).expect_err("overflows");
        assert_eq!(large.path, "price");
        assert!(
            large.message.contains("too large for CNY money"),
            "{}",
            large.message
        );
        let precise = money(serde_json::json!(0.001)).expect_err("a tenth of a fen");
        assert!(
            precise
                .message
                .contains("more than 2 digits after the point"),
            "{}",
            precise.message
        );
        let percent = convert(&serde_json::json!(1e300), &Type::Percent, "p", &ruleset)
            .expect_err("too large");
        assert!(
            percent.message.contains("too large for a percent"),
            "{}",
            percent.message
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// The scanner is a shortcut, never a second meaning: for every text it takes,
        /// the parser gives the same value or the same error.
        #[test]
        fn the_scanner_agrees_with_the_parser(
            text in r"-?(¥|￥|\$|€|£|₩)?[0-9_]{0,4}(\.[0-9_]{0,3})?[ \t]{0,2}(%|km|kg|kWh|Wh|min|ml|ms|m|s|h|d|l|g|x)?[ .]?"
        ) {
            let ruleset = cny();
            let fast = literal(&text, "x", &ruleset);
            let parsed = parsed_literal(&text, "x", &ruleset);
            if simple_literal(&text).is_some() {
                prop_assert_eq!(fast, parsed);
            } else {
                prop_assert_eq!(fast.is_ok(), parsed.is_ok());
            }
        }
    }
}
