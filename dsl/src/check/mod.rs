//! Checking a whole ruleset: headers, declarations across files, then every rule body,
//! then lints. All independent problems are reported, not only the first; a typed
//! `checked::Ruleset` is produced only when there is no error.
//!
//! Passes: (1) parse every file; (2) headers; (3) declarations — attributes extend the
//! schema, lists and tables get ids, rule names are registered — so order across files
//! never matters; (4) bodies, each in the context of its rule kind; (5) lints.

mod expr;
mod test_blocks;
pub mod values;

pub use expr::{const_value, field_path, is_constant};

use crate::ast::{self, Clause, ItemKind, SourceFile, TypeExpr, TypeExprKind};
use crate::checked::{self, ListInfo, Origin, TExpr, Value, Velocity};
use crate::diagnostic::{did_you_mean, Code, Diagnostic, FileId, Severity};
use crate::schema::{self, Context, EnumDef, FieldDef, FieldOrigin, Schema};
use crate::span::Span;
use crate::types::{Currency, Dimension, EntityId, Type, CURRENCIES};
use crate::SourceText;
use std::collections::{HashMap, HashSet};

/// What checking a ruleset produced: every diagnostic (errors and warnings, each naming
/// its file by index into the sources), and the typed ruleset when there was no error.
#[derive(Debug)]
pub struct CheckOutput {
    pub diagnostics: Vec<Diagnostic>,
    pub ruleset: Option<checked::Ruleset>,
}

impl CheckOutput {
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity() == Severity::Error)
    }
}

/// Checks the files of one ruleset together.
pub fn check(sources: &[SourceText]) -> CheckOutput {
    let mut diagnostics = Vec::new();
    let mut files = Vec::with_capacity(sources.len());
    for (file, source) in sources.iter().enumerate() {
        let (parsed, found) = crate::parse_file(&source.text);
        diagnostics.extend(found.into_iter().map(|d| d.in_file(file)));
        files.push(parsed);
    }
    let mut checker = Checker::new(sources);
    checker.diagnostics = diagnostics;
    checker.headers(&files);
    checker.declare(&files);
    checker.bodies(&files);
    checker.lints();
    let mut diagnostics = std::mem::take(&mut checker.diagnostics);
    diagnostics.sort_by_key(|d| (d.file, d.span.start, d.code));
    let has_errors = diagnostics.iter().any(|d| d.severity() == Severity::Error);
    let ruleset = if has_errors {
        None
    } else {
        Some(checker.finish(sources))
    };
    CheckOutput {
        diagnostics,
        ruleset,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeclKind {
    Promotion,
    Route,
    Constraint,
    Risk,
    Sop,
    Table,
    List,
}

impl DeclKind {
    fn noun(self) -> &'static str {
        match self {
            DeclKind::Promotion => "promotion",
            DeclKind::Route => "route",
            DeclKind::Constraint => "constraint",
            DeclKind::Risk => "risk rule",
            DeclKind::Sop => "SOP",
            DeclKind::Table => "table",
            DeclKind::List => "list",
        }
    }
}

#[derive(Clone, Debug)]
struct Decl {
    kind: DeclKind,
    file: FileId,
    span: Span,
}

#[derive(Clone, Debug)]
struct TableSignature {
    keys: Vec<Type>,
    key_names: Vec<String>,
    result: Type,
}

pub(crate) struct Checker<'a> {
    sources: &'a [SourceText],
    diagnostics: Vec<Diagnostic>,
    file: FileId,
    name: String,
    currency: Currency,
    /// Each file's own header currency, so that a header conflict is reported once
    /// rather than once more for every money literal of the other file.
    file_currencies: Vec<Option<Currency>>,
    schema: Schema,
    context: Context,
    /// Quantifier variables in scope: name, id, type.
    scope: Vec<(String, u32, Type)>,
    next_var: u32,
    names: HashMap<String, Decl>,
    attribute_spans: Vec<(EntityId, usize, FileId, Span)>,
    attribute_used: HashSet<(EntityId, usize)>,
    attribute_defaults: HashMap<(EntityId, usize), Value>,
    list_ids: HashMap<String, usize>,
    lists: Vec<ListInfo>,
    list_used: Vec<bool>,
    table_ids: HashMap<String, usize>,
    table_signatures: Vec<TableSignature>,
    table_used: Vec<bool>,
    table_origins: Vec<Origin>,
    tables: Vec<Option<checked::Table>>,
    velocities: Vec<Velocity>,
    groups: HashMap<String, (bool, FileId, Span)>,
    promotions: Vec<checked::Promotion>,
    route: Option<checked::Route>,
    route_decl: Option<(String, FileId, Span)>,
    constraints: Vec<checked::Constraint>,
    risks: Vec<checked::Risk>,
    decide: Option<checked::Decide>,
    decide_decl: Option<(FileId, Span)>,
    sops: Vec<checked::Sop>,
    tests: Vec<checked::Test>,
    test_names: HashMap<String, (FileId, Span)>,
}

