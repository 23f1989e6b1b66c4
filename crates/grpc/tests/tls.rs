//! gRPC over TLS end to end, with a CA and a server certificate generated at test time
//! (rcgen): a client trusting the CA is served; a client trusting another CA, or speaking
//! plain HTTP/2, is refused.

use std::sync::Arc;

use harbinger_core::Stores;
use harbinger_grpc::client::connect;
use harbinger_grpc::{GrpcState, pb};
use harbinger_store::MemoryStore;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tonic::transport::Identity;

/// A CA: (certificate, key, PEM).
fn ca() -> (rcgen::Certificate, KeyPair, String) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "harbinger test CA");
    let cert = params.self_signed(&key).expect("self-signed CA");
    let pem = cert.pem();
    (cert, key, pem)
}

#[tokio::test]
async fn tls_serves_clients_that_trust_the_ca_and_refuses_others() {
    let (ca_cert, ca_key, ca_pem) = ca();
    let server_key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("params");
    let server_cert = params.signed_by(&server_key, &ca_cert, &ca_key).expect("signed");
    let identity = Identity::from_pem(server_cert.pem(), server_key.serialize_pem());

    let stores = Stores::from_backend(Arc::new(MemoryStore::default()));
    let state = GrpcState::new(stores, None, Arc::new(harbinger_api::Telemetry::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(harbinger_grpc::serve(listener, state, Some(identity), async move {
        let _stop = rx.await;
    }));

    let c = connect(&addr, None, Some(ca_pem.clone().into_bytes())).await.expect("TLS connect");
    c.admin.clone().ping(pb::PingRequest {}).await.expect("Ping over TLS");

    let (_, _, other_pem) = ca();
    let untrusted = match connect(&addr, None, Some(other_pem.into_bytes())).await {
        Ok(c) => c.admin.clone().ping(pb::PingRequest {}).await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(untrusted.is_err(), "a client trusting another CA must not get through");

    let plain = match connect(&addr, None, None).await {
        Ok(c) => c.admin.clone().ping(pb::PingRequest {}).await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(plain.is_err(), "plain HTTP/2 to a TLS port must fail");

    let _sent = tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(20), task).await.expect("stops").expect("join").expect("served");
}
