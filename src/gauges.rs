//! Gauges of the deployment's state that no tick worker reports, read from MySQL by every
//! service process (`campaign-manager`, also with `--workers 0`):
//!
//! * `campaign_manager_campaigns_executing`: campaigns with `execute = run`, i.e. that want a
//!   tick chain. With no live tick worker beside it, campaigns that should dial do not (the
//!   `CampaignNoLiveWorker` rule), which the workers' own gauges cannot say once every worker
//!   is gone.
//! * `campaign_manager_tick_switch_off`: the durable off switch of the tick namespace, so that
//!   rules about stopped ticks stay quiet while an operator holds them on purpose.
//!
//! One read per `interval` (two small queries); a failed read leaves the last values.

use std::time::Duration;

use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::store::Store;

/// How often the gauges are read.
pub const GAUGE_INTERVAL: Duration = Duration::from_secs(15);

/// Reads the gauges every `interval` until `stop` turns true.
pub async fn watch_deployment(
    store: Store,
    namespace: String,
    metrics: Metrics,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        read_once(&store, &namespace, &metrics).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One read of both gauges.
pub async fn read_once(store: &Store, namespace: &str, metrics: &Metrics) {
    match store.campaigns.ids_executing().await {
        Ok(ids) => metrics
            .campaigns_executing
            .set(i64::try_from(ids.len()).unwrap_or(i64::MAX)),
        Err(e) => tracing::debug!(error = %e, "cannot count executing campaigns"),
    }
    match store.tick_switch.is_off(namespace).await {
        Ok(off) => metrics.tick_switch_off.set(i64::from(off)),
        Err(e) => tracing::debug!(error = %e, "cannot read the durable tick switch"),
    }
}
