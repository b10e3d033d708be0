//! The gateway through a tonic client, against a real nats-server.

use std::{collections::HashMap, time::Duration};

use jetstation_gateway::{Config, Gateway, pb};
use jetstation_harness::NatsServer;
use tokio_stream::StreamExt;
use tonic::{Code, Request, metadata::MetadataValue, transport::Channel};
use tonic_types::StatusExt;

struct Running {
    server: NatsServer,
    addr: String,
    stop: tokio::sync::watch::Sender<bool>,
}

async fn start() -> Running {
    start_with(NatsServer::start(), 64 << 20).await
}

async fn start_with(server: NatsServer, producer_buffer_bytes: usize) -> Running {
    let tokens = HashMap::from([
        ("ta".to_string(), "tenant-a".to_string()),
        ("tb".to_string(), "tenant-b".to_string()),
    ]);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let gateway = Gateway::new(
        Config {
            nats: jetstation::ConnectOptions::new(server.url())
                .request_timeout(Duration::from_secs(3)),
            tokens,
            max_credit: 1024,
            producer_buffer_bytes,
        },
        shutdown,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let router = gateway.router(tonic::transport::Server::builder()).unwrap();
    tokio::spawn(router.serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)));
    Running { server, addr, stop }
}

/// Creates a station in tenant-a's namespace; panics on failure.
async fn create(
    stations: &mut pb::stations_client::StationsClient<Channel>,
    request: pb::CreateStationRequest,
) -> pb::Station {
    stations
        .create_station(authed("ta", request))
        .await
        .unwrap()
        .into_inner()
}

fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    r
}

