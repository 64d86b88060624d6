-- Why each campaigncall ended, for the live stats' `by_reason`: the call's hangup
-- reason (`normal`, `busy`, `noanswer`, ...), `flow_ended` for a flow campaigncall, or what
-- the service decided (`not_placed`, `over_max_duration`, ...). A nullable column the Go
-- service never selects nor writes (its rows keep NULL and count under their result); the
-- campaigncall JSON does not carry it, so the wire stays the platform's.
-- At most 64 characters (longer reasons are cut), so the index below fits InnoDB's key limit.
-- Each step only when needed (the pattern of 20220425000000_platform_tables.sql).
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.columns
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigncalls'
                    AND column_name = 'reason') = 0,
  'ALTER TABLE campaign_campaigncalls ADD COLUMN reason VARCHAR(64) NULL', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;

-- Counting one campaign's campaigncalls by status, result and reason reads only this index
-- (covering: tm_delete is in it too). It replaces the same index without the reason.
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigncalls'
                    AND index_name = 'idx_campaign_campaigncalls_campaign_status_reason') = 0,
  'CREATE INDEX idx_campaign_campaigncalls_campaign_status_reason ON campaign_campaigncalls(campaign_id, status, result, reason, tm_delete)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigncalls'
                    AND index_name = 'idx_campaign_campaigncalls_campaign_status_result') > 0,
  'DROP INDEX idx_campaign_campaigncalls_campaign_status_result ON campaign_campaigncalls', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
