//! Diagnostics: what the front end reports about a ruleset, with stable codes.
//!
//! Libraries never print: the CLI chooses how to render these (human, json, github).

use crate::span::Span;
use std::fmt;

/// Index of a source file within the set being checked.
pub type FileId = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

macro_rules! codes {
    ($( $variant:ident = $code:literal, $sev:ident, $title:literal, $explain:literal; )*) => {
        /// Every diagnostic the front end can produce. The string form (`E0101`) is stable:
        /// CI configurations and documentation refer to it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $( $variant, )* }

        impl Code {
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $code, )* }
            }

            pub fn severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$sev, )* }
            }

            /// A short title for the code table in `docs/diagnostics.md` and `weir explain`.
            pub fn title(self) -> &'static str {
                match self { $( Code::$variant => $title, )* }
            }

            /// A paragraph on why this is reported and how to fix it.
            pub fn explanation(self) -> &'static str {
                match self { $( Code::$variant => $explain, )* }
            }

            pub fn from_str_code(code: &str) -> Option<Code> {
                match code.to_ascii_uppercase().as_str() { $( $code => Some(Code::$variant), )* _ => None }
            }
        }
    };
}

codes! {
    Syntax = "E0001", Error, "syntax error",
        "The text does not follow the weir grammar. The message names what the parser expected at the marked place; the item is skipped and checking goes on with the next one.";
    InvalidUtf8 = "E0002", Error, "file is not valid UTF-8",
        "Rule files are UTF-8. Save the file as UTF-8 (GBK or Big5 exports from spreadsheets are a common cause).";
    FileTooLarge = "E0003", Error, "file too large",
        "A single rule file may hold at most 16 MiB. Split a generated ruleset into several files in one folder.";
    NestingTooDeep = "E0004", Error, "nesting too deep",
        "Brackets and `if` expressions nest at most 64 deep, and an expression at most 256 operators deep, so that checking and evaluation stay bounded. Flatten the expression or move parts into a table.";
    UnterminatedString = "E0005", Error, "unterminated string",
        "A string starts with `\"` and must end with `\"` on the same line.";
    ForbiddenCharacter = "E0006", Error, "forbidden character",
        "NUL and other control characters (except tab and newline) may not appear in rule files, not even in strings or comments.";
    UnbalancedBracket = "E0007", Error, "unbalanced bracket",
        "Every `(`, `[` and `{` needs its matching closing bracket, and a closing bracket needs an opening one.";
    InvalidEscape = "E0008", Error, "invalid escape in string",
        "Strings support the escapes `\\\"`, `\\\\`, `\\n`, `\\t` and `\\u{XXXX}`.";
    InvalidNumber = "E0009", Error, "invalid number",
        "Whole numbers must fit in 64 bits; decimals carry at most 6 digits after the point; money carries at most the currency's minor-unit digits.";
    MissingHeader = "E0010", Error, "missing ruleset header",
        "Every rule file starts with `ruleset NAME currency CODE`, for example `ruleset beauty_flagship currency CNY`.";
    HeaderConflict = "E0011", Error, "conflicting ruleset headers",
        "All files of one ruleset must name the same ruleset and currency, and a file has exactly one header, before any other item.";
    UnknownCurrency = "E0012", Error, "unknown currency",
        "The currency is an ISO 4217 code weir knows: CNY, HKD, TWD, JPY, KRW, USD, EUR, GBP, SGD.";
    InvalidDateTime = "E0013", Error, "invalid date-time",
        "Date-times are RFC 3339 with an offset, for example `2026-11-11T20:00:00+08:00`.";
    UnknownField = "E0101", Error, "unknown field",
        "The fact has no such field. Built-in fields are listed in docs/language.md; merchant-specific fields are declared with `attribute`.";
    UnknownName = "E0102", Error, "unknown name",
        "The name is not a fact, a quantifier variable, a list, an enum variant or a table in scope here.";
    UnknownVariant = "E0103", Error, "unknown enum variant",
        "The value is not one of the variants of the enum it is compared with. The help line lists the variants that exist.";
    UnknownFunction = "E0104", Error, "unknown function or table",
        "Calls are to built-in functions (`orders`, `customers`, `default`, `min`, `max`) or to tables declared in the ruleset.";
    UnknownRule = "E0105", Error, "unknown rule",
        "A test refers to a rule that the ruleset does not declare.";
    Duplicate = "E0106", Error, "duplicate declaration",
        "Each rule, attribute, list and table name is declared once per ruleset (across all its files).";
    FactNotAvailable = "E0107", Error, "fact not available here",
        "Each kind of rule sees only some facts: a promotion sees `order`, `customer` and `now`, a constraint also sees `shipment`, `location` and `carrier`, and so on (see docs/language.md).";
    UnknownEntity = "E0108", Error, "attribute on unknown fact",
        "Attributes extend `order`, `item`, `customer`, `location`, `shipment` or `carrier`.";
    BuiltinRedefined = "E0109", Error, "attribute redefines a built-in field",
        "The field already exists in the built-in schema with its own type; pick another name.";
    UnknownType = "E0110", Error, "unknown type",
        "Types are bool, int, decimal, money, percent, string, time, mass, volume, energy, distance, duration, enum(...) and list<T>.";
    UnknownLocationKind = "E0111", Error, "unknown location kind",
        "Location kinds are `warehouse`, `front_warehouse`, `store` and `pickup` (the store the buyer chose).";
    UnknownMode = "E0112", Error, "unknown carrier mode",
        "Carrier modes are `ground`, `air`, `sea` and `local` (same-city courier).";
    UnknownEvent = "E0113", Error, "unknown event",
        "SOPs start on `order.placed`, `order.cancelled`, `shipment.assigned`, `shipment.shipped`, `shipment.delivered` or `return.received`.";
    UnknownEvidence = "E0114", Error, "unknown evidence kind",
        "A step may require `photo`, `signature`, `scan` or `temperature`.";
    UnknownPeriod = "E0115", Error, "unknown limit period",
        "Per-customer limits count per `order`, `day`, `week`, `month` or `campaign` (the default).";
    Shadowing = "E0116", Error, "variable shadows a name",
        "A quantifier variable may not reuse the name of a fact, a list or an enclosing variable: it would make the rule ambiguous to read.";
    DuplicateVariant = "E0117", Error, "duplicate enum variant",
        "An enum lists each variant once.";
    UnknownDecision = "E0118", Error, "unknown decision",
        "`decide risk` arms end in `accept`, `review` or `reject`; `expect risk` names one of these.";
    TypeMismatch = "E0201", Error, "mismatched types",
        "The expression has a different type from the one this place requires.";
    NotBool = "E0202", Error, "condition is not true/false",
        "`when`, `where`, `and`, `or`, `not` and `if` take conditions: comparisons, boolean fields or quantifiers.";
    BadOperator = "E0203", Error, "operator cannot be applied",
        "The operator is not defined for these operand types (see the arithmetic table in docs/language.md).";
    BadComparison = "E0204", Error, "values cannot be compared",
        "Both sides of a comparison must have the same type; ordering (`<`, `>=`, ...) needs numbers, money, percents, quantities or times.";
    MaybeAbsent = "E0205", Error, "value may be absent",
        "The field is optional. Compare it (`!= none`) or give a fallback with `default(field, value)` before doing arithmetic with it.";
    WrongArgCount = "E0206", Error, "wrong number of arguments",
        "The function or table takes a different number of arguments.";
    MixedList = "E0207", Error, "list elements differ in type",
        "All elements of a list literal have the same type.";
    NotACollection = "E0208", Error, "not a collection",
        "Quantifiers (`any`, `all`, `count`, `sum`) and `in` range over lists such as `order.items`, list literals or runtime lists.";
    NeverAbsent = "E0209", Error, "field is never absent",
        "Only optional fields can be `none`; this one always has a value, so the comparison is meaningless.";
    BadFact = "E0210", Error, "test facts do not match the schema",
        "A `given` block supplies facts: each field must exist and hold a value of its type.";
    UnitMismatch = "E0301", Error, "incompatible units",
        "Quantities of different kinds (mass, volume, energy, distance, duration) cannot be compared or added.";
    MissingUnit = "E0302", Error, "number without a unit",
        "A quantity is compared with, or added to, a plain number; write the unit (`500 ml`).";
    CurrencyMismatch = "E0401", Error, "currency mismatch",
        "Money literals must be in the ruleset's currency.";
    MissingCurrency = "E0402", Error, "number where money is expected",
        "Write money with its currency symbol (`¥299`).";
    OutOfRange = "E0403", Error, "value out of range",
        "Percent discounts lie between 0% and 100%; limits are at least 1; budgets, caps and quantities are positive.";
    MissingClause = "E0501", Error, "missing clause",
        "Each rule kind has required clauses: a promotion needs `then`, a risk rule needs `score`, `reject` or `review`, a constraint needs `forbid`, `require` or `block`, a route needs `score`, an SOP needs `on` and at least one `step`.";
    DuplicateClause = "E0502", Error, "duplicate clause",
        "A clause that sets a single value (`when`, `priority`, `group`, `budget`, `limit`, `score` in a route, `on`, ...) appears once per rule.";
    GroupConflict = "E0503", Error, "conflicting stacking group",
        "All promotions of a group agree on whether it is `exclusive`.";
    DecideElse = "E0504", Error, "decide needs a final else",
        "A `decide` block ends with exactly one `else => ...` arm, so every score has an outcome.";
    UnknownDecide = "E0505", Error, "unknown decide target",
        "Only `decide risk` exists: it maps the summed risk score to accept, review or reject.";
    TableArity = "E0506", Error, "table row has the wrong number of patterns",
        "Each row has one pattern per key column of the table.";
    DuplicateStep = "E0507", Error, "duplicate SOP step",
        "Step names are unique within an SOP.";
    WrongRuleKind = "E0508", Error, "rule of the wrong kind",
        "The test expectation refers to a rule of another kind (for example `fired` names a table).";
    UnusedList = "W0001", Warning, "unused list",
        "The runtime list is declared but no rule reads it.";
    UnusedTable = "W0002", Warning, "unused table",
        "The table is declared but no rule calls it.";
    UnusedAttribute = "W0003", Warning, "unused attribute",
        "The attribute is declared but no rule reads it.";
    ConstantCondition = "W0004", Warning, "condition is constant",
        "The condition does not depend on any fact: the rule always or never fires.";
    ShadowedRow = "W0005", Warning, "table row is shadowed",
        "An earlier row matches everything this row matches, so it is never chosen (first match wins).";
    NonExhaustiveTable = "W0006", Warning, "table may match no row",
        "Without a final all-`_` row, some inputs match no row and the call fails at evaluation time. Add `_, _ => default`.";
    UnreachableArm = "W0007", Warning, "unreachable decide arm",
        "An arm after `else` can never be chosen.";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secondary place related to a diagnostic ("first declared here").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Related {
    pub file: FileId,
    pub span: Span,
    pub message: String,
}

/// One finding: a code, where, what, and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Diagnostic {
    pub code: Code,
    pub file: FileId,
    pub span: Span,
    /// One line, lowercase, no final period; user input in backticks.
    pub message: String,
    /// A short label drawn under the primary span.
    pub label: Option<String>,
    /// A suggestion: "did you mean `item.liquid_ml`?"
    pub help: Option<String>,
    pub related: Vec<Related>,
}

