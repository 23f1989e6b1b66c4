//! `harbinger models`: the model registry (`harbinger_registry`) from the command
//! line, and the publish step of `harbinger train --publish`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use harbinger_registry::registry::{Published, VersionInfo};
use harbinger_registry::{CARD_FILE, Registry};

use crate::args::ModelsCommand;

fn open(root: &Path) -> anyhow::Result<Registry> {
    Ok(Registry::open(root)?)
}

/// Publishes the artifact in `artifact` under `name` in the registry at `root`.
///
/// # Errors
/// As [`Registry::publish`]; the messages name the registry, name and version.
pub fn publish(root: &Path, name: &str, artifact: &Path) -> anyhow::Result<Published> {
    Ok(open(root)?.publish(name, artifact)?)
}

/// Runs one `models` subcommand on the registry at `root`.
///
/// # Errors
/// The registry errors, naming the registry, name and version.
pub fn run(cmd: &ModelsCommand, root: &Path) -> anyhow::Result<()> {
    let reg = open(root)?;
    match cmd {
        ModelsCommand::Publish { name, artifact } => {
            let p = reg.publish(name, artifact)?;
            if p.added {
                let current = if p.made_current { " (current: the first version of this name)" } else { "" };
                println!("published {name} {}{current}", p.version);
            } else {
                println!("{name} {} is already published with identical contents; nothing changed", p.version);
            }
        }
        ModelsCommand::List { name, json } => {
            let names = match name {
                Some(n) => vec![n.clone()],
                None => reg.names()?,
            };
            let mut all = Vec::new();
            // One broken entry (a corrupt CURRENT, a lost artifact) must not hide the others:
            // they are listed, the broken ones named on stderr, and the exit status says so.
            let mut broken = Vec::new();
            for n in &names {
                match reg.versions(n) {
                    Ok(v) => all.extend(v),
                    Err(e) if name.is_none() => broken.push(format!("{n}: {e}")),
                    Err(e) => return Err(e.into()),
                }
            }
            if *json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() && broken.is_empty() {
                println!("no models in {}", root.display());
            } else {
                print!("{}", table(&all));
            }
            if !broken.is_empty() {
                for b in &broken {
                    eprintln!("error: {b}");
                }
                anyhow::bail!("{} of {} registry entries cannot be listed (named above)", broken.len(), names.len());
            }
        }
        ModelsCommand::Show { name, version } => {
            let version = match version {
                Some(v) => v.clone(),
                None => reg.current(name)?,
            };
            let dir = reg.version_dir(name, &version)?;
            let card = dir.join(CARD_FILE);
            let text = std::fs::read_to_string(&card).with_context(|| format!("reading the model card {}", card.display()))?;
            print!("{text}");
        }
        ModelsCommand::Promote { name, version } => {
            let p = reg.promote(name, version)?;
            if p.changed {
                println!(
                    "{name}: {} -> {} (reload serve to switch: SIGHUP, or POST /api/v1/admin/reload)",
                    p.from.as_deref().unwrap_or("-"),
                    p.to
                );
            } else {
                println!("{name}: {} is already current; nothing changed", p.to);
            }
        }
        ModelsCommand::Rollback { name } => {
            let p = reg.rollback(name)?;
            println!("{name}: rolled back {} -> {} (reload serve to switch)", p.from.as_deref().unwrap_or("-"), p.to);
        }
        ModelsCommand::Rm { name, version } => {
            reg.remove(name, version)?;
            println!("removed {name} {version}");
        }
    }
    Ok(())
}

fn iso(ms: i64) -> String {
    harbinger_core::time::format_seconds(ms)
}

fn fig(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), |v| format!("{v:.3}"))
}

/// One row per version; `*` marks the current one.
fn table(rows: &[VersionInfo]) -> String {
    let header = ["name", "version", "", "trained", "learner", "pr_auc", "recall", "precision", "fa/host-day", "dataset"];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|v| {
            [
                v.name.clone(),
                v.version.clone(),
                if v.current { "*".into() } else { String::new() },
                iso(v.trained_at_ms),
                v.learner.clone(),
                fig(v.pr_auc),
                fig(v.recall),
                fig(v.precision),
                fig(v.false_alarms_per_host_day),
                format!("{} ({} hosts)", v.dataset, v.hosts),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for r in &cells {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |r: &[&str]| {
        let mut l = String::new();
        for (i, (c, w)) in r.iter().zip(width).enumerate() {
            if i + 1 == r.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for r in &cells {
        line(&r.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_columns_and_marks_the_current_version() {
        let row = |version: &str, current: bool, pr_auc: Option<f64>| VersionInfo {
            name: "failure".into(),
            version: version.into(),
            current,
            trained_at_ms: 1_700_000_000_000,
            harbinger_version: "0.1.0".into(),
            horizon_ms: 21_600_000,
            dataset: "fleet".into(),
            hosts: 20,
            learner: "logistic".into(),
            pr_auc,
            recall: Some(0.5),
            precision: None,
            false_alarms_per_host_day: Some(0.0125),
            path: "/r/failure/v1".into(),
        };
        let t = table(&[row("v1", false, Some(0.25)), row("version-2", true, None)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "name     version       trained               learner   pr_auc  recall  precision  fa/host-day  dataset");
        assert_eq!(
            lines[1],
            "failure  v1            2023-11-14T22:13:20Z  logistic  0.250   0.500   n/a        0.013        fleet (20 hosts)"
        );
        assert_eq!(
            lines[2],
            "failure  version-2  *  2023-11-14T22:13:20Z  logistic  n/a     0.500   n/a        0.013        fleet (20 hosts)"
        );
    }
}
