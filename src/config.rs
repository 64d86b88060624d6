//! Configuration: `clap` flags with environment fallbacks, the same names and defaults as the
//! Go service (docs/configuration.md), plus the settings the Rust service adds. Precedence is
//! flag > env > default. Binaries flatten [`Infra`] so every tool reads the same keys, and the
//! service binaries [`Settings`] as well.
//!
//! Secrets (the DSN, the broker address with its credentials, the Redis password) can also come
//! from files, as Kubernetes mounts secrets: `--database_dsn_file` / `DATABASE_DSN_FILE` and the
//! like. A value and its file together are refused by clap; [`Infra::with_secret_files`] reads
//! the files (trailing line breaks trimmed). An empty password file means "no password" (a
//! Redis without AUTH, as `kubectl create secret --from-literal=redis-password=` makes it); an
//! empty DSN or broker address file is an error. `Debug` of [`Infra`] never shows a secret.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::bus::{EventBus, Names};
use crate::dsn::{DatabaseDsn, DsnError};
use crate::service::{Delays, RepairSettings};
use crate::store::OverdueRule;

/// How to reach MariaDB, Redis and RabbitMQ, and where to serve metrics.
#[derive(Clone, Args)]
pub struct Infra {
    /// AMQP URI of the broker (`amqps://` for TLS).
    #[arg(
        long = "rabbitmq_address",
        env = "RABBITMQ_ADDRESS",
        default_value = "amqp://guest:guest@localhost:5672",
        hide_env_values = true
    )]
    pub rabbitmq_address: String,

    /// File holding the AMQP URI (instead of --rabbitmq_address).
    #[arg(
        long = "rabbitmq_address_file",
        env = "RABBITMQ_ADDRESS_FILE",
        conflicts_with = "rabbitmq_address"
    )]
    pub rabbitmq_address_file: Option<PathBuf>,

    /// Path of the Prometheus metrics endpoint.
    #[arg(
        long = "prometheus_endpoint",
        env = "PROMETHEUS_ENDPOINT",
        default_value = "/metrics"
    )]
    pub prometheus_endpoint: String,

    /// Listen address of the metrics and health endpoints (`:2112` means all interfaces).
    #[arg(
        long = "prometheus_listen_address",
        env = "PROMETHEUS_LISTEN_ADDRESS",
        default_value = ":2112"
    )]
    pub prometheus_listen_address: String,

    /// MySQL DSN: the platform's `user:pass@tcp(host:port)/db?tls=true&timeout=5s` form or a
    /// `mysql://user:pass@host:port/db` URL (parameters: see docs, `crate::dsn`).
    #[arg(
        long = "database_dsn",
        env = "DATABASE_DSN",
        default_value = "testid:testpassword@tcp(127.0.0.1:3306)/test",
        hide_env_values = true
    )]
    pub database_dsn: String,

    /// File holding the MySQL DSN (instead of --database_dsn).
    #[arg(
        long = "database_dsn_file",
        env = "DATABASE_DSN_FILE",
        conflicts_with = "database_dsn"
    )]
    pub database_dsn_file: Option<PathBuf>,

    /// Redis `host:port`.
    #[arg(
        long = "redis_address",
        env = "REDIS_ADDRESS",
        default_value = "127.0.0.1:6379"
    )]
    pub redis_address: String,

    /// Redis password (empty: none).
    #[arg(
        long = "redis_password",
        env = "REDIS_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub redis_password: String,

    /// File holding the Redis password (instead of --redis_password).
    #[arg(
        long = "redis_password_file",
        env = "REDIS_PASSWORD_FILE",
        conflicts_with = "redis_password"
    )]
    pub redis_password_file: Option<PathBuf>,

    /// Redis database number.
    #[arg(long = "redis_database", env = "REDIS_DATABASE", default_value_t = 1)]
    pub redis_database: i64,

    /// Connect to Redis over TLS (`rediss://`), verifying its certificate.
    #[arg(long = "redis_tls", env = "REDIS_TLS", default_value_t = false, action = clap::ArgAction::Set)]
    pub redis_tls: bool,

    /// Seed nodes (`host:port`, comma-separated) of a Redis Cluster that holds the tick
    /// scheduler instead of --redis_address (which keeps the cache). Any reachable node will
    /// do; --redis_password and --redis_tls apply. Empty: the scheduler shares --redis_address.
    #[arg(
        long = "tick_redis_cluster",
        env = "TICK_REDIS_CLUSTER",
        value_delimiter = ',',
        default_value = ""
    )]
    pub tick_redis_cluster: Vec<String>,
}

