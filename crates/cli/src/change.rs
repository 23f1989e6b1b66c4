//! `whatif`, `apply`, `rollback`, `changes` and `change-risk`: change safety from the
//! command line, on the change store under the data directory.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context;
use harbinger_change::render::{self, Style};
use harbinger_change::risk::ChangeRiskModel;
use harbinger_change::store::{ChangeStatus, ChangeStore};
use harbinger_change::{ApplyOptions, ChangeEngine, EngineConfig, template};
use harbinger_config::Config;
use harbinger_core::SystemClock;

use crate::args::{ApplyArgs, ChangeFlags, ChangeRiskArgs, ChangesArgs, RollbackArgs, WhatifArgs};

fn style(flags: &ChangeFlags) -> anyhow::Result<Style> {
    Ok(Style::new(match flags.color.as_str() {
        "auto" => std::io::stdout().is_terminal(),
        "always" => true,
        "never" => false,
        other => anyhow::bail!("--color {other:?}: expected auto, always or never"),
    }))
}

fn engine(cfg: &Config, flags: &ChangeFlags) -> anyhow::Result<ChangeEngine> {
    let model = match &flags.risk_model {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading the change-risk model {}", p.display()))?;
            ChangeRiskModel::from_json(&text).with_context(|| format!("change-risk model {}", p.display()))?
        }
        None => ChangeRiskModel::embedded_default(),
    };
    let risk_threshold = flags.risk_threshold.unwrap_or(cfg.change.risk_threshold);
    if !(0.0..=1.0).contains(&risk_threshold) {
        anyhow::bail!("--risk-threshold {risk_threshold}: expected a value in [0, 1]");
    }
    let parallelism = flags.parallelism.unwrap_or(cfg.change.parallelism);
    if parallelism == 0 {
        anyhow::bail!("--parallelism 0: expected at least 1");
    }
    let alert_webhook = flags.alert_webhook.clone().or_else(|| cfg.change.alert_webhook.clone());
    let ecfg = EngineConfig { parallelism, risk_threshold, alert_webhook };
    Ok(ChangeEngine::open(&cfg.data_dir, model, Arc::new(SystemClock), ecfg)?)
}

/// The engine of `apply` and `rollback`: it also records the change's events in the
/// service's event store, where the failure model's deployment features read them.
fn acting_engine(cfg: &Config, flags: &ChangeFlags) -> anyhow::Result<ChangeEngine> {
    let e = engine(cfg, flags)?;
    Ok(match crate::open_store(cfg) {
        Ok(store) => e.with_events(Arc::new(store)),
        Err(err) => {
            tracing::warn!("change events will not be recorded in the event store: {err:#}");
            e
        }
    })
}

/// `harbinger whatif`.
///
/// # Errors
/// A template, resource or store error.
pub async fn whatif(cfg: &Config, a: &WhatifArgs) -> anyhow::Result<()> {
    let st = style(&a.flags)?;
    let t = template::read(&a.change)?;
    let e = engine(cfg, &a.flags)?;
    let analysis = e.whatif(t).await?;
    if a.flags.json {
        println!("{}", serde_json::to_string_pretty(&analysis)?);
    } else {
        print!("{}", render::plan(&analysis, st));
    }
    Ok(())
}

/// `harbinger apply`. Exits non-zero unless the change was applied.
///
/// # Errors
/// A template, resource or store error; a change that was not applied.
pub async fn apply(cfg: &Config, a: &ApplyArgs) -> anyhow::Result<()> {
    let st = style(&a.flags)?;
    let t = template::read(&a.change)?;
    let e = acting_engine(cfg, &a.flags)?;
    let report = e.apply(t, ApplyOptions { override_high_cost: a.override_high_cost, force: a.force }).await?;
    if a.flags.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render::apply(&report, st));
    }
    if report.status != ChangeStatus::Applied {
        anyhow::bail!("change {} {}: {}", report.change, report.status.as_str(), report.reason);
    }
    Ok(())
}

/// `harbinger rollback`. Exits non-zero when a restore fails or does not verify.
///
/// # Errors
/// An unknown change or resource; a rollback that did not verify.
pub async fn rollback(cfg: &Config, a: &RollbackArgs) -> anyhow::Result<()> {
    let st = style(&a.flags)?;
    let e = acting_engine(cfg, &a.flags)?;
    let report = e.rollback(&a.change, &a.resources).await?;
    if a.flags.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render::rollback(&report, st));
    }
    if !report.verified {
        anyhow::bail!("rollback of {} did not verify", a.change);
    }
    Ok(())
}

/// `harbinger changes`.
///
/// # Errors
/// The store; an unknown change.
pub fn changes(cfg: &Config, a: &ChangesArgs) -> anyhow::Result<()> {
    let store = ChangeStore::open(&cfg.data_dir)?;
    if let Some(id) = &a.change {
        let rec = store.change(id)?.with_context(|| format!("unknown change {id:?}"))?;
        let log = store.log(Some(id), None)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({"change": rec, "log": log}))?);
        } else {
            println!("{} {} {}: {}", rec.id, rec.stack, rec.status.as_str(), rec.reason);
            for e in log {
                let res = e.resource.as_deref().unwrap_or("-");
                println!("  {:<9} {:<16} {:<7} {:>9.1} ms  {}", e.step, res, e.outcome, e.duration_ms, e.detail);
            }
        }
        return Ok(());
    }
    let list = store.changes(a.stack.as_deref())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for c in list {
            println!("{:<6} {:<16} {:<22} {:>3} ops  {}", c.id, c.stack, c.status.as_str(), c.ops.len(), c.reason);
        }
    }
    Ok(())
}

/// `harbinger change-risk`.
///
/// # Errors
/// The dataset cannot be read or fitted; the output cannot be written.
pub fn fit_risk(a: &ChangeRiskArgs) -> anyhow::Result<()> {
    let model = ChangeRiskModel::fit_dataset(&a.data).with_context(|| format!("fitting the change-risk model on {}", a.data.display()))?;
    let text = serde_json::to_string_pretty(&model)?;
    std::fs::write(&a.out, text + "\n").with_context(|| format!("writing {}", a.out.display()))?;
    println!("{}", serde_json::to_string_pretty(&model.calibration)?);
    println!("wrote {}", a.out.display());
    Ok(())
}
