//! `weir test`, `weir build` and `weir eval` as processes: exit codes, output shapes,
//! and bad facts reported with their path rather than crashing an engine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn no_panic(output: &Output) {
    assert!(
        !text(&output.stderr).contains("panicked"),
        "{}",
        text(&output.stderr)
    );
}

const BEAUTY: &str = "rulesets/beauty";
const ORDER: &str = "rulesets/beauty/examples/order.json";

#[test]
fn test_runs_both_engines_and_passes() {
    let out = weir(&["test", BEAUTY]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("interpreter + wasm"));
}

#[test]
fn a_failing_expectation_is_reported_with_expected_and_found() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.weir"),
        "ruleset t currency CNY\n\npromotion p {\n  then discount order ¥10\n}\n\ntest \"wrong\" {\n  given {\n    order: { items: [{ sku: \"A\", qty: 1, price: ¥100 }] }\n  }\n  expect discount ¥11\n}\n",
    )
    .unwrap();
    let out = weir(&["test", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("FAIL"), "{stderr}");
    assert!(
        stderr.contains("expected discount ¥11.00, found ¥10.00"),
        "{stderr}"
    );
    assert!(
        stderr.contains(":11:3"),
        "the failure names the expectation's line: {stderr}"
    );
}

#[test]
fn coverage_min_fails_below_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.weir"),
        "ruleset t currency CNY\n\npromotion tested {\n  then discount order ¥10\n}\n\nrisk untested {\n  when order.subtotal > ¥1000\n  review \"big\"\n}\n\ntest \"small order\" {\n  given {\n    order: { items: [{ sku: \"A\", qty: 1, price: ¥100 }] }\n  }\n  expect discount ¥10\n}\n",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let out = weir(&["test", "--coverage", "--coverage-min", "100", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("not covered: `untested`"));
    assert!(text(&out.stdout).contains("coverage 50%"));
    assert!(text(&out.stderr).contains("below the required 100%"));
    let out = weir(&["test", "--coverage-min", "50", path]);
    assert_eq!(out.status.code(), Some(0));
}

