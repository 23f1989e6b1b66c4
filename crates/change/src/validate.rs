//! Validation tests (on the staging copies, before anything live moves) and post-apply
//! checks (on the live resources): HTTP probe, command, metric query, dependency check.
//!
//! Arguments, URLs and queries may name resources: `{staged:ID}` is where resource `ID`'s
//! staging copy is (a path for a file, `host:port` for Redis, what the `stage` command
//! printed for exec) and `{live:ID}` where the live resource is. A test that names a
//! staging copy that does not exist (the resource is unchanged, or its kind cannot be
//! staged) is skipped, with the reason.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::template::TestSpec;

/// How a test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It held.
    Passed,
    /// It did not.
    Failed,
    /// It could not run (reason in the detail).
    Skipped,
}

impl Outcome {
    /// `passed`, `failed`, `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

/// The result of one test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// The test's name.
    pub name: String,
    /// `http`, `command`, `metric`, `dependencies`.
    #[serde(rename = "type")]
    pub kind: String,
    /// How it ended.
    pub outcome: Outcome,
    /// What was seen.
    pub detail: String,
    /// How long it took.
    pub duration_ms: f64,
}

/// What tests can refer to.
#[derive(Debug, Clone, Default)]
pub struct TestContext {
    /// Staging locations by resource id.
    pub staged: BTreeMap<String, String>,
    /// Live locations by resource id.
    pub live: BTreeMap<String, String>,
    /// For the dependency check: each resource's `depends_on`.
    pub depends_on: BTreeMap<String, Vec<String>>,
    /// For the dependency check: whether each resource could be read (`Err` says why not).
    pub health: BTreeMap<String, Result<(), String>>,
    /// Working directory of commands (the template's directory).
    pub workdir: std::path::PathBuf,
}

/// Substitutes `{staged:ID}` and `{live:ID}` in `text`.
///
/// # Errors
/// Why a placeholder cannot be filled (names the resource).
pub fn fill(text: &str, ctx: &TestContext) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        // The earliest placeholder; other braces (PromQL label matchers, JSON) stay as they are.
        let next = ["{staged:", "{live:"].iter().filter_map(|p| rest.find(p).map(|i| (i, *p))).min_by_key(|(i, _)| *i);
        let Some((at, prefix)) = next else { break };
        let Some(close) = rest[at..].find('}') else { break };
        out.push_str(&rest[..at]);
        let id = &rest[at + prefix.len()..at + close];
        let value = if prefix == "{staged:" {
            ctx.staged.get(id).cloned().ok_or_else(|| {
                if ctx.live.contains_key(id) {
                    format!("resource {id:?} has no staging copy (it is unchanged, or its kind cannot be staged)")
                } else {
                    format!("unknown resource {id:?} in {{staged:{id}}}")
                }
            })?
        } else {
            ctx.live.get(id).cloned().ok_or_else(|| format!("unknown resource {id:?} in {{live:{id}}}"))?
        };
        out.push_str(&value);
        rest = &rest[at + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Runs `tests` one after the other.
pub async fn run_all(tests: &[TestSpec], ctx: &TestContext) -> Vec<TestResult> {
    let mut out = Vec::with_capacity(tests.len());
    for t in tests {
        out.push(run(t, ctx).await);
    }
    out
}

/// Runs one test, bounded by its timeout.
pub async fn run(test: &TestSpec, ctx: &TestContext) -> TestResult {
    let started = Instant::now();
    let (outcome, detail) = match tokio::time::timeout(test.timeout(), run_inner(test, ctx)).await {
        Ok(r) => r,
        Err(_) => (Outcome::Failed, format!("no result within {:?}", test.timeout())),
    };
    TestResult {
        name: test.name().to_string(),
        kind: test.type_name().to_string(),
        outcome,
        detail,
        duration_ms: crate::simulate::round3(started.elapsed().as_secs_f64() * 1000.0),
    }
}

async fn run_inner(test: &TestSpec, ctx: &TestContext) -> (Outcome, String) {
    match test {
        TestSpec::Http { url, expect_status, expect_body, timeout, .. } => {
            let url = match fill(url, ctx) {
                Ok(u) => u,
                Err(e) => return (Outcome::Skipped, e),
            };
            http(&url, *expect_status, expect_body.as_deref(), test_timeout(timeout)).await
        }
        TestSpec::Command { run, .. } => {
            let mut argv = Vec::with_capacity(run.len());
            for a in run {
                match fill(a, ctx) {
                    Ok(a) => argv.push(a),
                    Err(e) => return (Outcome::Skipped, e),
                }
            }
            command(&argv, &ctx.workdir).await
        }
        TestSpec::Metric { url, query, min, max, timeout, .. } => {
            let query = match fill(query, ctx) {
                Ok(q) => q,
                Err(e) => return (Outcome::Skipped, e),
            };
            metric(url, &query, *min, *max, test_timeout(timeout)).await
        }
        TestSpec::Dependencies { .. } => dependencies(ctx),
    }
}

fn test_timeout(t: &Option<String>) -> Duration {
    t.as_deref().and_then(|t| humantime::parse_duration(t).ok()).unwrap_or(Duration::from_secs(10))
}

fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder().timeout(timeout).no_proxy().build().map_err(|e| format!("HTTP client: {e}"))
}

