//! apalis-redis' own Redis layout, as this crate reads it behind apalis' back (`src/keys.rs`:
//! the feeder counts `{q}:scheduled` and `{q}:active`, the vacuum deletes `{q}:data` fields and
//! `{q}:meta:{id}` hashes of ids in `{q}:done`, `queue retry-dead` moves `{q}:dead` ids back to
//! `{q}:active` and pokes `{q}:signal`, stats read `{q}:workers`, and a stopping worker retires
//! `{q}:inflight:{worker}` and `{q}:workers:metadata:{worker}`).
//!
//! apalis and apalis-redis are pinned to an exact version in the workspace Cargo.toml for this
//! reason. This test pushes jobs through apalis-redis' own API into a fresh namespace, runs an
//! apalis worker configured as `src/workers.rs` configures it, and checks every key name, key
//! type and field the scripts rely on. If an upgrade changes any of them, it fails here first.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apalis::prelude::{
    BackendExt, BoxDynError, Data, TaskBuilder, WorkerBuilder, WorkerBuilderExt,
};
use apalis_redis::{ConnectionManager, RedisStorage, RedisTask};
use common::{REDIS_URL, TestNs};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

/// Shaped like the scheduler's tick job (id, seq, due time).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Job {
    id: String,
    seq: u64,
    due_at_ms: u64,
}

/// What the handler shares with the test: it reports each job it starts, holds job `seq = 1`
/// until released, and fails job `seq = 2`.
struct Probe {
    started: mpsc::UnboundedSender<u64>,
    release: Notify,
}

