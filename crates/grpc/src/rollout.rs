//! Shadow-stack rollout records on the wire: `ChangeService.GetRollout` and
//! `ListRollouts`.
//!
//! The records are the files `harbinger rollout run` writes to `<data_dir>/rollouts`, read
//! with the HTTP server's reader ([`harbinger_api::http::read_rollout`],
//! [`harbinger_api::http::list_rollouts`]) so both transports answer the same. Enumerated
//! values (phase, verdicts, scope, direction) go out as their JSON names, e.g.
//! `rolled_back`, exactly as HTTP `GET /api/v1/rollouts/{id}` spells them.

use std::path::PathBuf;

use harbinger_api::http::RolloutSummary;
use harbinger_plan::judge::{KpiSpec, MetricVerdict};
use harbinger_plan::rollout::{JudgementRecord, KpiWindow, RolloutEvent, RolloutRecord, RolloutSpec, ShadowInstance, ShadowScale};
use serde::Serialize;

use crate::service::{GrpcState, blocking};
use crate::{GrpcError, pb};

/// The JSON name of a unit enum variant (`Phase::RolledBack` is `rolled_back`); empty for
/// a value that does not serialise to a string.
fn name_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn shadow_instance(s: &ShadowInstance) -> pb::RolloutShadowInstance {
    pb::RolloutShadowInstance { id: s.id.clone(), endpoint: s.endpoint.clone() }
}

fn scale(s: &ShadowScale) -> pb::RolloutScale {
    pb::RolloutScale {
        scope: name_of(&s.scope),
        live_instances: s.live_instances,
        instances: s.instances,
        first_share: s.first_share,
        full_stack: s.full_stack,
        reason: s.reason.clone(),
    }
}

fn kpi(k: &KpiSpec) -> pb::RolloutKpi {
    pb::RolloutKpi {
        name: k.name.clone(),
        direction: name_of(&k.direction),
        weight: k.weight,
        critical: k.critical,
        tolerance: k.tolerance,
        min_delta: k.min_delta,
    }
}

fn spec(s: &RolloutSpec) -> pb::RolloutSpec {
    pb::RolloutSpec {
        steps: s.steps.clone(),
        interval_ms: i64::try_from(s.interval_ms).unwrap_or(i64::MAX),
        count: s.count,
        failure_limit: s.failure_limit,
        inconclusive_limit: s.inconclusive_limit,
        after_promote: name_of(&s.after_promote),
    }
}

fn metric(m: &MetricVerdict) -> pb::RolloutMetricVerdict {
    pb::RolloutMetricVerdict {
        name: m.name.clone(),
        verdict: name_of(&m.verdict),
        baseline_n: u32_of(m.baseline_n),
        canary_n: u32_of(m.canary_n),
        baseline_median: m.baseline_median,
        canary_median: m.canary_median,
        p_value: m.p_value,
        u: m.u,
        deviation: m.deviation,
        weight: m.weight,
        critical: m.critical,
        reason: m.reason.clone(),
    }
}

fn window(w: &KpiWindow) -> pb::RolloutKpiWindow {
    pb::RolloutKpiWindow { name: w.name.clone(), baseline: w.baseline.clone(), canary: w.canary.clone() }
}

fn judgement(j: &JudgementRecord) -> pb::RolloutJudgement {
    pb::RolloutJudgement {
        index: j.index,
        at_ms: j.at_ms,
        window_start_ms: j.window_start_ms,
        window_end_ms: j.window_end_ms,
        share: j.share,
        verdict: name_of(&j.verdict),
        score: j.judgement.score,
        pass: j.judgement.pass,
        reason: j.judgement.reason.clone(),
        failed_critical: j.judgement.failed_critical.clone(),
        metrics: j.judgement.metrics.iter().map(metric).collect(),
        windows: j.windows.iter().map(window).collect(),
    }
}

fn event(e: &RolloutEvent) -> pb::RolloutEvent {
    pb::RolloutEvent { ts_ms: e.ts, kind: e.kind.clone(), detail: e.detail.clone() }
}

/// The wire form of a rollout record: every field of it.
pub fn rollout(r: &RolloutRecord) -> pb::Rollout {
    let state = &r.rollout;
    pb::Rollout {
        id: r.id.clone(),
        created_ms: r.created_ms,
        updated_ms: r.updated_ms,
        backend: r.backend.clone(),
        live: r.live.clone(),
        shadow: r.shadow.iter().map(shadow_instance).collect(),
        scale: Some(scale(&r.scale)),
        phase: name_of(&state.phase),
        share: state.share,
        decision: r.decision.clone(),
        live_requests: r.live_requests,
        shadow_requests: r.shadow_requests,
        rollback_ms: r.rollback_ms,
        judgements: r.judgements.iter().map(judgement).collect(),
        events: r.events.iter().map(event).collect(),
        kpis: r.kpis.iter().map(kpi).collect(),
        spec: Some(spec(&state.spec)),
        step: u32_of(state.step),
        passes_in_step: state.passes_in_step,
        failures: state.failures,
        inconclusive_run: state.inconclusive_run,
    }
}

/// The wire form of a line of the rollout list.
pub fn summary(s: &RolloutSummary) -> pb::RolloutSummary {
    pb::RolloutSummary {
        id: s.id.clone(),
        created_ms: s.created_ms,
        updated_ms: s.updated_ms,
        phase: name_of(&s.phase),
        share: s.share,
        judgements: u32_of(s.judgements),
        decision: s.decision.clone(),
    }
}

fn dir_of(st: &GrpcState) -> Result<PathBuf, GrpcError> {
    st.rollouts_dir.clone().ok_or(GrpcError::NoRollouts)
}

/// Reads rollout `id` off the runtime threads.
///
/// # Errors
/// [`GrpcError::NoRollouts`] without a rollouts directory; [`GrpcError::Rollout`] for an
/// invalid id (INVALID_ARGUMENT), a missing record (NOT_FOUND) or one that cannot be read
/// (INTERNAL).
pub(crate) async fn get(st: &GrpcState, id: String) -> Result<pb::Rollout, GrpcError> {
    let dir = dir_of(st)?;
    let r = blocking(move || harbinger_api::http::read_rollout(&dir, &id)).await?.map_err(GrpcError::Rollout)?;
    Ok(rollout(&r))
}

/// Lists the rollouts off the runtime threads, newest first.
///
/// # Errors
/// [`GrpcError::NoRollouts`] without a rollouts directory; [`GrpcError::Rollout`]
/// (INTERNAL) when it cannot be listed.
pub(crate) async fn list(st: &GrpcState) -> Result<pb::ListRolloutsResponse, GrpcError> {
    let dir = dir_of(st)?;
    let list = blocking(move || harbinger_api::http::list_rollouts(&dir)).await?.map_err(GrpcError::Rollout)?;
    Ok(pb::ListRolloutsResponse { rollouts: list.iter().map(summary).collect() })
}
