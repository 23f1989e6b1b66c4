//! The service implementations: `RiskService`, `IngestService`, `AdminService` and
//! `ShadowService`.
//!
//! Every handler validates its request, checks the token when the call mutates, and runs
//! scorer calls (CPU work) on the blocking pool so the runtime threads stay free to move
//! bytes. Errors are [`GrpcError`] values turned into statuses in one place.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use harbinger_core::{HostId, HostRisk, ResourceId, RiskScorer, ShadowId, Stores};
use harbinger_engine::{Engine, EventsRefused, Executed, Ingest};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Auth;
use crate::{GrpcError, convert, error::map_decode_error, pb};

/// Limits a server enforces on requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most hosts in one `ScoreHosts` or `WatchRisk` request.
    pub max_hosts_per_request: usize,
    /// Largest decoded request message, bytes.
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_hosts_per_request: 1_000, max_message_bytes: 4 << 20 }
    }
}

/// Everything the services share. Cheap to clone.
#[derive(Clone, Debug)]
pub struct GrpcState {
    /// The stores pushes land in (the same the HTTP server writes).
    pub stores: Stores,
    /// The live scorer; `None` when the server runs without a model (scoring calls then
    /// answer UNAVAILABLE, ingest still works).
    pub scorer: Option<Arc<dyn RiskScorer>>,
    /// Own metrics (shared with the HTTP server; gRPC pushes count as source `grpc`).
    pub telemetry: Arc<harbinger_api::Telemetry>,
    /// When set, pushes for hosts outside this set are refused.
    pub strict_hosts: Option<Arc<HashSet<HostId>>>,
    /// Request limits.
    pub limits: Limits,
    /// Token required on mutating calls.
    pub auth: Auth,
    /// Why there is no scorer, for the UNAVAILABLE message.
    pub no_model_reason: Arc<str>,
    /// The engine behind `ShadowService` (shared with the HTTP server and the tick loop);
    /// `None`: every `ShadowService` call answers UNAVAILABLE "the engine is not running".
    pub engine: Option<Engine>,
    /// The change engine behind `ChangeService`; `None`: every `ChangeService` call answers
    /// UNAVAILABLE "the change engine is not running".
    pub change: Option<Arc<harbinger_change::ChangeEngine>>,
    /// Where rollout records are (`<dir>/<id>.json`, as `harbinger rollout run` writes
    /// them), read by `ChangeService.GetRollout` and `ListRollouts`; `None`: both answer
    /// UNAVAILABLE "this server keeps no rollout records".
    pub rollouts_dir: Option<PathBuf>,
    /// How long `ChangeService.Submit` watches the live stack after a positive change is
    /// applied, when the request leaves `monitor_for` empty (`change.monitor_for`; default
    /// 60 s).
    pub change_monitor_for: Duration,
    /// Time between two rounds of checks while it watches, when the request leaves
    /// `monitor_every` empty (`change.monitor_every`; default 5 s; above zero).
    pub change_monitor_every: Duration,
    /// Applies, submissions and rollbacks run one at a time (shared by every clone of this state).
    pub(crate) change_lock: Arc<tokio::sync::Mutex<()>>,
    /// Flips to `true` when the server shuts down, ending `WatchRisk` streams so that the
    /// graceful shutdown does not wait on them.
    pub(crate) stopping: watch::Receiver<bool>,
}

impl GrpcState {
    /// The shared ingest path over this state's stores, scorer, engine and host restriction.
    fn ingest(&self) -> Ingest {
        Ingest {
            stores: self.stores.clone(),
            scorer: self.scorer.clone(),
            engine: self.engine.clone(),
            telemetry: self.telemetry.clone(),
            strict_hosts: self.strict_hosts.clone(),
        }
    }

    /// State over `stores` and `scorer` with default limits, no token, no engine, no
    /// rollout records and the default watch of submitted changes.
    pub fn new(stores: Stores, scorer: Option<Arc<dyn RiskScorer>>, telemetry: Arc<harbinger_api::Telemetry>) -> Self {
        Self {
            stores,
            scorer,
            telemetry,
            strict_hosts: None,
            limits: Limits::default(),
            auth: Auth::default(),
            no_model_reason: Arc::from("the server was started without one"),
            engine: None,
            change: None,
            rollouts_dir: None,
            change_monitor_for: harbinger_change::predict::SubmitOptions::default().monitor_for,
            change_monitor_every: harbinger_change::predict::SubmitOptions::default().monitor_every,
            change_lock: Arc::new(tokio::sync::Mutex::new(())),
            stopping: watch::channel(false).1,
        }
    }

