//! Helpers for end-to-end tests that run the `harbinger` binary. Every wait is bounded:
//! a command, a server's start-up, its exit and an HTTP call each have a deadline, so a
//! hang fails the test with a message instead of blocking it.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest one `harbinger` command of [`run`] may take (the slowest, `demo`, takes
/// about 15 s on 2 cores).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(240);
/// How long `serve` may take to print its two "listening on" lines.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest an HTTP call of [`get`] or [`post_json`] may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_harbinger"))
}

/// Runs `harbinger ARGS`, returning (exit code, stdout, stderr). The fixtures are recorded
/// history (2023), so retention (judged by the server's clock) is off unless a test sets it.
pub fn run(args: &[&str]) -> (i32, String, String) {
    run_env(args, &[("HARBINGER_STORE_RETENTION", "forever")])
}

/// Reads a pipe to its end on a thread; the bytes arrive on the returned channel.
fn drain(pipe: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _read = BufReader::new(pipe).read_to_end(&mut buf);
        let _sent = tx.send(buf);
    });
    rx
}

/// Waits for `child` until `deadline`; `None` if it is still running then.
pub fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`run`] with environment variables of the test's choosing (and no retention default).
/// Killed, and the test failed, after [`RUN_TIMEOUT`].
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("HARBINGER_CONFIG")
        .env_remove("HARBINGER_STORE_RETENTION")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run harbinger");
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let Some(status) = wait_until(&mut child, deadline) else {
        let _killed = child.kill();
        let _reaped = child.wait();
        let err = err.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
        panic!("harbinger {args:?} did not finish within {RUN_TIMEOUT:?}; stderr:\n{}", String::from_utf8_lossy(&err));
    };
    // The pipes close with the process (unless it left a child holding them).
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(5));
    let collect = |rx: Receiver<Vec<u8>>, what: &str| {
        rx.recv_timeout(left).unwrap_or_else(|e| panic!("harbinger {args:?} exited but its {what} stayed open: {e}"))
    };
    let (out, err) = (collect(out, "stdout"), collect(err, "stderr"));
    (status.code().unwrap_or(-1), String::from_utf8_lossy(&out).into(), String::from_utf8_lossy(&err).into())
}

/// A running `harbinger serve`, killed on drop if still running.
pub struct Serve {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT` of the gRPC server.
    pub grpc: String,
    /// Everything the server wrote to stderr so far, when started by [`Serve::spawn`]
    /// with `capture_stderr`.
    stderr: Option<Arc<Mutex<String>>>,
}

impl Serve {
    /// `harbinger --data-dir DATA serve` on free ports of 127.0.0.1, with `extra` flags,
    /// no `HARBINGER_CONFIG` and retention off.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::spawn(Self::command(data_dir, extra), false)
    }

    /// The command [`Serve::start`] runs, for a test to adjust (directory, environment)
    /// before [`Serve::spawn`].
    pub fn command(data_dir: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args([
            "--data-dir",
            data_dir.to_str().expect("utf-8 path"),
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env_remove("HARBINGER_CONFIG")
        .env("HARBINGER_STORE_RETENTION", "forever");
        cmd
    }

    /// Starts `cmd` (a `serve` command) and waits, at most [`START_TIMEOUT`], for its two
    /// "listening on" lines. With `capture_stderr`, its stderr is kept for
    /// [`Serve::stderr`] and [`Serve::wait_for_stderr`] (else it goes to the test's).
    pub fn spawn(mut cmd: Command, capture_stderr: bool) -> Self {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(if capture_stderr { Stdio::piped() } else { Stdio::inherit() });
        let mut child = cmd.spawn().expect("spawn harbinger serve");
        let stderr = capture_stderr.then(|| {
            let text = Arc::new(Mutex::new(String::new()));
            let (pipe, sink) = (child.stderr.take().expect("piped stderr"), text.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut t = sink.lock().expect("lock");
                    t.push_str(&line);
                    t.push('\n');
                }
            });
            text
        });
        // stdout is read on a thread to its end (a closed pipe would fail the server's
        // later writes); its lines come here.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _unread = tx.send(line); // once nobody listens, this only drains
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut next_line = |what: &str| -> String {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => line,
                Err(e) => {
                    let _killed = child.kill();
                    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                    let why = if e == RecvTimeoutError::Timeout {
                        format!("not within {START_TIMEOUT:?}")
                    } else {
                        format!("it exited ({status})")
                    };
                    panic!("harbinger serve printed no {what} line: {why}");
                }
            }
        };
        let line = next_line("first listening");
        let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}")).to_string();
        let line = next_line("second listening");
        let grpc =
            line.trim().strip_prefix("listening on grpc://").unwrap_or_else(|| panic!("unexpected second line {line:?}")).to_string();
        Self { child, url, grpc, stderr }
    }

    /// What the server wrote to stderr so far (with `capture_stderr`).
    pub fn stderr(&self) -> String {
        self.stderr.as_ref().expect("started with capture_stderr").lock().expect("lock").clone()
    }

    /// Waits, at most `timeout`, until the server's stderr holds `needle`; returns it all.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.stderr();
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "no {needle:?} on the server's stderr within {timeout:?}:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`, ...).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args([format!("-{name}").as_str(), &pid]).status().expect("kill").success();
        assert!(ok, "kill -{name} {pid}");
    }

    /// Waits, at most `timeout`, for the exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        match wait_until(&mut self.child, Instant::now() + timeout) {
            Some(st) => st.code().unwrap_or(-1),
            None => panic!("harbinger serve did not stop within {timeout:?}"),
        }
    }

    /// Sends SIGTERM and waits (at most 20 s) for the exit code.
    pub fn terminate(mut self) -> i32 {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(20))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Sends `rb` (of a client with [`HTTP_TIMEOUT`]) on a runtime of its own, returning
