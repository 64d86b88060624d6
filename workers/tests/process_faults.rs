//! Process fault test: two `chain-bench-worker run --record` processes share 200 chains ticking
//! every 500 ms; one of them is SIGKILLed at random moments and restarted, several times.
//! Afterwards every chain is alive, no chain ever had two ticks closer than the cadence (minus a
//! small tolerance), no tick (id, seq) ran twice and none started early.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use campaign_workers::Chains;
use common::seed::seeded_rng;
use common::{TestNs, eventually, now_us};
use rand::RngExt;
use redis::AsyncCommands;

const CHAINS: usize = 200;
const CADENCE_MS: u64 = 500;
const TOLERANCE_US: u64 = 5_000;

fn spawn_worker(ns: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_chain-bench-worker"))
        .args(["--redis-url", common::REDIS_URL, "run", "--namespace", ns])
        .args(["--chains", &CHAINS.to_string()])
        .args(["--cadence-ms", &CADENCE_MS.to_string()])
        .args(["--record", "--reconcile-ms", "1000", "--lease-ms", "2000"])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn chain-bench-worker")
}

fn terminate(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = child.wait().expect("wait for worker");
    assert!(exit.success(), "worker exited with {exit:?} after SIGTERM");
}

/// (id, seq, due_at_ms, start_us) per recorded tick.
fn parse(line: &str) -> (String, u64, u64, u64) {
    let f: Vec<&str> = line.split(' ').collect();
    (
        f[0].to_owned(),
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        f[4].parse().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_workers_neither_lose_nor_fork_chains() {
    let ns = TestNs::new("faults");
    let cfg = ns.config();
    let chains = Chains::connect(&cfg).await.unwrap();
    let mut conn = ns.conn().await;
    let log_key = format!("{}:bench:log", ns.name);

    let mut workers = vec![spawn_worker(&ns.name), spawn_worker(&ns.name)];
    assert!(
        eventually(Duration::from_secs(15), || async {
            chains.stats().await.map(|s| s.live_chains).unwrap_or(0) == CHAINS as u64
        })
        .await,
        "the workers did not seed the chains"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut kills = Vec::new();
    let mut rng = seeded_rng("sigkilled_workers_neither_lose_nor_fork_chains");
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1000..2500))).await;
        let victim = rng.random_range(0..workers.len());
        kills.push(now_us());
        workers[victim].kill().expect("SIGKILL");
        workers[victim].wait().expect("reap");
        // Restart after a random pause (sometimes at once, sometimes after the lease expired).
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..2500))).await;
        workers[victim] = spawn_worker(&ns.name);
    }

    // Recovery: every chain ticks again within 5 s of the last kill (lease 2 s + reconciler 1 s).
    let last_kill = *kills.last().unwrap();
    let recovered = eventually(Duration::from_secs(8), || async {
        let mut conn = conn.clone();
        let lines: Vec<String> = conn.lrange(&log_key, -2000, -1).await.unwrap();
        let since: HashSet<String> = lines
            .iter()
            .map(|l| parse(l))
            .filter(|t| t.3 > last_kill + 3_000_000)
            .map(|t| t.0)
            .collect();
        since.len() == CHAINS
    })
    .await;
    assert!(recovered, "not every chain ticks again after the kills");
    tokio::time::sleep(Duration::from_secs(1)).await;
    for w in workers {
        terminate(w);
    }

    let stats = chains.stats().await.unwrap();
    assert_eq!(stats.live_chains, CHAINS as u64);
    let lines: Vec<String> = conn.lrange(&log_key, 0, -1).await.unwrap();
    let mut seen = HashSet::new();
    let mut by_chain: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for line in &lines {
        let (id, seq, due_ms, start_us) = parse(line);
        assert!(seen.insert((id.clone(), seq)), "tick {id} {seq} ran twice");
        assert!(start_us >= due_ms * 1000, "early tick: {line}");
        by_chain.entry(id).or_default().push((start_us, seq));
    }
    assert_eq!(by_chain.len(), CHAINS);
    for (id, ticks) in &mut by_chain {
        ticks.sort_unstable();
        for pair in ticks.windows(2) {
            let gap = pair[1].0 - pair[0].0;
            assert!(
                gap + TOLERANCE_US >= CADENCE_MS * 1000,
                "chain {id}: ticks {} and {} only {} ms apart",
                pair[0].1,
                pair[1].1,
                gap / 1000
            );
        }
    }
    println!(
        "{} ticks over {} chains, {} kills, no duplicates",
        lines.len(),
        CHAINS,
        kills.len()
    );
    ns.cleanup().await;
}
