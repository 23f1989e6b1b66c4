//! Golden tests: small crafted fleets, and the decisions the planner makes about them,
//! one JSON line each, compared with `tests/golden/<case>.jsonl`.
//!
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the files; read the diff before
//! keeping it, the files pin the planner's choices.

mod common;

use common::*;
use harbinger_plan::{ActionKind, HostView, Plan, PlanInput, ResourceView, Shadow, ShadowState, Trigger, plan};

// ---- harness -------------------------------------------------------------------------

/// Plans `input` and compares its decisions with `tests/golden/<case>.jsonl`.
fn golden(case: &str, input: &PlanInput) -> Plan {
    let plan = plan(input);
    let mut text = String::new();
    for d in plan.decisions() {
        text.push_str(&serde_json::to_string(&d).expect("a decision serialises"));
        text.push('\n');
    }
    let path = format!("{}/tests/golden/{case}.jsonl", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, &text).expect("golden file written");
    } else {
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e} (run with UPDATE_GOLDEN=1 to create it)"));
        assert!(text == want, "{case}: decisions differ from {path}\n--- expected\n{want}--- actual\n{text}");
        for line in want.lines() {
            let d: harbinger_plan::Decision = serde_json::from_str(line).expect("a golden line parses back");
            assert_eq!(d.ts, NOW);
        }
    }
    plan
}

// ---- cases ---------------------------------------------------------------------------

#[test]
fn single_host_alert() {
    let a1 = hot("a1", "a", "r1", 0.90, 0.92, 0.8);
    let hosts = vec![
        a1.clone(),
        host("a2", "a", "r2", 0.05),
        host("b1", "b", "r1", 0.10),
        host("b2", "b", "r2", 0.02),
        host("c1", "c", "r1", 0.30),
    ];
    let resources =
        vec![res("db-1", "a1", 3), res("api-1", "a1", 2), res("cache-1", "a1", 1), res("batch-1", "a1", 0), res("web-9", "b2", 1)];
    let p = golden("single_host_alert", &input(hosts, resources, vec![], vec![alert(&a1)]));
    assert_eq!(actions(&p), ["create db-1 on b2 [risk:a1]", "create api-1 on b2 [risk:a1]"]);
    assert_eq!(p.skipped.len(), 2, "cache-1 and batch-1 are below the minimum criticality");
    let ActionKind::CreateShadow { shadow } = &p.actions[0].kind else { panic!("create first") };
    assert_eq!(p.actions[0].key, format!("create:db-1@b2#{NOW}"));
    assert_eq!(shadow.id.as_str(), format!("db-1@b2#{NOW}"));
    assert_eq!((shadow.state, shadow.primary.as_str(), shadow.cpu_cores, shadow.mem_gb), (ShadowState::Planned, "a1", 2.0, 8.0));
    assert_eq!((shadow.created_at, shadow.updated_at, shadow.last_used_at, shadow.expires_at), (NOW, NOW, NOW, Some(NOW + 7 * DAY)));
    assert!((shadow.priority - 0.92 * 0.8).abs() < 1e-12);
}

#[test]
fn priority_order() {
    // Priority = weight(criticality) x probability x imminence.
    let a1 = hot("a1", "a", "r1", 0.7, 0.6, 1.0);
    let a2 = hot("a2", "a", "r2", 0.8, 0.8, 0.5);
    let a3 = hot("a3", "a", "r3", 0.7, 0.7, 1.0);
    let hosts =
        vec![a1.clone(), a2.clone(), a3.clone(), host("a4", "a", "r4", 0.1), host("b1", "b", "r1", 0.01), host("b2", "b", "r2", 0.03)];
    let resources = vec![res("db-a", "a1", 3), res("svc-a", "a1", 2), res("db-b", "a2", 3), res("svc-c", "a3", 2), res("tmp-d", "a4", 0)];
    let triggers = vec![alert(&a3), Trigger::Manual { resource: "tmp-d".into(), by: "ops".into() }, alert(&a1), alert(&a2)];
    let p = golden("priority_order", &input(hosts, resources, vec![], triggers));
    // db-a 1x0.6 = 0.6, svc-c 0.75x0.7 = 0.525, svc-a 0.75x0.6 = 0.45, db-b 1x0.8x0.5 = 0.4,
    // tmp-d 0.25x max(0.1, 0.5) = 0.125.
    let order: Vec<String> = p.decisions().into_iter().filter_map(|d| d.resource.map(|r| r.to_string())).collect();
    assert_eq!(order, ["db-a", "svc-c", "svc-a", "db-b", "tmp-d"]);
}

