//! The migrations as an install meets them: a fresh database, a database migrated with the
//! old MariaDB-only texts (kept in `fixtures/mariadb_migrations/`), one where an old text failed
//! part-way (what MySQL 8.0 does with `IF NOT EXISTS` on an index), an edited file, and every
//! file run a second time after an interruption. The schema is compared through
//! `information_schema` (`support::schema`).

use crate::support;

use std::path::Path;

use campaign_manager::store::MIGRATOR;
use campaign_manager::store::migrate::{self, MigrationReport, REWRITTEN};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{AssertSqlSafe, Executor};
use support::TestDb;
use support::schema::snapshot;

/// The version of the migration that adds the platform's `tm_delete` index.
const TM_DELETE_INDEX: i64 = 20261206200000;

fn old_texts() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/fixtures/mariadb_migrations"
    ))
}

async fn old_migrator() -> Migrator {
    Migrator::new(old_texts())
        .await
        .expect("the old migration texts")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn versions() -> Vec<i64> {
    MIGRATOR.iter().map(|m| m.version).collect()
}

/// `(version, success, checksum)` of every row of sqlx's table.
async fn recorded(db: &TestDb) -> Vec<(i64, bool, String)> {
    let rows: Vec<(i64, bool, Vec<u8>)> =
        sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&db.pool)
            .await
            .expect("read _sqlx_migrations");
    rows.into_iter().map(|(v, s, c)| (v, s, hex(&c))).collect()
}

fn current_rows() -> Vec<(i64, bool, String)> {
    MIGRATOR
        .iter()
        .map(|m| (m.version, true, hex(&m.checksum)))
        .collect()
}

#[tokio::test]
async fn every_test_session_runs_in_mysql_8_default_sql_mode() {
    let db = TestDb::empty().await;
    let dsn = campaign_manager::dsn::DatabaseDsn::parse(&db.url).expect("test DSN");
    let store =
        campaign_manager::store::Store::connect(&dsn, campaign_manager::store::Cache::disabled())
            .await
            .expect("the service's pool on the test DSN");
    for pool in [&db.pool, &store.pool] {
        let (mode,): (String,) = sqlx::query_as("SELECT @@SESSION.sql_mode")
            .fetch_one(pool)
            .await
            .expect("sql_mode");
        assert_eq!(mode, support::MYSQL8_SQL_MODE);
    }
    // And it bites: a zero date is refused, as on MySQL 8.0.
    let refused = sqlx::query("CREATE TABLE z (d DATETIME DEFAULT '0000-00-00 00:00:00')")
        .execute(&db.pool)
        .await;
    assert!(refused.is_err(), "NO_ZERO_DATE is in force");
}

#[tokio::test]
async fn the_old_texts_are_the_checksums_the_migrator_adopts() {
    let old = old_migrator().await;
    let known: Vec<(i64, String)> = old.iter().map(|m| (m.version, hex(&m.checksum))).collect();
    let listed: Vec<(i64, String)> = REWRITTEN
        .iter()
        .map(|(v, c)| (*v, (*c).to_owned()))
        .collect();
    assert_eq!(known, listed);
}

#[tokio::test]
async fn a_fresh_database_migrates_and_a_second_run_changes_nothing() {
    let db = TestDb::empty().await;
    let first = migrate::run(&db.pool).await.expect("migrate");
    assert_eq!(
        first,
        MigrationReport {
            applied: versions(),
            ..MigrationReport::default()
        }
    );
    let schema = snapshot(&db.pool).await;
    assert!(
        schema["campaign_campaigns"]
            .indexes
            .contains_key("idx_campaign_campaigns_tm_delete")
    );
    let again = migrate::run(&db.pool).await.expect("migrate again");
    assert_eq!(again, MigrationReport::default());
    assert_eq!(snapshot(&db.pool).await, schema);
    assert_eq!(recorded(&db).await, current_rows());
}

