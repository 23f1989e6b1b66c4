//! Times the planner on a synthetic fleet: 10,000 hosts, 5 resources each, 500 of them
//! entering the alerting state at once. Prints the median of several runs.
//!
//! `cargo run --release --example plan_bench [runs]`

use std::time::Instant;

use harbinger_plan::{ActionKind, plan, synthetic_fleet};

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(9).max(1);
    let input = synthetic_fleet(10_000, 5, 500, 42);
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let p = plan(&input);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        last = Some(p);
    }
    let Some(p) = last else { return };
    let count = |f: fn(&ActionKind) -> bool| p.actions.iter().filter(|a| f(&a.kind)).count();
    let created = count(|k| matches!(k, ActionKind::CreateShadow { .. }));
    let causes = count(|k| matches!(k, ActionKind::AddCause { .. }));
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let list: Vec<String> = times.iter().map(|t| format!("{t:.1}")).collect();
    println!(
        "plan: {} hosts, {} resources, {} alerting, {} existing shadows -> {} actions ({created} shadows planned, {causes} causes added), {} skipped",
        input.hosts.len(),
        input.resources.len(),
        input.triggers.len(),
        input.shadows.len(),
        p.actions.len(),
        p.skipped.len()
    );
    println!("median {median:.1} ms over {runs} runs ({} ms)", list.join(", "));
}
