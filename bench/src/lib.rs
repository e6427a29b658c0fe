//! The engine benchmark of issue #3: one beauty merchant's ruleset (`fixtures/beauty40.weir`,
//! 47 rules over every hook) and one 5-line order, decided by
//!
//! - weir's compiled WebAssembly (through `weir-runtime`) and its reference interpreter,
//! - a hand-written Rust function ([`native`]), the floor,
//! - the same policy in Rego (`fixtures/beauty40.rego`, run by `regorus`) and as a ZEN
//!   decision graph (`fixtures/beauty40.jdm.json`, run by `zen-engine`) — the
//!   [`peers`] module, behind the `peers` feature because both are heavy to build.
//!
//! Every engine's result is reduced to a [`Summary`] (the decisions a host acts on), so
//! they can be compared exactly. The fixtures and the agreement of native Rust with the
//! interpreter are unit-tested in ordinary `cargo test`; the criterion bench
//! (`cargo bench -p weir-bench --features peers`, `benches/engines.rs`) measures them.

pub mod generate;
pub mod json;
pub mod native;
#[cfg(feature = "peers")]
pub mod peers;
pub mod scenario;
pub mod warm;
pub mod weir;

use std::fmt;

/// The benchmark ruleset.
pub const RULESET: &str = include_str!("../fixtures/beauty40.weir");
/// The same policy in Rego (package `beauty40`, rule `decision`).
pub const REGO: &str = include_str!("../fixtures/beauty40.rego");
/// The same policy as a JDM decision graph for zen-engine.
pub const JDM: &str = include_str!("../fixtures/beauty40.jdm.json");

/// Anything that stops the benchmark's set-up: a fixture that does not check, compile,
/// load or decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchError(pub String);

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

/// `BenchError` from anything displayable, with context.
pub fn err(context: &str, error: impl fmt::Display) -> BenchError {
    BenchError(format!("{context}: {error}"))
}

/// The decisions one evaluation of the benchmark ruleset makes, engine-neutral: what a
/// host acts on. Lists whose order carries no meaning are sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Promotions that applied (sorted).
    pub applied: Vec<String>,
    /// Total discount, minor units (fen).
    pub discount: i64,
    /// Gifts by SKU, quantities merged (sorted by SKU).
    pub gifts: Vec<(String, i64)>,
    /// Points multiplier in millionths (3.0 is 3,000,000).
    pub points_multiplier: i64,
    /// The location the route ranks first, if any is eligible.
    pub route: Option<String>,
    /// Every eligible location (sorted).
    pub route_eligible: Vec<String>,
    /// Constraints that fired (sorted).
    pub constraints: Vec<String>,
    /// The shipment cannot ship (a block or conflicting requirements).
    pub blocked: bool,
    /// The mode it ships by (`ground`, `air`, `sea`, `local`), when it can ship.
    pub mode: Option<String>,
    /// Packaging requirements (sorted).
    pub packaging: Vec<String>,
    /// `accept`, `review` or `reject`.
    pub risk: String,
    pub risk_score: i64,
    /// SOPs triggered over the events some SOP listens to (sorted).
    pub sops: Vec<String>,
}

impl Summary {
    /// Sorts the lists whose order means nothing and merges gifts by SKU.
    pub fn normalised(mut self) -> Summary {
        self.applied.sort();
        self.route_eligible.sort();
        self.constraints.sort();
        self.packaging.sort();
        self.packaging.dedup();
        self.sops.sort();
        self.sops.dedup();
        let mut gifts: Vec<(String, i64)> = Vec::with_capacity(self.gifts.len());
        self.gifts.sort();
        for (sku, qty) in self.gifts {
            match gifts.last_mut() {
                Some((last, total)) if *last == sku => *total += qty,
                _ => gifts.push((sku, qty)),
            }
        }
        self.gifts = gifts;
        self
    }
}
