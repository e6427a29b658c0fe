//! Formatter tests: the example ruleset as a snapshot, one small case per layout rule,
//! and properties over generated programs (print → parse gives the same AST, format is
//! a fixed point, comments survive) and over arbitrary text (never a panic).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use proptest::sample::Index;
use weir_dsl::ast::*;
use weir_dsl::fmt::{format_file, print_file};
use weir_dsl::{parse_file, Span};

fn fmt(text: &str) -> String {
    match format_file(text) {
        Ok(out) => out,
        Err(diagnostics) => {
            let messages: Vec<&str> = diagnostics.iter().map(|d| d.message.as_str()).collect();
            panic!("did not parse:\n{text}\n{messages:#?}")
        }
    }
}

/// Formats `input`, expects `expected`, and expects `expected` to be a fixed point.
#[track_caller]
fn check(input: &str, expected: &str) {
    let out = fmt(input);
    assert_eq!(
        out, expected,
        "\n--- input ---\n{input}\n--- got ---\n{out}"
    );
    assert_eq!(fmt(&out), out, "not idempotent");
}

/// Formats an expression as an attribute default.
#[track_caller]
fn check_expr(input: &str, expected: &str) {
    check(
        &format!("attribute a.b: int = {input}\n"),
        &format!("attribute a.b: int = {expected}\n"),
    );
}

/// Wraps clause lines in a test block.
fn in_test(body: &str) -> String {
    format!("test \"t\" {{\n{body}}}\n")
}

#[track_caller]
fn rejects(input: &str) {
    assert!(format_file(input).is_err(), "should not format:\n{input}");
}

