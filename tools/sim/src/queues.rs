//! queue-manager's state: queues and how many agents are available in each.
//!
//! Only the agent count matters to campaign-manager (it reads the array length), so agents are not
//! stored individually; `GET .../agents` fabricates that many agent records on each request. The
//! count can be changed at any time by the admin API to vary a campaign's capacity mid-run.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::model::json::opt_time;

/// A simulated queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimQueue {
    /// Queue id.
    pub id: Uuid,
    /// Owner.
    pub customer_id: Uuid,
    /// Number of agents with status `available`.
    pub agents: usize,
    /// Created at.
    pub tm_create: DateTime<Utc>,
    /// Soft-deleted at.
    pub tm_delete: Option<DateTime<Utc>>,
}

/// The JSON queue-manager returns for a queue (the fields campaign-manager may read, plus a few).
#[derive(Debug, Serialize)]
pub struct QueueJson {
    /// Queue id.
    pub id: Uuid,
    /// Owner.
    pub customer_id: Uuid,
    /// Name.
    pub name: String,
    /// Free text.
    pub detail: String,
    /// Routing method.
    pub routing_method: &'static str,
    /// Created at.
    #[serde(with = "opt_time")]
    pub tm_create: Option<DateTime<Utc>>,
    /// Updated at.
    #[serde(with = "opt_time")]
    pub tm_update: Option<DateTime<Utc>>,
    /// Soft-deleted at.
    #[serde(with = "opt_time")]
    pub tm_delete: Option<DateTime<Utc>>,
}

impl SimQueue {
    /// Wire JSON of the queue.
    pub fn json(&self) -> QueueJson {
        QueueJson {
            id: self.id,
            customer_id: self.customer_id,
            name: format!("sim queue {}", self.id),
            detail: String::new(),
            routing_method: "random",
            tm_create: Some(self.tm_create),
            tm_update: None,
            tm_delete: self.tm_delete,
        }
    }

    /// `agents` fabricated agent records (ids derived from the queue id, stable across calls).
    pub fn agents_json(&self) -> Vec<Value> {
        (0..self.agents)
            .map(|i| {
                let id = Uuid::from_u128(self.id.as_u128() ^ (i as u128 + 1));
                json!({
                    "id": id,
                    "customer_id": self.customer_id,
                    "username": format!("agent{i}"),
                    "name": format!("agent {i}"),
                    "status": "available",
                    "tag_ids": [],
                })
            })
            .collect()
    }
}

/// All queues.
#[derive(Debug, Default)]
pub struct Queues {
    queues: HashMap<Uuid, SimQueue>,
}

impl Queues {
    /// Create a queue with `agents` available agents (id random when `None`).
    pub fn create(
        &mut self,
        id: Option<Uuid>,
        customer_id: Uuid,
        agents: usize,
        now: DateTime<Utc>,
    ) -> Uuid {
        let id = id.unwrap_or_else(Uuid::new_v4);
        self.queues.insert(
            id,
            SimQueue {
                id,
                customer_id,
                agents,
                tm_create: now,
                tm_delete: None,
            },
        );
        id
    }

    /// One queue.
    pub fn get(&self, id: Uuid) -> Option<&SimQueue> {
        self.queues.get(&id)
    }

    /// Change the available agent count; `false` if the queue does not exist.
    pub fn set_agents(&mut self, id: Uuid, agents: usize) -> bool {
        match self.queues.get_mut(&id) {
            Some(q) => {
                q.agents = agents;
                true
            }
            None => false,
        }
    }

    /// Soft-delete a queue; `false` if it does not exist.
    pub fn delete(&mut self, id: Uuid, now: DateTime<Utc>) -> bool {
        match self.queues.get_mut(&id) {
            Some(q) => {
                q.tm_delete = Some(now);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_follow_the_count() {
        let mut q = Queues::default();
        let now = Utc::now();
        let id = q.create(None, Uuid::nil(), 3, now);
        assert_eq!(q.get(id).unwrap().agents_json().len(), 3);
        assert!(q.set_agents(id, 1));
        let agents = q.get(id).unwrap().agents_json();
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0]["status"], "available");
        assert!(!q.set_agents(Uuid::new_v4(), 1));
        assert!(q.delete(id, now));
        let v = serde_json::to_value(q.get(id).unwrap().json()).unwrap();
        assert!(v["tm_delete"].is_string());
        assert_eq!(v["id"], id.to_string());
    }
}
