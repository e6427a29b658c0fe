//! Literals → exact values: numbers, money in the ruleset currency, percents, quantities
//! with units, date-times. Shared by expressions and test inputs.

use crate::ast::Literal;
use crate::checked::Value;
use crate::diagnostic::{Code, Diagnostic};
use crate::span::Span;
use crate::types::{Currency, Type, CURRENCIES};

/// Parses `digits[.digits]` (underscores allowed, optional leading `-`) into an integer
/// scaled by 10^`scale_digits`. `None` when it has more fractional digits than the
/// scale allows or does not fit in 64 bits.
pub fn scaled(text: &str, scale_digits: u32) -> Result<i64, ScaledError> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let (whole, fraction) = cleaned.split_once('.').unwrap_or((&cleaned, ""));
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > scale_digits as usize {
        return Err(ScaledError::TooPrecise);
    }
    let whole: i64 = whole.parse().map_err(|_| ScaledError::TooLarge)?;
    let mut frac_value: i64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| ScaledError::TooLarge)?
    };
    for _ in fraction.len()..scale_digits as usize {
        frac_value = frac_value.checked_mul(10).ok_or(ScaledError::TooLarge)?;
    }
    let factor = 10_i64
        .checked_pow(scale_digits)
        .ok_or(ScaledError::TooLarge)?;
    let magnitude = whole
        .checked_mul(factor)
        .and_then(|w| w.checked_add(frac_value))
        .ok_or(ScaledError::TooLarge)?;
    Ok(if negative { -magnitude } else { magnitude })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaledError {
    TooPrecise,
    TooLarge,
}

/// The value and type of a literal. `currency` is the ruleset's.
pub fn literal_value(
    literal: &Literal,
    span: Span,
    currency: Currency,
) -> Result<(Value, Type), Diagnostic> {
    let number_error = |error: ScaledError, text: &str, what: &str, digits: u32| {
        let message = match error {
            ScaledError::TooLarge => format!("`{text}` is too large for {what}"),
            ScaledError::TooPrecise => {
                format!("`{text}` has more than {digits} digits after the point, the most {what} can hold")
            }
        };
        Diagnostic::new(Code::InvalidNumber, span, message)
    };
    Ok(match literal {
        Literal::Bool(b) => (Value::Bool(*b), Type::Bool),
        Literal::None => (Value::None, Type::Absent),
        Literal::Number(text) => {
            if text.contains('.') {
                let value = scaled(text, 6).map_err(|e| number_error(e, text, "a decimal", 6))?;
                (Value::Decimal(value), Type::Decimal)
            } else {
                let value =
                    scaled(text, 0).map_err(|e| number_error(e, text, "a whole number", 0))?;
                (Value::Int(value), Type::Int)
            }
        }
        Literal::Money { symbol, amount } => {
            if !currency.symbols.contains(&symbol.as_str()) {
                let others: Vec<&str> = CURRENCIES
                    .iter()
                    .filter(|c| c.symbols.contains(&symbol.as_str()))
                    .map(|c| c.code)
                    .collect();
                return Err(Diagnostic::new(
                    Code::CurrencyMismatch,
                    span,
                    format!(
                        "`{symbol}{amount}` is {} money, but this ruleset is in {}",
                        others.join("/"),
                        currency.code
                    ),
                )
                .with_help(format!("write `{}{amount}`", currency.main_symbol())));
            }
            let value = scaled(amount, currency.minor_digits).map_err(|e| {
                number_error(
                    e,
                    &format!("{symbol}{amount}"),
                    &format!("{} money", currency.code),
                    currency.minor_digits,
                )
            })?;
            (Value::Money(value), Type::Money)
        }
        Literal::Percent(text) => {
            // 12.5% is 0.125: six fractional digits of the fraction leave four for the percent.
            let value = scaled(text, 4)
                .map_err(|e| number_error(e, &format!("{text}%"), "a percent", 4))?;
            (Value::Percent(value), Type::Percent)
        }
        Literal::Quantity { amount, unit } => {
            let base = scaled(amount, 6).map_err(|e| number_error(e, amount, "a quantity", 6))?;
            let value = base
                .checked_mul(unit.base_factor())
                .ok_or_else(|| number_error(ScaledError::TooLarge, amount, "a quantity", 6))?;
            let dimension = unit.dimension();
            (Value::Quantity(value, dimension), Type::Quantity(dimension))
        }
        Literal::String(s) => (Value::String(s.clone()), Type::String),
        Literal::DateTime(text) => {
            match chrono::DateTime::parse_from_rfc3339(&with_seconds(text)) {
                Ok(instant) => (Value::Time(instant.timestamp()), Type::Time),
                Err(error) => {
                    return Err(Diagnostic::new(
                        Code::InvalidDateTime,
                        span,
                        format!("`{text}` is not a valid date-time: {error}"),
                    )
                    .with_help("write it like `2026-11-11T20:00:00+08:00`"))
                }
            }
        }
    })
}

/// RFC 3339 requires seconds; weir lets them be left out (`2026-11-11T20:00+08:00`).
fn with_seconds(text: &str) -> String {
    let Some(t) = text.find('T') else {
        return text.to_string();
    };
    let time = text.get(t + 1..).unwrap_or("");
    let offset_at = time.find(['Z', '+', '-']).unwrap_or(time.len());
    let clock = time.get(..offset_at).unwrap_or("");
    if clock.matches(':').count() == 1 {
        format!(
            "{}T{}:00{}",
            text.get(..t).unwrap_or(""),
            clock,
            time.get(offset_at..).unwrap_or("")
        )
    } else {
        text.to_string()
    }
}

/// The value a field has when a test (or the host) does not supply it.
pub fn zero_value(ty: &Type) -> Value {
    match ty {
        Type::Bool => Value::Bool(false),
        Type::Int => Value::Int(0),
        Type::Decimal => Value::Decimal(0),
        Type::Money => Value::Money(0),
        Type::Percent => Value::Percent(0),
        Type::String => Value::String(String::new()),
        Type::Time => Value::Time(0),
        Type::Quantity(d) => Value::Quantity(0, *d),
        Type::Enum(id) => Value::Enum(*id, 0),
        Type::List(_) => Value::List(Vec::new()),
        Type::Entity(id) => Value::Record(*id, Vec::new()),
        Type::Optional(_) | Type::Absent | Type::Error => Value::None,
    }
}
