//! The update stack: the leaf-by-leaf difference between a resource's current state and
//! the state a template asks for, within the resource kind's change profile.

use serde_json::{Map, Value};

use crate::types::{Op, UpdateOp};

/// Escapes one JSON-pointer segment (RFC 6901: `~` → `~0`, `/` → `~1`).
pub fn escape(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

/// Whether `path` lies within the profile entry `entry` (`""` covers everything).
pub fn within(path: &str, entry: &str) -> bool {
    entry.is_empty() || path == entry || path.strip_prefix(entry).is_some_and(|rest| rest.starts_with('/'))
}

/// Paths of `value`'s leaves and of the objects on the way, for profile checks: the
/// shallowest paths that are not inside any profile entry.
fn outside_profile(value: &Value, prefix: &str, profile: &[String], out: &mut Vec<String>) {
    if profile.iter().any(|e| within(prefix, e)) {
        return;
    }
    match value {
        Value::Object(map) if profile.iter().any(|e| within(e, prefix)) => {
            for (k, v) in map {
                outside_profile(v, &format!("{prefix}/{}", escape(k)), profile, out);
            }
        }
        _ => out.push(if prefix.is_empty() { "/".to_string() } else { prefix.to_string() }),
    }
}

/// The state a resource must hold after the change: for each profile entry, the part of
/// `desired` at that pointer when `desired` has it, else the part of `current` (a part
/// the template does not name is left as it is).
///
/// # Errors
/// The paths of `desired` that lie outside the profile (a change may not touch them).
pub fn target_state(current: &Value, desired: &Value, profile: &[String]) -> Result<Value, Vec<String>> {
    let mut outside = Vec::new();
    outside_profile(desired, "", profile, &mut outside);
    if !outside.is_empty() {
        return Err(outside);
    }
    if profile.iter().any(String::is_empty) {
        return Ok(desired.clone());
    }
    let mut target = current.clone();
    for entry in profile {
        if let Some(v) = desired.pointer(entry) {
            set_pointer(&mut target, entry, v.clone());
        }
    }
    Ok(target)
}

/// Sets `path` in `root` to `v`, creating objects on the way.
pub(crate) fn set_pointer(root: &mut Value, path: &str, v: Value) {
    if path.is_empty() {
        *root = v;
        return;
    }
    let mut cur = root;
    let segs: Vec<String> = path.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
    for (i, seg) in segs.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        if i + 1 == segs.len() {
            map.insert(seg.clone(), v);
            return;
        }
        cur = map.entry(seg.clone()).or_insert_with(|| Value::Object(Map::new()));
    }
}

/// The update stack of one resource: every leaf that differs between `from` and `to`.
/// Objects are compared key by key; arrays and scalars as wholes.
pub fn diff(resource: &str, from: &Value, to: &Value) -> Vec<UpdateOp> {
    let mut out = Vec::new();
    walk(resource, "", Some(from), Some(to), &mut out);
    out
}

fn walk(resource: &str, path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<UpdateOp>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(resource, &format!("{path}/{}", escape(k)), x.get(k), y.get(k), out);
            }
        }
        (Some(x), Some(y)) if x == y => {}
        (Some(x), Some(y)) => {
            out.push(UpdateOp { resource: resource.to_string(), path: path.to_string(), from: x.clone(), to: y.clone(), op: Op::Replace })
        }
        (None, Some(Value::Object(y))) if !y.is_empty() => {
            for (k, v) in y {
                walk(resource, &format!("{path}/{}", escape(k)), None, Some(v), out);
            }
        }
        (None, Some(y)) => {
            out.push(UpdateOp { resource: resource.to_string(), path: path.to_string(), from: Value::Null, to: y.clone(), op: Op::Add })
        }
        (Some(Value::Object(x)), None) if !x.is_empty() => {
            for (k, v) in x {
                walk(resource, &format!("{path}/{}", escape(k)), Some(v), None, out);
            }
        }
        (Some(x), None) => {
            out.push(UpdateOp { resource: resource.to_string(), path: path.to_string(), from: x.clone(), to: Value::Null, op: Op::Remove })
        }
        (None, None) => {}
    }
}

/// Describes differences between what a resource should hold and what it holds, for a
/// verification report: at most `limit` lines like `/keys/a: expected "1", found "2"`.
pub fn describe_mismatch(expected: &Value, found: &Value, limit: usize) -> Vec<String> {
    let ops = diff("", expected, found);
    let mut lines: Vec<String> = ops
        .iter()
        .take(limit)
        .map(|o| {
            let path = if o.path.is_empty() { "/" } else { &o.path };
            match o.op {
                Op::Add => format!("{path}: expected absent, found {}", o.to),
                Op::Remove => format!("{path}: expected {}, found absent", o.from),
                Op::Replace => format!("{path}: expected {}, found {}", o.from, o.to),
            }
        })
        .collect();
    if ops.len() > limit {
        lines.push(format!("... and {} more", ops.len() - limit));
    }
    lines
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn leaves_are_diffed_with_ops() {
        let a = json!({"content": {"server": {"port": 80, "workers": 4}, "legacy": true, "tags": [1, 2]}});
        let b = json!({"content": {"server": {"port": 80, "workers": 8}, "cache": {"ttl": 60}, "tags": [1, 2, 3]}});
        let ops = diff("web", &a, &b);
        let got: Vec<(&str, Op)> = ops.iter().map(|o| (o.path.as_str(), o.op)).collect();
        assert_eq!(
            got,
            vec![
                ("/content/cache/ttl", Op::Add),
                ("/content/legacy", Op::Remove),
                ("/content/server/workers", Op::Replace),
                ("/content/tags", Op::Replace)
            ]
        );
        assert_eq!(ops[2].from, json!(4));
        assert_eq!(ops[2].to, json!(8));
    }

    #[test]
    fn target_keeps_unnamed_parts_and_refuses_paths_outside_the_profile() {
        let profile = vec!["/keys".to_string(), "/config".to_string()];
        let cur = json!({"keys": {"a": "1"}, "config": {"hz": "10"}});
        let t = target_state(&cur, &json!({"keys": {"b": "2"}}), &profile).unwrap();
        assert_eq!(t, json!({"keys": {"b": "2"}, "config": {"hz": "10"}}));
        let err = target_state(&cur, &json!({"keys": {}, "acl": {"x": 1}}), &profile).unwrap_err();
        assert_eq!(err, vec!["/acl"]);
        assert_eq!(escape("a/b~c"), "a~1b~0c");
    }
}