/// (status, body); (0, the error) when there is no answer.
fn send(rb: impl FnOnce(&reqwest::Client) -> reqwest::RequestBuilder) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let client = reqwest::Client::builder().timeout(HTTP_TIMEOUT).build().expect("client");
        match rb(&client).send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        }
    })
}

/// Blocking GET returning (status, body), bounded by [`HTTP_TIMEOUT`].
pub fn get(url: &str) -> (u16, String) {
    send(|c| c.get(url))
}

/// Blocking POST of a JSON body returning (status, body), bounded by [`HTTP_TIMEOUT`].
pub fn post_json(url: &str, body: &serde_json::Value) -> (u16, String) {
    send(|c| c.post(url).header("content-type", "application/json").body(body.to_string()))
}

/// Blocking POST of raw bytes with the given headers, returning (status, body), bounded
/// by [`HTTP_TIMEOUT`].
pub fn post(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String) {
    send(|c| headers.iter().fold(c.post(url).body(body), |rb, (k, v)| rb.header(*k, *v)))
}

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// Copies a model directory, giving the copy another version string.
pub fn copy_model(from: &Path, to: &Path, version: &str) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read model dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
    let path = to.join("model.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    m["version"] = serde_json::Value::String(version.into());
    let tmp = to.join("model.json.tmp");
    std::fs::write(&tmp, serde_json::to_string(&m).expect("json")).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis()).expect("ms")
}

/// Remote-writes `n` samples of `metric` for `host` (one a minute, ending now) to a
/// running server; returns the HTTP status.
pub fn remote_write(url: &str, host: &str, metric: &str, n: i64) -> u16 {
    use harbinger_ingest::remote_write::{encode, prompb};
    let now = now_ms();
    let body = encode(&prompb::WriteRequest {
        timeseries: vec![prompb::TimeSeries {
            labels: vec![
                prompb::Label { name: "__name__".into(), value: metric.into() },
                prompb::Label { name: "instance".into(), value: host.into() },
            ],
            samples: (0..n)
                .map(|i| prompb::Sample { timestamp: now - (n - 1 - i) * 60_000, value: 0.5 + (i % 10) as f64 / 100.0 })
                .collect(),
        }],
    });
    let headers = [("content-encoding", "snappy"), ("content-type", "application/x-protobuf")];
    let (code, body) = post(&format!("{url}/api/v1/write"), &headers, body);
    assert!(code != 0, "remote write to {url}: {body}");
    code
}

/// Writes a dataset with only an inventory: `hosts` as (id, zone, cpu_cores) with 64 GB
/// each, `resources` as (id, host, criticality, cpu_cores) needing 1 GB, one metric row
/// per host, no events.
pub fn write_inventory(dir: &Path, hosts: &[(&str, &str, f64)], resources: &[(String, String, u8, f64)]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut csv = String::from("host,zone,rack,cpu_cores,mem_gb\n");
    for (h, z, cpu) in hosts {
        csv.push_str(&format!("{h},{z},,{cpu},64\n"));
    }
    std::fs::write(dir.join("hosts.csv"), csv).expect("hosts.csv");
    let res: Vec<serde_json::Value> = resources
        .iter()
        .map(|(id, h, c, cpu)| {
            serde_json::json!({"id": id, "kind": "database", "host": h, "criticality": c, "cpu_cores": cpu, "mem_gb": 1.0,
                "depends_on": [], "state": {"config": {"max_connections": 100}}})
        })
        .collect();
    std::fs::write(dir.join("resources.json"), serde_json::to_vec_pretty(&res).expect("json")).expect("resources.json");
    let mut m = String::from("timestamp,host,metric,value\n");
    for (h, _, _) in hosts {
        m.push_str(&format!("1700000000000,{h},cpu_util,0.5\n"));
    }
    std::fs::write(dir.join("metrics.csv"), m).expect("metrics.csv");
    std::fs::write(dir.join("events.jsonl"), "").expect("events.jsonl");
}
