//! `flows reconcile`: one orphaned-flow reconcile pass (`POST /v1/campaigns/flows/reconcile`,
//! docs/contract.md#orphaned-flows), run by hand. The pass can take up to its 90 s cap, so the
//! CLI waits longer than for other requests; a bare 400 means the service could not read the
//! deleted campaigns, which is said as such.

use std::time::Duration;

use serde_json::json;

use super::Failure;
use super::cli::FlowsCmd;
use super::output::{Output, record};
use super::rpc::{Rpc, reply_data};
use crate::model::FlowReconcile;

/// How long the CLI waits for a pass: its 90 s cap and some slack.
pub const RECONCILE_TIMEOUT: Duration = Duration::from_secs(100);

const ROUTE: &str = "/v1/campaigns/flows/reconcile";

impl Rpc {
    /// Runs a `flows` subcommand.
    pub async fn flows(self, cmd: &FlowsCmd) -> Result<Output, Failure> {
        let out = match cmd {
            FlowsCmd::Reconcile {
                recent_interval_sec,
            } => self.reconcile(*recent_interval_sec).await,
        };
        self.close().await;
        out
    }

    async fn reconcile(&self, recent_interval_sec: Option<u64>) -> Result<Output, Failure> {
        let what = "reconcile orphaned flows";
        let body = recent_interval_sec.map(|secs| json!({ "recent_interval_sec": secs }));
        let resp = self
            .send(what, "POST", ROUTE, body, RECONCILE_TIMEOUT)
            .await?;
        if resp.status_code == 400 && resp.data_type.is_empty() {
            return Err(Failure::new(format!(
                "{what}: the pass did not run: campaign-manager could not read the deleted \
                 campaigns from its database (400; its log has the reason)"
            )));
        }
        let data = reply_data(what, &resp)?;
        let result: FlowReconcile = serde_json::from_value(data.clone()).map_err(|e| {
            Failure::new(format!(
                "{what}: campaign-manager sent a reply this CLI cannot read: {e}"
            ))
        })?;
        Ok(Output {
            human: format!("{}{}", record(&data), notes(&result)),
            json: data,
        })
    }
}

/// What an operator should know about a pass, one line each.
fn notes(r: &FlowReconcile) -> String {
    let mut out = String::new();
    if r.failed > 0 {
        out.push_str(&format!(
            "{} flow(s) could not be read or deleted at flow-manager; the next pass tries them again\n",
            r.failed
        ));
    }
    if r.partial {
        out.push_str("the pass hit its 90 s cap: run it again to examine the rest\n");
    }
    if r.recent_saturated {
        out.push_str(
            "the campaigns deleted within the interval alone fill a pass: shorten the schedule's \
             interval (and its recent_interval_sec with it)\n",
        );
    } else if r.saturated {
        out.push_str("more campaigns were deleted in the last 7 days than one pass reads (500)\n");
    }
    out
}
