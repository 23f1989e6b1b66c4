//! The finer points of the rules, asserted on the actions and reasons of small plans.

mod common;

use common::*;
use harbinger_plan::{ActionKind, HostView, ResourceView, Shadow, ShadowState, Trigger, plan};

#[test]
fn a_resolved_alert_and_a_cleared_risk_retire_together() {
    let a1 = HostView { alert_cleared_at: Some(NOW - 2 * HOUR), ..host("a1", "a", "r1", 0.1) };
    let hosts = vec![a1, host("b1", "b", "r1", 0.0)];
    let shadows = vec![shadow("db-1", "a1", "b1", ShadowState::Ready, vec![alert_cause("f1"), risk("a1")])];
    let p = plan(&input(hosts.clone(), vec![res("db-1", "a1", 3)], shadows.clone(), vec![]));
    assert!(p.actions.is_empty(), "the alert still fires: {:?}", actions(&p));
    let resolved = vec![Trigger::AlertResolved { fingerprint: "f1".into() }];
    let p = plan(&input(hosts, vec![res("db-1", "a1", 3)], shadows, resolved));
    assert_eq!(actions(&p), [format!("retire {} (retired)", sid("db-1", "b1"))]);
    assert_eq!(p.actions[0].decision.reason, "alert f1 resolved; a1 clear for 2h >= grace 30m; a1 not alerting");
}

#[test]
fn failover_comes_before_expiry() {
    let hosts = vec![HostView { up: false, ..host("a1", "a", "r1", 1.0) }, host("b1", "b", "r1", 0.0), host("b2", "b", "r2", 0.0)];
    let resources = vec![res("db-1", "a1", 3), res("db-2", "a1", 3)];
    let shadows = vec![
        // Ready but past its time to live: still the way back for db-1.
        Shadow { expires_at: Some(NOW - HOUR), ..shadow("db-1", "a1", "b1", ShadowState::Ready, vec![risk("a1")]) },
        // Not ready and past its time to live: it expires instead of waiting.
        Shadow { expires_at: Some(NOW - HOUR), ..shadow("db-2", "a1", "b1", ShadowState::Syncing, vec![risk("a1")]) },
        // Not ready, still within its time to live: it waits.
        shadow("db-2", "a1", "b2", ShadowState::Provisioning, vec![risk("a1")]),
    ];
    let p = plan(&input(hosts, resources, shadows, vec![]));
    assert_eq!(actions(&p), [format!("promote {}", sid("db-1", "b1")), format!("expire {}", sid("db-2", "b1"))]);
    assert_eq!(kinds(&p), ["failover", "shadow_promoted", "shadow_skipped", "shadow_expired"]);
    assert_eq!(p.skipped[1].reason, "cannot promote yet: shadow is provisioning, not ready; primary a1 is down");
    assert_eq!(p.actions[0].key, format!("promote:{}", sid("db-1", "b1")));
}

#[test]
fn a_shadow_gaining_a_cause_is_not_pre_empted_by_the_same_plan() {
    // web-1's shadow has the lowest priority, but the alert on a2 wants it: db-1 has to
    // pre-empt the next lowest (web-2's).
    let a1 = hot("a1", "a", "r1", 0.9, 0.8, 1.0);
    let a2 = hot("a2", "a", "r2", 0.9, 0.6, 1.0);
    let hosts = vec![a1.clone(), a2.clone(), host("b1", "b", "r1", 0.0), host("b2", "b", "r2", 0.1)];
    let resources = vec![res("db-1", "a1", 3), res("web-1", "a2", 2), res("web-2", "b2", 1)];
    let shadows = vec![
        Shadow { priority: 0.1, ..shadow("web-1", "a2", "b1", ShadowState::Ready, vec![manual("ops")]) },
        Shadow { priority: 0.2, ..shadow("web-2", "b2", "b1", ShadowState::Ready, vec![manual("ops")]) },
    ];
    let mut i = input(hosts, resources, shadows, vec![alert(&a1), alert(&a2)]);
    i.budget.max_live_shadows = 2;
    let p = plan(&i);
    assert_eq!(
        actions(&p),
        [
            format!("retire {} (retired)", sid("web-2", "b1")),
            "create db-1 on b1 [risk:a1]".into(),
            format!("add risk:a2 to {}", sid("web-1", "b1"))
        ]
    );
}

