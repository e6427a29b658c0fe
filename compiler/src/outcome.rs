//! Raw output words → decisions: the combination semantics of docs/semantics.md.
//!
//! The guest (compiled module or interpreter) evaluates each rule; this module decides
//! what the results mean together — promotion order, exclusive groups, caps, budgets,
//! allocation across lines, constraint precedence, the risk decision. It is shared by
//! both engines, so they can only differ in rule evaluation, which the differential
//! tests compare word for word.

use crate::manifest::{ActionKind, Manifest};
use crate::numeric::{self, ABSENT};
use std::collections::HashMap;
use weir_dsl::checked::Decision;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the module's output does not match its manifest ({0})")]
pub struct DecodeError(pub &'static str);

struct Words<'a> {
    words: &'a [i64],
    at: usize,
}

impl Words<'_> {
    fn next(&mut self) -> Result<i64, DecodeError> {
        let word = self
            .words
            .get(self.at)
            .copied()
            .ok_or(DecodeError("output too short"))?;
        self.at += 1;
        Ok(word)
    }

    fn done(&self) -> Result<(), DecodeError> {
        if self.at == self.words.len() {
            Ok(())
        } else {
            Err(DecodeError("output too long"))
        }
    }
}

/// What one order line looks like to the combination step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// price × qty, minor units.
    pub subtotal: i64,
    pub qty: i64,
}

/// Consumption so far, as the host knows it.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub budget_used: HashMap<String, i64>,
    pub limit_used: HashMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip<'m> {
    /// Its `when` did not hold.
    NotEligible,
    LimitReached,
    BudgetExhausted,
    /// Another promotion of its exclusive group applied first.
    ExcludedBy(&'m str),
}

impl Skip<'_> {
    /// A stable, machine-readable code for the reason (decision records, APIs).
    pub fn code(&self) -> &'static str {
        match self {
            Skip::NotEligible => "not_eligible",
            Skip::LimitReached => "limit_reached",
            Skip::BudgetExhausted => "budget_exhausted",
            Skip::ExcludedBy(_) => "excluded_by",
        }
    }
}

/// The reason in words, for people (`weir eval`).
impl std::fmt::Display for Skip<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::NotEligible => f.write_str("condition not met"),
            Skip::LimitReached => f.write_str("per-customer limit reached"),
            Skip::BudgetExhausted => f.write_str("budget exhausted"),
            Skip::ExcludedBy(other) => write!(f, "exclusive group: `{other}` applied"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied<'m> {
    pub name: &'m str,
    /// What it gave, minor units (after caps, budget and the never-below-zero rule).
    pub discount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumption<'m> {
    pub promotion: &'m str,
    pub uses: i64,
    pub budget: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PromotionOutcome<'m> {
    pub applied: Vec<Applied<'m>>,
    pub skipped: Vec<(&'m str, Skip<'m>)>,
    /// Final discount per order line; sums to `total_discount`.
    pub line_discounts: Vec<i64>,
    pub total_discount: i64,
    /// (SKU id, qty), merged by SKU, in first-applied order.
    pub gifts: Vec<(i64, i64)>,
    /// Scaled (1.0 is 1,000,000).
    pub points_multiplier: i64,
    pub consumption: Vec<Consumption<'m>>,
}

impl ActionKind {
    /// How many output words one action of this kind takes, for `lines` order lines.
    fn width(&self, lines: usize) -> usize {
        match self {
            ActionKind::DiscountOrder { .. } | ActionKind::Gift => 2,
            ActionKind::DiscountItems { .. } => lines.saturating_mul(2).saturating_add(1),
            ActionKind::PointsMultiplier => 1,
        }
    }
}

/// Where each promotion's action words start in the promotions hook's output, `None`
/// for a promotion whose `when` did not hold; checks the output's length against the
/// manifest once, so the combination below reads actions in place rather than copying
/// them out per promotion.
fn action_starts(
    words: &[i64],
    manifest: &Manifest,
    lines: usize,
) -> Result<Vec<Option<usize>>, DecodeError> {
    let mut starts = Vec::with_capacity(manifest.promotions.len());
    let mut at = 0usize;
    for meta in &manifest.promotions {
        let eligible = *words.get(at).ok_or(DecodeError("output too short"))?;
        at += 1;
        if eligible == 0 {
            starts.push(None);
            continue;
        }
        starts.push(Some(at));
        for kind in &meta.actions {
            at = at.saturating_add(kind.width(lines));
        }
    }
    match at.cmp(&words.len()) {
        std::cmp::Ordering::Greater => Err(DecodeError("output too short")),
        std::cmp::Ordering::Less => Err(DecodeError("output too long")),
        std::cmp::Ordering::Equal => Ok(starts),
    }
}

