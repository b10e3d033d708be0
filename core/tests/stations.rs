//! Client and station management against a real nats-server.

mod common;

use std::time::Duration;

use common::*;
use jetstation::{Client, ConnectOptions, ErrorKind, StationConfig, Storage};

#[tokio::test]
async fn station_lifecycle_create_get_list_update_delete() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let config = StationConfig::default()
        .partitions(3)
        .storage(Storage::Memory)
        .max_age(Duration::from_secs(3600))
        .max_messages(3000)
        .max_deliveries(4);
    let created = client
        .create_station("employees", config.clone())
        .await
        .unwrap();
    assert_eq!(created.config, config);
    assert_eq!(created.messages, 0);

    // Same settings again: a no-op.
    client
        .create_station("employees", config.clone())
        .await
        .unwrap();
    client
        .create_station("payroll", StationConfig::default())
        .await
        .unwrap();

    let names: Vec<String> = client
        .stations()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec!["employees", "payroll"]);

    let updated = client
        .update_station(
            "employees",
            config.clone().max_deliveries(7).max_messages(6000),
        )
        .await
        .unwrap();
    assert_eq!(updated.config.max_deliveries, 7);
    assert_eq!(updated.config.max_messages, Some(6000));
    assert_eq!(
        client
            .station("employees")
            .await
            .unwrap()
            .config
            .max_deliveries,
        7
    );

    client.delete_station("employees").await.unwrap();
    let err = client.station("employees").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let names: Vec<String> = client
        .stations()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec!["payroll"]);
}

#[tokio::test]
async fn recreating_with_other_settings_is_refused_and_changes_nothing() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("hr", StationConfig::default().partitions(2))
        .await
        .unwrap();
    let err = client
        .create_station(
            "hr",
            StationConfig::default().partitions(4).max_deliveries(9),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(
        err.message()
            .contains("partitions: existing 2, requested 4"),
        "{err}"
    );
    assert!(err.message().contains("max_deliveries"), "{err}");
    assert!(err.message().contains("update_station"), "{err}");
    let station = client.station("hr").await.unwrap();
    assert_eq!(station.config.partitions, 2);
    assert_eq!(station.config.max_deliveries, 5);

    let err = client
        .update_station("hr", StationConfig::default().partitions(4))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("partitions"), "{err}");
}

#[tokio::test]
async fn invalid_names_and_settings_are_refused_before_anything_is_created() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    for bad in ["", "has space", "dot.ted", "a__b", "-x"] {
        let err = client
            .create_station(bad, StationConfig::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        assert!(err.message().contains("invalid station name"), "{err}");
    }
    for bad in [
        StationConfig::default().partitions(0),
        StationConfig::default().replicas(7),
        StationConfig::default().max_deliveries(0),
        StationConfig::default()
            .max_age(Duration::from_secs(10))
            .dedup_window(Duration::from_secs(60)),
    ] {
        let err = client.create_station("ok-name", bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    }
    assert!(client.stations().await.unwrap().is_empty());
    let err = client.delete_station("missing").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("create_station"), "{err}");
}

#[tokio::test]
async fn namespaces_isolate_stations() {
    let server = NatsServer::start();
    init_tracing();
    let a = Client::connect(options(&server).namespace("tenant-a"))
        .await
        .unwrap();
    let b = Client::connect(options(&server).namespace("tenant-b"))
        .await
        .unwrap();
    let plain = connect(&server).await;
    a.create_station("employees", StationConfig::default())
        .await
        .unwrap();
    b.create_station("employees", StationConfig::default().partitions(2))
        .await
        .unwrap();
    assert_eq!(a.station("employees").await.unwrap().config.partitions, 1);
    assert_eq!(b.station("employees").await.unwrap().config.partitions, 2);
    assert!(plain.stations().await.unwrap().is_empty());
    assert_eq!(a.stations().await.unwrap().len(), 1);
    let err = Client::connect(options(&server).namespace("bad.ns"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn wrong_credentials_are_an_auth_error() {
    let server = NatsServer::builder()
        .config("authorization {\n  users: [ { user: app, password: s3cret } ]\n}")
        .start();
    init_tracing();
    let ok = Client::connect(options(&server).user_password("app", "s3cret")).await;
    assert!(ok.is_ok(), "{ok:?}");
    let err = Client::connect(options(&server).user_password("app", "wrong"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(err.message().contains("refused the credentials"), "{err}");

    let token_server = NatsServer::builder()
        .config("authorization { token: t0ken }")
        .start();
    assert!(
        Client::connect(options(&token_server).token("t0ken"))
            .await
            .is_ok()
    );
    let err = Client::connect(options(&token_server).token("nope"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
}

#[tokio::test]
async fn unreachable_server_is_a_connection_error() {
    init_tracing();
    let port = jetstation_harness::free_port();
    let err = Client::connect(ConnectOptions::new(format!("nats://127.0.0.1:{port}")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(err.message().contains("nats-server is running"), "{err}");
}

#[tokio::test]
async fn server_older_than_2_12_is_refused_naming_both_versions() {
    // Debian's nats-server package (2.9.10), installed by scripts/setup.sh;
    // the version matrix runs it against 2.10 and 2.11 too.
    let old =
        std::env::var("NATS_SERVER_OLD_BIN").unwrap_or_else(|_| "/usr/sbin/nats-server".into());
    assert!(
        std::path::Path::new(&old).exists(),
        "{old} missing: run scripts/setup.sh (installs Debian's nats-server 2.9)"
    );
    // `nats-server: v2.9.10`: the version the error must name.
    let printed = std::process::Command::new(&old)
        .arg("--version")
        .output()
        .expect("run the old server");
    let version = String::from_utf8_lossy(&printed.stdout)
        .trim()
        .rsplit('v')
        .next()
        .unwrap_or_default()
        .to_string();
    let server = NatsServer::builder().binary(&old).start();
    init_tracing();
    let err = Client::connect(options(&server)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServerTooOld);
    assert!(
        !version.is_empty() && err.message().contains(&version),
        "{version}: {err}"
    );
    assert!(err.message().contains("2.12.0"), "{err}");
}

#[tokio::test]
async fn server_without_jetstream_is_a_clear_connection_error() {
    let server = NatsServer::builder().without_jetstream().start();
    init_tracing();
    let err = Client::connect(options(&server)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(err.message().contains("-js"), "{err}");
}

#[tokio::test]
async fn replicated_station_on_a_three_node_cluster() {
    let cluster = Cluster::start(3);
    let client = connect_cluster(&cluster).await;
    let s = client
        .create_station(
            "replicated",
            StationConfig::default().replicas(3).partitions(2),
        )
        .await
        .unwrap();
    assert_eq!(s.config.replicas, 3);
}

#[tokio::test]
async fn bad_urls_and_calls_after_close_are_typed_errors() {
    for url in ["", "   ", "nats://127.0.0.1:notaport"] {
        let err = Client::connect(ConnectOptions::new(url)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{url:?}: {err}");
    }
    let server = NatsServer::start();
    let client = connect(&server).await;
    let other = client.clone();
    client.close().await.unwrap();
    let err = other.station("anything").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    let err = other
        .create_station("s", StationConfig::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
}
