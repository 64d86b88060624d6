//! webhook-manager's state: accepted webhook requests, counted and kept (bounded) for tests.

use std::collections::VecDeque;

use serde_json::Value;

/// How many webhook bodies are kept (the count is unbounded).
pub const KEEP: usize = 10_000;

/// Accepted webhooks.
#[derive(Debug, Default)]
pub struct Webhooks {
    count: u64,
    recent: VecDeque<Value>,
}

impl Webhooks {
    /// Accept one webhook body.
    pub fn accept(&mut self, body: Value) {
        self.count += 1;
        if self.recent.len() == KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back(body);
    }

    /// How many were accepted in total.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The most recent bodies (at most `KEEP`), oldest first.
    pub fn recent(&self) -> Vec<Value> {
        self.recent.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_bounds() {
        let mut w = Webhooks::default();
        for i in 0..(KEEP + 5) {
            w.accept(serde_json::json!({ "i": i }));
        }
        assert_eq!(w.count(), (KEEP + 5) as u64);
        let r = w.recent();
        assert_eq!(r.len(), KEEP);
        assert_eq!(r[0]["i"], 5);
    }
}
