-- Pacing of a campaign (CONTRACT.md §15): the JSON `pacing` field, NULL when unset. A
-- nullable column: the platform's Go service selects explicit columns and never sees it.
ALTER TABLE campaign_campaigns ADD COLUMN IF NOT EXISTS pacing JSON NULL;
