//! The `file` resource kind on real files in a temp dir: round trips in every format and
//! for a directory, missing files, parse errors, what TOML cannot hold, and staging.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use harbinger_actuate::resource::{ResourceDriver, ResourceError, ResourceSpec, driver_for};
use serde_json::{Value, json};

fn driver(dir: &Path, spec: Value) -> Arc<dyn ResourceDriver> {
    let mut spec = spec;
    spec["kind"] = json!("file");
    let spec: ResourceSpec = serde_json::from_value(spec).unwrap();
    driver_for("conf", &spec, dir).unwrap()
}

/// A document with what each format must keep: integers, floats, strings that look like
/// other things, nesting, arrays, unicode.
fn rich() -> Value {
    json!({
        "server": {"port": 8080, "ratio": 0.25, "big": 9_007_199_254_740_993_i64, "neg": -3, "whole_float": 2.0},
        "names": ["a", "b c", "ünï", ""],
        "flags": {"on": true, "off": false},
        "tricky": {"yes": "yes", "num": "1.0", "null_word": "null", "colon": "a: b", "hash": "# not a comment", "multi": "line1\nline2"},
        "tables": [{"x": 1}, {"x": 2, "y": "z"}],
        "empty": {}
    })
}

async fn round_trip(d: &dyn ResourceDriver, state: &Value) {
    d.write(state).await.unwrap();
    assert_eq!(d.read().await.unwrap(), *state, "read after write");
}

#[tokio::test]
async fn json_yaml_toml_files_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["app.json", "app.yaml", "app.yml", "app.toml"] {
        let d = driver(tmp.path(), json!({"path": name}));
        assert_eq!(d.profile(), vec!["/content".to_string()]);
        assert_eq!(d.read().await.unwrap(), json!({}), "{name} missing at first");
        let mut doc = rich();
        if name.ends_with(".json") || name.ends_with(".yaml") || name.ends_with(".yml") {
            doc["nothing"] = Value::Null;
        }
        round_trip(&*d, &json!({"content": doc})).await;
        // The integer stays an integer in the file.
        let text = std::fs::read_to_string(tmp.path().join(name)).unwrap();
        assert!(text.contains("9007199254740993"), "{name}: {text}");
        // A second state replaces the first.
        round_trip(&*d, &json!({"content": {"server": {"port": 9090}}})).await;
        // No content: the file is removed.
        round_trip(&*d, &json!({})).await;
        assert!(!tmp.path().join(name).exists(), "{name} removed");
    }
}

#[tokio::test]
async fn json_is_pretty_with_a_final_newline_and_existing_files_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.json"), r#"{"b":1,"a":[1,2]}"#).unwrap();
    std::fs::write(tmp.path().join("b.toml"), "title = \"x\"\n[db]\nport = 5432\nwhen = 1979-05-27T07:32:00Z\n").unwrap();
    std::fs::write(tmp.path().join("c.conf"), "key: [1, 2]\n").unwrap();
    let a = driver(tmp.path(), json!({"path": "a.json"}));
    assert_eq!(a.read().await.unwrap(), json!({"content": {"a": [1, 2], "b": 1}}));
    a.write(&json!({"content": {"b": 1, "a": [1, 2]}})).await.unwrap();
    assert_eq!(std::fs::read_to_string(tmp.path().join("a.json")).unwrap(), "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": 1\n}\n");
    let b = driver(tmp.path(), json!({"path": "b.toml"}));
    assert_eq!(b.read().await.unwrap(), json!({"content": {"title": "x", "db": {"port": 5432, "when": "1979-05-27T07:32:00Z"}}}));
    // An empty YAML document, or one of comments only, is null.
    std::fs::write(tmp.path().join("e.yaml"), "# nothing set here\n").unwrap();
    let e = driver(tmp.path(), json!({"path": "e.yaml"}));
    assert_eq!(e.read().await.unwrap(), json!({"content": null}));
    round_trip(&*e, &json!({"content": null})).await;
    // An explicit format for an extension that tells nothing.
    let c = driver(tmp.path(), json!({"path": "c.conf", "format": "yaml"}));
    assert_eq!(c.read().await.unwrap(), json!({"content": {"key": [1, 2]}}));
}

#[tokio::test]
async fn writes_keep_permissions_and_leave_no_temporary_files() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("p.json");
    std::fs::write(&path, "{}").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let d = driver(tmp.path(), json!({"path": "p.json"}));
    d.write(&json!({"content": {"a": 1}})).await.unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
    let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("p.json")]);
}

#[tokio::test]
async fn a_directory_round_trips_and_leaves_other_files_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("conf.d");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.json"), "{\"x\": 1}").unwrap();
    std::fs::write(dir.join("sub/b.yaml"), "y: [1, 2]\n").unwrap();
    std::fs::write(dir.join("README.txt"), "not managed").unwrap();
    let d = driver(tmp.path(), json!({"path": "conf.d"}));
    assert_eq!(d.profile(), vec!["/files".to_string()]);
    let before = d.read().await.unwrap();
    assert_eq!(before, json!({"files": {"a.json": {"x": 1}, "sub/b.yaml": {"y": [1, 2]}}}));

    let changed = json!({"files": {"a.json": {"x": 2}, "c.toml": {"t": {"u": 1}}, "new/d.yml": ["q"]}});
    round_trip(&*d, &changed).await;
    assert!(!dir.join("sub/b.yaml").exists(), "a managed file absent from the state is removed");
    assert_eq!(std::fs::read_to_string(dir.join("README.txt")).unwrap(), "not managed");

    round_trip(&*d, &before).await;
    assert_eq!(std::fs::read_to_string(dir.join("README.txt")).unwrap(), "not managed");

    // Paths leaving the directory, or of unknown formats, are refused.
    for bad in ["../x.json", "/etc/x.json", "a/../../x.json", "notes.txt"] {
        let err = d.write(&json!({"files": {bad: {}}})).await.unwrap_err();
        assert!(matches!(err, ResourceError::State { .. }), "{bad}: {err}");
    }
    assert_eq!(d.read().await.unwrap(), before, "a refused write changes nothing");
}