impl fmt::Debug for Infra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Infra")
            .field("rabbitmq_address", &redact_url(&self.rabbitmq_address))
            .field("rabbitmq_address_file", &self.rabbitmq_address_file)
            .field("prometheus_endpoint", &self.prometheus_endpoint)
            .field("prometheus_listen_address", &self.prometheus_listen_address)
            .field("database_dsn", &redact_dsn(&self.database_dsn))
            .field("database_dsn_file", &self.database_dsn_file)
            .field("redis_address", &self.redis_address)
            .field(
                "redis_password",
                &if self.redis_password.is_empty() {
                    ""
                } else {
                    "***"
                },
            )
            .field("redis_password_file", &self.redis_password_file)
            .field("redis_database", &self.redis_database)
            .field("redis_tls", &self.redis_tls)
            .field("tick_redis_cluster", &self.tick_redis_cluster)
            .finish()
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid {key}: {reason}")]
pub struct ConfigError {
    /// Which setting.
    pub key: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl From<DsnError> for ConfigError {
    fn from(e: DsnError) -> ConfigError {
        ConfigError {
            key: "database_dsn",
            reason: e.0,
        }
    }
}

impl Infra {
    /// The MySQL connect options from the DSN, every parameter applied or refused by name.
    pub fn database(&self) -> Result<DatabaseDsn, ConfigError> {
        Ok(DatabaseDsn::parse(&self.database_dsn)?)
    }

    /// The tick scheduler's settings for `namespace` split over `shards`: on the cluster of
    /// --tick_redis_cluster when set (database 0, the only one a cluster has), else on the
    /// Redis of [`Infra::redis_url`].
    pub fn scheduler(&self, namespace: &str, shards: usize) -> campaign_workers::SchedulerConfig {
        let mut cfg = campaign_workers::SchedulerConfig::new(self.redis_url(), namespace);
        cfg.shards = shards;
        cfg.cluster_nodes = self
            .tick_cluster_seeds()
            .into_iter()
            .map(|node| redis_url(node, &self.redis_password, 0, self.redis_tls))
            .collect();
        cfg
    }

    /// The `host:port` seeds of --tick_redis_cluster, blanks dropped (empty: no cluster).
    pub fn tick_cluster_seeds(&self) -> Vec<&str> {
        self.tick_redis_cluster
            .iter()
            .map(|node| node.trim())
            .filter(|node| !node.is_empty())
            .collect()
    }

    /// The Redis URL built from address, password, database and TLS flag.
    pub fn redis_url(&self) -> String {
        redis_url(
            &self.redis_address,
            &self.redis_password,
            self.redis_database,
            self.redis_tls,
        )
    }

    /// The metrics listen address as a socket address string (`:2112` → `0.0.0.0:2112`).
    pub fn metrics_listen(&self) -> String {
        listen_addr(&self.prometheus_listen_address)
    }

