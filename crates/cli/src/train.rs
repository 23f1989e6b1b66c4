//! `harbinger train` and `harbinger eval` (a model, or the `--baseline prometheus-rules`
//! alerting rules): the batch jobs over a dataset directory.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use harbinger_core::HostId;
use harbinger_dataset::{Dataset, LoadOptions, MetricStream, read_dataset, read_inventory};
use harbinger_model::features::TimeScales;
use harbinger_model::learn::ForestParams;
use harbinger_model::train::SplitBy;
use harbinger_model::{
    EvalOptions, LearnerChoice, Mitigation, RuleSet, RulesOptions, Survey, TrainOptions, evaluate_rules, evaluate_ticks, train_stream,
    write_output,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{BenchScoreArgs, EvalArgs, TrainArgs};

/// Decision kinds in a replay's `decisions.jsonl` that mitigate a coming failure.
const MITIGATING: [&str; 4] = ["failover", "shadow_promoted", "host_drained", "drain"];

pub(crate) fn bar(stage: &str) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(1000);
        pb.set_style(
            ProgressStyle::with_template("{msg:>9} [{bar:40}] {percent:>3}% {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_message(stage.to_string());
        pb
    } else {
        ProgressBar::hidden()
    }
}

pub(crate) fn load(dir: &Path) -> anyhow::Result<Dataset> {
    let t = Instant::now();
    let (ds, report) = read_dataset(dir, LoadOptions::default()).with_context(|| format!("reading dataset {}", dir.display()))?;
    tracing::info!(
        dir = %dir.display(),
        hosts = ds.hosts.len(),
        rows = report.metric_rows,
        failures = ds.failures.len(),
        seconds = t.elapsed().as_secs_f64(),
        "dataset loaded"
    );
    Ok(ds)
}

/// Reads mitigating decisions from `decisions.jsonl` in the dataset directory, if present.
fn mitigations(dir: &Path) -> anyhow::Result<Vec<Mitigation>> {
    let path = dir.join("decisions.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}:{}: not a JSON object", path.display(), i + 1))?;
        let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if !MITIGATING.contains(&kind) {
            continue;
        }
        let (Some(host), Some(ts)) = (v.get("host").and_then(|h| h.as_str()), v.get("ts").and_then(serde_json::Value::as_i64)) else {
            anyhow::bail!("{}:{}: a {kind} decision needs \"host\" and an integer \"ts\"", path.display(), i + 1);
        };
        out.push(Mitigation { host: HostId::new(host), ts });
    }
    Ok(out)
}

pub(crate) fn duration_ms(what: &str, s: &str) -> anyhow::Result<i64> {
    let d = humantime::parse_duration(s).with_context(|| format!("--{what} {s:?} is not a duration like 6h or 5m"))?;
    i64::try_from(d.as_millis()).with_context(|| format!("--{what} is too long"))
}

/// Spacing of training rows when `--tick` is not given (or the data's step when coarser).
const DEFAULT_TICK_MS: i64 = 5 * 60_000;

/// Keeps the hosts of one part of a split by a hash of the host id
/// ([`harbinger_model::train::host_share`], unsalted: the same everywhere): `holdout` keeps about `share` of them, `train` the rest.
///
/// # Errors
/// A share outside (0, 1), an unknown part, or a part without hosts.
pub(crate) fn host_part(mut ds: Dataset, part: Option<&str>, share: f64) -> anyhow::Result<Dataset> {
    let Some(part) = part else { return Ok(ds) };
    anyhow::ensure!(share > 0.0 && share < 1.0, "--holdout-hosts {share} must lie strictly between 0 and 1");
    let want_holdout = match part {
        "holdout" => true,
        "train" => false,
        other => anyhow::bail!("--hosts-part {other:?} is not one of train, holdout"),
    };
    let keep = |h: &HostId| (harbinger_model::train::host_share(h, 0) <= share) == want_holdout;
    let loaded = !ds.metrics.is_empty();
    ds.hosts.retain(|h| keep(&h.host));
    ds.metrics.retain(|s| keep(&s.key.host));
    ds.failures.retain(|f| keep(&f.host));
    ds.resources.retain(|r| keep(&r.host));
    ds.events.retain(|e| e.host.as_ref().is_none_or(&keep));
    // A dataset read as it goes (`train`) has no samples yet: its caller checks them.
    let left = if loaded { !ds.metrics.is_empty() } else { !ds.hosts.is_empty() };
    anyhow::ensure!(left, "--hosts-part {part} with --holdout-hosts {share} leaves no host with data");
    tracing::info!(part, share, hosts = ds.hosts.len(), failures = ds.failures.len(), "hosts split");
    Ok(ds)
}

