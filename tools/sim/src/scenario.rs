//! Call and flow scenarios: how a simulated call ends and how long things take.
//!
//! A `Scenario` is plain data (serde, so it can come from a JSON file or be built in a test) and a
//! seeded RNG turns it into concrete outcomes, so a run with the same seed and the same request order
//! is reproducible. Per-destination overrides let a test force an outcome, e.g. "destination 0 is
//! always busy", without touching the random weights for everything else. The random weights
//! draw the four everyday outcomes; an answering machine (`amd`), a voicemail (a short `normal`)
//! and a call that talks for a set time (`{"talk": ms}`) come from overrides.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// How a simulated call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Answered and talked; hangup reason `normal`.
    Answered,
    /// Busy; hangup reason `busy`.
    Busy,
    /// Rang out; hangup reason `noanswer`.
    NoAnswer,
    /// Network/carrier failure; hangup reason `failed`.
    Failed,
    /// Never ends: no `call_hangup` is ever published (a lost event, for robustness tests).
    Silent,
    /// Answered by a machine that the call's detection hung up: hangup reason `amd`, after
    /// [`AMD_DETECTION_MS`] of answer.
    Amd,
    /// A voicemail reached without detection: hangup reason `normal` after only
    /// [`VOICEMAIL_TALK_MS`] of talk.
    Voicemail,
    /// Answered and talked exactly this many ms; hangup reason `normal`.
    Talk(u64),
}

/// Talk time of a [`Outcome::Voicemail`] call, ms.
pub const VOICEMAIL_TALK_MS: u64 = 1_000;
/// Time from answer to the hangup of an [`Outcome::Amd`] call, ms.
pub const AMD_DETECTION_MS: u64 = 500;

impl Outcome {
    /// The call-manager `hangup_reason` of this outcome (`""` for `Silent`).
    pub fn hangup_reason(self) -> &'static str {
        match self {
            Outcome::Answered => "normal",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "noanswer",
            Outcome::Failed => "failed",
            Outcome::Silent => "",
            Outcome::Amd => "amd",
            Outcome::Voicemail | Outcome::Talk(_) => "normal",
        }
    }

    /// Whether a call with this outcome is answered once its ring time is over.
    pub fn answers(self) -> bool {
        !matches!(self, Outcome::Busy | Outcome::NoAnswer | Outcome::Failed)
    }
}

/// A duration range in milliseconds, sampled uniformly (`min == max` gives a fixed duration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsRange {
    /// Lower bound (inclusive), ms.
    pub min: u64,
    /// Upper bound (inclusive), ms; values below `min` are treated as `min`.
    pub max: u64,
}

impl MsRange {
    /// A fixed duration.
    pub const fn fixed(ms: u64) -> MsRange {
        MsRange { min: ms, max: ms }
    }

    /// A range `min..=max`.
    pub const fn new(min: u64, max: u64) -> MsRange {
        MsRange { min, max }
    }

    fn sample(&self, rng: &mut StdRng) -> Duration {
        let ms = if self.max <= self.min {
            self.min
        } else {
            rng.random_range(self.min..=self.max)
        };
        Duration::from_millis(ms)
    }
}

/// Relative weights of the random call outcomes (need not sum to 1; all zero means answered).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Weights {
    /// Weight of `Answered`.
    pub answered: f64,
    /// Weight of `Busy`.
    pub busy: f64,
    /// Weight of `NoAnswer`.
    pub noanswer: f64,
    /// Weight of `Failed`.
    pub failed: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            answered: 0.6,
            busy: 0.15,
            noanswer: 0.2,
            failed: 0.05,
        }
    }
}

impl Weights {
    /// Every call is answered.
    pub const fn always(outcome: Outcome) -> Weights {
        let mut w = Weights {
            answered: 0.0,
            busy: 0.0,
            noanswer: 0.0,
            failed: 0.0,
        };
        match outcome {
            // Drawn only through overrides; `instant` of them answers.
            Outcome::Answered
            | Outcome::Silent
            | Outcome::Amd
            | Outcome::Voicemail
            | Outcome::Talk(_) => w.answered = 1.0,
            Outcome::Busy => w.busy = 1.0,
            Outcome::NoAnswer => w.noanswer = 1.0,
            Outcome::Failed => w.failed = 1.0,
        }
        w
    }

