//! The snapshot store end to end: round trips, deltas, consolidation, expiry,
//! replication and repair, damaged files and hostile resource ids.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use harbinger_snapshot::{ChangeProfile, Check, Profiles, SnapshotConfig, SnapshotError, SnapshotStore, capture, exact_eq};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Exact comparison: `-0.0` vs `0.0` and `1` vs `1.0` differ (serde_json's `==` does not
/// see the first), with a readable failure message.
#[track_caller]
fn assert_exact(a: &Value, b: &Value) {
    assert!(exact_eq(a, b), "not bit-identical:\n  {a}\n  {b}");
    assert_eq!(a.to_string(), b.to_string());
}

fn profiles() -> Profiles {
    let mut kinds = BTreeMap::new();
    kinds.insert("database".to_owned(), ChangeProfile::new("database", ["/config", "/schema_version", "/parameters", "/tags/0"]).unwrap());
    kinds.insert("cache".to_owned(), ChangeProfile::new("cache", ["/config", "/maxmemory"]).unwrap());
    kinds.insert("whole".to_owned(), ChangeProfile::whole_state());
    Profiles::with_kinds(kinds, ChangeProfile::whole_state())
}

struct Fixture {
    _tmp: TempDir,
    root: PathBuf,
    store: SnapshotStore,
}

impl Fixture {
    fn new(replica: bool, max_chain: usize, ttl_ms: Option<i64>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let mut cfg = SnapshotConfig::new(root.join("primary"));
        if replica {
            cfg.replica_dir = Some(root.join("replica"));
        }
        cfg.max_chain = max_chain;
        cfg.ttl_ms = ttl_ms;
        cfg.profiles = profiles();
        let store = SnapshotStore::open(cfg).unwrap();
        Self { _tmp: tmp, root, store }
    }

    fn profile(&self, kind: &str) -> ChangeProfile {
        self.store.config().profiles.for_kind(kind).clone()
    }
}

/// States of one database across six changes: nested objects, arrays, nulls, unicode,
/// keys that come and go, extreme numbers. `/other` and `/tags/1` are not profiled and
/// never change.
fn database_states() -> Vec<Value> {
    vec![
        json!({"config": {"pool": 10, "ratio": 0.1}, "schema_version": 41, "other": "untouched", "tags": ["a", "fixed"]}),
        json!({"config": {"pool": 20, "ratio": 0.1}, "schema_version": 41, "other": "untouched", "tags": ["a", "fixed"]}),
        json!({"config": {"pool": 20, "ratio": -0.0, "big": 1e300, "tiny": -5e-324}, "schema_version": 42,
               "parameters": {"név": "é∂ 日本語 🚀", "list": [1, [2, [3, null]], {"k": null}]},
               "other": "untouched", "tags": [{"b": "c"}, "fixed"]}),
        json!({"config": null, "schema_version": 42, "parameters": {"név": "é∂ 日本語 🚀"}, "other": "untouched", "tags": [-0.0, "fixed"]}),
        json!({"config": {"u": u64::MAX, "i": i64::MIN, "f": 1.0, "n": 1}, "other": "untouched", "tags": [1.0, "fixed"]}),
        json!({"config": {"nested": {"deeper": {"deepest": [{}, [], "", 0]}}}, "schema_version": 43, "other": "untouched", "tags": [null, "fixed"]}),
    ]
}

