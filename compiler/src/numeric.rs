//! Exact fixed-point kernels shared by the reference interpreter and (step for step) by
//! the WebAssembly code generator, so both engines agree to the last digit and on
//! exactly which inputs overflow.
//!
//! Values are `i64`. Decimal, percent and quantities are millionths; money is minor
//! units. Rounding is half away from zero (四舍五入). Every kernel returns `None` on
//! overflow or division by zero; the engines turn that into an evaluation error.

/// The fixed-point scale: six fractional digits.
pub const SCALE: i64 = 1_000_000;

/// The encoding of an absent optional value.
pub const ABSENT: i64 = i64::MIN;

/// `a / d` rounded half away from zero (`d` > 0).
pub fn div_round(a: i64, d: i64) -> Option<i64> {
    if d <= 0 {
        return None;
    }
    let q = a / d;
    let r = a % d;
    // |r| >= d - |r|  ⇔  2|r| >= d, written without overflow.
    let r_abs = r.checked_abs()?;
    if r_abs >= d - r_abs {
        if a < 0 {
            q.checked_sub(1)
        } else {
            q.checked_add(1)
        }
    } else {
        Some(q)
    }
}

/// `a × b ÷ SCALE`, rounded: the product of two millionths-scaled values (or of money
/// and a percent, or money and a decimal), without 128-bit arithmetic.
///
/// Splitting `a = ah·S + al` and `b = bh·S + bl` gives
/// `a·b/S = ah·b + al·bh + al·bl/S`; all three terms share the sign of `a·b` (Rust and
/// WebAssembly both truncate towards zero, so `al` has the sign of `a` and `bl` that of
/// `b`), so rounding the last term rounds the whole.
pub fn mul_scaled(a: i64, b: i64) -> Option<i64> {
    let (ah, al) = (a / SCALE, a % SCALE);
    let (bh, bl) = (b / SCALE, b % SCALE);
    let first = ah.checked_mul(b)?;
    let second = al.checked_mul(bh)?;
    let third = div_round(al.checked_mul(bl)?, SCALE)?;
    first.checked_add(second)?.checked_add(third)
}

/// `a × SCALE ÷ b`, rounded: the quotient of two scaled values as a scaled value.
/// Long division, one decimal digit at a time, so no intermediate exceeds `10·|b|`.
pub fn div_scaled(a: i64, b: i64) -> Option<i64> {
    if b == 0 {
        return None;
    }
    let negative = (a < 0) != (b < 0);
    let a = a.checked_abs()?;
    let b = b.checked_abs()?;
    let mut quotient = a / b;
    let mut remainder = a % b;
    for _ in 0..6 {
        remainder = remainder.checked_mul(10)?;
        quotient = quotient.checked_mul(10)?.checked_add(remainder / b)?;
        remainder %= b;
    }
    // Round half away from zero on the seventh digit.
    if remainder >= b - remainder {
        quotient = quotient.checked_add(1)?;
    }
    Some(if negative { -quotient } else { quotient })
}

/// `a ÷ b` for two whole numbers, as a scaled decimal (`7 / 2` is 3.5).
pub fn div_int_to_decimal(a: i64, b: i64) -> Option<i64> {
    div_scaled(a, b)
}

/// A whole number as a scaled decimal.
pub fn int_to_scaled(a: i64) -> Option<i64> {
    a.checked_mul(SCALE)
}

/// A scaled amount applied to money: `money × factor ÷ SCALE`, rounded to the minor
/// unit (money × percent, money × decimal).
pub fn money_times_scaled(money: i64, factor: i64) -> Option<i64> {
    mul_scaled(money, factor)
}

/// Money ÷ a scaled number, rounded to the minor unit.
pub fn money_div_scaled(money: i64, divisor: i64) -> Option<i64> {
    // money / (d / S) = money · S / d
    div_scaled(money, divisor)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(div_round(5, 2), Some(3));
        assert_eq!(div_round(-5, 2), Some(-3));
        assert_eq!(div_round(4, 3), Some(1));
        assert_eq!(div_round(-4, 3), Some(-1));
        assert_eq!(div_round(7, 0), None);
    }

    #[test]
    fn scaled_products() {
        // 1.5 × 2.5 = 3.75
        assert_eq!(mul_scaled(1_500_000, 2_500_000), Some(3_750_000));
        // ¥320.00 × 10% = ¥32.00
        assert_eq!(money_times_scaled(32_000, 100_000), Some(3_200));
        // ¥0.05 × 50% = ¥0.025 → ¥0.03
        assert_eq!(money_times_scaled(5, 500_000), Some(3));
        assert_eq!(money_times_scaled(-5, 500_000), Some(-3));
        assert_eq!(mul_scaled(i64::MAX, 2 * SCALE), None);
    }

    #[test]
    fn scaled_quotients() {
        assert_eq!(div_int_to_decimal(7, 2), Some(3_500_000));
        assert_eq!(div_int_to_decimal(1, 3), Some(333_333));
        assert_eq!(div_int_to_decimal(2, 3), Some(666_667));
        assert_eq!(div_int_to_decimal(-2, 3), Some(-666_667));
        assert_eq!(div_scaled(1, 0), None);
        // ¥10.00 ÷ 3 = ¥3.33
        assert_eq!(money_div_scaled(1_000, 3 * SCALE), Some(333));
    }

    proptest! {
        #[test]
        fn mul_scaled_matches_wide_arithmetic(a in -10_000_000_000_000i64..10_000_000_000_000, b in -10_000_000_000_000i64..10_000_000_000_000) {
            let exact = i128::from(a) * i128::from(b);
            let s = i128::from(SCALE);
            let q = exact / s;
            let r = exact % s;
            let rounded = if r.abs() * 2 >= s { q + exact.signum() } else { q };
            match mul_scaled(a, b) {
                Some(v) => prop_assert_eq!(i128::from(v), rounded),
                None => prop_assert!(rounded > i128::from(i64::MAX) || rounded < i128::from(i64::MIN) || (i128::from(a / SCALE) * i128::from(b)).abs() > i128::from(i64::MAX)),
            }
        }

        #[test]
        fn div_scaled_matches_wide_arithmetic(a in -10_000_000_000_000i64..10_000_000_000_000, b in -10_000_000_000_000i64..10_000_000_000_000) {
            prop_assume!(b != 0);
            let num = i128::from(a) * i128::from(SCALE);
            let d = i128::from(b);
            let q = num / d;
            let r = num % d;
            let rounded = if r.abs() * 2 >= d.abs() { q + (num.signum() * d.signum()) } else { q };
            if let Some(v) = div_scaled(a, b) {
                prop_assert_eq!(i128::from(v), rounded);
            }
        }
    }
}