    fn engine(&self) -> Result<Engine, GrpcError> {
        self.engine.clone().ok_or(GrpcError::NoEngine)
    }

    fn scorer(&self) -> Result<Arc<dyn RiskScorer>, GrpcError> {
        self.scorer.clone().ok_or_else(|| GrpcError::NoModel(self.no_model_reason.to_string()))
    }
}

/// Runs `f` on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, GrpcError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| GrpcError::Internal(format!("worker task: {e}")))
}

/// `RiskService`.
#[derive(Clone, Debug)]
pub struct RiskApi(pub GrpcState);

/// `IngestService`.
#[derive(Clone, Debug)]
pub struct IngestApi(pub GrpcState);

/// `AdminService`.
#[derive(Clone, Debug)]
pub struct AdminApi(pub GrpcState);

/// `ShadowService`.
#[derive(Clone, Debug)]
pub struct ShadowApi(pub GrpcState);

const DEFAULT_WATCH_INTERVAL_MS: i64 = 1_000;
const MIN_WATCH_INTERVAL_MS: i64 = 100;
const DEFAULT_MIN_CHANGE: f64 = 0.01;

#[tonic::async_trait]
impl pb::risk_service_server::RiskService for RiskApi {
    async fn score_hosts(&self, request: Request<pb::ScoreHostsRequest>) -> Result<Response<pb::ScoreHostsResponse>, Status> {
        self.0.auth.check_read(request.metadata())?;
        let req = request.into_inner();
        let hosts = convert::host_ids("hosts", &req.hosts, self.0.limits.max_hosts_per_request, false)?;
        let scorer = self.0.scorer()?;
        let risks = blocking(move || scorer.score_hosts(&hosts)).await?.map_err(GrpcError::from)?;
        let model_version = risks.first().map(|r| r.model_version.to_string()).unwrap_or_default();
        Ok(Response::new(pb::ScoreHostsResponse { risks: risks.iter().map(Into::into).collect(), model_version }))
    }

    type WatchRiskStream = ReceiverStream<Result<pb::RiskUpdate, Status>>;