#[test]
fn critical_first() {
    // db-1: probability 0.95 >= 0.9 and criticality 3, so tier 0 despite priority 0.38.
    let a1 = hot("a1", "a", "r1", 0.95, 0.95, 0.4);
    let a2 = hot("a2", "a", "r2", 0.85, 0.85, 1.0);
    let hosts = vec![a1.clone(), a2.clone(), host("b1", "b", "r1", 0.01)];
    let resources = vec![res("db-1", "a1", 3), res("api-1", "a1", 2), res("db-2", "a2", 3)];
    let mut i = input(hosts, resources, vec![], vec![alert(&a1), alert(&a2)]);
    i.budget.max_live_shadows = 2;
    let p = golden("critical_first", &i);
    assert_eq!(actions(&p), ["create db-1 on b1 [risk:a1]", "create db-2 on b1 [risk:a2]"]);
    let last = p.skipped.last().expect("api-1 skipped");
    assert_eq!(last.reason, "budget full (2 live shadows), none can be pre-empted: all were planned or asked for in this plan");
}

#[test]
fn zone_preferred() {
    // a2 has the lowest risk but is in the primary's zone; b1 is in another.
    let a1 = hot("a1", "a", "r1", 0.9, 0.8, 1.0);
    let hosts = vec![a1.clone(), host("a2", "a", "r2", 0.0), host("b1", "b", "r1", 0.3), host("b2", "b", "r1", 0.45)];
    let p = golden("zone_preferred", &input(hosts, vec![res("db-1", "a1", 3)], vec![], vec![alert(&a1)]));
    assert_eq!(actions(&p), ["create db-1 on b1 [risk:a1]"]);
}

#[test]
fn zone_fallback() {
    // Nothing in zone b can take it: risky, alerting, down, too small. In zone a: a2 shares
    // the rack, a5's rack is unknown, a4 is the lowest-risk host on another rack.
    let a1 = hot("a1", "a", "r1", 0.9, 0.8, 1.0);
    let hosts = vec![
        a1.clone(),
        host("a2", "a", "r1", 0.0),
        host("a3", "a", "r2", 0.2),
        host("a4", "a", "r3", 0.1),
        host("a5", "a", "", 0.0),
        host("b1", "b", "r1", 0.6),
        HostView { alerting: true, ..host("b2", "b", "r1", 0.4) },
        HostView { up: false, ..host("b3", "b", "r2", 0.0) },
        HostView { cpu_cores: 2.0, ..host("b4", "b", "r2", 0.1) },
    ];
    let p = golden("zone_fallback", &input(hosts, vec![res("db-1", "a1", 3)], vec![], vec![alert(&a1)]));
    assert_eq!(actions(&p), ["create db-1 on a4 [risk:a1]"]);
}

#[test]
fn nothing_fits() {
    let a1 = hot("a1", "a", "r1", 0.9, 0.8, 1.0);
    let hosts = vec![
        a1.clone(),
        host("a2", "a", "r1", 0.0),
        host("a3", "a", "r1", 0.0),
        host("a4", "a", "r1", 0.1),
        HostView { mem_gb: 4.0, ..host("b1", "b", "r1", 0.0) },
        HostView { cpu_cores: 1.0, ..host("b2", "b", "r2", 0.0) },
        host("b3", "b", "r1", 0.5),
    ];
    let p = golden("nothing_fits", &input(hosts, vec![res("db-1", "a1", 3)], vec![], vec![alert(&a1)]));
    assert!(p.actions.is_empty());
    assert_eq!(
        p.skipped[0].reason,
        "nothing fits db-1 (cpu 2, mem 8 GB): 3 hosts in the same zone and rack, 2 without capacity, 1 at risk >= 0.5"
    );
}

#[test]
fn nothing_fits_one_domain() {
    // One zone and no rack information: no host is in another failure domain.
    let a1 = hot("a1", "a", "", 0.9, 0.8, 1.0);
    let hosts = vec![a1.clone(), host("a2", "a", "", 0.0), host("a3", "a", "", 0.1), HostView { up: false, ..host("a4", "a", "", 0.0) }];
    let p = golden("nothing_fits_one_domain", &input(hosts, vec![res("db-1", "a1", 3)], vec![], vec![alert(&a1)]));
    assert!(p.actions.is_empty());
    assert_eq!(p.skipped[0].reason, "nothing fits db-1 (cpu 2, mem 8 GB): 2 hosts in the same zone, rack unknown, 1 down");
}

