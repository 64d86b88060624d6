//! The `events dead` commands: show, replay and purge the subscribe queue's dead-letter queue.
//!
//! They work on RabbitMQ directly through [`DeadLetters`] (the bus layer owns the header names
//! and the ack-after-confirm rules), because the dead-letter queue is broker state the service
//! never reads. `list` is non-destructive (see `bus::dead_letter`); `replay` and `purge` change
//! the queue and ask for confirmation unless `--yes` is given, refusing when nobody can answer.

use std::time::Duration;

use serde_json::{Value, json};

use super::cli::{Cli, DeadCmd, EventsCmd};
use super::output::{Output, Table, cell};
use super::{Failure, confirm, names, probe_tcp, shown};
use crate::bus::{BusConnection, ConnectionOptions, DeadEvent, DeadLetters, Names};

/// Longest reason shown in the table (the JSON form has all of it).
const REASON_COLUMN: usize = 60;

/// Runs an `events` subcommand.
pub async fn run(cli: &Cli, cmd: &EventsCmd) -> Result<Output, Failure> {
    let EventsCmd::Dead(dead) = cmd;
    let names = names(&cli.queue_prefix);
    let conn = connect(cli).await?;
    let out = async {
        let dl = DeadLetters::open(&conn, names.clone())
            .await
            .map_err(|e| broker_failed("opening the dead-letter queue", &names, e))?;
        let out = match dead {
            DeadCmd::List { limit } => list(&dl, &names, *limit).await,
            DeadCmd::Replay { all, count, yes } => {
                replay(&dl, &names, if *all { None } else { *count }, *yes).await
            }
            DeadCmd::Purge { yes } => purge(&dl, &names, *yes).await,
        };
        dl.close().await;
        out
    }
    .await;
    conn.close().await;
    out
}

async fn connect(cli: &Cli) -> Result<BusConnection, Failure> {
    let url = &cli.infra.rabbitmq_address;
    let uri: lapin::uri::AMQPUri = url.parse().map_err(|e| {
        Failure::usage(format!(
            "invalid --rabbitmq_address {} (RABBITMQ_ADDRESS): {e}",
            shown(url)
        ))
    })?;
    let addr = format!("{}:{}", uri.authority.host, uri.authority.port);
    let hint = "is rabbitmq-server running? (--rabbitmq_address / RABBITMQ_ADDRESS)";
    probe_tcp(&addr, "RabbitMQ", hint).await?;
    let options = ConnectionOptions {
        connection_name: format!("campaign-control-{}", std::process::id()),
        initial_connect_wait: Duration::from_secs(5),
        ..ConnectionOptions::default()
    };
    BusConnection::open(url, options).await.map_err(|e| {
        Failure::new(format!(
            "cannot connect to RabbitMQ at {}: {e} — check the credentials and vhost in \
             --rabbitmq_address / RABBITMQ_ADDRESS",
            shown(url)
        ))
    })
}

fn broker_failed(what: &str, names: &Names, e: impl std::fmt::Display) -> Failure {
    Failure::new(format!(
        "{what} ({}) failed: {e} — is RabbitMQ healthy, and --queue_prefix / QUEUE_PREFIX the \
         service's?",
        names.subscribe_dead_queue
    ))
}

/// One dead-lettered event as JSON: the headers that say why and when, the envelope's
/// publisher and type, every header, and the body.
pub fn event_json(position: usize, e: &DeadEvent) -> Value {
    let (publisher, kind) = e.publisher_and_type();
    json!({
        "position": position,
        "publisher": publisher,
        "type": kind,
        "reason": e.reason(),
        "retry_count": e.retry_count(),
        "first_failed_at": e.first_failed_at(),
        "dead_lettered_at": e.dead_lettered_at(),
        "headers": e.headers,
        "body": e.body_json(),
    })
}

async fn list(dl: &DeadLetters, names: &Names, limit: usize) -> Result<Output, Failure> {
    let total = dl
        .count()
        .await
        .map_err(|e| broker_failed("counting dead-lettered events", names, e))?;
    let events = dl
        .peek(limit)
        .await
        .map_err(|e| broker_failed("reading dead-lettered events", names, e))?;
    let rows: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| event_json(i + 1, e))
        .collect();
    let mut t = Table::new([
        "#",
        "DEAD-LETTERED AT",
        "FIRST FAILED AT",
        "RETRIES",
        "PUBLISHER",
        "TYPE",
        "REASON",
    ]);
    for r in &rows {
        let reason = r["reason"].as_str().unwrap_or("-");
        t.row([
            cell(&r["position"]),
            cell(&r["dead_lettered_at"]),
            cell(&r["first_failed_at"]),
            cell(&r["retry_count"]),
            cell(&r["publisher"]),
            cell(&r["type"]),
            crate::bus::dead_letter::bounded(reason, REASON_COLUMN),
        ]);
    }
    let mut human = format!("queue {}: {total} event(s)\n", dl.queue());
    if !rows.is_empty() {
        human.push_str(&t.render());
    }
    if (rows.len() as u64) < u64::from(total) {
        human.push_str(&format!(
            "({} of {total} shown; --limit for more, --json for headers and bodies)\n",
            rows.len()
        ));
    }
    Ok(Output {
        json: json!({"queue": dl.queue(), "total": total, "events": rows}),
        human,
    })
}

async fn replay(
    dl: &DeadLetters,
    names: &Names,
    count: Option<u32>,
    yes: bool,
) -> Result<Output, Failure> {
    let total = dl
        .count()
        .await
        .map_err(|e| broker_failed("counting dead-lettered events", names, e))?;
    let n = count.map_or(total, |c| c.min(total));
    let output = |found: u32, replayed: u32| Output {
        json: json!({
            "queue": dl.queue(),
            "subscribe_queue": names.subscribe_queue,
            "found": found,
            "replayed": replayed,
        }),
        human: format!(
            "replayed {replayed} of {found} dead-lettered event(s) to {}\n",
            names.subscribe_queue
        ),
    };
    if n == 0 {
        return Ok(output(total, 0));
    }
    confirm(
        &format!(
            "replay {n} of {total} dead-lettered event(s) from {} to {}?",
            dl.queue(),
            names.subscribe_queue
        ),
        yes,
    )?;
    match dl.replay(Some(n)).await {
        Ok(r) => Ok(output(r.found, r.replayed)),
        Err(e) => Err(Failure::new(format!(
            "replay stopped after {} event(s): {} — the event it stopped on is still in {}; \
             has campaign-manager declared its subscribe queue {} (is it running with this \
             --queue_prefix)?",
            e.replayed, e.error, names.subscribe_dead_queue, names.subscribe_queue
        ))),
    }
}

async fn purge(dl: &DeadLetters, names: &Names, yes: bool) -> Result<Output, Failure> {
    let total = dl
        .count()
        .await
        .map_err(|e| broker_failed("counting dead-lettered events", names, e))?;
    if total > 0 {
        confirm(
            &format!(
                "delete all {total} dead-lettered event(s) in {} for good?",
                dl.queue()
            ),
            yes,
        )?;
    }
    let purged = if total > 0 {
        dl.purge()
            .await
            .map_err(|e| broker_failed("purging dead-lettered events", names, e))?
    } else {
        0
    };
    Ok(Output {
        json: json!({"queue": dl.queue(), "purged": purged}),
        human: format!("purged {purged} event(s) from {}\n", dl.queue()),
    })
}
