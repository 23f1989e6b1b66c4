//! Drives the feature state of every host of a dataset in lock-step on a virtual clock.
//!
//! [`FleetRun::step`] advances every host to time `t` (feeding samples and events with
//! timestamps ≤ `t`, in parallel over hosts), writes each host's feature row, and fills
//! the fleet signal from all rows of that moment. `train` and `eval` both drive it; the
//! live scorer uses the same [`HostFeatures`] and fleet functions.

use std::collections::HashMap;

use harbinger_core::{Event, HostId, SeriesSamples, TimestampMs};
use harbinger_dataset::Dataset;
use rayon::prelude::*;

use crate::features::{FeatureSchema, HostFeatures, MetricSpec, fleet_fill, fleet_stats};

/// The metrics of a dataset as a schema: every metric name present, sorted; a metric is
/// bounded when all its values lie in [0, 1].
pub fn schema_of(ds: &Dataset) -> FeatureSchema {
    let mut by: std::collections::BTreeMap<&str, bool> = std::collections::BTreeMap::new();
    for s in &ds.metrics {
        let bounded = s.values.iter().filter(|v| v.is_finite()).all(|v| (0.0..=1.0).contains(v));
        let any = s.values.iter().any(|v| v.is_finite());
        if !any {
            continue;
        }
        let e = by.entry(s.key.metric.as_str()).or_insert(true);
        *e = *e && bounded;
    }
    FeatureSchema { metrics: by.into_iter().map(|(n, b)| MetricSpec { name: n.to_string(), bounded: b }).collect() }
}

/// Highest criticality of the resources on each host.
pub fn criticality(ds: &Dataset) -> HashMap<HostId, u8> {
    let mut c: HashMap<HostId, u8> = HashMap::new();
    for r in &ds.resources {
        let e = c.entry(r.host.clone()).or_insert(0);
        *e = (*e).max(r.criticality.min(3));
    }
    c
}

/// The host an event concerns: its `host`, else the host of its `resource`.
pub fn event_host<'a>(e: &'a Event, resource_host: &'a HashMap<String, HostId>) -> Option<&'a HostId> {
    e.host.as_ref().or_else(|| e.resource.as_ref().and_then(|r| resource_host.get(r)))
}

struct HostRun<'a> {
    features: HostFeatures,
    series: Vec<(usize, &'a SeriesSamples, usize)>,
    events: Vec<&'a Event>,
    next_event: usize,
}

impl HostRun<'_> {
    fn advance(&mut self, t: TimestampMs) {
        // Events first: a deploy at `t` is known at `t`.
        while let Some(e) = self.events.get(self.next_event) {
            if e.ts > t {
                break;
            }
            self.features.event(e);
            self.next_event += 1;
        }
        for (m, s, cur) in &mut self.series {
            while *cur < s.timestamps.len() && s.timestamps[*cur] <= t {
                self.features.push(*m, s.timestamps[*cur], s.values[*cur]);
                *cur += 1;
            }
        }
    }
}

/// All hosts of a dataset on one virtual clock.
pub struct FleetRun<'a> {
    schema: &'a FeatureSchema,
    /// Host ids, in dataset order.
    pub hosts: Vec<HostId>,
    runs: Vec<HostRun<'a>>,
    rows: Vec<f64>,
    present: Vec<bool>,
}

impl<'a> FleetRun<'a> {
    /// Prepares a run over `ds` with `schema` (metrics not in the schema are ignored).
    pub fn new(ds: &'a Dataset, schema: &'a FeatureSchema) -> Self {
        let mut index: HashMap<&HostId, usize> = HashMap::new();
        let mut hosts: Vec<HostId> = Vec::new();
        for h in &ds.hosts {
            index.entry(&h.host).or_insert_with(|| {
                hosts.push(h.host.clone());
                hosts.len() - 1
            });
        }
        for s in &ds.metrics {
            index.entry(&s.key.host).or_insert_with(|| {
                hosts.push(s.key.host.clone());
                hosts.len() - 1
            });
        }
        let mut runs: Vec<HostRun<'a>> = hosts
            .iter()
            .map(|_| HostRun { features: HostFeatures::new(schema), series: Vec::new(), events: Vec::new(), next_event: 0 })
            .collect();
        for s in &ds.metrics {
            if let (Some(m), Some(&h)) = (schema.metric_index(s.key.metric.as_str()), index.get(&s.key.host)) {
                runs[h].series.push((m, s, 0));
            }
        }
        let resource_host: HashMap<String, HostId> = ds.resources.iter().map(|r| (r.id.clone(), r.host.clone())).collect();
        for e in &ds.events {
            if let Some(h) = event_host(e, &resource_host).and_then(|h| index.get(h)) {
                runs[*h].events.push(e);
            }
        }
        let k = schema.len();
        let n = hosts.len();
        FleetRun { schema, hosts, runs, rows: vec![0.0; n * k], present: vec![false; n] }
    }

    /// Advances every host to `t` and computes all feature rows at `t`. Hosts without
    /// fresh data are marked absent (see [`FleetRun::row`]).
    pub fn step(&mut self, t: TimestampMs) {
        let k = self.schema.len();
        let schema = self.schema;
        self.runs.par_iter_mut().zip(self.rows.par_chunks_mut(k)).zip(self.present.par_iter_mut()).for_each(
            |((run, row), present)| {
                run.advance(t);
                *present = run.features.has_data(t);
                if *present {
                    run.features.write(schema, t, row);
                } else {
                    row.fill(f64::NAN);
                }
            },
        );
        let stats = fleet_stats(
            schema,
            self.rows.chunks(k).zip(&self.present).filter(|(_, p)| **p).map(|(r, _)| r),
        );
        for (row, p) in self.rows.chunks_mut(k).zip(&self.present) {
            if *p {
                fleet_fill(schema, &stats, row);
            }
        }
    }

    /// Host `i`'s feature row at the last step, or `None` when it had no fresh data.
    pub fn row(&self, i: usize) -> Option<&[f64]> {
        let k = self.schema.len();
        self.present[i].then(|| &self.rows[i * k..(i + 1) * k])
    }
}

/// First and last sample time of a dataset (ignoring NaN rows).
pub fn data_span(ds: &Dataset) -> Option<(TimestampMs, TimestampMs)> {
    let mut lo = i64::MAX;
    let mut hi = i64::MIN;
    for s in &ds.metrics {
        if let (Some(a), Some(b)) = (s.timestamps.first(), s.timestamps.last()) {
            lo = lo.min(*a);
            hi = hi.max(*b);
        }
    }
    (lo <= hi).then_some((lo, hi))
}
