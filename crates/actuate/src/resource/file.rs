//! The `file` kind: a configuration file (JSON, YAML or TOML), or a directory of them.
//!
//! # Spec
//! ```yaml
//! kind: file
//! path: conf/app.yaml     # relative to the template's directory
//! format: yaml            # optional: json | yaml | toml; default from the extension
//! directory: false        # optional: true for a directory (default: whether path is one)
//! ```
//!
//! # State
//! - A file: `{"content": <the parsed document>}`; profile `["/content"]`. A missing file
//!   reads as `{}`, and writing a state without `content` removes the file.
//! - A directory: `{"files": {"<relative path>": <parsed document>, ...}}` for every file
//!   under it (recursively, `/`-separated, sorted) whose extension is `.json`, `.yaml`,
//!   `.yml` or `.toml` (only the spec's `format`, when given); profile `["/files"]`. Other
//!   files are left alone. A missing directory reads as `{}`; writing a state makes the
//!   directory hold exactly the managed files listed (others are removed; directories
//!   left empty by that stay), and writing a state without `files` removes every managed
//!   file, and the directory itself when nothing else is left in it.
//!
//! Documents are parsed into JSON (TOML dates and times become strings) and written
//! back with a stable serialisation: JSON pretty-printed with 2-space indents and a final
//! newline, YAML as `serde_norway` writes it, TOML as `toml::to_string_pretty` writes it.
//! Keys come out sorted; comments are not kept. A document is only written if it parses
//! back to exactly the same JSON, so a state read after a write is the state written.
//!
//! Writes are atomic: a temporary file in the same directory, `fsync`ed, renamed over the
//! file (keeping its permissions; a symbolic link is followed), then the directory
//! `fsync`ed. Staging copies the file or directory into a scratch directory and writes
//! the state there.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ResourceDriver, ResourceError, Staged, resolve};

/// A document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON (`.json`).
    Json,
    /// YAML (`.yaml`, `.yml`).
    #[serde(alias = "yml")]
    Yaml,
    /// TOML (`.toml`).
    Toml,
}

