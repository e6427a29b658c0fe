//! Bad input never panics: pathological files get a diagnostic, and arbitrary or
//! mutated input goes through the parser, checker and formatter without a crash.
//! Tests run on 2 MiB threads, so a recursion that is not bounded shows up here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use weir_dsl::{check, decode_utf8, fmt::format_file, Code, SourceText};

const EXAMPLE: &str = include_str!("../../rulesets/beauty/rules.weir");

fn codes(text: &str) -> Vec<Code> {
    check(&[SourceText {
        name: "input.weir".into(),
        text: text.to_string(),
    }])
    .diagnostics
    .into_iter()
    .map(|d| d.code)
    .collect()
}

fn wrapped(expr: &str) -> String {
    format!("ruleset r currency CNY\npromotion p {{\n  when {expr}\n  then discount order ¥1\n}}\n")
}

#[test]
fn empty_file_is_a_missing_header() {
    assert_eq!(codes(""), vec![Code::MissingHeader]);
    assert_eq!(
        codes("\n\n   // only a comment\n"),
        vec![Code::MissingHeader]
    );
}

#[test]
fn ten_thousand_nested_parentheses_hit_the_nesting_limit() {
    let expr = format!(
        "{}order.subtotal >= ¥1{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert!(codes(&wrapped(&expr)).contains(&Code::NestingTooDeep));
}

#[test]
fn deep_brackets_of_every_kind_hit_the_nesting_limit() {
    let lists = format!(
        "ruleset r currency CNY\ntest \"t\" {{ given {}{} }}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert!(codes(&lists).contains(&Code::NestingTooDeep));
    let objects = format!(
        "ruleset r currency CNY\ntest \"t\" {{ given {{ order: {} }} }}\n",
        "{ a: ".repeat(5000) + &"}".repeat(5000)
    );
    assert!(codes(&objects).contains(&Code::NestingTooDeep));
}

#[test]
fn nested_ifs_hit_the_nesting_limit() {
    let expr = format!(
        "{}true{}",
        "if true then ".repeat(5000),
        " else false".repeat(5000)
    );
    assert!(codes(&wrapped(&expr)).contains(&Code::NestingTooDeep));
}

#[test]
fn long_operator_chains_hit_the_depth_limit_without_recursion() {
    let sum = vec!["order.subtotal"; 50_000].join(" + ");
    assert!(codes(&wrapped(&format!("{sum} > ¥1"))).contains(&Code::NestingTooDeep));
    let nots = format!("{}true", "not ".repeat(50_000));
    assert!(codes(&wrapped(&nots)).contains(&Code::NestingTooDeep));
    let negs = format!("{}¥1 < order.subtotal", "-".repeat(50_000));
    assert!(codes(&wrapped(&negs)).contains(&Code::NestingTooDeep));
    let fields = format!("order{} == 1", ".x".repeat(50_000));
    assert!(codes(&wrapped(&fields)).contains(&Code::NestingTooDeep));
}

#[test]
fn a_chain_within_the_limit_is_fine() {
    let sum = vec!["order.subtotal"; 200].join(" + ");
    assert_eq!(codes(&wrapped(&format!("{sum} > ¥1"))), vec![]);
}

#[test]
fn a_line_of_100_000_characters_is_checked() {
    let names: Vec<String> = (0..12_000).map(|i| format!("\"c{i}\"")).collect();
    let expr = format!("order.channel in [{}]", names.join(", "));
    let text = wrapped(&expr);
    assert!(text.lines().any(|l| l.len() > 100_000));
    assert_eq!(codes(&text), vec![]);
}

#[test]
fn nul_bytes_are_reported() {
    let text = wrapped("order.channel == \"a\0b\"");
    assert!(codes(&text).contains(&Code::ForbiddenCharacter));
    let text = format!("{}\0\0\0", EXAMPLE);
    assert!(codes(&text).contains(&Code::ForbiddenCharacter));
}

/// A bare carriage return inside a string (the prescan allows `\r` for CRLF files) is
/// written by the formatter as `\u{000D}`, and that escape reads back as the same
/// string (found by `mutated_valid_files_never_panic`). Escapes of characters a rule
/// file may not hold stay errors.
#[test]
fn a_carriage_return_in_a_string_survives_formatting() {
    let text = "ruleset r currency CNY\nconstraint c {\n  block \"no\rway\"\n}\n";
    assert!(codes(text).is_empty(), "{:?}", codes(text));
    let formatted = format_file(text).unwrap();
    assert!(formatted.contains("\"no\\u{000D}way\""), "{formatted}");
    assert_eq!(format_file(&formatted).unwrap(), formatted);
    assert!(codes(&formatted).is_empty(), "{:?}", codes(&formatted));
    let nul = "ruleset r currency CNY\nconstraint c {\n  block \"no\\u{0000}way\"\n}\n";
    assert!(!codes(nul).is_empty());
}

#[test]
fn unterminated_string_at_end_of_file() {
    let text = "ruleset r currency CNY\nconstraint c {\n  block \"no";
    let found = codes(text);
    assert!(found.contains(&Code::UnterminatedString), "{found:?}");
}

#[test]
fn invalid_utf8_is_a_diagnostic_with_the_offset() {
    let mut bytes = b"ruleset r currency CNY\n// caf".to_vec();
    bytes.extend_from_slice(&[0xE9, b'\n']);
    let error = decode_utf8(&bytes).unwrap_err();
    assert_eq!(error.code, Code::InvalidUtf8);
    assert_eq!(error.span.start as usize, 29);
}

#[test]
fn a_50_mb_file_is_refused_with_a_clear_error() {
    let text = "// filler\n".repeat(5 * 1024 * 1024);
    assert!(text.len() >= 50 * 1024 * 1024);
    assert_eq!(codes(&text), vec![Code::FileTooLarge]);
}

#[test]
fn huge_numbers_are_errors_not_overflows() {
    let found = codes(&wrapped("order.subtotal >= ¥99999999999999999999999"));
    assert_eq!(found, vec![Code::InvalidNumber]);
    let found = codes(&wrapped("count(i in order.items) > 99999999999999999999"));
    assert_eq!(found, vec![Code::InvalidNumber]);
}

const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    "==",
    "=>",
    "->",
    ">=",
    "¥",
    "%",
    "\"",
    "//",
    "\n",
    " ",
    "and",
    "or",
    "not",
    "in",
    "if",
    "then",
    "else",
    "when",
    "none",
    "any",
    "sum",
    "for",
    "where",
    "item",
    "order",
    "ml",
    "km",
    "10",
    "1.5",
    "¥99",
    "promotion",
    "table",
    "test",
    "given",
    "expect",
    "_",
    "中文",
    "\0",
    "\\",
    "\t",
];

fn mutate(text: &str, edits: &[(usize, usize, usize)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for &(kind, at, arg) in edits {
        let len = bytes.len().max(1);
        let at = at % len;
        match kind % 4 {
            0 => {
                let end = (at + arg % 40).min(bytes.len());
                bytes.drain(at.min(bytes.len())..end);
            }
            1 => {
                let token = TOKENS[arg % TOKENS.len()].as_bytes();
                let at = at.min(bytes.len());
                bytes.splice(at..at, token.iter().copied());
            }
            2 => {
                let end = (at + arg % 60).min(bytes.len());
                let copy = bytes[at.min(bytes.len())..end].to_vec();
                let at = (at * 7 + arg) % len;
                let at = at.min(bytes.len());
                bytes.splice(at..at, copy);
            }
            _ => {
                if at < bytes.len() {
                    bytes[at] = (arg % 256) as u8;
                }
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn run_everything(text: &str) {
    let _ = check(&[SourceText {
        name: "fuzz.weir".into(),
        text: text.to_string(),
    }]);
    if let Ok(formatted) = format_file(text) {
        // A file that formats must still parse after formatting.
        assert!(
            format_file(&formatted).is_ok(),
            "formatted text no longer parses:\n{formatted}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        match decode_utf8(&bytes) {
            Ok(text) => run_everything(text),
            Err(diagnostic) => prop_assert_eq!(diagnostic.code, Code::InvalidUtf8),
        }
    }

    #[test]
    fn arbitrary_token_soup_never_panics(picks in proptest::collection::vec(0usize..TOKENS.len(), 0..400)) {
        let text: String = picks.iter().map(|i| TOKENS[*i]).collect::<Vec<_>>().join(" ");
        run_everything(&text);
        run_everything(&format!("ruleset r currency CNY\npromotion p {{ when {text} }}"));
    }

    #[test]
    fn mutated_valid_files_never_panic(edits in proptest::collection::vec((0usize..4, 0usize..10_000, 0usize..10_000), 1..8)) {
        run_everything(&mutate(EXAMPLE, &edits));
    }
}