impl<'a> Checker<'a> {
    fn new(sources: &'a [SourceText]) -> Checker<'a> {
        Checker {
            sources,
            diagnostics: Vec::new(),
            file: 0,
            name: String::new(),
            currency: CURRENCIES.first().copied().unwrap_or(Currency {
                code: "CNY",
                minor_digits: 2,
                symbols: &["¥"],
            }),
            file_currencies: Vec::new(),
            schema: Schema::builtin(),
            context: Context::Constant,
            scope: Vec::new(),
            next_var: 0,
            names: HashMap::new(),
            attribute_spans: Vec::new(),
            attribute_used: HashSet::new(),
            attribute_defaults: HashMap::new(),
            list_ids: HashMap::new(),
            lists: Vec::new(),
            list_used: Vec::new(),
            table_ids: HashMap::new(),
            table_signatures: Vec::new(),
            table_used: Vec::new(),
            table_origins: Vec::new(),
            tables: Vec::new(),
            velocities: Vec::new(),
            groups: HashMap::new(),
            promotions: Vec::new(),
            route: None,
            route_decl: None,
            constraints: Vec::new(),
            risks: Vec::new(),
            decide: None,
            decide_decl: None,
            sops: Vec::new(),
            tests: Vec::new(),
            test_names: HashMap::new(),
        }
    }

    /// Makes `file` the current file: diagnostics name it, and money literals are read
    /// in its currency.
    fn enter_file(&mut self, file: FileId) {
        self.file = file;
        if let Some(Some(currency)) = self.file_currencies.get(file) {
            self.currency = *currency;
        }
    }

    pub(crate) fn report(&mut self, diagnostic: Diagnostic) {
        let file = self.file;
        let mut diagnostic = diagnostic;
        diagnostic.file = file;
        self.diagnostics.push(diagnostic);
    }

    pub(crate) fn type_name(&self, ty: &Type) -> String {
        self.schema.type_name(ty)
    }

    fn origin(&self, span: Span) -> Origin {
        Origin {
            file: self.file,
            span,
        }
    }

    /// The first number inside `span` (the count of `limit 0 per customer`).
    fn number_span(&self, span: Span) -> Span {
        let text = self.source_text(span);
        let Some(start) = text.find(|c: char| c.is_ascii_digit()) else {
            return span;
        };
        let len = text.get(start..).map_or(0, |rest| {
            rest.find(|c: char| !(c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len())
        });
        Span::new(
            span.start as usize + start,
            span.start as usize + start + len,
        )
    }

    pub(crate) fn source_text(&self, span: Span) -> String {
        self.sources
            .get(self.file)
            .and_then(|s| s.text.get(span.range()))
            .unwrap_or("")
            .to_string()
    }

    // ---- pass 2: headers ----------------------------------------------------------------

    fn headers(&mut self, files: &[SourceFile]) {
        self.file_currencies = vec![None; files.len()];
        let mut first: Option<(String, String, FileId, Span)> = None;
        for (file, parsed) in files.iter().enumerate() {
            self.file = file;
            let text = self.sources.get(file).map_or("", |s| s.text.as_str());
            if text.len() > crate::MAX_FILE_BYTES {
                continue; // Refused whole by the parser; nothing more to say about it.
            }
            let mut seen_header = false;
            for (index, item) in parsed.items.iter().enumerate() {
                let ItemKind::Header(header) = &item.kind else {
                    continue;
                };
                if seen_header || index > 0 {
                    self.report(
                        Diagnostic::new(
                            Code::HeaderConflict,
                            item.span,
                            if seen_header {
                                "a file has one `ruleset` header".to_string()
                            } else {
                                "the `ruleset` header must come before every other item".to_string()
                            },
                        )
                        .with_help(if seen_header {
                            "remove this header"
                        } else {
                            "move the header to the top of the file"
                        }),
                    );
                }
                seen_header = true;
                let currency = header.currency.name.clone();
                if let Some(slot) = self.file_currencies.get_mut(file) {
                    if slot.is_none() {
                        *slot = Currency::by_code(&currency);
                    }
                }
                if Currency::by_code(&currency).is_none() {
                    let help = did_you_mean(&currency, CURRENCIES.iter().map(|c| c.code))
                        .unwrap_or_else(|| {
                            let codes: Vec<&str> = CURRENCIES.iter().map(|c| c.code).collect();
                            format!("known currencies: {}", codes.join(", "))
                        });
                    self.report(
                        Diagnostic::new(
                            Code::UnknownCurrency,
                            header.currency.span,
                            format!("unknown currency `{currency}`"),
                        )
                        .with_help(help),
                    );
                }
                match &first {
                    None => {
                        first = Some((header.name.name.clone(), currency.clone(), file, item.span));
                        self.name = header.name.name.clone();
                        if let Some(c) = Currency::by_code(&currency) {
                            self.currency = c;
                        }
                    }
                    Some((name, first_currency, first_file, first_span)) => {
                        if *name != header.name.name || *first_currency != currency {
                            let (first_file, first_span) = (*first_file, *first_span);
                            let message = format!(
                                "this file says `ruleset {} currency {currency}`, but another file of the ruleset says `ruleset {name} currency {first_currency}`",
                                header.name.name
                            );
                            let mut diagnostic =
                                Diagnostic::new(Code::HeaderConflict, item.span, message)
                                    .with_help("all files of one ruleset carry the same header");
                            diagnostic.related.push(crate::diagnostic::Related {
                                file: first_file,
                                span: first_span,
                                message: "the first header".to_string(),
                            });
                            self.report(diagnostic);
                        }
                    }
                }
            }
            let starts_with_header_word = text
                .lines()
                .map(|l| l.trim())
                .find(|l| !l.is_empty() && !l.starts_with("//"))
                .is_some_and(|l| l.starts_with("ruleset"));
            if !seen_header && !starts_with_header_word {
                let (span, message) = match parsed.items.first() {
                    Some(item) => (
                        Span::new(
                            item.span.start as usize,
                            item.span.start as usize + item.kind.keyword().len(),
                        ),
                        "this file has no `ruleset` header".to_string(),
                    ),
                    None if text.trim().is_empty() => (
                        Span::new(0, 0),
                        "empty file: a rule file starts with a `ruleset` header".to_string(),
                    ),
                    None => (
                        Span::new(0, 0),
                        "this file has no `ruleset` header".to_string(),
                    ),
                };
                self.report(
                    Diagnostic::new(Code::MissingHeader, span, message)
                        .with_help("start the file with `ruleset NAME currency CNY`"),
                );
            }
        }
    }

    // ---- pass 3: declarations -----------------------------------------------------------

    fn declare_name(&mut self, name: &ast::Ident, kind: DeclKind) -> bool {
        if let Some(previous) = self.names.get(&name.name) {
            let (prev_kind, prev_file, prev_span) = (previous.kind, previous.file, previous.span);
            let mut diagnostic = Diagnostic::new(
                Code::Duplicate,
                name.span,
                format!(
                    "`{}` is already declared as a {}",
                    name.name,
                    prev_kind.noun()
                ),
            )
            .with_help("names of rules, tables and lists are unique across the ruleset's files");
            diagnostic.related.push(crate::diagnostic::Related {
                file: prev_file,
                span: prev_span,
                message: "first declared here".to_string(),
            });
            self.report(diagnostic);
            return false;
        }
        self.names.insert(
            name.name.clone(),
            Decl {
                kind,
                file: self.file,
                span: name.span,
            },
        );
        true
    }

    fn declare(&mut self, files: &[SourceFile]) {
        // Attributes first: every later declaration may use them.
        for (file, parsed) in files.iter().enumerate() {
            self.enter_file(file);
            for item in &parsed.items {
                if let ItemKind::Attribute(attribute) = &item.kind {
                    self.declare_attribute(attribute);
                }
            }
        }
        for (file, parsed) in files.iter().enumerate() {
            self.enter_file(file);
            for item in &parsed.items {
                match &item.kind {
                    ItemKind::List(list) => self.declare_list(list),
                    ItemKind::Table(table) => self.declare_table(table),
                    ItemKind::Promotion(p) => {
                        self.declare_name(&p.name, DeclKind::Promotion);
                    }
                    ItemKind::Route(r) => self.declare_route(r),
                    ItemKind::Constraint(c) => {
                        self.declare_name(&c.name, DeclKind::Constraint);
                    }
                    ItemKind::Risk(r) => {
                        self.declare_name(&r.name, DeclKind::Risk);
                    }
                    ItemKind::Sop(s) => {
                        self.declare_name(&s.name, DeclKind::Sop);
                    }
                    ItemKind::Decide(d) => {
                        // Point at `decide risk`, not the whole block.
                        let head = Span {
                            start: item.span.start,
                            end: d.target.span.end,
                        };
                        if let Some((first_file, first_span)) = self.decide_decl {
                            let mut diagnostic = Diagnostic::new(
                                Code::Duplicate,
                                head,
                                "a ruleset has one `decide risk` block",
                            );
                            diagnostic.related.push(crate::diagnostic::Related {
                                file: first_file,
                                span: first_span,
                                message: "the first one".to_string(),
                            });
                            self.report(diagnostic);
                        } else {
                            self.decide_decl = Some((self.file, head));
                        }
                    }
                    _ => {}
                }
            }
        }
        // Attribute defaults, now that every enum is known.
        for (file, parsed) in files.iter().enumerate() {
            self.enter_file(file);
            for item in &parsed.items {
                if let ItemKind::Attribute(attribute) = &item.kind {
                    self.attribute_default(attribute);
                }
            }
        }
    }

    fn declare_list(&mut self, list: &ast::ListDecl) {
        if !self.declare_name(&list.name, DeclKind::List) {
            return;
        }
        let element = self.resolve_type(&list.ty, &format!("list {}", list.name.name));
        let id = self.lists.len();
        self.lists.push(ListInfo {
            name: list.name.name.clone(),
            element,
            origin: self.origin(list.name.span),
        });
        self.list_used.push(false);
        self.list_ids.insert(list.name.name.clone(), id);
    }

    fn declare_table(&mut self, table: &ast::Table) {
        if !self.declare_name(&table.name, DeclKind::Table) {
            return;
        }
        self.context = Context::TableKey;
        // A column may be an order line's field (`item.category`): such a table is called
        // inside a quantifier, `min_shelf_life(item.category)`. Header expressions only
        // give the columns their types and are never evaluated, so `item` needs no local.
        self.scope
            .push(("item".to_string(), u32::MAX, Type::Entity(schema::ITEM)));
        let keys: Vec<TExpr> = table.keys.iter().map(|k| self.expr(k, None)).collect();
        self.scope.pop();
        let key_names = table
            .keys
            .iter()
            .map(|k| self.source_text(k.span))
            .collect();
        let result = self.resolve_type(&table.result, &format!("table {}", table.name.name));
        let id = self.table_signatures.len();
        self.table_signatures.push(TableSignature {
            keys: keys
                .into_iter()
                .map(|k| k.ty.strip_optional().clone())
                .collect(),
            key_names,
            result,
        });
        self.table_used.push(false);
        self.table_origins.push(self.origin(table.name.span));
        self.tables.push(None);
        self.table_ids.insert(table.name.name.clone(), id);
    }

    fn declare_route(&mut self, r: &ast::Route) {
        if !self.declare_name(&r.name, DeclKind::Route) {
            return;
        }
        if let Some((first, first_file, first_span)) = self.route_decl.clone() {
            let mut diagnostic = Diagnostic::new(
                Code::Duplicate,
                r.name.span,
                format!("a ruleset has one route, and `{first}` is already declared"),
            )
            .with_help("put every `consider`, `score` and `exclude` in that one route");
            diagnostic.related.push(crate::diagnostic::Related {
                file: first_file,
                span: first_span,
                message: "the route".to_string(),
            });
            self.report(diagnostic);
        } else {
            self.route_decl = Some((r.name.name.clone(), self.file, r.name.span));
        }
    }

    fn declare_attribute(&mut self, attribute: &ast::Attribute) {
        let entity_name = attribute.entity.name.as_str();
        let Some(entity) = self.schema.entity_by_name(entity_name) else {
            let help = did_you_mean(entity_name, schema::ATTRIBUTE_ENTITIES.iter().copied())
                .unwrap_or_else(|| {
                    format!(
                        "attributes extend {}",
                        schema::ATTRIBUTE_ENTITIES.join(", ")
                    )
                });
            self.report(
                Diagnostic::new(
                    Code::UnknownEntity,
                    attribute.entity.span,
                    format!("`{entity_name}` is not a fact that attributes can extend"),
                )
                .with_help(help),
            );
            return;
        };
        let field_name = attribute.field.name.clone();
        let existing = self
            .schema
            .entity(entity)
            .and_then(|e| e.field(&field_name))
            .map(|(_, f)| f.origin.clone());
        match existing {
            Some(FieldOrigin::Builtin { .. }) => {
                self.report(
                    Diagnostic::new(
                        Code::BuiltinRedefined,
                        attribute.field.span,
                        format!("`{entity_name}.{field_name}` is a built-in field"),
                    )
                    .with_help("use the built-in field, or give the attribute another name"),
                );
                return;
            }
            Some(FieldOrigin::Attribute { file, span }) => {
                let mut diagnostic = Diagnostic::new(
                    Code::Duplicate,
                    attribute.field.span,
                    format!("attribute `{entity_name}.{field_name}` is already declared"),
                );
                diagnostic.related.push(crate::diagnostic::Related {
                    file,
                    span,
                    message: "first declared here".to_string(),
                });
                self.report(diagnostic);
                return;
            }
            None => {}
        }
        let ty = self.resolve_type(&attribute.ty, &format!("{entity_name}.{field_name}"));
        let Some(def) = self.schema.entities.get_mut(entity) else {
            return;
        };
        def.fields.push(FieldDef {
            name: field_name,
            ty,
            origin: FieldOrigin::Attribute {
                file: self.file,
                span: attribute.field.span,
            },
        });
        let index = def.fields.len() - 1;
        self.attribute_spans
            .push((entity, index, self.file, attribute.field.span));
    }

    fn attribute_default(&mut self, attribute: &ast::Attribute) {
        let Some(default) = &attribute.default else {
            return;
        };
        let Some(entity) = self.schema.entity_by_name(&attribute.entity.name) else {
            return;
        };
        let Some((
            index,
            FieldDef {
                ty,
                origin: FieldOrigin::Attribute { span, .. },
                ..
            },
        )) = self
            .schema
            .entity(entity)
            .and_then(|e| e.field(&attribute.field.name))
            .map(|(i, f)| (i, f.clone()))
        else {
            return;
        };
        if span != attribute.field.span {
            return; // A duplicate declaration; already reported.
        }
        self.context = Context::Constant;
        let checked = self.expr(default, Some(&ty));
        if !self.require(&checked, &ty, "the default") {
            return;
        }
        match const_value(&checked) {
            Some(value) => {
                self.attribute_defaults
                    .insert((entity, index), coerce(value, &ty));
            }
            None if checked.ty.is_error() => {}
            None => self.report(Diagnostic::new(
                Code::TypeMismatch,
                default.span,
                "an attribute default must be a constant",
            )),
        }
    }

    /// Resolves a written type. `owner` names a new enum (`customer.tier`).
    fn resolve_type(&mut self, ty: &TypeExpr, owner: &str) -> Type {
        match &ty.kind {
            TypeExprKind::Named(ident) => match ident.name.as_str() {
                "bool" => Type::Bool,
                "int" => Type::Int,
                "decimal" => Type::Decimal,
                "money" => Type::Money,
                "percent" => Type::Percent,
                "string" => Type::String,
                "time" => Type::Time,
                other => match Dimension::from_type_name(other) {
                    Some(d) => Type::Quantity(d),
                    None => {
                        let hint = match other {
                            "weight" => Some("mass"),
                            "length" => Some("distance"),
                            "number" | "float" | "double" => Some("decimal"),
                            "integer" => Some("int"),
                            "text" | "str" => Some("string"),
                            "boolean" => Some("bool"),
                            "currency" => Some("money"),
                            _ => None,
                        };
                        let help = match hint {
                            Some(h) => Some(format!("did you mean `{h}`?")),
                            None => did_you_mean(
                                other,
                                [
                                    "bool", "int", "decimal", "money", "percent", "string", "time",
                                    "mass", "volume", "energy", "distance", "duration",
                                ],
                            ),
                        };
                        self.report(
                            Diagnostic::new(
                                Code::UnknownType,
                                ident.span,
                                format!("unknown type `{other}`"),
                            )
                            .with_help_opt(help),
                        );
                        Type::Error
                    }
                },
            },
            TypeExprKind::Enum(variants) => {
                let mut names: Vec<String> = Vec::with_capacity(variants.len());
                for variant in variants {
                    if names.contains(&variant.name) {
                        self.report(Diagnostic::new(
                            Code::DuplicateVariant,
                            variant.span,
                            format!("`{}` is listed twice", variant.name),
                        ));
                    } else {
                        names.push(variant.name.clone());
                    }
                }
                self.schema.enums.push(EnumDef {
                    name: owner.to_string(),
                    variants: names,
                });
                Type::Enum(self.schema.enums.len() - 1)
            }
            TypeExprKind::List(inner) => Type::List(Box::new(self.resolve_type(inner, owner))),
        }
    }

    // ---- pass 4: bodies -----------------------------------------------------------------

    fn bodies(&mut self, files: &[SourceFile]) {
        for (file, parsed) in files.iter().enumerate() {
            self.enter_file(file);
            for item in &parsed.items {
                self.scope.clear();
                match &item.kind {
                    ItemKind::Promotion(p) => self.promotion(p),
                    ItemKind::Route(r) => self.route(r),
                    ItemKind::Constraint(c) => self.constraint(c),
                    ItemKind::Risk(r) => self.risk(r),
                    ItemKind::Decide(d) => self.decide(d, item.span.start),
                    ItemKind::Table(t) => self.table(t),
                    ItemKind::Sop(s) => self.sop(s),
                    ItemKind::Test(t) => self.test(t, item.span),
                    ItemKind::Header(_) | ItemKind::Attribute(_) | ItemKind::List(_) => {}
                }
            }
        }
    }

    /// Reports the second and later occurrences of a clause that may appear once.
    fn once<K>(&mut self, clauses: &[Clause<K>], is: impl Fn(&K) -> bool, what: &str) {
        let mut first: Option<Span> = None;
        for clause in clauses.iter().filter(|c| is(&c.kind)) {
            match first {
                None => first = Some(clause.span),
                Some(first_span) => {
                    let diagnostic = Diagnostic::new(
                        Code::DuplicateClause,
                        clause.span,
                        format!("`{what}` appears more than once in this rule"),
                    )
                    .with_related(self.file, first_span, "first here")
                    .with_help(match what {
                        "when" => "keep one `when`; combine conditions with `and`".to_string(),
                        "score" => "keep one `score`; add terms with `+`".to_string(),
                        _ => format!("keep one `{what}`"),
                    });
                    self.report(diagnostic);
                }
            }
        }
    }

    fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity() == Severity::Error)
            .count()
    }

