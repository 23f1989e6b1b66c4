//! Capturing the profiled parts of a state, and putting them back.
//!
//! [`capture`] reads each pointer of a [`ChangeProfile`] with `serde_json::Value::pointer`:
//! `Some(value)` when present, `None` when absent. [`apply`] is its inverse on a later
//! state: every captured path is set back to its value, and every path that was absent
//! is removed, so `capture(profile, &apply(&c, &later)?) == c` for any later state in
//! which the paths can be reached (see [`ApplyConflict`]).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::profile::ChangeProfile;

/// The parts of a state a profile covers, by pointer: `Some(value)` if the pointer was
/// present, `None` if it was absent (restoring removes it again).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Captured {
    /// Pointer → value at capture time (`None`: absent).
    pub parts: BTreeMap<String, Option<Value>>,
}

impl Captured {
    /// True when both hold the same pointers with bit-identical values (`-0.0` differs
    /// from `0.0`, `1` from `1.0`), unlike `==` which follows `f64` equality.
    pub fn exact_eq(&self, other: &Self) -> bool {
        self.parts.len() == other.parts.len()
            && self.parts.iter().zip(&other.parts).all(|((pa, va), (pb, vb))| {
                pa == pb
                    && match (va, vb) {
                        (None, None) => true,
                        (Some(a), Some(b)) => exact_eq(a, b),
                        _ => false,
                    }
            })
    }
}

/// Reads every pointer of `profile` from `state`.
pub fn capture(profile: &ChangeProfile, state: &Value) -> Captured {
    Captured { parts: profile.paths().iter().map(|p| (p.clone(), state.pointer(p).cloned())).collect() }
}

/// A captured path that cannot be put back into the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path {path:?}: {reason}")]
pub struct ApplyConflict {
    /// The pointer being restored.
    pub path: String,
    /// Why it cannot be reached.
    pub reason: String,
}

/// `current` with every part of `captured` put back: present parts are set (missing
/// intermediate objects are created), absent parts are removed. Paths are applied in
/// sorted order, so a parent (`/config`) is restored before the paths inside it.
///
/// A missing intermediate, or a `null` one, is created as an object, even when the next
/// token is a number. An intermediate that is another scalar, or an array index beyond
/// the end, is not overwritten: that is an [`ApplyConflict`].
///
/// # Errors
/// The first path that cannot be reached.
pub fn apply(captured: &Captured, current: &Value) -> Result<Value, ApplyConflict> {
    let mut out = current.clone();
    for (path, part) in &captured.parts {
        match part {
            Some(v) => set_pointer(&mut out, path, v.clone())?,
            None => remove_pointer(&mut out, path),
        }
    }
    Ok(out)
}

/// The tokens of a valid pointer, unescaped (`~1` → `/`, `~0` → `~`). `""` has none.
fn tokens(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split('/').skip(1).map(|t| t.replace("~1", "/").replace("~0", "~"))
}

/// An array index as RFC 6901 (and `Value::pointer`) reads it: digits, no leading zero.
fn array_index(token: &str) -> Option<usize> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

fn set_pointer(root: &mut Value, path: &str, value: Value) -> Result<(), ApplyConflict> {
    let conflict = |reason: String| ApplyConflict { path: path.to_owned(), reason };
    let toks: Vec<String> = tokens(path).collect();
    let Some((last, parents)) = toks.split_last() else {
        *root = value;
        return Ok(());
    };
    let mut cur = root;
    for (depth, tok) in parents.iter().enumerate() {
        let here = || format!("/{}", parents[..depth].join("/"));
        cur = match cur {
            Value::Object(map) => map.entry(tok.clone()).or_insert_with(|| Value::Object(Map::new())),
            Value::Array(items) => match array_index(tok) {
                Some(i) if i < items.len() => &mut items[i],
                _ => return Err(conflict(format!("index {tok:?} is not inside the array at {} ({} items)", here(), items.len()))),
            },
            Value::Null => {
                // A null in the way is an absent container: replace it by an object.
                *cur = Value::Object(Map::new());
                match cur {
                    Value::Object(map) => map.entry(tok.clone()).or_insert_with(|| Value::Object(Map::new())),
                    _ => return Err(conflict("internal: object expected".to_owned())),
                }
            }
            other => return Err(conflict(format!("{} is a {}, not an object or array", here(), type_name(other)))),
        };
    }
    match cur {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => match array_index(last) {
            Some(i) if i < items.len() => {
                items[i] = value;
                Ok(())
            }
            Some(i) if i == items.len() => {
                items.push(value);
                Ok(())
            }
            _ => Err(conflict(format!("index {last:?} is not inside the array ({} items)", items.len()))),
        },
        other => Err(conflict(format!("the parent is a {}, not an object or array", type_name(other)))),
    }
}

