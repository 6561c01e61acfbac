//! Distributed tracing: OpenTelemetry export over OTLP/HTTP when the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and W3C trace context
//! (`traceparent`, `tracestate`) taken from incoming requests and passed
//! on to outgoing LLM calls.
//!
//! Why here and so small: the rest of verdict only logs with `tracing`
//! spans (one per request, carrying its request id, from the edge). This
//! module turns those spans into OpenTelemetry spans when an endpoint is
//! configured, so a trace runs caller → verdict → LLM. Without the
//! variable nothing is exported and [`parent_from`]/[`inject`] are no-ops.
//! The standard `OTEL_*` variables (service name, headers, sampler) are
//! read by the SDK itself.
//!
//! Layering: a foundation module; the only place that names the
//! OpenTelemetry crates (checked by `tests/it/architecture.rs`).

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The variable that turns export on (the OpenTelemetry standard one).
pub const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The running exporter; [`Exporter::shutdown`] flushes the spans still
/// buffered (call it after the server stopped).
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Flushes and stops the exporter.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "OpenTelemetry exporter did not flush cleanly");
        }
    }
}

/// Starts OTLP/HTTP export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the
/// SDK appends `/v1/traces`): the `tracing` layer to add to the
/// subscriber, and the exporter to shut down at exit. None when unset.
pub fn otlp_layer<S>() -> Result<Option<(impl tracing_subscriber::Layer<S>, Exporter)>, String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    if std::env::var_os(ENDPOINT_VAR).is_none_or(|v| v.is_empty()) {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("verdict")
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer = provider.tracer("verdict");
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Ok(Some((layer, Exporter { provider })))
}

/// Makes the trace context in `headers` (gRPC metadata are headers) the
/// parent of `span`. A request without one starts a new trace.
pub fn set_parent_from(span: &tracing::Span, headers: &http::HeaderMap) {
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    // Fails only when no OpenTelemetry layer is installed: nothing to do.
    let _ = span.set_parent(cx);
}

/// Adds the current span's trace context to outgoing `headers` (an LLM
/// call), so the LLM's own tracing joins the trace.
pub fn inject(headers: &mut http::HeaderMap) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeadersMut(headers))
    });
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut http::HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// A caller's `traceparent` becomes the parent of verdict's span, and
    /// the same trace id leaves with the LLM call.
    #[test]
    fn trace_context_flows_from_the_caller_to_the_llm_call() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
            let mut incoming = http::HeaderMap::new();
            incoming.insert(
                "traceparent",
                format!("00-{trace_id}-00f067aa0ba902b7-01")
                    .parse()
                    .unwrap(),
            );
            let span = tracing::info_span!("request");
            set_parent_from(&span, &incoming);
            let _entered = span.enter();
            let mut outgoing = http::HeaderMap::new();
            inject(&mut outgoing);
            let sent = outgoing
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(sent.contains(trace_id), "{sent:?}");
            assert!(!sent.contains("00f067aa0ba902b7"), "a new span id: {sent}");
        });
    }
}
