//! Retry rules at run time (docs/contact-strategy.md#retry-rules): the reason a hangup is
//! stored with (a `normal` one shorter than `min_talk_ms` becomes `short_call`), and, for a
//! tick, what the rules make of each offered target's record: how long it waits and which of
//! its destinations are final. The rules themselves are `model::retry_rules` (pure).
//!
//! Our own record is the source: the reason is stored on the campaigncall by the finish (its
//! compare-and-set), so whatever dies after that commit, the next tick reads the same record
//! and decides the same. One read per tick batch, and only for an outplan with rules.

use std::collections::HashMap;

use uuid::Uuid;

use super::{Service, ServiceResult};
use crate::model::{
    CallTalk, Campaigncall, Finals, OutdialTarget, Outplan, RetryRules, TargetHistory,
    stored_reason,
};

/// What the retry rules say about the targets of one tick batch.
#[derive(Debug, Default)]
pub(super) struct RetryView {
    rules: RetryRules,
    try_interval: i32,
    histories: HashMap<Uuid, TargetHistory>,
}

impl RetryView {
    /// How long `target` waits after its last attempt, ms: its last reason's delay, else the
    /// outplan's `try_interval`.
    pub(super) fn delay_ms(&self, target: Uuid) -> i32 {
        let last = self
            .histories
            .get(&target)
            .and_then(|h| h.last_reason.as_deref());
        self.rules.delay_ms(last, self.try_interval)
    }

    /// The destinations of `target` a final reason ended.
    pub(super) fn finals(&self, target: Uuid) -> Finals {
        self.histories
            .get(&target)
            .map(|h| h.finals)
            .unwrap_or_default()
    }
}

impl Service {
    /// Reads what the rules need about `targets` (one query; none when the outplan has no
    /// rules or no target was tried yet).
    pub(super) async fn retry_view(
        &self,
        campaign_id: Uuid,
        outplan: &Outplan,
        targets: &[OutdialTarget],
    ) -> ServiceResult<RetryView> {
        let rules = match &outplan.retry_rules {
            Some(r) if !r.0.is_empty() => r.clone(),
            _ => {
                return Ok(RetryView {
                    try_interval: outplan.try_interval,
                    ..RetryView::default()
                });
            }
        };
        // A target never tried has no record to read.
        let tried: Vec<Uuid> = targets
            .iter()
            .filter(|t| t.destinations().iter().any(|(_, tries)| *tries > 0))
            .map(|t| t.id)
            .collect();
        let rows = self
            .store
            .campaigncalls
            .finished_attempts(campaign_id, &tried)
            .await?;
        let mut by_target: HashMap<Uuid, Vec<(i32, Option<String>)>> = HashMap::new();
        for (target, index, reason) in rows {
            by_target.entry(target).or_default().push((index, reason));
        }
        let histories = by_target
            .into_iter()
            .map(|(target, attempts)| {
                let h = TargetHistory::of(&rules, attempts.iter().map(|(i, r)| (*i, r.as_deref())));
                (target, h)
            })
            .collect();
        Ok(RetryView {
            rules,
            try_interval: outplan.try_interval,
            histories,
        })
    }

    /// The reason to store for a hangup of `cc`: the call's reason, or `short_call` for a
    /// `normal` one that talked less than its outplan's `min_talk_ms` (the outplan is read
    /// only then, through the cache). An outplan that cannot be read now is an error, so the
    /// event is handled again later rather than finished on a guess; a deleted one still
    /// counts (its campaigncalls were dialed under it).
    pub(super) async fn hangup_reason(
        &self,
        cc: &Campaigncall,
        reason: &str,
        talk: CallTalk,
    ) -> ServiceResult<String> {
        if reason != "normal" || talk.tm_progressing.is_none() {
            return Ok(reason.to_owned());
        }
        let min_talk_ms = self
            .store
            .outplans
            .get(cc.outplan_id)
            .await?
            .and_then(|o| o.min_talk_ms);
        Ok(stored_reason(reason, talk.tm_progressing, talk.tm_hangup, min_talk_ms).to_owned())
    }
}