/// Removes the value at `path` if there is one (as `Value::pointer` would find it).
fn remove_pointer(root: &mut Value, path: &str) {
    let toks: Vec<String> = tokens(path).collect();
    let Some((last, parents)) = toks.split_last() else {
        // "" is always present; an absent "" cannot be captured.
        return;
    };
    let mut cur = root;
    for tok in parents {
        let next = match cur {
            Value::Object(map) => map.get_mut(tok.as_str()),
            Value::Array(items) => array_index(tok).and_then(|i| items.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match cur {
        Value::Object(map) => {
            map.remove(last.as_str());
        }
        Value::Array(items) => {
            if let Some(i) = array_index(last).filter(|i| *i < items.len()) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Deepest nesting [`exact_eq`] compares; deeper values compare unequal (and the codec
/// refuses to store them).
const MAX_EQ_DEPTH: usize = crate::codec::MAX_DEPTH + 1;

/// Bit-exact equality: numbers must have the same representation (`1` ≠ `1.0`,
/// `-0.0` ≠ `0.0`), everything else compares as usual.
pub fn exact_eq(a: &Value, b: &Value) -> bool {
    eq_at(a, b, 0)
}

fn eq_at(a: &Value, b: &Value, depth: usize) -> bool {
    if depth > MAX_EQ_DEPTH {
        return false;
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            // as_u64 / as_i64 answer None for floats, so integers never equal floats.
            if x.is_f64() && y.is_f64() {
                x.as_f64().map(f64::to_bits) == y.as_f64().map(f64::to_bits)
            } else if x.is_u64() || x.is_i64() {
                (x.as_u64(), x.as_i64()) == (y.as_u64(), y.as_i64()) && !y.is_f64()
            } else {
                x.to_string() == y.to_string()
            }
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| eq_at(p, q, depth + 1)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| eq_at(p, q, depth + 1)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn profile(paths: &[&str]) -> ChangeProfile {
        ChangeProfile::new("test", paths.iter().copied()).unwrap()
    }

    #[test]
    fn capture_marks_absent_paths() {
        let c = capture(&profile(&["/a", "/b/c", "/n"]), &json!({"a": 1, "n": null}));
        assert_eq!(c.parts["/a"], Some(json!(1)));
        assert_eq!(c.parts["/b/c"], None);
        assert_eq!(c.parts["/n"], Some(Value::Null), "null is present, not absent");
    }

    #[test]
    fn apply_sets_creates_and_removes() {
        let p = profile(&["/a", "/b/c/d", "/gone", "/arr/1"]);
        let then = json!({"a": {"x": [1, 2]}, "b": {"c": {"d": "é∂"}}, "arr": [0, 1]});
        let c = capture(&p, &then);
        let now = json!({"a": 5, "gone": true, "other": "kept", "arr": [9, 8, 7]});
        let back = apply(&c, &now).unwrap();
        assert_eq!(back, json!({"a": {"x": [1, 2]}, "b": {"c": {"d": "é∂"}}, "other": "kept", "arr": [9, 1, 7]}));
        assert!(capture(&p, &back).exact_eq(&c));
    }

    #[test]
    fn apply_whole_state() {
        let p = ChangeProfile::whole_state();
        let c = capture(&p, &json!({"k": [1, {"z": null}]}));
        assert_eq!(apply(&c, &json!("anything")).unwrap(), json!({"k": [1, {"z": null}]}));
    }

    #[test]
    fn escaped_tokens_round_trip() {
        let p = profile(&["/a~1b", "/c~0d/e"]);
        let then = json!({"a/b": 1, "c~d": {"e": 2}});
        let c = capture(&p, &then);
        assert_eq!(apply(&c, &json!({})).unwrap(), then);
    }

    #[test]
    fn scalar_in_the_way_is_a_conflict_not_a_panic() {
        let c = capture(&profile(&["/a/b"]), &json!({"a": {"b": 1}}));
        let e = apply(&c, &json!({"a": "scalar"})).unwrap_err();
        assert_eq!(e.path, "/a/b");
        assert!(e.reason.contains("string"), "{e}");
        let c = capture(&profile(&["/a/5/x"]), &json!({"a": {"5": {"x": 1}}}));
        assert!(apply(&c, &json!({"a": [1]})).is_err());
    }

    #[test]
    fn exact_eq_distinguishes_number_representations() {
        assert!(!exact_eq(&json!(0.0), &json!(-0.0)));
        assert!(!exact_eq(&json!(1), &json!(1.0)));
        assert!(exact_eq(&json!({"a": [1e300, -0.0]}), &json!({"a": [1e300, -0.0]})));
        assert!(exact_eq(&json!(-5), &json!(-5)));
    }
}
