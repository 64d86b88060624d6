-- Follow-up work that must outlive the process that decided it (the Go service never reads
-- this). A row is written in the same transaction as the change it follows, and deleted once
-- its work is done; the campaigncall repair does what a dead or failed process left:
-- * `target_status`: the outdial target status that follows a finished campaigncall
--   (`subject_id` the target, `value` `idle` or `done`);
-- * `next_campaign`: starting a sequence's next campaign after its campaign ended with its
--   list exhausted (`subject_id` the next campaign).
CREATE TABLE IF NOT EXISTS campaign_outbox (
  id              BINARY(16)  NOT NULL,
  kind            VARCHAR(32) NOT NULL,
  campaign_id     BINARY(16)  NOT NULL,
  campaigncall_id BINARY(16)  NOT NULL,
  subject_id      BINARY(16)  NOT NULL,
  value           VARCHAR(16) NOT NULL,
  attempts        INTEGER     NOT NULL,
  tm_create       DATETIME(6) NOT NULL,
  tm_due          DATETIME(6) NOT NULL,
  PRIMARY KEY (id),
  KEY idx_campaign_outbox_tm_due (tm_due)
);
