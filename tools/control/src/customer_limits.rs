//! `customer limits get|set|clear`: a customer's dial limits across all its campaigns through
//! the service's RPC routes (docs/contact-strategy.md "Customer-wide limits"). The service
//! checks the values (as for a campaign's pacing) and names a bad one.

use serde_json::json;

use super::cli::{CustomerCmd, LimitsCmd};
use super::output::Output;
use super::rpc::{Rpc, record_output};
use super::{Failure, confirm};
use crate::model::CustomerDialLimits;

impl Rpc {
    /// Runs a `customer` subcommand.
    pub async fn customer(self, cmd: &CustomerCmd) -> Result<Output, Failure> {
        let out = self.customer_inner(cmd).await;
        self.close().await;
        out
    }

    async fn customer_inner(&self, cmd: &CustomerCmd) -> Result<Output, Failure> {
        let CustomerCmd::Limits(cmd) = cmd;
        match cmd {
            LimitsCmd::Get { customer_id } => {
                let what = format!("get the dial limits of customer {customer_id}");
                let uri = format!("/v1/customers/{customer_id}/dial_limits");
                let l: CustomerDialLimits = self.request(&what, "GET", &uri).await?;
                record_output(&what, &l)
            }
            LimitsCmd::Set {
                customer_id,
                max_concurrent_calls,
                dials_per_second,
            } => {
                let what = format!("set the dial limits of customer {customer_id}");
                let uri = format!("/v1/customers/{customer_id}/dial_limits");
                let body = json!({
                    "max_concurrent_calls": max_concurrent_calls,
                    "dials_per_second": dials_per_second,
                });
                let l: CustomerDialLimits = self.call(&what, "PUT", &uri, Some(&body)).await?;
                record_output(&what, &l)
            }
            LimitsCmd::Clear { customer_id, yes } => {
                let what = format!("clear the dial limits of customer {customer_id}");
                confirm(
                    &format!("Clear the dial limits of customer {customer_id}?"),
                    *yes,
                )?;
                let uri = format!("/v1/customers/{customer_id}/dial_limits");
                let l: CustomerDialLimits = self.request(&what, "DELETE", &uri).await?;
                record_output(&what, &l)
            }
        }
    }
}
