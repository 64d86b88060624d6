//! Schema migrations: the files of `migrations/`, applied by sqlx, under sqlx's own lock, after
//! one repair of the migrations table that sqlx cannot do itself.
//!
//! Why the repair: sqlx records a SHA-384 checksum of every applied file and refuses to start
//! when a file changed after it was applied. Our first six files used MariaDB-only DDL (`IF
//! [NOT] EXISTS` on indexes and columns), which MySQL 8.0 rejects; they were rewritten, with the
//! same effect, into statements both servers run. A database migrated with the old texts holds
//! their checksums, so [`REWRITTEN`] lists each rewritten version with the checksum of its old
//! text, and before sqlx runs:
//! - an old text applied in full (`success = TRUE`) gets the new text's checksum: the schema it
//!   produced is the one the new text produces, so nothing else changes;
//! - an old text that failed part-way (`success = FALSE`: what MySQL 8.0 leaves behind, which
//!   sqlx reports as "dirty" on every later start) loses its row, and the new text, which only
//!   creates what is missing, runs again.
//!
//! A checksum that is neither the old nor the new text is left alone, so sqlx still refuses an
//! edited file. Everything happens on one connection holding sqlx's migration lock, so two
//! processes starting together do it once.

use sqlx::migrate::{Migrate, Migrator};
use sqlx::{MySqlConnection, MySqlPool};

use super::{MIGRATOR, StoreResult};

/// sqlx's migrations table.
const TABLE: &str = "_sqlx_migrations";

/// Migrations rewritten in place, with the checksum (SHA-384, hex) of the text they replaced.
/// The old texts are kept in `tests/it/fixtures/mariadb_migrations/`, whose test checks these.
pub const REWRITTEN: &[(i64, &str)] = &[
    (
        20220425000000,
        "2f4e802b30aaee850303c7aa75f11e3bdb51d5dd21b665f2cc57a21992ab02dc17e7ef5a38a6131614c1f4c90df632af",
    ),
    (
        20261129000000,
        "affb7710eb081aaf843c7fbc8f9768545eea4f79ab6fbc8eb2ff50c0c6cab7bf84320b8f0841e26448fac3255516622e",
    ),
    (
        20261129060000,
        "7bfa4182924f637befcfa2c0a7ca6df723e9e240529c463f1e0ccc96cf10bb1d347be80b8d4df88a757292e5ebc8fb4a",
    ),
    (
        20261129120100,
        "c55f240ca0681759fd3428dd9b0a6295847c4fbafee16062751037d4f8790d7c81d257fef35527cef1daf516abd1c37a",
    ),
    (
        20261129130000,
        "c4f2f0aa47df3891c81e4677a2d0f447427f44f8446b4ed9499c1d0cd74d73a9a9fc7fe8f1e6b8a7603576621a3be198",
    ),
    (
        20261129140000,
        "bc9b1384de0e4053de176c69eb2f99896a48f44079156492c5a1511acdcff409773d483daaa23a07ac2293d2aa9f3b90",
    ),
];

/// What one run did, by version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Applied with an old text; now recorded with the new one.
    pub adopted: Vec<i64>,
    /// An old text had failed part-way; its new text was run again.
    pub retried: Vec<i64>,
    /// Applied by this run (retried ones included).
    pub applied: Vec<i64>,
}

/// Applies the pending migrations of `migrations/` (see the module doc); idempotent.
pub async fn run(pool: &MySqlPool) -> StoreResult<MigrationReport> {
    let mut conn = pool.acquire().await?;
    conn.lock().await?;
    let outcome = run_locked(&mut conn).await;
    let unlocked = conn.unlock().await;
    let report = outcome?;
    unlocked?;
    Ok(report)
}

async fn run_locked(conn: &mut MySqlConnection) -> StoreResult<MigrationReport> {
    conn.ensure_migrations_table(TABLE).await?;
    let before = applied_versions(conn).await?;
    let mut report = adopt_rewritten(conn).await?;
    // The lock is held already: sqlx must not take it again on this connection.
    let mut migrator = Migrator::with_migrations(MIGRATOR.iter().cloned().collect());
    migrator.set_locking(false);
    migrator.run(&mut *conn).await?;
    report.applied = applied_versions(conn)
        .await?
        .into_iter()
        .filter(|v| !before.contains(v) || report.retried.contains(v))
        .collect();
    Ok(report)
}

/// The repair of the module doc, for every version in [`REWRITTEN`].
async fn adopt_rewritten(conn: &mut MySqlConnection) -> StoreResult<MigrationReport> {
    let mut report = MigrationReport::default();
    for (version, old) in REWRITTEN {
        let Some(current) = MIGRATOR.iter().find(|m| m.version == *version) else {
            continue;
        };
        let old = hex_bytes(old);
        let adopted = sqlx::query(
            "UPDATE _sqlx_migrations SET checksum = ? \
             WHERE version = ? AND checksum = ? AND success = TRUE",
        )
        .bind(current.checksum.to_vec())
        .bind(version)
        .bind(&old)
        .execute(&mut *conn)
        .await?;
        if adopted.rows_affected() > 0 {
            report.adopted.push(*version);
        }
        let failed = sqlx::query(
            "DELETE FROM _sqlx_migrations WHERE version = ? AND checksum = ? AND success = FALSE",
        )
        .bind(version)
        .bind(&old)
        .execute(&mut *conn)
        .await?;
        if failed.rows_affected() > 0 {
            tracing::warn!(
                version,
                "migration {version} had failed part-way with its old MariaDB-only text; running its rewritten text"
            );
            report.retried.push(*version);
        }
    }
    if !report.adopted.is_empty() {
        tracing::info!(versions = ?report.adopted, "recorded the rewritten texts of migrations applied before");
    }
    Ok(report)
}

async fn applied_versions(conn: &mut MySqlConnection) -> StoreResult<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(v,)| v).collect())
}

/// Bytes of a lowercase hex string (the constants above; a bad digit reads as 0, which no
/// checksum matches).
fn hex_bytes(hex: &str) -> Vec<u8> {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            (digit(pair[0]) << 4) | pair.get(1).map_or(0, |c| digit(*c))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_reads_back_to_bytes() {
        assert_eq!(hex_bytes("00ff10a5"), [0x00, 0xff, 0x10, 0xa5]);
        assert_eq!(hex_bytes(REWRITTEN[0].1).len(), 48, "SHA-384");
    }

    #[test]
    fn every_rewritten_version_is_a_migration_whose_text_changed() {
        for (version, old) in REWRITTEN {
            let current = MIGRATOR
                .iter()
                .find(|m| m.version == *version)
                .unwrap_or_else(|| panic!("{version} is not in migrations/"));
            assert_ne!(current.checksum.to_vec(), hex_bytes(old), "{version}");
        }
    }
}