    fn rule_condition(&mut self, e: &ast::Expr) -> TExpr {
        let errors_before = self.error_count();
        let checked = self.condition(e);
        // An expression that failed to check is a placeholder, not a constant.
        if is_constant(&checked) && self.error_count() == errors_before && !checked.has_error() {
            let message = match &checked.kind {
                checked::TExprKind::Const(Value::Bool(true)) => "this condition is always true",
                checked::TExprKind::Const(Value::Bool(false)) => "this condition is always false",
                _ => "this condition does not read any fact, so it is always true or always false",
            };
            self.report(
                Diagnostic::new(Code::ConstantCondition, e.span, message)
                    .with_help("drop the `when` clause to apply the rule always, or test a fact"),
            );
        }
        checked
    }

    fn positive_money(&mut self, e: &TExpr, what: &str) {
        if let Some(Value::Money(v)) = const_value(e) {
            if v <= 0 {
                self.report(Diagnostic::new(
                    Code::OutOfRange,
                    e.span,
                    format!("{what} must be more than zero"),
                ));
            }
        }
    }

    fn discount_amount(&mut self, e: &ast::Expr) -> TExpr {
        let amount = self.expr(e, None);
        match &amount.ty {
            Type::Money => self.positive_money(&amount, "a discount"),
            Type::Percent => {
                if let Some(Value::Percent(p)) = const_value(&amount) {
                    if p <= 0 || p > checked::SCALE {
                        self.report(
                            Diagnostic::new(
                                Code::OutOfRange,
                                amount.span,
                                "a percent discount lies between 0% and 100%",
                            )
                            .with_help(
                                "a discount of 100% makes the lines free; more is not possible",
                            ),
                        );
                    }
                }
            }
            Type::Error => {}
            other => {
                let found = self.type_name(other);
                let mut diagnostic = Diagnostic::new(
                    Code::TypeMismatch,
                    amount.span,
                    format!("a discount is money or a percent, found `{found}`"),
                );
                if other.is_numeric() {
                    diagnostic = diagnostic.with_help(format!(
                        "write `{}{}` or `{}%`",
                        self.currency.main_symbol(),
                        self.source_text(amount.span),
                        self.source_text(amount.span)
                    ));
                }
                self.report(diagnostic);
            }
        }
        amount
    }

