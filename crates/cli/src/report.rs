//! `harbinger report`: `report.html`, one self-contained page (inline CSS and SVG, no
//! network) about a replay or evaluation output directory.
//!
//! It reads the directory's `summary.json`, `alerts.csv`, `decisions.jsonl` and the risk
//! series (`risk.csv` from `replay`, or `trace.csv` from `eval --trace-every`), and, when the
//! dataset directory is given, its `dataset.json` and `failures.csv`. Every file but
//! `alerts.csv` is optional; what is missing is said on the page. The same inputs give the
//! same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

/// Per-host risk charts drawn (the riskiest hosts by peak risk).
pub const MAX_HOST_CHARTS: usize = 12;
/// Decision rows shown in the timeline table; the rest are counted.
pub const MAX_DECISION_ROWS: usize = 500;
/// Hosts listed in the ranking table; the rest are counted.
pub const MAX_RANKED_HOSTS: usize = 500;
/// The contract's warning window before a failure.
const WARNING_MS: i64 = 6 * 3_600_000;
/// Alerts later than this before the failure do not predict it.
const MIN_LEAD_MS: i64 = 60_000;
/// Lead-time histogram bin width, minutes (12 bins over the 6 h window).
const BIN_MIN: f64 = 30.0;

/// `report` flags.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The replay or eval output directory (alerts.csv, decisions.jsonl, summary.json,
    /// risk.csv or trace.csv); report.html is written there.
    #[arg(long)]
    pub out: PathBuf,
    /// The dataset directory the output came from (dataset.json gives the name and period,
    /// failures.csv the failures and lead times).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// Runs `harbinger report`.