#[test]
fn capacity_within_plan() {
    // b1 has room for one 4-core shadow (8 x 0.8 = 6.4 cores), b2 for two (9.6 cores).
    let a1 = hot("a1", "a", "r1", 0.9, 0.8, 1.0);
    let hosts = vec![
        a1.clone(),
        HostView { cpu_cores: 8.0, ..host("b1", "b", "r1", 0.01) },
        HostView { cpu_cores: 12.0, ..host("b2", "b", "r2", 0.02) },
        host("b3", "b", "r3", 0.03),
    ];
    let big = |id: &str| ResourceView { cpu_cores: 4.0, mem_gb: 16.0, ..res(id, "a1", 3) };
    let resources = vec![big("db-1"), big("db-2"), big("db-3"), big("db-4")];
    let p = golden("capacity_within_plan", &input(hosts, resources, vec![], vec![alert(&a1)]));
    assert_eq!(
        actions(&p),
        ["create db-1 on b1 [risk:a1]", "create db-2 on b2 [risk:a1]", "create db-3 on b2 [risk:a1]", "create db-4 on b3 [risk:a1]"]
    );
}

/// Two live shadows of other resources, held by operators, with the given priorities.
fn budget_fleet(low: f64, high: f64) -> PlanInput {
    let a1 = hot("a1", "a", "r1", 0.9, 0.8, 1.0);
    let hosts = vec![a1.clone(), host("a2", "a", "r2", 0.1), host("b1", "b", "r1", 0.01), host("b2", "b", "r2", 0.02)];
    let resources = vec![res("db-1", "a1", 3), res("api-1", "a1", 2), res("web-1", "a2", 1), res("web-2", "a2", 1)];
    let shadows = vec![
        Shadow { priority: low, ..shadow("web-1", "a2", "b1", ShadowState::Ready, vec![manual("ops")]) },
        Shadow { priority: high, ..shadow("web-2", "a2", "b2", ShadowState::Ready, vec![manual("ops")]) },
    ];
    let mut i = input(hosts, resources, shadows, vec![alert(&a1)]);
    i.budget.max_live_shadows = 2;
    i
}

#[test]
fn budget_full_skip() {
    let p = golden("budget_full_skip", &budget_fleet(0.85, 0.9));
    assert!(p.actions.is_empty());
    let reasons: Vec<&str> = p.skipped.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(
        reasons,
        ["budget full (2 live shadows), lowest priority 0.85 >= 0.80", "budget full (2 live shadows), lowest priority 0.85 >= 0.60"]
    );
}

#[test]
fn budget_preempt() {
    // db-1 (0.8) displaces web-1 (0.3); api-1 (0.6) cannot displace web-2 (0.9).
    let p = golden("budget_preempt", &budget_fleet(0.3, 0.9));
    assert_eq!(actions(&p), [format!("retire {} (retired)", sid("web-1", "b1")), "create db-1 on b1 [risk:a1]".into()]);
    assert_eq!(kinds(&p), ["shadow_preempted", "shadow_planned", "shadow_skipped"]);
    assert_eq!(p.skipped[0].reason, "budget full (2 live shadows), lowest priority 0.90 >= 0.60");
}

#[test]
fn over_budget() {
    // The budget was lowered to 1: the two lowest-priority live shadows go.
    let hosts = vec![host("a1", "a", "r1", 0.1), host("b1", "b", "r1", 0.1)];
    let resources = vec![res("r-1", "a1", 1), res("r-2", "a1", 1), res("r-3", "a1", 1)];
    let shadows = [("r-1", 0.5), ("r-2", 0.2), ("r-3", 0.9)]
        .map(|(r, p)| Shadow { priority: p, ..shadow(r, "a1", "b1", ShadowState::Ready, vec![manual("ops")]) })
        .to_vec();
    let mut i = input(hosts, resources, shadows, vec![]);
    i.budget.max_live_shadows = 1;
    let p = golden("over_budget", &i);
    assert_eq!(actions(&p), [format!("retire {} (retired)", sid("r-2", "b1")), format!("retire {} (retired)", sid("r-1", "b1"))]);
}