    async fn watch_risk(&self, request: Request<pb::WatchRiskRequest>) -> Result<Response<Self::WatchRiskStream>, Status> {
        self.0.auth.check_read(request.metadata())?;
        let req = request.into_inner();
        if !(0.0..=1.0).contains(&req.threshold) {
            return Err(GrpcError::Invalid(format!("`threshold` {} is not in [0, 1]", req.threshold)).into());
        }
        let interval_ms = if req.interval_ms == 0 { DEFAULT_WATCH_INTERVAL_MS } else { req.interval_ms };
        if interval_ms < MIN_WATCH_INTERVAL_MS {
            return Err(GrpcError::Invalid(format!("`interval_ms` {interval_ms} is below the minimum of {MIN_WATCH_INTERVAL_MS}")).into());
        }
        let min_change = if req.min_change == 0.0 { DEFAULT_MIN_CHANGE } else { req.min_change };
        if !(min_change > 0.0 && min_change <= 1.0) {
            return Err(GrpcError::Invalid(format!("`min_change` {} is not in (0, 1]", req.min_change)).into());
        }
        let hosts = convert::host_ids("hosts", &req.hosts, self.0.limits.max_hosts_per_request, true)?;
        let scorer = self.0.scorer()?;
        // Score once before answering, so unknown hosts fail the call itself.
        let first = score_watched(scorer.clone(), hosts.clone()).await?;
        let (tx, rx) = mpsc::channel(64);
        let watch = Watch { threshold: req.threshold, min_change, sent: HashMap::new() };
        tokio::spawn(watch.run(scorer, hosts, first, Duration::from_millis(interval_ms.unsigned_abs()), tx, self.0.stopping.clone()));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn explain_host(&self, request: Request<pb::ExplainHostRequest>) -> Result<Response<pb::ExplainHostResponse>, Status> {
        self.0.auth.check_read(request.metadata())?;
        let host = request.into_inner().host;
        if host.trim().is_empty() {
            return Err(GrpcError::Invalid("`host` is empty".into()).into());
        }
        let scorer = self.0.scorer()?;
        let host = HostId::new(host.trim());
        let e = blocking(move || scorer.explain_host(&host)).await?.map_err(GrpcError::from)?;
        Ok(Response::new((&e).into()))
    }
}

async fn score_watched(scorer: Arc<dyn RiskScorer>, hosts: Vec<HostId>) -> Result<Vec<HostRisk>, GrpcError> {
    blocking(move || if hosts.is_empty() { Ok(scorer.score_all()) } else { scorer.score_hosts(&hosts) }).await?.map_err(GrpcError::from)
}

/// One `WatchRisk` stream: what was last sent per host, and the rules for sending again.
struct Watch {
    threshold: f64,
    min_change: f64,
    /// Last risk and model version sent for each host currently at or above the threshold.
    sent: HashMap<HostId, (f64, Arc<str>)>,
}

impl Watch {
    /// The updates a new round of scores calls for, updating what was sent.
    fn updates(&mut self, scores: &[HostRisk]) -> Vec<pb::RiskUpdate> {
        let mut out = Vec::new();
        let mut seen = HashSet::with_capacity(scores.len());
        for r in scores {
            seen.insert(r.host.clone());
            let above = r.risk >= self.threshold;
            match (above, self.sent.get(&r.host)) {
                (true, Some((last, version))) if (r.risk - last).abs() < self.min_change && *version == r.model_version => {}
                (true, _) => {
                    self.sent.insert(r.host.clone(), (r.risk, r.model_version.clone()));
                    out.push(pb::RiskUpdate { risk: Some(r.into()), cleared: false });
                }
                (false, Some(_)) => {
                    self.sent.remove(&r.host);
                    out.push(pb::RiskUpdate { risk: Some(r.into()), cleared: true });
                }
                (false, None) => {}
            }
        }
        // A host that disappeared from the scores (removed from the inventory) leaves too.
        self.sent.retain(|h, _| seen.contains(h));
        out
    }

    async fn run(
        mut self,
        scorer: Arc<dyn RiskScorer>,
        hosts: Vec<HostId>,
        first: Vec<HostRisk>,
        every: Duration,
        tx: mpsc::Sender<Result<pb::RiskUpdate, Status>>,
        mut stopping: watch::Receiver<bool>,
    ) {
        let mut scores = first;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            for u in self.updates(&scores) {
                if tx.send(Ok(u)).await.is_err() {
                    return; // the client went away
                }
            }
            tokio::select! {
                _ = tick.tick() => {}
                () = tx.closed() => return,
                _ = stopping.wait_for(|s| *s) => return,
            }
            scores = match score_watched(scorer.clone(), hosts.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    let _ignored = tx.send(Err(e.into())).await;
                    return;
                }
            };
        }
    }
}

#[tonic::async_trait]
impl pb::ingest_service_server::IngestService for IngestApi {
    async fn push_metrics(&self, request: Request<Streaming<pb::SampleBatch>>) -> Result<Response<pb::PushMetricsResponse>, Status> {
        self.0.auth.check(request.metadata())?;
        let mut stream = request.into_inner();
        let st = &self.0;
        let mut batches = 0u64;
        let mut accepted = 0u64;
        let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
        while let Some(msg) = stream.message().await.map_err(map_decode_error)? {
            let batch = convert::sample_batch(batches, msg)?;
            let done = st.ingest().samples("grpc", batch, BTreeMap::new()).await.map_err(GrpcError::from)?;
            for (reason, n) in &done.report.rejected {
                *rejected.entry(reason.as_str().to_string()).or_default() += n;
            }
            for (reason, n) in &done.dropped {
                *rejected.entry((*reason).to_string()).or_default() += n;
            }
            accepted += done.report.accepted;
            batches += 1;
        }
        Ok(Response::new(pb::PushMetricsResponse { batches, accepted, rejected: rejected.into_iter().collect() }))
    }

