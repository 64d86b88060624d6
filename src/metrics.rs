//! The service's Prometheus metrics (docs/metrics.md), registered into a registry
//! owned by the process (never the global default one, so tests can start many services in
//! one process). The bus and the scheduler register their own metrics into the same registry.
//! Every family is listed, with type, labels and unit, in `docs/metrics.md`.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

const NAMESPACE: &str = "campaign_manager";
const BUCKETS_MS: [f64; 5] = [50.0, 100.0, 500.0, 1000.0, 3000.0];

/// All metrics of the service and api layers.
#[derive(Clone)]
pub struct Metrics {
    /// The registry everything is registered in.
    pub registry: Registry,
    /// RPC request handling time, ms, by route label, method and status class.
    pub receive_request_process_time: HistogramVec,
    /// Subscribed event handling time, ms, by publisher and type.
    pub receive_subscribe_event_process_time: HistogramVec,
    /// Campaigns created.
    pub campaign_create_total: IntCounter,
    /// Campaigns set to run.
    pub campaign_status_run_total: IntCounter,
    /// Campaigns stopped.
    pub campaign_status_stop_total: IntCounter,
    /// Campaign ticks run.
    pub campaign_execute_total: IntCounter,
    /// Campaigncalls created, by reference type.
    pub campaigncall_create_total: IntCounterVec,
    /// Campaigncalls finished, by result.
    pub campaigncall_done_total: IntCounterVec,
    /// Event publish + webhook time, ms, by event type.
    pub notify_process_time: HistogramVec,
    /// Events published on the bus, by type.
    pub notify_total: IntCounterVec,
    /// Events published to the platform's topic exchange, by type and result (`ok`, `error`).
    pub topic_publish_total: IntCounterVec,
    /// Events published to the topic exchange without an address (the `-` placeholder), by type.
    pub topic_placeholder_total: IntCounterVec,
    /// Campaign deletes whose flow could not be deleted, by reason (`not_found`, `error`).
    pub campaign_flow_delete_failed_total: IntCounterVec,
    /// Orphaned flows the reconcile pass deleted.
    pub campaign_flow_reconcile_cleaned_total: IntCounter,
    /// Reconcile candidates whose flow could not be read or deleted.
    pub campaign_flow_reconcile_failed_total: IntCounter,
    /// Ticks that stopped a campaign's chain, by reason.
    pub tick_stop_total: IntCounterVec,
    /// Ticks that backed off on a transient failure, by reason.
    pub tick_backoff_total: IntCounterVec,
    /// Time of one campaign tick, ms (`campaign_manager_tick_process_time_ms`).
    pub tick_process_time: Histogram,
    /// Dials whose peer request timed out or was lost (the campaigncall stays open).
    pub dial_unknown_total: IntCounter,
    /// Dials a tick did not record, by reason (`stale_tick`, `late_tick`, `try_taken`,
    /// `not_running`, `suppressed`, `callback_pending`, `callback_taken`, `customer_limit`).
    pub dial_refused_total: IntCounterVec,
    /// Open campaigncalls the repair looked at, by what it found (`never_created`,
    /// `not_found_once`, `not_found_after_answer`, `hangup_lost`, `flow_ended`, `still_up`,
    /// `over_max_duration`, `peer_error`, `no_reference`).
    pub campaigncall_repair_total: IntCounterVec,
    /// Campaigns whose state the repair completed, by repair (`stopping_stopped`,
    /// `run_without_execution`).
    pub campaign_repair_total: IntCounterVec,
    /// Campaigns with `execute = run` (not deleted), read from MySQL by the service processes
    /// (`campaign_manager_campaigns_executing`; see `crate::gauges`).
    pub campaigns_executing: IntGauge,
    /// Age in seconds of the oldest open campaigncall past its repair rule, due or postponed
    /// (`campaign_manager_repair_oldest_overdue_seconds`; 0 when there is none), read by every
    /// process running the repair after each of its passes: a campaigncall the repair cannot
    /// resolve shows as a growing age, bounded by the longest call.
    pub repair_oldest_overdue_seconds: IntGauge,
    /// 1 while the durable off switch of the tick namespace is set in MySQL, else 0
    /// (`campaign_manager_tick_switch_off`; see `crate::gauges`).
    pub tick_switch_off: IntGauge,
}