async fn channel(addr: &str) -> Channel {
    Channel::from_shared(addr.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn reason(s: &tonic::Status) -> String {
    s.get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

#[tokio::test]
async fn stations_and_error_statuses() {
    let g = start().await;
    let mut stations = pb::stations_client::StationsClient::new(channel(&g.addr).await);
    let created = stations
        .create_station(authed(
            "ta",
            pb::CreateStationRequest {
                name: "hr".into(),
                config: Some(pb::StationConfig {
                    partitions: 2,
                    ..Default::default()
                }),
                update: false,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.config.unwrap().partitions, 2);
    let list = stations
        .list_stations(authed("ta", pb::ListStationsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.stations.len(), 1);

    let e = stations
        .get_station(authed(
            "ta",
            pb::GetStationRequest {
                name: "nope".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), reason(&e).as_str()),
        (Code::NotFound, "not_found")
    );
    let e = stations
        .create_station(authed(
            "ta",
            pb::CreateStationRequest {
                name: "hr".into(),
                config: Some(pb::StationConfig {
                    partitions: 3,
                    ..Default::default()
                }),
                update: false,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), reason(&e).as_str()),
        (Code::AlreadyExists, "already_exists")
    );
    let e = stations
        .create_station(authed(
            "ta",
            pb::CreateStationRequest {
                name: "bad name".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), reason(&e).as_str()),
        (Code::InvalidArgument, "invalid_argument")
    );
    let e = stations
        .list_stations(authed("nobody", pb::ListStationsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = stations
        .list_stations(Request::new(pb::ListStationsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_token_only_reaches_its_own_namespace() {
    let g = start().await;
    let ch = channel(&g.addr).await;
    let mut stations = pb::stations_client::StationsClient::new(ch.clone());
    let mut producer = pb::producer_client::ProducerClient::new(ch.clone());
    let mut consumer = pb::consumer_client::ConsumerClient::new(ch);
    create(
        &mut stations,
        pb::CreateStationRequest {
            name: "private".into(),
            ..Default::default()
        },
    )
    .await;
    let seen_by_b = stations
        .list_stations(authed("tb", pb::ListStationsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(seen_by_b.stations.is_empty());
    let e = producer
        .send(authed(
            "tb",
            pb::SendRequest {
                station: "private".into(),
                message: Some(pb::OutgoingMessage {
                    payload: b"x".to_vec(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let join = pb::ConsumeRequest {
        request: Some(pb::consume_request::Request::Join(pb::Join {
            station: "private".into(),
            group: "g".into(),
            credit: 10,
            ..Default::default()
        })),
    };
    let mut responses = consumer
        .consume(authed("tb", tokio_stream::iter(vec![join])))
        .await
        .unwrap()
        .into_inner();
    let e = responses.next().await.unwrap().unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

/// Joins a group; returns the sender of requests and the message stream.
async fn join(
    addr: &str,
    station: &str,
    credit: u32,
) -> (
    tokio::sync::mpsc::Sender<pb::ConsumeRequest>,
    tonic::Streaming<pb::ConsumeResponse>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tx.send(pb::ConsumeRequest {
        request: Some(pb::consume_request::Request::Join(pb::Join {
            station: station.into(),
            group: "workers".into(),
            credit,
            ack_wait: Some(prost_duration(2)),
            handover_timeout: Some(prost_duration(2)),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut consumer = pb::consumer_client::ConsumerClient::new(channel(addr).await);
    let mut stream = consumer
        .consume(authed(
            "ta",
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(
        first.response,
        Some(pb::consume_response::Response::Joined(_))
    ));
    (tx, stream)
}

fn prost_duration(seconds: i64) -> prost_types::Duration {
    prost_types::Duration { seconds, nanos: 0 }
}

fn settle(id: u64) -> pb::ConsumeRequest {
    pb::ConsumeRequest {
        request: Some(pb::consume_request::Request::Settle(pb::Settle {
            delivery_id: id,
            outcome: pb::settle::Outcome::Ack as i32,
            ..Default::default()
        })),
    }
}

async fn produce(addr: &str, station: &str, keys: usize, per_key: usize) {
    let mut producer = pb::producer_client::ProducerClient::new(channel(addr).await);
    let mut requests = Vec::new();
    for i in 0..per_key {
        for k in 0..keys {
            requests.push(pb::SendRequest {
                station: station.into(),
                message: Some(pb::OutgoingMessage {
                    payload: format!("k{k}:{i}").into_bytes(),
                    key: format!("k{k}"),
                    ..Default::default()
                }),
            });
        }
    }
    let total = requests.len();
    let mut results = producer
        .send_stream(authed("ta", tokio_stream::iter(requests)))
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(r) = results.next().await {
        assert!(matches!(
            r.unwrap().result,
            Some(pb::send_result::Result::Receipt(_))
        ));
        n += 1;
    }
    assert_eq!(n, total);
}

#[tokio::test]
async fn produce_stream_and_consume_stream_keep_order_per_key() {
    let g = start().await;
    let mut stations = pb::stations_client::StationsClient::new(channel(&g.addr).await);
    create(
        &mut stations,
        pb::CreateStationRequest {
            name: "bulk".into(),
            config: Some(pb::StationConfig {
                partitions: 3,
                ..Default::default()
            }),
            update: false,
        },
    )
    .await;
    produce(&g.addr, "bulk", 50, 40).await;
    let (tx, mut stream) = join(&g.addr, "bulk", 64).await;
    let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
    let mut outstanding = 0usize;
    while seen.values().map(Vec::len).sum::<usize>() < 2000 {
        let r = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Some(pb::consume_response::Response::Message(m)) = r.response else {
            panic!("not a message")
        };
        outstanding += 1;
        assert!(outstanding <= 64, "more unsettled messages than the credit");
        let text = String::from_utf8(m.payload).unwrap();
        let (k, i) = text.split_once(':').unwrap();
        seen.entry(k.to_string())
            .or_default()
            .push(i.parse().unwrap());
        tx.send(settle(m.delivery_id)).await.unwrap();
        outstanding -= 1;
    }
    assert_eq!(seen.len(), 50);
    for (k, order) in seen {
        assert_eq!(order, (0..40).collect::<Vec<_>>(), "key {k}");
    }
    // The member's health, asked on the same stream.
    tx.send(pb::ConsumeRequest {
        request: Some(pb::consume_request::Request::Health(pb::HealthRequest {})),
    })
    .await
    .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Some(pb::consume_response::Response::Health(h)) = r.response else {
        panic!("not a health answer")
    };
    assert_eq!(h.partitions.len(), 3);
    assert!(h.partitions.iter().all(|p| p.owned));
    assert!(h.partitions.iter().all(|p| p.last_delivery.is_some()));
}

#[tokio::test]
async fn a_broken_consume_stream_hands_its_messages_to_another() {
    let g = start().await;
    let mut stations = pb::stations_client::StationsClient::new(channel(&g.addr).await);
    create(
        &mut stations,
        pb::CreateStationRequest {
            name: "work".into(),
            ..Default::default()
        },
    )
    .await;
    produce(&g.addr, "work", 20, 5).await;
    let (tx1, mut first) = join(&g.addr, "work", 10).await;
    let mut settled = std::collections::HashSet::new();
    for _ in 0..10 {
        let r = first.next().await.unwrap().unwrap();
        let Some(pb::consume_response::Response::Message(m)) = r.response else {
            panic!()
        };
        if settled.len() < 5 {
            settled.insert(String::from_utf8(m.payload).unwrap());
            tx1.send(settle(m.delivery_id)).await.unwrap();
        }
    }
    // Let the settles reach the gateway, then break the stream.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(tx1);
    drop(first);
    let (tx2, mut second) = join(&g.addr, "work", 100).await;
    let mut received = std::collections::HashSet::new();
    while received.len() + settled.len() < 100 {
        let r = tokio::time::timeout(Duration::from_secs(15), second.next())
            .await
            .expect("the unfinished messages reach the other stream")
            .unwrap()
            .unwrap();
        let Some(pb::consume_response::Response::Message(m)) = r.response else {
            panic!()
        };
        let text = String::from_utf8(m.payload).unwrap();
        assert!(!settled.contains(&text), "{text} was settled already");
        received.insert(text);
        tx2.send(settle(m.delivery_id)).await.unwrap();
    }
    assert_eq!(received.len(), 95);
}

#[tokio::test]
async fn a_schema_refusal_is_invalid_argument_naming_the_path() {
    let g = start().await;
    let ch = channel(&g.addr).await;
    let mut schemas = pb::schemas_client::SchemasClient::new(ch.clone());
    let mut stations = pb::stations_client::StationsClient::new(ch.clone());
    let mut producer = pb::producer_client::ProducerClient::new(ch);
    schemas
        .register_schema(authed(
            "ta",
            pb::RegisterSchemaRequest {
                name: "pay".into(),
                format: pb::SchemaFormat::JsonSchema as i32,
                source: r#"{"type":"object","properties":{"salary":{"type":"number"}}}"#.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    create(
        &mut stations,
        pb::CreateStationRequest {
            name: "payroll".into(),
            config: Some(pb::StationConfig {
                schema: "pay".into(),
                ..Default::default()
            }),
            update: false,
        },
    )
    .await;
    let e = producer
        .send(authed(
            "ta",
            pb::SendRequest {
                station: "payroll".into(),
                message: Some(pb::OutgoingMessage {
                    payload: br#"{"salary":"ten"}"#.to_vec(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), reason(&e).as_str()),
        (Code::InvalidArgument, "schema_validation")
    );
    assert!(e.message().contains("/salary"), "{}", e.message());
}

#[tokio::test]
async fn health_reflection_and_dead_letters() {
    let g = start().await;
    let ch = channel(&g.addr).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "jetstation.v1.Consumer".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(ch.clone());
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
        ..Default::default()
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let answer = format!("{:?}", answers.next().await.unwrap().unwrap());
    assert!(answer.contains("jetstation.v1.Producer"), "{answer}");

    let mut stations = pb::stations_client::StationsClient::new(ch.clone());
    create(
        &mut stations,
        pb::CreateStationRequest {
            name: "fragile".into(),
            config: Some(pb::StationConfig {
                max_deliveries: 1,
                ..Default::default()
            }),
            update: false,
        },
    )
    .await;
    produce(&g.addr, "fragile", 1, 1).await;
    let (tx, mut stream) = join(&g.addr, "fragile", 10).await;
    let r = stream.next().await.unwrap().unwrap();
    let Some(pb::consume_response::Response::Message(m)) = r.response else {
        panic!()
    };
    tx.send(pb::ConsumeRequest {
        request: Some(pb::consume_request::Request::Settle(pb::Settle {
            delivery_id: m.delivery_id,
            outcome: pb::settle::Outcome::Nack as i32,
            reason: "cannot parse".into(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut letters = pb::dead_letters_client::DeadLettersClient::new(ch);
    let mut found = Vec::new();
    for _ in 0..100 {
        found = letters
            .list_dead_letters(authed(
                "ta",
                pb::ListDeadLettersRequest {
                    station: "fragile".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .dead_letters;
        if !found.is_empty() {
            break;
        }
        // Poll interval; bounded by the loop's 100 tries.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].last_error, "cannot parse");
    assert_eq!(found[0].group, "workers");
    let replayed = letters
        .replay_dead_letter(authed(
            "ta",
            pb::ReplayDeadLetterRequest {
                station: "fragile".into(),
                sequence: found[0].sequence,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.sequence, 2);
}

#[tokio::test]
async fn unreachable_nats_is_unavailable_and_a_full_buffer_is_resource_exhausted() {
    let mut g = start_with(NatsServer::start(), 4096).await;
    let ch = channel(&g.addr).await;
    let mut stations = pb::stations_client::StationsClient::new(ch.clone());
    create(
        &mut stations,
        pb::CreateStationRequest {
            name: "s".into(),
            ..Default::default()
        },
    )
    .await;
    // The unary producer of "s" exists before the broker goes away.
    pb::producer_client::ProducerClient::new(ch.clone())
        .send(authed(
            "ta",
            pb::SendRequest {
                station: "s".into(),
                message: Some(pb::OutgoingMessage {
                    payload: b"first".to_vec(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    g.server.stop();
    // A namespace whose client does not exist yet cannot connect.
    let e = stations
        .list_stations(authed("tb", pb::ListStationsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), reason(&e).as_str()),
        (Code::Unavailable, "connection")
    );
    // Unary sends wait for the broker while they hold buffer space; once it
    // is full, the next one is refused at once.
    let send = |payload: Vec<u8>| {
        let mut producer = pb::producer_client::ProducerClient::new(ch.clone());
        async move {
            producer
                .send(authed(
                    "ta",
                    pb::SendRequest {
                        station: "s".into(),
                        message: Some(pb::OutgoingMessage {
                            payload,
                            ..Default::default()
                        }),
                    },
                ))
                .await
        }
    };
    let waiting = tokio::spawn(send(vec![1u8; 3000]));
    // Let the first send take its buffer space before the second one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let e = send(vec![2u8; 3000]).await.unwrap_err();
    assert_eq!(
        (e.code(), reason(&e).as_str()),
        (Code::ResourceExhausted, "buffer_full")
    );
    waiting.abort();
}

#[tokio::test]
async fn shutdown_ends_consume_streams_and_commits_what_was_settled() {
    let g = start().await;
    let mut stations = pb::stations_client::StationsClient::new(channel(&g.addr).await);
    create(
        &mut stations,
        pb::CreateStationRequest {
            name: "closing".into(),
            ..Default::default()
        },
    )
    .await;
    produce(&g.addr, "closing", 10, 1).await;
    let (tx, mut stream) = join(&g.addr, "closing", 5).await;
    for _ in 0..5 {
        let r = stream.next().await.unwrap().unwrap();
        let Some(pb::consume_response::Response::Message(m)) = r.response else {
            panic!()
        };
        tx.send(settle(m.delivery_id)).await.unwrap();
    }
    // Let the settles arrive, then stop the gateway.
    tokio::time::sleep(Duration::from_millis(200)).await;
    g.stop.send(true).unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(item) = stream.next().await {
            if item.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the consume stream ended on shutdown");
    // What was settled is committed: the group's ack floor is 5.
    let nats = async_nats::connect(g.server.url()).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let stream = js
        .get_stream_no_info("JST__tenant-a__closing__P0")
        .await
        .unwrap();
    let info = stream.consumer_info("workers").await.unwrap();
    assert_eq!(info.ack_floor.stream_sequence, 5);
}

#[tokio::test]
async fn serves_over_tls() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let server = NatsServer::start();
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let gateway = Gateway::new(
        Config {
            nats: jetstation::ConnectOptions::new(server.url()),
            tokens: HashMap::from([("ta".to_string(), "tenant-a".to_string())]),
            max_credit: 16,
            producer_buffer_bytes: 1 << 20,
        },
        shutdown,
    );
    let tls = tonic::transport::ServerTlsConfig::new().identity(
        tonic::transport::Identity::from_pem(cert.pem(), key.serialize_pem()),
    );
    let builder = tonic::transport::Server::builder().tls_config(tls).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = gateway.router(builder).unwrap();
    tokio::spawn(router.serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)));
    let channel = Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca.pem()))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut stations = pb::stations_client::StationsClient::new(channel);
    let list = stations
        .list_stations(authed("ta", pb::ListStationsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(list.stations.is_empty());
}

#[tokio::test]
async fn station_stats_and_groups_over_grpc() {
    let g = start().await;
    let mut stations = pb::stations_client::StationsClient::new(channel(&g.addr).await);
    create(
        &mut stations,
        pb::CreateStationRequest {
            name: "watched".into(),
            config: Some(pb::StationConfig {
                partitions: 2,
                ..Default::default()
            }),
            update: false,
        },
    )
    .await;
    produce(&g.addr, "watched", 5, 2).await;
    let stats = stations
        .get_station_stats(authed(
            "ta",
            pb::GetStationStatsRequest {
                station: "watched".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.partitions.len(), 2);
    assert_eq!(stats.partitions.iter().map(|p| p.messages).sum::<u64>(), 10);
    assert!(stats.partitions.iter().all(|p| p.placement.is_none()));
    assert_eq!(stats.state_keys, None);
    let purged = pb::dead_letters_client::DeadLettersClient::new(channel(&g.addr).await)
        .purge_dead_letters(authed(
            "ta",
            pb::PurgeDeadLettersRequest {
                station: "watched".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(purged.purged, 0);

    let (_tx, _stream) = join(&g.addr, "watched", 4).await;
    let groups = stations
        .list_groups(authed(
            "ta",
            pb::ListGroupsRequest {
                station: "watched".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .groups;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].group, "workers");
    assert_eq!(groups[0].members.len(), 1);
    assert!(!groups[0].members[0].standby);
    assert_eq!(groups[0].partitions.iter().map(|p| p.lag).sum::<u64>(), 10);

    let missing = stations
        .get_station_stats(authed(
            "ta",
            pb::GetStationStatsRequest {
                station: "nowhere".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn the_calls_trace_context_reaches_its_messages() {
    let g = start().await;
    let mut stations = pb::stations_client::StationsClient::new(channel(&g.addr).await);
    create(
        &mut stations,
        pb::CreateStationRequest {
            name: "traced".into(),
            config: None,
            update: false,
        },
    )
    .await;
    let call = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut producer = pb::producer_client::ProducerClient::new(channel(&g.addr).await);
    for (key, headers) in [
        ("from-call", HashMap::new()),
        (
            "own",
            HashMap::from([("traceparent".to_string(), own.to_string())]),
        ),
    ] {
        let mut request = authed(
            "ta",
            pb::SendRequest {
                station: "traced".into(),
                message: Some(pb::OutgoingMessage {
                    payload: b"x".to_vec(),
                    key: key.into(),
                    headers,
                    ..Default::default()
                }),
            },
        );
        request
            .metadata_mut()
            .insert("traceparent", MetadataValue::try_from(call).unwrap());
        request
            .metadata_mut()
            .insert("tracestate", MetadataValue::try_from("vendor=1").unwrap());
        producer.send(request).await.unwrap();
    }
    // Read back with the core, in the token's namespace.
    let client = jetstation::Client::connect(
        jetstation::ConnectOptions::new(g.server.url()).namespace("tenant-a"),
    )
    .await
    .unwrap();
    let consumer = client
        .consumer("traced", "readers", Default::default())
        .await
        .unwrap();
    let mut seen = HashMap::new();
    while seen.len() < 2 {
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("both messages within 10 s")
            .unwrap()
            .unwrap();
        seen.insert(
            d.key.clone().unwrap(),
            (
                d.header("traceparent").map(String::from),
                d.header("tracestate").map(String::from),
            ),
        );
        d.ack().unwrap();
    }
    assert_eq!(
        seen["from-call"],
        (Some(call.to_string()), Some("vendor=1".to_string())),
        "a message without its own context carries the call's"
    );
    assert_eq!(
        seen["own"].0.as_deref(),
        Some(own),
        "a message's own context wins"
    );
    consumer.close().await.unwrap();
}
