//! `campaign execute`: the rollback's restart of the Go service's execute loops.
//!
//! After a rollback to the Go service its running campaigns already have `execute = run`, so Go
//! starts no loop for them; one `POST /v1/campaigns/<id>/execute` each starts one. Each request
//! starts a loop, and nothing shows whether one runs, so this command is made safe to run twice:
//! * it refuses unless this service's ticking is switched off durably (`queue pause --durable`):
//!   Go loops beside this service's ticks would dial every campaign twice;
//! * every kick is recorded in MySQL (`campaign_loop_kicks`) *before* its request is sent, and a
//!   campaign with a recorded kick is skipped by `--all-running` (named with its time, and
//!   whether Go answered). A run cut short between the record and the request leaves the
//!   campaign recorded but not confirmed: it is shown, never resent blindly; `--id` sends it
//!   anyway after a confirmation;
//! * `--dry-run` shows what would be sent and skipped, and sends nothing.
//!
//! The records are cleared by `queue resume`, when this service takes the campaigns back.

use std::collections::HashMap;

use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::cli::{Cli, ExecuteArgs};
use super::handover::Handover;
use super::output::Output;
use super::rpc::{EXECUTE_TIMEOUT, Rpc, campaign_filters, reply_data};
use super::{Failure, confirm};
use crate::model::Campaign;
use campaign_manager::store::LoopKick;

/// A campaign left alone because a kick is recorded.
#[derive(Serialize)]
struct Skipped {
    id: Uuid,
    kicked_at: String,
    confirmed: bool,
}

/// One `/execute` that was not confirmed.
#[derive(Serialize)]
struct NotConfirmed {
    id: Uuid,
    error: String,
}

/// Runs `campaign execute`.
pub async fn run(cli: &Cli, args: &ExecuteArgs) -> Result<Output, Failure> {
    let handover = Handover::connect(cli).await?;
    require_switched_off(&handover).await?;
    let rpc = Rpc::connect(cli).await?;
    let out = kick(&rpc, &handover, args).await;
    rpc.close().await;
    out
}

/// Refuses unless the durable switch of the namespace is off.
async fn require_switched_off(handover: &Handover) -> Result<(), Failure> {
    match handover.switch_state().await? {
        Some(s) if s.paused => Ok(()),
        _ => Err(Failure::new(format!(
            "ticking of namespace {} is not switched off durably: run `campaign-control queue \
             drain --durable` first (and remove this service's pods), so that its workers cannot \
             tick beside the Go loops this starts",
            handover.namespace()
        ))),
    }
}

async fn kick(rpc: &Rpc, handover: &Handover, args: &ExecuteArgs) -> Result<Output, Failure> {
    let kicks = handover
        .kicks()
        .all()
        .await
        .map_err(|e| handover.failed("reading the recorded Go loop kicks", e))?;
    let targets = match args.id {
        Some(id) => {
            let what = format!("execute campaign {id}");
            let c: Campaign = rpc
                .request(&what, "GET", &format!("/v1/campaigns/{id}"))
                .await?;
            if let Some(k) = kicks.get(&id).filter(|_| !args.dry_run) {
                confirm(
                    &format!(
                        "Campaign {id} already had a Go loop started at {} ({}); a second \
                         /execute starts a second loop (twice the dial rate). Send it anyway?",
                        rfc3339(k),
                        if k.confirmed {
                            "confirmed"
                        } else {
                            "not confirmed"
                        }
                    ),
                    args.yes,
                )?;
            }
            vec![c]
        }
        None => {
            let filters = campaign_filters(None, true, false);
            rpc.all_campaigns(&filters, args.page_size).await?
        }
    };
    let (send, skipped) = plan(&targets, &kicks, args.id.is_some());
    if args.dry_run {
        return Ok(dry_run_output(&send, &skipped));
    }
    if args.all_running && !send.is_empty() {
        confirm(
            &format!(
                "Send /execute once to each of {} running campaign(s) ({} skipped: a Go loop was \
                 started for them already)? The Go service starts one loop per request.",
                send.len(),
                skipped.len()
            ),
            args.yes,
        )?;
    }
    let mut executed = Vec::new();
    let mut failed = Vec::new();
    for id in send {
        match kick_one(rpc, handover, id, args.id.is_some()).await {
            Ok(true) => executed.push(id),
            Ok(false) => {}
            Err(error) => failed.push(NotConfirmed { id, error }),
        }
    }
    report(&executed, &skipped, &failed)
}

