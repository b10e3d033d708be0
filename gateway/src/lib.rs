//! The jetstation gateway: the core over gRPC for services in any language.
//!
//! Each bearer token maps to one namespace, and each namespace to one core
//! [`jetstation::Client`] (created on first use), so a token only ever reaches
//! its own stations, groups and schemas. The services are thin conversions
//! over the core; every semantic (order, ordered acks, dead letters, schema
//! checks) is the core's.

pub mod pb {
    #![allow(clippy::all, unreachable_pub, missing_debug_implementations)]
    tonic::include_proto!("jetstation.v1");
}

/// Encoded descriptors of the contract, served by gRPC reflection.
pub const DESCRIPTOR: &[u8] = tonic::include_file_descriptor_set!("jetstation_descriptor");

mod consume;
mod convert;
pub mod http2;

use std::{collections::HashMap, pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use tokio::sync::{Mutex, watch};
use tonic::{Request, Response, Status, Streaming};

pub use convert::status;
use convert::{duration, receipt, station, station_config};
use pb::*;

/// What the gateway needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// How to reach NATS (the namespace is set per token).
    pub nats: jetstation::ConnectOptions,
    /// Bearer token → namespace.
    pub tokens: HashMap<String, String>,
    /// Largest credit a consume stream may grant.
    pub max_credit: u32,
    /// Bytes of messages queued per station and namespace before a unary
    /// `Send` is refused with RESOURCE_EXHAUSTED.
    pub producer_buffer_bytes: usize,
}

/// The shared state of every service.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    clients: Mutex<HashMap<String, jetstation::Client>>,
    producers: Mutex<HashMap<(String, String, bool), jetstation::Producer>>,
    shutdown: watch::Receiver<bool>,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl Gateway {
    /// `shutdown` turning true makes open consume streams close (committing
    /// what is finished) and end.
    pub fn new(config: Config, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                clients: Mutex::default(),
                producers: Mutex::default(),
                shutdown,
            }),
        }
    }

    fn namespace<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Status::unauthenticated("missing `authorization: Bearer <token>` metadata")
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        self.inner
            .config
            .tokens
            .get(token)
            .cloned()
            .ok_or_else(|| Status::unauthenticated("unknown token"))
    }

    /// The core client of the request's namespace.
    async fn client<T>(&self, request: &Request<T>) -> Result<jetstation::Client, Status> {
        let namespace = self.namespace(request)?;
        let mut clients = self.inner.clients.lock().await;
        if let Some(c) = clients.get(&namespace) {
            return Ok(c.clone());
        }
        let options = self.inner.config.nats.clone().namespace(namespace.clone());
        let client = jetstation::Client::connect(options).await.map_err(status)?;
        clients.insert(namespace, client.clone());
        Ok(client)
    }

    /// The producer of a station in a namespace. Unary sends use one that
    /// fails fast when its buffer is full (RESOURCE_EXHAUSTED); streams use
    /// one that waits, so HTTP/2 flow control carries the backpressure and a
    /// refused message never lets a later one of its key overtake it.
    async fn producer(
        &self,
        client: &jetstation::Client,
        station: &str,
        fail_fast: bool,
    ) -> Result<jetstation::Producer, Status> {
        let key = (
            client.namespace().unwrap_or_default().to_string(),
            station.to_string(),
            fail_fast,
        );
        let mut producers = self.inner.producers.lock().await;
        if let Some(p) = producers.get(&key) {
            return Ok(p.clone());
        }
        let mut options = jetstation::ProducerOptions::default()
            .buffer_bytes(self.inner.config.producer_buffer_bytes);
        if fail_fast {
            options = options.when_full(jetstation::WhenFull::FailFast);
        }
        let producer = client.producer(station, options).await.map_err(status)?;
        producers.insert(key, producer.clone());
        Ok(producer)
    }

    pub fn stations(&self) -> stations_server::StationsServer<Self> {
        stations_server::StationsServer::new(self.clone())
    }
    pub fn schemas(&self) -> schemas_server::SchemasServer<Self> {
        schemas_server::SchemasServer::new(self.clone())
    }
    pub fn producer_service(&self) -> producer_server::ProducerServer<Self> {
        producer_server::ProducerServer::new(self.clone())
    }
    pub fn consumer_service(&self) -> consumer_server::ConsumerServer<Self> {
        consumer_server::ConsumerServer::new(self.clone())
    }
    pub fn dead_letters(&self) -> dead_letters_server::DeadLettersServer<Self> {
        dead_letters_server::DeadLettersServer::new(self.clone())
    }

    /// Every service, health and reflection on one router of `server` (a
    /// plain `Server::builder()`, or one with TLS configured), with the
    /// gateway's HTTP/2 windows ([`http2`]).
    pub fn router(
        &self,
        server: tonic::transport::Server,
    ) -> Result<tonic::transport::server::Router, Box<dyn std::error::Error + Send + Sync>> {
        let (health, health_service) = tonic_health::server::health_reporter();
        tokio::spawn(async move {
            health
                .set_serving::<stations_server::StationsServer<Gateway>>()
                .await;
            health
                .set_serving::<producer_server::ProducerServer<Gateway>>()
                .await;
            health
                .set_serving::<consumer_server::ConsumerServer<Gateway>>()
                .await;
        });
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(DESCRIPTOR)
            .build_v1()?;
        Ok(http2::configure(server)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(self.stations())
            .add_service(self.schemas())
            .add_service(self.producer_service())
            .add_service(self.consumer_service())
            .add_service(self.dead_letters()))
    }
}