impl Format {
    /// The format of a path, by its extension (`.json`, `.yaml`, `.yml`, `.toml`).
    pub fn of_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }

    /// `json`, `yaml` or `toml`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Toml => "toml",
        }
    }

    /// Parses a document into JSON.
    ///
    /// # Errors
    /// The parser's message, with the line and column.
    pub fn parse(self, text: &str) -> Result<Value, String> {
        match self {
            Format::Json => serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}")),
            Format::Yaml => {
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                serde_norway::from_str(text).map_err(|e| {
                    let mut msg = format!("invalid YAML: {e}");
                    if let Some(loc) = e.location()
                        && !msg.contains(" line ")
                    {
                        msg.push_str(&format!(" at line {} column {}", loc.line(), loc.column()));
                    }
                    msg
                })
            }
            Format::Toml => {
                let table: toml::Table = toml::from_str(text).map_err(|e| format!("invalid TOML: {}", e.to_string().trim_end()))?;
                toml_to_json(toml::Value::Table(table), "")
            }
        }
    }

    /// Serialises a document in this format; the text parses back to exactly `doc`.
    ///
    /// # Errors
    /// What the format cannot hold (a TOML null or non-table root, ...), with the JSON
    /// pointer of the offending value.
    pub fn render(self, doc: &Value) -> Result<String, String> {
        self.render_at(doc, "")
    }

    /// As [`Format::render`], with pointers in messages prefixed by `base`.
    fn render_at(self, doc: &Value, base: &str) -> Result<String, String> {
        let text = match self {
            Format::Json => {
                let mut s = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
                s.push('\n');
                s
            }
            Format::Yaml => serde_norway::to_string(doc).map_err(|e| format!("cannot be written as YAML: {e}"))?,
            Format::Toml => {
                let toml::Value::Table(table) = json_to_toml(doc, base)? else {
                    let at = if base.is_empty() { String::new() } else { format!("{base}: ") };
                    return Err(format!("{at}a TOML document is a table, not {}", json_type(doc)));
                };
                toml::to_string_pretty(&table).map_err(|e| format!("cannot be written as TOML: {e}"))?
            }
        };
        let at = if base.is_empty() { String::new() } else { format!("{base}: ") };
        match self.parse(&text) {
            Ok(back) if back == *doc => Ok(text),
            Ok(_) => Err(format!("{at}cannot be written as {} so that it reads back the same", self.name())),
            Err(e) => Err(format!("{at}written as {} it does not parse back: {e}", self.name())),
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `ptr` with the JSON-pointer segment `key` appended.
fn push_ptr(ptr: &str, key: &str) -> String {
    format!("{ptr}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn toml_to_json(v: toml::Value, ptr: &str) -> Result<Value, String> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => {
            Value::Number(serde_json::Number::from_f64(f).ok_or_else(|| format!("{ptr}: {f} cannot be held in JSON"))?)
        }
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => {
            Value::Array(a.into_iter().enumerate().map(|(i, v)| toml_to_json(v, &format!("{ptr}/{i}"))).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(t) => {
            let mut m = Map::new();
            for (k, v) in t {
                let v = toml_to_json(v, &push_ptr(ptr, &k))?;
                m.insert(k, v);
            }
            Value::Object(m)
        }
    })
}

fn json_to_toml(v: &Value, ptr: &str) -> Result<toml::Value, String> {
    let at = if ptr.is_empty() { "the document" } else { ptr };
    Ok(match v {
        Value::Null => return Err(format!("{at} is null: TOML has no null")),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => toml::Value::Integer(i),
            (None, Some(f)) if !n.is_u64() => toml::Value::Float(f),
            _ => return Err(format!("{at}: {n} is out of TOML's integer range")),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => {
            toml::Value::Array(a.iter().enumerate().map(|(i, v)| json_to_toml(v, &format!("{ptr}/{i}"))).collect::<Result<_, _>>()?)
        }
        Value::Object(m) => {
            let mut t = toml::Table::new();
            for (k, v) in m {
                t.insert(k.clone(), json_to_toml(v, &push_ptr(ptr, k))?);
            }
            toml::Value::Table(t)
        }
    })
}

/// The `file` kind's spec (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// The file or directory; relative to the template's directory.
    pub path: PathBuf,
    /// The format of the file (of the managed files, for a directory); default from the
    /// extension.
    #[serde(default)]
    pub format: Option<Format>,
    /// Whether `path` is a directory; default: whether it is one now.
    #[serde(default)]
    pub directory: Option<bool>,
}

/// File or directory, with the format.
#[derive(Debug, Clone, Copy)]
enum Mode {
    File(Format),
    /// The only format managed, or every known one.
    Dir(Option<Format>),
}

/// A configuration file or directory on disk (see the module docs).
#[derive(Debug, Clone)]
pub struct FileResource {
    id: String,
    path: PathBuf,
    mode: Mode,
}

impl FileResource {
    /// The resource `id` for `spec`, its path resolved against `base_dir`.
    ///
    /// # Errors
    /// [`ResourceError::Spec`] when a file's format is neither given nor known from its
    /// extension, or `directory: false` names a directory.
    pub fn new(id: &str, spec: &FileSpec, base_dir: &Path) -> Result<Self, ResourceError> {
        let path = resolve(base_dir, &spec.path);
        let spec_err = |detail: String| ResourceError::Spec { resource: id.to_string(), detail };
        let is_dir = path.is_dir();
        let directory = match spec.directory {
            Some(false) if is_dir => return Err(spec_err(format!("{} is a directory but the spec says directory: false", path.display()))),
            Some(d) => d,
            None => is_dir,
        };
        let mode = if directory {
            Mode::Dir(spec.format)
        } else {
            let format = spec.format.or_else(|| Format::of_path(&path)).ok_or_else(|| {
                spec_err(format!("cannot tell the format of {} from its extension: give format (json, yaml or toml)", path.display()))
            })?;
            Mode::File(format)
        };
        Ok(FileResource { id: id.to_string(), path, mode })
    }

    /// The file or directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it is a directory.
    pub fn is_directory(&self) -> bool {
        matches!(self.mode, Mode::Dir(_))
    }

    fn io(&self, op: &'static str, detail: String) -> ResourceError {
        ResourceError::Io { resource: self.id.clone(), op, detail }
    }

    fn invalid(&self, detail: String) -> ResourceError {
        ResourceError::State { resource: self.id.clone(), detail }
    }

    /// Runs blocking file work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(FileResource) -> Result<T, ResourceError> + Send + 'static,
    ) -> Result<T, ResourceError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(this)).await.map_err(|e| self.io(op, format!("{}: {e}", self.path.display())))?
    }

    fn read_at(&self, path: &Path) -> Result<Value, ResourceError> {
        match self.mode {
            Mode::File(format) => Ok(match read_doc(path, format).map_err(|e| self.io("read", e))? {
                Some(doc) => serde_json::json!({ "content": doc }),
                None => Value::Object(Map::new()),
            }),
            Mode::Dir(only) => {
                if !path.exists() {
                    return Ok(Value::Object(Map::new()));
                }
                let mut files = Map::new();
                for (rel, (file, format)) in list_dir(path, only).map_err(|e| self.io("read", e))? {
                    let doc = read_doc(&file, format)
                        .map_err(|e| self.io("read", e))?
                        .ok_or_else(|| self.io("read", format!("{}: vanished while being read", file.display())))?;
                    files.insert(rel, doc);
                }
                Ok(serde_json::json!({ "files": files }))
            }
        }
    }

    /// Renders what `state` asks for before touching anything: `None` for "no file" (file
    /// mode) or "no `files`" (directory mode).
    fn plan(&self, state: &Value) -> Result<Plan, ResourceError> {
        let obj = state.as_object().ok_or_else(|| self.invalid(format!("expected an object, got {}", json_type(state))))?;
        let (part, other) = match self.mode {
            Mode::File(_) => ("content", "files"),
            Mode::Dir(_) => ("files", "content"),
        };
        if let Some(k) = obj.keys().find(|k| k.as_str() != part) {
            let hint = if k == other {
                format!(" (a {} resource)", if part == "files" { "directory" } else { "single-file" })
            } else {
                String::new()
            };
            return Err(self.invalid(format!("/{k} is outside the change profile [\"/{part}\"]{hint}")));
        }
        match self.mode {
            Mode::File(format) => match obj.get("content") {
                None => Ok(Plan::File(None)),
                Some(doc) => Ok(Plan::File(Some(
                    format.render_at(doc, "/content").map_err(|e| self.invalid(format!("{}: {e}", self.path.display())))?,
                ))),
            },
            Mode::Dir(only) => {
                let Some(files) = obj.get("files") else { return Ok(Plan::Dir(None)) };
                let files =
                    files.as_object().ok_or_else(|| self.invalid(format!("/files: expected an object, got {}", json_type(files))))?;
                let mut out = BTreeMap::new();
                for (rel, doc) in files {
                    let ptr = push_ptr("/files", rel);
                    let format = check_rel(rel, only).map_err(|e| self.invalid(format!("{ptr}: {e}")))?;
                    let text = format.render_at(doc, &ptr).map_err(|e| self.invalid(format!("{}: {e}", self.path.join(rel).display())))?;
                    out.insert(rel.clone(), text);
                }
                Ok(Plan::Dir(Some(out)))
            }
        }
    }

    fn write_at(&self, path: &Path, plan: Plan, op: &'static str) -> Result<(), ResourceError> {
        match plan {
            Plan::File(Some(text)) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| self.io(op, format!("cannot create {}: {e}", parent.display())))?;
                }
                write_atomic(path, text.as_bytes()).map_err(|e| self.io(op, e))
            }
            Plan::File(None) => remove_file(path).map_err(|e| self.io(op, e)),
            Plan::Dir(files) => {
                let Mode::Dir(only) = self.mode else { return Err(self.invalid("not a directory".to_string())) };
                let existing = if path.exists() { list_dir(path, only).map_err(|e| self.io(op, e))? } else { BTreeMap::new() };
                let remove_all = files.is_none();
                let files = files.unwrap_or_default();
                if !remove_all {
                    std::fs::create_dir_all(path).map_err(|e| self.io(op, format!("cannot create {}: {e}", path.display())))?;
                }
                for (rel, text) in &files {
                    let file = path.join(rel);
                    if let Some(parent) = file.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| self.io(op, format!("cannot create {}: {e}", parent.display())))?;
                    }
                    write_atomic(&file, text.as_bytes()).map_err(|e| self.io(op, e))?;
                }
                for (rel, (file, _)) in &existing {
                    if !files.contains_key(rel) {
                        remove_file(file).map_err(|e| self.io(op, e))?;
                    }
                }
                if remove_all && path.exists() {
                    remove_empty_dirs(path).map_err(|e| self.io(op, e))?;
                }
                Ok(())
            }
        }
    }
}

