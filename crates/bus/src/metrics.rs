//! Prometheus metrics owned by the transport (docs/metrics.md).
//!
//! Registered into a `Registry` handed in by the caller, never the global default registry,
//! because tests start many services in one process and names would collide.
//!
//! Label values come from fixed sets, never straight from a message: every distinct value is a
//! new time series kept for the life of the process, so a caller-controlled string (a request's
//! `method`, an event's `type`) would let anyone on the bus grow `/metrics` without bound.
//! [`method_label`] is the one mapping for request methods.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// The `method` label of a request: the four methods the platform's routes use, anything else
/// `other` (so hostile or garbled envelopes cannot mint new series).
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        _ => "other",
    }
}

/// The `status` label of a handled request: the class of its status code (`2xx`, `3xx`, `4xx`,
/// `5xx`), anything outside 200-599 `other`. Classes rather than codes: an alert asks for the
/// share of `5xx`, and the set stays five values whatever a handler answers.
pub fn status_label(status_code: u16) -> &'static str {
    match status_code {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

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
    /// `rabbitmqhandler_event_dropped_total{queue}`: kept for the platform's dashboards; stays 0
    /// since exhausted events go to the dead-letter queue instead of being dropped.
    pub event_dropped: IntCounterVec,
    /// `campaign_manager_event_dead_lettered_total{queue}`: events moved to the dead-letter queue
    /// after their last retry (`queue` is the subscribe queue they came from).
    pub event_dead_lettered: IntCounterVec,
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
        let event_dead_lettered = IntCounterVec::new(
            Opts::new(
                "event_dead_lettered_total",
                "Consumed events moved to the dead-letter queue after the last retry",
            )
            .namespace("campaign_manager"),
            &["queue"],
        )?;
        registry.register(Box::new(request_process_time.clone()))?;
        registry.register(Box::new(breaker_transitions.clone()))?;
        registry.register(Box::new(breaker_state.clone()))?;
        registry.register(Box::new(breaker_rejected.clone()))?;
        registry.register(Box::new(event_retried.clone()))?;
        registry.register(Box::new(event_dropped.clone()))?;
        registry.register(Box::new(event_dead_lettered.clone()))?;
        Ok(Self {
            request_process_time,
            breaker_transitions,
            breaker_state,
            breaker_rejected,
            event_retried,
            event_dropped,
            event_dead_lettered,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{method_label, status_label};

    #[test]
    fn status_codes_map_to_their_class() {
        for (code, class) in [
            (200, "2xx"),
            (204, "2xx"),
            (302, "3xx"),
            (400, "4xx"),
            (404, "4xx"),
            (409, "4xx"),
            (500, "5xx"),
            (503, "5xx"),
            (0, "other"),
            (99, "other"),
            (600, "other"),
        ] {
            assert_eq!(status_label(code), class, "{code}");
        }
    }

    #[test]
    fn methods_map_to_a_fixed_set() {
        for m in ["GET", "POST", "PUT", "DELETE"] {
            assert_eq!(method_label(m), m);
        }
        for m in [
            "",
            "get",
            "HEAD",
            "PATCH",
            "GET ",
            "\u{1F600}",
            &"X".repeat(1000),
        ] {
            assert_eq!(method_label(m), "other");
        }
    }
}
