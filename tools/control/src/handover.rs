//! The MySQL records of a hand-over between this service and the Go service: the durable off
//! switch of the tick namespace (`queue pause --durable`, `queue drain --durable`,
//! `queue resume`) and the Go execute loops started on a rollback (`campaign execute`).
//!
//! These are the only commands that talk to MySQL directly rather than through the service's RPC
//! API: they are used exactly when the service may be gone (a rollback removes it) or must not be
//! trusted to hold state (a Redis that lost its data). The records and their rules live in the
//! service's store (`campaign_manager::store::{TickSwitch, LoopKicks}`), so the workers read what
//! this writes.

use std::time::Duration;

use campaign_manager::dsn::DatabaseDsn;
use campaign_manager::store::{LoopKicks, StoreError, SwitchState, TickSwitch, connect_pool};

use super::cli::Cli;
use super::{Failure, PROBE_TIMEOUT, probe_tcp};

/// Connections the CLI opens to MySQL.
const POOL: u32 = 2;

/// A connected handle on the hand-over records.
pub struct Handover {
    switch: TickSwitch,
    kicks: LoopKicks,
    namespace: String,
    shown: String,
}

impl Handover {
    /// Connects to the database named by `--database_dsn` (`DATABASE_DSN`, or its file).
    pub async fn connect(cli: &Cli) -> Result<Handover, Failure> {
        let dsn = cli
            .infra
            .database()
            .map_err(|e| Failure::usage(format!("{e} (--database_dsn / DATABASE_DSN)")))?;
        let shown = dsn.describe();
        let host = dsn.options.get_host().to_owned();
        // A Unix socket has no TCP address to probe; the pool's own error says enough there.
        if !host.starts_with('/') {
            let addr = format!("{host}:{}", dsn.options.get_port());
            probe_tcp(
                &addr,
                "MySQL",
                "is the database up? (--database_dsn / DATABASE_DSN)",
            )
            .await?;
        }
        let timeout = dsn.connect_timeout.min(PROBE_TIMEOUT * 2);
        let bounded = DatabaseDsn {
            connect_timeout: timeout,
            ..dsn.clone()
        };
        let pool = tokio::time::timeout(
            timeout + Duration::from_secs(1),
            connect_pool(&bounded, POOL),
        )
        .await
        .map_err(|_| Failure::new(format!("cannot connect to MySQL ({shown}): no answer")))?
        .map_err(|e| {
            Failure::new(format!(
                "cannot connect to MySQL ({shown}): {e} — check --database_dsn / DATABASE_DSN"
            ))
        })?;
        Ok(Handover {
            switch: TickSwitch::new(pool.clone()),
            kicks: LoopKicks::new(pool),
            namespace: cli.tick_namespace.clone(),
            shown,
        })
    }

    /// The tick namespace the switch belongs to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The failure for a store error while doing `what`.
    pub fn failed(&self, what: &str, e: StoreError) -> Failure {
        if e.is_missing_table() {
            return Failure::new(format!(
                "{what} failed: the database ({}) lacks the service's tables — run \
                 `campaign-manager migrate` first",
                self.shown
            ));
        }
        Failure::new(format!("{what} failed on MySQL ({}): {e}", self.shown))
    }

    /// The switch of this namespace (`None`: never set).
    pub async fn switch_state(&self) -> Result<Option<SwitchState>, Failure> {
        self.switch
            .state(&self.namespace)
            .await
            .map_err(|e| self.failed("reading the durable tick switch", e))
    }

    /// Switches ticking of this namespace off (`paused`) or on.
    pub async fn set_switch(&self, paused: bool, reason: &str) -> Result<(), Failure> {
        self.switch
            .set(&self.namespace, paused, reason)
            .await
            .map_err(|e| self.failed("setting the durable tick switch", e))
    }

    /// The recorded Go loop kicks.
    pub fn kicks(&self) -> &LoopKicks {
        &self.kicks
    }
}
