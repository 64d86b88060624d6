//! Supervised, bounded-concurrency queue consumer shared by the RPC server and the subscriber.
//!
//! One channel per consumer. A session = open channel, run the processor's idempotent `setup`
//! (declare queues/exchanges/bindings), `basic.qos(prefetch = concurrency)`, `basic.consume`, then
//! hand each delivery to the processor in its own task while holding a semaphore permit. When the
//! session dies (connection lost, channel closed, consumer cancelled by the broker) the loop waits
//! for a live connection and starts a new session, which is how topology and consumers are
//! re-established after a broker restart. Stopping cancels the consumer, waits for the in-flight
//! deliveries to finish, then closes the channel (unstarted prefetched messages are requeued).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::connection::BusConnection;
use super::error::{BusError, short};

/// What a consumer does with its channel and deliveries.
#[async_trait]
pub(crate) trait DeliveryProcessor: Send + Sync + 'static {
    /// Declare the topology this consumer needs (idempotent; runs on every (re)connect).
    async fn setup(&self, channel: &lapin::Channel) -> Result<(), BusError>;
    /// Handle one delivery; must ack or nack it.
    async fn process(&self, channel: lapin::Channel, delivery: Delivery);
}

/// Static description of a consumer.
pub(crate) struct ConsumerSpec {
    /// Used in logs.
    pub kind: &'static str,
    pub queue: String,
    pub tag: String,
    pub concurrency: usize,
    /// How long `start` waits for the first successful registration.
    pub ready_timeout: Duration,
}

/// Handle of a running consumer loop.
pub struct ConsumerHandle {
    stop: watch::Sender<bool>,
    join: Mutex<Option<JoinHandle<()>>>,
}

impl ConsumerHandle {
    /// Stop consuming and wait until in-flight deliveries are finished.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let join = self.join.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(join) = join {
            let _ = join.await;
        }
    }
}

enum SessionEnd {
    Stopped,
    Lost(String),
}

/// Start the consumer loop; returns once the consumer is registered for the first time.
pub(crate) async fn start(
    conn: BusConnection,
    spec: ConsumerSpec,
    processor: Arc<dyn DeliveryProcessor>,
) -> Result<ConsumerHandle, BusError> {
    short(&spec.queue)?;
    short(&spec.tag)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = watch::channel(false);
    let ready_timeout = spec.ready_timeout;
    let (kind, queue) = (spec.kind, spec.queue.clone());
    let last_error = Arc::new(Mutex::new(None));
    let join = tokio::spawn(run(
        conn,
        spec,
        processor,
        stop_rx,
        ready_tx,
        last_error.clone(),
    ));
    let handle = ConsumerHandle {
        stop: stop_tx,
        join: Mutex::new(Some(join)),
    };
    match tokio::time::timeout(ready_timeout, ready_rx.wait_for(|r| *r)).await {
        Ok(Ok(_)) => Ok(handle),
        _ => {
            handle.stop().await;
            let last_error = last_error.lock().unwrap_or_else(|e| e.into_inner()).take();
            Err(BusError::NotRegistered {
                kind,
                queue,
                after: ready_timeout,
                last_error,
            })
        }
    }
}

