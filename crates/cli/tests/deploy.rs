//! The deployment files of `deploy/`. The systemd unit: `systemd-analyze verify` accepts
//! it with no warning (unknown keys would be ignored silently by systemd), and its offline
//! security exposure stays "OK" (≤ 2.0); its `ExecStart` is pointed at the binary under
//! test, since verify checks that it exists. The Containerfile: see its test.

mod common;

use std::path::Path;
use std::process::Command;

const ANALYZE: &str = "/usr/bin/systemd-analyze";

fn unit_for_test(dir: &Path) -> std::path::PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/systemd/harbinger.service");
    let text = std::fs::read_to_string(&shipped).expect("read the shipped unit");
    assert!(text.contains("ExecStart=/usr/local/bin/harbinger "), "the unit runs /usr/local/bin/harbinger");
    let unit = dir.join("harbinger.service");
    std::fs::write(&unit, text.replace("/usr/local/bin/harbinger", env!("CARGO_BIN_EXE_harbinger"))).expect("write");
    unit
}

#[test]
fn the_systemd_unit_verifies_cleanly_and_is_hardened() {
    assert!(Path::new(ANALYZE).exists(), "{ANALYZE} not found: install the Debian package `systemd` (apt-get install systemd)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let unit = unit_for_test(tmp.path());
    let out = Command::new(ANALYZE).arg("verify").arg(&unit).output().expect("systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "verify: {}\n{stderr}", out.status);

    let out = Command::new(ANALYZE).args(["security", "--offline=yes"]).arg(&unit).output().expect("systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    let level: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the level in {line:?}"));
    assert!(level <= 2.0, "exposure {level} > 2.0: {line}");
}

/// The instructions of a Containerfile: (KEYWORD, arguments), continuation lines joined,
/// comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (k, rest) = cur.split_once(char::is_whitespace).unwrap_or((&cur, ""));
        out.push((k.to_uppercase(), rest.split_whitespace().collect::<Vec<_>>().join(" ")));
        cur.clear();
    }
    assert!(cur.is_empty(), "a continuation line ends the file");
    out
}

/// An exec-form (JSON array) argument list.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not an exec-form JSON array ({e}): {args}"))
}

