//! Times the canary judge: 10 KPIs with 10,000 samples per stack (baseline and canary),
//! i.e. 10 Mann-Whitney tests of 10,000 against 10,000 values plus the medians and
//! verdicts. Prints the median, minimum and maximum of several runs.
//!
//! `cargo run --release -p harbinger-plan --example judge_bench [runs]` (default 15)
//!
//! The data are deterministic (xorshift64* with fixed seeds); `bench/judge_peer.py` builds
//! the same values to time scipy on them, and both print the sum of the U statistics and
//! the number of failing KPIs so the two runs can be checked to have done the same work.

use std::time::Instant;

use harbinger_plan::judge::{Direction, JudgeConfig, KpiSpec, Verdict, judge};

/// KPIs judged.
const KPIS: usize = 10;
/// Samples per stack and KPI.
const SAMPLES: usize = 10_000;

/// Deterministic values in [0, 1): xorshift64* seeded with `seed`.
fn uniform(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

/// The samples of KPI `k` on one stack: skewed continuous values, or small integer counts
/// (many ties) for every fourth KPI; the canary of KPIs 1 and 6 is 10 % higher.
fn samples(k: usize, canary: bool) -> Vec<f64> {
    let seed = 2 * k as u64 + 1 + u64::from(canary);
    let scale = if canary && (k == 1 || k == 6) { 1.1 } else { 1.0 };
    uniform(seed, SAMPLES)
        .into_iter()
        .map(|u| if k % 4 == 3 { (u * 20.0).floor() } else { 100.0 * (k + 1) as f64 * (1.0 + u * u) * scale })
        .collect()
}

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(15).max(1);
    let kpis: Vec<KpiSpec> = (0..KPIS)
        .map(|k| KpiSpec {
            name: format!("kpi{k}"),
            direction: if k % 3 == 2 { Direction::LowerIsWorse } else { Direction::HigherIsWorse },
            weight: 1.0,
            critical: k == 0,
            tolerance: 0.05,
            min_delta: 0.0,
        })
        .collect();
    let data: Vec<(Vec<f64>, Vec<f64>)> = (0..KPIS).map(|k| (samples(k, false), samples(k, true))).collect();
    let pairs: Vec<(&[f64], &[f64])> = data.iter().map(|(b, c)| (b.as_slice(), c.as_slice())).collect();
    let cfg = JudgeConfig::default();

    judge(&cfg, &kpis, &pairs); // warm-up, as the peer has one
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let j = judge(&cfg, &kpis, &pairs);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        last = Some(j);
    }
    let Some(j) = last else { return };
    let failing = j.metrics.iter().filter(|m| m.verdict == Verdict::Fail).count();
    let u_sum: f64 = j.metrics.iter().filter_map(|m| m.u).sum();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let list: Vec<String> = times.iter().map(|t| format!("{t:.2}")).collect();
    println!(
        "judge: {KPIS} KPIs x {SAMPLES} samples per stack -> {failing} failing, score {:.1}, pass {}, sum of U {u_sum}",
        j.score, j.pass
    );
    println!(
        "median {:.2} ms, min {:.2} ms, max {:.2} ms over {runs} runs ({} ms)",
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1],
        list.join(", ")
    );
}
