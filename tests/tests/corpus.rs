//! Snapshot tests over the corpus of invalid rule files in `tests/corpus/`: each file (or
//! each folder of `invalid_multi/`, checked together as one ruleset) is checked, and its
//! diagnostics — code, severity, span, message, help, label, related places and the exact
//! text under the span — are compared with a reviewed insta snapshot.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use weir_dsl::span::line_col;
use weir_dsl::{Code, Diagnostic, Severity, SourceText};

/// The corpus must hold at least this many single invalid files.
const MIN_FILES: usize = 70;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// One snapshot: a single file of `invalid/`, or a folder of `invalid_multi/`.
struct Case {
    /// The snapshot name: the file stem, or `multi_<folder>`.
    name: String,
    /// The file or folder (absolute; insta stores it relative to the workspace).
    input: PathBuf,
    /// The files of the ruleset, sorted by name: (file name, raw bytes).
    files: Vec<(String, Vec<u8>)>,
    multi: bool,
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    entries
}

fn weir_files(dir: &Path) -> Vec<PathBuf> {
    sorted_entries(dir)
        .into_iter()
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "weir"))
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn cases() -> Vec<Case> {
    let root = corpus_dir();
    let mut cases = Vec::new();
    for path in weir_files(&root.join("invalid")) {
        cases.push(Case {
            name: path.file_stem().unwrap().to_string_lossy().into_owned(),
            files: vec![(file_name(&path), std::fs::read(&path).unwrap())],
            input: path,
            multi: false,
        });
    }
    for dir in sorted_entries(&root.join("invalid_multi"))
        .into_iter()
        .filter(|p| p.is_dir())
    {
        let files: Vec<(String, Vec<u8>)> = weir_files(&dir)
            .into_iter()
            .map(|p| (file_name(&p), std::fs::read(&p).unwrap()))
            .collect();
        assert!(
            files.len() >= 2,
            "{} should hold at least two .weir files",
            dir.display()
        );
        cases.push(Case {
            name: format!("multi_{}", file_name(&dir)),
            input: dir,
            files,
            multi: true,
        });
    }
    cases
}

/// What checking a case produced: the text of each file as the renderer shows it, and
/// the diagnostics (each naming its file by index).
struct Outcome {
    texts: Vec<String>,
    diagnostics: Vec<Diagnostic>,
}

fn run(case: &Case) -> Outcome {
    let mut sources = Vec::new();
    let mut texts = Vec::new();
    let mut diagnostics = Vec::new();
    for (index, (name, bytes)) in case.files.iter().enumerate() {
        match weir_dsl::decode_utf8(bytes) {
            Ok(text) => {
                texts.push(text.to_string());
                sources.push(SourceText {
                    name: name.clone(),
                    text: text.to_string(),
                });
            }
            Err(diagnostic) => {
                // The caller reports undecodable files and checks the rest.
                texts.push(String::from_utf8_lossy(bytes).into_owned());
                diagnostics.push(diagnostic.in_file(index));
            }
        }
    }
    if diagnostics.is_empty() {
        diagnostics = weir_dsl::check(&sources).diagnostics;
    }
    Outcome { texts, diagnostics }
}

/// Shows control characters (other than tab and newline) as `\u{..}` so that snapshots
/// stay plain text.
fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if ch.is_control() && ch != '\n' && ch != '\t' {
            let _ = write!(out, "\\u{{{:X}}}", ch as u32);
        } else {
            out.push(ch);
        }
    }
    out
}

/// A byte offset as `line:col` in the file as it was read (invalid UTF-8 counts as one
/// replacement character per bad sequence, as the rendered source shows it).
fn position(bytes: &[u8], offset: usize) -> String {
    let prefix = String::from_utf8_lossy(bytes.get(..offset.min(bytes.len())).unwrap_or(bytes));
    let (line, col) = line_col(&prefix, prefix.len());
    format!("{line}:{col}")
}

fn span_text(bytes: &[u8], diagnostic: &Diagnostic) -> String {
    let range = diagnostic.span.range();
    match bytes.get(range.clone()) {
        Some(slice) => match std::str::from_utf8(slice) {
            Ok(text) => visible(text),
            Err(_) => slice.iter().map(|b| format!("\\x{b:02X}")).collect(),
        },
        None => format!("<span {range:?} is outside the file>"),
    }
}