/// What a write will do, rendered.
enum Plan {
    /// The file's text, or no file.
    File(Option<String>),
    /// Each file's text by relative path, or no `files` at all.
    Dir(Option<BTreeMap<String, String>>),
}

/// The format of the relative path `rel` of a directory's file; an error for paths that
/// leave the directory or name no managed format.
fn check_rel(rel: &str, only: Option<Format>) -> Result<Format, String> {
    let p = Path::new(rel);
    if rel.is_empty() || rel.contains('\\') || !p.components().all(|c| matches!(c, Component::Normal(_))) || rel.ends_with('/') {
        return Err(format!("{rel:?} is not a plain relative path inside the directory"));
    }
    let format = Format::of_path(p).ok_or_else(|| format!("{rel:?} has no .json, .yaml, .yml or .toml extension"))?;
    match only {
        Some(f) if f != format => Err(format!("{rel:?} is not a {} file, the only format this directory manages", f.name())),
        _ => Ok(format),
    }
}

/// Reads and parses a document; `None` when the file does not exist.
fn read_doc(path: &Path, format: Format) -> Result<Option<Value>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let text = String::from_utf8(bytes).map_err(|e| format!("{}: not UTF-8: {e}", path.display()))?;
    format.parse(&text).map(Some).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every managed file under `dir`: relative path (`/`-separated) → (path, format).
