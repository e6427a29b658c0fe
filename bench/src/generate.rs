//! Generated rulesets for the compile-time figure: `rules` rules mixing every kind the
//! way a large merchant's generated ruleset would (threshold promotions with exclusive
//! groups, limits, budgets and a table call; item discounts with quantifiers; gifts;
//! hazmat constraints; risk rules with velocity counters and a runtime list; SOPs), plus
//! a route and a decide block.

use weir_dsl::SourceText;

/// A ruleset of `rules` rules in one file.
pub fn ruleset(rules: usize) -> Vec<SourceText> {
    let mut text = String::from(
        "ruleset generated currency CNY\n\n\
         attribute item.liquid_ml: volume = 0 ml\n\
         attribute item.flammable: bool = false\n\
         attribute item.battery_wh: energy = 0 Wh\n\
         attribute customer.tier: enum(basic, silver, gold, black) = basic\n\
         list blocked_devices: string\n\n\
         table points_multiplier(customer.tier, order.channel) -> int {\n  gold, _ => 3\n  silver, \"store\" => 2\n  _, _ => 1\n}\n\n\
         decide risk {\n  score >= 80 => reject\n  score >= 50 => review\n  else => accept\n}\n\n\
         route default {\n  consider warehouse, store within 30 km\n  score -0.5 * location.distance_km - 2.0 * location.eta_hours + 0.3 * location.margin_pct\n  exclude store when any(item in order.items where item.flammable)\n}\n\n",
    );
    for i in 0..rules {
        let rule = match i % 8 {
            0 => format!(
                "promotion promo_{i} {{\n  priority {p}\n  group g{g} exclusive\n  when order.channel in [\"tmall\", \"miniapp\"] and order.subtotal >= ¥{t}\n  then discount order ¥{d}\n  then points multiplier points_multiplier(customer.tier, order.channel)\n  limit 1 per customer per day\n  budget ¥200000\n}}\n\n",
                p = i % 100,
                g = i % 50,
                t = 100 + i % 900,
                d = 5 + i % 45
            ),
            1 => format!(
                "promotion items_{i} {{\n  when customer.tier in [gold, black] and sum(item.qty for item in order.items where item.sku == \"SKU-{i}\") >= 2\n  then discount items where item.category == \"cat{c}\" by {pct}% max ¥{cap}\n}}\n\n",
                c = i % 30,
                pct = 1 + i % 30,
                cap = 50 + i % 100
            ),
            2 => format!(
                "promotion gift_{i} {{\n  when any(item in order.items where item.sku == \"SKU-{i}\") and order.subtotal >= ¥{t}\n  then gift \"SAMPLE-{i}\" qty {q}\n}}\n\n",
                t = 100 + i % 500,
                q = 1 + i % 3
            ),
            3 => format!(
                "constraint hazmat_{i} {{\n  when any(item in shipment.items where item.flammable and item.liquid_ml > {ml} ml)\n  forbid mode air\n  require packaging \"sealed-bag\"\n}}\n\n",
                ml = i % 500
            ),
            4 => format!(
                "constraint lithium_{i} {{\n  when any(item in shipment.items where item.battery_wh > {wh} Wh)\n  block \"lithium batteries over {wh} Wh\"\n}}\n\n",
                wh = 100 + i % 60
            ),
            5 => format!(
                "risk velocity_{i} {{\n  when orders(customer.device, 1 h) > {n} or customer.device in blocked_devices\n  score {s} reason \"many orders from one device\"\n}}\n\n",
                n = 3 + i % 10,
                s = 10 + i % 40
            ),
            6 => format!(
                "risk high_value_{i} {{\n  when customer.order_count < {n} and order.subtotal >= ¥{t}\n  review \"large order from a new customer\"\n}}\n\n",
                n = 1 + i % 5,
                t = 1000 + i % 4000
            ),
            _ => format!(
                "sop pick_{i} {{\n  on shipment.assigned when location.kind == store and any(item in shipment.items where item.liquid_ml > {ml} ml)\n  step scan role picker within 15 min \"Scan the lot\"\n  step pack role packer within 10 min requires photo\n}}\n\n",
                ml = i % 100
            ),
        };
        text.push_str(&rule);
    }
    vec![SourceText {
        name: "generated.weir".to_string(),
        text,
    }]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_generated_ruleset_checks_and_compiles() {
        let sources = ruleset(80);
        let out = weir_dsl::check(&sources);
        assert!(!out.has_errors(), "{:#?}", out.diagnostics.first());
        let rs = out.ruleset.unwrap();
        let rules = rs.promotions.len() + rs.constraints.len() + rs.risks.len() + rs.sops.len();
        assert_eq!(rules, 80);
        weir_compiler::build(&rs).unwrap();
    }
}