/// `Debug` of an AST with every span (`start..end`) removed.
fn strip_spans(debug: &str) -> String {
    let chars: Vec<char> = debug.chars().collect();
    let digits_from = |mut i: usize| {
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut out = String::with_capacity(debug.len());
    let mut i = 0;
    while i < chars.len() {
        let starts_run = chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_digit());
        if starts_run {
            let j = digits_from(i);
            if chars.get(j) == Some(&'.')
                && chars.get(j + 1) == Some(&'.')
                && chars.get(j + 2).is_some_and(|c| c.is_ascii_digit())
            {
                i = digits_from(j + 2);
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn items_without_spans(items: &[Item]) -> String {
    strip_spans(&format!("{items:#?}"))
}

// ---- the example ruleset ------------------------------------------------------------

#[test]
fn beauty_flagship() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../rulesets/beauty/rules.weir");
    let text = std::fs::read_to_string(path).unwrap();
    let once = fmt(&text);
    insta::assert_snapshot!("beauty_flagship", once);
    assert_eq!(fmt(&once), once, "not idempotent");
    let (before, _) = parse_file(&text);
    let (after, _) = parse_file(&once);
    assert_eq!(
        items_without_spans(&before.items),
        items_without_spans(&after.items)
    );
    let texts = |file: &SourceFile| {
        file.comments
            .iter()
            .map(|c| c.text.trim_end().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&before), texts(&after));
}

// ---- whitespace and blank lines -----------------------------------------------------

#[test]
fn header_is_followed_by_one_blank_line() {
    check(
        "ruleset shop currency CNY\nattribute item.a: int\n",
        "ruleset shop currency CNY\n\nattribute item.a: int\n",
    );
    check(
        "ruleset shop currency CNY\n\n\n\nlist xs: string\n",
        "ruleset shop currency CNY\n\nlist xs: string\n",
    );
}

#[test]
fn runs_of_one_line_items_stay_together() {
    check(
        "attribute item.a: int\nlist xs: string\nattribute item.b: bool = false\n",
        "attribute item.a: int\nlist xs: string\nattribute item.b: bool = false\n",
    );
}

#[test]
fn author_blank_lines_between_items_collapse_to_one() {
    check(
        "attribute item.a: int\n\n\n\nattribute item.b: int\n   \n\t\nlist xs: string\n",
        "attribute item.a: int\n\nattribute item.b: int\n\nlist xs: string\n",
    );
}

#[test]
fn block_items_get_a_blank_line_around_them() {
    check(
        "attribute item.a: int\npromotion p {\nwhen true\n}\npromotion q {\n}\nlist xs: string\n",
        "attribute item.a: int\n\npromotion p {\n  when true\n}\n\npromotion q {\n}\n\nlist xs: string\n",
    );
}

#[test]
fn blank_lines_inside_blocks() {
    check(
        "promotion p {\n\n  priority 1\n\n\n  when true\n  budget ¥5\n\n}\n",
        "promotion p {\n  priority 1\n\n  when true\n  budget ¥5\n}\n",
    );
}

#[test]
fn indentation_tabs_and_trailing_whitespace() {
    check(
        "promotion   p{\n\t\twhen   true   \n    priority 2}\n\n\n",
        "promotion p {\n  when true\n  priority 2\n}\n",
    );
}

#[test]
fn final_newline_is_added_once() {
    check("ruleset a currency CNY", "ruleset a currency CNY\n");
    check("ruleset a currency CNY\n\n\n", "ruleset a currency CNY\n");
}

#[test]
fn empty_file_and_whitespace_only_file() {
    check("", "");
    check("\n\n  \n", "");
}

#[test]
fn crlf_input_prints_lf() {
    check(
        "attribute a.b: int\r\n\r\nattribute a.c: int // x\r\n",
        "attribute a.b: int\n\nattribute a.c: int  // x\n",
    );
}

#[test]
fn byte_order_mark_is_dropped() {
    check(
        "\u{FEFF}ruleset a currency CNY\n",
        "ruleset a currency CNY\n",
    );
}

// ---- expressions --------------------------------------------------------------------

#[test]
fn operator_spacing() {
    check_expr("1+2*3-4/5", "1 + 2 * 3 - 4 / 5");
    check_expr("a==b", "a == b");
    check_expr("a!=b", "a != b");
    check_expr("a<b", "a < b");
    check_expr("a<=b", "a <= b");
    check_expr("a>b", "a > b");
    check_expr("a>=b", "a >= b");
    check_expr("a   in b", "a in b");
    check_expr("a   not   in b", "a not in b");
    check_expr("not   x", "not x");
    check_expr("not not x", "not not x");
    check_expr("- x", "-x");
    check_expr("- - x", "--x");
    check_expr("a - -b", "a - -b");
    check_expr("a . b . c", "a.b.c");
    check_expr("a and b or c", "a and b or c");
}

#[test]
fn calls_lists_and_comprehensions() {
    check_expr("f( a ,b )", "f(a, b)");
    check_expr("f( )", "f()");
    check_expr("f(a,)", "f(a)");
    check_expr("[ a , b , ]", "[a, b]");
    check_expr("[ ]", "[]");
    check_expr("any( x in c where p )", "any(x in c where p)");
    check_expr("all(x in c where p)", "all(x in c where p)");
    check_expr("count( x in c )", "count(x in c)");
    check_expr("sum( e for x in c where p )", "sum(e for x in c where p)");
    check_expr("sum(x.qty for x in c)", "sum(x.qty for x in c)");
    check_expr("if a then b else c", "if a then b else c");
    check_expr(
        "if a then b else if c then d else e",
        "if a then b else if c then d else e",
    );
    check_expr("f(a).b", "f(a).b");
}

#[test]
fn parentheses_are_kept_where_written() {
    check_expr("(a + b) * c", "(a + b) * c");
    check_expr("((a))", "((a))");
    check_expr("( a )+( b )", "(a) + (b)");
    check_expr("a - (b - c)", "a - (b - c)");
    check_expr("(a - b) - c", "(a - b) - c");
    check_expr("(-a).b", "(-a).b");
    check_expr("not (a and b)", "not (a and b)");
    check_expr("(if a then b else c) + 1", "(if a then b else c) + 1");
}

#[test]
fn precedence_without_parentheses_is_not_changed() {
    check_expr("a or b and c", "a or b and c");
    check_expr("not a == b", "not a == b");
    check_expr("-a.b", "-a.b");
    check_expr("a + b * c", "a + b * c");
    check_expr("a - b - c", "a - b - c");
}

fn e(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}

fn ident(name: &str) -> Ident {
    Ident {
        name: name.to_string(),
        span: Span::default(),
    }
}

fn name(n: &str) -> Expr {
    e(ExprKind::Name(ident(n)))
}

fn bin(op: BinaryOp, a: Expr, b: Expr) -> Expr {
    e(ExprKind::Binary(op, Box::new(a), Box::new(b)))
}

fn cmp(op: CompareOp, a: Expr, b: Expr) -> Expr {
    e(ExprKind::Compare(op, Box::new(a), Box::new(b)))
}

fn un(op: UnaryOp, a: Expr) -> Expr {
    e(ExprKind::Unary(op, Box::new(a)))
}

fn item(kind: ItemKind) -> Item {
    Item {
        kind,
        span: Span::default(),
    }
}

fn attribute_with(default: Expr) -> SourceFile {
    SourceFile {
        items: vec![item(ItemKind::Attribute(Attribute {
            entity: ident("a"),
            field: ident("b"),
            ty: TypeExpr {
                kind: TypeExprKind::Named(ident("int")),
                span: Span::default(),
            },
            default: Some(default),
        }))],
        comments: Vec::new(),
    }
}

#[track_caller]
fn check_generated_expr(expr: Expr, expected: &str) {
    let out = print_file(&attribute_with(expr), "");
    assert_eq!(out, format!("attribute a.b: int = {expected}\n"));
    assert_eq!(fmt(&out), out);
}

#[test]
fn parentheses_are_added_where_precedence_needs_them() {
    use BinaryOp::*;
    let (a, b, c) = (name("a"), name("b"), name("c"));
    check_generated_expr(
        bin(Mul, bin(Add, a.clone(), b.clone()), c.clone()),
        "(a + b) * c",
    );
    check_generated_expr(
        bin(Sub, a.clone(), bin(Sub, b.clone(), c.clone())),
        "a - (b - c)",
    );
    check_generated_expr(
        bin(Sub, bin(Sub, a.clone(), b.clone()), c.clone()),
        "a - b - c",
    );
    check_generated_expr(
        cmp(
            CompareOp::Eq,
            cmp(CompareOp::Lt, a.clone(), b.clone()),
            c.clone(),
        ),
        "(a < b) == c",
    );
    check_generated_expr(
        un(UnaryOp::Not, bin(And, a.clone(), b.clone())),
        "not (a and b)",
    );
    check_generated_expr(
        cmp(CompareOp::Eq, un(UnaryOp::Not, a.clone()), b.clone()),
        "(not a) == b",
    );
    check_generated_expr(un(UnaryOp::Neg, un(UnaryOp::Not, a.clone())), "-(not a)");
    check_generated_expr(
        e(ExprKind::Field(
            Box::new(un(UnaryOp::Neg, a.clone())),
            ident("f"),
        )),
        "(-a).f",
    );
    check_generated_expr(
        bin(
            Or,
            e(ExprKind::If(
                Box::new(a.clone()),
                Box::new(b.clone()),
                Box::new(c.clone()),
            )),
            name("d"),
        ),
        "(if a then b else c) or d",
    );
    check_generated_expr(
        bin(And, bin(Or, a.clone(), b.clone()), c.clone()),
        "(a or b) and c",
    );
    check_generated_expr(bin(Mul, a, un(UnaryOp::Neg, b)), "a * -b");
}

#[test]
fn literals_keep_their_spelling() {
    check_expr("¥12.50", "¥12.50");
    check_expr("￥3 + $4 + €5 + £6 + ₩7", "￥3 + $4 + €5 + £6 + ₩7");
    check_expr("1_000_000", "1_000_000");
    check_expr("0.125", "0.125");
    check_expr("10%", "10%");
    check_expr("12.5%", "12.5%");
    check_expr("30km", "30 km");
    check_expr("30   km", "30 km");
    check_expr(
        "1.5 kWh + 2 Wh + 3 kg + 4 g + 5 ml + 6 l + 7 m + 8 s + 9 min + 10 h + 11 d",
        "1.5 kWh + 2 Wh + 3 kg + 4 g + 5 ml + 6 l + 7 m + 8 s + 9 min + 10 h + 11 d",
    );
    check_expr("2026-11-11T20:00:00+08:00", "2026-11-11T20:00:00+08:00");
    check_expr("2026-11-11T20:00Z", "2026-11-11T20:00Z");
    check_expr("true or false or none", "true or false or none");
}

#[test]
fn strings_are_re_escaped() {
    check_expr(r#""a\"b\\c\n\t""#, r#""a\"b\\c\n\t""#);
    check_expr(r#""\u{4E2D}文 ok""#, r#""中文 ok""#);
    check_expr(r#""// not a comment""#, r#""// not a comment""#);
}

#[test]
fn control_characters_print_as_unicode_escapes() {
    let string = e(ExprKind::Literal(Literal::String(
        "a\u{1b}b\r\u{7f}\n".to_string(),
    )));
    let out = print_file(&attribute_with(string), "");
    assert_eq!(
        out,
        "attribute a.b: int = \"a\\u{001B}b\\u{000D}\\u{007F}\\n\"\n"
    );
}

#[test]
fn types() {
    check(
        "attribute customer.tier: enum( basic,gold , ) = basic\nattribute item.tags: list < list<string> >\n",
        "attribute customer.tier: enum(basic, gold) = basic\nattribute item.tags: list<list<string>>\n",
    );
}

// ---- clauses ------------------------------------------------------------------------

#[test]
fn promotion_clauses() {
    check(
        "promotion p {\npriority 10\ngroup g exclusive\ngroup h\nwhen a\nthen discount order ¥50 max ¥100\nthen discount items where item.x by 10%\nthen discount items by 10% max ¥5\nthen gift \"S\" qty 1\nthen gift \"S\"\nthen points multiplier 2\nlimit 1 per customer per day\nlimit 2 per customer\nbudget ¥200_000\n}\n",
        "promotion p {\n  priority 10\n  group g exclusive\n  group h\n  when a\n  then discount order ¥50 max ¥100\n  then discount items where item.x by 10%\n  then discount items by 10% max ¥5\n  then gift \"S\" qty 1\n  then gift \"S\"\n  then points multiplier 2\n  limit 1 per customer per day\n  limit 2 per customer\n  budget ¥200_000\n}\n",
    );
}

#[test]
fn route_clauses() {
    check(
        "route r {\nconsider warehouse,store within 30km,pickup when order.pickup_store!=none\nscore -0.5 * a\n  + b\nprefer   fewer   splits\nexclude store when x\nexclude when y\nexclude store\n}\n",
        "route r {\n  consider warehouse, store within 30 km, pickup when order.pickup_store != none\n  score -0.5 * a + b\n  prefer fewer splits\n  exclude store when x\n  exclude when y\n  exclude store\n}\n",
    );
}

#[test]
fn constraint_and_risk_clauses() {
    check(
        "constraint c {\nwhen a\nforbid mode air,sea\nrequire mode ground\nrequire packaging \"bag\"\nblock \"no\"\n}\nrisk r {\nwhen a\nscore 40 reason \"why\"\nscore 5\nreject \"x\"\nreview \"y\"\n}\n",
        "constraint c {\n  when a\n  forbid mode air, sea\n  require mode ground\n  require packaging \"bag\"\n  block \"no\"\n}\n\nrisk r {\n  when a\n  score 40 reason \"why\"\n  score 5\n  reject \"x\"\n  review \"y\"\n}\n",
    );
}

#[test]
fn sop_clauses() {
    check(
        "sop s {\non shipment.assigned when x\non created\nstep scan_lot  role picker  within 15 min \"Scan\" requires photo,scan\nstep handover role courier within 30min\non timeout escalate store_manager\n}\n",
        "sop s {\n  on shipment.assigned when x\n  on created\n  step scan_lot role picker within 15 min \"Scan\" requires photo, scan\n  step handover role courier within 30 min\n  on timeout escalate store_manager\n}\n",
    );
}

#[test]
fn empty_blocks() {
    check("promotion p {}\n", "promotion p {\n}\n");
    check("test \"t\" {\n\n}\n", "test \"t\" {\n}\n");
}

// ---- alignment ----------------------------------------------------------------------

#[test]
fn table_columns_and_arrows_align() {
    check(
        "table points_multiplier(customer.tier,order.channel)->int{\ngold, _ => 3\nsilver, \"store\" => 2\n_, _ => 1\n}\n",
        "table points_multiplier(customer.tier, order.channel) -> int {\n  gold,   _       => 3\n  silver, \"store\" => 2\n  _,      _       => 1\n}\n",
    );
}

#[test]
fn table_alignment_counts_characters_not_bytes() {
    check(
        "table t(a, b) -> int {\n\"会员\", x => 1\n\"abcdef\", yy => 2\n}\n",
        "table t(a, b) -> int {\n  \"会员\",     x  => 1\n  \"abcdef\", yy => 2\n}\n",
    );
}

#[test]
fn table_with_comparison_patterns() {
    check(
        "table fee(order.subtotal) -> money {\n>= ¥299 => ¥0\n>=¥99 => ¥6\n< ¥10 => ¥1 + ¥2\n== -¥1 => a < b\n_ => ¥12\n}\n",
        "table fee(order.subtotal) -> money {\n  >= ¥299 => ¥0\n  >= ¥99  => ¥6\n  < ¥10   => ¥1 + ¥2\n  == -¥1  => a < b\n  _       => ¥12\n}\n",
    );
}

#[test]
fn table_rows_whose_patterns_are_named_like_units() {
    check(
        "table t(item.size) -> int {\n  s => 1\n  m => 2\n  l => 3\n}\n",
        "table t(item.size) -> int {\n  s => 1\n  m => 2\n  l => 3\n}\n",
    );
}

#[test]
fn table_rows_of_different_lengths() {
    check(
        "table t(a, b, c) -> int {\nx, y, z => 1\nlonger, y => 2\n_ => 3\n}\n",
        "table t(a, b, c) -> int {\n  x,      y, z => 1\n  longer, y    => 2\n  _            => 3\n}\n",
    );
}

#[test]
fn decide_arms_align() {
    check(
        "decide risk {\nscore >= 80 => reject\nscore>=5 => review\nelse => accept\n}\n",
        "decide risk {\n  score >= 80 => reject\n  score >= 5  => review\n  else        => accept\n}\n",
    );
    check("decide d {\nelse => x\n}\n", "decide d {\n  else => x\n}\n");
}

#[test]
fn comparison_row_after_a_loose_value_is_protected() {
    // A generated table whose `or` value precedes a comparison row: printed as is it
    // would read back as `a or b < 5`.
    let table = Table {
        name: ident("t"),
        keys: vec![name("k")],
        result: TypeExpr {
            kind: TypeExprKind::Named(ident("bool")),
            span: Span::default(),
        },
        rows: vec![
            TableRow {
                patterns: vec![Pattern {
                    kind: PatternKind::Wildcard,
                    span: Span::default(),
                }],
                value: bin(BinaryOp::Or, name("a"), name("b")),
                span: Span::default(),
            },
            TableRow {
                patterns: vec![Pattern {
                    kind: PatternKind::Compare(
                        CompareOp::Lt,
                        e(ExprKind::Literal(Literal::Number("5".into()))),
                    ),
                    span: Span::default(),
                }],
                value: name("c"),
                span: Span::default(),
            },
        ],
    };
    let file = SourceFile {
        items: vec![item(ItemKind::Table(table))],
        comments: Vec::new(),
    };
    let out = print_file(&file, "");
    assert_eq!(
        out,
        "table t(k) -> bool {\n  _   => (a or b)\n  < 5 => c\n}\n"
    );
    assert_eq!(fmt(&out), out);
}

// ---- test values --------------------------------------------------------------------

#[test]
fn given_prints_one_field_per_line_and_nested_values_inline() {
    check(
        &in_test("given { customer: {tier: gold}, order: { items: [ 1,2 ] , empty: {}, none_: [], } }\nexpect no discount\n"),
        "test \"t\" {\n  given {\n    customer: { tier: gold },\n    order: { items: [1, 2], empty: {}, none_: [] }\n  }\n  expect no discount\n}\n",
    );
}

#[test]
fn given_with_no_fields() {
    check(&in_test("given {   }\n"), "test \"t\" {\n  given {}\n}\n");
}

#[test]
fn long_nested_values_break_one_per_line() {
    check(
        &in_test("given { order: { channel: \"miniapp\", items: [ { sku: \"SERUM-30\", category: \"skincare\", qty: 2, price: ¥160 } ] } }\n"),
        "test \"t\" {\n  given {\n    order: {\n      channel: \"miniapp\",\n      items: [{ sku: \"SERUM-30\", category: \"skincare\", qty: 2, price: ¥160 }]\n    }\n  }\n}\n",
    );
}

#[test]
fn width_limit_is_one_hundred_columns() {
    // `    a: [` + items + `]` at depth 2: 4 + 4 + len(items) + 1.
    let fits = format!("\"{}\"", "x".repeat(89));
    assert_eq!("    a: [".len() + fits.chars().count() + "]".len(), 100);
    check(
        &in_test(&format!("given {{ a: [{fits}] }}\n")),
        &format!("test \"t\" {{\n  given {{\n    a: [{fits}]\n  }}\n}}\n"),
    );
    let too_long = format!("\"{}\"", "x".repeat(90));
    check(
        &in_test(&format!("given {{ a: [{too_long}] }}\n")),
        &format!("test \"t\" {{\n  given {{\n    a: [\n      {too_long}\n    ]\n  }}\n}}\n"),
    );
}

#[test]
fn deep_breaking_puts_commas_between_elements_only() {
    let long = "y".repeat(60);
    check(
        &in_test(&format!("given {{ a: [ {{ s: \"{long}\", t: \"{long}\" }}, 2 ], b: 1 }}\n")),
        &format!(
            "test \"t\" {{\n  given {{\n    a: [\n      {{\n        s: \"{long}\",\n        t: \"{long}\"\n      }},\n      2\n    ],\n    b: 1\n  }}\n}}\n"
        ),
    );
}

#[test]
fn signed_test_values() {
    check(
        &in_test("given { a: -5, b: -¥5.50, c: -5%, d: -30km, e: -1_000 }\n"),
        "test \"t\" {\n  given {\n    a: -5,\n    b: -¥5.50,\n    c: -5%,\n    d: -30 km,\n    e: -1_000\n  }\n}\n",
    );
}

#[test]
fn other_test_clauses() {
    check(
        &in_test("counter orders(customer.device,1 h)=6\nlist blocked_devices=[\"d-1\" ,\"d-2\"]\nused budget spend=¥10\nused limit spend=1\ncounter f() = { a: 1 }\n"),
        "test \"t\" {\n  counter orders(customer.device, 1 h) = 6\n  list blocked_devices = [\"d-1\", \"d-2\"]\n  used budget spend = ¥10\n  used limit spend = 1\n  counter f() = { a: 1 }\n}\n",
    );
}

#[test]
fn long_list_values_break_too() {
    let long = "z".repeat(50);
    check(
        &in_test(&format!("list xs = [\"{long}\", \"{long}\"]\n")),
        &format!("test \"t\" {{\n  list xs = [\n    \"{long}\",\n    \"{long}\"\n  ]\n}}\n"),
    );
}

#[test]
fn every_expectation() {
    let body = "expect no discount\nexpect no gift\nexpect no route\nexpect no sop\nexpect no block\nexpect fired p\nexpect not fired q\nexpect discount ¥82\nexpect gift \"S\" qty 1\nexpect gift \"S\"\nexpect points multiplier 2\nexpect risk score 40\nexpect risk review\nexpect route \"store\"\nexpect blocked\nexpect forbid mode air\nexpect packaging \"bag\"\nexpect mode ground\nexpect sop store_pick\n";
    let indented: String = body.lines().map(|l| format!("  {l}\n")).collect();
    check(&in_test(body), &in_test(&indented));
}

// ---- comments -----------------------------------------------------------------------

#[test]
fn leading_comments_keep_their_line_and_take_the_indentation() {
    check(
        "// about a\nattribute item.a: int\n",
        "// about a\nattribute item.a: int\n",
    );
    check(
        "promotion p {\n        // why\n// and how\n  when a\n}\n",
        "promotion p {\n  // why\n  // and how\n  when a\n}\n",
    );
}

#[test]
fn trailing_comments_get_two_spaces() {
    check(
        "attribute item.a: int    // note\n",
        "attribute item.a: int  // note\n",
    );
    check(
        "attribute item.a: int// note\n",
        "attribute item.a: int  // note\n",
    );
    check(
        "promotion p { // opens\n  when a //cond\n} // closes\n",
        "promotion p {  // opens\n  when a  //cond\n}  // closes\n",
    );
}

#[test]
fn comment_text_is_kept_exactly_but_trailing_whitespace_goes() {
    check(
        "//no space\n//   many   spaces   \n//\n",
        "//no space\n//   many   spaces\n//\n",
    );
}

#[test]
fn comments_at_the_end_of_a_block() {
    check(
        "promotion p {\nwhen true\n        // later\n}\n",
        "promotion p {\n  when true\n  // later\n}\n",
    );
    check(
        "promotion p {\n  when true\n\n  // later\n\n}\n",
        "promotion p {\n  when true\n\n  // later\n}\n",
    );
    check(
        "promotion p {\n\n  // todo\n\n}\n",
        "promotion p {\n  // todo\n}\n",
    );
}

#[test]
fn comments_at_the_start_and_end_of_the_file() {
    check(
        "\n\n// licence\n\n// header\nruleset a currency CNY\n// bye\n",
        "// licence\n\n// header\nruleset a currency CNY\n// bye\n",
    );
    check(
        "attribute a.b: int\n\n\n// bye\n\n",
        "attribute a.b: int\n\n// bye\n",
    );
    check("// only\n\n\n// comments\n", "// only\n\n// comments\n");
}

#[test]
fn blank_lines_between_comments_are_kept() {
    check(
        "attribute a.b: int\n// c1\n\n// c2\nattribute a.c: int\n",
        "attribute a.b: int\n// c1\n\n// c2\nattribute a.c: int\n",
    );
}

#[test]
fn forced_blank_line_goes_before_the_comments_of_a_block() {
    check(
        "attribute a.b: int\n// about p\npromotion p {\n}\n",
        "attribute a.b: int\n\n// about p\npromotion p {\n}\n",
    );
    check(
        "promotion p {\n}\n// about q\n\npromotion q {\n}\n",
        "promotion p {\n}\n// about q\n\npromotion q {\n}\n",
    );
    check(
        "ruleset a currency CNY\n// the attributes\nattribute a.b: int\n",
        "ruleset a currency CNY\n\n// the attributes\nattribute a.b: int\n",
    );
}

#[test]
fn comments_inside_a_multi_line_given() {
    check(
        "test \"t\" {\n  given {\n    // the customer\n    customer: { tier: gold },  // gold tier\n    order: {\n      channel: \"app\",  // where from\n      items: []\n    }  // order\n    // last\n  }  // given\n}\n",
        "test \"t\" {\n  given {\n    // the customer\n    customer: { tier: gold },  // gold tier\n    order: { channel: \"app\", items: [] }  // order\n    // where from\n    // last\n  }  // given\n}\n",
    );
}

#[test]
fn comments_inside_broken_values_stay_with_their_element() {
    let long = "w".repeat(50);
    check(
        &format!("test \"t\" {{\n  given {{\n    a: [\n      // first\n      \"{long}\",  // one\n      \"{long}\"\n      // end of a\n    ]\n  }}\n}}\n"),
        &format!("test \"t\" {{\n  given {{\n    a: [\n      // first\n      \"{long}\",  // one\n      \"{long}\"\n      // end of a\n    ]\n  }}\n}}\n"),
    );
}

#[test]
fn comments_inside_a_multi_line_expression_move_after_it() {
    check(
        "route default {\n  score -0.5 * a  // first\n        + 0.3 * b  // second\n  prefer fewer splits\n}\n",
        "route default {\n  score -0.5 * a + 0.3 * b  // second\n  // first\n  prefer fewer splits\n}\n",
    );
    check(
        "attribute a.b: int = f(1, // one\n 2)\nattribute a.c: int\n",
        "attribute a.b: int = f(1, 2)\n// one\nattribute a.c: int\n",
    );
    check(
        "table t(a, // key\n b) -> int {\n  _, _ => 1\n}\n",
        "table t(a, b) -> int {\n  // key\n  _, _ => 1\n}\n",
    );
}

#[test]
fn comments_between_the_words_of_an_operator_or_keyword() {
    check(
        "attribute a.b: bool = a not // why\n  in b\n",
        "attribute a.b: bool = a not in b\n// why\n",
    );
    check(
        "test \"t\" {\n  expect no // nothing\n    discount\n  expect no\n  gift\n}\n",
        "test \"t\" {\n  expect no discount\n  // nothing\n  expect no gift\n}\n",
    );
}

#[test]
fn comments_on_table_rows_and_decide_arms() {
    check(
        "decide d {\n  // high\n  a > 1 => x // first\n  else => y\n}\n",
        "decide d {\n  // high\n  a > 1 => x  // first\n  else  => y\n}\n",
    );
}

#[test]
fn comments_in_generated_asts_are_printed() {
    let file = SourceFile {
        items: vec![item(ItemKind::Header(Header {
            name: ident("a"),
            currency: ident("CNY"),
        }))],
        comments: vec![Comment {
            text: " kept".to_string(),
            span: Span::default(),
        }],
    };
    let out = print_file(&file, "");
    assert_eq!(out, "ruleset a currency CNY\n// kept\n");
}

// ---- errors -------------------------------------------------------------------------

#[test]
fn files_with_syntax_errors_are_not_formatted() {
    rejects("promotion {");
    rejects("promotion p {\n  when\n}\n");
    rejects("attribute a.b int\n");
    rejects("ruleset\n");
    rejects("@@@");
    rejects("attribute a.b: string = \"unterminated\n");
    rejects("attribute a.b: int = (1\n");
    rejects("attribute a.b: string = \"\\q\"\n");
    rejects("attribute a.b: int = a == b == c\n");
    // One bad item is enough: printing the rest would delete it.
    rejects("attribute a.b: int\npromotion p { nonsense }\nattribute a.c: int\n");
    rejects("// comment with a NUL \u{0}\nattribute a.b: int\n");
}

// ---- properties ---------------------------------------------------------------------

/// Words the grammar uses as keywords anywhere; generated names avoid them so that a
/// name never reads as the clause keyword it sits next to.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "if",
    "then",
    "else",
    "true",
    "false",
    "none",
    "where",
    "for",
    "when",
    "on",
    "ruleset",
    "currency",
    "attribute",
    "list",
    "enum",
    "promotion",
    "priority",
    "group",
    "exclusive",
    "discount",
    "order",
    "items",
    "by",
    "max",
    "gift",
    "qty",
    "points",
    "multiplier",
    "limit",
    "per",
    "customer",
    "budget",
    "route",
    "consider",
    "within",
    "score",
    "prefer",
    "fewer",
    "splits",
    "exclude",
    "constraint",
    "forbid",
    "mode",
    "require",
    "packaging",
    "block",
    "risk",
    "reason",
    "reject",
    "review",
    "decide",
    "table",
    "sop",
    "step",
    "role",
    "requires",
    "timeout",
    "escalate",
    "test",
    "given",
    "counter",
    "used",
    "expect",
    "no",
    "fired",
    "blocked",
    "any",
    "all",
    "count",
    "sum",
];

fn name_text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z][a-z0-9_]{0,7}".prop_filter("keyword", |s| !KEYWORDS.contains(&s.as_str())),
        // Non-ASCII names, a leading underscore, and names spelled like units.
        1 => prop::sample::select(vec!["会员", "满减", "größe", "_hidden", "s", "m", "l", "kg", "min", "h"])
            .prop_map(String::from),
    ]
}

fn g_ident() -> impl Strategy<Value = Ident> {
    name_text().prop_map(|name| Ident {
        name,
        span: Span::default(),
    })
}

fn digits() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0u32..1000).prop_map(|n| n.to_string()),
        1 => (1u32..1000, 0u32..1000).prop_map(|(a, b)| format!("{a}_{b:03}")),
    ]
}

