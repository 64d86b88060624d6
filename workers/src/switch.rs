//! The durable off switch, as each worker process sees it.
//!
//! The Redis pause (`Chains::pause`) is fast but lives in Redis: a wiped namespace loses it, and
//! if every worker process restarted after the wipe nobody remembers it (see `feeder`). The
//! embedding application can keep a switch that outlives Redis ([`ChainSource::switched_off`];
//! the service keeps a row in MySQL). One task per process reads it every `switch_interval` and
//! publishes what it read; the feeder hands no tick to apalis and a delivered tick is handed back
//! instead of claimed unless the switch was read and said *on*. So a process that cannot read
//! the switch yet (just started, store down since start) holds its ticks: for the switch that
//! must not be lost, not knowing counts as off. After one good read a failed read keeps the last
//! state (a store hiccup neither stops nor starts the cluster).
//!
//! The task ends when every [`OffSwitch`] handle is gone; nothing needs to stop it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::ChainSource;

/// What a process last read from the durable switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Not read yet.
    Unknown,
    /// Ticking is allowed.
    On,
    /// Switched off by an operator.
    Off,
}

/// A handle on the switch as this process last read it; cheap to clone.
#[derive(Clone)]
pub(crate) struct OffSwitch {
    rx: watch::Receiver<Reading>,
}

impl OffSwitch {
    /// Starts reading `source`'s switch every `interval`; returns the handle.
    pub(crate) fn watch(source: Arc<dyn ChainSource>, interval: Duration) -> OffSwitch {
        let (tx, rx) = watch::channel(Reading::Unknown);
        tokio::spawn(read_until_unused(source, interval, tx));
        OffSwitch { rx }
    }

    /// Whether this process may hand ticks to apalis and start them.
    pub(crate) fn allows_ticks(&self) -> bool {
        *self.rx.borrow() == Reading::On
    }
}

async fn read_until_unused(
    source: Arc<dyn ChainSource>,
    interval: Duration,
    tx: watch::Sender<Reading>,
) {
    let mut failing = false;
    loop {
        match source.switched_off().await {
            Ok(off) => {
                let now = if off { Reading::Off } else { Reading::On };
                let before = tx.send_replace(now);
                if before != now && before != Reading::Unknown {
                    tracing::warn!(switched_off = off, "the durable tick switch changed");
                } else if before == Reading::Unknown && off {
                    tracing::warn!("ticking is switched off (durable switch); holding every tick");
                }
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        error = %e,
                        held = !(*tx.borrow() == Reading::On),
                        "cannot read the durable tick switch; keeping the last state read"
                    );
                }
                failing = true;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxError;
    use std::sync::Mutex;

    struct Switch(Mutex<Result<bool, String>>);

    #[async_trait::async_trait]
    impl ChainSource for Switch {
        async fn wanted(&self) -> Result<Vec<String>, BoxError> {
            Ok(Vec::new())
        }
        async fn switched_off(&self) -> Result<bool, BoxError> {
            let now = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
            now.map_err(Into::into)
        }
    }

    async fn settles(switch: &OffSwitch, allowed: bool) {
        for _ in 0..200 {
            if switch.allows_ticks() == allowed {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the switch never read allows_ticks = {allowed}");
    }

    #[tokio::test]
    async fn unknown_holds_then_follows_the_source_and_keeps_the_last_state_on_errors() {
        let source = Arc::new(Switch(Mutex::new(Err("store down".into()))));
        let switch = OffSwitch::watch(source.clone(), Duration::from_millis(5));
        // Never read: held.
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!switch.allows_ticks());
        let set = |v: Result<bool, String>| *source.0.lock().unwrap_or_else(|e| e.into_inner()) = v;
        set(Ok(false));
        settles(&switch, true).await;
        // A failed read keeps "on".
        set(Err("hiccup".into()));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(switch.allows_ticks());
        set(Ok(true));
        settles(&switch, false).await;
        // ... and keeps "off".
        set(Err("hiccup".into()));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!switch.allows_ticks());
    }
}
