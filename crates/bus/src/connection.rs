//! One AMQP connection with automatic reconnect.
//!
//! A supervisor task owns the `lapin::Connection`: it connects (exponential backoff capped at
//! `max_backoff`), publishes the live connection with a generation number on a `watch` channel,
//! watches it (connection events plus a status poll) and, when it dies, withdraws it and dials
//! again. lapin's built-in auto-recovery is deliberately not used: every component (RPC server,
//! subscriber, RPC client, publisher) instead re-runs its own idempotent setup (declare queues,
//! exchanges, bindings, consumers) whenever a new generation appears. That keeps recovery explicit,
//! testable, and identical to first start. While no connection is live, `channel()` fails at once
//! with `BusError::Unavailable` so publishers never hang.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::{ConnectionProperties, types::LongString};
use tokio::sync::watch;
use tracing::{info, warn};

use super::error::BusError;

/// Tunables of the connection supervisor.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// `connection_name` client property (shown by `rabbitmqctl list_connections`).
    pub connection_name: String,
    /// First reconnect delay.
    pub min_backoff: Duration,
    /// Reconnect delay cap.
    pub max_backoff: Duration,
    /// Timeout of one TCP + AMQP handshake attempt.
    pub connect_timeout: Duration,
    /// How long `open` waits for the first connection before failing.
    pub initial_connect_wait: Duration,
    /// Timeout for opening a channel.
    pub channel_timeout: Duration,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        Self {
            // Unique per connection, so an operator (or a test) can tell them apart.
            connection_name: super::identity::connection_name(),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(5),
            initial_connect_wait: Duration::from_secs(15),
            channel_timeout: Duration::from_secs(3),
        }
    }
}

/// A live connection together with its generation (incremented on every reconnect).
#[derive(Clone)]
pub struct Live {
    /// The underlying lapin connection.
    pub conn: Arc<lapin::Connection>,
    /// 1 for the first connection, +1 per reconnect.
    pub generation: u64,
}

impl Live {
    /// Whether lapin still reports the connection as connected.
    pub fn is_connected(&self) -> bool {
        self.conn.status().connected()
    }
}

struct Inner {
    state: watch::Sender<Option<Live>>,
    shutdown: watch::Sender<bool>,
    options: ConnectionOptions,
}

/// Handle to the supervised connection; cheap to clone.
#[derive(Clone)]
pub struct BusConnection {
    inner: Arc<Inner>,
}

impl BusConnection {
    /// Start the supervisor for `url` and wait (up to `initial_connect_wait`) for the first
    /// connection. After that, outages are handled in the background.
    pub async fn open(url: &str, options: ConnectionOptions) -> Result<Self, BusError> {
        // Validate the URI once so a typo fails fast instead of retrying forever.
        url.parse::<lapin::uri::AMQPUri>()
            .map_err(|e| BusError::Config(format!("invalid amqp url: {e}")))?;
        let (state, _) = watch::channel(None);
        let (shutdown, _) = watch::channel(false);
        let this = Self {
            inner: Arc::new(Inner {
                state,
                shutdown,
                options,
            }),
        };
        let mut rx = this.inner.state.subscribe();
        tokio::spawn(supervise(this.inner.clone(), url.to_string()));
        let wait = this.inner.options.initial_connect_wait;
        match tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await {
            Ok(Ok(_)) => Ok(this),
            _ => {
                this.close().await;
                Err(BusError::Unavailable(format!(
                    "could not connect within {wait:?}"
                )))
            }
        }
    }

    /// The `connection_name` client property of this connection.
    pub fn connection_name(&self) -> &str {
        &self.inner.options.connection_name
    }

    /// The current live connection, if any.
    pub fn current(&self) -> Option<Live> {
        self.inner.state.borrow().clone().filter(Live::is_connected)
    }

    /// Whether a connection is live right now.
    pub fn is_connected(&self) -> bool {
        self.current().is_some()
    }

    /// Whether `shutdown` was requested.
    pub fn is_shut_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// Watch the connection state (None while reconnecting).
    pub fn watch(&self) -> watch::Receiver<Option<Live>> {
        self.inner.state.subscribe()
    }