fn number() -> impl Strategy<Value = String> {
    (digits(), prop::option::of("[0-9]{1,3}")).prop_map(|(whole, fraction)| match fraction {
        Some(fraction) => format!("{whole}.{fraction}"),
        None => whole,
    })
}

fn unit() -> impl Strategy<Value = Unit> {
    prop::sample::select(Unit::ALL.to_vec())
}

fn symbol() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["¥", "￥", "$", "€", "£", "₩"]).prop_map(String::from)
}

fn string_text() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', 'b', 'Z', '0', ' ', '"', '\\', '\n', '\t', '中', '文', '😀', '/', '{', '}', '%', '¥',
        '\u{2028}', '\u{FEFF}',
    ]);
    prop::collection::vec(chars, 0..16).prop_map(|chars| chars.into_iter().collect())
}

fn datetime() -> impl Strategy<Value = String> {
    (
        2000u32..2100,
        1u32..13,
        1u32..29,
        0u32..24,
        0u32..60,
        prop::option::of(0u32..60),
        prop::sample::select(vec!["Z", "+08:00", "-05:30"]),
    )
        .prop_map(|(y, mo, d, h, mi, s, zone)| {
            let seconds = s.map(|s| format!(":{s:02}")).unwrap_or_default();
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}{seconds}{zone}")
        })
}