async fn run(
    conn: BusConnection,
    spec: ConsumerSpec,
    processor: Arc<dyn DeliveryProcessor>,
    mut stop: watch::Receiver<bool>,
    ready: watch::Sender<bool>,
    last_error: Arc<Mutex<Option<String>>>,
) {
    let concurrency = spec.concurrency.clamp(1, u16::MAX as usize);
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        let live = tokio::select! {
            l = conn.wait_live(0) => match l { Some(l) => l, None => break },
            _ = stop.changed() => break,
        };
        let started = Instant::now();
        let end = session(
            &conn,
            &live,
            &spec,
            concurrency,
            &processor,
            &sem,
            &mut stop,
            &ready,
        )
        .await;
        match end {
            SessionEnd::Stopped => break,
            SessionEnd::Lost(reason) => {
                if started.elapsed() > Duration::from_secs(5) {
                    backoff = Duration::from_millis(100);
                }
                warn!(kind = spec.kind, queue = %spec.queue, %reason, ?backoff, "consumer session ended; re-establishing");
                *last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
    // Wait for in-flight deliveries (each holds a permit).
    let _ = sem.acquire_many(concurrency as u32).await;
    info!(kind = spec.kind, queue = %spec.queue, "consumer stopped");
}

#[allow(clippy::too_many_arguments)]
async fn session(
    conn: &BusConnection,
    live: &super::connection::Live,
    spec: &ConsumerSpec,
    concurrency: usize,
    processor: &Arc<dyn DeliveryProcessor>,
    sem: &Arc<Semaphore>,
    stop: &mut watch::Receiver<bool>,
    ready: &watch::Sender<bool>,
) -> SessionEnd {
    let channel =
        match tokio::time::timeout(Duration::from_secs(3), live.conn.create_channel()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return SessionEnd::Lost(format!("channel open: {e}")),
            Err(_) => return SessionEnd::Lost("channel open timed out".into()),
        };
    let setup = async {
        processor.setup(&channel).await?;
        channel
            .basic_qos(concurrency as u16, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                short(&spec.queue)?,
                short(&spec.tag)?,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok::<_, BusError>(consumer)
    };
    let mut consumer = match tokio::time::timeout(Duration::from_secs(10), setup).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let _ = channel.close(200, "setup failed".into()).await;
            return SessionEnd::Lost(format!("setup: {e}"));
        }
        Err(_) => {
            let _ = channel.close(200, "setup timed out".into()).await;
            return SessionEnd::Lost("setup timed out".into());
        }
    };
    info!(kind = spec.kind, queue = %spec.queue, generation = live.generation, "consumer registered");
    ready.send_replace(true);
    let mut state = conn.watch();
    let generation = live.generation;
    let end = loop {
        let permit = tokio::select! {
            p = sem.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break SessionEnd::Stopped,
            },
            _ = stop.changed() => break SessionEnd::Stopped,
        };
        let next = tokio::select! {
            n = consumer.next() => n,
            _ = stop.changed() => break SessionEnd::Stopped,
            _ = state.changed() => {
                let same = state.borrow_and_update().as_ref().is_some_and(|l| l.generation == generation);
                if same { continue; }
                break SessionEnd::Lost("connection replaced".into());
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if channel.status().connected() && live.is_connected() { continue; }
                break SessionEnd::Lost("channel no longer connected".into());
            }
        };
        match next {
            Some(Ok(delivery)) => {
                let p = processor.clone();
                let ch = channel.clone();
                tokio::spawn(async move {
                    p.process(ch, delivery).await;
                    drop(permit);
                });
            }
            Some(Err(e)) => break SessionEnd::Lost(format!("consumer error: {e}")),
            None => break SessionEnd::Lost("consumer cancelled".into()),
        }
    };
    if let SessionEnd::Stopped = end {
        let _ = channel
            .basic_cancel(short_or_empty(&spec.tag), BasicCancelOptions::default())
            .await;
        // Let in-flight deliveries ack on this channel before closing it.
        if let Ok(all) = sem.acquire_many(concurrency as u32).await {
            drop(all);
        }
        let _ = channel.close(200, "consumer stopped".into()).await;
    } else {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            channel.close(200, "session lost".into()),
        )
        .await;
    }
    end
}

fn short_or_empty(s: &str) -> lapin::types::ShortString {
    short(s).unwrap_or_default()
}

/// First bytes of a body for log lines (lossy UTF-8, bounded).
pub(crate) fn preview(body: &[u8]) -> String {
    let cut = &body[..body.len().min(256)];
    String::from_utf8_lossy(cut).into_owned()
}