#[tokio::test]
async fn a_database_migrated_with_the_old_texts_is_adopted_as_it_is() {
    let fresh = TestDb::migrated().await;
    let db = TestDb::empty().await;
    old_migrator()
        .await
        .run(&db.pool)
        .await
        .expect("the old texts on MariaDB");
    // sqlx alone refuses to go on: the files changed after they were applied.
    let refused = MIGRATOR.run(&db.pool).await.unwrap_err();
    assert!(
        matches!(refused, MigrateError::VersionMismatch(20220425000000)),
        "{refused}"
    );

    let report = migrate::run(&db.pool).await.expect("migrate");
    let rewritten: Vec<i64> = REWRITTEN.iter().map(|(v, _)| *v).collect();
    assert_eq!(report.adopted, rewritten);
    assert!(report.retried.is_empty());
    // What came after the old texts (the tm_delete index, and any later file) is applied.
    let newer: Vec<i64> = versions()
        .into_iter()
        .filter(|v| !rewritten.contains(v))
        .collect();
    assert!(newer.contains(&TM_DELETE_INDEX));
    assert_eq!(report.applied, newer);
    assert_eq!(recorded(&db).await, current_rows());
    assert_eq!(snapshot(&db.pool).await, snapshot(&fresh.pool).await);
    // From now on plain sqlx agrees too.
    MIGRATOR
        .run(&db.pool)
        .await
        .expect("sqlx on the adopted database");
}

#[tokio::test]
async fn an_old_text_that_failed_part_way_runs_again_rewritten() {
    let fresh = TestDb::migrated().await;
    let db = TestDb::empty().await;
    // What MySQL 8.0 leaves after the old first file: its row inserted with success = FALSE,
    // the first table created, then a syntax error at `CREATE INDEX IF NOT EXISTS`.
    let old = old_migrator().await;
    let first = old.iter().next().expect("old first migration");
    db.pool
        .execute(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
        )
        .await
        .expect("sqlx's table");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (?, ?, FALSE, ?, -1)",
    )
    .bind(first.version)
    .bind(first.description.to_string())
    .bind(first.checksum.to_vec())
    .execute(&db.pool)
    .await
    .expect("the dirty row");
    let created_first = first
        .sql
        .as_str()
        .split(';')
        .find(|s| s.contains("CREATE TABLE IF NOT EXISTS campaign_campaigns"))
        .expect("the first CREATE TABLE");
    db.pool
        .execute(AssertSqlSafe(created_first.to_owned()))
        .await
        .expect("the table created before the failure");
    // sqlx alone stops there on every start.
    let refused = MIGRATOR.run(&db.pool).await.unwrap_err();
    assert!(
        matches!(refused, MigrateError::Dirty(20220425000000)),
        "{refused}"
    );

    let report = migrate::run(&db.pool).await.expect("migrate");
    assert_eq!(report.retried, [20220425000000]);
    assert!(report.adopted.is_empty());
    assert_eq!(report.applied, versions());
    assert_eq!(recorded(&db).await, current_rows());
    assert_eq!(snapshot(&db.pool).await, snapshot(&fresh.pool).await);
}

#[tokio::test]
async fn an_edited_migration_is_still_refused() {
    let db = TestDb::migrated().await;
    sqlx::query("UPDATE _sqlx_migrations SET checksum = ? WHERE version = ?")
        .bind(vec![7u8; 48])
        .bind(20261129130000i64)
        .execute(&db.pool)
        .await
        .expect("tamper");
    let e = migrate::run(&db.pool).await.unwrap_err();
    assert!(e.to_string().contains("20261129130000"), "{e}");
}

#[tokio::test]
async fn every_migration_runs_again_after_an_interruption() {
    let fresh = TestDb::migrated().await;
    let db = TestDb::migrated().await;
    // A process that died between a file's statements re-runs the whole file: each one
    // changes nothing where its work is done.
    for m in MIGRATOR.iter() {
        db.pool
            .execute(AssertSqlSafe(m.sql.as_str().to_owned()))
            .await
            .unwrap_or_else(|e| panic!("{} run again: {e}", m.version));
    }
    assert_eq!(snapshot(&db.pool).await, snapshot(&fresh.pool).await);
}
