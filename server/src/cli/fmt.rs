//! `weir fmt`: rewrite rule files in the canonical layout, or (`--check`) list those that
//! are not. Files that do not parse are reported and never touched.

use crate::cli::render::{self, Human, HumanStyle};
use crate::cli::sources::{self, LoadedFile};
use crate::cli::write::replace_file;
use crate::cli::{Error, FmtArgs, Status};
use std::io::Write;
use weir_dsl::fmt::format_file;

pub fn run(
    args: &FmtArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    style: &HumanStyle,
) -> Result<Status, Error> {
    let groups = sources::discover(&args.paths)?;
    // Read everything first: a missing or unreadable path stops the run before any file is
    // rewritten.
    let files = sources::load(&groups)?;
    let human = Human::new(style);

    let mut status = Status::Success;
    let mut changed = 0;
    let mut unparsable = 0;
    for file in &files {
        let formatted = match formatted(file) {
            Ok(formatted) => formatted,
            Err(diagnostics) => {
                // The renderer takes the file list diagnostics index into: here, just this file.
                let this = std::slice::from_ref(file);
                for diagnostic in &diagnostics {
                    human.render(err, this, &diagnostic.clone().in_file(0))?;
                }
                status = status.max(Status::Problems);
                unparsable += 1;
                continue;
            }
        };
        if formatted == file.text {
            continue;
        }
        changed += 1;
        if args.check {
            writeln!(out, "would reformat: {}", file.name)?;
            status = status.max(Status::Problems);
        } else if let Err(error) = replace_file(&file.path, formatted.as_bytes()) {
            writeln!(err, "weir: error: cannot write {}: {error}", file.name)?;
            changed -= 1;
            status = Status::Failure;
        }
    }

    let count = render::plural(changed, "file");
    let mut summary = if !args.check {
        format!("formatted {count}")
    } else if changed > 0 || unparsable > 0 {
        format!("{count} would be reformatted")
    } else {
        format!(
            "checked {}: all formatted",
            render::plural(files.len(), "file")
        )
    };
    if unparsable > 0 {
        summary.push_str(&format!(
            "; {} left unchanged because of errors",
            render::plural(unparsable, "file")
        ));
    }
    writeln!(err, "{summary}")?;
    Ok(status)
}

/// The formatted text, or the diagnostics that stop the file from being formatted.
fn formatted(file: &LoadedFile) -> Result<String, Vec<weir_dsl::Diagnostic>> {
    match &file.unreadable {
        Some(diagnostic) => Err(vec![diagnostic.clone()]),
        None => format_file(&file.text),
    }
}
