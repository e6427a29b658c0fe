//! The docs match the code: every `weir` example in README.md and docs/ checks without
//! error, the schema table lists every built-in field, docs/diagnostics.md is the code
//! table, and the DESIGN.md sketch (copied verbatim into fixtures/) checks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use weir_dsl::{check, schema::Schema, Code, Severity, SourceText};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The ```weir blocks of a markdown file, with the line each starts on.
fn weir_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (number, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim() == "```weir" => current = Some((number + 1, String::new())),
            Some(_) if line.trim() == "```" => blocks.push(current.take().unwrap()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_weir_example_in_the_docs_checks_without_error() {
    let mut count = 0;
    for path in markdown_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (line, block) in weir_blocks(&text) {
            count += 1;
            let out = check(&[SourceText {
                name: format!("{}:{line}", path.display()),
                text: block.clone(),
            }]);
            let errors: Vec<String> = out
                .diagnostics
                .iter()
                .filter(|d| d.severity() == Severity::Error)
                .map(|d| {
                    format!(
                        "{} {} at {:?}: {:?}",
                        d.code,
                        d.message,
                        d.span,
                        &block[d.span.range()]
                    )
                })
                .collect();
            assert!(errors.is_empty(), "{}:{line}: {errors:#?}", path.display());
        }
    }
    assert!(
        count >= 8,
        "expected the docs to hold examples, found {count}"
    );
}

#[test]
fn the_schema_table_lists_every_builtin_field() {
    let language = std::fs::read_to_string(repo().join("docs/language.md")).unwrap();
    for entity in &Schema::builtin().entities {
        for field in &entity.fields {
            let cell = format!("| `{}.{}` |", entity.name, field.name);
            assert!(
                language.contains(&cell),
                "docs/language.md lacks a row for {cell}"
            );
        }
    }
}

fn diagnostics_markdown() -> String {
    let mut out = String::from(
        "# Diagnostics\n\nEvery diagnostic `weir check` reports has one of these codes. Errors (`E`) make \
         `weir check` exit 1; warnings (`W`) do so only with `--deny-warnings`. `weir explain CODE` prints \
         the same text. This file is generated from `dsl/src/diagnostic.rs`: run \
         `UPDATE_DOCS=1 cargo test -p weir-dsl --test docs` after changing a code.\n\n\
         | code | severity | title |\n| --- | --- | --- |\n",
    );
    for code in Code::ALL {
        let severity = match code.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!(
            "| [{code}](#{}) | {severity} | {} |\n",
            code.as_str().to_lowercase(),
            code.title()
        ));
    }
    for code in Code::ALL {
        out.push_str(&format!(
            "\n## {code}\n\n**{}**\n\n{}\n",
            code.title(),
            code.explanation()
        ));
    }
    out
}

#[test]
fn docs_diagnostics_md_is_the_code_table() {
    let path = repo().join("docs/diagnostics.md");
    let expected = diagnostics_markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let found = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        found == expected,
        "docs/diagnostics.md is out of date: run `UPDATE_DOCS=1 cargo test -p weir-dsl --test docs`"
    );
}

#[test]
fn codes_are_unique_and_well_formed() {
    let mut seen = std::collections::HashSet::new();
    for code in Code::ALL {
        let text = code.as_str();
        assert!(seen.insert(text), "{text} twice");
        assert_eq!(text.len(), 5);
        assert!(text.starts_with('E') || text.starts_with('W'));
        assert_eq!(Code::from_str_code(text), Some(*code));
        assert_eq!(text.starts_with('W'), code.severity() == Severity::Warning);
    }
}

#[test]
fn the_design_sketch_checks_with_only_its_unused_table_warning() {
    let text = include_str!("fixtures/design_example.weir");
    let out = check(&[SourceText {
        name: "design_example.weir".into(),
        text: text.to_string(),
    }]);
    let found: Vec<(Code, &str)> = out
        .diagnostics
        .iter()
        .map(|d| (d.code, &text[d.span.range()]))
        .collect();
    // The sketch declares `points_multiplier` but no rule of the sketch calls it.
    assert_eq!(found, vec![(Code::UnusedTable, "points_multiplier")]);
    assert!(out.ruleset.is_some());
}

#[test]
fn every_file_in_rulesets_checks_clean() {
    let root = repo().join("rulesets");
    let mut folders = vec![root];
    let mut checked = 0;
    while let Some(folder) = folders.pop() {
        let mut sources = Vec::new();
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "weir") {
                sources.push(SourceText {
                    name: path.display().to_string(),
                    text: std::fs::read_to_string(&path).unwrap(),
                });
            }
        }
        if sources.is_empty() {
            continue;
        }
        checked += sources.len();
        let out = check(&sources);
        assert!(
            out.diagnostics.is_empty(),
            "{}: {:#?}",
            folder.display(),
            out.diagnostics
        );
    }
    assert!(checked > 0);
}

#[test]
fn every_weir_example_in_the_docs_is_formatted() {
    for path in markdown_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (line, block) in weir_blocks(&text) {
            let formatted = weir_dsl::fmt::format_file(&block).unwrap();
            assert!(
                formatted == block,
                "{}:{line}: the example is not in canonical layout; `weir fmt` gives:\n{formatted}",
                path.display()
            );
        }
    }
}

#[test]
fn every_file_in_rulesets_is_formatted() {
    let mut folders = vec![repo().join("rulesets")];
    let mut seen = 0;
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "weir") {
                seen += 1;
                let text = std::fs::read_to_string(&path).unwrap();
                let formatted = weir_dsl::fmt::format_file(&text).unwrap();
                assert!(
                    formatted == text,
                    "{} is not formatted: run `weir fmt rulesets/`",
                    path.display()
                );
            }
        }
    }
    assert!(seen > 0);
}
