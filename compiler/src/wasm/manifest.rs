//! The `weir.manifest` custom section: the `Manifest` as UTF-8 JSON, so a host needs
//! nothing but the module to run it and to read its output.
//!
//! The JSON is written from a private mirror of the manifest types (they themselves
//! stay free of serialisation concerns). Version 2 looks like this:
//!
//! ```json
//! {
//!   "format": "weir.manifest", "version": 2,
//!   "ruleset": "beauty_flagship", "currency": "CNY", "minor_digits": 2,
//!   "strings": ["tmall", "..."], "entity_fields": [12, 10, 6, 13, 3, 4],
//!   "item_fields": ["sku", "category", "qty", "..."],
//!   "promotions": [{ "name": "...", "priority": 10, "group": "threshold", "exclusive": true,
//!                    "limit": { "count": 1, "period": "day" }, "budget": 20000000,
//!                    "actions": [{ "kind": "discount_order", "percent": false }] }],
//!   "route": { "name": "default", "prefer_fewer_splits": true },
//!   "constraints": [{ "name": "...", "forbid_modes": [1], "require_mode": null,
//!                     "require_packaging": ["sealed-bag"], "block": null }],
//!   "risks": [{ "name": "...", "reason": "...", "reject": null, "review": null }],
//!   "decide": ["reject", "review", "accept"],
//!   "sops": [{ "name": "...", "event": "shipment.assigned", "escalate": "store_manager",
//!              "steps": [{ "name": "scan_lot", "role": "picker", "within_seconds": 900,
//!                          "instructions": "...", "requires": [] }] }],
//!   "velocities": [{ "kind": "orders", "key_path": "customer.device", "window_seconds": 3600 },
//!                  { "kind": "customers", "key_path": "order.address", "window_seconds": 2592000 }],
//!   "lists": ["blocked_devices"]
//! }
//! ```
//!
//! Action kinds are `discount_order`, `discount_items` (both with `percent`), `gift`
//! and `points_multiplier`. A reader refuses another `format` or a `version` it does
//! not know; fields are only ever added with a version bump.
//!
//! Versions: 1 had no `kind` on `velocities` (every counter counted orders); 2 adds
//! `kind` (`orders` | `customers`, for `customers(KEY, WINDOW)`). This reader reads
//! both (a version 1 counter, or a version 2 one without `kind`, is `orders`) and
//! writes 2, so a host that only knows version 1 refuses a module whose counters it
//! could not fetch correctly instead of counting orders for a `customers` counter.

use crate::manifest::*;
use serde::{Deserialize, Serialize};
use weir_dsl::checked::{Decision, Step};

/// Name of the custom section.
pub const SECTION: &str = "weir.manifest";
/// Value of the `format` field.
pub const FORMAT: &str = "weir.manifest";
/// The encoding version this compiler writes.
pub const VERSION: u32 = 2;
/// The oldest version this reader still reads.
pub const OLDEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("the module has no `weir.manifest` section")]
    Missing,
    #[error("the module has more than one `weir.manifest` section")]
    Duplicate,
    #[error("the module cannot be parsed: {0}")]
    Module(String),
    #[error("the manifest is not valid JSON for this format: {0}")]
    Json(String),
    #[error(
        "the manifest is `{format}` version {version}; this reader knows `weir.manifest` versions 1 and 2"
    )]
    Version { format: String, version: u32 },
    #[error("the manifest has an unknown {what} `{value}`")]
    Unknown { what: &'static str, value: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestJson {
    format: String,
    version: u32,
    ruleset: String,
    currency: String,
    minor_digits: u32,
    strings: Vec<String>,
    entity_fields: Vec<u32>,
    item_fields: Vec<String>,
    promotions: Vec<PromotionJson>,
    route: Option<RouteJson>,
    constraints: Vec<ConstraintJson>,
    risks: Vec<RiskJson>,
    decide: Vec<String>,
    sops: Vec<SopJson>,
    velocities: Vec<NeedJson>,
    lists: Vec<String>,
}

