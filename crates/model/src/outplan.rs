//! The outplan: a campaign's dial settings (caller id, retry interval, tries per destination).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::json::opt_time;
use super::{Address, RetryRules};

/// Dial settings shared by campaigns (docs/contract.md#json-records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outplan {
    /// Outplan id.
    pub id: Uuid,
    /// Owner.
    pub customer_id: Uuid,
    /// Name.
    pub name: String,
    /// Free text.
    pub detail: String,
    /// Caller id; `null` when not set (a call campaign cannot dial without it).
    pub source: Option<Address>,
    /// Ring timeout in ms (stored and returned; call-manager applies its own).
    pub dial_timeout: i32,
    /// Minimum time between two attempts on one target, in ms.
    pub try_interval: i32,
    /// Maximum attempts for destination 0.
    pub max_try_count_0: i32,
    /// Maximum attempts for destination 1.
    pub max_try_count_1: i32,
    /// Maximum attempts for destination 2.
    pub max_try_count_2: i32,
    /// Maximum attempts for destination 3.
    pub max_try_count_3: i32,
    /// Maximum attempts for destination 4.
    pub max_try_count_4: i32,
    /// Created at.
    #[serde(with = "opt_time")]
    pub tm_create: Option<DateTime<Utc>>,
    /// Last updated at.
    #[serde(with = "opt_time")]
    pub tm_update: Option<DateTime<Utc>>,
    /// Soft-deleted at.
    #[serde(with = "opt_time")]
    pub tm_delete: Option<DateTime<Utc>>,
    /// What follows each hangup reason (docs/contact-strategy.md#retry-rules); omitted when
    /// unset, so an outplan without it has the platform's bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_rules: Option<RetryRules>,
    /// A `normal` hangup that talked less is not a reach (docs/contact-strategy.md#minimum-talk-time);
    /// omitted when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_talk_ms: Option<i32>,
}

impl Outplan {
    /// The five `max_try_count_i` values in destination order.
    pub fn max_try_counts(&self) -> [i32; 5] {
        [
            self.max_try_count_0,
            self.max_try_count_1,
            self.max_try_count_2,
            self.max_try_count_3,
            self.max_try_count_4,
        ]
    }
}
