//! Running a compiled ruleset over one set of facts with any engine: encode the facts,
//! run each hook, and combine the raw words into decisions. Engines are interchangeable
//! behind `Engine`: the reference interpreter here, the WebAssembly host in
//! `weir-runtime`.

use crate::abi::{self, Facts, Interner};
use crate::interp::{self, Hook};
pub use crate::lists::Lists;
use crate::lists::{FoundMember, ListMembers};
use crate::manifest::Manifest;
use crate::outcome::{
    self, ConstraintOutcome, Line, PromotionOutcome, RiskOutcome, RouteOutcome, Usage,
};
use crate::Compiled;
use std::borrow::Cow;
use std::sync::Arc;
use weir_dsl::checked::Value;
use weir_dsl::schema;

/// Why an engine could not evaluate a hook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalFailure {
    #[error("{0}")]
    Trap(String),
    #[error("{0}")]
    Engine(String),
}

/// Something that runs one hook of a compiled ruleset over an encoded input.
pub trait Engine {
    fn name(&self) -> &'static str;
    /// `lists` is a concrete, owned type so that a host that must keep it for the
    /// length of a call (wasmtime's `'static` store data) can.
    fn run(&self, hook: Hook, input: &[u8], lists: &Lists) -> Result<Vec<i64>, EvalFailure>;

    /// Runs every hook call of one evaluation, in order: all of them see the same facts
    /// (SOP calls differ only in the event word), so an engine may run them in one
    /// sandbox instance. The first failure stops the evaluation.
    fn run_all(
        &self,
        calls: &[(Hook, &[u8])],
        lists: &Lists,
    ) -> Result<Vec<Vec<i64>>, (Hook, EvalFailure)> {
        calls
            .iter()
            .map(|(hook, input)| self.run(*hook, input, lists).map_err(|f| (*hook, f)))
            .collect()
    }
}

/// The reference interpreter as an `Engine`.
pub struct Interpreter<'a> {
    pub compiled: &'a Compiled,
}

impl Engine for Interpreter<'_> {
    fn name(&self) -> &'static str {
        "interpreter"
    }

    fn run(&self, hook: Hook, input: &[u8], lists: &Lists) -> Result<Vec<i64>, EvalFailure> {
        interp::run(&self.compiled.program, hook, input, lists)
            .map_err(|trap| EvalFailure::Trap(trap.to_string()))
    }
}

/// Everything the hooks decided for one set of facts. Rule names and reasons are
/// borrowed from the compiled ruleset's manifest (`'m`): an evaluation copies none of
/// them (docs/abi.md, "Decoding").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decisions<'m> {
    pub promotions: Option<PromotionOutcome<'m>>,
    pub route: Option<RouteOutcome>,
    pub constraints: Option<ConstraintOutcome<'m>>,
    pub risk: Option<RiskOutcome<'m>>,
    /// SOPs triggered, over every event some SOP listens to.
    pub sops: Vec<&'m str>,
    /// Gifts with their SKUs as text: borrowed from the manifest's string table when
    /// the rules name the SKU (the usual case), owned when it came from the facts.
    pub gifts: Vec<(Cow<'m, str>, i64)>,
    /// The route's name, when the ruleset has one.
    pub route_name: Option<&'m str>,
    /// The raw output words per hook, for differential comparison between engines.
    pub raw: Vec<(Hook, Vec<i64>)>,
    /// Every runtime-list member a membership test found (list index, member), each
    /// once, sorted: what a decision record keeps instead of the lists (docs/orders.md).
    pub list_hits: Vec<(usize, FoundMember)>,
}

