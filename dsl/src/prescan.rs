//! A linear scan over a file before pest sees it. It does what a PEG parser cannot do
//! well: it finds the top-level items (so one syntax error does not hide the rest of
//! the file), collects comments for the formatter, and rejects input that would make a
//! recursive-descent parser misbehave — unbalanced or too-deep nesting, unterminated
//! strings, control characters — each with its own diagnostic code.

use crate::ast::Comment;
use crate::diagnostic::{Code, Diagnostic};
use crate::span::Span;

/// Brackets plus `if` expressions may nest this deep.
pub const MAX_NESTING: usize = 64;

/// Lexical diagnostics of one code beyond this many per file are summarised.
const MAX_REPEATS: usize = 8;

/// Words that start a top-level item when they are the first token on a line at
/// bracket depth zero.
pub const ITEM_KEYWORDS: &[&str] = &[
    "ruleset",
    "attribute",
    "list",
    "promotion",
    "route",
    "constraint",
    "risk",
    "decide",
    "table",
    "sop",
    "test",
];

/// A top-level item's text range, and whether it is sound enough to hand to pest.
#[derive(Debug, Clone)]
pub struct ItemChunk {
    pub span: Span,
    /// False when a lexical error inside it (unbalanced or too-deep brackets) makes the
    /// grammar's verdict meaningless or unsafe; the lexical diagnostic stands instead.
    pub parseable: bool,
}

#[derive(Debug, Default)]
pub struct Prescan {
    pub items: Vec<ItemChunk>,
    pub comments: Vec<Comment>,
    pub diagnostics: Vec<Diagnostic>,
}

struct Level {
    open: char,
    at: usize,
    ifs: usize,
}

struct Scanner<'a> {
    text: &'a str,
    out: Prescan,
    stack: Vec<Level>,
    /// `if`s seen at depth zero of the current item (outside any bracket).
    top_ifs: usize,
    item_start: Option<usize>,
    item_parseable: bool,
    counts: [usize; 4],
}

pub fn prescan(text: &str) -> Prescan {
    let mut scanner = Scanner {
        text,
        out: Prescan::default(),
        stack: Vec::new(),
        top_ifs: 0,
        item_start: None,
        item_parseable: true,
        counts: [0; 4],
    };
    scanner.run();
    scanner.out
}

