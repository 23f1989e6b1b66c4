//! The plan for a person (like `terraform plan`; colours when asked) and reports of an
//! apply or a rollback.

use std::fmt::Write as _;

use serde_json::Value;

use crate::engine::{ApplyReport, RollbackReport};
use crate::types::Op;
use crate::validate::Outcome;
use crate::whatif::Analysis;

/// ANSI colours, or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    on: bool,
}

impl Style {
    /// Colours on or off.
    pub fn new(colour: bool) -> Self {
        Style { on: colour }
    }
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }
    fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 { format!("{}…", s.chars().take(59).collect::<String>()) } else { s }
}

/// The analysis as a plan.
pub fn plan(a: &Analysis, st: Style) -> String {
    let mut o = String::new();
    let n_res = a.impact.changed.len();
    let _ = writeln!(
        o,
        "{} {}{}: {} operation{} on {} resource{}",
        st.bold("Change to stack"),
        st.bold(&format!("{:?}", a.stack)),
        a.description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default(),
        a.update_stack.len(),
        if a.update_stack.len() == 1 { "" } else { "s" },
        n_res,
        if n_res == 1 { "" } else { "s" },
    );
    if a.update_stack.is_empty() {
        let _ = writeln!(o, "\nNo changes: every resource already holds the desired state.");
        return o;
    }
    let _ = writeln!(o);
    let mut current = "";
    for op in &a.update_stack {
        if op.resource != current {
            current = &op.resource;
            let _ = writeln!(o, "  {} {}", st.yellow("~"), st.bold(&op.resource));
        }
        let line = match op.op {
            Op::Add => st.green(&format!("      + {}: {}", op.path, short(&op.to))),
            Op::Remove => st.red(&format!("      - {}: {}", op.path, short(&op.from))),
            Op::Replace => st.yellow(&format!("      ~ {}: {} → {}", op.path, short(&op.from), short(&op.to))),
        };
        let _ = writeln!(o, "{line}");
    }
    let _ = writeln!(o, "\n{}", st.bold("Validation (on staging copies)"));
    if a.validation.is_empty() {
        let _ = writeln!(o, "  none declared");
    }
    for v in &a.validation {
        let mark = match v.outcome {
            Outcome::Passed => st.green("✓ passed "),
            Outcome::Failed => st.red("✗ failed "),
            Outcome::Skipped => st.yellow("- skipped"),
        };
        let _ = writeln!(o, "  {mark} {} [{}] {} {}", v.name, v.kind, st.dim(&format!("({:.0} ms)", v.duration_ms)), v.detail);
    }
    let _ = writeln!(o, "\n{}", st.bold("Impact"));
    let _ = writeln!(o, "  changed:    {}", a.impact.changed.join(", "));
    let _ =
        writeln!(o, "  dependents: {}", if a.impact.dependents.is_empty() { "none".to_string() } else { a.impact.dependents.join(", ") });
    let score = a.risk.score.score;
    let level = match a.risk.level.as_str() {
        "low" => st.green("low"),
        "medium" => st.yellow("medium"),
        _ => st.red("high"),
    };
    let _ = writeln!(o, "\n{} {score:.2} ({level})", st.bold("Change risk"));
    for f in a.risk.score.factors.iter().take(5) {
        let _ = writeln!(o, "  {:<14} {:>8.3}  {}", f.name, f.value, st.dim(&format!("contribution {:+.3}", f.contribution)));
    }
    let _ = writeln!(o, "\n{}", st.bold("Anomalous operations"));
    if !a.baseline.warm {
        let _ = writeln!(o, "  no baseline yet ({} applied changes on record)", a.baseline.changes);
    } else if a.anomalies.is_empty() {
        let _ = writeln!(o, "  none (baseline of {} changes)", a.baseline.changes);
    }
    for an in &a.anomalies {
        let _ = writeln!(o, "  {} {}", st.red("!"), an.reason);
    }
    let r = &a.rollback;
    let _ = writeln!(o, "\n{}", st.bold("Rollback plan"));
    for (i, stage) in r.order.iter().enumerate() {
        let _ = writeln!(o, "  stage {}: {}", i + 1, stage.join(", "));
    }
    let _ = writeln!(
        o,
        "  estimate:  p50 {:.3} s, p90 {:.3} s ({}; parallelism {})",
        r.estimate_p50_s, r.estimate_p90_s, r.estimate_basis, r.parallelism
    );
    let _ = writeln!(o, "  risk:      {:.3}", r.risk);
    if r.high_cost {
        let _ = writeln!(o, "  {} {}", st.red("high cost:"), r.high_cost_reasons.join("; "));
        let _ = writeln!(o, "  applying needs --override");
    } else {
        let _ = writeln!(o, "  high cost: no");
    }
    for p in &r.simulation_problems {
        let _ = writeln!(o, "  {} {p}", st.red("simulation:"));
    }
    o
}

/// A rollback report.
pub fn rollback(r: &RollbackReport, st: Style) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} rollback, order: {}",
        r.kind,
        r.order.iter().map(|s| format!("[{}]", s.join(", "))).collect::<Vec<_>>().join(" then ")
    );
    for x in &r.restored {
        let mark = if x.ok && x.verified { st.green("✓") } else { st.red("✗") };
        let _ = writeln!(
            o,
            "  {mark} {}: {} ({:.0} ms){}",
            x.resource,
            x.detail,
            x.duration_ms,
            if x.verified { ", verified" } else { ", NOT verified" }
        );
        for d in &x.differences {
            let _ = writeln!(o, "      {d}");
        }
    }
    let _ =
        writeln!(o, "{}", if r.verified { st.green("every restored resource equals its snapshot") } else { st.red("verification failed") });
    o
}

/// An apply report: the plan, then what happened.
pub fn apply(r: &ApplyReport, st: Style) -> String {
    let mut o = plan(&r.analysis, st);
    if !r.pre_provisioned.is_empty() {
        let _ = writeln!(o, "\n{}", st.bold("Pre-provisioned rollback resources"));
        for p in &r.pre_provisioned {
            let _ = writeln!(o, "  {p}");
        }
    }
    if !r.applied.is_empty() {
        let _ = writeln!(o, "\napplied: {}", r.applied.join(", "));
    }
    for v in &r.post_apply {
        let mark = match v.outcome {
            Outcome::Passed => st.green("✓"),
            Outcome::Failed => st.red("✗"),
            Outcome::Skipped => st.yellow("-"),
        };
        let _ = writeln!(o, "  post-apply {mark} {}: {}", v.name, v.detail);
    }
    if let Some(rb) = &r.rollback {
        let _ = writeln!(o);
        o.push_str(&rollback(rb, st));
    }
    let status = match r.status {
        crate::store::ChangeStatus::Applied => st.green(r.status.as_str()),
        _ => st.red(r.status.as_str()),
    };
    let _ = writeln!(o, "\nchange {}: {status}: {}", r.change, r.reason);
    o
}