/// Literals as the grammar reads them in expressions and patterns (never negative).
fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<bool>().prop_map(Literal::Bool),
        Just(Literal::None),
        number().prop_map(Literal::Number),
        (symbol(), number()).prop_map(|(symbol, amount)| Literal::Money { symbol, amount }),
        number().prop_map(Literal::Percent),
        (number(), unit()).prop_map(|(amount, unit)| Literal::Quantity { amount, unit }),
        string_text().prop_map(Literal::String),
        datetime().prop_map(Literal::DateTime),
    ]
}

/// Negative literals as the parser builds them from signed test values.
fn signed_literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        number().prop_map(|n| Literal::Number(format!("-{n}"))),
        (symbol(), number()).prop_map(|(symbol, amount)| Literal::Money {
            symbol,
            amount: format!("-{amount}")
        }),
        number().prop_map(|n| Literal::Percent(format!("-{n}"))),
        (number(), unit()).prop_map(|(amount, unit)| Literal::Quantity {
            amount: format!("-{amount}"),
            unit
        }),
    ]
}

// Binding levels, loosest first, as in the grammar.
fn level(expr: &Expr) -> u8 {
    match &expr.kind {
        ExprKind::If(..) => 0,
        ExprKind::Binary(BinaryOp::Or, ..) => 1,
        ExprKind::Binary(BinaryOp::And, ..) => 2,
        ExprKind::Unary(UnaryOp::Not, _) => 3,
        ExprKind::Compare(..) => 4,
        ExprKind::Binary(BinaryOp::Add | BinaryOp::Sub, ..) => 5,
        ExprKind::Binary(BinaryOp::Mul | BinaryOp::Div, ..) => 6,
        ExprKind::Unary(UnaryOp::Neg, _) => 7,
        ExprKind::Field(..) => 8,
        _ => 9,
    }
}

