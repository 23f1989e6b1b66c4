//! `ChangeService.GetRollout` and `ListRollouts` over a real server on 127.0.0.1:0, on
//! rollout records written as JSON to a temporary directory: every field of a record on
//! the wire (the KPI sample windows, optional values set and unset), the list newest
//! first, NOT_FOUND, INVALID_ARGUMENT, INTERNAL for a damaged record, UNAVAILABLE without
//! a rollouts directory, and the token when reads are protected.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use harbinger_core::Stores;
use harbinger_engine::Telemetry;
use harbinger_grpc::client::{Clients, connect};
use harbinger_grpc::{GrpcState, auth::Auth, pb};
use harbinger_store::MemoryStore;
use tokio::sync::oneshot;
use tonic::Code;

struct Server {
    clients: Clients,
    addr: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), harbinger_grpc::ServeError>>>,
}

impl Server {
    async fn start(rollouts_dir: Option<&Path>, auth: Auth, token: Option<&str>) -> Self {
        let store = Arc::new(MemoryStore::new(harbinger_store::Limits::default()));
        let mut state = GrpcState::new(Stores::from_backend(store), None, Arc::new(Telemetry::new()));
        state.rollouts_dir = rollouts_dir.map(Path::to_path_buf);
        state.auth = auth;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(harbinger_grpc::serve(listener, state, None, async move {
            let _stopped = rx.await;
        }));
        let clients = connect(&addr, token, None).await.expect("connect");
        Self { clients, addr, stop: Some(tx), task: Some(task) }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _sent = tx.send(());
        }
        let task = self.task.take().expect("running");
        let r = tokio::time::timeout(Duration::from_secs(20), task).await.expect("server stopped within 20 s");
        r.expect("server task").expect("server returned Ok");
    }
}

