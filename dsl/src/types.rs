//! Types of weir values, units and currencies.

use crate::ast::Unit;
use std::fmt;

/// Kinds of physical quantity. Two quantities combine only when their dimensions match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Mass,
    Volume,
    Energy,
    Distance,
    Duration,
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Mass => "mass",
            Dimension::Volume => "volume",
            Dimension::Energy => "energy",
            Dimension::Distance => "distance",
            Dimension::Duration => "duration",
        }
    }

    /// The unit values of this dimension are stored in (as millionths).
    pub fn base_unit(self) -> Unit {
        match self {
            Dimension::Mass => Unit::Gram,
            Dimension::Volume => Unit::Millilitre,
            Dimension::Energy => Unit::WattHour,
            Dimension::Distance => Unit::Metre,
            Dimension::Duration => Unit::Second,
        }
    }

    /// Units of this dimension, for "write `500 ml`"-style help.
    pub fn units(self) -> Vec<&'static str> {
        Unit::ALL
            .iter()
            .filter(|unit| unit.dimension() == self)
            .map(|unit| unit.symbol())
            .collect()
    }

    pub fn from_type_name(name: &str) -> Option<Dimension> {
        Some(match name {
            "mass" => Dimension::Mass,
            "volume" => Dimension::Volume,
            "energy" => Dimension::Energy,
            "distance" => Dimension::Distance,
            "duration" => Dimension::Duration,
            _ => return None,
        })
    }
}

impl Unit {
    pub fn dimension(self) -> Dimension {
        match self {
            Unit::Gram | Unit::Kilogram => Dimension::Mass,
            Unit::Millilitre | Unit::Litre => Dimension::Volume,
            Unit::WattHour | Unit::KilowattHour => Dimension::Energy,
            Unit::Metre | Unit::Kilometre => Dimension::Distance,
            Unit::Second | Unit::Minute | Unit::Hour | Unit::Day => Dimension::Duration,
        }
    }

    /// How many base units one of this unit is.
    pub fn base_factor(self) -> i64 {
        match self {
            Unit::Gram | Unit::Millilitre | Unit::WattHour | Unit::Metre | Unit::Second => 1,
            Unit::Kilogram | Unit::Litre | Unit::KilowattHour | Unit::Kilometre => 1000,
            Unit::Minute => 60,
            Unit::Hour => 3600,
            Unit::Day => 86_400,
        }
    }
}

pub type EntityId = usize;
pub type EnumId = usize;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    Bool,
    Int,
    /// Exact decimal with six fractional digits.
    Decimal,
    /// Exact, in minor units of the ruleset's currency.
    Money,
    /// A fraction; `10%` is 0.1.
    Percent,
    String,
    /// An instant, to the second.
    Time,
    Quantity(Dimension),
    Enum(EnumId),
    List(Box<Type>),
    Entity(EntityId),
    /// A value that may be absent (`none`).
    Optional(Box<Type>),
    /// The type of the literal `none` before it meets an optional.
    Absent,
    /// The type of an expression that already produced a diagnostic; it matches
    /// everything so one mistake is reported once.
    Error,
}

impl Type {
    pub fn is_error(&self) -> bool {
        matches!(self, Type::Error)
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::Decimal)
    }

    /// Types whose values have an order (`<`, `>=`, `min`, `max`).
    pub fn is_ordered(&self) -> bool {
        matches!(
            self,
            Type::Int
                | Type::Decimal
                | Type::Money
                | Type::Percent
                | Type::Quantity(_)
                | Type::Time
        )
    }

    /// The type without an `Optional` wrapper.
    pub fn strip_optional(&self) -> &Type {
        match self {
            Type::Optional(inner) => inner,
            other => other,
        }
    }

    /// Whether a value of type `self` may stand where `expected` is required.
    pub fn assignable_to(&self, expected: &Type) -> bool {
        match (self, expected) {
            (Type::Error, _) | (_, Type::Error) => true,
            (Type::Int, Type::Decimal) => true,
            (Type::Absent, Type::Optional(_)) => true,
            (found, Type::Optional(inner)) => found.assignable_to(inner),
            (Type::List(found), Type::List(inner)) => found.assignable_to(inner),
            (found, expected) => found == expected,
        }
    }
}

/// A type printed for a message, with enum names resolved through the schema.
pub struct TypeDisplay<'a> {
    pub ty: &'a Type,
    pub enum_names: &'a dyn Fn(EnumId) -> String,
    pub entity_names: &'a dyn Fn(EntityId) -> String,
}

impl fmt::Display for TypeDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nested = |ty| TypeDisplay {
            ty,
            enum_names: self.enum_names,
            entity_names: self.entity_names,
        };
        match self.ty {
            Type::Bool => f.write_str("bool"),
            Type::Int => f.write_str("int"),
            Type::Decimal => f.write_str("decimal"),
            Type::Money => f.write_str("money"),
            Type::Percent => f.write_str("percent"),
            Type::String => f.write_str("string"),
            Type::Time => f.write_str("time"),
            Type::Quantity(d) => f.write_str(d.name()),
            Type::Enum(id) => write!(f, "{}", (self.enum_names)(*id)),
            Type::List(inner) => write!(f, "list<{}>", nested(inner)),
            Type::Entity(id) => write!(f, "{}", (self.entity_names)(*id)),
            Type::Optional(inner) => write!(f, "optional {}", nested(inner)),
            Type::Absent => f.write_str("none"),
            Type::Error => f.write_str("{unknown}"),
        }
    }
}

/// A currency weir knows: its ISO code, minor-unit digits and the symbols that write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Currency {
    pub code: &'static str,
    pub minor_digits: u32,
    pub symbols: &'static [&'static str],
}

pub const CURRENCIES: &[Currency] = &[
    Currency {
        code: "CNY",
        minor_digits: 2,
        symbols: &["¥", "￥"],
    },
    Currency {
        code: "JPY",
        minor_digits: 0,
        symbols: &["¥", "￥"],
    },
    Currency {
        code: "HKD",
        minor_digits: 2,
        symbols: &["$"],
    },
    Currency {
        code: "TWD",
        minor_digits: 2,
        symbols: &["$"],
    },
    Currency {
        code: "SGD",
        minor_digits: 2,
        symbols: &["$"],
    },
    Currency {
        code: "USD",
        minor_digits: 2,
        symbols: &["$"],
    },
    Currency {
        code: "KRW",
        minor_digits: 0,
        symbols: &["₩"],
    },
    Currency {
        code: "EUR",
        minor_digits: 2,
        symbols: &["€"],
    },
    Currency {
        code: "GBP",
        minor_digits: 2,
        symbols: &["£"],
    },
];

impl Currency {
    pub fn by_code(code: &str) -> Option<Currency> {
        CURRENCIES.iter().copied().find(|c| c.code == code)
    }

    pub fn main_symbol(self) -> &'static str {
        self.symbols.first().copied().unwrap_or("")
    }
}
