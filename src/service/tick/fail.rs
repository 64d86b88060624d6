//! Why a tick could not go on ([`Fail`]), and how the errors of the layers below become one.
//!
//! Owns the one decision every step of a tick shares: a failure either backs the chain off
//! (`Transient`, `Unanswered`) or ends it (`Permanent`). The `From` impls let `?` in any step
//! back off; a permanent failure never comes from a conversion, only from the check that can
//! never pass, where it is made. [`Ticker::tick`](super::Ticker::tick) turns a `Fail` into what
//! the chain is told.

use super::super::ServiceError;
use crate::peers::PeerError;

/// Why a tick could not go on.
pub(super) enum Fail {
    /// It may work later (a store or peer error, a refusal, an open breaker): back off.
    Transient(String),
    /// The campaign's last dials all ended unknown
    /// ([`UNKNOWN_STREAK_LIMIT`](super::UNKNOWN_STREAK_LIMIT)): back off.
    Unanswered(u32),
    /// It can never work: end the chain.
    Permanent(&'static str),
}

impl From<ServiceError> for Fail {
    fn from(e: ServiceError) -> Fail {
        match e {
            ServiceError::Peer(p) => p.into(),
            other => Fail::Transient(other.to_string()),
        }
    }
}

/// A peer failure in the middle of a tick backs off, whatever its kind: the checks that can
/// never pass (outdial gone, call campaign without a source...) end the chain as
/// [`Fail::Permanent`] where they are made, not here. A refusal only reads so in the reason.
impl From<PeerError> for Fail {
    fn from(e: PeerError) -> Fail {
        if e.is_transient() {
            Fail::Transient(e.to_string())
        } else {
            Fail::Transient(format!("peer refused: {e}"))
        }
    }
}

impl From<crate::store::StoreError> for Fail {
    fn from(e: crate::store::StoreError) -> Fail {
        Fail::Transient(e.to_string())
    }
}
