//! Transport layer: RabbitMQ via lapin (docs/contract.md#rabbitmq, #envelopes).
//!
//! Knows nothing about campaigns. `Bus` is the facade the service wires up: one supervised
//! connection (`connection`), an RPC server for our request queue (`rpc_server`), an RPC client with
//! per-target circuit breakers (`rpc_client`, `circuit_breaker`), an event publisher (`publisher`),
//! an event subscriber with plugin-free bounded retries (`subscriber`) whose exhausted events wait
//! in a dead-letter queue for an operator (`dead_letter`), the wire envelopes
//! (`envelope`), the configurable names (`names`), the event bus setting with the platform's
//! routing keys (`routing`), how the service names itself on the broker (`identity`), the
//! transport metrics (`metrics`) and the broker's view of our queues (`queue_gauges`).

pub mod circuit_breaker;
pub mod connection;
mod consumer;
pub mod dead_letter;
pub mod envelope;
pub mod error;
pub mod identity;
pub mod listener;
pub mod metrics;
pub mod names;
pub mod publisher;
pub mod queue_gauges;
pub mod routing;
pub mod rpc_client;
pub mod rpc_server;
pub mod subscriber;

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use circuit_breaker::{BreakerConfig, BreakerState};
pub use connection::{BusConnection, ConnectionOptions};
pub use consumer::ConsumerHandle;
pub use dead_letter::{DeadEvent, DeadLetters, ReplayReport};
pub use envelope::{Event, Request, Response};
pub use error::{BusError, RpcError};
pub use listener::ExchangeListener;
pub use metrics::BusMetrics;
pub use names::Names;
pub use publisher::EventPublisher;
pub use queue_gauges::QueueGauges;
pub use routing::EventBus;
pub use rpc_client::{CallOptions, RpcClient, RpcClientOptions};
pub use rpc_server::RequestHandler;
pub use subscriber::{BoxError, EventHandler, SubscriberOptions};

/// All tunables of the bus; `Default` is production.
#[derive(Debug, Clone)]
pub struct BusOptions {
    /// Where events go and come from: the platform's topic exchange, or the per-service
    /// fanout exchanges.
    pub event_bus: EventBus,
    /// Connection supervisor settings (incl. the `connection_name`).
    pub connection: ConnectionOptions,
    /// RPC client timeout and breaker settings.
    pub rpc: RpcClientOptions,
    /// Subscriber concurrency and retry delays.
    pub subscriber: SubscriberOptions,
    /// Upper bound of one event publish.
    pub publish_timeout: Duration,
    /// How long `serve_requests`/`subscribe` wait for the first consumer registration.
    pub ready_timeout: Duration,
}

impl Default for BusOptions {
    fn default() -> Self {
        Self {
            event_bus: EventBus::default(),
            connection: ConnectionOptions::default(),
            rpc: RpcClientOptions::default(),
            subscriber: SubscriberOptions::default(),
            publish_timeout: Duration::from_secs(5),
            ready_timeout: Duration::from_secs(15),
        }
    }
}

/// The service's bus: connection, consumers, RPC client and publisher.
pub struct Bus {
    conn: BusConnection,
    names: Names,
    metrics: BusMetrics,
    options: BusOptions,
    rpc: RpcClient,
    publisher: EventPublisher,
    change_publisher: EventPublisher,
    consumers: Mutex<Vec<Arc<ConsumerHandle>>>,
}

impl Bus {
    /// Connect with production options, registering the transport metrics into `registry`.
    pub async fn connect(
        amqp_url: &str,
        names: Names,
        registry: &prometheus::Registry,
    ) -> Result<Bus, BusError> {
        Self::connect_with(amqp_url, names, registry, BusOptions::default()).await
    }

    /// Connect with explicit options.
    pub async fn connect_with(
        amqp_url: &str,
        names: Names,
        registry: &prometheus::Registry,
        options: BusOptions,
    ) -> Result<Bus, BusError> {
        let metrics = BusMetrics::new(registry)?;
        let conn = BusConnection::open(amqp_url, options.connection.clone()).await?;
        let rpc = RpcClient::new(conn.clone(), options.rpc.clone(), metrics.clone());
        let events_exchange = match options.event_bus {
            EventBus::Topic => names.topic_exchange.clone(),
            EventBus::Fanout => names.event_exchange.clone(),
        };
        let publisher = EventPublisher::on(
            conn.clone(),
            options.event_bus,
            events_exchange,
            options.publish_timeout,
        );
        let change_publisher = EventPublisher::new(
            conn.clone(),
            names.change_exchange.clone(),
            options.publish_timeout,
        );
        Ok(Bus {
            conn,
            names,
            metrics,
            options,
            rpc,
            publisher,
            change_publisher,
            consumers: Mutex::new(Vec::new()),
        })
    }

