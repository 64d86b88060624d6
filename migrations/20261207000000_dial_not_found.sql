-- When the campaigncall repair first got the peer's typed 404 for a dial whose create was never
-- answered. "Never created" needs a second typed 404 more than the repair's margin later: a
-- request a stalled consumer of the peer already took may still land in between. NULL until a
-- first 404. Added only when missing (the pattern of 20220425000000_platform_tables.sql).
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.columns
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_dials'
                    AND column_name = 'tm_not_found') = 0,
  'ALTER TABLE campaign_dials ADD COLUMN tm_not_found DATETIME(6) NULL', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
