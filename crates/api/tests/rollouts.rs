//! The rollout routes over a real socket, on rollout records written as JSON to a
//! temporary directory: `GET /api/v1/rollouts/{id}` (200 with the record, 404, 400 for an
//! id that cannot name a rollout), `GET /api/v1/rollouts` (newest first), 503 without a
//! rollouts directory, and the token when reads are protected.

use std::path::Path;
use std::sync::Arc;

use harbinger_api::{AppState, Telemetry};
use harbinger_core::Stores;
use harbinger_store::{Limits, MemoryStore};

struct Server {
    url: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    async fn start(rollouts_dir: Option<&Path>, token: Option<&str>) -> Self {
        let store = Arc::new(MemoryStore::new(Limits::default()));
        let mut state = AppState::new(Stores::from_backend(store), Arc::new(Telemetry::new()), 1 << 20);
        state.rollouts_dir = rollouts_dir.map(Path::to_path_buf);
        state.token = token.map(Arc::from);
        state.protect_reads = token.is_some();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(harbinger_api::serve(listener, state, async move {
            let _stop = rx.await;
        }));
        Self { url, client: reqwest::Client::new(), stop: Some(tx), task: Some(task) }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut rb = self.client.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            rb = rb.header("Authorization", format!("Bearer {t}"));
        }
        let r = rb.send().await.expect("send");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _sent = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("server ran cleanly");
        }
    }
}

use harbinger_plan::rollout::RolloutRecord;
use harbinger_testkit::rollouts::{progressing, rolled_back, write};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("JSON")
}

#[tokio::test]
async fn a_rollout_record_is_served_whole_and_listed_newest_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("rollouts");
    // Before the directory exists: no rollouts yet.
    let s = Server::start(Some(&dir), None).await;
    assert_eq!(s.get("/api/v1/rollouts", None).await, (200, "[]".to_string()));

    let r1 = rolled_back();
    write(&dir, &r1);
    write(&dir, &progressing());
    std::fs::write(dir.join("notes.txt"), "not a record").expect("notes");
    std::fs::write(dir.join("broken.json"), "{").expect("broken");

    let (code, body) = s.get("/api/v1/rollouts/r-1", None).await;
    assert_eq!(code, 200, "{body}");
    let back: RolloutRecord = serde_json::from_str(&body).expect("a rollout record");
    assert_eq!(back, r1, "the record comes back as it was written");
    let v = json(&body);
    assert_eq!(v["rollout"]["phase"], "rolled_back");
    assert_eq!(v["judgements"][0]["windows"][1]["canary"], serde_json::json!([0.2, 0.25, 0.2, 0.1, 0.3]));
    assert_eq!(v["judgements"][0]["judgement"]["metrics"][1]["deviation"], serde_json::Value::Null);
    assert_eq!(v["rollback_ms"], 12.5);

    let (code, body) = s.get("/api/v1/rollouts", None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        json(&body),
        serde_json::json!([
            {"id": "r-2", "created_ms": 1_700_000_100_000_i64, "updated_ms": 1_700_000_100_000_i64, "phase": "progressing",
             "share": 5, "judgements": 0, "decision": null},
            {"id": "r-1", "created_ms": 1_700_000_000_000_i64, "updated_ms": 1_700_000_004_000_i64, "phase": "rolled_back",
             "share": 0, "judgements": 1, "decision": "rolled_back"},
        ])
    );

    // A damaged record is left out of the list, but asking for it is a 500.
    let (code, body) = s.get("/api/v1/rollouts/broken", None).await;
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("the record of rollout \"broken\" is not valid"), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn unknown_and_bad_ids_are_404_and_400_and_no_directory_is_503() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("rollouts");
    write(&dir, &rolled_back());
    let s = Server::start(Some(&dir), None).await;
    assert_eq!(s.get("/api/v1/rollouts/r-9", None).await, (404, "no rollout \"r-9\"\n".to_string()));
    // `..%2Fx` is one path segment, `../x` once decoded.
    let (code, body) = s.get("/api/v1/rollouts/..%2Fx", None).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.starts_with("rollout id \"../x\": use 1 to 64 letters"), "{body}");
    let (code, body) = s.get("/api/v1/rollouts/.hidden", None).await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = s.get(&format!("/api/v1/rollouts/{}", "a".repeat(1_000)), None).await;
    assert_eq!(code, 400);
    assert!(body.contains(&format!("\"{}\"", "a".repeat(64))) && !body.contains(&"a".repeat(65)), "{body}");
    s.stop().await;

    let s = Server::start(None, None).await;
    for path in ["/api/v1/rollouts", "/api/v1/rollouts/r-1"] {
        assert_eq!(s.get(path, None).await, (503, "this server keeps no rollout records\n".to_string()), "{path}");
    }
    s.stop().await;
}

#[tokio::test]
async fn with_protect_reads_the_rollout_routes_need_the_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("rollouts");
    write(&dir, &rolled_back());
    let s = Server::start(Some(&dir), Some("s3cret")).await;
    for path in ["/api/v1/rollouts", "/api/v1/rollouts/r-1"] {
        assert_eq!(s.get(path, None).await.0, 401, "{path}");
        assert_eq!(s.get(path, Some("s3cret")).await.0, 200, "{path}");
    }
    s.stop().await;
}
