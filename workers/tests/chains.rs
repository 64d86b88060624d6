//! Scheduler tests with a recording runner on the real Redis at 127.0.0.1:6379.
//! Each test works in its own random namespace and deletes its keys at the end.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use apalis::prelude::TaskBuilder;
use campaign_workers::Chains;
use common::seed::seeded_rng;
use common::{Recorder, Running, TestNs, Wanted, eventually, now_ms, now_us};
use rand::RngExt;
use redis::AsyncCommands;

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Seqs of each chain in start order.
fn seqs_by_chain(records: &[common::Record]) -> BTreeMap<String, Vec<(u64, u64)>> {
    let mut by: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for r in records {
        by.entry(r.tick.id.clone())
            .or_default()
            .push((r.start_us, r.tick.seq));
    }
    for v in by.values_mut() {
        v.sort_unstable();
    }
    by
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_sharing_a_job_each_run_once_never_before_due_even_when_the_job_is_delivered_twice() {
    let ns = TestNs::new("bundle");
    let cfg = ns.config();
    let chains = Chains::connect(&cfg).await.unwrap();
    let ids = ["b-0", "b-1", "b-2"];
    let mut ticks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        assert!(chains.start(id, Duration::from_secs(60)).await.unwrap());
        let (_, _, seq) = chains.upcoming(1, Some(id)).await.unwrap()[0].clone();
        // Different due times inside one job: each tick waits for its own.
        let due = now_ms() + 300 + 100 * i as u64;
        ticks.push((id.to_string(), seq, due));
    }
    let payload = format!(
        r#"{{"ticks":[{}]}}"#,
        ticks
            .iter()
            .map(|(id, seq, due)| format!(r#"{{"id":"{id}","seq":{seq},"due_at_ms":{due}}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    // The same job of three ticks, delivered twice.
    let apalis_config = apalis_redis::Config::default().queue(&ns.name);
    let tasks: Vec<_> = (0..2)
        .map(|_| TaskBuilder::new(payload.clone().into_bytes()).build())
        .collect();
    let mut conn = apalis_redis::connect(common::REDIS_URL).await.unwrap();
    apalis_redis::queries::push_tasks(&mut conn, &apalis_config, &tasks)
        .await
        .unwrap();

    let recorder = Recorder::new(Duration::from_secs(3600));
    let wanted = Wanted::new(ids.iter().map(|id| id.to_string()).collect());
    let running = Running::start(cfg, recorder.clone(), wanted);
    assert!(eventually(Duration::from_secs(5), || async { recorder.count() >= 3 }).await);
    assert!(
        eventually(Duration::from_secs(5), || async {
            running.metric("campaign_manager_chain_ticks_total", Some("stale")) >= 3.0
        })
        .await,
        "the second delivery of each tick must be dropped as stale"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = recorder.records();
    assert_eq!(records.len(), 3, "{records:?}");
    for (id, seq, due) in &ticks {
        let r = records.iter().find(|r| &r.tick.id == id).unwrap();
        assert_eq!((r.tick.seq, r.tick.due_at_ms), (*seq, *due));
        assert!(r.start_us >= due * 1000, "{id} started early");
    }
    running.shutdown().await.unwrap();
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_delivery_of_a_tick_runs_it_once() {
    let ns = TestNs::new("dup");
    let cfg = ns.config();
    let chains = Chains::connect(&cfg).await.unwrap();
    assert!(chains.start("dup", Duration::from_secs(60)).await.unwrap());
    let upcoming = chains.upcoming(10, Some("dup")).await.unwrap();
    assert_eq!(upcoming.len(), 1);
    let (_, _, seq) = upcoming[0].clone();

    // The same tick, delivered three times by apalis.
    let apalis_config = apalis_redis::Config::default().queue(&ns.name);
    let payload = format!(
        r#"{{"id":"dup","seq":{seq},"due_at_ms":{}}}"#,
        now_ms() + 300
    );
    let tasks: Vec<_> = (0..3)
        .map(|_| TaskBuilder::new(payload.clone().into_bytes()).build())
        .collect();
    let mut conn = apalis_redis::connect(common::REDIS_URL).await.unwrap();
    apalis_redis::queries::push_tasks(&mut conn, &apalis_config, &tasks)
        .await
        .unwrap();

    let recorder = Recorder::new(Duration::from_secs(3600));
    let running = Running::start(cfg, recorder.clone(), Wanted::new(vec!["dup".into()]));
    assert!(eventually(Duration::from_secs(5), || async { recorder.count() >= 1 }).await);
    assert!(
        eventually(Duration::from_secs(5), || async {
            running.metric("campaign_manager_chain_ticks_total", Some("stale")) >= 2.0
        })
        .await,
        "two deliveries must be dropped as stale"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = recorder.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].tick.seq, seq);
    assert!(records[0].start_us >= records[0].tick.due_at_ms * 1000);
    // The chain moved on to seq + 1, due an hour later.
    let next = chains.upcoming(10, Some("dup")).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].2, seq + 1);
    assert!(next[0].1 > now_ms() + 3_000_000);

    running.shutdown().await.unwrap();
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_make_one_chain() {
    let ns = TestNs::new("start");
    let cfg = ns.config();
    let chains = Chains::connect(&cfg).await.unwrap();
    let starts = (0..20).map(|_| {
        let chains = chains.clone();
        tokio::spawn(async move { chains.start("one", Duration::from_millis(100)).await })
    });
    let started: Vec<bool> = futures::future::join_all(starts)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(started.iter().filter(|s| **s).count(), 1, "{started:?}");

    let cadence = Duration::from_millis(200);
    let recorder = Recorder::new(cadence);
    let running = Running::start(cfg, recorder.clone(), Wanted::new(vec!["one".into()]));
    assert!(eventually(Duration::from_secs(5), || async { recorder.count() >= 6 }).await);
    // Starting a live chain again does nothing.
    assert!(!chains.start("one", Duration::ZERO).await.unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    running.shutdown().await.unwrap();

    let by = seqs_by_chain(&recorder.records());
    let ticks = &by["one"];
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1].1,
            pair[0].1 + 1,
            "one chain, consecutive seqs: {ticks:?}"
        );
        assert!(
            pair[1].0 - pair[0].0 >= 199_000,
            "ticks closer than the cadence: {ticks:?}"
        );
    }
    assert_eq!(chains.stats().await.unwrap().live_chains, 1);
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_a_chain_and_a_stop_outcome_clears_it() {
    let ns = TestNs::new("stop");
    // One reconciler pass at start-up only: the chains stay wanted, and a later pass would
    // re-seed them after `stop` (the domain stops wanting a chain before stopping it).
    let cfg = campaign_workers::SchedulerConfig {
        reconcile_interval: Duration::from_secs(600),
        ..ns.config()
    };
    let chains = Chains::connect(&cfg).await.unwrap();
    let all = ids("s", 3);
    for id in &all {
        assert!(chains.start(id, Duration::ZERO).await.unwrap());
    }
    let recorder = Recorder::new(Duration::from_millis(150));
    let running = Running::start(cfg, recorder.clone(), Wanted::new(all.clone()));
    assert!(
        eventually(Duration::from_secs(5), || async {
            all.iter().all(|id| recorder.records_of(id).len() >= 2)
        })
        .await
    );

    // Stop from the API side.
    assert!(chains.stop("s-0").await.unwrap());
    let stopped_at = now_ms();
    assert!(!chains.stop("s-0").await.unwrap());
    assert!(!chains.is_live("s-0").await.unwrap());
    // Stop from the runner.
    recorder.stop_ids.lock().unwrap().push("s-1".into());
    assert!(
        eventually(Duration::from_secs(3), || async {
            !chains.is_live("s-1").await.unwrap()
        })
        .await
    );
    let s1_ended = now_us();
    tokio::time::sleep(Duration::from_millis(800)).await;

    assert!(
        recorder
            .records_of("s-0")
            .iter()
            .all(|r| r.tick.claimed_at_ms <= stopped_at),
        "a tick of a stopped chain started"
    );
    assert!(
        recorder
            .records_of("s-1")
            .iter()
            .all(|r| r.start_us < s1_ended)
    );
    assert!(chains.is_live("s-2").await.unwrap());
    assert!(
        recorder
            .records_of("s-2")
            .iter()
            .any(|r| r.start_us > s1_ended)
    );
    assert!(running.metric("campaign_manager_chain_ticks_total", Some("stop")) >= 1.0);
    running.shutdown().await.unwrap();
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tick_starts_before_it_is_due() {
    let ns = TestNs::new("due");
    let cfg = ns.config();
    let chains = Chains::connect(&cfg).await.unwrap();
    let all = ids("d", 100);
    let mut rng = seeded_rng("no_tick_starts_before_it_is_due");
    for id in &all {
        let delay = Duration::from_millis(rng.random_range(0..400));
        chains.start(id, delay).await.unwrap();
    }
    let recorder = Recorder::new(Duration::from_millis(137));
    let running = Running::start(cfg, recorder.clone(), Wanted::new(all.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.shutdown().await.unwrap();

    let records = recorder.records();
    assert!(records.len() > 1000, "only {} ticks", records.len());
    for r in &records {
        assert!(r.tick.claimed_at_ms >= r.tick.due_at_ms, "{r:?}");
        assert!(r.start_us >= r.tick.due_at_ms * 1000, "early start: {r:?}");
    }
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_chain_state_is_reseeded_within_5_s() {
    let ns = TestNs::new("flush");
    let cfg = ns.config();
    let chains = Chains::connect(&cfg).await.unwrap();
    let all = ids("f", 50);
    let recorder = Recorder::new(Duration::from_millis(300));
    // Nothing started: the reconciler seeds the wanted chains.
    let running = Running::start(cfg, recorder.clone(), Wanted::new(all.clone()));
    assert!(
        eventually(Duration::from_secs(5), || async {
            let ticked: HashSet<String> =
                recorder.records().into_iter().map(|r| r.tick.id).collect();
            ticked.len() == all.len()
        })
        .await
    );

    // Like FLUSHDB for this namespace: chain state and the apalis queue are gone.
    let lost_at = now_us();
    let lost = Instant::now();
    assert!(ns.delete_keys().await > 0);
    let back = eventually(Duration::from_secs(5), || async {
        let live = chains.stats().await.map(|s| s.live_chains).unwrap_or(0);
        let ticked: HashSet<String> = recorder
            .records()
            .into_iter()
            .filter(|r| r.start_us > lost_at)
            .map(|r| r.tick.id)
            .collect();
        live == all.len() as u64 && ticked.len() == all.len()
    })
    .await;
    assert!(back, "chains not back after {:?}", lost.elapsed());
    assert!(!running.handle.is_finished());
    assert!(running.metric("campaign_manager_chain_reseeds_total", None) >= 100.0);
    running.shutdown().await.unwrap();
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_new_ticks_and_resume_continues_the_same_chains() {
    let ns = TestNs::new("pause");
    let cfg = ns.config();
    let chains = Chains::connect(&cfg).await.unwrap();
    let all = ids("p", 20);
    for id in &all {
        chains.start(id, Duration::ZERO).await.unwrap();
    }
    let recorder = Recorder::new(Duration::from_millis(100));
    let running = Running::start(cfg, recorder.clone(), Wanted::new(all.clone()));
    assert!(
        eventually(Duration::from_secs(5), || async {
            all.iter().all(|id| recorder.records_of(id).len() >= 2)
        })
        .await
    );

    chains.pause().await.unwrap();
    let paused_at = now_ms();
    assert!(chains.is_paused().await.unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during: Vec<_> = recorder
        .records()
        .into_iter()
        .filter(|r| r.tick.claimed_at_ms > paused_at)
        .collect();
    assert!(during.is_empty(), "ticks started while paused: {during:?}");
    let stats = chains.stats().await.unwrap();
    assert!(stats.paused);
    assert_eq!(stats.live_chains, 20);
    assert_eq!(stats.running, 0);
    assert_eq!(stats.scheduled, 20);
    assert!(stats.oldest_overdue.is_some());
    let last_before: BTreeMap<String, u64> = seqs_by_chain(&recorder.records())
        .into_iter()
        .map(|(id, v)| (id, v.last().map(|x| x.1).unwrap_or(0)))
        .collect();

    chains.resume().await.unwrap();
    let resumed_at = now_us();
    assert!(
        eventually(Duration::from_secs(3), || async {
            all.iter().all(|id| {
                recorder
                    .records_of(id)
                    .iter()
                    .any(|r| r.start_us > resumed_at)
            })
        })
        .await
    );
    running.shutdown().await.unwrap();
    // Same chains: the first tick after resume is the successor of the last one before.
    for (id, ticks) in seqs_by_chain(&recorder.records()) {
        let after = ticks.iter().find(|t| t.0 > resumed_at).unwrap();
        assert_eq!(after.1, last_before[&id] + 1, "chain {id} was re-seeded");
    }
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_survives_a_wiped_namespace() {
    let ns = TestNs::new("pause-wipe");
    let cfg = ns.config();
    let chains = Chains::connect(&cfg).await.unwrap();
    let all = ids("w", 10);
    let recorder = Recorder::new(Duration::from_millis(100));
    let running = Running::start(cfg, recorder.clone(), Wanted::new(all.clone()));
    assert!(
        eventually(Duration::from_secs(5), || async {
            all.iter().all(|id| !recorder.records_of(id).is_empty())
        })
        .await
    );

    chains.pause().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            chains.running_ticks().await.unwrap() == 0
        })
        .await
    );
    // Let the worker's feeder read the record at least once after the pause (every 10 ms).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paused_at = now_ms();

    // Like FLUSHDB for this namespace: chain state, control record and apalis queue are gone.
    assert!(ns.delete_keys().await > 0);
    assert!(
        eventually(Duration::from_secs(5), || async {
            chains.is_paused().await.unwrap()
        })
        .await,
        "the pause was not restored"
    );
    // The reconciler re-seeds the wanted chains meanwhile, yet none ticks.
    assert!(
        eventually(Duration::from_secs(5), || async {
            chains.stats().await.map(|s| s.live_chains).unwrap_or(0) == all.len() as u64
        })
        .await
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during: Vec<_> = recorder
        .records()
        .into_iter()
        .filter(|r| r.tick.claimed_at_ms > paused_at)
        .collect();
    assert!(during.is_empty(), "ticks ran after the wipe: {during:?}");
    assert!(chains.is_paused().await.unwrap());
    assert!(running.metric("campaign_manager_chain_reseeds_total", None) >= all.len() as f64);

    chains.resume().await.unwrap();
    let resumed_at = now_us();
    assert!(
        eventually(Duration::from_secs(5), || async {
            all.iter().all(|id| {
                recorder
                    .records_of(id)
                    .iter()
                    .any(|r| r.start_us > resumed_at)
            })
        })
        .await,
        "chains did not come back after resume"
    );
    assert!(!running.handle.is_finished());
    running.shutdown().await.unwrap();
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_a_remembered_pause_waits_before_running_ticks() {
    // A namespace without its control record (new, or wiped while no worker ran): the worker
    // cannot know whether the cluster was paused, so it hands no tick over during its grace
    // period, and adopts a pause written meanwhile.
    let ns = TestNs::new("pause-grace");
    let cfg = campaign_workers::SchedulerConfig {
        unknown_pause_grace: Duration::from_secs(3),
        ..ns.config()
    };
    let chains = Chains::connect(&cfg).await.unwrap();
    let all = ids("g", 5);
    for id in &all {
        chains.start(id, Duration::ZERO).await.unwrap();
    }
    let recorder = Recorder::new(Duration::from_millis(100));
    let running = Running::start(cfg, recorder.clone(), Wanted::new(all.clone()));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(recorder.count(), 0, "a tick ran inside the grace period");
    chains.pause().await.unwrap();
    // Past the grace period: the worker read the pause and keeps it.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(recorder.count(), 0, "a tick ran although paused");
    assert!(chains.is_paused().await.unwrap());
    chains.resume().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            all.iter().all(|id| !recorder.records_of(id).is_empty())
        })
        .await
    );
    running.shutdown().await.unwrap();
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_with_many_ticks_in_flight_returns_within_the_bound() {
    let ns = TestNs::new("shutdown");
    let cfg = campaign_workers::SchedulerConfig {
        concurrency: 1000,
        shutdown_timeout: Duration::from_secs(5),
        ..ns.config()
    };
    let chains = Chains::connect(&cfg).await.unwrap();
    let all = ids("g", 400);
    let mut rng =
        seeded_rng("graceful_shutdown_with_many_ticks_in_flight_returns_within_the_bound");
    for id in &all {
        chains
            .start(id, Duration::from_millis(rng.random_range(0..200)))
            .await
            .unwrap();
    }
    // Each tick takes 300 ms, so hundreds are running at any moment.
    let recorder = Recorder::with_work(Duration::from_millis(50), Duration::from_millis(300));
    let running = Running::start(cfg, recorder.clone(), Wanted::new(all.clone()));
    assert!(
        eventually(Duration::from_secs(10), || async {
            recorder.in_flight.load(Ordering::SeqCst) >= 100
        })
        .await
    );
    // Settle into steady state, then stop at a moment with at least 100 ticks running (on a
    // starved machine the count dips, so wait for such a moment rather than sleep a fixed time).
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            recorder.in_flight.load(Ordering::SeqCst) >= 100
        })
        .await
    );
    let in_flight = recorder.in_flight.load(Ordering::SeqCst);
    let started = Instant::now();
    running.shutdown().await.unwrap();
    let took = started.elapsed();
    println!("graceful shutdown took {took:?} with {in_flight} ticks in flight");
    assert!(took < Duration::from_secs(6), "shutdown took {took:?}");
    assert!(in_flight >= 100, "only {in_flight} ticks in flight");
    assert_eq!(
        recorder.in_flight.load(Ordering::SeqCst),
        0,
        "ticks abandoned"
    );

    let stats = chains.stats().await.unwrap();
    assert_eq!(stats.live_chains, 400);
    assert_eq!(stats.running, 0, "a running tick did not finish");
    assert_eq!(stats.scheduled, 400, "every chain has its next tick");
    assert!(
        stats.workers.is_empty(),
        "worker still registered: {:?}",
        stats.workers
    );
    let mut conn = ns.conn().await;
    let inflight: Vec<String> = conn.keys(format!("{}:inflight:*", ns.name)).await.unwrap();
    for key in inflight {
        let n: u64 = conn.scard(&key).await.unwrap();
        assert_eq!(n, 0, "jobs left in flight in {key}");
    }
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_chains_due_at_once_do_not_kill_the_worker() {
    let ns = TestNs::new("10k");
    let cfg = campaign_workers::SchedulerConfig {
        concurrency: 1000,
        ..ns.config()
    };
    let chains = Chains::connect(&cfg).await.unwrap();
    let all = ids("k", 10_000);
    for chunk in all.chunks(200) {
        let starts = chunk.iter().map(|id| chains.start(id, Duration::ZERO));
        for started in futures::future::join_all(starts).await {
            assert!(started.unwrap());
        }
    }
    assert!(chains.stats().await.unwrap().due_now >= 9_000);
    let recorder = Recorder::new(Duration::from_secs(600));
    let running = Running::start(cfg, recorder.clone(), Wanted::new(all.clone()));
    let all_ticked = eventually(Duration::from_secs(60), || async {
        let ticked: HashSet<String> = recorder.records().into_iter().map(|r| r.tick.id).collect();
        ticked.len() == all.len()
    })
    .await;
    assert!(all_ticked, "only {} ticks", recorder.count());
    assert!(!running.handle.is_finished(), "run_workers returned");
    let stats = chains.stats().await.unwrap();
    assert_eq!(stats.live_chains, 10_000);
    assert_eq!(stats.dead_jobs, 0);
    assert!(stats.workers.iter().any(|w| w.alive));
    assert_eq!(recorder.count(), 10_000, "a tick ran twice");
    running.shutdown().await.unwrap();
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciler_clears_unwanted_chains_and_reseeds_expired_leases() {
    let ns = TestNs::new("reconcile");
    let cfg = ns.config();
    let chains = Chains::connect(&cfg).await.unwrap();
    let wanted = Wanted::new(vec!["keep".into(), "lost".into()]);
    let recorder = Recorder::new(Duration::from_millis(200));
    let running = Running::start(cfg, recorder.clone(), wanted.clone());
    assert!(
        eventually(Duration::from_secs(5), || async {
            !recorder.records_of("keep").is_empty() && !recorder.records_of("lost").is_empty()
        })
        .await
    );
    // Not wanted: cleared by a later pass.
    assert!(
        chains
            .start("extra", Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            !chains.is_live("extra").await.unwrap()
        })
        .await
    );

    // Simulate a worker killed between claim and push: the chain moved to a seq no job carries,
    // and its lease ran out.
    wanted.0.lock().unwrap().retain(|id| id != "lost");
    wanted.0.lock().unwrap().push("ghost".into());
    let mut conn = ns.conn().await;
    let k = |s: &str| format!("{}:chain:{s}", ns.name);
    let _: () = redis::pipe()
        .hset(k("seq"), "ghost", 42)
        .hset(k("born"), "ghost", now_ms())
        .zadd(k("lease"), "ghost", now_ms() - 1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let ghost_lost = now_us();
    assert!(
        eventually(Duration::from_secs(5), || async {
            recorder
                .records_of("ghost")
                .iter()
                .any(|r| r.start_us > ghost_lost && r.tick.seq > 42)
        })
        .await,
        "expired chain not re-seeded"
    );
    assert!(!chains.is_live("lost").await.unwrap());
    assert!(chains.is_live("keep").await.unwrap());

    // The vacuum removes finished apalis jobs.
    running.shutdown().await.unwrap();
    chains.vacuum().await.unwrap();
    let stats = chains.stats().await.unwrap();
    assert_eq!(stats.finished_jobs, 0);
    let payloads: u64 = conn.hlen(format!("{}:data", ns.name)).await.unwrap();
    assert!(payloads < 10, "{payloads} job payloads left after vacuum");
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_tick_backs_off_instead_of_killing_the_chain() {
    use async_trait::async_trait;
    use campaign_workers::{ChainRunner, TickOutcome};
    struct Panics;
    #[async_trait]
    impl ChainRunner for Panics {
        async fn tick(&self, _id: &str) -> TickOutcome {
            panic!("bug in a tick");
        }
    }
    let ns = TestNs::new("panic");
    let cfg = ns.config();
    let chains = Chains::connect(&cfg).await.unwrap();
    chains.start("bad", Duration::ZERO).await.unwrap();
    let running = Running::start(cfg, Arc::new(Panics), Wanted::new(vec!["bad".into()]));
    assert!(
        eventually(Duration::from_secs(5), || async {
            running.metric("campaign_manager_chain_ticks_total", Some("continue")) >= 1.0
        })
        .await
    );
    let next = chains.upcoming(1, Some("bad")).await.unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].1 > now_ms() + 3000, "no back-off after a panic");
    running.shutdown().await.unwrap();
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_waiting_for_their_due_time_do_not_hold_running_slots() {
    let ns = TestNs::new("slots");
    // One tick at a time; ticks are handed over up to 150 ms early and wait. The window below
    // starts 500 ms after the workers: no wait for a remembered pause in this fresh namespace.
    let cfg = campaign_workers::SchedulerConfig {
        concurrency: 1,
        unknown_pause_grace: Duration::ZERO,
        ..ns.config()
    };
    let chains = Chains::connect(&cfg).await.unwrap();
    let all = ids("w", 20);
    let mut rng = seeded_rng("ticks_waiting_for_their_due_time_do_not_hold_running_slots");
    for id in &all {
        chains
            .start(id, Duration::from_millis(rng.random_range(0..200)))
            .await
            .unwrap();
    }
    let recorder = Recorder::new(Duration::from_millis(200));
    let running = Running::start(cfg, recorder.clone(), Wanted::new(all.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let from = now_us();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let to = now_us();
    running.shutdown().await.unwrap();
    let in_window = recorder
        .records()
        .iter()
        .filter(|r| r.start_us >= from && r.start_us < to)
        .count();
    // Ideal: 20 chains / 200 ms × 2 s = 200 ticks. If a waiting tick held the single running
    // slot, each tick would wait out the one before it: about 10 in the window. The bound sits
    // far from both, so a busy machine does not fail it while the property still does.
    assert!(in_window >= 50, "only {in_window} ticks in 2 s");
    assert_eq!(recorder.max_in_flight.load(Ordering::SeqCst), 1);
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_tick_loses_its_lease_at_its_deadline_and_the_chain_runs_again() {
    // The first tick never returns (say, a database socket that stopped answering). Past
    // `max_tick` its lease is no longer renewed, the reconciler re-seeds the chain, and a new
    // tick with a higher sequence number runs; every tick carries its deadline.
    use async_trait::async_trait;
    use campaign_workers::{ChainRunner, Tick, TickOutcome};
    use std::sync::Mutex;
    struct HangsOnce {
        first: Mutex<Option<u64>>,
        later: Mutex<Vec<Tick>>,
    }
    #[async_trait]
    impl ChainRunner for HangsOnce {
        async fn tick(&self, _id: &str) -> TickOutcome {
            unreachable!("the scheduler calls run_tick")
        }
        async fn run_tick(&self, tick: &Tick) -> TickOutcome {
            let hang = {
                let mut first = self.first.lock().unwrap();
                if first.is_none() {
                    *first = Some(tick.seq);
                    true
                } else {
                    false
                }
            };
            if hang {
                std::future::pending::<()>().await;
            }
            self.later.lock().unwrap().push(tick.clone());
            TickOutcome::Continue(Duration::from_millis(200))
        }
    }
    let ns = TestNs::new("hung");
    let cfg = campaign_workers::SchedulerConfig {
        max_tick: Duration::from_secs(2),
        shutdown_timeout: Duration::from_millis(500),
        ..ns.config()
    };
    let chains = Chains::connect(&cfg).await.unwrap();
    chains.start("stuck", Duration::ZERO).await.unwrap();
    let runner = Arc::new(HangsOnce {
        first: Mutex::new(None),
        later: Mutex::new(Vec::new()),
    });
    let running = Running::start(
        cfg.clone(),
        runner.clone(),
        Wanted::new(vec!["stuck".into()]),
    );
    assert!(
        eventually(Duration::from_secs(20), || async {
            !runner.later.lock().unwrap().is_empty()
        })
        .await,
        "the chain never ran again after its tick hung"
    );
    let first = runner.first.lock().unwrap().expect("the first tick ran");
    let next = runner.later.lock().unwrap()[0].clone();
    assert!(
        next.seq > first,
        "re-seeded with a higher seq: {} vs {first}",
        next.seq
    );
    assert_eq!(next.deadline_ms, next.claimed_at_ms + 2_000);
    running.shutdown().await.unwrap();
    ns.cleanup().await;
}

/// Passes of the scheduler's background loops so far, summed over loops (feeder steps, apalis
/// fetch polls, reconciliations, gauge reads).
fn loop_wakeups(running: &Running) -> f64 {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&running.registry.gather())
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("campaign_manager_chain_loop_wakeups_total{"))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_scheduler_sleeps_and_a_chain_started_then_still_ticks() {
    let ns = TestNs::new("idle");
    let cfg = ns.config();
    let chains = Chains::connect(&cfg).await.unwrap();
    let wanted = Wanted::new(Vec::new());
    let recorder = Recorder::new(Duration::from_millis(200));
    let running = Running::start(cfg, recorder.clone(), wanted.clone());
    // Started: the first reconciliation ran (it writes how many chains it found wanted).
    let conn = ns.conn().await;
    let wanted_key = format!("{}:chain:wanted", ns.name);
    assert!(
        eventually(Duration::from_secs(10), || {
            let mut conn = conn.clone();
            let key = wanted_key.clone();
            async move { conn.exists::<_, bool>(&key).await.unwrap_or(false) }
        })
        .await,
        "the reconciler never ran"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Nothing live, nothing wanted: the loops sleep. Polling on the busy intervals (feeder every
    // 10 ms, apalis fetch every 5 ms; `idle_poll_interval` = 10 ms) counts several hundred passes
    // in these 3 s (366 on a loaded 2-core box); sleeping until something is due (at most
    // `idle_poll_interval`, 1 s, per loop) counts about a dozen.
    let before = loop_wakeups(&running);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = loop_wakeups(&running) - before;
    assert!(
        idle.is_finite() && idle <= 40.0,
        "{idle} loop passes in 3 idle seconds"
    );

    // A campaign starts on the idle process: its chain ticks, and keeps ticking.
    wanted.0.lock().unwrap().push("late".to_owned());
    assert!(chains.start("late", Duration::ZERO).await.unwrap());
    assert!(
        eventually(Duration::from_secs(10), || async {
            recorder.records_of("late").len() >= 3
        })
        .await,
        "the chain started on an idle scheduler did not tick: {:?}",
        recorder.records_of("late")
    );
    running.shutdown().await.unwrap();
    ns.cleanup().await;
}