/// Symbolic links to files count; links to directories are not followed.
fn list_dir(dir: &Path, only: Option<Format>) -> Result<BTreeMap<String, (PathBuf, Format)>, String> {
    fn walk(dir: &Path, prefix: &str, only: Option<Format>, out: &mut BTreeMap<String, (PathBuf, Format)>) -> Result<(), String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(format!("{}: the file name is not UTF-8", path.display()));
            };
            let rel = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
            let ty = entry.file_type().map_err(|e| format!("{}: {e}", path.display()))?;
            if ty.is_dir() {
                walk(&path, &rel, only, out)?;
                continue;
            }
            let is_file = ty.is_file() || (ty.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()));
            if !is_file {
                continue;
            }
            if let Some(format) = Format::of_path(&path).filter(|f| only.is_none_or(|o| o == *f)) {
                out.insert(rel, (path, format));
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, "", only, &mut out)?;
    Ok(out)
}

/// `path`'s directory (`.` for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Replaces `path` with `bytes` atomically: a temporary file beside it, synced, renamed
/// over it, then the directory synced. Keeps the permissions of the file it replaces
/// (0644 for a new one); a symbolic link is followed, so its target is replaced.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = parent_of(&target);
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let ctx = |what: &str, e: std::io::Error| format!("{}: {what}: {e}", target.display());
    let perms = std::fs::metadata(&target).map(|m| m.permissions()).unwrap_or_else(|_| std::fs::Permissions::from_mode(0o644));
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| ctx("cannot create a temporary file beside it", e))?;
    tmp.write_all(bytes).map_err(|e| ctx("cannot write", e))?;
    tmp.as_file().set_permissions(perms).map_err(|e| ctx("cannot set permissions", e))?;
    tmp.as_file().sync_all().map_err(|e| ctx("cannot sync", e))?;
    tmp.persist(&target).map_err(|e| ctx("cannot rename the temporary file over it", e.error))?;
    sync_dir(&dir).map_err(|e| format!("{}: cannot sync the directory: {e}", dir.display()))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Removes a file (nothing to do when it is gone) and syncs its directory.