/// The imminence model's horizon when `--short-horizon` is not given.
const DEFAULT_SHORT_HORIZON_MS: i64 = 2 * 3_600_000;

/// `harbinger train`.
///
/// # Errors
/// Unreadable dataset, a dataset the model cannot be learned from, unwritable output.
pub fn run_train(a: &TrainArgs, registry: &Path) -> anyhow::Result<()> {
    let t0 = Instant::now();
    // The samples are read twice, a row group at a time: a survey (span, step, metric
    // ranges and seasons), then the features as the file is read. Nothing holds the
    // whole fleet's samples.
    let (ds, report) = read_inventory(&a.data).with_context(|| format!("reading dataset {}", a.data.display()))?;
    let known: Vec<HostId> = ds.hosts.iter().map(|h| h.host.clone()).collect();
    let name = ds.meta.as_ref().map(|m| m.name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| a.data.display().to_string());
    let learner = match a.learner.as_str() {
        "auto" => LearnerChoice::Auto,
        "logistic" => LearnerChoice::Logistic,
        "random-forest" | "random_forest" | "forest" => LearnerChoice::RandomForest,
        "boosted-trees" | "boosted_trees" | "boosted" => LearnerChoice::BoostedTrees,
        "all" => LearnerChoice::All,
        other => anyhow::bail!("--learner {other:?} is not one of auto, logistic, random-forest, boosted-trees, all"),
    };
    let short_learner = match a.short_learner.as_str() {
        "logistic" => LearnerChoice::Logistic,
        "boosted-trees" | "boosted_trees" | "boosted" => LearnerChoice::BoostedTrees,
        other => anyhow::bail!("--short-learner {other:?} is not one of logistic, boosted-trees"),
    };
    let ds = host_part(ds, a.hosts_part.as_deref(), a.holdout_hosts)?;
    let keep: Option<Vec<HostId>> = a.hosts_part.is_some().then(|| ds.hosts.iter().map(|h| h.host.clone()).collect());
    // A block of hosts reads only its hosts' rows (within the --hosts-part, if any).
    let mut open_block =
        |block: Option<&[HostId]>| MetricStream::open(&report.metrics_file, &known, block.or(keep.as_deref()), LoadOptions::default());
    let open = || {
        MetricStream::open(&report.metrics_file, &known, keep.as_deref(), LoadOptions::default())
            .with_context(|| format!("reading dataset {}", a.data.display()))
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let horizon_ms = duration_ms("horizon", &a.horizon)?;
    anyhow::ensure!(horizon_ms > 0, "--horizon must be longer than zero");
    let survey = {
        let mut stream = open()?;
        let (pb, total) = (bar("reading"), stream.total_rows().unwrap_or(0).max(1));
        let survey = Survey::scan(ds.meta.as_ref(), &mut stream, |rows| pb.set_position(rows * 1000 / total))
            .with_context(|| format!("reading dataset {}", a.data.display()))?;
        pb.finish_and_clear();
        survey
    };
    if let Some(part) = &a.hosts_part {
        anyhow::ensure!(survey.rows > 0, "--hosts-part {part} with --holdout-hosts {} leaves no host with data", a.holdout_hosts);
    }
    tracing::info!(
        dir = %a.data.display(),
        hosts = ds.hosts.len(),
        rows = survey.rows,
        failures = ds.failures.len(),
        seconds = t0.elapsed().as_secs_f64(),
        "dataset surveyed"
    );
    if survey.lateness_ms > 0 {
        eprintln!(
            "note: {} is not sorted by time (a row comes up to {} behind an earlier one): training holds the rows read ahead until their time comes, which takes more memory",
            report.metrics_file.display(),
            humantime::format_duration(std::time::Duration::from_millis(survey.lateness_ms.unsigned_abs()))
        );
    }
    let scales = TimeScales::derive(survey.step_ms, horizon_ms);
    let tick_ms = match &a.tick {
        Some(t) => duration_ms("tick", t)?,
        None => DEFAULT_TICK_MS.max(scales.step_ms).min(horizon_ms),
    };
    let opts = TrainOptions {
        horizon_ms,
        tick_ms,
        scales: Some(scales),
        target_precision: a.target_precision,
        holdout_share: a.holdout,
        split: match a.split.as_str() {
            "hosts" => SplitBy::Hosts,
            "time" => SplitBy::Time,
            _ => SplitBy::Auto,
        },
        seed: a.seed,
        forest: ForestParams { trees: a.trees, ..ForestParams::default() },
        learner,
        short_learner,
        dataset_name: name,
        mitigations: mitigations(&a.data)?,
        trained_at_ms: i64::try_from(now).unwrap_or(0),
        keep_rows: a.export_features.is_some(),
        short_horizon_ms: match a.short_horizon.as_deref() {
            Some("none") => None,
            Some(v) => Some(duration_ms("short-horizon", v)?),
            // Minute-level data: 2 h; coarser data: a third of the horizon, on the tick.
            None if scales.is_reference() => Some(DEFAULT_SHORT_HORIZON_MS).filter(|&h| h < horizon_ms),
            None => Some((horizon_ms / 3).div_euclid(tick_ms) * tick_ms).filter(|&h| h >= tick_ms && h < horizon_ms),
        },
        memory_budget: a.memory_budget.map(|b| b.as_u64()),
        ..TrainOptions::default()
    };
    let pb = bar("features");
    let stage = std::sync::Mutex::new(String::new());
    let progress = |s: &str, f: f64| {
        if let Ok(mut cur) = stage.lock()
            && *cur != s
        {
            *cur = s.to_string();
            pb.set_message(s.to_string());
        }
        pb.set_position((f * 1000.0) as u64);
    };
    let trained = train_stream(&ds, &survey, &mut open_block, &opts, &progress)?;
    pb.finish_and_clear();
    let m = &trained.model;
    // With --publish and no --out, the artifact is written to a scratch directory first:
    // publishing reads an artifact directory, as it would one from elsewhere.
    let scratch = match &a.out {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("creating a scratch directory for the model")?),
    };
    let out = a.out.as_deref().or(scratch.as_ref().map(tempfile::TempDir::path)).unwrap_or(Path::new("."));
    harbinger_registry::save(m, out).with_context(|| format!("writing the model to {}", out.display()))?;
    if let (Some(path), Some(rows)) = (&a.export_features, &trained.rows) {
        crate::export::write_rows(path, rows).with_context(|| format!("writing features to {}", path.display()))?;
    }
    let c = &m.card;
    if let Some(o) = &a.out {
        println!("model {} written to {}", m.version, o.display());
    }
    if let Some(name) = &a.publish {
        let p = crate::models::publish(registry, name, out)?;
        println!("model {} published as {name} in {}{}", m.version, registry.display(), if p.made_current { " (current)" } else { "" });
    }
    println!(
        "  learner      {} (held-back PR-AUC {})",
        m.learner.name(),
        c.learners.iter().map(|l| format!("{} {:.3}", l.learner, l.pr_auc)).collect::<Vec<_>>().join(", ")
    );
    println!(
        "  rows         train {} ({} failure rows), held back {} ({})",
        c.train_rows, c.train_positives, c.holdout_rows, c.holdout_positives
    );
    match (c.split_failures, c.held_back_hosts) {
        (Some((tr, ho)), Some(held)) => {
            println!("  failures     {tr} on training hosts, {ho} on the {held} held-back hosts (split by host)");
        }
        (Some((tr, ho)), None) => println!("  failures     {tr} before the split (training), {ho} after it (held back)"),
        (None, _) => {}
    }
    println!("  time scales  {}", m.schema.scales.describe());
    println!("  alerting     enter ≥ {:.3}, clear < {:.3}", m.policy.alert_threshold, m.policy.clear_threshold);
    let h = &c.holdout_summary;
    println!(
        "  held back    recall {} precision {} false alarms/host-day {} lead median {} min",
        fmt(h.get("recall_predictable")),
        fmt(h.get("precision")),
        fmt(h.get("false_alarms_per_host_day")),
        fmt(h.get("lead_time_median_min"))
    );
    println!(
        "  time         features {:.1} s, fit {:.1} s, total {:.1} s (with loading)",
        c.seconds.0,
        c.seconds.1,
        t0.elapsed().as_secs_f64()
    );
    let b = trained.blocks;
    let gib = |x: u64| format!("{:.2} GiB", x as f64 / f64::from(1u32 << 30));
    let blocks =
        if b.count > 1 { format!("{} blocks of hosts, at most {} in one", b.count, b.largest) } else { "one block of hosts".into() };
    let budget = a.memory_budget.map_or_else(String::new, |x| format!(", budget {}", gib(x.as_u64())));
    let peak = b.peak_bytes.map_or_else(|| "peak n/a".into(), |p| format!("peak {}", gib(p)));
    println!("  memory       {peak} (features in {blocks}{budget})");
    if let (Some(limit), Some(p)) = (a.memory_budget, b.peak_bytes)
        && p > limit.as_u64()
    {
        eprintln!(
            "note: the peak ({}) went past --memory-budget {}: the first block, the {} hosts the fleet signal is taken from, is computed whole whatever the budget, and the kept rows grow with the fleet; see the memory line",
            gib(p),
            gib(limit.as_u64()),
            b.first
        );
    }
    Ok(())
}

