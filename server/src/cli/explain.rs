//! `weir explain`: what a diagnostic code means, or the table of all codes.

use crate::cli::{Error, ExplainArgs, Status};
use std::io::Write;
use weir_dsl::{Code, Severity};

/// Explanations are wrapped to this width so they read well in an 80-column terminal.
const WIDTH: usize = 80;

pub fn run(args: &ExplainArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<Status, Error> {
    if args.list {
        list(out)?;
        return Ok(Status::Success);
    }
    let requested = args.code.as_deref().unwrap_or("").trim();
    match Code::from_str_code(requested) {
        Some(code) => {
            explain(out, code)?;
            Ok(Status::Success)
        }
        None => {
            writeln!(
                err,
                "weir: error: unknown diagnostic code `{requested}`: codes look like E0101 (errors) or W0001 \
                 (warnings); run `weir explain --list` to see them all"
            )?;
            Ok(Status::Failure)
        }
    }
}

fn severity_str(code: Code) -> &'static str {
    match code.severity() {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn explain(out: &mut dyn Write, code: Code) -> std::io::Result<()> {
    writeln!(out, "{}: {}", code.as_str(), code.title())?;
    writeln!(out, "severity: {}", severity_str(code))?;
    writeln!(out)?;
    for line in wrap(code.explanation(), WIDTH) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn list(out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{:<6} {:<9} TITLE", "CODE", "SEVERITY")?;
    for code in Code::ALL {
        writeln!(
            out,
            "{:<6} {:<9} {}",
            code.as_str(),
            severity_str(*code),
            code.title()
        )?;
    }
    Ok(())
}

/// Greedy word wrap; a word longer than the width gets a line of its own.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wraps_at_word_boundaries() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
        assert_eq!(
            wrap("averyverylongword b", 5),
            vec!["averyverylongword", "b"]
        );
        assert!(wrap("", 5).is_empty());
    }

    #[test]
    fn explanations_fit_the_width() {
        for code in Code::ALL {
            let mut out = Vec::new();
            explain(&mut out, *code).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text
                .lines()
                .skip(3)
                .all(|l| l.chars().count() <= WIDTH || !l.contains(' ')));
        }
    }
}
