//! Tables of requests a route must refuse. A route family's same-shape checks (each bad field,
//! each unknown or deleted id) are rows, each named by its case; `check_rows` sends them all and
//! fails once, naming every row whose answer was not the one wanted, with what came back.

use crate::support::TestSystem;
use serde_json::{Value, json};

/// What a row must be answered with.
#[derive(Clone, Copy, Debug)]
pub(super) enum Want {
    /// A typed 400 `INVALID_ARGUMENT` of campaign-manager (any reason: a peer's rejection says
    /// `UPSTREAM_REJECTED`).
    Invalid,
    /// A typed 400 `INVALID_ARGUMENT` whose reason is `INVALID_ARGUMENT` too: the service refused
    /// it itself.
    InvalidHere,
    /// The typed 404 of a record of this kind (`campaign`, `campaigncall`, `outplan`), to the byte.
    NotFound(&'static str),
}

/// One request of a table, with the answer it must get.
pub(super) struct Row {
    pub(super) case: String,
    pub(super) method: &'static str,
    pub(super) uri: String,
    pub(super) body: Option<Value>,
    pub(super) want: Want,
}

/// A row: `case` names it in a failure.
pub(super) fn row(
    case: impl Into<String>,
    method: &'static str,
    uri: impl Into<String>,
    body: Option<Value>,
    want: Want,
) -> Row {
    Row {
        case: case.into(),
        method,
        uri: uri.into(),
        body,
        want,
    }
}

/// Rows of `bodies` (case name, body) sent as `method uri`, all wanting `want`; each case is
/// prefixed with `route`.
pub(super) fn rows_of(
    route: &str,
    method: &'static str,
    uri: &str,
    want: Want,
    bodies: impl IntoIterator<Item = (&'static str, Value)>,
) -> Vec<Row> {
    bodies
        .into_iter()
        .map(|(case, body)| row(format!("{route}: {case}"), method, uri, Some(body), want))
        .collect()
}

/// Sends every row in order; panics naming each row answered otherwise than it wants.
pub(super) async fn check_rows(sys: &TestSystem, rows: &[Row]) {
    assert!(!rows.is_empty(), "an empty table checks nothing");
    let mut wrong = Vec::new();
    for r in rows {
        let (code, data_type, data) = sys.rpc(r.method, &r.uri, r.body.clone()).await;
        if let Some(why) = mismatch(r.want, code, &data_type, &data) {
            wrong.push(format!(
                "  {}: {} {} {} → {why}: {code} {data_type} {data}",
                r.case,
                r.method,
                r.uri,
                r.body.as_ref().map(Value::to_string).unwrap_or_default()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows answered wrongly:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
}

/// Why the answer `code data_type data` is not what `want` asks for, if it is not.
fn mismatch(want: Want, code: u16, data_type: &str, data: &Value) -> Option<&'static str> {
    match want {
        Want::Invalid | Want::InvalidHere => {
            if code != 400 {
                return Some("not 400");
            }
            if data_type != "voipbin_error"
                || data["status"] != "INVALID_ARGUMENT"
                || data["domain"] != "campaign-manager"
                || data["message"].as_str().is_none_or(str::is_empty)
            {
                return Some("not a typed INVALID_ARGUMENT with a message");
            }
            if matches!(want, Want::InvalidHere) && data["reason"] != "INVALID_ARGUMENT" {
                return Some("reason is not INVALID_ARGUMENT");
            }
            None
        }
        Want::NotFound(kind) => {
            let (reason, message) = not_found_of(kind);
            let typed = json!({"status": "NOT_FOUND", "reason": reason,
                "domain": "campaign-manager", "message": message});
            (code != 404 || data_type != "voipbin_error" || *data != typed)
                .then_some("not the typed 404")
        }
    }
}

/// The reason and message of the typed 404 of a `kind` of record.
pub(super) fn not_found_of(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "campaign" => ("CAMPAIGN_NOT_FOUND", "The campaign was not found."),
        "campaigncall" => ("CAMPAIGNCALL_NOT_FOUND", "The campaign call was not found."),
        "outplan" => ("OUTPLAN_NOT_FOUND", "The outplan was not found."),
        other => panic!("no typed 404 for {other:?}"),
    }
}
