//! Storage: one repository per MySQL table, a Redis read-through cache by id, and the list
//! machinery (whitelisted filters, timestamp pagination) they share.
//!
//! Shaped after the Go service's tables (docs/storage.md) so the service adopts an existing
//! platform database: UUIDs are `BINARY(16)` (nil stored as 16 zero bytes), times `DATETIME(6)`
//! in UTC, JSON columns hold serde JSON. Reads treat SQL NULL and JSON `null` alike.

mod cache;
mod callbacks;
mod campaigncalls;
mod campaigns;
mod customer_limits;
mod dials;
pub mod filter;
mod loop_kicks;
pub mod migrate;
mod outbox;
mod outplans;
pub mod page;
pub mod retry;
mod row;
mod soon;
mod stats;
mod suppressions;
mod table;
mod tick_switch;

use sqlx::mysql::MySqlPoolOptions;
use sqlx::{ConnectOptions, MySqlPool};

use crate::dsn::DatabaseDsn;

pub use cache::Cache;
pub use callbacks::{Callbacks, TICK_READ_LIMIT, TickCallbacks};
pub use campaigncalls::{Campaigncalls, FINISH_RETRIES_METRIC, FreshCampaigncall};
pub use campaigns::{BasicInfo, Campaigns, ResourceInfo};
pub use customer_limits::CustomerLimits;
pub use dials::{
    DialFence, DialRecords, DialStep, Overdue, OverdueRule, POOL_WAIT_METRIC, RECORD_ATTEMPTS,
    RECORD_RETRIES_METRIC, RecentDials, Recorded,
};
pub use filter::Filters;
pub use loop_kicks::{LoopKick, LoopKicks};
pub use migrate::MigrationReport;
pub use outbox::{Outbox, OutboxEntry, OutboxKind, TargetSettle};
pub use outplans::{Dials, Outplans, RetryUpdate};
pub use page::Page;
pub use stats::{Stats, StatsSnapshot, StatusCount, TICK_RECORD_TTL};
pub use suppressions::{Listed, Suppressions};
pub use table::Deletion;
pub use tick_switch::{SwitchState, TickSwitch};

/// MySQL connections of one process's pool unless configured (`--database_max_connections`).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// A held MySQL named lock (see [`Store::try_lock`]). Release it with [`NamedLock::release`];
/// dropped without that, its connection is closed rather than returned to the pool, which
/// frees the lock too.
pub struct NamedLock {
    conn: Option<sqlx::pool::PoolConnection<sqlx::MySql>>,
    name: String,
}

impl NamedLock {
    /// Whether this session still holds the lock. A lock dies with its connection (a dropped
    /// or killed session), and another process may then take it: work done under the lock
    /// checks this before each step rather than trusting the lock it took once.
    pub async fn held(&mut self) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let held: Result<(Option<i64>,), _> =
            sqlx::query_as("SELECT IS_USED_LOCK(?) = CONNECTION_ID()")
                .bind(&self.name)
                .fetch_one(&mut **conn)
                .await;
        matches!(held, Ok((Some(1),)))
    }

    /// Releases the lock and returns the connection to the pool.
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let released = sqlx::query("SELECT RELEASE_LOCK(?)")
                .bind(&self.name)
                .execute(&mut *conn)
                .await;
            if released.is_err() {
                conn.close_on_drop();
            }
        }
    }
}

impl Drop for NamedLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}

/// The migrations in `migrations/`, embedded in the binary; run them with [`Store::migrate`]
/// (or [`migrate::run`]), which also adopts databases migrated with the rewritten old texts.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What can go wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or refused a statement.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value cannot be read as the model says (e.g. an unknown enum string).
    #[error("unreadable {table}.{column}: {reason}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// Why.
        reason: String,
    },
    /// A list filter is not allowed or has the wrong type (a client error).
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    /// `page_token` or `page_size` cannot be used (a client error).
    #[error("invalid page: {0}")]
    InvalidPage(String),
}

impl StoreError {
    /// Whether the statement named a table the database does not have (not migrated yet).
    pub fn is_missing_table(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e))
            if e.code().as_deref() == Some("42S02"))
    }
}

/// Short alias for results of this layer.
pub type StoreResult<T> = Result<T, StoreError>;

/// All repositories over one pool and one cache.
#[derive(Clone)]
pub struct Store {
    /// The MySQL pool.
    pub pool: MySqlPool,
    /// Campaigns.
    pub campaigns: Campaigns,
    /// Campaigncalls.
    pub campaigncalls: Campaigncalls,
    /// Outplans.
    pub outplans: Outplans,
    /// The service's own dial records and fences.
    pub dials: DialRecords,
    /// Live stats queries, tick records and run starts.
    pub stats: Stats,
    /// The durable off switch of tick namespaces.
    pub tick_switch: TickSwitch,
    /// Go execute loops started on a rollback.
    pub loop_kicks: LoopKicks,
    /// The customers' suppression (do-not-call) lists.
    pub suppressions: Suppressions,
    /// The customers' dial limits across all their campaigns.
    pub customer_limits: CustomerLimits,
    /// Follow-up work that must outlive its process (target statuses, sequence starts).
    pub outbox: Outbox,
    /// The campaigns' callbacks.
    pub callbacks: Callbacks,
}

