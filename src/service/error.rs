//! The service layer's error: what went wrong in terms a caller can act on. The api layer
//! maps it to status codes; nothing internal (SQL, broker detail) reaches the reply.

use crate::model::VoipbinError;
use crate::peers::PeerError;
use crate::store::StoreError;

/// What a business operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The campaign / campaigncall / outplan does not exist (or is deleted).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is malformed or a referenced resource is unusable.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The resource exists but is in the wrong state for this.
    #[error("failed precondition: {0}")]
    Precondition(String),
    /// The resource is in the wrong state for this, with the platform's reason for that state
    /// (e.g. `CAMPAIGN_NOT_STOPPED` for deleting a campaign that is not stopped).
    #[error("failed precondition: {reason}: {message}")]
    Refused {
        /// The typed error's `reason`.
        reason: &'static str,
        /// The typed error's `message`.
        message: &'static str,
    },
    /// An id given for a new resource is taken.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// A platform service failed.
    #[error("peer: {0}")]
    Peer(#[from] PeerError),
    /// Storage failed.
    #[error("store: {0}")]
    Store(StoreError),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidFilter(m) | StoreError::InvalidPage(m) => ServiceError::Invalid(m),
            other => ServiceError::Store(other),
        }
    }
}

/// Short alias.
pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    /// The typed error body for the reply, if the error has one.
    pub fn to_voipbin(&self) -> VoipbinError {
        match self {
            ServiceError::NotFound(kind) => {
                let (reason, message) = match *kind {
                    "campaign" => ("CAMPAIGN_NOT_FOUND", "The campaign was not found."),
                    "campaigncall" => {
                        ("CAMPAIGNCALL_NOT_FOUND", "The campaign call was not found.")
                    }
                    "outplan" => ("OUTPLAN_NOT_FOUND", "The outplan was not found."),
                    "suppression" => (
                        "SUPPRESSION_NOT_FOUND",
                        "The suppression list entry was not found.",
                    ),
                    "callback" => ("CALLBACK_NOT_FOUND", "The callback was not found."),
                    "outdial_target" => (
                        "OUTDIAL_TARGET_NOT_FOUND",
                        "The outdial target was not found in the campaign's outdial.",
                    ),
                    _ => ("NOT_FOUND", "The resource was not found."),
                };
                VoipbinError::new("NOT_FOUND", reason, message)
            }
            ServiceError::Invalid(m) => {
                VoipbinError::new("INVALID_ARGUMENT", "INVALID_ARGUMENT", m.clone())
            }
            ServiceError::Precondition(m) => {
                VoipbinError::new("FAILED_PRECONDITION", "FAILED_PRECONDITION", m.clone())
            }
            ServiceError::Refused { reason, message } => {
                VoipbinError::new("FAILED_PRECONDITION", reason, *message)
            }
            ServiceError::AlreadyExists(m) => {
                VoipbinError::new("ALREADY_EXISTS", "ALREADY_EXISTS", m.clone())
            }
            ServiceError::Peer(PeerError::Status { typed: Some(t), .. }) => (**t).clone(),
            ServiceError::Peer(p) if p.is_transient() => VoipbinError::new(
                "UNAVAILABLE",
                "UPSTREAM_UNAVAILABLE",
                "A platform service did not answer; try again later.",
            ),
            ServiceError::Peer(_) => VoipbinError::new(
                "INVALID_ARGUMENT",
                "UPSTREAM_REJECTED",
                "A platform service rejected the request.",
            ),
            ServiceError::Store(_) => VoipbinError::new("INTERNAL", "INTERNAL", "Internal error."),
        }
    }
}