#[test]
fn already_shadowed() {
    // db-1 and api-1 already have shadows held by a1's risk. The alert adds a cause to
    // db-1's; the repeated host alert adds nothing and creates nothing.
    let a1 = hot("a1", "a", "r1", 0.9, 0.8, 1.0);
    let hosts = vec![a1.clone(), host("b1", "b", "r1", 0.0), host("b2", "b", "r2", 0.1)];
    let resources = vec![res("db-1", "a1", 3), res("api-1", "a1", 2)];
    let shadows = vec![
        shadow("db-1", "a1", "b1", ShadowState::Ready, vec![risk("a1")]),
        shadow("api-1", "a1", "b2", ShadowState::Syncing, vec![risk("a1")]),
    ];
    let fire =
        Trigger::AlertFiring { fingerprint: "f1".into(), host: None, resource: Some("db-1".into()), summary: "replication lag".into() };
    let p = golden("already_shadowed", &input(hosts, resources, shadows, vec![alert(&a1), fire]));
    assert_eq!(actions(&p), [format!("add alert:f1 to {}", sid("db-1", "b1"))]);
    assert_eq!(p.actions[0].key, format!("cause:{}:alert:f1@{NOW}", sid("db-1", "b1")));
    assert_eq!(p.created(), 0);
}

#[test]
fn one_shadow_per_resource_and_host() {
    // db-1 is asked for twice in one plan: one shadow with both causes. db-2's shadow on
    // b1 (the best host) expires now; its new shadow goes elsewhere, never next to it.
    let a1 = hot("a1", "a", "r1", 0.9, 0.8, 1.0);
    let hosts = vec![a1.clone(), host("b1", "b", "r1", 0.0), host("b2", "b", "r2", 0.1)];
    let resources = vec![res("db-1", "a1", 3), res("db-2", "a1", 3)];
    let shadows = vec![Shadow { expires_at: Some(NOW - MIN), ..shadow("db-2", "a1", "b1", ShadowState::Ready, vec![manual("ops")]) }];
    let triggers = vec![Trigger::Manual { resource: "db-1".into(), by: "alice".into() }, alert(&a1)];
    let p = golden("one_shadow_per_resource_and_host", &input(hosts, resources, shadows, triggers));
    assert_eq!(
        actions(&p),
        [format!("expire {}", sid("db-2", "b1")), "create db-1 on b1 [risk:a1 manual:alice]".into(), "create db-2 on b2 [risk:a1]".into()]
    );
}

#[test]
fn retire_after_grace() {
    let cleared = |id: &str, ago: i64| HostView { alert_cleared_at: Some(NOW - ago), ..host(id, "a", "r1", 0.2) };
    let hosts = vec![
        cleared("a1", 45 * MIN),
        cleared("a2", 10 * MIN),
        cleared("a3", 2 * HOUR),
        host("a4", "a", "r1", 0.2),
        host("b1", "b", "r1", 0.0),
    ];
    let resources = vec![res("db-1", "a1", 3), res("db-2", "a2", 3), res("db-3", "a3", 3), res("db-4", "a4", 3)];
    let shadows = vec![
        shadow("db-1", "a1", "b1", ShadowState::Ready, vec![risk("a1")]),
        shadow("db-2", "a2", "b1", ShadowState::Ready, vec![risk("a2")]),
        shadow("db-3", "a3", "b1", ShadowState::Ready, vec![risk("a3"), manual("ops")]),
        shadow("db-4", "a4", "b1", ShadowState::Ready, vec![risk("a4")]),
    ];
    let p = golden("retire_after_grace", &input(hosts, resources, shadows, vec![]));
    // db-2: 10 min < 30 min grace; db-3: an operator holds it; db-4: no clear time known.
    assert_eq!(actions(&p), [format!("retire {} (retired)", sid("db-1", "b1"))]);
    assert_eq!(p.decisions()[0].reason, "a1 clear for 45m >= grace 30m");
}

