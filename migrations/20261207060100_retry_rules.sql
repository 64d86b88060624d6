-- Retry rules by outcome and the minimum talk time of an outplan (docs/contact-strategy.md):
-- `retry_rules` (JSON object by hangup reason) and `min_talk_ms` (INTEGER), NULL when unset.
-- Nullable columns: the platform's Go service selects explicit columns and never sees them,
-- and its rows keep NULL. Added only when missing (the pattern of 20261129130000_pacing.sql).
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.columns
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_outplans'
                    AND column_name = 'retry_rules') = 0,
  'ALTER TABLE campaign_outplans ADD COLUMN retry_rules JSON NULL', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;

SET @ddl = IF((SELECT COUNT(*) FROM information_schema.columns
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_outplans'
                    AND column_name = 'min_talk_ms') = 0,
  'ALTER TABLE campaign_outplans ADD COLUMN min_talk_ms INTEGER NULL', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
