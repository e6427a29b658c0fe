//! End-to-end tests of the `weir` binary: run it as a process on files in temporary
//! directories and check exit codes and output, as CI and analysts would see them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// A syntax error: reported by the parser today and by the full checker later.
const SYNTAX_ERROR: &str = "ruleset broken currency CNY\n\npromotion x { when }\n";
/// Valid, but not in the canonical layout.
const MESSY: &str = "ruleset   messy   currency CNY\npromotion    spend_100_save_10{\nwhen order.subtotal>=¥100\n      then discount order ¥10\n}";
/// A runtime list no rule reads: warning W0001 (needs the full checker).
const UNUSED_LIST: &str = "ruleset lists currency CNY\n\nlist unused_list: string\n";

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `weir` in `dir` (so paths in the output are the relative ones we pass).
fn weir(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS")
        .output()
        .expect("run weir");
    let result = Output {
        code: output.status.code().expect("weir exited by a signal"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    };
    assert!(
        !result.stderr.contains("panicked"),
        "weir panicked:\n{}",
        result.stderr
    );
    result
}

fn clean_ruleset() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rulesets/beauty/rules.weir");
    fs::read_to_string(path).unwrap()
}

/// A temporary directory with the given files (paths relative to it).
fn dir_with(files: &[(&str, &[u8])]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in files {
        let path = dir.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }
    dir
}

fn json(dir: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["check", "--format", "json"];
    all.extend_from_slice(args);
    let output = weir(dir, &all);
    let value = serde_json::from_str(&output.stdout)
        .unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{}", output.stdout));
    (output.code, value)
}

fn codes(report: &Value) -> Vec<String> {
    report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap().to_string())
        .collect()
}

fn summary_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or("")
}

// --- check: exit codes -------------------------------------------------------------------

