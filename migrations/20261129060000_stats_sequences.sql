-- Live stats (GET /v1/campaigns/<id>/stats) and campaign sequences (next_campaign_id).
-- Indexes only, plus one side table the Go service never reads; campaign_campaigncalls and
-- campaign_campaigns keep their columns, so the Go service reading the same tables is unaffected.

-- Indexes are created only when missing (the pattern of 20220425000000_platform_tables.sql).

-- Counting one campaign's campaigncalls by status and result reads only this index (covering:
-- tm_delete is in it too), never the rows.
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigncalls'
                    AND index_name = 'idx_campaign_campaigncalls_campaign_status_result') = 0,
  'CREATE INDEX idx_campaign_campaigncalls_campaign_status_result ON campaign_campaigncalls(campaign_id, status, result, tm_delete)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;

-- The latest dial and the dials of the last minute of one campaign: a short range of this index.
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigncalls'
                    AND index_name = 'idx_campaign_campaigncalls_campaign_tm_create') = 0,
  'CREATE INDEX idx_campaign_campaigncalls_campaign_tm_create ON campaign_campaigncalls(campaign_id, tm_create)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;

-- When each campaign was last put to `run` (by this service). A campaign that ends because its
-- list is exhausted starts its next campaign only if it recorded a campaigncall since then.
CREATE TABLE IF NOT EXISTS campaign_runs (
  campaign_id BINARY(16)  NOT NULL,
  tm_run      DATETIME(6) NOT NULL,
  PRIMARY KEY (campaign_id)
);
