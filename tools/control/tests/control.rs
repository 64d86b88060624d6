//! `campaign-control` as a process against the real services on localhost: RabbitMQ with the
//! service (and, for campaigns, the peer simulator) running in-process under a private queue
//! prefix, MariaDB with a fresh database, Redis with a private tick namespace. Every subcommand's
//! happy path and main failure, usage errors (exit 2), unreachable dependencies (exit 1), and
//! `queue drain`/`resume` against in-process tick workers with a fake runner, and `events dead`
//! against an in-process subscriber whose handler fails on demand.

#[path = "../../../tests/it/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use campaign_manager::app::{App, Role};
use campaign_manager::bus::Names;
use campaign_manager::config::{Infra, Settings};
use campaign_sim::{Outcome, Scenario, Sim};
use campaign_workers::{BoxError, ChainRunner, ChainSource, Chains, SchedulerConfig, TickOutcome};
use serde_json::{Value, json};
use support::{TestDb, TestNames, TestPrefix, unique};
use uuid::Uuid;

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672";

/// Where the CLI and the in-process services meet.
struct Ctx {
    queue_prefix: String,
    namespace: String,
    /// The database of the hand-over records (`queue pause --durable`, `resume`, `execute`).
    database_dsn: Option<String>,
    /// Deletes every queue and exchange under `queue_prefix` when the test ends.
    _names: TestNames,
}

impl Ctx {
    fn new(prefix: &TestPrefix) -> Ctx {
        let names = TestNames::new();
        Ctx {
            queue_prefix: names.prefix.clone(),
            namespace: format!("{}ticks", prefix.0),
            database_dsn: None,
            _names: names,
        }
    }

    /// A context whose commands also reach `db` (`--database_dsn`).
    fn with_db(prefix: &TestPrefix, db: &TestDb) -> Ctx {
        Ctx {
            database_dsn: Some(db.url.clone()),
            ..Ctx::new(prefix)
        }
    }

