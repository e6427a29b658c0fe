//! `weir check`: find the rulesets, check each one, report in the chosen format.

use crate::cli::render::{self, Counts, Human, HumanStyle};
use crate::cli::sources::{self, LoadedFile};
use crate::cli::{CheckArgs, Error, Format, Status};
use std::io::Write;
use weir_dsl::{Diagnostic, SourceText};

pub fn run(
    args: &CheckArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    style: &HumanStyle,
) -> Result<Status, Error> {
    let groups = sources::discover(&args.paths)?;
    let files = sources::load(&groups)?;
    let diagnostics = check_all(&files, groups.len());
    let counts = Counts::of(&diagnostics);

    match args.format {
        Format::Human => {
            let human = Human::new(style);
            for diagnostic in &diagnostics {
                human.render(err, &files, diagnostic)?;
            }
            writeln!(err, "{}", render::summary(counts, files.len()))?;
        }
        Format::Json => render::json(out, &files, &diagnostics)?,
        Format::Github => {
            render::github(out, &files, &diagnostics)?;
            // The annotations go to stdout for the runner; the log still gets a summary.
            writeln!(err, "{}", render::summary(counts, files.len()))?;
        }
    }

    let failed = counts.errors > 0 || (args.deny_warnings && counts.warnings > 0);
    Ok(if failed {
        Status::Problems
    } else {
        Status::Success
    })
}

/// Checks every ruleset and returns all diagnostics, their `file` (and related files)
/// renumbered to index `files`, sorted by file then position.
pub fn check_all(files: &[LoadedFile], rulesets: usize) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for (index, file) in files.iter().enumerate() {
        if let Some(diagnostic) = &file.unreadable {
            diagnostics.push(diagnostic.clone().in_file(index));
        }
    }
    for ruleset in 0..rulesets {
        // Indices into `files` of this ruleset's checkable files, in the order given to the
        // front end, so its FileIds can be mapped back.
        let members: Vec<usize> = files
            .iter()
            .enumerate()
            .filter(|(_, file)| file.ruleset == ruleset && file.unreadable.is_none())
            .map(|(index, _)| index)
            .collect();
        if members.is_empty() {
            continue;
        }
        let sources: Vec<SourceText> = members
            .iter()
            .filter_map(|index| files.get(*index))
            .map(|file| SourceText {
                name: file.name.clone(),
                text: file.text.clone(),
            })
            .collect();
        let to_global = |local: usize| members.get(local).copied().unwrap_or(usize::MAX);
        for mut diagnostic in weir_dsl::check(&sources).diagnostics {
            // usize::MAX (a FileId the front end should never produce) renders without a snippet.
            diagnostic.file = to_global(diagnostic.file);
            for related in &mut diagnostic.related {
                related.file = to_global(related.file);
            }
            diagnostics.push(diagnostic);
        }
    }
    render::sort(&mut diagnostics);
    diagnostics
}
