//! `harbinger bench change`: change safety at scale, in process.
//!
//! A deterministic synthetic stack (`--seed`): `--resources` `file` resources
//! (`r00000` ...; the files are never read, the analysis is pure), each with a small state
//! `{"content": {"version", "config": {"pool", "timeout_ms", "flags": {...}}}}`, a
//! criticality 0–3, and a random DAG of `depends_on` (each resource depends on 0–3
//! resources chosen uniformly among the earlier ones). `--changed` of them get a desired
//! state differing in 1–3 leaves (replace, add and remove mixed; one update-stack entry
//! per edit). The template is generated as JSON text and parsed with
//! [`harbinger_change::template::parse`] (timed apart).
//!
//! Figures:
//! - [`harbinger_change::whatif::analyse`] (graph + cycle check, targets, diff, apply
//!   stages, dependents, baseline, risk, rollback simulation), `--repeat` times, with an
//!   empty change log (default durations) and with a synthetic log of 2,000 entries
//!   (durations and failure rates from history); then each part alone.
//! - Snapshot `take` of every resource's state and `restore` of each onto its changed
//!   state, through a [`SnapshotStore`] configured as `ChangeEngine::open` does (whole
//!   state), in a temporary directory; every restore is checked against the state taken.
//! - The `file` kind's round trip: every state written (`write_restore`, atomic with
//!   fsync) and read back through [`FileResource`], one at a time, each read checked.
//! - With `--peer`: `bench/change_peer.py` (Python: `graphlib`, `jsonpatch` when
//!   importable) on the same template, states and log, and the ratios.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use harbinger_actuate::resource::ResourceDriver;
use harbinger_actuate::resource::file::{FileResource, FileSpec};
use harbinger_change::anomaly::Baseline;
use harbinger_change::risk::{ChangeFeatures, ChangeRiskModel};
use harbinger_change::simulate::simulate;
use harbinger_change::store::LogEntry;
use harbinger_change::template::{self, Template};
use harbinger_change::types::UpdateOp;
use harbinger_change::whatif::{self, AnalysisInputs};
use harbinger_snapshot::{ChangeProfile, Profiles, SnapshotConfig, SnapshotStore, exact_eq};
use rand::seq::index;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

use crate::args::BenchChangeArgs;

/// A fixed "now" (2025-12-06T00:00:00Z), so that runs are comparable.
const NOW_MS: i64 = 1_764_979_200_000;
/// Entries of the synthetic change log.
const LOG_ENTRIES: usize = 2_000;
/// Restores at once, as `harbinger whatif` defaults to.
const PARALLELISM: usize = 4;

/// The generated stack.
struct Stack {
    /// The template as JSON text.
    text: String,
    /// Each resource's current state.
    current: BTreeMap<String, Value>,
    /// Each changed resource's state after the change.
    changed_states: BTreeMap<String, Value>,
    /// Update-stack entries the edits make (one per edit).
    edits: usize,
    /// `depends_on` edges.
    edges: usize,
}

fn id_of(i: usize) -> String {
    format!("r{i:05}")
}

fn content(i: usize) -> Value {
    json!({
        "version": format!("1.{}.{}", i % 4, i % 10),
        "config": {
            "pool": 16,
            "timeout_ms": 5000,
            "flags": {"tls": true, "gzip": i.is_multiple_of(2), "http2": true},
        },
    })
}

/// Applies edit `slot` (0..7) to a resource's content; each moves exactly one leaf.
fn edit(c: &mut Value, slot: usize, id: &str) {
    let set = |c: &mut Value, at: &str, key: &str, v: Value| {
        if let Some(o) = c.pointer_mut(at).and_then(Value::as_object_mut) {
            o.insert(key.to_string(), v);
        }
    };
    let remove = |c: &mut Value, at: &str, key: &str| {
        if let Some(o) = c.pointer_mut(at).and_then(Value::as_object_mut) {
            o.remove(key);
        }
    };
    match slot {
        0 => set(c, "/config", "pool", json!(32)),
        1 => {
            let v = c.get("version").and_then(Value::as_str).unwrap_or("1.0.0").to_string();
            let mut parts: Vec<u64> = v.split('.').filter_map(|p| p.parse().ok()).collect();
            parts.resize(3, 0);
            set(c, "", "version", json!(format!("{}.{}.{}", parts[0], parts[1], parts[2] + 1)));
        }
        2 => set(c, "/config/flags", "tls", json!(false)),
        3 => set(c, "/config", "retries", json!(3)),
        4 => set(c, "/config/flags", "canary", json!(format!("on-{id}"))),
        5 => remove(c, "/config/flags", "gzip"),
        _ => remove(c, "/config", "timeout_ms"),
    }
}

