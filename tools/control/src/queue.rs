//! The `queue` commands: inspect and steer the tick chains of one scheduler namespace in Redis.
//!
//! Everything goes through [`Chains`], the handle `campaign-workers` offers any process (stats,
//! upcoming ticks, pause/resume, stop one chain, purge pending ticks, retry dead jobs,
//! vacuum), so the scheduler's key layout stays private to that crate. `--durable` pauses and
//! `resume` also write the durable switch in MySQL ([`Handover`]); a durable pause writes MySQL
//! before Redis and `resume` clears MySQL before Redis, so a command cut short half-way always
//! leaves the cluster paused (run it again).

use std::time::{Duration, Instant};

use campaign_workers::{Chains, SchedulerError, Stats};
use chrono::{DateTime, SecondsFormat, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::cli::{Cli, QueueCmd};
use super::handover::Handover;
use super::output::{Output, Table};
use super::{Failure, PROBE_TIMEOUT, confirm, probe_tcp};

/// A connected `queue` command runner.
pub struct Queue {
    chains: Chains,
    addr: String,
}

fn ms_to_rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// `1.234s`, `250ms`, `3m05s` — short human durations.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.3}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// The JSON form of a [`Stats`] snapshot, with ticks/s added.
pub fn stats_json(s: &Stats) -> Value {
    json!({
        "now": ms_to_rfc3339(s.now_ms),
        "paused": s.paused,
        "live_chains": s.live_chains,
        "ticks_due_now": s.due_now,
        "ticks_scheduled": s.scheduled,
        "ticks_running": s.running,
        "ticks_in_feed": s.in_feed,
        "jobs_queued_in_apalis": s.queued_in_apalis,
        "jobs_finished_unvacuumed": s.finished_jobs,
        "jobs_failed": s.failed_jobs,
        "jobs_dead": s.dead_jobs,
        "oldest_overdue": s.oldest_overdue.as_ref().map(|(id, late)| json!({
            "campaign": id,
            "late_ms": u64::try_from(late.as_millis()).unwrap_or(u64::MAX),
        })),
        "workers": s.workers.iter().map(|w| json!({
            "name": w.name,
            "alive": w.alive,
            "last_heartbeat": ms_to_rfc3339(w.last_heartbeat_s.saturating_mul(1000)),
            "heartbeat_age_s": (s.now_ms / 1000).saturating_sub(w.last_heartbeat_s),
        })).collect::<Vec<_>>(),
        "workers_alive": s.workers.iter().filter(|w| w.alive).count(),
        "ticks_last_minute": s.ticks_last_minute,
        "ticks_per_second": (s.ticks_last_minute as f64 / 60.0 * 100.0).round() / 100.0,
    })
}

/// The table form of a [`Stats`] snapshot.
pub fn stats_human(s: &Stats) -> String {
    let alive = s.workers.iter().filter(|w| w.alive).count();
    let mut t = Table::new(["METRIC", "VALUE"]);
    t.row(["paused", if s.paused { "yes" } else { "no" }]);
    t.row(["live chains".into(), s.live_chains.to_string()]);
    t.row(["ticks due now".into(), s.due_now.to_string()]);
    t.row(["ticks scheduled".into(), s.scheduled.to_string()]);
    t.row(["ticks running".into(), s.running.to_string()]);
    t.row(["  not yet handed to apalis".into(), s.in_feed.to_string()]);
    t.row(["  queued in apalis".into(), s.queued_in_apalis.to_string()]);
    t.row(["jobs failed".into(), s.failed_jobs.to_string()]);
    t.row(["jobs dead".into(), s.dead_jobs.to_string()]);
    t.row([
        "finished jobs (to vacuum)".into(),
        s.finished_jobs.to_string(),
    ]);
    t.row([
        "oldest overdue tick".into(),
        match &s.oldest_overdue {
            Some((id, late)) => format!("{id} (late {})", human_duration(*late)),
            None => "none".into(),
        },
    ]);
    t.row([
        "ticks last minute".into(),
        format!(
            "{} ({:.2}/s)",
            s.ticks_last_minute,
            s.ticks_last_minute as f64 / 60.0
        ),
    ]);
    t.row([
        "workers alive".into(),
        format!("{alive} of {} registered", s.workers.len()),
    ]);
    let mut out = t.render();
    if !s.workers.is_empty() {
        out.push('\n');
        let mut w = Table::new(["WORKER", "ALIVE", "LAST HEARTBEAT", "AGO"]);
        for b in &s.workers {
            w.row([
                b.name.clone(),
                if b.alive { "yes" } else { "no" }.into(),
                ms_to_rfc3339(b.last_heartbeat_s.saturating_mul(1000)),
                format!("{}s", (s.now_ms / 1000).saturating_sub(b.last_heartbeat_s)),
            ]);
        }
        out.push_str(&w.render());
    }
    out
}

impl Queue {
    /// Connects to the Redis (or Redis Cluster) named by the command line for its tick
    /// namespace and shards.
    pub async fn connect(cli: &Cli) -> Result<Queue, Failure> {
        if cli.tick_namespace.is_empty() {
            return Err(Failure::usage(
                "--tick_namespace (TICK_NAMESPACE) must not be empty",
            ));
        }
        let cfg = cli
            .infra
            .scheduler(&cli.tick_namespace, cli.tick_shards.into());
        let seeds = cli.infra.tick_cluster_seeds();
        let (addr, probe, hint) = match seeds.first() {
            None => (
                cli.infra.redis_address.clone(),
                cli.infra.redis_address.clone(),
                "is redis-server running? (--redis_address / REDIS_ADDRESS)",
            ),
            Some(first) => (
                format!("cluster {}", seeds.join(",")),
                (*first).to_owned(),
                "is the Redis Cluster up? (--tick_redis_cluster / TICK_REDIS_CLUSTER)",
            ),
        };
        probe_tcp(&probe, "Redis", hint).await?;
        let check = "check --redis_password / REDIS_PASSWORD and --redis_database / REDIS_DATABASE";
        let chains = match tokio::time::timeout(PROBE_TIMEOUT * 2, Chains::connect(&cfg)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(Failure::new(format!(
                    "cannot open the tick scheduler on Redis at {addr}: {e} — {check}"
                )));
            }
            Err(_) => {
                return Err(Failure::new(format!(
                    "cannot open the tick scheduler on Redis at {addr}: no answer — {check}"
                )));
            }
        };
        Ok(Queue { chains, addr })
    }

    fn redis_failed(&self, what: &str, e: impl std::fmt::Display) -> Failure {
        Failure::new(format!(
            "{what} failed on Redis at {}: {e} — is redis-server healthy? (REDIS_ADDRESS)",
            self.addr
        ))
    }

    fn sched(&self, what: &'static str) -> impl Fn(SchedulerError) -> Failure + '_ {
        move |e| self.redis_failed(what, e)
    }

    /// Runs a `queue` subcommand. `--json` suppresses the progress bar of `drain`.
    pub async fn run(self, cli: &Cli, cmd: &QueueCmd) -> Result<Output, Failure> {
        let json = cli.json;
        match cmd {
            QueueCmd::Stats { watch: false } => self.stats().await,
            QueueCmd::Stats { watch: true } => super::watch::watch(json, || self.stats()).await,
            QueueCmd::List { campaign, limit } => self.list(campaign.as_ref(), *limit).await,
            QueueCmd::Pause { durable, reason } => self.pause(cli, *durable, reason).await,
            QueueCmd::Drain {
                timeout,
                purge,
                yes,
                durable,
                reason,
            } => {
                if *purge {
                    confirm(
                        &format!(
                            "Drain and drop every pending tick in namespace {}?",
                            self.chains.namespace()
                        ),
                        *yes,
                    )?;
                }
                if *durable {
                    Handover::connect(cli)
                        .await?
                        .set_switch(true, reason)
                        .await?;
                }
                self.drain(*timeout, *purge, json).await
            }
            QueueCmd::Resume { yes } => self.resume(cli, *yes).await,
            QueueCmd::Purge { campaign, yes } => {
                let id = campaign.to_string();
                confirm(&format!("End the tick chain of campaign {id}?"), *yes)?;
                let existed = self
                    .chains
                    .stop(&id)
                    .await
                    .map_err(self.sched("ending the chain"))?;
                if !existed {
                    return Err(Failure::new(format!(
                        "no live chain for campaign {id} in namespace {} (check the id and \
                         --tick_namespace / TICK_NAMESPACE; `queue list` shows live chains)",
                        self.chains.namespace()
                    )));
                }
                Ok(Output {
                    json: json!({ "campaign": id, "chain_ended": true }),
                    human: format!(
                        "ended the chain of campaign {id}. If the campaign still has execute=run, \
                         the reconciler starts a new chain within seconds; use `campaign stop` to \
                         stop the campaign itself.\n"
                    ),
                })
            }
            QueueCmd::RetryDead => {
                let (requeued, dropped) = self
                    .chains
                    .retry_dead()
                    .await
                    .map_err(|e| self.redis_failed("requeueing dead jobs", e))?;
                Ok(Output {
                    json: json!({ "requeued": requeued, "dropped_without_payload": dropped }),
                    human: format!(
                        "requeued {requeued} dead/failed tick jobs; dropped {dropped} without payload\n"
                    ),
                })
            }
            QueueCmd::Vacuum => {
                let n = self
                    .chains
                    .vacuum()
                    .await
                    .map_err(self.sched("vacuuming"))?;
                Ok(Output {
                    json: json!({ "removed_finished_jobs": n }),
                    human: format!("removed {n} finished tick jobs\n"),
                })
            }
        }
    }

    /// `queue stats` (also each refresh of `--watch`).
    async fn stats(&self) -> Result<Output, Failure> {
        let s = self
            .chains
            .stats()
            .await
            .map_err(self.sched("reading stats"))?;
        Ok(Output {
            json: stats_json(&s),
            human: stats_human(&s),
        })
    }

    async fn now_ms(&self) -> Result<u64, Failure> {
        self.chains
            .now_ms()
            .await
            .map_err(self.sched("reading the clock"))
    }

    async fn list(&self, campaign: Option<&uuid::Uuid>, limit: usize) -> Result<Output, Failure> {
        let id = campaign.map(ToString::to_string);
        let ticks = self
            .chains
            .upcoming(limit, id.as_deref())
            .await
            .map_err(self.sched("listing upcoming ticks"))?;
        let now = self.now_ms().await?;
        let mut t = Table::new(["CAMPAIGN", "DUE", "IN", "SEQ"]);
        let mut rows = Vec::new();
        for (id, due, seq) in &ticks {
            let rel = if *due >= now {
                format!("in {}", human_duration(Duration::from_millis(due - now)))
            } else {
                format!("late {}", human_duration(Duration::from_millis(now - due)))
            };
            t.row([id.clone(), ms_to_rfc3339(*due), rel, seq.to_string()]);
            rows.push(json!({
                "campaign": id,
                "due": ms_to_rfc3339(*due),
                "due_ms": due,
                "due_in_ms": i128::from(*due) - i128::from(now),
                "seq": seq,
            }));
        }
        let mut human = t.render();
        human.push_str(&format!("({} ticks)\n", t.len()));
        Ok(Output {
            json: Value::Array(rows),
            human,
        })
    }

    /// `queue pause [--durable]`: MySQL first, then Redis (see the module doc).
    async fn pause(&self, cli: &Cli, durable: bool, reason: &str) -> Result<Output, Failure> {
        if durable {
            Handover::connect(cli)
                .await?
                .set_switch(true, reason)
                .await?;
        }
        self.chains.pause().await.map_err(self.sched("pausing"))?;
        let running = self
            .chains
            .running_ticks()
            .await
            .map_err(self.sched("counting running ticks"))?;
        let how = if durable {
            "paused in Redis and switched off in MySQL (survives a loss of Redis)"
        } else {
            "paused in Redis"
        };
        Ok(Output {
            json: json!({
                "paused": true,
                "durable": durable,
                "namespace": self.chains.namespace(),
                "ticks_running": running,
            }),
            human: format!(
                "namespace {}: {how}; no new tick starts, {running} still running (`queue drain` \
                 waits for them); `queue resume` undoes it\n",
                self.chains.namespace()
            ),
        })
    }

    /// `queue resume`: asks, then clears the durable switch and the Go loop kicks in MySQL, then
    /// the Redis pause (see the module doc).
    async fn resume(&self, cli: &Cli, yes: bool) -> Result<Output, Failure> {
        let handover = Handover::connect(cli).await?;
        let switch = handover.switch_state().await?;
        let kicks = handover
            .kicks()
            .all()
            .await
            .map_err(|e| handover.failed("reading the recorded Go loop kicks", e))?;
        let before = self
            .chains
            .stats()
            .await
            .map_err(self.sched("reading stats"))?;
        let durable = switch.as_ref().filter(|s| s.paused).map(|s| {
            format!(
                "switched off durably since {} ({})",
                s.since.to_rfc3339_opts(SecondsFormat::Secs, true),
                if s.reason.is_empty() {
                    "no reason given"
                } else {
                    s.reason.as_str()
                }
            )
        });
        confirm(
            &format!(
                "Resume ticking in namespace {}? It is {}{}; every running campaign dials again \
                 ({} live chains). No Go campaign-manager pod may run any more{}.",
                self.chains.namespace(),
                if before.paused {
                    "paused in Redis"
                } else {
                    "not paused in Redis"
                },
                durable
                    .as_deref()
                    .map(|d| format!(", {d}"))
                    .unwrap_or_default(),
                before.live_chains,
                if kicks.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({} Go loops were started by `campaign execute`)",
                        kicks.len()
                    )
                }
            ),
            yes,
        )?;
        if switch.is_some_and(|s| s.paused) {
            handover.set_switch(false, "").await?;
        }
        let forgotten = handover
            .kicks()
            .clear()
            .await
            .map_err(|e| handover.failed("forgetting the Go loop kicks", e))?;
        self.chains.resume().await.map_err(self.sched("resuming"))?;
        let s = self
            .chains
            .stats()
            .await
            .map_err(self.sched("reading stats"))?;
        let human = format!(
            "resumed: {} live chains, {} ticks pending ({} due now), {} running\n",
            s.live_chains, s.scheduled, s.due_now, s.running
        );
        Ok(Output {
            json: json!({
                "paused": false,
                "durable_switch_cleared": durable.is_some(),
                "go_loop_kicks_forgotten": forgotten,
                "live_chains": s.live_chains,
                "ticks_scheduled": s.scheduled,
                "ticks_due_now": s.due_now,
                "ticks_running": s.running,
            }),
            human,
        })
    }

    async fn drain(&self, timeout: Duration, purge: bool, json: bool) -> Result<Output, Failure> {
        self.chains.pause().await.map_err(self.sched("pausing"))?;
        let started = Instant::now();
        let first = self
            .chains
            .running_ticks()
            .await
            .map_err(self.sched("counting running ticks"))?;
        let bar = if json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(first)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} draining [{bar:30}] {pos}/{len} finished, {msg} ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut most = first;
        loop {
            let running = self
                .chains
                .running_ticks()
                .await
                .map_err(self.sched("counting running ticks"))?;
            most = most.max(running);
            bar.set_length(most);
            bar.set_position(most - running);
            bar.set_message(format!("{running} running"));
            if running == 0 {
                break;
            }
            if started.elapsed() >= timeout {
                bar.abandon();
                return Err(Failure::new(format!(
                    "drain timed out after {}: {running} ticks still running. The cluster stays \
                     paused (no new tick starts); run `queue drain` again to keep waiting or \
                     `queue resume` to undo",
                    human_duration(timeout)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bar.finish_and_clear();
        let purged = if purge {
            Some(
                self.chains
                    .purge_pending()
                    .await
                    .map_err(|e| self.redis_failed("purging pending ticks", e))?,
            )
        } else {
            None
        };
        let s = self
            .chains
            .stats()
            .await
            .map_err(self.sched("reading stats"))?;
        let waited = started.elapsed();
        let mut human = format!(
            "drained in {}: 0 ticks running, {} live chains kept, cluster paused (run `queue resume` to continue)\n",
            human_duration(waited),
            s.live_chains
        );
        if let Some(n) = purged {
            human.push_str(&format!(
                "purged {n} pending ticks; the reconciler re-seeds the chains of running campaigns\n"
            ));
        }
        Ok(Output {
            json: json!({
                "paused": true,
                "ticks_running": 0,
                "waited_ms": u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                "live_chains": s.live_chains,
                "purged_pending_ticks": purged,
            }),
            human,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campaign_workers::WorkerBeat;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(human_duration(Duration::from_millis(1234)), "1.234s");
        assert_eq!(human_duration(Duration::from_secs(185)), "3m05s");
    }

    #[test]
    fn stats_render() {
        let s = Stats {
            now_ms: 1_764_072_000_000,
            paused: true,
            live_chains: 3,
            scheduled: 2,
            due_now: 1,
            running: 1,
            in_feed: 1,
            queued_in_apalis: 1,
            finished_jobs: 7,
            failed_jobs: 0,
            dead_jobs: 0,
            oldest_overdue: Some(("c1".into(), Duration::from_millis(1500))),
            workers: vec![WorkerBeat {
                name: "w1".into(),
                last_heartbeat_s: 1_764_071_998,
                alive: true,
            }],
            ticks_last_minute: 120,
        };
        let j = stats_json(&s);
        assert_eq!(j["ticks_per_second"], json!(2.0));
        assert_eq!(j["oldest_overdue"]["late_ms"], json!(1500));
        assert_eq!(j["workers"][0]["heartbeat_age_s"], json!(2));
        let h = stats_human(&s);
        assert!(h.contains("c1 (late 1.500s)"), "{h}");
        assert!(h.contains("120 (2.00/s)"), "{h}");
        assert!(h.contains("w1"), "{h}");
    }
}
