//! [`WorkerHealth`]: whether this process's worker tasks are alive and making progress, for a
//! readiness probe.
//!
//! Shaped to need nothing from the loops themselves: each background loop (feeder, reconciler,
//! lease keeper) runs inside a [`Tracked`] future that notes the time of every poll. A loop that
//! sleeps, waits for Redis or works is polled at least once per its interval plus the Redis
//! response timeout; one that ended, panicked, or hangs (or spins without yielding) is not. The
//! apalis worker counts as up while its run future is running. So a process is reported not
//! ready when its workers never started, stopped, lost a loop, or a loop made no progress for
//! [`STALL_GRACE`] beyond its interval.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

/// How long past its own interval a loop may go unpolled before it counts as stalled: three
/// Redis response timeouts (10 s each), so a slow Redis alone does not flip readiness.
pub const STALL_GRACE: Duration = Duration::from_secs(30);

/// The loops whose progress is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loop {
    /// Hands due ticks to apalis.
    Feeder,
    /// Re-seeds lost chains.
    Reconciler,
    /// Renews the leases of running ticks.
    LeaseKeeper,
}

const LOOPS: [Loop; 3] = [Loop::Feeder, Loop::Reconciler, Loop::LeaseKeeper];

impl Loop {
    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            Loop::Feeder => "feeder",
            Loop::Reconciler => "reconciler",
            Loop::LeaseKeeper => "lease keeper",
        }
    }
}

#[derive(Default)]
struct LoopState {
    /// Milliseconds since `origin` of the last poll, plus one (0: not running).
    last_poll: AtomicU64,
    /// Longest allowed gap between polls, ms.
    stall_after_ms: AtomicU64,
    ended: AtomicBool,
}

struct Inner {
    origin: Instant,
    started: AtomicBool,
    stopped: AtomicBool,
    apalis_running: AtomicBool,
    loops: [LoopState; 3],
    /// One health per shard when this process runs several shards (then they are what is
    /// checked, and the loops above stay unused); empty with one shard.
    shards: std::sync::Mutex<Vec<WorkerHealth>>,
}

/// A cheap, cloneable view of one process's worker tasks. Create it, hand a clone to
/// [`run_workers_reporting`](crate::run_workers_reporting), and ask [`check`](Self::check).
#[derive(Clone)]
pub struct WorkerHealth {
    inner: Arc<Inner>,
}

impl Default for WorkerHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for WorkerHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHealth")
            .field("status", &self.check())
            .finish()
    }
}

impl WorkerHealth {
    /// A handle for workers that have not started yet.
    pub fn new() -> Self {
        WorkerHealth {
            inner: Arc::new(Inner {
                origin: Instant::now(),
                started: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
                apalis_running: AtomicBool::new(false),
                loops: Default::default(),
                shards: Default::default(),
            }),
        }
    }