/// `deploy/Containerfile` as far as this machine can check it without docker or podman:
/// the builder builds the `harbinger` binary of this package; the runtime stage is
/// debian:bookworm-slim with only ca-certificates, a non-root user owning the data volume;
/// and its command line, environment and health check, run here against the binary under
/// test (on free ports, in an empty working directory like the image's), serve and pass.
#[test]
fn the_containerfile_builds_this_binary_and_its_command_line_serves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("deploy/Containerfile")).expect("read deploy/Containerfile");
    let ins = instructions(&text);
    let all = |k: &str| ins.iter().filter(|(kk, _)| kk == k).map(|(_, v)| v.clone()).collect::<Vec<_>>();
    let froms = all("FROM");
    assert_eq!(froms, ["rust:1-bookworm AS build", "debian:bookworm-slim"], "two stages");
    let runtime_at = ins.iter().rposition(|(k, _)| k == "FROM").expect("a runtime stage");
    let (build, runtime) = ins.split_at(runtime_at);
    let in_stage = |stage: &[(String, String)], k: &str| stage.iter().filter(|(kk, _)| kk == k).map(|(_, v)| v.clone()).collect::<Vec<_>>();

    // The builder builds this package's binary.
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).expect("Cargo.toml");
    assert!(manifest.contains("name = \"harbinger-cli\"") && manifest.contains("[[bin]]\nname = \"harbinger\""), "{manifest}");
    assert_eq!(in_stage(build, "RUN"), ["cargo build --release -p harbinger-cli --locked"]);
    let bin_name = Path::new(env!("CARGO_BIN_EXE_harbinger")).file_name().expect("name").to_str().expect("utf-8");
    assert_eq!(in_stage(runtime, "COPY"), [format!("--from=build /src/target/release/{bin_name} /usr/local/bin/{bin_name}")]);
    assert_eq!(exec_form(&all("ENTRYPOINT")[0]), [bin_name], "the entrypoint is the binary, on the image's PATH");

    // Only ca-certificates; a non-root user owning the data directory, which is a volume
    // and the state directory harbinger uses (HARBINGER_DATA_DIR).
    let runs = in_stage(runtime, "RUN").join(" && ");
    let installs: Vec<&str> = runs
        .split("&&")
        .filter_map(|c| c.trim().strip_prefix("apt-get install"))
        .flat_map(str::split_whitespace)
        .filter(|w| !w.starts_with('-'))
        .collect();
    assert_eq!(installs, ["ca-certificates"], "{runs}");
    let user = in_stage(runtime, "USER");
    assert_eq!(user, ["10001:10001"]);
    assert!(runs.contains("useradd --system --uid 10001 --user-group"), "the user is made in the image: {runs}");
    let data_dir = "/var/lib/harbinger";
    assert!(runs.contains(&format!("chown harbinger:harbinger {data_dir}")), "{runs}");
    assert_eq!(in_stage(runtime, "ENV"), [format!("HARBINGER_DATA_DIR={data_dir}")]);
    assert_eq!(in_stage(runtime, "VOLUME"), [format!("[\"{data_dir}\"]")]);
    assert_eq!(in_stage(runtime, "WORKDIR"), [data_dir]);
    let user_at = runtime.iter().position(|(k, _)| k == "USER").expect("USER");
    assert!(runtime[..user_at].iter().all(|(k, _)| k != "CMD" && k != "ENTRYPOINT"), "USER comes before the command");

    // The command: the ports it listens on are the exposed ones.
    let cmd = exec_form(&all("CMD")[0]);
    assert_eq!(cmd, ["serve", "--http-addr", "0.0.0.0:8080", "--grpc-addr", "0.0.0.0:50051"]);
    assert_eq!(all("EXPOSE"), ["8080 50051"]);
    for a in [&cmd[2], &cmd[4]] {
        a.parse::<std::net::SocketAddr>().unwrap_or_else(|e| panic!("{a}: {e}"));
    }

    // That command line, run here: the image's environment (HARBINGER_DATA_DIR, no
    // config), an empty working directory, free ports of 127.0.0.1 for 0.0.0.0's.
    let tmp = tempfile::tempdir().expect("tempdir");
    let (work, data) = (tmp.path().join("work"), tmp.path().join("state"));
    std::fs::create_dir(&work).expect("mkdir");
    let mut run = Command::new(env!("CARGO_BIN_EXE_harbinger"));
    let args: Vec<String> = cmd.iter().map(|a| if a.starts_with("0.0.0.0:") { "127.0.0.1:0".to_string() } else { a.clone() }).collect();
    run.args(&args).current_dir(&work);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HARBINGER_") {
            run.env_remove(k);
        }
    }
    run.env("HARBINGER_DATA_DIR", &data);
    let s = common::Serve::spawn(run, false);
    assert!(
        data.is_dir() && std::fs::read_dir(&work).expect("ls").next().is_none(),
        "state goes to HARBINGER_DATA_DIR, nothing to the cwd"
    );
    let (code, body) = common::get(&format!("{}/readyz", s.url));
    assert_eq!(code, 200, "the built-in model is loaded: {body}");

    // The health check, as the image runs it (bash), pointed at this server's port.
    let hc = all("HEALTHCHECK");
    assert_eq!(hc.len(), 1);
    let probe = exec_form(hc[0].split_once("CMD ").expect("HEALTHCHECK ... CMD [...]").1);
    assert_eq!(&probe[..2], ["bash", "-c"]);
    assert!(probe[2].contains("/dev/tcp/127.0.0.1/8080") && probe[2].contains("GET /healthz"), "{probe:?}");
    let port = s.url.rsplit(':').next().expect("port").to_string();
    let check = |script: &str| Command::new(&probe[0]).arg(&probe[1]).arg(script).status().expect("bash").success();
    assert!(check(&probe[2].replace("/8080", &format!("/{port}"))), "the health check passes against a serving harbinger");
    assert_eq!(s.terminate(), 0);
    assert!(!check(&probe[2].replace("/8080", &format!("/{port}"))), "and fails once it is gone");
}
