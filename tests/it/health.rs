//! `/healthz` (liveness) and `/readyz` (readiness) of an in-process campaign-manager: ready when
//! MySQL, Redis, RabbitMQ and its tick workers all work; 503 naming whichever does not, when
//! its workers stop or when a dependency becomes unreachable (through relays the test owns and
//! cuts, so the shared servers are never touched).

use crate::support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use campaign_manager::app::{App, Role};
use campaign_manager::config::Infra;
use campaign_manager::config::Settings;
use serde_json::{Value, json};
use support::proxy::Relay;
use support::{TestDb, TestNames, TestPrefix};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` → (status, body, how long the answer took).
async fn get(addr: SocketAddr, path: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the health endpoint");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("send request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read response");
    let status = raw
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_default();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body, started.elapsed())
}

/// Polls `/readyz` until `want` holds for (status, JSON body); returns the slowest answer seen.
async fn readyz_until(
    addr: SocketAddr,
    what: &str,
    want: impl Fn(u16, &Value) -> bool,
) -> (Value, Duration) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut slowest = Duration::ZERO;
    loop {
        let (status, body, took) = get(addr, "/readyz").await;
        slowest = slowest.max(took);
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if want(status, &json) {
            return (json, slowest);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 30 s; last {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn settings(names: &TestNames, prefix: &TestPrefix, workers: usize) -> Settings {
    let mut s = Settings::from_env();
    s.queue_prefix = names.prefix.clone();
    s.cache_prefix = prefix.0.clone();
    s.tick_namespace = format!("{}ticks", prefix.0);
    s.serve_http = true;
    s.workers = workers;
    s
}

fn infra(dsn: &str, redis_address: &str, amqp: &str) -> Infra {
    let mut infra = Infra::from_env();
    infra.database_dsn = dsn.to_owned();
    infra.redis_address = redis_address.to_owned();
    infra.redis_database = 0;
    infra.rabbitmq_address = amqp.to_owned();
    infra.prometheus_listen_address = "127.0.0.1:0".to_owned();
    infra
}

#[tokio::test]
async fn ready_with_every_check_and_not_ready_once_the_workers_stop() {
    let (db, names, prefix) = (TestDb::empty().await, TestNames::new(), TestPrefix::new());
    let infra = infra(&db.url, "127.0.0.1:6379", &support::amqp_url());
    let app = App::start(&infra, &settings(&names, &prefix, 2), Role::Service)
        .await
        .expect("start campaign-manager");
    let addr = app.http_addr.expect("serving http");

    let (body, slowest) = readyz_until(addr, "ready", |s, _| s == 200).await;
    assert_eq!(
        body,
        json!({"ready": true, "failing": [], "checks": {
            "mysql": "ok", "redis": "ok", "rabbitmq": "ok", "workers": "ok"}})
    );
    eprintln!("readyz (all up): slowest answer {slowest:?}");
    let (status, alive, _) = get(addr, "/healthz").await;
    assert_eq!((status, alive.as_str()), (200, "ok\n"));

    app.stop_workers();
    let (body, _) = readyz_until(addr, "workers reported stopped", |s, b| {
        s == 503 && b["checks"]["workers"] == "tick workers stopped"
    })
    .await;
    assert_eq!(body["ready"], json!(false));
    assert_eq!(body["failing"], json!(["workers"]));
    for dep in ["mysql", "redis", "rabbitmq"] {
        assert_eq!(body["checks"][dep], json!("ok"), "{body}");
    }
    // Liveness does not depend on the workers nor on any dependency.
    let (status, _, _) = get(addr, "/healthz").await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn each_unreachable_dependency_is_named() {
    let (db, names, prefix) = (TestDb::empty().await, TestNames::new(), TestPrefix::new());
    let mysql = Relay::start("127.0.0.1:3306").await;
    let redis = Relay::start("127.0.0.1:6379").await;
    let amqp = Relay::start("127.0.0.1:5672").await;
    let infra = infra(
        &format!("root@tcp(127.0.0.1:{})/{}", mysql.port, db.name),
        &format!("127.0.0.1:{}", redis.port),
        &format!("amqp://guest:guest@127.0.0.1:{}/%2f", amqp.port),
    );
    // No tick workers: the scheduler's own Redis connection would fail with the cache's.
    let app = App::start(&infra, &settings(&names, &prefix, 0), Role::Service)
        .await
        .expect("start campaign-manager through the relays");
    let addr = app.http_addr.expect("serving http");
    let (body, _) = readyz_until(addr, "ready", |s, _| s == 200).await;
    assert!(body["checks"].get("workers").is_none(), "{body}");

    let mut slowest = Duration::ZERO;
    let mut expected = Vec::new();
    for (relay, name) in [(&mysql, "mysql"), (&redis, "redis"), (&amqp, "rabbitmq")] {
        relay.cut();
        expected.push(name);
        let (body, took) = readyz_until(addr, name, |s, b| {
            s == 503 && b["failing"] == serde_json::to_value(&expected).unwrap_or_default()
        })
        .await;
        slowest = slowest.max(took);
        assert_eq!(body["ready"], json!(false));
        assert_ne!(body["checks"][name], json!("ok"), "{body}");
        eprintln!("{name} cut: {}", body["checks"][name]);
    }
    eprintln!("readyz with dependencies down: slowest answer {slowest:?}");
    let (status, _, _) = get(addr, "/healthz").await;
    assert_eq!(status, 200, "liveness ignores dependencies");
    app.stop().await;
}
