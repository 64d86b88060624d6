//! Configuration: `clap` flags with environment fallbacks, the same names and defaults as the
//! Go service (CONTRACT.md §11), plus the settings the Rust service adds. Precedence is
//! flag > env > default. Binaries flatten [`Infra`] so every tool reads the same keys, and the
//! service binaries [`Settings`] as well.

use std::time::Duration;

use clap::Args;

use crate::bus::Names;
use crate::service::{Delays, RepairSettings};
use crate::store::OverdueRule;

/// How to reach MariaDB, Redis and RabbitMQ, and where to serve metrics.
#[derive(Debug, Clone, Args)]
pub struct Infra {
    /// AMQP URI of the broker.
    #[arg(
        long = "rabbitmq_address",
        env = "RABBITMQ_ADDRESS",
        default_value = "amqp://guest:guest@localhost:5672"
    )]
    pub rabbitmq_address: String,

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

    /// MySQL DSN: a `mysql://user:pass@host:port/db` URL or the platform's
    /// `user:pass@tcp(host:port)/db` form.
    #[arg(
        long = "database_dsn",
        env = "DATABASE_DSN",
        default_value = "testid:testpassword@tcp(127.0.0.1:3306)/test"
    )]
    pub database_dsn: String,

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

    /// Redis database number.
    #[arg(long = "redis_database", env = "REDIS_DATABASE", default_value_t = 1)]
    pub redis_database: i64,
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

impl Infra {
    /// The database DSN as a `mysql://` URL sqlx understands.
    pub fn database_url(&self) -> Result<String, ConfigError> {
        mysql_url(&self.database_dsn)
    }

    /// The Redis URL built from address, password and database.
    pub fn redis_url(&self) -> String {
        redis_url(
            &self.redis_address,
            &self.redis_password,
            self.redis_database,
        )
    }

    /// The metrics listen address as a socket address string (`:2112` → `0.0.0.0:2112`).
    pub fn metrics_listen(&self) -> String {
        listen_addr(&self.prometheus_listen_address)
    }
}

/// Converts a DSN in either accepted form to a `mysql://` URL.
///
/// The go-sql-driver form is `[user[:password]@][protocol[(address)]]/dbname[?params]`; only
/// `tcp` is meaningful for a service (a unix socket path cannot be expressed in sqlx's URL
/// without percent-encoding, so it is rejected with a clear message).
pub fn mysql_url(dsn: &str) -> Result<String, ConfigError> {
    let err = |reason: &str| ConfigError {
        key: "database_dsn",
        reason: reason.to_owned(),
    };
    let dsn = dsn.trim();
    if dsn.starts_with("mysql://") || dsn.starts_with("mariadb://") {
        return Ok(dsn.replacen("mariadb://", "mysql://", 1));
    }
    // Split user info from the rest at the last '@' (passwords may contain '@').
    let (userinfo, rest) = match dsn.rfind('@') {
        Some(i) => (&dsn[..i], &dsn[i + 1..]),
        None => ("", dsn),
    };
    let slash = rest.find('/').ok_or_else(|| err("missing '/dbname'"))?;
    let (net, tail) = (&rest[..slash], &rest[slash + 1..]);
    let (db, params) = match tail.split_once('?') {
        Some((d, p)) => (d, Some(p)),
        None => (tail, None),
    };
    let host = if net.is_empty() {
        "127.0.0.1:3306".to_owned()
    } else if let Some(addr) = net.strip_prefix("tcp(").and_then(|s| s.strip_suffix(')')) {
        addr.to_owned()
    } else if net == "tcp" {
        "127.0.0.1:3306".to_owned()
    } else {
        return Err(err("only tcp(host:port) addresses are supported"));
    };
    let userinfo = match userinfo.split_once(':') {
        Some((u, p)) => format!("{}:{}@", encode(u), encode(p)),
        None if userinfo.is_empty() => String::new(),
        None => format!("{}@", encode(userinfo)),
    };
    // go-sql-driver parameters (parseTime, charset...) have no sqlx meaning; they are dropped.
    let _ = params;
    Ok(format!("mysql://{userinfo}{host}/{db}"))
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Builds `redis://[:password@]host:port/db`.
pub fn redis_url(address: &str, password: &str, db: i64) -> String {
    if password.is_empty() {
        format!("redis://{address}/{db}")
    } else {
        format!("redis://:{}@{address}/{db}", encode(password))
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

    #[test]
    fn platform_dsn_becomes_url() {
        assert_eq!(
            mysql_url("testid:testpassword@tcp(127.0.0.1:3306)/test").unwrap(),
            "mysql://testid:testpassword@127.0.0.1:3306/test"
        );
        assert_eq!(
            mysql_url("root@tcp(db:3307)/bin_manager?parseTime=true").unwrap(),
            "mysql://root@db:3307/bin_manager"
        );
        assert_eq!(
            mysql_url("u:p@ss@tcp(h:1)/d").unwrap(),
            "mysql://u:p%40ss@h:1/d"
        );
        assert_eq!(mysql_url("mysql://a@b/c").unwrap(), "mysql://a@b/c");
        assert!(mysql_url("u@unix(/tmp/s)/d").is_err());
        assert!(mysql_url("nodb").is_err());
    }

    #[test]
    fn redis_and_listen() {
        assert_eq!(
            redis_url("127.0.0.1:6379", "", 1),
            "redis://127.0.0.1:6379/1"
        );
        assert_eq!(redis_url("h:1", "p w", 2), "redis://:p%20w@h:1/2");
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

    /// How often the campaigncall repair runs, ms (in processes with tick workers).
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
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Ok(RepairSettings {
            rule: OverdueRule {
                margin_ms: ms(self.repair_margin_ms),
                max_call_ms: ms(self.max_call_duration_s.saturating_mul(1000)),
            },
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
