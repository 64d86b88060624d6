//! Wake notices: what lets the feeder, the apalis fetch and the reconciler sleep while nothing is
//! due, instead of polling Redis on a short fixed interval.
//!
//! Each loop sleeps until the work it knows of is due (the feeder: the earliest pending tick) or
//! for a long safety interval, and is woken early when new work may exist:
//! * anywhere in the cluster, a chain is seeded (a campaign starts, the reconciler re-seeds one),
//!   a tick is handed back to the feed (pause, shutdown, a failed push), the namespace is
//!   resumed, or a process that is stopping schedules a successor: the writer publishes on the
//!   namespace's wake channel (`{ns}:chain:wake`, Redis pub/sub), and every worker process of the
//!   namespace subscribes to it ([`listen`]);
//! * in this process, a finished tick scheduled its successor (the local feeder is woken: the
//!   successor may be due before whatever the feeder was waiting for), or the feeder handed jobs
//!   to apalis (the local apalis fetch is woken; when this process has no free tick permit the
//!   feeder publishes too, so that idle peers fetch them).
//!
//! Notices are hints. A lost one (the subscription dropped, a publish failed) only delays work
//! by up to the loop's safety interval (`idle_poll_interval`, 1 s), and every (re)subscription
//! wakes the loops once to cover what it may have missed. On a Redis Cluster the subscription
//! goes to the first seed node: a `PUBLISH` reaches every node's subscribers.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{PollSnapshot, PollStrategy};
use futures::StreamExt;
use futures::task::AtomicWaker;
use prometheus::IntCounter;
use tokio::sync::{Notify, watch};

/// The wake-ups of one shard's loops in this process; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Wakes {
    feeder: Arc<Notify>,
    reconciler: Arc<Notify>,
    gauges: Arc<Notify>,
    fetch: Arc<FetchSignal>,
}

/// A flag plus the waker of the apalis worker's stream, polled by [`FetchPace`].
#[derive(Default)]
struct FetchSignal {
    raised: AtomicBool,
    waker: AtomicWaker,
}

impl Wakes {
    /// Something may be due: wake every loop of this shard in this process.
    pub(crate) fn all(&self) {
        self.feeder();
        self.reconciler.notify_one();
        self.gauges.notify_one();
        self.fetch();
    }

    /// A tick may be due before what the feeder waits for.
    pub(crate) fn feeder(&self) {
        self.feeder.notify_one();
    }

    /// Jobs were handed to apalis.
    pub(crate) fn fetch(&self) {
        self.fetch.raised.store(true, Ordering::Release);
        self.fetch.waker.wake();
    }

    /// Resolves at the next [`Wakes::feeder`] (or at once if one came since the last wait).
    pub(crate) async fn feeder_woken(&self) {
        self.feeder.notified().await;
    }

    /// Resolves at the next notice for the reconciler.
    pub(crate) async fn reconciler_woken(&self) {
        self.reconciler.notified().await;
    }

    /// Resolves at the next notice for the gauge refresh.
    pub(crate) async fn gauges_woken(&self) {
        self.gauges.notified().await;
    }
}

/// How long the subscriber waits before subscribing again after losing its connection.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_secs(1);

/// Subscribe to `channel` on `url` and turn every message into [`Wakes::all`], until `stopping`.
/// Each (re)subscription also wakes the loops once, for the notices it may have missed.
pub(crate) async fn listen(
    url: String,
    channel: String,
    wakes: Wakes,
    mut stopping: watch::Receiver<bool>,
) {
    let mut failing = false;
    loop {
        let run = async {
            let client = redis::Client::open(url.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            wakes.all();
            let mut messages = pubsub.on_message();
            while messages.next().await.is_some() {
                wakes.all();
            }
            Ok::<(), redis::RedisError>(())
        };
        tokio::select! {
            result = run => match result {
                Ok(()) => tracing::debug!(%channel, "wake subscription ended; subscribing again"),
                Err(e) if !failing => {
                    tracing::warn!(%channel, error = %e, "wake subscription failed; loops fall back to their idle interval");
                    failing = true;
                }
                Err(_) => {}
            },
            _ = stopping.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(RESUBSCRIBE_PAUSE) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}

/// apalis' fetch poll as a [`PollStrategy`]: every `busy` while fetches find jobs, doubling up to
/// `idle` while they find none, and at once when [`Wakes::fetch`] is called. A fetch that finds
/// jobs (or a wake) brings the pace back to `busy`.
pub(crate) struct FetchPace {
    signal: Arc<FetchSignal>,
    busy: Duration,
    idle: Duration,
    current: Duration,
    seen_ready: u64,
    delay: Option<Pin<Box<tokio::time::Sleep>>>,
    wakeups: IntCounter,
}

impl Clone for FetchPace {
    fn clone(&self) -> Self {
        Self {
            signal: self.signal.clone(),
            busy: self.busy,
            idle: self.idle,
            current: self.current,
            seen_ready: self.seen_ready,
            delay: None,
            wakeups: self.wakeups.clone(),
        }
    }
}

impl FetchPace {
    pub(crate) fn new(wakes: &Wakes, busy: Duration, idle: Duration, wakeups: IntCounter) -> Self {
        Self {
            signal: wakes.fetch.clone(),
            busy,
            idle: idle.max(busy),
            current: busy,
            seen_ready: 0,
            delay: None,
            wakeups,
        }
    }
}

impl PollStrategy for FetchPace {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        self.signal.waker.register(cx.waker());
        if self.signal.raised.swap(false, Ordering::AcqRel) {
            self.current = self.busy;
            self.delay = None;
            self.wakeups.inc();
            return Poll::Ready(Some(()));
        }
        let current = self.current;
        let delay = self
            .delay
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(current)));
        match delay.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                self.delay = None;
                self.current = (self.current * 2).min(self.idle);
                self.wakeups.inc();
                Poll::Ready(Some(()))
            }
        }
    }

    fn on_poll(&mut self, snapshot: &PollSnapshot) {
        if snapshot.total_ready > self.seen_ready {
            self.seen_ready = snapshot.total_ready;
            if self.current != self.busy {
                self.current = self.busy;
                self.delay = None;
            }
        }
    }
}
