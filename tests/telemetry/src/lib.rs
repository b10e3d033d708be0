//! Shared set-up of the OpenTelemetry tests: the SDK with in-memory
//! exporters behind the global providers and a `tracing` subscriber, and one
//! plain span record that the Python and Node parts write as JSON too.

use std::{collections::BTreeMap, path::Path};

use opentelemetry::{KeyValue, global, trace::TracerProvider as _};
use opentelemetry_sdk::{
    metrics::{
        InMemoryMetricExporter, PeriodicReader, SdkMeterProvider,
        data::{AggregatedMetrics, MetricData},
    },
    propagation::TraceContextPropagator,
    trace::{InMemorySpanExporter, SdkTracerProvider},
};
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// A finished span, the same in every language's dump.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub name: String,
    pub kind: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent: String,
    pub links: Vec<String>,
    pub attributes: BTreeMap<String, String>,
}

impl Span {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// Reads the spans a Python or Node part wrote as a JSON array.
    pub fn read_all(path: &Path) -> Vec<Span> {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading spans from {}: {e}", path.display()));
        let values: Vec<serde_json::Value> = serde_json::from_str(&text).expect("a JSON array");
        values
            .into_iter()
            .map(|v| Span {
                name: v["name"].as_str().unwrap_or_default().to_string(),
                kind: v["kind"].as_str().unwrap_or_default().to_string(),
                trace_id: v["trace_id"].as_str().unwrap_or_default().to_string(),
                span_id: v["span_id"].as_str().unwrap_or_default().to_string(),
                parent: v["parent"].as_str().unwrap_or_default().to_string(),
                links: v["links"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                attributes: v["attributes"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| {
                                let text = v.as_str().map(String::from).unwrap_or(v.to_string());
                                (k.clone(), text)
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }
}

/// The SDK with in-memory exporters, installed as the global providers,
/// with the W3C propagator and a `tracing` subscriber bridging spans.
#[derive(Debug)]
pub struct Otel {
    spans: InMemorySpanExporter,
    metrics: InMemoryMetricExporter,
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
}

impl Otel {
    /// Installs everything globally: call once per test process.
    pub fn install() -> Otel {
        let spans = InMemorySpanExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let metrics = InMemoryMetricExporter::default();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metrics.clone()).build())
            .build();
        global::set_text_map_propagator(TraceContextPropagator::new());
        global::set_tracer_provider(tracer_provider.clone());
        global::set_meter_provider(meter_provider.clone());
        let layer = tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("app"));
        tracing_subscriber::registry()
            .with(EnvFilter::new("info"))
            .with(layer)
            .init();
        Otel {
            spans,
            metrics,
            tracer_provider,
            meter_provider,
        }
    }

    /// Every span finished so far.
    pub fn spans(&self) -> Vec<Span> {
        let _ = self.tracer_provider.force_flush();
        self.spans
            .get_finished_spans()
            .expect("finished spans")
            .into_iter()
            .map(|s| Span {
                name: s.name.to_string(),
                kind: format!("{:?}", s.span_kind).to_lowercase(),
                trace_id: s.span_context.trace_id().to_string(),
                span_id: s.span_context.span_id().to_string(),
                parent: match s.parent_span_id {
                    id if id == opentelemetry::trace::SpanId::INVALID => String::new(),
                    id => id.to_string(),
                },
                links: s
                    .links
                    .iter()
                    .map(|l| l.span_context.span_id().to_string())
                    .collect(),
                attributes: s
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                    .collect(),
            })
            .collect()
    }

    /// The sum of a counter's points (or a histogram's counts, or a gauge's
    /// values) whose attributes include `filter`, at the latest export.
    pub fn metric_total(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.metrics.reset();
        self.meter_provider.force_flush().expect("metrics flushed");
        let exported = self.metrics.get_finished_metrics().expect("metrics");
        let matches = |attrs: Vec<&KeyValue>| {
            filter.iter().all(|(k, v)| {
                attrs
                    .iter()
                    .any(|kv| kv.key.as_str() == *k && kv.value.to_string() == *v)
            })
        };
        let mut total = 0.0;
        for resource in exported.iter() {
            for scope in resource.scope_metrics() {
                for metric in scope.metrics().filter(|m| m.name() == name) {
                    total += match metric.data() {
                        AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
                            .data_points()
                            .filter(|p| matches(p.attributes().collect()))
                            .map(|p| p.value() as f64)
                            .sum(),
                        AggregatedMetrics::U64(MetricData::Gauge(gauge)) => gauge
                            .data_points()
                            .filter(|p| matches(p.attributes().collect()))
                            .map(|p| p.value() as f64)
                            .sum(),
                        AggregatedMetrics::F64(MetricData::Histogram(h)) => h
                            .data_points()
                            .filter(|p| matches(p.attributes().collect()))
                            .map(|p| p.count() as f64)
                            .sum(),
                        _ => 0.0,
                    };
                }
            }
        }
        total
    }
}