    fn cap(&mut self, cap: &Option<ast::Expr>) -> Option<TExpr> {
        cap.as_ref().map(|c| {
            let cap = self.expr(c, Some(&Type::Money));
            if self.require(&cap, &Type::Money, "a discount cap (`max`)") {
                self.positive_money(&cap, "a discount cap");
            }
            cap
        })
    }

    fn promotion(&mut self, p: &ast::Promotion) {
        use ast::PromotionClause as C;
        self.context = Context::Promotion;
        let clauses = &p.clauses;
        self.once(clauses, |c| matches!(c, C::When(_)), "when");
        self.once(clauses, |c| matches!(c, C::Priority(_)), "priority");
        self.once(clauses, |c| matches!(c, C::Group { .. }), "group");
        self.once(clauses, |c| matches!(c, C::Limit { .. }), "limit");
        self.once(clauses, |c| matches!(c, C::Budget(_)), "budget");
        let mut out = checked::Promotion {
            name: p.name.name.clone(),
            priority: 0,
            group: None,
            exclusive: false,
            when: None,
            actions: Vec::new(),
            limit: None,
            budget: None,
            origin: self.origin(p.name.span),
        };
        for clause in clauses {
            match &clause.kind {
                C::Priority(n) => out.priority = *n,
                C::Group { name, exclusive } => {
                    out.group = Some(name.name.clone());
                    out.exclusive = *exclusive;
                    match self.groups.get(&name.name).cloned() {
                        Some((first_exclusive, file, span)) if first_exclusive != *exclusive => {
                            let mut diagnostic = Diagnostic::new(
                                Code::GroupConflict,
                                clause.span,
                                format!(
                                    "group `{}` is {} here but {} elsewhere",
                                    name.name,
                                    if *exclusive {
                                        "exclusive"
                                    } else {
                                        "not exclusive"
                                    },
                                    if first_exclusive {
                                        "exclusive"
                                    } else {
                                        "not exclusive"
                                    }
                                ),
                            )
                            .with_help(
                                "write `exclusive` on every promotion of the group, or on none",
                            );
                            diagnostic.related.push(crate::diagnostic::Related {
                                file,
                                span,
                                message: "the group is declared here".to_string(),
                            });
                            self.report(diagnostic);
                        }
                        Some(_) => {}
                        None => {
                            self.groups
                                .insert(name.name.clone(), (*exclusive, self.file, clause.span));
                        }
                    }
                }
                C::When(e) => out.when = Some(self.rule_condition(e)),
                C::Then(action) => {
                    if let Some(action) = self.action(action) {
                        out.actions.push(action);
                    }
                }
                C::Limit { count, period } => {
                    if *count < 1 {
                        let span = self.number_span(clause.span);
                        self.report(
                            Diagnostic::new(Code::OutOfRange, span, "a limit is at least 1")
                                .with_help("write `limit 1 per customer`, or remove the limit"),
                        );
                    }
                    let period_name = period
                        .as_ref()
                        .map_or("campaign".to_string(), |p| p.name.clone());
                    if let Some(period) = period {
                        if !schema::LIMIT_PERIODS.contains(&period.name.as_str()) {
                            let help =
                                did_you_mean(&period.name, schema::LIMIT_PERIODS.iter().copied())
                                    .unwrap_or_else(|| {
                                        format!("periods are {}", schema::LIMIT_PERIODS.join(", "))
                                    });
                            self.report(
                                Diagnostic::new(
                                    Code::UnknownPeriod,
                                    period.span,
                                    format!("unknown limit period `{}`", period.name),
                                )
                                .with_help(help),
                            );
                        }
                    }
                    out.limit = Some(checked::Limit {
                        count: *count,
                        period: period_name,
                    });
                }
                C::Budget(e) => {
                    let budget = self.expr(e, Some(&Type::Money));
                    if self.require(&budget, &Type::Money, "a budget") {
                        self.positive_money(&budget, "a budget");
                    }
                    out.budget = Some(budget);
                }
            }
        }
        if !clauses.iter().any(|c| matches!(c.kind, C::Then(_))) {
            self.report(
                Diagnostic::new(
                    Code::MissingClause,
                    p.name.span,
                    format!("promotion `{}` has no `then` clause", p.name.name),
                )
                .with_help(format!(
                    "say what it gives, e.g. `then discount order {}10`",
                    self.currency.main_symbol()
                )),
            );
        }
        self.promotions.push(out);
    }

