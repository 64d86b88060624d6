//! Prometheus metrics owned by the transport (CONTRACT §12).
//!
//! Registered into a `Registry` handed in by the caller, never the global default registry,
//! because tests start many services in one process and names would collide.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// The transport's metric families.
#[derive(Clone)]
pub struct BusMetrics {
    /// `campaign_manager_request_process_time{target,resource,method}` (ms).
    pub request_process_time: HistogramVec,
    /// `campaign_manager_circuitbreaker_state_transitions_total{target,from,to}`.
    pub breaker_transitions: IntCounterVec,
    /// `campaign_manager_circuitbreaker_state{target}`: 0 closed, 1 open, 2 half-open.
    pub breaker_state: IntGaugeVec,
    /// `campaign_manager_circuitbreaker_rejected_total{target}`.
    pub breaker_rejected: IntCounterVec,
    /// `rabbitmqhandler_event_retried_total{queue,retry_count}`.
    pub event_retried: IntCounterVec,
    /// `rabbitmqhandler_event_dropped_total{queue}`.
    pub event_dropped: IntCounterVec,
}

impl BusMetrics {
    /// Create the metrics and register them into `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let request_process_time = HistogramVec::new(
            HistogramOpts::new(
                "request_process_time",
                "Process time of outbound RPC requests in milliseconds",
            )
            .namespace("campaign_manager")
            .buckets(vec![50.0, 100.0, 500.0, 1000.0, 3000.0]),
            &["target", "resource", "method"],
        )?;
        let breaker_transitions = IntCounterVec::new(
            Opts::new(
                "circuitbreaker_state_transitions_total",
                "Circuit breaker state transitions",
            )
            .namespace("campaign_manager"),
            &["target", "from", "to"],
        )?;
        let breaker_state = IntGaugeVec::new(
            Opts::new(
                "circuitbreaker_state",
                "Circuit breaker state (0 closed, 1 open, 2 half-open)",
            )
            .namespace("campaign_manager"),
            &["target"],
        )?;
        let breaker_rejected = IntCounterVec::new(
            Opts::new(
                "circuitbreaker_rejected_total",
                "Calls rejected by an open circuit breaker",
            )
            .namespace("campaign_manager"),
            &["target"],
        )?;
        let event_retried = IntCounterVec::new(
            Opts::new(
                "rabbitmqhandler_event_retried_total",
                "Consumed events scheduled for a retry",
            ),
            &["queue", "retry_count"],
        )?;
        let event_dropped = IntCounterVec::new(
            Opts::new(
                "rabbitmqhandler_event_dropped_total",
                "Consumed events dropped after the last retry",
            ),
            &["queue"],
        )?;
        registry.register(Box::new(request_process_time.clone()))?;
        registry.register(Box::new(breaker_transitions.clone()))?;
        registry.register(Box::new(breaker_state.clone()))?;
        registry.register(Box::new(breaker_rejected.clone()))?;
        registry.register(Box::new(event_retried.clone()))?;
        registry.register(Box::new(event_dropped.clone()))?;
        Ok(Self {
            request_process_time,
            breaker_transitions,
            breaker_state,
            breaker_rejected,
            event_retried,
            event_dropped,
        })
    }
}