fn fmt(v: Option<&serde_json::Value>) -> String {
    v.and_then(serde_json::Value::as_f64).map_or_else(|| "n/a".into(), |f| format!("{f:.3}"))
}

/// `harbinger eval`.
///
/// # Errors
/// Unreadable dataset or model, unwritable output.
pub fn run_eval(a: &EvalArgs, model_dir: &Path, budget: &harbinger_plan::Budget) -> anyhow::Result<()> {
    let model = harbinger_registry::load_resolved(model_dir)?;
    let ds = host_part(load(&a.data)?, a.hosts_part.as_deref(), a.holdout_hosts)?;
    let mut model = model;
    if let Some(w) = &a.warning {
        model.schema.scales.warning_ms = duration_ms("warning", w)?.max(1);
    }
    let opts = EvalOptions {
        tick_ms: match &a.tick {
            Some(t) => duration_ms("tick", t)?,
            None if model.schema.scales.is_reference() => 60_000,
            None => model.schema.scales.step_ms.max(60_000),
        },
        alert_threshold: a.alert_threshold,
        clear_threshold: a.clear_threshold,
        trace_every_ms: a.trace_every.as_deref().map(|v| duration_ms("trace-every", v)).transpose()?,
    };
    let pb = bar("eval");
    let t = Instant::now();
    // The shadow planner on the same virtual clock, with the log actuator's outcomes.
    let mut planner = harbinger_plan::DryRun::new(&ds.hosts, &ds.resources, budget.clone());
    // Host positions never change during a run: index them at the first tick.
    let mut index: std::collections::HashMap<harbinger_core::HostId, usize> = std::collections::HashMap::new();
    // Ground truth: a host is down from its failure until it reports again 30 min later.
    let mut failures: Vec<(i64, harbinger_core::HostId)> = ds.failures.iter().map(|f| (f.timestamp, f.host.clone())).collect();
    failures.sort();
    let (mut next_failure, mut down) = (0usize, std::collections::BTreeMap::new());
    let mut on_tick = |t: &harbinger_model::EvalTick<'_>| {
        while let Some((ts, h)) = failures.get(next_failure).filter(|(ts, _)| *ts <= t.now) {
            planner.set_up(h, false);
            down.insert(h.clone(), *ts);
            next_failure += 1;
        }
        if index.is_empty() {
            index = t.hosts.iter().enumerate().map(|(i, h)| (h.clone(), i)).collect();
        }
        let state = |h: &harbinger_core::HostId| {
            index.get(h).map(|&i| harbinger_plan::HostTick {
                risk: t.risk[i],
                probability: t.probability[i],
                imminence: t.imminence[i],
                alerting: t.alerting[i],
            })
        };
        down.retain(|h, since| {
            let back = t.now - *since >= 30 * 60_000 && index.get(h).is_some_and(|&i| t.probability[i] > 0.0);
            if back {
                planner.set_up(h, true);
            }
            !back
        });
        planner.tick(t.now, t.transitions, state);
    };
    let out = evaluate_ticks(&ds, &model, opts, &|f| pb.set_position((f * 1000.0) as u64), &mut on_tick)?;
    pb.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    write_output(&a.out, &out)?;
    let decisions = write_decisions(&a.out, planner.decisions())?;
    let s = &out.summary;
    if a.json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!("eval of model {} on {} ({} hosts, {:.1} host-days)", model.version, a.data.display(), s.hosts, s.host_days);
    print_summary(s);
    println!("  scored            {} host-scores in {secs:.1} s; output in {}", out.scores, a.out.display());
    println!(
        "  decisions         {decisions} ({} shadows the log actuator would have created)",
        planner.decisions().iter().filter(|d| d.kind == harbinger_plan::kind::SHADOW_PLANNED).count()
    );
    Ok(())
}

