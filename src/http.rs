//! The small HTTP endpoint: Prometheus metrics at the configured path, `/healthz` and
//! `/readyz`. One listener, as the platform's deployments scrape and probe one port.
//!
//! * `/healthz` is **liveness**: it answers whenever the process's runtime serves requests and
//!   checks no dependency, so an outage of MySQL, Redis or RabbitMQ never gets pods restarted.
//! * `/readyz` is **readiness**: every [`Probe`] (MySQL `SELECT 1`, Redis `PING`, the broker
//!   connection, this process's tick workers) runs at once, each cut off after
//!   [`PROBE_TIMEOUT`], so the answer comes well within the kubelet's 1 s default. 200 when all
//!   pass, 503 naming the failing ones; the body is a small JSON object of every check.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::metrics::Metrics;

/// How long one readiness check may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// Something readiness depends on.
#[async_trait]
pub trait Probe: Send + Sync {
    /// Name of the check in the `/readyz` body.
    fn name(&self) -> &'static str;
    /// `Ok` when it works now, otherwise why not (no secrets: it is shown to anyone who can
    /// reach the metrics port).
    async fn check(&self) -> Result<(), String>;
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    probes: Arc<Vec<Box<dyn Probe>>>,
}

/// Serves metrics and health on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics_path: &str,
    metrics: Metrics,
    probes: Vec<Box<dyn Probe>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
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

async fn readyz(
    State(s): State<AppState>,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    let (status, body) = readiness(&s.probes).await;
    let json = [(header::CONTENT_TYPE, "application/json")];
    (status, json, format!("{body}\n"))
}

/// Runs every probe at once, each bounded by [`PROBE_TIMEOUT`]; the status and the JSON body
/// of `/readyz`: `{"ready": bool, "failing": [names], "checks": {name: "ok" | reason}}`.
pub async fn readiness(probes: &[Box<dyn Probe>]) -> (StatusCode, Value) {
    let results = futures::future::join_all(probes.iter().map(|p| async move {
        let outcome = match tokio::time::timeout(PROBE_TIMEOUT, p.check()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
        };
        (p.name(), outcome)
    }))
    .await;
    let mut checks = Map::new();
    let mut failing = Vec::new();
    for (name, outcome) in results {
        let shown = match outcome {
            Ok(()) => "ok".to_owned(),
            Err(reason) => {
                failing.push(name);
                reason
            }
        };
        checks.insert(name.to_owned(), Value::String(shown));
    }
    let status = if failing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "ready": failing.is_empty(), "failing": failing, "checks": checks });
    (status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Option<Duration>, Result<(), String>);

    #[async_trait]
    impl Probe for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        async fn check(&self) -> Result<(), String> {
            if let Some(d) = self.1 {
                tokio::time::sleep(d).await;
            }
            self.2.clone()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn all_pass_is_200() {
        let probes: Vec<Box<dyn Probe>> = vec![
            Box::new(Fixed("mysql", None, Ok(()))),
            Box::new(Fixed("redis", Some(Duration::from_millis(100)), Ok(()))),
        ];
        let (status, body) = readiness(&probes).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"ready": true, "failing": [], "checks": {"mysql": "ok", "redis": "ok"}})
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failing_and_slow_checks_are_named_and_run_concurrently() {
        let started = tokio::time::Instant::now();
        let probes: Vec<Box<dyn Probe>> = vec![
            Box::new(Fixed("mysql", Some(Duration::from_secs(5)), Ok(()))),
            Box::new(Fixed("redis", Some(Duration::from_secs(5)), Ok(()))),
            Box::new(Fixed("rabbitmq", None, Err("no live connection".into()))),
            Box::new(Fixed("workers", None, Ok(()))),
        ];
        let (status, body) = readiness(&probes).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["failing"], json!(["mysql", "redis", "rabbitmq"]));
        assert_eq!(body["checks"]["mysql"], json!("no answer within 250 ms"));
        assert_eq!(body["checks"]["rabbitmq"], json!("no live connection"));
        assert_eq!(body["checks"]["workers"], json!("ok"));
        // Two 5 s checks cut at 250 ms each, side by side: one timeout in all (virtual time).
        assert_eq!(started.elapsed(), PROBE_TIMEOUT);
    }
}