    /// Watch the shutdown flag.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Wait for a live connection whose generation is greater than `after` (0 = any).
    /// Returns `None` once the bus is shut down.
    pub async fn wait_live(&self, after: u64) -> Option<Live> {
        let mut state = self.inner.state.subscribe();
        let mut shutdown = self.inner.shutdown.subscribe();
        loop {
            if *shutdown.borrow_and_update() {
                return None;
            }
            if let Some(live) = state.borrow_and_update().clone()
                && live.generation > after
                && live.is_connected()
            {
                return Some(live);
            }
            tokio::select! {
                r = state.changed() => if r.is_err() { return None },
                r = shutdown.changed() => if r.is_err() { return None },
                // Re-check periodically: a connection may die without a state change yet.
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Open a channel on the live connection; fails fast when there is none.
    pub async fn channel(&self) -> Result<(lapin::Channel, u64), BusError> {
        if self.is_shut_down() {
            return Err(BusError::Shutdown);
        }
        let live = self
            .current()
            .ok_or_else(|| BusError::Unavailable("no live broker connection".into()))?;
        let t = self.inner.options.channel_timeout;
        let ch = tokio::time::timeout(t, live.conn.create_channel())
            .await
            .map_err(|_| BusError::Timeout(t, "channel open"))??;
        Ok((ch, live.generation))
    }

    /// Stop reconnecting and close the connection.
    pub async fn close(&self) {
        self.inner.shutdown.send_replace(true);
        let live = self.inner.state.send_replace(None);
        if let Some(live) = live {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                live.conn.close(200, "shutdown".into()),
            )
            .await;
        }
    }
}

async fn supervise(inner: Arc<Inner>, url: String) {
    let opts = inner.options.clone();
    let mut shutdown = inner.shutdown.subscribe();
    let mut backoff = opts.min_backoff;
    let mut generation = 0u64;
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        let props = ConnectionProperties::default()
            .with_connection_name(LongString::from(opts.connection_name.clone()));
        let attempt = tokio::time::timeout(
            opts.connect_timeout,
            lapin::Connection::connect(&url, props),
        )
        .await;
        let conn = match attempt {
            Ok(Ok(conn)) => Arc::new(conn),
            Ok(Err(error)) => {
                warn!(%error, ?backoff, "amqp connect failed; retrying");
                if sleep_or_shutdown(backoff, &mut shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(opts.max_backoff);
                continue;
            }
            Err(_) => {
                warn!(?backoff, "amqp connect timed out; retrying");
                if sleep_or_shutdown(backoff, &mut shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(opts.max_backoff);
                continue;
            }
        };
        backoff = opts.min_backoff;
        generation += 1;
        let mut events = conn.events_listener();
        if *shutdown.borrow() {
            let _ = conn.close(200, "shutdown".into()).await;
            return;
        }
        inner.state.send_replace(Some(Live {
            conn: conn.clone(),
            generation,
        }));
        info!(generation, name = %opts.connection_name, "amqp connected");
        loop {
            tokio::select! {
                ev = events.next() => match ev {
                    Some(lapin::Event::Error(error)) => {
                        warn!(%error, generation, "amqp connection error");
                        break;
                    }
                    Some(_) => {}
                    None => break,
                },
                _ = tokio::time::sleep(Duration::from_millis(250)) => {
                    if !conn.status().connected() {
                        warn!(generation, "amqp connection no longer connected");
                        break;
                    }
                }
                _ = shutdown.changed() => {
                    // `close()` takes care of the connection itself.
                    return;
                }
            }
        }
        // Withdraw the dead connection only if nobody replaced it meanwhile.
        inner.state.send_if_modified(|s| {
            if s.as_ref().is_some_and(|l| l.generation == generation) {
                *s = None;
                true
            } else {
                false
            }
        });
        let _ =
            tokio::time::timeout(Duration::from_secs(1), conn.close(320, "reconnect".into())).await;
        if sleep_or_shutdown(opts.min_backoff, &mut shutdown).await {
            return;
        }
    }
}

/// Sleep `d`; returns `true` if shutdown was requested meanwhile.
async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}
