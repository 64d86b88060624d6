//! The peer traits over RabbitMQ RPC: builds each request of docs/contract.md#outbound-calls and reads the
//! reply the way the platform's callers do (typed error first, then status, then data).

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use uuid::Uuid;

use super::{
    CallManager, CallRequest, DialGate, DialPeer, FlowManager, OutdialManager, PeerError,
    PeerResult, QueueManager, WebhookManager,
};
use crate::bus::{Names, Request, Response, RpcClient, RpcError};
use crate::model::{
    Action, Activeflow, Call, Flow, Outdial, OutdialTarget, Queue, TargetStatus, VoipbinError,
    enum_str,
};

/// All peer clients over one RPC client.
#[derive(Clone)]
pub struct BusPeers {
    rpc: RpcClient,
    names: Names,
}

impl BusPeers {
    /// Peers reached through `rpc` at the queues named in `names`.
    pub fn new(rpc: RpcClient, names: Names) -> BusPeers {
        BusPeers { rpc, names }
    }

    async fn send(&self, target: &str, req: Request) -> PeerResult<Response> {
        let res = self.rpc.call(target, &req).await.map_err(|e| match e {
            RpcError::Timeout { target, .. } => PeerError::Timeout { target },
            RpcError::BreakerOpen { target } => PeerError::BreakerOpen { target },
            RpcError::Transport { target, reason } => PeerError::Transport { target, reason },
            RpcError::Decode { target, source } => PeerError::Decode {
                target,
                reason: source.to_string(),
            },
        })?;
        if res.data_type == "voipbin_error"
            && let Ok(typed) = res.data_as::<VoipbinError>()
        {
            return Err(PeerError::Status {
                target: target.to_owned(),
                status: typed.status_code(),
                typed: Some(Box::new(typed)),
            });
        }
        if res.status_code >= 300 {
            return Err(PeerError::Status {
                target: target.to_owned(),
                status: res.status_code,
                typed: None,
            });
        }
        Ok(res)
    }

    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        target: &str,
        method: &str,
        uri: String,
        body: Option<&B>,
    ) -> PeerResult<T> {
        let res = self.call_unit(target, method, uri, body).await?;
        res.data_as::<T>().map_err(|e| PeerError::Decode {
            target: target.to_owned(),
            reason: e.to_string(),
        })
    }

    async fn call_unit<B: Serialize + ?Sized>(
        &self,
        target: &str,
        method: &str,
        uri: String,
        body: Option<&B>,
    ) -> PeerResult<Response> {
        let mut req = Request::new(method, uri);
        if let Some(b) = body {
            req = req.with_json(b).map_err(|e| PeerError::Decode {
                target: target.to_owned(),
                reason: e.to_string(),
            })?;
        }
        self.send(target, req).await
    }
}

const NO_BODY: Option<&()> = None;

/// A read whose typed 404 means "there is none"; every other failure (a bare 404 included,
/// which older call-manager versions answered for any read error) is an error.
fn found<T>(r: PeerResult<T>) -> PeerResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_typed_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl OutdialManager for BusPeers {
    async fn get_outdial(&self, outdial_id: Uuid) -> PeerResult<Outdial> {
        self.call(
            &self.names.outdial_queue,
            "GET",
            format!("/v1/outdials/{outdial_id}"),
            NO_BODY,
        )
        .await
    }

    async fn set_outdial_campaign(&self, outdial_id: Uuid, campaign_id: Uuid) -> PeerResult<()> {
        let body = json!({ "campaign_id": campaign_id });
        self.call_unit(
            &self.names.outdial_queue,
            "PUT",
            format!("/v1/outdials/{outdial_id}/campaign_id"),
            Some(&body),
        )
        .await?;
        Ok(())
    }

    async fn available_targets(
        &self,
        outdial_id: Uuid,
        m: [i32; 5],
        limit: u32,
    ) -> PeerResult<Vec<OutdialTarget>> {
        let uri = format!(
            "/v1/outdials/{outdial_id}/available?try_count_0={}&try_count_1={}&try_count_2={}&try_count_3={}&try_count_4={}&limit={limit}",
            m[0], m[1], m[2], m[3], m[4]
        );
        let targets: Option<Vec<OutdialTarget>> = self
            .call(&self.names.outdial_queue, "GET", uri, NO_BODY)
            .await?;
        Ok(targets.unwrap_or_default())
    }

    async fn set_target_progressing(
        &self,
        target_id: Uuid,
        destination_index: i32,
    ) -> PeerResult<()> {
        let body = json!({ "destination_index": destination_index });
        self.call_unit(
            &self.names.outdial_queue,
            "POST",
            format!("/v1/outdialtargets/{target_id}/progressing"),
            Some(&body),
        )
        .await?;
        Ok(())
    }

    async fn set_target_status(&self, target_id: Uuid, status: TargetStatus) -> PeerResult<()> {
        let body = json!({ "status": enum_str(&status) });
        self.call_unit(
            &self.names.outdial_queue,
            "PUT",
            format!("/v1/outdialtargets/{target_id}/status"),
            Some(&body),
        )
        .await?;
        Ok(())
    }

    async fn get_target(&self, target_id: Uuid) -> PeerResult<OutdialTarget> {
        self.call(
            &self.names.outdial_queue,
            "GET",
            format!("/v1/outdialtargets/{target_id}"),
            NO_BODY,
        )
        .await
    }
}

