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

const BEAUTY: &str = "rulesets/beauty_flagship";
const ORDER: &str = "rulesets/beauty_flagship/examples/order.json";

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
    let out = weir(&["test", "--coverage", "--coverage-min", "100", BEAUTY]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("not covered:"));
    assert!(text(&out.stderr).contains("below the required 100%"));
    let out = weir(&["test", "--coverage-min", "10", BEAUTY]);
    assert_eq!(out.status.code(), Some(0));
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
}

fn eval_with(facts: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("facts.json");
    std::fs::write(&path, facts).unwrap();
    let out = weir(&[
        "eval",
        "--ruleset",
        BEAUTY,
        "--input",
        path.to_str().unwrap(),
    ]);
    no_panic(&out);
    out
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
    assert_eq!(
        json["promotions"]["applied"][0]["promotion"],
        "spend_299_save_50"
    );
}
