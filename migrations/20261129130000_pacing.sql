-- Pacing of a campaign (CONTRACT.md §15): the JSON `pacing` field, NULL when unset. A
-- nullable column: the platform's Go service selects explicit columns and never sees it.
-- Added only when missing (the pattern of 20220425000000_platform_tables.sql).
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.columns
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigns'
                    AND column_name = 'pacing') = 0,
  'ALTER TABLE campaign_campaigns ADD COLUMN pacing JSON NULL', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
