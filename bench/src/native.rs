//! The floor: beauty40's decisions written by hand in Rust, as a merchant's engineer
//! would hard-code them — straight-line conditions over the scenario's structs, no
//! interpretation, no encoding. It follows `docs/semantics.md` exactly (priority order,
//! exclusive groups, caps, budgets, never-below-zero per line and the allocation of
//! order-level discounts, constraint precedence, risk short-circuit), so it must agree
//! with weir on every input, which the unit tests check.

use crate::scenario::{Item, Kind, Mode, Scenario, Tier};
use crate::Summary;

const SCALE: i64 = 1_000_000;

/// `a × b ÷ 10^6`, rounded half away from zero: money × percent, decimal × decimal.
fn mul_scaled(a: i64, b: i64) -> i64 {
    let product = i128::from(a) * i128::from(b);
    let scale = i128::from(SCALE);
    let (q, r) = (product / scale, product % scale);
    let q = if 2 * r.abs() >= scale {
        q + product.signum()
    } else {
        q
    };
    i64::try_from(q).unwrap_or(i64::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Risk {
    Accept,
    Review,
    Reject,
}

/// What the native function decides; names are static, so deciding allocates only the
/// vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decisions {
    /// Promotions that applied, in application order.
    pub applied: Vec<&'static str>,
    pub discount: i64,
    /// Final discount per line.
    pub line_discounts: Vec<i64>,
    pub gifts: Vec<(&'static str, i64)>,
    pub points_multiplier: i64,
    /// Eligible candidates (indices into `Scenario::locations`), best first.
    pub ranking: Vec<(usize, i64)>,
    pub constraints: Vec<&'static str>,
    pub blocked: bool,
    pub mode: Option<Mode>,
    pub packaging: Vec<&'static str>,
    pub risk: Risk,
    pub risk_score: i64,
    pub sops: Vec<&'static str>,
}

impl Decisions {
    pub fn summary(&self, scenario: &Scenario) -> Summary {
        let id = |i: usize| scenario.locations.get(i).map(|l| l.id.clone());
        Summary {
            applied: self.applied.iter().map(|s| s.to_string()).collect(),
            discount: self.discount,
            gifts: self
                .gifts
                .iter()
                .map(|(s, q)| (s.to_string(), *q))
                .collect(),
            points_multiplier: self.points_multiplier,
            route: self.ranking.first().and_then(|(i, _)| id(*i)),
            route_eligible: self.ranking.iter().filter_map(|(i, _)| id(*i)).collect(),
            constraints: self.constraints.iter().map(|s| s.to_string()).collect(),
            blocked: self.blocked,
            mode: self.mode.map(|m| m.name().to_string()),
            packaging: self.packaging.iter().map(|s| s.to_string()).collect(),
            risk: match self.risk {
                Risk::Accept => "accept",
                Risk::Review => "review",
                Risk::Reject => "reject",
            }
            .to_string(),
            risk_score: self.risk_score,
            sops: self.sops.iter().map(|s| s.to_string()).collect(),
        }
        .normalised()
    }
}

/// Promotion state while promotions are applied in priority order.
struct Stack<'a> {
    items: &'a [Item],
    subtotal: i64,
    remaining: Vec<i64>,
    lines: Vec<i64>,
    parts: Vec<i64>,
    total: i64,
    applied: Vec<&'static str>,
    gifts: Vec<(&'static str, i64)>,
    points: Option<i64>,
}

impl Stack<'_> {
    /// Item discount by a percent (millionths) on matching lines, capped in total.
    fn items_percent(&mut self, percent: i64, cap: Option<i64>, matches: impl Fn(&Item) -> bool) {
        let mut cap_left = cap.unwrap_or(i64::MAX);
        for (item, part) in self.items.iter().zip(self.parts.iter_mut()) {
            if matches(item) {
                let line = item.subtotal();
                let give = mul_scaled(line, percent)
                    .clamp(0, line.max(0))
                    .min(cap_left);
                cap_left -= give;
                *part += give;
            }
        }
    }

    /// Item discount of `amount` per unit on matching lines.
    fn items_money(&mut self, amount: i64, matches: impl Fn(&Item) -> bool) {
        for (item, part) in self.items.iter().zip(self.parts.iter_mut()) {
            if matches(item) {
                let line = item.subtotal();
                *part += amount.saturating_mul(item.qty).clamp(0, line.max(0));
            }
        }
    }

    /// Applies what one promotion asked for (`order_part` plus `self.parts`): its budget
    /// first, then never below zero per line, then the order part spread over the lines.
    fn apply(&mut self, name: &'static str, order_part: i64, budget: Option<i64>) {
        let mut order_part = order_part.max(0);
        // The budget goes to the lines in order, the rest of it to the order part (the
        // order part gives way first, then the lines from the last one back).
        if let Some(mut left) = budget {
            for part in self.parts.iter_mut() {
                *part = (*part).min(left);
                left -= *part;
            }
            order_part = order_part.min(left);
        }
        let mut given = 0;
        for ((part, rem), line) in self
            .parts
            .iter_mut()
            .zip(self.remaining.iter_mut())
            .zip(self.lines.iter_mut())
        {
            let give = (*part).min(*rem);
            *rem -= give;
            *line += give;
            given += give;
            *part = 0;
        }
        let order_give = order_part.min(self.remaining.iter().sum());
        if order_give > 0 {
            allocate(order_give, &mut self.remaining, &mut self.lines);
        }
        self.total += given + order_give;
        self.applied.push(name);
    }

    fn gift(&mut self, sku: &'static str, qty: i64) {
        match self.gifts.iter_mut().find(|(s, _)| *s == sku) {
            Some((_, q)) => *q += qty,
            None => self.gifts.push((sku, qty)),
        }
    }

    fn points(&mut self, multiplier: i64) {
        self.points = Some(self.points.map_or(multiplier, |p| p.max(multiplier)));
    }
}

/// Spreads `amount` over the lines in proportion to what is left of each, shares
/// rounded down, the remainder to the largest lines first.
fn allocate(amount: i64, remaining: &mut [i64], lines: &mut [i64]) {
    let total: i128 = remaining.iter().map(|r| i128::from(*r)).sum();
    if total == 0 {
        return;
    }
    let capacity: Vec<i64> = remaining.to_vec();
    let mut given = 0;
    for ((rem, line), cap) in remaining.iter_mut().zip(lines.iter_mut()).zip(&capacity) {
        let share = i64::try_from(i128::from(amount) * i128::from(*cap) / total).unwrap_or(0);
        *rem -= share;
        *line += share;
        given += share;
    }
    let mut left = amount - given;
    let mut order: Vec<usize> = (0..capacity.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(capacity.get(*i).copied().unwrap_or(0)));
    for i in order {
        if left == 0 {
            break;
        }
        if let (Some(rem), Some(line)) = (remaining.get_mut(i), lines.get_mut(i)) {
            let give = (*rem).min(left);
            *rem -= give;
            *line += give;
            left -= give;
        }
    }
}

fn yuan(v: i64) -> i64 {
    v * 100
}

/// 2026-11-11T00:00:00+08:00 .. 2026-11-12T00:00:00+08:00
const DOUBLE11: (i64, i64) = (1_794_326_400, 1_794_412_800);
/// 2026-11-11T20:00:00+08:00 .. 22:00
const FLASH: (i64, i64) = (1_794_398_400, 1_794_405_600);

/// Decides the scenario by hand.
pub fn decide(s: &Scenario) -> Decisions {
    let order = &s.order;
    let customer = &s.customer;
    let items = order.items.as_slice();
    let subtotal = order.subtotal();
    let n = items.len();
    let lines: Vec<i64> = items.iter().map(Item::subtotal).collect();

    // Facts several rules share, computed once.
    let serum_qty: i64 = items
        .iter()
        .filter(|i| i.sku == "SERUM-30")
        .map(|i| i.qty)
        .sum();
    let skincare_lines = items.iter().filter(|i| i.category == "skincare").count();
    let has_fragrance = items.iter().any(|i| i.category == "fragrance");
    let has_tools = items.iter().any(|i| i.category == "tools");
    let gold_or_black = matches!(customer.tier, Tier::Gold | Tier::Black);
    let big_channel = matches!(order.channel.as_str(), "tmall" | "miniapp" | "livestream");
    let coupon = order.coupon.as_deref();

    // ---- promotions, in application order (priority, then declaration) ----
    let mut p = Stack {
        items,
        subtotal,
        remaining: lines.clone(),
        lines: vec![0; n],
        parts: vec![0; n],
        total: 0,
        applied: Vec::with_capacity(16),
        gifts: Vec::with_capacity(4),
        points: None,
    };
    // group threshold (exclusive)
    if big_channel && subtotal >= yuan(1500) {
        p.apply("spend_1500_save_200", yuan(200), Some(yuan(500_000)));
    } else if big_channel && subtotal >= yuan(899) {
        p.apply("spend_899_save_100", yuan(100), Some(yuan(300_000)));
    } else if subtotal >= yuan(299) {
        p.apply("spend_299_save_30", yuan(30), None);
    }
    // group coupon (exclusive)
    if coupon == Some("BEAUTY11") {
        let amount = mul_scaled(p.subtotal, 50_000).min(yuan(80));
        p.apply("coupon_beauty11", amount, None);
    } else if coupon == Some("WELCOME20") && customer.order_count == 0 {
        p.apply("coupon_welcome", yuan(20), None);
    }
    if gold_or_black {
        p.items_percent(100_000, Some(yuan(150)), |i| i.category == "skincare");
        p.apply("gold_skincare", 0, None);
    }
    if customer.tier == Tier::Black {
        p.items_percent(120_000, None, |i| i.category == "fragrance");
        p.apply("black_fragrance", 0, None);
    }
    if customer.tier != Tier::Basic {
        p.items_percent(50_000, None, |i| i.category == "makeup");
        p.apply("member_makeup", 0, None);
    }
    if s.now >= FLASH.0 && s.now < FLASH.1 {
        p.items_money(yuan(10), |i| i.sku == "LIPSTICK-7");
        p.apply("lipstick_flash", 0, None);
    }
    if serum_qty >= 2 {
        p.items_percent(150_000, Some(yuan(60)), |i| i.sku == "SERUM-30");
        p.apply("serum_duo", 0, None);
    }
    if order.channel == "miniapp" {
        p.items_money(yuan(50), |i| i.category == "tools");
        p.apply("device_miniapp", 0, None);
    }
    if has_fragrance && skincare_lines >= 2 {
        p.apply("fragrance_skincare_bundle", yuan(40), Some(yuan(100_000)));
    }
    if order.channel == "livestream" && order.session.is_some() {
        let amount = mul_scaled(subtotal, 30_000).min(yuan(100));
        p.apply("livestream_session", amount, None);
    }
    if order.channel == "jd" {
        p.apply("jd_plus_day", yuan(25), None);
    }
    if order.presale {
        p.apply("presale_deposit", yuan(50), None);
    }
    let tier_bonus = match customer.tier {
        Tier::Black if subtotal >= yuan(1000) => yuan(80),
        Tier::Gold if subtotal >= yuan(1500) => yuan(50),
        Tier::Gold if subtotal >= yuan(800) => yuan(20),
        Tier::Silver if subtotal >= yuan(1500) => yuan(20),
        _ => 0,
    };
    if tier_bonus > 0 {
        p.apply("tier_bonus_discount", tier_bonus, None);
    }
    if serum_qty >= 2 {
        p.gift("SAMPLE-SERUM-5ML", 2);
        p.apply("serum_sample_gift", 0, None);
    }
    if has_fragrance {
        p.gift("PERFUME-VIAL-2ML", 1);
        p.apply("fragrance_vial_gift", 0, None);
    }
    if gold_or_black && subtotal >= yuan(1000) {
        p.gift("VELVET-POUCH", 1);
        p.apply("vip_pouch_gift", 0, None);
    }
    if customer.order_count == 0 {
        p.gift("WELCOME-KIT", 1);
        p.apply("welcome_kit", 0, None);
    }
    if skincare_lines >= 2 {
        p.gift("SAMPLE-SERUM-5ML", 1);
        p.apply("skincare_set_gift", 0, None);
    }
    if has_tools && subtotal >= yuan(999) {
        p.gift("TRAVEL-CASE", 1);
        p.points(2 * SCALE);
        p.apply("device_travel_case", 0, None);
    }
    let member_points = match (customer.tier, order.channel.as_str()) {
        (Tier::Black, _) => 5,
        (Tier::Gold, _) => 3,
        (Tier::Silver, "store") => 2,
        _ => 1,
    };
    p.points(member_points * SCALE);
    p.apply("member_points", 0, None);
    if s.now >= DOUBLE11.0 && s.now < DOUBLE11.1 {
        p.points(2 * SCALE);
        p.apply("double11_points", 0, None);
    }

    // ---- route ----
    let any_flammable = items.iter().any(|i| i.flammable);
    let any_cold = items.iter().any(|i| i.cold_chain);
    let mut ranking: Vec<(usize, i64)> = Vec::with_capacity(s.locations.len());
    for (index, l) in s.locations.iter().enumerate() {
        let pickup = order.pickup_store.as_deref() == Some(l.id.as_str());
        let considered = l.kind == Kind::Warehouse
            || (l.kind == Kind::FrontWarehouse && l.distance_km <= 40 * SCALE)
            || (l.kind == Kind::Store && l.distance_km <= 15 * SCALE && order.channel != "tmall")
            || (pickup && order.pickup_store.is_some());
        let excluded = (l.kind == Kind::Store && any_flammable)
            || (any_cold && !l.cold_chain)
            || l.stock_turnover < SCALE;
        if considered && !excluded {
            let score = mul_scaled(-500_000, l.distance_km) - mul_scaled(2 * SCALE, l.eta_hours)
                + mul_scaled(300_000, l.margin_pct)
                - mul_scaled(SCALE, l.cost_coefficient)
                + mul_scaled(50_000, l.stock_turnover);
            ranking.push((index, score));
        }
    }
    ranking.sort_by_key(|(_, score)| std::cmp::Reverse(*score));

    // ---- constraints on the shipment (all lines) ----
    let mut constraints: Vec<&'static str> = Vec::with_capacity(8);
    let mut packaging: Vec<&'static str> = Vec::with_capacity(4);
    let mut forbid_air = false;
    let mut blocked = false;
    let mut required: Option<Mode> = None;
    if items.iter().any(|i| i.flammable && i.liquid_ml > 0) {
        constraints.push("flammable_liquids_no_air");
        forbid_air = true;
        packaging.push("sealed-bag");
    }
    if items.iter().any(|i| i.battery_wh > 100) {
        constraints.push("lithium_over_100wh");
        blocked = true;
    }
    if items.iter().any(|i| i.battery_wh > 0) {
        constraints.push("lithium_label");
        packaging.push("UN3481-label");
    }
    if items.iter().any(|i| i.aerosol) {
        constraints.push("aerosols_no_air");
        forbid_air = true;
    }
    if items.iter().any(|i| i.fragile) {
        constraints.push("fragile_glass");
        packaging.push("bubble-wrap");
    }
    if any_cold && !s.carrier.cold_chain {
        constraints.push("cold_chain_carrier");
        blocked = true;
    }
    if items.iter().any(|i| i.hazmat) && !s.ship_from.hazmat_certified {
        constraints.push("dangerous_goods_site");
        blocked = true;
    }
    if items.iter().map(|i| i.liquid_ml * i.qty).sum::<i64>() > 2000 {
        constraints.push("bulk_liquids_ground");
        required = Some(Mode::Ground);
    }
    let allowed = |m: Mode| !(forbid_air && m == Mode::Air);
    let conflict = required.is_some_and(|m| !allowed(m));
    let mode = if blocked || conflict {
        None
    } else if required.is_some() {
        required
    } else if allowed(s.shipment_mode) {
        Some(s.shipment_mode)
    } else {
        [Mode::Ground, Mode::Local, Mode::Air, Mode::Sea]
            .into_iter()
            .find(|m| allowed(*m))
    };

    // ---- risk, in declaration order; a reject stops ----
    let listed = |value: &Option<String>, list: &[String]| {
        value.as_ref().is_some_and(|v| list.iter().any(|x| x == v))
    };
    let c = &s.counters;
    let (risk, risk_score) = if listed(&customer.device, &s.blocked_devices) {
        (Risk::Reject, 0)
    } else {
        let mut review = listed(&customer.phone, &s.reseller_phones);
        let mut score = 0;
        if c.device_1h > 5 {
            score += 40;
        }
        if c.phone_1d > 10 {
            score += 30;
        }
        if c.address_1d > 8 {
            score += 25;
        }
        if customer.account_age_days < 7 && subtotal >= yuan(2000) {
            score += 35;
        }
        if customer.order_count == 0 && subtotal >= yuan(1500) {
            score += 20;
        }
        if order.coupon.is_some() && c.customer_1d > 3 {
            score += 20;
        }
        let fragrance_qty: i64 = items
            .iter()
            .filter(|i| i.category == "fragrance")
            .map(|i| i.qty)
            .sum();
        if fragrance_qty >= 5 {
            review = true;
        }
        if order.channel == "livestream" && order.presale && customer.order_count < 2 {
            score += 15;
        }
        let decided = if score >= 80 {
            Risk::Reject
        } else if score >= 40 {
            Risk::Review
        } else {
            Risk::Accept
        };
        let risk = if review && decided == Risk::Accept {
            Risk::Review
        } else {
            decided
        };
        (risk, score)
    };

    // ---- SOPs: order.placed, then shipment.assigned ----
    let mut sops: Vec<&'static str> = Vec::with_capacity(4);
    if gold_or_black && subtotal >= yuan(1000) {
        sops.push("vip_gift_wrap");
    }
    if order.presale {
        sops.push("presale_followup");
    }
    if s.ship_from.kind == Kind::Store && items.iter().any(|i| i.liquid_ml > 0) {
        sops.push("store_pick_liquids");
    }
    if items.iter().any(|i| i.flammable || i.battery_wh > 0) {
        sops.push("dangerous_goods_pack");
    }

    Decisions {
        applied: p.applied,
        discount: p.total,
        line_discounts: p.lines,
        gifts: p.gifts,
        points_multiplier: p.points.unwrap_or(SCALE),
        ranking,
        constraints,
        blocked: blocked || conflict,
        mode,
        packaging,
        risk,
        risk_score,
        sops,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::scenario::{order5, variants};
    use weir_compiler::evaluate::{evaluate, Interpreter};

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(mul_scaled(8_900, 50_000), 445);
        assert_eq!(mul_scaled(5, 500_000), 3);
        assert_eq!(mul_scaled(-5, 500_000), -3);
        assert_eq!(mul_scaled(-500_000, 35_000_000), -17_500_000);
    }

    #[test]
    fn the_benchmark_order_gets_the_expected_decisions() {
        let d = decide(&order5());
        assert_eq!(d.discount, 54_645);
        assert_eq!(d.line_discounts.iter().sum::<i64>(), d.discount);
        assert_eq!(d.points_multiplier, 3 * SCALE);
        assert_eq!(
            d.gifts,
            vec![
                ("SAMPLE-SERUM-5ML", 3),
                ("PERFUME-VIAL-2ML", 1),
                ("VELVET-POUCH", 1),
                ("TRAVEL-CASE", 1)
            ]
        );
        let s = d.summary(&order5());
        assert_eq!(s.route.as_deref(), Some("FW-SH-PD"));
        assert_eq!(s.mode.as_deref(), Some("ground"));
        assert_eq!(s.risk, "accept");
        assert_eq!(s.risk_score, 20);
        assert_eq!(s.sops, vec!["dangerous_goods_pack", "vip_gift_wrap"]);
    }

    /// The native function and the reference interpreter make the same decisions —
    /// including every line's discount — on the benchmark order and its variants.
    #[test]
    fn native_rust_agrees_with_the_weir_interpreter() {
        let loaded = crate::weir::load().unwrap();
        let interpreter = Interpreter {
            compiled: &loaded.compiled,
        };
        for (name, scenario) in variants() {
            let (facts, context) = crate::weir::facts(&scenario, &loaded).unwrap();
            let decisions = evaluate(
                &loaded.compiled,
                &loaded.ruleset,
                &facts,
                &context,
                &interpreter,
            )
            .unwrap();
            let native = decide(&scenario);
            assert_eq!(
                native.summary(&scenario),
                crate::weir::summary(&decisions, &scenario),
                "{name}"
            );
            let promotions = decisions.promotions.as_ref().unwrap();
            assert_eq!(native.line_discounts, promotions.line_discounts, "{name}");
            let ranking: Vec<(usize, i64)> = decisions.route.as_ref().unwrap().ranking.clone();
            assert_eq!(native.ranking, ranking, "{name}: route scores");
        }
    }

    #[test]
    fn the_variants_move_every_decision() {
        let summaries: Vec<Summary> = variants()
            .iter()
            .map(|(_, s)| decide(s).summary(s))
            .collect();
        let distinct = |f: &dyn Fn(&Summary) -> String| {
            let mut v: Vec<String> = summaries.iter().map(f).collect();
            v.sort();
            v.dedup();
            v.len()
        };
        assert!(distinct(&|s| s.discount.to_string()) >= 5);
        assert!(distinct(&|s| format!("{:?}", s.route)) >= 3);
        assert!(distinct(&|s| format!("{:?}", s.mode)) >= 3);
        assert_eq!(distinct(&|s| s.risk.clone()), 3);
        assert!(distinct(&|s| format!("{:?}", s.sops)) >= 3);
        assert!(summaries.iter().any(|s| s.blocked));
    }
}