fn paren(expr: Expr) -> Expr {
    e(ExprKind::Paren(Box::new(expr)))
}

/// Inserts `Paren` nodes wherever the grammar needs them, so that the generated AST is
/// exactly what parsing its printed form gives back.
fn fix(expr: Expr, min: u8) -> Expr {
    let kind = match expr.kind {
        ExprKind::Field(base, field) => ExprKind::Field(Box::new(fix(*base, 8)), field),
        ExprKind::List(items) => ExprKind::List(items.into_iter().map(|x| fix(x, 0)).collect()),
        ExprKind::Unary(op, operand) => {
            let operand_min = if op == UnaryOp::Not { 3 } else { 7 };
            ExprKind::Unary(op, Box::new(fix(*operand, operand_min)))
        }
        ExprKind::Binary(op, left, right) => {
            let own = match op {
                BinaryOp::Or => 1,
                BinaryOp::And => 2,
                BinaryOp::Add | BinaryOp::Sub => 5,
                BinaryOp::Mul | BinaryOp::Div => 6,
            };
            ExprKind::Binary(
                op,
                Box::new(fix(*left, own)),
                Box::new(fix(*right, own + 1)),
            )
        }
        ExprKind::Compare(op, left, right) => {
            ExprKind::Compare(op, Box::new(fix(*left, 5)), Box::new(fix(*right, 5)))
        }
        ExprKind::If(a, b, c) => ExprKind::If(
            Box::new(fix(*a, 0)),
            Box::new(fix(*b, 0)),
            Box::new(fix(*c, 0)),
        ),
        ExprKind::Quantifier {
            kind,
            var,
            collection,
            filter,
        } => ExprKind::Quantifier {
            kind,
            var,
            collection: Box::new(fix(*collection, 0)),
            filter: filter.map(|f| Box::new(fix(*f, 0))),
        },
        ExprKind::Sum {
            body,
            var,
            collection,
            filter,
        } => ExprKind::Sum {
            body: Box::new(fix(*body, 0)),
            var,
            collection: Box::new(fix(*collection, 0)),
            filter: filter.map(|f| Box::new(fix(*f, 0))),
        },
        ExprKind::Call(name, args) => {
            ExprKind::Call(name, args.into_iter().map(|x| fix(x, 0)).collect())
        }
        ExprKind::Paren(inner) => ExprKind::Paren(Box::new(fix(*inner, 0))),
        other => other,
    };
    let expr = e(kind);
    if level(&expr) < min {
        paren(expr)
    } else {
        expr
    }
}

