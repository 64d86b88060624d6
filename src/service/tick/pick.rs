//! Whether a target may be dialed now, and which of its destinations it dials: pure functions
//! of the target, the outplan and the retry rules' final destinations. No I/O and no clock of
//! their own, so the batch (`batch.rs`) and the tests call them alike; re-exported as
//! `service::tick::{target_ready, pick_destination, ...}`.

use chrono::Utc;

use crate::model::{Address, Finals, OutdialTarget, Outplan};

/// Whether the target may be dialed now given the outplan's retry interval (ms).
pub fn target_ready(
    target: &OutdialTarget,
    try_interval_ms: i32,
    now: chrono::DateTime<Utc>,
) -> bool {
    match (target.tm_create, target.tm_update) {
        // Never tried (outdial-manager creates targets with tm_update unset or equal to tm_create).
        (None, None) | (Some(_), None) => true,
        (Some(c), Some(u)) if c == u => true,
        (_, Some(u)) => {
            u <= now - chrono::Duration::milliseconds(i64::from(try_interval_ms.max(0)))
        }
    }
}

/// The first destination with tries left: `(address, index, try_count)`.
pub fn pick_destination(target: &OutdialTarget, outplan: &Outplan) -> Option<(Address, i32, i32)> {
    pick_destination_after(target, outplan, None)
}

/// The first destination with tries left whose index is above `after` (all of them for
/// `None`): the one dialed when the destination at `after` is suppressed.
pub fn pick_destination_after(
    target: &OutdialTarget,
    outplan: &Outplan,
    after: Option<i32>,
) -> Option<(Address, i32, i32)> {
    pick_destination_skipping(target, outplan, after, Finals::default())
}

/// [`pick_destination_after`] leaving out the destinations a final retry rule ended
/// (docs/contact-strategy.md#retry-rules).
pub fn pick_destination_skipping(
    target: &OutdialTarget,
    outplan: &Outplan,
    after: Option<i32>,
    finals: Finals,
) -> Option<(Address, i32, i32)> {
    let max = outplan.max_try_counts();
    target
        .destinations()
        .iter()
        .zip(max)
        .enumerate()
        .find_map(|(i, ((dest, tries), max))| match dest {
            Some(a)
                if *tries < max
                    && after.is_none_or(|a| i as i32 > a)
                    && !finals.contains(i as i32) =>
            {
                Some(((*a).clone(), i as i32, tries + 1))
            }
            _ => None,
        })
}