    /// This configuration with every `*_file` secret read into its value (and the file
    /// setting cleared, so calling it again changes nothing).
    pub fn with_secret_files(mut self) -> Result<Infra, ConfigError> {
        if let Some(path) = self.database_dsn_file.take() {
            self.database_dsn = required(
                "database_dsn_file",
                &path,
                read_secret("database_dsn_file", &path)?,
            )?;
        }
        if let Some(path) = self.rabbitmq_address_file.take() {
            self.rabbitmq_address = required(
                "rabbitmq_address_file",
                &path,
                read_secret("rabbitmq_address_file", &path)?,
            )?;
        }
        if let Some(path) = self.redis_password_file.take() {
            // Empty: Redis has no password, the same as --redis_password "".
            self.redis_password = read_secret("redis_password_file", &path)?;
        }
        Ok(self)
    }
}

/// The content of a mounted secret, without trailing line breaks (`echo` and editors add one).
fn read_secret(key: &'static str, path: &std::path::Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        key,
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// `value` read from `path`, refused when empty (a DSN or an address cannot be).
fn required(
    key: &'static str,
    path: &std::path::Path,
    value: String,
) -> Result<String, ConfigError> {
    if value.is_empty() {
        return Err(ConfigError {
            key,
            reason: format!("{} is empty", path.display()),
        });
    }
    Ok(value)
}

/// A URL with the password of its user info replaced by `***` (for logs and messages).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A DSN in either form with its password replaced by `***`.
pub fn redact_dsn(dsn: &str) -> String {
    if dsn.contains("://") {
        return redact_url(dsn);
    }
    // The go-sql-driver form: the credentials end at the last '@' before the last '/'.
    let head_end = dsn.rfind('/').unwrap_or(dsn.len());
    match dsn[..head_end].rfind('@') {
        Some(at) => match dsn[..at].split_once(':') {
            Some((user, _)) => format!("{user}:***{}", &dsn[at..]),
            None => dsn.to_owned(),
        },
        None => dsn.to_owned(),
    }
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Builds `redis://[:password@]host:port/db` (`rediss://` with `tls`).
pub fn redis_url(address: &str, password: &str, db: i64, tls: bool) -> String {
    let scheme = if tls { "rediss" } else { "redis" };
    if password.is_empty() {
        format!("{scheme}://{address}/{db}")
    } else {
        format!("{scheme}://:{}@{address}/{db}", encode(password))
    }
}

/// Turns Go's `:port` listen form into a bindable address.
pub fn listen_addr(addr: &str) -> String {
    if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use clap::{CommandFactory, Parser};

    fn secret_file(name: &str, content: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "campaign-manager-config-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, content).expect("writing a temporary secret");
        path
    }

    fn defaults() -> Infra {
        InfraOnly::try_parse_from(["x"]).expect("defaults").infra
    }

    #[test]
    fn the_scheduler_runs_on_the_cache_redis_or_on_the_tick_cluster() {
        let single = defaults().scheduler("cm:ticks", 1);
        assert_eq!(single.redis_url, "redis://127.0.0.1:6379/1");
        assert!(single.cluster_nodes.is_empty());
        assert_eq!((single.namespace.as_str(), single.shards), ("cm:ticks", 1));

        let parsed = InfraOnly::try_parse_from([
            "x",
            "--tick_redis_cluster",
            "10.0.0.1:7000, 10.0.0.2:7001,",
            "--redis_password",
            "p w",
            "--redis_tls",
            "true",
        ])
        .expect("flags")
        .infra;
        let cluster = parsed.scheduler("cm:ticks", 4);
        assert_eq!(
            cluster.cluster_nodes,
            [
                "rediss://:p%20w@10.0.0.1:7000/0",
                "rediss://:p%20w@10.0.0.2:7001/0"
            ]
        );
        assert_eq!(cluster.shards, 4);
    }

    #[test]
    fn secret_files_are_read_without_trailing_line_breaks() {
        let dsn = secret_file("dsn", "u:pw@tcp(db:3306)/app?tls=true\n");
        let amqp = secret_file("amqp", "amqps://u:pw@mq:5671/%2f\r\n");
        let redis = secret_file("redis", " p@ss word\n\n");
        let infra = Infra {
            database_dsn_file: Some(dsn.clone()),
            rabbitmq_address_file: Some(amqp.clone()),
            redis_password_file: Some(redis.clone()),
            ..defaults()
        }
        .with_secret_files()
        .expect("readable secrets");
        for f in [dsn, amqp, redis] {
            let _ = std::fs::remove_file(f);
        }
        assert_eq!(infra.database_dsn, "u:pw@tcp(db:3306)/app?tls=true");
        assert_eq!(infra.rabbitmq_address, "amqps://u:pw@mq:5671/%2f");
        assert_eq!(infra.redis_password, " p@ss word");
        assert!(infra.database_dsn_file.is_none() && infra.redis_password_file.is_none());
        // Read once: doing it again changes nothing.
        let again = infra.clone().with_secret_files().expect("no files left");
        assert_eq!(again.database_dsn, infra.database_dsn);
    }

    #[test]
    fn missing_or_empty_secret_files_are_errors_but_an_empty_password_is_none() {
        let missing = Infra {
            redis_password_file: Some(PathBuf::from("/nonexistent/redis-password")),
            ..defaults()
        };
        let e = missing.with_secret_files().err().map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(
            e.starts_with("invalid redis_password_file: cannot read /nonexistent/redis-password"),
            "{e}"
        );
        let empty = secret_file("empty", "\n");
        let e = Infra {
            database_dsn_file: Some(empty.clone()),
            ..defaults()
        }
        .with_secret_files()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            e.starts_with("invalid database_dsn_file:") && e.ends_with("is empty"),
            "{e}"
        );
        let e = Infra {
            rabbitmq_address_file: Some(empty.clone()),
            ..defaults()
        }
        .with_secret_files()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.starts_with("invalid rabbitmq_address_file:"), "{e}");
        // An empty password file is a Redis without a password.
        let infra = Infra {
            redis_password_file: Some(empty.clone()),
            ..defaults()
        }
        .with_secret_files()
        .expect("an empty password file is no password");
        let _ = std::fs::remove_file(empty);
        assert_eq!(infra.redis_password, "");
        assert_eq!(infra.redis_url(), "redis://127.0.0.1:6379/1");
    }

    #[test]
    fn a_value_and_its_file_together_are_refused() {
        for (value, file) in [
            ("--database_dsn", "--database_dsn_file"),
            ("--rabbitmq_address", "--rabbitmq_address_file"),
            ("--redis_password", "--redis_password_file"),
        ] {
            let parsed = InfraOnly::try_parse_from(["x", value, "v", file, "/run/secrets/f"]);
            let kind = parsed.err().map(|e| e.kind());
            assert_eq!(
                kind,
                Some(clap::error::ErrorKind::ArgumentConflict),
                "{value}"
            );
        }
    }

    #[test]
    fn file_settings_have_their_env_names() {
        let command = InfraOnly::command();
        for (id, env) in [
            ("database_dsn_file", "DATABASE_DSN_FILE"),
            ("rabbitmq_address_file", "RABBITMQ_ADDRESS_FILE"),
            ("redis_password_file", "REDIS_PASSWORD_FILE"),
            ("redis_tls", "REDIS_TLS"),
        ] {
            let arg = command.get_arguments().find(|a| a.get_id() == id);
            let got = arg.and_then(|a| a.get_env()).and_then(|e| e.to_str());
            assert_eq!(got, Some(env), "{id}");
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let infra = Infra {
            database_dsn: "admin:DbSecret1@tcp(db:3306)/app?tls=true".into(),
            rabbitmq_address: "amqps://guest:MqSecret2@mq:5671".into(),
            redis_password: "RedisSecret3".into(),
            ..defaults()
        };
        let shown = format!("{infra:?} {infra:#?}");
        for secret in ["DbSecret1", "MqSecret2", "RedisSecret3"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("admin:***@tcp(db:3306)/app?tls=true"),
            "{shown}"
        );
        assert!(shown.contains("amqps://guest:***@mq:5671"), "{shown}");
    }

    #[test]
    fn redaction_of_both_dsn_forms() {
        assert_eq!(redact_dsn("u:p@ss@tcp(h:1)/d"), "u:***@tcp(h:1)/d");
        assert_eq!(redact_dsn("u@tcp(h:1)/d"), "u@tcp(h:1)/d");
        assert_eq!(redact_dsn("mysql://u:pw@h/d"), "mysql://u:***@h/d");
        assert_eq!(redact_dsn("nodb"), "nodb");
        assert_eq!(redact_url("amqp://h:5672"), "amqp://h:5672");
    }

    #[test]
    fn repair_settings_from_flags_and_env() {
        let parse = |args: &[&str]| {
            let mut all = vec!["x"];
            all.extend_from_slice(args);
            SettingsOnly::try_parse_from(all).expect("parse").settings
        };
        let r = parse(&[]).repair().expect("defaults");
        assert_eq!(
            (
                r.backoff,
                r.backoff_max,
                r.rule.margin_ms,
                r.rule.max_call_ms
            ),
            (
                Duration::from_secs(30),
                Duration::from_secs(600),
                60_000,
                7_200_000
            )
        );
        let r = parse(&[
            "--repair_backoff_ms",
            "1000",
            "--repair_backoff_max_ms",
            "4000",
            "--repair_margin_ms",
            "40000",
            "--max_call_duration_s",
            "60",
        ])
        .repair()
        .expect("flags");
        assert_eq!(
            (
                r.backoff,
                r.backoff_max,
                r.rule.margin_ms,
                r.rule.max_call_ms
            ),
            (
                Duration::from_secs(1),
                Duration::from_secs(4),
                40_000,
                60_000
            )
        );
        assert_eq!(r.delay(5), Duration::from_secs(4));
        for args in [
            &["--repair_backoff_ms", "0"][..],
            &[
                "--repair_backoff_ms",
                "5000",
                "--repair_backoff_max_ms",
                "4000",
            ][..],
        ] {
            let err = parse(args).repair().expect_err("refused").to_string();
            assert!(err.contains("repair_backoff_ms"), "{err}");
        }
        let command = SettingsOnly::command();
        for (id, env) in [
            ("repair_backoff_ms", "REPAIR_BACKOFF_MS"),
            ("repair_backoff_max_ms", "REPAIR_BACKOFF_MAX_MS"),
            ("repair_margin_ms", "REPAIR_MARGIN_MS"),
            ("max_call_duration_s", "MAX_CALL_DURATION_S"),
        ] {
            let arg = command.get_arguments().find(|a| a.get_id() == id);
            let got = arg.and_then(|a| a.get_env()).and_then(|e| e.to_str());
            assert_eq!(got, Some(env), "{id}");
        }
    }

    #[test]
    fn redis_and_listen() {
        assert_eq!(
            redis_url("127.0.0.1:6379", "", 1, false),
            "redis://127.0.0.1:6379/1"
        );
        assert_eq!(redis_url("h:1", "p w", 2, false), "redis://:p%20w@h:1/2");
        assert_eq!(redis_url("h:1", "", 0, true), "rediss://h:1/0");
        assert_eq!(listen_addr(":2112"), "0.0.0.0:2112");
        assert_eq!(listen_addr("127.0.0.1:9"), "127.0.0.1:9");
    }
}

#[derive(clap::Parser)]
struct InfraOnly {
    #[command(flatten)]
    infra: Infra,
}

impl Infra {
    /// The defaults, overridden by the environment (for tools, tests and benchmarks that
    /// build a configuration in code).
    pub fn from_env() -> Infra {
        use clap::Parser;
        InfraOnly::parse_from(["campaign-manager"]).infra
    }
}

/// Settings of the service beyond the platform's infrastructure flags.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// How many campaign ticks this process runs at once (0: run no tick workers).
    #[arg(long = "workers", env = "WORKERS", default_value_t = 500)]
    pub workers: usize,

    /// How many RPC requests are handled at once.
    #[arg(
        long = "rpc_concurrency",
        env = "RPC_CONCURRENCY",
        default_value_t = 32
    )]
    pub rpc_concurrency: usize,

    /// How many subscribed events (hangups, flow ends) are handled at once.
    #[arg(
        long = "event_concurrency",
        env = "EVENT_CONCURRENCY",
        default_value_t = 64
    )]
    pub event_concurrency: usize,

    /// Apply database migrations at start.
    #[arg(long = "migrate", env = "MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate: bool,

    /// Where events are published and heard: `topic` (the platform's `bin-manager.event` topic
    /// exchange with keyed events) or `fanout` (the per-service fanout exchanges of platforms
    /// before the topic cut-over).
    #[arg(long = "event_bus", env = "EVENT_BUS", default_value = "topic")]
    pub event_bus: EventBus,

    /// Most MySQL connections this process opens (its pool). Size the database for this times
    /// the number of processes at most (docs/deploy.md, Sizing).
    #[arg(
        long = "database_max_connections",
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = crate::store::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub database_max_connections: u32,

    /// Prefix of every queue and exchange name (empty: the platform's names).
    #[arg(long = "queue_prefix", env = "QUEUE_PREFIX", default_value = "")]
    pub queue_prefix: String,

    /// Prefix of the cache keys (empty: the platform's keys).
    #[arg(long = "cache_prefix", env = "CACHE_PREFIX", default_value = "")]
    pub cache_prefix: String,

    /// Redis namespace of the tick scheduler.
    #[arg(
        long = "tick_namespace",
        env = "TICK_NAMESPACE",
        default_value = "campaign-manager:ticks"
    )]
    pub tick_namespace: String,

    /// Shards the tick chains are spread over (1: every key under --tick_namespace as before;
    /// K > 1: `{<namespace>:0}` .. `{<namespace>:K-1}`, one hash-tagged slot each, so a Redis
    /// Cluster spreads them over its masters). Every process of a deployment must use the same
    /// value; change it only with every worker stopped (chains are re-seeded from MySQL).
    #[arg(long = "tick_shards", env = "TICK_SHARDS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub tick_shards: u16,

    /// Delay of the first tick after `run`, ms.
    #[arg(long = "first_tick_ms", env = "FIRST_TICK_MS", default_value_t = 1000)]
    pub first_tick_ms: u64,

    /// Delay after a dial, ms.
    #[arg(long = "dial_tick_ms", env = "DIAL_TICK_MS", default_value_t = 500)]
    pub dial_tick_ms: u64,

    /// Delay when waiting (no capacity, retry interval, empty list), ms.
    #[arg(long = "wait_tick_ms", env = "WAIT_TICK_MS", default_value_t = 5000)]
    pub wait_tick_ms: u64,

    /// Longest a tick may run, ms. Past it the tick's lease is not renewed (its chain is
    /// re-seeded) and it may record no dial and ask no peer.
    #[arg(long = "max_tick_ms", env = "MAX_TICK_MS", default_value_t = 30_000)]
    pub max_tick_ms: u64,

    /// How many available targets a tick asks the outdial for; the first one ready is dialed.
    #[arg(long = "target_batch", env = "TARGET_BATCH", default_value_t = 20)]
    pub target_batch: u32,

    /// How often the campaigncall repair runs, ms (in every campaign-manager process and in
    /// processes with tick workers).
    #[arg(
        long = "repair_interval_ms",
        env = "REPAIR_INTERVAL_MS",
        default_value_t = 5_000
    )]
    pub repair_interval_ms: u64,

    /// A campaigncall still dialing this long after the outplan's dial_timeout is looked up at
    /// its peer, ms. Must exceed max_tick_ms plus the RPC timeout (3 s).
    #[arg(
        long = "repair_margin_ms",
        env = "REPAIR_MARGIN_MS",
        default_value_t = 60_000
    )]
    pub repair_margin_ms: u64,

    /// The longest call, s: a progressing campaigncall is looked up at its peer after this
    /// long, and one still reported up after it is given up as failed.
    #[arg(
        long = "max_call_duration_s",
        env = "MAX_CALL_DURATION_S",
        default_value_t = 7_200
    )]
    pub max_call_duration_s: u64,

    /// First delay before the repair looks again at an open campaigncall it could not resolve
    /// (still up, a 404 it does not trust yet, a peer error), ms; doubles with every look.
    #[arg(
        long = "repair_backoff_ms",
        env = "REPAIR_BACKOFF_MS",
        default_value_t = 30_000
    )]
    pub repair_backoff_ms: u64,

    /// Longest delay between two looks of the repair at one open campaigncall, ms.
    #[arg(
        long = "repair_backoff_max_ms",
        env = "REPAIR_BACKOFF_MAX_MS",
        default_value_t = 600_000
    )]
    pub repair_backoff_max_ms: u64,

    /// Delays before retry 1, 2, 3 of a failed subscribed event, ms (comma-separated; the
    /// count is the number of retries). After the last, the event goes to the dead-letter queue.
    #[arg(
        long = "event_retry_ms",
        env = "EVENT_RETRY_MS",
        value_delimiter = ',',
        default_value = "5000,30000,120000"
    )]
    pub event_retry_ms: Vec<u64>,

    /// Serve the metrics/health endpoint.
    #[arg(long = "serve_http", env = "SERVE_HTTP", default_value_t = true, action = clap::ArgAction::Set)]
    pub serve_http: bool,
}

