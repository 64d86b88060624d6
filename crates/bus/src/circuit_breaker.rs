//! Per-target circuit breaker for outbound RPCs (docs/contract.md#rabbitmq).
//!
//! Closed → open after `failure_threshold` consecutive transport failures (publish error or
//! timeout; non-2xx replies are successes). Open rejects for `open_duration`, then the next call
//! becomes the single half-open probe; its success closes, its failure re-opens. A call takes a
//! `Permit` and must report its outcome; a permit dropped without outcome (caller cancelled) frees
//! the probe slot so the breaker can never get stuck half-open.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::metrics::BusMetrics;

/// Breaker tunables.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Consecutive transport failures that open the breaker (default 5).
    pub failure_threshold: u32,
    /// How long the breaker stays open before a half-open probe (default 30 s).
    pub open_duration: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_duration: Duration::from_secs(30),
        }
    }
}

/// Observable breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls are rejected.
    Open,
    /// One probe call is allowed.
    HalfOpen,
}

impl BreakerState {
    fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }
    fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_in_flight: bool },
}

impl State {
    fn public(&self) -> BreakerState {
        match self {
            Self::Closed { .. } => BreakerState::Closed,
            Self::Open { .. } => BreakerState::Open,
            Self::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// The breaker of one target queue.
pub struct CircuitBreaker {
    target: String,
    config: BreakerConfig,
    state: Mutex<State>,
    metrics: Option<BusMetrics>,
}

impl CircuitBreaker {
    /// A closed breaker for `target`.
    pub fn new(target: &str, config: BreakerConfig, metrics: Option<BusMetrics>) -> Self {
        if let Some(m) = &metrics {
            m.breaker_state.with_label_values(&[target]).set(0);
        }
        Self {
            target: target.to_string(),
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update; the state is still a
        // valid enum value, so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Current state (an expired open state is still reported as open until the next call).
    pub fn state(&self) -> BreakerState {
        self.lock().public()
    }

    fn transition(&self, state: &mut State, to: State) {
        let from = state.public();
        let to_pub = to.public();
        *state = to;
        if from != to_pub {
            tracing::warn!(target_queue = %self.target, from = from.label(), to = to_pub.label(), "circuit breaker transition");
            if let Some(m) = &self.metrics {
                m.breaker_transitions
                    .with_label_values(&[self.target.as_str(), from.label(), to_pub.label()])
                    .inc();
                m.breaker_state
                    .with_label_values(&[self.target.as_str()])
                    .set(to_pub.gauge());
            }
        }
    }

    /// Ask to make a call. `None` means rejected (counted in `circuitbreaker_rejected_total`).
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let mut st = self.lock();
        let probe = match &*st {
            State::Closed { .. } => false,
            State::Open { until } if Instant::now() >= *until => {
                self.transition(
                    &mut st,
                    State::HalfOpen {
                        probe_in_flight: true,
                    },
                );
                true
            }
            State::HalfOpen {
                probe_in_flight: false,
            } => {
                *st = State::HalfOpen {
                    probe_in_flight: true,
                };
                true
            }
            State::Open { .. } | State::HalfOpen { .. } => {
                drop(st);
                if let Some(m) = &self.metrics {
                    m.breaker_rejected
                        .with_label_values(&[self.target.as_str()])
                        .inc();
                }
                return None;
            }
        };
        Some(Permit {
            breaker: self.clone(),
            probe,
            done: false,
        })
    }

    fn record(&self, probe: bool, success: bool) {
        let mut st = self.lock();
        match (&*st, probe, success) {
            (State::Closed { .. }, _, true) => *st = State::Closed { failures: 0 },
            (State::Closed { failures }, _, false) => {
                let failures = failures + 1;
                if failures >= self.config.failure_threshold {
                    let until = Instant::now() + self.config.open_duration;
                    self.transition(&mut st, State::Open { until });
                } else {
                    *st = State::Closed { failures };
                }
            }
            (State::HalfOpen { .. }, true, true) => {
                self.transition(&mut st, State::Closed { failures: 0 })
            }
            (State::HalfOpen { .. }, true, false) => {
                let until = Instant::now() + self.config.open_duration;
                self.transition(&mut st, State::Open { until });
            }
            // Outcomes of calls that started before the breaker opened do not move it.
            _ => {}
        }
    }
}

/// Permission to make one call; report the outcome with `success` or `failure`.
pub struct Permit {
    breaker: Arc<CircuitBreaker>,
    probe: bool,
    done: bool,
}

impl Permit {
    /// Whether this call is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The call reached the target and got an answer (any status code).
    pub fn success(mut self) {
        self.done = true;
        self.breaker.record(self.probe, true);
    }

    /// The call failed at transport level (publish error or timeout).
    pub fn failure(mut self) {
        self.done = true;
        self.breaker.record(self.probe, false);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done && self.probe {
            let mut st = self.breaker.lock();
            if let State::HalfOpen { .. } = &*st {
                *st = State::HalfOpen {
                    probe_in_flight: false,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_rejects_probes_and_closes() {
        let b = Arc::new(CircuitBreaker::new(
            "t",
            BreakerConfig {
                failure_threshold: 3,
                open_duration: Duration::from_millis(30),
            },
            None,
        ));
        for _ in 0..2 {
            b.try_acquire().unwrap().failure();
        }
        b.try_acquire().unwrap().success();
        for _ in 0..3 {
            b.try_acquire().unwrap().failure();
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire().is_none());
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.try_acquire().unwrap();
        assert!(probe.is_probe());
        assert!(b.try_acquire().is_none());
        drop(probe); // abandoned probe frees the slot
        let probe = b.try_acquire().unwrap();
        probe.failure();
        assert_eq!(b.state(), BreakerState::Open);
        std::thread::sleep(Duration::from_millis(40));
        b.try_acquire().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