#[tonic::async_trait]
impl stations_server::Stations for Gateway {
    async fn create_station(
        &self,
        request: Request<CreateStationRequest>,
    ) -> Result<Response<Station>, Status> {
        let client = self.client(&request).await?;
        let r = request.into_inner();
        let config = station_config(r.config.unwrap_or_default())?;
        let s = if r.update {
            client.update_station(&r.name, config).await
        } else {
            client.create_station(&r.name, config).await
        };
        Ok(Response::new(station(s.map_err(status)?)))
    }

    async fn get_station(
        &self,
        request: Request<GetStationRequest>,
    ) -> Result<Response<Station>, Status> {
        let client = self.client(&request).await?;
        let s = client
            .station(&request.into_inner().name)
            .await
            .map_err(status)?;
        Ok(Response::new(station(s)))
    }

    async fn list_stations(
        &self,
        request: Request<ListStationsRequest>,
    ) -> Result<Response<ListStationsResponse>, Status> {
        let client = self.client(&request).await?;
        let stations = client.stations().await.map_err(status)?;
        Ok(Response::new(ListStationsResponse {
            stations: stations.into_iter().map(station).collect(),
        }))
    }

    async fn delete_station(
        &self,
        request: Request<DeleteStationRequest>,
    ) -> Result<Response<DeleteStationResponse>, Status> {
        let client = self.client(&request).await?;
        client
            .delete_station(&request.into_inner().name)
            .await
            .map_err(status)?;
        Ok(Response::new(DeleteStationResponse {}))
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        let client = self.client(&request).await?;
        let r = request.into_inner();
        client
            .delete_group(&r.station, &r.group)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DeleteGroupResponse {}))
    }

    async fn get_latest(
        &self,
        request: Request<pb::GetLatestRequest>,
    ) -> Result<Response<pb::GetLatestResponse>, Status> {
        let client = self.client(&request).await?;
        let r = request.into_inner();
        let entry = client.latest(&r.station, &r.key).await.map_err(status)?;
        Ok(Response::new(pb::GetLatestResponse {
            entry: entry.map(convert::state_entry),
        }))
    }

    async fn get_station_stats(
        &self,
        request: Request<pb::GetStationStatsRequest>,
    ) -> Result<Response<pb::StationStats>, Status> {
        let client = self.client(&request).await?;
        let stats = client
            .station_stats(&request.into_inner().station)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::station_stats(stats)))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let client = self.client(&request).await?;
        let groups = client
            .groups(&request.into_inner().station)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListGroupsResponse {
            groups: groups.into_iter().map(convert::group_stats).collect(),
        }))
    }

    type SnapshotStream = BoxStream<pb::StateEntry>;

    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let client = self.client(&request).await?;
        let mut snapshot = client
            .snapshot(&request.into_inner().station)
            .await
            .map_err(status)?;
        Ok(Response::new(async_stream(move |tx| async move {
            while let Some(entry) = snapshot.next().await {
                let item = entry.map(convert::state_entry).map_err(status);
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        })))
    }
}

