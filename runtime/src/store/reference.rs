//! A per-process cache of each tenant's reference data: locations, their attributes and
//! runtime lists. Every order reads all three and they change rarely, so reading them
//! from the database per order was half of the order pipeline's queries.
//!
//! Freshness (`docs/storage.md`, "Reference data cache"):
//! - a change made through this store empties the tenant's entry at once, so this
//!   process reads its own writes;
//! - on PostgreSQL every change also sends `NOTIFY` on [`REFERENCE_CHANNEL`] with the
//!   tenant as payload, and each store listens, so other processes drop their entry
//!   within milliseconds;
//! - every entry is also dropped after [`StoreConfig::reference_max_age_ms`]: the bound
//!   on staleness when a notification is lost (a dropped listener connection) or on
//!   SQLite, where another process writing the same file is not announced.
//!
//! A read that raced with a change never stores what it read: each tenant has a
//! generation, bumped by every invalidation, and a read's result is kept only if the
//! generation it started under is still current.
//!
//! [`StoreConfig::reference_max_age_ms`]: crate::store::StoreConfig::reference_max_age_ms

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The PostgreSQL channel on which a change to a tenant's locations, location
/// attributes or runtime lists is announced (payload: the tenant).
pub const REFERENCE_CHANNEL: &str = "weir_reference";

/// Values of one kind (say, locations) per tenant and name.
pub(crate) struct TtlCache<V> {
    max_age: Duration,
    tenants: Mutex<HashMap<String, TenantEntries<V>>>,
}

struct TenantEntries<V> {
    generation: u64,
    entries: HashMap<String, (Instant, Arc<V>)>,
}

/// Proof of which generation a read started under (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

impl<V> TtlCache<V> {
    pub(crate) fn new(max_age: Duration) -> Self {
        TtlCache {
            max_age,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TenantEntries<V>>> {
        // A panic while holding the lock cannot leave the map inconsistent (every
        // update is one insert or remove), so a poisoned lock is still usable.
        self.tenants.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached value, or a ticket to [`put`](Self::put) a fresh read under.
    pub(crate) fn get(&self, tenant: &str, name: &str) -> Result<Arc<V>, Ticket> {
        let mut tenants = self.lock();
        let entry = match tenants.get_mut(tenant) {
            Some(entry) => entry,
            None => tenants
                .entry(tenant.to_owned())
                .or_insert_with(|| TenantEntries {
                    generation: 0,
                    entries: HashMap::new(),
                }),
        };
        match entry.entries.get(name) {
            Some((at, value)) if at.elapsed() < self.max_age => Ok(Arc::clone(value)),
            _ => Err(Ticket(entry.generation)),
        }
    }

    /// The value cached for `name` however old it is (an expired copy is kept until it
    /// is replaced or the tenant's data changes): for revalidating rather than reading
    /// it again.
    pub(crate) fn stale(&self, tenant: &str, name: &str) -> Option<Arc<V>> {
        self.lock()
            .get(tenant)
            .and_then(|entry| entry.entries.get(name))
            .map(|(_, value)| Arc::clone(value))
    }

    /// Keeps `value` (read after [`get`](Self::get) gave `ticket`) unless the tenant's
    /// data changed since; returns it either way.
    pub(crate) fn put(&self, tenant: &str, name: &str, ticket: Ticket, value: V) -> Arc<V> {
        let value = Arc::new(value);
        if self.max_age.is_zero() {
            return value;
        }
        let mut tenants = self.lock();
        if let Some(entry) = tenants.get_mut(tenant) {
            if entry.generation == ticket.0 {
                entry
                    .entries
                    .insert(name.to_owned(), (Instant::now(), Arc::clone(&value)));
            }
        }
        value
    }

    /// Forgets everything cached for `tenant`; reads in flight will not store theirs.
    pub(crate) fn invalidate(&self, tenant: &str) {
        if let Some(entry) = self.lock().get_mut(tenant) {
            entry.generation = entry.generation.wrapping_add(1);
            entry.entries.clear();
        }
    }

    /// Forgets everything (a listener reconnected: announcements may have been missed).
    pub(crate) fn clear(&self) {
        for entry in self.lock().values_mut() {
            entry.generation = entry.generation.wrapping_add(1);
            entry.entries.clear();
        }
    }
}

/// The three caches a store keeps.
pub(crate) struct ReferenceCache {
    pub(crate) locations: TtlCache<Vec<crate::store::Location>>,
    pub(crate) attributes: TtlCache<crate::store::LocationAttributes>,
    pub(crate) lists: TtlCache<Option<Arc<crate::store::RuntimeList>>>,
    /// Held while a runtime list is read from the database, so that the orders that
    /// miss it together wait for one read instead of each reading every member.
    pub(crate) list_reads: tokio::sync::Mutex<()>,
    /// Closed when the cache is dropped, which stops its listener.
    on_drop: Mutex<Vec<tokio::sync::oneshot::Sender<()>>>,
}

impl ReferenceCache {
    pub(crate) fn new(max_age: Duration) -> Self {
        ReferenceCache {
            locations: TtlCache::new(max_age),
            attributes: TtlCache::new(max_age),
            lists: TtlCache::new(max_age),
            list_reads: tokio::sync::Mutex::new(()),
            on_drop: Mutex::new(Vec::new()),
        }
    }

    /// Resolves (with an error) once this cache is dropped.
    pub(crate) fn dropped(&self) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.on_drop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tx);
        rx
    }

    pub(crate) fn invalidate(&self, tenant: &str) {
        self.locations.invalidate(tenant);
        self.attributes.invalidate(tenant);
        self.lists.invalidate(tenant);
    }

    pub(crate) fn clear(&self) {
        self.locations.clear();
        self.attributes.clear();
        self.lists.clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_until_invalidated_or_too_old() {
        let cache: TtlCache<i32> = TtlCache::new(Duration::from_secs(60));
        let ticket = cache.get("t", "x").unwrap_err();
        cache.put("t", "x", ticket, 7);
        assert_eq!(*cache.get("t", "x").unwrap(), 7);
        assert!(cache.get("u", "x").is_err(), "tenants are apart");
        cache.invalidate("t");
        assert!(cache.get("t", "x").is_err());

        let old: TtlCache<i32> = TtlCache::new(Duration::from_millis(1));
        let ticket = old.get("t", "x").unwrap_err();
        old.put("t", "x", ticket, 7);
        std::thread::sleep(Duration::from_millis(5));
        assert!(old.get("t", "x").is_err(), "expired");
    }

    #[test]
    fn a_read_that_raced_with_a_change_is_not_kept() {
        let cache: TtlCache<i32> = TtlCache::new(Duration::from_secs(60));
        let ticket = cache.get("t", "x").unwrap_err();
        // A change commits while the read is in flight.
        cache.invalidate("t");
        assert_eq!(
            *cache.put("t", "x", ticket, 1),
            1,
            "the reader still gets its value"
        );
        assert!(cache.get("t", "x").is_err(), "but it is not cached");
        let ticket = cache.get("t", "x").unwrap_err();
        cache.clear();
        cache.put("t", "x", ticket, 1);
        assert!(cache.get("t", "x").is_err());
    }

    #[test]
    fn max_age_zero_caches_nothing() {
        let cache: TtlCache<i32> = TtlCache::new(Duration::ZERO);
        let ticket = cache.get("t", "x").unwrap_err();
        cache.put("t", "x", ticket, 1);
        assert!(cache.get("t", "x").is_err());
    }
}
