-- The do-not-call list: per customer, the targets no campaign of the customer may dial
-- (docs/contact-strategy.md). The Go service never reads it.
--
-- `target` is normalised before it is stored (an E.164 number `+<digits>`, any other address
-- target trimmed and lower-cased), so the dial's lookup is one equality on the unique key
-- (customer_id, target), which also makes a second entry for the same target impossible:
-- a duplicate create returns the entry that is there. An entry is removed by deleting its row.
-- `tm_expire` NULL never expires; otherwise the entry stops suppressing once MySQL's clock
-- passes it. VARCHAR(250): customer_id (16 bytes) + 250 utf8mb3 characters (750 bytes) fit
-- the 767-byte key limit of the oldest row formats, and InnoDB's 3072 bytes with utf8mb4.
-- The list route reads a customer's entries newest first by the second index.
CREATE TABLE IF NOT EXISTS campaign_suppressions (
  id          BINARY(16)   NOT NULL,
  customer_id BINARY(16)   NOT NULL,
  target      VARCHAR(250) NOT NULL,
  reason      VARCHAR(255) NOT NULL,
  tm_expire   DATETIME(6)  NULL,
  tm_create   DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY idx_campaign_suppressions_customer_target (customer_id, target),
  KEY idx_campaign_suppressions_customer_create (customer_id, tm_create)
);
