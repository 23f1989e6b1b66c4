//! Predicted changes: templates submitted ahead of deployment
//! ([`ChangeEngine::submit`](crate::ChangeEngine::submit), gRPC `ChangeService.Submit`,
//! or a file dropped into a watched directory, [`watch_dir`]).
//!
//! A submitted change is first applied to the shadow (staging) copies of its resources
//! only — a dry run — and its validation tests run there; the analysis models its impact
//! (change risk from deployment history, anomalous operations, the dependency graph and
//! the rollback simulation, and the rollback cost).
//!
//! - **Negative** (any of those says harm): the change is not applied. The resources to
//!   roll back to the last good state are **pre-provisioned** — a snapshot of each
//!   resource it touches, read back, and a standby copy holding that state where the kind
//!   can hold one (allocated, idle, until [`ChangeEngine::release`](crate::ChangeEngine::release))
//!   — the change is recorded `held`, and the operator is alerted
//!   (`change_predicted_negative` to the alert webhook).
//! - **Positive**: the live stack is updated through the usual gate (snapshots first: the
//!   last good state), then **monitored** for `monitor_for`: every `monitor_every` the
//!   template's `post_apply` checks run against the live resources. The prediction is that
//!   they keep passing; the first failure is a deviation, and the change is rolled back
//!   to the snapshots at once (`rolled_back`, alert `change_deviated`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::{ApplyReport, RollbackReport};
use crate::store::ChangeStatus;
use crate::validate::TestResult;
use crate::whatif::Analysis;
use crate::{ChangeEngine, ChangeError};

/// How a submitted change is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitOptions {
    /// How long the live stack is watched after a positive change is applied (0: not).
    pub monitor_for: Duration,
    /// Time between two rounds of checks while watching.
    pub monitor_every: Duration,
    /// Accept a high rollback cost (otherwise it makes the prediction negative).
    pub override_high_cost: bool,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        SubmitOptions { monitor_for: Duration::from_secs(60), monitor_every: Duration::from_secs(5), override_high_cost: false }
    }
}

/// What the analysis on the shadow copies predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    /// No harm predicted: applied and monitored.
    Positive,
    /// Harm predicted: held, rollback resources pre-provisioned, operator alerted.
    Negative,
}

/// What a submission did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitReport {
    /// The change id (`c-<n>`); empty when there was nothing to change.
    pub change: String,
    /// The prediction.
    pub prediction: Prediction,
    /// Why it is negative (empty when positive).
    pub reasons: Vec<String>,
    /// The analysis on the shadow copies (validation results included).
    pub analysis: Analysis,
    /// `held`, `applied`, `rolled_back`, `rejected` or `rollback_failed`.
    pub status: ChangeStatus,
    /// Why it ended that way.
    pub reason: String,
    /// The rollback resources made ready.
    pub pre_provisioned: Vec<String>,
    /// The apply, for a positive change.
    pub apply: Option<ApplyReport>,
    /// Every check run while the live stack was watched.
    pub monitor: Vec<TestResult>,
    /// The rollback after a deviation.
    pub rollback: Option<RollbackReport>,
}

/// Template files in `dir` not yet submitted: `*.yaml`, `*.yml` and `*.json`, by name.
fn pending(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e, "yaml" | "yml" | "json")))
        .collect();
    out.sort();
    Ok(out)
}

/// Submits one file and moves it to `done/`, with its report beside it
/// (`done/<name>.report.json`, or `done/<name>.error.txt` when it could not be read).
async fn submit_file(engine: &ChangeEngine, path: &Path, done: &Path, opts: SubmitOptions) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let base = path.parent().unwrap_or(Path::new("."));
    let result = match std::fs::read_to_string(path) {
        Ok(text) => match crate::template::parse(&text, path, base) {
            Ok(t) => engine.submit(t, opts).await,
            Err(e) => Err(ChangeError::from(e)),
        },
        Err(source) => Err(ChangeError::from(crate::template::TemplateError::Read { file: path.to_path_buf(), source })),
    };
    std::fs::create_dir_all(done)?;
    let moved = done.join(&name);
    std::fs::rename(path, &moved)?;
    match result {
        Ok(r) => {
            tracing::info!(file = %name, change = %r.change, status = r.status.as_str(), "submitted change: {}", r.reason);
            let json = serde_json::to_vec_pretty(&r).map_err(std::io::Error::other)?;
            std::fs::write(done.join(format!("{name}.report.json")), json)
        }
        Err(e) => {
            tracing::warn!(file = %name, error = %e, "submitted change refused");
            std::fs::write(done.join(format!("{name}.error.txt")), format!("{e}\n"))
        }
    }
}

/// Watches `dir` for change templates, every `every`, until `stop` resolves: each new
/// `*.yaml`/`*.yml`/`*.json` file is submitted ([`ChangeEngine::submit`]) and moved to
/// `dir/done/` with its report (`<name>.report.json`) or its error (`<name>.error.txt`).
/// A file is submitted once; files are taken in name order, one at a time. Write a
/// template elsewhere and rename it into `dir`, so that it is never read half-written.
pub async fn watch_dir(
    engine: Arc<ChangeEngine>,
    dir: PathBuf,
    every: Duration,
    opts: SubmitOptions,
    stop: impl std::future::Future<Output = ()>,
) {
    let done = dir.join("done");
    let mut stop = std::pin::pin!(stop);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => {}
        }
        let listed = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || pending(&dir)).await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
        };
        let files = match listed {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot list the change watch directory");
                continue;
            }
        };
        for f in files {
            if let Err(e) = submit_file(&engine, &f, &done, opts).await {
                tracing::error!(file = %f.display(), error = %e, "cannot move a submitted change to done/");
            }
        }
    }
}