#[tonic::async_trait]
impl schemas_server::Schemas for Gateway {
    async fn register_schema(
        &self,
        request: Request<RegisterSchemaRequest>,
    ) -> Result<Response<SchemaVersion>, Status> {
        let client = self.client(&request).await?;
        let r = request.into_inner();
        let format = convert::schema_format(r.format())?;
        let mode = convert::compatibility(r.compatibility());
        let definition = jetstation::SchemaDefinition {
            format,
            source: r.source,
            message_type: (!r.message_type.is_empty()).then_some(r.message_type),
        };
        let v = client
            .register_schema_with(&r.name, definition, mode)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::schema_version(v)))
    }

    async fn get_schema(
        &self,
        request: Request<GetSchemaRequest>,
    ) -> Result<Response<SchemaVersion>, Status> {
        let client = self.client(&request).await?;
        let r = request.into_inner();
        let v = client
            .schema(&r.name, (r.version > 0).then_some(r.version))
            .await
            .map_err(status)?;
        Ok(Response::new(convert::schema_version(v)))
    }

    async fn list_schemas(
        &self,
        request: Request<ListSchemasRequest>,
    ) -> Result<Response<ListSchemasResponse>, Status> {
        let client = self.client(&request).await?;
        let schemas = client.schemas().await.map_err(status)?;
        Ok(Response::new(ListSchemasResponse {
            schemas: schemas.into_iter().map(convert::schema_info).collect(),
        }))
    }

    async fn set_schema_compatibility(
        &self,
        request: Request<pb::SetSchemaCompatibilityRequest>,
    ) -> Result<Response<pb::SetSchemaCompatibilityResponse>, Status> {
        let client = self.client(&request).await?;
        let r = request.into_inner();
        if r.compatibility() == pb::Compatibility::Unspecified {
            return Err(convert::invalid(
                "compatibility is required: NONE, BACKWARD, FORWARD or FULL",
            ));
        }
        client
            .set_schema_compatibility(&r.name, convert::compatibility(r.compatibility()))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SetSchemaCompatibilityResponse {}))
    }

    async fn delete_schema_version(
        &self,
        request: Request<pb::DeleteSchemaVersionRequest>,
    ) -> Result<Response<pb::DeleteSchemaVersionResponse>, Status> {
        let client = self.client(&request).await?;
        let r = request.into_inner();
        client
            .delete_schema_version(&r.name, r.version)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DeleteSchemaVersionResponse {}))
    }
}

