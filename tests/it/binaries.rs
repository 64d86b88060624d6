//! The service binaries as processes: `campaign-manager` becomes ready, answers health
//! probes and metrics, and exits 0 on SIGTERM; a dependency that cannot be reached at start is
//! a non-zero exit with the address in the message (the Go service exited 0).

use crate::support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{TestDb, TestNames, TestPrefix};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

fn service(
    bin: &str,
    dsn: &str,
    names: &TestNames,
    prefix: &TestPrefix,
    port: u16,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(["--database_dsn", dsn])
        .args(["--rabbitmq_address", &support::amqp_url()])
        .args(["--redis_database", "0"])
        .args(["--queue_prefix", &names.prefix])
        .args(["--cache_prefix", &prefix.0])
        .args(["--tick_namespace", &format!("{}ticks", prefix.0)])
        .args(["--prometheus_listen_address", &format!("127.0.0.1:{port}")])
        .args(["--workers", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Waits (30 s at most) until the child serves 200 on `/readyz`; returns the body. A child that
/// exits first fails the test with its stderr.
async fn wait_ready(child: &mut tokio::process::Child, port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(body) = http_get(port, "/readyz").await
            && body.starts_with("HTTP/1.0 200")
        {
            return body;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err).await;
            }
            panic!("exited with {status} instead of serving: {err}");
        }
        assert!(Instant::now() < deadline, "not ready within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn service_is_ready_serves_metrics_and_exits_0_on_sigterm() {
    let (db, names, prefix) = (TestDb::empty().await, TestNames::new(), TestPrefix::new());
    let port = free_port();
    let mut child = service(
        env!("CARGO_BIN_EXE_campaign-manager"),
        &db.url,
        &names,
        &prefix,
        port,
    )
    .spawn()
    .expect("spawn campaign-manager");

    let ready = wait_ready(&mut child, port).await;
    for dep in ["mysql", "redis", "rabbitmq", "workers"] {
        let dep = format!("\"{dep}\":\"ok\"");
        assert!(ready.contains(&dep), "{ready}");
    }
    let health = http_get(port, "/healthz").await.expect("healthz");
    assert!(health.starts_with("HTTP/1.0 200"), "{health}");
    let metrics = http_get(port, "/metrics").await.expect("metrics");
    for name in [
        "campaign_manager_campaign_create_total",
        "campaign_manager_chain_live_chains",
        "campaign_manager_campaign_status_run_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    // The migrations ran at start: the platform's three tables and the service's ten
    // (dial records, dial fences, run starts, the tick switch, Go loop kicks, the outbox, the
    // suppression list, the stats' target marks, callbacks, the customer-wide dial limits).
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'campaign_%'")
        .fetch_one(&db.pool)
        .await
        .expect("count tables");
    assert_eq!(n, 13);

    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits within 20 s of SIGTERM")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}

/// Kubernetes mounts every key of a Secret as a file, and a Redis without a password is a key
/// with an empty value (`kubectl create secret ... --from-literal=redis-password=`): the service
/// started with `REDIS_PASSWORD_FILE` naming an empty file connects without a password and serves.
#[tokio::test]
async fn an_empty_redis_password_file_means_no_password() {
    let (db, names, prefix) = (TestDb::empty().await, TestNames::new(), TestPrefix::new());
    /// Removed when the test ends, also when it fails.
    struct TempFile(std::path::PathBuf);
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let file =
        TempFile(std::env::temp_dir().join(format!("{}redis-password", support::unique("cm"))));
    std::fs::write(&file.0, "").expect("write the empty password file");
    let port = free_port();
    let mut child = service(
        env!("CARGO_BIN_EXE_campaign-manager"),
        &db.url,
        &names,
        &prefix,
        port,
    )
    .env("REDIS_PASSWORD_FILE", &file.0)
    .env_remove("REDIS_PASSWORD")
    .spawn()
    .expect("spawn campaign-manager");
    let ready = wait_ready(&mut child, port).await;
    assert!(ready.contains("\"redis\":\"ok\""), "{ready}");
    let _ = child.start_kill();
    let _ = child.wait().await;
}

#[tokio::test]
async fn unreachable_database_is_a_failed_start() {
    let (names, prefix) = (TestNames::new(), TestPrefix::new());
    let mut cmd = service(
        env!("CARGO_BIN_EXE_campaign-manager"),
        "root@tcp(127.0.0.1:1)/nope",
        &names,
        &prefix,
        free_port(),
    );
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("exits")
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connecting to MySQL") && err.contains("127.0.0.1:1"),
        "{err}"
    );
}

#[tokio::test]
async fn worker_refuses_zero_workers_and_bad_flags() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_campaign-worker"))
        .args(["--workers", "0"])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_campaign-manager"))
        .args(["--no-such-flag"])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}
