//! Error types of the bus layer.
//!
//! `BusError` is for setup and publishing (infrastructure); `RpcError` is what an RPC call returns,
//! split so callers (peer clients) can map timeouts and open breakers to their own typed errors.

use std::time::Duration;

/// Failure of a bus operation other than an RPC call.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No live broker connection right now (outage or reconnect in progress).
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker or the client library rejected an operation.
    #[error("amqp error: {0}")]
    Amqp(#[from] lapin::Error),
    /// An operation did not complete in time.
    #[error("timed out after {0:?}: {1}")]
    Timeout(Duration, &'static str),
    /// An envelope could not be encoded.
    #[error("encode error: {0}")]
    Encode(#[from] serde_json::Error),
    /// A metric could not be registered.
    #[error("metrics registration failed: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A configured name or value is invalid (e.g. a queue name longer than 255 bytes).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A consumer did not get registered in time; `last_error` says why its last attempt
    /// failed (e.g. a binding the broker refused), if it got that far.
    #[error("{kind} on {queue} not registered within {after:?}{}", last_error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    NotRegistered {
        /// `rpc-server` or `subscriber`.
        kind: &'static str,
        /// The queue it consumes.
        queue: String,
        /// How long the start waited.
        after: Duration,
        /// The last session's failure.
        last_error: Option<String>,
    },
    /// The bus was shut down.
    #[error("bus is shut down")]
    Shutdown,
}

/// Failure of an RPC call (`RpcClient::call`).
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No reply within the call's timeout (counts as a breaker failure).
    #[error("rpc to {target} timed out after {after:?}")]
    Timeout {
        /// Target request queue.
        target: String,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The circuit breaker for the target is open; nothing was sent.
    #[error("circuit breaker is open for target: {target}")]
    BreakerOpen {
        /// Target request queue.
        target: String,
    },
    /// The request could not be sent or the reply path broke (counts as a breaker failure).
    #[error("rpc transport failure to {target}: {reason}")]
    Transport {
        /// Target request queue.
        target: String,
        /// Human readable cause.
        reason: String,
    },
    /// The request could not be encoded or the reply could not be decoded as a `Response`.
    #[error("rpc envelope decode/encode failure for {target}: {source}")]
    Decode {
        /// Target request queue.
        target: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

impl RpcError {
    /// Whether the circuit breaker counts this outcome as a transport failure.
    pub fn is_transport_failure(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Transport { .. })
    }
}

/// Turn a configured name into an AMQP short string without panicking on over-long input.
pub fn short(s: &str) -> Result<lapin::types::ShortString, BusError> {
    lapin::types::ShortString::try_new(s).map_err(|e| BusError::Config(format!("{s:.40}...: {e}")))
}
