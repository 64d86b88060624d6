//! Service rules (docs/contract.md#routes, #events-consumed, #campaign-lifecycle) against a real
//! MariaDB/Redis test store, with mockall mocks for the peer managers, and the rig their tests
//! share. A file per concern:
//! - `create.rs`: a campaign's create (its flow, the outdial claim, the undo of each step);
//! - `refusals.rs`: what a create refuses before any flow, as a table;
//! - `status.rs`: run and stop; `delete.rs`; `updates.rs`;
//! - `campaigncalls.rs`: finishing, deleting and the hangup reasons of campaigncalls;
//! - `outplans.rs`: outplan rules and events.

mod campaigncalls;
mod create;
mod delete;
mod outplans;
mod refusals;
mod status;
mod updates;

use crate::support;

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campaign_manager::model::*;
use campaign_manager::peers::PeerError;
use campaign_manager::service::{
    CampaignCreate, CampaignUpdate, OutplanCreate, OutplanDials, OutplanUpdate, ServiceError,
    hangup_result,
};
use campaign_manager::store::ResourceInfo;
use serde_json::json;
use support::mocked::Mocked;
use support::mocks::Mocks;
use support::records;
use uuid::Uuid;

/// The mocked-peers service ([`Mocked`]) whose rules these tests exercise.
struct Env {
    mocked: Mocked,
}

impl Deref for Env {
    type Target = Mocked;

    fn deref(&self) -> &Mocked {
        &self.mocked
    }
}

impl Env {
    async fn new(m: Mocks) -> Env {
        Env {
            mocked: Mocked::new(m).await,
        }
    }

    fn started(&self) -> Vec<(Uuid, Duration)> {
        self.chains.started.lock().expect("lock").clone()
    }

    /// Stores a stopped campaign of a new customer without outplan or outdial ([`campaign`]).
    async fn stopped_campaign(&self) -> Campaign {
        self.insert_campaign(&campaign(Uuid::new_v4(), Uuid::nil(), Uuid::nil()))
            .await
    }

    /// Stores an outplan of `customer` ([`records::outplan`]).
    async fn insert_outplan_of(&self, customer: Uuid) -> Outplan {
        self.insert_outplan(&records::outplan(customer)).await
    }
}

/// A stored-campaign template (status stop, execute stop): [`records::campaign_row`] with an
/// answer action, service level 80, continuing at the end of its list.
fn campaign(customer: Uuid, outplan_id: Uuid, outdial_id: Uuid) -> Campaign {
    Campaign {
        service_level: 80,
        end_handle: EndHandle::Continue,
        actions: Some(vec![answer()]),
        outplan_id,
        outdial_id,
        ..records::campaign_row(customer)
    }
}

fn answer() -> Action {
    Action {
        kind: "answer".into(),
        ..Action::default()
    }
}

fn timeout() -> PeerError {
    PeerError::Timeout {
        target: "peer".into(),
    }
}

/// An outdial-manager whose outdial remembers its `campaign_id` like the real one; returns
/// the shared `campaign_id` and the log of `set_outdial_campaign` calls.
type OutdialState = (Arc<Mutex<Uuid>>, Arc<Mutex<Vec<Uuid>>>);

fn stateful_outdial(m: &mut Mocks, outdial: Outdial) -> OutdialState {
    let owner = Arc::new(Mutex::new(outdial.campaign_id));
    let sets = Arc::new(Mutex::new(Vec::new()));
    let outdial_id = outdial.id;
    let get_owner = owner.clone();
    m.outdial
        .expect_get_outdial()
        .withf(move |id| *id == outdial_id)
        .returning(move |_| {
            let mut o = outdial.clone();
            o.campaign_id = *get_owner.lock().expect("lock");
            Ok(o)
        });
    let set_owner = owner.clone();
    let set_log = sets.clone();
    m.outdial
        .expect_set_outdial_campaign()
        .withf(move |id, _| *id == outdial_id)
        .returning(move |_, campaign| {
            *set_owner.lock().expect("lock") = campaign;
            set_log.lock().expect("lock").push(campaign);
            Ok(())
        });
    (owner, sets)
}

/// flow-manager creates the flow `flow_id`, once.
fn flow_created(m: &mut Mocks, flow_id: Uuid) {
    let flow = Flow {
        id: flow_id,
        ..Flow::default()
    };
    m.flow
        .expect_create_flow()
        .times(1)
        .returning(move |_, _| Ok(flow.clone()));
}

/// flow-manager deletes the flow `flow_id`, once.
fn flow_deleted(m: &mut Mocks, flow_id: Uuid) {
    m.flow
        .expect_delete_flow()
        .withf(move |id| *id == flow_id)
        .times(1)
        .returning(|_| Ok(()));
}

fn outdial(customer: Uuid) -> Outdial {
    Outdial {
        id: Uuid::new_v4(),
        customer_id: customer,
        ..Outdial::default()
    }
}

fn queue(customer: Uuid) -> Queue {
    Queue {
        id: Uuid::new_v4(),
        customer_id: customer,
        tm_delete: None,
    }
}

fn create_req(customer: Uuid) -> CampaignCreate {
    CampaignCreate {
        customer_id: customer,
        kind: Some(CampaignType::Call),
        name: "spring sale".into(),
        detail: "detail".into(),
        actions: Some(vec![answer()]),
        service_level: 100,
        ..CampaignCreate::default()
    }
}
