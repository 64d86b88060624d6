-- Customer-wide dial limits (docs/contact-strategy.md "Customer-wide limits"): one row per
-- customer that has any, holding the same two limits as a campaign's pacing, applied to all of
-- the customer's campaigns together. No row: no limit. A cleared limit deletes the row.
-- The Go service never reads it.
--
-- The dial's transaction locks the customer's row (`FOR UPDATE` on the primary key), which
-- serialises the dials of one customer, then counts the customer's open campaigncalls and reads
-- their newest creation times: the two indexes below make both a short range.
CREATE TABLE IF NOT EXISTS campaign_customer_limits (
  customer_id          BINARY(16)  NOT NULL,
  max_concurrent_calls INTEGER     NULL,
  dials_per_second     DOUBLE      NULL,
  tm_update            DATETIME(6) NOT NULL,
  PRIMARY KEY (customer_id)
);

-- A customer's open campaigncalls (`dialing`, `progressing`): a range of this index.
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigncalls'
                    AND index_name = 'idx_campaign_campaigncalls_customer_status') = 0,
  'CREATE INDEX idx_campaign_campaigncalls_customer_status ON campaign_campaigncalls(customer_id, status)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;

-- A customer's newest dials (the customer's dial rate): the end of this index.
SET @ddl = IF((SELECT COUNT(*) FROM information_schema.statistics
                  WHERE table_schema = DATABASE() AND table_name = 'campaign_campaigncalls'
                    AND index_name = 'idx_campaign_campaigncalls_customer_tm_create') = 0,
  'CREATE INDEX idx_campaign_campaigncalls_customer_tm_create ON campaign_campaigncalls(customer_id, tm_create)', 'DO 0');
PREPARE ddl FROM @ddl;
EXECUTE ddl;
DEALLOCATE PREPARE ddl;