/// Combines the promotions hook's output.
pub fn promotions<'m>(
    words: &[i64],
    manifest: &'m Manifest,
    lines: &[Line],
    usage: &Usage,
) -> Result<PromotionOutcome<'m>, DecodeError> {
    let starts = action_starts(words, manifest, lines.len())?;

    let subtotal: i64 = lines
        .iter()
        .map(|l| l.subtotal)
        .fold(0, i64::saturating_add);
    let mut remaining: Vec<i64> = lines.iter().map(|l| l.subtotal.max(0)).collect();
    let promotions = manifest.promotions.len();
    // Every promotion ends up applied or skipped: room for all of them up front, so
    // neither list grows step by step.
    let mut out = PromotionOutcome {
        applied: Vec::with_capacity(promotions),
        skipped: Vec::with_capacity(promotions),
        line_discounts: vec![0; lines.len()],
        points_multiplier: numeric::SCALE,
        ..PromotionOutcome::default()
    };
    let mut order: Vec<usize> = (0..promotions).collect();
    order.sort_by_key(|i| std::cmp::Reverse(manifest.promotions.get(*i).map_or(0, |p| p.priority)));
    // (group, the promotion that took it): a ruleset has a handful of exclusive groups,
    // so a scan beats hashing.
    let mut exclusive_taken: Vec<(&str, &str)> = Vec::new();
    let mut best_multiplier: Option<i64> = None;
    // What the promotion being applied asks of each line (reused across promotions).
    let mut line_parts = vec![0i64; lines.len()];
    // `allocate_into`'s output and scratch, reused across promotions.
    let (mut shares, mut by_size) = (Vec::new(), Vec::new());
    for index in order {
        let (Some(meta), Some(start)) = (manifest.promotions.get(index), starts.get(index)) else {
            continue;
        };
        let name = meta.name.as_str();
        let Some(start) = *start else {
            out.skipped.push((name, Skip::NotEligible));
            continue;
        };
        if let Some((count, _)) = &meta.limit {
            if usage.limit_used.get(&meta.name).copied().unwrap_or(0) >= *count {
                out.skipped.push((name, Skip::LimitReached));
                continue;
            }
        }
        let budget_left = meta.budget.map(|budget| {
            budget.saturating_sub(usage.budget_used.get(&meta.name).copied().unwrap_or(0))
        });
        if budget_left.is_some_and(|left| left <= 0) {
            out.skipped.push((name, Skip::BudgetExhausted));
            continue;
        }
        if let (true, Some(group)) = (meta.exclusive, meta.group.as_deref()) {
            if let Some((_, first)) = exclusive_taken.iter().find(|(g, _)| *g == group) {
                out.skipped.push((name, Skip::ExcludedBy(first)));
                continue;
            }
            exclusive_taken.push((group, meta.name.as_str()));
        }

        // What the promotion asks for: per line, and for the order as a whole.
        line_parts.fill(0);
        let mut order_part: i64 = 0;
        let mut w = Words { words, at: start };
        for kind in &meta.actions {
            match kind {
                ActionKind::DiscountOrder { percent } => {
                    let (amount, cap) = (w.next()?, w.next()?);
                    let mut amount = if *percent {
                        numeric::money_times_scaled(subtotal, amount).unwrap_or(i64::MAX)
                    } else {
                        amount
                    };
                    if cap != ABSENT {
                        amount = amount.min(cap);
                    }
                    order_part = order_part.saturating_add(amount.max(0));
                }
                ActionKind::DiscountItems { percent } => {
                    let cap = w.next()?;
                    let mut cap_left = if cap == ABSENT { i64::MAX } else { cap.max(0) };
                    for (line, part) in lines.iter().zip(line_parts.iter_mut()) {
                        let (matched, amount) = (w.next()?, w.next()?);
                        if matched == 0 {
                            continue;
                        }
                        let raw = if *percent {
                            numeric::money_times_scaled(line.subtotal, amount).unwrap_or(i64::MAX)
                        } else {
                            amount.saturating_mul(line.qty)
                        };
                        let give = raw.clamp(0, line.subtotal.max(0)).min(cap_left);
                        cap_left -= give;
                        *part = part.saturating_add(give);
                    }
                }
                ActionKind::Gift => {
                    let (sku, qty) = (w.next()?, w.next()?);
                    match out.gifts.iter_mut().find(|(s, _)| *s == sku) {
                        Some((_, q)) => *q = q.saturating_add(qty),
                        None => out.gifts.push((sku, qty)),
                    }
                }
                ActionKind::PointsMultiplier => {
                    let multiplier = w.next()?;
                    best_multiplier =
                        Some(best_multiplier.map_or(multiplier, |b| b.max(multiplier)));
                }
            }
        }
        // The budget caps the whole promotion: the order part gives way first, then lines
        // from the last one back. Said the other way round, the budget goes to the lines
        // from the first one on and what is left of it to the order part, which needs no
        // total of the asks: a sum of them can pass the largest amount even when each
        // fits, and a saturated sum would let the promotion give more than its budget.
        if let Some(mut left) = budget_left {
            for part in line_parts.iter_mut() {
                *part = (*part).min(left);
                left -= *part;
            }
            order_part = order_part.min(left);
        }
        // Never below zero: each line gives at most what is left of it.
        let mut given: i64 = 0;
        for (i, part) in line_parts.iter().enumerate() {
            if let (Some(rem), Some(total)) = (remaining.get_mut(i), out.line_discounts.get_mut(i))
            {
                let give = (*part).min(*rem);
                *rem -= give;
                *total += give;
                given += give;
            }
        }
        let order_give = order_part.min(remaining.iter().sum());
        if order_give > 0 {
            allocate_into(order_give, &remaining, &mut shares, &mut by_size);
            for (i, share) in shares.iter().copied().enumerate() {
                if let (Some(rem), Some(total)) =
                    (remaining.get_mut(i), out.line_discounts.get_mut(i))
                {
                    *rem -= share;
                    *total += share;
                }
            }
        }
        given += order_give;
        out.total_discount += given;
        if meta.limit.is_some() || meta.budget.is_some() {
            out.consumption.push(Consumption {
                promotion: name,
                uses: i64::from(meta.limit.is_some()),
                budget: if meta.budget.is_some() { given } else { 0 },
            });
        }
        out.applied.push(Applied {
            name,
            discount: given,
        });
    }
    if let Some(best) = best_multiplier {
        out.points_multiplier = best;
    }
    Ok(out)
}