#[test]
fn pre_empting_needs_a_place_to_go() {
    // db-1 outranks web-1's shadow, but no host can take db-1 (b1 has 3 x 0.8 - 1 = 1.4
    // cores free): nothing is retired. The core web-1's shadow would free is not counted.
    let a1 = hot("a1", "a", "r1", 0.9, 0.8, 1.0);
    let hosts = vec![a1.clone(), HostView { cpu_cores: 3.0, ..host("b1", "b", "r1", 0.0) }];
    let resources = vec![res("db-1", "a1", 3), ResourceView { cpu_cores: 1.0, ..res("web-1", "a1", 1) }];
    let shadows = vec![Shadow { priority: 0.1, cpu_cores: 1.0, ..shadow("web-1", "a1", "b1", ShadowState::Ready, vec![manual("ops")]) }];
    let mut i = input(hosts, resources, shadows, vec![alert(&a1)]);
    i.budget.max_live_shadows = 1;
    let p = plan(&i);
    assert!(p.actions.is_empty(), "{:?}", actions(&p));
    assert_eq!(p.skipped[1].reason, "nothing fits db-1 (cpu 2, mem 8 GB): 1 host without capacity");
}

#[test]
fn lost_and_misplaced_shadows_end() {
    let hosts = vec![host("a1", "a", "r1", 0.1), host("b1", "b", "r1", 0.0)];
    let resources = vec![res("db-1", "a1", 3), res("db-2", "a1", 3)];
    let shadows = vec![
        shadow("db-1", "a1", "gone", ShadowState::Syncing, vec![manual("ops")]),
        shadow("db-2", "a1", "a1", ShadowState::Planned, vec![manual("ops")]),
    ];
    let p = plan(&input(hosts, resources, shadows, vec![]));
    assert_eq!(actions(&p), [format!("retire {} (failed)", sid("db-1", "gone")), format!("retire {} (retired)", sid("db-2", "a1"))]);
    let reasons: Vec<&str> = p.actions.iter().map(|a| a.decision.reason.as_str()).collect();
    assert_eq!(reasons, ["shadow host gone is not in the inventory: the shadow is lost", "shadow is on its own primary a1"]);
}

#[test]
fn freed_capacity_and_budget_serve_the_same_plan() {
    // b1 is full with web-1's shadow, which retires after the grace; db-1 takes its place
    // and its budget slot.
    let a1 = hot("a1", "a", "r1", 0.9, 0.8, 1.0);
    let a2 = HostView { alert_cleared_at: Some(NOW - HOUR), ..host("a2", "a", "r2", 0.1) };
    let hosts = vec![a1.clone(), a2, HostView { cpu_cores: 3.0, ..host("b1", "b", "r1", 0.0) }, host("b2", "b", "r2", 0.2)];
    let resources = vec![res("db-1", "a1", 3), res("web-1", "a2", 2)];
    let shadows = vec![shadow("web-1", "a2", "b1", ShadowState::Ready, vec![risk("a2")])];
    let mut i = input(hosts, resources, shadows, vec![alert(&a1)]);
    i.budget.max_live_shadows = 1;
    let p = plan(&i);
    assert_eq!(actions(&p), [format!("retire {} (retired)", sid("web-1", "b1")), "create db-1 on b1 [risk:a1]".into()]);
}

#[test]
fn no_expiry_without_a_time_to_live_and_ids_are_stable() {
    let a1 = hot("a1", "a", "r1", 0.9, 0.8, 1.0);
    let mut i = input(vec![a1.clone(), host("b1", "b", "r1", 0.0)], vec![res("db-1", "a1", 3)], vec![], vec![alert(&a1)]);
    i.budget.ttl_ms = None;
    let p = plan(&i);
    let ActionKind::CreateShadow { shadow } = &p.actions[0].kind else { panic!("a create: {:?}", actions(&p)) };
    assert_eq!(shadow.expires_at, None);
    i.now += 1;
    let later = plan(&i);
    assert_ne!(later.actions[0].key, p.actions[0].key, "a new tick plans a new shadow id");
}

#[test]
fn nan_and_out_of_range_values_do_not_panic() {
    let a1 = HostView { imminence: f64::NAN, ..hot("a1", "a", "r1", 0.9, 2.0, 1.0) };
    let hosts =
        vec![a1, HostView { risk: f64::NAN, ..host("b1", "b", "r1", 0.0) }, HostView { mem_gb: f64::NAN, ..host("b2", "b", "r2", 0.0) }];
    let resources = vec![ResourceView { criticality: 9, ..res("db-1", "a1", 3) }];
    let triggers = vec![Trigger::HostAlert { host: "a1".into(), risk: f64::NAN, probability: f64::INFINITY }];
    let p = plan(&input(hosts, resources, vec![], triggers));
    assert!(p.actions.is_empty());
    let skip = &p.skipped[0];
    assert_eq!(skip.reason, "nothing fits db-1 (cpu 2, mem 8 GB): 1 host without capacity, 1 at risk >= 0.5");
    assert_eq!(skip.priority, Some(1.0), "probability clamped to 1, imminence unknown counts as 1, criticality 9 as 3");
}