#[tokio::test]
async fn a_missing_directory_reads_empty_and_comes_and_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path(), json!({"path": "rules", "directory": true}));
    assert_eq!(d.read().await.unwrap(), json!({}));
    round_trip(&*d, &json!({"files": {"r/1.json": {"a": 1}}})).await;
    round_trip(&*d, &json!({"files": {}})).await;
    round_trip(&*d, &json!({})).await;
    assert!(!tmp.path().join("rules").exists(), "the directory created by the change is gone");
}

#[tokio::test]
async fn parse_errors_name_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("bad.json"), "{\n  \"a\": 1,\n  \"b\": ,\n}\n").unwrap();
    std::fs::write(tmp.path().join("bad.yaml"), "a: 1\nb: [1, 2\nc: 3\n").unwrap();
    std::fs::write(tmp.path().join("bad.toml"), "a = 1\nb = \n").unwrap();
    for (name, line) in [("bad.json", "line 3"), ("bad.yaml", "line "), ("bad.toml", "line 2")] {
        let d = driver(tmp.path(), json!({"path": name}));
        let err = d.read().await.unwrap_err().to_string();
        assert!(err.contains(name) && err.contains(line), "{name}: {err}");
        assert!(err.starts_with("resource conf: read:"), "{err}");
    }
}

#[tokio::test]
async fn toml_refuses_null_and_non_table_roots() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path(), json!({"path": "c.toml"}));
    let err = d.write(&json!({"content": {"a": {"b": null}}})).await.unwrap_err();
    assert!(matches!(err, ResourceError::State { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("resource conf") && msg.contains("/content/a/b") && msg.contains("null"), "{msg}");
    let err = d.write(&json!({"content": [1, 2]})).await.unwrap_err().to_string();
    assert!(err.contains("table"), "{err}");
    let err = d.write(&json!({"content": {"n": u64::MAX}})).await.unwrap_err().to_string();
    assert!(err.contains("/content/n"), "{err}");
    assert!(!tmp.path().join("c.toml").exists(), "nothing written");
}

#[tokio::test]
async fn states_outside_the_profile_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path(), json!({"path": "x.json"}));
    for bad in [json!({"content": 1, "other": 2}), json!([1]), json!({"files": {}})] {
        let err = d.write(&bad).await.unwrap_err();
        assert!(matches!(err, ResourceError::State { .. }), "{bad}: {err}");
    }
}

#[tokio::test]
async fn bad_specs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let spec: ResourceSpec = serde_json::from_value(json!({"kind": "file", "path": "x.ini"})).unwrap();
    let err = driver_for("conf", &spec, tmp.path()).unwrap_err();
    assert!(matches!(err, ResourceError::Spec { .. }) && err.to_string().contains("x.ini"), "{err}");
    assert!(serde_json::from_value::<ResourceSpec>(json!({"kind": "file", "path": "x.json", "colour": 1})).is_err());
    assert!(serde_json::from_value::<ResourceSpec>(json!({"kind": "file", "path": "x.json", "format": "xml"})).is_err());
}

#[tokio::test]
async fn staging_a_file_leaves_the_live_one_alone_and_is_deleted_on_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("app.yaml");
    std::fs::write(&live, "port: 1\n").unwrap();
    let d = driver(tmp.path(), json!({"path": "app.yaml"}));
    let staged = d.stage(&json!({"content": {"port": 2}})).await.unwrap().unwrap();
    let path = std::path::PathBuf::from(&staged.location);
    assert_eq!(path.file_name().unwrap(), "app.yaml");
    assert_ne!(path, live);
    assert_eq!(std::fs::read_to_string(&live).unwrap(), "port: 1\n");
    assert_eq!(serde_norway::from_str::<Value>(&std::fs::read_to_string(&path).unwrap()).unwrap(), json!({"port": 2}));
    drop(staged);
    assert!(!path.exists(), "staged copy deleted");
    assert!(!path.parent().unwrap().exists(), "scratch directory deleted");
    assert_eq!(d.read().await.unwrap(), json!({"content": {"port": 1}}));
}

#[tokio::test]
async fn staging_a_directory_copies_it_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("conf.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.json"), "{\"x\": 1}\n").unwrap();
    std::fs::write(dir.join("b.json"), "{\"y\": 1}\n").unwrap();
    std::fs::write(dir.join("keep.txt"), "other").unwrap();
    let d = driver(tmp.path(), json!({"path": "conf.d"}));
    let before = d.read().await.unwrap();
    let staged = d.stage(&json!({"files": {"a.json": {"x": 2}}})).await.unwrap().unwrap();
    let sdir = std::path::PathBuf::from(&staged.location);
    assert_eq!(sdir.file_name().unwrap(), "conf.d");
    assert_eq!(std::fs::read_to_string(sdir.join("a.json")).unwrap(), "{\n  \"x\": 2\n}\n");
    assert!(!sdir.join("b.json").exists());
    assert_eq!(std::fs::read_to_string(sdir.join("keep.txt")).unwrap(), "other");
    assert_eq!(d.read().await.unwrap(), before, "live directory untouched");
    drop(staged);
    assert!(!sdir.exists());
}
