//! The dashboard's JSON API: the same records as `--json`, plus the
//! aggregates the pages show (health, totals), and the replay actions.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use futures::future::try_join_all;
use jetstation::{Client, Error, ErrorKind};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Shared, auth::refusal};
use crate::views;

/// A library error as an HTTP answer that keeps its stable kind.
#[derive(Debug)]
pub(crate) struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::InvalidArgument
            | ErrorKind::SchemaValidation
            | ErrorKind::IncompatibleSchema => StatusCode::BAD_REQUEST,
            ErrorKind::Auth => StatusCode::FORBIDDEN,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        refusal(status, self.0.kind().as_str(), self.0.message())
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn read_only() -> Response {
    refusal(
        StatusCode::FORBIDDEN,
        "read_only",
        "this dashboard is read-only (started with --read-only)",
    )
}

/// One overview row: the station, its size, health and groups' lag.
async fn overview_row(client: &Client, station: jetstation::Station) -> jetstation::Result<Value> {
    let (stats, groups) = futures::try_join!(
        client.station_stats(&station.name),
        client.groups(&station.name)
    )?;
    let mut row = views::station(&station);
    row["bytes"] = json!(stats.partitions.iter().map(|p| p.bytes).sum::<u64>());
    row["appended"] = json!(
        stats
            .partitions
            .iter()
            .map(|p| p.last_sequence)
            .sum::<u64>()
    );
    row["health"] = json!(views::health(&stats));
    row["groups"] = json!(groups.len());
    row["lag"] = json!(
        groups
            .iter()
            .flat_map(|g| &g.partitions)
            .map(|p| p.lag)
            .sum::<u64>()
    );
    row["acknowledged"] = json!(
        groups
            .iter()
            .flat_map(|g| &g.partitions)
            .map(|p| p.ack_floor)
            .sum::<u64>()
    );
    Ok(row)
}

/// Every station with its size, health and lag.
pub(crate) async fn overview(client: &Client) -> jetstation::Result<Value> {
    let stations = client.stations().await?;
    let rows = try_join_all(stations.into_iter().map(|s| overview_row(client, s))).await?;
    Ok(json!({ "stations": rows }))
}

/// One station: settings, partitions with placement, groups with members.
pub(crate) async fn station_detail(client: &Client, name: &str) -> jetstation::Result<Value> {
    let (station, stats, groups) = futures::try_join!(
        client.station(name),
        client.station_stats(name),
        client.groups(name)
    )?;
    let mut value = views::station(&station);
    value["health"] = json!(views::health(&stats));
    value["state_keys"] = json!(stats.state_keys);
    value["partitions_detail"] = views::partitions(&stats);
    value["groups_detail"] = json!(
        groups
            .iter()
            .map(|g| {
                let mut v = views::group(g);
                v["acknowledged"] = json!(g.partitions.iter().map(|p| p.ack_floor).sum::<u64>());
                v
            })
            .collect::<Vec<_>>()
    );
    Ok(value)
}

pub(crate) async fn stations(State(state): State<Shared>) -> ApiResult {
    Ok(Json(overview(&state.client).await?))
}

pub(crate) async fn station(State(state): State<Shared>, Path(name): Path<String>) -> ApiResult {
    Ok(Json(station_detail(&state.client, &name).await?))
}

pub(crate) async fn dead_letters(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> ApiResult {
    let client = &state.client;
    let (letters, station) = futures::try_join!(client.dead_letters(&name), client.station(&name))?;
    let mut rows = Vec::with_capacity(letters.len());
    for d in &letters {
        let mut row = views::dead_letter(d);
        if let Some(binding) = &station.config.schema {
            row["decoded"] = match client
                .decode_with_schema(&binding.name, binding.version, &d.payload)
                .await
            {
                Ok(v) => v,
                Err(e) => json!(format!("not decodable: {}", e.message())),
            };
        }
        rows.push(row);
    }
    Ok(Json(json!({
        "station": name,
        "schema": station.config.schema.as_ref().map(|b| b.name.clone()),
        "dead_letters": rows,
    })))
}

pub(crate) async fn replay(
    State(state): State<Shared>,
    Path((name, sequence)): Path<(String, u64)>,
) -> Result<Response, ApiError> {
    if state.read_only {
        return Ok(read_only());
    }
    let receipt = state.client.replay_dead_letter(&name, sequence).await?;
    Ok(Json(json!({
        "replayed": sequence,
        "partition": receipt.partition,
        "sequence": receipt.sequence,
    }))
    .into_response())
}

pub(crate) async fn replay_all(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if state.read_only {
        return Ok(read_only());
    }
    let receipts = state.client.replay_dead_letters(&name).await?;
    Ok(Json(json!({"replayed": receipts.len()})).into_response())
}

pub(crate) async fn schemas(State(state): State<Shared>) -> ApiResult {
    let schemas = state.client.schemas().await?;
    Ok(Json(json!({
        "schemas": schemas.iter().map(views::schema_info).collect::<Vec<_>>(),
    })))
}

/// A schema with the source of every version and the stations bound to it.
pub(crate) async fn schema(State(state): State<Shared>, Path(name): Path<String>) -> ApiResult {
    let client = &state.client;
    let (schemas, stations) = futures::try_join!(client.schemas(), client.stations())?;
    let Some(info) = schemas.iter().find(|s| s.name == name) else {
        return Err(Error::new(ErrorKind::NotFound, format!("no schema {name:?}")).into());
    };
    let versions =
        try_join_all(info.versions.iter().map(|v| client.schema(&name, Some(*v)))).await?;
    let mut value = views::schema_info(info);
    value["sources"] = json!(
        versions
            .iter()
            .map(|v| json!({
                "version": v.version,
                "created": v.created,
                "message_type": v.message_type,
                "source": v.source,
            }))
            .collect::<Vec<_>>()
    );
    value["stations"] = json!(
        stations
            .iter()
            .filter_map(|s| {
                let b = s.config.schema.as_ref()?;
                (b.name == name).then(|| json!({"station": s.name, "version": b.version}))
            })
            .collect::<Vec<_>>()
    );
    Ok(Json(value))
}

#[derive(Debug, Deserialize)]
pub(crate) struct DiffRange {
    from: u32,
    to: u32,
}

pub(crate) async fn schema_diff(
    State(state): State<Shared>,
    Path(name): Path<String>,
    Query(range): Query<DiffRange>,
) -> ApiResult {
    let (old, new) = futures::try_join!(
        state.client.schema(&name, Some(range.from)),
        state.client.schema(&name, Some(range.to))
    )?;
    Ok(Json(json!({
        "name": name,
        "from": range.from,
        "to": range.to,
        "diff": views::diff(&name, range.from, &old.source, range.to, &new.source),
    })))
}