impl Diagnostic {
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            file: 0,
            span,
            message: message.into(),
            label: None,
            help: None,
            related: Vec::new(),
        }
    }

    pub fn severity(&self) -> Severity {
        self.code.severity()
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    pub fn with_help_opt(mut self, help: Option<String>) -> Diagnostic {
        self.help = help;
        self
    }

    pub fn with_related(
        mut self,
        file: FileId,
        span: Span,
        message: impl Into<String>,
    ) -> Diagnostic {
        self.related.push(Related {
            file,
            span,
            message: message.into(),
        });
        self
    }

    pub fn in_file(mut self, file: FileId) -> Diagnostic {
        self.file = file;
        for related in &mut self.related {
            related.file = file;
        }
        self
    }
}

/// "did you mean `x`?" for the closest candidate within a small edit distance.
pub fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(wanted, candidates).map(|best| format!("did you mean `{best}`?"))
}

/// The candidate closest to `wanted`, if it is close enough to be a plausible typo.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (wanted.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = strsim::damerau_levenshtein(wanted, candidate);
        let is_prefix = candidate.starts_with(wanted) || wanted.starts_with(candidate);
        // `qty` for `quantity`: an abbreviation keeps the first letter and the order.
        let abbreviates = candidate.len() >= 3 && is_abbreviation(candidate, wanted);
        let close = distance <= limit
            || (is_prefix && wanted.len() >= 3 && candidate.len() >= 3)
            || abbreviates;
        if close && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Whether `short` is `long` with letters left out, first letter kept (`qty`, `quantity`).
fn is_abbreviation(short: &str, long: &str) -> bool {
    if short.len() >= long.len() || short.chars().next() != long.chars().next() {
        return false;
    }
    let mut rest = long.chars();
    short.chars().all(|c| rest.any(|l| l == c))
}
