//! The scheduler on a Redis Cluster: a local 3-master cluster of `redis-server` child processes
//! that each test starts, owns and kills (never the shared Redis on :6379).
//!
//! What is checked (README "Redis Cluster" has the why):
//! * the chain state of a shard (`{namespace:i}`) keeps every key in one slot, so its multi-key
//!   scripts run on a cluster, and shards spread over the nodes; a dead master stops only the
//!   shards on it, and they work again once it is back;
//! * apalis-redis 1.0 runs a queue only on the node that holds its global key
//!   `core:apalis:queues:list`: there chains tick with every guarantee (no duplicate, none early,
//!   re-seeded after their keys are wiped, stop); on another node the apalis worker cannot
//!   register, so nothing ticks.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::TaskBuilder;
use campaign_workers::{Chains, SchedulerConfig};
use common::{Recorder, Running, Wanted, eventually, now_ms, now_us};

/// A local cluster of three masters, killed and deleted on drop.
struct LocalCluster {
    dir: PathBuf,
    ports: Vec<u16>,
    children: Vec<Option<Child>>,
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl LocalCluster {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("cw-cluster-{:08x}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = Self {
            dir,
            ports: Vec::new(),
            children: Vec::new(),
        };
        while cluster.ports.len() < 3 {
            // The cluster bus listens on port + 10000.
            let port: u16 = rand::random_range(30000..40000);
            if cluster.ports.contains(&port) || !port_is_free(port) || !port_is_free(port + 10000) {
                continue;
            }
            let mut child = cluster.spawn(port);
            if cluster.wait_ready(port, &mut child) {
                cluster.ports.push(port);
                cluster.children.push(Some(child));
            } else {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(nodes.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let created = Command::new("redis-cli")
            .args(&args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(created.success(), "redis-cli --cluster create failed");
        for &port in &cluster.ports.clone() {
            assert!(cluster.wait_cluster_ok(port), "cluster not ok on {port}");
        }
        cluster
    }

    fn spawn(&self, port: u16) -> Child {
        let conf = self.dir.join(format!("nodes-{port}.conf"));
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-config-file"])
            .arg(&conf)
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed")
    }

    fn wait_ready(&self, port: u16, child: &mut Child) -> bool {
        for _ in 0..100 {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if redis_cli(&["-p", &port.to_string(), "ping"]) == "PONG" {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn wait_cluster_ok(&self, port: u16) -> bool {
        for _ in 0..200 {
            if redis_cli(&["-p", &port.to_string(), "cluster", "info"]).contains("cluster_state:ok")
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn url(port: u16) -> String {
        format!("redis://127.0.0.1:{port}")
    }

    fn slot(&self, key: &str) -> u16 {
        redis_cli(&["-p", &self.ports[0].to_string(), "cluster", "keyslot", key])
            .parse()
            .unwrap()
    }

    /// The port of the master serving the slot of `key`.
    fn node_of(&self, key: &str) -> u16 {
        let slot = self.slot(key);
        let nodes = redis_cli(&["-p", &self.ports[0].to_string(), "cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port: u16 = fields[1]
                .split(['@', ':'])
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap();
            for range in &fields[8..] {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>())
                    && (lo..=hi).contains(&slot)
                {
                    return port;
                }
            }
        }
        panic!("no node serves slot {slot}");
    }

    fn kill(&mut self, port: u16) {
        let i = self.ports.iter().position(|p| *p == port).unwrap();
        if let Some(mut child) = self.children[i].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Start a killed node again: it rejoins with its slots (its nodes file), but without data.
    fn restart(&mut self, port: u16) {
        let i = self.ports.iter().position(|p| *p == port).unwrap();
        let mut child = self.spawn(port);
        assert!(self.wait_ready(port, &mut child), "restart of {port}");
        self.children[i] = Some(child);
        assert!(self.wait_cluster_ok(port), "cluster not ok after restart");
    }

    /// Every key on node `port`.
    fn keys_on(&self, port: u16) -> Vec<String> {
        redis_cli(&["-p", &port.to_string(), "--scan"])
            .lines()
            .map(str::to_owned)
            .filter(|k| !k.is_empty())
            .collect()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Ids of chains that belong to `shard`.
fn ids_of_shard(cfg: &SchedulerConfig, shard: usize, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("campaign-{i}"))
        .filter(|id| cfg.shard_of(id) == shard)
        .take(n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_keys_stay_in_one_slot_and_a_dead_master_stops_only_its_shards() {
    let mut cluster = LocalCluster::start();
    // Three shards on at least two different nodes (random namespaces until they are).
    let (cfg, homes) = loop {
        let cfg = SchedulerConfig {
            shards: 3,
            ..SchedulerConfig::new("", format!("cw-cluster-{:08x}", rand::random::<u32>()))
        };
        let homes: Vec<u16> = cfg
            .shard_configs()
            .iter()
            .map(|s| cluster.node_of(&s.namespace))
            .collect();
        if homes.iter().collect::<HashSet<_>>().len() >= 2 {
            break (cfg, homes);
        }
    };
    let mut shards = Vec::new();
    for (i, shard) in cfg.shard_configs().into_iter().enumerate() {
        let shard = SchedulerConfig {
            redis_url: LocalCluster::url(homes[i]),
            ..shard
        };
        let chains = Chains::connect(&shard).await.unwrap();
        for id in ids_of_shard(&cfg, i, 10) {
            assert!(chains.start(&id, Duration::from_secs(60)).await.unwrap());
            assert!(chains.is_live(&id).await.unwrap());
        }
        chains.pause().await.unwrap();
        chains.resume().await.unwrap();
        shards.push((shard.namespace.clone(), chains));
    }
    // Every key of a shard is in the slot of its hash tag, on its node.
    for (i, (namespace, _)) in shards.iter().enumerate() {
        let slot = cluster.slot(namespace);
        let keys: Vec<String> = cluster
            .keys_on(homes[i])
            .into_iter()
            .filter(|k| k.starts_with(namespace.as_str()))
            .collect();
        assert!(keys.len() >= 4, "{keys:?}");
        for key in keys {
            assert_eq!(cluster.slot(&key), slot, "{key}");
        }
    }

    // Kill the node of shard 0: its shards fail, the shards on other nodes go on.
    let victim = homes[0];
    cluster.kill(victim);
    for (i, (_, chains)) in shards.iter().enumerate() {
        let id = format!("late-{i}");
        let started = chains.start(&id, Duration::from_secs(60)).await;
        if homes[i] == victim {
            assert!(started.is_err(), "shard {i} lives on the dead node");
        } else {
            assert!(started.unwrap(), "shard {i} must not notice");
            assert!(chains.stop(&id).await.unwrap());
        }
    }
    // Back (without its data, no persistence here): the same handles work again.
    cluster.restart(victim);
    let (_, chains) = &shards[0];
    assert!(
        eventually(Duration::from_secs(10), || async {
            chains
                .start("after-restart", Duration::from_secs(60))
                .await
                .is_ok()
        })
        .await
    );
    assert!(chains.is_live("after-restart").await.unwrap());
}

/// No tick ran twice or early, and consecutive ticks of one chain are not closer than
/// `min_gap_us`, except across a wipe at `wiped_at_us` (a re-seeded chain may start its first
/// tick any time after the wipe; the chain before it was gone).
fn assert_one_chain_each(records: &[common::Record], min_gap_us: u64, wiped_at_us: u64) {
    let mut by_chain: BTreeMap<&str, Vec<&common::Record>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for r in records {
        assert!(
            seen.insert((r.tick.id.clone(), r.tick.seq)),
            "tick {} {} ran twice",
            r.tick.id,
            r.tick.seq
        );
        assert!(
            r.start_us >= r.tick.due_at_ms * 1000,
            "tick {} {} started early",
            r.tick.id,
            r.tick.seq
        );
        by_chain.entry(&r.tick.id).or_default().push(r);
    }
    for (id, mut ticks) in by_chain {
        ticks.sort_by_key(|r| r.start_us);
        for pair in ticks.windows(2) {
            if pair[0].start_us < wiped_at_us && pair[1].start_us > wiped_at_us {
                continue;
            }
            let gap = pair[1].start_us.saturating_sub(pair[0].end_us);
            assert!(
                gap >= min_gap_us,
                "chain {id} forked: two ticks {gap} µs apart"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_tick_on_the_node_holding_the_apalis_queue_list_and_nowhere_else() {
    let mut cluster = LocalCluster::start();
    let list_node = cluster.node_of("core:apalis:queues:list");
    let namespace_on = |want_list_node: bool| loop {
        let ns = format!("{{cw-cluster-{:08x}}}", rand::random::<u32>());
        if (cluster.node_of(&ns) == list_node) == want_list_node {
            break ns;
        }
    };
    let home_ns = namespace_on(true);
    let away_ns = namespace_on(false);
    let away_node = cluster.node_of(&away_ns);
    let other_node = *cluster
        .ports
        .iter()
        .find(|p| **p != list_node && **p != away_node)
        .unwrap_or(&away_node);
    let config = |ns: &str, port: u16| SchedulerConfig {
        reconcile_interval: Duration::from_millis(500),
        lease: Duration::from_secs(2),
        shutdown_timeout: Duration::from_secs(5),
        ..SchedulerConfig::new(LocalCluster::url(port), ns)
    };
    let home_cfg = config(&home_ns, list_node);
    let away_cfg = config(&away_ns, away_node);
    let cadence = Duration::from_millis(300);
    let ids: Vec<String> = (0..20).map(|i| format!("c-{i}")).collect();

    // A duplicate delivery: the same tick pushed three times before any worker runs.
    let home = Chains::connect(&home_cfg).await.unwrap();
    assert!(home.start("dup", Duration::from_secs(60)).await.unwrap());
    let (_, _, seq) = home.upcoming(1, Some("dup")).await.unwrap()[0].clone();
    let payload = format!(
        r#"{{"id":"dup","seq":{seq},"due_at_ms":{}}}"#,
        now_ms() + 300
    );
    let tasks: Vec<_> = (0..3)
        .map(|_| TaskBuilder::new(payload.clone().into_bytes()).build())
        .collect();
    let mut conn = apalis_redis::connect(home_cfg.redis_url.as_str())
        .await
        .unwrap();
    let apalis_config = apalis_redis::Config::default().queue(&home_ns);
    apalis_redis::queries::push_tasks(&mut conn, &apalis_config, &tasks)
        .await
        .unwrap();

    let mut wanted = ids.clone();
    wanted.push("dup".into());
    let home_rec = Recorder::new(cadence);
    let away_rec = Recorder::new(cadence);
    let home_wanted = Wanted::new(wanted);
    let home_run = Running::start(home_cfg.clone(), home_rec.clone(), home_wanted.clone());
    let away_run = Running::start(away_cfg.clone(), away_rec.clone(), Wanted::new(ids.clone()));
    let ticked = |rec: Arc<Recorder>, since_us: u64| async move {
        let recs = rec.records();
        ids_ticked_since(&recs, since_us)
    };
    assert!(
        eventually(Duration::from_secs(10), || {
            let rec = home_rec.clone();
            async move { ticked(rec, 0).await >= 20 }
        })
        .await,
        "every chain on the list's node ticks"
    );
    let dup_runs = home_rec
        .records_of("dup")
        .iter()
        .filter(|r| r.tick.seq == seq)
        .count();
    assert_eq!(dup_runs, 1, "a tick delivered three times runs once");

    // On another node the chains are seeded (our own keys work) but apalis cannot register its
    // worker there (its script writes `core:apalis:queues:list`, a key of another node), so it
    // fails and is restarted, again and again, and nothing ticks.
    let away = Chains::connect(&away_cfg).await.unwrap();
    assert!(away.is_live("c-0").await.unwrap());
    assert_eq!(
        away_rec.count(),
        0,
        "nothing ticks away from the list's node"
    );

    // Wiping the shard's keys: the chains are re-seeded and tick again.
    let wiped_at = now_us();
    let keys: Vec<String> = cluster
        .keys_on(list_node)
        .into_iter()
        .filter(|k| k.starts_with(home_ns.as_str()))
        .collect();
    let mut del = vec!["-p".to_owned(), list_node.to_string(), "del".to_owned()];
    del.extend(keys);
    let del: Vec<&str> = del.iter().map(String::as_str).collect();
    redis_cli(&del);
    assert!(
        eventually(Duration::from_secs(10), || {
            let rec = home_rec.clone();
            async move { ticked(rec, wiped_at).await >= 20 }
        })
        .await,
        "chains re-seeded after their keys were wiped"
    );

    // Stop ends a chain (no longer wanted, so nothing re-seeds it; the reconciler may have
    // cleared it first, so `stop` may find it gone).
    home_wanted.0.lock().unwrap().retain(|id| id != "c-0");
    home.stop("c-0").await.unwrap();
    let stopped_at = now_us();
    assert!(!home.is_live("c-0").await.unwrap());

    // A dead node that holds none of it changes nothing.
    if other_node != away_node {
        cluster.kill(other_node);
        let since = now_us();
        assert!(
            eventually(Duration::from_secs(5), || {
                let rec = home_rec.clone();
                async move { ticked(rec, since).await >= 19 }
            })
            .await,
            "chains go on while an unrelated master is down"
        );
    }

    // Its own node dies: ticks stop; back, they resume (re-seeded: it had no persistence).
    cluster.kill(list_node);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let dead_from = now_us();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during: Vec<_> = home_rec
        .records()
        .into_iter()
        .filter(|r| r.start_us > dead_from)
        .collect();
    assert!(
        during.is_empty(),
        "{} ticks while the node was down",
        during.len()
    );
    cluster.restart(list_node);
    let back = now_us();
    assert!(
        eventually(Duration::from_secs(20), || {
            let rec = home_rec.clone();
            async move { ticked(rec, back).await >= 19 }
        })
        .await,
        "chains resume once their node is back"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    let records = home_rec.records();
    // A tick claimed just before the stop may still start; nothing after that.
    assert!(
        records
            .iter()
            .filter(|r| r.tick.id == "c-0")
            .all(|r| r.start_us < stopped_at + 100_000),
        "a stopped chain must not tick again"
    );
    // Ticks finish within microseconds here, so two ticks of one chain closer than half a
    // cadence would mean two live chains.
    assert_one_chain_each(&records, cadence.as_micros() as u64 / 2, wiped_at);

    let _ = away_run.shutdown().await;
    let _ = home_run.shutdown().await;
}

/// How many different chains started a tick after `since_us`.
fn ids_ticked_since(records: &[common::Record], since_us: u64) -> usize {
    records
        .iter()
        .filter(|r| r.start_us > since_us)
        .map(|r| r.tick.id.clone())
        .collect::<HashSet<_>>()
        .len()
}
