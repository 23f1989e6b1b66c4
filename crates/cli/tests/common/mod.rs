//! Helpers for end-to-end tests that run the `harbinger` binary.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_harbinger"))
}

/// Runs `harbinger ARGS`, returning (exit code, stdout, stderr). The fixtures are recorded
/// history (2023), so retention (judged by the server's clock) is off unless a test sets it.
pub fn run(args: &[&str]) -> (i32, String, String) {
    run_env(args, &[("HARBINGER_STORE_RETENTION", "forever")])
}

/// [`run`] with environment variables of the test's choosing (and no retention default).
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env_remove("HARBINGER_CONFIG")
        .env_remove("HARBINGER_STORE_RETENTION")
        .envs(env.iter().copied())
        .output()
        .expect("run harbinger");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// A running `harbinger serve`, killed on drop if still running.
pub struct Serve {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT` of the gRPC server.
    pub grpc: String,
}

impl Serve {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(bin())
            .args([
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
            .env("HARBINGER_STORE_RETENTION", "forever")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn harbinger serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut out = BufReader::new(stdout);
        let mut line = String::new();
        out.read_line(&mut line).expect("read the listening line");
        let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}")).to_string();
        let mut line = String::new();
        out.read_line(&mut line).expect("read the second listening line");
        let grpc =
            line.trim().strip_prefix("listening on grpc://").unwrap_or_else(|| panic!("unexpected second line {line:?}")).to_string();
        Self { child, url, grpc }
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(mut self) -> i32 {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success();
        assert!(ok, "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "harbinger did not stop within 20 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
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

/// Blocking GET returning (status, body).
pub fn get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        match reqwest::get(url).await {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        }
    })
}

/// Blocking POST of a JSON body returning (status, body).
pub fn post_json(url: &str, body: &serde_json::Value) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        match reqwest::Client::new().post(url).header("content-type", "application/json").body(body.to_string()).send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        }
    })
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
