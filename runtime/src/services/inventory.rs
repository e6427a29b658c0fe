//! The inventory service: availability across locations for routing, and the
//! background sweeps that keep reservations, presale sessions and SOP deadlines moving.
//!
//! Placing, cancelling and shipping orders change stock through the store's order
//! operations (one transaction each); this service adds what spans locations or time.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{
    Capabilities, EscalatedStep, ExpirySweep, Location, PresaleTick, StockLevel, Store, StoreError,
};

/// A location that stocks the SKU, with what it can promise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    pub location: Location,
    pub stock: StockLevel,
    /// `on_hand − reserved − safety_stock`, at least 0.
    pub atp: i64,
}

/// What one round of the background sweeps did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    pub expired: ExpirySweep,
    pub presale: PresaleTick,
    pub escalated: Vec<EscalatedStep>,
}

impl SweepReport {
    pub fn is_empty(&self) -> bool {
        self.expired.released_holds.is_empty()
            && self.expired.cancelled_orders.is_empty()
            && self.presale.released_waves.is_empty()
            && self.presale.ended_sessions.is_empty()
            && self.escalated.is_empty()
    }
}

/// Rows each sweep handles per round; a backlog is worked off over several rounds.
const SWEEP_LIMIT: u32 = 500;

#[derive(Clone)]
pub struct InventoryService {
    store: Arc<dyn Store>,
}

impl InventoryService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        InventoryService { store }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Locations holding `sku` that have every capability set in `needs` (an unset flag
    /// does not filter), most promisable first, then by location id.
    pub async fn availability(
        &self,
        tenant: &str,
        sku: &str,
        needs: Capabilities,
    ) -> Result<Vec<Availability>, StoreError> {
        let stock = self.store.stock_by_sku(tenant, sku).await?;
        let locations = self.store.locations(tenant).await?;
        let mut out: Vec<Availability> = stock
            .into_iter()
            .filter_map(|s| {
                let location = locations.iter().find(|l| l.id == s.location_id)?.clone();
                let c = location.capabilities;
                let fits = (!needs.ships || c.ships)
                    && (!needs.pickup || c.pickup)
                    && (!needs.cold_chain || c.cold_chain)
                    && (!needs.hazmat_certified || c.hazmat_certified);
                fits.then(|| Availability {
                    atp: s.available_to_promise(),
                    location,
                    stock: s,
                })
            })
            .collect();
        out.sort_by(|a, b| {
            b.atp
                .cmp(&a.atp)
                .then_with(|| a.location.id.cmp(&b.location.id))
        });
        Ok(out)
    }

    /// One round of every sweep: expired reservations, presale waves and ends, overdue
    /// SOP steps.
    pub async fn sweep_once(&self) -> Result<SweepReport, StoreError> {
        Ok(SweepReport {
            expired: self.store.sweep_expired_reservations(SWEEP_LIMIT).await?,
            presale: self.store.presale_tick().await?,
            escalated: self.store.escalate_overdue_steps(SWEEP_LIMIT).await?,
        })
    }

    /// Runs the sweeps every `every` until the task is aborted. A failed round is
    /// retried at the next tick (every sweep is idempotent).
    pub fn spawn_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Errors (a database restart) are transient for a periodic job; the
                // next round picks up the same rows.
                let _ = service.sweep_once().await;
            }
        })
    }
}
