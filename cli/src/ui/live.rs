//! Live pages: server-sent events carrying a fresh copy of a page's data
//! every second, with the rates computed from the previous copy.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{Path, State},
    response::sse::{Event, KeepAlive, Sse},
};
use futures::{Stream, stream};
use serde_json::{Value, json};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::{Shared, api};

/// How often a live page gets new data.
const PERIOD: Duration = Duration::from_secs(1);

struct Feed {
    state: Shared,
    station: Option<String>,
    ticks: Interval,
    previous: Option<(Instant, Value)>,
}

impl Feed {
    fn new(state: Shared, station: Option<String>) -> Self {
        let mut ticks = tokio::time::interval(PERIOD);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            state,
            station,
            ticks,
            previous: None,
        }
    }

    async fn next(&mut self) -> Event {
        self.ticks.tick().await;
        let client = &self.state.client;
        let (name, result) = match &self.station {
            None => ("overview", api::overview(client).await),
            Some(s) => ("station", api::station_detail(client, s).await),
        };
        match result {
            Ok(mut value) => {
                let now = Instant::now();
                if let Some((at, before)) = &self.previous {
                    add_rates(before, &mut value, now.duration_since(*at).as_secs_f64());
                }
                self.previous = Some((now, value.clone()));
                Event::default()
                    .event(name)
                    .json_data(value)
                    .unwrap_or_else(|_| Event::default().event("error"))
            }
            Err(e) => Event::default()
                .event("failure")
                .json_data(json!({"kind": e.kind().as_str(), "message": e.message()}))
                .unwrap_or_else(|_| Event::default().event("failure")),
        }
    }
}

fn feed(f: Feed) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(f, |mut f| async move {
        let event = f.next().await;
        Some((Ok(event), f))
    })
}

pub(crate) async fn overview(
    State(state): State<Shared>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    Sse::new(feed(Feed::new(state, None))).keep_alive(KeepAlive::default())
}

pub(crate) async fn station(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    Sse::new(feed(Feed::new(state, Some(name)))).keep_alive(KeepAlive::default())
}

/// Per second growth of `field` between two records, never negative (a
/// purge or a recreated consumer can make a counter go back).
fn per_second(before: &Value, now: &Value, field: &str, seconds: f64) -> Option<f64> {
    let (b, n) = (before.get(field)?.as_u64()?, now.get(field)?.as_u64()?);
    (seconds > 0.0).then(|| n.saturating_sub(b) as f64 / seconds)
}

/// Finds the record of `list` whose `key` equals `record`'s.
fn same<'a>(list: &'a Value, key: &str, record: &Value) -> Option<&'a Value> {
    list.as_array()?
        .iter()
        .find(|r| r.get(key) == record.get(key))
}

fn add_rates(before: &Value, now: &mut Value, seconds: f64) {
    if let Some(stations) = now.get_mut("stations").and_then(Value::as_array_mut) {
        for s in stations {
            let Some(old) = same(&before["stations"], "name", s) else {
                continue;
            };
            s["in_rate"] = json!(per_second(old, s, "appended", seconds));
            s["out_rate"] = json!(per_second(old, s, "acknowledged", seconds));
        }
        return;
    }
    let mut total = 0.0;
    if let Some(parts) = now
        .get_mut("partitions_detail")
        .and_then(Value::as_array_mut)
    {
        for p in parts {
            let Some(old) = same(&before["partitions_detail"], "partition", p) else {
                continue;
            };
            let rate = per_second(old, p, "last_sequence", seconds);
            total += rate.unwrap_or(0.0);
            p["in_rate"] = json!(rate);
        }
    }
    now["in_rate"] = json!(total);
    if let Some(groups) = now.get_mut("groups_detail").and_then(Value::as_array_mut) {
        for g in groups {
            let Some(old) = same(&before["groups_detail"], "group", g) else {
                continue;
            };
            g["out_rate"] = json!(per_second(old, g, "acknowledged", seconds));
        }
    }
}
