//! Name resolution, type and unit checking, and lints over a whole ruleset.

use crate::checked::Ruleset;
use crate::diagnostic::Diagnostic;
use crate::SourceText;

/// What checking a ruleset produced: every diagnostic (errors and warnings, each naming
/// its file by index into the sources), and the typed ruleset when there was no error.
#[derive(Debug)]
pub struct CheckOutput {
    pub diagnostics: Vec<Diagnostic>,
    pub ruleset: Option<Ruleset>,
}

/// Checks the files of one ruleset together.
pub fn check(sources: &[SourceText]) -> CheckOutput {
    let mut diagnostics = Vec::new();
    for (file, source) in sources.iter().enumerate() {
        let (_, found) = crate::parse_file(&source.text);
        diagnostics.extend(found.into_iter().map(|d| d.in_file(file)));
    }
    CheckOutput {
        diagnostics,
        ruleset: None,
    }
}