#[test]
fn round_trip_restores_every_seq_exactly() {
    let f = Fixture::new(true, 8, None);
    let states = database_states();
    let profile = f.profile("database");
    for (i, s) in states.iter().enumerate() {
        let meta = f.store.take("db-1", "database", s, 1_000 + i as i64).unwrap();
        assert_eq!(meta.seq, i as u64 + 1);
    }
    let latest = states.last().unwrap();
    for (i, s) in states.iter().enumerate() {
        let seq = i as u64 + 1;
        let captured = f.store.materialize("db-1", seq).unwrap();
        assert!(captured.exact_eq(&capture(&profile, s)), "seq {seq}: {captured:?}");
        // Only profiled paths differ between states, so restoring onto the latest state
        // gives back the whole state of then, bit for bit (absent keys removed again).
        assert_exact(&f.store.restore("db-1", seq, latest).unwrap(), s);
        // Restoring onto an empty state creates what is needed.
        let from_empty = f.store.restore("db-1", seq, &json!({})).unwrap();
        assert!(capture(&profile, &from_empty).exact_eq(&captured), "seq {seq} from empty");
    }
    // -0.0 really survived as -0.0.
    let c = f.store.materialize("db-1", 3).unwrap();
    let ratio = c.parts["/config"].as_ref().unwrap()["ratio"].as_f64().unwrap();
    assert!(ratio == 0.0 && ratio.is_sign_negative());
    // Absent at capture is remembered as absent, null as null.
    assert_eq!(f.store.materialize("db-1", 1).unwrap().parts["/parameters"], None);
    assert_eq!(f.store.materialize("db-1", 4).unwrap().parts["/config"], Some(Value::Null));
}

#[test]
fn whole_state_profile_round_trips_and_unknown_kinds_use_the_fallback() {
    let f = Fixture::new(false, 8, None);
    let states = database_states();
    for (i, s) in states.iter().enumerate() {
        f.store.take("thing", "no-such-kind", s, i as i64).unwrap();
    }
    for (i, s) in states.iter().enumerate() {
        let c = f.store.materialize("thing", i as u64 + 1).unwrap();
        assert_eq!(c.parts.keys().collect::<Vec<_>>(), [""], "the fallback captures the whole state");
        assert_exact(&f.store.restore("thing", i as u64 + 1, &json!("replaced")).unwrap(), s);
    }
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn a_store_without_flushing_writes_the_files_of_a_durable_one() {
    let durable = Fixture::new(true, 2, Some(2));
    let quick = Fixture::new(true, 2, Some(2));
    let quick_store = SnapshotStore::open(SnapshotConfig { durable: false, ..quick.store.config().clone() }).unwrap();
    for (i, s) in database_states().iter().enumerate() {
        let at = 1_000 + i as i64;
        let (a, b) = (durable.store.take("db-1", "database", s, at).unwrap(), quick_store.take("db-1", "database", s, at).unwrap());
        assert_eq!((a.seq, a.depth, a.bytes, a.checksum), (b.seq, b.depth, b.bytes, b.checksum));
    }
    // Expiry removes files too (with the directory flush skipped the same way).
    let (a, b) = (durable.store.expire(1_004).unwrap(), quick_store.expire(1_004).unwrap());
    assert!(!a.removed.is_empty());
    assert_eq!((a.removed, a.rebased), (b.removed, b.rebased));
    assert!(b.skipped.is_empty(), "{:?}", b.skipped);
    for copy in ["primary", "replica"] {
        let (a, b) = (files_under(&durable.root.join(copy)), files_under(&quick.root.join(copy)));
        assert!(!a.is_empty(), "{copy}: nothing written");
        assert_eq!(a, b, "{copy}");
        assert!(b.keys().all(|p| !p.to_string_lossy().contains(".tmp-")), "{copy}: a temporary file left: {:?}", b.keys());
    }
    assert!(quick_store.verify().unwrap().is_clean());
}

#[test]
fn delta_files_store_only_changed_paths() {
    let f = Fixture::new(false, 8, None);
    let big: Vec<Value> = (0..500).map(|i| json!({"k": i, "name": format!("param-{i}")})).collect();
    let s1 = json!({"config": {"pool": 10}, "schema_version": 1, "parameters": big});
    let base = f.store.take("db", "database", &s1, 0).unwrap();
    assert!(base.is_base());
    assert_eq!(base.stored_paths, ["/config", "/parameters", "/schema_version", "/tags/0"]);

    let mut s2 = s1.clone();
    s2["schema_version"] = json!(2);
    let d = f.store.take("db", "database", &s2, 1).unwrap();
    assert_eq!(d.parent, Some(1));
    assert_eq!(d.depth, Some(1));
    assert_eq!(d.stored_paths, ["/schema_version"], "only the changed path is stored");
    assert!(d.payload_bytes * 10 < base.payload_bytes, "delta {} vs base {}", d.payload_bytes, base.payload_bytes);
    assert!(d.bytes < base.bytes);
    assert_eq!(fs::metadata(&d.file).unwrap().len(), d.bytes);

    // Nothing changed: an empty delta (still a restore point of its own).
    let d = f.store.take("db", "database", &s2, 2).unwrap();
    assert!(d.stored_paths.is_empty());

    // A removed key is a change; so is 0.0 → -0.0 and 1 → 1.0.
    let mut s4 = s2.clone();
    s4.as_object_mut().unwrap().remove("parameters");
    s4["config"] = json!({"pool": 10.0});
    let d = f.store.take("db", "database", &s4, 3).unwrap();
    assert_eq!(d.stored_paths, ["/config", "/parameters"]);
    assert_eq!(f.store.materialize("db", 4).unwrap().parts["/parameters"], None);
    let mut s5 = s4.clone();
    s5["schema_version"] = json!(-0.0);
    let mut s6 = s4.clone();
    s6["schema_version"] = json!(0.0);
    f.store.take("db", "database", &s6, 4).unwrap();
    assert_eq!(f.store.take("db", "database", &s5, 5).unwrap().stored_paths, ["/schema_version"]);

    let listed = f.store.list("db").unwrap();
    assert_eq!(listed.iter().map(|m| m.stored_paths.len()).collect::<Vec<_>>(), [4, 1, 0, 2, 1, 1]);
    assert_eq!(listed.iter().map(|m| m.depth).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5].map(Some));
    assert!(listed.iter().all(|m| m.checksum.len() == 64));
    assert_exact(&f.store.restore("db", 1, &s5).unwrap(), &s1);
}