/// Writes `decisions.jsonl` (the contract's schema, one decision per line, in time order).
fn write_decisions(dir: &Path, decisions: &[harbinger_plan::Decision]) -> anyhow::Result<usize> {
    use std::io::Write as _;
    let path = dir.join("decisions.jsonl");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?);
    for d in decisions {
        serde_json::to_writer(&mut w, d)?;
        w.write_all(b"\n")?;
    }
    w.flush().with_context(|| format!("writing {}", path.display()))?;
    Ok(decisions.len())
}

/// The summary lines `eval` prints for a model and for a baseline alike.
pub(crate) fn print_summary(s: &harbinger_model::Summary) {
    let f = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.3}"));
    println!("  failures          {} ({} predicted)", s.failures, s.predicted);
    println!("  recall            {} (predictable kinds: {})", f(s.recall), f(s.recall_predictable));
    println!("  precision         {} ({} alerts, {} false)", f(s.precision), s.alerts, s.false_alarms);
    println!("  false alarms      {:.4} per host-day", s.false_alarms_per_host_day);
    println!(
        "  lead time         median {} min (p10 {}, p90 {})",
        f(s.lead_time_median_min),
        f(s.lead_time_p10_min),
        f(s.lead_time_p90_min)
    );
    for (k, r) in &s.recall_by_kind {
        println!("  recall {k:<10} {}/{} = {:.3}", r.predicted, r.failures, r.recall);
    }
}

