//! The weir rule language front end: text → AST → checked, typed ruleset, with
//! diagnostics and a formatter. Pure: no files, clocks or network — callers pass text in.
//!
//! Stages, each a module with its own tests: `prescan` (items, comments, nesting) →
//! `parser` (pest → `ast`) → `check` (names, types, units → `checked`) ; `fmt` prints an
//! `ast::SourceFile` back in the canonical layout.

pub mod ast;
pub mod check;
pub mod checked;
pub mod diagnostic;
pub mod fmt;
pub mod parser;
pub mod prescan;
pub mod schema;
pub mod span;
pub mod types;

pub use check::{check, CheckOutput};
pub use diagnostic::{Code, Diagnostic, FileId, Severity};
pub use parser::{parse_expr, parse_file, MAX_FILE_BYTES};
pub use span::Span;

/// One file of a ruleset, as the caller read it.
#[derive(Clone, Debug)]
pub struct SourceText {
    /// How diagnostics name the file (usually its path).
    pub name: String,
    pub text: String,
}

/// Decodes a file's bytes as UTF-8, or explains where it is not.
pub fn decode_utf8(bytes: &[u8]) -> Result<&str, Diagnostic> {
    std::str::from_utf8(bytes).map_err(|error| {
        let at = error.valid_up_to();
        let len = error.error_len().unwrap_or(bytes.len() - at).max(1);
        Diagnostic::new(
            Code::InvalidUtf8,
            Span::new(at, at + len),
            format!("file is not valid UTF-8 (invalid byte at offset {at})"),
        )
        .with_help("save the file as UTF-8; GBK and Big5 exports are a common cause")
    })
}