#[test]
fn a_change_of_kind_drops_paths_no_longer_profiled() {
    let f = Fixture::new(false, 8, None);
    f.store.take("r", "database", &json!({"config": 1, "schema_version": 2, "maxmemory": 3}), 0).unwrap();
    let d = f.store.take("r", "cache", &json!({"config": 1, "schema_version": 2, "maxmemory": 3}), 1).unwrap();
    assert_eq!(d.parent, Some(1));
    assert_eq!(d.stored_paths, ["/maxmemory"]);
    assert_eq!(d.dropped_paths, ["/parameters", "/schema_version", "/tags/0"]);
    let c = f.store.materialize("r", 2).unwrap();
    assert_eq!(c.parts.keys().collect::<Vec<_>>(), ["/config", "/maxmemory"]);
    assert_eq!(d.resource_kind, "cache");
}

#[test]
fn consolidate_turns_a_chain_of_20_into_one_base_and_keeps_older_restore_points() {
    let f = Fixture::new(true, 100, None);
    let states: Vec<Value> = (0..20)
        .map(|i| json!({"config": {"pool": i, "name": format!("v{i}")}, "schema_version": i / 3, "parameters": {"p": i % 2}}))
        .collect();
    for (i, s) in states.iter().enumerate() {
        f.store.take("db", "database", s, i as i64).unwrap();
    }
    let before = f.store.list("db").unwrap();
    assert_eq!(before.iter().filter(|m| m.is_base()).count(), 1);
    assert_eq!(before[19].depth, Some(19));

    let meta = f.store.consolidate("db").unwrap();
    assert_eq!((meta.seq, meta.parent, meta.depth, meta.taken_at), (20, None, Some(0), 19));
    let after = f.store.list("db").unwrap();
    assert_eq!(after.len(), 20, "older restore points are kept");
    assert!(after[19].is_base());
    assert_eq!(after[19].depth, Some(0), "the latest is now one base: its chain is a single file");
    assert_eq!(after[19].stored_paths, ["/config", "/parameters", "/schema_version", "/tags/0"]);
    for (i, s) in states.iter().enumerate() {
        assert_exact(&f.store.restore("db", i as u64 + 1, &json!({})).unwrap(), s);
    }
    // The replica holds the consolidated file too.
    let replica = f.store.replica_file_path("db", 20).unwrap();
    assert_eq!(fs::read(replica).unwrap(), fs::read(&after[19].file).unwrap());
    // Consolidating a base changes nothing; the next snapshot is a delta on it.
    assert_eq!(f.store.consolidate("db").unwrap().checksum, meta.checksum);
    let next = f.store.take("db", "database", &json!({"config": {"pool": 99}}), 100).unwrap();
    assert_eq!((next.parent, next.depth), (Some(20), Some(1)));
}

