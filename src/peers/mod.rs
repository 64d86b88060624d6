//! Typed clients of the platform services campaign-manager calls
//! (docs/contract.md#outbound-calls): one trait per service, mocked with `mockall` in tests
//! (feature `mocks`, never in a release build), implemented over the bus's RPC client by
//! [`BusPeers`]. Errors say whether trying again later can help ([`PeerError::is_transient`]),
//! which is how the tick tells "back off" from "stop the campaign".

mod bus_peers;

use async_trait::async_trait;
#[cfg(any(test, feature = "mocks"))]
use mockall::automock;
use uuid::Uuid;

use crate::model::{
    Action, Activeflow, Address, Call, Flow, Outdial, OutdialTarget, Queue, TargetStatus,
    VoipbinError,
};

pub use bus_peers::BusPeers;

/// What a peer call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    /// No reply in time.
    #[error("{target} did not answer in time")]
    Timeout {
        /// Request queue.
        target: String,
    },
    /// The breaker for the target is open; nothing was sent.
    #[error("circuit breaker is open for target: {target}")]
    BreakerOpen {
        /// Request queue.
        target: String,
    },
    /// The broker could not carry the request.
    #[error("transport failure to {target}: {reason}")]
    Transport {
        /// Request queue.
        target: String,
        /// Cause.
        reason: String,
    },
    /// The peer answered with a status ≥ 300, possibly with its typed error.
    #[error("{target} answered {status}{}", typed.as_ref().map(|t| format!(": {t}")).unwrap_or_default())]
    Status {
        /// Request queue.
        target: String,
        /// Status code.
        status: u16,
        /// The peer's typed error, forwarded unchanged to our caller.
        typed: Option<Box<VoipbinError>>,
    },
    /// The reply body could not be read.
    #[error("unreadable reply from {target}: {reason}")]
    Decode {
        /// Request queue.
        target: String,
        /// Cause.
        reason: String,
    },
}

impl PeerError {
    /// Whether the same call may succeed later (timeouts, open breaker, transport, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            PeerError::Timeout { .. }
            | PeerError::BreakerOpen { .. }
            | PeerError::Transport { .. } => true,
            PeerError::Status { status, .. } => *status >= 500 || *status == 429,
            PeerError::Decode { .. } => false,
        }
    }

    /// Whether the peer said the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, PeerError::Status { status: 404, .. })
    }

    /// Whether the peer said so with its typed error (`NOT_FOUND`): the only answer that means
    /// "not found" for certain (a bare 404 may come from a route the peer does not know).
    pub fn is_typed_not_found(&self) -> bool {
        matches!(self, PeerError::Status { typed: Some(t), .. } if t.status == "NOT_FOUND")
    }

    /// Whether a create request certainly took no effect: the peer refused it with a 4xx, or
    /// the breaker kept it from being sent. A timeout, a transport failure, an unreadable reply
    /// or a 5xx leave the outcome unknown: call-manager answers a bare 500 for errors after it
    /// inserted the call row.
    pub fn is_refusal(&self) -> bool {
        match self {
            PeerError::BreakerOpen { .. } => true,
            PeerError::Status { status, .. } => *status < 500,
            PeerError::Timeout { .. } | PeerError::Transport { .. } | PeerError::Decode { .. } => {
                false
            }
        }
    }
}

/// Short alias.
pub type PeerResult<T> = Result<T, PeerError>;

/// outdial-manager: contact lists and their targets.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait OutdialManager: Send + Sync {
    /// `GET /v1/outdials/<id>`.
    async fn get_outdial(&self, outdial_id: Uuid) -> PeerResult<Outdial>;
    /// `PUT /v1/outdials/<id>/campaign_id`.
    async fn set_outdial_campaign(&self, outdial_id: Uuid, campaign_id: Uuid) -> PeerResult<()>;
    /// `GET /v1/outdials/<id>/available?try_count_0..4=<max>&limit=<n>`.
    async fn available_targets(
        &self,
        outdial_id: Uuid,
        max_try_counts: [i32; 5],
        limit: u32,
    ) -> PeerResult<Vec<OutdialTarget>>;
    /// `POST /v1/outdialtargets/<id>/progressing`.
    async fn set_target_progressing(
        &self,
        target_id: Uuid,
        destination_index: i32,
    ) -> PeerResult<()>;
    /// `PUT /v1/outdialtargets/<id>/status` (`idle` or `done`).
    async fn set_target_status(&self, target_id: Uuid, status: TargetStatus) -> PeerResult<()>;
    /// `GET /v1/outdialtargets/<id>`: the target with its outdial and status. A target it does
    /// not have is its typed 404 (`OUTDIAL_TARGET_NOT_FOUND`; older versions answered a bare
    /// 400, which reads as an unknown answer).
    async fn get_target(&self, target_id: Uuid) -> PeerResult<OutdialTarget>;
}

/// What call-manager needs to place a campaign call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRequest {
    /// Call id chosen by us (the campaigncall's reference id).
    pub call_id: Uuid,
    /// Owner.
    pub customer_id: Uuid,
    /// Flow to run on answer.
    pub flow_id: Uuid,
    /// Activeflow id chosen by us.
    pub activeflow_id: Uuid,
    /// Caller id.
    pub source: Address,
    /// Who to call.
    pub destination: Address,
}