    fn sample(&self, rng: &mut StdRng) -> Outcome {
        let parts = [
            (Outcome::Answered, self.answered),
            (Outcome::Busy, self.busy),
            (Outcome::NoAnswer, self.noanswer),
            (Outcome::Failed, self.failed),
        ];
        let clean = |w: f64| if w.is_finite() && w > 0.0 { w } else { 0.0 };
        let total: f64 = parts.iter().map(|(_, w)| clean(*w)).sum();
        if total <= 0.0 {
            return Outcome::Answered;
        }
        let mut x = rng.random::<f64>() * total;
        for (outcome, w) in parts {
            let w = clean(w);
            if x < w {
                return outcome;
            }
            x -= w;
        }
        Outcome::Failed
    }
}

/// Forces the outcome of calls to matching destinations. All given selectors must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// Destination index (0..4) of the outdial target the call was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_index: Option<usize>,
    /// The destination address' `target` (e.g. `+821100000002`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The forced outcome.
    pub outcome: Outcome,
}

impl Override {
    fn matches(&self, index: Option<usize>, target: &str) -> bool {
        let by_index = self.destination_index.is_none_or(|i| Some(i) == index);
        let by_target = self.target.as_deref().is_none_or(|t| t == target);
        by_index && by_target && (self.destination_index.is_some() || self.target.is_some())
    }
}

/// The planned life of one call, decided when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPlan {
    /// How it ends.
    pub outcome: Outcome,
    /// From creation until it is answered (`Answered`, `Silent`) or its ringing ends (the others).
    pub ring: Duration,
    /// From creation until the hangup (ring plus talk time for an answered call; `Silent` calls
    /// never hang up).
    pub duration: Duration,
}

/// Everything random or timed in the simulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Scenario {
    /// RNG seed.
    pub seed: u64,
    /// How long a call rings before it is answered, found busy, rings out or fails.
    pub ring_ms: MsRange,
    /// Talk time of an answered call (added to `ring_ms`).
    pub talk_ms: MsRange,
    /// Random outcome weights.
    pub weights: Weights,
    /// Forced outcomes, first match wins.
    pub overrides: Vec<Override>,
    /// How long an executed activeflow runs before `activeflow_deleted`.
    pub flow_ms: MsRange,
    /// Also publish `activeflow_deleted` for a call's activeflow after its hangup, as the platform
    /// does (campaign-manager must ignore it for call-type campaigncalls).
    pub call_activeflow_events: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            seed: 1,
            ring_ms: MsRange::new(500, 2000),
            talk_ms: MsRange::new(1000, 5000),
            weights: Weights::default(),
            overrides: Vec::new(),
            flow_ms: MsRange::new(1000, 3000),
            call_activeflow_events: false,
        }
    }
}

impl Scenario {
    /// Every call and flow ends at once with `outcome` (benchmarks, fast tests).
    pub fn instant(outcome: Outcome) -> Scenario {
        Scenario {
            ring_ms: MsRange::fixed(0),
            talk_ms: MsRange::fixed(0),
            flow_ms: MsRange::fixed(0),
            weights: Weights::always(outcome),
            ..Scenario::default()
        }
    }

    /// Read a scenario from JSON (missing fields take the defaults).
    pub fn from_json(text: &str) -> Result<Scenario, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Add a forced outcome for destination index `index`.
    pub fn with_index_override(mut self, index: usize, outcome: Outcome) -> Scenario {
        self.overrides.push(Override {
            destination_index: Some(index),
            target: None,
            outcome,
        });
        self
    }

    /// A fresh RNG for this scenario's seed.
    pub fn rng(&self) -> StdRng {
        StdRng::seed_from_u64(self.seed)
    }

    /// Decide a call's outcome, how long it rings and when it hangs up (from creation).
    pub fn plan_call(
        &self,
        rng: &mut StdRng,
        destination_index: Option<usize>,
        target: &str,
    ) -> CallPlan {
        let forced = self
            .overrides
            .iter()
            .find(|o| o.matches(destination_index, target))
            .map(|o| o.outcome);
        let outcome = forced.unwrap_or_else(|| self.weights.sample(rng));
        let ring = self.ring_ms.sample(rng);
        let duration = match outcome {
            Outcome::Answered => ring + self.talk_ms.sample(rng),
            Outcome::Amd => ring + Duration::from_millis(AMD_DETECTION_MS),
            Outcome::Voicemail => ring + Duration::from_millis(VOICEMAIL_TALK_MS),
            Outcome::Talk(ms) => ring + Duration::from_millis(ms),
            Outcome::Busy | Outcome::NoAnswer | Outcome::Failed | Outcome::Silent => ring,
        };
        CallPlan {
            outcome,
            ring,
            duration,
        }
    }