#[test]
fn consolidation_is_automatic_after_max_chain_deltas() {
    let f = Fixture::new(false, 3, None);
    let states: Vec<Value> = (0..10).map(|i| json!({"config": {"pool": i}})).collect();
    let metas: Vec<_> = states.iter().enumerate().map(|(i, s)| f.store.take("db", "database", s, i as i64).unwrap()).collect();
    let bases: Vec<u64> = metas.iter().filter(|m| m.is_base()).map(|m| m.seq).collect();
    assert_eq!(bases, [1, 5, 9]);
    assert_eq!(metas.iter().map(|m| m.depth.unwrap()).collect::<Vec<_>>(), [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]);
    for (i, s) in states.iter().enumerate() {
        assert_exact(&f.store.restore("db", i as u64 + 1, &json!({"config": "x"})).unwrap(), s);
    }
    // max_chain 0: every snapshot is a base.
    let f = Fixture::new(false, 0, None);
    for i in 0..3 {
        assert!(f.store.take("db", "database", &json!({"config": i}), i).unwrap().is_base());
    }
}

#[test]
fn expiry_removes_old_snapshots_and_keeps_newer_ones_restorable() {
    let f = Fixture::new(true, 100, Some(1_000));
    let states: Vec<Value> = (0..10).map(|i| json!({"config": {"pool": i}, "schema_version": i / 4})).collect();
    for (i, s) in states.iter().enumerate() {
        f.store.take("db", "database", s, i as i64 * 200).unwrap(); // t = 0, 200, ..., 1800
    }
    f.store.take("other", "cache", &json!({"maxmemory": 1}), 0).unwrap();

    // No TTL: nothing expires.
    let none = Fixture::new(false, 8, None);
    none.store.take("db", "database", &states[0], 0).unwrap();
    assert!(none.store.expire(1_000_000).unwrap().removed.is_empty());

    // At t = 2000, snapshots taken before t = 1000 (seq 1..=5) are over the TTL.
    let report = f.store.expire(2_000).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let removed: Vec<(String, u64)> = report.removed.iter().map(|r| (r.resource.clone(), r.seq)).collect();
    assert_eq!(removed, [("db".into(), 1), ("db".into(), 2), ("db".into(), 3), ("db".into(), 4), ("db".into(), 5), ("other".into(), 1)]);
    assert_eq!(report.rebased.iter().map(|r| r.seq).collect::<Vec<_>>(), [6], "the oldest kept delta becomes the base");

    let kept = f.store.list("db").unwrap();
    assert_eq!(kept.iter().map(|m| m.seq).collect::<Vec<_>>(), [6, 7, 8, 9, 10]);
    assert!(kept[0].is_base());
    assert_eq!(kept[4].depth, Some(4));
    for seq in 6..=10u64 {
        assert_exact(&f.store.restore("db", seq, &json!({})).unwrap(), &states[seq as usize - 1]);
    }
    for seq in 1..=5 {
        assert!(!f.store.file_path("db", seq).exists());
        assert!(!f.store.replica_file_path("db", seq).unwrap().exists());
        assert!(matches!(f.store.materialize("db", seq), Err(SnapshotError::UnknownSeq { seq: s, .. }) if s == seq));
    }
    assert!(f.store.list("other").unwrap().is_empty());
    assert!(matches!(f.store.materialize("other", 1), Err(SnapshotError::UnknownResource { .. })));
    // Its next snapshot does not reuse seq 1: a noted-down seq never names another snapshot.
    let again = f.store.take("other", "cache", &json!({"maxmemory": 2}), 2_000).unwrap();
    assert_eq!((again.seq, again.parent), (2, None));
    assert!(matches!(f.store.materialize("other", 1), Err(SnapshotError::UnknownSeq { .. })));
    assert!(f.store.verify().unwrap().is_clean());

    // Numbering goes on; the next snapshot is a delta on the latest.
    let next = f.store.take("db", "database", &json!({"config": {"pool": 42}}), 2_100).unwrap();
    assert_eq!((next.seq, next.parent), (11, Some(10)));
    // Expiring again at the same time removes nothing more.
    assert!(f.store.expire(2_000).unwrap().removed.is_empty());
}

