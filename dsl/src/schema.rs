//! The built-in fact schema: the entities rules read (`order`, `item`, `customer`,
//! `location`, `shipment`, `carrier`), their fields, the built-in enums, and which facts
//! each kind of rule may see. Rulesets extend entities with `attribute` declarations.
//!
//! `docs/language.md` lists the same schema for analysts; a test keeps the two in step.

use crate::span::Span;
use crate::types::{Dimension, EntityId, EnumId, Type};
use crate::FileId;

pub const ORDER: EntityId = 0;
pub const ITEM: EntityId = 1;
pub const CUSTOMER: EntityId = 2;
pub const LOCATION: EntityId = 3;
pub const SHIPMENT: EntityId = 4;
pub const CARRIER: EntityId = 5;

pub const LOCATION_KIND: EnumId = 0;
pub const MODE: EnumId = 1;

pub const LOCATION_KINDS: &[&str] = &["warehouse", "front_warehouse", "store"];
pub const MODES: &[&str] = &["ground", "air", "sea", "local"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumDef {
    /// How messages name the enum: `location kind`, or the attribute (`customer.tier`).
    pub name: String,
    pub variants: Vec<String>,
}

impl EnumDef {
    pub fn variant(&self, name: &str) -> Option<u32> {
        self.variants
            .iter()
            .position(|v| v == name)
            .map(|i| i as u32)
    }
}

/// Where a field comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldOrigin {
    Builtin { doc: &'static str },
    Attribute { file: FileId, span: Span },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDef {
    pub name: String,
    pub ty: Type,
    pub origin: FieldOrigin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityDef {
    pub name: &'static str,
    pub fields: Vec<FieldDef>,
}

impl EntityDef {
    pub fn field(&self, name: &str) -> Option<(usize, &FieldDef)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }
}

/// The schema a ruleset is checked against: the built-ins plus its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    pub entities: Vec<EntityDef>,
    pub enums: Vec<EnumDef>,
}

/// A fact a rule can name directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Root {
    Order,
    Customer,
    Location,
    Shipment,
    Carrier,
    Now,
}

impl Root {
    pub const ALL: &'static [Root] = &[
        Root::Order,
        Root::Customer,
        Root::Location,
        Root::Shipment,
        Root::Carrier,
        Root::Now,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Root::Order => "order",
            Root::Customer => "customer",
            Root::Location => "location",
            Root::Shipment => "shipment",
            Root::Carrier => "carrier",
            Root::Now => "now",
        }
    }

    pub fn from_name(name: &str) -> Option<Root> {
        Root::ALL.iter().copied().find(|r| r.name() == name)
    }

    pub fn ty(self) -> Type {
        match self {
            Root::Order => Type::Entity(ORDER),
            Root::Customer => Type::Entity(CUSTOMER),
            Root::Location => Type::Entity(LOCATION),
            Root::Shipment => Type::Entity(SHIPMENT),
            Root::Carrier => Type::Entity(CARRIER),
            Root::Now => Type::Time,
        }
    }
}

/// Which facts a piece of a ruleset sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    Promotion,
    Route,
    Constraint,
    Risk,
    /// `decide risk`: only `score`.
    Decide,
    /// Table key columns: any fact, and `item` for an order line (only their types matter).
    TableKey,
    /// Table values, attribute defaults, patterns: constants only.
    Constant,
    SopOrder,
    SopShipment,
    SopReturn,
}

impl Context {
    pub fn roots(self) -> &'static [Root] {
        use Root::*;
        match self {
            Context::Promotion | Context::Risk | Context::SopOrder => &[Order, Customer, Now],
            Context::Route | Context::SopReturn => &[Order, Customer, Location, Now],
            Context::Constraint | Context::SopShipment => {
                &[Order, Customer, Shipment, Location, Carrier, Now]
            }
            Context::TableKey => Root::ALL,
            Context::Decide | Context::Constant => &[],
        }
    }

    /// How messages name this context ("in a promotion").
    pub fn describe(self) -> &'static str {
        match self {
            Context::Promotion => "a promotion",
            Context::Route => "a route",
            Context::Constraint => "a constraint",
            Context::Risk => "a risk rule",
            Context::Decide => "a decide block",
            Context::TableKey => "a table header",
            Context::Constant => "a constant (table value, pattern or attribute default)",
            Context::SopOrder => "an SOP on an order event",
            Context::SopShipment => "an SOP on a shipment event",
            Context::SopReturn => "an SOP on a return event",
        }
    }
}

/// SOP events and the context their conditions are checked in.
pub const EVENTS: &[(&str, Context)] = &[
    ("order.placed", Context::SopOrder),
    ("order.cancelled", Context::SopOrder),
    ("shipment.assigned", Context::SopShipment),
    ("shipment.shipped", Context::SopShipment),
    ("shipment.delivered", Context::SopShipment),
    ("return.received", Context::SopReturn),
];

pub const EVIDENCE: &[&str] = &["photo", "signature", "scan", "temperature"];
pub const LIMIT_PERIODS: &[&str] = &["order", "day", "week", "month", "campaign"];
pub const CANDIDATE_KINDS: &[&str] = &["warehouse", "front_warehouse", "store", "pickup"];
pub const DECISIONS: &[&str] = &["accept", "review", "reject"];
pub const ATTRIBUTE_ENTITIES: &[&str] = &[
    "order", "item", "customer", "location", "shipment", "carrier",
];

fn builtin(name: &str, ty: Type, doc: &'static str) -> FieldDef {
    FieldDef {
        name: name.to_string(),
        ty,
        origin: FieldOrigin::Builtin { doc },
    }
}

fn optional(ty: Type) -> Type {
    Type::Optional(Box::new(ty))
}

