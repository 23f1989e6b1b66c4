//! `harbinger import prometheus`: a time range of a Prometheus server's series, read over
//! its HTTP API (`/api/v1/query_range`), written as a dataset directory in the contract
//! format (`hosts.csv`, `resources.json`, `metrics.parquet`/`metrics.csv`, `events.jsonl`,
//! `failures.csv`, `dataset.json`).
//!
//! # Mapping
//! - Series: every `--match` selector (default [`DEFAULT_MATCH`], every scraped series) is
//!   queried over `[start, end]` at `--step`, in chunks of at most [`MAX_POINTS`] points per
//!   series (Prometheus refuses more than 11,000).
//! - Host: the `instance` label without its `:port` (`10.0.0.7:9100` → `10.0.0.7`,
//!   `[::1]:9090` → `::1`), else a `host` label; series with neither are skipped.
//! - Metric: `__name__`, with the remaining labels except `instance` and `job` folded in
//!   sorted, as remote write stores them: `http_requests_total{code="200",method="get"}`.
//!   Two Prometheus series that land on the same (host, metric) — e.g. two exporters on one
//!   machine both exporting `up` — are merged (the later sample wins a tie) and counted.
//! - Values: NaN (stale or missing) and infinities are skipped.
//! - `hosts.csv`: the hosts seen, zone and rack empty, capacities 0 (unknown).
//! - `resources.json` is `[]` and `failures.csv` is empty: Prometheus has neither.
//! - `--events FILE`: harbinger's `events.jsonl` (validated as `ingest` does), or an
//!   Alertmanager webhook log (one webhook payload per line): a firing alert becomes an
//!   event when its `harbinger_event` label (or its `alertname`) is an event kind such as
//!   `deploy_started` or `rolled_back`; other alerts are ignored and counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use harbinger_core::{Event, EventKind, Host, HostId, SeriesKey, SeriesSamples, TimestampMs};
use harbinger_dataset::{Dataset, DatasetMeta, MetricsFormat, write_dataset};
use serde::Deserialize;

/// The selector used when no `--match` is given: every series a scrape job produced
/// (recording-rule outputs without a `job` label are left out).
pub const DEFAULT_MATCH: &str = r#"{job=~".+"}"#;

/// Points per series per request; Prometheus refuses a range query with more than 11,000.
pub const MAX_POINTS: i64 = 11_000;

/// `import` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Read a time range from a Prometheus server (HTTP API `query_range`) into a dataset
    /// directory: host from `instance` (port stripped), metric from `__name__` with the
    /// other labels except `job` folded in.
    Prometheus(PrometheusArgs),
}

/// `import prometheus` flags.
#[derive(Debug, Args)]
pub struct PrometheusArgs {
    /// Prometheus base URL, e.g. http://127.0.0.1:9090.
    #[arg(long)]
    pub url: String,
    /// Start of the range: RFC 3339 (2023-11-14T00:00:00Z), ms since epoch, `now` or
    /// `now-DURATION` (now-1h).
    #[arg(long)]
    pub start: String,
    /// End of the range (inclusive), in the same forms as --start.
    #[arg(long)]
    pub end: String,
    /// Resolution: one sample per series per step, e.g. 60s or 1s.
    #[arg(long, default_value = "60s")]
    pub step: String,
    /// Series selector (repeatable), e.g. '{job="node"}' or 'node_load1' [default:
    /// {job=~".+"}, every scraped series].
    #[arg(long = "match", value_name = "SELECTOR")]
    pub matches: Vec<String>,
    /// Deployment events: harbinger events.jsonl, or an Alertmanager webhook log (JSON
    /// lines of webhook payloads).
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Dataset directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Metrics file format: parquet or csv.
    #[arg(long, default_value = "parquet")]
    pub format: String,
    /// Give up on one HTTP request after this long.
    #[arg(long, default_value = "60s")]
    pub timeout: String,
}

