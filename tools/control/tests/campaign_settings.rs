//! `campaign-control campaign pacing` and `campaign calling-hours` against the service and the
//! simulator over RabbitMQ: the setting reaches the campaign, a value the service refuses names
//! its field and changes nothing, a bad flag combination is a usage error, `--clear` removes it.
//! (They spawn the binary, so they live in the package that builds it.)

#[path = "../../../tests/it/support/mod.rs"]
mod support;

use campaign_sim::{Outcome, Scenario};
use serde_json::{Value, json};
use support::TestSystem;
use support::black_box::{create_campaign, id_of};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_sets_and_clears_pacing() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let c = create_campaign(&sys, "control", Uuid::new_v4(), Uuid::nil(), json!({})).await;
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
    let c = create_campaign(&sys, "control", customer, Uuid::nil(), json!({})).await;
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
