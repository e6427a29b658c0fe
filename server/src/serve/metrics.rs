//! `/metrics` in the Prometheus text format.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The matched route template (`/v1/orders/{id}`), never the raw path, so the
    /// label set stays small.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `placed`, `replayed`, or the problem slug of a refusal.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RulesetLabels {
    pub tenant: String,
    pub ruleset: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub orders: Family<OutcomeLabels, Counter>,
    pub activations: Family<RulesetLabels, Counter>,
    pub writer_batches: Gauge,
    pub writer_orders: Gauge,
    pub in_flight: Gauge,
    /// Serializes encoding (the registry is read-only after start; this only keeps one
    /// scrape from interleaving with another's buffer).
    encode: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("weir");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request, by route",
            latency.clone(),
        );
        let orders = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "orders",
            "Order creation attempts by outcome",
            orders.clone(),
        );
        let activations = Family::<RulesetLabels, Counter>::default();
        registry.register(
            "ruleset_activations",
            "Ruleset versions swapped in by this process (activations, rollbacks, reloads)",
            activations.clone(),
        );
        let writer_batches = Gauge::default();
        registry.register(
            "store_writer_batches",
            "Transactions committed by the order writer since start",
            writer_batches.clone(),
        );
        let writer_orders = Gauge::default();
        registry.register(
            "store_writer_orders",
            "Orders decided by the order writer since start",
            writer_orders.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "Requests being answered",
            in_flight.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            orders,
            activations,
            writer_batches,
            writer_orders,
            in_flight,
            encode: Mutex::new(()),
        }
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn order(&self, outcome: &str) {
        self.orders
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let _guard = self.encode.lock();
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Metrics {
    pub fn activated(&self, tenant: &str, ruleset: &str) {
        self.activations
            .get_or_create(&RulesetLabels {
                tenant: tenant.to_owned(),
                ruleset: ruleset.to_owned(),
            })
            .inc();
    }
}