    /// The configured names.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Which event bus this bus publishes and subscribes on.
    pub fn event_bus(&self) -> EventBus {
        self.options.event_bus
    }

    /// Declares the exchange our events go to, now: on the topic bus a refusal (e.g. an
    /// exchange of that name with another kind) is returned so the caller's start fails, as the
    /// platform's publishers do. On the fanout bus nothing happens here: the exchange is
    /// declared with the first publish, as it always was.
    pub async fn declare_event_exchange(&self) -> Result<(), BusError> {
        match self.options.event_bus {
            EventBus::Topic => self.publisher.declare().await,
            EventBus::Fanout => Ok(()),
        }
    }

    /// The transport metrics.
    pub fn metrics(&self) -> &BusMetrics {
        &self.metrics
    }

    /// The `connection_name` client property of our AMQP connection.
    pub fn connection_name(&self) -> &str {
        self.conn.connection_name()
    }

    /// The supervised connection (e.g. to open a channel for ad-hoc declarations).
    pub fn connection(&self) -> &BusConnection {
        &self.conn
    }

    fn keep(&self, handle: ConsumerHandle) {
        self.consumers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(handle));
    }

    /// Serve our request queue (`names.request_queue`) with `handler`, at most `concurrency`
    /// requests at a time. Returns once the consumer is registered.
    pub async fn serve_requests(
        &self,
        handler: Arc<dyn RequestHandler>,
        concurrency: usize,
    ) -> Result<(), BusError> {
        let queue = self.names.request_queue.clone();
        self.serve_requests_on(&queue, handler, concurrency).await
    }

    /// Serve any request queue (used e.g. by fake peers in tests).
    pub async fn serve_requests_on(
        &self,
        queue: &str,
        handler: Arc<dyn RequestHandler>,
        concurrency: usize,
    ) -> Result<(), BusError> {
        let spec = consumer::ConsumerSpec {
            kind: "rpc-server",
            queue: queue.to_string(),
            tag: identity::CONSUMER_TAG.to_string(),
            concurrency,
            ready_timeout: self.options.ready_timeout,
        };
        let processor = Arc::new(rpc_server::RpcProcessor {
            queue: queue.to_string(),
            handler,
        });
        let handle = consumer::start(self.conn.clone(), spec, processor).await?;
        self.keep(handle);
        Ok(())
    }

    /// Consume the subscribe queue with `handler`, bound as the event bus says (on the topic
    /// bus: `subscriber.topic_patterns`, which must not be empty). Returns once the consumer is
    /// registered.
    pub async fn subscribe(&self, handler: Arc<dyn EventHandler>) -> Result<(), BusError> {
        let topic_patterns = self.options.subscriber.topic_patterns.clone();
        if self.options.event_bus == EventBus::Topic && topic_patterns.is_empty() {
            return Err(BusError::Config(
                "subscribing on the topic bus needs at least one binding pattern".into(),
            ));
        }
        let spec = consumer::ConsumerSpec {
            kind: "subscriber",
            queue: self.names.subscribe_queue.clone(),
            tag: identity::CONSUMER_TAG.to_string(),
            concurrency: self.options.subscriber.concurrency,
            ready_timeout: self.options.ready_timeout,
        };
        // Present (at 0) from the start, so an alert on it has a series to watch.
        self.metrics
            .event_dead_lettered
            .with_label_values(&[self.names.subscribe_queue.as_str()]);
        self.metrics
            .event_dropped
            .with_label_values(&[self.names.subscribe_queue.as_str()]);
        let processor = Arc::new(subscriber::SubscribeProcessor {
            names: self.names.clone(),
            bus: self.options.event_bus,
            topic_patterns,
            handler,
            retry_delays: self.options.subscriber.retry_delays.clone(),
            metrics: self.metrics.clone(),
        });
        let handle = consumer::start(self.conn.clone(), spec, processor).await?;
        self.keep(handle);
        Ok(())
    }

    /// The RPC client (clone freely).
    pub fn rpc(&self) -> RpcClient {
        self.rpc.clone()
    }

    /// The event publisher (clone freely).
    pub fn publisher(&self) -> EventPublisher {
        self.publisher.clone()
    }

    /// The publisher of change notices to the internal change exchange (clone freely).
    pub fn change_publisher(&self) -> EventPublisher {
        self.change_publisher.clone()
    }

    /// Whether the broker connection is up right now (for `/readyz`).
    pub fn is_healthy(&self) -> bool {
        !self.conn.is_shut_down() && self.conn.is_connected()
    }

    /// Stop consuming, finish in-flight requests/events, then close the connection.
    pub async fn shutdown(&self) {
        let handles: Vec<_> = self
            .consumers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        futures::future::join_all(handles.iter().map(|h| h.stop())).await;
        self.conn.close().await;
    }
}
