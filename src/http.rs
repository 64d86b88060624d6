//! The small HTTP endpoint: Prometheus metrics at the configured path, `/healthz` (the
//! process is alive) and `/readyz` (MySQL, Redis and the broker answer). One listener, as the
//! platform's deployments scrape and probe one port.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::Metrics;

/// Something readiness depends on.
#[async_trait]
pub trait Probe: Send + Sync {
    /// Name shown in the `/readyz` body.
    fn name(&self) -> &'static str;
    /// Whether it answers now.
    async fn ready(&self) -> bool;
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    probes: Arc<Vec<Box<dyn Probe>>>,
}

/// Serves metrics and health on `listen` until `shutdown` resolves.
pub async fn serve(
    listen: &str,
    metrics_path: &str,
    metrics: Metrics,
    probes: Vec<Box<dyn Probe>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let state = AppState {
        metrics,
        probes: Arc::new(probes),
    };
    let app = Router::new()
        .route(metrics_path, get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn render_metrics(State(s): State<AppState>) -> String {
    s.metrics.render()
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, String) {
    let mut body = String::new();
    let mut ok = true;
    for p in s.probes.iter() {
        let up = p.ready().await;
        ok &= up;
        body.push_str(&format!(
            "{} {}\n",
            p.name(),
            if up { "ok" } else { "down" }
        ));
    }
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        body,
    )
}