    async fn push_events(&self, request: Request<pb::PushEventsRequest>) -> Result<Response<pb::PushEventsResponse>, Status> {
        self.0.auth.check(request.metadata())?;
        let events = convert::events(request.into_inner())?;
        let n = match self.0.ingest().events(events).await {
            Ok(n) => n,
            Err(EventsRefused::Store(e)) => return Err(GrpcError::from(e).into()),
            Err(EventsRefused::UnknownHost { index, host }) => {
                return Err(GrpcError::Invalid(format!(
                    "events[{index}]: unknown host {} (not in the inventory; the server runs with http.strict_hosts)",
                    harbinger_core::ids::echo(host.as_str())
                ))
                .into());
            }
        };
        Ok(Response::new(pb::PushEventsResponse { accepted: n }))
    }
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminApi {
    async fn reload_model(&self, request: Request<pb::ReloadModelRequest>) -> Result<Response<pb::ReloadModelResponse>, Status> {
        self.0.auth.check(request.metadata())?;
        let dir = request.into_inner().dir;
        let scorer = self.0.scorer()?;
        let previous = scorer.model_info();
        let dir = (!dir.trim().is_empty()).then(|| std::path::PathBuf::from(dir.trim()));
        let current = blocking(move || scorer.reload(dir.as_deref())).await?.map_err(|e| GrpcError::reload(&previous, &e))?;
        tracing::info!(previous = %previous.version, current = %current.version, "model reloaded (gRPC ReloadModel)");
        Ok(Response::new(pb::ReloadModelResponse { previous: Some((&previous).into()), current: Some((&current).into()) }))
    }

    async fn get_model(&self, request: Request<pb::GetModelRequest>) -> Result<Response<pb::ModelInfo>, Status> {
        self.0.auth.check_read(request.metadata())?;
        let scorer = self.0.scorer()?;
        Ok(Response::new((&scorer.model_info()).into()))
    }

    async fn ping(&self, _request: Request<pb::PingRequest>) -> Result<Response<pb::PingResponse>, Status> {
        Ok(Response::new(pb::PingResponse {}))
    }
}

#[tonic::async_trait]
impl pb::shadow_service_server::ShadowService for ShadowApi {
    async fn create_shadow(&self, request: Request<pb::CreateShadowRequest>) -> Result<Response<pb::CreateShadowResponse>, Status> {
        self.0.auth.check(request.metadata())?;
        let req = request.into_inner();
        let resource = ResourceId::new(convert::required("resource", &req.resource)?);
        let engine = self.0.engine()?;
        let done = engine.create(&resource, &req.requested_by).await.map_err(GrpcError::from)?;
        Ok(Response::new(pb::CreateShadowResponse { actions: done.iter().map(Into::into).collect() }))
    }

    async fn get_shadow_status(&self, request: Request<pb::ShadowStatusRequest>) -> Result<Response<pb::ShadowStatusResponse>, Status> {
        self.0.auth.check_read(request.metadata())?;
        let filter = convert::status_filter(request.get_ref())?;
        let engine = self.0.engine()?;
        let status = engine.status(&filter).await.map_err(GrpcError::from)?;
        Ok(Response::new((&status).into()))
    }

    async fn promote_shadow(&self, request: Request<pb::PromoteShadowRequest>) -> Result<Response<pb::ShadowAction>, Status> {
        self.0.auth.check(request.metadata())?;
        let req = request.into_inner();
        let id = ShadowId::new(convert::required("id", &req.id)?);
        let engine = self.0.engine()?;
        let done = engine.promote(&id, &req.requested_by).await.map_err(GrpcError::from)?;
        Ok(Response::new((&done).into()))
    }

    type WatchShadowsStream = ReceiverStream<Result<pb::ShadowAction, Status>>;

