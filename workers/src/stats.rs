//! Cluster-wide numbers for the operator CLI and the gauges, read straight from the chain state
//! and the apalis-redis queue keys in one pipeline. apalis' own inspection calls are not used:
//! on 1.0 several of them fail or return nothing (DESIGN §3).

use std::time::Duration;

use crate::SchedulerError;
use crate::keys::Keys;
use crate::redis_conn::RedisConn;

/// A snapshot of the scheduler in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Redis clock when the snapshot was taken, ms since the Unix epoch.
    pub now_ms: u64,
    /// Whether the cluster is paused.
    pub paused: bool,
    /// Live chains.
    pub live_chains: u64,
    /// Pending ticks (one per chain that is not running a tick).
    pub scheduled: u64,
    /// Pending ticks already due (or overdue).
    pub due_now: u64,
    /// Ticks running now (claimed, not finished).
    pub running: u64,
    /// Pending ticks not yet handed to apalis.
    pub in_feed: u64,
    /// Jobs inside apalis not yet fetched by a worker.
    pub queued_in_apalis: u64,
    /// Finished apalis jobs waiting for the vacuum.
    pub finished_jobs: u64,
    /// apalis jobs in its `failed` set (the handler never fails a job; expected 0).
    pub failed_jobs: u64,
    /// apalis jobs in its `dead` set (expected 0).
    pub dead_jobs: u64,
    /// The most overdue pending tick: chain id and how late it is.
    pub oldest_overdue: Option<(String, Duration)>,
    /// apalis workers registered on the queue.
    pub workers: Vec<WorkerBeat>,
    /// Ticks finished in the last 60 seconds.
    pub ticks_last_minute: u64,
}

/// One apalis worker and its last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerBeat {
    /// Worker name (unique per process).
    pub name: String,
    /// Last heartbeat, whole seconds since the Unix epoch (apalis' resolution).
    pub last_heartbeat_s: u64,
    /// Whether the heartbeat is recent enough for apalis to treat the worker as alive.
    pub alive: bool,
}

impl Stats {
    /// One snapshot of a namespace from the snapshots of its shards: counts added up, the
    /// workers of every shard listed, paused if any shard is, the most overdue tick of all.
    pub(crate) fn merge(parts: Vec<Stats>) -> Stats {
        let mut total = Stats {
            now_ms: 0,
            paused: false,
            live_chains: 0,
            scheduled: 0,
            due_now: 0,
            running: 0,
            in_feed: 0,
            queued_in_apalis: 0,
            finished_jobs: 0,
            failed_jobs: 0,
            dead_jobs: 0,
            oldest_overdue: None,
            workers: Vec::new(),
            ticks_last_minute: 0,
        };
        for part in parts {
            total.now_ms = total.now_ms.max(part.now_ms);
            total.paused |= part.paused;
            total.live_chains += part.live_chains;
            total.scheduled += part.scheduled;
            total.due_now += part.due_now;
            total.running += part.running;
            total.in_feed += part.in_feed;
            total.queued_in_apalis += part.queued_in_apalis;
            total.finished_jobs += part.finished_jobs;
            total.failed_jobs += part.failed_jobs;
            total.dead_jobs += part.dead_jobs;
            total.workers.extend(part.workers);
            total.ticks_last_minute += part.ticks_last_minute;
            let later = match (&total.oldest_overdue, &part.oldest_overdue) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some((_, a)), Some((_, b))) => b > a,
            };
            if later {
                total.oldest_overdue = part.oldest_overdue;
            }
        }
        total
    }
}