/// `harbinger eval --baseline prometheus-rules [--rules FILE]`: the alerting-rules
/// baseline over the dataset, scored and written exactly as a model's evaluation.
///
/// # Errors
/// Unreadable dataset or rule file, an invalid rule (named), unwritable output.
pub fn run_baseline(a: &EvalArgs) -> anyhow::Result<()> {
    let rules = match &a.rules {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading the rule file {}", path.display()))?;
            RuleSet::from_toml(&text).with_context(|| format!("rule file {}", path.display()))?
        }
        None => RuleSet::default(),
    };
    let ds = host_part(load(&a.data)?, a.hosts_part.as_deref(), a.holdout_hosts)?;
    let opts = RulesOptions {
        tick_ms: a.tick.as_deref().map_or(Ok(60_000), |t| duration_ms("tick", t))?,
        warning_ms: a.warning.as_deref().map_or(Ok(harbinger_model::eval::WARNING_MS), |w| duration_ms("warning", w))?.max(1),
    };
    let pb = bar("rules");
    let t = Instant::now();
    let out = evaluate_rules(&ds, &rules, opts, &|f| pb.set_position((f * 1000.0) as u64))?;
    pb.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    write_output(&a.out, &out.eval)?;
    let s = &out.eval.summary;
    if a.json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    let source = a.rules.as_ref().map_or_else(|| "default rules".to_string(), |p| p.display().to_string());
    println!("eval of baseline prometheus-rules ({source}) on {} ({} hosts, {:.1} host-days)", a.data.display(), s.hosts, s.host_days);
    print_summary(s);
    for (r, n) in &out.started_by {
        println!("  rule {:<26} {:>4} alerts started  {}", r.alert, n, r.describe());
    }
    for r in &out.skipped {
        println!("  rule {:<26} skipped (no {} in the dataset)", r.alert, r.metric);
    }
    println!("  evaluated         {} host-evaluations in {secs:.1} s; output in {}", out.eval.scores, a.out.display());
    Ok(())
}