/// The current time, ms since epoch.
pub fn now_ms() -> TimestampMs {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Parses a point in time: RFC 3339 (`2023-11-14T00:00:00Z`, fractional seconds allowed,
/// UTC only), ms since epoch, `now`, or `now-DURATION` / `now+DURATION` (`now-1h30m`).
///
/// # Errors
/// Anything else, with the accepted forms named. A bare number below 10^11 is refused as
/// probably seconds.
pub fn parse_time(s: &str, now: TimestampMs) -> anyhow::Result<TimestampMs> {
    let t = s.trim();
    let forms = "expected RFC 3339 (2023-11-14T00:00:00Z), ms since epoch (1700000000000), now or now-DURATION (now-1h)";
    if let Some(rest) = t.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now);
        }
        let (sign, dur) = if let Some(d) = rest.strip_prefix('-') {
            (-1, d)
        } else if let Some(d) = rest.strip_prefix('+') {
            (1, d)
        } else {
            bail!("invalid time {s:?}: {forms}")
        };
        let d = humantime::parse_duration(dur.trim()).with_context(|| format!("invalid time {s:?}: bad duration {dur:?}; {forms}"))?;
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        return Ok(now.saturating_add(sign * ms));
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let v: i64 = t.parse().with_context(|| format!("invalid time {s:?}: {forms}"))?;
        if v < 100_000_000_000 {
            bail!("invalid time {s:?}: looks like seconds; give milliseconds since epoch ({v}000) or RFC 3339");
        }
        return Ok(v);
    }
    harbinger_core::time::parse_timestamp_ms(t).map_err(|e| anyhow::anyhow!("invalid time: {e}; {forms}"))
}

/// The host of a Prometheus `instance` label: the address without its port.
pub fn host_of_instance(instance: &str) -> &str {
    if let Some((h, _)) = instance.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
        return h;
    }
    match instance.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.contains(':') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => instance,
    }
}

/// The harbinger (host, metric) of a labelled Prometheus series, or `None` without a
/// name or a host. Labels other than `__name__`, `instance` and `job` (and `host` when
/// `instance` names the host) are folded into the metric name, sorted.
pub fn series_key(labels: &BTreeMap<String, String>) -> Option<SeriesKey> {
    let get = |n: &str| labels.get(n).map(String::as_str).filter(|v| !v.is_empty());
    let name = get("__name__")?;
    let instance = get("instance");
    let host = instance.map(host_of_instance).or_else(|| get("host"))?;
    let mut metric = String::from(name);
    let mut first = true;
    for (k, v) in labels {
        let skip = match k.as_str() {
            "__name__" | "instance" | "job" => true,
            "host" => instance.is_none(),
            _ => false,
        };
        if skip {
            continue;
        }
        metric.push(if first { '{' } else { ',' });
        first = false;
        metric.push_str(k);
        metric.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => metric.push_str("\\\\"),
                '"' => metric.push_str("\\\""),
                '\n' => metric.push_str("\\n"),
                c => metric.push(c),
            }
        }
        metric.push('"');
    }
    if !first {
        metric.push('}');
    }
    Some(SeriesKey::new(host, metric))
}

#[derive(Debug, Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(default)]
    result: Vec<MatrixSeries>,
}

#[derive(Debug, Deserialize)]
struct MatrixSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Seconds with millisecond precision, as the Prometheus API takes times and steps.
fn secs(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let a = ms.unsigned_abs();
    format!("{sign}{}.{:03}", a / 1000, a % 1000)
}

/// What the import read, before it is written.
#[derive(Debug, Default)]
struct Collected {
    /// Samples by series, ts → value (later duplicates win).
    samples: BTreeMap<SeriesKey, BTreeMap<TimestampMs, f64>>,
    /// The (instance, job) pairs behind each series, to count merges.
    sources: BTreeMap<SeriesKey, BTreeSet<(String, String)>>,
    /// Non-finite or unparseable values skipped.
    skipped_values: u64,
    /// Series without a name or a host.
    skipped_series: u64,
    /// Requests made.
    requests: u64,
    /// Warnings Prometheus returned.
    warnings: BTreeSet<String>,
}

async fn query_range(
    client: &reqwest::Client,
    base: &str,
    query: &str,
    (start, end, step): (i64, i64, i64),
) -> anyhow::Result<(Vec<MatrixSeries>, Vec<String>)> {
    let url = format!("{}/api/v1/query_range", base.trim_end_matches('/'));
    let resp = client
        .get(&url)
        .query(&[("query", query), ("start", &secs(start)), ("end", &secs(end)), ("step", &secs(step))])
        .send()
        .await
        .with_context(|| format!("cannot reach Prometheus at {base} (GET {url})"))?;
    let status = resp.status();
    let body = resp.text().await.with_context(|| format!("reading the answer of {url}"))?;
    let parsed: Result<ApiResponse, _> = serde_json::from_str(&body);
    match parsed {
        Ok(r) if status.is_success() && r.status == "success" => {
            let data = r.data.with_context(|| format!("{url}: a success answer without `data`"))?;
            if data.result_type != "matrix" {
                bail!("{url}: expected a matrix result for {query:?}, got {:?}", data.result_type);
            }
            Ok((data.result, r.warnings))
        }
        Ok(r) => bail!(
            "Prometheus at {base} answered {status} for query {query:?}: {}: {}",
            r.error_type.as_deref().unwrap_or(&r.status),
            r.error.as_deref().unwrap_or("(no message)")
        ),
        Err(_) => {
            let head: String = body.chars().take(300).collect();
            bail!("{url} answered {status} with a body that is not a Prometheus API answer (is --url a Prometheus server?): {head:?}")
        }
    }
}

