//! campaign-manager: outbound calling campaigns for the VoIP platform.
//!
//! Layers, each using only the ones above it in this list: `model` (data, JSON), `store`
//! (MySQL + Redis cache), `bus` (RabbitMQ), `peers` (typed clients of other services),
//! `service` (business rules and the campaign tick), `api` (RPC routes), `events`
//! (call/flow events in). `config` (with `dsn`), `telemetry` and `metrics` serve all of them.

pub mod api;
pub mod app;
pub mod bus;
pub mod config;
pub mod control;
pub mod demo;
pub mod dsn;
pub mod events;
pub mod http;
pub mod metrics;
pub mod model;
pub mod peers;
pub mod scheduler;
pub mod service;
pub mod sim;
pub mod store;
pub mod telemetry;
