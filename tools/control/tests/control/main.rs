//! `campaign-control` as a process against the real services on localhost: RabbitMQ with the
//! service (and, for campaigns, the peer simulator) running in-process under a private queue
//! prefix, MariaDB with a fresh database, Redis with a private tick namespace. One file per verb
//! family: usage errors (exit 2) and unreachable dependencies (exit 1), outplans, campaigns,
//! `queue` against in-process tick workers with a fake runner, `events dead` against an
//! in-process subscriber whose handler fails on demand, `campaign stats`, `--watch`, confirmations
//! on a terminal, `campaign execute --all-running`, the escape hatches (`campaigncall finish`,
//! `campaign stop --force`), completions and man pages, `flows reconcile`.

#[path = "../../../../tests/it/support/mod.rs"]
mod support;

mod campaigns;
mod completions;
mod events_dead;
mod execute;
mod flows;
mod not_found;
mod outplans;
mod queue;
mod rig;
mod stats;
mod stuck;
mod terminal;
mod usage;
mod watch;

use std::collections::HashMap;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use campaign_manager::app::{App, Role};
use campaign_manager::bus::Names;
use campaign_manager::config::{Infra, Settings};
use campaign_sim::{Outcome, Scenario, Sim};
use campaign_workers::{BoxError, ChainRunner, ChainSource, Chains, SchedulerConfig, TickOutcome};
use serde_json::{Value, json};
use support::{TestDb, TestNames, TestPrefix, unique};
use uuid::Uuid;

use rig::{AMQP, Ctx, cli, service};
