//! The connection: reconnect after a broker-side close, fail fast on a dead broker, fail fast
//! through an outage (a test-owned TCP proxy) and recover after it, and finish in-flight requests
//! on shutdown.

use super::*;

async fn force_close(connection_name: &str) {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "-q",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .await
        .expect("rabbitmqctl");
    let text = String::from_utf8_lossy(&out.stdout);
    let needle = format!("\"{connection_name}\"");
    let pids: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(
        pids.len(),
        1,
        "connection {connection_name} not found: {text}"
    );
    let st = tokio::process::Command::new("rabbitmqctl")
        .args(["close_connection", pids[0], "test force close"])
        .output()
        .await
        .expect("rabbitmqctl close");
    assert!(st.status.success(), "{st:?}");
}

#[tokio::test]
async fn reconnects_after_broker_side_close() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    bus.serve_requests(Arc::new(Echo::default()), 4)
        .await
        .unwrap();
    let rec = Arc::new(Recorder::default());
    bus.subscribe(rec.clone()).await.unwrap();
    let rpc = bus.rpc();
    let req = Request::new("GET", "/v1/alive");
    assert_eq!(
        rpc.call(&names.request_queue, &req)
            .await
            .unwrap()
            .status_code,
        200
    );
    assert!(bus.is_healthy());

    force_close(bus.connection_name()).await;
    let closed_at = Instant::now();
    // Answered again within 5 s, by the re-registered server consumer.
    let mut answered = false;
    while closed_at.elapsed() < Duration::from_secs(5) {
        match rpc
            .call_with(
                &names.request_queue,
                &req,
                CallOptions::timeout(Duration::from_millis(500)),
            )
            .await
        {
            Ok(r) if r.status_code == 200 => {
                answered = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(answered, "no answer within 5 s after forced close");
    assert!(bus.is_healthy());
    // It really was a new connection (same process, same Bus).
    let generation = bus.connection().current().map(|l| l.generation);
    assert_eq!(generation, Some(2));
    // Publisher and subscriber work again too (exchanges/bindings/consumers re-established).
    let raw = raw().await;
    raw.publish(
        &names.call_event_exchange,
        "",
        br#"{"type":"after_reconnect","publisher":"x","data_type":""}"#,
        text_plain(),
    )
    .await;
    let rec2 = rec.clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if rec2
            .seen
            .lock()
            .await
            .iter()
            .any(|s| s == "after_reconnect")
        {
            break;
        }
        assert!(Instant::now() < deadline, "subscriber not re-registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bus.publisher()
        .publish(&Event::json("x", &1).unwrap())
        .await
        .unwrap();
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn connect_to_dead_broker_fails_fast() {
    let mut o = BusOptions::default();
    o.connection.initial_connect_wait = Duration::from_millis(500);
    let reg = prometheus::Registry::new();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        Bus::connect_with(
            "amqp://guest:guest@127.0.0.1:1/%2f",
            Names::prefixed("dead"),
            &reg,
            o,
        ),
    )
    .await;
    assert!(
        matches!(r, Ok(Err(BusError::Unavailable(_)))),
        "connect must fail, not hang"
    );
}

/// A TCP proxy in front of the broker that the test can take down and bring back, to simulate a
/// broker outage/restart without touching the shared broker.
struct Proxy {
    port: u16,
    up: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, _) = tokio::sync::watch::channel(true);
        let up_rx = up.subscribe();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if !*up_rx.borrow() {
                    drop(client);
                    continue;
                }
                let mut down = up_rx.clone();
                tokio::spawn(async move {
                    let Ok(upstream) = tokio::net::TcpStream::connect("127.0.0.1:5672").await
                    else {
                        return;
                    };
                    let (mut c, mut u) = (client, upstream);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut c, &mut u) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy { port, up }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

#[tokio::test]
async fn outage_fails_fast_then_recovers() {
    let p = uniq();
    let proxy = Proxy::start().await;
    let names = Names::prefixed(&p);
    let _cleanup = PanicCleanup::new(&names);
    let mut o = options(&p);
    // Keep the breaker out of the way: this test is about the connection.
    o.rpc.breaker.failure_threshold = 1_000;
    let reg = prometheus::Registry::new();
    let bus = Bus::connect_with(&proxy.url(), names.clone(), &reg, o)
        .await
        .unwrap();
    bus.serve_requests(Arc::new(Echo::default()), 4)
        .await
        .unwrap();
    let rec = Arc::new(Recorder::default());
    bus.subscribe(rec.clone()).await.unwrap();
    let rpc = bus.rpc();
    let req = Request::new("GET", "/v1/alive");
    assert_eq!(
        rpc.call(&names.request_queue, &req)
            .await
            .unwrap()
            .status_code,
        200
    );

    proxy.set_up(false);
    wait_until(
        "connection loss noticed",
        Duration::from_secs(10),
        || async { !bus.is_healthy() },
    )
    .await;
    // During the outage publishes and calls fail with typed errors instead of hanging.
    let ev = Event::json("during_outage", &1).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), bus.publisher().publish(&ev)).await;
    assert!(matches!(r, Ok(Err(BusError::Unavailable(_)))), "{r:?}");
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        rpc.call(&names.request_queue, &req),
    )
    .await;
    assert!(matches!(r, Ok(Err(RpcError::Transport { .. }))), "{r:?}");

    // The broker "comes back": everything is re-established in the same process.
    proxy.set_up(true);
    let back = Instant::now();
    let mut answered = false;
    while back.elapsed() < Duration::from_secs(10) {
        if let Ok(r) = rpc
            .call_with(
                &names.request_queue,
                &req,
                CallOptions::timeout(Duration::from_millis(500)),
            )
            .await
        {
            assert_eq!(r.status_code, 200);
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "not answered after the outage");
    bus.publisher().publish(&ev).await.unwrap();
    let raw = raw().await;
    raw.publish(
        &names.flow_event_exchange,
        "",
        br#"{"type":"after_outage","publisher":"x","data_type":""}"#,
        text_plain(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !rec.seen.lock().await.iter().any(|s| s == "after_outage") {
        assert!(Instant::now() < deadline, "subscriber not re-registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

/// Sleeps before answering, to have requests in flight during shutdown.
struct Slow;

#[async_trait]
impl RequestHandler for Slow {
    async fn handle(&self, req: Request) -> Response {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Response::json(200, &req.uri)
    }
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    bus.serve_requests(Arc::new(Slow), 4).await.unwrap();
    let raw = raw().await;
    let (reply_q, mut replies) = raw.reply_queue().await;
    for i in 0..3 {
        raw.publish(
            "",
            &names.request_queue,
            format!(r#"{{"uri":"/v1/slow/{i}","method":"GET","publisher":"p","data_type":""}}"#)
                .as_bytes(),
            text_plain()
                .with_reply_to(reply_q.as_str().into())
                .with_correlation_id(format!("s{i}").into()),
        )
        .await;
    }
    // Let the server pick them up, then stop while they are being handled.
    tokio::time::sleep(Duration::from_millis(150)).await;
    bus.shutdown().await;
    let mut got = Vec::new();
    while let Some(d) = next_msg(&mut replies, Duration::from_millis(500)).await {
        got.push(String::from_utf8(d.data).unwrap());
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            r#"{"status_code":200,"data_type":"application/json","data":"/v1/slow/0"}"#,
            r#"{"status_code":200,"data_type":"application/json","data":"/v1/slow/1"}"#,
            r#"{"status_code":200,"data_type":"application/json","data":"/v1/slow/2"}"#,
        ]
    );
    // Nothing left unacked or requeued.
    assert_eq!(raw.message_count(&names.request_queue).await, 0);
    assert!(!bus.is_healthy());
    raw.cleanup(&names, &[]).await;
}