/// Spreads `amount` over lines in proportion to `capacity`, rounding shares down; the
/// remainder goes to the largest line, then the next largest, never past a line's
/// capacity. `amount` must not exceed the total capacity.
pub fn allocate(amount: i64, capacity: &[i64]) -> Vec<i64> {
    let (mut shares, mut by_size) = (Vec::new(), Vec::new());
    allocate_into(amount, capacity, &mut shares, &mut by_size);
    shares
}

/// [`allocate`] into `shares`, with `by_size` as scratch: the combination step keeps
/// both across an order's promotions rather than allocating two vectors per
/// order-level discount.
fn allocate_into(amount: i64, capacity: &[i64], shares: &mut Vec<i64>, by_size: &mut Vec<usize>) {
    let total: i128 = capacity.iter().map(|c| i128::from((*c).max(0))).sum();
    shares.clear();
    shares.resize(capacity.len(), 0);
    if amount <= 0 || total == 0 {
        return;
    }
    // The same floor in 64 bits whenever nothing overflows (every realistic order):
    // 128-bit division is a library call several times slower.
    let narrow_total = i64::try_from(total).ok();
    let mut given: i64 = 0;
    for (share, cap) in shares.iter_mut().zip(capacity) {
        let cap = (*cap).max(0);
        *share = match (amount.checked_mul(cap), narrow_total) {
            (Some(product), Some(total)) => product / total,
            _ => i64::try_from(i128::from(amount) * i128::from(cap) / total).unwrap_or(0),
        };
        given += *share;
    }
    let mut left = amount - given;
    by_size.clear();
    by_size.extend(0..capacity.len());
    // Largest capacity first; ties keep line order.
    by_size.sort_by_key(|i| std::cmp::Reverse(capacity.get(*i).copied().unwrap_or(0)));
    for &i in by_size.iter() {
        if left == 0 {
            break;
        }
        if let (Some(share), Some(cap)) = (shares.get_mut(i), capacity.get(i)) {
            let room = (*cap).max(0) - *share;
            let give = room.min(left);
            *share += give;
            left -= give;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOutcome {
    /// (candidate index, score) of eligible candidates, best first.
    pub ranking: Vec<(usize, i64)>,
    pub prefer_fewer_splits: bool,
}

pub fn route(
    words: &[i64],
    manifest: &Manifest,
    candidates: usize,
) -> Result<RouteOutcome, DecodeError> {
    let mut w = Words { words, at: 0 };
    let mut ranking = Vec::new();
    if manifest.route.is_some() {
        for index in 0..candidates {
            let eligible = w.next()?;
            let score = w.next()?;
            if eligible != 0 {
                ranking.push((index, score));
            }
        }
    }
    w.done()?;
    // Highest score first; ties keep input order (the sort is stable).
    ranking.sort_by_key(|(_, score)| std::cmp::Reverse(*score));
    Ok(RouteOutcome {
        ranking,
        prefer_fewer_splits: manifest
            .route
            .as_ref()
            .is_some_and(|r| r.prefer_fewer_splits),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConstraintOutcome<'m> {
    pub fired: Vec<&'m str>,
    pub blocked: Vec<&'m str>,
    pub forbidden_modes: Vec<u32>,
    pub required_mode: Option<u32>,
    pub packaging: Vec<&'m str>,
    /// Requirements that cannot be met together; each blocks the shipment.
    pub conflicts: Vec<String>,
    /// The mode the shipment goes by, or `None` when it cannot ship.
    pub mode: Option<u32>,
}

/// Mode preference when the shipment's own mode is forbidden: ground, local, air, sea.
const MODE_PREFERENCE: [u32; 4] = [0, 3, 1, 2];
const MODE_NAMES: [&str; 4] = ["ground", "air", "sea", "local"];

pub fn constraints<'m>(
    words: &[i64],
    manifest: &'m Manifest,
    shipment_mode: u32,
) -> Result<ConstraintOutcome<'m>, DecodeError> {
    let mut w = Words { words, at: 0 };
    let mut out = ConstraintOutcome::default();
    let mut required: Option<(u32, &str)> = None;
    for meta in &manifest.constraints {
        if w.next()? == 0 {
            continue;
        }
        out.fired.push(&meta.name);
        if let Some(reason) = &meta.block {
            out.blocked.push(reason);
        }
        for mode in &meta.forbid_modes {
            if !out.forbidden_modes.contains(mode) {
                out.forbidden_modes.push(*mode);
            }
        }
        for packaging in &meta.require_packaging {
            if !out.packaging.contains(&packaging.as_str()) {
                out.packaging.push(packaging);
            }
        }
        if let Some(mode) = meta.require_mode {
            match required {
                None => required = Some((mode, meta.name.as_str())),
                Some((first, first_name)) if first != mode => out.conflicts.push(format!(
                    "`{}` requires {} but `{first_name}` requires {}",
                    meta.name,
                    mode_name(mode),
                    mode_name(first)
                )),
                Some(_) => {}
            }
        }
    }
    w.done()?;
    if let Some((mode, name)) = required {
        if out.forbidden_modes.contains(&mode) {
            out.conflicts.push(format!(
                "`{name}` requires {} but it is forbidden",
                mode_name(mode)
            ));
        }
        out.required_mode = Some(mode);
    }
    out.mode = if !out.blocked.is_empty() || !out.conflicts.is_empty() {
        None
    } else if let Some(mode) = out.required_mode {
        Some(mode)
    } else if !out.forbidden_modes.contains(&shipment_mode) {
        Some(shipment_mode)
    } else {
        MODE_PREFERENCE
            .into_iter()
            .find(|m| !out.forbidden_modes.contains(m))
    };
    Ok(out)
}

pub fn mode_name(mode: u32) -> &'static str {
    MODE_NAMES.get(mode as usize).copied().unwrap_or("unknown")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskOutcome<'m> {
    pub decision: Decision,
    pub score: i64,
    /// Rules that fired, in evaluation order, with the points they added.
    pub fired: Vec<(&'m str, i64)>,
    pub reasons: Vec<&'m str>,
}

pub fn risk<'m>(words: &[i64], manifest: &'m Manifest) -> Result<RiskOutcome<'m>, DecodeError> {
    let mut w = Words { words, at: 0 };
    let evaluated = usize::try_from(w.next()?).map_err(|_| DecodeError("negative rule count"))?;
    if evaluated > manifest.risks.len() {
        return Err(DecodeError("more risk rules than the manifest has"));
    }
    let mut fired = Vec::new();
    let mut reasons = Vec::new();
    let mut review = false;
    let mut rejected = false;
    for meta in manifest.risks.iter().take(evaluated) {
        let hit = w.next()? != 0;
        let points = w.next()?;
        if !hit {
            continue;
        }
        fired.push((meta.name.as_str(), points));
        if let Some(reason) = &meta.reason {
            reasons.push(reason.as_str());
        }
        if let Some(reason) = &meta.review {
            review = true;
            reasons.push(reason);
        }
        if let Some(reason) = &meta.reject {
            rejected = true;
            reasons.push(reason);
        }
    }
    let score = w.next()?;
    let arm = w.next()?;
    w.done()?;
    let decided = match arm {
        -1 => Decision::Reject,
        -2 => Decision::Accept,
        i => *usize::try_from(i)
            .ok()
            .and_then(|i| manifest.decide.get(i))
            .ok_or(DecodeError("decide arm out of range"))?,
    };
    let decision = if rejected {
        Decision::Reject
    } else if review && decided == Decision::Accept {
        Decision::Review
    } else {
        decided
    };
    Ok(RiskOutcome {
        decision,
        score,
        fired,
        reasons,
    })
}

pub fn sop_triggers<'m>(
    words: &[i64],
    manifest: &'m Manifest,
) -> Result<Vec<&'m str>, DecodeError> {
    let mut w = Words { words, at: 0 };
    let mut fired = Vec::new();
    for meta in &manifest.sops {
        if w.next()? != 0 {
            fired.push(meta.name.as_str());
        }
    }
    w.done()?;
    Ok(fired)
}

