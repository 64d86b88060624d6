//! `campaign stats`: JSON, table, an unknown id, and `--watch` until Ctrl-C.

use super::*;

/// `campaign stats`: after a small campaign against the simulator (three targets answered, one
/// ended suppressed), `--json` matches the campaigncalls and the suppressed target, the table
/// names every stat, an unknown id fails with exit 1, and `--watch`
/// keeps printing (one JSON object per line with `--json`) until interrupted, then exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_stats_as_json_table_and_watch() {
    use tokio::io::AsyncBufReadExt;

    let sys = support::TestSystem::start(Scenario::instant(Outcome::Answered), |s| {
        s.workers = 4;
        s.first_tick_ms = 100;
        s.dial_tick_ms = 50;
        s.wait_tick_ms = 300;
    })
    .await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 3, 1);
    // A fourth target whose only number is on the customer's suppression list: ended untried,
    // counted under `suppressed`.
    sys.sim
        .add_target(
            outdial,
            campaign_sim::TargetSpec {
                destinations: vec![Some(campaign_manager::model::Address::tel("+15559990001"))],
                ..campaign_sim::TargetSpec::default()
            },
        )
        .expect("target");
    sys.ok(
        "POST",
        "/v1/suppressions",
        Some(serde_json::json!({"customer_id": customer, "target": "+15559990001", "reason": "opt-out"})),
    )
    .await;
    let outplan = sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(serde_json::json!({
                "customer_id": customer, "name": "p", "detail": "",
                "source": {"type": "tel", "target": "+15550001000"},
                "dial_timeout": 30000, "try_interval": 0,
                "max_try_count_0": 1, "max_try_count_1": 0, "max_try_count_2": 0,
                "max_try_count_3": 0, "max_try_count_4": 0,
            })),
        )
        .await;
    let created = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(serde_json::json!({
                "customer_id": customer, "type": "call", "name": "s",
                "actions": [{"type": "answer"}], "service_level": 100, "end_handle": "stop",
                "outplan_id": outplan["id"], "outdial_id": outdial,
            })),
        )
        .await;
    let id = created["id"].as_str().expect("campaign id").to_owned();
    sys.ok(
        "PUT",
        &format!("/v1/campaigns/{id}/status"),
        Some(serde_json::json!({"status": "run"})),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
        if c["status"] == "stop" && c["execute"] == "stop" {
            break;
        }
        assert!(Instant::now() < deadline, "campaign never ended: {c}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let infra = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = vec![
            "--rabbitmq_address".into(),
            AMQP.into(),
            "--queue_prefix".into(),
            sys.settings.queue_prefix.clone(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        all
    };
    let s = cli(&infra(&["--json", "campaign", "stats", "--id", &id]))
        .await
        .ok()
        .json();
    assert_eq!(s["campaign_id"].as_str(), Some(id.as_str()));
    assert_eq!(
        (s["dials"].as_i64(), s["done_success"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        (s["done_fail"].as_i64(), s["calls_up"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        s["by_reason"],
        serde_json::json!({"normal": 3, "suppressed": 1})
    );
    assert_eq!(
        (
            s["suppressed"].as_i64(),
            s["zone_fallback_targets"].as_i64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(s["status"], "stop");

    let table = cli(&infra(&["campaign", "stats", "--id", &id])).await.ok();
    for stat in [
        "STAT",
        "dials",
        "done_success",
        "waiting_reason",
        "by_reason.normal",
        "by_reason.suppressed",
        "zone_fallback_targets",
    ] {
        assert!(table.stdout.contains(stat), "{stat}: {}", table.stdout);
    }
    cli(&infra(&[
        "campaign",
        "stats",
        "--id",
        &Uuid::new_v4().to_string(),
    ]))
    .await
    .fails(1, "stats of campaign");

    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_campaign-control"))
        .args(infra(&[
            "--json", "campaign", "stats", "--id", &id, "--watch",
        ]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn campaign-control --watch");
    let stdout = watch.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    for n in 0..2 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("a refresh every second")
            .expect("read stdout")
            .expect("still running");
        let v: Value = serde_json::from_str(&line).expect("one JSON object per line");
        assert_eq!(v["dials"], 3, "refresh {n}: {line}");
    }
    let pid = watch.id().expect("pid").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("send SIGINT");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(10), watch.wait())
        .await
        .expect("exits on Ctrl-C")
        .expect("wait");
    assert_eq!(status.code(), Some(0), "Ctrl-C ends --watch cleanly");
    sys.stop().await;
}
