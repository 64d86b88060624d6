//! `campaign-control suppression add|list|remove|import` against the service and the simulator
//! over RabbitMQ: each verb reaches the customer's list, a target the service refuses is named
//! (an import's by its line's index) and changes nothing. (They spawn the binary, so they live
//! in the package that builds it.)

#[path = "../../../tests/it/support/mod.rs"]
mod support;

use campaign_sim::{Outcome, Scenario};
use serde_json::Value;
use support::TestSystem;
use uuid::Uuid;

async fn control(sys: &TestSystem, args: &[&str]) -> Value {
    let (code, out, err) = support::control_json(sys, args).await;
    assert_eq!(code, 0, "{args:?}\nstdout {out}\nstderr {err}");
    serde_json::from_str(&out).expect("JSON output")
}

fn targets(list: &Value) -> Vec<String> {
    let mut t: Vec<String> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| r["target"].as_str().unwrap_or_default().to_owned())
        .collect();
    t.sort();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_adds_lists_removes_and_imports_suppressions() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4().to_string();
    let c = customer.as_str();

    let added = control(
        &sys,
        &[
            "suppression",
            "add",
            "--customer-id",
            c,
            "--target",
            "+1 (212) 555-0100",
            "--reason",
            "opt-out",
        ],
    )
    .await;
    assert_eq!(added["target"], "+12125550100");
    assert_eq!(added["reason"], "opt-out");
    let id = added["id"].as_str().expect("id").to_owned();

    // A refused target names the field and lists nothing.
    let (code, out, err) = support::control_json(
        &sys,
        &["suppression", "add", "--customer-id", c, "--target", "+0"],
    )
    .await;
    assert_ne!(code, 0, "stdout {out}");
    assert!(format!("{out}{err}").contains("target"), "stderr {err}");

    let dir = std::env::temp_dir().join(format!("suppressions-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.txt");
    std::fs::write(
        &bad,
        "+15550000001\n# a comment\n\n+15550000002\nnot\u{7}ok\n",
    )
    .expect("write");
    let (code, out, err) = support::control_json(
        &sys,
        &[
            "suppression",
            "import",
            "--customer-id",
            c,
            bad.to_str().expect("path"),
        ],
    )
    .await;
    assert_ne!(code, 0, "stdout {out}");
    assert!(format!("{out}{err}").contains("targets[2]"), "stderr {err}");
    let list = control(&sys, &["suppression", "list", "--customer-id", c]).await;
    assert_eq!(
        targets(&list),
        ["+12125550100"],
        "nothing of the bad file listed"
    );

    let good = dir.join("good.txt");
    std::fs::write(
        &good,
        "+15550000001\n# a comment\n\n+1 555 000 0002\nSIP:Ann@Example.com\n",
    )
    .expect("write");
    let imported = control(
        &sys,
        &[
            "suppression",
            "import",
            "--customer-id",
            c,
            "--reason",
            "list",
            good.to_str().expect("path"),
        ],
    )
    .await;
    assert_eq!(imported["count"], 3);
    let list = control(&sys, &["suppression", "list", "--customer-id", c]).await;
    assert_eq!(
        targets(&list),
        [
            "+12125550100",
            "+15550000001",
            "+15550000002",
            "sip:ann@example.com"
        ]
    );
    let one = control(
        &sys,
        &[
            "suppression",
            "list",
            "--customer-id",
            c,
            "--target",
            "+1-555-000-0002",
            "--page-size",
            "5",
        ],
    )
    .await;
    assert_eq!(targets(&one), ["+15550000002"]);

    let removed = control(&sys, &["suppression", "remove", "--id", &id, "--yes"]).await;
    assert_eq!(removed, added);
    let list = control(&sys, &["suppression", "list", "--customer-id", c]).await;
    assert_eq!(targets(&list).len(), 3);
    let _ = std::fs::remove_dir_all(&dir);
    sys.stop().await;
}