fn raw_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        literal().prop_map(|l| e(ExprKind::Literal(l))),
        g_ident().prop_map(|i| e(ExprKind::Name(i))),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        let binary = prop::sample::select(vec![
            BinaryOp::And,
            BinaryOp::Or,
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
        ]);
        let compare = prop::sample::select(vec![
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Lt,
            CompareOp::Le,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::In,
            CompareOp::NotIn,
        ]);
        let quantifier = prop::sample::select(vec![
            QuantifierKind::Any,
            QuantifierKind::All,
            QuantifierKind::Count,
        ]);
        prop_oneof![
            (inner.clone(), g_ident()).prop_map(|(b, f)| e(ExprKind::Field(Box::new(b), f))),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|xs| e(ExprKind::List(xs))),
            (
                prop::sample::select(vec![UnaryOp::Not, UnaryOp::Neg]),
                inner.clone()
            )
                .prop_map(|(op, x)| e(ExprKind::Unary(op, Box::new(x)))),
            (binary, inner.clone(), inner.clone()).prop_map(|(op, a, b)| e(ExprKind::Binary(
                op,
                Box::new(a),
                Box::new(b)
            ))),
            (compare, inner.clone(), inner.clone()).prop_map(|(op, a, b)| e(ExprKind::Compare(
                op,
                Box::new(a),
                Box::new(b)
            ))),
            (inner.clone(), inner.clone(), inner.clone()).prop_map(|(a, b, c)| e(ExprKind::If(
                Box::new(a),
                Box::new(b),
                Box::new(c)
            ))),
            (
                quantifier,
                g_ident(),
                inner.clone(),
                prop::option::of(inner.clone())
            )
                .prop_map(|(kind, var, collection, filter)| e(ExprKind::Quantifier {
                    kind,
                    var,
                    collection: Box::new(collection),
                    filter: filter.map(Box::new),
                })),
            (
                inner.clone(),
                g_ident(),
                inner.clone(),
                prop::option::of(inner.clone())
            )
                .prop_map(|(body, var, collection, filter)| e(ExprKind::Sum {
                    body: Box::new(body),
                    var,
                    collection: Box::new(collection),
                    filter: filter.map(Box::new),
                })),
            (g_ident(), prop::collection::vec(inner.clone(), 0..3))
                .prop_map(|(name, args)| e(ExprKind::Call(name, args))),
            inner.prop_map(paren),
        ]
    })
}

fn g_expr() -> impl Strategy<Value = Expr> {
    raw_expr().prop_map(|x| fix(x, 0))
}

fn g_string() -> impl Strategy<Value = StringLit> {
    string_text().prop_map(|value| StringLit {
        value,
        span: Span::default(),
    })
}

fn g_type() -> impl Strategy<Value = TypeExpr> {
    let ty = |kind| TypeExpr {
        kind,
        span: Span::default(),
    };
    let leaf = prop_oneof![
        g_ident().prop_map(move |i| ty(TypeExprKind::Named(i))),
        prop::collection::vec(g_ident(), 1..4).prop_map(move |vs| ty(TypeExprKind::Enum(vs))),
    ];
    leaf.prop_recursive(2, 4, 1, move |inner| {
        inner.prop_map(move |t| ty(TypeExprKind::List(Box::new(t))))
    })
}

fn value_of(kind: ValueKind) -> Value {
    Value {
        kind,
        span: Span::default(),
    }
}

fn g_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        literal().prop_map(|l| value_of(ValueKind::Literal(l))),
        signed_literal().prop_map(|l| value_of(ValueKind::Literal(l))),
        g_ident().prop_map(|i| value_of(ValueKind::Variant(i))),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec((g_ident(), inner.clone()), 0..5)
                .prop_map(|fs| value_of(ValueKind::Object(fs))),
            prop::collection::vec(inner, 0..5).prop_map(|xs| value_of(ValueKind::Array(xs))),
        ]
    })
}

fn clause<K>(kind: K) -> Clause<K> {
    Clause {
        kind,
        span: Span::default(),
    }
}

fn g_action() -> impl Strategy<Value = Action> {
    let opt = || prop::option::of(g_expr());
    prop_oneof![
        (g_expr(), opt()).prop_map(|(amount, cap)| Action::DiscountOrder { amount, cap }),
        (opt(), g_expr(), opt()).prop_map(|(filter, amount, cap)| Action::DiscountItems {
            filter,
            amount,
            cap
        }),
        (g_expr(), opt()).prop_map(|(sku, qty)| Action::Gift { sku, qty }),
        g_expr().prop_map(Action::PointsMultiplier),
    ]
}

fn g_promotion() -> impl Strategy<Value = ItemKind> {
    let clause_kind = prop_oneof![
        (0i64..100_000).prop_map(PromotionClause::Priority),
        (g_ident(), any::<bool>())
            .prop_map(|(name, exclusive)| PromotionClause::Group { name, exclusive }),
        g_expr().prop_map(PromotionClause::When),
        g_action().prop_map(PromotionClause::Then),
        (0i64..100, prop::option::of(g_ident()))
            .prop_map(|(count, period)| PromotionClause::Limit { count, period }),
        g_expr().prop_map(PromotionClause::Budget),
    ];
    (
        g_ident(),
        prop::collection::vec(clause_kind.prop_map(clause), 0..5),
    )
        .prop_map(|(name, clauses)| ItemKind::Promotion(Promotion { name, clauses }))
}

fn g_route() -> impl Strategy<Value = ItemKind> {
    let candidate = (
        g_ident(),
        prop::option::of(g_expr()),
        prop::option::of(g_expr()),
    )
        .prop_map(|(kind, within, condition)| Candidate {
            kind,
            within,
            condition,
            span: Span::default(),
        });
    let clause_kind = prop_oneof![
        prop::collection::vec(candidate, 1..4).prop_map(RouteClause::Consider),
        g_expr().prop_map(RouteClause::Score),
        Just(RouteClause::PreferFewerSplits),
        (prop::option::of(g_ident()), prop::option::of(g_expr()))
            .prop_map(|(kind, condition)| RouteClause::Exclude { kind, condition }),
    ];
    (
        g_ident(),
        prop::collection::vec(clause_kind.prop_map(clause), 0..5),
    )
        .prop_map(|(name, mut clauses)| {
            // A bare `exclude` would take the next clause's keyword as its kind.
            let last = clauses.len().saturating_sub(1);
            for (index, clause) in clauses.iter_mut().enumerate() {
                if let RouteClause::Exclude {
                    kind: kind @ None,
                    condition: None,
                } = &mut clause.kind
                {
                    if index != last {
                        *kind = Some(ident("store"));
                    }
                }
            }
            ItemKind::Route(Route { name, clauses })
        })
}

fn g_constraint() -> impl Strategy<Value = ItemKind> {
    let clause_kind = prop_oneof![
        g_expr().prop_map(ConstraintClause::When),
        prop::collection::vec(g_ident(), 1..4).prop_map(ConstraintClause::ForbidMode),
        g_ident().prop_map(ConstraintClause::RequireMode),
        g_string().prop_map(ConstraintClause::RequirePackaging),
        g_string().prop_map(ConstraintClause::Block),
    ];
    (
        g_ident(),
        prop::collection::vec(clause_kind.prop_map(clause), 0..5),
    )
        .prop_map(|(name, clauses)| ItemKind::Constraint(Constraint { name, clauses }))
}

fn g_risk() -> impl Strategy<Value = ItemKind> {
    let clause_kind = prop_oneof![
        g_expr().prop_map(RiskClause::When),
        (g_expr(), prop::option::of(g_string()))
            .prop_map(|(points, reason)| RiskClause::Score { points, reason }),
        g_string().prop_map(RiskClause::Reject),
        g_string().prop_map(RiskClause::Review),
    ];
    (
        g_ident(),
        prop::collection::vec(clause_kind.prop_map(clause), 0..5),
    )
        .prop_map(|(name, clauses)| ItemKind::Risk(Risk { name, clauses }))
}

fn g_decide() -> impl Strategy<Value = ItemKind> {
    let arm = (prop::option::of(g_expr()), g_ident()).prop_map(|(condition, outcome)| DecideArm {
        condition,
        outcome,
        span: Span::default(),
    });
    (g_ident(), prop::collection::vec(arm, 0..5))
        .prop_map(|(target, arms)| ItemKind::Decide(Decide { target, arms }))
}