/// The inputs of one evaluation besides the facts.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Runtime lists by their index in the ruleset, shared: an evaluation never copies
    /// a list's members (lists left out are empty).
    pub lists: Vec<(usize, Arc<ListMembers>)>,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvaluateError {
    #[error("cannot encode the facts: {0}")]
    Encode(#[from] abi::EncodeError),
    #[error("hook `{hook}`: {failure}")]
    Hook {
        hook: &'static str,
        failure: EvalFailure,
    },
    #[error("hook `{hook}`: {error}")]
    Decode {
        hook: &'static str,
        error: outcome::DecodeError,
    },
}

fn hook_error(hook: Hook) -> impl Fn(EvalFailure) -> EvaluateError {
    move |failure| EvaluateError::Hook {
        hook: hook.export_name(),
        failure,
    }
}

fn decode_error(hook: Hook) -> impl Fn(outcome::DecodeError) -> EvaluateError {
    move |error| EvaluateError::Decode {
        hook: hook.export_name(),
        error,
    }
}

/// The order lines as the combination step sees them.
pub fn order_lines(compiled: &Compiled, input: &[u8]) -> Vec<Line> {
    let program = &compiled.program;
    let Some(order) = abi::header_word(input, crate::ir::HeaderSlot::Order) else {
        return Vec::new();
    };
    let Some(items) = usize::try_from(order)
        .ok()
        .and_then(|o| abi::word_at(input, o + 8 * program.order_items_field as usize))
    else {
        return Vec::new();
    };
    let (offset, count) = abi::unpack(items);
    let field = |name: &str| -> usize {
        compiled
            .manifest
            .item_fields
            .iter()
            .position(|f| f == name)
            .unwrap_or(usize::MAX)
    };
    let (subtotal, qty) = (field("subtotal"), field("qty"));
    (0..count as usize)
        .map(|i| {
            let base = offset as usize + i * program.item_stride as usize;
            Line {
                subtotal: abi::word_at(input, base.saturating_add(8 * subtotal)).unwrap_or(0),
                qty: abi::word_at(input, base.saturating_add(8 * qty)).unwrap_or(0),
            }
        })
        .collect()
}

/// Which SOP events an evaluation runs the `sop_triggers` hook for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SopEvents<'a> {
    /// Every event some SOP listens to (`weir test`, `weir eval`, explain).
    All,
    /// Only these (`order.placed` when an order is placed, `shipment.shipped` when it
    /// ships …): the order path asks each moment only about its own events.
    Only(&'a [&'a str]),
}

impl SopEvents<'_> {
    fn includes(&self, event: &str) -> bool {
        match self {
            SopEvents::All => true,
            SopEvents::Only(events) => events.contains(&event),
        }
    }
}

/// Runs every hook that has rules, with one engine.
pub fn evaluate<'m>(
    compiled: &'m Compiled,
    ruleset: &weir_dsl::checked::Ruleset,
    facts: &Facts,
    context: &Context,
    engine: &dyn Engine,
) -> Result<Decisions<'m>, EvaluateError> {
    evaluate_hooks(
        compiled,
        ruleset,
        facts,
        context,
        engine,
        &Hook::ALL,
        SopEvents::All,
    )
}

/// [`evaluate`] restricted to some hooks (e.g. `constraints` once per planned shipment)
/// and some SOP events; the decisions of the others stay `None`/empty.
pub fn evaluate_hooks<'m>(
    compiled: &'m Compiled,
    ruleset: &weir_dsl::checked::Ruleset,
    facts: &Facts,
    context: &Context,
    engine: &dyn Engine,
    hooks: &[Hook],
    events: SopEvents<'_>,
) -> Result<Decisions<'m>, EvaluateError> {
    // No SOP hook asked, no event copies of the input to make.
    let events = if hooks.contains(&Hook::SopTriggers) {
        events
    } else {
        SopEvents::Only(&[])
    };
    let prepared = prepare(compiled, ruleset, facts, context, events)?;
    let mut borrowed = prepared.calls();
    borrowed.retain(|(h, _)| hooks.contains(h));
    let outputs = engine
        .run_all(&borrowed, &prepared.lists)
        .map_err(|(hook, failure)| hook_error(hook)(failure))?;
    let raw: Vec<(Hook, Vec<i64>)> = borrowed
        .iter()
        .map(|(hook, _)| *hook)
        .zip(outputs)
        .collect();
    let mut decisions = decide(compiled, ruleset, facts, context, &prepared, &raw)?;
    decisions.raw = raw;
    Ok(decisions)
}

/// Decodes and combines the raw output words of an evaluation's hook calls (over the
/// facts `prepared` encoded) into its decisions, all but `raw`: the step both engines
/// share (docs/abi.md, "Decoding").
pub fn decide<'m>(
    compiled: &'m Compiled,
    ruleset: &weir_dsl::checked::Ruleset,
    facts: &Facts,
    context: &Context,
    prepared: &Prepared,
    outputs: &[(Hook, Vec<i64>)],
) -> Result<Decisions<'m>, EvaluateError> {
    let (manifest, interner) = (&compiled.manifest, &prepared.interner);
    let mut decisions = Decisions::default();
    for (hook, words) in outputs {
        let hook = *hook;
        match hook {
            Hook::Promotions => {
                let lines = order_lines(compiled, &prepared.input);
                let combined = outcome::promotions(words, manifest, &lines, &context.usage)
                    .map_err(decode_error(hook))?;
                decisions.gifts = combined
                    .gifts
                    .iter()
                    .map(|(sku, qty)| (sku_text(manifest, interner, *sku), *qty))
                    .collect();
                decisions.promotions = Some(combined);
            }
            Hook::Route => {
                decisions.route = Some(
                    outcome::route(words, manifest, facts.locations.len())
                        .map_err(decode_error(hook))?,
                );
                decisions.route_name = manifest.route.as_ref().map(|r| r.name.as_str());
            }
            Hook::Constraints => {
                let mode = shipment_mode(ruleset, facts);
                decisions.constraints =
                    Some(outcome::constraints(words, manifest, mode).map_err(decode_error(hook))?);
            }
            Hook::Risk => {
                decisions.risk = Some(outcome::risk(words, manifest).map_err(decode_error(hook))?);
            }
            Hook::SopTriggers => {
                for name in outcome::sop_triggers(words, manifest).map_err(decode_error(hook))? {
                    if !decisions.sops.contains(&name) {
                        decisions.sops.push(name);
                    }
                }
            }
        }
    }
    decisions.list_hits = prepared.lists.found();
    // Sorted: which members were found is the decision, not in which order.
    decisions.list_hits.sort();
    Ok(decisions)
}