use harbinger_plan::rollout::{ChangeScope, shadow_scale};
use harbinger_testkit::rollouts::{progressing, rolled_back, write};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_rollout_answers_every_field_of_the_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("rollouts");
    write(&dir, &rolled_back());
    write(&dir, &progressing());
    let s = Server::start(Some(&dir), Auth::default(), None).await;
    let mut c = s.clients.change.clone();

    let r = c.get_rollout(pb::GetRolloutRequest { id: "r-1".into() }).await.expect("get").into_inner();
    assert_eq!((r.id.as_str(), r.created_ms, r.updated_ms), ("r-1", 1_700_000_000_000, 1_700_000_004_000));
    assert_eq!(r.backend, "web");
    assert_eq!(r.live, vec!["web-1", "web-2"]);
    let shadow: Vec<_> = r.shadow.iter().map(|x| (x.id.as_str(), x.endpoint.as_str())).collect();
    assert_eq!(shadow, vec![("r-1-1", "127.0.0.1:9101"), ("r-1-2", "127.0.0.1:9102")]);
    let scale = r.scale.as_ref().expect("scale");
    assert_eq!(
        (scale.scope.as_str(), scale.live_instances, scale.instances, scale.first_share, scale.full_stack),
        ("version", 2, 2, 5, false)
    );
    assert_eq!(scale.reason, shadow_scale(ChangeScope::Version, 2, 5).reason);
    assert_eq!((r.phase.as_str(), r.share), ("rolled_back", 0));
    assert_eq!(r.decision.as_deref(), Some("rolled_back"));
    assert_eq!((r.live_requests, r.shadow_requests), (950, 50));
    assert_eq!(r.rollback_ms, Some(12.5));
    let spec = r.spec.as_ref().expect("spec");
    assert_eq!((spec.steps.clone(), spec.interval_ms, spec.count), (vec![5, 25, 50], 2_000, 3));
    assert_eq!((spec.failure_limit, spec.inconclusive_limit, spec.after_promote.as_str()), (0, 2, "retire"));
    assert_eq!((r.step, r.passes_in_step, r.failures, r.inconclusive_run), (0, 0, 1, 0));
    let kpis: Vec<_> = r.kpis.iter().map(|k| (k.name.as_str(), k.direction.as_str(), k.critical, k.tolerance)).collect();
    assert_eq!(kpis, vec![("latency_ms", "higher_is_worse", false, 0.1), ("error_rate", "higher_is_worse", true, 0.1)]);

    assert_eq!(r.judgements.len(), 1);
    let j = &r.judgements[0];
    assert_eq!(
        (j.index, j.at_ms, j.window_start_ms, j.window_end_ms, j.share),
        (1, 1_700_000_002_000, 1_700_000_000_000, 1_700_000_002_000, 5)
    );
    assert_eq!((j.verdict.as_str(), j.score, j.pass), ("fail", 50.0, false));
    assert_eq!(j.reason, "critical KPI error_rate failed");
    assert_eq!(j.failed_critical, vec!["error_rate"]);
    let m: Vec<_> = j.metrics.iter().map(|m| (m.name.as_str(), m.verdict.as_str(), m.baseline_n, m.canary_n, m.critical)).collect();
    assert_eq!(m, vec![("latency_ms", "pass", 5, 5, false), ("error_rate", "fail", 5, 5, true)]);
    let (lat, err) = (&j.metrics[0], &j.metrics[1]);
    assert_eq!(
        (lat.baseline_median, lat.canary_median, lat.p_value, lat.u, lat.deviation),
        (Some(20.0), Some(21.0), Some(0.42), Some(14.5), Some(0.05))
    );
    assert_eq!((err.baseline_median, err.canary_median, err.p_value, err.u), (Some(0.0), Some(0.2), Some(0.004), Some(25.0)));
    assert_eq!(err.deviation, None, "an absent deviation stays absent");
    assert_eq!((err.weight, err.reason.as_str()), (1.0, "median 0.2 vs 0 beyond 0, p 0.004 < 0.05"));
    let w: Vec<_> = j.windows.iter().map(|w| (w.name.as_str(), w.baseline.clone(), w.canary.clone())).collect();
    assert_eq!(
        w,
        vec![
            ("latency_ms", vec![19.0, 20.0, 20.5, 21.0, 20.0], vec![21.0, 20.5, 22.0, 21.0, 20.0]),
            ("error_rate", vec![0.0; 5], vec![0.2, 0.25, 0.2, 0.1, 0.3]),
        ]
    );
    let ev: Vec<_> = r.events.iter().map(|e| (e.ts_ms, e.kind.as_str(), e.detail.as_str())).collect();
    assert_eq!(
        ev,
        vec![
            (1_700_000_000_000, "scaled", "2 instances"),
            (1_700_000_000_500, "share", "5 %"),
            (1_700_000_002_000, "judgement", "1: fail"),
            (1_700_000_002_010, "rollback", "error_rate failed"),
        ]
    );

    // A rollout still progressing: the optional values are absent.
    let r = c.get_rollout(pb::GetRolloutRequest { id: "r-2".into() }).await.expect("get").into_inner();
    assert_eq!((r.phase.as_str(), r.share, r.decision, r.rollback_ms), ("progressing", 5, None, None));
    assert!(r.judgements.is_empty() && r.events.is_empty() && r.shadow.is_empty());
    assert_eq!(r.scale.map(|x| (x.scope, x.instances, x.full_stack)), Some(("config".to_string(), 1, false)));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_rollouts_is_newest_first_and_skips_what_is_not_a_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("rollouts");
    // Before the directory exists: no rollouts yet.
    let s = Server::start(Some(&dir), Auth::default(), None).await;
    let mut c = s.clients.change.clone();
    assert!(c.list_rollouts(pb::ListRolloutsRequest {}).await.expect("list").into_inner().rollouts.is_empty());

    write(&dir, &rolled_back());
    write(&dir, &progressing());
    std::fs::write(dir.join("notes.txt"), "not a record").expect("notes");
    std::fs::write(dir.join("broken.json"), "{").expect("broken");
    let list = c.list_rollouts(pb::ListRolloutsRequest {}).await.expect("list").into_inner();
    let got: Vec<_> = list
        .rollouts
        .iter()
        .map(|x| (x.id.as_str(), x.created_ms, x.updated_ms, x.phase.as_str(), x.share, x.judgements, x.decision.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("r-2", 1_700_000_100_000, 1_700_000_100_000, "progressing", 5, 0, None),
            ("r-1", 1_700_000_000_000, 1_700_000_004_000, "rolled_back", 0, 1, Some("rolled_back")),
        ]
    );

    // A damaged record is left out of the list, but asking for it is INTERNAL.
    let e = c.get_rollout(pb::GetRolloutRequest { id: "broken".into() }).await.expect_err("damaged");
    assert_eq!(e.code(), Code::Internal, "{}", e.message());
    assert!(e.message().contains("the record of rollout \"broken\" is not valid"), "{}", e.message());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_bad_ids_and_a_server_without_rollouts_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("rollouts");
    write(&dir, &rolled_back());
    let s = Server::start(Some(&dir), Auth::default(), None).await;
    let mut c = s.clients.change.clone();

    let e = c.get_rollout(pb::GetRolloutRequest { id: "r-9".into() }).await.expect_err("unknown");
    assert_eq!(e.code(), Code::NotFound, "{}", e.message());
    assert_eq!(e.message(), "no rollout \"r-9\"");
    let e = c.get_rollout(pb::GetRolloutRequest { id: "../x".into() }).await.expect_err("a path");
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(e.message().starts_with("rollout id \"../x\": use 1 to 64 letters"), "{}", e.message());
    let e = c.get_rollout(pb::GetRolloutRequest::default()).await.expect_err("empty");
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    // A long id is named, cut to 64 characters.
    let long = "a".repeat(1_000);
    let e = c.get_rollout(pb::GetRolloutRequest { id: long }).await.expect_err("too long");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains(&format!("\"{}\"", "a".repeat(64))) && !e.message().contains(&"a".repeat(65)), "{}", e.message());
    s.stop().await;

    // No rollouts directory: UNAVAILABLE, whatever the id.
    let s = Server::start(None, Auth::default(), None).await;
    let mut c = s.clients.change.clone();
    let e = c.get_rollout(pb::GetRolloutRequest { id: "r-1".into() }).await.expect_err("no dir");
    assert_eq!((e.code(), e.message()), (Code::Unavailable, "this server keeps no rollout records"));
    let e = c.list_rollouts(pb::ListRolloutsRequest {}).await.expect_err("no dir");
    assert_eq!(e.code(), Code::Unavailable, "{}", e.message());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_are_reads_open_unless_reads_are_protected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("rollouts");
    write(&dir, &rolled_back());
    // A token on mutating calls only: reads stay open.
    let s = Server::start(Some(&dir), Auth::new(Some(Arc::from("s3cret"))), None).await;
    let anon = connect(&s.addr, None, None).await.expect("connect");
    anon.change.clone().get_rollout(pb::GetRolloutRequest { id: "r-1".into() }).await.expect("an open read");
    assert_eq!(anon.change.clone().list_rollouts(pb::ListRolloutsRequest {}).await.expect("an open read").into_inner().rollouts.len(), 1);
    s.stop().await;

    let s = Server::start(Some(&dir), Auth::new(Some(Arc::from("s3cret"))).protecting_reads(true), Some("s3cret")).await;
    let anon = connect(&s.addr, None, None).await.expect("connect");
    let e = anon.change.clone().get_rollout(pb::GetRolloutRequest { id: "r-1".into() }).await.expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    let e = anon.change.clone().list_rollouts(pb::ListRolloutsRequest {}).await.expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    let r = s.clients.change.clone().get_rollout(pb::GetRolloutRequest { id: "r-1".into() }).await.expect("with the token");
    assert_eq!(r.into_inner().id, "r-1");
    s.stop().await;
}