///
/// # Errors
/// See [`write_report`].
pub fn run(a: &ReportArgs) -> anyhow::Result<()> {
    let p = write_report(&a.out, a.data.as_deref())?;
    println!("wrote {}", p.display());
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct Point {
    ts: i64,
    risk: f64,
    alerting: bool,
}

#[derive(Debug, Clone)]
struct AlertRow {
    host: String,
    ts: i64,
    score: f64,
}

#[derive(Debug, Clone)]
struct FailureRow {
    host: String,
    ts: i64,
    kind: String,
}

#[derive(Debug, Clone)]
struct DecisionRow {
    ts: i64,
    kind: String,
    host: String,
    resource: String,
    target: String,
    reason: String,
}

/// Everything the page is made of.
struct Inputs {
    name: String,
    period: Option<(i64, i64)>,
    summary: Option<Value>,
    alerts: Vec<AlertRow>,
    failures: Option<Vec<FailureRow>>,
    decisions: Option<Vec<DecisionRow>>,
    series: BTreeMap<String, Vec<Point>>,
    series_file: Option<&'static str>,
}

/// Reads `out_dir` (and `dataset_dir`'s `dataset.json` and `failures.csv` when given) and
/// writes `out_dir/report.html`; returns its path.
///
/// # Errors
/// `out_dir` has no `alerts.csv`, a file that is present cannot be read or parsed (file and
/// line named), or the report cannot be written.
pub fn write_report(out_dir: &Path, dataset_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let inputs = read_inputs(out_dir, dataset_dir)?;
    let html = render(&inputs);
    let path = out_dir.join("report.html");
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

// ---------------------------------------------------------------------------------------
// Reading

fn read_inputs(out_dir: &Path, dataset_dir: Option<&Path>) -> anyhow::Result<Inputs> {
    let alerts_path = out_dir.join("alerts.csv");
    anyhow::ensure!(alerts_path.exists(), "{} has no alerts.csv: not a replay or eval output directory", out_dir.display());
    let mut alerts = Vec::new();
    read_csv(&alerts_path, &["host", "timestamp", "score"], |_, f| {
        alerts.push(AlertRow { host: f[0].to_string(), ts: int(f[1])?, score: float(f[2])? });
        Ok(())
    })?;

    let summary = match read_optional(&out_dir.join("summary.json"))? {
        Some(text) => {
            Some(serde_json::from_str::<Value>(&text).with_context(|| format!("parsing {}", out_dir.join("summary.json").display()))?)
        }
        None => None,
    };

    let decisions = match read_optional(&out_dir.join("decisions.jsonl"))? {
        Some(text) => Some(parse_decisions(&text).with_context(|| format!("in {}", out_dir.join("decisions.jsonl").display()))?),
        None => None,
    };

    let mut series: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    let mut series_file = None;
    for file in ["risk.csv", "trace.csv"] {
        let p = out_dir.join(file);
        if !p.exists() {
            continue;
        }
        read_csv(&p, &["host", "timestamp", "risk", "alerting"], |_, f| {
            let alerting = matches!(f[3].trim(), "1" | "true" | "True" | "TRUE");
            let point = Point { ts: int(f[1])?, risk: float(f[2])?, alerting };
            match series.get_mut(f[0]) {
                Some(points) => points.push(point),
                None => {
                    series.insert(f[0].to_string(), vec![point]);
                }
            }
            Ok(())
        })?;
        series_file = Some(file);
        break;
    }
    for pts in series.values_mut() {
        pts.sort_by_key(|p| p.ts);
    }

    let mut name = None;
    let mut period = None;
    let mut failures = None;
    if let Some(d) = dataset_dir {
        if let Some(text) = read_optional(&d.join("dataset.json"))? {
            let meta: harbinger_dataset::DatasetMeta =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", d.join("dataset.json").display()))?;
            if !meta.name.is_empty() {
                name = Some(meta.name.clone());
            }
            if let (Some(s), Some(e)) = (meta.start_ms, meta.end_ms) {
                period = Some((s, e));
            }
        }
        let fp = d.join("failures.csv");
        if fp.exists() {
            let mut v = Vec::new();
            read_csv(&fp, &["host", "timestamp", "kind"], |_, f| {
                v.push(FailureRow { host: f[0].to_string(), ts: int(f[1])?, kind: f[2].to_string() });
                Ok(())
            })?;
            v.sort_by(|a, b| (a.ts, &a.host).cmp(&(b.ts, &b.host)));
            failures = Some(v);
        }
        if name.is_none() {
            name = d.file_name().map(|n| n.to_string_lossy().into_owned());
        }
    }
    let name =
        name.or_else(|| out_dir.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_else(|| out_dir.display().to_string());

    // Without dataset.json, the period is what the output covers.
    let period = period.or_else(|| {
        let mut ts: Vec<i64> = series.values().flat_map(|v| v.iter().map(|p| p.ts)).collect();
        ts.extend(alerts.iter().map(|a| a.ts));
        if let Some(d) = &decisions {
            ts.extend(d.iter().map(|d| d.ts));
        }
        let lo = ts.iter().min().copied()?;
        let hi = ts.iter().max().copied()?;
        Some((lo, hi.max(lo + 1)))
    });

    Ok(Inputs { name, period, summary, alerts, failures, decisions, series, series_file })
}

fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn int(s: &str) -> anyhow::Result<i64> {
    let t = s.trim();
    t.parse::<i64>().or_else(|_| t.parse::<f64>().map(|f| f as i64)).map_err(|_| anyhow::anyhow!("not an integer: {t:?}"))
}

fn float(s: &str) -> anyhow::Result<f64> {
    let t = s.trim();
    t.parse::<f64>().map_err(|_| anyhow::anyhow!("not a number: {t:?}"))
}

/// Splits one CSV line; double-quoted fields may hold commas and `""`.
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Reads a CSV with a header, handing `row` the `columns` (by name, in that order) of each
/// line. Extra columns are ignored.
fn read_csv(path: &Path, columns: &[&str], mut row: impl FnMut(usize, &[&str]) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().enumerate();
    let header = match lines.next() {
        Some((_, h)) => split_csv(h.trim_start_matches('\u{feff}')),
        None => return Ok(()),
    };
    let idx: Vec<usize> = columns
        .iter()
        .map(|c| header.iter().position(|h| h.trim() == *c).with_context(|| format!("{}: no `{c}` column in the header", path.display())))
        .collect::<anyhow::Result<_>>()?;
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let line = line.trim_end_matches('\r');
        // Most lines quote nothing: their fields are slices of the line.
        let quoted: Vec<String>;
        let fields: Vec<&str> = if line.contains('"') {
            quoted = split_csv(line);
            quoted.iter().map(String::as_str).collect()
        } else {
            line.split(',').collect()
        };
        let picked: Vec<&str> = idx.iter().map(|&i| fields.get(i).copied().unwrap_or("")).collect();
        row(n + 1, &picked).with_context(|| format!("{} line {}", path.display(), n + 1))?;
    }
    Ok(())
}

fn parse_decisions(text: &str) -> anyhow::Result<Vec<DecisionRow>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).with_context(|| format!("line {}: not JSON", n + 1))?;
        let s = |k: &str| match v.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let ts = v.get("ts").and_then(Value::as_i64).with_context(|| format!("line {}: no integer `ts`", n + 1))?;
        out.push(DecisionRow {
            ts,
            kind: s("kind"),
            host: s("host"),
            resource: s("resource"),
            target: s("target_host"),
            reason: s("reason"),
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Analysis

/// The lead time of each failure (minutes), by the contract's rule; `None` when unpredicted.
fn lead_times(inp: &Inputs) -> Vec<(&FailureRow, Option<f64>)> {
    let Some(failures) = &inp.failures else { return Vec::new() };
    let mut by_host: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for a in &inp.alerts {
        by_host.entry(a.host.as_str()).or_default().push(a.ts);
    }
    for v in by_host.values_mut() {
        v.sort_unstable();
    }
    failures
        .iter()
        .filter(|f| inp.period.is_none_or(|(s, e)| f.ts >= s && f.ts <= e))
        .map(|f| {
            let first =
                by_host.get(f.host.as_str()).and_then(|v| v.iter().find(|&&t| t >= f.ts - WARNING_MS && t <= f.ts - MIN_LEAD_MS).copied());
            (f, first.map(|t| (f.ts - t) as f64 / 60_000.0))
        })
        .collect()
}

/// Alerts followed by a failure of their host within the warning window (true alerts), by
/// the kind of that failure.
fn true_alerts_by_kind(inp: &Inputs) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let Some(failures) = &inp.failures else { return out };
    for a in &inp.alerts {
        if let Some(f) = failures.iter().find(|f| f.host == a.host && f.ts >= a.ts && f.ts - a.ts <= WARNING_MS) {
            *out.entry(f.kind.clone()).or_insert(0) += 1;
        }
    }
    out
}

#[derive(Debug, Default, Clone)]
struct HostStats {
    peak: Option<f64>,
    peak_ts: Option<i64>,
    alerts: usize,
    failures: usize,
    decisions: usize,
}

fn host_stats(inp: &Inputs) -> Vec<(String, HostStats)> {
    let mut m: BTreeMap<String, HostStats> = BTreeMap::new();
    for (h, pts) in &inp.series {
        let s = m.entry(h.clone()).or_default();
        for p in pts {
            if p.risk.is_finite() && s.peak.is_none_or(|x| p.risk > x) {
                s.peak = Some(p.risk);
                s.peak_ts = Some(p.ts);
            }
        }
    }
    for a in &inp.alerts {
        let s = m.entry(a.host.clone()).or_default();
        s.alerts += 1;
        // Without a risk series, an alert's score is the best peak there is.
        if inp.series.is_empty() && a.score.is_finite() && s.peak.is_none_or(|x| a.score > x) {
            s.peak = Some(a.score);
            s.peak_ts = Some(a.ts);
        }
    }
    for f in inp.failures.iter().flatten() {
        m.entry(f.host.clone()).or_default().failures += 1;
    }
    for d in inp.decisions.iter().flatten() {
        if !d.host.is_empty() {
            m.entry(d.host.clone()).or_default().decisions += 1;
        }
    }
    let mut v: Vec<(String, HostStats)> = m.into_iter().collect();
    v.sort_by(|(ha, a), (hb, b)| {
        let pa = a.peak.unwrap_or(f64::NEG_INFINITY);
        let pb = b.peak.unwrap_or(f64::NEG_INFINITY);
        pb.total_cmp(&pa).then(b.failures.cmp(&a.failures)).then(b.alerts.cmp(&a.alerts)).then(ha.cmp(hb))
    });
    v
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

// ---------------------------------------------------------------------------------------
// Rendering helpers

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `2023-11-14 06:00:00Z` (UTC).
fn time(ms: i64) -> String {
    harbinger_core::time::format_seconds(ms).replacen('T', " ", 1)
}

/// `11-14 06:00` for axis labels.
fn short_time(ms: i64) -> String {
    let t = time(ms);
    t.get(5..16).unwrap_or(&t).to_string()
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite()).map_or_else(|| "–".to_string(), |x| format!("{x:.digits$}"))
}

fn get_f(summary: Option<&Value>, key: &str) -> Option<f64> {
    summary.and_then(|s| s.get(key)).and_then(Value::as_f64)
}

/// The colour and legend class of a decision kind.
fn decision_class(kind: &str) -> (&'static str, &'static str) {
    if kind == "failover" || kind == "shadow_promoted" {
        ("#7b2cbf", "failover")
    } else if kind.starts_with("rollback") {
        ("#e07b00", "rollback")
    } else if kind.starts_with("shadow") {
        ("#1f77b4", "shadow")
    } else {
        ("#666666", "other")
    }
}

const CSS: &str = "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fff}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}\
.muted{color:#666;font-size:13px}.figs{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}\
.fig{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:120px}.fig b{display:block;font-size:20px}\
.fig span{font-size:12px;color:#666}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:12px}\
.chart{border:1px solid #eee;border-radius:4px;padding:4px}.chart h3{font-size:13px;margin:2px 4px}\
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}.legend span{margin-right:14px;font-size:12px}\
.sw{display:inline-block;width:12px;height:10px;margin-right:4px;vertical-align:middle}svg text{font-family:inherit}";

// ---------------------------------------------------------------------------------------
// Rendering

fn render(inp: &Inputs) -> String {
    let mut h = String::with_capacity(1 << 20);
    let title = format!("harbinger report: {}", inp.name);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    let leads = lead_times(inp);
    header(&mut h, inp, &leads);
    let stats = host_stats(inp);
    host_charts(&mut h, inp, &stats);
    lead_histogram(&mut h, inp, &leads);
    kinds(&mut h, inp, &leads);
    timeline(&mut h, inp);
    ranking(&mut h, inp, &stats);
    h.push_str(
        "<script>\n(function(){var b=document.body;b.dataset.svgs=String(document.querySelectorAll('svg').length);b.dataset.ready='1';})();\n</script>\n</body>\n</html>\n",
    );
    h
}

fn header(h: &mut String, inp: &Inputs, leads: &[(&FailureRow, Option<f64>)]) {
    let s = inp.summary.as_ref();
    let _ = writeln!(h, "<h1>{}</h1>", esc(&format!("harbinger report: {}", inp.name)));
    let period = inp.period.map_or_else(|| "unknown period".to_string(), |(a, b)| format!("{} – {}", time(a), time(b)));
    let hosts = s.and_then(|s| s.get("hosts")).and_then(Value::as_u64).map_or_else(
        || {
            let mut set: BTreeSet<&str> = inp.series.keys().map(String::as_str).collect();
            set.extend(inp.alerts.iter().map(|a| a.host.as_str()));
            set.len()
        },
        |n| usize::try_from(n).unwrap_or(usize::MAX),
    );
    let mut sub = format!("{period} · {hosts} hosts");
    if let Some(m) = s.and_then(|s| s.get("model_version")).and_then(Value::as_str) {
        let _ = write!(sub, " · model {m}");
    }
    let _ = write!(sub, " · risk series: {}", inp.series_file.unwrap_or("none (no risk.csv or trace.csv)"));
    if inp.failures.is_none() {
        sub.push_str(" · no failures.csv (pass --data DATASET_DIR for failures and lead times)");
    }
    let _ = writeln!(h, "<p class=\"muted\">{}</p>", esc(&sub));

    // Summary figures, from summary.json, or computed from failures.csv when it is absent.
    let mut sorted: Vec<f64> = leads.iter().filter_map(|(_, l)| *l).collect();
    sorted.sort_by(f64::total_cmp);
    let computed_recall = (!leads.is_empty()).then(|| sorted.len() as f64 / leads.len() as f64);
    let recall = get_f(s, "recall").or(computed_recall);
    let precision = get_f(s, "precision");
    let fa = get_f(s, "false_alarms_per_host_day");
    let med = get_f(s, "lead_time_median_min").or_else(|| quantile(&sorted, 0.5));
    let p10 = get_f(s, "lead_time_p10_min").or_else(|| quantile(&sorted, 0.1));
    let p90 = get_f(s, "lead_time_p90_min").or_else(|| quantile(&sorted, 0.9));
    let count = |k: &str| s.and_then(|s| s.get(k)).and_then(Value::as_u64).map_or_else(|| "–".to_string(), |n| n.to_string());
    let figs: Vec<(String, String)> = vec![
        (opt(recall, 3), "recall".into()),
        (opt(get_f(s, "recall_predictable"), 3), "recall (predictable kinds)".into()),
        (opt(precision, 3), "precision".into()),
        (opt(fa, 4), "false alarms / host-day".into()),
        (format!("{} / {} / {}", opt(p10, 0), opt(med, 0), opt(p90, 0)), "lead time p10 / median / p90 (min)".into()),
        (inp.alerts.len().to_string(), "alerts".into()),
        (count("false_alarms"), "false alarms".into()),
        (format!("{} / {}", count("predicted"), count("failures")), "failures predicted".into()),
        (inp.decisions.as_ref().map_or_else(|| "–".to_string(), |d| d.len().to_string()), "decisions".into()),
    ];
    h.push_str("<div class=\"figs\" id=\"summary\">\n");
    for (v, l) in figs {
        let _ = writeln!(h, "<div class=\"fig\"><b>{}</b><span>{}</span></div>", esc(&v), esc(&l));
    }
    h.push_str("</div>\n");
}

const CW: f64 = 560.0;
const CH: f64 = 150.0;
const ML: f64 = 34.0;
const MR: f64 = 8.0;
const MT: f64 = 8.0;
const MB: f64 = 30.0;

/// Axis tick step for a span: at most about 7 ticks.
fn tick_step(span: i64) -> i64 {
    const H: i64 = 3_600_000;
    for s in [H, 3 * H, 6 * H, 12 * H, 24 * H, 48 * H, 7 * 24 * H, 14 * 24 * H, 28 * 24 * H] {
        if span / s <= 7 {
            return s;
        }
    }
    (span / 7).max(1)
}

fn host_charts(h: &mut String, inp: &Inputs, stats: &[(String, HostStats)]) {
    h.push_str("<h2>Risk over time</h2>\n");
    let Some((t0, t1)) = inp.period else {
        h.push_str("<p class=\"muted\">Nothing to draw: no risk series, alerts or decisions.</p>\n");
        return;
    };
    let _ = writeln!(
        h,
        "<p class=\"muted\">The {} riskiest of {} hosts by peak risk{}. Every host is in the ranking below.</p>",
        stats.len().min(MAX_HOST_CHARTS),
        stats.len(),
        if inp.series.is_empty() { " (no risk series: alert scores only)" } else { "" }
    );
    h.push_str(
        "<div class=\"legend\"><span><i class=\"sw\" style=\"background:#2a7ab9\"></i>risk</span>\
<span><i class=\"sw\" style=\"background:#fde2c2\"></i>alerting</span>\
<span><i class=\"sw\" style=\"background:#d62728\"></i>failure</span>\
<span><i class=\"sw\" style=\"background:#000\"></i>alert (score)</span>\
<span><i class=\"sw\" style=\"background:#1f77b4\"></i>shadow decision</span>\
<span><i class=\"sw\" style=\"background:#7b2cbf\"></i>failover / promotion</span>\
<span><i class=\"sw\" style=\"background:#e07b00\"></i>rollback</span>\
<span><i class=\"sw\" style=\"background:#666\"></i>other decision</span></div>\n",
    );
    let span = (t1 - t0).max(1);
    let pw = CW - ML - MR;
    let ph = CH - MT - MB;
    let x = |t: i64| ML + ((t - t0) as f64 / span as f64).clamp(0.0, 1.0) * pw;
    let y = |r: f64| MT + (1.0 - r.clamp(0.0, 1.0)) * ph;
    h.push_str("<div class=\"grid\">\n");
    for (host, st) in stats.iter().take(MAX_HOST_CHARTS) {
        let _ = writeln!(
            h,
            "<div class=\"chart\"><h3>{} <span class=\"muted\">peak {} · {} alerts · {} failures · {} decisions</span></h3>",
            esc(host),
            opt(st.peak, 3),
            st.alerts,
            st.failures,
            st.decisions
        );
        let _ = writeln!(
            h,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"risk\" width=\"{CW}\" height=\"{CH}\" style=\"width:100%;height:auto\" viewBox=\"0 0 {CW} {CH}\" role=\"img\" aria-label=\"{}\">",
            esc(&format!("risk of {host}"))
        );
        // Frame, grid and axes.
        for r in [0.0, 0.5, 1.0] {
            let _ = writeln!(
                h,
                "<line x1=\"{ML}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#e5e5e5\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"end\" fill=\"#666\">{r:.1}</text>",
                CW - MR,
                y(r),
                y(r),
                ML - 3.0,
                y(r) + 3.0
            );
        }
        let step = tick_step(span);
        let mut t = t0.div_euclid(step) * step;
        if t < t0 {
            t += step;
        }
        while t <= t1 {
            // Labels at the edges stay inside the chart.
            let anchor = if x(t) > CW - MR - 30.0 {
                "end"
            } else if x(t) < ML + 30.0 {
                "start"
            } else {
                "middle"
            };
            let _ = writeln!(
                h,
                "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{2:.1}\" stroke=\"#999\"/><text x=\"{0:.1}\" y=\"{3:.1}\" font-size=\"9\" text-anchor=\"{anchor}\" fill=\"#666\">{4}</text>",
                x(t),
                MT + ph,
                MT + ph + 3.0,
                MT + ph + 12.0,
                esc(&short_time(t))
            );
            t += step;
        }
        let pts = inp.series.get(host).map_or(&[][..], Vec::as_slice);
        // Alerting spans.
        let mut start: Option<i64> = None;
        for (i, p) in pts.iter().enumerate() {
            match (start, p.alerting) {
                (None, true) => start = Some(p.ts),
                (Some(s), false) => {
                    alert_span(h, x(s), x(p.ts), ph);
                    start = None;
                }
                _ => {}
            }
            if i + 1 == pts.len()
                && let Some(s) = start
            {
                alert_span(h, x(s), x(p.ts), ph);
            }
        }
        // The risk line: the peak of each pixel column.
        if !pts.is_empty() {
            let cols = pw as usize;
            let mut buckets: Vec<Option<(i64, f64)>> = vec![None; cols + 1];
            for p in pts.iter().filter(|p| p.risk.is_finite()) {
                let c = (((p.ts - t0) as f64 / span as f64).clamp(0.0, 1.0) * cols as f64) as usize;
                let c = c.min(cols);
                if buckets[c].is_none_or(|(_, r)| p.risk > r) {
                    buckets[c] = Some((p.ts, p.risk));
                }
            }
            let mut d = String::new();
            for (ts, r) in buckets.iter().flatten() {
                let _ = write!(d, "{}{:.1},{:.1}", if d.is_empty() { "" } else { " " }, x(*ts), y(*r));
            }
            let _ = writeln!(h, "<polyline fill=\"none\" stroke=\"#2a7ab9\" stroke-width=\"1.2\" points=\"{d}\"/>");
        }
        // Decisions: ticks along the bottom of the plot.
        for d in inp.decisions.iter().flatten().filter(|d| &d.host == host) {
            let (colour, _) = decision_class(&d.kind);
            let tip = format!("{} {} {} → {}: {}", time(d.ts), d.kind, d.resource, d.target, d.reason);
            let _ = writeln!(
                h,
                "<path class=\"decision\" d=\"M{0:.1},{1:.1} l-3.5,7 h7 z\" fill=\"{colour}\"><title>{2}</title></path>",
                x(d.ts),
                MT + ph + 14.0,
                esc(&tip)
            );
        }
        // Failures: red vertical lines.
        for f in inp.failures.iter().flatten().filter(|f| &f.host == host) {
            let _ = writeln!(
                h,
                "<line class=\"failure\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{MT}\" y2=\"{1:.1}\" stroke=\"#d62728\" stroke-width=\"2\"><title>{2}</title></line>",
                x(f.ts),
                MT + ph,
                esc(&format!("failure {} at {}", f.kind, time(f.ts)))
            );
        }
        // Alerts: markers at their score.
        for a in inp.alerts.iter().filter(|a| &a.host == host) {
            let _ = writeln!(
                h,
                "<circle class=\"alert\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"#000\" stroke=\"#fff\"><title>{}</title></circle>",
                x(a.ts),
                y(if a.score.is_finite() { a.score } else { 1.0 }),
                esc(&format!("alert at {}, score {:.3}", time(a.ts), a.score))
            );
        }
        h.push_str("</svg></div>\n");
    }
    h.push_str("</div>\n");
}

fn alert_span(h: &mut String, x0: f64, x1: f64, ph: f64) {
    let _ = writeln!(h, "<rect x=\"{x0:.1}\" y=\"{MT}\" width=\"{:.1}\" height=\"{ph:.1}\" fill=\"#fde2c2\"/>", (x1 - x0).max(1.0));
}

fn lead_histogram(h: &mut String, inp: &Inputs, leads: &[(&FailureRow, Option<f64>)]) {
    h.push_str("<h2>Lead time</h2>\n");
    if inp.failures.is_none() {
        h.push_str("<p class=\"muted\">No failures.csv: pass the dataset directory (--data) to see lead times.</p>\n");
        return;
    }
    let mut sorted: Vec<f64> = leads.iter().filter_map(|(_, l)| *l).collect();
    sorted.sort_by(f64::total_cmp);
    let bins = (WARNING_MS as f64 / 60_000.0 / BIN_MIN) as usize;
    let mut counts = vec![0usize; bins];
    for l in &sorted {
        let b = ((l / BIN_MIN) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let _ = writeln!(
        h,
        "<p class=\"muted\">{} of {} failures predicted (first alert within [t − 6 h, t − 1 min]); {} not predicted. Median {} min, p10 {} min, p90 {} min.</p>",
        sorted.len(),
        leads.len(),
        leads.len() - sorted.len(),
        opt(quantile(&sorted, 0.5), 1),
        opt(quantile(&sorted, 0.1), 1),
        opt(quantile(&sorted, 0.9), 1)
    );
    let (w, ht, ml, mb, mt) = (620.0, 220.0, 34.0, 34.0, 10.0);
    let pw = w - ml - 10.0;
    let ph = ht - mt - mb;
    let maxc = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let _ = writeln!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"lead-histogram\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\" aria-label=\"lead time histogram\">"
    );
    let bw = pw / bins as f64;
    for (i, c) in counts.iter().enumerate() {
        let bh = *c as f64 / maxc * ph;
        let x0 = ml + i as f64 * bw;
        let _ = writeln!(
            h,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#2a7ab9\"><title>{}–{} min: {c}</title></rect>",
            x0 + 1.0,
            mt + ph - bh,
            bw - 2.0,
            i as f64 * BIN_MIN,
            (i + 1) as f64 * BIN_MIN
        );
        if *c > 0 {
            let _ = writeln!(
                h,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{c}</text>",
                x0 + bw / 2.0,
                mt + ph - bh - 2.0
            );
        }
        let _ = writeln!(
            h,
            "<text x=\"{x0:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\" fill=\"#666\">{}</text>",
            mt + ph + 12.0,
            i as f64 * BIN_MIN
        );
    }
    let _ = writeln!(
        h,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\" fill=\"#666\">360</text><line x1=\"{ml}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>",
        ml + pw,
        mt + ph + 12.0,
        ml + pw,
        mt + ph,
        mt + ph
    );
    if let Some(m) = quantile(&sorted, 0.5) {
        let xm = ml + (m / (bins as f64 * BIN_MIN)).clamp(0.0, 1.0) * pw;
        let _ = writeln!(
            h,
            "<line x1=\"{xm:.1}\" x2=\"{xm:.1}\" y1=\"{mt}\" y2=\"{:.1}\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#d62728\">median {m:.0}</text>",
            mt + ph,
            xm + 3.0,
            mt + 10.0
        );
    }
    let _ = writeln!(
        h,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#444\">lead time, minutes before the failure</text></svg>",
        ml + pw / 2.0,
        ht - 4.0
    );
}

fn kinds(h: &mut String, inp: &Inputs, leads: &[(&FailureRow, Option<f64>)]) {
    h.push_str("<h2>Recall and precision by failure kind</h2>\n");
    // kind -> (failures, predicted, lead times)
    let mut rows: BTreeMap<String, (usize, usize, Vec<f64>)> = BTreeMap::new();
    if inp.failures.is_some() {
        for (f, l) in leads {
            let r = rows.entry(f.kind.clone()).or_default();
            r.0 += 1;
            if let Some(l) = l {
                r.1 += 1;
                r.2.push(*l);
            }
        }
    } else if let Some(Value::Object(m)) = inp.summary.as_ref().and_then(|s| s.get("recall_by_kind")) {
        for (k, v) in m {
            let n = |key: &str| v.get(key).and_then(Value::as_u64).map_or(0, |x| usize::try_from(x).unwrap_or(0));
            rows.insert(k.clone(), (n("failures"), n("predicted"), Vec::new()));
        }
    }
    if rows.is_empty() {
        h.push_str("<p class=\"muted\">No failures to score (no failures.csv and no recall_by_kind in summary.json).</p>\n");
        return;
    }
    let true_alerts = true_alerts_by_kind(inp);
    let s = inp.summary.as_ref();
    let precision = get_f(s, "precision");
    h.push_str(
        "<p class=\"muted\">Recall is per kind. A false alarm precedes no failure and so has no kind: precision is fleet-wide; \
the table counts, per kind, the alerts that preceded a failure of that kind (true alerts).</p>\n",
    );
    h.push_str("<table id=\"kinds\"><tr><th>kind</th><th>failures</th><th>predicted</th><th>recall</th><th>true alerts</th><th>median lead (min)</th></tr>\n");
    let mut tf = 0;
    let mut tp = 0;
    for (k, (f, p, l)) in &rows {
        tf += f;
        tp += p;
        let mut l = l.clone();
        l.sort_by(f64::total_cmp);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{f}</td><td class=\"n\">{p}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(k),
            opt((*f > 0).then(|| *p as f64 / *f as f64), 3),
            if inp.failures.is_some() { true_alerts.get(k).copied().unwrap_or(0).to_string() } else { "–".into() },
            opt(quantile(&l, 0.5), 1)
        );
    }
    let _ = writeln!(
        h,
        "<tr><th>all</th><th class=\"n\">{tf}</th><th class=\"n\">{tp}</th><th class=\"n\">{}</th><th colspan=\"2\">precision {}</th></tr></table>",
        opt((tf > 0).then(|| tp as f64 / tf as f64), 3),
        opt(precision, 3)
    );
    // Bar chart: recall per kind, then overall recall and precision.
    let mut bars: Vec<(String, Option<f64>, &str)> =
        rows.iter().map(|(k, (f, p, _))| (format!("recall {k}"), (*f > 0).then(|| *p as f64 / *f as f64), "#2a7ab9")).collect();
    bars.push(("recall (all)".into(), (tf > 0).then(|| tp as f64 / tf as f64), "#174a73"));
    bars.push(("precision (all)".into(), precision, "#2ca02c"));
    let (w, lw, bh) = (620.0, 150.0, 18.0);
    let ht = bars.len() as f64 * (bh + 6.0) + 24.0;
    let pw = w - lw - 50.0;
    let _ = writeln!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"kind-bars\" width=\"{w}\" height=\"{ht:.0}\" viewBox=\"0 0 {w} {ht:.0}\" role=\"img\" aria-label=\"recall and precision by kind\">"
    );
    for (i, (label, v, colour)) in bars.iter().enumerate() {
        let y0 = 4.0 + i as f64 * (bh + 6.0);
        let bw = v.unwrap_or(0.0).clamp(0.0, 1.0) * pw;
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text><rect x=\"{lw}\" y=\"{y0:.1}\" width=\"{pw:.1}\" height=\"{bh}\" fill=\"#f0f0f0\"/><rect x=\"{lw}\" y=\"{y0:.1}\" width=\"{bw:.1}\" height=\"{bh}\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
            lw - 6.0,
            y0 + bh - 5.0,
            esc(label),
            lw + pw + 4.0,
            y0 + bh - 5.0,
            opt(*v, 2)
        );
    }
    for r in [0.0, 0.5, 1.0] {
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\" fill=\"#666\">{r:.1}</text>",
            lw + r * pw,
            ht - 6.0
        );
    }
    h.push_str("</svg>\n");
}

