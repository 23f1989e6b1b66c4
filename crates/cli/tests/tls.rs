//! gRPC over TLS end to end: `harbinger serve` with `grpc.tls_cert`/`grpc.tls_key` (a CA
//! and a server certificate generated at test time with rcgen), asked by `harbinger score
//! --ca-cert` and by the Python client with the CA as its root; a client without the CA,
//! or trusting another one, is refused.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Serve, remote_write, repo, run};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

/// A CA: (certificate, key).
fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("self-signed CA");
    (cert, key)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_str().expect("utf-8").to_string()
}

#[test]
fn score_and_the_python_client_reach_a_tls_server_through_the_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ca_cert, ca_key) = ca("harbinger test CA");
    let server_key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("params");
    let server_cert = params.signed_by(&server_key, &ca_cert, &ca_key).expect("signed");
    let ca_pem = write(tmp.path(), "ca.pem", &ca_cert.pem());
    let other_ca = write(tmp.path(), "other-ca.pem", &ca("another CA").0.pem());
    let cert = write(tmp.path(), "server.pem", &server_cert.pem());
    let key = write(tmp.path(), "server.key", &server_key.serialize_pem());
    let cfg = write(tmp.path(), "harbinger.toml", &format!("[grpc]\ntls_cert = {cert:?}\ntls_key = {key:?}\n"));

    let s = Serve::start(&tmp.path().join("data"), &["--config", &cfg]);
    assert_eq!(remote_write(&s.url, "tls-h1", "cpu_util", 30), 204, "HTTP stays plain");

    let (code, out, err) = run(&["score", "--addr", &s.grpc, "--ca-cert", &ca_pem, "--json", "tls-h1"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["risks"][0]["host"], "tls-h1", "{out}");
    assert!(v["risks"][0]["risk"].as_f64().is_some_and(|r| (0.0..=1.0).contains(&r)), "{out}");

    // Without the CA: plain HTTP/2 to a TLS port fails; another CA is not trusted.
    let (code, out, err) = run(&["score", "--addr", &s.grpc, "--timeout", "5s", "tls-h1"]);
    assert_ne!(code, 0, "plain HTTP/2 must not get an answer from a TLS port: {out}");
    assert!(err.starts_with("error: ") && !out.contains("tls-h1"), "{err}");
    let (code, out, err) = run(&["score", "--addr", &s.grpc, "--ca-cert", &other_ca, "--timeout", "5s", "tls-h1"]);
    assert_ne!(code, 0, "a certificate from another CA must not be trusted: {out}");
    assert!(err.contains(&s.grpc) && !out.contains("tls-h1"), "{err}");

    // The Python client, given the CA as its root certificate.
    let python = std::env::var("HARBINGER_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = r#"
import sys
sys.path.insert(0, sys.argv[1])
from harbinger_client import Client
with open(sys.argv[3], "rb") as f:
    ca = f.read()
with Client(sys.argv[2], root_certificates=ca) as c:
    r = c.score_hosts(["tls-h1"])
    print(r.risks[0].host, r.model_version)
"#;
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(repo().join("clients/python"))
        .args([&s.grpc, &ca_pem])
        .output()
        .expect("run python3 (scripts/test.sh installs grpcio and grpcio-tools)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Python client over TLS failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("tls-h1 "), "{stdout}");
    assert_eq!(s.terminate(), 0);
}
