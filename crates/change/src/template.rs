//! Change templates: the desired state of a stack's resources, in YAML or JSON.
//!
//! ```yaml
//! stack: shop
//! description: raise the web pool and the cache memory
//! resources:
//!   - id: web-config
//!     kind: file                # file | redis | exec, with the kind's own keys
//!     path: web/config.json     # relative to the template's directory
//!     criticality: 2            # 0 (best effort) .. 3 (critical)
//!     depends_on: [cache]
//!     host: h003                # optional: the fleet host it runs on (events are recorded for it)
//!     desired:
//!       content: {server: {workers: 8}}
//! validation:                   # run on the staging copies, before anything live moves
//!   - {name: config loads, type: command, run: [python3, check.py, "{staged:web-config}"]}
//! post_apply:                   # run on the live resources after the apply
//!   - {name: web answers, type: http, url: "http://127.0.0.1:8080/healthz"}
//! rollback: {high_cost: false}
//! ```
//!
//! [`parse`] checks the syntax (the error names the file, line and column), the keys (an
//! unknown key is named with its resource), the resource ids (unique, every `depends_on`
//! target known) and each resource's kind-specific keys.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harbinger_actuate::resource::{KINDS, ResourceSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What is wrong with a template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid YAML or JSON.
    #[error("{file}:{line}:{column}: {detail}")]
    Syntax {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        detail: String,
    },
    /// The document parses but does not describe a valid change.
    #[error("{file}: {detail}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// What is wrong, naming the resource and key.
        detail: String,
    },
}

/// Rollback properties of a change or a resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackSpec {
    /// Rolling back is expensive (a data migration, a long rebuild): the change needs an
    /// explicit override to be applied.
    #[serde(default)]
    pub high_cost: bool,
    /// Some step cannot be undone by restoring state (a message sent, data dropped).
    #[serde(default)]
    pub irreversible: bool,
    /// Why, for the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A validation test or post-apply check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum TestSpec {
    /// An HTTP GET that must answer `expect_status` (default 200) and, if given, a body
    /// containing `expect_body`.
    Http {
        /// Name in reports.
        name: String,
        /// URL; placeholders allowed.
        url: String,
        /// Expected status.
        #[serde(default = "default_status")]
        expect_status: u16,
        /// Text the body must contain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_body: Option<String>,
        /// Bound, e.g. `5s`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<String>,
    },
    /// A command that must exit 0.
    Command {
        /// Name in reports.
        name: String,
        /// argv; placeholders allowed in every argument.
        run: Vec<String>,
        /// Bound, e.g. `5s`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<String>,
    },
    /// An instant query to a Prometheus-compatible HTTP API (`GET {url}/api/v1/query`);
    /// every series of the answer must lie within `[min, max]`, and there must be one.
    Metric {
        /// Name in reports.
        name: String,
        /// Base URL of the API, e.g. `http://127.0.0.1:9090`.
        url: String,
        /// PromQL; placeholders allowed.
        query: String,
        /// Lowest value allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        /// Highest value allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
        /// Bound, e.g. `5s`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<String>,
    },
    /// Every `depends_on` target of every resource exists and can be read.
    Dependencies {
        /// Name in reports.
        #[serde(default = "default_dependencies_name")]
        name: String,
    },
}

fn default_status() -> u16 {
    200
}

fn default_dependencies_name() -> String {
    "dependencies".to_string()
}

impl TestSpec {
    /// The test's name.
    pub fn name(&self) -> &str {
        match self {
            TestSpec::Http { name, .. } | TestSpec::Command { name, .. } | TestSpec::Metric { name, .. } => name,
            TestSpec::Dependencies { name } => name,
        }
    }

