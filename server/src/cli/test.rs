//! `weir test`: run every ruleset's `test` blocks through both engines — the reference
//! interpreter and the compiled WebAssembly module — and report failures, engine
//! disagreements and rule coverage.

use crate::cli::render::{self, Human, HumanStyle};
use crate::cli::sources::{self, LoadedFile};
use crate::cli::{Error, Status, TestArgs};
use std::io::Write;
use weir_compiler::evaluate::{Engine, Interpreter};
use weir_compiler::testing::{run_tests, Report};
use weir_dsl::{Severity, SourceText};
use weir_runtime::evaluator::WasmEngine;
use weir_runtime::{EngineConfig, LoadedModule};

/// A ruleset as the command line found it: its files (indices into the loaded files).
struct Group<'a> {
    files: Vec<&'a LoadedFile>,
}

pub fn run(
    args: &TestArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    style: &HumanStyle,
) -> Result<Status, Error> {
    let groups = sources::discover(&args.paths)?;
    let files = sources::load(&groups)?;
    let mut status = Status::Success;
    let mut totals = (0usize, 0usize);
    let mut covered = (0usize, 0usize);
    let human = Human::new(style);
    for index in 0..groups.len() {
        let group = Group {
            files: files.iter().filter(|f| f.ruleset == index).collect(),
        };
        let Some(first) = group.files.first() else {
            continue;
        };
        let label = ruleset_label(first);
        if group.files.iter().any(|f| f.unreadable.is_some()) {
            writeln!(
                err,
                "{label}: not tested: a file cannot be read (run `weir check`)"
            )?;
            status = status.max(Status::Problems);
            continue;
        }
        let sources: Vec<SourceText> = group
            .files
            .iter()
            .map(|f| SourceText {
                name: f.name.clone(),
                text: f.text.clone(),
            })
            .collect();
        let checked = weir_dsl::check(&sources);
        let Some(ruleset) = checked.ruleset else {
            let owned: Vec<LoadedFile> = group.files.iter().map(|f| clone_file(f)).collect();
            for diagnostic in checked
                .diagnostics
                .iter()
                .filter(|d| d.severity() == Severity::Error)
            {
                human.render(err, &owned, diagnostic)?;
            }
            writeln!(err, "{label}: not tested: the ruleset has errors")?;
            status = status.max(Status::Problems);
            continue;
        };
        let (compiled, module) = match build(&ruleset, &label) {
            Ok(built) => built,
            Err(error) => {
                writeln!(err, "{label}: cannot compile: {error}")?;
                status = status.max(Status::Problems);
                continue;
            }
        };
        let interpreter = Interpreter {
            compiled: &compiled,
        };
        let wasm = WasmEngine { module: &module };
        let engines: Vec<&dyn Engine> = vec![&interpreter, &wasm];
        let report = run_tests(&ruleset, &compiled, &engines);
        print_failures(err, &report, &group)?;
        let failed = report.failed();
        totals.0 += report.results.len();
        totals.1 += failed;
        let uncovered = report.not_covered();
        covered.0 += report.rules.len() - uncovered.len();
        covered.1 += report.rules.len();
        writeln!(
            out,
            "{label}: {}, {} passed, {} failed ({}); coverage {:.0}% of {}",
            render::plural(report.results.len(), "test"),
            report.results.len() - failed,
            failed,
            report.engines.join(" + "),
            report.coverage(),
            render::plural(report.rules.len(), "rule"),
        )?;
        if args.coverage {
            for (name, origin) in &uncovered {
                let file = group.files.get(origin.file);
                let (path, line) = match file {
                    Some(f) => (
                        f.name.as_str(),
                        render::position(&f.text, origin.span.start as usize).line,
                    ),
                    None => ("?", 0),
                };
                writeln!(out, "  not covered: `{name}` ({path}:{line})")?;
            }
        }
        if failed > 0 {
            status = status.max(Status::Problems);
        }
    }
    let coverage = if covered.1 == 0 {
        100.0
    } else {
        covered.0 as f64 * 100.0 / covered.1 as f64
    };
    writeln!(
        out,
        "{}: {} passed, {} failed; coverage {:.1}% ({} of {} rules fired by a test)",
        render::plural(totals.0, "test"),
        totals.0 - totals.1,
        totals.1,
        coverage,
        covered.0,
        covered.1
    )?;
    if let Some(min) = args.coverage_min {
        if coverage + 1e-9 < f64::from(min) {
            writeln!(err, "coverage {coverage:.1}% is below the required {min}%")?;
            status = status.max(Status::Problems);
        }
    }
    Ok(status)
}

/// Compiles a ruleset to IR and to a loaded WebAssembly module.
pub fn build(
    ruleset: &weir_dsl::checked::Ruleset,
    label: &str,
) -> Result<(weir_compiler::Compiled, LoadedModule), String> {
    let (compiled, wasm) = weir_compiler::build(ruleset).map_err(|e| e.to_string())?;
    let engine = weir_runtime::Engine::new(&EngineConfig::default()).map_err(|e| e.to_string())?;
    let artifact = engine.precompile(&wasm).map_err(|e| e.to_string())?;
    let module = engine.load(label, &artifact).map_err(|e| e.to_string())?;
    Ok((compiled, module))
}

fn ruleset_label(file: &LoadedFile) -> String {
    let path = std::path::Path::new(&file.name);
    match path.parent().and_then(|p| p.file_name()) {
        Some(folder) => folder.to_string_lossy().into_owned(),
        None => file.name.clone(),
    }
}

fn clone_file(file: &LoadedFile) -> LoadedFile {
    LoadedFile {
        path: file.path.clone(),
        name: file.name.clone(),
        ruleset: 0,
        text: file.text.clone(),
        unreadable: file.unreadable.clone(),
    }
}

fn print_failures(err: &mut dyn Write, report: &Report, group: &Group<'_>) -> std::io::Result<()> {
    for result in report.results.iter().filter(|r| !r.passed()) {
        for failure in &result.failures {
            let location = match group.files.get(result.origin.file) {
                Some(f) => {
                    let p = render::position(&f.text, failure.span.start as usize);
                    format!("{}:{}:{}", f.name, p.line, p.column)
                }
                None => "?".to_string(),
            };
            writeln!(
                err,
                "FAIL {location}: test \"{}\": {}",
                result.name, failure.message
            )?;
        }
    }
    Ok(())
}
