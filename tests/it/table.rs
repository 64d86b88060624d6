//! Tables of same-shape runs for the mocked-peer tests: each row is named by its case and says
//! what it must come out as; [`check_table`] runs every row and fails once, naming every row
//! that came out otherwise with what came back (the shape of `api/rows.rs` and of
//! campaign-control's `check_failing`). A row's panic (a mock asked something it was not told
//! to expect, a setup step failing) is caught and listed as one wrong row instead of ending the
//! table.

use std::fmt::Debug;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use futures::FutureExt;

/// One run of a table: its case name, what it must come out as, and the run itself.
pub struct TableRow<T> {
    case: String,
    want: T,
    run: Pin<Box<dyn Future<Output = T>>>,
}

/// A row: `run` must come out as `want`; `case` names it in a failure.
pub fn table_row<T>(
    case: impl Into<String>,
    want: T,
    run: impl Future<Output = T> + 'static,
) -> TableRow<T> {
    TableRow {
        case: case.into(),
        want,
        run: Box::pin(run),
    }
}

/// Runs every row in order; panics naming each row that came out otherwise than it wants (or
/// panicked), with what came back.
pub async fn check_table<T>(rows: Vec<TableRow<T>>)
where
    T: PartialEq + Debug,
{
    assert!(!rows.is_empty(), "an empty table checks nothing");
    let total = rows.len();
    let mut wrong = Vec::new();
    for row in rows {
        match AssertUnwindSafe(row.run).catch_unwind().await {
            Ok(got) if got == row.want => {}
            Ok(got) => wrong.push(format!(
                "  {}:\n    want {:?}\n    got  {:?}",
                row.case, row.want, got
            )),
            Err(panic) => wrong.push(format!("  {}: panicked: {}", row.case, panic_text(&*panic))),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows came out otherwise:\n{}",
        wrong.len(),
        total,
        wrong.join("\n")
    );
}

/// The message of a row's panic.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}