#[test]
fn expiry_with_a_mid_chain_base_rebases_only_what_needs_it() {
    let f = Fixture::new(false, 2, Some(50));
    let states: Vec<Value> = (0..7).map(|i| json!({"config": i})).collect();
    for (i, s) in states.iter().enumerate() {
        f.store.take("db", "database", s, i as i64 * 10).unwrap(); // bases at 1, 4, 7
    }
    // At t = 85: taken_at 0..=30 are older than 50 ms (seq 1..=4); seq 5, 6 depend on base 4.
    let report = f.store.expire(85).unwrap();
    assert_eq!(report.removed.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(report.rebased.iter().map(|r| r.seq).collect::<Vec<_>>(), [5]);
    let kept = f.store.list("db").unwrap();
    assert_eq!(kept.iter().map(|m| (m.seq, m.parent)).collect::<Vec<_>>(), [(5, None), (6, Some(5)), (7, None)]);
    for seq in 5..=7u64 {
        assert_exact(&f.store.restore("db", seq, &json!({})).unwrap(), &states[seq as usize - 1]);
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    let at = at.min(b.len() - 1);
    b[at] ^= 0x5a;
    fs::write(path, b).unwrap();
}

#[test]
fn a_corrupt_primary_byte_is_read_from_the_replica_and_repaired() {
    let f = Fixture::new(true, 8, None);
    let s1 = json!({"config": {"a": 1}});
    let s2 = json!({"config": {"a": 2}});
    f.store.take("db", "database", &s1, 0).unwrap();
    f.store.take("db", "database", &s2, 1).unwrap();
    let primary = f.store.file_path("db", 1);
    let replica = f.store.replica_file_path("db", 1).unwrap();
    let good = fs::read(&replica).unwrap();

    // A byte inside the zstd frame of the base that seq 2 is built on.
    flip_byte(&primary, 100);
    let report = f.store.verify().unwrap();
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].file, primary);
    assert!(!report.problems[0].repaired, "verify changes nothing");
    assert_ne!(fs::read(&primary).unwrap(), good);

    assert_exact(&f.store.restore("db", 2, &json!({})).unwrap(), &s2);
    assert_exact(&f.store.restore("db", 1, &json!({})).unwrap(), &s1);
    assert_eq!(fs::read(&primary).unwrap(), good, "the primary was repaired from the replica");
    assert!(f.store.verify().unwrap().is_clean());

    // Every byte of the header counts too: the magic, the version, the checksum.
    for at in [0, 8, 12, 40, 52, 70, 95] {
        flip_byte(&primary, at);
        assert_eq!(f.store.list("db").unwrap().len(), 2);
        assert_eq!(fs::read(&primary).unwrap(), good, "byte {at}");
    }
}

