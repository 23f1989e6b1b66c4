//! harbinger's own metrics, exposed at `/metrics` in the OpenMetrics text format.
//!
//! Names follow `harbinger_<component>_<thing>_total`. Every metric is declared here.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// Label set: where samples came from.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// `remote_write` or `events`.
    pub source: &'static str,
}

/// Label set: why something was rejected.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Snake-case reason.
    pub reason: &'static str,
}

/// Label set: an HTTP route and its outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// The matched route, e.g. `/api/v1/write`.
    pub route: String,
    /// HTTP status code.
    pub status: u16,
}

/// Label set: a decision's kind (`shadow_planned`, `shadow_skipped`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The decision kind.
    pub kind: String,
}

/// Label set: an actuator and the outcome of an action.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// The actuator's name (`log`, ...).
    pub actuator: &'static str,
    /// `applied`, `already_applied`, `skipped`, `dry_run` or `failed`.
    pub outcome: &'static str,
}

/// Label set: one step of the actuator chain.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    /// The actuator's name (`redis`, `haproxy`, ...).
    pub actuator: &'static str,
    /// Its position in `[[actuators]]` (0-based).
    pub step: u64,
}

/// Label set: a host of the inventory.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabel {
    /// The host id.
    pub host: String,
}

/// Label set: an Alertmanager alert's status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabel {
    /// `firing`, `resolved` or `duplicate` (a firing alert already known).
    pub status: &'static str,
}

