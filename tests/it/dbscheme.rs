//! The schema as the platform owns it: the Alembic revisions of `deploy/platform/dbscheme/`
//! (bin-dbscheme-manager's layout) run with `alembic upgrade head` on a fresh database holding
//! the platform's three campaign tables must give exactly the tables, columns, types and indexes
//! that `campaign-manager migrate` gives on an empty one; `alembic downgrade` takes them away
//! again. Also `campaign-manager migrate` itself: exit 0 and what it did, again with nothing to
//! do, exit 1 naming the database when it cannot reach it.
//!
//! Needs Python with `alembic` and `pymysql` (`pip install alembic pymysql`; `.ci/run` installs
//! them). Without them the Alembic test says so and passes, unless `CI_REQUIRE_ALEMBIC` is set.

use crate::support;

use std::path::PathBuf;
use std::process::Output;

use sqlx::{AssertSqlSafe, Executor};
use support::schema::snapshot;
use support::{MYSQL8_SQL_MODE, TestDb, mysql_server};

/// The last of our revisions: `alembic upgrade head` ends there.
const HEAD: &str = "9a4c7e2b5d18";
/// The platform's revision ours build on.
const PLATFORM_BASE: &str = "ab1507b96589";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The tables `migrations/` creates (`CREATE TABLE [IF NOT EXISTS] <name>`), by name.
fn created_tables() -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(root().join("migrations")).expect("migrations/") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
        let upper = text.to_uppercase();
        let mut rest = upper.as_str();
        while let Some(i) = rest.find("CREATE TABLE ") {
            let after = rest[i + "CREATE TABLE ".len()..].trim_start();
            let after = after
                .strip_prefix("IF NOT EXISTS ")
                .unwrap_or(after)
                .trim_start();
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            names.insert(name.to_lowercase());
            rest = &rest[i + 1..];
        }
    }
    names
}

/// Runs `campaign-manager migrate` on `dsn`.
async fn migrate(dsn: &str) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_campaign-manager"))
        .args(["migrate", "--database_dsn", dsn])
        .env_remove("DATABASE_DSN")
        .env_remove("DATABASE_DSN_FILE")
        .output()
        .await
        .expect("run campaign-manager migrate")
}

/// Whether `python3 -c "import alembic, pymysql"` works.
fn alembic_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import alembic, pymysql"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A database holding the platform's three campaign tables, as bin-dbscheme-manager left them.
async fn platform_database() -> TestDb {
    let db = TestDb::empty().await;
    let ddl =
        std::fs::read_to_string(root().join("tests/it/fixtures/platform_campaign_tables.sql"))
            .expect("platform DDL fixture");
    db.pool
        .execute(AssertSqlSafe(ddl))
        .await
        .expect("create the platform's tables");
    db
}

/// Runs `alembic <args>` against `db` with our revisions on top of the platform stand-in.
fn alembic(db: &TestDb, args: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(format!("cm-alembic-{}", db.name));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let main = root().join("deploy/platform/dbscheme/bin-manager/main");
    let stand_in = root().join("tests/it/fixtures/alembic_platform");
    let ini = dir.join("alembic.ini");
    std::fs::write(
        &ini,
        format!(
            "[alembic]\nscript_location = {}\nversion_locations = {} {}\npath_separator = space\n\
             version_path_separator = space\n",
            main.display(),
            stand_in.display(),
            main.join("versions").display()
        ),
    )
    .expect("alembic.ini");
    // MySQL 8.0's default sql_mode for Alembic's session too.
    let init = format!("SET SESSION sql_mode='{MYSQL8_SQL_MODE}'");
    let encoded: String = form_urlencoded::byte_serialize(init.as_bytes()).collect();
    let server = mysql_server().replacen("mysql://", "mysql+pymysql://", 1);
    let url = format!("{server}/{}?init_command={encoded}", db.name);
    let out = std::process::Command::new("python3")
        .args(["-m", "alembic", "-c"])
        .arg(&ini)
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .expect("run alembic");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_alembic_revisions_build_what_campaign_manager_migrate_builds() {
    if !alembic_available() {
        assert!(
            std::env::var_os("CI_REQUIRE_ALEMBIC").is_none(),
            "python3 with alembic and pymysql is required here (pip install alembic pymysql)"
        );
        eprintln!(
            "SKIPPED the_alembic_revisions_build_what_campaign_manager_migrate_builds: \
             python3 with alembic and pymysql not found (pip install alembic pymysql)"
        );
        return;
    }
    let ours = TestDb::empty().await;
    check(&migrate(&ours.url).await, "campaign-manager migrate");
    let expected = snapshot(&ours.pool).await;

    let platform = platform_database().await;
    let before = snapshot(&platform.pool).await;
    check(
        &alembic(&platform, &["upgrade", "head"]),
        "alembic upgrade head",
    );
    assert_eq!(snapshot(&platform.pool).await, expected);
    let (version,): (String,) = sqlx::query_as("SELECT version_num FROM alembic_version")
        .fetch_one(&platform.pool)
        .await
        .expect("alembic_version");
    assert_eq!(version, HEAD);

    // Every downgrade undoes its upgrade.
    check(
        &alembic(&platform, &["downgrade", PLATFORM_BASE]),
        "alembic downgrade",
    );
    assert_eq!(snapshot(&platform.pool).await, before);
}

#[tokio::test]
async fn migrate_applies_the_migrations_and_exits() {
    let db = TestDb::empty().await;
    let first = migrate(&db.url).await;
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.contains("the schema is current"), "{stdout}");
    assert!(stdout.contains("20220425000000"), "{stdout}");
    let (tables,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() \
         AND table_name LIKE 'campaign_%'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("count tables");
    assert_eq!(
        tables,
        created_tables().len() as i64,
        "{:?}",
        created_tables()
    );

    let again = migrate(&db.url).await;
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stdout).contains("applied []"));

    let unreachable = migrate("root@tcp(127.0.0.1:1)/nope?timeout=1s").await;
    assert_eq!(unreachable.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        stderr.contains("campaign-manager migrate failed: connecting to MySQL")
            && stderr.contains("127.0.0.1:1"),
        "{stderr}"
    );
}
