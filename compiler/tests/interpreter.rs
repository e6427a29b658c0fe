//! The reference interpreter runs the example rulesets' test blocks, and the
//! combination semantics of docs/semantics.md hold case by case.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use weir_compiler::evaluate::Interpreter;
use weir_compiler::testing::run_tests;
use weir_dsl::{check, SourceText};

fn ruleset(text: &str) -> weir_dsl::checked::Ruleset {
    let out = check(&[SourceText {
        name: "t.weir".into(),
        text: text.to_string(),
    }]);
    assert!(!out.has_errors(), "{:#?}", out.diagnostics);
    out.ruleset.unwrap()
}

#[track_caller]
fn passes(text: &str) {
    let r = ruleset(text);
    let compiled = weir_compiler::compile(&r).unwrap();
    let engine = Interpreter {
        compiled: &compiled,
    };
    let report = run_tests(&r, &compiled, &[&engine]);
    let failures: Vec<String> = report
        .results
        .iter()
        .flat_map(|t| {
            t.failures
                .iter()
                .map(move |f| format!("{}: {}", t.name, f.message))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(!report.results.is_empty());
}

#[test]
fn the_beauty_example_passes_its_tests() {
    passes(include_str!("../../rulesets/beauty/rules.weir"));
}

const PRELUDE: &str =
    "ruleset t currency CNY\nattribute customer.tier: enum(basic, silver, gold, black) = basic\n";

#[test]
fn exclusive_group_takes_the_highest_priority() {
    passes(&format!(
        "{PRELUDE}
promotion small {{
  priority 1
  group threshold exclusive
  when order.subtotal >= ¥100
  then discount order ¥10
}}

promotion big {{
  priority 5
  group threshold exclusive
  when order.subtotal >= ¥200
  then discount order ¥30
}}

test \"both eligible: the higher priority wins\" {{
  given {{
    order: {{ items: [{{ sku: \"A\", qty: 1, price: ¥250 }}] }}
  }}
  expect discount ¥30
  expect fired big
  expect not fired small
}}

test \"only the small one\" {{
  given {{
    order: {{ items: [{{ sku: \"A\", qty: 1, price: ¥150 }}] }}
  }}
  expect discount ¥10
}}
"
    ));
}

#[test]
fn percent_discounts_round_half_away_from_zero_and_caps_apply() {
    passes(&format!(
        "{PRELUDE}
promotion pct {{
  then discount order 15% max ¥20
}}

test \"15% of ¥0.30 is ¥0.045, rounded to ¥0.05\" {{
  given {{
    order: {{ items: [{{ sku: \"A\", qty: 1, price: ¥0.30 }}] }}
  }}
  expect discount ¥0.05
}}

test \"the cap\" {{
  given {{
    order: {{ items: [{{ sku: \"A\", qty: 2, price: ¥100 }}] }}
  }}
  expect discount ¥20
}}
"
    ));
}

#[test]
fn discounts_never_exceed_the_order() {
    passes(&format!(
        "{PRELUDE}
promotion a {{
  then discount order ¥80
}}

promotion b {{
  then discount order ¥50
}}

test \"¥130 asked of a ¥100 order\" {{
  given {{
    order: {{ items: [{{ sku: \"A\", qty: 1, price: ¥100 }}] }}
  }}
  expect discount ¥100
}}
"
    ));
}

#[test]
fn limits_and_budgets() {
    passes(&format!(
        "{PRELUDE}
promotion once {{
  then discount order ¥10
  limit 1 per customer per day
  budget ¥1000
}}

test \"limit used up\" {{
  given {{
    order: {{ items: [{{ sku: \"A\", qty: 1, price: ¥100 }}] }}
  }}
  used limit once = 1
  expect no discount
}}

test \"budget nearly spent gives what is left\" {{
  given {{
    order: {{ items: [{{ sku: \"A\", qty: 1, price: ¥100 }}] }}
  }}
  used budget once = ¥995
  expect discount ¥5
}}
"
    ));
}

/// A budget caps the promotion even when what it asks for in all passes the largest
/// amount (found by the differential test's semantic checks: the total of the asks used
/// to saturate, and the lines then gave more than the budget).
#[test]
fn a_budget_caps_asks_whose_total_passes_the_largest_amount() {
    passes(&format!(
        "{PRELUDE}
promotion both {{
  then discount order 50%
  then discount items by 60%
  budget ¥100
}}

test \"asks of 9.9e18 minor units in all\" {{
  given {{
    order: {{ items: [{{ sku: \"A\", qty: 2, price: ¥45000000000000000 }}] }}
  }}
  expect discount ¥100
}}
"
    ));
    passes(&format!(
        "{PRELUDE}
promotion lines_first {{
  then discount order ¥30
  then discount items by ¥20
  budget ¥45
}}

test \"the order part gives way first\" {{
  given {{
    order: {{ items: [{{ sku: \"A\", qty: 1, price: ¥100 }}, {{ sku: \"B\", qty: 1, price: ¥100 }}] }}
  }}
  expect discount ¥45
}}
"
    ));
}

#[test]
fn risk_scores_sum_and_reject_short_circuits() {
    passes(
        "ruleset t currency CNY
list blocked_devices: string

risk velocity {
  when orders(customer.device, 1 h) > 5
  score 40 reason \"many orders from one device\"
}

risk new_account {
  when customer.account_age < 1 d
  score 30
}

risk blocked {
  when customer.device in blocked_devices
  reject \"blocked device\"
}

risk never_reached {
  when customer.device == \"d1\"
  score 100
}

decide risk {
  score >= 80 => reject
  score >= 50 => review
  else => accept
}

test \"70 points is a review\" {
  given {
    customer: { device: \"d2\", account_age: 2 h }
  }
  counter orders(customer.device, 1 h) = 6
  expect risk score 70
  expect risk review
}

test \"a blocked device is rejected and later rules do not run\" {
  given {
    customer: { device: \"d1\", account_age: 30 d }
  }
  list blocked_devices = [\"d1\"]
  expect risk reject
  expect not fired never_reached
}

test \"absent device is never in a list\" {
  given {
    customer: { account_age: 30 d }
  }
  list blocked_devices = [\"d1\"]
  expect risk score 0
  expect risk accept
  expect not fired blocked
  expect not fired never_reached
}
",
    );
}

#[test]
fn customers_counts_fire_at_the_threshold_beside_orders_counts() {
    // `customers` and `orders` on the same key and window are two slots: a test that
    // gives one leaves the other at 0, and each rule reads only its own.
    let text = "ruleset t currency CNY

risk many_accounts {
  when customers(order.address, 30 d) >= 4
  score 40 reason \"4 or more accounts ordered to this address\"
}

risk busy_address {
  when orders(order.address, 30 d) >= 4
  score 10 reason \"4 or more orders to this address\"
}

risk device {
  when orders(customer.device, 1 h) > 5
  score 1
}

decide risk {
  score >= 40 => review
  else => accept
}

test \"4 customers: fires\" {
  given { order: { address: \"a-1\" } }
  counter customers(order.address, 30 d) = 4
  expect risk score 40
  expect risk review
  expect fired many_accounts
  expect not fired busy_address
}

test \"3 customers: does not fire\" {
  given { order: { address: \"a-1\" } }
  counter customers(order.address, 30 d) = 3
  expect risk score 0
  expect not fired many_accounts
}

test \"4 orders from 1 customer: only the orders counter fires\" {
  given { order: { address: \"a-1\" } }
  counter orders(order.address, 30 d) = 4
  counter customers(order.address, 30 d) = 1
  expect risk score 10
  expect fired busy_address
  expect not fired many_accounts
}

test \"all three\" {
  given { order: { address: \"a-1\" }, customer: { device: \"d-1\" } }
  counter orders(customer.device, 1 h) = 6
  counter customers(order.address, 30 d) = 5
  counter orders(order.address, 30 d) = 7
  expect risk score 51
  expect fired device
}
";
    passes(text);
    let r = ruleset(text);
    let compiled = weir_compiler::compile(&r).unwrap();
    let needs: Vec<(&str, &str, i64)> = compiled
        .manifest
        .velocities
        .iter()
        .map(|n| (n.kind.name(), n.key_path.as_str(), n.window_seconds))
        .collect();
    assert_eq!(
        needs,
        vec![
            ("customers", "order.address", 2_592_000),
            ("orders", "order.address", 2_592_000),
            ("orders", "customer.device", 3600),
        ]
    );
    // The slots as the interpreter reads them: one test's facts, slot by slot.
    let test = &r.tests[3];
    let facts = weir_compiler::testing::facts_of(test, &compiled);
    assert_eq!(facts.counters, vec![5, 7, 6]);
}

#[test]
fn constraints_block_beats_forbid_beats_require() {
    passes(
        "ruleset t currency CNY
attribute item.flammable: bool = false
attribute item.battery_wh: energy = 0 Wh

constraint no_air {
  when any(i in shipment.items where i.flammable)
  forbid mode air
  require packaging \"sealed-bag\"
}

constraint big_battery {
  when any(i in shipment.items where i.battery_wh > 100 Wh)
  block \"lithium over 100 Wh\"
}

test \"perfume goes by ground in a sealed bag\" {
  given {
    shipment: { mode: air, items: [{ sku: \"P\", flammable: true }] }
  }
  expect forbid mode air
  expect mode ground
  expect packaging \"sealed-bag\"
  expect no block
}

test \"101 Wh is blocked\" {
  given {
    shipment: { items: [{ sku: \"B\", battery_wh: 101 Wh }] }
  }
  expect blocked
}

test \"exactly 100 Wh ships\" {
  given {
    shipment: { items: [{ sku: \"B\", battery_wh: 100 Wh }] }
  }
  expect no block
}
",
    );
}

#[test]
fn route_ranks_eligible_locations() {
    passes(
        "ruleset t currency CNY
route default {
  consider warehouse, store within 5 km
  score -1.0 * location.distance_km + 0.5 * location.margin_pct
}

test \"the nearer store beats the far warehouse\" {
  given {
    locations: [
      { id: \"WH1\", kind: warehouse, distance: 40 km, distance_km: 40, margin_pct: 30 },
      { id: \"S1\", kind: store, distance: 3 km, distance_km: 3, margin_pct: 20 },
      { id: \"S2\", kind: store, distance: 8 km, distance_km: 8, margin_pct: 50 }
    ]
  }
  expect route \"S1\"
}

test \"no location\" {
  given {
    locations: [{ id: \"F1\", kind: front_warehouse, distance: 1 km }]
  }
  expect no route
}
",
    );
}

#[test]
fn equal_priorities_keep_file_order_in_an_exclusive_group() {
    passes(&format!(
        "{PRELUDE}
promotion first {{
  group g exclusive
  then discount order ¥5
}}

promotion second {{
  group g exclusive
  then discount order ¥7
}}

test \"the first declared wins a tie\" {{
  given {{
    order: {{ items: [{{ sku: \"A\", qty: 1, price: ¥100 }}] }}
  }}
  expect discount ¥5
  expect fired first
  expect not fired second
}}
"
    ));
}

#[test]
fn tables_match_the_first_row_and_comparison_patterns() {
    passes(&format!(
        "{PRELUDE}
table multiplier(customer.tier, order.subtotal) -> decimal {{
  gold,  >= ¥1000 => 3
  gold,  _        => 2
  _,     >= ¥1000 => 1.5
  _,     _        => 1
}}

promotion points {{
  then points multiplier multiplier(customer.tier, order.subtotal)
}}

test \"gold and big\" {{
  given {{
    customer: {{ tier: gold }},
    order: {{ items: [{{ sku: \"A\", qty: 1, price: ¥1200 }}] }}
  }}
  expect points multiplier 3
}}

test \"gold and small\" {{
  given {{
    customer: {{ tier: gold }},
    order: {{ items: [{{ sku: \"A\", qty: 1, price: ¥12 }}] }}
  }}
  expect points multiplier 2
}}

test \"basic and big\" {{
  given {{
    order: {{ items: [{{ sku: \"A\", qty: 1, price: ¥1200 }}] }}
  }}
  expect points multiplier 1.5
}}
"
    ));
}

#[test]
fn sops_trigger_on_their_event_when_the_condition_holds() {
    passes(
        "ruleset t currency CNY
attribute item.liquid_ml: volume = 0 ml

sop liquids_at_store {
  on shipment.assigned when location.kind == store and any(i in shipment.items where i.liquid_ml > 0 ml)
  step scan role picker within 15 min \"Scan the lot\"
  step photo role packer within 10 min requires photo
  on timeout escalate store_manager
}

sop welcome_call {
  on order.placed when customer.order_count == 0
  step call role service within 1 d
}

test \"a store shipment with a serum\" {
  given {
    location: { id: \"S1\", kind: store },
    shipment: { items: [{ sku: \"SERUM\", liquid_ml: 30 ml }] },
    customer: { order_count: 3 }
  }
  expect sop liquids_at_store
  expect not fired welcome_call
}

test \"a warehouse shipment triggers nothing\" {
  given {
    location: { id: \"W1\", kind: warehouse },
    shipment: { items: [{ sku: \"SERUM\", liquid_ml: 30 ml }] },
    customer: { order_count: 3 }
  }
  expect no sop
}
",
    );
}

#[test]
fn item_discounts_per_unit_never_exceed_the_line() {
    passes(&format!(
        "{PRELUDE}
promotion five_off_each {{
  then discount items where item.category == \"tools\" by ¥5
}}

test \"¥5 off each of 3 units\" {{
  given {{
    order: {{ items: [{{ sku: \"T\", category: \"tools\", qty: 3, price: ¥20 }}, {{ sku: \"S\", category: \"skincare\", qty: 1, price: ¥50 }}] }}
  }}
  expect discount ¥15
}}

test \"never more than the line\" {{
  given {{
    order: {{ items: [{{ sku: \"T\", category: \"tools\", qty: 2, price: ¥3 }}] }}
  }}
  expect discount ¥6
}}
"
    ));
}

#[test]
fn tables_keyed_by_order_line_fields_decide_per_line() {
    passes(&format!(
        "{PRELUDE}
table member_rate(customer.tier, item.category) -> percent {{
  gold, \"skincare\" => 10%
  gold, \"makeup\"   => 5%
  _,    _          => 0%
}}

table min_shelf_life(item.category) -> duration {{
  \"dairy\" => 3 d
  _       => 1 d
}}

promotion member_price {{
  when any(item in order.items where member_rate(customer.tier, item.category) > 0%)
  then discount items where member_rate(customer.tier, item.category) > 0% by member_rate(customer.tier, item.category)
}}

constraint short_dated {{
  when any(line in shipment.items where line.cold_chain and now + location.eta + min_shelf_life(line.category) > 2026-03-17T18:00:00+08:00)
  block \"less shelf life left than the category needs\"
}}

test \"each line gets its own category's rate\" {{
  given {{
    customer: {{ tier: gold }},
    order: {{
      items: [
        {{ sku: \"S\", category: \"skincare\", qty: 1, price: ¥200 }},
        {{ sku: \"M\", category: \"makeup\", qty: 2, price: ¥50 }},
        {{ sku: \"F\", category: \"fragrance\", qty: 1, price: ¥500 }}
      ]
    }}
  }}
  expect discount ¥25
  expect fired member_price
}}

test \"no line has a rate\" {{
  given {{
    customer: {{ tier: basic }},
    order: {{ items: [{{ sku: \"S\", category: \"skincare\", qty: 1, price: ¥200 }}] }}
  }}
  expect no discount
  expect not fired member_price
}}

test \"dairy needs three days, other lines one\" {{
  given {{
    now: 2026-03-14T17:30:00+08:00,
    shipment: {{ items: [{{ sku: \"MILK\", category: \"dairy\", cold_chain: true }}] }},
    location: {{ eta: 30 min }}
  }}
  expect no block
}}

test \"dairy one second later is short-dated\" {{
  given {{
    now: 2026-03-14T17:30:01+08:00,
    shipment: {{ items: [{{ sku: \"MILK\", category: \"dairy\", cold_chain: true }}] }},
    location: {{ eta: 30 min }}
  }}
  expect blocked
}}

test \"a one-day category is fine then\" {{
  given {{
    now: 2026-03-14T17:30:01+08:00,
    shipment: {{ items: [{{ sku: \"SALAD\", category: \"greens\", cold_chain: true }}] }},
    location: {{ eta: 30 min }}
  }}
  expect no block
}}
"
    ));
}

#[test]
fn gift_skus_come_from_the_rules_or_from_the_facts() {
    // The rules' own SKU is one of the module's strings; the customer's favourite is
    // interned from the facts. Both come back as text.
    passes(
        "ruleset t currency CNY
attribute customer.favourite: string = \"\"

promotion sample_of_favourite {
  when customer.favourite != \"\"
  then gift customer.favourite qty 2
}

promotion house_sample {
  when order.subtotal > ¥0
  then gift \"HOUSE-5ML\"
}

test \"a customer with a favourite gets it and the house sample\" {
  given {
    order: { items: [{ sku: \"A\", price: ¥10, qty: 1 }] },
    customer: { favourite: \"ROSE-5ML\" }
  }
  expect gift \"ROSE-5ML\" qty 2
  expect gift \"HOUSE-5ML\" qty 1
}

test \"a customer without one gets the house sample\" {
  given { order: { items: [{ sku: \"A\", price: ¥10, qty: 1 }] } }
  expect gift \"HOUSE-5ML\" qty 1
  expect not fired sample_of_favourite
}
",
    );
}