#[test]
fn alert_resolved() {
    let hosts =
        vec![host("a1", "a", "r1", 0.1), hot("a2", "a", "r2", 0.8, 0.7, 1.0), host("a3", "a", "r3", 0.1), host("b1", "b", "r1", 0.0)];
    let resources = vec![res("db-1", "a1", 3), res("db-2", "a2", 3), res("db-3", "a3", 3), res("db-4", "a1", 3)];
    let shadows = vec![
        shadow("db-1", "a1", "b1", ShadowState::Ready, vec![alert_cause("f1")]),
        shadow("db-2", "a2", "b1", ShadowState::Ready, vec![alert_cause("f2")]),
        shadow("db-3", "a3", "b1", ShadowState::Ready, vec![alert_cause("f3"), manual("ops")]),
        shadow("db-4", "a1", "b1", ShadowState::Ready, vec![alert_cause("f9")]),
    ];
    let triggers = ["f1", "f2", "f3"].map(|f| Trigger::AlertResolved { fingerprint: f.into() }).to_vec();
    let p = golden("alert_resolved", &input(hosts, resources, shadows, triggers));
    // db-1 retires; db-2 stays, held by a2's risk; db-3 stays, held by the operator;
    // db-4's alert still fires.
    assert_eq!(
        actions(&p),
        [
            format!("retire {} (retired)", sid("db-1", "b1")),
            format!("add risk:a2 to {}", sid("db-2", "b1")),
            format!("drop alert:f2 from {}", sid("db-2", "b1")),
            format!("drop alert:f3 from {}", sid("db-3", "b1")),
        ]
    );
}

#[test]
fn expiry() {
    let hosts = vec![host("a1", "a", "r1", 0.1), host("b1", "b", "r1", 0.0)];
    let resources = vec![res("r-1", "a1", 3), res("r-2", "a1", 3), res("r-3", "a1", 3), res("r-4", "a1", 3)];
    let shadows = vec![
        Shadow { expires_at: Some(NOW - HOUR), ..shadow("r-1", "a1", "b1", ShadowState::Syncing, vec![manual("ops")]) },
        Shadow { expires_at: Some(NOW + HOUR), ..shadow("r-2", "a1", "b1", ShadowState::Ready, vec![manual("ops")]) },
        Shadow { expires_at: Some(NOW - HOUR), ..shadow("r-3", "a1", "b1", ShadowState::Retired, vec![manual("ops")]) },
        Shadow { expires_at: Some(NOW), ..shadow("r-4", "a1", "b1", ShadowState::Planned, vec![manual("ops")]) },
    ];
    let p = golden("expiry", &input(hosts, resources, shadows, vec![]));
    assert_eq!(actions(&p), [format!("expire {}", sid("r-1", "b1")), format!("expire {}", sid("r-4", "b1"))]);
    assert_eq!(p.actions[0].key, format!("expire:{}", sid("r-1", "b1")));
}

#[test]
fn idle_scale_down() {
    let hosts = vec![host("a1", "a", "r1", 0.1), hot("a2", "a", "r2", 0.7, 0.6, 1.0), host("b1", "b", "r1", 0.0)];
    let resources = vec![res("r-1", "a1", 3), res("r-2", "a2", 3), res("r-3", "a1", 3), res("r-4", "a1", 3)];
    let idle =
        |r: &str, primary: &str, state, ago| Shadow { last_used_at: NOW - ago, ..shadow(r, primary, "b1", state, vec![manual("ops")]) };
    let shadows = vec![
        idle("r-1", "a1", ShadowState::Ready, 25 * HOUR),
        idle("r-2", "a2", ShadowState::Ready, 25 * HOUR),
        idle("r-3", "a1", ShadowState::Syncing, 25 * HOUR),
        idle("r-4", "a1", ShadowState::Ready, 23 * HOUR),
    ];
    let p = golden("idle_scale_down", &input(hosts, resources, shadows, vec![]));
    // r-2: its primary is alerting; r-3: not ready; r-4: used 23 h ago.
    assert_eq!(actions(&p), [format!("retire {} (retired)", sid("r-1", "b1"))]);
}

#[test]
fn failover() {
    let hosts = vec![
        HostView { up: false, ..host("a1", "a", "r1", 1.0) },
        host("a2", "a", "r2", 0.0),
        host("b1", "b", "r1", 0.2),
        host("b2", "b", "r2", 0.1),
    ];
    let resources = vec![res("db-1", "a1", 3), res("db-2", "a1", 3), res("db-3", "a1", 3), res("db-4", "a1", 3)];
    let shadows = vec![
        // db-1: three ready shadows; b2 is the lowest-risk one in another zone.
        shadow("db-1", "a1", "b1", ShadowState::Ready, vec![risk("a1")]),
        shadow("db-1", "a1", "a2", ShadowState::Ready, vec![risk("a1")]),
        shadow("db-1", "a1", "b2", ShadowState::Ready, vec![risk("a1")]),
        // db-2: still syncing.
        shadow("db-2", "a1", "b1", ShadowState::Syncing, vec![risk("a1")]),
        // db-3: promoted on an earlier tick; the engine has not moved it yet.
        shadow("db-3", "a1", "b1", ShadowState::Promoted, vec![risk("a1")]),
        shadow("db-3", "a1", "b2", ShadowState::Ready, vec![risk("a1")]),
    ];
    let p = golden("failover", &input(hosts, resources, shadows, vec![]));
    assert_eq!(actions(&p), [format!("promote {}", sid("db-1", "b2"))]);
    assert_eq!(kinds(&p), ["failover", "shadow_promoted", "shadow_skipped"]);
}

