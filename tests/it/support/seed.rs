//! A seeded random generator for randomised tests: each test prints its seed, and
//! `TEST_SEED=<n>` re-runs it with the same random choices.

use rand::SeedableRng;
use rand::rngs::StdRng;

/// A generator for `test`, seeded from `TEST_SEED` when set, otherwise at random; the seed is
/// printed (shown with the test's output when it fails).
pub fn seeded_rng(test: &str) -> StdRng {
    let seed = match std::env::var("TEST_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("TEST_SEED must be an unsigned integer, got {s:?}")),
        Err(_) => rand::random(),
    };
    eprintln!("{test}: random seed {seed} (re-run with TEST_SEED={seed})");
    StdRng::seed_from_u64(seed)
}
