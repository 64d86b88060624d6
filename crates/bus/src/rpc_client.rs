//! RPC client: calls a peer's request queue and waits for its reply (docs/contract.md#rabbitmq).
//!
//! Uses RabbitMQ direct reply-to (`amq.rabbitmq.reply-to`) on one channel per connection
//! generation instead of a temporary queue per call: requests carry a fresh `correlation_id`, a
//! reader task routes replies to the waiting call through a map of pending calls, and a reply
//! nobody waits for any more (late, after timeout) is dropped. Requests carry an AMQP `expiration`
//! equal to the call timeout so a request nobody consumed in time dies in the target queue instead
//! of being executed late. Every target queue has its own circuit breaker; timeouts and publish
//! errors are breaker failures, any reply (whatever its status) is a success. Status codes are
//! left to the caller.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use lapin::types::{FieldTable, ShortString};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::circuit_breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use super::connection::BusConnection;
use super::envelope::{Request, Response};
use super::error::{BusError, RpcError};
use super::metrics::{BusMetrics, method_label};

/// The pseudo-queue of RabbitMQ's direct reply-to.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Default per-call timeout (docs/contract.md#outbound-calls).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(3000);

/// Client tunables.
#[derive(Debug, Clone)]
pub struct RpcClientOptions {
    /// Timeout of a call without explicit override.
    pub default_timeout: Duration,
    /// Breaker settings applied to every target.
    pub breaker: BreakerConfig,
}

impl Default for RpcClientOptions {
    fn default() -> Self {
        Self {
            default_timeout: DEFAULT_TIMEOUT,
            breaker: BreakerConfig::default(),
        }
    }
}

/// Per-call overrides.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Timeout of this call (default: the client's default, 3 s).
    pub timeout: Option<Duration>,
    /// `resource` label of `campaign_manager_request_process_time` (default: the URI path with
    /// id-like segments replaced by `<id>`).
    pub resource: Option<String>,
}

impl CallOptions {
    /// Options with only a timeout.
    pub fn timeout(timeout: Duration) -> Self {
        Self {
            timeout: Some(timeout),
            resource: None,
        }
    }
}

type ReplySender = oneshot::Sender<Result<Response, serde_json::Error>>;

struct ReplyChannel {
    id: u64,
    generation: u64,
    channel: lapin::Channel,
}

struct Inner {
    conn: BusConnection,
    options: RpcClientOptions,
    metrics: BusMetrics,
    pending: Mutex<HashMap<String, (u64, ReplySender)>>,
    reply: tokio::sync::Mutex<Option<ReplyChannel>>,
    next_channel_id: AtomicU64,
    breakers: Mutex<HashMap<String, Arc<CircuitBreaker>>>,
}

/// Client for request/reply calls to other services; cheap to clone.
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Metric label for a URI: path only, id-like segments replaced by `<id>`.
pub fn resource_label(uri: &str) -> String {
    let path = uri.split('?').next().unwrap_or_default();
    path.split('/')
        .map(|seg| {
            let idlike = (seg.len() == 36 && seg.matches('-').count() == 4)
                || (!seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()));
            if idlike { "<id>" } else { seg }
        })
        .collect::<Vec<_>>()
        .join("/")
}

struct PendingGuard<'a> {
    inner: &'a Inner,
    corr: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.inner.pending).remove(&self.corr);
    }
}