fn remove_file(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(&parent_of(path)).map_err(|e| format!("{}: cannot sync the directory: {e}", parent_of(path).display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

/// Removes `dir` and the directories under it when they hold nothing else (bottom up);
/// what holds a file stays.
fn remove_empty_dirs(dir: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_dirs(&entry.path())?;
        }
    }
    let empty = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?.next().is_none();
    if empty {
        std::fs::remove_dir(dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
        sync_dir(&parent_of(dir)).map_err(|e| format!("{}: cannot sync the directory: {e}", parent_of(dir).display()))?;
    }
    Ok(())
}

/// Copies `from` (a file or a directory tree) to `to`; symbolic links are copied as the
/// files they point to, links to directories are skipped.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    if meta.is_file() {
        std::fs::copy(from, to).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
        return Ok(());
    }
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("cannot list {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", from.display()))?;
        let ty = entry.file_type().map_err(|e| format!("{}: {e}", entry.path().display()))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&src, &dst)?;
        } else if ty.is_file() || std::fs::metadata(&src).is_ok_and(|m| m.is_file()) {
            std::fs::copy(&src, &dst).map_err(|e| format!("cannot copy {} to {}: {e}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

#[async_trait]
impl ResourceDriver for FileResource {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn describe(&self) -> String {
        match self.mode {
            Mode::File(f) => format!("{} ({})", self.path.display(), f.name()),
            Mode::Dir(_) => format!("{}/ (directory)", self.path.display()),
        }
    }

    fn profile(&self) -> Vec<String> {
        match self.mode {
            Mode::File(_) => vec!["/content".to_string()],
            Mode::Dir(_) => vec!["/files".to_string()],
        }
    }

    async fn read(&self) -> Result<Value, ResourceError> {
        self.blocking("read", |this| this.read_at(&this.path)).await
    }

    async fn write(&self, state: &Value) -> Result<(), ResourceError> {
        let plan = self.plan(state)?;
        self.blocking("write", move |this| this.write_at(&this.path, plan, "write")).await
    }

    async fn stage(&self, state: &Value) -> Result<Option<Staged>, ResourceError> {
        let plan = self.plan(state)?;
        let staged = self
            .blocking("stage", move |this| {
                let tmp = tempfile::Builder::new()
                    .prefix("harbinger-stage-")
                    .tempdir()
                    .map_err(|e| this.io("stage", format!("cannot create a scratch directory: {e}")))?;
                let name = this.path.file_name().map_or_else(|| std::ffi::OsString::from(&this.id), std::ffi::OsStr::to_os_string);
                let copy = tmp.path().join(name);
                if this.path.exists() {
                    copy_tree(&this.path, &copy).map_err(|e| this.io("stage", e))?;
                }
                this.write_at(&copy, plan, "stage")?;
                Ok(Staged { location: copy.display().to_string(), guard: Box::new(tmp) })
            })
            .await?;
        Ok(Some(staged))
    }
}
