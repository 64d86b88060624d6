-- The Rust service's own bookkeeping of dials (the platform's Go service never reads these).
-- New tables rather than new columns on campaign_campaigncalls: a platform database may already
-- hold campaigncalls that repeat a (target, destination, try), and a unique key over them would
-- refuse to apply. Only dials recorded by this service are keyed here.

-- Per campaign, the highest tick sequence number that recorded a dial: the fencing token.
-- A tick whose number is lower (a stale tick of a re-seeded chain) records nothing.
CREATE TABLE IF NOT EXISTS campaign_dial_fences (
  campaign_id BINARY(16)      NOT NULL,
  seq         BIGINT UNSIGNED NOT NULL,
  tm_update   DATETIME(6)     NOT NULL,
  PRIMARY KEY (campaign_id)
);

-- One row per dial attempt recorded by this service: at most one per (target, destination,
-- try), the step of the dial that is known to have completed, and when the campaigncall
-- repair looks at it next.
CREATE TABLE IF NOT EXISTS campaign_dials (
  campaigncall_id   BINARY(16)      NOT NULL,
  campaign_id       BINARY(16)      NOT NULL,
  outdial_target_id BINARY(16)      NOT NULL,
  destination_index INTEGER         NOT NULL,
  try_count         INTEGER         NOT NULL,
  seq               BIGINT UNSIGNED NOT NULL,
  step              VARCHAR(32)     NOT NULL,
  checks            INTEGER         NOT NULL DEFAULT 0,
  tm_create         DATETIME(6)     NOT NULL,
  tm_step           DATETIME(6)     NOT NULL,
  tm_next_check     DATETIME(6)     NULL,
  PRIMARY KEY (campaigncall_id),
  UNIQUE KEY uq_campaign_dials_try (outdial_target_id, destination_index, try_count)
);

-- The repair looks for open campaigncalls by age across all campaigns. (Created only when
-- missing: see 20220425000000_platform_tables.sql for the pattern.)
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigncalls'
                    AND index_name = 'idx_campaign_campaigncalls_status_tm_create') = 0,
  'CREATE INDEX idx_campaign_campaigncalls_status_tm_create ON campaign_campaigncalls(status, tm_create)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
