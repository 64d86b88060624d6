//! Shared test fixtures: a fresh, migrated MariaDB database per test and a unique Redis key
//! prefix, both removed when the fixture is dropped (also when the test panics).

#![allow(dead_code)]

use campaign_manager::store::{Cache, Store};
use sqlx::mysql::MySqlPoolOptions;
use sqlx::{AssertSqlSafe, MySqlPool};

/// Server URL of the local MariaDB (no database).
pub fn mysql_server() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// URL of the local Redis.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// A short random lowercase name.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..12)
            .unwrap_or("x")
    )
}

/// A database created for one test; dropped with the fixture.
pub struct TestDb {
    /// Database name.
    pub name: String,
    /// URL of the database.
    pub url: String,
    /// Pool on it.
    pub pool: MySqlPool,
}

impl TestDb {
    /// Creates an empty database (not migrated).
    pub async fn empty() -> TestDb {
        let name = unique("cmtest_");
        let admin = MySqlPoolOptions::new()
            .max_connections(1)
            .connect(&mysql_server())
            .await
            .expect("connect to MariaDB at 127.0.0.1:3306");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        let url = format!("{}/{name}", mysql_server());
        let pool = MySqlPoolOptions::new()
            .max_connections(8)
            .connect(&url)
            .await
            .expect("connect to test database");
        TestDb { name, url, pool }
    }

    /// Creates and migrates a database.
    pub async fn migrated() -> TestDb {
        let db = TestDb::empty().await;
        campaign_manager::store::MIGRATOR
            .run(&db.pool)
            .await
            .expect("migrate");
        db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context; use a small runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(admin) = MySqlPoolOptions::new()
                    .max_connections(1)
                    .connect(&mysql_server())
                    .await
                {
                    let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
                        .execute(&admin)
                        .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A Redis key prefix for one test; its keys are deleted with the fixture.
pub struct TestPrefix(pub String);

impl TestPrefix {
    /// A new unique prefix ending in ':'.
    pub fn new() -> TestPrefix {
        TestPrefix(format!("{}:", unique("cmtest")))
    }

    /// A cache on the local Redis under this prefix.
    pub fn cache(&self) -> Cache {
        Cache::new(&redis_url(), &self.0).expect("redis url")
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.0);
        if let Ok(client) = redis::Client::open(redis_url())
            && let Ok(mut conn) = client.get_connection()
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        }
    }
}

/// A migrated database and a cache prefix, with a `Store` over both.
pub struct TestStore {
    /// The store.
    pub store: Store,
    /// The database (kept for its Drop).
    pub db: TestDb,
    /// The prefix (kept for its Drop).
    pub prefix: TestPrefix,
}

impl TestStore {
    /// A fresh store.
    pub async fn new() -> TestStore {
        let db = TestDb::migrated().await;
        let prefix = TestPrefix::new();
        let store = Store::with_pool(db.pool.clone(), prefix.cache());
        TestStore { store, db, prefix }
    }
}
