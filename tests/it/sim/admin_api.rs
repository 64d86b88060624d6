//! The simulator's HTTP admin API over a raw socket.

use super::*;

async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out[9..12].parse().unwrap();
    let json = out.split("\r\n\r\n").nth(1).unwrap_or("null");
    (code, serde_json::from_str(json).unwrap_or(Value::Null))
}

#[tokio::test]
async fn http_admin_api() {
    let env = Env::start(Scenario::instant(Outcome::Answered)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(admin::serve(env.sim.clone(), listener, async move {
        let _ = stopped.await;
    }));
    assert_eq!(http(addr, "GET", "/health", "").await.0, 200);
    let (code, v) = http(
        addr,
        "POST",
        "/outdials",
        r#"{"targets":4,"destinations":2}"#,
    )
    .await;
    assert_eq!(code, 200);
    let od = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["target_ids"].as_array().unwrap().len(), 4);
    let (_, v) = http(
        addr,
        "POST",
        &format!("/outdials/{od}/targets"),
        r#"{"count":1}"#,
    )
    .await;
    assert_eq!(v["target_ids"].as_array().unwrap().len(), 1);
    let (_, v) = http(addr, "GET", &format!("/outdials/{od}/targets"), "").await;
    assert_eq!(v.as_array().unwrap().len(), 5);
    assert_eq!(v[0]["status"], "idle");
    // The same outdial over the bus.
    let r = env
        .get(
            Service::Outdial,
            &format!("/v1/outdials/{od}/available?{ALL2}&limit=10"),
        )
        .await;
    assert_eq!(body(&r).as_array().unwrap().len(), 5);
    let (_, v) = http(addr, "POST", "/queues", r#"{"agents":2}"#).await;
    let q = v["id"].as_str().unwrap().to_string();
    assert_eq!(
        http(
            addr,
            "PUT",
            &format!("/queues/{q}/agents"),
            r#"{"agents":9}"#
        )
        .await
        .0,
        200
    );
    let r = env
        .get(Service::Queue, &format!("/v1/queues/{q}/agents"))
        .await;
    assert_eq!(body(&r).as_array().unwrap().len(), 9);
    assert_eq!(
        http(
            addr,
            "PUT",
            &format!("/queues/{}/agents", Uuid::new_v4()),
            r#"{"agents":1}"#
        )
        .await
        .0,
        404
    );
    assert_eq!(
        http(
            addr,
            "POST",
            "/faults",
            r#"{"service":"queue","kind":{"status":503},"count":1}"#
        )
        .await
        .0,
        200
    );
    assert_eq!(
        env.get(Service::Queue, &format!("/v1/queues/{q}"))
            .await
            .status_code,
        503
    );
    let late = r#"{"service":"call","method":"POST","kind":{"late_reply_ms":2500},"count":2}"#;
    assert_eq!(http(addr, "POST", "/faults", late).await.0, 200);
    let (_, pending) = http(addr, "GET", "/faults", "").await;
    assert_eq!(pending[0]["kind"], json!({"late_reply_ms": 2500}));
    assert_eq!(http(addr, "DELETE", "/faults", "").await.0, 200);
    assert_eq!(
        http(
            addr,
            "PUT",
            "/scenario",
            r#"{"seed":3,"weights":{"answered":0,"busy":1}}"#
        )
        .await
        .0,
        200
    );
    assert_eq!(env.sim.scenario().seed, 3);
    assert_eq!(http(addr, "POST", "/outdials", "not json").await.0, 400);
    assert_eq!(http(addr, "GET", "/nope", "").await.0, 404);
    let (_, stats) = http(addr, "GET", "/stats", "").await;
    assert_eq!(stats["targets_idle"], 5);
    assert_eq!(stats["requests"]["queue"], 2);
    let (_, v) = http(addr, "GET", "/calls", "").await;
    assert_eq!(v, json!([]));
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    env.finish().await;
}