impl DialGate for BusPeers {
    fn is_refusing(&self, peer: DialPeer) -> bool {
        let target = match peer {
            DialPeer::Call => &self.names.call_queue,
            DialPeer::Flow => &self.names.flow_queue,
        };
        self.rpc.breaker_state(target) == crate::bus::BreakerState::Open
    }
}

#[async_trait]
impl CallManager for BusPeers {
    async fn create_call(&self, c: &CallRequest) -> PeerResult<()> {
        let body = json!({
            "flow_id": c.flow_id,
            "activeflow_id": c.activeflow_id,
            "customer_id": c.customer_id,
            "master_call_id": Uuid::nil(),
            "source": c.source,
            "destination": c.destination,
            "groupcall_id": Uuid::nil(),
        });
        self.call_unit(
            &self.names.call_queue,
            "POST",
            format!("/v1/calls/{}", c.call_id),
            Some(&body),
        )
        .await?;
        Ok(())
    }

    async fn get_call(&self, call_id: Uuid) -> PeerResult<Option<Call>> {
        found(
            self.call(
                &self.names.call_queue,
                "GET",
                format!("/v1/calls/{call_id}"),
                NO_BODY,
            )
            .await,
        )
    }

    async fn hangup_call(&self, call_id: Uuid) -> PeerResult<Call> {
        self.call(
            &self.names.call_queue,
            "POST",
            format!("/v1/calls/{call_id}/hangup"),
            NO_BODY,
        )
        .await
    }
}

#[async_trait]
impl FlowManager for BusPeers {
    async fn create_flow(&self, customer_id: Uuid, actions: &[Action]) -> PeerResult<Flow> {
        let body = json!({
            "customer_id": customer_id,
            "type": "campaign",
            "name": "",
            "detail": "",
            "actions": actions,
            "on_complete_flow_id": Uuid::nil(),
            "persist": true,
        });
        self.call(
            &self.names.flow_queue,
            "POST",
            "/v1/flows".to_owned(),
            Some(&body),
        )
        .await
    }

    async fn update_flow_actions(&self, flow_id: Uuid, actions: &[Action]) -> PeerResult<()> {
        let body = json!({ "actions": actions });
        self.call_unit(
            &self.names.flow_queue,
            "PUT",
            format!("/v1/flows/{flow_id}/actions"),
            Some(&body),
        )
        .await?;
        Ok(())
    }

    async fn delete_flow(&self, flow_id: Uuid) -> PeerResult<()> {
        self.call_unit(
            &self.names.flow_queue,
            "DELETE",
            format!("/v1/flows/{flow_id}"),
            NO_BODY,
        )
        .await?;
        Ok(())
    }

    async fn get_flow(&self, flow_id: Uuid) -> PeerResult<Option<Flow>> {
        let got = self
            .call(
                &self.names.flow_queue,
                "GET",
                format!("/v1/flows/{flow_id}"),
                NO_BODY,
            )
            .await;
        found(got)
    }

    async fn create_activeflow(
        &self,
        activeflow_id: Uuid,
        customer_id: Uuid,
        flow_id: Uuid,
        campaigncall_id: Uuid,
    ) -> PeerResult<Activeflow> {
        let body = json!({
            "id": activeflow_id,
            "customer_id": customer_id,
            "flow_id": flow_id,
            "reference_type": "campaign",
            "reference_id": campaigncall_id,
            "reference_activeflow_id": Uuid::nil(),
        });
        self.call(
            &self.names.flow_queue,
            "POST",
            "/v1/activeflows".to_owned(),
            Some(&body),
        )
        .await
    }

    async fn execute_activeflow(&self, activeflow_id: Uuid) -> PeerResult<()> {
        let req = Request::new("POST", format!("/v1/activeflows/{activeflow_id}/execute"))
            .with_data_type("");
        self.send(&self.names.flow_queue, req).await?;
        Ok(())
    }

    async fn get_activeflow(&self, activeflow_id: Uuid) -> PeerResult<Option<Activeflow>> {
        found(
            self.call(
                &self.names.flow_queue,
                "GET",
                format!("/v1/activeflows/{activeflow_id}"),
                NO_BODY,
            )
            .await,
        )
    }
}

#[async_trait]
impl QueueManager for BusPeers {
    async fn get_queue(&self, queue_id: Uuid) -> PeerResult<Queue> {
        self.call(
            &self.names.queue_queue,
            "GET",
            format!("/v1/queues/{queue_id}"),
            NO_BODY,
        )
        .await
    }

    async fn available_agents(&self, queue_id: Uuid) -> PeerResult<usize> {
        let body = json!({ "status": "available" });
        let agents: Option<Vec<serde_json::Value>> = self
            .call(
                &self.names.queue_queue,
                "GET",
                format!("/v1/queues/{queue_id}/agents"),
                Some(&body),
            )
            .await?;
        Ok(agents.map(|a| a.len()).unwrap_or(0))
    }
}

#[async_trait]
impl WebhookManager for BusPeers {
    async fn send(
        &self,
        customer_id: Uuid,
        event_type: &str,
        data: serde_json::Value,
    ) -> PeerResult<()> {
        let body = json!({
            "customer_id": customer_id,
            "data_type": "application/json",
            "data": { "type": event_type, "data": data },
        });
        self.call_unit(
            &self.names.webhook_queue,
            "POST",
            "/v1/webhooks".to_owned(),
            Some(&body),
        )
        .await?;
        Ok(())
    }
}