/// The version this binary was built from (the package version) and the commit, when the build
/// was given one in `CAMPAIGN_MANAGER_COMMIT` (`.ci/build-release` passes git's, the Dockerfile
/// its `COMMIT` build argument); `unknown` otherwise.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");
/// See [`BUILD_VERSION`].
pub const BUILD_COMMIT: &str = match option_env!("CAMPAIGN_MANAGER_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

/// `campaign_manager_build_info{version,commit} 1`: which build runs where, and a series every
/// process of this service exports (the alert rules use it to pick this service's pods).
fn register_build_info(registry: &Registry) -> Result<(), prometheus::Error> {
    let info = IntGaugeVec::new(
        Opts::new(
            "build_info",
            "1, labelled with the version and commit of the running build.",
        )
        .namespace(NAMESPACE),
        &["version", "commit"],
    )?;
    info.with_label_values(&[BUILD_VERSION, BUILD_COMMIT])
        .set(1);
    registry.register(Box::new(info))
}

/// The `process_*` metrics the Go service exported through its default registry (CPU seconds,
/// resident and virtual memory, open and maximum file descriptors, start time, threads).
/// They come from `/proc`, so only on Linux; elsewhere there is nothing to register.
fn register_process_collector(registry: &Registry) -> Result<(), prometheus::Error> {
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    #[cfg(not(target_os = "linux"))]
    let _ = registry;
    Ok(())
}

impl Metrics {
    /// Creates and registers every metric in `registry`, with the `process_*` collector.
    pub fn new(registry: Registry) -> Result<Metrics, prometheus::Error> {
        let hist =
            |name: &str, help: &str, labels: &[&str]| -> Result<HistogramVec, prometheus::Error> {
                let h = HistogramVec::new(
                    HistogramOpts::new(name, help)
                        .namespace(NAMESPACE)
                        .buckets(BUCKETS_MS.to_vec()),
                    labels,
                )?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::with_opts(Opts::new(name, help).namespace(NAMESPACE))?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let counter_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help).namespace(NAMESPACE), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        // Ours, not the Go service's: the name says its unit (ms, like the Go histograms).
        let tick_process_time = Histogram::with_opts(
            HistogramOpts::new("tick_process_time_ms", "Time of one campaign tick in ms.")
                .namespace(NAMESPACE)
                .buckets(vec![1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 3000.0]),
        )?;
        registry.register(Box::new(tick_process_time.clone()))?;
        register_process_collector(&registry)?;
        register_build_info(&registry)?;
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::with_opts(Opts::new(name, help).namespace(NAMESPACE))?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let campaigns_executing = gauge(
            "campaigns_executing",
            "Campaigns with execute = run in MySQL (that want a tick chain).",
        )?;
        let tick_switch_off = gauge(
            "tick_switch_off",
            "1 while the durable off switch of the tick namespace is set in MySQL.",
        )?;
        let repair_oldest_overdue_seconds = gauge(
            "repair_oldest_overdue_seconds",
            "Age in seconds of the oldest open campaigncall past its repair rule (0: none).",
        )?;

        let metrics = Metrics {
            receive_request_process_time: hist(
                "receive_request_process_time",
                "Process time of received requests in ms.",
                &["type", "method", "status"],
            )?,
            receive_subscribe_event_process_time: hist(
                "receive_subscribe_event_process_time",
                "Process time of received subscribed events in ms.",
                &["publisher", "type"],
            )?,
            campaign_create_total: counter("campaign_create_total", "Campaigns created.")?,
            campaign_status_run_total: counter(
                "campaign_status_run_total",
                "Campaigns set to run.",
            )?,
            campaign_status_stop_total: counter(
                "campaign_status_stop_total",
                "Campaigns stopped.",
            )?,
            campaign_execute_total: counter("campaign_execute_total", "Campaign ticks run.")?,
            campaigncall_create_total: counter_vec(
                "campaigncall_create_total",
                "Campaigncalls created.",
                &["reference_type"],
            )?,
            campaigncall_done_total: counter_vec(
                "campaigncall_done_total",
                "Campaigncalls finished.",
                &["result"],
            )?,
            notify_process_time: hist(
                "notify_process_time",
                "Process time of event notifications in ms.",
                &["type"],
            )?,
            notify_total: counter_vec("notify_total", "Events published.", &["type"])?,
            topic_publish_total: counter_vec(
                "topic_publish_total",
                "Total number of published events to the global topic exchange.",
                &["type", "result"],
            )?,
            topic_placeholder_total: counter_vec(
                "topic_placeholder_total",
                "Total number of published events to the global topic exchange with a placeholder subscription id.",
                &["type"],
            )?,
            campaign_flow_delete_failed_total: counter_vec(
                "campaign_flow_delete_failed_total",
                "Campaign deletes whose flow could not be deleted, by reason.",
                &["reason"],
            )?,
            campaign_flow_reconcile_cleaned_total: counter(
                "campaign_flow_reconcile_cleaned_total",
                "Orphaned flows of deleted campaigns deleted by the reconcile pass.",
            )?,
            campaign_flow_reconcile_failed_total: counter(
                "campaign_flow_reconcile_failed_total",
                "Reconcile candidates whose flow could not be read or deleted.",
            )?,
            tick_stop_total: counter_vec(
                "tick_stop_total",
                "Campaign chains ended by a tick, by reason.",
                &["reason"],
            )?,
            tick_backoff_total: counter_vec(
                "tick_backoff_total",
                "Campaign ticks that backed off on a transient failure, by reason.",
                &["reason"],
            )?,
            tick_process_time,
            dial_unknown_total: counter(
                "dial_unknown_total",
                "Dials whose peer request timed out or was lost; their campaigncalls stay open.",
            )?,
            dial_refused_total: counter_vec(
                "dial_refused_total",
                "Dials a tick did not record (stale or late tick, try taken, campaign stopped).",
                &["reason"],
            )?,
            campaigncall_repair_total: counter_vec(
                "campaigncall_repair_total",
                "Open campaigncalls the repair looked at, by what it found.",
                &["found"],
            )?,
            campaign_repair_total: counter_vec(
                "campaign_repair_total",
                "Campaigns whose interrupted state change the repair completed.",
                &["repair"],
            )?,
            campaigns_executing,
            repair_oldest_overdue_seconds,
            tick_switch_off,
            registry,
        };
        metrics.start_at_zero();
        Ok(metrics)
    }

    /// Creates the series of the label values the repair, the dial record, the topic publisher
    /// and the campaign delete use, at 0, so
    /// an alert on their first increase (`increase(...) > 0`) sees it: a series that appears
    /// with its first increment has no earlier sample to compare with. The values are the
    /// fixed sets these counters are documented with (docs/metrics.md).
    fn start_at_zero(&self) {
        for found in [
            "never_created",
            "not_found_once",
            "not_found_after_answer",
            "hangup_lost",
            "flow_ended",
            "still_up",
            "over_max_duration",
            "peer_error",
            "no_reference",
        ] {
            self.campaigncall_repair_total.with_label_values(&[found]);
        }
        for repair in ["stopping_stopped", "run_without_execution"] {
            self.campaign_repair_total.with_label_values(&[repair]);
        }
        for reason in [
            "stale_tick",
            "late_tick",
            "try_taken",
            "not_running",
            "suppressed",
            "callback_pending",
            "callback_taken",
        ] {
            self.dial_refused_total.with_label_values(&[reason]);
        }
        for event_type in crate::model::DomainEvent::NAMES {
            for result in ["ok", "error"] {
                self.topic_publish_total
                    .with_label_values(&[event_type, result]);
            }
            self.topic_placeholder_total
                .with_label_values(&[event_type]);
        }
        for reason in ["not_found", "error"] {
            self.campaign_flow_delete_failed_total
                .with_label_values(&[reason]);
        }
    }

    /// A fresh registry with the metrics registered (for tests and tools).
    pub fn standalone() -> Metrics {
        match Metrics::new(Registry::new()) {
            Ok(m) => m,
            // Registration only fails on duplicate names, impossible in a fresh registry.
            Err(e) => unreachable!("fresh registry rejected metrics: {e}"),
        }
    }

    /// The text exposition of every metric in the registry.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_default()
    }
}
