//! `campaign_manager_tick_permit_use_ratio`: the share of this process' tick permits in use
//! (running ticks / `concurrency`, the service's `--workers`), read from the permit semaphore at
//! each scrape. It is the saturation signal: ticks wait on peers and MySQL, so a process can be
//! out of permits (ticks queue, lateness grows) while its CPU is low. One value per process, also
//! with several shards (they share the permits), so it is named `tick_`, not `chain_` like the
//! per-shard families of `metrics`.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, Opts};
use tokio::sync::Semaphore;

/// The collector; register it once per process.
pub(crate) struct PermitUse {
    permits: Arc<Semaphore>,
    capacity: usize,
    gauge: Gauge,
}

impl PermitUse {
    /// The use of `permits`, of which there are `capacity` in all.
    pub(crate) fn new(
        permits: Arc<Semaphore>,
        capacity: usize,
    ) -> Result<PermitUse, prometheus::Error> {
        let gauge = Gauge::with_opts(Opts::new(
            "campaign_manager_tick_permit_use_ratio",
            "Share of this process' tick permits (--workers) held by running ticks, 0 to 1",
        ))?;
        Ok(PermitUse {
            permits,
            capacity: capacity.max(1),
            gauge,
        })
    }

    fn ratio(&self) -> f64 {
        let free = self.permits.available_permits().min(self.capacity);
        (self.capacity - free) as f64 / self.capacity as f64
    }
}

impl Collector for PermitUse {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge.set(self.ratio());
        self.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_ticks_over_permits() {
        let permits = Arc::new(Semaphore::new(4));
        let usage = PermitUse::new(permits.clone(), 4).expect("gauge");
        let value = |u: &PermitUse| u.collect()[0].get_metric()[0].get_gauge().get_value();
        assert_eq!(value(&usage), 0.0);
        let held = permits.clone().try_acquire_many_owned(3).expect("permits");
        assert_eq!(value(&usage), 0.75);
        drop(held);
        assert_eq!(value(&usage), 0.0);
    }
}
