//! `campaign-control campaign stats --id X [--watch]`: the live stats of one campaign
//! (`GET /v1/campaigns/<id>/stats`, read as the model's `CampaignStats`) as a two-column table;
//! `--watch` redraws it in place (`super::watch`, driven from `execute`). The RPC client calls
//! in here, never the other way round.

use serde_json::Value;
use uuid::Uuid;

use super::output::{Output, Table, cell};

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
    "suppressed",
    "zone_fallback_targets",
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
            "waiting_reason": "no_capacity", "suppressed": 2, "zone_fallback_targets": 4
        }));
        assert!(out.human.starts_with("STAT"), "{}", out.human);
        for k in ROWS {
            assert!(out.human.contains(k), "{k} missing in {}", out.human);
        }
        assert!(
            out.human.contains("by_reason.fail         1"),
            "{}",
            out.human
        );
        assert!(
            out.human.contains("next_tick_at           -"),
            "{}",
            out.human
        );
        assert!(
            out.human.contains("zone_fallback_targets  4"),
            "{}",
            out.human
        );
        assert_eq!(out.json["dials"], 3);
    }
}
