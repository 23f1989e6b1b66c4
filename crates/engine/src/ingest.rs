//! [`Ingest`]: the one ingest path behind HTTP (`/api/v1/write`, `/api/v1/events`) and
//! gRPC (`PushMetrics`, `PushEvents`). Transports decode and answer; this decides what is
//! kept, stores it, counts it, and feeds what was stored to the scorer and the engine.
//!
//! Both transports treat a host outside the inventory (with `http.strict_hosts`) alike:
//! its samples are refused as `unknown_host` and the rest of the batch is stored; an event
//! about it refuses the whole events request, naming it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use harbinger_core::{AppendReport, Event, HostId, RiskScorer, SampleBatch, StoreError, Stores};

use crate::engine::Engine;
use crate::telemetry::{ReasonLabel, SourceLabel, Telemetry};

/// What was done with a sample batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplesAccepted {
    /// The store's report (accepted, and refused by reason).
    pub report: AppendReport,
    /// Samples refused before the store, by reason (`unknown_host`, and the transport's
    /// own decode-level drops passed in).
    pub dropped: BTreeMap<&'static str, u64>,
}

/// Why events were refused.
#[derive(Debug, thiserror::Error)]
pub enum EventsRefused {
    /// An event names a host outside the inventory (strict hosts); nothing was stored.
    #[error("event {index}: unknown host {} (not in the inventory; the server runs with http.strict_hosts)", harbinger_core::ids::echo(.host.as_str()))]
    UnknownHost {
        /// Position of the event in the request, from 0.
        index: usize,
        /// The host.
        host: HostId,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The shared ingest path. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// The stores.
    pub stores: Stores,
    /// The live scorer, fed with what was stored.
    pub scorer: Option<Arc<dyn RiskScorer>>,
    /// The engine, given the events (triggers, snapshots).
    pub engine: Option<Engine>,
    /// Own metrics.
    pub telemetry: Arc<Telemetry>,
    /// When set, only these hosts are accepted.
    pub strict_hosts: Option<Arc<HashSet<HostId>>>,
}

impl Ingest {
    /// An ingest path without scorer, engine or host restriction.
    pub fn new(stores: Stores, telemetry: Arc<Telemetry>) -> Self {
        Ingest { stores, scorer: None, engine: None, telemetry, strict_hosts: None }
    }

    /// Stores `batch` from `source` (`remote_write`, `grpc`): series of unknown hosts
    /// are refused (strict hosts), the rest is appended; everything is counted (with the
    /// transport's `dropped`), and only the samples the store kept reach the scorer.
    ///
    /// # Errors
    /// The store failed; nothing of this batch is then known to be stored.
    pub async fn samples(
        &self,
        source: &'static str,
        batch: SampleBatch,
        dropped: BTreeMap<&'static str, u64>,
    ) -> Result<SamplesAccepted, StoreError> {
        let (accepted, batch) = self.store_samples(source, batch, dropped).await?;
        if let Some(scorer) = self.scorer.clone().filter(|_| !batch.series.is_empty()) {
            // Scorer work is CPU: off the runtime threads. A failed task only loses the feed.
            if let Err(e) = tokio::task::spawn_blocking(move || scorer.observe_samples(&batch)).await {
                tracing::error!(error = %e, "feeding samples to the scorer failed");
            }
        }
        Ok(accepted)
    }

    /// [`Ingest::samples`] up to the scorer: stores and counts `batch`, and returns what
    /// the store kept (what `samples` feeds the scorer) for a caller that feeds the scorer
    /// itself (replay, several ticks at a time).
    ///
    /// # Errors
    /// As [`Ingest::samples`].
    pub async fn store_samples(
        &self,
        source: &'static str,
        mut batch: SampleBatch,
        mut dropped: BTreeMap<&'static str, u64>,
    ) -> Result<(SamplesAccepted, SampleBatch), StoreError> {
        if let Some(known) = &self.strict_hosts {
            let before = batch.sample_count();
            batch.series.retain(|s| known.contains(&s.key.host));
            let n = (before - batch.sample_count()) as u64;
            if n > 0 {
                *dropped.entry("unknown_host").or_default() += n;
            }
        }
        let t = &self.telemetry;
        for (reason, n) in &dropped {
            t.samples_rejected.get_or_create(&ReasonLabel { reason }).inc_by(*n);
        }
        let report = self.stores.metrics.append(&batch).await?;
        t.samples_ingested.get_or_create(&SourceLabel { source }).inc_by(report.accepted);
        for (reason, n) in &report.rejected {
            t.samples_rejected.get_or_create(&ReasonLabel { reason: reason.as_str() }).inc_by(*n);
        }
        // Only what the store kept reaches the scorer: refused series grow no per-host state.
        report.retain_stored(&mut batch);
        Ok((SamplesAccepted { report, dropped }, batch))
    }

    /// The first event naming a host outside the inventory (strict hosts), if any.
    pub fn unknown_event_host<'a>(&self, events: &'a [Event]) -> Option<(usize, &'a HostId)> {
        let known = self.strict_hosts.as_ref()?;
        events.iter().enumerate().find_map(|(i, e)| e.host.as_ref().filter(|h| !known.contains(*h)).map(|h| (i, h)))
    }

    /// Stores events, counts them, and hands them to the engine (triggers, snapshots
    /// before changes) and the scorer.
    ///
    /// # Errors
    /// [`EventsRefused::UnknownHost`] (nothing stored) or a store failure.
    pub async fn events(&self, events: Vec<Event>) -> Result<u64, EventsRefused> {
        if let Some((index, host)) = self.unknown_event_host(&events) {
            self.telemetry.requests_rejected.get_or_create(&ReasonLabel { reason: "unknown_host" }).inc();
            return Err(EventsRefused::UnknownHost { index, host: host.clone() });
        }
        let n = self.stores.events.append_events(&events).await?;
        self.telemetry.events_ingested.inc_by(n);
        if let Some(engine) = &self.engine {
            engine.observe_events(&events).await;
        }
        if let Some(scorer) = self.scorer.clone()
            && let Err(e) = tokio::task::spawn_blocking(move || scorer.observe_events(&events)).await
        {
            tracing::error!(error = %e, "feeding events to the scorer failed");
        }
        Ok(n)
    }
}
