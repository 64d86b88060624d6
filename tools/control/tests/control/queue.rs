//! `queue stats/list/drain/resume` against in-process tick workers with a fake runner: every shard
//! counted, drain waiting for running ticks (or timing out), resume bringing every chain back.

use super::*;

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
