-- Why each campaigncall ended, for the live stats' `by_reason` (issue 10): the call's hangup
-- reason (`normal`, `busy`, `noanswer`, ...), `flow_ended` for a flow campaigncall, or what
-- the service decided (`not_placed`, `over_max_duration`, ...). A nullable column the Go
-- service never selects nor writes (its rows keep NULL and count under their result); the
-- campaigncall JSON does not carry it, so the wire stays the platform's.
-- At most 64 characters (longer reasons are cut), so the index below fits InnoDB's key limit.
ALTER TABLE campaign_campaigncalls ADD COLUMN IF NOT EXISTS reason VARCHAR(64) NULL;

-- Counting one campaign's campaigncalls by status, result and reason reads only this index
-- (covering: tm_delete is in it too). It replaces the same index without the reason.
CREATE INDEX IF NOT EXISTS idx_campaign_campaigncalls_campaign_status_reason
  ON campaign_campaigncalls(campaign_id, status, result, reason, tm_delete);
DROP INDEX IF EXISTS idx_campaign_campaigncalls_campaign_status_result ON campaign_campaigncalls;