#[test]
fn clean_file_exits_0() {
    let clean = clean_ruleset();
    let dir = dir_with(&[("rules.weir", clean.as_bytes())]);
    let out = weir(dir.path(), &["check", "rules.weir"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let summary = summary_line(&out.stderr);
    assert!(summary.contains("1 file"), "{summary}");
    assert!(!summary.contains("error"), "{summary}");
    assert!(out.stdout.is_empty());
}

#[test]
fn clean_directory_exits_0() {
    let clean = clean_ruleset();
    let dir = dir_with(&[
        ("rulesets/beauty/rules.weir", clean.as_bytes()),
        ("rulesets/README.md", b"docs"),
    ]);
    let out = weir(dir.path(), &["check", "rulesets"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn syntax_error_exits_1_with_code_and_file_name() {
    let dir = dir_with(&[("broken.weir", SYNTAX_ERROR.as_bytes())]);
    let out = weir(dir.path(), &["check", "broken.weir"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("E0001"), "{}", out.stderr);
    assert!(
        out.stderr.contains("broken.weir:3:"),
        "snippet names file and line:\n{}",
        out.stderr
    );
    assert!(
        summary_line(&out.stderr).contains("error"),
        "{}",
        out.stderr
    );
    assert!(
        summary_line(&out.stderr).ends_with("in 1 file"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_path_exits_2() {
    let dir = dir_with(&[]);
    let out = weir(dir.path(), &["check", "nowhere.weir"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("nowhere.weir"), "{}", out.stderr);
}

#[test]
fn missing_path_among_good_ones_exits_2() {
    let dir = dir_with(&[("broken.weir", SYNTAX_ERROR.as_bytes())]);
    let out = weir(dir.path(), &["check", "broken.weir", "nowhere"]);
    assert_eq!(out.code, 2, "I/O errors win over rule errors");
}

#[test]
fn directory_without_weir_files_exits_2() {
    let dir = dir_with(&[("rulesets/notes/readme.txt", b"no rules here")]);
    let out = weir(dir.path(), &["check", "rulesets"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no .weir files under rulesets"),
        "{}",
        out.stderr
    );

    let empty = tempfile::tempdir().unwrap();
    fs::create_dir(empty.path().join("empty")).unwrap();
    assert_eq!(weir(empty.path(), &["check", "empty"]).code, 2);
}

#[test]
fn usage_errors_exit_2() {
    let dir = dir_with(&[]);
    assert_eq!(weir(dir.path(), &["check"]).code, 2, "at least one PATH");
    assert_eq!(
        weir(dir.path(), &["check", "--format", "xml", "a.weir"]).code,
        2
    );
    assert_eq!(weir(dir.path(), &["frobnicate"]).code, 2);
    assert_eq!(weir(dir.path(), &[]).code, 2);
}

#[test]
fn help_and_version_exit_0() {
    let dir = dir_with(&[]);
    let help = weir(dir.path(), &["check", "--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("--deny-warnings") && help.stdout.contains("Exit codes"));
    let version = weir(dir.path(), &["--version"]);
    assert_eq!(version.code, 0);
    assert!(version.stdout.starts_with("weir "));
}

// --- check: warnings ---------------------------------------------------------------------
// These need the full checker (W0001 for an unused list); the parser alone reports nothing.

#[test]
fn warnings_exit_0_unless_denied() {
    let dir = dir_with(&[("lists.weir", UNUSED_LIST.as_bytes())]);
    let out = weir(dir.path(), &["check", "lists.weir"]);
    assert!(
        out.stderr.contains("W0001"),
        "expected the unused-list warning:\n{}",
        out.stderr
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(summary_line(&out.stderr), "1 warning in 1 file");

    let denied = weir(dir.path(), &["check", "--deny-warnings", "lists.weir"]);
    assert_eq!(denied.code, 1, "{}", denied.stderr);
}

#[test]
fn warnings_in_json_and_github() {
    let dir = dir_with(&[("lists.weir", UNUSED_LIST.as_bytes())]);
    let (code, report) = json(dir.path(), &["lists.weir"]);
    assert_eq!(code, 0);
    let warning = &report["diagnostics"][0];
    assert_eq!(warning["code"], "W0001");
    assert_eq!(warning["severity"], "warning");
    assert_eq!(report["summary"]["warnings"], 1);
    assert_eq!(report["summary"]["errors"], 0);

    let out = weir(dir.path(), &["check", "--format", "github", "lists.weir"]);
    assert!(
        out.stdout.starts_with("::warning file=lists.weir,line=3,"),
        "{}",
        out.stdout
    );
    assert_eq!(out.code, 0);
}

// --- check: formats ----------------------------------------------------------------------

#[test]
fn json_has_the_documented_fields() {
    let clean = clean_ruleset();
    let dir = dir_with(&[
        ("rulesets/beauty/rules.weir", clean.as_bytes()),
        ("rulesets/broken/a.weir", SYNTAX_ERROR.as_bytes()),
        ("rulesets/broken/b.weir", SYNTAX_ERROR.as_bytes()),
    ]);
    let (code, report) = json(dir.path(), &["rulesets"]);
    assert_eq!(code, 1);
    assert_eq!(report["version"], 1);
    assert_eq!(
        report["files"],
        serde_json::json!([
            {"path": "rulesets/beauty/rules.weir", "ruleset": 0},
            {"path": "rulesets/broken/a.weir", "ruleset": 1},
            {"path": "rulesets/broken/b.weir", "ruleset": 1},
        ])
    );
    let diagnostics = report["diagnostics"].as_array().unwrap();
    assert!(diagnostics.len() >= 2);
    for d in diagnostics {
        assert!(d["code"].as_str().unwrap().len() == 5, "{d}");
        assert!(
            ["error", "warning"].contains(&d["severity"].as_str().unwrap()),
            "{d}"
        );
        assert!(d["message"].is_string());
        assert!(d["file"].as_str().unwrap().starts_with("rulesets/"));
        assert!(d["span"]["start"].as_u64().unwrap() <= d["span"]["end"].as_u64().unwrap());
        for key in ["start", "end"] {
            assert!(d[key]["line"].as_u64().unwrap() >= 1, "{d}");
            assert!(d[key]["column"].as_u64().unwrap() >= 1, "{d}");
        }
        assert!(d["label"].is_null() || d["label"].is_string());
        assert!(d["help"].is_null() || d["help"].is_string());
        for related in d["related"].as_array().unwrap() {
            assert!(related["file"].is_string() && related["message"].is_string());
            assert!(related["span"]["start"].is_u64() && related["start"]["line"].is_u64());
        }
    }
    let syntax: Vec<&Value> = diagnostics
        .iter()
        .filter(|d| d["code"] == "E0001")
        .collect();
    assert_eq!(syntax.len(), 2, "{report}");
    assert_eq!(
        syntax[0]["file"], "rulesets/broken/a.weir",
        "sorted by file"
    );
    assert_eq!(syntax[1]["file"], "rulesets/broken/b.weir");
    assert_eq!(
        syntax[0]["start"],
        serde_json::json!({"line": 3, "column": 20})
    );
    assert_eq!(syntax[0]["span"]["start"], SYNTAX_ERROR.find('}').unwrap());
    let summary = &report["summary"];
    assert_eq!(summary["files"], 3);
    assert_eq!(
        summary["errors"].as_u64().unwrap() as usize,
        diagnostics
            .iter()
            .filter(|d| d["severity"] == "error")
            .count()
    );
    assert_eq!(
        summary["warnings"].as_u64().unwrap() as usize,
        diagnostics.len() - summary["errors"].as_u64().unwrap() as usize
    );
}

#[test]
fn json_for_a_clean_run() {
    let clean = clean_ruleset();
    let dir = dir_with(&[("rules.weir", clean.as_bytes())]);
    let (code, report) = json(dir.path(), &["rules.weir"]);
    assert_eq!(code, 0);
    assert_eq!(report["summary"]["errors"], 0);
    assert_eq!(report["summary"]["files"], 1);
    assert!(
        !codes(&report).iter().any(|c| c.starts_with('E')),
        "{report}"
    );
}

fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[test]
fn github_lines_have_the_documented_shape_and_escaping() {
    // A `%` in the source is echoed in the parser's message; `,` and `:` in the file name
    // must be escaped as property values.
    let percent = "ruleset broken currency CNY\n\npromotion x { when % }\n";
    let dir = dir_with(&[
        ("a,b:c.weir", percent.as_bytes()),
        (
            "unterminated.weir",
            b"ruleset s currency CNY\nlist x: string = \"100%\n",
        ),
    ]);
    let files = ["a,b:c.weir", "unterminated.weir"];
    let out = weir(
        dir.path(),
        &["check", "--format", "github", files[0], files[1]],
    );
    assert_eq!(out.code, 1);
    let (_, report) = json(dir.path(), &files);

    // Each line is exactly what the JSON report says, in GitHub's syntax.
    let expected: Vec<String> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let mut message = d["message"].as_str().unwrap().to_string();
            if let Some(help) = d["help"].as_str() {
                message = format!("{message} — help: {help}");
            }
            format!(
                "::{} file={},line={},col={},endLine={},endColumn={},title={}::{}",
                d["severity"].as_str().unwrap(),
                escape_property(d["file"].as_str().unwrap()),
                d["start"]["line"],
                d["start"]["column"],
                d["end"]["line"],
                d["end"]["column"],
                d["code"].as_str().unwrap(),
                escape_data(&message),
            )
        })
        .collect();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, expected);

    let first = lines[0];
    assert!(
        first.starts_with(
            "::error file=a%2Cb%3Ac.weir,line=3,col=20,endLine=3,endColumn=21,title=E0001::"
        ),
        "{first}"
    );
    let raw = report["diagnostics"][0]["message"].as_str().unwrap();
    assert!(
        raw.contains('%'),
        "the parser echoes the unexpected `%`: {raw}"
    );
    let (_, message) = first.split_once("title=E0001::").unwrap();
    assert!(
        message.contains("%25") && !message.replace("%25", "").contains('%'),
        "{message}"
    );
    let unterminated = lines.iter().find(|l| l.contains("title=E0005")).unwrap();
    assert!(unterminated.contains(" — help: "), "{unterminated}");
}

#[test]
fn human_output_has_code_file_and_help_without_colors_when_piped() {
    let dir = dir_with(&[(
        "strings.weir",
        b"ruleset s currency CNY\nlist x: string = \"abc\n",
    )]);
    let out = weir(dir.path(), &["check", "strings.weir"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("E0005"), "{}", out.stderr);
    assert!(out.stderr.contains("strings.weir:2:18"), "{}", out.stderr);
    assert!(out.stderr.contains("help: "), "{}", out.stderr);
    assert!(
        out.stderr.contains("list x: string = \"abc"),
        "snippet:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains('\u{1b}'),
        "no ANSI escapes when stderr is not a terminal"
    );
    assert!(out.stdout.is_empty());
}

// --- check: hostile input ----------------------------------------------------------------

#[test]
fn invalid_utf8_is_e0002_and_other_files_are_still_checked() {
    let clean = clean_ruleset();
    let dir = dir_with(&[
        (
            "rules/gbk.weir",
            b"ruleset beauty_flagship currency CNY\n// \xc9\xcc\xc6\xb7\n",
        ),
        ("rules/main.weir", clean.as_bytes()),
    ]);
    let out = weir(dir.path(), &["check", "rules"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("E0002"), "{}", out.stderr);
    assert!(out.stderr.contains("rules/gbk.weir:2:4"), "{}", out.stderr);

    let (code, report) = json(dir.path(), &["rules"]);
    assert_eq!(code, 1);
    let errors: Vec<String> = codes(&report)
        .into_iter()
        .filter(|c| c.starts_with('E'))
        .collect();
    assert_eq!(
        errors,
        vec!["E0002"],
        "the valid file checks clean: {report}"
    );
    let d = &report["diagnostics"][0];
    assert_eq!(d["file"], "rules/gbk.weir");
    assert_eq!(d["span"]["start"], 40);
    assert_eq!(d["start"], serde_json::json!({"line": 2, "column": 4}));
}

#[test]
fn nul_bytes_are_reported_without_raw_nul_in_output() {
    let dir = dir_with(&[("nul.weir", b"ruleset n currency CNY\npromotion p\0 {}\n")]);
    let out = weir(dir.path(), &["check", "nul.weir"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("nul.weir"), "{}", out.stderr);
    assert!(!out.stderr.contains('\0'));
    let (_, report) = json(dir.path(), &["nul.weir"]);
    assert!(!codes(&report).is_empty());
}

#[test]
fn unterminated_string_is_an_error() {
    let dir = dir_with(&[(
        "s.weir",
        b"ruleset s currency CNY\npromotion p { when order.channel == \"tmall }\n",
    )]);
    let out = weir(dir.path(), &["check", "s.weir"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("E0005"), "{}", out.stderr);
}

#[test]
fn empty_file_is_an_error() {
    // Needs the full checker: an empty file has no `ruleset` header (E0010).
    let dir = dir_with(&[("empty.weir", b"")]);
    let out = weir(dir.path(), &["check", "empty.weir"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("empty.weir"), "{}", out.stderr);
}

#[test]
fn binary_garbage_does_not_crash() {
    let garbage: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let dir = dir_with(&[
        ("garbage.weir", &garbage),
        ("ctrl.weir", b"\x1b[31m\x07\x08\r\r\n{{{{[[[((\""),
    ]);
    for file in ["garbage.weir", "ctrl.weir"] {
        let out = weir(dir.path(), &["check", file]);
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(
            !out.stderr.contains('\u{1b}'),
            "control characters from the file are not echoed raw"
        );
        for format in ["json", "github"] {
            assert_eq!(
                weir(dir.path(), &["check", "--format", format, file]).code,
                1
            );
        }
    }
}

// --- fmt ---------------------------------------------------------------------------------

#[test]
fn fmt_check_lists_files_that_would_change() {
    // Needs the real formatter: today's placeholder leaves every file unchanged.
    let dir = dir_with(&[("rules/messy.weir", MESSY.as_bytes())]);
    let out = weir(dir.path(), &["fmt", "--check", "rules"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.stdout, "would reformat: rules/messy.weir\n");
    assert_eq!(
        fs::read_to_string(dir.path().join("rules/messy.weir")).unwrap(),
        MESSY,
        "--check writes nothing"
    );
}

#[test]
fn fmt_rewrites_files_in_place() {
    // Needs the real formatter: today's placeholder leaves every file unchanged.
    let dir = dir_with(&[("rules/messy.weir", MESSY.as_bytes())]);
    let out = weir(dir.path(), &["fmt", "rules"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("formatted 1 file"), "{}", out.stderr);
    let formatted = fs::read_to_string(dir.path().join("rules/messy.weir")).unwrap();
    assert_ne!(formatted, MESSY);
    assert!(
        formatted.starts_with("ruleset messy currency CNY"),
        "{formatted}"
    );
    let entries: Vec<PathBuf> = fs::read_dir(dir.path().join("rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "no temporary file left behind: {entries:?}"
    );
    assert_eq!(
        weir(dir.path(), &["fmt", "--check", "rules"]).code,
        0,
        "formatting is idempotent"
    );
    assert_eq!(
        weir(dir.path(), &["check", "rules"]).code,
        0,
        "formatting keeps the file valid"
    );
}

#[test]
fn fmt_check_passes_on_formatted_files() {
    let clean = clean_ruleset();
    let dir = dir_with(&[
        ("rules/a.weir", clean.as_bytes()),
        ("rules/b.weir", MESSY.as_bytes()),
    ]);
    assert_eq!(weir(dir.path(), &["fmt", "rules"]).code, 0);
    let out = weir(dir.path(), &["fmt", "--check", "rules"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn fmt_leaves_files_that_do_not_parse_alone() {
    let dir = dir_with(&[
        ("broken.weir", SYNTAX_ERROR.as_bytes()),
        ("bad.weir", b"ruleset b currency CNY\n\xff\n"),
    ]);
    for args in [
        &["fmt", "broken.weir", "bad.weir"][..],
        &["fmt", "--check", "broken.weir", "bad.weir"][..],
    ] {
        let out = weir(dir.path(), args);
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(
            out.stderr.contains("E0001") && out.stderr.contains("broken.weir:3:"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("E0002"), "{}", out.stderr);
        assert_eq!(
            fs::read_to_string(dir.path().join("broken.weir")).unwrap(),
            SYNTAX_ERROR
        );
        assert_eq!(
            fs::read(dir.path().join("bad.weir")).unwrap(),
            b"ruleset b currency CNY\n\xff\n"
        );
    }
}

#[test]
fn fmt_io_errors_exit_2() {
    let dir = dir_with(&[("empty/readme.md", b"x")]);
    assert_eq!(weir(dir.path(), &["fmt", "missing.weir"]).code, 2);
    assert_eq!(weir(dir.path(), &["fmt", "--check", "empty"]).code, 2);
    assert_eq!(weir(dir.path(), &["fmt"]).code, 2);
}

// --- explain -----------------------------------------------------------------------------

#[test]
fn explain_a_known_code() {
    let dir = dir_with(&[]);
    let out = weir(dir.path(), &["explain", "E0101"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout
            .starts_with("E0101: unknown field\nseverity: error\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("attribute"),
        "the explanation: {}",
        out.stdout
    );

    let warning = weir(dir.path(), &["explain", "w0001"]);
    assert_eq!(warning.code, 0, "codes are case-insensitive");
    assert!(warning.stdout.contains("W0001") && warning.stdout.contains("severity: warning"));
}

#[test]
fn explain_an_unknown_code_exits_2() {
    let dir = dir_with(&[]);
    let out = weir(dir.path(), &["explain", "E9999"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("E9999") && out.stderr.contains("E0101"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
    assert_eq!(
        weir(dir.path(), &["explain"]).code,
        2,
        "a code or --list is required"
    );
}

#[test]
fn explain_list_prints_every_code() {
    let dir = dir_with(&[]);
    let out = weir(dir.path(), &["explain", "--list"]);
    assert_eq!(out.code, 0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("CODE"));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("E0001 ") && l.contains("error") && l.contains("syntax error")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("W0001 ") && l.contains("warning") && l.contains("unused list")));
    // Every code listed has a working `weir explain`.
    for line in lines.iter().skip(1) {
        let code = line.split_whitespace().next().unwrap();
        assert!(
            code.len() == 5 && (code.starts_with('E') || code.starts_with('W')),
            "{line}"
        );
    }
}
