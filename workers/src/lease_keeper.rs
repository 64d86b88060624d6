//! Keeps the leases of this process' running ticks fresh, so a slow tick is not mistaken for a
//! lost chain, while a killed process' ticks stop being renewed and their chains are re-seeded
//! within one lease. A tick past its deadline (`max_tick`) is not renewed either: a hung tick
//! (say, a database socket that stopped answering) must not hold its chain forever.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::chain_state::ChainState;

/// The ticks running in this process: chain id → the seq the chain moved to when claimed, and
/// the tick's deadline.
#[derive(Clone, Default)]
pub(crate) struct RunningTicks(Arc<Mutex<HashMap<String, (u64, Instant)>>>);

impl RunningTicks {
    pub(crate) fn insert(&self, id: &str, claimed_seq: u64, deadline: Instant) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(id.to_owned(), (claimed_seq, deadline));
        }
    }

    pub(crate) fn remove(&self, id: &str, claimed_seq: u64) {
        if let Ok(mut map) = self.0.lock()
            && map.get(id).map(|(seq, _)| *seq) == Some(claimed_seq)
        {
            map.remove(id);
        }
    }

    /// The running ticks still inside their deadline, as (id, claimed seq).
    pub(crate) fn snapshot(&self) -> Vec<(String, u64)> {
        let now = Instant::now();
        match self.0.lock() {
            Ok(map) => map
                .iter()
                .filter(|(_, (_, deadline))| *deadline > now)
                .map(|(k, (seq, _))| (k.clone(), *seq))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// Renew the leases of running ticks every `lease / 3` until `stopped` turns true.
/// Keeps renewing during shutdown while ticks still run, so finishing ticks keep their chains.
pub(crate) async fn keep_leases(
    state: ChainState,
    running: RunningTicks,
    lease: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let period = lease / 3;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let ticks = running.snapshot();
        for chunk in ticks.chunks(500) {
            if let Err(e) = state.renew(chunk, lease).await {
                tracing::warn!(error = %e, "renewing tick leases failed");
            }
        }
    }
}