/// The four business rulesets (issue #5): every test passes on both engines and every
/// rule is fired by at least one test.
#[test]
fn every_example_ruleset_passes_its_tests_with_full_coverage() {
    let out = weir(&["test", "--coverage-min", "100", "rulesets/"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for ruleset in ["beauty", "chain_store", "fresh_grocery", "livestream"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{ruleset}: ")))
            .unwrap_or_else(|| panic!("no summary for {ruleset}: {stdout}"));
        assert!(
            line.contains(" 0 failed (interpreter + wasm); coverage 100% of "),
            "{line}"
        );
        // At least 25 tests per business.
        let tests: usize = line
            .trim_start_matches(&format!("{ruleset}: "))
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(tests >= 25, "{ruleset} has only {tests} tests");
    }
    assert!(stdout.contains("coverage 100.0%"), "{stdout}");
}

/// What CI runs on the rulesets: clean without warnings, in canonical layout.
#[test]
fn example_rulesets_check_without_warnings_and_are_formatted() {
    let out = weir(&["check", "--deny-warnings", "rulesets/"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no problems"));
    let out = weir(&["fmt", "--check", "rulesets/"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
}

#[test]
fn build_emits_wasm_wat_and_cwasm() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("b.wasm");
    let out = weir(&["build", BEAUTY, "-o", wasm.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let bytes = std::fs::read(&wasm).unwrap();
    assert_eq!(&bytes[..4], b"\0asm");
    let out = weir(&["build", BEAUTY, "--emit", "wat"]);
    assert!(text(&out.stdout).starts_with("(module"));
    let cwasm = dir.path().join("b.cwasm");
    let out = weir(&[
        "build",
        BEAUTY,
        "--emit",
        "cwasm",
        "-o",
        cwasm.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(std::fs::metadata(&cwasm).unwrap().len() > bytes.len() as u64);
    let out = weir(&["build", BEAUTY]);
    assert_eq!(out.status.code(), Some(2), "binary output needs -o");
    let nowhere = dir.path().join("no-such-folder").join("b.wasm");
    let out = weir(&["build", BEAUTY, "-o", nowhere.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an output that cannot be written"
    );
    assert!(
        text(&out.stderr).contains(nowhere.to_str().unwrap()),
        "the error names the file: {}",
        text(&out.stderr)
    );
}

fn eval_json(args: &[&str]) -> serde_json::Value {
    let out = weir(args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn eval_prints_decisions_and_both_engines_agree() {
    let wasm = eval_json(&["eval", "--ruleset", BEAUTY, "--input", ORDER]);
    let interpreted = eval_json(&[
        "eval",
        "--ruleset",
        BEAUTY,
        "--input",
        ORDER,
        "--engine",
        "interpreter",
    ]);
    assert_eq!(wasm, interpreted);
    assert_eq!(wasm["promotions"]["total_discount"], "¥82.00");
    assert_eq!(wasm["promotions"]["gifts"][0]["sku"], "SAMPLE-5ML");
    assert_eq!(wasm["risk"]["decision"], "accept");
    // A skipped promotion carries the reason in words and the decision record's code.
    let skipped = wasm["promotions"]["skipped"].as_array().unwrap();
    let unmet = skipped
        .iter()
        .find(|s| s["promotion"] == "spend_599_save_120")
        .unwrap();
    assert_eq!(unmet["reason"], "condition not met");
    assert_eq!(unmet["code"], "not_eligible");
}

#[test]
fn eval_explain_shows_each_rule_and_the_facts_it_read() {
    let json = eval_json(&["eval", "--ruleset", BEAUTY, "--input", ORDER, "--explain"]);
    let rules = json["explain"].as_array().unwrap();
    let spend = rules
        .iter()
        .find(|r| r["rule"] == "spend_299_save_50")
        .unwrap();
    assert_eq!(spend["fired"], true);
    let saw: Vec<&serde_json::Value> = spend["saw"].as_array().unwrap().iter().collect();
    assert!(
        saw.iter()
            .any(|s| s["fact"] == "order.subtotal" && s["value"] == "¥409.00"),
        "{saw:?}"
    );
    let blocked = rules
        .iter()
        .find(|r| r["rule"] == "blocked_device")
        .unwrap();
    assert_eq!(blocked["fired"], false);
    // Each clause of a condition, quoted, with its value.
    assert_eq!(
        spend["clauses"],
        serde_json::json!([
            {"clause": "order.channel in [\"tmall\", \"miniapp\", \"livestream\"]", "value": "true"},
            {"clause": "order.subtotal >= ¥299", "value": "true"},
        ])
    );
    assert_eq!(
        blocked["clauses"],
        serde_json::json!([{"clause": "customer.device in blocked_devices", "value": "false"}])
    );
}

/// A clause's value comes from the facts' runtime lists, and every clause of a rule is
/// shown, not only those up to the first false one.
#[test]
fn eval_explain_clauses_read_the_runtime_lists() {
    let order =
        std::fs::read_to_string(format!("{}/../{ORDER}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let out = eval_with_args(&order.replace("\"dev-7\"", "\"dev-666\""), &["--explain"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules = json["explain"].as_array().unwrap();
    let rule = |name: &str| rules.iter().find(|r| r["rule"] == name).unwrap().clone();
    let blocked = rule("blocked_device");
    assert_eq!(blocked["fired"], true);
    assert_eq!(blocked["clauses"][0]["value"], "true");
    // No coupon in this order: the first clause is false, the second still shown.
    let abuser = rule("coupon_abuser_blocklist");
    assert_eq!(abuser["fired"], false);
    assert_eq!(
        abuser["clauses"],
        serde_json::json!([
            {"clause": "order.coupon != none", "value": "false"},
            {"clause": "customer.id in coupon_abusers", "value": "false"},
        ])
    );
}

/// `weir eval` of the beauty ruleset over `facts`, with `more` arguments.
fn eval_with_args(facts: &str, more: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("facts.json");
    std::fs::write(&path, facts).unwrap();
    let mut args = vec![
        "eval",
        "--ruleset",
        BEAUTY,
        "--input",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(more);
    let out = weir(&args);
    no_panic(&out);
    out
}

fn eval_with(facts: &str) -> Output {
    eval_with_args(facts, &[])
}

/// `counters` entries with `"kind": "customers"` fill `customers(KEY, WINDOW)`; without
/// `kind` they are `orders(KEY, WINDOW)` counters, a different slot.
#[test]
fn eval_reads_customers_counters_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let eval = |counters: &str, engine: &str| -> Output {
        let path = dir.path().join("facts.json");
        let facts = format!(
            r#"{{"customer": {{"id": "c-9", "account_age": "400 d"}},
                "order": {{"address": "addr-sz-7788",
                          "items": [{{"sku": "TOWEL-SET", "category": "household", "qty": 1, "price": 89}}]}},
                "counters": {counters}}}"#
        );
        std::fs::write(&path, facts).unwrap();
        let out = weir(&[
            "eval",
            "--ruleset",
            "rulesets/chain_store",
            "--input",
            path.to_str().unwrap(),
            "--engine",
            engine,
            "--explain",
        ]);
        no_panic(&out);
        out
    };
    let json = |out: Output| -> serde_json::Value {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let fired = |j: &serde_json::Value| -> Vec<String> {
        j["risk"]["fired"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap().to_string())
            .collect()
    };
    let both = r#"[{"kind": "customers", "key": "order.address", "window": "30 d", "count": 4},
                   {"key": "order.address", "window": "1 d", "count": 5}]"#;
    let wasm = json(eval(both, "wasm"));
    assert_eq!(wasm, json(eval(both, "interpreter")));
    assert_eq!(
        fired(&wasm),
        vec!["many_accounts_one_address", "address_velocity"]
    );
    assert_eq!(wasm["risk"]["score"], 70);
    let rule = wasm["explain"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "many_accounts_one_address")
        .unwrap();
    assert_eq!(
        rule["saw"][0]["fact"],
        "customers(order.address, 2592000 s)"
    );
    assert_eq!(rule["saw"][0]["value"], "4");

    // Below the threshold; and the same numbers as `orders` counters (no `kind`, or
    // `"kind": "orders"`) do not fill the customers slot.
    for counters in [
        r#"[{"kind": "customers", "key": "order.address", "window": "30 d", "count": 3}]"#,
        r#"[{"key": "order.address", "window": "30 d", "count": 9}]"#,
        r#"[{"kind": "orders", "key": "order.address", "window": "30 d", "count": 9}]"#,
        r#"[{"kind": "customers", "key": "order.address", "window": "1 d", "count": 9}]"#,
    ] {
        let j = json(eval(counters, "wasm"));
        assert!(fired(&j).is_empty(), "{counters}: {j}");
    }

    let out = eval(
        r#"[{"kind": "accounts", "key": "order.address", "window": "30 d", "count": 4}]"#,
        "wasm",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("counters[0]") && stderr.contains(r#"`kind` is "orders" or "customers""#),
        "{stderr}"
    );
}

#[test]
fn bad_facts_are_errors_that_name_the_path() {
    let cases = [
        (
            r#"{"order": {"items": [{"sku": "A", "qty": "two"}]}}"#,
            "order.items[0].qty",
        ),
        (r#"{"order": {"itemz": []}}"#, "did you mean `items`?"),
        (r#"{"customer": {"tier": "platinum"}}"#, "customer.tier"),
        (
            r#"{"order": {"items": [{"sku": "A", "qty": -1}]}}"#,
            "must not be negative",
        ),
        (
            r#"{"order": {"items": [{"sku": "A", "price": "$5"}]}}"#,
            "order.items[0].price",
        ),
        (
            r#"{"order": {"channel": null}}"#,
            "only allowed for optional fields",
        ),
        (r#"{"orders": {}}"#, "unknown key"),
        (r#"[1, 2]"#, "JSON object"),
        (r#"{"order": "#, "is not JSON"),
    ];
    for (facts, expected) in cases {
        let out = eval_with(facts);
        assert_eq!(out.status.code(), Some(1), "{facts}");
        assert!(
            text(&out.stderr).contains(expected),
            "{facts}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn missing_fields_take_defaults_and_absent_optionals_are_fine() {
    let out = eval_with(
        r#"{"order": {"items": [{"sku": "SERUM-30", "qty": 1, "price": 10}]}, "customer": {"device": null}}"#,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn an_order_of_10000_lines_evaluates() {
    let items: Vec<String> = (0..10_000)
        .map(|i| {
            format!(r#"{{"sku": "S{i}", "category": "skincare", "qty": 1, "price": "¥1.00"}}"#)
        })
        .collect();
    let facts = format!(
        r#"{{"order": {{"channel": "tmall", "items": [{}]}}}}"#,
        items.join(",")
    );
    let out = eval_with(&facts);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // ¥10,000 of skincare: the top 满减 tier applies (highest priority, declared first).
    assert_eq!(
        json["promotions"]["applied"][0]["promotion"],
        "spend_599_save_120"
    );
}
