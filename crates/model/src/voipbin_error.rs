//! The platform's typed error body (`data_type: voipbin_error`, docs/contract.md#errors). Services
//! raise it and forward it unchanged, so it is wire data like the records in this module.

use serde::{Deserialize, Serialize};

/// A typed error: `status` names the class (`NOT_FOUND`, `INVALID_ARGUMENT`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoipbinError {
    /// Error class, e.g. `NOT_FOUND`.
    pub status: String,
    /// Machine-readable reason, e.g. `CAMPAIGN_NOT_FOUND`.
    pub reason: String,
    /// Service that raised it.
    pub domain: String,
    /// Human-readable message.
    pub message: String,
    /// Extra details; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// The domain of errors raised by this service.
pub const DOMAIN: &str = "campaign-manager";

impl VoipbinError {
    /// An error of this service.
    pub fn new(status: &str, reason: &str, message: impl Into<String>) -> VoipbinError {
        VoipbinError {
            status: status.to_owned(),
            reason: reason.to_owned(),
            domain: DOMAIN.to_owned(),
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// The HTTP-like status code of the error class.
    pub fn status_code(&self) -> u16 {
        match self.status.as_str() {
            "INVALID_ARGUMENT" => 400,
            "UNAUTHENTICATED" => 401,
            "PAYMENT_REQUIRED" => 402,
            "PERMISSION_DENIED" => 403,
            "NOT_FOUND" => 404,
            "ALREADY_EXISTS" | "FAILED_PRECONDITION" => 409,
            "RESOURCE_EXHAUSTED" => 429,
            "UNAVAILABLE" => 503,
            _ => 500,
        }
    }
}

impl std::fmt::Display for VoipbinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({}): {}",
            self.status, self.reason, self.domain, self.message
        )
    }
}
