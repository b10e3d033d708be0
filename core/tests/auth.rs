//! Authentication and TLS against a real nats-server.

mod common;

use std::{path::PathBuf, time::Duration};

use common::*;
use jetstation::{Auth, Client, ConnectOptions, ErrorKind, StationConfig, Tls};

fn opts(url: String) -> ConnectOptions {
    ConnectOptions::new(url).request_timeout(Duration::from_secs(2))
}

#[tokio::test]
async fn nkey_authentication() {
    let user = nkeys::KeyPair::new_user();
    let server = NatsServer::builder()
        .config(&format!(
            "authorization {{\n  users: [ {{ nkey: {} }} ]\n}}",
            user.public_key()
        ))
        .start();
    init_tracing();
    let client = Client::connect(opts(server.url()).auth(Auth::NKey(user.seed().unwrap())))
        .await
        .unwrap();
    client
        .create_station("secure", StationConfig::default())
        .await
        .unwrap();
    let stranger = nkeys::KeyPair::new_user();
    let err = Client::connect(opts(server.url()).auth(Auth::NKey(stranger.seed().unwrap())))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
}

#[tokio::test]
async fn missing_creds_file_is_a_clear_error() {
    let server = NatsServer::start();
    init_tracing();
    let err =
        Client::connect(opts(server.url()).auth(Auth::CredsFile("/nonexistent/app.creds".into())))
            .await
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("/nonexistent/app.creds"), "{err}");
}

/// A CA and a server certificate for 127.0.0.1, written to `dir`.
fn certificates(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
    let (ca_path, cert_path, key_path) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server-key.pem"),
    );
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&cert_path, server_cert.pem()).unwrap();
    std::fs::write(&key_path, server_key.serialize_pem()).unwrap();
    (ca_path, cert_path, key_path)
}

#[tokio::test]
async fn tls_with_a_trusted_ca_and_a_clear_error_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let server = NatsServer::builder()
        .config(&format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}",
            cert.display(),
            key.display()
        ))
        .start();
    init_tracing();
    let tls = Tls {
        required: true,
        root_certificates: Some(ca),
        client_certificate: None,
    };
    let client = Client::connect(opts(server.url()).tls(tls)).await.unwrap();
    client
        .create_station("over-tls", StationConfig::default())
        .await
        .unwrap();

    let err = Client::connect(opts(server.url()).tls(Tls {
        required: true,
        ..Default::default()
    }))
    .await
    .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Connection),
        "an untrusted certificate is a connection error: {err:?}"
    );
    assert!(
        err.message().to_lowercase().contains("tls") || err.message().contains("certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn a_garbage_creds_file_and_tls_against_a_plain_server_are_typed_errors() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.creds");
    std::fs::write(&garbage, "this is not a creds file\n").unwrap();
    let mut o = opts(server.url());
    o.auth = Auth::from_parts(None, None, None, None, Some(garbage)).unwrap();
    let err = Client::connect(o).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");

    let mut o = opts(server.url()).connect_timeout(Duration::from_secs(2));
    o.tls.required = true;
    let err = Client::connect(o).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
}