    /// `Ok` while the workers run and every loop makes progress; otherwise what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let inner = &self.inner;
        if inner.stopped.load(Ordering::Acquire) {
            return Err("tick workers stopped".to_owned());
        }
        if !inner.started.load(Ordering::Acquire) {
            return Err("tick workers starting".to_owned());
        }
        let shards = match inner.shards.lock() {
            Ok(shards) => shards.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if !shards.is_empty() {
            for (i, shard) in shards.iter().enumerate() {
                shard.check().map_err(|e| format!("shard {i}: {e}"))?;
            }
            return Ok(());
        }
        let now = self.now_ms();
        for l in LOOPS {
            let state = &inner.loops[l.index()];
            if state.ended.load(Ordering::Acquire) {
                return Err(format!("tick {} ended", l.name()));
            }
            let last = state.last_poll.load(Ordering::Acquire);
            let allowed = state.stall_after_ms.load(Ordering::Acquire);
            let quiet = now.saturating_sub(last.saturating_sub(1));
            if last == 0 || quiet > allowed {
                return Err(format!(
                    "tick {} made no progress for {:.1} s",
                    l.name(),
                    quiet as f64 / 1000.0
                ));
            }
        }
        if !inner.apalis_running.load(Ordering::Acquire) {
            return Err("apalis worker not running (restarting)".to_owned());
        }
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs `fut` as loop `l`, expected to be polled at least every `interval` (+ grace).
    pub(crate) fn track<F: Future>(&self, l: Loop, interval: Duration, fut: F) -> Tracked<F> {
        let state = &self.inner.loops[l.index()];
        let allowed = interval.saturating_add(STALL_GRACE);
        state.stall_after_ms.store(
            u64::try_from(allowed.as_millis()).unwrap_or(u64::MAX),
            Ordering::Release,
        );
        state.ended.store(false, Ordering::Release);
        state
            .last_poll
            .store(self.now_ms().saturating_add(1), Ordering::Release);
        Tracked {
            fut: Box::pin(fut),
            health: self.clone(),
            l,
        }
    }

    /// A health for the next shard of this process; [`check`](Self::check) then checks every
    /// shard's instead of its own loops.
    pub(crate) fn add_shard(&self) -> WorkerHealth {
        let shard = WorkerHealth::new();
        match self.inner.shards.lock() {
            Ok(mut shards) => shards.push(shard.clone()),
            Err(poisoned) => poisoned.into_inner().push(shard.clone()),
        }
        shard
    }

    /// Marks the workers as running (every loop is tracked by now).
    pub(crate) fn set_started(&self) {
        self.inner.started.store(true, Ordering::Release);
    }

    /// Marks the workers as stopped when the returned guard drops (however the caller ends).
    pub(crate) fn stopped_on_drop(&self) -> Flag {
        Flag {
            health: self.clone(),
            on_drop: |inner: &Inner| inner.stopped.store(true, Ordering::Release),
        }
    }

    /// Marks the apalis worker running until the returned guard drops.
    pub(crate) fn apalis_running(&self) -> Flag {
        self.inner.apalis_running.store(true, Ordering::Release);
        Flag {
            health: self.clone(),
            on_drop: |inner: &Inner| inner.apalis_running.store(false, Ordering::Release),
        }
    }
}

/// Sets a state of [`WorkerHealth`] when dropped.
#[must_use = "the state changes when this guard drops"]
pub(crate) struct Flag {
    health: WorkerHealth,
    on_drop: fn(&Inner),
}

impl Drop for Flag {
    fn drop(&mut self) {
        (self.on_drop)(&self.health.inner);
    }
}

/// A loop's future that notes each poll, and its end, in [`WorkerHealth`].
pub(crate) struct Tracked<F> {
    fut: Pin<Box<F>>,
    health: WorkerHealth,
    l: Loop,
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let now = self.health.now_ms().saturating_add(1);
        self.health.inner.loops[self.l.index()]
            .last_poll
            .store(now, Ordering::Release);
        self.fut.as_mut().poll(cx)
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        self.health.inner.loops[self.l.index()]
            .ended
            .store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_tracked(h: &WorkerHealth) -> Vec<Tracked<std::future::Pending<()>>> {
        LOOPS
            .iter()
            .map(|l| h.track(*l, Duration::from_secs(1), std::future::pending()))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn ready_only_while_started_tracked_and_apalis_running() {
        let h = WorkerHealth::new();
        assert_eq!(h.check(), Err("tick workers starting".to_owned()));
        let loops = all_tracked(&h);
        h.set_started();
        assert_eq!(
            h.check(),
            Err("apalis worker not running (restarting)".to_owned())
        );
        let apalis = h.apalis_running();
        assert_eq!(h.check(), Ok(()));
        drop(apalis);
        assert!(h.check().is_err());
        let _apalis = h.apalis_running();
        let stopped = h.stopped_on_drop();
        assert_eq!(h.check(), Ok(()));
        drop(stopped);
        assert_eq!(h.check(), Err("tick workers stopped".to_owned()));
        drop(loops);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ended_loop_is_named() {
        let h = WorkerHealth::new();
        let mut loops = all_tracked(&h);
        h.set_started();
        let _apalis = h.apalis_running();
        assert_eq!(h.check(), Ok(()));
        drop(loops.remove(2));
        assert_eq!(h.check(), Err("tick lease keeper ended".to_owned()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_not_polled_past_its_interval_and_grace_is_stalled() {
        let h = WorkerHealth::new();
        let mut loops = all_tracked(&h);
        h.set_started();
        let _apalis = h.apalis_running();
        tokio::time::advance(STALL_GRACE).await;
        assert_eq!(h.check(), Ok(()), "within interval + grace");
        // Poll every loop but the reconciler, then let time pass beyond its bound.
        tokio::time::advance(Duration::from_millis(1500)).await;
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for i in [0, 2] {
            assert!(Pin::new(&mut loops[i]).poll(&mut cx).is_pending());
        }
        let err = h.check().err().unwrap_or_default();
        assert!(
            err.starts_with("tick reconciler made no progress for 31.5 s"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_shards_every_shard_is_checked_and_named() {
        let h = WorkerHealth::new();
        let shards = [h.add_shard(), h.add_shard()];
        let loops: Vec<_> = shards.iter().map(all_tracked).collect();
        let _stopped = h.stopped_on_drop();
        h.set_started();
        for s in &shards {
            s.set_started();
        }
        let _apalis0 = shards[0].apalis_running();
        assert_eq!(
            h.check(),
            Err("shard 1: apalis worker not running (restarting)".to_owned())
        );
        let apalis1 = shards[1].apalis_running();
        assert_eq!(h.check(), Ok(()));
        drop(apalis1);
        assert!(h.check().is_err());
        drop(loops);
    }
}
