//! flow-manager's state: flows (created/updated/deleted by campaign-manager) and activeflows.
//!
//! An activeflow is created, then executed; execution plans its end (scenario duration) and the
//! transport later calls `finish`, which yields the `activeflow_deleted` payload exactly once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::model::Action;
use crate::model::json::{format_time, opt_time, uuid_or_nil};

/// Body of `POST /v1/flows`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FlowCreate {
    /// Owner.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub customer_id: Uuid,
    /// Flow type (`campaign`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Name.
    pub name: String,
    /// Free text.
    pub detail: String,
    /// The actions.
    pub actions: Vec<Action>,
    /// Flow to run on completion.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub on_complete_flow_id: Uuid,
    /// Whether the flow is stored.
    pub persist: bool,
}

/// A simulated flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimFlow {
    /// Flow id.
    pub id: Uuid,
    /// Owner.
    pub customer_id: Uuid,
    /// Flow type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Name.
    pub name: String,
    /// Free text.
    pub detail: String,
    /// Whether stored.
    pub persist: bool,
    /// The actions.
    pub actions: Vec<Action>,
    /// Flow to run on completion.
    pub on_complete_flow_id: Uuid,
    /// Created at.
    #[serde(with = "opt_time")]
    pub tm_create: Option<DateTime<Utc>>,
    /// Updated at.
    #[serde(with = "opt_time")]
    pub tm_update: Option<DateTime<Utc>>,
    /// Deleted at.
    #[serde(with = "opt_time")]
    pub tm_delete: Option<DateTime<Utc>>,
}

/// Body of `POST /v1/activeflows`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ActiveflowCreate {
    /// Activeflow id (random when nil).
    #[serde(deserialize_with = "uuid_or_nil")]
    pub id: Uuid,
    /// Owner.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub customer_id: Uuid,
    /// Flow to run.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub flow_id: Uuid,
    /// `campaign`.
    pub reference_type: String,
    /// The campaigncall id.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub reference_id: Uuid,
    /// Parent activeflow (nil).
    #[serde(deserialize_with = "uuid_or_nil")]
    pub reference_activeflow_id: Uuid,
}

/// Activeflow lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActiveflowState {
    /// Created, not executed.
    Created,
    /// Executing.
    Running,
    /// Ended (`activeflow_deleted` published).
    Ended,
}

/// A simulated activeflow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimActiveflow {
    /// Activeflow id.
    pub id: Uuid,
    /// Owner.
    pub customer_id: Uuid,
    /// Flow.
    pub flow_id: Uuid,
    /// Reference type (`campaign`).
    pub reference_type: String,
    /// Reference id (the campaigncall).
    pub reference_id: Uuid,
    /// Lifecycle state.
    pub state: ActiveflowState,
    /// Created at.
    #[serde(with = "opt_time")]
    pub tm_create: Option<DateTime<Utc>>,
    /// Ended at.
    #[serde(with = "opt_time")]
    pub tm_end: Option<DateTime<Utc>>,
}

impl SimActiveflow {
    /// flow-manager's Activeflow JSON.
    pub fn json(&self) -> Value {
        let status = match self.state {
            ActiveflowState::Created | ActiveflowState::Running => "running",
            ActiveflowState::Ended => "ended",
        };
        json!({
            "id": self.id,
            "customer_id": self.customer_id,
            "flow_id": self.flow_id,
            "status": status,
            "reference_type": self.reference_type,
            "reference_id": self.reference_id,
            "reference_activeflow_id": Uuid::nil(),
            "on_complete_flow_id": Uuid::nil(),
            "stack_map": {},
            "execute_count": 0,
            "executed_actions": [],
            "tm_create": self.tm_create.as_ref().map(format_time),
            "tm_update": self.tm_end.or(self.tm_create).as_ref().map(format_time),
            "tm_delete": self.tm_end.as_ref().map(format_time),
        })
    }
}

/// Why a flow operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowError {
    /// Unknown (or deleted) flow/activeflow.
    NotFound,
    /// Duplicate id or wrong state.
    Conflict(String),
}

/// All flows and activeflows.
#[derive(Debug, Default)]
pub struct Flows {
    flows: HashMap<Uuid, SimFlow>,
    activeflows: HashMap<Uuid, SimActiveflow>,
    af_order: Vec<Uuid>,
}

impl Flows {
    /// Create a flow.
    pub fn create(&mut self, body: FlowCreate, now: DateTime<Utc>) -> &SimFlow {
        let id = Uuid::new_v4();
        self.flows.entry(id).or_insert(SimFlow {
            id,
            customer_id: body.customer_id,
            kind: body.kind,
            name: body.name,
            detail: body.detail,
            persist: body.persist,
            actions: body.actions,
            on_complete_flow_id: body.on_complete_flow_id,
            tm_create: Some(now),
            tm_update: None,
            tm_delete: None,
        })
    }

    /// A live (not deleted) flow.
    pub fn get(&self, id: Uuid) -> Option<&SimFlow> {
        self.flows.get(&id).filter(|f| f.tm_delete.is_none())
    }

    /// A flow, deleted or not (what flow-manager's `GET /v1/flows/<id>` answers).
    pub fn get_any(&self, id: Uuid) -> Option<&SimFlow> {
        self.flows.get(&id)
    }

    /// Every flow, deleted ones included.
    pub fn all(&self) -> Vec<SimFlow> {
        self.flows.values().cloned().collect()
    }

