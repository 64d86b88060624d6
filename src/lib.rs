//! campaign-manager: outbound calling campaigns for the VoIP platform.
//!
//! Layers, each using only the ones above it in this list: `model` (data, JSON), `store`
//! (MySQL + Redis cache), `bus` (RabbitMQ), `peers` (typed clients of other services),
//! `service` (business rules and the campaign tick), `api` (RPC routes), `events`
//! (call/flow events in), `notify` (the service's domain events out, on RabbitMQ and to
//! webhooks). `config` (with `dsn`), `telemetry` and `metrics` serve all of them.
//!
//! `model` and `bus` are crates of their own (`crates/model`, `crates/bus`), re-exported here
//! under their layer names; the simulator, the operator CLI and the demo are crates beside this
//! one (`tools/sim`, `tools/control`, `tools/demo`) and are not linked into the service.

pub use campaign_bus as bus;
pub use campaign_model as model;

pub mod api;
pub mod app;
pub mod config;
pub mod dsn;
pub mod events;
pub mod gauges;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod peers;
pub mod scheduler;
pub mod service;
pub mod store;
pub mod telemetry;
