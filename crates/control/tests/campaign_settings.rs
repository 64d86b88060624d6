//! `campaign-control campaign pacing` and `campaign calling-hours` against the service and the
//! simulator over RabbitMQ: the setting reaches the campaign, a value the service refuses names
//! its field and changes nothing, a bad flag combination is a usage error, `--clear` removes it.
//! (They spawn the binary, so they live in the package that builds it.)

#[path = "../../../tests/it/support/mod.rs"]
mod support;

use campaign_sim::{Outcome, Scenario};
use serde_json::{Value, json};
use support::TestSystem;
use uuid::Uuid;

/// An outplan (one try per destination, no retry interval) and a stopped call campaign over
/// `outdial` (with `extra` fields in the create body), created through the RPC API; returns the
/// campaign JSON.
async fn create_campaign(sys: &TestSystem, customer: Uuid, outdial: Uuid, extra: Value) -> Value {
    let outplan = sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(json!({
                "customer_id": customer, "name": "control", "detail": "",
                "source": {"type": "tel", "target": "+15550001000"},
                "dial_timeout": 30000, "try_interval": 0,
                "max_try_count_0": 1, "max_try_count_1": 1, "max_try_count_2": 1,
                "max_try_count_3": 1, "max_try_count_4": 1,
            })),
        )
        .await;
    let mut body = json!({
        "customer_id": customer, "type": "call", "name": "control", "detail": "",
        "actions": [{"type": "answer"}], "service_level": 100, "end_handle": "stop",
        "outplan_id": outplan["id"], "outdial_id": outdial,
    });
    if let (Some(b), Some(x)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(x.clone());
    }
    sys.ok("POST", "/v1/campaigns", Some(body)).await
}

fn id_of(v: &Value) -> Uuid {
    Uuid::parse_str(v["id"].as_str().unwrap_or_default()).expect("id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_sets_and_clears_pacing() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let c = create_campaign(&sys, Uuid::new_v4(), Uuid::nil(), json!({})).await;
    let id = id_of(&c).to_string();
    let uri = format!("/v1/campaigns/{id}");

    let (code, out, err) = support::control_json(
        &sys,
        &[
            "campaign",
            "pacing",
            "--id",
            &id,
            "--max-concurrent-calls",
            "4",
            "--dials-per-second",
            "2.5",
        ],
    )
    .await;
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    let set: Value = serde_json::from_str(&out).expect("JSON output");
    let pacing = json!({"max_concurrent_calls": 4, "dials_per_second": 2.5});
    assert_eq!(set["pacing"], pacing);
    assert_eq!(sys.ok("GET", &uri, None).await["pacing"], pacing);

    // Out of range: refused by the service, naming the field; nothing changes.
    let (code, out, err) = support::control_json(
        &sys,
        &[
            "campaign",
            "pacing",
            "--id",
            &id,
            "--dials-per-second",
            "99",
        ],
    )
    .await;
    assert_ne!(code, 0, "stdout {out}");
    assert!(
        format!("{out}{err}").contains("pacing.dials_per_second"),
        "stdout {out}\nstderr {err}"
    );
    assert_eq!(sys.ok("GET", &uri, None).await["pacing"], pacing);

    // Neither a limit nor --clear, or a limit with --clear: usage error (exit 2).
    let (code, _, _) = support::control_json(&sys, &["campaign", "pacing", "--id", &id]).await;
    assert_eq!(code, 2);
    let (code, _, _) = support::control_json(
        &sys,
        &[
            "campaign",
            "pacing",
            "--id",
            &id,
            "--clear",
            "--max-concurrent-calls",
            "1",
        ],
    )
    .await;
    assert_eq!(code, 2);

    let (code, out, err) =
        support::control_json(&sys, &["campaign", "pacing", "--id", &id, "--clear"]).await;
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    assert!(sys.ok("GET", &uri, None).await.get("pacing").is_none());
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_sets_and_clears_calling_hours_from_a_file() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let c = create_campaign(&sys, customer, Uuid::nil(), json!({})).await;
    let id = id_of(&c).to_string();
    let hours = json!({"time_zone": "Europe/Paris",
        "windows": [{"days": ["sat", "sun"], "start": "10:00", "end": "12:30"}]});
    let dir = std::env::temp_dir().join(support::unique("hours"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("hours.json");
    std::fs::write(&file, hours.to_string()).expect("write hours");
    let path = file.to_string_lossy().into_owned();

    let (code, out, err) = support::control_json(
        &sys,
        &[
            "campaign",
            "calling-hours",
            "--id",
            &id,
            "--json-file",
            &path,
        ],
    )
    .await;
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    let set: Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(set["calling_hours"], hours);
    let got = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(got["calling_hours"], hours);

    // A bad file is refused by the service, naming the field; nothing changes.
    std::fs::write(
        &file,
        json!({"time_zone": "Europe/Paris",
            "windows": [{"days": ["caturday"], "start": "10:00", "end": "12:30"}]})
        .to_string(),
    )
    .expect("write bad hours");
    let (code, out, err) = support::control_json(
        &sys,
        &[
            "campaign",
            "calling-hours",
            "--id",
            &id,
            "--json-file",
            &path,
        ],
    )
    .await;
    assert_ne!(code, 0, "stdout {out}");
    assert!(
        format!("{out}{err}").contains("calling_hours.windows[0].days[0]"),
        "stdout {out}\nstderr {err}"
    );
    let got = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(got["calling_hours"], hours);

    // Neither flag, or both: usage error (exit 2).
    let (code, _, _) =
        support::control_json(&sys, &["campaign", "calling-hours", "--id", &id]).await;
    assert_eq!(code, 2);
    let both = [
        "campaign",
        "calling-hours",
        "--id",
        &id,
        "--json-file",
        &path,
        "--clear",
    ];
    assert_eq!(support::control_json(&sys, &both).await.0, 2);

    let (code, out, err) =
        support::control_json(&sys, &["campaign", "calling-hours", "--id", &id, "--clear"]).await;
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    let got = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
    assert!(got.get("calling_hours").is_none(), "{got}");
    let _ = std::fs::remove_dir_all(&dir);
    sys.stop().await;
}