impl Scanner<'_> {
    fn report(&mut self, diagnostic: Diagnostic) {
        let slot = match diagnostic.code {
            Code::ForbiddenCharacter => 0,
            Code::UnterminatedString => 1,
            Code::UnbalancedBracket => 2,
            _ => 3,
        };
        if let Some(count) = self.counts.get_mut(slot) {
            *count += 1;
            if *count <= MAX_REPEATS {
                self.out.diagnostics.push(diagnostic);
            }
        }
    }

    fn depth(&self) -> usize {
        self.stack.len() + self.stack.iter().map(|level| level.ifs).sum::<usize>() + self.top_ifs
    }

    fn run(&mut self) {
        let text = self.text;
        let bytes = text.as_bytes();
        let mut pos = 0;
        let mut line_start = true;
        while pos < bytes.len() {
            let Some(ch) = text.get(pos..).and_then(|rest| rest.chars().next()) else {
                break;
            };
            let width = ch.len_utf8();
            match ch {
                '\n' => {
                    line_start = true;
                    pos += 1;
                    continue;
                }
                ' ' | '\t' | '\r' | '\u{FEFF}' => {
                    pos += width;
                    continue;
                }
                _ => {}
            }
            if is_forbidden(ch) {
                self.forbidden(pos, ch);
                pos += width;
                line_start = false;
                continue;
            }
            if ch == '/' && bytes.get(pos + 1) == Some(&b'/') {
                pos = self.comment(pos);
                continue;
            }
            let first_on_line = line_start;
            line_start = false;
            if ch == '"' {
                self.ensure_item(pos);
                pos = self.string(pos);
                continue;
            }
            if ch.is_alphabetic() || ch == '_' {
                let end = word_end(text, pos);
                let word = text.get(pos..end).unwrap_or("");
                self.word(word, pos, end, first_on_line);
                pos = end;
                continue;
            }
            self.ensure_item(pos);
            match ch {
                '(' | '[' | '{' => {
                    self.stack.push(Level {
                        open: ch,
                        at: pos,
                        ifs: 0,
                    });
                    self.check_depth(pos, width);
                }
                ')' | ']' | '}' => self.close(ch, pos),
                ',' => self.reset_ifs(),
                '=' if bytes.get(pos + 1) == Some(&b'>') => self.reset_ifs(),
                _ => {}
            }
            pos += width;
        }
        self.finish_item(text.len());
    }

    fn forbidden(&mut self, pos: usize, ch: char) {
        let name = if ch == '\0' {
            "NUL byte".to_string()
        } else {
            format!("control character U+{:04X}", ch as u32)
        };
        self.report(
            Diagnostic::new(
                Code::ForbiddenCharacter,
                Span::new(pos, pos + ch.len_utf8()),
                format!("{name} in rule file"),
            )
            .with_help("remove it; rule files are plain UTF-8 text"),
        );
        if self.item_start.is_some() {
            self.item_parseable = false;
        }
    }

    fn comment(&mut self, start: usize) -> usize {
        let text = self.text;
        let end = text
            .get(start..)
            .and_then(|rest| rest.find('\n'))
            .map_or(text.len(), |i| start + i);
        let body = text.get(start + 2..end).unwrap_or("");
        for (offset, ch) in body.char_indices() {
            if is_forbidden(ch) {
                self.forbidden(start + 2 + offset, ch);
            }
        }
        let body = body.strip_suffix('\r').unwrap_or(body);
        self.out.comments.push(Comment {
            text: body.to_string(),
            span: Span::new(start, start + 2 + body.len()),
        });
        end
    }

    fn string(&mut self, start: usize) -> usize {
        let text = self.text;
        let mut chars = text.get(start + 1..).unwrap_or("").char_indices();
        while let Some((offset, ch)) = chars.next() {
            let at = start + 1 + offset;
            match ch {
                '"' => return at + 1,
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        if escaped == '\n' {
                            return self.unterminated(start, at);
                        }
                    }
                }
                '\n' => return self.unterminated(start, at),
                _ if is_forbidden(ch) => self.forbidden(at, ch),
                _ => {}
            }
        }
        self.unterminated(start, text.len())
    }

    fn unterminated(&mut self, start: usize, end: usize) -> usize {
        let end_trimmed = if self.text.as_bytes().get(end.saturating_sub(1)) == Some(&b'\r') {
            end - 1
        } else {
            end
        };
        self.report(
            Diagnostic::new(
                Code::UnterminatedString,
                Span::new(start, end_trimmed.max(start + 1)),
                "unterminated string",
            )
            .with_label("this string has no closing `\"`")
            .with_help("add `\"` at the end of the text; strings cannot span lines"),
        );
        self.item_parseable = false;
        end
    }

    fn word(&mut self, word: &str, start: usize, end: usize, first_on_line: bool) {
        let column_zero = start == 0 || self.text.as_bytes().get(start - 1) == Some(&b'\n');
        let starts_item = ITEM_KEYWORDS.contains(&word)
            && first_on_line
            && (self.stack.is_empty() || (column_zero && word != "list"));
        if starts_item {
            self.finish_item(start);
            self.item_start = Some(start);
            self.item_parseable = true;
            self.top_ifs = 0;
            return;
        }
        self.ensure_item(start);
        match word {
            "if" => {
                match self.stack.last_mut() {
                    Some(level) => level.ifs += 1,
                    None => self.top_ifs += 1,
                }
                self.check_depth(start, end - start);
            }
            // An `if` whose `else` has been seen no longer deepens what follows:
            // `if a then b else if c ...` chains stay shallow, nested `then if` do not.
            "else" => match self.stack.last_mut() {
                Some(level) => level.ifs = level.ifs.saturating_sub(1),
                None => self.top_ifs = self.top_ifs.saturating_sub(1),
            },
            "when" => self.reset_ifs(),
            _ => {}
        }
    }

    fn reset_ifs(&mut self) {
        match self.stack.last_mut() {
            Some(level) => level.ifs = 0,
            None => self.top_ifs = 0,
        }
    }

    fn check_depth(&mut self, pos: usize, width: usize) {
        if self.depth() > MAX_NESTING && self.item_parseable {
            self.report(
                Diagnostic::new(
                    Code::NestingTooDeep,
                    Span::new(pos, pos + width),
                    format!("nesting deeper than {MAX_NESTING} levels"),
                )
                .with_help("split the expression, or move the case analysis into a `table`"),
            );
            self.item_parseable = false;
        }
    }

    fn close(&mut self, ch: char, pos: usize) {
        let expected_open = match ch {
            ')' => '(',
            ']' => '[',
            _ => '{',
        };
        match self.stack.last() {
            Some(level) if level.open == expected_open => {
                self.stack.pop();
            }
            Some(level) => {
                let open = level.open;
                let at = level.at;
                self.report(
                    Diagnostic::new(
                        Code::UnbalancedBracket,
                        Span::new(pos, pos + 1),
                        format!("`{ch}` does not close `{open}`"),
                    )
                    .with_label(format!("expected `{}` here", closing(open)))
                    .with_related(
                        0,
                        Span::new(at, at + 1),
                        "the bracket opened here",
                    ),
                );
                self.item_parseable = false;
                self.stack.pop();
            }
            None => {
                self.report(
                    Diagnostic::new(
                        Code::UnbalancedBracket,
                        Span::new(pos, pos + 1),
                        format!("unexpected closing `{ch}`"),
                    )
                    .with_label("nothing is open here"),
                );
                self.item_parseable = false;
            }
        }
    }

    /// Text that is not trivia outside any item still has to be reported: it becomes an
    /// item of its own so the grammar can say what it expected.
    fn ensure_item(&mut self, pos: usize) {
        if self.item_start.is_none() {
            self.item_start = Some(pos);
            self.item_parseable = true;
            self.top_ifs = 0;
        }
    }

    fn finish_item(&mut self, end: usize) {
        let Some(start) = self.item_start.take() else {
            return;
        };
        if let Some(level) = self.stack.first() {
            let (open, at) = (level.open, level.at);
            self.report(
                Diagnostic::new(
                    Code::UnbalancedBracket,
                    Span::new(at, at + 1),
                    format!("unclosed `{open}`"),
                )
                .with_label(format!("this `{open}` is never closed"))
                .with_help(format!("add `{}` where the block ends", closing(open))),
            );
            self.item_parseable = false;
            self.stack.clear();
        }
        // Trailing whitespace and comments belong to no item.
        let trimmed_end = trim_trailing_trivia(self.text, start, end, &self.out.comments);
        self.out.items.push(ItemChunk {
            span: Span::new(start, trimmed_end),
            parseable: self.item_parseable,
        });
        self.item_parseable = true;
    }
}