async fn collect(a: &PrometheusArgs, start: i64, end: i64, step: i64, timeout: Duration) -> anyhow::Result<Collected> {
    let client = reqwest::Client::builder().timeout(timeout).build().context("building the HTTP client")?;
    let selectors: Vec<String> = if a.matches.is_empty() { vec![DEFAULT_MATCH.to_string()] } else { a.matches.clone() };
    let mut out = Collected::default();
    let span = step.saturating_mul(MAX_POINTS - 1);
    for sel in &selectors {
        let mut cs = start;
        while cs <= end {
            let ce = cs.saturating_add(span).min(end);
            let (result, warnings) = query_range(&client, &a.url, sel, (cs, ce, step)).await?;
            out.requests += 1;
            out.warnings.extend(warnings);
            for s in result {
                let Some(key) = series_key(&s.metric) else {
                    out.skipped_series += 1;
                    continue;
                };
                let src = (s.metric.get("instance").cloned().unwrap_or_default(), s.metric.get("job").cloned().unwrap_or_default());
                out.sources.entry(key.clone()).or_default().insert(src);
                let m = out.samples.entry(key).or_default();
                for (t, v) in &s.values {
                    match v.parse::<f64>() {
                        Ok(x) if x.is_finite() => {
                            m.insert((t * 1000.0).round() as i64, x);
                        }
                        _ => out.skipped_values += 1,
                    }
                }
            }
            match ce.checked_add(step) {
                Some(n) if ce < end => cs = n,
                _ => break,
            }
        }
    }
    out.samples.retain(|_, m| !m.is_empty());
    Ok(out)
}

/// Where the events of `--events` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsSource {
    /// harbinger's `events.jsonl`.
    Jsonl,
    /// Alertmanager webhook payloads.
    Alertmanager,
}

#[derive(Debug, Deserialize)]
struct AmPayload {
    #[serde(default)]
    alerts: Vec<AmAlert>,
}

#[derive(Debug, Deserialize)]
struct AmAlert {
    #[serde(default)]
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default, rename = "startsAt")]
    starts_at: String,
    #[serde(default)]
    fingerprint: String,
}

/// Reads `--events`: harbinger `events.jsonl`, or an Alertmanager webhook log (detected by
/// an `alerts` array on the first line). Returns the events (sorted by `ts`), the format,
/// and how many alerts were ignored (resolved, or not naming an event kind).
///
/// # Errors
/// The file cannot be read; a bad line (file and line named).
pub fn read_events(path: &Path) -> anyhow::Result<(Vec<Event>, EventsSource, u64)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    let is_am = first
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .is_some_and(|v| v.get("alerts").is_some_and(serde_json::Value::is_array));
    if !is_am {
        let mut evs = harbinger_core::event::parse_events_jsonl(&text, &path.display().to_string())?;
        evs.sort_by_key(|e| e.ts);
        return Ok((evs, EventsSource::Jsonl, 0));
    }
    let mut seen = BTreeSet::new();
    let mut evs = Vec::new();
    let mut ignored = 0u64;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let p: AmPayload = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not an Alertmanager webhook payload", path.display(), i + 1))?;
        for al in p.alerts {
            let name = al.labels.get("harbinger_event").or_else(|| al.labels.get("alertname")).map(|s| s.to_ascii_lowercase());
            let kind = name.and_then(|n| EventKind::ALL.into_iter().find(|k| k.as_str() == n));
            let Some(kind) = kind.filter(|_| al.status == "firing") else {
                ignored += 1;
                continue;
            };
            let ts = parse_time(&al.starts_at, 0)
                .with_context(|| format!("{} line {}: alert `startsAt` {:?}", path.display(), i + 1, al.starts_at))?;
            // Alertmanager sends a firing alert again every repeat_interval: keep it once.
            let id = if al.fingerprint.is_empty() { format!("{:?}", al.labels) } else { al.fingerprint.clone() };
            if !seen.insert((id, ts)) {
                continue;
            }
            let mut e = Event::new(ts, kind);
            let label = |n: &str| al.labels.get(n).filter(|v| !v.is_empty()).cloned();
            e.host = label("instance").map(|i| HostId::new(host_of_instance(&i))).or_else(|| label("host").map(HostId::new));
            e.deployment = label("deployment");
            e.resource = label("resource");
            e.from = label("from").map(serde_json::Value::String);
            e.to = label("to").map(serde_json::Value::String);
            e.extra.insert("source".into(), "alertmanager".into());
            if let Some(n) = label("alertname") {
                e.extra.insert("alertname".into(), n.into());
            }
            evs.push(e);
        }
    }
    evs.sort_by_key(|e| e.ts);
    Ok((evs, EventsSource::Alertmanager, ignored))
}

