//! `campaign-control campaign stats --id X [--watch]`: the live stats of one campaign
//! (`GET /v1/campaigns/<id>/stats`) as a two-column table. With `--watch` the table is redrawn
//! in place every second (cursor home + clear screen) until Ctrl-C; with `--json` too, one
//! compact JSON object per line instead, so the output can be piped.

use std::io::Write;
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use super::Failure;
use super::cli::Cli;
use super::output::{Output, Table, cell};
use super::rpc::Rpc;

/// How often `--watch` refreshes.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The order and names of the rows of the human table.
const ROWS: &[&str] = &[
    "campaign_id",
    "status",
    "execute",
    "dials",
    "dialing",
    "progressing",
    "calls_up",
    "done_success",
    "done_fail",
    "dials_last_minute",
    "last_dial_at",
    "next_tick_at",
    "waiting_reason",
];

/// The stats as an [`Output`]: a `STAT  VALUE` table (plus one `by_reason.<reason>` row per
/// reason), or the reply itself with `--json`.
pub fn stats_output(data: Value) -> Output {
    let mut t = Table::new(["STAT", "VALUE"]);
    for k in ROWS {
        t.row([(*k).to_owned(), cell(data.get(*k).unwrap_or(&Value::Null))]);
    }
    if let Some(reasons) = data.get("by_reason").and_then(Value::as_object) {
        for (reason, n) in reasons {
            t.row([format!("by_reason.{reason}"), cell(n)]);
        }
    }
    Output {
        human: t.render(),
        json: data,
    }
}

/// The URI of the stats route.
pub fn stats_uri(id: Uuid) -> String {
    format!("/v1/campaigns/{id}/stats")
}

/// `--watch`: prints the stats every [`WATCH_INTERVAL`] until Ctrl-C (or the first failure).
/// Returns an empty output, everything has been printed already.
pub async fn watch(cli: &Cli, id: Uuid) -> Result<Output, Failure> {
    let rpc = Rpc::connect(cli).await?;
    let what = format!("stats of campaign {id}");
    let result = loop {
        let data = match rpc.call(&what, "GET", &stats_uri(id), None).await {
            Ok(d) => d,
            Err(f) => break Err(f),
        };
        let out = stats_output(data);
        let mut stdout = std::io::stdout().lock();
        let text = if cli.json {
            format!("{}\n", out.json)
        } else {
            format!(
                "\x1b[H\x1b[2J{}(refreshing every {} s; Ctrl-C to quit)\n",
                out.human,
                WATCH_INTERVAL.as_secs()
            )
        };
        if stdout
            .write_all(text.as_bytes())
            .and_then(|_| stdout.flush())
            .is_err()
        {
            // stdout closed (e.g. piped into `head`): nothing more to show.
            break Ok(());
        }
        drop(stdout);
        tokio::select! {
            _ = tokio::time::sleep(WATCH_INTERVAL) => {}
            _ = tokio::signal::ctrl_c() => break Ok(()),
        }
    };
    rpc.close().await;
    result.map(|()| Output {
        json: Value::Null,
        human: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_has_every_stat_and_reason() {
        let out = stats_output(json!({
            "campaign_id": "c", "status": "run", "execute": "run", "dials": 3, "dialing": 1,
            "progressing": 0, "done_success": 1, "done_fail": 1,
            "by_reason": {"fail": 1, "success": 1}, "calls_up": 1, "dials_last_minute": 3,
            "last_dial_at": "2026-11-29T06:00:00Z", "next_tick_at": null,
            "waiting_reason": "no_capacity"
        }));
        assert!(out.human.starts_with("STAT"), "{}", out.human);
        for k in ROWS {
            assert!(out.human.contains(k), "{k} missing in {}", out.human);
        }
        assert!(out.human.contains("by_reason.fail     1"), "{}", out.human);
        assert!(out.human.contains("next_tick_at       -"), "{}", out.human);
        assert_eq!(out.json["dials"], 3);
    }
}