fn render(case: &Case, outcome: &Outcome) -> String {
    let mut out = String::new();
    for ((name, _), text) in case.files.iter().zip(&outcome.texts) {
        let _ = writeln!(out, "--- {name} ---");
        out.push_str(&visible(text));
        if !text.ends_with('\n') {
            out.push_str("\n<no newline at end of file>\n");
        }
    }
    let _ = writeln!(out, "--- diagnostics ---");
    for d in &outcome.diagnostics {
        let (name, bytes) = case
            .files
            .get(d.file)
            .map_or(("?", &[][..]), |(n, b)| (n.as_str(), b.as_slice()));
        let prefix = if case.multi {
            format!("{name}:")
        } else {
            String::new()
        };
        let severity = match d.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let range = d.span.range();
        let _ = writeln!(
            out,
            "{} {severity} {prefix}{}-{} {}",
            d.code,
            position(bytes, range.start),
            position(bytes, range.end),
            d.message
        );
        if let Some(help) = &d.help {
            let _ = writeln!(out, "  help: {help}");
        }
        if let Some(label) = &d.label {
            let _ = writeln!(out, "  label: {label}");
        }
        for related in &d.related {
            let (rname, rbytes) = case
                .files
                .get(related.file)
                .map_or(("?", &[][..]), |(n, b)| (n.as_str(), b.as_slice()));
            let rprefix = if case.multi {
                format!("{rname}:")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  related {rprefix}{}: {}",
                position(rbytes, related.span.range().start),
                related.message
            );
        }
        let _ = writeln!(out, "  span text: «{}»", span_text(bytes, d));
    }
    out
}

#[test]
fn corpus_snapshots() {
    let mut failures = Vec::new();
    for case in cases() {
        let outcome = run(&case);
        let rendered = render(&case, &outcome);
        let mut settings = insta::Settings::clone_current();
        settings.set_prepend_module_to_snapshot(false);
        settings.set_input_file(&case.input);
        settings.set_omit_expression(true);
        let result = catch_unwind(AssertUnwindSafe(|| {
            settings.bind(|| insta::assert_snapshot!(case.name.as_str(), rendered));
        }));
        if result.is_err() {
            failures.push(case.name.clone());
        }
    }
    assert!(
        failures.is_empty(),
        "snapshots differ for: {}",
        failures.join(", ")
    );
}

#[test]
fn corpus_is_large_and_every_file_is_invalid() {
    let files = weir_files(&corpus_dir().join("invalid"));
    assert!(
        files.len() >= MIN_FILES,
        "the invalid corpus holds {} files; it should hold at least {MIN_FILES}",
        files.len()
    );
    let clean: Vec<String> = cases()
        .iter()
        .filter(|case| run(case).diagnostics.is_empty())
        .map(|case| {
            case.input
                .strip_prefix(corpus_dir())
                .unwrap_or(&case.input)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        clean.is_empty(),
        "these invalid files check clean: {}",
        clean.join(", ")
    );
}

#[test]
fn every_code_appears_in_some_snapshot() {
    let mut seen = BTreeSet::new();
    for case in cases() {
        let rendered = render(&case, &run(&case));
        let diagnostics = rendered.split("--- diagnostics ---\n").nth(1).unwrap_or("");
        for line in diagnostics.lines().filter(|l| !l.starts_with(' ')) {
            if let Some(code) = line.split(' ').next().and_then(Code::from_str_code) {
                seen.insert(code);
            }
        }
    }
    let missing: Vec<&str> = Code::ALL
        .iter()
        .filter(|code| **code != Code::FileTooLarge && !seen.contains(code))
        .map(|code| code.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "no snapshot shows these codes: {}",
        missing.join(", ")
    );
}

/// E0003 needs a file over 16 MiB, which the corpus does not commit: build one in memory.
#[test]
fn file_over_16_mib_is_rejected() {
    let mut text =
        String::from("// a generated ruleset that grew too large\nruleset big_sale currency CNY\n");
    let line = "// padding: one of many generated comment lines to pass the size limit\n";
    while text.len() <= weir_dsl::MAX_FILE_BYTES {
        text.push_str(line);
    }
    let size = text.len();
    let output = weir_dsl::check(&[SourceText {
        name: "big_sale.weir".to_string(),
        text,
    }]);
    let codes: Vec<Code> = output.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, vec![Code::FileTooLarge]);
    let diagnostic = &output.diagnostics[0];
    assert_eq!(diagnostic.span.range(), 0..0);
    assert_eq!(
        diagnostic.message,
        format!(
            "file is {size} bytes; the limit is {} bytes (16 MiB)",
            weir_dsl::MAX_FILE_BYTES
        )
    );
    assert!(output.ruleset.is_none());
}