#[tonic::async_trait]
impl producer_server::Producer for Gateway {
    async fn send(&self, request: Request<SendRequest>) -> Result<Response<Receipt>, Status> {
        let client = self.client(&request).await?;
        let trace = convert::trace_context(request.metadata());
        let r = request.into_inner();
        let producer = self.producer(&client, &r.station, true).await?;
        let m = convert::message(r.message.unwrap_or_default(), &trace);
        Ok(Response::new(receipt(
            producer.send(m).await.map_err(status)?,
        )))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<Receipt>, Status> {
        let client = self.client(&request).await?;
        let r = request.into_inner();
        let producer = self.producer(&client, &r.station, true).await?;
        Ok(Response::new(receipt(
            producer.delete(r.key).await.map_err(status)?,
        )))
    }

    type SendStreamStream = BoxStream<SendResult>;

    async fn send_stream(
        &self,
        request: Request<Streaming<SendRequest>>,
    ) -> Result<Response<Self::SendStreamStream>, Status> {
        let client = self.client(&request).await?;
        let trace = convert::trace_context(request.metadata());
        let mut requests = request.into_inner();
        let (handles_tx, mut handles_rx) = tokio::sync::mpsc::channel(4096);
        let gateway = self.clone();
        // Reader: queues each message in request order.
        tokio::spawn(async move {
            while let Ok(Some(r)) = requests.message().await {
                let queued = match gateway.producer(&client, &r.station, false).await {
                    Ok(p) => p
                        .enqueue(convert::message(r.message.unwrap_or_default(), &trace))
                        .await
                        .map_err(status),
                    Err(e) => Err(e),
                };
                if handles_tx.send(queued).await.is_err() {
                    return;
                }
            }
        });
        // Writer: one result per request, in request order.
        let results = async_stream(move |tx| async move {
            while let Some(queued) = handles_rx.recv().await {
                let result = match queued {
                    Ok(handle) => match handle.await {
                        Ok(r) => send_result::Result::Receipt(receipt(r)),
                        Err(e) => send_result::Result::Error(convert::error(&e)),
                    },
                    Err(s) => send_result::Result::Error(pb::Error {
                        kind: convert::kind_of(&s),
                        message: s.message().to_string(),
                    }),
                };
                if tx
                    .send(Ok(SendResult {
                        result: Some(result),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(results))
    }
}

#[tonic::async_trait]
impl consumer_server::Consumer for Gateway {
    type ConsumeStream = BoxStream<ConsumeResponse>;

    async fn consume(
        &self,
        request: Request<Streaming<ConsumeRequest>>,
    ) -> Result<Response<Self::ConsumeStream>, Status> {
        let client = self.client(&request).await?;
        let requests = request.into_inner();
        let max_credit = self.inner.config.max_credit;
        let shutdown = self.inner.shutdown.clone();
        let stream =
            async_stream(move |tx| consume::run(client, requests, tx, max_credit, shutdown));
        Ok(Response::new(stream))
    }
}

#[tonic::async_trait]
impl dead_letters_server::DeadLetters for Gateway {
    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let client = self.client(&request).await?;
        let letters = client
            .dead_letters(&request.into_inner().station)
            .await
            .map_err(status)?;
        Ok(Response::new(ListDeadLettersResponse {
            dead_letters: letters.into_iter().map(convert::dead_letter).collect(),
        }))
    }

    async fn replay_dead_letter(
        &self,
        request: Request<ReplayDeadLetterRequest>,
    ) -> Result<Response<Receipt>, Status> {
        let client = self.client(&request).await?;
        let r = request.into_inner();
        let receipt = client
            .replay_dead_letter(&r.station, r.sequence)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::receipt(receipt)))
    }

    async fn replay_dead_letters(
        &self,
        request: Request<pb::ReplayDeadLettersRequest>,
    ) -> Result<Response<pb::ReplayDeadLettersResponse>, Status> {
        let client = self.client(&request).await?;
        let receipts = client
            .replay_dead_letters(&request.into_inner().station)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ReplayDeadLettersResponse {
            receipts: receipts.into_iter().map(convert::receipt).collect(),
        }))
    }

    async fn purge_dead_letters(
        &self,
        request: Request<pb::PurgeDeadLettersRequest>,
    ) -> Result<Response<pb::PurgeDeadLettersResponse>, Status> {
        let client = self.client(&request).await?;
        let purged = client
            .purge_dead_letters(&request.into_inner().station)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::PurgeDeadLettersResponse { purged }))
    }
}

/// A response stream fed by a task: `body` sends items on the channel.
fn async_stream<T, F, Fut>(body: F) -> BoxStream<T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(body(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Default duration when a request leaves one out.
pub(crate) fn or_default(
    d: Option<prost_types::Duration>,
    default: Duration,
) -> Result<Duration, Status> {
    d.map(duration).transpose().map(|d| d.unwrap_or(default))
}
