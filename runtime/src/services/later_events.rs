//! SOPs on an order's later events: `order.cancelled`, `shipment.shipped`,
//! `shipment.delivered` and `return.received` (docs/orders.md, "SOPs after placement").
//!
//! Placing an order opens the work orders of `order.placed` and `shipment.assigned`.
//! The other events happen later, so their SOPs are evaluated when they do: by the
//! ruleset version that decided the order (the one its decision record names), on the
//! facts stored with the order, with `now` the event's time and the runtime lists as
//! they are then. Shipment events are evaluated once per shipment, on the facts the
//! shipment was planned on (its location, lines, carrier mode and carrier); a return
//! on the location that received it. The work orders found here are handed to the
//! store with the event itself, so they are written with it or not at all.

use serde_json::{Map, Value as Json};
use weir_compiler::abi::Facts;
use weir_compiler::evaluate::{Context, SopEvents};
use weir_compiler::facts;
use weir_compiler::interp::Hook;
use weir_dsl::checked::Value;

use super::orders::{
    clear_shipment_facts, known_attributes, lists, location_facts, location_fields, owned,
    run_hooks, set_shipment_facts, work_order, OrderError, Rules,
};
use crate::store::{Location, NewWorkOrder, OrderRecord, Store};

/// An event in an order's life after it was placed.
#[derive(Debug, Clone, Copy)]
pub enum LaterEvent<'a> {
    /// The order was cancelled.
    Cancelled,
    /// Its shipments were handed to the carrier.
    Shipped,
    /// Its shipments were delivered.
    Delivered,
    /// Goods of the order were handed back at `location`.
    ReturnReceived { location: &'a Location },
}

impl LaterEvent<'_> {
    /// The event's name in the language (`sop … { on shipment.shipped … }`).
    pub fn name(&self) -> &'static str {
        match self {
            LaterEvent::Cancelled => "order.cancelled",
            LaterEvent::Shipped => "shipment.shipped",
            LaterEvent::Delivered => "shipment.delivered",
            LaterEvent::ReturnReceived { .. } => "return.received",
        }
    }
}

/// The work orders `event` opens for `order`: one per SOP on the event whose condition
/// holds — for shipment events, one per shipment location where it holds; for a return,
/// at the receiving location — with step deadlines counted from now. `rules` must be
/// the version that decided the order. Empty when no SOP of that version listens to the
/// event, or the order has no decision record.
pub async fn event_work_orders(
    store: &dyn Store,
    rules: &Rules,
    tenant: &str,
    order: &OrderRecord,
    event: LaterEvent<'_>,
) -> Result<Vec<NewWorkOrder>, OrderError> {
    let manifest = &rules.compiled.manifest;
    if !manifest.listens_to(event.name()) {
        return Ok(Vec::new());
    }
    let Some(decision) = &order.decision else {
        return Ok(Vec::new());
    };
    let now_ms = store.now();
    let Some(Json::Object(stored)) = &decision.facts else {
        return Err(OrderError::Evaluation {
            ruleset: rules.name.clone(),
            message: format!(
                "order `{}` has no stored facts to evaluate `{}` SOPs on",
                order.summary.order_id,
                event.name()
            ),
        });
    };
    let mut document: Map<String, Json> = stored.clone();
    document.insert("now".into(), Json::from(now_ms / 1000));
    // The record keeps only the list members placement found; an SOP evaluated now
    // reads the lists as they are now.
    document.remove("lists");
    if let LaterEvent::ReturnReceived { location } = event {
        let attributes = store.location_attributes(tenant).await?;
        let fields = location_fields(rules);
        let known = known_attributes(attributes.get(&location.id), &fields);
        document.insert("location".into(), location_facts(location, known, None));
    }
    let mut input =
        facts::read(&Json::Object(document), &rules.ruleset).map_err(|e| OrderError::Invalid {
            path: e.path,
            message: e.message,
        })?;
    let context = Context {
        lists: lists(store, rules, tenant).await?,
        usage: std::mem::take(&mut input.usage),
    };
    let facts_in = &mut input.facts;

    // (SOP name, where it is done), each once.
    let mut triggered: Vec<(String, Option<String>)> = Vec::new();
    match event {
        LaterEvent::Cancelled | LaterEvent::ReturnReceived { .. } => {
            let at = match event {
                LaterEvent::ReturnReceived { location } => Some(location.id.clone()),
                _ => None,
            };
            for name in sops_triggered(rules, facts_in, &context, event)? {
                triggered.push((name, at.clone()));
            }
        }
        LaterEvent::Shipped | LaterEvent::Delivered => {
            for shipment in &order.shipments {
                // A shipment leaves from one of the candidates stored with the order
                // (the version that planned it put it there); one whose location has
                // since been removed from the store has no facts to be evaluated on.
                let Some(candidate) = candidate_index(rules, facts_in, &shipment.location_id)
                else {
                    continue;
                };
                let Some(location) = store.location(tenant, &shipment.location_id).await? else {
                    continue;
                };
                let lines: Vec<usize> = shipment
                    .lines
                    .iter()
                    .filter_map(|l| usize::try_from(l.line_no).ok()?.checked_sub(1))
                    .collect();
                set_shipment_facts(
                    rules,
                    facts_in,
                    &location,
                    candidate,
                    &lines,
                    &shipment.carrier_mode,
                )?;
                let found = sops_triggered(rules, facts_in, &context, event);
                clear_shipment_facts(facts_in);
                for name in found? {
                    let at = (name, Some(shipment.location_id.clone()));
                    if !triggered.contains(&at) {
                        triggered.push(at);
                    }
                }
            }
        }
    }
    Ok(triggered
        .iter()
        .filter_map(|(name, at)| {
            let sop = manifest.sop(name)?;
            Some(work_order(
                sop,
                &order.summary.order_id,
                at.as_deref(),
                now_ms,
            ))
        })
        .collect())
}

/// The SOPs on `event` whose condition holds on `facts_in`.
fn sops_triggered(
    rules: &Rules,
    facts_in: &Facts,
    context: &Context,
    event: LaterEvent<'_>,
) -> Result<Vec<String>, OrderError> {
    let events = [event.name()];
    let decisions = run_hooks(
        rules,
        facts_in,
        context,
        &[Hook::SopTriggers],
        SopEvents::Only(&events),
    )?;
    Ok(owned(&decisions.sops))
}

/// Where the location `id` is among the order's stored candidate locations.
fn candidate_index(rules: &Rules, facts_in: &Facts, id: &str) -> Option<usize> {
    let field = rules
        .ruleset
        .schema
        .entity(weir_dsl::schema::LOCATION)?
        .field("id")?
        .0;
    facts_in.locations.iter().position(|location| {
        matches!(location, Value::Record(_, slots)
            if matches!(slots.get(field), Some(Some(Value::String(s))) if s == id))
    })
}
