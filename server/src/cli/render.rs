//! Turning diagnostics into output: human (miette's graphical report), JSON, and GitHub
//! Actions workflow commands, plus the one-line summary.
//!
//! Spans come from the front end as byte ranges; everything here tolerates a span that is
//! out of bounds or not on a character boundary (clamped, never indexed blindly), because a
//! renderer that panics on a checker bug would hide the diagnostic it was asked to show.

use crate::cli::sources::LoadedFile;
use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};
use serde::Serialize;
use std::fmt;
use std::io::{self, IsTerminal as _, Write};
use std::ops::Range;
use weir_dsl::span::line_col;
use weir_dsl::{Diagnostic, Severity, Span};

/// How many errors and warnings a run found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub errors: usize,
    pub warnings: usize,
}

impl Counts {
    pub fn of(diagnostics: &[Diagnostic]) -> Counts {
        let errors = diagnostics
            .iter()
            .filter(|d| d.severity() == Severity::Error)
            .count();
        Counts {
            errors,
            warnings: diagnostics.len() - errors,
        }
    }
}

/// `2 errors, 1 warning in 3 files`, or `checked 3 files: no problems`.
pub fn summary(counts: Counts, files: usize) -> String {
    let mut parts = Vec::new();
    if counts.errors > 0 {
        parts.push(plural(counts.errors, "error"));
    }
    if counts.warnings > 0 {
        parts.push(plural(counts.warnings, "warning"));
    }
    if parts.is_empty() {
        format!("checked {}: no problems", plural(files, "file"))
    } else {
        format!("{} in {}", parts.join(", "), plural(files, "file"))
    }
}

pub fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// A 1-based line and column (column counted in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

pub fn position(text: &str, offset: usize) -> Position {
    let (line, column) = line_col(text, offset);
    Position { line, column }
}

/// The span as a range that is safe to slice `text` with: clamped to the text, widened
/// outward to character boundaries (a span inside a multi-byte character, such as the
/// U+FFFD standing in for an invalid byte, covers that whole character).
pub fn display_range(text: &str, span: Span) -> Range<usize> {
    let range = span.range();
    let mut start = range.start.min(text.len());
    while start > 0 && !text.is_char_boundary(start) {
        start -= 1;
    }
    if range.end <= range.start {
        // An empty (or reversed) span marks a point; it stays one.
        return start..start;
    }
    let mut end = range.end.clamp(start, text.len());
    while end < text.len() && !text.is_char_boundary(end) {
        end += 1;
    }
    start..end
}

fn start_end(text: &str, span: Span) -> (Position, Position) {
    let range = display_range(text, span);
    (position(text, range.start), position(text, range.end))
}

fn severity_str(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// Sorts by file (in discovery order), then position, so output is stable.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (a.file, a.span.start, a.span.end, a.code, &a.message).cmp(&(
            b.file,
            b.span.start,
            b.span.end,
            b.code,
            &b.message,
        ))
    });
}

// ---------------------------------------------------------------------------------------
// Human

/// Terminal settings for the human format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanStyle {
    pub color: bool,
    /// Column at which miette wraps messages.
    pub width: usize,
}

impl HumanStyle {
    /// Colors only on a terminal (never in CI logs or when piped) and never when NO_COLOR is
    /// set to a non-empty value (https://no-color.org).
    pub fn detect() -> HumanStyle {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|columns| columns.trim().parse::<usize>().ok())
            .filter(|columns| *columns >= 40)
            .unwrap_or(100);
        HumanStyle {
            color: io::stderr().is_terminal() && !no_color,
            width,
        }
    }

    pub fn plain() -> HumanStyle {
        HumanStyle {
            color: false,
            width: 100,
        }
    }
}

/// Draws diagnostics with miette's graphical handler.
pub struct Human {
    handler: GraphicalReportHandler,
}