/// A gift's SKU (a string id) as text: borrowed when it is one of the module's own
/// strings (ids below the string table's length are its indices: docs/abi.md, "The
/// input: facts"), owned when the facts brought it.
fn sku_text<'m>(manifest: &'m Manifest, interner: &Interner, id: i64) -> Cow<'m, str> {
    match usize::try_from(id)
        .ok()
        .and_then(|i| manifest.strings.get(i))
    {
        Some(text) => Cow::Borrowed(text),
        None => Cow::Owned(interner.resolve(id).unwrap_or("?").to_owned()),
    }
}

/// The engine inputs of one evaluation.
pub struct Prepared {
    /// Every string met, with the module's string table first.
    pub interner: Arc<Interner>,
    /// The runtime lists, resolving string ids through `interner`.
    pub lists: Lists,
    /// The encoded facts.
    pub input: Vec<u8>,
    /// The hooks that have rules, in call order; each runs over `input`.
    pub hooks: Vec<Hook>,
    /// `input` once per event some SOP listens to, with that event's word: the inputs
    /// of the `sop_triggers` calls, which come after the hooks.
    pub sop_inputs: Vec<Vec<u8>>,
}

impl Prepared {
    /// The hook calls in order: each hook that has rules, then `sop_triggers` once per
    /// event. The rule hooks share one input rather than a copy each.
    pub fn calls(&self) -> Vec<(Hook, &[u8])> {
        let mut calls = Vec::with_capacity(self.hooks.len() + self.sop_inputs.len());
        calls.extend(self.hooks.iter().map(|hook| (*hook, self.input.as_slice())));
        calls.extend(
            self.sop_inputs
                .iter()
                .map(|input| (Hook::SopTriggers, input.as_slice())),
        );
        calls
    }
}

/// Encodes the facts once and lists the hook calls an evaluation makes (the SOP hook
/// once per event of `events` that some SOP listens to).
pub fn prepare(
    compiled: &Compiled,
    ruleset: &weir_dsl::checked::Ruleset,
    facts: &Facts,
    context: &Context,
    events: SopEvents<'_>,
) -> Result<Prepared, EvaluateError> {
    let manifest = &compiled.manifest;
    let mut interner = compiled.interner();
    let input = abi::encode(ruleset, facts, &mut interner)?;
    let interner = Arc::new(interner);
    let lists = Lists::new(&context.lists, interner.clone());

    let mut hooks = Vec::with_capacity(4);
    if !manifest.promotions.is_empty() {
        hooks.push(Hook::Promotions);
    }
    if manifest.route.is_some() {
        hooks.push(Hook::Route);
    }
    if !manifest.constraints.is_empty() {
        hooks.push(Hook::Constraints);
    }
    if !manifest.risks.is_empty() || !manifest.decide.is_empty() {
        hooks.push(Hook::Risk);
    }
    // The event words to run the SOP hook for, each once.
    let mut event_words: Vec<i64> = Vec::new();
    for sop in manifest
        .sops
        .iter()
        .filter(|sop| events.includes(&sop.event))
    {
        if let Some(event) = schema::EVENTS
            .iter()
            .position(|(name, _)| *name == sop.event)
        {
            if !event_words.contains(&(event as i64)) {
                event_words.push(event as i64);
            }
        }
    }
    let sop_inputs = event_words
        .into_iter()
        .map(|event| abi::with_event(&input, event))
        .collect();
    Ok(Prepared {
        interner,
        lists,
        input,
        hooks,
        sop_inputs,
    })
}

fn shipment_mode(ruleset: &weir_dsl::checked::Ruleset, facts: &Facts) -> u32 {
    let index = ruleset
        .schema
        .entity(schema::SHIPMENT)
        .and_then(|e| e.field("mode"))
        .map(|(i, _)| i);
    match (&facts.shipment, index) {
        (Some(Value::Record(_, slots)), Some(i)) => match slots.get(i) {
            Some(Some(Value::Enum(_, v))) => *v,
            _ => 0,
        },
        _ => 0,
    }
}
