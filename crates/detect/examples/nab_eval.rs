//! Runs [`harbinger_detect::DefaultDetector`] over a NAB corpus, writes NAB results files,
//! scores them with `harbinger-nab`, and measures `update` throughput.
//!
//! ```text
//! cargo run --release --example nab_eval -- [--data DIR] [--labels FILE] [--out DIR]
//!     [--params JSON|FILE] [--detail] [--split] [--loco [--search-passes K] [--margin M]] [--bench POINTS]
//! ```
//! Defaults: `--data /work/shared/datasets/nab/data`, `--labels <data>/../labels/combined_windows.json`,
//! results in a temporary directory, default params, a 10 M point throughput run.
//! `--loco` prints leave-one-category-out scores three times: thresholds fitted per fold
//! with the params given, then (unless `--search-passes 0`; default 2) with the params also
//! chosen per fold by a coordinate search on the other categories, once maximising their
//! pooled score and once accepting only moves that also lower none of their own scores.
//! Each fold's thresholds are fitted with a margin (`--margin M`, score units, default
//! `harbinger_detect::TRANSFER_MARGIN`; 0 is NAB's exact optimum): the threshold whose
//! neighbourhood scores best on the other categories on average
//! (`harbinger_nab::fit_thresholds_with_margin`); the search maximises that mean.

use std::path::PathBuf;
use std::time::Instant;

use harbinger_core::time::parse_timestamp_ms;
use harbinger_detect::{DefaultDetector, DetectorParams, StreamingDetector, ValidParams, run_nab_dir};
use harbinger_nab::{FileInput, HeldOutFold, Profile};

type BoxError = Box<dyn std::error::Error>;

struct Args {
    data: PathBuf,
    labels: Option<PathBuf>,
    out: Option<PathBuf>,
    params: DetectorParams,
    detail: bool,
    split: bool,
    loco: bool,
    search_passes: usize,
    margin: f64,
    bench: usize,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        data: PathBuf::from("/work/shared/datasets/nab/data"),
        labels: None,
        out: None,
        params: DetectorParams::default(),
        detail: false,
        split: false,
        loco: false,
        search_passes: 2,
        margin: harbinger_detect::TRANSFER_MARGIN,
        bench: 10_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => args.data = value()?.into(),
            "--labels" => args.labels = Some(value()?.into()),
            "--out" => args.out = Some(value()?.into()),
            "--params" => {
                let v = value()?;
                let json = if v.trim_start().starts_with('{') { v } else { std::fs::read_to_string(&v)? };
                args.params = serde_json::from_str(&json)?;
            }
            "--detail" => args.detail = true,
            "--split" => args.split = true,
            "--loco" => args.loco = true,
            "--search-passes" => args.search_passes = value()?.parse()?,
            "--margin" => args.margin = value()?.parse()?,
            "--bench" => args.bench = value()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(args)
}

fn bench(points: usize, params: &DetectorParams) -> Result<(), BoxError> {
    if points == 0 {
        return Ok(());
    }
    // A noisy daily sine with occasional spikes and level shifts, 5-minute steps.
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1_u64 << 53) as f64
    };
    let series: Vec<(i64, f64)> = (0..points)
        .map(|i| {
            let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
            let shift = if (i / 5000) % 2 == 1 { 4.0 } else { 0.0 };
            let spike = if rand() < 0.001 { 10.0 } else { 0.0 };
            (1_400_000_000_000 + i as i64 * 300_000, 20.0 + 5.0 * phase.sin() + rand() + shift + spike)
        })
        .collect();
    let mut detector = DefaultDetector::new(params.clone().check()?);
    let start = Instant::now();
    let mut checksum = 0.0;
    for &(t, v) in &series {
        checksum += detector.update(t, v);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "throughput: {points} points in {secs:.3} s = {:.2} M points/s on one core ({:.0} ns/point; checksum {checksum:.3})",
        points as f64 / secs / 1e6,
        secs / points as f64 * 1e9
    );
    Ok(())
}