/// `harbinger bench score`: host-scores per second of the live scorer on one thread,
/// warmed with a whole dataset, every host scored in batches (features, fleet signal,
/// model, calibration, risk, hysteresis and the top factors: what `ScoreHosts` does
/// behind the RPC). Prints a Markdown section.
///
/// # Errors
/// Unreadable model or dataset.
pub fn bench_score(a: &BenchScoreArgs, model_dir: &Path) -> anyhow::Result<()> {
    use harbinger_core::{ManualClock, RiskScorer, SampleBatch};
    let model = harbinger_registry::load_resolved(model_dir)?;
    let version = model.version.clone();
    let ds = load(&a.data)?;
    let end = ds.metrics.iter().filter_map(|s| s.timestamps.last().copied()).max().unwrap_or(0);
    let clock = std::sync::Arc::new(ManualClock::new(end));
    let scorer = harbinger_model::LiveScorer::new(model, harbinger_registry::model_source(model_dir), clock, None, None);
    scorer.set_inventory(&ds.hosts, &ds.resources);
    scorer.observe_events(&ds.events);
    scorer.observe_samples(&SampleBatch { series: ds.metrics.clone() });
    let hosts: Vec<HostId> = ds.hosts.iter().map(|h| h.host.clone()).collect();
    anyhow::ensure!(!hosts.is_empty(), "the dataset has no hosts");
    let batch: Vec<HostId> = (0..a.batch.max(1)).map(|i| hosts[i % hosts.len()].clone()).collect();
    scorer.score_hosts(&batch)?;
    let mut rates = Vec::new();
    for _ in 0..a.runs.max(1) {
        let t = Instant::now();
        let mut n = 0usize;
        while t.elapsed().as_secs_f64() < a.seconds {
            n += scorer.score_hosts(&batch)?.len();
        }
        rates.push(n as f64 / t.elapsed().as_secs_f64());
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let cmd: Vec<String> = std::env::args().collect();
    println!("### In-process scoring, one thread\n");
    println!("Command: `{}`  ", cmd.join(" "));
    println!("Date: {}  ", humantime::format_rfc3339_seconds(std::time::SystemTime::now()));
    println!("Machine: {}  ", crate::bench::machine());
    println!(
        "Model {version}; {} hosts warmed with {} ({} samples); `score_hosts` in batches of {} on one thread, {} s per run, median of {} runs.\n",
        hosts.len(),
        a.data.display(),
        ds.metric_rows(),
        a.batch,
        a.seconds,
        a.runs.max(1)
    );
    println!("| figure | value | target |\n|---|---|---|");
    let list: Vec<String> = rates.iter().map(|r| format!("{:.1} k", r / 1e3)).collect();
    println!("| host-scores per second, one core | **{:.1} k** [{}] | >= 100 k |", median / 1e3, list.join(", "));
    Ok(())
}