async fn handle(job: Job, probe: Data<Arc<Probe>>) -> Result<(), BoxDynError> {
    let _ = probe.started.send(job.seq);
    match job.seq {
        1 => {
            probe.release.notified().await;
            Ok(())
        }
        2 => Err("this job fails on purpose".into()),
        _ => Ok(()),
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

async fn key_type(conn: &mut ConnectionManager, key: &str) -> String {
    redis::cmd("TYPE")
        .arg(key)
        .query_async(conn)
        .await
        .expect("TYPE")
}

/// Waits until `check` holds (polling Redis), or fails naming `what`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The id of the job with `seq`, found through the payload hash (apalis picks the ids).
async fn id_of(conn: &mut ConnectionManager, data: &str, seq: u64) -> String {
    let all: Vec<(String, Vec<u8>)> = conn.hgetall(data).await.expect("HGETALL data");
    all.into_iter()
        .find(|(_, payload)| serde_json::from_slice::<Job>(payload).is_ok_and(|j| j.seq == seq))
        .map(|(id, _)| id)
        .unwrap_or_else(|| panic!("no payload for seq {seq} in {data}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_redis_keeps_the_layout_the_scheduler_reads() {
    let ns = TestNs::new("layout");
    let q = ns.name.clone();
    // As src/workers.rs configures the tick queue.
    let config = apalis_redis::Config::default()
        .queue(&q)
        .heartbeat_interval(Duration::from_secs(1))
        .missed_heartbeats(3)
        .lock_tasks(false)
        .persist_results(true)
        .emit_events(false);

    // 1. Key names (src/keys.rs builds the same strings from the namespace).
    let names = [
        (config.scheduled_jobs_set(), "scheduled"),
        (config.active_jobs_list(), "active"),
        (config.done_jobs_set(), "done"),
        (config.dead_jobs_set(), "dead"),
        (config.failed_jobs_set(), "failed"),
        (config.job_data_hash(), "data"),
        (config.job_meta_hash(), "meta"),
        (config.workers_set(), "workers"),
        (config.signal_list(), "signal"),
        (config.inflight_jobs_set(), "inflight"),
    ];
    for (actual, suffix) in &names {
        assert_eq!(
            actual,
            &format!("{q}:{suffix}"),
            "apalis-redis renamed its {suffix} key"
        );
    }

    let client = redis::Client::open(REDIS_URL).expect("redis url");
    let mut conn = ConnectionManager::new(client)
        .await
        .expect("connect to Redis");

    // 2. A push, exactly as the feeder pushes (JSON payload, due "now"), lands in the scheduled
    //    set with a whole-second score, its payload in the data hash and a Pending metadata hash.
    let job = |seq: u64| Job {
        id: format!("chain-{seq}"),
        seq,
        due_at_ms: 0,
    };
    let payload = |seq: u64| serde_json::to_vec(&job(seq)).expect("encode job");
    let before = now_s();
    let tasks: Vec<RedisTask> = vec![
        TaskBuilder::new(payload(1)).build(),
        // Its last attempt: when it fails it goes to the dead set.
        TaskBuilder::new(payload(2)).attempt(25).build(),
    ];
    let (enqueued, scheduled) = apalis_redis::queries::push_tasks(&mut conn, &config, &tasks)
        .await
        .expect("push_tasks");
    assert_eq!(
        (enqueued, scheduled),
        (0, 2),
        "every push goes through the scheduled set"
    );
    let data = format!("{q}:data");
    assert_eq!(key_type(&mut conn, &data).await, "hash");
    let id1 = id_of(&mut conn, &data, 1).await;
    let id2 = id_of(&mut conn, &data, 2).await;
    let stored: Vec<u8> = conn.hget(&data, &id1).await.expect("HGET data");
    assert_eq!(stored, payload(1), "the payload is stored as pushed");

    let scheduled_key = format!("{q}:scheduled");
    assert_eq!(key_type(&mut conn, &scheduled_key).await, "zset");
    let entries: Vec<(String, f64)> = conn
        .zrange_withscores(&scheduled_key, 0, -1)
        .await
        .expect("ZRANGE scheduled");
    assert_eq!(entries.len(), 2);
    for (id, score) in &entries {
        assert!(
            score.fract() == 0.0,
            "{id}: run time {score} is not whole seconds"
        );
        let s = *score as u64;
        assert!(
            s >= before && s <= now_s() + 1,
            "{id}: run time {s} is not Unix seconds"
        );
    }

    for (id, attempts) in [(&id1, "0"), (&id2, "25")] {
        let meta = format!("{q}:meta:{id}");
        assert_eq!(key_type(&mut conn, &meta).await, "hash");
        let (status, tries): (String, String) = redis::pipe()
            .hget(&meta, "status")
            .hget(&meta, "attempts")
            .query_async(&mut conn)
            .await
            .expect("HGET meta");
        assert_eq!((status.as_str(), tries.as_str()), ("Pending", attempts));
    }

    // 3. A worker configured as ours: it registers in the workers set (whole-second heartbeat)
    //    with a metadata hash, and fetched jobs sit in its in-flight set while they run.
    let worker_name = format!("{q}-worker");
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let probe = Arc::new(Probe {
        started: started_tx,
        release: Notify::new(),
    });
    let storage = RedisStorage::<Job, ConnectionManager>::new(conn.clone())
        .with_config(config.clone())
        .poll_with_interval(Duration::from_millis(5));
    let worker = WorkerBuilder::new(worker_name.clone())
        .backend(storage)
        .data(probe.clone())
        .concurrency(4)
        .build(handle);
    let stop = Arc::new(Notify::new());
    let stop_signal = stop.clone();
    let running = tokio::spawn(async move {
        worker
            .run_until(async move {
                stop_signal.notified().await;
                Ok::<(), std::io::Error>(())
            })
            .await
    });

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let seq = tokio::time::timeout(Duration::from_secs(20), started.recv())
            .await
            .expect("the worker never ran the pushed jobs")
            .expect("handler channel");
        seen.push(seq);
    }
    let workers_key = format!("{q}:workers");
    assert_eq!(key_type(&mut conn, &workers_key).await, "zset");
    let beat: Option<f64> = conn
        .zscore(&workers_key, &worker_name)
        .await
        .expect("ZSCORE");
    let beat = beat.expect("the worker is not in the workers set");
    assert!(
        beat.fract() == 0.0 && (beat as u64).abs_diff(now_s()) <= 5,
        "heartbeat {beat}"
    );
    let worker_meta = format!("{q}:workers:metadata:{worker_name}");
    assert_eq!(key_type(&mut conn, &worker_meta).await, "hash");
    let global: Option<f64> = conn
        .zscore("core:apalis:queues:list", &workers_key)
        .await
        .expect("ZSCORE queues list");
    assert!(
        global.is_some(),
        "the queue is not listed in core:apalis:queues:list"
    );

    let inflight = format!("{q}:inflight:{worker_name}");
    assert_eq!(key_type(&mut conn, &inflight).await, "set");
    let held: bool = conn.sismember(&inflight, &id1).await.expect("SISMEMBER");
    assert!(held, "a running job is not in {inflight}");
    let active_len: usize = conn.llen(format!("{q}:active")).await.expect("LLEN");
    assert_eq!(active_len, 0, "fetched jobs left the active list");

    // 4. The failing job on its last attempt goes to the dead set, its payload and metadata
    //    kept (queue retry-dead needs both); the finished one goes to the done set.
    let dead = format!("{q}:dead");
    eventually("the failed job in the dead set", || {
        let mut c = conn.clone();
        let (dead, id2) = (dead.clone(), id2.clone());
        async move { c.sismember(&dead, &id2).await.unwrap_or(false) }
    })
    .await;
    assert_eq!(key_type(&mut conn, &dead).await, "set");
    let kept: bool = conn.hexists(&data, &id2).await.expect("HEXISTS");
    assert!(kept, "a dead job's payload is gone");

    probe.release.notify_one();
    let done = format!("{q}:done");
    eventually("the finished job in the done set", || {
        let mut c = conn.clone();
        let (done, id1) = (done.clone(), id1.clone());
        async move { c.sismember(&done, &id1).await.unwrap_or(false) }
    })
    .await;
    assert_eq!(key_type(&mut conn, &done).await, "set");
    let status: String = conn
        .hget(format!("{q}:meta:{id1}"), "status")
        .await
        .expect("HGET status");
    assert_eq!(status, "Done");
    let held: bool = conn.sismember(&inflight, &id1).await.expect("SISMEMBER");
    assert!(!held, "a finished job stayed in flight");

    stop.notify_one();
    let _ = tokio::time::timeout(Duration::from_secs(20), running).await;
    ns.cleanup().await;
}