/// Held-out check: files split in two halves (alternate files in sorted order); each
/// half is scored with the thresholds optimised on the other half.
fn split_check(data: &std::path::Path, labels: &std::path::Path, out: &std::path::Path) -> Result<(), BoxError> {
    let files = harbinger_nab::load_corpus(data, labels, out)?;
    let (a, b): (Vec<_>, Vec<_>) = files.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let a: Vec<_> = a.into_iter().map(|(_, f)| f).collect();
    let b: Vec<_> = b.into_iter().map(|(_, f)| f).collect();
    let (fit_a, fit_b) = (harbinger_nab::score_corpus(&a)?, harbinger_nab::score_corpus(&b)?);
    let b_at_a = harbinger_nab::score_corpus_at(&b, &fit_a.thresholds())?;
    let a_at_b = harbinger_nab::score_corpus_at(&a, &fit_b.thresholds())?;
    let s = |c: &harbinger_nab::CorpusScore| c.profile(Profile::Standard).normalised;
    println!(
        "SPLIT standard: A optimised {:.2}, B at A's threshold {:.2}; B optimised {:.2}, A at B's threshold {:.2}",
        s(&fit_a),
        s(&b_at_a),
        s(&fit_b),
        s(&a_at_b)
    );
    Ok(())
}

/// Leave-one-category-out: each category scored at the thresholds optimised on the other
/// categories, the folds pooled as one corpus (`harbinger_nab::score_leave_one_category_out`).
/// Only the thresholds are fitted per fold; the detector params are the ones given.
fn loco_check(data: &std::path::Path, labels: &std::path::Path, out: &std::path::Path, all_in: f64, margin: f64) -> Result<(), BoxError> {
    let files = harbinger_nab::load_corpus(data, labels, out)?;
    let loco = harbinger_nab::score_leave_one_category_out(&files, margin)?;
    print_loco(&loco, all_in, "(thresholds only; params as given)");
    Ok(())
}

/// A NAB file in memory, for the per-fold parameter search.
struct Series {
    name: String,
    category: String,
    ts: Vec<i64>,
    timestamps: Vec<String>,
    values: Vec<f64>,
    windows: Vec<(String, String)>,
}

fn load_series(data: &std::path::Path, labels: &std::path::Path) -> Result<Vec<Series>, BoxError> {
    let mut windows = harbinger_nab::load_windows(labels)?;
    let mut names: Vec<String> = windows.keys().cloned().collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let path = data.join(&name);
        if !path.is_file() {
            continue;
        }
        let d = harbinger_nab::read_data_file(&path)?;
        let ts = d.timestamps.iter().map(|t| parse_timestamp_ms(t).map_err(|e| format!("{name}: {e}"))).collect::<Result<_, _>>()?;
        let category = name.split('/').next().unwrap_or_default().to_string();
        let w = windows.remove(&name).unwrap_or_default();
        out.push(Series { name, category, ts, timestamps: d.timestamps, values: d.values, windows: w });
    }
    Ok(out)
}

/// Runs a fresh detector with `params` over each of `series`.
fn detect(series: &[&Series], params: &ValidParams) -> Vec<FileInput> {
    series
        .iter()
        .map(|s| {
            let mut d = DefaultDetector::new(params.clone());
            let scores = s.ts.iter().zip(&s.values).map(|(&t, &v)| d.update(t, v)).collect();
            FileInput { name: s.name.clone(), timestamps: s.timestamps.clone(), scores, windows: s.windows.clone() }
        })
        .collect()
}

