-- Live stats (GET /v1/campaigns/<id>/stats) and campaign sequences (next_campaign_id).
-- Indexes only, plus one side table the Go service never reads; campaign_campaigncalls and
-- campaign_campaigns keep their columns, so the Go service reading the same tables is unaffected.

-- Counting one campaign's campaigncalls by status and result reads only this index (covering:
-- tm_delete is in it too), never the rows.
CREATE INDEX IF NOT EXISTS idx_campaign_campaigncalls_campaign_status_result
  ON campaign_campaigncalls(campaign_id, status, result, tm_delete);

-- The latest dial and the dials of the last minute of one campaign: a short range of this index.
CREATE INDEX IF NOT EXISTS idx_campaign_campaigncalls_campaign_tm_create
  ON campaign_campaigncalls(campaign_id, tm_create);

-- When each campaign was last put to `run` (by this service). A campaign that ends because its
-- list is exhausted starts its next campaign only if it recorded a campaigncall since then.
CREATE TABLE IF NOT EXISTS campaign_runs (
  campaign_id BINARY(16)  NOT NULL,
  tm_run      DATETIME(6) NOT NULL,
  PRIMARY KEY (campaign_id)
);