/// The campaigns to send to and those to skip. An explicit `--id` is always sent (its
/// confirmation was asked above).
fn plan(
    targets: &[Campaign],
    kicks: &HashMap<Uuid, LoopKick>,
    explicit: bool,
) -> (Vec<Uuid>, Vec<Skipped>) {
    let mut send = Vec::new();
    let mut skipped = Vec::new();
    for c in targets {
        match kicks.get(&c.id) {
            Some(k) if !explicit => skipped.push(Skipped {
                id: c.id,
                kicked_at: rfc3339(k),
                confirmed: k.confirmed,
            }),
            _ => send.push(c.id),
        }
    }
    (send, skipped)
}

/// Records, sends and confirms one kick. Ok(false): another run recorded it first (not sent).
async fn kick_one(
    rpc: &Rpc,
    handover: &Handover,
    id: Uuid,
    explicit: bool,
) -> Result<bool, String> {
    let recorded = handover
        .kicks()
        .record(id)
        .await
        .map_err(|e| handover.failed("recording the kick", e).message)?;
    if !recorded && !explicit {
        return Ok(false);
    }
    let what = format!("execute campaign {id}");
    let uri = format!("/v1/campaigns/{id}/execute");
    match rpc.send(&what, "POST", &uri, None, EXECUTE_TIMEOUT).await {
        Ok(resp) if resp.is_success() => {
            handover
                .kicks()
                .confirm(id)
                .await
                .map_err(|e| handover.failed("confirming the kick", e).message)?;
            Ok(true)
        }
        Ok(resp) => Err(reply_data(&what, &resp)
            .err()
            .map(|f| f.message)
            .unwrap_or_default()),
        Err(f) => Err(f.message),
    }
}

fn rfc3339(k: &LoopKick) -> String {
    k.at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn dry_run_output(send: &[Uuid], skipped: &[Skipped]) -> Output {
    let mut human = format!(
        "dry run: would send /execute to {} campaign(s), skip {}\n",
        send.len(),
        skipped.len()
    );
    for id in send {
        human.push_str(&format!("would execute: {id}\n"));
    }
    human.push_str(&skipped_lines(skipped));
    Output {
        json: json!({ "dry_run": true, "would_execute": send, "skipped": skipped }),
        human,
    }
}

fn skipped_lines(skipped: &[Skipped]) -> String {
    skipped
        .iter()
        .map(|s| {
            format!(
                "skipped: {} (Go loop started at {}, {})\n",
                s.id,
                s.kicked_at,
                if s.confirmed {
                    "confirmed"
                } else {
                    "NOT confirmed: check it, then `campaign execute --id`"
                }
            )
        })
        .collect()
}

fn report(
    executed: &[Uuid],
    skipped: &[Skipped],
    failed: &[NotConfirmed],
) -> Result<Output, Failure> {
    let mut human = format!("sent /execute to {} campaign(s)\n", executed.len());
    human.push_str(&skipped_lines(skipped));
    for f in failed {
        human.push_str(&format!("not confirmed: {}: {}\n", f.id, f.error));
    }
    let json = json!({ "executed": executed, "skipped": skipped, "failed": failed });
    if failed.is_empty() {
        Ok(Output { json, human })
    } else {
        Err(Failure::new(format!(
            "{human}{} request(s) not confirmed; do not resend blindly: a request without a \
             reply may still have started a loop (check `campaign get` or the service log). \
             They are recorded, so `--all-running` will not send them again",
            failed.len()
        )))
    }
}
