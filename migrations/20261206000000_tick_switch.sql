-- Operator records that must outlive Redis (the Go service never reads these).

-- The durable off switch of a tick namespace: while `paused` = 1, no tick worker of that
-- namespace hands a tick to apalis or starts one, whatever Redis holds (a flushed Redis loses
-- the Redis pause of `campaign-control queue drain`). Set by `campaign-control queue pause
-- --durable`, cleared by `queue resume`; every worker process reads it once a second.
CREATE TABLE IF NOT EXISTS campaign_tick_switches (
  namespace VARCHAR(191) NOT NULL,
  paused    TINYINT(1)   NOT NULL,
  reason    VARCHAR(255) NOT NULL,
  tm_update DATETIME(6)  NOT NULL,
  PRIMARY KEY (namespace)
);

-- The Go service's execute loops that `campaign-control campaign execute --all-running` started
-- on a rollback: one row per campaign, written before its `/execute` is sent (so a second run
-- never starts a second loop), `confirmed` once the reply came. Cleared by `queue resume`,
-- when this service takes the campaigns back.
CREATE TABLE IF NOT EXISTS campaign_loop_kicks (
  campaign_id BINARY(16)  NOT NULL,
  confirmed   TINYINT(1)  NOT NULL,
  tm_kick     DATETIME(6) NOT NULL,
  PRIMARY KEY (campaign_id)
);
