//! `campaign-control customer limits get|set|clear` against the service over RabbitMQ: each
//! verb reaches the customer's dial limits, a value the service refuses is named and changes
//! nothing. (They spawn the binary, so they live in the package that builds it.)

#[path = "../../../tests/it/support/mod.rs"]
mod support;

use campaign_sim::{Outcome, Scenario};
use serde_json::{Value, json};
use support::TestSystem;
use uuid::Uuid;

async fn control(sys: &TestSystem, args: &[&str]) -> Value {
    let (code, out, err) = support::control_json(sys, args).await;
    assert_eq!(code, 0, "{args:?}\nstdout {out}\nstderr {err}");
    serde_json::from_str(&out).expect("JSON output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_gets_sets_and_clears_customer_dial_limits() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4().to_string();
    let c = customer.as_str();
    let none = json!({"customer_id": c, "max_concurrent_calls": null,
                      "dials_per_second": null, "tm_update": null});

    assert_eq!(
        control(&sys, &["customer", "limits", "get", "--customer-id", c]).await,
        none
    );
    let set = control(
        &sys,
        &[
            "customer",
            "limits",
            "set",
            "--customer-id",
            c,
            "--max-concurrent-calls",
            "5",
            "--dials-per-second",
            "2.5",
        ],
    )
    .await;
    assert_eq!(set["max_concurrent_calls"], 5);
    assert_eq!(set["dials_per_second"], 2.5);
    assert_eq!(
        control(&sys, &["customer", "limits", "get", "--customer-id", c]).await,
        set
    );
    // The service's word on a bad value, naming the field; nothing changed.
    let (code, out, err) = support::control_json(
        &sys,
        &[
            "customer",
            "limits",
            "set",
            "--customer-id",
            c,
            "--dials-per-second",
            "100",
        ],
    )
    .await;
    assert_ne!(code, 0, "stdout {out}");
    assert!(
        format!("{out}{err}").contains("dials_per_second"),
        "stderr {err}"
    );
    assert_eq!(
        control(&sys, &["customer", "limits", "get", "--customer-id", c]).await,
        set
    );
    // Only the rate given: the cap is unset.
    let rate = control(
        &sys,
        &[
            "customer",
            "limits",
            "set",
            "--customer-id",
            c,
            "--dials-per-second",
            "3",
        ],
    )
    .await;
    assert_eq!(rate["max_concurrent_calls"], Value::Null);
    assert_eq!(
        control(
            &sys,
            &["customer", "limits", "clear", "--customer-id", c, "--yes"]
        )
        .await,
        none
    );
    assert_eq!(
        control(&sys, &["customer", "limits", "get", "--customer-id", c]).await,
        none
    );
    sys.stop().await;
}