impl Settings {
    /// Tick delays from the settings.
    pub fn delays(&self) -> Delays {
        Delays {
            first: Duration::from_millis(self.first_tick_ms),
            after_dial: Duration::from_millis(self.dial_tick_ms),
            wait: Duration::from_millis(self.wait_tick_ms),
            ..Delays::default()
        }
    }

    /// Repair settings, refused when the margin could let a late dial request arrive after the
    /// repair concluded it was never made.
    pub fn repair(&self) -> anyhow::Result<RepairSettings> {
        let rpc_timeout_ms = 3_000;
        if self.repair_margin_ms <= self.max_tick_ms + rpc_timeout_ms {
            anyhow::bail!(
                "repair_margin_ms ({}) must exceed max_tick_ms ({}) + the RPC timeout ({rpc_timeout_ms})",
                self.repair_margin_ms,
                self.max_tick_ms
            );
        }
        if self.repair_backoff_ms == 0 || self.repair_backoff_max_ms < self.repair_backoff_ms {
            anyhow::bail!(
                "repair_backoff_ms ({}) must be positive and at most repair_backoff_max_ms ({})",
                self.repair_backoff_ms,
                self.repair_backoff_max_ms
            );
        }
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Ok(RepairSettings {
            rule: OverdueRule {
                margin_ms: ms(self.repair_margin_ms),
                max_call_ms: ms(self.max_call_duration_s.saturating_mul(1000)),
            },
            backoff: Duration::from_millis(self.repair_backoff_ms),
            backoff_max: Duration::from_millis(self.repair_backoff_max_ms),
            ..RepairSettings::default()
        })
    }

    /// Queue and exchange names.
    pub fn names(&self) -> Names {
        if self.queue_prefix.is_empty() {
            Names::default()
        } else {
            Names::prefixed(&self.queue_prefix)
        }
    }
}

#[derive(clap::Parser)]
struct SettingsOnly {
    #[command(flatten)]
    settings: Settings,
}

impl Settings {
    /// The defaults, overridden by the environment.
    pub fn from_env() -> Settings {
        use clap::Parser;
        SettingsOnly::parse_from(["campaign-manager"]).settings
    }
}