#[test]
fn a_deleted_primary_is_read_from_the_replica_and_repaired() {
    let f = Fixture::new(true, 8, None);
    let s = json!({"config": {"a": [1, 2, 3]}, "schema_version": 7});
    f.store.take("db", "database", &s, 0).unwrap();
    let primary = f.store.file_path("db", 1);
    fs::remove_file(&primary).unwrap();
    let report = f.store.verify().unwrap();
    assert_eq!(report.problems[0].check, Check::Missing);
    assert_exact(&f.store.restore("db", 1, &json!({})).unwrap(), &s);
    assert!(primary.exists());
    // Even the whole primary directory gone.
    fs::remove_dir_all(f.root.join("primary")).unwrap();
    assert_eq!(f.store.list("db").unwrap().len(), 1);
    assert!(primary.exists());
}

#[test]
fn a_bad_replica_copy_is_reported_and_repaired_from_the_primary() {
    let f = Fixture::new(true, 8, None);
    f.store.take("db", "database", &json!({"config": 1}), 0).unwrap();
    f.store.take("db", "database", &json!({"config": 2}), 1).unwrap();
    let replica = f.store.replica_file_path("db", 2).unwrap();
    fs::write(&replica, b"garbage").unwrap();
    fs::remove_file(f.store.replica_file_path("db", 1).unwrap()).unwrap();
    let report = f.store.verify().unwrap();
    assert_eq!((report.resources, report.snapshots, report.copies_ok), (1, 2, 2));
    let mut checks: Vec<Check> = report.problems.iter().map(|p| p.check).collect();
    checks.sort_by_key(|c| c.name());
    assert_eq!(checks, [Check::Missing, Check::Truncated]);
    assert!(!report.is_clean());
    let fixed = f.store.repair().unwrap();
    assert!(fixed.problems.iter().all(|p| p.repaired) && fixed.is_clean());
    let again = f.store.verify().unwrap();
    assert!(again.problems.is_empty() && again.copies_ok == 4);
}

