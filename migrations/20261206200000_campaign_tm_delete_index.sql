-- The platform's index on campaign_campaigns(tm_delete) (bin-dbscheme-manager revision
-- ab1507b96589): the orphaned-flow reconcile pass reads the campaigns deleted in the last days,
-- newest first (`WHERE tm_delete >= ? ORDER BY tm_delete DESC LIMIT ?`), a short range of it.
-- On the platform's database it already exists, so it is created only when missing (the
-- pattern of 20220425000000_platform_tables.sql).
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigns'
                    AND index_name = 'idx_campaign_campaigns_tm_delete') = 0,
  'CREATE INDEX idx_campaign_campaigns_tm_delete ON campaign_campaigns(tm_delete)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
