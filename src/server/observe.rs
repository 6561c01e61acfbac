//! Observability wiring: the Prometheus recorder installed when metrics
//! are on, `/metrics` served on the main port or on an admin port, the
//! gRPC metrics layer with the methods that exist, and the gauges the
//! server itself keeps (open watch streams).

use crate::background::Background;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::metrics::grpc::{GrpcMetricsLayer, KnownMethods};
use crate::watch::Hub;
use anyhow::Context;
use axum::response::IntoResponse;
use std::sync::Arc;
use tokio::net::TcpListener;
use tonic::service::Routes;

/// The path Prometheus scrapes.
pub const METRICS_PATH: &str = "/metrics";

/// Installs the recorder when metrics are on (first thing at start: a
/// metric handle taken before it records nowhere).
pub fn install(config: &Config) -> anyhow::Result<Option<Metrics>> {
    Ok(if config.metrics_enabled {
        Some(Metrics::install()?)
    } else {
        None
    })
}

/// Starts what keeps the metrics: the histogram upkeep and the
/// open-watchers gauge. The admin port, when configured, is bound here so
/// a busy port fails the start.
pub async fn start(
    config: &Config,
    metrics: Option<&Metrics>,
    hub: &Arc<Hub>,
    background: &Background,
) -> anyhow::Result<()> {
    let Some(metrics) = metrics else {
        return Ok(());
    };
    let stop = background.shutdown().clone();
    background.spawn(
        "metrics upkeep",
        metrics.clone().upkeep(stop.clone().cancelled_owned()),
    );
    let mut live = hub.live_changes();
    background.spawn("watch gauge", async move {
        loop {
            crate::metrics::watch_streams(*live.borrow_and_update());
            tokio::select! {
                r = live.changed() => if r.is_err() { return },
                _ = stop.cancelled() => return,
            }
        }
    });
    if let Some(addr) = config.metrics_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (metrics_listen)"))?;
        tracing::info!(addr = %listener.local_addr()?, "metrics on the admin port");
        let admin = tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(Routes::from(with_route(axum::Router::new(), metrics)));
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let stop = background.shutdown().clone();
        background.spawn("metrics admin port", async move {
            if let Err(e) = admin
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "the metrics admin port stopped");
            }
        });
    }
    Ok(())
}

/// `app` with `/metrics` on it, when metrics are on and no admin port is
/// configured. Added outside the edge stack: a scrape every few seconds
/// needs no request id, span or log line.
pub fn main_port_route(
    app: axum::Router,
    config: &Config,
    metrics: Option<&Metrics>,
) -> axum::Router {
    match metrics {
        Some(m) if config.metrics_listen.is_none() => with_route(app, m),
        _ => app,
    }
}

fn with_route(app: axum::Router, metrics: &Metrics) -> axum::Router {
    let m = metrics.clone();
    app.route(
        METRICS_PATH,
        axum::routing::get(move || {
            let m = m.clone();
            async move {
                (
                    [(http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
                    m.render(),
                )
                    .into_response()
            }
        }),
    )
}

/// The gRPC metrics layer (counting nothing when metrics are off).
pub fn grpc_layer(config: &Config) -> GrpcMetricsLayer {
    if config.metrics_enabled {
        GrpcMetricsLayer::new(known_methods())
    } else {
        GrpcMetricsLayer::disabled()
    }
}

/// Every gRPC method this server answers, read from the descriptor sets
/// it registers with reflection (never typed by hand).
pub fn known_methods() -> KnownMethods {
    let mut pool = prost_reflect::DescriptorPool::new();
    for set in [
        crate::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        if let Err(e) = pool.decode_file_descriptor_set(set) {
            tracing::warn!(error = %e, "a descriptor set did not decode; its methods count as unknown");
        }
    }
    let services: Vec<(String, Vec<String>)> = pool
        .services()
        .map(|s| {
            let methods = s.methods().map(|m| m.name().to_string()).collect();
            (s.full_name().to_string(), methods)
        })
        .collect();
    KnownMethods::new(services.iter().map(|(s, m)| (s.as_str(), m.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_service_is_known() {
        let known = known_methods();
        assert!(known.len() > 10, "{}", known.len());
    }
}