fn generate(n: usize, changed: usize, seed: u64) -> anyhow::Result<Stack> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let changed_set: BTreeSet<usize> = index::sample(&mut rng, n, changed.min(n)).into_iter().collect();
    let mut resources = Vec::with_capacity(n);
    let mut current = BTreeMap::new();
    let mut changed_states = BTreeMap::new();
    let (mut edits, mut edges) = (0, 0);
    for i in 0..n {
        let id = id_of(i);
        let k = rng.random_range(0..=3usize).min(i);
        let mut deps: Vec<usize> = index::sample(&mut rng, i, k).into_iter().collect();
        deps.sort_unstable();
        edges += deps.len();
        let criticality = rng.random_range(0..=3u8);
        let mut r = Map::new();
        r.insert("id".into(), json!(id));
        r.insert("kind".into(), json!("file"));
        r.insert("path".into(), json!(format!("r/{id}.json")));
        r.insert("criticality".into(), json!(criticality));
        r.insert("depends_on".into(), json!(deps.iter().map(|d| id_of(*d)).collect::<Vec<_>>()));
        let now = content(i);
        if changed_set.contains(&i) {
            let m = rng.random_range(1..=3usize);
            let mut desired = now.clone();
            for slot in index::sample(&mut rng, 7, m) {
                edit(&mut desired, slot, &id);
            }
            edits += m;
            let desired = json!({ "content": desired });
            r.insert("desired".into(), desired.clone());
            changed_states.insert(id.clone(), desired);
        }
        current.insert(id, json!({ "content": now }));
        resources.push(Value::Object(r));
    }
    let doc = json!({
        "stack": "bench",
        "description": format!("{changed} of {n} resources changed (bench change, seed {seed})"),
        "resources": resources,
    });
    let text = serde_json::to_string(&doc).context("template to JSON")?;
    Ok(Stack { text, current, changed_states, edits, edges })
}

/// A synthetic change log: snapshot, apply, verify and rollback steps of past changes on
/// `file` resources, with durations of a few to a few tens of ms and 2 % failures.
fn change_log(ids: &[&String], seed: u64) -> Vec<LogEntry> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_c4a6);
    let steps = ["snapshot", "apply", "verify", "rollback"];
    (0..LOG_ENTRIES)
        .map(|j| {
            let u: f64 = rng.random();
            let failed = rng.random_range(0..50) == 0;
            LogEntry {
                ts_ms: NOW_MS - 86_400_000 + (j as i64) * 1_000,
                change: format!("c{:04}", j / 8),
                stack: "bench".to_string(),
                step: steps[j % steps.len()].to_string(),
                resource: ids.get(rng.random_range(0..ids.len().max(1))).map(|s| (*s).clone()),
                kind: Some("file".to_string()),
                outcome: if failed { "failed" } else { "ok" }.to_string(),
                duration_ms: 5.0 + 45.0 * u * u,
                detail: String::new(),
            }
        })
        .collect()
}