impl Human {
    pub fn new(style: &HumanStyle) -> Human {
        let theme = if style.color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        Human {
            handler: GraphicalReportHandler::new_themed(theme)
                .with_width(style.width)
                // No terminal hyperlinks: the code is printed as text and there is no URL.
                .with_links(false),
        }
    }

    /// Renders one diagnostic followed by a blank line. `files` is what `diagnostic.file`
    /// and its related entries index into.
    pub fn render(
        &self,
        out: &mut dyn Write,
        files: &[LoadedFile],
        diagnostic: &Diagnostic,
    ) -> io::Result<()> {
        let report = HumanReport::new(files, diagnostic);
        let mut text = String::new();
        if self.handler.render_report(&mut text, &report).is_err() {
            // miette only fails on a span it cannot read; still say what the problem is.
            text = format!("{}: {}\n", diagnostic.code, diagnostic.message);
        }
        writeln!(out, "{text}")
    }
}

/// A file's text prepared for display: control characters (which E0006 reports, and which
/// would otherwise reach the terminal raw) are replaced by visible symbols, with a map to
/// move the front end's byte offsets accordingly.
#[derive(Debug)]
struct DisplayText<'a> {
    name: &'a str,
    text: String,
    /// (original offset of a replaced character, bytes added by replacing it), ascending.
    shifts: Vec<(usize, usize)>,
}

impl<'a> DisplayText<'a> {
    fn new(name: &'a str, original: &str) -> DisplayText<'a> {
        let mut text = String::with_capacity(original.len());
        let mut shifts = Vec::new();
        for (offset, c) in original.char_indices() {
            let shown = match c {
                '\t' | '\n' | '\r' => c,
                // U+2400.. are the "symbol for NUL" etc.; U+2421 is the symbol for DELETE.
                '\0'..='\x1f' => char::from_u32(0x2400 + u32::from(c)).unwrap_or('\u{FFFD}'),
                '\x7f' => '\u{2421}',
                '\u{80}'..='\u{9f}' => '\u{FFFD}',
                _ => c,
            };
            if shown != c {
                shifts.push((offset, shown.len_utf8() - c.len_utf8()));
            }
            text.push(shown);
        }
        DisplayText { name, text, shifts }
    }

    /// Maps a byte offset in the original text to the displayed text.
    fn map(&self, offset: usize) -> usize {
        let before = self.shifts.partition_point(|(at, _)| *at < offset);
        offset
            + self
                .shifts
                .iter()
                .take(before)
                .map(|(_, added)| added)
                .sum::<usize>()
    }

    fn span(&self, original: &str, span: Span) -> SourceSpan {
        let range = display_range(original, span);
        let start = self.map(range.start);
        let end = self.map(range.end);
        SourceSpan::new(start.into(), end - start)
    }
}

impl SourceCode for DisplayText<'_> {
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        // Naming the contents is what puts `[path:line:col]` above the snippet.
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.to_string(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

/// A related place in another file: miette draws it as a separate note with its own snippet.
#[derive(Debug)]
struct RelatedReport<'a> {
    message: &'a str,
    source: Option<DisplayText<'a>>,
    label: Option<LabeledSpan>,
}

/// Adapts a weir diagnostic to miette's `Diagnostic` trait.
#[derive(Debug)]
struct HumanReport<'a> {
    diagnostic: &'a Diagnostic,
    source: Option<DisplayText<'a>>,
    labels: Vec<LabeledSpan>,
    related: Vec<RelatedReport<'a>>,
}

