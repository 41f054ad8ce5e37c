//! Tracing and OpenTelemetry set-up, and W3C trace-context propagation.
//!
//! A trace must survive every hop: through gRPC (the `traceparent` metadata header) and
//! through systems that only keep FlowFile attributes, such as NiFi (the `traceparent`
//! attribute). Spans are exported over OTLP when the standard `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) variable is set; without it, trace ids are still
//! generated and propagated so that a later hop with an exporter joins the same trace.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, global};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the tracer provider alive; flushes pending spans when dropped.
#[must_use = "spans are flushed when the guard is dropped"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()))
        && !std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Installs logging (to stderr, filtered by `LOUPE_LOG` or `RUST_LOG`, else `default_filter`)
/// and the OpenTelemetry tracer. Safe to call more than once (later calls only return a guard).
///
/// Must be called inside a Tokio runtime when OTLP export is configured.
pub fn init(service_name: &str, default_filter: &str) -> TelemetryGuard {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service_name.to_string());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if otlp_configured() {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => eprintln!("loupe: OTLP exporter not started: {e}"),
        }
    }
    let provider = builder.build();
    global::set_tracer_provider(provider.clone());
    let tracer = provider.tracer("loupe");

    let filter = std::env::var("LOUPE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_filter.to_string());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter(EnvFilter::new(filter));
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    TelemetryGuard {
        provider: Some(provider),
    }
}

struct MetadataCarrier<'a>(&'a tonic::metadata::MetadataMap);
struct MetadataCarrierMut<'a>(&'a mut tonic::metadata::MetadataMap);

impl Extractor for MetadataCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

impl Injector for MetadataCarrierMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// The remote parent carried in gRPC metadata, if any.
pub fn extract_metadata(metadata: &tonic::metadata::MetadataMap) -> Option<Context> {
    let cx = global::get_text_map_propagator(|p| p.extract(&MetadataCarrier(metadata)));
    cx.span().span_context().is_valid().then_some(cx)
}

/// The remote parent carried in FlowFile attributes (`traceparent`), if any.
pub fn extract_attributes(attributes: &HashMap<String, String>) -> Option<Context> {
    let cx = global::get_text_map_propagator(|p| p.extract(attributes));
    cx.span().span_context().is_valid().then_some(cx)
}

/// Writes the current span's context into gRPC metadata.
pub fn inject_current_into_metadata(metadata: &mut tonic::metadata::MetadataMap) {
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut MetadataCarrierMut(metadata))
        });
    }
}

/// Writes a span's context into FlowFile attributes (`traceparent`, `tracestate`).
pub fn inject_span_into_attributes(span: &tracing::Span, attributes: &mut HashMap<String, String>) {
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        global::get_text_map_propagator(|p| p.inject_context(&cx, attributes));
        // An empty `tracestate` carries nothing; keep attribute maps clean.
        if attributes
            .get(crate::attr::TRACESTATE)
            .is_some_and(String::is_empty)
        {
            attributes.remove(crate::attr::TRACESTATE);
        }
    }
}

/// Makes `parent` the parent of `span` (ignored when tracing is not installed).
pub fn set_parent(span: &tracing::Span, parent: Context) {
    let _ = span.set_parent(parent);
}