/// Only `format` and `version`, read first so that a newer manifest is refused for
/// its version rather than for its unknown fields.
#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum ActionJson {
    DiscountOrder { percent: bool },
    DiscountItems { percent: bool },
    Gift,
    PointsMultiplier,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitJson {
    count: i64,
    period: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromotionJson {
    name: String,
    priority: i64,
    group: Option<String>,
    exclusive: bool,
    limit: Option<LimitJson>,
    budget: Option<i64>,
    actions: Vec<ActionJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteJson {
    name: String,
    prefer_fewer_splits: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConstraintJson {
    name: String,
    forbid_modes: Vec<u32>,
    require_mode: Option<u32>,
    require_packaging: Vec<String>,
    block: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RiskJson {
    name: String,
    reason: Option<String>,
    reject: Option<String>,
    review: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepJson {
    name: String,
    role: String,
    within_seconds: i64,
    instructions: Option<String>,
    requires: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SopJson {
    name: String,
    event: String,
    steps: Vec<StepJson>,
    escalate: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NeedJson {
    /// Absent in version 1: `orders`.
    #[serde(default)]
    kind: CounterKindJson,
    key_path: String,
    window_seconds: i64,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
enum CounterKindJson {
    #[default]
    Orders,
    Customers,
}

impl From<CounterKind> for CounterKindJson {
    fn from(kind: CounterKind) -> Self {
        match kind {
            CounterKind::Orders => CounterKindJson::Orders,
            CounterKind::Customers => CounterKindJson::Customers,
        }
    }
}

impl From<CounterKindJson> for CounterKind {
    fn from(kind: CounterKindJson) -> Self {
        match kind {
            CounterKindJson::Orders => CounterKind::Orders,
            CounterKindJson::Customers => CounterKind::Customers,
        }
    }
}

fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Accept => "accept",
        Decision::Review => "review",
        Decision::Reject => "reject",
    }
}

fn decision(name: &str) -> Result<Decision, ManifestError> {
    match name {
        "accept" => Ok(Decision::Accept),
        "review" => Ok(Decision::Review),
        "reject" => Ok(Decision::Reject),
        other => Err(ManifestError::Unknown {
            what: "decision",
            value: other.to_string(),
        }),
    }
}

/// The section's bytes for a manifest.
pub fn encode(m: &Manifest) -> Result<Vec<u8>, serde_json::Error> {
    let json = ManifestJson {
        format: FORMAT.to_string(),
        version: VERSION,
        ruleset: m.ruleset.clone(),
        currency: m.currency.clone(),
        minor_digits: m.minor_digits,
        strings: m.strings.clone(),
        entity_fields: m.entity_fields.clone(),
        item_fields: m.item_fields.clone(),
        promotions: m
            .promotions
            .iter()
            .map(|p| PromotionJson {
                name: p.name.clone(),
                priority: p.priority,
                group: p.group.clone(),
                exclusive: p.exclusive,
                limit: p.limit.as_ref().map(|(count, period)| LimitJson {
                    count: *count,
                    period: period.clone(),
                }),
                budget: p.budget,
                actions: p
                    .actions
                    .iter()
                    .map(|a| match a {
                        ActionKind::DiscountOrder { percent } => {
                            ActionJson::DiscountOrder { percent: *percent }
                        }
                        ActionKind::DiscountItems { percent } => {
                            ActionJson::DiscountItems { percent: *percent }
                        }
                        ActionKind::Gift => ActionJson::Gift,
                        ActionKind::PointsMultiplier => ActionJson::PointsMultiplier,
                    })
                    .collect(),
            })
            .collect(),
        route: m.route.as_ref().map(|r| RouteJson {
            name: r.name.clone(),
            prefer_fewer_splits: r.prefer_fewer_splits,
        }),
        constraints: m
            .constraints
            .iter()
            .map(|c| ConstraintJson {
                name: c.name.clone(),
                forbid_modes: c.forbid_modes.clone(),
                require_mode: c.require_mode,
                require_packaging: c.require_packaging.clone(),
                block: c.block.clone(),
            })
            .collect(),
        risks: m
            .risks
            .iter()
            .map(|r| RiskJson {
                name: r.name.clone(),
                reason: r.reason.clone(),
                reject: r.reject.clone(),
                review: r.review.clone(),
            })
            .collect(),
        decide: m
            .decide
            .iter()
            .map(|d| decision_name(*d).to_string())
            .collect(),
        sops: m
            .sops
            .iter()
            .map(|s| SopJson {
                name: s.name.clone(),
                event: s.event.clone(),
                steps: s
                    .steps
                    .iter()
                    .map(|step| StepJson {
                        name: step.name.clone(),
                        role: step.role.clone(),
                        within_seconds: step.within_seconds,
                        instructions: step.instructions.clone(),
                        requires: step.requires.clone(),
                    })
                    .collect(),
                escalate: s.escalate.clone(),
            })
            .collect(),
        velocities: m
            .velocities
            .iter()
            .map(|v| NeedJson {
                kind: v.kind.into(),
                key_path: v.key_path.clone(),
                window_seconds: v.window_seconds,
            })
            .collect(),
        lists: m.lists.clone(),
    };
    serde_json::to_vec(&json)
}

/// A manifest from the section's bytes.
pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    let header: Header =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    if header.format != FORMAT || !(OLDEST_VERSION..=VERSION).contains(&header.version) {
        return Err(ManifestError::Version {
            format: header.format,
            version: header.version,
        });
    }
    let json: ManifestJson =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    Ok(Manifest {
        ruleset: json.ruleset,
        currency: json.currency,
        minor_digits: json.minor_digits,
        strings: json.strings,
        entity_fields: json.entity_fields,
        item_fields: json.item_fields,
        promotions: json
            .promotions
            .into_iter()
            .map(|p| PromotionMeta {
                name: p.name,
                priority: p.priority,
                group: p.group,
                exclusive: p.exclusive,
                limit: p.limit.map(|l| (l.count, l.period)),
                budget: p.budget,
                actions: p
                    .actions
                    .into_iter()
                    .map(|a| match a {
                        ActionJson::DiscountOrder { percent } => {
                            ActionKind::DiscountOrder { percent }
                        }
                        ActionJson::DiscountItems { percent } => {
                            ActionKind::DiscountItems { percent }
                        }
                        ActionJson::Gift => ActionKind::Gift,
                        ActionJson::PointsMultiplier => ActionKind::PointsMultiplier,
                    })
                    .collect(),
            })
            .collect(),
        route: json.route.map(|r| RouteMeta {
            name: r.name,
            prefer_fewer_splits: r.prefer_fewer_splits,
        }),
        constraints: json
            .constraints
            .into_iter()
            .map(|c| ConstraintMeta {
                name: c.name,
                forbid_modes: c.forbid_modes,
                require_mode: c.require_mode,
                require_packaging: c.require_packaging,
                block: c.block,
            })
            .collect(),
        risks: json
            .risks
            .into_iter()
            .map(|r| RiskMeta {
                name: r.name,
                reason: r.reason,
                reject: r.reject,
                review: r.review,
            })
            .collect(),
        decide: json
            .decide
            .iter()
            .map(|d| decision(d))
            .collect::<Result<_, _>>()?,
        sops: json
            .sops
            .into_iter()
            .map(|s| SopMeta {
                name: s.name,
                event: s.event,
                steps: s
                    .steps
                    .into_iter()
                    .map(|step| Step {
                        name: step.name,
                        role: step.role,
                        within_seconds: step.within_seconds,
                        instructions: step.instructions,
                        requires: step.requires,
                    })
                    .collect(),
                escalate: s.escalate,
            })
            .collect(),
        velocities: json
            .velocities
            .into_iter()
            .map(|v| Need {
                kind: v.kind.into(),
                key_path: v.key_path,
                window_seconds: v.window_seconds,
            })
            .collect(),
        lists: json.lists,
    })
}

/// The manifest carried by a module's `weir.manifest` section.
pub fn read(wasm: &[u8]) -> Result<Manifest, ManifestError> {
    let mut found: Option<&[u8]> = None;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| ManifestError::Module(e.to_string()))?;
        if let wasmparser::Payload::CustomSection(section) = payload {
            if section.name() == SECTION {
                if found.is_some() {
                    return Err(ManifestError::Duplicate);
                }
                found = Some(section.data());
            }
        }
    }
    decode(found.ok_or(ManifestError::Missing)?)
}
