//! The rig every test here stands on: the binary run with a context's infra flags (`Ctx`), its
//! exit code and output (`Run`), and the service started in-process on a test's own database,
//! queue prefix and tick namespace.

use super::*;

pub(crate) const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672";

/// Where the CLI and the in-process services meet.
pub(crate) struct Ctx {
    pub(crate) queue_prefix: String,
    pub(crate) namespace: String,
    /// The database of the hand-over records (`queue pause --durable`, `resume`, `execute`).
    pub(crate) database_dsn: Option<String>,
    /// Deletes every queue and exchange under `queue_prefix` when the test ends.
    pub(crate) _names: TestNames,
}

impl Ctx {
    pub(crate) fn new(prefix: &TestPrefix) -> Ctx {
        let names = TestNames::new();
        Ctx {
            queue_prefix: names.prefix.clone(),
            namespace: format!("{}ticks", prefix.0),
            database_dsn: None,
            _names: names,
        }
    }

    /// A context whose commands also reach `db` (`--database_dsn`).
    pub(crate) fn with_db(prefix: &TestPrefix, db: &TestDb) -> Ctx {
        Ctx {
            database_dsn: Some(db.url.clone()),
            ..Ctx::new(prefix)
        }
    }

    /// Runs the binary with this context's infra flags plus `args`.
    pub(crate) async fn run(&self, args: &[&str]) -> Run {
        let mut all: Vec<String> = vec![
            "--rabbitmq_address".into(),
            AMQP.into(),
            "--redis_address".into(),
            "127.0.0.1:6379".into(),
            "--redis_database".into(),
            "0".into(),
            "--queue_prefix".into(),
            self.queue_prefix.clone(),
            "--tick_namespace".into(),
            self.namespace.clone(),
        ];
        if let Some(dsn) = &self.database_dsn {
            all.extend(["--database_dsn".into(), dsn.clone()]);
        }
        all.extend(args.iter().map(|s| s.to_string()));
        cli(&all).await
    }
}

/// Exit code and output of one run.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub(crate) fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub(crate) fn fails(self, code: i32, needle: &str) -> Run {
        assert_eq!(
            self.code, code,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {}",
            self.stderr
        );
        self
    }
}

/// Runs the binary with exactly `args` and no infra env vars.
pub(crate) async fn cli<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_campaign-control"));
    for var in [
        "RABBITMQ_ADDRESS",
        "DATABASE_DSN",
        "REDIS_ADDRESS",
        "REDIS_PASSWORD",
        "REDIS_DATABASE",
        "QUEUE_PREFIX",
        "TICK_NAMESPACE",
        "TICK_SHARDS",
        "TICK_REDIS_CLUSTER",
    ] {
        cmd.env_remove(var);
    }
    let out: Output = cmd
        .args(args)
        .output()
        .await
        .expect("spawn campaign-control");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The service on a fresh database under the context's names (no tick workers, no HTTP).
pub(crate) async fn service(ctx: &Ctx, db: &TestDb, prefix: &TestPrefix) -> App {
    let infra = Infra {
        rabbitmq_address: AMQP.into(),
        prometheus_endpoint: "/metrics".into(),
        prometheus_listen_address: "127.0.0.1:0".into(),
        database_dsn: db.url.clone(),
        redis_address: "127.0.0.1:6379".into(),
        redis_password: String::new(),
        redis_database: 0,
        database_dsn_file: None,
        rabbitmq_address_file: None,
        redis_password_file: None,
        redis_tls: false,
        tick_redis_cluster: Vec::new(),
    };
    let settings = Settings {
        workers: 0,
        rpc_concurrency: 8,
        event_concurrency: 8,
        migrate: false,
        queue_prefix: ctx.queue_prefix.clone(),
        cache_prefix: prefix.0.clone(),
        tick_namespace: ctx.namespace.clone(),
        serve_http: false,
        ..Settings::from_env()
    };
    App::start(&infra, &settings, Role::Service)
        .await
        .expect("start campaign-manager")
}

/// One command of a table that must fail: `case` names it; it must exit `code` with every one of
/// `needles` in its stderr.
pub(crate) struct Failing<'a> {
    pub(crate) case: &'a str,
    pub(crate) args: Vec<&'a str>,
    pub(crate) code: i32,
    pub(crate) needles: &'a [&'a str],
}

/// Runs every row through `run` and fails once, naming each row that exited otherwise than it
/// wants, with its exit code and stderr.
pub(crate) async fn check_failing(rows: &[Failing<'_>], run: impl AsyncFn(&[&str]) -> Run) {
    assert!(!rows.is_empty(), "an empty table checks nothing");
    let mut wrong = Vec::new();
    for row in rows {
        let r = run(&row.args).await;
        let missing: Vec<&&str> = row
            .needles
            .iter()
            .filter(|n| !r.stderr.contains(**n))
            .collect();
        if r.code != row.code || !missing.is_empty() {
            wrong.push(format!(
                "  {}: {:?} → exit {} (want {}), stderr lacks {missing:?}: {}",
                row.case, row.args, r.code, row.code, r.stderr
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows failed otherwise:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
}
