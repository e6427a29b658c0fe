//! The peers' side of the data: a [`Scenario`] as the JSON document both regorus and
//! zen-engine take (money in fen, decimals as numbers, times in epoch seconds — what an
//! order API would send), and their JSON result read back as a [`Summary`].

use crate::scenario::{Item, Location, Scenario};
use crate::{BenchError, Summary};
use serde_json::{json, Map, Value};

fn item(i: &Item) -> Value {
    json!({
        "sku": i.sku,
        "category": i.category,
        "qty": i.qty,
        "price": i.price,
        "subtotal": i.subtotal(),
        "weight_g": i.weight_g,
        "liquid_ml": i.liquid_ml,
        "battery_wh": i.battery_wh,
        "flammable": i.flammable,
        "aerosol": i.aerosol,
        "fragile": i.fragile,
        "cold_chain": i.cold_chain,
        "hazmat": i.hazmat,
    })
}

fn decimal(millionths: i64) -> Value {
    if millionths % 1_000_000 == 0 {
        json!(millionths / 1_000_000)
    } else {
        json!(millionths as f64 / 1_000_000.0)
    }
}

fn location(l: &Location) -> Value {
    json!({
        "id": l.id,
        "kind": l.kind.name(),
        "distance_km": decimal(l.distance_km),
        "eta_hours": decimal(l.eta_hours),
        "margin_pct": decimal(l.margin_pct),
        "cost_coefficient": decimal(l.cost_coefficient),
        "stock_turnover": decimal(l.stock_turnover),
        "cold_chain": l.cold_chain,
        "hazmat_certified": l.hazmat_certified,
    })
}

/// The input document of one evaluation.
pub fn input(s: &Scenario) -> Value {
    let o = &s.order;
    let items: Vec<Value> = o.items.iter().map(item).collect();
    json!({
        "now": s.now,
        "order": {
            "id": o.id,
            "channel": o.channel,
            "address": o.address,
            "city": o.city,
            "coupon": o.coupon,
            "session": o.session,
            "pickup_store": o.pickup_store,
            "presale": o.presale,
            "subtotal": o.subtotal(),
            "items": items.clone(),
        },
        "customer": {
            "id": s.customer.id,
            "tier": s.customer.tier.name(),
            "device": s.customer.device,
            "phone": s.customer.phone,
            "account_age_days": s.customer.account_age_days,
            "order_count": s.customer.order_count,
        },
        "locations": s.locations.iter().map(location).collect::<Vec<_>>(),
        "location": location(&s.ship_from),
        "shipment": {
            "items": items,
            "mode": s.shipment_mode.name(),
            "weight_g": s.shipment_weight_g(),
        },
        "carrier": {
            "id": s.carrier.id,
            "mode": s.carrier.mode.name(),
            "cold_chain": s.carrier.cold_chain,
            "hazmat": s.carrier.hazmat,
        },
        "counters": {
            "device_1h": s.counters.device_1h,
            "phone_1d": s.counters.phone_1d,
            "address_1d": s.counters.address_1d,
            "customer_1d": s.counters.customer_1d,
        },
        "lists": {
            "blocked_devices": s.blocked_devices,
            "reseller_phones": s.reseller_phones,
        },
    })
}

fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a Value, BenchError> {
    object
        .get(name)
        .ok_or_else(|| BenchError(format!("the result has no `{name}`: {object:?}")))
}

fn strings(value: &Value, name: &str) -> Result<Vec<String>, BenchError> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| BenchError(format!("`{name}` holds a non-string: {v}")))
            })
            .collect(),
        // Rego sets and empty ZEN collections may come back as objects or null.
        Value::Null => Ok(Vec::new()),
        Value::Object(map) if map.is_empty() => Ok(Vec::new()),
        other => Err(BenchError(format!("`{name}` is not a list: {other}"))),
    }
}

