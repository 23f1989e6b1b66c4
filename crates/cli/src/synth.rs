//! `harbinger synth`: write a synthetic fleet dataset.

use anyhow::Context;
use harbinger_dataset::MetricsFormat;
use harbinger_dataset::synth::{SynthParams, write_fleet};

use crate::args::SynthArgs;

/// Generates the fleet and writes it in the contract format, plus `episodes.csv`, a
/// window of time at a time.
///
/// # Errors
/// Invalid parameters (named) or write failures.
pub fn run(a: &SynthArgs) -> anyhow::Result<()> {
    let step = humantime::parse_duration(&a.step).with_context(|| format!("--step {:?} is not a duration", a.step))?;
    let format: MetricsFormat = a.format.parse().map_err(anyhow::Error::msg)?;
    let defaults = SynthParams::default();
    let step_ms = i64::try_from(step.as_millis()).context("--step is too large")?;
    let start_ms = match (a.start_ms, a.end_now) {
        (Some(_), true) => anyhow::bail!("--start-ms and --end-now cannot both be given"),
        (Some(s), false) => s,
        (None, false) => defaults.start_ms,
        (None, true) => {
            // Ends at the wall clock, so a store with retention keeps all of it.
            let now = harbinger_core::Clock::now_ms(&harbinger_core::SystemClock);
            let span = (a.days * 86_400_000.0) as i64;
            let start = now - span;
            start - start.rem_euclid(step_ms.max(1))
        }
    };
    let p = SynthParams { hosts: a.hosts, days: a.days, step_ms, seed: a.seed, start_ms };
    // A window of time at a time: a fleet larger than memory can be written.
    let w = write_fleet(&p, &a.out, format).with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "wrote {}: {} hosts, {} resources, {} metric rows, {} events, {} failures, {} episodes",
        a.out.display(),
        w.hosts,
        w.resources,
        w.metric_rows,
        w.events,
        w.failures,
        w.episodes
    );
    Ok(())
}