    /// `http`, `command`, `metric`, `dependencies`.
    pub fn type_name(&self) -> &'static str {
        match self {
            TestSpec::Http { .. } => "http",
            TestSpec::Command { .. } => "command",
            TestSpec::Metric { .. } => "metric",
            TestSpec::Dependencies { .. } => "dependencies",
        }
    }

    /// The test's bound (default 10 s).
    pub fn timeout(&self) -> Duration {
        let t = match self {
            TestSpec::Http { timeout, .. } | TestSpec::Command { timeout, .. } | TestSpec::Metric { timeout, .. } => timeout.as_deref(),
            TestSpec::Dependencies { .. } => None,
        };
        t.and_then(|t| humantime::parse_duration(t).ok()).unwrap_or(Duration::from_secs(10))
    }

    fn check(&self) -> Result<(), String> {
        let t = match self {
            TestSpec::Http { timeout, .. } | TestSpec::Command { timeout, .. } | TestSpec::Metric { timeout, .. } => timeout.as_deref(),
            TestSpec::Dependencies { .. } => None,
        };
        if let Some(t) = t {
            humantime::parse_duration(t).map_err(|e| format!("timeout {t:?}: {e}"))?;
        }
        match self {
            TestSpec::Command { run, .. } if run.is_empty() => Err("run: empty command".to_string()),
            TestSpec::Metric { min: None, max: None, .. } => Err("a metric test needs min or max".to_string()),
            _ => Ok(()),
        }
    }
}

/// One resource of the stack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceDecl {
    /// Unique id within the stack.
    pub id: String,
    /// Kind and kind-specific keys.
    #[serde(skip)]
    pub spec: ResourceSpec,
    /// The spec as written (kind and its keys), kept for the store.
    pub spec_json: Value,
    /// 0 (best effort) .. 3 (critical).
    pub criticality: u8,
    /// Resources this one needs.
    pub depends_on: Vec<String>,
    /// The host it runs on, when it runs on one of the fleet's hosts: the change's events
    /// (deploy, config change, rollback) are recorded for that host, where the failure
    /// model's deployment features read them.
    pub host: Option<String>,
    /// The desired state (the profiled parts); `None`: leave as it is.
    pub desired: Option<Value>,
    /// Rollback properties of this resource.
    pub rollback: RollbackSpec,
}

/// A parsed change template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    /// The stack it applies to.
    pub stack: String,
    /// What the change is for.
    pub description: Option<String>,
    /// Resources, in the template's order.
    pub resources: Vec<ResourceDecl>,
    /// Tests on the staging copies.
    pub validation: Vec<TestSpec>,
    /// Checks on the live resources after the apply.
    pub post_apply: Vec<TestSpec>,
    /// Rollback properties of the whole change.
    pub rollback: RollbackSpec,
    /// Directory relative paths resolve against.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The document as JSON (kept in the change record).
    #[serde(skip)]
    pub raw: Value,
}

impl Template {
    /// The resource `id`.
    pub fn resource(&self, id: &str) -> Option<&ResourceDecl> {
        self.resources.iter().find(|r| r.id == id)
    }

    /// Whether rolling this change back is expensive (the change or any resource says so).
    pub fn high_cost(&self) -> bool {
        self.rollback.high_cost
            || self.rollback.irreversible
            || self.resources.iter().any(|r| r.rollback.high_cost || r.rollback.irreversible)
    }

    /// Why rolling back is expensive, when it is.
    pub fn high_cost_reasons(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut push = |who: &str, r: &RollbackSpec| {
            if r.high_cost || r.irreversible {
                let what = if r.irreversible { "irreversible" } else { "high rollback cost" };
                out.push(match &r.reason {
                    Some(reason) => format!("{who}: {what}: {reason}"),
                    None => format!("{who}: {what}"),
                });
            }
        };
        push("change", &self.rollback);
        for r in &self.resources {
            push(&r.id, &r.rollback);
        }
        out
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    stack: String,
    #[serde(default)]
    description: Option<String>,
    resources: Vec<serde_json::Map<String, Value>>,
    #[serde(default)]
    validation: Vec<TestSpec>,
    #[serde(default)]
    post_apply: Vec<TestSpec>,
    #[serde(default)]
    rollback: RollbackSpec,
}

/// Keys of a template resource that are not the kind's.
const COMMON_KEYS: &[&str] = &["id", "criticality", "depends_on", "host", "desired", "rollback"];

/// Reads and parses the template at `path` (YAML, or JSON when the name ends in `.json`).
///
/// # Errors
/// [`TemplateError`] naming the file (and line for syntax errors).
pub fn read(path: &Path) -> Result<Template, TemplateError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read { file: path.to_path_buf(), source })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
    parse(&text, path, &base)
}