async fn http(url: &str, expect: u16, body: Option<&str>, timeout: Duration) -> (Outcome, String) {
    let c = match client(timeout) {
        Ok(c) => c,
        Err(e) => return (Outcome::Failed, e),
    };
    let resp = match c.get(url).send().await {
        Ok(r) => r,
        Err(e) => return (Outcome::Failed, format!("GET {url}: {e}")),
    };
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    if status != expect {
        return (Outcome::Failed, format!("GET {url}: status {status}, expected {expect}"));
    }
    if let Some(want) = body
        && !text.contains(want)
    {
        return (Outcome::Failed, format!("GET {url}: status {status}, body does not contain {want:?}"));
    }
    (Outcome::Passed, format!("GET {url}: status {status}"))
}

async fn command(argv: &[String], workdir: &std::path::Path) -> (Outcome, String) {
    let Some((prog, args)) = argv.split_first() else { return (Outcome::Failed, "empty command".to_string()) };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args).current_dir(workdir).stdin(std::process::Stdio::null()).kill_on_drop(true);
    let shown = argv.join(" ");
    match cmd.output().await {
        Err(e) => (Outcome::Failed, format!("{shown}: {e}")),
        Ok(out) if out.status.success() => (Outcome::Passed, format!("{shown}: exit 0")),
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let said = tail(if stderr.trim().is_empty() { &stdout } else { &stderr });
            (Outcome::Failed, format!("{shown}: {}{}", out.status, if said.is_empty() { String::new() } else { format!(": {said}") }))
        }
    }
}

/// The last 3 non-empty lines of `text`, joined, at most 500 characters.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let s = lines[lines.len().saturating_sub(3)..].join(" | ");
    s.chars().take(500).collect()
}

async fn metric(url: &str, query: &str, min: Option<f64>, max: Option<f64>, timeout: Duration) -> (Outcome, String) {
    let c = match client(timeout) {
        Ok(c) => c,
        Err(e) => return (Outcome::Failed, e),
    };
    let endpoint = format!("{}/api/v1/query", url.trim_end_matches('/'));
    let resp = match c.get(&endpoint).query(&[("query", query)]).send().await {
        Ok(r) => r,
        Err(e) => return (Outcome::Failed, format!("{endpoint}: {e}")),
    };
    let status = resp.status();
    let text = match resp.text().await {
        Ok(t) => t,
        Err(e) => return (Outcome::Failed, format!("{endpoint}: status {status}: {e}")),
    };
    let body: serde_json::Value = match serde_json::from_str(&text) {
        Ok(b) => b,
        Err(e) => return (Outcome::Failed, format!("{endpoint}: status {status}: answer is not JSON: {e}")),
    };
    if body["status"] != "success" {
        return (Outcome::Failed, format!("{endpoint}: query {query:?}: {}", body["error"].as_str().unwrap_or("failed")));
    }
    let result = &body["data"]["result"];
    let samples: Vec<(String, f64)> = match body["data"]["resultType"].as_str() {
        Some("vector") => result
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| Some((s["metric"].to_string(), s["value"][1].as_str()?.parse::<f64>().ok()?)))
            .collect(),
        Some("scalar") => result[1].as_str().and_then(|v| v.parse().ok()).map(|v| vec![("scalar".to_string(), v)]).unwrap_or_default(),
        other => return (Outcome::Failed, format!("query {query:?}: result type {other:?}, expected vector or scalar")),
    };
    if samples.is_empty() {
        return (Outcome::Failed, format!("query {query:?}: no series"));
    }
    let bounds = format!("[{}, {}]", min.map_or("-inf".to_string(), |m| m.to_string()), max.map_or("+inf".to_string(), |m| m.to_string()));
    for (series, v) in &samples {
        if v.is_nan() || min.is_some_and(|m| *v < m) || max.is_some_and(|m| *v > m) {
            return (Outcome::Failed, format!("query {query:?}: {series} = {v}, outside {bounds}"));
        }
    }
    (Outcome::Passed, format!("query {query:?}: {} series within {bounds}", samples.len()))
}

fn dependencies(ctx: &TestContext) -> (Outcome, String) {
    let mut problems = Vec::new();
    let mut checked = 0;
    for (id, deps) in &ctx.depends_on {
        for d in deps {
            checked += 1;
            match ctx.health.get(d) {
                None => problems.push(format!("{id} depends on {d}, which does not exist")),
                Some(Err(e)) => problems.push(format!("{id} depends on {d}, which is not healthy: {e}")),
                Some(Ok(())) => {}
            }
        }
    }
    if problems.is_empty() {
        (Outcome::Passed, format!("{checked} dependencies exist and can be read"))
    } else {
        (Outcome::Failed, problems.join("; "))
    }
}
