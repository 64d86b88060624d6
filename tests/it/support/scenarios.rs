//! Simulator scenarios and service settings shared by the black-box tests.

#![allow(dead_code)]

use campaign_manager::config::Settings;
use campaign_sim::{MsRange, Outcome, Override, Scenario};

/// Calls never hang up by themselves; activeflows never end by themselves.
pub fn silent() -> Scenario {
    Scenario {
        overrides: vec![Override {
            destination_index: Some(0),
            target: None,
            outcome: Outcome::Silent,
        }],
        flow_ms: MsRange::fixed(3_600_000),
        ..Scenario::instant(Outcome::Answered)
    }
}

/// A few tick workers with short delays, so campaigns dial within a test's patience.
pub fn fast_ticks(s: &mut Settings) {
    s.workers = 2;
    s.first_tick_ms = 100;
    s.dial_tick_ms = 100;
    s.wait_tick_ms = 300;
}
