//! Writes that nothing waits for, made together: each caller notes an id and returns at once,
//! and one task writes every id noted within [`WINDOW`] with one statement (`<head> (<ids>)`).
//!
//! Only for writes whose loss is repaired anyway: a process that dies (or a database that
//! fails three times in a row) loses at most the ids of one window, and what the write would
//! have said is learned again elsewhere (the repair asks the peer; an outbox row is written
//! again). That is what lets the dial path save a statement per dial at any rate above one
//! dial per window; below it, the write is as it was, a window later.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sqlx::MySqlPool;
use uuid::Uuid;

use super::StoreResult;
use super::row::uuid_bytes;

/// How long a noted id waits to be written with the others.
pub const WINDOW: Duration = Duration::from_millis(20);

/// Most ids one statement writes.
const PER_STATEMENT: usize = 500;

/// Attempts of one window's write before its ids are given up (left to the repair).
const ATTEMPTS: u64 = 3;

/// One kind of write: the statement's head, completed by `(<ids>)`.
#[derive(Clone)]
pub(super) struct Soon {
    pool: MySqlPool,
    head: &'static str,
    what: &'static str,
    pending: Arc<Mutex<Pending>>,
}

/// The ids not written yet, and whether a writer task is running.
#[derive(Default)]
struct Pending {
    ids: Vec<Uuid>,
    writing: bool,
}

impl Soon {
    /// A writer of `head (<ids>)` (e.g. `DELETE FROM t WHERE id IN`); `what` names the write in
    /// logs.
    pub(super) fn new(pool: MySqlPool, head: &'static str, what: &'static str) -> Soon {
        Soon {
            pool,
            head,
            what,
            pending: Arc::default(),
        }
    }

    /// Notes `id`; it is written within about [`WINDOW`]. Starts the writer task if none runs
    /// (so it must be called inside a Tokio runtime).
    pub(super) fn note(&self, id: Uuid) {
        let start = {
            let mut p = self.lock();
            p.ids.push(id);
            !std::mem::replace(&mut p.writing, true)
        };
        if start {
            let this = self.clone();
            tokio::spawn(async move { this.write_until_none().await });
        }
    }

    /// Writes every id noted and not written yet, now.
    pub(super) async fn flush(&self) -> StoreResult<()> {
        let ids = std::mem::take(&mut self.lock().ids);
        self.write(&ids).await
    }

    /// The writer task: every window, the ids noted meanwhile; it ends once a window noted none.
    async fn write_until_none(&self) {
        loop {
            tokio::time::sleep(WINDOW).await;
            let ids = {
                let mut p = self.lock();
                if p.ids.is_empty() {
                    p.writing = false;
                    return;
                }
                std::mem::take(&mut p.ids)
            };
            for attempt in 1..=ATTEMPTS {
                match self.write(&ids).await {
                    Ok(()) => break,
                    Err(e) if attempt < ATTEMPTS => {
                        tracing::info!(what = self.what, ids = ids.len(), error = %e, "deferred write failed; trying again");
                        tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                    }
                    Err(e) => {
                        tracing::warn!(what = self.what, ids = ids.len(), error = %e, "deferred write given up; the repair covers it");
                    }
                }
            }
        }
    }

    async fn write(&self, ids: &[Uuid]) -> StoreResult<()> {
        for chunk in ids.chunks(PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::<sqlx::MySql>::new(self.head);
            q.push(" (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(uuid_bytes(*id));
            }
            q.push(")");
            q.build().execute(&self.pool).await?;
        }
        Ok(())
    }

    /// The pending ids; a writer that panicked holding the lock left a list that is still whole.
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