impl<'a> HumanReport<'a> {
    fn new(files: &'a [LoadedFile], diagnostic: &'a Diagnostic) -> HumanReport<'a> {
        let file = files.get(diagnostic.file);
        let source = file.map(|file| DisplayText::new(&file.name, &file.text));
        let mut labels = Vec::new();
        let mut related = Vec::new();
        if let (Some(file), Some(source)) = (file, &source) {
            labels.push(LabeledSpan::new_primary_with_span(
                diagnostic.label.clone(),
                source.span(&file.text, diagnostic.span),
            ));
        }
        for entry in &diagnostic.related {
            let related_file = files.get(entry.file);
            match (related_file, file, &source) {
                // Same file: an extra label in the main snippet.
                (Some(related_file), Some(_), Some(source)) if entry.file == diagnostic.file => {
                    labels.push(LabeledSpan::new_with_span(
                        Some(entry.message.clone()),
                        source.span(&related_file.text, entry.span),
                    ));
                }
                (Some(related_file), _, _) => {
                    let source = DisplayText::new(&related_file.name, &related_file.text);
                    let label = LabeledSpan::new_primary_with_span(
                        None,
                        source.span(&related_file.text, entry.span),
                    );
                    related.push(RelatedReport {
                        message: &entry.message,
                        source: Some(source),
                        label: Some(label),
                    });
                }
                (None, _, _) => related.push(RelatedReport {
                    message: &entry.message,
                    source: None,
                    label: None,
                }),
            }
        }
        HumanReport {
            diagnostic,
            source,
            labels,
            related,
        }
    }
}

impl fmt::Display for HumanReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for HumanReport<'_> {}

impl miette::Diagnostic for HumanReport<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diagnostic.code.as_str()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity() {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic
            .help
            .as_deref()
            .map(|help| Box::new(help) as Box<dyn fmt::Display + 'b>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|source| source as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }

    fn related<'b>(&'b self) -> Option<Box<dyn Iterator<Item = &'b dyn miette::Diagnostic> + 'b>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(
                self.related.iter().map(|r| r as &dyn miette::Diagnostic),
            ))
        }
    }
}

impl fmt::Display for RelatedReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl std::error::Error for RelatedReport<'_> {}

impl miette::Diagnostic for RelatedReport<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(miette::Severity::Advice)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|source| source as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.label.as_ref().map(|label| {
            Box::new(std::iter::once(label.clone())) as Box<dyn Iterator<Item = LabeledSpan>>
        })
    }
}

// ---------------------------------------------------------------------------------------
// JSON

#[derive(Serialize)]
struct JsonReport<'a> {
    version: u32,
    files: Vec<JsonFile<'a>>,
    diagnostics: Vec<JsonDiagnostic<'a>>,
    summary: JsonSummary,
}

#[derive(Serialize)]
struct JsonFile<'a> {
    path: &'a str,
    ruleset: usize,
}

#[derive(Serialize)]
struct JsonSpan {
    start: u32,
    end: u32,
}

impl From<Span> for JsonSpan {
    fn from(span: Span) -> JsonSpan {
        JsonSpan {
            start: span.start,
            end: span.end,
        }
    }
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'static str,
    severity: &'static str,
    message: &'a str,
    file: &'a str,
    /// Byte offsets into the file as stored on disk.
    span: JsonSpan,
    start: Position,
    end: Position,
    label: Option<&'a str>,
    help: Option<&'a str>,
    related: Vec<JsonRelated<'a>>,
}

#[derive(Serialize)]
struct JsonRelated<'a> {
    file: &'a str,
    span: JsonSpan,
    start: Position,
    message: &'a str,
}

#[derive(Serialize)]
struct JsonSummary {
    errors: usize,
    warnings: usize,
    files: usize,
}

fn file_name_and_text(files: &[LoadedFile], file: usize) -> (&str, &str) {
    files
        .get(file)
        .map_or(("", ""), |file| (file.name.as_str(), file.text.as_str()))
}