    /// Runs the binary with this context's infra flags plus `args`.
    async fn run(&self, args: &[&str]) -> Run {
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
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    fn fails(self, code: i32, needle: &str) -> Run {
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
async fn cli<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
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
async fn service(ctx: &Ctx, db: &TestDb, prefix: &TestPrefix) -> App {
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

#[tokio::test]
async fn help_on_every_level_and_usage_errors_exit_2() {
    let paths: &[&[&str]] = &[
        &[],
        &["campaign"],
        &["campaign", "list"],
        &["campaign", "get"],
        &["campaign", "create"],
        &["campaign", "update"],
        &["campaign", "update-service-level"],
        &["campaign", "update-actions"],
        &["campaign", "update-resource-info"],
        &["campaign", "update-next-campaign"],
        &["campaign", "run"],
        &["campaign", "stop"],
        &["campaign", "delete"],
        &["campaign", "execute"],
        &["campaigncall"],
        &["campaigncall", "list"],
        &["campaigncall", "get"],
        &["campaigncall", "finish"],
        &["outplan"],
        &["outplan", "list"],
        &["outplan", "get"],
        &["outplan", "create"],
        &["outplan", "update"],
        &["outplan", "delete"],
        &["queue"],
        &["queue", "stats"],
        &["queue", "list"],
        &["queue", "drain"],
        &["queue", "resume"],
        &["queue", "purge"],
        &["queue", "retry-dead"],
        &["queue", "vacuum"],
        &["flows"],
        &["flows", "reconcile"],
        &["completions"],
        &["man"],
    ];
    for p in paths {
        let mut args: Vec<&str> = p.to_vec();
        args.push("--help");
        let r = cli(&args).await;
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(
            r.stdout.contains("Usage: campaign-control"),
            "{args:?}: {}",
            r.stdout
        );
    }
    // Unknown flag, missing subcommand, missing required flag, malformed UUID / enum / duration.
    for args in [
        &["queue", "stats", "--bogus"][..],
        &["campaign"][..],
        &["campaign", "get"][..],
        &["campaign", "get", "--id", "not-a-uuid"][..],
        &[
            "campaign",
            "create",
            "--customer-id",
            "00000000-0000-0000-0000-000000000001",
            "--name",
            "n",
            "--type",
            "sms",
        ][..],
        &["queue", "drain", "--timeout", "soon"][..],
        &["--tick_shards", "0", "queue", "stats"][..],
        &["--tick_shards", "many", "queue", "stats"][..],
        &["queue", "purge"][..],
        &["campaign", "list"][..],
        &["campaign", "execute"][..],
        &[
            "campaign",
            "execute",
            "--all-running",
            "--id",
            "00000000-0000-0000-0000-000000000001",
        ][..],
        &[
            "campaigncall",
            "finish",
            "--id",
            "00000000-0000-0000-0000-000000000001",
            "--result",
            "maybe",
        ][..],
        &["completions", "tcsh"][..],
        &["campaign", "execute", "--all-running", "--page-size", "0"][..],
    ] {
        let r = cli(args).await;
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("Usage:") || r.stderr.contains("--help"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

#[tokio::test]
async fn unreachable_dependencies_and_silent_service_exit_1() {
    let id = Uuid::new_v4().to_string();
    for sub in [
        &["queue", "stats"][..],
        &["queue", "list"][..],
        &["queue", "drain", "--timeout", "1s"][..],
        &["queue", "resume"][..],
        &["queue", "purge", "--campaign", &id][..],
        &["queue", "retry-dead"][..],
        &["queue", "vacuum"][..],
    ] {
        let mut args = sub.to_vec();
        args.extend(["--redis_address", "127.0.0.1:1"]);
        cli(&args)
            .await
            .fails(1, "cannot reach Redis at 127.0.0.1:1")
            .fails(1, "REDIS_ADDRESS");
    }
    for sub in [
        &["campaign", "get", "--id", &id][..],
        &["campaigncall", "get", "--id", &id][..],
        &["outplan", "get", "--id", &id][..],
    ] {
        let mut args = sub.to_vec();
        args.extend(["--rabbitmq_address", "amqp://guest:guest@127.0.0.1:1"]);
        cli(&args)
            .await
            .fails(1, "cannot reach RabbitMQ at 127.0.0.1:1")
            .fails(1, "RABBITMQ_ADDRESS");
    }
    // A broker but nobody serving the request queue.
    let prefix = unique("nobody");
    let queue = format!("{prefix}.bin-manager.campaign-manager.request");
    let r = cli(&[
        "--rabbitmq_address",
        AMQP,
        "--queue_prefix",
        &prefix,
        "campaign",
        "get",
        "--id",
        &id,
    ])
    .await;
    r.fails(
        1,
        &format!("campaign-manager did not answer on queue {queue} within 3 s: is it running?"),
    );
}

#[tokio::test]
async fn outplan_crud_and_not_found_records() {
    let db = TestDb::migrated().await;
    let prefix = TestPrefix::new();
    let ctx = Ctx::new(&prefix);
    let app = service(&ctx, &db, &prefix).await;
    let customer = Uuid::new_v4().to_string();

    // create → get → list → update (name + dials) → delete
    let created = ctx
        .run(&[
            "--json",
            "outplan",
            "create",
            "--customer-id",
            &customer,
            "--name",
            "plan a",
            "--detail",
            "d",
            "--source-type",
            "tel",
            "--source-target",
            "+821100000001",
            "--try-interval",
            "60000",
            "--max-try-count",
            "3",
        ])
        .await
        .ok()
        .json();
    let id = created["id"].as_str().expect("outplan id").to_owned();
    assert_eq!(created["name"], "plan a");
    assert_eq!(created["max_try_count_4"], 3);
    assert_eq!(created["dial_timeout"], 30000);
    assert_eq!(created["source"]["target"], "+821100000001");

    let human = ctx.run(&["outplan", "get", "--id", &id]).await.ok();
    assert!(human.stdout.starts_with("FIELD"), "{}", human.stdout);
    assert!(human.stdout.contains("plan a"), "{}", human.stdout);

    let list = ctx
        .run(&["--json", "outplan", "list", "--customer-id", &customer])
        .await
        .ok()
        .json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let table = ctx
        .run(&[
            "outplan",
            "list",
            "--customer-id",
            &customer,
            "--page-size",
            "10",
        ])
        .await
        .ok();
    assert!(
        table.stdout.contains(&id) && table.stdout.contains("(1 rows)"),
        "{}",
        table.stdout
    );

    let updated = ctx
        .run(&[
            "--json",
            "outplan",
            "update",
            "--id",
            &id,
            "--name",
            "plan b",
            "--dial-timeout",
            "20000",
            "--max-try-count",
            "1,2,3,4,5",
        ])
        .await
        .ok()
        .json();
    assert_eq!(updated["name"], "plan b");
    assert_eq!(updated["detail"], "d", "unset flags keep their value");
    assert_eq!(updated["dial_timeout"], 20000);
    assert_eq!(updated["try_interval"], 60000);
    assert_eq!(updated["max_try_count_0"], 1);
    assert_eq!(updated["max_try_count_4"], 5);
    assert_eq!(updated["source"]["target"], "+821100000001");
    ctx.run(&["outplan", "update", "--id", &id])
        .await
        .fails(2, "nothing to change");

    // Without a terminal, delete needs --yes: refused with exit 2, the outplan stays.
    ctx.run(&["outplan", "delete", "--id", &id])
        .await
        .fails(2, "pass --yes");
    ctx.run(&["outplan", "get", "--id", &id]).await.ok();
    let deleted = ctx
        .run(&["--json", "outplan", "delete", "--id", &id, "--yes"])
        .await
        .ok()
        .json();
    assert!(deleted["tm_delete"].is_string(), "{deleted}");
    let after = ctx
        .run(&["--json", "outplan", "list", "--customer-id", &customer])
        .await
        .ok()
        .json();
    assert_eq!(after, serde_json::json!([]));
    let with_deleted = ctx
        .run(&[
            "--json",
            "outplan",
            "list",
            "--customer-id",
            &customer,
            "--with-deleted",
        ])
        .await
        .ok()
        .json();
    assert_eq!(with_deleted.as_array().map(Vec::len), Some(1));

    // Unknown ids: typed errors show message and reason, bare 404s say "not found"; exit 1.
    let unknown = Uuid::new_v4().to_string();
    ctx.run(&["outplan", "get", "--id", &unknown])
        .await
        .fails(1, "OUTPLAN_NOT_FOUND");
    ctx.run(&["outplan", "update", "--id", &unknown, "--name", "x"])
        .await
        .fails(1, "not found");
    ctx.run(&["outplan", "delete", "--id", &unknown, "--yes"])
        .await
        .fails(1, "not found");
    ctx.run(&["campaign", "get", "--id", &unknown])
        .await
        .fails(1, "The campaign was not found.")
        .fails(1, "CAMPAIGN_NOT_FOUND");
    ctx.run(&["campaign", "run", "--id", &unknown])
        .await
        .fails(1, "CAMPAIGN_NOT_FOUND");
    ctx.run(&["campaign", "delete", "--id", &unknown, "--yes"])
        .await
        .fails(1, "not found");
    ctx.run(&["campaigncall", "get", "--id", &unknown])
        .await
        .fails(1, "CAMPAIGNCALL_NOT_FOUND");
    let calls = ctx
        .run(&[
            "--json",
            "campaigncall",
            "list",
            "--campaign-id",
            &unknown,
            "--status",
            "done",
        ])
        .await
        .ok()
        .json();
    assert_eq!(calls, serde_json::json!([]));
    let campaigns = ctx
        .run(&["campaign", "list", "--customer-id", &customer])
        .await
        .ok();
    assert!(
        campaigns.stdout.contains("(0 rows)"),
        "{}",
        campaigns.stdout
    );

    app.stop().await;
}

#[tokio::test]
async fn campaign_lifecycle_against_the_simulator() {
    let db = TestDb::migrated().await;
    let prefix = TestPrefix::new();
    let ctx = Ctx::new(&prefix);
    let sim = Sim::start(
        Names::prefixed(&ctx.queue_prefix),
        AMQP,
        Scenario::instant(Outcome::Answered),
    )
    .await
    .expect("start simulator");
    let app = service(&ctx, &db, &prefix).await;
    let customer = Uuid::new_v4();
    let outdial = sim.create_outdial(customer, 3, 1).to_string();
    let queue = sim.create_queue(customer, 2).to_string();
    let customer = customer.to_string();

    let id = creates_a_campaign(&ctx, &customer, &outdial, &queue).await;
    refuses_bad_references(&ctx, &customer).await;
    reads_it_back(&ctx, &customer, &id).await;
    updates_every_setting(&ctx, &id, &outdial, &queue).await;
    runs_then_stops(&ctx, &customer, &id).await;
    app.stop().await;
    sim.shutdown_and_delete().await;
}

/// Step of `campaign_lifecycle_against_the_simulator`: `outplan create` and `campaign create` with
/// every flag; returns the campaign's id.
async fn creates_a_campaign(ctx: &Ctx, customer: &str, outdial: &str, queue: &str) -> String {
    let outplan = ctx
        .run(&[
            "--json",
            "outplan",
            "create",
            "--customer-id",
            customer,
            "--name",
            "p",
            "--source-type",
            "tel",
            "--source-target",
            "+1",
        ])
        .await
        .ok()
        .json()["id"]
        .as_str()
        .expect("outplan id")
        .to_owned();
    let created = ctx
        .run(&[
            "--json",
            "campaign",
            "create",
            "--customer-id",
            customer,
            "--name",
            "c1",
            "--type",
            "call",
            "--detail",
            "first",
            "--service-level",
            "80",
            "--end-handle",
            "continue",
            "--outplan-id",
            &outplan,
            "--outdial-id",
            outdial,
            "--queue-id",
            queue,
            "--actions-json",
            r#"[{"type":"answer"}]"#,
        ])
        .await
        .ok()
        .json();
    let id = created["id"].as_str().expect("campaign id").to_owned();
    assert_eq!(created["status"], "stop");
    assert_eq!(created["service_level"], 80);
    assert_eq!(created["end_handle"], "continue");
    assert_eq!(created["actions"][0]["type"], "answer");
    id
}

/// Step of `campaign_lifecycle_against_the_simulator`: `campaign create` refuses what it cannot
/// use.
async fn refuses_bad_references(ctx: &Ctx, customer: &str) {
    // A reference the peers do not know is rejected (exit 1, with what to check).
    ctx.run(&[
        "campaign",
        "create",
        "--customer-id",
        customer,
        "--name",
        "bad",
        "--outdial-id",
        &Uuid::new_v4().to_string(),
    ])
    .await
    .fails(1, "create campaign");
    ctx.run(&[
        "campaign",
        "create",
        "--customer-id",
        customer,
        "--name",
        "bad",
        "--actions-json",
        "{",
    ])
    .await
    .fails(2, "--actions-json");
}

/// Step of `campaign_lifecycle_against_the_simulator`: `campaign get` and `campaign list` show it.
async fn reads_it_back(ctx: &Ctx, customer: &str, id: &str) {
    let got = ctx
        .run(&["--json", "campaign", "get", "--id", id])
        .await
        .ok()
        .json();
    assert_eq!(got["name"], "c1");
    let list = ctx
        .run(&["campaign", "list", "--customer-id", customer])
        .await
        .ok();
    assert!(
        list.stdout.contains(id) && list.stdout.contains("(1 rows)"),
        "{}",
        list.stdout
    );
}

/// Step of `campaign_lifecycle_against_the_simulator`: every `campaign update*` command.
async fn updates_every_setting(ctx: &Ctx, id: &str, outdial: &str, queue: &str) {
    let upd = ctx
        .run(&[
            "--json", "campaign", "update", "--id", id, "--name", "c2", "--type", "flow",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        (upd["name"].as_str(), upd["type"].as_str()),
        (Some("c2"), Some("flow"))
    );
    assert_eq!(upd["detail"], "first", "unset flags keep their value");
    assert_eq!(upd["service_level"], 80);
    let upd = ctx
        .run(&["--json", "campaign", "update", "--id", id, "--type", "call"])
        .await
        .ok()
        .json();
    assert_eq!(upd["type"], "call");
    let upd = ctx
        .run(&[
            "--json",
            "campaign",
            "update-service-level",
            "--id",
            id,
            "--service-level",
            "100",
        ])
        .await
        .ok()
        .json();
    assert_eq!(upd["service_level"], 100);
    let upd = ctx
        .run(&[
            "--json",
            "campaign",
            "update-actions",
            "--id",
            id,
            "--actions-json",
            r#"[{"type":"answer"},{"type":"hangup"}]"#,
        ])
        .await
        .ok()
        .json();
    assert_eq!(upd["actions"].as_array().map(Vec::len), Some(2));
    let next = Uuid::nil().to_string();
    let upd = ctx
        .run(&[
            "--json",
            "campaign",
            "update-resource-info",
            "--id",
            id,
            "--next-campaign-id",
            &next,
        ])
        .await
        .ok()
        .json();
    assert_eq!(upd["outdial_id"].as_str(), Some(outdial), "kept");
    assert_eq!(upd["queue_id"].as_str(), Some(queue), "kept");
    let upd = ctx
        .run(&[
            "--json",
            "campaign",
            "update-next-campaign",
            "--id",
            id,
            "--next-campaign-id",
            &next,
        ])
        .await
        .ok()
        .json();
    assert_eq!(upd["next_campaign_id"].as_str(), Some(next.as_str()));
}

/// Step of `campaign_lifecycle_against_the_simulator`: `campaign run`, the tick queue, delete
/// refused while running, `campaign stop`, its campaigncalls, and delete once stopped.
async fn runs_then_stops(ctx: &Ctx, customer: &str, id: &str) {
    // run: the service starts the chain; the queue commands see it.
    let run = ctx
        .run(&["--json", "campaign", "run", "--id", id])
        .await
        .ok()
        .json();
    assert_eq!(run["status"], "run");
    let ticks = ctx
        .run(&["--json", "queue", "list", "--campaign", id])
        .await
        .ok()
        .json();
    assert_eq!(ticks[0]["campaign"].as_str(), Some(id), "{ticks}");
    // A running campaign cannot be deleted: exit 1 with what to do.
    ctx.run(&["campaign", "delete", "--id", id])
        .await
        .fails(2, "pass --yes");
    ctx.run(&["campaign", "delete", "--id", id, "--yes"])
        .await
        .fails(1, "must be stopped before it can be deleted");

    let stopped = ctx
        .run(&["--json", "campaign", "stop", "--id", id])
        .await
        .ok()
        .json();
    assert!(
        matches!(stopped["status"].as_str(), Some("stop" | "stopping")),
        "{stopped}"
    );
    let calls = ctx
        .run(&[
            "--json",
            "campaigncall",
            "list",
            "--campaign-id",
            id,
            "--customer-id",
            customer,
        ])
        .await
        .ok()
        .json();
    assert!(calls.is_array(), "{calls}");
    if stopped["status"] == "stop" {
        let deleted = ctx
            .run(&["--json", "campaign", "delete", "--id", id, "--yes"])
            .await
            .ok()
            .json();
        assert!(deleted["tm_delete"].is_string(), "{deleted}");
    }
}

/// `campaign update` sends every field it keeps (the route reads an omitted name, detail or
/// service level as empty/0), and keeps a legacy `""` type or end handle by leaving it out
/// (sending `""` back is refused).
#[tokio::test]
async fn campaign_update_keeps_what_no_flag_changes() {
    use campaign_manager::model::{CampaignType, EndHandle};
    let db = TestDb::migrated().await;
    let prefix = TestPrefix::new();
    let ctx = Ctx::new(&prefix);
    let app = service(&ctx, &db, &prefix).await;
    let store = campaign_manager::store::Store::with_pool(db.pool.clone(), prefix.cache());
    let customer = Uuid::new_v4();

    let mut c = support::records::campaign_row(customer);
    c.kind = CampaignType::Flow;
    c.end_handle = EndHandle::Continue;
    c.detail = "first".into();
    c.service_level = 80;
    let c = store.campaigns.create(&c).await.expect("campaign");
    let id = c.id.to_string();
    let upd = ctx
        .run(&["--json", "campaign", "update", "--id", &id, "--name", "c2"])
        .await
        .ok()
        .json();
    assert_eq!(
        (
            &upd["name"],
            &upd["detail"],
            &upd["type"],
            &upd["service_level"],
            &upd["end_handle"]
        ),
        (
            &serde_json::json!("c2"),
            &serde_json::json!("first"),
            &serde_json::json!("flow"),
            &serde_json::json!(80),
            &serde_json::json!("continue")
        ),
        "{upd}"
    );
    let upd = ctx
        .run(&[
            "--json",
            "campaign",
            "update",
            "--id",
            &id,
            "--detail",
            "",
            "--service-level",
            "0",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        (&upd["name"], &upd["detail"]),
        (&serde_json::json!("c2"), &serde_json::json!(""))
    );
    assert_eq!(upd["service_level"], 0);

    // A row the Go service wrote without type and end handle.
    let mut legacy = support::records::campaign_row(customer);
    legacy.kind = CampaignType::Unset;
    legacy.end_handle = EndHandle::Unset;
    let legacy = store
        .campaigns
        .create(&legacy)
        .await
        .expect("legacy campaign");
    let lid = legacy.id.to_string();
    let upd = ctx
        .run(&[
            "--json", "campaign", "update", "--id", &lid, "--name", "fixed",
        ])
        .await
        .ok()
        .json();
    assert_eq!(upd["name"], "fixed");
    assert_eq!(upd["detail"], legacy.detail);
    assert_eq!(upd["service_level"], legacy.service_level);
    assert_eq!(
        (&upd["type"], &upd["end_handle"]),
        (&serde_json::json!(""), &serde_json::json!(""))
    );
    let upd = ctx
        .run(&[
            "--json",
            "campaign",
            "update",
            "--id",
            &lid,
            "--type",
            "call",
            "--end-handle",
            "stop",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        (&upd["name"], &upd["type"], &upd["end_handle"]),
        (
            &serde_json::json!("fixed"),
            &serde_json::json!("call"),
            &serde_json::json!("stop")
        )
    );

    app.stop().await;
}

/// Counts ticks per chain; each tick takes `busy`.
struct Runner {
    ticks: Mutex<HashMap<String, u64>>,
    busy: Duration,
}

#[async_trait]
impl ChainRunner for Runner {
    async fn tick(&self, id: &str) -> TickOutcome {
        tokio::time::sleep(self.busy).await;
        *self
            .ticks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_owned())
            .or_default() += 1;
        TickOutcome::Continue(Duration::from_millis(50))
    }
}

impl Runner {
    fn counts(&self) -> HashMap<String, u64> {
        self.ticks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The chains that must exist.
struct Wanted(Mutex<Vec<String>>);

#[async_trait]
impl ChainSource for Wanted {
    async fn wanted(&self) -> Result<Vec<String>, BoxError> {
        Ok(self.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// Tick workers in-process on the context's namespace, with `ids` started.
struct Workers {
    chains: Chains,
    runner: Arc<Runner>,
    wanted: Arc<Wanted>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn workers(ctx: &Ctx, ids: &[String], busy: Duration) -> Workers {
    let mut cfg = SchedulerConfig::new(support::redis_url(), ctx.namespace.clone());
    cfg.concurrency = 32;
    cfg.reconcile_interval = Duration::from_millis(500);
    cfg.shutdown_timeout = Duration::from_secs(2);
    let chains = Chains::connect(&cfg).await.expect("chains");
    let runner = Arc::new(Runner {
        ticks: Mutex::new(HashMap::new()),
        busy,
    });
    let wanted = Arc::new(Wanted(Mutex::new(ids.to_vec())));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (r, w) = (runner.clone(), wanted.clone());
    let task = tokio::spawn(async move {
        let registry = prometheus::Registry::new();
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = campaign_workers::run_workers(cfg, r, w, &registry, shutdown).await {
            panic!("workers failed: {e}");
        }
    });
    for id in ids {
        chains.start(id, Duration::ZERO).await.expect("start chain");
    }
    Workers {
        chains,
        runner,
        wanted,
        stop,
        task,
    }
}

impl Workers {
    /// Waits until every id ticked more often than in `before`.
    async fn wait_all_ticked(
        &self,
        ids: &[String],
        before: &HashMap<String, u64>,
        within: Duration,
    ) {
        let deadline = Instant::now() + within;
        loop {
            let now = self.runner.counts();
            let behind: Vec<&String> = ids
                .iter()
                .filter(|id| {
                    now.get(*id).copied().unwrap_or(0) <= before.get(*id).copied().unwrap_or(0)
                })
                .collect();
            if behind.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "chains never ticked: {behind:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn shutdown(self) {
        let _ = self.chains.resume().await;
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

#[tokio::test]
async fn queue_commands_with_tick_shards_cover_every_shard() {
    let prefix = TestPrefix::new();
    let ctx = Ctx::new(&prefix);
    let cfg = SchedulerConfig {
        shards: 3,
        ..SchedulerConfig::new(support::redis_url(), ctx.namespace.clone())
    };
    let chains = Chains::connect(&cfg).await.expect("chains");
    let ids: Vec<String> = (0..9).map(|_| Uuid::new_v4().to_string()).collect();
    for id in &ids {
        assert!(
            chains
                .start(id, Duration::from_secs(600))
                .await
                .expect("start")
        );
    }
    let sharded = |args: &[&str]| {
        let mut all = vec!["--tick_shards", "3", "--json"];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    let args = sharded(&["queue", "stats"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stats = ctx.run(&args).await.ok().json();
    assert_eq!(stats["live_chains"], 9, "{stats}");
    let args = sharded(&["queue", "list", "--limit", "20"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let list = ctx.run(&args).await.ok().json();
    assert_eq!(list.as_array().map(Vec::len), Some(9), "{list}");
    // The same namespace read as one shard is another key layout: none of these chains.
    let one = ctx.run(&["--json", "queue", "stats"]).await.ok().json();
    assert_eq!(one["live_chains"], 0, "{one}");
}

#[tokio::test]
async fn drain_waits_for_running_ticks_and_resume_brings_every_chain_back() {
    let prefix = TestPrefix::new();
    let db = TestDb::migrated().await;
    let ctx = Ctx::with_db(&prefix, &db);
    let ids: Vec<String> = (0..6).map(|_| Uuid::new_v4().to_string()).collect();
    let w = workers(&ctx, &ids, Duration::from_millis(200)).await;
    w.wait_all_ticked(&ids, &HashMap::new(), Duration::from_secs(15))
        .await;

    let stats = ctx.run(&["--json", "queue", "stats"]).await.ok().json();
    assert_eq!(stats["live_chains"], 6, "{stats}");
    assert!(stats["workers_alive"].as_u64() >= Some(1), "{stats}");
    assert_eq!(stats["paused"], false);
    let table = ctx.run(&["queue", "stats"]).await.ok();
    assert!(
        table.stdout.contains("live chains") && table.stdout.contains("WORKER"),
        "{}",
        table.stdout
    );
    let list = ctx
        .run(&["--json", "queue", "list", "--limit", "3"])
        .await
        .ok()
        .json();
    assert!(list.as_array().map(Vec::len) <= Some(3), "{list}");
    let list = ctx.run(&["queue", "list"]).await.ok();
    assert!(list.stdout.starts_with("CAMPAIGN"), "{}", list.stdout);

    // drain: 0 running at the end, every chain still owned, nothing starts while paused.
    let drained = ctx
        .run(&["--json", "queue", "drain", "--timeout", "20s"])
        .await
        .ok()
        .json();
    assert_eq!(drained["ticks_running"], 0);
    assert_eq!(drained["live_chains"], 6, "{drained}");
    assert_eq!(w.chains.running_ticks().await.expect("running"), 0);
    assert!(w.chains.is_paused().await.expect("paused"));
    let frozen = w.runner.counts();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(w.runner.counts(), frozen, "no tick may start while drained");
    for id in &ids {
        assert!(
            w.chains.is_live(id).await.expect("is_live"),
            "chain {id} lost by drain"
        );
    }
    let paused = ctx.run(&["--json", "queue", "stats"]).await.ok().json();
    assert_eq!(paused["paused"], true);

    // resume asks; without a terminal it needs --yes and changes nothing.
    ctx.run(&["queue", "resume"]).await.fails(2, "pass --yes");
    assert!(w.chains.is_paused().await.expect("paused"));
    let resumed = ctx
        .run(&["--json", "queue", "resume", "--yes"])
        .await
        .ok()
        .json();
    assert_eq!(resumed["live_chains"], 6, "{resumed}");
    assert_eq!(resumed["durable_switch_cleared"], false, "{resumed}");
    w.wait_all_ticked(&ids, &frozen, Duration::from_secs(15))
        .await;

    // drain --purge drops the pending ticks; after resume the reconciler brings every chain back.
    ctx.run(&["queue", "drain", "--purge", "--timeout", "20s"])
        .await
        .fails(2, "pass --yes");
    assert!(
        !w.chains.is_paused().await.expect("paused"),
        "a refused drain --purge changes nothing"
    );
    let purged = ctx
        .run(&[
            "--json",
            "queue",
            "drain",
            "--purge",
            "--timeout",
            "20s",
            "--yes",
        ])
        .await
        .ok()
        .json();
    assert_eq!(purged["ticks_running"], 0);
    assert!(
        purged["purged_pending_ticks"].as_u64() >= Some(1),
        "{purged}"
    );
    let frozen = w.runner.counts();
    ctx.run(&["queue", "resume", "--yes"]).await.ok();
    w.wait_all_ticked(&ids, &frozen, Duration::from_secs(15))
        .await;
    for id in &ids {
        assert!(
            w.chains.is_live(id).await.expect("is_live"),
            "chain {id} lost by purge"
        );
    }

    // purge one chain (no longer wanted, so the reconciler leaves it ended); twice → exit 1.
    w.wanted
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|i| i != &ids[0]);
    ctx.run(&["queue", "purge", "--campaign", &ids[0]])
        .await
        .fails(2, "pass --yes");
    assert!(w.chains.is_live(&ids[0]).await.expect("is_live"));
    let ended = ctx
        .run(&["--json", "queue", "purge", "--campaign", &ids[0], "--yes"])
        .await
        .ok()
        .json();
    assert_eq!(ended["chain_ended"], true);
    assert!(!w.chains.is_live(&ids[0]).await.expect("is_live"));
    ctx.run(&["queue", "purge", "--campaign", &ids[0], "--yes"])
        .await
        .fails(1, "no live chain");
    let none = ctx
        .run(&["--json", "queue", "list", "--campaign", &ids[0]])
        .await
        .ok()
        .json();
    assert_eq!(none, serde_json::json!([]));

    // vacuum removes finished jobs; retry-dead requeues dead jobs (one without payload here).
    let vac = ctx.run(&["--json", "queue", "vacuum"]).await.ok().json();
    assert!(vac["removed_finished_jobs"].is_u64(), "{vac}");
    let mut conn = redis::Client::open(support::redis_url())
        .expect("redis")
        .get_multiplexed_async_connection()
        .await
        .expect("redis conn");
    let _: i64 = redis::cmd("SADD")
        .arg(format!("{}:dead", ctx.namespace))
        .arg("ghost-job")
        .query_async(&mut conn)
        .await
        .expect("sadd");
    let retried = ctx
        .run(&["--json", "queue", "retry-dead"])
        .await
        .ok()
        .json();
    assert_eq!(retried["dropped_without_payload"], 1, "{retried}");
    let retried = ctx.run(&["queue", "retry-dead"]).await.ok();
    assert!(retried.stdout.contains("requeued 0"), "{}", retried.stdout);

    w.shutdown().await;
}

#[tokio::test]
async fn drain_times_out_while_ticks_still_run() {
    let prefix = TestPrefix::new();
    let db = TestDb::migrated().await;
    let ctx = Ctx::with_db(&prefix, &db);
    let ids: Vec<String> = (0..2).map(|_| Uuid::new_v4().to_string()).collect();
    let w = workers(&ctx, &ids, Duration::from_secs(4)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while w.chains.running_ticks().await.expect("running") == 0 {
        assert!(Instant::now() < deadline, "no tick started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ctx.run(&["queue", "drain", "--timeout", "300ms"])
        .await
        .fails(1, "still running")
        .fails(1, "queue resume");
    assert!(
        w.chains.is_paused().await.expect("paused"),
        "a timed-out drain stays paused"
    );
    ctx.run(&["queue", "resume", "--yes"]).await.ok();
    w.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// events dead list / replay / purge
// ---------------------------------------------------------------------------------------------

/// Fails every event while `failing` is set; records the types it handled successfully.
#[derive(Default)]
struct Flaky {
    failing: std::sync::atomic::AtomicBool,
    handled: Mutex<Vec<String>>,
}

#[async_trait]
impl campaign_manager::bus::EventHandler for Flaky {
    async fn handle(
        &self,
        ev: campaign_manager::bus::Event,
    ) -> Result<(), campaign_manager::bus::BoxError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(format!("induced failure of {}", ev.r#type).into());
        }
        self.handled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ev.r#type);
        Ok(())
    }
}

/// A raw channel (confirm mode) for publishing peer events and reading queue depths.
async fn raw_channel() -> (lapin::Connection, lapin::Channel) {
    let conn = lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default())
        .await
        .expect("raw connect");
    let ch = conn.create_channel().await.expect("raw channel");
    ch.confirm_select(Default::default())
        .await
        .expect("confirm mode");
    (conn, ch)
}

/// A call_hangup's key on the platform's topic exchange (the subscribe queue binds it).
const HANGUP_KEY: &str = "call-manager.call.x.hangup";

async fn publish_raw(ch: &lapin::Channel, exchange: &str, key: &str, kind: &str) {
    let body = format!(
        r#"{{"type":"{kind}","publisher":"call-manager","data_type":"application/json","data":{{"id":"x"}}}}"#
    );
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        "x-test-origin".into(),
        lapin::types::AMQPValue::LongString("kept".into()),
    );
    ch.basic_publish(
        exchange.into(),
        key.into(),
        Default::default(),
        body.as_bytes(),
        lapin::BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_headers(headers),
    )
    .await
    .expect("publish")
    .await
    .expect("confirm");
}

/// Messages ready in `queue` (declared durable if absent, as the service declares it).
async fn depth(ch: &lapin::Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue.into(),
        lapin::options::QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        Default::default(),
    )
    .await
    .expect("declare")
    .message_count()
}

#[tokio::test]
async fn events_dead_list_replay_and_purge() {
    let prefix = TestPrefix::new();
    let ctx = Ctx::new(&prefix);
    let names = Names::prefixed(&ctx.queue_prefix);
    let dead = names.subscribe_dead_queue.clone();
    let mut options = campaign_manager::bus::BusOptions::default();
    options.subscriber.retry_delays = vec![Duration::from_millis(50); 3];
    options.subscriber.topic_patterns = campaign_manager::events::topic_patterns();
    let bus = campaign_manager::bus::Bus::connect_with(
        AMQP,
        names.clone(),
        &prometheus::Registry::new(),
        options,
    )
    .await
    .expect("bus");
    let flaky = Arc::new(Flaky::default());
    flaky
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    bus.subscribe(flaky.clone()).await.expect("subscribe");
    let (_raw_conn, ch) = raw_channel().await;
    for kind in ["first", "second"] {
        publish_raw(&ch, &names.topic_exchange, HANGUP_KEY, kind).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while depth(&ch, &dead).await < 2 {
        assert!(Instant::now() < deadline, "events never reached {dead}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // list: both, oldest first, with why and when; twice, because it does not consume.
    for _ in 0..2 {
        let l = ctx
            .run(&["--json", "events", "dead", "list"])
            .await
            .ok()
            .json();
        assert_eq!(l["queue"], dead.as_str());
        assert_eq!(l["total"], 2, "{l}");
        let events = l["events"].as_array().expect("events");
        assert_eq!(events.len(), 2, "{l}");
        let mut kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, ["first", "second"]);
        for e in events {
            assert_eq!(e["publisher"], "call-manager");
            assert_eq!(e["retry_count"], 3, "{e}");
            let reason = e["reason"].as_str().expect("reason");
            assert!(reason.starts_with("induced failure of "), "{reason}");
            for at in ["first_failed_at", "dead_lettered_at"] {
                let t = e[at].as_str().expect(at);
                chrono::DateTime::parse_from_rfc3339(t).expect("RFC 3339");
            }
            assert_eq!(e["headers"]["x-test-origin"], "kept", "{e}");
            assert_eq!(
                e["headers"]["x-original-queue"],
                names.subscribe_queue.as_str()
            );
            assert_eq!(e["body"]["data"]["id"], "x");
        }
    }
    let l = ctx
        .run(&["--json", "events", "dead", "list", "--limit", "1"])
        .await
        .ok()
        .json();
    assert_eq!(
        (l["total"].as_u64(), l["events"].as_array().map(Vec::len)),
        (Some(2), Some(1))
    );
    let human = ctx.run(&["events", "dead", "list"]).await.ok().stdout;
    assert!(
        human.contains(&format!("queue {dead}: 2 event(s)")),
        "{human}"
    );
    assert!(human.contains("induced failure of"), "{human}");

    // Replay needs a selection and, without a terminal, --yes; neither changes anything.
    ctx.run(&["events", "dead", "replay"])
        .await
        .fails(2, "Usage:");
    ctx.run(&["events", "dead", "replay", "--count", "1"])
        .await
        .fails(2, "pass --yes");
    assert_eq!(depth(&ch, &dead).await, 2);

    // The handler works again: replay one, then the rest; each reaches it once.
    flaky
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let r = ctx
        .run(&[
            "--json", "events", "dead", "replay", "--count", "1", "--yes",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        (r["found"].as_u64(), r["replayed"].as_u64()),
        (Some(2), Some(1)),
        "{r}"
    );
    assert_eq!(r["subscribe_queue"], names.subscribe_queue.as_str());
    let l = ctx
        .run(&["--json", "events", "dead", "list"])
        .await
        .ok()
        .json();
    assert_eq!(l["total"], 1, "{l}");
    let r = ctx
        .run(&["events", "dead", "replay", "--all", "--yes"])
        .await
        .ok();
    assert!(r.stdout.contains("replayed 1 of 1"), "{}", r.stdout);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut got = flaky
            .handled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        got.sort_unstable();
        if got == ["first", "second"] {
            break;
        }
        assert!(got.len() < 2, "handled twice: {got:?}");
        assert!(
            Instant::now() < deadline,
            "replayed events not handled: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(depth(&ch, &dead).await, 0);
    let r = ctx
        .run(&["--json", "events", "dead", "replay", "--all", "--yes"])
        .await
        .ok()
        .json();
    assert_eq!(r["replayed"], 0);

    // purge: asks (refused without a terminal), then deletes.
    flaky
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    publish_raw(&ch, &names.topic_exchange, HANGUP_KEY, "third").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while depth(&ch, &dead).await < 1 {
        assert!(Instant::now() < deadline, "third event never dead-lettered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ctx.run(&["events", "dead", "purge"])
        .await
        .fails(2, "pass --yes");
    let p = ctx
        .run(&["--json", "events", "dead", "purge", "--yes"])
        .await
        .ok()
        .json();
    assert_eq!(p["purged"], 1);
    assert_eq!(depth(&ch, &dead).await, 0);
    bus.shutdown().await;

    // Without a subscribe queue (service never ran) a replay fails and keeps the event.
    let orphan = TestNames::new();
    let odead = orphan.names.subscribe_dead_queue.clone();
    depth(&ch, &odead).await;
    publish_raw(&ch, "", &odead, "orphan").await;
    let r = cli(&[
        "--rabbitmq_address",
        AMQP,
        "--queue_prefix",
        &orphan.prefix,
        "events",
        "dead",
        "replay",
        "--all",
        "--yes",
    ])
    .await;
    r.fails(1, "replay stopped after 0 event(s)")
        .fails(1, &orphan.names.subscribe_queue);
    assert_eq!(depth(&ch, &odead).await, 1);

    // No broker.
    cli(&[
        "--rabbitmq_address",
        "amqp://guest:guest@127.0.0.1:1",
        "events",
        "dead",
        "list",
    ])
    .await
    .fails(1, "cannot reach RabbitMQ at 127.0.0.1:1");
    for help in [
        &["events", "--help"][..],
        &["events", "dead", "replay", "--help"][..],
    ] {
        let r = cli(help).await.ok();
        assert!(r.stdout.contains("Usage: campaign-control"), "{}", r.stdout);
    }
}

/// `campaign stats`: after a small campaign against the simulator, `--json` matches the
/// campaigncalls, the table names every stat, an unknown id fails with exit 1, and `--watch`
/// keeps printing (one JSON object per line with `--json`) until interrupted, then exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_stats_as_json_table_and_watch() {
    use tokio::io::AsyncBufReadExt;

    let sys = support::TestSystem::start(Scenario::instant(Outcome::Answered), |s| {
        s.workers = 4;
        s.first_tick_ms = 100;
        s.dial_tick_ms = 50;
        s.wait_tick_ms = 300;
    })
    .await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 3, 1);
    let outplan = sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(serde_json::json!({
                "customer_id": customer, "name": "p", "detail": "",
                "source": {"type": "tel", "target": "+15550001000"},
                "dial_timeout": 30000, "try_interval": 0,
                "max_try_count_0": 1, "max_try_count_1": 0, "max_try_count_2": 0,
                "max_try_count_3": 0, "max_try_count_4": 0,
            })),
        )
        .await;
    let created = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(serde_json::json!({
                "customer_id": customer, "type": "call", "name": "s",
                "actions": [{"type": "answer"}], "service_level": 100, "end_handle": "stop",
                "outplan_id": outplan["id"], "outdial_id": outdial,
            })),
        )
        .await;
    let id = created["id"].as_str().expect("campaign id").to_owned();
    sys.ok(
        "PUT",
        &format!("/v1/campaigns/{id}/status"),
        Some(serde_json::json!({"status": "run"})),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
        if c["status"] == "stop" && c["execute"] == "stop" {
            break;
        }
        assert!(Instant::now() < deadline, "campaign never ended: {c}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let infra = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = vec![
            "--rabbitmq_address".into(),
            AMQP.into(),
            "--queue_prefix".into(),
            sys.settings.queue_prefix.clone(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        all
    };
    let s = cli(&infra(&["--json", "campaign", "stats", "--id", &id]))
        .await
        .ok()
        .json();
    assert_eq!(s["campaign_id"].as_str(), Some(id.as_str()));
    assert_eq!(
        (s["dials"].as_i64(), s["done_success"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        (s["done_fail"].as_i64(), s["calls_up"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(s["by_reason"], serde_json::json!({"normal": 3}));
    assert_eq!(s["status"], "stop");

    let table = cli(&infra(&["campaign", "stats", "--id", &id])).await.ok();
    for stat in [
        "STAT",
        "dials",
        "done_success",
        "waiting_reason",
        "by_reason.normal",
    ] {
        assert!(table.stdout.contains(stat), "{stat}: {}", table.stdout);
    }
    cli(&infra(&[
        "campaign",
        "stats",
        "--id",
        &Uuid::new_v4().to_string(),
    ]))
    .await
    .fails(1, "stats of campaign");

    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_campaign-control"))
        .args(infra(&[
            "--json", "campaign", "stats", "--id", &id, "--watch",
        ]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn campaign-control --watch");
    let stdout = watch.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    for n in 0..2 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("a refresh every second")
            .expect("read stdout")
            .expect("still running");
        let v: Value = serde_json::from_str(&line).expect("one JSON object per line");
        assert_eq!(v["dials"], 3, "refresh {n}: {line}");
    }
    let pid = watch.id().expect("pid").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("send SIGINT");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(10), watch.wait())
        .await
        .expect("exits on Ctrl-C")
        .expect("wait");
    assert_eq!(status.code(), Some(0), "Ctrl-C ends --watch cleanly");
    sys.stop().await;
}

// ---------------------------------------------------------------------------------------------
// watch, lists across customers, wide characters, confirmations on a terminal
// ---------------------------------------------------------------------------------------------

/// Runs `args` with `--watch` as a child, reads `n` stdout lines (each within 10 s), sends
/// Ctrl-C and checks the process then ends cleanly (exit 0). Returns the lines.
async fn watch_lines(args: &[String], n: usize) -> Vec<String> {
    use tokio::io::AsyncBufReadExt;
    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_campaign-control"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn campaign-control --watch");
    let stdout = watch.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut got = Vec::new();
    while got.len() < n {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("a refresh every second")
            .expect("read stdout")
            .expect("still running");
        got.push(line);
    }
    let pid = watch.id().expect("pid").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("send SIGINT");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(10), watch.wait())
        .await
        .expect("exits on Ctrl-C")
        .expect("wait");
    assert_eq!(status.code(), Some(0), "Ctrl-C ends --watch cleanly");
    got
}

/// Columns a string takes on a terminal (Hangul syllables and jamo take two).
fn screen_width(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '\u{1100}'..='\u{115F}' | '\u{AC00}'..='\u{D7A3}' | '\u{3130}'..='\u{318F}' => 2,
            _ => 1,
        })
        .sum()
}

/// `campaign list --running` lists the running campaigns of every customer (only those),
/// `--watch` refreshes it (JSON lines, and in place for the table), the table lines Korean
/// names up with the other columns, and `queue stats --watch` refreshes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_list_running_across_customers_watch_and_wide_names() {
    use campaign_manager::model::CampaignStatus;
    let db = TestDb::migrated().await;
    let prefix = TestPrefix::new();
    let ctx = Ctx::new(&prefix);
    let app = service(&ctx, &db, &prefix).await;
    let store = campaign_manager::store::Store::with_pool(db.pool.clone(), prefix.cache());
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut running = Vec::new();
    for (customer, name, status) in [
        (a, "서울 봄 캠페인", CampaignStatus::Run),
        (a, "spring", CampaignStatus::Stop),
        (b, "부산", CampaignStatus::Run),
        (b, "stopping one", CampaignStatus::Stopping),
    ] {
        let mut c = support::records::campaign_row(customer);
        c.name = name.into();
        c.status = status;
        let c = store.campaigns.create(&c).await.expect("campaign");
        if status == CampaignStatus::Run {
            running.push(c.id.to_string());
        }
    }
    running.sort();

    let ids_of = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> = v
            .as_array()
            .expect("array")
            .iter()
            .map(|c| c["id"].as_str().expect("id").to_owned())
            .collect();
        ids.sort();
        ids
    };
    let list = ctx
        .run(&["--json", "campaign", "list", "--running"])
        .await
        .ok()
        .json();
    assert_eq!(ids_of(&list), running, "{list}");
    let mine = ctx
        .run(&[
            "--json",
            "campaign",
            "list",
            "--running",
            "--customer-id",
            &a.to_string(),
        ])
        .await
        .ok()
        .json();
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");
    let table = ctx
        .run(&["campaign", "list", "--running"])
        .await
        .ok()
        .stdout;
    assert!(
        table.contains("CUSTOMER_ID") && table.contains("(2 rows)"),
        "{table}"
    );

    // The TYPE column starts at the same screen column on every line, Korean names or not.
    let table = ctx
        .run(&["campaign", "list", "--customer-id", &a.to_string()])
        .await
        .ok()
        .stdout;
    assert!(table.contains("서울 봄 캠페인"), "{table}");
    let header = table.lines().next().expect("header");
    let type_col = screen_width(&header[..header.find("TYPE").expect("TYPE column")]);
    for line in table.lines().skip(1).filter(|l| l.contains(" call ")) {
        let at = line.find(" call ").expect("type cell") + 1;
        assert_eq!(screen_width(&line[..at]), type_col, "misaligned:\n{table}");
    }
    assert_eq!(
        table.lines().filter(|l| l.contains(" call ")).count(),
        2,
        "{table}"
    );

    // --watch: one JSON array per refresh; the table is redrawn in place.
    let mut args = vec![
        "--rabbitmq_address".to_owned(),
        AMQP.to_owned(),
        "--queue_prefix".to_owned(),
        ctx.queue_prefix.clone(),
    ];
    let json_args: Vec<String> = args
        .iter()
        .cloned()
        .chain(["--json", "campaign", "list", "--running", "--watch"].map(String::from))
        .collect();
    for line in watch_lines(&json_args, 2).await {
        let v: Value = serde_json::from_str(&line).expect("one JSON array per line");
        assert_eq!(ids_of(&v), running, "{line}");
    }
    args.extend(["campaign", "list", "--running", "--watch"].map(String::from));
    let lines = watch_lines(&args, 8).await;
    let redraws = lines.iter().filter(|l| l.contains("\x1b[H\x1b[2J")).count();
    assert!(redraws >= 2, "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("refreshing every 1 s")),
        "{lines:?}"
    );

    // queue stats --watch against the same Redis namespace.
    let queue_args: Vec<String> = [
        "--redis_address",
        "127.0.0.1:6379",
        "--redis_database",
        "0",
        "--tick_namespace",
        &ctx.namespace,
        "--json",
        "queue",
        "stats",
        "--watch",
    ]
    .map(String::from)
    .to_vec();
    for line in watch_lines(&queue_args, 2).await {
        let v: Value = serde_json::from_str(&line).expect("one JSON object per line");
        assert_eq!(v["paused"], false, "{line}");
    }
    app.stop().await;
}

/// Runs the CLI on a pseudo-terminal (util-linux `script`), typing `answer`; returns the exit
/// code and everything the terminal showed.
fn on_terminal(ctx: &Ctx, args: &[&str], answer: &str) -> (i32, String) {
    let mut cmd = vec![
        env!("CARGO_BIN_EXE_campaign-control").to_owned(),
        "--rabbitmq_address".into(),
        AMQP.into(),
        "--queue_prefix".into(),
        ctx.queue_prefix.clone(),
    ];
    cmd.extend(args.iter().map(|s| s.to_string()));
    let line = cmd
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn script");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        // Give the prompt time to appear before answering, as a person would.
        std::thread::sleep(Duration::from_millis(1500));
        stdin.write_all(answer.as_bytes()).expect("type the answer");
    }
    let out = child.wait_with_output().expect("script output");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), shown)
}

/// On a terminal, `outplan delete` asks; "n" (or anything but y) cancels with nothing
/// changed, "y" deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_asks_on_a_terminal() {
    let db = TestDb::migrated().await;
    let prefix = TestPrefix::new();
    let ctx = Ctx::new(&prefix);
    let app = service(&ctx, &db, &prefix).await;
    let customer = Uuid::new_v4().to_string();
    let created = ctx
        .run(&[
            "--json",
            "outplan",
            "create",
            "--customer-id",
            &customer,
            "--name",
            "p",
        ])
        .await
        .ok()
        .json();
    let id = created["id"].as_str().expect("id").to_owned();
    let args = ["outplan", "delete", "--id", id.as_str()];
    let (code, shown) = tokio::task::block_in_place(|| on_terminal(&ctx, &args, "n\n"));
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains(&format!("Delete outplan {id}? [y/N]")),
        "{shown}"
    );
    assert!(shown.contains("cancelled; nothing changed"), "{shown}");
    ctx.run(&["outplan", "get", "--id", &id]).await.ok();
    let (code, shown) = tokio::task::block_in_place(|| on_terminal(&ctx, &args, "y\n"));
    assert_eq!(code, 0, "{shown}");
    ctx.run(&["outplan", "get", "--id", &id])
        .await
        .fails(1, "OUTPLAN_NOT_FOUND");
    app.stop().await;
}

/// Rollback tooling: `campaign execute --all-running` needs the durable switch off (`queue pause
/// --durable`), has a dry run, sends exactly one `/execute` per running campaign of every
/// customer, across pages, none to other campaigns, and none at all when run again (the kicks are
/// recorded in MySQL); `queue resume` clears both. Here the service is the receiver: campaigns
/// whose loop is gone (`execute = stop`, no chain) get it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_all_running_sends_one_execute_per_running_campaign() {
    use campaign_manager::model::{CampaignStatus, Execute};
    let db = TestDb::migrated().await;
    let prefix = TestPrefix::new();
    let ctx = Ctx::with_db(&prefix, &db);
    let app = service(&ctx, &db, &prefix).await;
    let store = campaign_manager::store::Store::with_pool(db.pool.clone(), prefix.cache());
    let executes = || {
        app.metrics
            .receive_request_process_time
            .with_label_values(&["/v1/campaigns/<campaign-id>/execute", "POST", "2xx"])
            .get_sample_count()
    };
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut running = Vec::new();
    let mut others = Vec::new();
    for (customer, status) in [
        (a, CampaignStatus::Run),
        (a, CampaignStatus::Run),
        (a, CampaignStatus::Stop),
        (b, CampaignStatus::Run),
        (b, CampaignStatus::Stopping),
    ] {
        let mut c = support::records::campaign_row(customer);
        c.status = status;
        c.execute = Execute::Stop;
        let c = store.campaigns.create(&c).await.expect("campaign");
        if status == CampaignStatus::Run {
            running.push(c.id);
        } else {
            others.push(c.id);
        }
    }
    running.sort();
    let ids = |v: &serde_json::Value| -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = v
            .as_array()
            .expect("a list")
            .iter()
            .map(|x| {
                x.as_str()
                    .or(x["id"].as_str())
                    .expect("id")
                    .parse()
                    .expect("uuid")
            })
            .collect();
        ids.sort();
        ids
    };

    // Refused while this service's ticking is not switched off durably: nothing is sent.
    ctx.run(&["campaign", "execute", "--all-running", "--yes"])
        .await
        .fails(1, "not switched off durably");
    assert_eq!(executes(), 0);
    // `queue pause --durable` switches it off in MySQL and pauses Redis.
    let paused = ctx
        .run(&[
            "--json",
            "queue",
            "pause",
            "--durable",
            "--reason",
            "rollback test",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        (&paused["paused"], &paused["durable"]),
        (&json!(true), &json!(true))
    );
    let switch = store
        .tick_switch
        .state(&ctx.namespace)
        .await
        .expect("read the switch")
        .expect("a row");
    assert!(
        switch.paused && switch.reason == "rollback test",
        "{switch:?}"
    );
    assert!(app.chains.is_paused().await.expect("paused"));

    // Without a terminal it needs --yes; nothing is sent.
    ctx.run(&["campaign", "execute", "--all-running"])
        .await
        .fails(2, "pass --yes");
    assert_eq!(executes(), 0);
    // A dry run lists and sends nothing.
    let dry = ctx
        .run(&[
            "--json",
            "campaign",
            "execute",
            "--all-running",
            "--dry-run",
            "--page-size",
            "1",
        ])
        .await
        .ok()
        .json();
    assert_eq!(ids(&dry["would_execute"]), running, "{dry}");
    assert_eq!(dry["skipped"], json!([]));
    assert_eq!(executes(), 0);

    let out = ctx
        .run(&[
            "--json",
            "campaign",
            "execute",
            "--all-running",
            "--page-size",
            "1",
            "--yes",
        ])
        .await
        .ok()
        .json();
    assert_eq!(ids(&out["executed"]), running, "{out}");
    assert_eq!(out["failed"], json!([]));
    assert_eq!(executes(), 3, "one request per running campaign");
    for id in &running {
        let c = store
            .campaigns
            .get_fresh(*id)
            .await
            .expect("get")
            .expect("row");
        assert_eq!(c.execute, Execute::Run, "campaign {id}");
        assert!(
            app.chains.is_live(&id.to_string()).await.expect("is_live"),
            "campaign {id} has its chain back"
        );
    }
    for id in &others {
        let c = store
            .campaigns
            .get_fresh(*id)
            .await
            .expect("get")
            .expect("row");
        assert_eq!(c.execute, Execute::Stop, "campaign {id}");
        assert!(!app.chains.is_live(&id.to_string()).await.expect("is_live"));
    }

    // Run again: every campaign was kicked already, nothing is sent (no second Go loop).
    let again = ctx
        .run(&["--json", "campaign", "execute", "--all-running", "--yes"])
        .await
        .ok()
        .json();
    assert_eq!(again["executed"], json!([]), "{again}");
    assert_eq!(ids(&again["skipped"]), running, "{again}");
    assert!(
        again["skipped"]
            .as_array()
            .expect("skipped")
            .iter()
            .all(|s| s["confirmed"] == true),
        "{again}"
    );
    assert_eq!(executes(), 3);
    let table = ctx
        .run(&["campaign", "execute", "--all-running", "--dry-run"])
        .await
        .ok();
    assert!(
        table.stdout.contains("would send /execute to 0"),
        "{}",
        table.stdout
    );

    // One campaign by id (a stopped one: the service leaves it alone).
    let one = ctx
        .run(&[
            "--json",
            "campaign",
            "execute",
            "--id",
            &others[0].to_string(),
        ])
        .await
        .ok()
        .json();
    assert_eq!(ids(&one["executed"]), [others[0]]);
    assert_eq!(executes(), 4);
    // A campaign kicked already: --id asks before a second /execute.
    let first = running[0].to_string();
    ctx.run(&["campaign", "execute", "--id", &first])
        .await
        .fails(2, "pass --yes");
    assert_eq!(executes(), 4);
    ctx.run(&["campaign", "execute", "--id", &first, "--yes"])
        .await
        .ok();
    assert_eq!(executes(), 5);
    ctx.run(&["campaign", "execute", "--id", &Uuid::new_v4().to_string()])
        .await
        .fails(1, "CAMPAIGN_NOT_FOUND");

    // resume clears the switch and forgets the kicks (this service drives the campaigns again).
    let resumed = ctx
        .run(&["--json", "queue", "resume", "--yes"])
        .await
        .ok()
        .json();
    assert_eq!(resumed["durable_switch_cleared"], true, "{resumed}");
    assert_eq!(resumed["go_loop_kicks_forgotten"], 4, "{resumed}");
    assert!(
        !store
            .tick_switch
            .is_off(&ctx.namespace)
            .await
            .expect("switch")
    );
    assert!(!app.chains.is_paused().await.expect("paused"));
    assert!(store.loop_kicks.all().await.expect("kicks").is_empty());
    app.stop().await;
}

/// The escape hatches go through the service: `campaigncall finish` ends one stuck
/// campaigncall (target and campaign follow), `campaign stop --force` ends a campaign stuck in
/// `stopping` whose calls the peer still reports up. A running campaign is not force-stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_and_force_stop_end_stuck_records() {
    let sys =
        support::TestSystem::start(support::scenarios::silent(), support::scenarios::fast_ticks)
            .await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 3, 1);
    let outplan = sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(serde_json::json!({
                "customer_id": customer, "name": "p", "detail": "",
                "source": {"type": "tel", "target": "+15550001000"},
                "dial_timeout": 30000, "try_interval": 0,
                "max_try_count_0": 1, "max_try_count_1": 0, "max_try_count_2": 0,
                "max_try_count_3": 0, "max_try_count_4": 0,
            })),
        )
        .await;
    let created = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(serde_json::json!({
                "customer_id": customer, "type": "call", "name": "stuck",
                "actions": [{"type": "answer"}], "service_level": 100, "end_handle": "continue",
                "outplan_id": outplan["id"], "outdial_id": outdial,
            })),
        )
        .await;
    let id = created["id"].as_str().expect("campaign id").to_owned();
    let control = |args: Vec<String>| {
        let sys = &sys;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            support::control_json(sys, &args).await
        }
    };
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (code, out, err) = control(v(&["campaign", "run", "--id", &id])).await;
    assert_eq!(code, 0, "{out}{err}");

    // Wait for the three calls (they never hang up).
    let calls_uri = "/v1/campaigncalls?page_size=10";
    let filter = serde_json::json!({"campaign_id": id});
    let deadline = Instant::now() + Duration::from_secs(30);
    let calls = loop {
        let calls = sys.ok("GET", calls_uri, Some(filter.clone())).await;
        if calls.as_array().map(Vec::len) == Some(3) {
            break calls;
        }
        assert!(Instant::now() < deadline, "never dialed 3 calls: {calls}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // A running campaign is not force-stopped.
    let (code, _, err) = control(v(&["campaign", "stop", "--id", &id, "--force"])).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("stop it first"), "{err}");
    let (code, out, err) = control(v(&["campaign", "stop", "--id", &id])).await;
    assert_eq!(code, 0, "{err}");
    let stopping: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(stopping["status"], "stopping", "{stopping}");

    // finish: one call, as success; its target is done; twice → 409, exit 1.
    let first = calls[0]["id"].as_str().expect("id").to_owned();
    let target: Uuid = calls[0]["outdial_target_id"]
        .as_str()
        .expect("target")
        .parse()
        .expect("uuid");
    let (code, out, err) = control(v(&[
        "campaigncall",
        "finish",
        "--id",
        &first,
        "--result",
        "success",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    let done: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (&done["status"], &done["result"]),
        (&serde_json::json!("done"), &serde_json::json!("success"))
    );
    assert_eq!(
        sys.sim.target(target).expect("target").status,
        campaign_sim::TargetState::Done
    );
    let (code, _, err) = control(v(&[
        "campaigncall",
        "finish",
        "--id",
        &first,
        "--result",
        "fail",
    ]))
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already done (result success)"), "{err}");
    let (code, _, err) = control(v(&[
        "campaigncall",
        "finish",
        "--id",
        &Uuid::new_v4().to_string(),
        "--result",
        "fail",
    ]))
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("CAMPAIGNCALL_NOT_FOUND"), "{err}");
    let c = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(c["status"], "stopping", "two calls are still up: {c}");
    // The routes refuse what cannot be meant, changing nothing.
    let second = calls[1]["id"].as_str().expect("id").to_owned();
    for bad in [
        serde_json::json!({"result": ""}),
        serde_json::json!({"result": "maybe"}),
        serde_json::json!({}),
    ] {
        let (status, _, data) = sys
            .rpc(
                "POST",
                &format!("/v1/campaigncalls/{second}/finish"),
                Some(bad),
            )
            .await;
        assert_eq!(status, 400, "{data}");
    }
    let (status, _, _) = sys
        .rpc(
            "POST",
            &format!("/v1/campaigns/{}/force_stop", Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let cc = sys
        .ok("GET", &format!("/v1/campaigncalls/{second}"), None)
        .await;
    assert_ne!(cc["status"], "done", "{cc}");

    // force: the other two are still up at call-manager; the operator's word ends them.
    let (code, out, err) = control(v(&["campaign", "stop", "--id", &id, "--force"])).await;
    assert_eq!(code, 0, "{err}");
    let stopped: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (&stopped["status"], &stopped["execute"]),
        (&serde_json::json!("stop"), &serde_json::json!("stop")),
        "{stopped}"
    );
    let calls = sys.ok("GET", calls_uri, Some(filter.clone())).await;
    for cc in calls.as_array().expect("calls") {
        assert_eq!(cc["status"], "done", "{cc}");
        if cc["id"] != first.as_str() {
            assert_eq!(cc["result"], "fail", "{cc}");
        }
    }
    // Stopped: force again returns it as it is.
    let (code, out, err) = control(v(&["campaign", "stop", "--id", &id, "--force"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"stop\""), "{out}");
    sys.stop().await;
}

/// Shell completions and man pages come from the command tree; nothing to connect to.
#[tokio::test]
async fn completions_and_man_pages() {
    for (shell, needle) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef campaign-control"),
        ("fish", "complete -c campaign-control"),
    ] {
        let r = cli(&["completions", shell]).await.ok();
        assert!(r.stdout.contains(needle), "{shell}: {}", r.stdout);
        assert!(r.stdout.contains("all-running"), "{shell} lacks a flag");
    }
    let man = cli(&["man"]).await.ok().stdout;
    assert!(
        man.starts_with(".ie") || man.contains(".TH campaign-control"),
        "{man}"
    );
    assert!(man.contains("campaign\\-control"), "{man}");
    let dir = std::env::temp_dir().join(unique("man"));
    let r = cli(&["man", "--dir", &dir.to_string_lossy()]).await.ok();
    assert!(r.stdout.contains("wrote"), "{}", r.stdout);
    for page in [
        "campaign-control.1",
        "campaign-control-campaign.1",
        "campaign-control-queue-drain.1",
    ] {
        let text =
            std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    // A directory that cannot be created: exit 1 with the path.
    cli(&["man", "--dir", "/proc/nope/man"])
        .await
        .fails(1, "/proc/nope/man");
}

#[tokio::test]
async fn flows_reconcile_runs_one_pass_and_says_what_it_did() {
    let db = TestDb::migrated().await;
    let prefix = TestPrefix::new();
    let ctx = Ctx::new(&prefix);
    let sim = Sim::start(
        Names::prefixed(&ctx.queue_prefix),
        AMQP,
        Scenario::instant(Outcome::Answered),
    )
    .await
    .expect("start simulator");
    let app = service(&ctx, &db, &prefix).await;
    // A campaign deleted an hour ago whose flow flow-manager still has.
    let flow = sim.with_state(|st| {
        st.flows
            .create(
                campaign_sim::flows::FlowCreate::default(),
                chrono::Utc::now(),
            )
            .id
    });
    let mut c = support::records::campaign_row(Uuid::new_v4());
    c.flow_id = flow;
    app.store.campaigns.create(&c).await.expect("campaign");
    let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1)).naive_utc();
    sqlx::query("UPDATE campaign_campaigns SET tm_delete = ?, tm_update = ? WHERE id = ?")
        .bind(hour_ago)
        .bind(hour_ago)
        .bind(c.id.as_bytes().to_vec())
        .execute(&db.pool)
        .await
        .expect("delete the campaign");

    let first = ctx
        .run(&[
            "--json",
            "flows",
            "reconcile",
            "--recent-interval-sec",
            "21600",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        first,
        json!({"cleaned": 1, "skipped": 0, "failed": 0, "saturated": false,
               "recent_saturated": false, "partial": false})
    );
    assert!(
        sim.flows()
            .iter()
            .any(|f| f.id == flow && f.tm_delete.is_some())
    );
    let human = ctx.run(&["flows", "reconcile"]).await.ok().stdout;
    assert!(human.contains("skipped") && human.contains('1'), "{human}");
    ctx.run(&["flows", "reconcile", "--recent-interval-sec", "0"])
        .await
        .fails(2, "recent-interval-sec");
    app.stop().await;
    sim.shutdown_and_delete().await;
}