/// Parses a template from `text`; `file` names it in errors, `base_dir` resolves
/// relative paths.
///
/// # Errors
/// [`TemplateError::Syntax`] or [`TemplateError::Invalid`].
pub fn parse(text: &str, file: &Path, base_dir: &Path) -> Result<Template, TemplateError> {
    let is_json = file.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let raw: Value = if is_json {
        serde_json::from_str(text).map_err(|e| TemplateError::Syntax {
            file: file.to_path_buf(),
            line: e.line(),
            column: e.column(),
            detail: e.to_string(),
        })?
    } else {
        serde_norway::from_str(text).map_err(|e| {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
            TemplateError::Syntax { file: file.to_path_buf(), line, column, detail: e.to_string() }
        })?
    };
    let invalid = |detail: String| TemplateError::Invalid { file: file.to_path_buf(), detail };
    let t: RawTemplate = serde_json::from_value(raw.clone()).map_err(|e| invalid(e.to_string()))?;
    if t.stack.trim().is_empty() || t.stack.contains('/') {
        return Err(invalid(format!("stack: {:?} is not a stack name (non-empty, no '/')", t.stack)));
    }
    let mut resources = Vec::with_capacity(t.resources.len());
    let mut seen = BTreeSet::new();
    for (i, mut map) in t.resources.into_iter().enumerate() {
        let id = match map.remove("id") {
            Some(Value::String(s)) if !s.is_empty() && !s.contains('/') => s,
            Some(v) => return Err(invalid(format!("resources[{i}].id: {v} is not a resource id (a non-empty string without '/')"))),
            None => return Err(invalid(format!("resources[{i}]: missing key `id`"))),
        };
        if !seen.insert(id.clone()) {
            return Err(invalid(format!("resources[{i}]: resource {id:?} is declared twice")));
        }
        let who = format!("resource {id:?}");
        let criticality = match map.remove("criticality") {
            None => 1,
            Some(v) => match v.as_u64() {
                Some(c) if c <= 3 => c as u8,
                _ => return Err(invalid(format!("{who}: criticality: {v} is not 0, 1, 2 or 3"))),
            },
        };
        let depends_on: Vec<String> = match map.remove("depends_on") {
            None => Vec::new(),
            Some(v) => serde_json::from_value(v).map_err(|e| invalid(format!("{who}: depends_on: {e}")))?,
        };
        let host = match map.remove("host") {
            None => None,
            Some(Value::String(h)) if !h.is_empty() => Some(h),
            Some(v) => return Err(invalid(format!("{who}: host: {v} is not a host id"))),
        };
        let desired = map.remove("desired");
        if let Some(d) = &desired
            && !d.is_object()
        {
            return Err(invalid(format!("{who}: desired: must be an object (the resource's state), got {d}")));
        }
        let rollback: RollbackSpec = match map.remove("rollback") {
            None => RollbackSpec::default(),
            Some(v) => serde_json::from_value(v).map_err(|e| invalid(format!("{who}: rollback: {e}")))?,
        };
        let spec_json = Value::Object(map);
        if spec_json.get("kind").is_none() {
            return Err(invalid(format!("{who}: missing key `kind` (one of {})", KINDS.join(", "))));
        }
        let spec: ResourceSpec = serde_json::from_value(spec_json.clone()).map_err(|e| {
            let mut msg = e.to_string();
            if msg.contains("unknown field") {
                msg.push_str(&format!(" (common keys: {})", COMMON_KEYS.join(", ")));
            }
            invalid(format!("{who}: {msg}"))
        })?;
        resources.push(ResourceDecl { id, spec, spec_json, criticality, depends_on, host, desired, rollback });
    }
    for r in &resources {
        for d in &r.depends_on {
            if !seen.contains(d) {
                return Err(invalid(format!("resource {:?}: depends_on: unknown resource {d:?}", r.id)));
            }
            if d == &r.id {
                return Err(invalid(format!("resource {:?}: depends on itself", r.id)));
            }
        }
    }
    for (list, tests) in [("validation", &t.validation), ("post_apply", &t.post_apply)] {
        for (i, test) in tests.iter().enumerate() {
            test.check().map_err(|e| invalid(format!("{list}[{i}] ({:?}): {e}", test.name())))?;
        }
    }
    Ok(Template {
        stack: t.stack,
        description: t.description,
        resources,
        validation: t.validation,
        post_apply: t.post_apply,
        rollback: t.rollback,
        base_dir: base_dir.to_path_buf(),
        raw,
    })
}