/// Writes the whole run as one JSON document (schema `version` 1) and a newline.
pub fn json(
    out: &mut dyn Write,
    files: &[LoadedFile],
    diagnostics: &[Diagnostic],
) -> io::Result<()> {
    let counts = Counts::of(diagnostics);
    let report = JsonReport {
        version: 1,
        files: files
            .iter()
            .map(|file| JsonFile {
                path: &file.name,
                ruleset: file.ruleset,
            })
            .collect(),
        diagnostics: diagnostics
            .iter()
            .map(|d| {
                let (name, text) = file_name_and_text(files, d.file);
                let (start, end) = start_end(text, d.span);
                JsonDiagnostic {
                    code: d.code.as_str(),
                    severity: severity_str(d.severity()),
                    message: &d.message,
                    file: name,
                    span: d.span.into(),
                    start,
                    end,
                    label: d.label.as_deref(),
                    help: d.help.as_deref(),
                    related: d
                        .related
                        .iter()
                        .map(|r| {
                            let (name, text) = file_name_and_text(files, r.file);
                            JsonRelated {
                                file: name,
                                span: r.span.into(),
                                start: start_end(text, r.span).0,
                                message: &r.message,
                            }
                        })
                        .collect(),
                }
            })
            .collect(),
        summary: JsonSummary {
            errors: counts.errors,
            warnings: counts.warnings,
            files: files.len(),
        },
    };
    serde_json::to_writer_pretty(&mut *out, &report).map_err(io::Error::other)?;
    writeln!(out)
}

// ---------------------------------------------------------------------------------------
// GitHub Actions

/// Escapes a workflow command's message (the part after `::`).
pub fn github_escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command property value (`file=...`, `title=...`).
pub fn github_escape_property(text: &str) -> String {
    github_escape_data(text)
        .replace(':', "%3A")
        .replace(',', "%2C")
}

