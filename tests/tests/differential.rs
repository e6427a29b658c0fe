//! The differential property test: random well-typed rulesets and random facts, run
//! through the reference interpreter and the compiled WebAssembly module; both must
//! produce the same output words, or both must fail. The generator and the comparison
//! live in `weir_tests::differential`.
//!
//! `WEIR_DIFF_RULESETS` (default 400) rulesets × `WEIR_DIFF_FACTS` (default 12) fact
//! sets each, from `WEIR_DIFF_SEED`. For long runs use the binary, on both cores:
//! `cargo run --release -p weir-tests --bin weir-diff -- --cases 20000`.
#![allow(clippy::unwrap_used, clippy::panic)]

use weir_runtime::{Engine, EngineConfig};
use weir_tests::differential::{check_ruleset, ruleset_seed, Config, Tally};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn interpreter_and_webassembly_agree_on_random_rulesets() {
    let defaults = Config::default();
    let config = Config {
        rulesets: env("WEIR_DIFF_RULESETS", defaults.rulesets),
        facts_per_ruleset: env("WEIR_DIFF_FACTS", defaults.facts_per_ruleset),
        seed: env("WEIR_DIFF_SEED", defaults.seed),
    };
    let engine = Engine::new(&EngineConfig::default()).unwrap();
    let mut tally = Tally::default();
    for n in 0..config.rulesets {
        let seed = ruleset_seed(config.seed, n);
        match check_ruleset(&engine, seed, config.facts_per_ruleset) {
            Ok(t) => tally.add(t),
            Err(failure) => panic!("{failure}"),
        }
    }
    assert_eq!(tally.compared, config.rulesets * config.facts_per_ruleset);
    // Most cases must evaluate (not trap), or the comparison says little.
    assert!(
        tally.both_ok * 2 > tally.compared,
        "only {} of {} evaluations succeeded",
        tally.both_ok,
        tally.compared
    );
    eprintln!(
        "{} evaluations compared, {} without a trap",
        tally.compared, tally.both_ok
    );
}

/// A replayed seed generates the same ruleset and facts, so a failure's seed is enough
/// to reproduce it.
#[test]
fn a_seed_replays_the_same_cases() {
    let engine = Engine::new(&EngineConfig::default()).unwrap();
    let seed = ruleset_seed(Config::default().seed, 7);
    let first = check_ruleset(&engine, seed, 5).unwrap();
    let again = check_ruleset(&engine, seed, 5).unwrap();
    assert_eq!(first, again);
    assert_eq!(first.compared, 5);
}

/// The generator reaches every construct the compiler lowers differently: were one to
/// drop out (a typo in a weight, a scope that never sees it), the comparison above
/// would silently stop covering it.
#[test]
fn the_generator_writes_every_construct() {
    let defaults = Config::default();
    let texts: String = (0..defaults.rulesets)
        .map(|n| weir_tests::differential::ruleset_text(ruleset_seed(defaults.seed, n)))
        .collect();
    let constructs = [
        // Items and clauses.
        "\npromotion ",
        "group g0 exclusive",
        "group s1\n",
        "  limit ",
        "  budget ¥",
        "then discount order ¥",
        "then discount order (",
        "%\n",
        " max ¥",
        "then discount items where",
        "then discount items by ",
        " by ¥",
        "then gift \"",
        "then points multiplier",
        "\nconstraint ",
        "forbid mode",
        "require mode",
        "require packaging",
        "block \"",
        "\nrisk ",
        "reason \"",
        "review \"",
        "reject \"",
        "\ndecide risk",
        "\nroute main",
        "front_warehouse within",
        "pickup when",
        "prefer fewer splits",
        "  exclude store",
        "  exclude when",
        "\nsop ",
        "on order.placed",
        "on order.cancelled",
        "on shipment.assigned",
        "on shipment.shipped",
        "on shipment.delivered",
        "on return.received",
        "on timeout escalate",
        // Expressions.
        "orders(customer.device",
        "customers(order.address",
        "tier_points(",
        "line_rate(",
        "shelf(",
        "spend_band(",
        "default(order.promised_at, now)",
        "default(order.coupon",
        "max(",
        "min(",
        "(-",
        "(if ",
        "any(",
        "all(",
        "sum(",
        "count(",
        " not in [",
        "customer.device in blocked",
        " kWh",
        " Wh",
        " ml",
        " kg",
        " km",
        " min",
        "location.eta",
        "location.distance ",
        "location.margin_pct",
        "location.id == order.fulfilled_from",
        "shipment.weight",
        "shipment.mode",
        "carrier.hazmat",
        "now - order.placed_at",
        "+08:00",
        "order.city == \"",
        " != none",
        " == none",
    ];
    let missing: Vec<&str> = constructs
        .iter()
        .copied()
        .filter(|c| !texts.contains(c))
        .collect();
    assert!(missing.is_empty(), "the generator never wrote {missing:?}");
}
