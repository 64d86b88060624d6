//! Logging: JSON lines on stdout through `tracing`, level from `LOG_LEVEL` (or `RUST_LOG`,
//! default `info`). JSON because the platform's log pipeline parses structured lines.

use tracing_subscriber::EnvFilter;

/// Installs the global JSON subscriber. Safe to call twice (the second call does nothing).
pub fn init() {
    let filter = std::env::var("LOG_LEVEL")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_env_filter(EnvFilter::new(filter))
        .try_init();
}