fn g_pattern() -> impl Strategy<Value = Pattern> {
    let compare = prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Lt,
        CompareOp::Le,
        CompareOp::Gt,
        CompareOp::Ge,
    ]);
    let kind = prop_oneof![
        Just(PatternKind::Wildcard),
        literal().prop_map(|l| PatternKind::Equals(e(ExprKind::Literal(l)))),
        g_ident().prop_map(|i| PatternKind::Equals(e(ExprKind::Name(i)))),
        (compare, raw_expr()).prop_map(|(op, x)| PatternKind::Compare(op, fix(x, 7))),
    ];
    kind.prop_map(|kind| Pattern {
        kind,
        span: Span::default(),
    })
}

fn g_table() -> impl Strategy<Value = ItemKind> {
    let row = (prop::collection::vec(g_pattern(), 1..4), g_expr()).prop_map(|(patterns, value)| {
        TableRow {
            patterns,
            value,
            span: Span::default(),
        }
    });
    (
        g_ident(),
        prop::collection::vec(g_expr(), 1..3),
        g_type(),
        prop::collection::vec(row, 0..5),
    )
        .prop_map(|(name, keys, result, mut rows)| {
            // A value looser than a comparison would run on into a following row that
            // starts with a comparison pattern; the author has to bracket it.
            for index in 1..rows.len() {
                let next_compares =
                    matches!(rows[index].patterns[0].kind, PatternKind::Compare(..));
                if next_compares && level(&rows[index - 1].value) < 4 {
                    let value = rows[index - 1].value.clone();
                    rows[index - 1].value = paren(value);
                }
            }
            ItemKind::Table(Table {
                name,
                keys,
                result,
                rows,
            })
        })
}

fn g_sop() -> impl Strategy<Value = ItemKind> {
    let event = prop::collection::vec(name_text(), 1..3).prop_map(|parts| Ident {
        name: parts.join("."),
        span: Span::default(),
    });
    let step = (
        g_ident(),
        g_ident(),
        g_expr(),
        prop::option::of(g_string()),
        prop::collection::vec(g_ident(), 0..3),
    )
        .prop_map(|(name, role, within, instructions, requires)| {
            SopClause::Step(Step {
                name,
                role,
                within,
                instructions,
                requires,
            })
        });
    let clause_kind = prop_oneof![
        (event, prop::option::of(g_expr()))
            .prop_map(|(event, condition)| SopClause::Trigger { event, condition }),
        step,
        g_ident().prop_map(SopClause::OnTimeoutEscalate),
    ];
    (
        g_ident(),
        prop::collection::vec(clause_kind.prop_map(clause), 0..5),
    )
        .prop_map(|(name, clauses)| ItemKind::Sop(Sop { name, clauses }))
}

fn g_expectation() -> impl Strategy<Value = Expectation> {
    prop_oneof![
        Just(Expectation::NoDiscount),
        Just(Expectation::NoGift),
        Just(Expectation::NoRoute),
        Just(Expectation::NoSop),
        Just(Expectation::NoBlock),
        g_ident().prop_map(Expectation::Fired),
        g_ident().prop_map(Expectation::NotFired),
        g_expr().prop_map(Expectation::Discount),
        (g_string(), prop::option::of(g_expr()))
            .prop_map(|(sku, qty)| Expectation::Gift { sku, qty }),
        g_expr().prop_map(Expectation::PointsMultiplier),
        g_expr().prop_map(Expectation::RiskScore),
        g_ident().prop_map(Expectation::Risk),
        g_string().prop_map(Expectation::Route),
        Just(Expectation::Blocked),
        g_ident().prop_map(Expectation::ForbidMode),
        g_string().prop_map(Expectation::Packaging),
        g_ident().prop_map(Expectation::Mode),
        g_ident().prop_map(Expectation::Sop),
    ]
}

fn g_test() -> impl Strategy<Value = ItemKind> {
    let fields = prop::collection::vec((g_ident(), g_value()), 0..5);
    let array =
        prop::collection::vec(g_value(), 0..5).prop_map(|xs| value_of(ValueKind::Array(xs)));
    let used_kind = prop::sample::select(vec![UsedKind::Budget, UsedKind::Limit]);
    let clause_kind = prop_oneof![
        fields.prop_map(|fs| TestClause::Given(value_of(ValueKind::Object(fs)))),
        (g_ident(), prop::collection::vec(g_expr(), 0..3), g_value()).prop_map(
            |(name, args, value)| {
                TestClause::Counter {
                    call: e(ExprKind::Call(name, args)),
                    value,
                }
            }
        ),
        (g_ident(), array).prop_map(|(name, items)| TestClause::List { name, items }),
        (used_kind, g_ident(), g_value()).prop_map(|(kind, rule, value)| TestClause::Used {
            kind,
            rule,
            value
        }),
        g_expectation().prop_map(TestClause::Expect),
    ];
    (
        g_string(),
        prop::collection::vec(clause_kind.prop_map(clause), 0..5),
    )
        .prop_map(|(name, clauses)| ItemKind::Test(Test { name, clauses }))
}

fn g_item() -> impl Strategy<Value = Item> {
    prop_oneof![
        (g_ident(), g_ident())
            .prop_map(|(name, currency)| ItemKind::Header(Header { name, currency })),
        (g_ident(), g_ident(), g_type(), prop::option::of(g_expr())).prop_map(
            |(entity, field, ty, default)| {
                ItemKind::Attribute(Attribute {
                    entity,
                    field,
                    ty,
                    default,
                })
            }
        ),
        (g_ident(), g_type()).prop_map(|(name, ty)| ItemKind::List(ListDecl { name, ty })),
        g_promotion(),
        g_route(),
        g_constraint(),
        g_risk(),
        g_decide(),
        g_table(),
        g_sop(),
        g_test(),
    ]
    .prop_map(item)
}

fn g_file() -> impl Strategy<Value = SourceFile> {
    prop::collection::vec(g_item(), 0..7).prop_map(|items| SourceFile {
        items,
        comments: Vec::new(),
    })
}

fn comment_text() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', 'z', ' ', ' ', '/', '"', '\\', '中', '😀', '{', '}', '#', '\t', '_',
    ]);
    prop::collection::vec(chars, 0..12).prop_map(|chars| chars.into_iter().collect())
}

/// What can happen to one line of a printed file before it is formatted again.
#[derive(Debug, Clone)]
enum Edit {
    /// A comment at the end of the line.
    Trailing(String),
    /// A comment on a line of its own before the line, at some indentation.
    OwnLine(usize, String),
    /// An extra blank line before the line.
    Blank,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => comment_text().prop_map(Edit::Trailing),
        2 => (0usize..8, comment_text()).prop_map(|(indent, text)| Edit::OwnLine(indent, text)),
        1 => Just(Edit::Blank),
    ]
}

fn sorted_comment_texts(text: &str) -> Vec<String> {
    let (file, diagnostics) = parse_file(text);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let mut texts: Vec<String> = file
        .comments
        .iter()
        .map(|c| c.text.trim_end().to_string())
        .collect();
    texts.sort();
    texts
}