#[test]
fn both_copies_corrupt_is_an_error_naming_resource_seq_files_and_checks() {
    let f = Fixture::new(true, 8, None);
    f.store.take("db/é", "database", &json!({"config": 1}), 0).unwrap();
    f.store.take("db/é", "database", &json!({"config": 2}), 1).unwrap();
    let primary = f.store.file_path("db/é", 1);
    let replica = f.store.replica_file_path("db/é", 1).unwrap();
    flip_byte(&primary, 30); // inside the checksum
    fs::write(&replica, "not a snapshot, but longer than a header. ".repeat(4)).unwrap();

    let err = f.store.materialize("db/é", 1).unwrap_err();
    match &err {
        SnapshotError::Unrecoverable { resource, seq, primary: p, replica: r } => {
            assert_eq!((resource.as_str(), *seq, p.check, r.check), ("db/é", 1, Check::Checksum, Check::Magic));
            assert_eq!((&p.file, &r.file), (&primary, &replica));
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    for needle in ["\"db/é\"", "snapshot 1", &primary.display().to_string(), &replica.display().to_string(), "checksum", "magic"] {
        assert!(msg.contains(needle), "{needle:?} not in {msg}");
    }
    // Seq 2 needs seq 1: the chain is broken, and the error says so.
    let err = f.store.restore("db/é", 2, &json!({})).unwrap_err();
    assert!(matches!(err, SnapshotError::BrokenChain { seq: 2, needs: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("snapshot 2") && err.to_string().contains("snapshot 1"));
    let report = f.store.verify().unwrap();
    assert_eq!(report.unrecoverable.len(), 1);
    assert_eq!(report.broken_chains.len(), 1);
    // A new snapshot does not build on the damage: it is a base.
    let m = f.store.take("db/é", "database", &json!({"config": 3}), 2).unwrap();
    assert!(m.is_base());
    // Expiry leaves a resource it cannot read alone, and says why.
    let r = SnapshotStore::open(SnapshotConfig { ttl_ms: Some(0), ..f.store.config().clone() }).unwrap().expire(100).unwrap();
    assert!(r.removed.is_empty() && r.skipped.len() == 1);
    assert!(f.store.file_path("db/é", 2).exists());
}

#[test]
fn corrupt_truncated_and_foreign_files_are_errors_not_panics() {
    let f = Fixture::new(false, 8, None);
    for i in 0..3 {
        f.store.take("db", "database", &json!({"config": i}), i).unwrap();
    }
    let p1 = f.store.file_path("db", 1);
    let good = fs::read(&p1).unwrap();
    let cases: Vec<(Vec<u8>, Check)> = vec![
        (Vec::new(), Check::Truncated),
        (good[..20].to_vec(), Check::Truncated),
        (good[..good.len() - 3].to_vec(), Check::Length),
        ([b"\x89HBSNAq\n".as_slice(), &good[8..]].concat(), Check::Magic),
        ([&good[..8], &[2, 0][..], &good[10..]].concat(), Check::Version),
        (vec![0xff; 4096], Check::Magic),
    ];
    for (bytes, check) in cases {
        fs::write(&p1, &bytes).unwrap();
        let err = f.store.materialize("db", 1).unwrap_err();
        match &err {
            SnapshotError::Corrupt { check: c, file, seq: 1, .. } => {
                assert_eq!((*c, file), (check, &p1), "{err}");
            }
            other => panic!("{check}: {other:?}"),
        }
        assert!(err.to_string().contains(&p1.display().to_string()));
        assert!(f.store.list("db").is_err());
        assert!(f.store.restore("db", 3, &json!({})).is_err());
    }
    // Another snapshot's file in this place (right format, wrong identity).
    fs::write(&p1, fs::read(f.store.file_path("db", 2)).unwrap()).unwrap();
    assert!(matches!(f.store.materialize("db", 1), Err(SnapshotError::Corrupt { check: Check::Identity, .. })));
    fs::write(&p1, &good).unwrap();
    assert_eq!(f.store.list("db").unwrap().len(), 3);

    // Unknown resources and seqs.
    let e = f.store.materialize("nope", 1).unwrap_err();
    assert!(matches!(e, SnapshotError::UnknownResource { .. }) && e.to_string().contains("\"nope\""));
    let e = f.store.restore("db", 99, &json!({})).unwrap_err();
    assert!(matches!(e, SnapshotError::UnknownSeq { seq: 99, .. }) && e.to_string().contains("snapshot 99"));
    assert!(matches!(f.store.consolidate("nope"), Err(SnapshotError::UnknownResource { .. })));
    assert!(f.store.list("nope").unwrap().is_empty());
    // Stray files in the store are ignored.
    fs::write(f.root.join("primary").join("README"), "hi").unwrap();
    fs::write(p1.with_file_name("notes.txt"), "hi").unwrap();
    assert!(f.store.verify().unwrap().is_clean());
}

#[test]
fn a_path_that_cannot_be_restored_is_a_named_error() {
    let f = Fixture::new(false, 8, None);
    f.store.take("db", "database", &json!({"config": {"a": 1}, "tags": ["x"]}), 0).unwrap();
    let e = f.store.restore("db", 1, &json!({"tags": "not an array"})).unwrap_err();
    assert!(matches!(&e, SnapshotError::Restore { seq: 1, source, .. } if source.path == "/tags/0"), "{e:?}");
    assert!(e.to_string().contains("\"db\"") && e.to_string().contains("/tags/0"));
}

#[test]
fn hostile_resource_ids_stay_inside_the_store() {
    let f = Fixture::new(true, 8, Some(1_000));
    let long = "é∂".repeat(150); // 300 characters, 750 bytes
    let long_ascii = "r".repeat(300);
    let ids = ["../../etc", "a/b", "é∂", "..", ".", "", "a\\b", "nul\0byte", long.as_str(), long_ascii.as_str()];
    for (i, id) in ids.iter().enumerate() {
        let s = json!({"config": {"id": id, "i": i}});
        f.store.take(id, "database", &s, 0).unwrap();
        f.store.take(id, "database", &json!({"config": null}), 1).unwrap();
        assert_exact(&f.store.restore(id, 1, &json!({})).unwrap(), &s);
        let listed = f.store.list(id).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].resource, *id);
        for m in &listed {
            assert!(m.file.starts_with(f.root.join("primary")), "{}", m.file.display());
            assert_eq!(m.file.parent().unwrap().parent().unwrap(), f.root.join("primary"));
        }
    }
    // Nothing was written outside the two store directories.
    let mut top: Vec<String> = fs::read_dir(&f.root).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    top.sort();
    assert_eq!(top, ["primary", "replica"]);
    // Each id has its own directory; verify and expire find them all, long (hashed) ids included.
    assert_eq!(fs::read_dir(f.root.join("primary")).unwrap().count(), ids.len());
    let report = f.store.verify().unwrap();
    assert_eq!((report.resources, report.snapshots), (ids.len(), 2 * ids.len()));
    assert!(report.is_clean());
    let expired = f.store.expire(10_000).unwrap();
    let mut gone: Vec<&str> = expired.removed.iter().map(|r| r.resource.as_str()).collect();
    gone.dedup();
    let mut want: Vec<&str> = ids.to_vec();
    want.sort_by_key(|id| f.store.file_path(id, 1));
    assert_eq!(gone, want, "ids come back whole, hashed directories included");
    // Numbering survives expiry for hashed ids too, and verify still finds every resource.
    assert_eq!(f.store.take(&long_ascii, "database", &json!({}), 20_000).unwrap().seq, 3);
    let report = f.store.verify().unwrap();
    assert_eq!((report.resources, report.snapshots), (ids.len(), 1));
    // A long id's error message is cut, not echoed whole.
    let huge = "z".repeat(100_000);
    let msg = f.store.materialize(&huge, 1).unwrap_err().to_string();
    assert!(msg.len() < 1_000, "{} bytes", msg.len());
}

#[test]
fn the_store_can_be_shared_between_threads() {
    let f = Fixture::new(true, 4, None);
    std::thread::scope(|s| {
        for t in 0..4 {
            let store = &f.store;
            s.spawn(move || {
                for i in 0..10 {
                    store.take(&format!("r{t}"), "database", &json!({"config": i}), i).unwrap();
                }
            });
        }
    });
    for t in 0..4 {
        let id = format!("r{t}");
        assert_eq!(f.store.list(&id).unwrap().len(), 10);
        assert_exact(&f.store.restore(&id, 7, &json!({})).unwrap(), &json!({"config": 6}));
    }
    assert!(f.store.verify().unwrap().is_clean());
}

/// Expiry remembers when each file it read was taken, and reads a file again once it
/// changed: a snapshot file replaced behind the store's back (here by the same snapshot
/// taken long before, from another store) is judged by the time in the new file.
#[test]
fn expiry_reads_a_snapshot_file_again_once_it_changed() {
    let f = Fixture::new(false, 100, Some(1_000));
    let old = Fixture::new(false, 100, Some(1_000));
    let state = json!({"config": {"pool": 1}});
    f.store.take("db", "database", &state, 5_000).unwrap();
    old.store.take("db", "database", &state, 0).unwrap();
    // Read once and remembered: nothing is over the TTL at t = 5500.
    assert!(f.store.expire(5_500).unwrap().removed.is_empty());
    // Same resource, same seq, taken at t = 0: a valid file with another time.
    let path = f.store.file_path("db", 1);
    std::fs::remove_file(&path).unwrap();
    std::fs::copy(old.store.file_path("db", 1), &path).unwrap();
    let report = f.store.expire(5_500).unwrap();
    assert_eq!(report.removed.iter().map(|r| r.seq).collect::<Vec<_>>(), [1], "the replaced file is read again");
}