/// call-manager.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait CallManager: Send + Sync {
    /// `POST /v1/calls/<call_id>`. Not idempotent at call-manager: never repeat it to learn
    /// whether a call exists; read it with [`CallManager::get_call`].
    async fn create_call(&self, call: &CallRequest) -> PeerResult<()>;
    /// `GET /v1/calls/<call_id>`: the call, or `None` when call-manager answers its typed 404
    /// (`CALL_NOT_FOUND`: it has no row of the call); any other failure (its bare 500, a bare
    /// 404) is an error.
    async fn get_call(&self, call_id: Uuid) -> PeerResult<Option<Call>>;
    /// `POST /v1/calls/<call_id>/hangup`: call-manager starts hanging the call up and answers
    /// the call as it is then: `terminating` (it was answered; it ends with `normal`),
    /// `canceling` (not answered yet; it ends with `cancel`), or, for a call already ending or
    /// ended, unchanged. Its `call_hangup` event follows. A bare 500 for any error, an unknown
    /// call included (so a failure says nothing about whether the call exists).
    async fn hangup_call(&self, call_id: Uuid) -> PeerResult<Call>;
}

/// flow-manager: flows and activeflows.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait FlowManager: Send + Sync {
    /// `POST /v1/flows` (type campaign, persisted).
    async fn create_flow(&self, customer_id: Uuid, actions: &[Action]) -> PeerResult<Flow>;
    /// `PUT /v1/flows/<id>/actions`.
    async fn update_flow_actions(&self, flow_id: Uuid, actions: &[Action]) -> PeerResult<()>;
    /// `DELETE /v1/flows/<id>`.
    async fn delete_flow(&self, flow_id: Uuid) -> PeerResult<()>;
    /// `GET /v1/flows/<id>`: the flow (a deleted one too, with `tm_delete`), or `None` when
    /// flow-manager answers its typed 404; any other failure is an error.
    async fn get_flow(&self, flow_id: Uuid) -> PeerResult<Option<Flow>>;
    /// `POST /v1/activeflows` with reference type `campaign` and the campaigncall as reference.
    async fn create_activeflow(
        &self,
        activeflow_id: Uuid,
        customer_id: Uuid,
        flow_id: Uuid,
        campaigncall_id: Uuid,
    ) -> PeerResult<Activeflow>;
    /// `POST /v1/activeflows/<id>/execute`.
    async fn execute_activeflow(&self, activeflow_id: Uuid) -> PeerResult<()>;
    /// `GET /v1/activeflows/<id>`: the activeflow, or `None` when flow-manager answers its
    /// typed 404 (`ACTIVEFLOW_NOT_FOUND`); any other failure (its bare 400 for a failed read) is
    /// an error.
    async fn get_activeflow(&self, activeflow_id: Uuid) -> PeerResult<Option<Activeflow>>;
}

/// queue-manager.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait QueueManager: Send + Sync {
    /// `GET /v1/queues/<id>`.
    async fn get_queue(&self, queue_id: Uuid) -> PeerResult<Queue>;
    /// Number of agents with status `available` (`GET /v1/queues/<id>/agents`).
    async fn available_agents(&self, queue_id: Uuid) -> PeerResult<usize>;
}

/// webhook-manager.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait WebhookManager: Send + Sync {
    /// `POST /v1/webhooks`: deliver `{type, data}` to the customer's webhook.
    async fn send(
        &self,
        customer_id: Uuid,
        event_type: &str,
        data: serde_json::Value,
    ) -> PeerResult<()>;
}

/// The peer a dial asks for its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialPeer {
    /// call-manager (`call` campaigns).
    Call,
    /// flow-manager (`flow` campaigns).
    Flow,
}

/// Whether a request to a dial's peer would be sent now. The tick asks before it claims a
/// target: outdial-manager's claim adds a try that is never taken back, so it is made only when
/// the call request can follow.
pub trait DialGate: Send + Sync {
    /// Whether the circuit breaker of `peer` refuses requests now (open).
    fn is_refusing(&self, peer: DialPeer) -> bool;
}

/// A gate that never refuses (peers without a breaker, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenGate;

impl DialGate for OpenGate {
    fn is_refusing(&self, _peer: DialPeer) -> bool {
        false
    }
}

/// All peers, as the service layer holds them.
#[derive(Clone)]
pub struct Peers {
    /// outdial-manager.
    pub outdial: std::sync::Arc<dyn OutdialManager>,
    /// call-manager.
    pub call: std::sync::Arc<dyn CallManager>,
    /// flow-manager.
    pub flow: std::sync::Arc<dyn FlowManager>,
    /// queue-manager.
    pub queue: std::sync::Arc<dyn QueueManager>,
    /// webhook-manager.
    pub webhook: std::sync::Arc<dyn WebhookManager>,
    /// Whether a dial's call request can be sent now.
    pub gate: std::sync::Arc<dyn DialGate>,
}

impl Peers {
    /// Every peer over one bus client.
    pub fn over_bus(peers: BusPeers) -> Peers {
        let p = std::sync::Arc::new(peers);
        Peers {
            outdial: p.clone(),
            call: p.clone(),
            flow: p.clone(),
            queue: p.clone(),
            webhook: p.clone(),
            gate: p,
        }
    }
}