proptest! {
    // `default()` reads `PROPTEST_CASES` (256 cases otherwise). Failures are not saved
    // to a regressions file: the shrunk case is printed, and becomes a unit test above.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Printing a generated AST gives text that parses back to the same AST, and that
    /// the formatter leaves alone.
    #[test]
    fn generated_programs_round_trip(file in g_file()) {
        let printed = print_file(&file, "");
        let (parsed, diagnostics) = parse_file(&printed);
        let messages: Vec<String> = diagnostics.iter().map(|d| format!("{:?}: {}", d.span, d.message)).collect();
        prop_assert!(diagnostics.is_empty(), "{printed}\n{messages:#?}");
        prop_assert_eq!(items_without_spans(&parsed.items), items_without_spans(&file.items), "{}", printed);
        prop_assert!(parsed.comments.is_empty());
        prop_assert_eq!(format_file(&printed), Ok(printed.clone()));
    }

    /// Comments and blank lines sprinkled over a printed program: formatting keeps every
    /// comment, does not change the code, and is a fixed point.
    #[test]
    fn comments_survive_formatting(file in g_file(), edits in prop::collection::vec((any::<Index>(), edit()), 0..8)) {
        let printed = print_file(&file, "");
        let mut lines: Vec<String> = printed.lines().map(String::from).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        let mut before: Vec<Vec<String>> = vec![Vec::new(); lines.len()];
        let mut has_trailing = vec![false; lines.len()];
        let mut inserted: Vec<String> = Vec::new();
        for (index, edit) in edits {
            let at = index.index(lines.len());
            match edit {
                Edit::Trailing(text) if !has_trailing[at] => {
                    lines[at].push_str("  //");
                    lines[at].push_str(&text);
                    has_trailing[at] = true;
                    inserted.push(text.trim_end().to_string());
                }
                Edit::Trailing(_) => {}
                Edit::OwnLine(indent, text) => {
                    before[at].push(format!("{}//{text}", " ".repeat(indent)));
                    inserted.push(text.trim_end().to_string());
                }
                Edit::Blank => before[at].push(String::new()),
            }
        }
        let mut edited = String::new();
        for (line, extra) in lines.iter().zip(&before) {
            for extra in extra {
                edited.push_str(extra);
                edited.push('\n');
            }
            edited.push_str(line);
            edited.push('\n');
        }
        let once = format_file(&edited);
        prop_assert!(once.is_ok(), "{edited}");
        let once = once.unwrap();
        prop_assert_eq!(format_file(&once), Ok(once.clone()), "{}", edited);
        inserted.sort();
        prop_assert_eq!(sorted_comment_texts(&once), inserted, "{}", once);
        let (parsed, _) = parse_file(&once);
        prop_assert_eq!(items_without_spans(&parsed.items), items_without_spans(&file.items));
    }

    /// Printed programs broken across lines at random spaces, with comments at some of
    /// the breaks: formatting joins the lines again, keeps every comment, and is a fixed
    /// point.
    #[test]
    fn comments_inside_reflowed_code(
        file in g_file(),
        breaks in prop::collection::vec((any::<Index>(), prop::option::of(comment_text())), 1..10),
    ) {
        let printed = print_file(&file, "");
        let spaces = breakable_spaces(&printed);
        if spaces.is_empty() {
            // An empty file: nothing to break.
            return Ok(());
        }
        let mut chosen: Vec<(usize, Option<String>)> = Vec::new();
        for (index, comment) in breaks {
            let at = *index.get(&spaces);
            if !chosen.iter().any(|(other, _)| *other == at) {
                chosen.push((at, comment));
            }
        }
        chosen.sort_by_key(|(at, _)| *at);
        let mut reflowed = String::new();
        let mut inserted: Vec<String> = Vec::new();
        let mut last = 0;
        for (at, comment) in chosen {
            reflowed.push_str(&printed[last..at]);
            if let Some(text) = comment {
                reflowed.push_str("  //");
                reflowed.push_str(&text);
                inserted.push(text.trim_end().to_string());
            }
            // Indented, so that the word after the break never starts an item.
            reflowed.push_str("\n      ");
            last = at + 1;
        }
        reflowed.push_str(&printed[last..]);
        let once = format_file(&reflowed);
        prop_assert!(once.is_ok(), "{reflowed}");
        let once = once.unwrap();
        prop_assert_eq!(format_file(&once), Ok(once.clone()), "{}", reflowed);
        inserted.sort();
        prop_assert_eq!(sorted_comment_texts(&once), inserted, "{}", once);
        let (parsed, _) = parse_file(&once);
        prop_assert_eq!(items_without_spans(&parsed.items), items_without_spans(&file.items));
        if once.lines().all(|line| !line.contains("//")) {
            prop_assert_eq!(once, printed);
        }
    }

    /// Arbitrary text never makes the formatter panic, and what it formats is a fixed
    /// point.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        if let Ok(once) = format_file(&text) {
            prop_assert_eq!(format_file(&once), Ok(once.clone()));
        }
    }

    /// Sequences of weir tokens reach much further into the grammar than random text.
    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec((token(), separator()), 0..60)) {
        let text: String = tokens.into_iter().flat_map(|(token, separator)| [token, separator]).collect();
        if let Ok(once) = format_file(&text) {
            prop_assert_eq!(format_file(&once), Ok(once.clone()), "{}", text);
            let (before, _) = parse_file(&text);
            let (after, _) = parse_file(&once);
            prop_assert_eq!(items_without_spans(&before.items), items_without_spans(&after.items));
        }
    }

    /// The example file with a piece cut out or a token pasted in.
    #[test]
    fn damaged_example_never_panics(cut in any::<(Index, Index)>(), paste in token(), at in any::<Index>()) {
        let text = include_str!("../../rulesets/beauty/rules.weir");
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
        let (a, b) = (*cut.0.get(&boundaries), *cut.1.get(&boundaries));
        let (from, to) = (a.min(b), a.max(b).min(a.min(b) + 40));
        let to = *boundaries.iter().find(|i| **i >= to).unwrap();
        let mut damaged = format!("{}{}", &text[..from], &text[to..]);
        let at = *at.get(&damaged.char_indices().map(|(i, _)| i).chain([damaged.len()]).collect::<Vec<_>>());
        damaged.insert_str(at, &paste);
        if let Ok(once) = format_file(&damaged) {
            prop_assert_eq!(format_file(&once), Ok(once.clone()), "{}", damaged);
        }
    }
}

/// Byte offsets of the spaces in printed code where a line break changes nothing:
/// outside strings, not between a number and its unit (a quantity is on one line), and
/// not before a word that would start a new item at the beginning of a line.
fn breakable_spaces(text: &str) -> Vec<usize> {
    const ITEM_WORDS: &[&str] = &[
        "ruleset",
        "attribute",
        "list",
        "promotion",
        "route",
        "constraint",
        "risk",
        "decide",
        "table",
        "sop",
        "test",
    ];
    let mut spaces = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut previous = '\n';
    for (at, ch) in text.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
        } else if ch == '"' {
            in_string = true;
        } else if ch == ' ' && !previous.is_ascii_digit() && previous != ' ' && previous != '\n' {
            let rest = &text[at + 1..];
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !ITEM_WORDS.contains(&word.as_str()) && !rest.starts_with(' ') {
                spaces.push(at);
            }
        }
        previous = ch;
    }
    spaces
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "ruleset",
            "currency",
            "attribute",
            "list",
            "promotion",
            "route",
            "constraint",
            "risk",
            "decide",
            "table",
            "sop",
            "test",
            "when",
            "then",
            "discount",
            "order",
            "items",
            "where",
            "by",
            "max",
            "gift",
            "qty",
            "given",
            "expect",
            "counter",
            "used",
            "budget",
            "limit",
            "per",
            "customer",
            "consider",
            "within",
            "score",
            "exclude",
            "forbid",
            "mode",
            "step",
            "role",
            "on",
            "if",
            "else",
            "and",
            "or",
            "not",
            "in",
            "sum",
            "any",
            "for",
            "{",
            "}",
            "(",
            ")",
            "[",
            "]",
            ",",
            ":",
            ".",
            "=",
            "==",
            "=>",
            "->",
            "<",
            ">=",
            "+",
            "-",
            "*",
            "/",
            "_",
            "a",
            "b",
            "x.y",
            "1",
            "2.5",
            "¥5",
            "10%",
            "3 km",
            "4h",
            "\"s\"",
            "\"a\\\"b\"",
            "true",
            "none",
            "// c\n",
            "\n",
            "enum(a, b)",
            "list<int>",
            "2026-01-01T00:00Z",
        ])
        .prop_map(String::from),
        name_text(),
    ]
}

fn separator() -> impl Strategy<Value = String> {
    prop::sample::select(vec![" ", " ", "\n", "\n  ", "", "\n\n"]).prop_map(String::from)
}