/// One `::error ...::message` line per diagnostic, which GitHub shows as an annotation.
pub fn github(
    out: &mut dyn Write,
    files: &[LoadedFile],
    diagnostics: &[Diagnostic],
) -> io::Result<()> {
    for d in diagnostics {
        let (name, text) = file_name_and_text(files, d.file);
        let (start, end) = start_end(text, d.span);
        let mut message = d.message.clone();
        if let Some(help) = &d.help {
            message.push_str(" — help: ");
            message.push_str(help);
        }
        writeln!(
            out,
            "::{} file={},line={},col={},endLine={},endColumn={},title={}::{}",
            severity_str(d.severity()),
            github_escape_property(name),
            start.line,
            start.column,
            end.line,
            end.column,
            github_escape_property(d.code.as_str()),
            github_escape_data(&message),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use std::path::PathBuf;
    use weir_dsl::Code;

    fn file(name: &str, text: &str) -> LoadedFile {
        LoadedFile {
            path: PathBuf::from(name),
            name: name.to_string(),
            ruleset: 0,
            text: text.to_string(),
            unreadable: None,
        }
    }

    fn human(files: &[LoadedFile], d: &Diagnostic) -> String {
        let mut out = Vec::new();
        Human::new(&HumanStyle::plain())
            .render(&mut out, files, d)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn summary_lines() {
        assert_eq!(
            summary(
                Counts {
                    errors: 2,
                    warnings: 1
                },
                3
            ),
            "2 errors, 1 warning in 3 files"
        );
        assert_eq!(
            summary(
                Counts {
                    errors: 1,
                    warnings: 0
                },
                1
            ),
            "1 error in 1 file"
        );
        assert_eq!(
            summary(
                Counts {
                    errors: 0,
                    warnings: 2
                },
                2
            ),
            "2 warnings in 2 files"
        );
        assert_eq!(
            summary(Counts::default(), 3),
            "checked 3 files: no problems"
        );
    }

    #[test]
    fn github_escaping() {
        assert_eq!(github_escape_data("a%b\r\nc: d, e"), "a%25b%0D%0Ac: d, e");
        assert_eq!(github_escape_property("dir:x,y%\n"), "dir%3Ax%2Cy%25%0A");
    }

    #[test]
    fn display_range_clamps_and_widens_to_characters() {
        let text = "a\u{FFFD}b";
        assert_eq!(display_range(text, Span::new(1, 2)), 1..4);
        assert_eq!(display_range(text, Span::new(2, 2)), 1..1);
        assert_eq!(display_range(text, Span::new(10, 20)), 5..5);
        assert_eq!(display_range(text, Span::new(3, 1)), 1..1);
    }

    #[test]
    fn human_shows_code_file_label_help_and_same_file_related() {
        let files = [file(
            "rules/a.weir",
            "ruleset r currency CNY\nlist xs: string\nlist xs: string\n",
        )];
        let d = Diagnostic::new(Code::Duplicate, Span::new(44, 46), "`xs` is declared twice")
            .with_label("second declaration")
            .with_help("rename one of them")
            .with_related(0, Span::new(28, 30), "first declared here");
        let text = human(&files, &d);
        assert!(text.contains("E0106"), "{text}");
        assert!(text.contains("rules/a.weir:3:6"), "{text}");
        assert!(text.contains("second declaration"), "{text}");
        assert!(text.contains("first declared here"), "{text}");
        assert!(text.contains("help: rename one of them"), "{text}");
        assert!(!text.contains('\u{1b}'), "no colors in plain style: {text}");
    }

    #[test]
    fn human_shows_related_place_in_another_file() {
        let files = [
            file("a.weir", "list xs: string\n"),
            file("b.weir", "list xs: string\n"),
        ];
        let d = Diagnostic::new(Code::Duplicate, Span::new(5, 7), "`xs` is declared twice")
            .in_file(1)
            .with_related(0, Span::new(5, 7), "first declared here");
        let text = human(&files, &d);
        assert!(text.contains("b.weir:1:6"), "{text}");
        assert!(text.contains("a.weir:1:6"), "{text}");
        assert!(text.contains("first declared here"), "{text}");
    }

    #[test]
    fn human_survives_bad_spans_and_control_characters() {
        let files = [file("a.weir", "x\0y\u{1b}[31mz\u{85}")];
        for span in [
            Span::new(1, 2),
            Span::new(0, 0),
            Span::new(100, 200),
            Span::new(9, 10),
        ] {
            let d = Diagnostic::new(Code::ForbiddenCharacter, span, "forbidden character");
            let text = human(&files, &d);
            assert!(text.contains("E0006"), "{text}");
            assert!(!text.contains('\0') && !text.contains('\u{1b}'), "{text:?}");
        }
        let d =
            Diagnostic::new(Code::ForbiddenCharacter, Span::new(3, 4), "escape").with_label("here");
        let text = human(&files, &d);
        assert!(text.contains('\u{241b}'), "{text}");
        // A file index the checker got wrong still prints the message.
        let d = Diagnostic::new(Code::Syntax, Span::new(0, 1), "lost").in_file(7);
        assert!(human(&files, &d).contains("lost"));
    }

    #[test]
    fn display_text_maps_offsets_past_replacements() {
        let shown = DisplayText::new("a", "a\0b\u{85}c");
        assert_eq!(shown.text, "a\u{2400}b\u{FFFD}c");
        assert_eq!(shown.map(0), 0);
        assert_eq!(shown.map(1), 1);
        assert_eq!(shown.map(2), 4);
        assert_eq!(shown.map(3), 5);
        assert_eq!(shown.map(5), 8);
    }

    #[test]
    fn json_has_positions_in_characters() {
        let files = [file("a.weir", "¥¥\nab")];
        let d = Diagnostic::new(Code::Syntax, Span::new(6, 7), "bad").with_related(
            0,
            Span::new(2, 4),
            "r",
        );
        let mut out = Vec::new();
        json(&mut out, &files, &[d]).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let d = &value["diagnostics"][0];
        assert_eq!(d["start"], serde_json::json!({"line": 2, "column": 2}));
        assert_eq!(d["end"], serde_json::json!({"line": 2, "column": 3}));
        assert_eq!(
            d["related"][0]["start"],
            serde_json::json!({"line": 1, "column": 2})
        );
        assert_eq!(d["label"], serde_json::Value::Null);
    }
}