fn closing(open: char) -> char {
    match open {
        '(' => ')',
        '[' => ']',
        _ => '}',
    }
}

fn is_forbidden(ch: char) -> bool {
    ch.is_control() && !matches!(ch, '\t' | '\n' | '\r')
}

fn word_end(text: &str, start: usize) -> usize {
    text.get(start..)
        .and_then(|rest| {
            rest.char_indices()
                .find(|(_, ch)| !(ch.is_alphanumeric() || *ch == '_'))
                .map(|(i, _)| start + i)
        })
        .unwrap_or(text.len())
}

/// The end of `start..end` with trailing whitespace and comments cut off.
pub fn trim_trailing_trivia(text: &str, start: usize, end: usize, comments: &[Comment]) -> usize {
    let mut end = end;
    loop {
        let chunk = text.get(start..end).unwrap_or("");
        let trimmed = chunk.trim_end_matches(|c: char| c.is_whitespace() || c == '\u{FEFF}');
        let new_end = start + trimmed.len();
        // Drop a comment that ends the chunk.
        // Comments are in source order, so their ends are sorted too.
        let found = comments
            .binary_search_by_key(&new_end, |c| c.span.end as usize)
            .ok()
            .and_then(|idx| comments.get(idx))
            .filter(|c| c.span.start as usize >= start);
        match found {
            Some(comment) => end = comment.span.start as usize,
            None => return new_end,
        }
    }
}