/// An integer written as a JSON number (regorus and ZEN may write `3` as `3.0`).
fn integer(value: &Value, name: &str) -> Result<i64, BenchError> {
    value
        .as_i64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0)
                .map(|f| f as i64)
        })
        .ok_or_else(|| BenchError(format!("`{name}` is not an integer: {value}")))
}

/// Reads a peer's result. Expected keys: `applied` (names), `discount` (fen), `gifts`
/// (`[{sku, qty}]` or `{sku: qty}`), `points_multiplier`, `route` (id or null),
/// `route_eligible`, `constraints`, `blocked`, `mode` (or null), `packaging`, `risk`,
/// `risk_score`, `sops`.
pub fn summary(result: &Value) -> Result<Summary, BenchError> {
    let Value::Object(o) = result else {
        return Err(BenchError(format!("the result is not an object: {result}")));
    };
    let gifts = match field(o, "gifts")? {
        Value::Object(map) => map
            .iter()
            .map(|(sku, qty)| Ok((sku.clone(), integer(qty, "gifts")?)))
            .collect::<Result<Vec<_>, BenchError>>()?,
        Value::Array(list) => list
            .iter()
            .map(|g| {
                let sku = g
                    .get("sku")
                    .and_then(Value::as_str)
                    .ok_or_else(|| BenchError(format!("a gift without a sku: {g}")))?;
                let qty = g.get("qty").unwrap_or(&Value::Null);
                Ok((sku.to_string(), integer(qty, "gift qty")?))
            })
            .collect::<Result<Vec<_>, BenchError>>()?,
        Value::Null => Vec::new(),
        other => {
            return Err(BenchError(format!(
                "`gifts` is neither map nor list: {other}"
            )))
        }
    };
    let points = field(o, "points_multiplier")?;
    let points = points
        .as_f64()
        .map(|p| (p * 1_000_000.0).round() as i64)
        .ok_or_else(|| BenchError(format!("`points_multiplier` is not a number: {points}")))?;
    // ZEN leaves a null out of its result object: a missing key is null.
    let optional = |name: &str| -> Result<Option<String>, BenchError> {
        Ok(o.get(name).and_then(Value::as_str).map(str::to_string))
    };
    Ok(Summary {
        applied: strings(field(o, "applied")?, "applied")?,
        discount: integer(field(o, "discount")?, "discount")?,
        gifts,
        points_multiplier: points,
        route: optional("route")?,
        route_eligible: strings(field(o, "route_eligible")?, "route_eligible")?,
        constraints: strings(field(o, "constraints")?, "constraints")?,
        blocked: field(o, "blocked")?.as_bool().unwrap_or(false),
        mode: optional("mode")?,
        packaging: strings(field(o, "packaging")?, "packaging")?,
        risk: optional("risk")?.unwrap_or_default(),
        risk_score: integer(field(o, "risk_score")?, "risk_score")?,
        sops: strings(field(o, "sops")?, "sops")?,
    }
    .normalised())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::native::decide;
    use crate::scenario::order5;

    #[test]
    fn the_input_carries_the_order_and_a_summary_round_trips() {
        let s = order5();
        let doc = input(&s);
        assert_eq!(doc["order"]["subtotal"], 170_800);
        assert_eq!(doc["order"]["items"].as_array().unwrap().len(), 5);
        assert_eq!(doc["locations"][1]["distance_km"], 8);
        let expected = decide(&s).summary(&s);
        let result = json!({
            "applied": expected.applied,
            "discount": expected.discount,
            "gifts": expected.gifts.iter().map(|(s, q)| json!({"sku": s, "qty": q})).collect::<Vec<_>>(),
            "points_multiplier": 3.0,
            "route": expected.route,
            "route_eligible": expected.route_eligible,
            "constraints": expected.constraints,
            "blocked": expected.blocked,
            "mode": expected.mode,
            "packaging": expected.packaging,
            "risk": expected.risk,
            "risk_score": expected.risk_score,
            "sops": expected.sops,
        });
        assert_eq!(summary(&result).unwrap(), expected);
    }
}
