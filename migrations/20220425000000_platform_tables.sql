-- The three tables and indexes of the platform's campaign-manager (CONTRACT.md §9.1).
-- IF NOT EXISTS everywhere: on a platform database that already has them this changes
-- nothing, so the Rust service can adopt it in place. New columns or indexes go in new files.
-- An index or column is created only when information_schema says it is missing: the
-- statement is chosen in SQL and run through PREPARE/EXECUTE (`DO 0` when there is nothing to
-- do), which MySQL 8.0 and MariaDB both run, unlike MariaDB's `IF NOT EXISTS` on indexes and
-- columns. So the file can run again after an interruption, and changes nothing where the
-- platform already has what it creates.

CREATE TABLE IF NOT EXISTS campaign_campaigns (
  id               BINARY(16),
  customer_id      BINARY(16),
  type             VARCHAR(255),
  execute          VARCHAR(255),
  name             VARCHAR(255),
  detail           TEXT,
  status           VARCHAR(255),
  service_level    INTEGER,
  end_handle       VARCHAR(255),
  flow_id          BINARY(16),
  actions          JSON,
  outplan_id       BINARY(16),
  outdial_id       BINARY(16),
  queue_id         BINARY(16),
  next_campaign_id BINARY(16),
  tm_create        DATETIME(6),
  tm_update        DATETIME(6),
  tm_delete        DATETIME(6),
  PRIMARY KEY (id)
);
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigns'
                    AND index_name = 'idx_campaign_campaigns_customer_id') = 0,
  'CREATE INDEX idx_campaign_campaigns_customer_id ON campaign_campaigns(customer_id)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigns'
                    AND index_name = 'idx_campaign_campaigns_flow_id') = 0,
  'CREATE INDEX idx_campaign_campaigns_flow_id ON campaign_campaigns(flow_id)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigns'
                    AND index_name = 'idx_campaign_campaigns_outplan_id') = 0,
  'CREATE INDEX idx_campaign_campaigns_outplan_id ON campaign_campaigns(outplan_id)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigns'
                    AND index_name = 'idx_campaign_campaigns_outdial_id') = 0,
  'CREATE INDEX idx_campaign_campaigns_outdial_id ON campaign_campaigns(outdial_id)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigns'
                    AND index_name = 'idx_campaign_campaigns_queue_id') = 0,
  'CREATE INDEX idx_campaign_campaigns_queue_id ON campaign_campaigns(queue_id)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;

CREATE TABLE IF NOT EXISTS campaign_campaigncalls (
  id                BINARY(16),
  customer_id       BINARY(16),
  campaign_id       BINARY(16),
  outplan_id        BINARY(16),
  outdial_id        BINARY(16),
  outdial_target_id BINARY(16),
  queue_id          BINARY(16),
  activeflow_id     BINARY(16),
  flow_id           BINARY(16),
  reference_type    VARCHAR(255),
  reference_id      BINARY(16),
  status            VARCHAR(255),
  result            VARCHAR(255),
  source            JSON,
  destination       JSON,
  destination_index INTEGER,
  try_count         INTEGER,
  tm_create         DATETIME(6),
  tm_update         DATETIME(6),
  tm_delete         DATETIME(6),
  PRIMARY KEY (id)
);
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigncalls'
                    AND index_name = 'idx_campaign_campaigncalls_customer_id') = 0,
  'CREATE INDEX idx_campaign_campaigncalls_customer_id ON campaign_campaigncalls(customer_id)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigncalls'
                    AND index_name = 'idx_campaign_campaigncalls_campaign_id') = 0,
  'CREATE INDEX idx_campaign_campaigncalls_campaign_id ON campaign_campaigncalls(campaign_id)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigncalls'
                    AND index_name = 'idx_campaign_campaigncalls_outdial_target_id') = 0,
  'CREATE INDEX idx_campaign_campaigncalls_outdial_target_id ON campaign_campaigncalls(outdial_target_id)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigncalls'
                    AND index_name = 'idx_campaign_campaigncalls_activeflow_id') = 0,
  'CREATE INDEX idx_campaign_campaigncalls_activeflow_id ON campaign_campaigncalls(activeflow_id)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigncalls'
                    AND index_name = 'idx_campaign_campaigncalls_reference_id') = 0,
  'CREATE INDEX idx_campaign_campaigncalls_reference_id ON campaign_campaigncalls(reference_id)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigncalls'
                    AND index_name = 'idx_campaign_campaigncalls_campaign_id_status') = 0,
  'CREATE INDEX idx_campaign_campaigncalls_campaign_id_status ON campaign_campaigncalls(campaign_id, status)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;

CREATE TABLE IF NOT EXISTS campaign_outplans (
  id              BINARY(16),
  customer_id     BINARY(16),
  name            VARCHAR(255),
  detail          TEXT,
  source          JSON,
  dial_timeout    INTEGER,
  try_interval    INTEGER,
  max_try_count_0 INTEGER,
  max_try_count_1 INTEGER,
  max_try_count_2 INTEGER,
  max_try_count_3 INTEGER,
  max_try_count_4 INTEGER,
  tm_create       DATETIME(6),
  tm_update       DATETIME(6),
  tm_delete       DATETIME(6),
  PRIMARY KEY (id)
);
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_outplans'
                    AND index_name = 'idx_campaign_outplans_customer_id') = 0,
  'CREATE INDEX idx_campaign_outplans_customer_id ON campaign_outplans(customer_id)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
