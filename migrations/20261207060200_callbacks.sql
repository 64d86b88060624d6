-- Callbacks: a callee who said "call me at 6" is dialed at 6 (docs/contact-strategy.md). The
-- Go service never reads it.
--
-- One row per callback of a campaign's outdial target on one destination. `tm_due` is the
-- time asked for (the API's `at`); before it no dial of the target is recorded (the dial's
-- transaction looks here), from it the campaign's tick dials it. `campaigncall_id` is set in
-- the transaction that records the callback's dial; the callback is served once that
-- campaigncall placed a call (a dial that placed none frees it again: see
-- src/store/callbacks.rs). The second index is the tick's lookup (a campaign's callbacks by
-- target) and the list route's order is the third. A deleted campaign's rows are deleted.
CREATE TABLE IF NOT EXISTS campaign_callbacks (
  id                BINARY(16)  NOT NULL,
  customer_id       BINARY(16)  NOT NULL,
  campaign_id       BINARY(16)  NOT NULL,
  outdial_target_id BINARY(16)  NOT NULL,
  destination_index INTEGER     NOT NULL,
  tm_due            DATETIME(6) NOT NULL,
  campaigncall_id   BINARY(16)  NULL,
  tm_create         DATETIME(6) NOT NULL,
  PRIMARY KEY (id),
  KEY idx_campaign_callbacks_campaign_target (campaign_id, outdial_target_id),
  KEY idx_campaign_callbacks_campaign_create (campaign_id, tm_create)
);