    async fn watch_shadows(&self, request: Request<pb::WatchShadowsRequest>) -> Result<Response<Self::WatchShadowsStream>, Status> {
        self.0.auth.check_read(request.metadata())?;
        // Subscribed before answering: every action after the call returns is sent.
        let actions = self.0.engine()?.subscribe();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(forward_actions(actions, tx, self.0.stopping.clone()));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Sends the engine's actions to one `WatchShadows` client until it goes away, the engine
/// is dropped or the server stops. Actions the client was too slow for become one
/// "lagged" message (see [`convert::lagged`]) and the stream goes on.
async fn forward_actions(
    mut actions: broadcast::Receiver<Executed>,
    tx: mpsc::Sender<Result<pb::ShadowAction, Status>>,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        let msg = tokio::select! {
            r = actions.recv() => match r {
                Ok(ex) => pb::ShadowAction::from(&ex),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "WatchShadows client lagged");
                    convert::lagged(n)
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            () = tx.closed() => return,
            _ = stopping.wait_for(|s| *s) => return,
        };
        // A client that stops reading must not hold up the shutdown.
        tokio::select! {
            sent = tx.send(Ok(msg)) => if sent.is_err() { return }, // the client went away
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn risk(host: &str, r: f64, version: &str) -> HostRisk {
        HostRisk {
            host: HostId::new(host),
            at: 0,
            risk: r,
            failure_probability: r,
            horizon_ms: 3_600_000,
            anomaly: 0.0,
            confidence: 1.0,
            criticality: 0,
            alerting: false,
            factors: vec![],
            model_version: Arc::from(version),
        }
    }

    fn hosts(u: &[pb::RiskUpdate]) -> Vec<(String, bool)> {
        u.iter().map(|u| (u.risk.as_ref().map(|r| r.host.clone()).unwrap_or_default(), u.cleared)).collect()
    }

    #[test]
    fn watch_sends_entries_changes_and_exits() {
        let mut w = Watch { threshold: 0.5, min_change: 0.05, sent: HashMap::new() };
        let u = w.updates(&[risk("a", 0.6, "v1"), risk("b", 0.2, "v1")]);
        assert_eq!(hosts(&u), vec![("a".into(), false)], "only hosts above the threshold");
        assert!(w.updates(&[risk("a", 0.62, "v1"), risk("b", 0.3, "v1")]).is_empty(), "small moves are not news");
        let u = w.updates(&[risk("a", 0.7, "v1"), risk("b", 0.55, "v1")]);
        assert_eq!(hosts(&u), vec![("a".into(), false), ("b".into(), false)]);
        let u = w.updates(&[risk("a", 0.7, "v2"), risk("b", 0.1, "v2")]);
        assert_eq!(hosts(&u), vec![("a".into(), false), ("b".into(), true)], "new model version, b cleared");
        assert!(w.updates(&[risk("a", 0.7, "v2"), risk("b", 0.1, "v2")]).is_empty(), "cleared once only");
    }

    fn executed(key: &str) -> Executed {
        Executed {
            key: key.into(),
            status: harbinger_core::JournalStatus::DryRun,
            detail: String::new(),
            decision: harbinger_plan::Decision {
                ts: 1,
                kind: "shadow_planned".into(),
                host: HostId::new("a1"),
                resource: None,
                target_host: None,
                reason: String::new(),
                shadow: None,
                priority: None,
                cause: None,
            },
            shadow: None,
        }
    }

    #[tokio::test]
    async fn a_lagging_watcher_is_told_what_it_missed_and_goes_on() {
        let (events, rx) = broadcast::channel(2);
        for k in ["k1", "k2", "k3", "k4", "k5"] {
            events.send(executed(k)).expect("a receiver");
        }
        let (tx, mut out) = mpsc::channel(16);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(forward_actions(rx, tx, stop_rx));
        async fn next(out: &mut mpsc::Receiver<Result<pb::ShadowAction, Status>>) -> pb::ShadowAction {
            out.recv().await.expect("open").expect("ok")
        }
        let first = next(&mut out).await;
        assert_eq!((first.status.as_str(), first.key.as_str()), ("lagged", ""));
        assert!(first.detail.starts_with("3 actions were skipped"), "{}", first.detail);
        assert_eq!(next(&mut out).await.key, "k4");
        assert_eq!(next(&mut out).await.key, "k5");
        events.send(executed("k6")).expect("a receiver");
        assert_eq!(next(&mut out).await.key, "k6");
        stop_tx.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("ends at shutdown").expect("task");
    }
}