    fn action(&mut self, action: &ast::Action) -> Option<checked::Action> {
        Some(match action {
            ast::Action::DiscountOrder { amount, cap } => checked::Action::DiscountOrder {
                amount: self.discount_amount(amount),
                cap: self.cap(cap),
            },
            ast::Action::DiscountItems {
                filter,
                amount,
                cap,
            } => {
                let span = filter.as_ref().map_or(amount.span, |f| f.span);
                let item_var = self.bind("item", span, Type::Entity(schema::ITEM));
                let filter = filter.as_ref().map(|f| self.condition(f));
                let amount = self.discount_amount(amount);
                let cap = self.cap(cap);
                self.unbind();
                checked::Action::DiscountItems {
                    item_var,
                    filter,
                    amount,
                    cap,
                }
            }
            ast::Action::Gift { sku, qty } => {
                let sku_checked = self.expr(sku, Some(&Type::String));
                self.require(&sku_checked, &Type::String, "a gift SKU");
                let qty_checked = match qty {
                    Some(q) => {
                        let q = self.expr(q, Some(&Type::Int));
                        if self.require(&q, &Type::Int, "a gift quantity") {
                            if let Some(Value::Int(n)) = const_value(&q) {
                                if n < 1 {
                                    self.report(Diagnostic::new(
                                        Code::OutOfRange,
                                        q.span,
                                        "a gift quantity is at least 1",
                                    ));
                                }
                            }
                        }
                        q
                    }
                    None => TExpr {
                        kind: checked::TExprKind::Const(Value::Int(1)),
                        ty: Type::Int,
                        span: sku.span,
                    },
                };
                checked::Action::Gift {
                    sku: sku_checked,
                    qty: qty_checked,
                }
            }
            ast::Action::PointsMultiplier(e) => {
                let m = self.expr(e, Some(&Type::Decimal));
                self.require(&m, &Type::Decimal, "a points multiplier");
                checked::Action::PointsMultiplier(m)
            }
        })
    }

    /// The index of `ident` among `words`, or a diagnostic with the closest word.
    fn known_word(
        &mut self,
        ident: &ast::Ident,
        words: &[&str],
        code: Code,
        what: &str,
        plural: &str,
    ) -> Option<usize> {
        if let Some(index) = words.iter().position(|w| *w == ident.name) {
            return Some(index);
        }
        let help = did_you_mean(&ident.name, words.iter().copied())
            .unwrap_or_else(|| format!("{plural} are {}", words.join(", ")));
        self.report(
            Diagnostic::new(code, ident.span, format!("unknown {what} `{}`", ident.name))
                .with_help(help),
        );
        None
    }

    fn candidate_kind(&mut self, ident: &ast::Ident) -> Option<checked::CandidateKind> {
        let kinds = [
            checked::CandidateKind::Warehouse,
            checked::CandidateKind::FrontWarehouse,
            checked::CandidateKind::Store,
            checked::CandidateKind::Pickup,
        ];
        let index = self.known_word(
            ident,
            schema::CANDIDATE_KINDS,
            Code::UnknownLocationKind,
            "location kind",
            "kinds",
        )?;
        kinds.get(index).copied()
    }

    fn route(&mut self, r: &ast::Route) {
        use ast::RouteClause as C;
        self.context = Context::Route;
        self.once(&r.clauses, |c| matches!(c, C::Score(_)), "score");
        self.once(
            &r.clauses,
            |c| matches!(c, C::PreferFewerSplits),
            "prefer fewer splits",
        );
        let mut consider = Vec::new();
        let mut score = None;
        let mut excludes = Vec::new();
        for clause in &r.clauses {
            match &clause.kind {
                C::Consider(candidates) => {
                    for candidate in candidates {
                        let kind = self.candidate_kind(&candidate.kind);
                        let within = candidate.within.as_ref().map(|w| {
                            let distance = Type::Quantity(Dimension::Distance);
                            let w = self.expr(w, Some(&distance));
                            self.require(&w, &distance, "`within`");
                            w
                        });
                        let when = candidate.condition.as_ref().map(|c| self.rule_condition(c));
                        if let Some(kind) = kind {
                            consider.push(checked::Candidate { kind, within, when });
                        }
                    }
                }
                C::Score(e) => {
                    let s = self.expr(e, Some(&Type::Decimal));
                    self.require(&s, &Type::Decimal, "a route score");
                    score = Some(s);
                }
                C::PreferFewerSplits => {}
                C::Exclude { kind, condition } => {
                    let kind = match kind {
                        Some(k) => match self.candidate_kind(k) {
                            Some(kind) => Some(kind),
                            None => continue,
                        },
                        None => None,
                    };
                    let when = condition.as_ref().map(|c| self.rule_condition(c));
                    excludes.push(checked::Exclude { kind, when });
                }
            }
        }
        let Some(score) = score else {
            self.report(
                Diagnostic::new(
                    Code::MissingClause,
                    r.name.span,
                    format!("route `{}` has no `score`", r.name.name),
                )
                .with_help("say how to rank locations, e.g. `score -1.0 * location.distance_km`"),
            );
            return;
        };
        let is_the_route = self.route_decl.as_ref().is_some_and(|(name, file, span)| {
            *name == r.name.name && *file == self.file && *span == r.name.span
        });
        if is_the_route {
            self.route = Some(checked::Route {
                name: r.name.name.clone(),
                consider,
                score,
                prefer_fewer_splits: r
                    .clauses
                    .iter()
                    .any(|c| matches!(c.kind, C::PreferFewerSplits)),
                excludes,
                origin: self.origin(r.name.span),
            });
        }
    }