#[test]
fn stale_shadows() {
    // db-1 left the inventory, db-2 moved to a2, db-3's shadow host b2 is down.
    let hosts = vec![
        host("a1", "a", "r1", 0.1),
        host("a2", "a", "r2", 0.1),
        host("b1", "b", "r1", 0.0),
        HostView { up: false, ..host("b2", "b", "r2", 0.0) },
    ];
    let resources = vec![res("db-2", "a2", 3), res("db-3", "a1", 3)];
    let shadows = vec![
        shadow("db-1", "a1", "b1", ShadowState::Ready, vec![manual("ops")]),
        shadow("db-2", "a1", "b1", ShadowState::Ready, vec![manual("ops")]),
        shadow("db-3", "a1", "b2", ShadowState::Syncing, vec![manual("ops")]),
    ];
    let p = golden("stale_shadows", &input(hosts, resources, shadows, vec![]));
    assert_eq!(
        actions(&p),
        [
            format!("retire {} (retired)", sid("db-1", "b1")),
            format!("retire {} (retired)", sid("db-2", "b1")),
            format!("retire {} (failed)", sid("db-3", "b2")),
        ]
    );
}

#[test]
fn alerts_events_and_manual() {
    // An alert about a host, an event about a resource and one about a host, and an
    // operator's request for a best-effort resource.
    let hosts = vec![host("a1", "a", "r1", 0.2), host("a2", "a", "r2", 0.7), host("b1", "b", "r1", 0.0), host("b2", "b", "r2", 0.05)];
    let resources = vec![res("db-1", "a1", 3), res("cache-1", "a1", 1), res("api-2", "a2", 2), res("web-2", "a2", 0)];
    let triggers = vec![
        Trigger::AlertFiring { fingerprint: "f7".into(), host: Some("a1".into()), resource: None, summary: "disk 95% full".into() },
        Trigger::Event { kind: "deploy_started".into(), id: "d-41".into(), host: None, resource: Some("cache-1".into()) },
        Trigger::Event { kind: "host_maintenance".into(), id: "m-3".into(), host: Some("a2".into()), resource: None },
        Trigger::Manual { resource: "web-2".into(), by: "alice".into() },
    ];
    let p = golden("alerts_events_and_manual", &input(hosts, resources, vec![], triggers));
    // Probability max(p, 0.5): db-1 1 x 0.5, api-2 0.75 x 0.7, cache-1 0.5 x 0.5, web-2 0.25 x 0.7.
    assert_eq!(
        actions(&p),
        [
            "create api-2 on b1 [event:host_maintenance:m-3]",
            "create db-1 on b1 [alert:f7]",
            "create cache-1 on b1 [event:deploy_started:d-41]",
            "create web-2 on b1 [manual:alice]",
        ]
    );
}

#[test]
fn unknown_trigger_targets() {
    let a1 = hot("a1", "a", "r1", 0.9, 0.8, 1.0);
    let hosts = vec![a1.clone(), host("b1", "b", "r1", 0.0)];
    let resources = vec![res("db-1", "a1", 3), res("orphan", "zz", 3)];
    let triggers = vec![
        Trigger::HostAlert { host: "h404".into(), risk: 0.9, probability: 0.9 },
        Trigger::HostCleared { host: "h405".into() },
        Trigger::AlertFiring { fingerprint: "f1".into(), host: None, resource: None, summary: "no labels".into() },
        Trigger::Event { kind: "config_changed".into(), id: "c-1".into(), host: Some("h406".into()), resource: None },
        Trigger::Event { kind: "deploy_started".into(), id: "d-2".into(), host: None, resource: Some("r404".into()) },
        Trigger::Manual { resource: "orphan".into(), by: "bob".into() },
        alert(&a1),
    ];
    let p = golden("unknown_trigger_targets", &input(hosts, resources, vec![], triggers));
    assert_eq!(actions(&p), ["create db-1 on b1 [risk:a1]"]);
    assert_eq!(p.skipped.len(), 6);
}