/// The candidates of the coordinate search: each one changes one parameter of `p`.
fn neighbours(p: &DetectorParams) -> Vec<DetectorParams> {
    let mut out = Vec::new();
    let mut push = |f: &dyn Fn(&mut DetectorParams)| {
        let mut q = p.clone();
        f(&mut q);
        if q != *p && q.clone().check().is_ok() {
            out.push(q);
        }
    };
    for k in [0.5, 2.0] {
        push(&|q| q.warmup = (f64::from(q.warmup) * k) as u32);
        push(&|q| q.level_rates = q.level_rates.iter().map(|&r| if r < 1.0 { (r * k).min(1.0) } else { r }).collect());
        push(&|q| q.error_rate = (q.error_rate * k).min(0.5));
        push(&|q| q.error_knee *= k);
        push(&|q| q.short_window = ((f64::from(q.short_window) * k) as u32).max(1));
        push(&|q| q.long_rate = (q.long_rate * k).min(0.5));
        push(&|q| q.min_std *= k);
        push(&|q| q.range_tolerance = q.range_tolerance.map(|t| t * k));
        push(&|q| q.range_surprise *= k);
        push(&|q| q.hold_half_life *= k);
        push(&|q| q.record_ratio = 1.0 + (q.record_ratio - 1.0) * k);
        push(&|q| q.empirical_bins = (f64::from(q.empirical_bins) * k) as u32);
        push(&|q| q.empirical_min_mass *= k);
        push(&|q| q.empirical_prior *= k);
        push(&|q| q.seasonal_rate = (q.seasonal_rate * k).min(1.0));
    }
    push(&|q| q.seasonal = !q.seasonal);
    push(&|q| q.range_tolerance = if q.range_tolerance.is_some() { None } else { Some(0.05) });
    out
}

/// Leave-one-category-out with the detector params searched per fold: for each category,
/// a coordinate search (from `start`, `passes` passes over [`neighbours`]) maximises the
/// standard score (threshold optimised) on the other categories; the held-out category
/// is then run with those params and scored at the thresholds fitted on the others. Run
/// twice: any move that raises the pooled score, then only moves that also lower no
/// training category's own score.
fn loco_search(
    data: &std::path::Path,
    labels: &std::path::Path,
    start: &DetectorParams,
    passes: usize,
    margin: f64,
    all_in: f64,
) -> Result<(), BoxError> {
    let series = load_series(data, labels)?;
    let mut categories: Vec<String> = series.iter().map(|s| s.category.clone()).collect();
    categories.dedup();
    let all: Vec<&Series> = series.iter().collect();
    // params (JSON) -> per fold: the standard score of its training categories pooled,
    // and each one's own (at the pooled threshold; `None` without windows).
    type Scores = Vec<(f64, Vec<Option<f64>>)>;
    let mut cache: std::collections::HashMap<String, Scores> = std::collections::HashMap::new();
    let mut train_scores = |p: &DetectorParams| -> Result<Scores, BoxError> {
        let key = serde_json::to_string(p)?;
        if let Some(v) = cache.get(&key) {
            return Ok(v.clone());
        }
        let inputs = detect(&all, &p.clone().check()?);
        let mut v = Vec::new();
        for c in &categories {
            let train: Vec<FileInput> = inputs.iter().zip(&series).filter(|(_, s)| &s.category != c).map(|(f, _)| f.clone()).collect();
            let fit = harbinger_nab::fit_thresholds_with_margin(&train, margin)?;
            let score = harbinger_nab::score_corpus_at(&train, &fit.thresholds)?;
            let standard = score.profile(Profile::Standard);
            v.push((fit.smoothed(Profile::Standard), standard.categories.iter().map(|c| c.normalised).collect()));
        }
        cache.insert(key, v.clone());
        Ok(v)
    };
    // A move must raise the pooled score without lowering any training category's own:
    // gains that come from one category at another's cost are what the held-out category
    // paid for (the pooled objective alone lost 3 to 7 points on it).
    let better = |robust: bool, q: &(f64, Vec<Option<f64>>), b: &(f64, Vec<Option<f64>>)| {
        q.0 > b.0 + 1e-9 && (!robust || q.1.iter().zip(&b.1).all(|(x, y)| matches!((x, y), (Some(x), Some(y)) if x >= y) || x.is_none()))
    };
    for robust in [false, true] {
        let mut folds = Vec::new();
        for (k, c) in categories.iter().enumerate() {
            let mut best = start.clone();
            let mut best_score = train_scores(&best)?[k].clone();
            for _ in 0..passes {
                let mut improved = false;
                for q in neighbours(&best) {
                    let s = train_scores(&q)?[k].clone();
                    if better(robust, &s, &best_score) {
                        (best, best_score) = (q, s);
                        improved = true;
                    }
                }
                if !improved {
                    break;
                }
            }
            let best_score = best_score.0;
            let train: Vec<&Series> = series.iter().filter(|s| &s.category != c).collect();
            let held: Vec<&Series> = series.iter().filter(|s| &s.category == c).collect();
            let valid = best.clone().check()?;
            let thresholds = harbinger_nab::fit_thresholds_with_margin(&detect(&train, &valid), margin)?.thresholds;
            println!("LOCO params {c}: train standard {best_score:.2} with {}", serde_json::to_string(&best)?);
            folds.push(HeldOutFold { name: c.clone(), files: detect(&held, &valid), thresholds });
        }
        let loco = harbinger_nab::score_held_out(&folds)?;
        print_loco(
            &loco,
            all_in,
            if robust { "(params searched per fold; a move must lower no training category)" } else { "(params searched per fold)" },
        );
    }
    Ok(())
}