/// Median, 90th percentile (nearest rank), minimum, and the runs, in ms.
fn stats(runs: &[f64]) -> Value {
    let mut s = runs.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |q: f64| s.get(((q * s.len() as f64).ceil() as usize).saturating_sub(1)).copied().unwrap_or(f64::NAN);
    json!({
        "median_ms": s.get(s.len() / 2).copied().unwrap_or(f64::NAN),
        "p90_ms": at(0.9),
        "min_ms": s.first().copied().unwrap_or(f64::NAN),
        "runs_ms": runs,
    })
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Runs `f` `repeat` times; the durations (ms) and the last result.
fn timed<T>(repeat: usize, mut f: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<(Vec<f64>, T)> {
    let mut runs = Vec::with_capacity(repeat);
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let out = f()?;
        runs.push(ms_since(t));
        last = Some(out);
    }
    let last = last.context("no run")?;
    Ok((runs, last))
}

/// Each part of `analyse` alone, in its order, `repeat` times.
fn parts(t: &Template, inputs: &AnalysisInputs<'_>, repeat: usize) -> anyhow::Result<Vec<(&'static str, Value)>> {
    let (graph_runs, graph) = timed(repeat, || Ok(whatif::graph_of(t)?))?;
    let (target_runs, targets) = timed(repeat, || Ok(whatif::targets(t, inputs)?))?;
    let empty = Value::Object(Map::new());
    let (diff_runs, per_resource) = timed(repeat, || {
        let mut per: BTreeMap<&str, Vec<UpdateOp>> = BTreeMap::new();
        for r in &t.resources {
            let to = targets.get(&r.id).unwrap_or(&empty);
            let ops = harbinger_change::diff::diff(&r.id, inputs.current.get(&r.id).unwrap_or(&empty), to);
            if !ops.is_empty() {
                per.insert(&r.id, ops);
            }
        }
        Ok(per)
    })?;
    let changed: BTreeSet<String> = per_resource.keys().map(|s| s.to_string()).collect();
    let (stage_runs, update_stack) = timed(repeat, || {
        let order = graph.stages(&changed);
        let stack: Vec<UpdateOp> =
            order.iter().flatten().flat_map(|id| per_resource.get(id.as_str()).cloned().unwrap_or_default()).collect();
        Ok(stack)
    })?;
    let (dep_runs, dependents) = timed(repeat, || Ok(graph.dependents_of(changed.iter())))?;
    let criticality: BTreeMap<String, u8> = t.resources.iter().map(|r| (r.id.clone(), r.criticality)).collect();
    let (risk_runs, _) = timed(repeat, || {
        let baseline = Baseline::learn(inputs.history);
        let anomalies = baseline.flag(&t.stack, &update_stack, inputs.now_ms);
        let features = ChangeFeatures::from_ops(&update_stack, &criticality, dependents.len(), anomalies.len());
        Ok(inputs.model.score(&features))
    })?;
    let (sim_runs, _) = timed(repeat, || {
        let sims = harbinger_change::whatif::sim_resources(t, &changed, inputs, &targets);
        Ok(simulate(&graph, &sims, inputs.log, inputs.parallelism, t.high_cost_reasons(), false))
    })?;
    Ok(vec![
        ("graph + cycle check", stats(&graph_runs)),
        ("targets (desired over current)", stats(&target_runs)),
        ("diff (update stack per resource)", stats(&diff_runs)),
        ("apply stages + update stack", stats(&stage_runs)),
        ("dependents (blast radius)", stats(&dep_runs)),
        ("baseline + change risk", stats(&risk_runs)),
        ("rollback simulation", stats(&sim_runs)),
    ])
}

/// Throughput and per-op latency of `n` operations that took `lat` ms each and `total_s`.
fn throughput(lat: &[f64], total_s: f64) -> Value {
    let s = stats(lat);
    json!({
        "ops": lat.len(),
        "per_s": lat.len() as f64 / total_s.max(1e-9),
        "median_ms": s["median_ms"],
        "p90_ms": s["p90_ms"],
        "total_s": total_s,
    })
}

fn snapshot_figures(stack: &Stack, dir: &Path) -> anyhow::Result<Value> {
    let mut scfg = SnapshotConfig::new(dir.join("snapshots"));
    scfg.profiles = Profiles::with_kinds(BTreeMap::new(), ChangeProfile::whole_state());
    let store = SnapshotStore::open(scfg)?;
    let mut lat = Vec::with_capacity(stack.current.len());
    let mut seqs = Vec::with_capacity(stack.current.len());
    let t0 = Instant::now();
    for (id, state) in &stack.current {
        let t = Instant::now();
        let meta = store.take(id, "file", state, NOW_MS)?;
        lat.push(ms_since(t));
        seqs.push(meta.seq);
    }
    let take = throughput(&lat, t0.elapsed().as_secs_f64());
    let mut lat = Vec::with_capacity(stack.current.len());
    let mut wrong = 0usize;
    let t0 = Instant::now();
    for ((id, state), seq) in stack.current.iter().zip(&seqs) {
        let onto = stack.changed_states.get(id).unwrap_or(state);
        let t = Instant::now();
        let restored = store.restore(id, *seq, onto)?;
        lat.push(ms_since(t));
        wrong += usize::from(!exact_eq(&restored, state));
    }
    let restore = throughput(&lat, t0.elapsed().as_secs_f64());
    anyhow::ensure!(wrong == 0, "{wrong} restores did not give the state taken back");
    Ok(json!({ "take": take, "restore": restore }))
}

fn file_figures(stack: &Stack, dir: &Path) -> anyhow::Result<Value> {
    let drivers: Vec<(FileResource, &Value)> = stack
        .current
        .iter()
        .map(|(id, state)| {
            let spec = FileSpec { path: PathBuf::from(format!("r/{id}.json")), format: None, directory: None };
            Ok((FileResource::new(id, &spec, dir)?, state))
        })
        .collect::<anyhow::Result<_>>()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut lat = Vec::with_capacity(drivers.len());
        let t0 = Instant::now();
        for (d, state) in &drivers {
            let t = Instant::now();
            d.write_restore(state).await?;
            lat.push(ms_since(t));
        }
        let write = throughput(&lat, t0.elapsed().as_secs_f64());
        let mut lat = Vec::with_capacity(drivers.len());
        let mut wrong = 0usize;
        let t0 = Instant::now();
        for (d, state) in &drivers {
            let t = Instant::now();
            let got = d.read().await?;
            lat.push(ms_since(t));
            wrong += usize::from(!exact_eq(&got, state));
        }
        let read = throughput(&lat, t0.elapsed().as_secs_f64());
        anyhow::ensure!(wrong == 0, "{wrong} files did not read back as written");
        Ok(json!({ "write": write, "read": read }))
    })
}