    fn mode(&mut self, ident: &ast::Ident) -> Option<u32> {
        self.known_word(
            ident,
            schema::MODES,
            Code::UnknownMode,
            "carrier mode",
            "modes",
        )
        .map(|i| i as u32)
    }

    fn constraint(&mut self, c: &ast::Constraint) {
        use ast::ConstraintClause as C;
        self.context = Context::Constraint;
        self.once(&c.clauses, |k| matches!(k, C::When(_)), "when");
        self.once(&c.clauses, |k| matches!(k, C::Block(_)), "block");
        self.once(
            &c.clauses,
            |k| matches!(k, C::RequireMode(_)),
            "require mode",
        );
        let mut out = checked::Constraint {
            name: c.name.name.clone(),
            when: None,
            forbid_modes: Vec::new(),
            require_mode: None,
            require_packaging: Vec::new(),
            block: None,
            origin: self.origin(c.name.span),
        };
        for clause in &c.clauses {
            match &clause.kind {
                C::When(e) => out.when = Some(self.rule_condition(e)),
                C::ForbidMode(modes) => {
                    for m in modes {
                        if let Some(m) = self.mode(m) {
                            out.forbid_modes.push(m);
                        }
                    }
                }
                C::RequireMode(m) => out.require_mode = self.mode(m),
                C::RequirePackaging(s) => out.require_packaging.push(s.value.clone()),
                C::Block(s) => out.block = Some(s.value.clone()),
            }
        }
        if !c.clauses.iter().any(|k| !matches!(k.kind, C::When(_))) {
            self.report(
                Diagnostic::new(
                    Code::MissingClause,
                    c.name.span,
                    format!(
                        "constraint `{}` has no `forbid`, `require` or `block`",
                        c.name.name
                    ),
                )
                .with_help("say what the constraint does, e.g. `forbid mode air`"),
            );
        }
        self.constraints.push(out);
    }

    fn risk(&mut self, r: &ast::Risk) {
        use ast::RiskClause as C;
        self.context = Context::Risk;
        self.once(&r.clauses, |k| matches!(k, C::When(_)), "when");
        self.once(&r.clauses, |k| matches!(k, C::Score { .. }), "score");
        self.once(&r.clauses, |k| matches!(k, C::Reject(_)), "reject");
        self.once(&r.clauses, |k| matches!(k, C::Review(_)), "review");
        let mut out = checked::Risk {
            name: r.name.name.clone(),
            when: None,
            score: None,
            reason: None,
            reject: None,
            review: None,
            origin: self.origin(r.name.span),
        };
        for clause in &r.clauses {
            match &clause.kind {
                C::When(e) => out.when = Some(self.rule_condition(e)),
                C::Score { points, reason } => {
                    let s = self.expr(points, Some(&Type::Int));
                    self.require(&s, &Type::Int, "a risk score");
                    out.score = Some(s);
                    out.reason = reason.as_ref().map(|r| r.value.clone());
                }
                C::Reject(s) => out.reject = Some(s.value.clone()),
                C::Review(s) => out.review = Some(s.value.clone()),
            }
        }
        if !r.clauses.iter().any(|k| !matches!(k.kind, C::When(_))) {
            self.report(
                Diagnostic::new(
                    Code::MissingClause,
                    r.name.span,
                    format!(
                        "risk rule `{}` has no `score`, `reject` or `review`",
                        r.name.name
                    ),
                )
                .with_help("say what it does, e.g. `score 40 reason \"...\"`"),
            );
        }
        self.risks.push(out);
    }

    fn decision(&mut self, ident: &ast::Ident) -> Option<checked::Decision> {
        let decisions = [
            checked::Decision::Accept,
            checked::Decision::Review,
            checked::Decision::Reject,
        ];
        let index = self.known_word(
            ident,
            schema::DECISIONS,
            Code::UnknownDecision,
            "decision",
            "decisions",
        )?;
        decisions.get(index).copied()
    }

    fn decide(&mut self, d: &ast::Decide, item_start: u32) {
        // Point at `decide risk`, not the whole block.
        let span = Span {
            start: item_start,
            end: d.target.span.end,
        };
        if d.target.name != "risk" {
            let help = if did_you_mean(&d.target.name, ["risk"]).is_some() {
                "did you mean `risk`?"
            } else {
                "write `decide risk { ... }`"
            };
            self.report(
                Diagnostic::new(
                    Code::UnknownDecide,
                    d.target.span,
                    format!("cannot decide `{}`", d.target.name),
                )
                .with_help(help),
            );
            return;
        }
        self.context = Context::Decide;
        let mut arms = Vec::new();
        let mut else_seen: Option<Span> = None;
        for arm in &d.arms {
            if let Some(else_span) = else_seen {
                self.report(
                    Diagnostic::new(
                        Code::UnreachableArm,
                        arm.span,
                        "this arm comes after `else` and is never chosen",
                    )
                    .with_related(
                        self.file,
                        else_span,
                        "`else` matches every score",
                    ),
                );
                continue;
            }
            let condition = arm.condition.as_ref().map(|c| self.condition(c));
            if arm.condition.is_none() {
                else_seen = Some(arm.span);
            }
            if let Some(decision) = self.decision(&arm.outcome) {
                arms.push((condition, decision));
            }
        }
        if else_seen.is_none() {
            self.report(
                Diagnostic::new(
                    Code::DecideElse,
                    span,
                    "`decide risk` has no final `else` arm",
                )
                .with_help("end it with `else => accept`"),
            );
            return;
        }
        if self
            .decide_decl
            .is_some_and(|(file, first)| file == self.file && first == span)
        {
            self.decide = Some(checked::Decide {
                arms,
                origin: self.origin(d.target.span),
            });
        }
    }