/// Read a [`Stats`] snapshot. `orphan_after` is apalis' heartbeat × missed heartbeats.
pub(crate) async fn read_stats(
    conn: &RedisConn,
    keys: &Keys,
    orphan_after: Duration,
) -> Result<Stats, SchedulerError> {
    let mut conn = conn.clone();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await?;
    let now_ms = secs * 1000 + micros / 1000;
    let tick_keys: Vec<String> = (0..60).map(|back| keys.ticks_at(secs - back)).collect();
    #[allow(clippy::type_complexity)]
    let (
        control_paused,
        live_chains,
        scheduled,
        due_now,
        running,
        in_feed,
        apalis_scheduled,
        apalis_active,
        finished_jobs,
        failed_jobs,
        dead_jobs,
    ): (
        Option<String>,
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
    ) = redis::pipe()
        .hget(&keys.control, "paused")
        .hlen(&keys.seq)
        .zcard(&keys.next)
        .zcount(&keys.next, "-inf", now_ms)
        .zcard(&keys.running)
        .zcard(&keys.feed)
        .zcard(&keys.apalis_scheduled)
        .llen(&keys.apalis_active)
        .scard(&keys.apalis_done)
        .scard(&keys.apalis_failed)
        .scard(&keys.apalis_dead)
        .query_async(&mut conn)
        .await?;
    #[allow(clippy::type_complexity)]
    let (oldest, workers, ticks): (Vec<(String, f64)>, Vec<(String, f64)>, Vec<Option<u64>>) =
        redis::pipe()
            .zrange_withscores(&keys.next, 0, 0)
            .zrange_withscores(&keys.apalis_workers, 0, -1)
            .mget(&tick_keys)
            .query_async(&mut conn)
            .await?;

    let oldest_overdue = oldest.into_iter().next().and_then(|(id, due)| {
        // Scores are whole milliseconds.
        let due = due as u64;
        (due < now_ms).then(|| (id, Duration::from_millis(now_ms - due)))
    });
    let orphan_s = orphan_after.as_secs();
    let workers = workers
        .into_iter()
        .map(|(name, beat)| {
            let last_heartbeat_s = beat as u64;
            WorkerBeat {
                name,
                last_heartbeat_s,
                alive: secs.saturating_sub(last_heartbeat_s) < orphan_s.max(1),
            }
        })
        .collect();
    Ok(Stats {
        now_ms,
        paused: control_paused.as_deref() == Some("1"),
        live_chains,
        scheduled,
        due_now,
        running,
        in_feed,
        queued_in_apalis: apalis_scheduled + apalis_active,
        finished_jobs,
        failed_jobs,
        dead_jobs,
        oldest_overdue,
        workers,
        ticks_last_minute: ticks.into_iter().flatten().sum(),
    })
}

/// Live chains and queue depth (pending ticks due now plus unfetched apalis jobs), for the gauges.
pub(crate) async fn read_gauges(
    conn: &RedisConn,
    keys: &Keys,
) -> Result<(u64, u64), SchedulerError> {
    let mut conn = conn.clone();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await?;
    let now_ms = secs * 1000 + micros / 1000;
    let (live, due_in_feed, scheduled, active): (u64, u64, u64, u64) = redis::pipe()
        .hlen(&keys.seq)
        .zcount(&keys.feed, "-inf", now_ms)
        .zcard(&keys.apalis_scheduled)
        .llen(&keys.apalis_active)
        .query_async(&mut conn)
        .await?;
    Ok((live, due_in_feed + scheduled + active))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(live: u64, paused: bool, overdue_ms: Option<u64>, worker: &str) -> Stats {
        Stats {
            now_ms: 1_000 + live,
            paused,
            live_chains: live,
            scheduled: live,
            due_now: 1,
            running: 2,
            in_feed: 3,
            queued_in_apalis: 4,
            finished_jobs: 5,
            failed_jobs: 0,
            dead_jobs: 1,
            oldest_overdue: overdue_ms.map(|ms| (format!("c-{ms}"), Duration::from_millis(ms))),
            workers: vec![WorkerBeat {
                name: worker.into(),
                last_heartbeat_s: 1,
                alive: true,
            }],
            ticks_last_minute: 10,
        }
    }

    #[test]
    fn shards_merge_into_one_snapshot() {
        let merged = Stats::merge(vec![
            part(10, false, Some(30), "w-s0"),
            part(20, true, None, "w-s1"),
            part(5, false, Some(70), "w-s2"),
        ]);
        assert_eq!(merged.now_ms, 1_020);
        assert!(merged.paused);
        assert_eq!((merged.live_chains, merged.scheduled), (35, 35));
        assert_eq!((merged.due_now, merged.running, merged.in_feed), (3, 6, 9));
        assert_eq!(
            (
                merged.queued_in_apalis,
                merged.finished_jobs,
                merged.dead_jobs
            ),
            (12, 15, 3)
        );
        assert_eq!(merged.ticks_last_minute, 30);
        assert_eq!(
            merged.oldest_overdue,
            Some(("c-70".into(), Duration::from_millis(70)))
        );
        let names: Vec<&str> = merged.workers.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["w-s0", "w-s1", "w-s2"]);
        assert!(!Stats::merge(vec![part(1, false, None, "w")]).paused);
    }
}
