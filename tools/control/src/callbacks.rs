//! `callback add|list|remove`: a campaign's callbacks through the service's RPC routes
//! (docs/contact-strategy.md). The service checks every field (the time, the target in the
//! campaign's outdial, its destination); the CLI passes them on as given.

use serde_json::json;
use uuid::Uuid;

use super::cli::{CallbackCmd, Page};
use super::output::Output;
use super::rpc::{Rpc, list_output, list_uri, record_output};
use super::{Failure, confirm};
use crate::model::Callback;

const COLUMNS: &[&str] = &[
    "id",
    "outdial_target_id",
    "destination_index",
    "at",
    "campaigncall_id",
    "tm_create",
];

impl Rpc {
    /// Runs a `callback` subcommand.
    pub async fn callback(self, cmd: &CallbackCmd) -> Result<Output, Failure> {
        let out = self.callback_inner(cmd).await;
        self.close().await;
        out
    }

    async fn callback_inner(&self, cmd: &CallbackCmd) -> Result<Output, Failure> {
        match cmd {
            CallbackCmd::Add {
                campaign_id,
                target_id,
                destination_index,
                at,
            } => {
                let what = format!("add a callback to campaign {campaign_id}");
                let body = json!({"outdial_target_id": target_id,
                    "destination_index": destination_index, "at": at});
                let c: Callback = self
                    .call(
                        &what,
                        "POST",
                        &format!("/v1/campaigns/{campaign_id}/callbacks"),
                        Some(&body),
                    )
                    .await?;
                record_output(&what, &c)
            }
            CallbackCmd::List { campaign_id, page } => self.callback_list(*campaign_id, page).await,
            CallbackCmd::Remove {
                campaign_id,
                id,
                yes,
            } => {
                let what = format!("remove callback {id}");
                confirm(
                    &format!("Remove callback {id} of campaign {campaign_id}?"),
                    *yes,
                )?;
                let c: Callback = self
                    .request(
                        &what,
                        "DELETE",
                        &format!("/v1/campaigns/{campaign_id}/callbacks/{id}"),
                    )
                    .await?;
                record_output(&what, &c)
            }
        }
    }

    async fn callback_list(&self, campaign_id: Uuid, page: &Page) -> Result<Output, Failure> {
        let what = format!("list the callbacks of campaign {campaign_id}");
        let uri = list_uri(&format!("/v1/campaigns/{campaign_id}/callbacks"), page);
        let rows: Vec<Callback> = self.request(&what, "GET", &uri).await?;
        list_output(&what, &rows, COLUMNS)
    }
}
