//! `weir check` speed on generated rulesets of 1k, 10k and 100k rules (issue #2's
//! target: 10k rules in under 1 s, growing linearly). Run with
//! `cargo bench -p weir-dsl --bench check`; the figures are in docs/benchmarks.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use weir_dsl::{check, SourceText};

/// A ruleset of `rules` rules spread over files of at most 5,000 rules, mixing every
/// rule kind the way a large merchant's generated ruleset would.
fn generate(rules: usize) -> Vec<SourceText> {
    let header = "ruleset generated currency CNY\n\n";
    let mut files = Vec::new();
    let mut text = String::from(header);
    text.push_str(
        "attribute item.liquid_ml: volume = 0 ml\nattribute item.flammable: bool = false\n\
         attribute customer.tier: enum(basic, silver, gold, black) = basic\nlist blocked_devices: string\n\n\
         table points_multiplier(customer.tier, order.channel) -> int {\n  gold, _ => 3\n  silver, \"store\" => 2\n  _, _ => 1\n}\n\n\
         decide risk {\n  score >= 80 => reject\n  score >= 50 => review\n  else => accept\n}\n\n\
         route default {\n  consider warehouse, store within 30 km\n  score -0.5 * location.distance_km - 2.0 * location.eta_hours\n}\n\n",
    );
    for i in 0..rules {
        if i > 0 && i % 5_000 == 0 {
            files.push(SourceText {
                name: format!("part{}.weir", files.len()),
                text: std::mem::replace(&mut text, String::from(header)),
            });
        }
        let rule = match i % 4 {
            0 => format!(
                "promotion promo_{i} {{\n  priority {p}\n  group g{g} exclusive\n  when order.channel in [\"tmall\", \"miniapp\"] and order.subtotal >= ¥{t}\n  then discount order ¥{d}\n  then points multiplier points_multiplier(customer.tier, order.channel)\n  limit 1 per customer per day\n  budget ¥200000\n}}\n\n",
                p = i % 100,
                g = i % 50,
                t = 100 + i % 900,
                d = 5 + i % 45
            ),
            1 => format!(
                "promotion items_{i} {{\n  when customer.tier in [gold, black] and sum(item.qty for item in order.items where item.sku == \"SKU-{i}\") >= 2\n  then discount items where item.category == \"cat{c}\" by {pct}%\n}}\n\n",
                c = i % 30,
                pct = 1 + i % 30
            ),
            2 => format!(
                "constraint hazmat_{i} {{\n  when any(item in shipment.items where item.flammable and item.liquid_ml > {ml} ml)\n  forbid mode air\n  require packaging \"sealed-bag\"\n}}\n\n",
                ml = i % 500
            ),
            _ => format!(
                "risk velocity_{i} {{\n  when orders(customer.device, 1 h) > {n} or customer.device in blocked_devices\n  score {s} reason \"many orders from one device\"\n}}\n\n",
                n = 3 + i % 10,
                s = 10 + i % 40
            ),
        };
        text.push_str(&rule);
    }
    files.push(SourceText {
        name: format!("part{}.weir", files.len()),
        text,
    });
    files
}

fn bench_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    group.sample_size(10);
    for rules in [1_000, 10_000, 100_000] {
        let sources = generate(rules);
        let bytes: usize = sources.iter().map(|s| s.text.len()).sum();
        let out = check(&sources);
        assert!(
            !out.has_errors(),
            "generated ruleset must check clean: {:?}",
            out.diagnostics.first()
        );
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(rules),
            &sources,
            |b, sources| b.iter(|| check(black_box(sources))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