    fn table(&mut self, t: &ast::Table) {
        let Some(&id) = self.table_ids.get(&t.name.name) else {
            return;
        };
        if self
            .table_origins
            .get(id)
            .is_some_and(|o| o.file != self.file || o.span != t.name.span)
        {
            return; // A duplicate name, reported in pass 3.
        }
        let Some(signature) = self.table_signatures.get(id).cloned() else {
            return;
        };
        self.context = Context::Constant;
        let mut rows = Vec::with_capacity(t.rows.len());
        let mut row_spans = Vec::with_capacity(t.rows.len());
        for row in &t.rows {
            if row.patterns.len() != signature.keys.len() {
                self.report(
                    Diagnostic::new(
                        Code::TableArity,
                        row.span,
                        format!(
                            "this row has {} pattern{}, but table `{}` has {} key column{}",
                            row.patterns.len(),
                            if row.patterns.len() == 1 { "" } else { "s" },
                            t.name.name,
                            signature.keys.len(),
                            if signature.keys.len() == 1 { "" } else { "s" }
                        ),
                    )
                    .with_help(format!(
                        "the columns are: {}",
                        signature.key_names.join(", ")
                    )),
                );
                continue;
            }
            let mut patterns = Vec::with_capacity(row.patterns.len());
            for (pattern, key) in row.patterns.iter().zip(&signature.keys) {
                patterns.push(self.pattern(pattern, key));
            }
            let value = self.expr(&row.value, Some(&signature.result));
            let value_ok = self.require(&value, &signature.result, "a table value");
            let constant = const_value(&value);
            if value_ok && constant.is_none() && !value.ty.is_error() {
                self.report(Diagnostic::new(
                    Code::TypeMismatch,
                    row.value.span,
                    "a table value must be a constant",
                ));
            }
            if let (Some(patterns), Some(value)) =
                (patterns.into_iter().collect::<Option<Vec<_>>>(), constant)
            {
                rows.push(checked::TableRow {
                    patterns,
                    value: coerce(value, &signature.result),
                });
                row_spans.push(row.span);
            }
        }
        self.table_lints(t, &signature, &rows, &row_spans);
        if let Some(slot) = self.tables.get_mut(id) {
            *slot = Some(checked::Table {
                name: t.name.name.clone(),
                keys: signature.keys.clone(),
                result: signature.result.clone(),
                rows,
                origin: Origin {
                    file: self.file,
                    span: t.name.span,
                },
            });
        }
    }

    fn pattern(&mut self, pattern: &ast::Pattern, key: &Type) -> Option<checked::Pattern> {
        match &pattern.kind {
            ast::PatternKind::Wildcard => Some(checked::Pattern::Wildcard),
            ast::PatternKind::Equals(e) | ast::PatternKind::Compare(_, e) => {
                let value = self.expr(e, Some(key));
                let probe = TExpr {
                    kind: checked::TExprKind::Const(Value::None),
                    ty: key.clone(),
                    span: value.span,
                };
                let op = match &pattern.kind {
                    ast::PatternKind::Compare(op, _) => *op,
                    _ => ast::CompareOp::Eq,
                };
                let before = self.diagnostics.len();
                self.comparable(op, &value, &probe);
                if self.diagnostics.len() != before {
                    if let (Type::Enum(id), checked::TExprKind::Const(Value::String(text))) =
                        (key, &value.kind)
                    {
                        let is_variant = self
                            .schema
                            .enum_def(*id)
                            .and_then(|d| d.variant(text))
                            .is_some();
                        if let (true, Some(last)) = (is_variant, self.diagnostics.last_mut()) {
                            last.help = Some(format!(
                                "enum variants are written without quotes: `{text}`"
                            ));
                        }
                    }
                    return None;
                }
                if value.ty.is_error() {
                    return None;
                }
                let constant = const_value(&value)?;
                let constant = coerce(constant, key);
                Some(match op {
                    ast::CompareOp::Eq => checked::Pattern::Equals(constant),
                    op => checked::Pattern::Compare(op, constant),
                })
            }
        }
    }

    fn table_lints(
        &mut self,
        t: &ast::Table,
        signature: &TableSignature,
        rows: &[checked::TableRow],
        spans: &[Span],
    ) {
        for (j, row) in rows.iter().enumerate() {
            let shadowing = rows.iter().take(j).position(|earlier| {
                earlier
                    .patterns
                    .iter()
                    .zip(&row.patterns)
                    .all(|(a, b)| match (a, b) {
                        (checked::Pattern::Wildcard, _) => true,
                        (a, b) => a == b,
                    })
            });
            if let (Some(i), Some(span)) = (shadowing, spans.get(j)) {
                let mut diagnostic = Diagnostic::new(
                    Code::ShadowedRow,
                    *span,
                    "this row is never chosen: an earlier row matches everything it matches",
                )
                .with_help("move it above the earlier row, or remove it");
                if let Some(earlier) = spans.get(i) {
                    diagnostic =
                        diagnostic.with_related(self.file, *earlier, "this row matches first");
                }
                self.report(diagnostic);
            }
        }
        let catch_all = rows.iter().any(|r| {
            r.patterns
                .iter()
                .all(|p| matches!(p, checked::Pattern::Wildcard))
        });
        let enumerated = match signature.keys.as_slice() {
            [Type::Bool] => {
                let covered: HashSet<&Value> = rows
                    .iter()
                    .filter_map(|r| match r.patterns.first() {
                        Some(checked::Pattern::Equals(v)) => Some(v),
                        _ => None,
                    })
                    .collect();
                covered.len() == 2
            }
            [Type::Enum(id)] => {
                let variants = self.schema.enum_def(*id).map_or(0, |d| d.variants.len());
                let covered: HashSet<&Value> = rows
                    .iter()
                    .filter_map(|r| match r.patterns.first() {
                        Some(checked::Pattern::Equals(v)) => Some(v),
                        _ => None,
                    })
                    .collect();
                covered.len() == variants
            }
            _ => false,
        };
        if !catch_all && !enumerated && !t.rows.is_empty() {
            let wildcards = vec!["_"; signature.keys.len()].join(", ");
            self.report(
                Diagnostic::new(
                    Code::NonExhaustiveTable,
                    t.name.span,
                    format!("table `{}` has no row that matches everything", t.name.name),
                )
                .with_help(format!(
                    "add a last row `{wildcards} => ...` for the remaining cases"
                )),
            );
        } else if t.rows.is_empty() {
            self.report(
                Diagnostic::new(
                    Code::NonExhaustiveTable,
                    t.name.span,
                    format!("table `{}` has no rows", t.name.name),
                )
                .with_help("add rows such as `_ => 1`"),
            );
        }
    }