    /// Replace a flow's actions.
    pub fn update_actions(
        &mut self,
        id: Uuid,
        actions: Vec<Action>,
        now: DateTime<Utc>,
    ) -> Result<&SimFlow, FlowError> {
        let f = self
            .flows
            .get_mut(&id)
            .filter(|f| f.tm_delete.is_none())
            .ok_or(FlowError::NotFound)?;
        f.actions = actions;
        f.tm_update = Some(now);
        Ok(f)
    }

    /// Soft-delete a flow. As flow-manager does, deleting a deleted flow deletes it again
    /// (new `tm_delete`); only an unknown id is not found.
    pub fn delete(&mut self, id: Uuid, now: DateTime<Utc>) -> Result<&SimFlow, FlowError> {
        let f = self.flows.get_mut(&id).ok_or(FlowError::NotFound)?;
        f.tm_delete = Some(now);
        f.tm_update = Some(now);
        Ok(f)
    }

    /// Create an activeflow of an existing flow.
    pub fn create_activeflow(
        &mut self,
        body: ActiveflowCreate,
        now: DateTime<Utc>,
    ) -> Result<&SimActiveflow, FlowError> {
        if self.get(body.flow_id).is_none() {
            return Err(FlowError::NotFound);
        }
        let id = if body.id.is_nil() {
            Uuid::new_v4()
        } else {
            body.id
        };
        if self.activeflows.contains_key(&id) {
            return Err(FlowError::Conflict(format!("activeflow {id} exists")));
        }
        self.af_order.push(id);
        Ok(self.activeflows.entry(id).or_insert(SimActiveflow {
            id,
            customer_id: body.customer_id,
            flow_id: body.flow_id,
            reference_type: body.reference_type,
            reference_id: body.reference_id,
            state: ActiveflowState::Created,
            tm_create: Some(now),
            tm_end: None,
        }))
    }

    /// Start an activeflow (only once).
    pub fn execute(&mut self, id: Uuid) -> Result<&SimActiveflow, FlowError> {
        let af = self.activeflows.get_mut(&id).ok_or(FlowError::NotFound)?;
        if af.state != ActiveflowState::Created {
            return Err(FlowError::Conflict(format!(
                "activeflow {id} already executed"
            )));
        }
        af.state = ActiveflowState::Running;
        Ok(af)
    }

    /// End a running activeflow; `None` if unknown or not running.
    pub fn finish(&mut self, id: Uuid, now: DateTime<Utc>) -> Option<&SimActiveflow> {
        let af = self.activeflows.get_mut(&id)?;
        if af.state != ActiveflowState::Running {
            return None;
        }
        af.state = ActiveflowState::Ended;
        af.tm_end = Some(now);
        Some(af)
    }

    /// One activeflow.
    pub fn activeflow(&self, id: Uuid) -> Option<&SimActiveflow> {
        self.activeflows.get(&id)
    }

    /// All activeflows in creation order.
    pub fn activeflows(&self) -> Vec<SimActiveflow> {
        self.af_order
            .iter()
            .filter_map(|id| self.activeflows.get(id).cloned())
            .collect()
    }

    /// Activeflows created or running (not ended).
    pub fn live_activeflows(&self) -> usize {
        self.activeflows
            .values()
            .filter(|a| a.state != ActiveflowState::Ended)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_and_activeflow_lifecycle() {
        let mut f = Flows::default();
        let now = Utc::now();
        let flow = f
            .create(
                FlowCreate {
                    kind: "campaign".into(),
                    ..FlowCreate::default()
                },
                now,
            )
            .id;
        f.update_actions(flow, vec![Action::queue_join(Uuid::nil())], now)
            .unwrap();
        assert_eq!(f.get(flow).unwrap().actions.len(), 1);
        let body = ActiveflowCreate {
            flow_id: flow,
            reference_type: "campaign".into(),
            ..ActiveflowCreate::default()
        };
        let af = f.create_activeflow(body.clone(), now).unwrap().id;
        assert!(f.finish(af, now).is_none(), "not running yet");
        f.execute(af).unwrap();
        assert!(matches!(f.execute(af), Err(FlowError::Conflict(_))));
        assert_eq!(f.live_activeflows(), 1);
        assert_eq!(f.finish(af, now).unwrap().json()["id"], af.to_string());
        assert!(f.finish(af, now).is_none(), "ends once");
        assert_eq!(f.live_activeflows(), 0);
        let dup = ActiveflowCreate { id: af, ..body };
        assert!(matches!(
            f.create_activeflow(dup, now),
            Err(FlowError::Conflict(_))
        ));
        f.delete(flow, now).unwrap();
        assert!(f.get(flow).is_none());
        assert!(f.get_any(flow).unwrap().tm_delete.is_some());
        assert!(
            f.delete(flow, now).is_ok(),
            "deleted again, as flow-manager does"
        );
        assert_eq!(
            f.delete(Uuid::new_v4(), now).unwrap_err(),
            FlowError::NotFound
        );
        assert_eq!(
            f.create_activeflow(
                ActiveflowCreate {
                    flow_id: flow,
                    ..ActiveflowCreate::default()
                },
                now
            )
            .unwrap_err(),
            FlowError::NotFound
        );
        assert_eq!(f.execute(Uuid::new_v4()).unwrap_err(), FlowError::NotFound);
    }
}