/// Writes the peer's inputs into `dir`: `template.json`, `current.json`, `log.json`.
fn emit(dir: &Path, stack: &Stack, log: &[LogEntry]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };
    write("template.json", stack.text.clone())?;
    write("current.json", serde_json::to_string(&stack.current)?)?;
    write("log.json", serde_json::to_string(log)?)?;
    Ok(())
}

fn run_peer(a: &BenchChangeArgs, dir: &Path) -> anyhow::Result<Value> {
    let out = std::process::Command::new(&a.python)
        .arg(&a.peer_script)
        .arg(dir)
        .args(["--repeat", &a.repeat.max(1).to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {} {}", a.python, a.peer_script.display()))?;
    anyhow::ensure!(out.status.success(), "{} {} exited with {}", a.python, a.peer_script.display(), out.status);
    serde_json::from_slice(&out.stdout).context("the peer's output is not JSON")
}

/// Runs the benchmark and prints a BENCHMARKS.md section (or JSON).
///
/// # Errors
/// The generated template does not parse, an analysis fails, a snapshot or file
/// operation fails or does not give the state back, or the peer fails.
pub fn run(a: &BenchChangeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.resources > 0, "--resources must be at least 1");
    let repeat = a.repeat.max(1);
    let load_start = load_average();
    let t = Instant::now();
    let stack = generate(a.resources, a.changed, a.seed)?;
    let gen_ms = ms_since(t);
    let scratch = tempfile::Builder::new().prefix("harbinger-bench-change-").tempdir()?;
    let files_dir = a.emit.clone().unwrap_or_else(|| scratch.path().join("inputs"));

    let (parse_runs, tpl) = timed(repeat, || Ok(template::parse(&stack.text, Path::new("bench.json"), &files_dir)?))?;
    let profiles: BTreeMap<String, Vec<String>> = tpl.resources.iter().map(|r| (r.id.clone(), vec!["/content".to_string()])).collect();
    let ids: Vec<&String> = stack.current.keys().collect();
    let log = change_log(&ids, a.seed);
    let model = ChangeRiskModel::embedded_default();
    let no_log = AnalysisInputs {
        current: &stack.current,
        profiles: &profiles,
        history: &[],
        log: &[],
        model: &model,
        now_ms: NOW_MS,
        parallelism: PARALLELISM,
    };
    let with_log = AnalysisInputs { log: &log, ..no_log };

    let (plain_runs, analysis) = timed(repeat, || Ok(whatif::analyse(&tpl, &no_log)?))?;
    let (log_runs, analysis_log) = timed(repeat, || Ok(whatif::analyse(&tpl, &with_log)?))?;
    let parts = parts(&tpl, &with_log, repeat)?;

    let (snapshots, files) = if a.skip_io {
        (Value::Null, Value::Null)
    } else {
        let snapshots = snapshot_figures(&stack, scratch.path())?;
        let files = file_figures(&stack, &scratch.path().join("files"))?;
        (snapshots, files)
    };

    let peer = if a.peer {
        emit(&files_dir, &stack, &log)?;
        Some(run_peer(a, &files_dir)?)
    } else {
        if let Some(dir) = &a.emit {
            emit(dir, &stack, &log)?;
        }
        None
    };

    let load_end = load_average();
    let result = json!({
        "load_average_1m": [load_start, load_end],
        "resources": a.resources,
        "changed": analysis.impact.changed.len(),
        "edges": stack.edges,
        "edits": stack.edits,
        "seed": a.seed,
        "repeat": repeat,
        "template_bytes": stack.text.len(),
        "generate_ms": gen_ms,
        "update_stack": analysis.update_stack.len(),
        "dependents": analysis.impact.dependents.len(),
        "apply_stages": analysis.apply_order.len(),
        "change_risk": analysis.risk.score.score,
        "rollback": {
            "estimate_p50_s_default": analysis.rollback.estimate_p50_s,
            "estimate_p50_s_history": analysis_log.rollback.estimate_p50_s,
            "basis_history": analysis_log.rollback.estimate_basis,
            "risk_history": analysis_log.rollback.risk,
            "risk_default": analysis.rollback.risk,
        },
        "parse": stats(&parse_runs),
        "whatif_default": stats(&plain_runs),
        "whatif_history": stats(&log_runs),
        "parts_history": parts.iter().map(|(k, v)| json!({"part": k, "stats": v})).collect::<Vec<_>>(),
        "snapshots": snapshots,
        "files": files,
        "peer": peer,
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    print_markdown(a, &result);
    Ok(())
}

/// The 1-minute load average (`/proc/loadavg`), to show how busy the machine was.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn ms(v: &Value) -> String {
    let x = f(v);
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn runs_list(s: &Value) -> String {
    s["runs_ms"].as_array().map(|r| r.iter().map(ms).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

fn time_cell(s: &Value, bold: bool) -> String {
    let med = if bold { format!("**{} ms**", ms(&s["median_ms"])) } else { format!("{} ms", ms(&s["median_ms"])) };
    format!("{med} / {} / {} [{}]", ms(&s["p90_ms"]), ms(&s["min_ms"]), runs_list(s))
}

fn ratio(peer: &Value, ours: &Value) -> String {
    let (p, o) = (f(&peer["median_ms"]), f(&ours["median_ms"]));
    if !(p.is_finite() && o.is_finite() && o > 0.0) {
        return String::new();
    }
    let x = p / o;
    if x >= 10.0 {
        format!("{x:.0}x")
    } else if x >= 1.0 {
        format!("{x:.1}x")
    } else {
        format!("{x:.2}x")
    }
}

fn rate(v: &Value) -> String {
    let r = f(&v["per_s"]);
    let r = if r >= 1e4 { format!("{:.1} k", r / 1e3) } else { format!("{r:.0}") };
    format!("**{r} resources/s** (median {} ms/op, p90 {} ms/op; {:.1} s in all)", ms(&v["median_ms"]), ms(&v["p90_ms"]), f(&v["total_s"]))
}

fn print_markdown(a: &BenchChangeArgs, r: &Value) {
    let peer = r.get("peer").filter(|p| !p.is_null());
    crate::bench::print_header(&format!("Change what-if, {} resources, {} changed", r["resources"], r["changed"]));
    println!(
        "Workload (seed {}): {} `file` resources (states not read: the analysis is pure) with {} `depends_on` edges (each resource on 0–3 earlier ones, uniformly), criticality 0–3; \
         {} resources changed in 1–3 leaves each (replace, add, remove). Template: {:.1} MB of JSON. \
         Result: {} update-stack entries in {} apply stages, {} dependents (blast radius), change risk {:.3}; rollback estimate {} s (default durations) / {} s ({}). \
         `whatif::analyse` with parallelism {PARALLELISM}, {} runs; cells: median / p90 / min [runs].  ",
        r["seed"],
        r["resources"],
        r["edges"],
        r["changed"],
        f(&r["template_bytes"]) / 1e6,
        r["update_stack"],
        r["apply_stages"],
        r["dependents"],
        f(&r["change_risk"]),
        r["rollback"]["estimate_p50_s_default"],
        r["rollback"]["estimate_p50_s_history"],
        r["rollback"]["basis_history"].as_str().unwrap_or(""),
        r["repeat"],
    );
    if let Some(p) = peer {
        let same = ["update_stack", "dependents", "apply_stages"].iter().all(|k| p[*k] == r[*k])
            && (f(&p["change_risk"]) - f(&r["change_risk"])).abs() < 1e-9
            && f(&p["rollback_p50_s_history"]) == f(&r["rollback"]["estimate_p50_s_history"])
            && f(&p["rollback_risk_history"]) == f(&r["rollback"]["risk_history"]);
        println!(
            "Peer, same run, same files: `bench/change_peer.py` ({}; `graphlib.TopologicalSorter` for the order and the cycle check, {} for the diff, \
             the same change-risk model and rollback rules; like a script would, it diffs only the resources that have a desired state, where harbinger diffs all of them). \
             {}: {} update-stack entries, {} dependents, {} apply stages, change risk {:.3}, rollback estimate {} s and rollback risk {} with the log.  ",
            p["python"].as_str().unwrap_or("python"),
            p["diff"].as_str().unwrap_or("?"),
            if same { "Same results" } else { "**Results differ**" },
            p["update_stack"],
            p["dependents"],
            p["apply_stages"],
            f(&p["change_risk"]),
            p["rollback_p50_s_history"],
            p["rollback_risk_history"],
        );
    }
    let load: Vec<String> =
        r["load_average_1m"].as_array().into_iter().flatten().map(|v| v.as_f64().map_or("?".to_string(), |x| format!("{x:.2}"))).collect();
    println!("Load average (1 min) at the start / end of the run: {}.  ", load.join(" / "));
    let holds = f(&r["whatif_history"]["median_ms"]) < 200.0 && f(&r["whatif_default"]["median_ms"]) < 200.0;
    println!(
        "Target: what-if for 1,000 changed of 10,000 < 200 ms: **{}** (median {} ms with the change log, {} ms without).\n",
        if holds { "holds" } else { "does not hold" },
        ms(&r["whatif_history"]["median_ms"]),
        ms(&r["whatif_default"]["median_ms"]),
    );
    let pname = peer.and_then(|p| p["name"].as_str()).unwrap_or("peer");
    println!("| figure | harbinger | {pname} | ratio peer time / harbinger time (> 1: harbinger faster) | target |\n|---|---|---|---|---|");
    let row = |label: &str, ours: &Value, key: &str, bold: bool, target: &str| {
        let theirs = peer.map(|p| &p[key]).filter(|v| !v.is_null());
        let pc = theirs.map(|t| time_cell(t, false)).unwrap_or_default();
        let rc = theirs.map(|t| ratio(t, ours)).unwrap_or_default();
        println!("| {label} | {} | {pc} | {rc} | {target} |", time_cell(ours, bold));
    };
    row("template parse (JSON text to a checked template)", &r["parse"], "parse", false, "");
    row("what-if, empty change log (default durations)", &r["whatif_default"], "whatif_default", true, "< 200 ms");
    row(&format!("what-if, change log of {LOG_ENTRIES} entries"), &r["whatif_history"], "whatif_history", true, "< 200 ms");
    let peer_parts: BTreeMap<String, Value> = peer
        .and_then(|p| p["parts_history"].as_array())
        .map(|v| v.iter().map(|x| (x["part"].as_str().unwrap_or("").to_string(), x["stats"].clone())).collect())
        .unwrap_or_default();
    for part in r["parts_history"].as_array().into_iter().flatten() {
        let name = part["part"].as_str().unwrap_or("");
        let ours = &part["stats"];
        let theirs = peer_parts.get(name);
        let ours_cell = format!("{} ms", ms(&ours["median_ms"]));
        let theirs_cell = theirs.map(|t| format!("{} ms", ms(&t["median_ms"]))).unwrap_or_default();
        let rc = theirs.map(|t| ratio(t, ours)).unwrap_or_default();
        println!("| of which (with the log, alone, median): {name} | {ours_cell} | {theirs_cell} | {rc} | |");
    }
    if r["snapshots"].is_null() {
        println!("\n(snapshot and file figures skipped: --skip-io)");
        return;
    }
    let n = &r["resources"];
    println!("\n| figure ({n} small states, one at a time, temporary directory on the build disk) | throughput |\n|---|---|");
    println!(
        "| snapshot `take` (SnapshotStore, whole-state profile: encode, checksum, atomic write with fsync) | {} |",
        rate(&r["snapshots"]["take"])
    );
    println!(
        "| snapshot `restore` onto the changed state (read, verify, apply; each checked equal to the state taken) | {} |",
        rate(&r["snapshots"]["restore"])
    );
    println!("| `file` resource write (`write_restore`: render JSON, atomic write with fsync) | {} |", rate(&r["files"]["write"]));
    println!("| `file` resource read (parse; each checked equal to the state written) | {} |", rate(&r["files"]["read"]));
    if a.peer && peer.is_none() {
        println!("\n(peer requested but gave nothing)");
    }
}
