-- What the live stats count per target rather than per campaigncall (docs/stats-and-sequences.md):
-- a row per (campaign, mark, target), so a target counts once however often the tick that
-- marks it is retried or races another. The Go service never reads it.
-- * `suppressed`: the target was ended untried because every destination with tries left is
--   on the suppression list (written before its end is asked of outdial-manager);
-- * `zone_fallback`: with `destination_local` calling hours, the target's destination has no
--   zone in the E.164 zone table and was checked in the campaign's zone.
-- The stats read one campaign's counts by the primary key's prefix (campaign_id, mark).
CREATE TABLE IF NOT EXISTS campaign_target_marks (
  campaign_id BINARY(16)  NOT NULL,
  mark        VARCHAR(32) NOT NULL,
  target_id   BINARY(16)  NOT NULL,
  tm_create   DATETIME(6) NOT NULL,
  PRIMARY KEY (campaign_id, mark, target_id)
);