fn timeline(h: &mut String, inp: &Inputs) {
    h.push_str("<h2>Decisions</h2>\n");
    let Some(ds) = &inp.decisions else {
        h.push_str("<p class=\"muted\">No decisions.jsonl in the output directory.</p>\n");
        return;
    };
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for d in ds {
        *by_kind.entry(d.kind.as_str()).or_insert(0) += 1;
    }
    let counts: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(h, "<p class=\"muted\">{} decisions: {}.</p>", ds.len(), esc(&counts.join(", ")));
    h.push_str(
        "<table id=\"decisions\"><tr><th>time (UTC)</th><th>kind</th><th>host</th><th>resource</th><th>target</th><th>reason</th></tr>\n",
    );
    for d in ds.iter().take(MAX_DECISION_ROWS) {
        let (colour, _) = decision_class(&d.kind);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td style=\"color:{colour}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&time(d.ts)),
            esc(&d.kind),
            esc(&d.host),
            esc(&d.resource),
            esc(&d.target),
            esc(&d.reason)
        );
    }
    h.push_str("</table>\n");
    if ds.len() > MAX_DECISION_ROWS {
        let _ = writeln!(
            h,
            "<p class=\"muted\" id=\"decisions-more\">… and {} more decisions (see decisions.jsonl).</p>",
            ds.len() - MAX_DECISION_ROWS
        );
    }
}