    /// How long an activeflow runs.
    pub fn plan_flow(&self, rng: &mut StdRng) -> Duration {
        self.flow_ms.sample(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_plan() {
        let s = Scenario::default();
        let (mut a, mut b) = (s.rng(), s.rng());
        let pa: Vec<_> = (0..50)
            .map(|_| s.plan_call(&mut a, Some(0), "+1"))
            .collect();
        let pb: Vec<_> = (0..50)
            .map(|_| s.plan_call(&mut b, Some(0), "+1"))
            .collect();
        assert_eq!(pa, pb);
        for plan in pa {
            assert!(plan.duration <= Duration::from_millis(7000));
            assert!(plan.ring <= plan.duration);
            assert_ne!(plan.outcome, Outcome::Silent);
        }
    }

    #[test]
    fn weights_roughly_respected() {
        let s = Scenario {
            weights: Weights {
                answered: 3.0,
                busy: 1.0,
                noanswer: 0.0,
                failed: 0.0,
            },
            ..Scenario::instant(Outcome::Answered)
        };
        let mut rng = s.rng();
        let answered = (0..4000)
            .filter(|_| s.plan_call(&mut rng, None, "x").outcome == Outcome::Answered)
            .count();
        assert!((2700..3300).contains(&answered), "{answered}");
    }

    #[test]
    fn overrides_win_and_need_a_selector() {
        let s = Scenario::instant(Outcome::Answered)
            .with_index_override(0, Outcome::Busy)
            .with_index_override(9, Outcome::Failed);
        let mut rng = s.rng();
        assert_eq!(s.plan_call(&mut rng, Some(0), "a").outcome, Outcome::Busy);
        assert_eq!(
            s.plan_call(&mut rng, Some(1), "a").outcome,
            Outcome::Answered
        );
        assert_eq!(s.plan_call(&mut rng, None, "a").outcome, Outcome::Answered);
        let by_target = Scenario {
            overrides: vec![Override {
                destination_index: None,
                target: Some("+9".into()),
                outcome: Outcome::NoAnswer,
            }],
            ..Scenario::instant(Outcome::Answered)
        };
        assert_eq!(
            by_target.plan_call(&mut rng, None, "+9").outcome,
            Outcome::NoAnswer
        );
        let empty = Override {
            destination_index: None,
            target: None,
            outcome: Outcome::Busy,
        };
        assert!(!empty.matches(Some(0), "x"));
    }

    #[test]
    fn json_defaults_and_reasons() {
        let s = Scenario::from_json(r#"{"seed":7,"ring_ms":{"min":5,"max":5},"overrides":[{"destination_index":0,"outcome":"busy"}]}"#).unwrap();
        assert_eq!(s.seed, 7);
        assert_eq!(s.ring_ms, MsRange::fixed(5));
        assert_eq!(s.talk_ms, Scenario::default().talk_ms);
        assert_eq!(s.overrides[0].outcome, Outcome::Busy);
        assert!(Scenario::from_json(r#"{"weights":{"answered":"x"}}"#).is_err());
        assert_eq!(Outcome::NoAnswer.hangup_reason(), "noanswer");
        assert_eq!(Outcome::Answered.hangup_reason(), "normal");
    }

    #[test]
    fn outcomes_by_destination_with_their_reason_and_talk() {
        let s = Scenario::from_json(
            r#"{"ring_ms":{"min":100,"max":100},"overrides":[
                {"destination_index":0,"outcome":"amd"},
                {"destination_index":1,"outcome":"voicemail"},
                {"destination_index":2,"outcome":{"talk":8000}},
                {"target":"+9","outcome":"busy"}]}"#,
        )
        .unwrap();
        let mut rng = s.rng();
        // (index, target, outcome, reason, duration ms)
        let table = [
            (Some(0), "+1", Outcome::Amd, "amd", 100 + AMD_DETECTION_MS),
            (
                Some(1),
                "+1",
                Outcome::Voicemail,
                "normal",
                100 + VOICEMAIL_TALK_MS,
            ),
            (Some(2), "+1", Outcome::Talk(8000), "normal", 8100),
            (Some(3), "+9", Outcome::Busy, "busy", 100),
        ];
        for (index, target, outcome, reason, ms) in table {
            let p = s.plan_call(&mut rng, index, target);
            assert_eq!(p.outcome, outcome, "{index:?}");
            assert_eq!(p.outcome.hangup_reason(), reason);
            assert_eq!(p.duration, Duration::from_millis(ms), "{outcome:?}");
            assert_eq!(p.outcome.answers(), outcome != Outcome::Busy);
        }
        assert_eq!(
            serde_json::to_string(&Outcome::Talk(5)).unwrap(),
            r#"{"talk":5}"#
        );
    }
}