#[cfg(test)]
mod tests {
    use super::{allocate, Skip};

    #[test]
    fn skip_reasons_have_a_code_for_records_and_words_for_people() {
        let cases = [
            (Skip::NotEligible, "not_eligible", "condition not met"),
            (
                Skip::LimitReached,
                "limit_reached",
                "per-customer limit reached",
            ),
            (
                Skip::BudgetExhausted,
                "budget_exhausted",
                "budget exhausted",
            ),
            (
                Skip::ExcludedBy("spend_599"),
                "excluded_by",
                "exclusive group: `spend_599` applied",
            ),
        ];
        for (skip, code, words) in cases {
            assert_eq!((skip.code(), skip.to_string().as_str()), (code, words));
        }
    }

    #[test]
    fn allocation_is_proportional_with_the_remainder_on_the_largest_line() {
        assert_eq!(allocate(100, &[100, 200, 700]), vec![10, 20, 70]);
        assert_eq!(allocate(10, &[100, 100, 101]), vec![3, 3, 4]);
        assert_eq!(allocate(2, &[1, 1, 1]), vec![1, 1, 0]);
        assert_eq!(allocate(3, &[1, 1, 1]), vec![1, 1, 1]);
        assert_eq!(allocate(0, &[5, 5]), vec![0, 0]);
        assert_eq!(allocate(5, &[0, 0]), vec![0, 0]);
    }

