//! Running a MySQL transaction (or an autocommit statement) again when MySQL rolled it back for
//! a lock conflict: a deadlock (1213) or a lock wait timeout (1205). MySQL then undid the whole
//! transaction, so running it again from its start changes nothing twice; any other error is
//! returned as it is. The new run starts at once: a deadlock's victim is chosen so the other
//! transaction can go on, and it is short.
//!
//! Bounded ([`ATTEMPTS`], the first run included) and counted by reason, so a steady rate shows
//! on a dashboard instead of as latency.

use std::future::Future;

use prometheus::{IntCounterVec, Opts};
use sqlx::mysql::MySqlDatabaseError;

use super::{StoreError, StoreResult};

/// How often a unit of work is run when MySQL rolls it back for a lock conflict (the first run
/// included).
pub const ATTEMPTS: u32 = 3;

/// Whether MySQL rolled the transaction back for a deadlock (1213) or a lock wait timeout
/// (1205), and so which (the `reason` label): the whole transaction may be run again.
pub fn rolled_back_by_lock(e: &StoreError) -> Option<&'static str> {
    let StoreError::Database(sqlx::Error::Database(db)) = e else {
        return None;
    };
    match db.try_downcast_ref::<MySqlDatabaseError>()?.number() {
        1213 => Some("deadlock"),
        1205 => Some("lock_wait_timeout"),
        _ => None,
    }
}

/// A counter of runs started again, by `reason` (`deadlock`, `lock_wait_timeout`), named
/// `name` (a constant).
pub fn counter(name: &'static str, help: &'static str) -> IntCounterVec {
    // A constant, valid name and label: the only ways this could fail.
    IntCounterVec::new(Opts::new(name, help), &["reason"]).expect("constant counter options")
}

/// Runs `work` until it succeeds, fails otherwise than by a lock conflict, or has been run
/// [`ATTEMPTS`] times (the last error is returned); each new run is counted in `retries`.
/// `work` must start its transaction itself: a run never continues a rolled-back one.
pub async fn run<T, F, Fut>(
    retries: &IntCounterVec,
    what: &'static str,
    mut work: F,
) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut attempt = 1;
    loop {
        match work().await {
            Err(e) if attempt < ATTEMPTS => {
                let Some(reason) = rolled_back_by_lock(&e) else {
                    return Err(e);
                };
                tracing::info!(what, reason, attempt, "rolled back by MySQL; run again");
                retries.with_label_values(&[reason]).inc();
                attempt += 1;
            }
            done => return done,
        }
    }
}