/// Runs `harbinger import prometheus`.
///
/// # Errors
/// Bad flags (times, step, URL), an unreachable server or a failed query (status and
/// Prometheus' message named), no samples in the range, a bad events file, write failures.
pub async fn run_prometheus(a: &PrometheusArgs) -> anyhow::Result<()> {
    let now = now_ms();
    let start = parse_time(&a.start, now).context("--start")?;
    let end = parse_time(&a.end, now).context("--end")?;
    if start >= end {
        bail!("--start ({start}) must be before --end ({end})");
    }
    let step = humantime::parse_duration(&a.step).with_context(|| format!("--step {:?}: expected a duration such as 60s", a.step))?;
    let step = i64::try_from(step.as_millis()).unwrap_or(i64::MAX);
    if step <= 0 {
        bail!("--step must be at least 1ms");
    }
    let timeout = humantime::parse_duration(&a.timeout).with_context(|| format!("--timeout {:?}", a.timeout))?;
    let format: MetricsFormat = a.format.parse().map_err(|e: String| anyhow::anyhow!("--format: {e}"))?;
    if !(a.url.starts_with("http://") || a.url.starts_with("https://")) {
        bail!("--url {:?}: expected http://HOST:PORT or https://HOST:PORT", a.url);
    }
    let (events, source, ignored) = match &a.events {
        Some(p) => read_events(p)?,
        None => (Vec::new(), EventsSource::Jsonl, 0),
    };
    let n_events_all = events.len();
    let events: Vec<Event> = events.into_iter().filter(|e| e.ts >= start && e.ts <= end).collect();

    let c = collect(a, start, end, step, timeout).await?;
    if c.samples.is_empty() {
        bail!(
            "Prometheus at {} has no samples for {} between {} and {} (nothing written)",
            a.url,
            if a.matches.is_empty() { DEFAULT_MATCH.to_string() } else { a.matches.join(", ") },
            secs(start),
            secs(end)
        );
    }
    let merged = c.sources.values().filter(|s| s.len() > 1).count();

    let mut hosts: BTreeSet<HostId> = c.samples.keys().map(|k| k.host.clone()).collect();
    hosts.extend(events.iter().filter_map(|e| e.host.clone()));
    let metrics: Vec<SeriesSamples> = c
        .samples
        .into_iter()
        .map(|(key, m)| {
            let mut s = SeriesSamples::new(key);
            for (t, v) in m {
                s.push(t, v);
            }
            s
        })
        .collect();
    let ds = Dataset {
        meta: Some(DatasetMeta {
            name: "prometheus import".into(),
            start_ms: Some(start),
            end_ms: Some(end.saturating_add(1)),
            step_ms: Some(step),
            seed: None,
            notes: format!(
                "imported from {} with harbinger import prometheus; selectors: {}",
                a.url,
                if a.matches.is_empty() { DEFAULT_MATCH.to_string() } else { a.matches.join(" ") }
            ),
        }),
        hosts: hosts.into_iter().map(|h| Host { host: h, zone: String::new(), rack: String::new(), cpu_cores: 0.0, mem_gb: 0.0 }).collect(),
        resources: Vec::new(),
        metrics,
        events,
        failures: Vec::new(),
    };
    write_dataset(&ds, &a.out, format).with_context(|| format!("writing the dataset to {}", a.out.display()))?;
    println!("imported {} into {}", a.url, a.out.display());
    println!("  range             {} .. {} step {}", secs(start), secs(end), a.step);
    println!("  requests          {}", c.requests);
    println!("  hosts             {}", ds.hosts.len());
    println!("  series            {}", ds.metrics.len());
    println!("  samples           {}", ds.metric_rows());
    if c.skipped_values > 0 {
        println!("  values skipped    {} (NaN, stale or infinite)", c.skipped_values);
    }
    if c.skipped_series > 0 {
        println!("  series skipped    {} (no __name__, or neither instance nor host label)", c.skipped_series);
    }
    if merged > 0 {
        println!("  series merged     {merged} (several instances/jobs on one host with the same metric)");
    }
    for w in &c.warnings {
        println!("  prometheus warned {w}");
    }
    if a.events.is_some() {
        let kind = match source {
            EventsSource::Jsonl => "events.jsonl",
            EventsSource::Alertmanager => "alertmanager",
        };
        println!("  events            {} of {n_events_all} in range ({kind})", ds.events.len());
        if ignored > 0 {
            println!("  alerts ignored    {ignored} (resolved, or not naming an event kind)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_documented_form() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_time("now", now).expect("now"), now);
        assert_eq!(parse_time("now-1h", now).expect("now-1h"), now - 3_600_000);
        assert_eq!(parse_time("now+30s", now).expect("now+30s"), now + 30_000);
        assert_eq!(parse_time("1700000000000", now).expect("ms"), 1_700_000_000_000);
        assert_eq!(parse_time("2023-11-14T22:13:20Z", now).expect("rfc3339"), 1_700_000_000_000);
        assert_eq!(parse_time("2023-11-14T22:13:20.5Z", now).expect("fraction"), 1_700_000_000_500);
        for bad in ["yesterday", "now-", "now*2", "1700000000", "2023-13-01T00:00:00Z", ""] {
            assert!(parse_time(bad, now).is_err(), "{bad:?} should be refused");
        }
        let e = format!("{:#}", parse_time("1700000000", now).expect_err("seconds"));
        assert!(e.contains("seconds"), "{e}");
    }

    #[test]
    fn instances_lose_their_port_and_labels_fold_into_the_name() {
        assert_eq!(host_of_instance("10.0.0.7:9100"), "10.0.0.7");
        assert_eq!(host_of_instance("node-3.example:9100"), "node-3.example");
        assert_eq!(host_of_instance("[::1]:9090"), "::1");
        assert_eq!(host_of_instance("node-3"), "node-3");
        assert_eq!(host_of_instance("::1"), "::1");
        let l = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        let k = series_key(&l(&[("__name__", "up"), ("instance", "h1:9100"), ("job", "node")])).expect("key");
        assert_eq!(k, SeriesKey::new("h1", "up"));
        let k = series_key(&l(&[("__name__", "req_total"), ("instance", "h1:80"), ("job", "j"), ("method", "get"), ("code", "2\"0")]))
            .expect("key");
        assert_eq!(k, SeriesKey::new("h1", "req_total{code=\"2\\\"0\",method=\"get\"}"));
        let k = series_key(&l(&[("__name__", "x"), ("host", "h2")])).expect("host label");
        assert_eq!(k, SeriesKey::new("h2", "x"));
        assert!(series_key(&l(&[("__name__", "x"), ("job", "j")])).is_none(), "no host");
        assert!(series_key(&l(&[("instance", "h:1")])).is_none(), "no name");
    }

    #[test]
    fn alertmanager_logs_map_firing_deploy_alerts_to_events() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("am.jsonl");
        let alert = |status: &str, name: &str, fp: &str| {
            serde_json::json!({"status": status, "labels": {"alertname": name, "instance": "h1:9100", "deployment": "d-1"},
                "startsAt": "2023-11-14T22:13:20Z", "fingerprint": fp})
        };
        let l1 = serde_json::json!({"version": "4", "status": "firing", "alerts": [alert("firing", "deploy_started", "a"), alert("firing", "HighCPU", "b")]});
        let l2 = serde_json::json!({"version": "4", "status": "firing", "alerts": [alert("firing", "deploy_started", "a"), alert("resolved", "rolled_back", "c")]});
        std::fs::write(&p, format!("{l1}\n{l2}\n")).expect("write");
        let (evs, src, ignored) = read_events(&p).expect("read");
        assert_eq!((src, evs.len(), ignored), (EventsSource::Alertmanager, 1, 2));
        assert_eq!(
            (evs[0].ts, evs[0].kind, evs[0].host.as_ref().map(HostId::as_str)),
            (1_700_000_000_000, EventKind::DeployStarted, Some("h1"))
        );
        assert_eq!(evs[0].deployment.as_deref(), Some("d-1"));

        std::fs::write(&p, "{\"ts\": 5, \"kind\": \"deploy_started\"}\n{\"ts\": 1, \"kind\": \"bogus\"}\n").expect("write");
        let e = format!("{:#}", read_events(&p).expect_err("bad kind"));
        assert!(e.contains("line 2") && e.contains("bogus"), "{e}");
    }
}