fn print_loco(loco: &harbinger_nab::HeldOutScore, all_in: f64, note: &str) {
    for (profile, label) in [(Profile::Standard, "standard"), (Profile::RewardLowFp, "low_fp"), (Profile::RewardLowFn, "low_fn")] {
        for f in &loco.profile(profile).folds {
            let threshold = if f.threshold > 1.0 { "none".to_string() } else { format!("{:.6}", f.threshold) };
            let score = f.normalised.map_or_else(|| format!("n/a (no window; raw {:.3})", f.raw), |v| format!("{v:.2}"));
            println!("LOCO {label} {}: threshold {threshold}, score {score}", f.name);
        }
    }
    let p = |pr: Profile| loco.profile(pr).normalised;
    println!(
        "LOCO SUMMARY standard {:.2} low_fp {:.2} low_fn {:.2} (all-in standard {all_in:.2}) {note}",
        p(Profile::Standard),
        p(Profile::RewardLowFp),
        p(Profile::RewardLowFn)
    );
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let labels = match &args.labels {
        Some(l) => l.clone(),
        None => args.data.join("../labels/combined_windows.json"),
    };
    let temp = tempfile::tempdir()?;
    let out = args.out.clone().unwrap_or_else(|| temp.path().to_path_buf());

    let report = run_nab_dir(&args.data, &out, &args.params)?;
    println!(
        "ran {} files, {} points in {:.3} s ({:.3} s in the detector)",
        report.files, report.points, report.seconds, report.detector_seconds
    );
    let score = harbinger_nab::score_dirs(&args.data, &labels, &out)?;
    print!("{}", score.to_table());
    if args.detail {
        let standard = score.profile(Profile::Standard);
        println!("\nstandard profile, per file at threshold {:.6}:", standard.threshold);
        println!("{:<58} {:>4} {:>4} {:>4} {:>8}", "file", "win", "det", "fp", "raw");
        for f in &standard.files {
            println!("{:<58} {:>4} {:>4} {:>4} {:>8.3}", f.name, f.windows, f.detected, f.false_alarms, f.raw);
        }
    }
    if args.split {
        split_check(&args.data, &labels, &out)?;
    }
    if args.loco {
        let all_in = score.profile(Profile::Standard).normalised;
        loco_check(&args.data, &labels, &out, all_in, args.margin)?;
        if args.search_passes > 0 {
            loco_search(&args.data, &labels, &args.params, args.search_passes, args.margin, all_in)?;
        }
    }
    let p = |pr: Profile| score.profile(pr).normalised;
    println!("SUMMARY standard {:.2} low_fp {:.2} low_fn {:.2}", p(Profile::Standard), p(Profile::RewardLowFp), p(Profile::RewardLowFn));
    bench(args.bench, &args.params)
}
