//! The scheduler on a Redis Cluster: a local 3-master cluster of `redis-server` child processes
//! that each test starts, owns and kills (never the shared Redis on :6379).
//!
//! What is checked (docs/scheduler.md "Redis Cluster and shards" has the why):
//! * the chain state of a shard (`{namespace:i}`) keeps every key in one slot, so its multi-key
//!   scripts run on a cluster, and shards spread over the nodes; a dead master stops only the
//!   shards on it, and they work again once it is back;
//! * one worker process runs three shards on three different masters through the cluster client
//!   (including apalis-redis, whose worker registration `RedisConn` adapts): every chain ticks
//!   with every guarantee (a tick delivered three times runs once, none early, re-seeded after its
//!   keys are wiped, a stopped chain stays stopped, none forks); killing one master pauses only
//!   the chains of its shard, and they resume when it is back.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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
        // Bounded: a redis-server that cannot start in cluster mode fails the test after 20
        // attempts instead of looping forever.
        let mut attempts = 0;
        while cluster.ports.len() < 3 {
            attempts += 1;
            assert!(
                attempts <= 20,
                "could not start 3 redis-server nodes in cluster mode after 20 attempts \
                 (is redis-server built with cluster support? try `redis-server --cluster-enabled yes`)"
            );
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
            // A lost master must not stop the slots of the others (see docs/scheduler.md).
            .args(["--cluster-require-full-coverage", "no"])
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

    /// Seed URLs of every node, for `SchedulerConfig::cluster_nodes`.
    fn seeds(&self) -> Vec<String> {
        self.ports.iter().map(|p| Self::url(*p)).collect()
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

/// A 3-shard configuration whose shards sit on `min_nodes` different masters or more.
fn spread_config(cluster: &LocalCluster, min_nodes: usize) -> (SchedulerConfig, Vec<u16>) {
    loop {
        let cfg = SchedulerConfig {
            shards: 3,
            cluster_nodes: cluster.seeds(),
            reconcile_interval: Duration::from_millis(500),
            lease: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(5),
            ..SchedulerConfig::new("", format!("cw-cluster-{:08x}", rand::random::<u32>()))
        };
        let homes: Vec<u16> = cfg
            .shard_configs()
            .iter()
            .map(|s| cluster.node_of(&s.namespace))
            .collect();
        if homes.iter().collect::<HashSet<_>>().len() >= min_nodes {
            return (cfg, homes);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_keys_stay_in_one_slot_and_a_dead_master_stops_only_its_shards() {
    let mut cluster = LocalCluster::start();
    let (cfg, homes) = spread_config(&cluster, 2);
    let chains = Chains::connect(&cfg).await.unwrap();
    assert_eq!(chains.shards(), 3);
    for i in 0..3 {
        for id in ids_of_shard(&cfg, i, 10) {
            assert!(chains.start(&id, Duration::from_secs(60)).await.unwrap());
            assert!(chains.is_live(&id).await.unwrap());
        }
    }
    chains.pause().await.unwrap();
    assert!(chains.is_paused().await.unwrap());
    chains.resume().await.unwrap();
    let stats = chains.stats().await.unwrap();
    assert_eq!((stats.live_chains, stats.scheduled), (30, 30));
    assert_eq!(chains.upcoming(100, None).await.unwrap().len(), 30);

    // Every key of a shard is in the slot of its hash tag, on its node.
    for (i, shard) in cfg.shard_configs().iter().enumerate() {
        let namespace = shard.namespace.as_str();
        let slot = cluster.slot(namespace);
        let keys: Vec<String> = cluster
            .keys_on(homes[i])
            .into_iter()
            .filter(|k| k.starts_with(namespace))
            .collect();
        assert!(keys.len() >= 4, "{keys:?}");
        for key in keys {
            assert_eq!(cluster.slot(&key), slot, "{key}");
        }
    }

    // Kill the node of shard 0: its shards fail, the shards on other nodes go on.
    let victim = homes[0];
    cluster.kill(victim);
    for (i, home) in homes.iter().enumerate() {
        let id = ids_of_shard(&cfg, i, 11)[10].clone();
        let started = chains.start(&id, Duration::from_secs(60)).await;
        if *home == victim {
            assert!(started.is_err(), "shard {i} lives on the dead node");
        } else {
            assert!(started.unwrap(), "shard {i} must not notice");
            assert!(chains.stop(&id).await.unwrap());
        }
    }
    // Back (without its data, no persistence here): the same handle works again.
    cluster.restart(victim);
    let id = ids_of_shard(&cfg, 0, 12)[11].clone();
    assert!(
        eventually(Duration::from_secs(20), || async {
            chains.start(&id, Duration::from_secs(60)).await.is_ok()
        })
        .await
    );
    assert!(chains.is_live(&id).await.unwrap());
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
async fn three_shards_tick_on_three_masters_and_a_dead_master_pauses_only_its_shard() {
    let mut cluster = LocalCluster::start();
    let (cfg, homes) = spread_config(&cluster, 3);
    let list_node = cluster.node_of("core:apalis:queues:list");
    let cadence = Duration::from_millis(300);
    let per_shard: Vec<Vec<String>> = (0..3).map(|i| ids_of_shard(&cfg, i, 8)).collect();
    let ids: Vec<String> = per_shard.concat();

    // A duplicate delivery: the same tick pushed three times before any worker runs, on a shard
    // that is not on the node of apalis' global key (where apalis-redis alone could not run).
    let chains = Chains::connect(&cfg).await.unwrap();
    let dup_shard = (0..3).find(|i| homes[*i] != list_node).unwrap_or(0);
    let dup = ids_of_shard(&cfg, dup_shard, 9)[8].clone();
    assert!(chains.start(&dup, Duration::from_secs(60)).await.unwrap());
    let (_, _, seq) = chains.upcoming(1, Some(&dup)).await.unwrap()[0].clone();
    let payload = format!(
        r#"{{"id":"{dup}","seq":{seq},"due_at_ms":{}}}"#,
        now_ms() + 300
    );
    let tasks: Vec<_> = (0..3)
        .map(|_| TaskBuilder::new(payload.clone().into_bytes()).build())
        .collect();
    let mut conn = apalis_redis::connect(LocalCluster::url(homes[dup_shard]))
        .await
        .unwrap();
    let shard_ns = cfg.shard_configs()[dup_shard].namespace.clone();
    let apalis_config = apalis_redis::Config::default().queue(&shard_ns);
    apalis_redis::queries::push_tasks(&mut conn, &apalis_config, &tasks)
        .await
        .unwrap();

    let mut wanted = ids.clone();
    wanted.push(dup.clone());
    let rec = Recorder::new(cadence);
    let wanted = Wanted::new(wanted);
    let run = Running::start(cfg.clone(), rec.clone(), wanted.clone());
    let ticked = |since_us: u64, of: &[String]| {
        let of: HashSet<&String> = of.iter().collect();
        rec.records()
            .into_iter()
            .filter(|r| r.start_us > since_us && of.contains(&r.tick.id))
            .map(|r| r.tick.id)
            .collect::<HashSet<_>>()
            .len()
    };
    assert!(
        eventually(Duration::from_secs(15), || async { ticked(0, &ids) == 24 }).await,
        "every chain of every shard ticks ({} of 24)",
        ticked(0, &ids)
    );
    let dup_runs = rec
        .records_of(&dup)
        .iter()
        .filter(|r| r.tick.seq == seq)
        .count();
    assert_eq!(dup_runs, 1, "a tick delivered three times runs once");
    // One apalis worker per shard registered, each on its own node.
    let stats = chains.stats().await.unwrap();
    assert_eq!(
        stats.workers.iter().filter(|w| w.alive).count(),
        3,
        "{stats:?}"
    );
    let lateness =
        format!("campaign_manager_chain_tick_lateness_ms_count{{shard=\"{dup_shard}\"}} ");
    assert!(
        prometheus::TextEncoder::new()
            .encode_to_string(&run.registry.gather())
            .unwrap()
            .lines()
            .any(|l| l.starts_with(&lateness)),
        "metrics carry the shard"
    );

    // Wiping one shard's keys: its chains are re-seeded and tick again.
    let wiped_at = now_us();
    let wiped_ns = cfg.shard_configs()[0].namespace.clone();
    let keys: Vec<String> = cluster
        .keys_on(homes[0])
        .into_iter()
        .filter(|k| k.starts_with(wiped_ns.as_str()))
        .collect();
    let mut del = vec!["-p".to_owned(), homes[0].to_string(), "del".to_owned()];
    del.extend(keys);
    let del: Vec<&str> = del.iter().map(String::as_str).collect();
    redis_cli(&del);
    assert!(
        eventually(Duration::from_secs(10), || async {
            ticked(wiped_at, &per_shard[0]) == 8
        })
        .await,
        "chains re-seeded after their keys were wiped"
    );

    // Stop ends a chain (no longer wanted, so nothing re-seeds it).
    let stopped = per_shard[1][0].clone();
    wanted.0.lock().unwrap().retain(|id| *id != stopped);
    chains.stop(&stopped).await.unwrap();
    let stopped_at = now_us();
    assert!(!chains.is_live(&stopped).await.unwrap());

    // The master of shard 2 dies: its chains pause, the other shards go on.
    let victim = homes[2];
    cluster.kill(victim);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let dead_from = now_us();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        ticked(dead_from, &per_shard[2]),
        0,
        "no tick of a dead shard"
    );
    assert_eq!(ticked(dead_from, &per_shard[0]), 8, "shard 0 goes on");
    assert_eq!(ticked(dead_from, &per_shard[1]), 7, "shard 1 goes on");
    cluster.restart(victim);
    let back = now_us();
    assert!(
        eventually(Duration::from_secs(20), || async {
            ticked(back, &per_shard[2]) == 8
        })
        .await,
        "its chains resume once their node is back ({} of 8)",
        ticked(back, &per_shard[2])
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    let records = rec.records();
    assert!(
        records
            .iter()
            .filter(|r| r.tick.id == stopped)
            .all(|r| r.start_us < stopped_at + 100_000),
        "a stopped chain must not tick again"
    );
    // Ticks finish within microseconds here, so two ticks of one chain closer than half a
    // cadence would mean two live chains.
    assert_one_chain_each(&records, cadence.as_micros() as u64 / 2, wiped_at);
    run.shutdown().await.unwrap();
}