fn ranking(h: &mut String, inp: &Inputs, stats: &[(String, HostStats)]) {
    h.push_str("<h2>Hosts by peak risk</h2>\n");
    h.push_str("<table id=\"ranking\"><tr><th>#</th><th>host</th><th>peak risk</th><th>at (UTC)</th><th>alerts</th><th>failures</th><th>decisions</th></tr>\n");
    for (i, (host, s)) in stats.iter().take(MAX_RANKED_HOSTS).enumerate() {
        let _ = writeln!(
            h,
            "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            i + 1,
            esc(host),
            opt(s.peak, 3),
            s.peak_ts.map_or_else(|| "–".to_string(), |t| esc(&time(t))),
            s.alerts,
            if inp.failures.is_some() { s.failures.to_string() } else { "–".into() },
            s.decisions
        );
    }
    h.push_str("</table>\n");
    if stats.len() > MAX_RANKED_HOSTS {
        let _ = writeln!(h, "<p class=\"muted\">… and {} more hosts.</p>", stats.len() - MAX_RANKED_HOSTS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn splits_quoted_csv() {
        assert_eq!(split_csv("h1,\"a,b\",\"say \"\"hi\"\"\""), vec!["h1", "a,b", "say \"hi\""]);
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(time(1_699_920_000_000), "2023-11-14 00:00:00Z");
        assert_eq!(short_time(1_699_920_000_000), "11-14 00:00");
    }

    #[test]
    fn report_of_a_small_output_is_deterministic_and_escaped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let ds = dir.path().join("ds");
        std::fs::create_dir_all(&out).expect("mkdir");
        std::fs::create_dir_all(&ds).expect("mkdir");
        let h = 3_600_000;
        std::fs::write(out.join("alerts.csv"), format!("host,timestamp,score\nh<1>,{},0.9\nh2,{},0.8\n", 8 * h, 3 * h)).expect("w");
        std::fs::write(
            out.join("decisions.jsonl"),
            format!("{{\"ts\":{},\"kind\":\"shadow_planned\",\"host\":\"h<1>\",\"resource\":\"db-1\",\"target_host\":\"h2\",\"reason\":\"risk <0.9> & up\"}}\n", 8 * h),
        )
        .expect("w");
        let mut risk = String::from("host,timestamp,risk,probability,alerting\n");
        for i in 0..24 {
            let _ = writeln!(risk, "h<1>,{},{:.2},0.1,{}", i * h, i as f64 / 24.0, u8::from(i >= 8));
            let _ = writeln!(risk, "h2,{},0.1,0.1,0", i * h);
        }
        std::fs::write(out.join("risk.csv"), risk).expect("w");
        std::fs::write(ds.join("failures.csv"), format!("host,timestamp,kind\nh<1>,{},oom\n", 10 * h)).expect("w");
        std::fs::write(ds.join("dataset.json"), format!("{{\"name\":\"t&t\",\"start_ms\":0,\"end_ms\":{}}}", 24 * h)).expect("w");
        let p = write_report(&out, Some(&ds)).expect("report");
        let a = std::fs::read_to_string(&p).expect("read");
        write_report(&out, Some(&ds)).expect("report again");
        let b = std::fs::read_to_string(&p).expect("read");
        assert_eq!(a, b, "same input, same bytes");
        assert!(a.contains("harbinger report: t&amp;t"));
        assert!(a.contains("h&lt;1&gt;"));
        assert!(!a.contains("h<1>"));
        assert!(a.contains("risk &lt;0.9&gt; &amp; up"));
        assert!(a.contains("class=\"failure\""));
        assert!(a.contains("class=\"alert\""));
        assert!(a.contains("class=\"decision\""));
        // h<1>: alert at 8 h, failure at 10 h: lead 120 min, recall 1 for oom.
        assert!(a.contains("median 120"), "{a}");
        assert!(a.contains("<td>oom</td><td class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">1.000</td>"));
    }
}