    fn sop(&mut self, s: &ast::Sop) {
        use ast::SopClause as C;
        self.once(&s.clauses, |k| matches!(k, C::Trigger { .. }), "on");
        self.once(
            &s.clauses,
            |k| matches!(k, C::OnTimeoutEscalate(_)),
            "on timeout",
        );
        let mut event_name = None;
        let mut when = None;
        for clause in &s.clauses {
            if let C::Trigger { event, condition } = &clause.kind {
                if event_name.is_some() {
                    continue;
                }
                match schema::EVENTS.iter().find(|(name, _)| *name == event.name) {
                    Some((name, context)) => {
                        self.context = *context;
                        event_name = Some(name.to_string());
                        when = condition.as_ref().map(|c| self.rule_condition(c));
                    }
                    None => {
                        let help =
                            did_you_mean(&event.name, schema::EVENTS.iter().map(|(n, _)| *n))
                                .unwrap_or_else(|| {
                                    let names: Vec<&str> =
                                        schema::EVENTS.iter().map(|(n, _)| *n).collect();
                                    format!("events are {}", names.join(", "))
                                });
                        self.report(
                            Diagnostic::new(
                                Code::UnknownEvent,
                                event.span,
                                format!("unknown event `{}`", event.name),
                            )
                            .with_help(help),
                        );
                        event_name = Some(String::new());
                    }
                }
            }
        }
        if event_name.is_none() {
            self.report(
                Diagnostic::new(
                    Code::MissingClause,
                    s.name.span,
                    format!("SOP `{}` has no `on` event", s.name.name),
                )
                .with_help("say when it starts, e.g. `on shipment.assigned when ...`"),
            );
        }
        let mut steps: Vec<checked::Step> = Vec::new();
        let mut step_spans: HashMap<String, Span> = HashMap::new();
        let mut escalate = None;
        self.context = Context::Constant;
        for clause in &s.clauses {
            match &clause.kind {
                C::Step(step) => {
                    if let Some(first) = step_spans.get(&step.name.name).copied() {
                        self.report(
                            Diagnostic::new(
                                Code::DuplicateStep,
                                step.name.span,
                                format!("step `{}` appears twice", step.name.name),
                            )
                            .with_related(
                                self.file,
                                first,
                                "first here",
                            ),
                        );
                        continue;
                    }
                    step_spans.insert(step.name.name.clone(), step.name.span);
                    let duration = Type::Quantity(Dimension::Duration);
                    let within = self.expr(&step.within, Some(&duration));
                    let mut within_seconds = 0;
                    if self.require(&within, &duration, "a step deadline") {
                        match const_value(&within) {
                            Some(Value::Quantity(micro, _)) if micro > 0 => {
                                within_seconds = micro / checked::SCALE
                            }
                            Some(_) => self.report(Diagnostic::new(
                                Code::OutOfRange,
                                within.span,
                                "a step deadline must be more than zero",
                            )),
                            None => self.report(Diagnostic::new(
                                Code::TypeMismatch,
                                within.span,
                                "a step deadline must be a constant duration",
                            )),
                        }
                    }
                    for evidence in &step.requires {
                        if !schema::EVIDENCE.contains(&evidence.name.as_str()) {
                            let help =
                                did_you_mean(&evidence.name, schema::EVIDENCE.iter().copied())
                                    .unwrap_or_else(|| {
                                        format!(
                                            "evidence kinds are {}",
                                            schema::EVIDENCE.join(", ")
                                        )
                                    });
                            self.report(
                                Diagnostic::new(
                                    Code::UnknownEvidence,
                                    evidence.span,
                                    format!("unknown evidence `{}`", evidence.name),
                                )
                                .with_help(help),
                            );
                        }
                    }
                    steps.push(checked::Step {
                        name: step.name.name.clone(),
                        role: step.role.name.clone(),
                        within_seconds,
                        instructions: step.instructions.as_ref().map(|s| s.value.clone()),
                        requires: step.requires.iter().map(|r| r.name.clone()).collect(),
                    });
                }
                C::OnTimeoutEscalate(role) => escalate = Some(role.name.clone()),
                C::Trigger { .. } => {}
            }
        }
        if step_spans.is_empty() {
            self.report(
                Diagnostic::new(
                    Code::MissingClause,
                    s.name.span,
                    format!("SOP `{}` has no `step`", s.name.name),
                )
                .with_help(
                    "add steps such as `step pick role picker within 15 min \"Pick the items\"`",
                ),
            );
        }
        self.sops.push(checked::Sop {
            name: s.name.name.clone(),
            event: event_name.unwrap_or_default(),
            when,
            steps,
            escalate,
            origin: self.origin(s.name.span),
        });
    }

    // ---- pass 5: lints ------------------------------------------------------------------

    fn lints(&mut self) {
        // An item that failed to parse may be the one that uses a declaration.
        if self.diagnostics.iter().any(|d| d.code.as_str() < "E0100") {
            return;
        }
        let unused_lists: Vec<(String, Origin)> = self
            .lists
            .iter()
            .zip(&self.list_used)
            .filter(|(_, used)| !**used)
            .map(|(l, _)| (l.name.clone(), l.origin))
            .collect();
        for (name, origin) in unused_lists {
            self.file = origin.file;
            self.report(
                Diagnostic::new(
                    Code::UnusedList,
                    origin.span,
                    format!("list `{name}` is never used"),
                )
                .with_help(format!(
                    "use it in a rule (`customer.device in {name}`) or remove it"
                )),
            );
        }
        let unused_tables: Vec<(String, Origin)> = self
            .table_ids
            .iter()
            .filter(|(_, id)| !self.table_used.get(**id).copied().unwrap_or(true))
            .filter_map(|(name, id)| self.table_origins.get(*id).map(|o| (name.clone(), *o)))
            .collect();
        for (name, origin) in unused_tables {
            self.file = origin.file;
            self.report(
                Diagnostic::new(
                    Code::UnusedTable,
                    origin.span,
                    format!("table `{name}` is never used"),
                )
                .with_help(format!("call it from a rule (`{name}(...)`) or remove it")),
            );
        }
        let unused_attributes: Vec<(String, FileId, Span)> = self
            .attribute_spans
            .iter()
            .filter(|(entity, index, _, _)| !self.attribute_used.contains(&(*entity, *index)))
            .filter_map(|(entity, index, file, span)| {
                let def = self.schema.entity(*entity)?;
                let field = def.fields.get(*index)?;
                Some((format!("{}.{}", def.name, field.name), *file, *span))
            })
            .collect();
        for (name, file, span) in unused_attributes {
            self.file = file;
            self.report(
                Diagnostic::new(
                    Code::UnusedAttribute,
                    span,
                    format!("attribute `{name}` is never used"),
                )
                .with_help("read it in a rule, or remove the declaration"),
            );
        }
    }

    fn finish(self, sources: &[SourceText]) -> checked::Ruleset {
        let defaults = self
            .schema
            .entities
            .iter()
            .enumerate()
            .map(|(entity, def)| {
                def.fields
                    .iter()
                    .enumerate()
                    .map(|(index, field)| {
                        self.attribute_defaults
                            .get(&(entity, index))
                            .cloned()
                            .unwrap_or_else(|| values::zero_value(&field.ty))
                    })
                    .collect()
            })
            .collect();
        checked::Ruleset {
            name: self.name,
            currency: self.currency,
            schema: self.schema,
            defaults,
            lists: self.lists,
            tables: self.tables.into_iter().flatten().collect(),
            velocities: self.velocities,
            promotions: self.promotions,
            route: self.route,
            constraints: self.constraints,
            risks: self.risks,
            decide: self.decide,
            sops: self.sops,
            tests: self.tests,
            files: sources.iter().map(|s| s.name.clone()).collect(),
            variables: self.next_var,
        }
    }
}

/// Widens a constant to the declared type (an `int` literal where a `decimal` is declared).
pub(crate) fn coerce(value: Value, ty: &Type) -> Value {
    match (value, ty.strip_optional()) {
        (Value::Int(n), Type::Decimal) => Value::Decimal(n.saturating_mul(checked::SCALE)),
        (Value::List(items), Type::List(inner)) => {
            Value::List(items.into_iter().map(|v| coerce(v, inner)).collect())
        }
        (value, _) => value,
    }
}