impl Schema {
    /// The schema every ruleset starts from.
    pub fn builtin() -> Schema {
        use Type::*;
        let q = Quantity;
        let order = vec![
            builtin("id", String, "the order number"),
            builtin(
                "channel",
                String,
                "sales channel: `tmall`, `jd`, `miniapp`, `livestream`, `store`, ...",
            ),
            builtin(
                "subtotal",
                Money,
                "sum of price × qty over all lines, before discounts",
            ),
            builtin("items", List(Box::new(Entity(ITEM))), "the order lines"),
            builtin("placed_at", Time, "when the order was placed"),
            builtin(
                "promised_at",
                optional(Time),
                "promised delivery time (delivery slot), if any",
            ),
            builtin(
                "address",
                String,
                "a key for the delivery address (for velocity rules)",
            ),
            builtin("city", String, "delivery city"),
            builtin(
                "pickup_store",
                optional(String),
                "the store the buyer picks up from (BOPIS), if any",
            ),
            builtin(
                "coupon",
                optional(String),
                "the coupon code the buyer entered, if any",
            ),
            builtin(
                "session",
                optional(String),
                "the live-stream session the order came from, if any",
            ),
            builtin(
                "presale",
                Bool,
                "whether the order is a presale (deposit) order",
            ),
        ];
        let item = vec![
            builtin("sku", String, "stock-keeping unit"),
            builtin("category", String, "merchant category"),
            builtin("qty", Int, "units ordered"),
            builtin("price", Money, "unit price before discounts"),
            builtin("subtotal", Money, "price × qty"),
            builtin("weight", q(Dimension::Mass), "weight of one unit"),
            builtin("cold_chain", Bool, "needs cold-chain handling"),
            builtin("hazmat", Bool, "a dangerous good of any class"),
        ];
        let customer = vec![
            builtin("id", String, "customer id"),
            builtin("device", optional(String), "device fingerprint, if known"),
            builtin("phone", optional(String), "phone number key, if known"),
            builtin(
                "account_age",
                q(Dimension::Duration),
                "time since the account was created",
            ),
            builtin("order_count", Int, "orders placed before this one"),
        ];
        let location = vec![
            builtin("id", String, "location code"),
            builtin(
                "kind",
                Enum(LOCATION_KIND),
                "`warehouse`, `front_warehouse` or `store`",
            ),
            builtin(
                "distance",
                q(Dimension::Distance),
                "distance to the delivery address",
            ),
            builtin(
                "distance_km",
                Decimal,
                "the same distance as a number of km, for scores",
            ),
            builtin(
                "eta",
                q(Dimension::Duration),
                "estimated time to deliver from here",
            ),
            builtin(
                "eta_hours",
                Decimal,
                "the same estimate as a number of hours, for scores",
            ),
            builtin(
                "margin_pct",
                Decimal,
                "gross margin of fulfilling from here, in percent points",
            ),
            builtin(
                "cost_coefficient",
                Decimal,
                "relative handling cost (store labour, packaging)",
            ),
            builtin(
                "stock_turnover",
                Decimal,
                "days of cover of the ordered SKUs here",
            ),
            builtin("cold_chain", Bool, "has cold-chain storage"),
            builtin(
                "hazmat_certified",
                Bool,
                "certified to store and ship dangerous goods",
            ),
            builtin("pickup", Bool, "accepts buy-online-pick-up-in-store orders"),
        ];
        let shipment = vec![
            builtin(
                "items",
                List(Box::new(Entity(ITEM))),
                "the lines in this shipment",
            ),
            builtin(
                "mode",
                Enum(MODE),
                "carrier mode: `ground`, `air`, `sea` or `local`",
            ),
            builtin("weight", q(Dimension::Mass), "total weight"),
        ];
        let carrier = vec![
            builtin("id", String, "carrier code"),
            builtin("mode", Enum(MODE), "carrier mode"),
            builtin("cold_chain", Bool, "can carry cold-chain goods"),
            builtin("hazmat", Bool, "licensed for dangerous goods"),
        ];
        Schema {
            entities: vec![
                EntityDef {
                    name: "order",
                    fields: order,
                },
                EntityDef {
                    name: "item",
                    fields: item,
                },
                EntityDef {
                    name: "customer",
                    fields: customer,
                },
                EntityDef {
                    name: "location",
                    fields: location,
                },
                EntityDef {
                    name: "shipment",
                    fields: shipment,
                },
                EntityDef {
                    name: "carrier",
                    fields: carrier,
                },
            ],
            enums: vec![
                EnumDef {
                    name: "location kind".to_string(),
                    variants: LOCATION_KINDS.iter().map(|s| s.to_string()).collect(),
                },
                EnumDef {
                    name: "carrier mode".to_string(),
                    variants: MODES.iter().map(|s| s.to_string()).collect(),
                },
            ],
        }
    }

    pub fn entity(&self, id: EntityId) -> Option<&EntityDef> {
        self.entities.get(id)
    }

    pub fn entity_by_name(&self, name: &str) -> Option<EntityId> {
        self.entities.iter().position(|e| e.name == name)
    }

    pub fn enum_def(&self, id: EnumId) -> Option<&EnumDef> {
        self.enums.get(id)
    }

    /// Renders a type for a message.
    pub fn type_name(&self, ty: &Type) -> String {
        let enum_names = |id: EnumId| {
            self.enum_def(id)
                .map_or_else(|| "enum".to_string(), |e| format!("enum {}", e.name))
        };
        let entity_names = |id: EntityId| self.entity(id).map_or("fact", |e| e.name).to_string();
        crate::types::TypeDisplay {
            ty,
            enum_names: &enum_names,
            entity_names: &entity_names,
        }
        .to_string()
    }
}