/// A pool of at most `max_connections` to the database of `database` ([`Store::pool_options`]).
pub async fn connect_pool(database: &DatabaseDsn, max_connections: u32) -> StoreResult<MySqlPool> {
    // Statement logging would print every tick's queries; slow ones show in metrics instead.
    let options = database.options.clone().disable_statement_logging();
    Ok(Store::pool_options(database)
        .max_connections(max_connections.max(1))
        .connect_with(options)
        .await?)
}

impl Store {
    /// Connects to the MySQL of `database` with a pool of [`DEFAULT_MAX_CONNECTIONS`] (the
    /// service is I/O bound on the broker, not the DB). Its `connect_timeout` bounds a new
    /// connection (TLS handshake included) and any wait for a pooled one; its `sql_mode`, if
    /// any, is set on every new connection.
    pub async fn connect(database: &DatabaseDsn, cache: Cache) -> StoreResult<Store> {
        Store::connect_with(database, cache, DEFAULT_MAX_CONNECTIONS).await
    }

    /// [`Store::connect`] with a pool of at most `max_connections`.
    pub async fn connect_with(
        database: &DatabaseDsn,
        cache: Cache,
        max_connections: u32,
    ) -> StoreResult<Store> {
        let pool = connect_pool(database, max_connections).await?;
        Ok(Store::with_pool(pool, cache))
    }

    /// Pool options for `database`: its connect timeout, and its `sql_mode` set on every new
    /// connection (what [`Store::connect`] uses; tests size their own pools with it).
    pub fn pool_options(database: &DatabaseDsn) -> MySqlPoolOptions {
        let sql_mode = database.sql_mode.clone();
        MySqlPoolOptions::new()
            .acquire_timeout(database.connect_timeout)
            .after_connect(move |conn, _| {
                let sql_mode = sql_mode.clone();
                Box::pin(async move {
                    if let Some(mode) = sql_mode {
                        sqlx::query("SET SESSION sql_mode = ?")
                            .bind(mode)
                            .execute(conn)
                            .await?;
                    }
                    Ok(())
                })
            })
    }

    /// Builds the repositories over an existing pool.
    pub fn with_pool(pool: MySqlPool, cache: Cache) -> Store {
        let finish_retries = retry::counter(
            FINISH_RETRIES_METRIC,
            "Campaigncall finish transactions and outbox deletes run again after MySQL rolled \
             them back (deadlock, lock_wait_timeout).",
        );
        let campaigncalls = Campaigncalls::new(pool.clone(), cache.clone(), finish_retries.clone());
        Store {
            campaigns: Campaigns::new(pool.clone(), cache.clone()),
            campaigncalls: campaigncalls.clone(),
            dials: DialRecords::new(pool.clone(), campaigncalls),
            stats: Stats::new(pool.clone(), cache.clone()),
            tick_switch: TickSwitch::new(pool.clone()),
            loop_kicks: LoopKicks::new(pool.clone()),
            suppressions: Suppressions::new(pool.clone()),
            customer_limits: CustomerLimits::new(pool.clone()),
            outbox: Outbox::new(pool.clone(), finish_retries),
            callbacks: Callbacks::new(pool.clone()),
            outplans: Outplans::new(pool.clone(), cache),
            pool,
        }
    }

    /// Applies pending migrations (idempotent; see [`migrate`]).
    pub async fn migrate(&self) -> StoreResult<MigrationReport> {
        migrate::run(&self.pool).await
    }

    /// Takes the MySQL named lock `name` (scoped to this database) without waiting; `None`
    /// when another session holds it. The lock dies with its connection, so a process that dies
    /// while holding it frees it at once.
    pub async fn try_lock(&self, name: &str) -> StoreResult<Option<NamedLock>> {
        let mut conn = self.pool.acquire().await?;
        let (db,): (Option<String>,) = sqlx::query_as("SELECT DATABASE()")
            .fetch_one(&mut *conn)
            .await?;
        let mut full = format!("{}.{name}", db.unwrap_or_default());
        // MariaDB caps lock names at 64 characters.
        full.truncate(64);
        let (got,): (Option<i64>,) = sqlx::query_as("SELECT GET_LOCK(?, 0)")
            .bind(&full)
            .fetch_one(&mut *conn)
            .await?;
        if got != Some(1) {
            return Ok(None);
        }
        Ok(Some(NamedLock {
            conn: Some(conn),
            name: full,
        }))
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}
