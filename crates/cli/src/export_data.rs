//! `harbinger export --out DIR [--from T] [--to T]`: what the service recorded in its data
//! directory, written as a dataset directory (the contract format) for retraining and
//! replay.
//!
//! Offline: it opens the store the way `harbinger ingest` does, so a running `serve` (which
//! holds the store's lock) must be stopped first, or the directory copied while stopped.
//!
//! Written: every stored series' samples in `[from, to)`; `hosts.csv` and
//! `resources.json` from the inventory (hosts that only samples, events or failures name
//! are added with an empty zone and capacities 0); `events.jsonl` and `failures.csv` in
//! `[from, to)`; `decisions.jsonl`, the engine's decisions in `[from, to)` from
//! `<data_dir>/decisions.jsonl` when `serve` kept one (an extra file, which readers
//! ignore); `dataset.json`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use harbinger_config::Config;
use harbinger_core::{EventStore, FailureStore, Host, HostId, InventoryStore, MetricStore, StoreError};
use harbinger_dataset::{Dataset, DatasetMeta, MetricsFormat, write_dataset};
use harbinger_store::EmbeddedStore;

/// `export` flags.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Dataset directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Keep what happened at or after this time: RFC 3339, ms since epoch, now or
    /// now-DURATION [default: everything].
    #[arg(long)]
    pub from: Option<String>,
    /// Keep what happened before this time, same forms as --from [default: everything].
    #[arg(long)]
    pub to: Option<String>,
    /// Metrics file format: parquet or csv.
    #[arg(long, default_value = "parquet")]
    pub format: String,
}

/// What `export` wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportReport {
    /// Hosts in `hosts.csv`.
    pub hosts: usize,
    /// Of which added because only samples, events, resources or failures named them.
    pub hosts_added: usize,
    /// Resources in `resources.json`.
    pub resources: usize,
    /// Series in the metrics file.
    pub series: usize,
    /// Samples in the metrics file.
    pub samples: usize,
    /// Events in `events.jsonl`.
    pub events: usize,
    /// Failures in `failures.csv`.
    pub failures: usize,
    /// Decisions copied to `decisions.jsonl`.
    pub decisions: usize,
}

/// Runs `harbinger export`.
///
/// # Errors
/// Bad times or format, a missing data directory, a store held by a running `serve`,
/// store or write failures.
pub async fn run(cfg: &Config, a: &ExportArgs) -> anyhow::Result<()> {
    let now = crate::import::now_ms();
    let from = a.from.as_deref().map(|t| crate::import::parse_time(t, now)).transpose().context("--from")?.unwrap_or(i64::MIN);
    let to = a.to.as_deref().map(|t| crate::import::parse_time(t, now)).transpose().context("--to")?.unwrap_or(i64::MAX);
    if from >= to {
        bail!("--from must be before --to");
    }
    let format: MetricsFormat = a.format.parse().map_err(|e: String| anyhow::anyhow!("--format: {e}"))?;
    if !cfg.data_dir.is_dir() {
        bail!("no data directory at {} (set --data-dir or data_dir)", cfg.data_dir.display());
    }
    let store = match EmbeddedStore::open(crate::store_config(cfg)) {
        Ok(s) => s,
        Err(e @ StoreError::Locked { .. }) => bail!(
            "{e}: is `harbinger serve` running on it? Stop it and export again, or copy the directory while it is \
             stopped and export from the copy (--data-dir COPY)"
        ),
        Err(e) => return Err(e).with_context(|| format!("opening the store in {}", cfg.data_dir.display())),
    };
    let result = read(&store, cfg, from, to).await;
    store.close().context("closing the store")?;
    let (ds, decisions, added) = result?;
    let report = ExportReport { hosts_added: added, ..write(&ds, &decisions, a, format)? };
    println!("exported {} into {}", cfg.data_dir.display(), a.out.display());
    println!("  hosts             {} ({} named only by data)", report.hosts, report.hosts_added);
    println!("  resources         {}", report.resources);
    println!("  series            {}", report.series);
    println!("  samples           {}", report.samples);
    println!("  events            {}", report.events);
    println!("  failures          {}", report.failures);
    println!("  decisions         {}", report.decisions);
    Ok(())
}

async fn read(store: &EmbeddedStore, cfg: &Config, from: i64, to: i64) -> anyhow::Result<(Dataset, Vec<String>, usize)> {
    let mut metrics = Vec::new();
    for key in store.series().await.context("listing series")? {
        let s = store.range(&key, from, to).await.with_context(|| format!("reading {key}"))?;
        if !s.is_empty() {
            metrics.push(s);
        }
    }
    let events = store.events(from, to).await.context("reading events")?;
    let mut hosts = store.hosts().await.context("reading hosts")?;
    let resources = store.resources().await.context("reading resources")?;
    let failures: Vec<_> =
        store.failures().await.context("reading failures")?.into_iter().filter(|f| f.timestamp >= from && f.timestamp < to).collect();

    let known: BTreeSet<HostId> = hosts.iter().map(|h| h.host.clone()).collect();
    let mut named: BTreeSet<HostId> = metrics.iter().map(|s| s.key.host.clone()).collect();
    named.extend(events.iter().filter_map(|e| e.host.clone()));
    named.extend(resources.iter().map(|r| r.host.clone()));
    named.extend(failures.iter().map(|f| f.host.clone()));
    let added = named.difference(&known).count();
    for h in named.difference(&known) {
        hosts.push(Host { host: h.clone(), zone: String::new(), rack: String::new(), cpu_cores: 0.0, mem_gb: 0.0 });
    }
    hosts.sort_by(|a, b| a.host.cmp(&b.host));

    let mut decisions = Vec::new();
    let log = cfg.data_dir.join("decisions.jsonl");
    if log.exists() {
        let text = std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            // A line cut short by a crash has no readable `ts`: it is left out.
            let ts = serde_json::from_str::<serde_json::Value>(line).ok().and_then(|v| v.get("ts").and_then(serde_json::Value::as_i64));
            if ts.is_some_and(|t| t >= from && t < to) {
                decisions.push(line.to_string());
            }
        }
    }
    let lo = metrics.iter().filter_map(|s| s.timestamps.first()).chain(events.first().map(|e| &e.ts)).min().copied();
    let hi = metrics.iter().filter_map(|s| s.timestamps.last()).chain(events.last().map(|e| &e.ts)).max().copied();
    let meta = DatasetMeta {
        name: "harbinger export".into(),
        start_ms: lo,
        end_ms: hi.map(|t| t.saturating_add(1)),
        step_ms: None,
        seed: None,
        notes: format!("exported from {} by harbinger export", cfg.data_dir.display()),
    };
    Ok((Dataset { meta: Some(meta), hosts, resources, metrics, events, failures }, decisions, added))
}

fn write(ds: &Dataset, decisions: &[String], a: &ExportArgs, format: MetricsFormat) -> anyhow::Result<ExportReport> {
    write_dataset(ds, &a.out, format).with_context(|| format!("writing the dataset to {}", a.out.display()))?;
    {
        let p = a.out.join("decisions.jsonl");
        let mut w = std::io::BufWriter::new(std::fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?);
        for d in decisions {
            writeln!(w, "{d}").with_context(|| format!("writing {}", p.display()))?;
        }
        w.flush().with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(ExportReport {
        hosts: ds.hosts.len(),
        hosts_added: 0,
        resources: ds.resources.len(),
        series: ds.metrics.len(),
        samples: ds.metric_rows(),
        events: ds.events.len(),
        failures: ds.failures.len(),
        decisions: decisions.len(),
    })
}