    /// The proportional shares before the remainder, in 128 bits throughout.
    fn floors_in_128_bits(amount: i64, capacity: &[i64]) -> Vec<i64> {
        let total: i128 = capacity.iter().map(|c| i128::from((*c).max(0))).sum();
        capacity
            .iter()
            .map(|c| {
                i64::try_from(i128::from(amount) * i128::from((*c).max(0)) / total).unwrap_or(0)
            })
            .collect()
    }

    #[test]
    fn allocation_takes_the_same_floors_in_64_and_128_bits() {
        let big = i64::MAX / 2;
        let cases: [(i64, &[i64]); 6] = [
            (100, &[100, 200, 700]),
            (99_999, &[33_333, 33_333, 33_334]),
            // amount × capacity overflows 64 bits: the 128-bit path.
            (big, &[big, 1]),
            (3_037_000_500, &[3_037_000_500, 7]),
            // The total overflows 64 bits.
            (5, &[i64::MAX, i64::MAX, 3]),
            (i64::MAX, &[i64::MAX, i64::MAX]),
        ];
        for (amount, capacity) in cases {
            let expected = floors_in_128_bits(amount, capacity);
            let total: i128 = capacity.iter().map(|c| i128::from(*c)).sum();
            let shares = allocate(amount, capacity);
            // Each share is its floor plus part of the remainder (fewer units than there
            // are lines), and no more than its line unless the amount exceeds the capacity.
            let lines = capacity.len() as i64;
            for ((share, floor), cap) in shares.iter().zip(&expected).zip(capacity) {
                assert!(
                    share >= floor && *share < floor.saturating_add(lines),
                    "{amount} {capacity:?}: {shares:?}"
                );
                if i128::from(amount) <= total {
                    assert!(share <= cap);
                }
            }
        }
    }

    #[test]
    fn allocation_never_exceeds_a_line() {
        let capacity = [7, 1, 1, 3];
        for amount in 0..=12 {
            let shares = allocate(amount, &capacity);
            assert_eq!(shares.iter().sum::<i64>(), amount);
            assert!(shares.iter().zip(&capacity).all(|(s, c)| s <= c));
        }
    }
}
