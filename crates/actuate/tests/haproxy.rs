//! The haproxy actuator against real HAProxy (Debian package `haproxy`) running the
//! shipped template `deploy/haproxy/haproxy.cfg.tmpl`, and with the redis actuator
//! (Debian package `redis-server`) for a Redis failover behind HAProxy's TCP backend; and
//! the `show stat` counters of a two-server HTTP backend in a config of its own.
//!
//! Every server runs on 127.0.0.1 on a port free at test time, in a temp dir, and is
//! killed at the end (a Drop guard); every wait polls with a deadline.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harbinger_actuate::haproxy::{ApiAddress, HaproxyActuator, HaproxyClient, HaproxyError, ServerState, ServerStats};
use harbinger_actuate::redis::{RedisActuator, RedisClient, RedisConfig, Reply};
use harbinger_core::shadow::{Shadow, ShadowState};
use harbinger_core::{JournalStatus, Resource};
use harbinger_engine::{Actuator, ActuatorOutcome, ActuatorRequest};
use harbinger_plan::ActionKind;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HAPROXY: &str = "/usr/sbin/haproxy";
const REDIS_SERVER: &str = "/usr/bin/redis-server";
const TIMEOUT: Duration = Duration::from_secs(3);

fn require(path: &str, package: &str) {
    assert!(Path::new(path).exists(), "{path} not found: install the Debian package `{package}` (apt-get install {package})");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn local(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Polls `f` until it answers `Some`, at most `bound`.
async fn until<T, F, Fut>(what: &str, bound: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + bound;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {bound:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A process group killed (SIGKILL) and reaped when dropped.
struct Proc(Child);

impl Proc {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// HAProxy running the shipped template.
struct Haproxy {
    _proc: Proc,
    socket: PathBuf,
    log: PathBuf,
}

impl Haproxy {
    fn client(&self) -> HaproxyClient {
        HaproxyClient::new(ApiAddress::Unix(self.socket.clone()), TIMEOUT)
    }

    fn actuator(&self) -> HaproxyActuator {
        HaproxyActuator::new(ApiAddress::Unix(self.socket.clone()), TIMEOUT)
    }

    async fn server(&self, backend: &str, server: &str) -> ServerState {
        self.client().server_state(backend, server).await.unwrap()
    }
}

/// The template with every `{{name}}` replaced; panics on a placeholder left over.
fn render(vars: &BTreeMap<&str, String>) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/haproxy/haproxy.cfg.tmpl");
    let mut text = std::fs::read_to_string(path).unwrap();
    for (k, v) in vars {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(!text.contains("{{"), "placeholder left in the rendered config:\n{text}");
    text
}

/// Renders the template into `dir` (the placeholders not given point at closed ports),
/// checks it with `haproxy -c` and runs it in the foreground until the API answers.
async fn start_haproxy(dir: &Path, given: &[(&'static str, String)]) -> Haproxy {
    let socket = dir.join("admin.sock");
    let mut vars: BTreeMap<&str, String> = BTreeMap::new();
    vars.insert("stats_socket", socket.display().to_string());
    vars.insert("http_check_path", "/".to_string());
    for k in ["http_bind", "http_primary", "redis_bind", "redis_primary"] {
        vars.insert(k, local(free_port()));
    }
    for k in ["http_shadow", "redis_shadow"] {
        vars.insert(k, "127.0.0.1:1".to_string());
    }
    for (k, v) in given {
        vars.insert(k, v.clone());
    }
    run_haproxy(dir, &render(&vars), socket).await
}

/// Writes `config` into `dir`, checks it with `haproxy -c` and runs it in the foreground
/// until its runtime API (at `socket`) answers.
async fn run_haproxy(dir: &Path, config: &str, socket: PathBuf) -> Haproxy {
    require(HAPROXY, "haproxy");
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, config).unwrap();
    let check = Command::new(HAPROXY).arg("-c").arg("-f").arg(&cfg).output().unwrap();
    assert!(check.status.success(), "haproxy -c: {}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    let log = dir.join("haproxy.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(HAPROXY)
        .arg("-f")
        .arg(&cfg)
        .arg("-db")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap();
    let h = Haproxy { _proc: Proc(child), socket, log };
    let client = h.client();
    until("haproxy's runtime API answers", Duration::from_secs(10), || async {
        client.command("show info").await.ok().filter(|a| a.contains("Name: HAProxy")).map(|_| ())
    })
    .await;
    h
}

/// A tiny server (HTTP, or a fake runtime API) run as a task; stopped when dropped.
struct HttpServer(tokio::task::JoinHandle<()>);

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An HTTP server answering `200 OK` and `name` to every request.
async fn http_server(name: &'static str) -> (HttpServer, u16) {
    http_server_with("200 OK", name).await
}

/// An HTTP server answering `status` (`500 Internal Server Error`) and `name` to every
/// request.
async fn http_server_with(status: &'static str, name: &'static str) -> (HttpServer, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let reply = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}", name.len());
                let _ = conn.write_all(reply.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (HttpServer(task), port)
}

/// The body of `GET /` at `addr`, or `None`.
async fn get(addr: &str) -> Option<String> {
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
        conn.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").await.ok()?;
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.ok()?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_string())
    };
    tokio::time::timeout(TIMEOUT, exchange).await.ok().flatten()
}

/// The status code of `GET /` at `addr`, or `None`.
async fn status_of(addr: &str) -> Option<u16> {
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
        conn.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").await.ok()?;
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.ok()?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    };
    tokio::time::timeout(TIMEOUT, exchange).await.ok().flatten()
}

fn resource(kind: &str, backend: &str, server: &str, endpoint: Option<&str>) -> Resource {
    let mut state = json!({"haproxy": {"backend": backend, "primary": server, "shadow": "shadow"}});
    if let Some(e) = endpoint {
        state["endpoint"] = json!(e);
    }
    serde_json::from_value(json!({"id": "svc-1", "kind": kind, "host": "h1", "criticality": 3, "state": state})).unwrap()
}

fn shadow(endpoint: Option<&str>) -> Shadow {
    serde_json::from_value(json!({
        "id": "svc-1@h2#1", "resource": "svc-1", "primary": "h1", "host": "h2", "state": "planned",
        "causes": [{"type": "manual", "by": "test"}], "priority": 1.0, "cpu_cores": 1.0, "mem_gb": 1.0,
        "created_at": 0, "updated_at": 0, "last_used_at": 0, "expires_at": null, "endpoint": endpoint,
    }))
    .unwrap()
}

fn request(kind: &str, shadow: &Shadow, resource: &Resource) -> ActuatorRequest {
    let id = shadow.id.clone();
    let action = match kind {
        "create" => ActionKind::CreateShadow { shadow: shadow.clone() },
        "promote" => ActionKind::PromoteShadow { shadow: id },
        "retire" => ActionKind::RetireShadow { shadow: id, state: ShadowState::Retired },
        "expire" => ActionKind::ExpireShadow { shadow: id },
        other => panic!("no action {other}"),
    };
    ActuatorRequest { key: format!("{kind}:{}", shadow.id), attempt: 1, action, shadow: shadow.clone(), resource: Some(resource.clone()) }
}

fn assert_status(out: &ActuatorOutcome, status: JournalStatus) {
    assert_eq!(out.status, status, "outcome: {out:?}");
}

/// The bodies of `n` requests through `addr`.
async fn bodies(addr: &str, n: usize) -> Vec<String> {
    let mut all = Vec::new();
    for _ in 0..n {
        all.push(get(addr).await.unwrap_or_else(|| "<no answer>".to_string()));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_traffic_moves_to_the_shadow_on_promotion() {
    let tmp = tempfile::tempdir().unwrap();
    let (_primary, primary_port) = http_server("primary").await;
    let (_shadow, shadow_port) = http_server("shadow").await;
    let front = local(free_port());
    let h = start_haproxy(tmp.path(), &[("http_bind", front.clone()), ("http_primary", local(primary_port))]).await;
    until("the primary answers through haproxy", Duration::from_secs(10), || async { get(&front).await.filter(|b| b == "primary") }).await;
    let act = h.actuator();
    let res = resource("service", "be_http", "primary", Some(&local(primary_port)));

    // Without an endpoint there is nothing to point the slot at.
    let out = act.apply(&request("create", &shadow(None), &res)).await;
    assert_status(&out, JournalStatus::Skipped);
    assert!(out.detail.contains("no endpoint"), "{}", out.detail);

    let sh = shadow(Some(&local(shadow_port)));
    let out = act.apply(&request("create", &sh, &res)).await;
    assert_status(&out, JournalStatus::Applied);
    let slot = h.server("be_http", "shadow").await;
    assert_eq!((slot.addr.as_str(), slot.port, slot.status()), ("127.0.0.1", shadow_port, "DRAIN"));
    assert_eq!(bodies(&front, 10).await, vec!["primary"; 10], "a passive slot takes no traffic");
    assert_status(&act.apply(&request("create", &sh, &res)).await, JournalStatus::AlreadyApplied);

    let out = act.apply(&request("promote", &sh, &res)).await;
    assert_status(&out, JournalStatus::Applied);
    assert!(out.detail.contains(" ms"), "the switch time: {}", out.detail);
    eprintln!("promote: {}", out.detail);
    assert_eq!(h.server("be_http", "shadow").await.status(), "UP");
    assert_eq!(h.server("be_http", "shadow").await.weight, 100);
    assert_eq!(h.server("be_http", "primary").await.status(), "MAINT");
    assert_eq!(bodies(&front, 10).await, vec!["shadow"; 10], "all traffic on the shadow");
    let out = act.apply(&request("promote", &sh, &res)).await;
    assert_status(&out, JournalStatus::AlreadyApplied);

    let out = act.apply(&request("retire", &sh, &res)).await;
    assert_status(&out, JournalStatus::Applied);
    assert_eq!(h.server("be_http", "shadow").await.status(), "MAINT");
    assert_status(&act.apply(&request("expire", &sh, &res)).await, JournalStatus::Applied);
    let _ = h.log;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_never_comes_up_leaves_traffic_on_the_primary() {
    let tmp = tempfile::tempdir().unwrap();
    let (_primary, primary_port) = http_server("primary").await;
    let front = local(free_port());
    let h = start_haproxy(tmp.path(), &[("http_bind", front.clone()), ("http_primary", local(primary_port))]).await;
    let mut act = h.actuator();
    act.timeout = Duration::from_secs(1);
    let res = resource("service", "be_http", "primary", None);
    let sh = shadow(Some(&local(free_port()))); // nothing listens there

    assert_status(&act.apply(&request("create", &sh, &res)).await, JournalStatus::Applied);
    let out = act.apply(&request("promote", &sh, &res)).await;
    assert_status(&out, JournalStatus::Failed);
    assert!(out.detail.contains("did not come up") && out.detail.contains("traffic left on be_http/primary"), "{}", out.detail);
    assert_eq!(h.server("be_http", "primary").await.status(), "UP");
    assert_eq!(h.server("be_http", "shadow").await.status(), "DRAIN");
    until("the primary answers through haproxy", Duration::from_secs(5), || async { get(&front).await.filter(|b| b == "primary") }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_backend_or_server_fails_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let h = start_haproxy(tmp.path(), &[]).await;
    let act = h.actuator();
    let sh = shadow(Some("127.0.0.1:7001"));

    let out = act.apply(&request("create", &sh, &resource("service", "be_nope", "primary", None))).await;
    assert_status(&out, JournalStatus::Failed);
    assert!(out.detail.contains("be_nope") && out.detail.contains("Can't find backend."), "{}", out.detail);
    let out = act.apply(&request("retire", &sh, &resource("service", "be_nope", "primary", None))).await;
    assert_status(&out, JournalStatus::Failed);
    assert!(out.detail.contains("set server be_nope/shadow state maint") && out.detail.contains("No such backend."), "{}", out.detail);
    let out = act.apply(&request("promote", &sh, &resource("service", "be_http", "nope", None))).await;
    assert_status(&out, JournalStatus::Failed);
    assert!(out.detail.contains("no server \"nope\" in backend \"be_http\""), "{}", out.detail);
    let err = h.client().set("set server be_http/nope state maint").await.unwrap_err();
    assert!(err.to_string().contains("No such server."), "{err}");

    // A name that would inject a second command is refused before sending.
    let out = act.apply(&request("retire", &sh, &resource("service", "be_http;shutdown", "primary", None))).await;
    assert_status(&out, JournalStatus::Failed);
    assert!(out.detail.contains("invalid haproxy backend name"), "{}", out.detail);
}

#[tokio::test]
async fn an_unreachable_or_silent_api_fails_within_the_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let res = resource("service", "be_http", "primary", None);
    let sh = shadow(None);

    let missing = tmp.path().join("no.sock");
    let act = HaproxyActuator::new(ApiAddress::Unix(missing.clone()), Duration::from_millis(500));
    let out = act.apply(&request("retire", &sh, &res)).await;
    assert_status(&out, JournalStatus::Failed);
    assert!(
        out.detail.contains(&missing.display().to_string()) && out.detail.contains("set server be_http/shadow state maint"),
        "{}",
        out.detail
    );

    // Accepts (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let act = HaproxyActuator::new(ApiAddress::Tcp(addr.clone()), Duration::from_millis(500));
    let start = Instant::now();
    let out = act.apply(&request("retire", &sh, &res)).await;
    let took = start.elapsed();
    assert_status(&out, JournalStatus::Failed);
    assert!(out.detail.contains(&format!("tcp:{addr}")) && out.detail.contains("no answer within 500ms"), "{}", out.detail);
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(3), "took {took:?}");
}

/// A `redis-server` on `port`, answering PING.
async fn start_redis(dir: &Path, port: u16) -> Proc {
    require(REDIS_SERVER, "redis-server");
    let child = Command::new(REDIS_SERVER)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--daemonize", "no", "--repl-diskless-sync-delay", "0", "--dir"])
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("primary.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let proc = Proc(child);
    let addr = local(port);
    until("redis answers PING", Duration::from_secs(10), || async {
        let mut c = RedisClient::connect(&addr, TIMEOUT).await.ok()?;
        (c.command(&["PING"]).await.ok()? == Reply::Status("PONG".into())).then_some(())
    })
    .await;
    proc
}

/// Through `front`: the role, the port of the server reached and its key count.
async fn through(front: &str) -> Option<(String, String, i64)> {
    let mut c = RedisClient::connect(front, TIMEOUT).await.ok()?;
    let role = c.role().await.ok()?;
    let port = c.info("server").await.ok()?.get("tcp_port")?.clone();
    let Reply::Integer(n) = c.command(&["DBSIZE"]).await.ok()? else { return None };
    Some((role, port, n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_failover_behind_the_shipped_haproxy_config() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let primary_addr = local(port);
    let mut primary = start_redis(tmp.path(), port).await;
    let mut c = RedisClient::connect(&primary_addr, TIMEOUT).await.unwrap();
    for i in 0..1000 {
        c.command(&["SET", &format!("key:{i}"), &format!("value:{i}")]).await.unwrap();
    }
    let front = local(free_port());
    let h = start_haproxy(tmp.path(), &[("redis_bind", front.clone()), ("redis_primary", primary_addr.clone())]).await;
    let (role, via, n) = until("the primary answers through haproxy", Duration::from_secs(10), || through(&front)).await;
    assert_eq!((role.as_str(), via, n), ("master", port.to_string(), 1000));

    let mut config = RedisConfig::new(tmp.path().join("shadows"));
    config.timeout = TIMEOUT;
    let redis = RedisActuator::new(config);
    let ha = h.actuator();
    let res = resource("redis", "be_redis", "primary", Some(&primary_addr));
    let mut sh = shadow(None);

    // The chain: redis provisions the replica, haproxy points the slot at its endpoint.
    let out = redis.apply(&request("create", &sh, &res)).await;
    assert_status(&out, JournalStatus::Applied);
    let endpoint = out.endpoint.expect("an endpoint");
    sh.endpoint = Some(endpoint.clone());
    assert_status(&ha.apply(&request("create", &sh, &res)).await, JournalStatus::Applied);
    until("the replica is in sync", Duration::from_secs(20), || async {
        (redis.sync_state(&sh, Some(&res)).await.ok()? == ShadowState::Ready).then_some(())
    })
    .await;

    primary.kill();
    until("haproxy sees the primary down", Duration::from_secs(10), || async {
        (h.server("be_redis", "primary").await.status() == "DOWN").then_some(())
    })
    .await;
    assert_status(&redis.apply(&request("promote", &sh, &res)).await, JournalStatus::Applied);
    let out = ha.apply(&request("promote", &sh, &res)).await;
    assert_status(&out, JournalStatus::Applied);
    eprintln!("promote: {}", out.detail);

    let replica_port = endpoint.rsplit_once(':').unwrap().1.to_string();
    let (role, via, n) = through(&front).await.expect("a connection through haproxy");
    assert_eq!((role.as_str(), via, n), ("master", replica_port, 1000));
    let mut c = RedisClient::connect(&front, TIMEOUT).await.unwrap();
    assert_eq!(c.command(&["GET", "key:123"]).await.unwrap(), Reply::Bulk(Some(b"value:123".to_vec())));
    assert_eq!(c.command(&["SET", "after", "failover"]).await.unwrap(), Reply::Status("OK".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_armed_slot_must_be_a_backup_and_is_made_ready_at_creation() {
    let tmp = tempfile::tempdir().unwrap();
    let h = start_haproxy(tmp.path(), &[]).await;
    let act = h.actuator();
    let sh = shadow(Some("127.0.0.1:7001"));
    let armed = |backend: &str| {
        let mut r = resource("service", backend, "primary", None);
        r.state["haproxy"]["armed"] = json!(true);
        r
    };
    // be_http's slot is declared `backup`: ready (a backup takes traffic only once the
    // primary is out), and creating it again changes nothing.
    assert!(h.client().is_backup("be_http", "shadow").await.unwrap());
    let out = act.apply(&request("create", &sh, &armed("be_http"))).await;
    assert_status(&out, JournalStatus::Applied);
    assert!(out.detail.contains("armed"), "{}", out.detail);
    let slot = h.client().server_state("be_http", "shadow").await.unwrap();
    assert!(!slot.draining() && !slot.in_maint() && slot.address() == "127.0.0.1:7001", "{slot}");
    let out = act.apply(&request("create", &sh, &armed("be_http"))).await;
    assert_status(&out, JournalStatus::AlreadyApplied);
    // be_redis's slot is not a backup: arming it would put a replica in the rotation.
    assert!(!h.client().is_backup("be_redis", "shadow").await.unwrap());
    let out = act.apply(&request("create", &sh, &armed("be_redis"))).await;
    assert_status(&out, JournalStatus::Failed);
    assert!(out.detail.contains("not declared `backup`") && out.detail.contains("(not retryable)"), "{}", out.detail);
    assert!(h.client().server_state("be_redis", "shadow").await.unwrap().in_maint(), "left untouched");
    // A malformed flag names the field.
    let mut bad = resource("service", "be_http", "primary", None);
    bad.state["haproxy"]["armed"] = json!("yes");
    let out = act.apply(&request("create", &sh, &bad)).await;
    assert_status(&out, JournalStatus::Failed);
    assert!(out.detail.contains("state.haproxy.armed must be true or false"), "{}", out.detail);
}

/// HAProxy with one HTTP backend of two round-robin servers, `ok` and `err`, and the
/// frontend's address. No `retry-on`: a 500 stays on the server that answered it.
async fn start_stats_haproxy(dir: &Path, ok_port: u16, err_port: u16) -> (Haproxy, String) {
    let socket = dir.join("admin.sock");
    let front = local(free_port());
    let config = format!(
        "global
    stats socket {socket} mode 600 level admin
defaults
    mode http
    timeout connect 500ms
    timeout client 5s
    timeout server 5s
frontend fe_stats
    bind {front}
    default_backend be_stats
backend be_stats
    balance roundrobin
    server ok {ok}
    server err {err}
",
        socket = socket.display(),
        ok = local(ok_port),
        err = local(err_port),
    );
    (run_haproxy(dir, &config, socket).await, front)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stats_count_each_servers_responses() {
    const N: u64 = 20;
    let tmp = tempfile::tempdir().unwrap();
    let (_ok, ok_port) = http_server_with("200 OK", "ok").await;
    let (_err, err_port) = http_server_with("500 Internal Server Error", "err").await;
    let (h, front) = start_stats_haproxy(tmp.path(), ok_port, err_port).await;
    let client = h.client();

    let before = client.server_stats("be_stats").await.unwrap();
    assert_eq!(before.iter().map(|s| s.server.as_str()).collect::<Vec<_>>(), ["ok", "err"], "servers only, in order: {before:?}");
    for s in &before {
        assert_eq!((s.proxy.as_str(), s.sessions_total, s.requests_total, s.hrsp_2xx, s.hrsp_5xx), ("be_stats", 0, 0, 0, 0), "{s:?}");
        assert_eq!((s.weight, s.status.as_str()), (Some(1), "no check"), "{s:?}");
    }

    let mut seen: BTreeMap<u16, u64> = BTreeMap::new();
    for _ in 0..N {
        let status = status_of(&front).await.expect("an answer through haproxy");
        *seen.entry(status).or_default() += 1;
    }
    assert_eq!(seen, BTreeMap::from([(200, N / 2), (500, N / 2)]), "round robin over a 200 and a 500 server");

    let stats: Vec<ServerStats> = until("the servers' counters account for every request", Duration::from_secs(5), || async {
        let stats = client.server_stats("be_stats").await.ok()?;
        (stats.iter().map(|s| s.requests_total).sum::<u64>() == N).then_some(stats)
    })
    .await;
    let [ok, err] = stats.as_slice() else { panic!("two servers: {stats:?}") };
    assert_eq!(ok.server, "ok");
    assert_eq!((ok.hrsp_2xx, ok.hrsp_5xx, ok.requests_total, ok.sessions_total), (N / 2, 0, N / 2, N / 2), "{ok:?}");
    assert_eq!(err.server, "err");
    assert_eq!((err.hrsp_2xx, err.hrsp_5xx, err.requests_total, err.sessions_total), (0, N / 2, N / 2, N / 2), "{err:?}");
    assert_eq!(ok.hrsp_2xx + err.hrsp_5xx, N);
    for s in [ok, err] {
        assert_eq!((s.hrsp_1xx, s.hrsp_3xx, s.hrsp_4xx, s.hrsp_other), (0, 0, 0, 0), "{s:?}");
        assert_eq!((s.econ, s.eresp, s.wretr, s.wredis), (0, 0, 0, 0), "{s:?}");
        assert!(s.qtime_ms.is_some() && s.ctime_ms.is_some() && s.rtime_ms.is_some() && s.ttime_ms.is_some(), "{s:?}");
    }

    let backend = client.backend_stats("be_stats").await.unwrap();
    assert_eq!((backend.proxy.as_str(), backend.server.as_str()), ("be_stats", "BACKEND"));
    assert_eq!((backend.requests_total, backend.hrsp_2xx, backend.hrsp_5xx, backend.weight), (N, N / 2, N / 2, Some(2)), "{backend:?}");
    let json = serde_json::to_value(&backend).unwrap();
    assert_eq!((json["requests_total"].as_u64(), json["status"].as_str()), (Some(N), Some("UP")), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stats_of_an_unknown_backend_or_a_frontend() {
    let tmp = tempfile::tempdir().unwrap();
    let (h, _front) = start_stats_haproxy(tmp.path(), free_port(), free_port()).await;
    let client = h.client();

    let err = client.server_stats("be_nope").await.unwrap_err();
    assert!(matches!(&err, HaproxyError::Refused { answer, .. } if answer == "No such proxy."), "{err}");
    assert!(err.to_string().contains("`show stat be_nope 4 -1` refused: No such proxy."), "{err}");
    // A frontend has no servers, and no BACKEND row.
    assert_eq!(client.server_stats("fe_stats").await.unwrap(), Vec::new());
    let err = client.backend_stats("fe_stats").await.unwrap_err();
    assert!(err.to_string().ends_with("`show stat fe_stats 2 -1`: no BACKEND row: \"fe_stats\" is not a backend"), "{err}");
    let err = client.server_stats("be_stats;shutdown").await.unwrap_err();
    assert!(matches!(err, HaproxyError::InvalidName { what: "backend", .. }), "{err}");
}

/// A fake runtime API on TCP that answers `answer` to any command.
async fn fake_api(answer: String) -> (HttpServer, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer: std::sync::Arc<str> = answer.into();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { continue };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 256];
                while !buf.contains(&b'\n') {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (HttpServer(task), port)
}

/// A header with every column [`ServerStats`] needs, in HAProxy 2.6's order.
const HEADER: &str = "# pxname,svname,scur,stot,econ,eresp,wretr,wredis,status,weight,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,req_tot,qtime,ctime,rtime,ttime,\n";

#[tokio::test]
async fn a_malformed_show_stat_answer_names_the_line_row_and_field() {
    let cases = [
        (
            format!("{HEADER}be_x,s1,0,many,0,0,0,0,UP,1,0,0,0,0,0,0,0,0,0,0,0,\n"),
            2,
            Some("be_x/s1"),
            Some("stot"),
            "malformed answer at line 2: row be_x/s1: field `stot` is \"many\", not a non-negative integer",
        ),
        (
            format!("{HEADER}be_x,s1,0,3,0,0,0,0,UP,1,0,0,0,0,0,0,3,0,0,0,0,\nbe_x,s2,0,3,\n"),
            3,
            Some("be_x/s2"),
            None,
            "malformed answer at line 3: row be_x/s2 has 5 fields, the header 22: \"be_x,s2,0,3,\"",
        ),
        (
            "# pxname,svname,scur,econ\nbe_x,s1,0,0\n".to_string(),
            1,
            None,
            Some("stot"),
            "malformed answer at line 1: the header has no `stot` column",
        ),
        (
            "be_x,s1,0,3\n".to_string(),
            1,
            None,
            None,
            "malformed answer at line 1: no `# pxname,svname,...` header line: the answer starts with \"be_x,s1,0,3\"",
        ),
    ];
    for (answer, want_line, want_row, want_field, want) in cases {
        let (_api, port) = fake_api(answer.clone()).await;
        let client = HaproxyClient::new(ApiAddress::Tcp(local(port)), TIMEOUT);
        let err = client.server_stats("be_x").await.unwrap_err();
        assert_eq!(err.to_string(), format!("haproxy runtime API tcp:127.0.0.1:{port}: `show stat be_x 4 -1`: {want}"));
        let HaproxyError::MalformedStat { line, row, field, .. } = err else { panic!("{err:?}") };
        assert_eq!((line, row.as_deref(), field), (want_line, want_row, want_field), "{answer}");
    }
}