impl RpcClient {
    pub(crate) fn new(conn: BusConnection, options: RpcClientOptions, metrics: BusMetrics) -> Self {
        Self {
            inner: Arc::new(Inner {
                conn,
                options,
                metrics,
                pending: Mutex::new(HashMap::new()),
                reply: tokio::sync::Mutex::new(None),
                next_channel_id: AtomicU64::new(1),
                breakers: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn breaker(&self, target: &str) -> Arc<CircuitBreaker> {
        let mut map = lock(&self.inner.breakers);
        map.entry(target.to_string())
            .or_insert_with(|| {
                Arc::new(CircuitBreaker::new(
                    target,
                    self.inner.options.breaker.clone(),
                    Some(self.inner.metrics.clone()),
                ))
            })
            .clone()
    }

    /// State of the breaker of `target` (closed if never called).
    pub fn breaker_state(&self, target: &str) -> BreakerState {
        lock(&self.inner.breakers)
            .get(target)
            .map_or(BreakerState::Closed, |b| b.state())
    }

    /// Number of calls currently waiting for a reply.
    pub fn pending_calls(&self) -> usize {
        lock(&self.inner.pending).len()
    }

    /// Call `target` (a request queue) with the default timeout.
    pub async fn call(&self, target: &str, req: &Request) -> Result<Response, RpcError> {
        self.call_with(target, req, CallOptions::default()).await
    }

    /// Call `target` with per-call options.
    pub async fn call_with(
        &self,
        target: &str,
        req: &Request,
        opts: CallOptions,
    ) -> Result<Response, RpcError> {
        let timeout = opts.timeout.unwrap_or(self.inner.options.default_timeout);
        let body = serde_json::to_vec(req).map_err(|source| RpcError::Decode {
            target: target.to_string(),
            source,
        })?;
        let routing_key = ShortString::try_new(target).map_err(|e| RpcError::Transport {
            target: target.to_string(),
            reason: e.to_string(),
        })?;
        let breaker = self.breaker(target);
        let Some(permit) = breaker.try_acquire() else {
            return Err(RpcError::BreakerOpen {
                target: target.to_string(),
            });
        };
        let started = Instant::now();
        let result = self
            .send_and_wait(target, routing_key, &body, timeout)
            .await;
        match &result {
            Err(e) if e.is_transport_failure() => permit.failure(),
            _ => permit.success(),
        }
        let resource = opts.resource.unwrap_or_else(|| resource_label(&req.uri));
        self.inner
            .metrics
            .request_process_time
            .with_label_values(&[target, resource.as_str(), method_label(&req.method)])
            .observe(started.elapsed().as_secs_f64() * 1000.0);
        result
    }

    async fn send_and_wait(
        &self,
        target: &str,
        routing_key: ShortString,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, RpcError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || RpcError::Timeout {
            target: target.to_string(),
            after: timeout,
        };
        let transport = |reason: String| RpcError::Transport {
            target: target.to_string(),
            reason,
        };
        let (channel_id, channel) = tokio::time::timeout_at(deadline, self.reply_channel())
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| transport(e.to_string()))?;
        let corr = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.pending).insert(corr.clone(), (channel_id, tx));
        let _guard = PendingGuard {
            inner: &self.inner,
            corr: corr.clone(),
        };
        let props = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_correlation_id(corr.into())
            .with_reply_to(DIRECT_REPLY_TO.into())
            .with_expiration(timeout.as_millis().max(1).to_string().into());
        tokio::time::timeout_at(deadline, async {
            channel
                .basic_publish(
                    "".into(),
                    routing_key,
                    BasicPublishOptions::default(),
                    body,
                    props,
                )
                .await?
                .await
        })
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| transport(format!("publish: {e}")))?;
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Ok(resp))) => Ok(resp),
            Ok(Ok(Err(source))) => Err(RpcError::Decode {
                target: target.to_string(),
                source,
            }),
            Ok(Err(_)) => Err(transport("reply channel closed".into())),
            Err(_) => Err(timed_out()),
        }
    }

    /// The channel consuming direct replies; (re)created per connection generation.
    async fn reply_channel(&self) -> Result<(u64, lapin::Channel), BusError> {
        let mut cached = self.inner.reply.lock().await;
        let live = self
            .inner
            .conn
            .current()
            .ok_or_else(|| BusError::Unavailable("no live broker connection".into()))?;
        if let Some(rc) = cached.as_ref()
            && rc.generation == live.generation
            && rc.channel.status().connected()
        {
            return Ok((rc.id, rc.channel.clone()));
        }
        let (channel, generation) = self.inner.conn.channel().await?;
        let tag = format!("rpc-reply-{}", uuid::Uuid::new_v4());
        let consumer = channel
            .basic_consume(
                DIRECT_REPLY_TO.into(),
                tag.into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let id = self.inner.next_channel_id.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(read_replies(Arc::downgrade(&self.inner), id, consumer));
        *cached = Some(ReplyChannel {
            id,
            generation,
            channel: channel.clone(),
        });
        Ok((id, channel))
    }
}

async fn read_replies(inner: Weak<Inner>, id: u64, mut consumer: lapin::Consumer) {
    while let Some(item) = consumer.next().await {
        let delivery = match item {
            Ok(d) => d,
            Err(error) => {
                warn!(%error, "rpc reply consumer failed");
                break;
            }
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let Some(corr) = delivery.properties.correlation_id().as_ref() else {
            debug!("rpc reply without correlation id dropped");
            continue;
        };
        let waiter = lock(&inner.pending).remove(corr.as_str());
        match waiter {
            Some((_, tx)) => {
                let _ = tx.send(serde_json::from_slice::<Response>(&delivery.data));
            }
            None => debug!(correlation_id = %corr, "late rpc reply dropped"),
        }
    }
    // The channel is gone: fail the calls still waiting on it right away.
    if let Some(inner) = inner.upgrade() {
        lock(&inner.pending).retain(|_, (cid, _)| *cid != id);
    }
}

#[cfg(test)]
mod tests {
    use super::resource_label;

    #[test]
    fn resource_labels() {
        assert_eq!(
            resource_label("/v1/outdials/615dce2a-c454-11ec-aefb-a32f5d072685/available?limit=1"),
            "/v1/outdials/<id>/available"
        );
        assert_eq!(resource_label("/v1/flows"), "/v1/flows");
    }
}
