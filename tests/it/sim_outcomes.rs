//! The simulator's outcomes by destination and its attempt log, as a test or an operator uses
//! them: outcomes set through the admin HTTP API (`PUT /scenario` overrides by destination
//! index or address), a campaign dialing through the service, and `GET /attempts` listing every
//! call placed with its target, destination, try, time, outcome, hangup reason and talk time.

use std::time::Duration;

use campaign_sim::{AMD_DETECTION_MS, MsRange, Outcome, Scenario, TargetState, VOICEMAIL_TALK_MS};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::support::black_box::{create_campaign, id_of, set_status};
use crate::support::scenarios::fast_ticks;
use crate::support::{TestSystem, wait_until};

/// How late a hangup timer may fire on a busy shared machine (the log's talk time is measured
/// from the planned answer to the actual hangup).
const LATE_TIMER_MS: u64 = 3_000;

/// One request to the admin API over a plain socket: (status, JSON body).
async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let code = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let json = out.split("\r\n\r\n").nth(1).unwrap_or("null");
    (code, serde_json::from_str(json).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_destination_ends_with_its_outcome_and_the_attempt_log_shows_every_call() {
    let scenario = Scenario {
        ring_ms: MsRange::fixed(100),
        ..Scenario::instant(Outcome::Answered)
    };
    let sys = TestSystem::start(scenario, fast_ticks).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(campaign_sim::admin::serve(
        sys.sim.clone(),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));

    // Outcomes by destination index; one address talks 2.5 s (first match wins).
    let talker = "+15550007777";
    let (code, set) = http(
        addr,
        "PUT",
        "/scenario",
        &json!({
            "ring_ms": {"min": 100, "max": 100}, "talk_ms": {"min": 0, "max": 0},
            "overrides": [
                {"target": talker, "outcome": {"talk": 2500}},
                {"destination_index": 0, "outcome": "busy"},
                {"destination_index": 1, "outcome": "no_answer"},
                {"destination_index": 2, "outcome": "failed"},
                {"destination_index": 3, "outcome": "amd"},
                {"destination_index": 4, "outcome": "voicemail"},
            ],
        })
        .to_string(),
    )
    .await;
    assert_eq!(code, 200, "{set}");
    assert_eq!(set["overrides"][0]["outcome"], json!({"talk": 2500}));

    // Two targets: five destinations, one try each; and one that reaches the talker.
    let customer = Uuid::new_v4();
    let (code, od) = http(
        addr,
        "POST",
        "/outdials",
        &json!({"customer_id": customer, "targets": 1, "destinations": 5}).to_string(),
    )
    .await;
    assert_eq!(code, 200, "{od}");
    let outdial = id_of(&od);
    let (code, added) = http(
        addr,
        "POST",
        &format!("/outdials/{outdial}/targets"),
        &json!({"targets": [{"destinations": [{"type": "tel", "target": talker}]}]}).to_string(),
    )
    .await;
    assert_eq!(code, 200, "{added}");
    let five = Uuid::parse_str(od["target_ids"][0].as_str().unwrap_or_default()).expect("id");
    let talking = Uuid::parse_str(added["target_ids"][0].as_str().unwrap_or_default()).expect("id");

    let c = create_campaign(&sys, "sim outcomes", customer, outdial, json!({})).await;
    let id = id_of(&c);
    set_status(&sys, id, "run").await;
    wait_until("the campaign ends", Duration::from_secs(60), || async {
        let c = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
        c["status"] == "stop"
    })
    .await;

    let (code, attempts) = http(addr, "GET", "/attempts", "").await;
    assert_eq!(code, 200, "{attempts}");
    let attempts = attempts.as_array().cloned().unwrap_or_default();
    let of = |t: Uuid| -> Vec<Value> {
        attempts
            .iter()
            .filter(|a| a["target_id"] == t.to_string())
            .cloned()
            .collect()
    };
    // (destination index, outcome, hangup reason, talk ms: None when never answered)
    let want: [(u64, Value, &str, Option<u64>); 5] = [
        (0, json!("busy"), "busy", None),
        (1, json!("no_answer"), "noanswer", None),
        (2, json!("failed"), "failed", None),
        (3, json!("amd"), "amd", Some(AMD_DETECTION_MS)),
        (4, json!("voicemail"), "normal", Some(VOICEMAIL_TALK_MS)),
    ];
    let got = of(five);
    assert_eq!(got.len(), 5, "{got:#?}");
    let target = sys.sim.target(five).expect("target");
    for (a, (index, outcome, reason, talk)) in got.iter().zip(want) {
        assert_eq!(a["destination_index"], index, "{a}");
        assert_eq!(a["try_count"], 1, "{a}");
        assert_eq!(a["outcome"], outcome, "{a}");
        assert_eq!(a["hangup_reason"], reason, "{a}");
        assert!(a["at"].is_string() && a["tm_hangup"].is_string(), "{a}");
        assert!(a["call_id"].is_string(), "{a}");
        let dest = target
            .target
            .destinations()
            .get(index as usize)
            .and_then(|(d, _)| d.map(|d| d.target.clone()));
        assert_eq!(a["destination"].as_str(), dest.as_deref(), "{a}");
        match talk {
            None => assert!(a.get("talk_ms").is_none(), "{a}"),
            // Measured answer → hangup: the planned talk, plus however late the timer fired.
            Some(ms) => {
                let talked = a["talk_ms"].as_u64().unwrap_or_default();
                assert!((ms..ms + LATE_TIMER_MS).contains(&talked), "{a}");
            }
        }
    }
    let got = of(talking);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(
        (
            got[0]["outcome"].clone(),
            got[0]["hangup_reason"].clone(),
            got[0]["destination"].clone(),
        ),
        (json!({"talk": 2500}), json!("normal"), json!(talker))
    );
    let talked = got[0]["talk_ms"].as_u64().unwrap_or_default();
    assert!((2500..2500 + LATE_TIMER_MS).contains(&talked), "{}", got[0]);
    // The voicemail counted as reached (no min_talk_ms): both targets done.
    for t in [five, talking] {
        assert_eq!(sys.sim.target(t).map(|t| t.status), Some(TargetState::Done));
    }
    let _ = stop.send(());
    let _ = server.await;
    sys.stop().await;
}
