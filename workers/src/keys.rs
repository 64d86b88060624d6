//! Every Redis key name in one place: the chain state this crate owns under
//! `"{namespace}:chain:"`, and the apalis-redis queue keys under `"{namespace}:"` (the queue is
//! named after the namespace) that stats and the feeder read directly.

/// Key names for one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) namespace: String,
    /// hash id → seq of the chain's next tick. A chain is live iff it has an entry here.
    pub(crate) seq: String,
    /// hash id → ms when the chain was (first) seeded; lets the reconciler spare chains started
    /// after it read the source of truth.
    pub(crate) born: String,
    /// zset id → due ms of the chain's pending tick (handed to apalis or not).
    pub(crate) next: String,
    /// zset id → due ms of pending ticks not yet handed to apalis.
    pub(crate) feed: String,
    /// zset id → ms until which the tick handed to apalis / running is trusted to be alive.
    pub(crate) lease: String,
    /// zset id → ms the running tick was claimed.
    pub(crate) running: String,
    /// The namespace's control record (hash): field `paused` = `"1"` while the cluster is paused,
    /// `"0"` otherwise. Written by `Chains::pause/resume` and by the feeder; its absence means the
    /// namespace was wiped (or never run), and then no tick is handed to apalis or claimed until a
    /// worker restores it (see [`feeder`](crate::feeder)).
    pub(crate) control: String,
    /// Reconciler leadership lock.
    pub(crate) reconciler_lock: String,
    /// How many chains the last reconciliation found wanted (a hint for the other processes'
    /// reconcilers, which slow down while nothing is live or wanted).
    pub(crate) wanted_count: String,
    /// Pub/sub channel of wake notices (see `wake`).
    pub(crate) wake: String,
    /// Prefix of per-second tick counters (`{prefix}{unix_second}`).
    pub(crate) ticks_prefix: String,
    /// apalis: scheduled jobs (zset, whole seconds).
    pub(crate) apalis_scheduled: String,
    /// apalis: jobs ready to fetch (list).
    pub(crate) apalis_active: String,
    /// apalis: finished job ids (set).
    pub(crate) apalis_done: String,
    /// apalis: dead job ids (set).
    pub(crate) apalis_dead: String,
    /// apalis: failed job ids (set; unused by apalis-redis 1.0 but read for completeness).
    pub(crate) apalis_failed: String,
    /// apalis: job payloads (hash id → bytes).
    pub(crate) apalis_data: String,
    /// apalis: job metadata hashes are `{apalis_meta}:{job id}`.
    pub(crate) apalis_meta: String,
    /// apalis: workers (zset name → last heartbeat, whole seconds).
    pub(crate) apalis_workers: String,
    /// apalis: wake-up list of idle workers.
    pub(crate) apalis_signal: String,
}

impl Keys {
    pub(crate) fn new(namespace: &str) -> Self {
        let ns = namespace;
        Self {
            namespace: ns.to_owned(),
            seq: format!("{ns}:chain:seq"),
            born: format!("{ns}:chain:born"),
            next: format!("{ns}:chain:next"),
            feed: format!("{ns}:chain:feed"),
            lease: format!("{ns}:chain:lease"),
            running: format!("{ns}:chain:running"),
            control: format!("{ns}:chain:control"),
            reconciler_lock: format!("{ns}:chain:reconciler"),
            wanted_count: format!("{ns}:chain:wanted"),
            wake: format!("{ns}:chain:wake"),
            ticks_prefix: format!("{ns}:chain:ticks:"),
            apalis_scheduled: format!("{ns}:scheduled"),
            apalis_active: format!("{ns}:active"),
            apalis_done: format!("{ns}:done"),
            apalis_dead: format!("{ns}:dead"),
            apalis_failed: format!("{ns}:failed"),
            apalis_data: format!("{ns}:data"),
            apalis_meta: format!("{ns}:meta"),
            apalis_workers: format!("{ns}:workers"),
            apalis_signal: format!("{ns}:signal"),
        }
    }

    pub(crate) fn ticks_at(&self, unix_second: u64) -> String {
        format!("{}{unix_second}", self.ticks_prefix)
    }
}
