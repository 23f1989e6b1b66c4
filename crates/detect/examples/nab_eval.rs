//! Runs [`harbinger_detect::DefaultDetector`] over a NAB corpus, writes NAB results files,
//! scores them with `harbinger-nab`, and measures `update` throughput.
//!
//! ```text
//! cargo run --release --example nab_eval -- [--data DIR] [--labels FILE] [--out DIR]
//!     [--params JSON|FILE] [--detail] [--bench POINTS]
//! ```
//! Defaults: `--data /work/shared/datasets/nab/data`, `--labels <data>/../labels/combined_windows.json`,
//! results in a temporary directory, default params, a 10 M point throughput run.

use std::path::PathBuf;
use std::time::Instant;

use harbinger_detect::{DefaultDetector, DetectorParams, StreamingDetector, run_nab_dir};
use harbinger_nab::Profile;

type BoxError = Box<dyn std::error::Error>;

struct Args {
    data: PathBuf,
    labels: Option<PathBuf>,
    out: Option<PathBuf>,
    params: DetectorParams,
    detail: bool,
    split: bool,
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
    let p = |pr: Profile| score.profile(pr).normalised;
    println!("SUMMARY standard {:.2} low_fp {:.2} low_fn {:.2}", p(Profile::Standard), p(Profile::RewardLowFp), p(Profile::RewardLowFn));
    bench(args.bench, &args.params)
}
