//! campaign-manager's integration tests, in one test binary (one link instead of one per file,
//! and `support` compiled once). Each module is one area; `cargo test --test it MODULE::` runs
//! one of them, e.g. `cargo test --test it pacing::`. They run against the local MariaDB, Redis
//! and RabbitMQ, each test on its own database, key prefix and queue names.
//!
//! The tests of `campaign-control` as a process live in `tools/control/tests` (they need its
//! binary) and share `support` from here.

mod support;
/// Tables of same-shape mocked-peer runs (`repair::answers`, `tick`, `service::refusals`).
mod table;

mod api;
mod binaries;
mod bus;
mod callbacks;
mod calling_hours;
mod clock;
mod contract_docs;
mod customer_limits;
mod cutover;
mod dbscheme;
mod deploy;
mod dial_paths;
mod dial_statements;
mod dial_tx;
mod dials;
mod e2e;
mod events;
mod finish_tx;
mod flow_reconcile;
mod force_stop;
mod health;
mod kustomize;
mod liveness;
mod migrations;
mod pacing;
mod repair;
mod resources;
mod retry_rules;
mod secure;
mod service;
mod sim;
mod sim_outcomes;
mod sql_portability;
mod stats;
mod store;
mod suppressions;
mod tick;
mod tick_cache;
mod topic_bus;
