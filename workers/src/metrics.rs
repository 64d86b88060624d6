//! Prometheus metrics of the scheduler, registered into the registry the service passes in
//! (names prefixed `campaign_manager_chain_`). Counters and the lateness histogram are per
//! process; the gauges are cluster-wide values read from Redis by the gauge loop.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::SchedulerError;

/// The scheduler's metrics handles.
#[derive(Clone)]
pub(crate) struct Metrics {
    ticks: IntCounterVec,
    pub(crate) lateness_ms: Histogram,
    pub(crate) live_chains: IntGauge,
    pub(crate) reseeds: IntCounter,
    pub(crate) queue_depth: IntGauge,
    pub(crate) running_ticks: IntGauge,
    pub(crate) dead_jobs: IntGauge,
    pub(crate) live_workers: IntGauge,
    pub(crate) oldest_overdue_ms: IntGauge,
    pub(crate) paused: IntGauge,
    wakeups: IntCounterVec,
}

/// The loops whose wake-ups are counted, the `loop` label of the wake-ups counter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LoopName {
    Feeder,
    Fetch,
    Reconciler,
    Gauges,
}

impl LoopName {
    const ALL: [LoopName; 4] = [
        LoopName::Feeder,
        LoopName::Fetch,
        LoopName::Reconciler,
        LoopName::Gauges,
    ];

    fn label(self) -> &'static str {
        match self {
            LoopName::Feeder => "feeder",
            LoopName::Fetch => "fetch",
            LoopName::Reconciler => "reconciler",
            LoopName::Gauges => "gauges",
        }
    }
}

/// How a delivered tick ended, the `outcome` label of the ticks counter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    Continue,
    Stop,
    Stale,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Continue => "continue",
            Outcome::Stop => "stop",
            Outcome::Stale => "stale",
        }
    }
}

impl Metrics {
    /// Create the metrics and register them into `registry`. With several shards in one
    /// process each shard registers its own set, told apart by a constant `shard` label.
    pub(crate) fn register(
        registry: &Registry,
        shard: Option<usize>,
    ) -> Result<Self, SchedulerError> {
        let m = Self::unregistered(shard)?;
        registry.register(Box::new(m.ticks.clone()))?;
        registry.register(Box::new(m.lateness_ms.clone()))?;
        registry.register(Box::new(m.live_chains.clone()))?;
        registry.register(Box::new(m.reseeds.clone()))?;
        registry.register(Box::new(m.queue_depth.clone()))?;
        registry.register(Box::new(m.running_ticks.clone()))?;
        registry.register(Box::new(m.dead_jobs.clone()))?;
        registry.register(Box::new(m.live_workers.clone()))?;
        registry.register(Box::new(m.oldest_overdue_ms.clone()))?;
        registry.register(Box::new(m.paused.clone()))?;
        registry.register(Box::new(m.wakeups.clone()))?;
        Ok(m)
    }

    fn unregistered(shard: Option<usize>) -> Result<Self, SchedulerError> {
        let opts = |name: &str, help: &str| {
            let opts = Opts::new(name, help);
            match shard {
                Some(i) => opts.const_label("shard", i.to_string()),
                None => opts,
            }
        };
        let gauge = |name: &str, help: &str| IntGauge::with_opts(opts(name, help));
        let ticks = IntCounterVec::new(
            opts(
                "campaign_manager_chain_ticks_total",
                "Tick deliveries by outcome: continue / stop (tick ran) or stale (dropped)",
            ),
            &["outcome"],
        )?;
        for o in [Outcome::Continue, Outcome::Stop, Outcome::Stale] {
            ticks.with_label_values(&[o.label()]);
        }
        let lateness_ms = Histogram::with_opts(
            HistogramOpts::from(opts(
                "campaign_manager_chain_tick_lateness_ms",
                "Milliseconds between a tick's due time and its start",
            ))
            .buckets(vec![
                1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
            ]),
        )?;
        let live_chains = gauge(
            "campaign_manager_chain_live_chains",
            "Live tick chains in the namespace",
        )?;
        let reseeds = IntCounter::with_opts(opts(
            "campaign_manager_chain_reseeds_total",
            "Chains seeded by the reconciler because they were missing or their lease expired",
        ))?;
        let queue_depth = gauge(
            "campaign_manager_chain_queue_depth",
            "Pending ticks due now or overdue, plus jobs queued in apalis and not yet fetched",
        )?;
        let running_ticks = gauge(
            "campaign_manager_chain_running_ticks",
            "Ticks running in this process",
        )?;
        // Cluster-wide health, read from Redis by the gauge loop (what the alert rules watch).
        let dead_jobs = gauge(
            "campaign_manager_chain_dead_jobs",
            "Jobs in apalis-redis' dead set of the namespace (expected 0)",
        )?;
        let live_workers = gauge(
            "campaign_manager_chain_live_workers",
            "apalis workers of the namespace whose heartbeat is recent (one per worker process)",
        )?;
        let oldest_overdue_ms = gauge(
            "campaign_manager_chain_oldest_overdue_ms",
            "Milliseconds the most overdue pending tick of the namespace is past its due time (0: none)",
        )?;
        let paused = gauge(
            "campaign_manager_chain_paused",
            "1 while the namespace is paused (`campaign-control queue drain`), else 0",
        )?;
        let wakeups = IntCounterVec::new(
            opts(
                "campaign_manager_chain_loop_wakeups_total",
                "Passes of the scheduler's background loops (feeder steps, apalis fetch polls, reconciliations, gauge reads)",
            ),
            &["loop"],
        )?;
        for l in LoopName::ALL {
            wakeups.with_label_values(&[l.label()]);
        }
        Ok(Self {
            wakeups,
            ticks,
            lateness_ms,
            live_chains,
            reseeds,
            queue_depth,
            running_ticks,
            dead_jobs,
            live_workers,
            oldest_overdue_ms,
            paused,
        })
    }

    /// The wake-ups counter of one loop.
    pub(crate) fn wakeups(&self, name: LoopName) -> IntCounter {
        self.wakeups.with_label_values(&[name.label()])
    }

    pub(crate) fn tick(&self, outcome: Outcome) {
        self.ticks.with_label_values(&[outcome.label()]).inc();
    }
}