/// Every metric harbinger exports about itself.
#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    /// Samples stored, by source.
    pub samples_ingested: Family<SourceLabel, Counter>,
    /// Samples not stored, by reason (store rejections and decode-level drops).
    pub samples_rejected: Family<ReasonLabel, Counter>,
    /// Requests refused before any sample was read, by reason (corrupt_snappy, too_large, ...).
    pub requests_rejected: Family<ReasonLabel, Counter>,
    /// Events stored.
    pub events_ingested: Counter,
    /// Request latency by route and status.
    pub request_seconds: Family<RouteLabel, Histogram>,
    /// Series in the store (refreshed on scrape).
    pub store_series: Gauge,
    /// Samples held by the store (refreshed on scrape).
    pub store_samples: Gauge,
    /// Label sets in the remote-write series cache.
    pub series_cache_entries: Gauge,
    /// Bytes held by the remote-write series cache.
    pub series_cache_bytes: Gauge,
    /// Shadow decisions, by kind.
    pub decisions: Family<KindLabel, Counter>,
    /// Actions performed, by actuator and outcome.
    pub actions: Family<OutcomeLabel, Counter>,
    /// Live shadows (planned, provisioning, syncing or ready).
    pub shadows_live: Gauge,
    /// Alertmanager alerts received, by status.
    pub alerts_received: Family<AlertLabel, Counter>,
    /// Duration of an engine tick (risk step, plan, actions).
    pub engine_tick_seconds: Histogram,
    /// Hosts the watchdog declared down and failed over.
    pub failovers: Counter,
    /// From a primary's first failed health check to its failover done.
    pub failover_seconds: Histogram,
    /// 1 while an actuator's circuit is open (it kept failing; actions are skipped).
    pub circuit_open: Family<StepLabel, Gauge>,
    /// Times an actuator's circuit opened.
    pub circuit_opened: Family<StepLabel, Counter>,
    /// Each host's risk at the last engine tick.
    pub host_risk: Family<HostLabel, Gauge<f64, AtomicU64>>,
    /// Each host's failure probability within the model's horizon at the last tick.
    pub host_failure_probability: Family<HostLabel, Gauge<f64, AtomicU64>>,
    /// 1 while a host is in the alerting state.
    pub host_alerting: Family<HostLabel, Gauge>,
    /// Hosts exported in the three families above (removed when they leave the fleet).
    exported_hosts: Mutex<ExportedHosts>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("harbinger");
        let samples_ingested = Family::<SourceLabel, Counter>::default();
        registry.register("samples_ingested", "Samples accepted into the store", samples_ingested.clone());
        let samples_rejected = Family::<ReasonLabel, Counter>::default();
        registry.register("samples_rejected", "Samples not stored, by reason", samples_rejected.clone());
        let requests_rejected = Family::<ReasonLabel, Counter>::default();
        registry.register("http_requests_rejected", "Requests refused as a whole, by reason", requests_rejected.clone());
        let events_ingested = Counter::default();
        registry.register("events_ingested", "Events accepted into the store", events_ingested.clone());
        // 100 µs to ~13 s.
        let request_seconds = Family::<RouteLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0001, 2.0, 18))) as fn() -> Histogram,
        );
        registry.register("http_request_duration_seconds", "HTTP request latency", request_seconds.clone());
        let store_series = Gauge::default();
        registry.register("store_series", "Series in the store", store_series.clone());
        let store_samples = Gauge::default();
        registry.register("store_samples", "Samples held by the store", store_samples.clone());
        let series_cache_entries = Gauge::default();
        registry.register("remote_write_cache_entries", "Label sets in the remote-write series cache", series_cache_entries.clone());
        let series_cache_bytes = Gauge::default();
        registry.register("remote_write_cache_bytes", "Bytes held by the remote-write series cache (bounded)", series_cache_bytes.clone());
        let decisions = Family::<KindLabel, Counter>::default();
        registry.register("shadow_decisions", "Shadow decisions, by kind", decisions.clone());
        let actions = Family::<OutcomeLabel, Counter>::default();
        registry.register("actuator_actions", "Actions performed, by actuator and outcome", actions.clone());
        let shadows_live = Gauge::default();
        registry.register("shadows_live", "Live shadows (planned, provisioning, syncing or ready)", shadows_live.clone());
        let alerts_received = Family::<AlertLabel, Counter>::default();
        registry.register("alerts_received", "Alertmanager alerts received, by status", alerts_received.clone());
        // 100 µs to ~13 s.
        let engine_tick_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        registry.register("engine_tick_seconds", "Duration of an engine tick", engine_tick_seconds.clone());
        let failovers = Counter::default();
        registry.register("failovers", "Hosts the watchdog declared down and failed over", failovers.clone());
        let failover_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        registry.register("failover_seconds", "From a primary's first failed health check to its failover done", failover_seconds.clone());
        let circuit_open = Family::<StepLabel, Gauge>::default();
        registry.register("actuator_circuit_open", "1 while an actuator's circuit is open after failing repeatedly", circuit_open.clone());
        let circuit_opened = Family::<StepLabel, Counter>::default();
        registry.register("actuator_circuit_opened", "Times an actuator's circuit opened", circuit_opened.clone());
        let host_risk = Family::<HostLabel, Gauge<f64, AtomicU64>>::default();
        registry.register("host_risk", "Each host's risk at the last engine tick (0 to 1)", host_risk.clone());
        let host_failure_probability = Family::<HostLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "host_failure_probability",
            "Each host's failure probability within the model's horizon at the last engine tick",
            host_failure_probability.clone(),
        );
        let host_alerting = Family::<HostLabel, Gauge>::default();
        registry.register("host_alerting", "1 while a host is in the alerting state", host_alerting.clone());
        // Pre-create the reject reasons so they read 0 rather than being absent.
        for r in harbinger_core::RejectReason::ALL {
            drop(samples_rejected.get_or_create(&ReasonLabel { reason: r.as_str() }));
        }
        Self {
            registry,
            samples_ingested,
            samples_rejected,
            requests_rejected,
            events_ingested,
            request_seconds,
            store_series,
            store_samples,
            series_cache_entries,
            series_cache_bytes,
            decisions,
            actions,
            shadows_live,
            alerts_received,
            engine_tick_seconds,
            failovers,
            failover_seconds,
            circuit_open,
            circuit_opened,
            host_risk,
            host_failure_probability,
            host_alerting,
            exported_hosts: Mutex::new(ExportedHosts::default()),
        }
    }

    /// Sets the per-host gauges from the states a tick left: one series per host of the
    /// fleet (hosts that left it are removed, so the families stay bounded by the fleet).
    pub fn set_host_states<'a>(&self, states: impl IntoIterator<Item = &'a harbinger_core::HostState>) {
        let mut ex = self.exported_hosts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        ex.tick = ex.tick.wrapping_add(1);
        let tick = ex.tick;
        for s in states {
            // The gauges share their value with the family's series: setting a held handle
            // costs one lookup here instead of three label hashes and locks per host.
            let g = match ex.hosts.get_mut(s.host.as_str()) {
                Some(g) => g,
                None => {
                    let label = HostLabel { host: s.host.as_str().to_string() };
                    let g = HostGauges {
                        risk: self.host_risk.get_or_create(&label).clone(),
                        failure_probability: self.host_failure_probability.get_or_create(&label).clone(),
                        alerting: self.host_alerting.get_or_create(&label).clone(),
                        seen: tick,
                    };
                    ex.hosts.entry(label.host).or_insert(g)
                }
            };
            g.risk.set(s.risk);
            g.failure_probability.set(s.failure_probability);
            g.alerting.set(i64::from(s.alerting));
            g.seen = tick;
        }
        ex.hosts.retain(|host, g| {
            let keep = g.seen == tick;
            if !keep {
                let label = HostLabel { host: host.clone() };
                self.host_risk.remove(&label);
                self.host_failure_probability.remove(&label);
                self.host_alerting.remove(&label);
            }
            keep
        });
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _infallible = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The per-host series exported at the last tick, with handles on their gauges.
#[derive(Debug, Default)]
struct ExportedHosts {
    tick: u64,
    hosts: HashMap<String, HostGauges>,
}

#[derive(Debug)]
struct HostGauges {
    risk: Gauge<f64, AtomicU64>,
    failure_probability: Gauge<f64, AtomicU64>,
    alerting: Gauge,
    /// The last tick that listed this host.
    seen: u64,
}

#[cfg(test)]
mod host_gauge_tests {
    use super::*;

    fn state(host: &str, risk: f64, alerting: bool) -> harbinger_core::HostState {
        harbinger_core::HostState { host: host.into(), risk, failure_probability: risk / 2.0, imminence: 1.0, alerting, cleared_at: None }
    }

    #[test]
    fn host_gauges_follow_the_fleet_and_drop_hosts_that_left() {
        let t = Telemetry::new();
        t.set_host_states(&[state("h1", 0.9, true), state("h2", 0.1, false)]);
        let text = t.encode();
        assert!(text.contains("harbinger_host_risk{host=\"h1\"} 0.9"), "{text}");
        assert!(text.contains("harbinger_host_failure_probability{host=\"h2\"} 0.05"), "{text}");
        assert!(text.contains("harbinger_host_alerting{host=\"h1\"} 1"), "{text}");
        t.set_host_states(&[state("h2", 0.2, false)]);
        let text = t.encode();
        assert!(!text.contains("host=\"h1\""), "h1 left the fleet: {text}");
        assert!(text.contains("harbinger_host_risk{host=\"h2\"} 0.2"), "{text}");
        // A host that comes back is exported again, with its new values.
        t.set_host_states(&[state("h1", 0.4, false), state("h2", 0.3, true)]);
        let text = t.encode();
        assert!(text.contains("harbinger_host_risk{host=\"h1\"} 0.4"), "{text}");
        assert!(text.contains("harbinger_host_alerting{host=\"h1\"} 0"), "{text}");
        assert!(text.contains("harbinger_host_alerting{host=\"h2\"} 1"), "{text}");
        assert_eq!(text.matches("harbinger_host_risk{").count(), 2, "{text}");
    }
}
