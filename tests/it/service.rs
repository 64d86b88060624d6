//! Service rules (docs/contract.md#routes, #events-consumed, #campaign-lifecycle) against a real
//! MariaDB/Redis test store, with mockall mocks for the peer managers.

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

// ================================================================ create

#[tokio::test]
async fn create_with_queue_adds_queue_join_to_the_flow_only() {
    let customer = Uuid::new_v4();
    let od = outdial(customer);
    let q = queue(customer);
    let flow_id = Uuid::new_v4();
    let mut m = Mocks::new();
    let (owner, _) = stateful_outdial(&mut m, od.clone());
    let queue_id = q.id;
    m.queue
        .expect_get_queue()
        .withf(move |id| *id == queue_id)
        .times(1)
        .returning(move |_| Ok(q.clone()));
    m.flow
        .expect_create_flow()
        .withf(move |cust, actions: &[Action]| {
            *cust == customer && actions == [answer(), Action::queue_join(queue_id)]
        })
        .times(1)
        .returning(move |_, _| {
            Ok(Flow {
                id: flow_id,
                ..Flow::default()
            })
        });
    m.flow.expect_delete_flow().times(0);
    let env = Env::new(m).await;
    let plan = env.insert_outplan_of(customer).await;

    let req = CampaignCreate {
        outplan_id: plan.id,
        outdial_id: od.id,
        queue_id,
        ..create_req(customer)
    };
    let c = env.service.create_campaign(req).await.expect("create");

    assert!(!c.id.is_nil());
    assert_eq!(c.flow_id, flow_id);
    assert_eq!(c.status, CampaignStatus::Stop);
    assert_eq!(c.execute, Execute::Stop);
    assert_eq!(c.end_handle, EndHandle::Stop, "default end handle");
    assert_eq!(c.actions, Some(vec![answer()]), "stored without queue_join");
    assert_eq!(c.queue_id, queue_id);
    assert_eq!(env.campaign(c.id).await, c);
    assert_eq!(*owner.lock().expect("lock"), c.id, "outdial claimed");
    assert_eq!(env.events(), vec!["campaign_created"]);
    assert_eq!(env.metrics.campaign_create_total.get(), 1);
}

#[tokio::test]
async fn create_without_queue_sends_the_actions_unchanged() {
    let customer = Uuid::new_v4();
    let mut m = Mocks::new();
    m.flow
        .expect_create_flow()
        .withf(|_, actions: &[Action]| actions == [answer()])
        .times(1)
        .returning(|_, _| {
            Ok(Flow {
                id: Uuid::new_v4(),
                ..Flow::default()
            })
        });
    let env = Env::new(m).await;
    let given = Uuid::new_v4();
    let c = env
        .service
        .create_campaign(CampaignCreate {
            id: given,
            end_handle: Some(EndHandle::Continue),
            ..create_req(customer)
        })
        .await
        .expect("create");
    assert_eq!(c.id, given);
    assert_eq!(c.end_handle, EndHandle::Continue);
    assert_eq!(c.kind, CampaignType::Call);
    assert_eq!(c.name, "spring sale");
    assert_eq!(c.service_level, 100);
}

#[tokio::test]
async fn create_with_an_existing_id_is_refused_before_any_flow() {
    let customer = Uuid::new_v4();
    let mut m = Mocks::new();
    m.flow.expect_create_flow().times(0);
    m.flow.expect_delete_flow().times(0);
    let env = Env::new(m).await;
    let existing = env
        .insert_campaign(&campaign(customer, Uuid::nil(), Uuid::nil()))
        .await;

    let err = env
        .service
        .create_campaign(CampaignCreate {
            id: existing.id,
            ..create_req(customer)
        })
        .await
        .expect_err("duplicate id");
    assert!(matches!(err, ServiceError::AlreadyExists(_)), "{err:?}");
    assert_eq!(env.campaign(existing.id).await, existing, "untouched");
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn create_that_fails_in_the_store_deletes_the_flow_and_releases_the_outdial() {
    let customer = Uuid::new_v4();
    let od = outdial(customer);
    let flow_id = Uuid::new_v4();
    let mut m = Mocks::new();
    let (owner, sets) = stateful_outdial(&mut m, od.clone());
    m.flow.expect_create_flow().times(1).returning(move |_, _| {
        Ok(Flow {
            id: flow_id,
            ..Flow::default()
        })
    });
    m.flow
        .expect_delete_flow()
        .withf(move |id| *id == flow_id)
        .times(1)
        .returning(|_| Ok(()));
    let env = Env::new(m).await;
    // Make the INSERT (and only the INSERT) fail.
    sqlx::query("ALTER TABLE campaign_campaigns ADD CONSTRAINT no_boom CHECK (name <> 'boom')")
        .execute(&env.ts.db.pool)
        .await
        .expect("add check constraint");

    let id = Uuid::new_v4();
    let err = env
        .service
        .create_campaign(CampaignCreate {
            id,
            name: "boom".into(),
            outdial_id: od.id,
            ..create_req(customer)
        })
        .await
        .expect_err("insert fails");
    assert!(matches!(err, ServiceError::Store(_)), "{err:?}");
    assert!(env.row(id).await.is_none());
    assert!(owner.lock().expect("lock").is_nil(), "outdial released");
    assert_eq!(sets.lock().expect("lock").as_slice(), &[id, Uuid::nil()]);
    assert!(env.events().is_empty());
    assert_eq!(env.metrics.campaign_create_total.get(), 0);
}

#[tokio::test]
async fn create_whose_outdial_claim_fails_deletes_the_flow() {
    let customer = Uuid::new_v4();
    let od = outdial(customer);
    let flow_id = Uuid::new_v4();
    let mut m = Mocks::new();
    let od_ret = od.clone();
    m.outdial
        .expect_get_outdial()
        .returning(move |_| Ok(od_ret.clone()));
    m.outdial
        .expect_set_outdial_campaign()
        .times(1)
        .returning(|_, _| Err(timeout()));
    m.flow.expect_create_flow().times(1).returning(move |_, _| {
        Ok(Flow {
            id: flow_id,
            ..Flow::default()
        })
    });
    m.flow
        .expect_delete_flow()
        .withf(move |id| *id == flow_id)
        .times(1)
        .returning(|_| Ok(()));
    let env = Env::new(m).await;

    let id = Uuid::new_v4();
    let err = env
        .service
        .create_campaign(CampaignCreate {
            id,
            outdial_id: od.id,
            ..create_req(customer)
        })
        .await
        .expect_err("outdial claim fails");
    assert!(matches!(err, ServiceError::Peer(_)), "{err:?}");
    assert!(env.row(id).await.is_none());
    assert!(env.events().is_empty());
}

/// outdial-manager has no conditional claim: a campaign that claims an outdial reads it
/// back, and when another campaign's claim landed right after its own it refuses, without
/// clearing the other campaign's claim and without writing its row.
#[tokio::test]
async fn a_claim_taken_over_meanwhile_is_refused_and_left_alone() {
    let customer = Uuid::new_v4();
    let od = outdial(customer);
    let other = Uuid::new_v4();
    let mut m = Mocks::new();
    let owner = Arc::new(Mutex::new(Uuid::nil()));
    let sets = Arc::new(Mutex::new(Vec::new()));
    let (get_owner, set_owner, set_log) = (owner.clone(), owner.clone(), sets.clone());
    let od_ret = od.clone();
    m.outdial.expect_get_outdial().returning(move |_| {
        let mut o = od_ret.clone();
        o.campaign_id = *get_owner.lock().expect("lock");
        Ok(o)
    });
    m.outdial
        .expect_set_outdial_campaign()
        .returning(move |_, campaign| {
            set_log.lock().expect("lock").push(campaign);
            // Another campaign's claim arrives right after ours.
            *set_owner.lock().expect("lock") = if campaign.is_nil() { campaign } else { other };
            Ok(())
        });
    m.flow.expect_update_flow_actions().times(0);
    let env = Env::new(m).await;
    let c = env
        .insert_campaign(&campaign(customer, Uuid::nil(), Uuid::nil()))
        .await;

    let err = env
        .service
        .update_resource_info(
            c.id,
            ResourceInfo {
                outdial_id: od.id,
                ..ResourceInfo::default()
            },
        )
        .await
        .expect_err("taken over");
    assert!(
        matches!(&err, ServiceError::Invalid(m) if m.contains("another campaign")),
        "{err:?}"
    );
    assert_eq!(
        sets.lock().expect("lock").as_slice(),
        &[c.id],
        "no release of the other's claim"
    );
    assert_eq!(*owner.lock().expect("lock"), other);
    assert_eq!(env.campaign(c.id).await.outdial_id, Uuid::nil());
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn create_rejects_bad_bodies_before_any_flow() {
    let customer = Uuid::new_v4();
    let mut m = Mocks::new();
    m.flow.expect_create_flow().times(0);
    let env = Env::new(m).await;
    for req in [
        CampaignCreate {
            kind: None,
            ..create_req(customer)
        },
        CampaignCreate {
            service_level: -1,
            ..create_req(customer)
        },
        create_req(Uuid::nil()),
        // "" exists only in legacy rows; requests must give a real value.
        CampaignCreate {
            kind: Some(CampaignType::Unset),
            ..create_req(customer)
        },
        CampaignCreate {
            end_handle: Some(EndHandle::Unset),
            ..create_req(customer)
        },
    ] {
        let err = env.service.create_campaign(req).await.expect_err("invalid");
        assert!(matches!(err, ServiceError::Invalid(_)), "{err:?}");
    }
    assert!(env.events().is_empty());
}

// ================================================================ validate_resources

async fn create_invalid(env: &Env, req: CampaignCreate) -> String {
    match env.service.create_campaign(req).await {
        Err(ServiceError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn no_flow() -> Mocks {
    let mut m = Mocks::new();
    m.flow.expect_create_flow().times(0);
    m.outdial.expect_set_outdial_campaign().times(0);
    m
}

#[tokio::test]
async fn outplan_of_another_customer_is_invalid() {
    let customer = Uuid::new_v4();
    let env = Env::new(no_flow()).await;
    let foreign = env.insert_outplan_of(Uuid::new_v4()).await;
    let msg = create_invalid(
        &env,
        CampaignCreate {
            outplan_id: foreign.id,
            ..create_req(customer)
        },
    )
    .await;
    assert!(msg.contains("outplan_id"), "{msg}");
}

#[tokio::test]
async fn deleted_or_unknown_outplan_is_invalid() {
    let customer = Uuid::new_v4();
    let env = Env::new(no_flow()).await;
    let plan = env.insert_outplan_of(customer).await;
    env.ts.store.outplans.delete(plan.id).await.expect("delete");
    for outplan_id in [plan.id, Uuid::new_v4()] {
        let msg = create_invalid(
            &env,
            CampaignCreate {
                outplan_id,
                ..create_req(customer)
            },
        )
        .await;
        assert!(msg.contains("outplan_id"), "{msg}");
    }
}

#[tokio::test]
async fn outdial_used_by_another_campaign_is_invalid() {
    let customer = Uuid::new_v4();
    let mut m = no_flow();
    let od = Outdial {
        campaign_id: Uuid::new_v4(),
        ..outdial(customer)
    };
    let od_id = od.id;
    m.outdial
        .expect_get_outdial()
        .times(1)
        .returning(move |_| Ok(od.clone()));
    let env = Env::new(m).await;
    let msg = create_invalid(
        &env,
        CampaignCreate {
            outdial_id: od_id,
            ..create_req(customer)
        },
    )
    .await;
    assert!(msg.contains("another campaign"), "{msg}");
}

#[tokio::test]
async fn outdial_of_another_customer_or_missing_is_invalid() {
    let customer = Uuid::new_v4();
    let mut m = no_flow();
    let foreign = outdial(Uuid::new_v4());
    let foreign_id = foreign.id;
    let missing_id = Uuid::new_v4();
    m.outdial
        .expect_get_outdial()
        .withf(move |id| *id == foreign_id)
        .returning(move |_| Ok(foreign.clone()));
    m.outdial
        .expect_get_outdial()
        .withf(move |id| *id == missing_id)
        .returning(|_| {
            Err(PeerError::Status {
                target: "bin-manager.outdial-manager.request".into(),
                status: 404,
                typed: None,
            })
        });
    let env = Env::new(m).await;
    for outdial_id in [foreign_id, missing_id] {
        let msg = create_invalid(
            &env,
            CampaignCreate {
                outdial_id,
                ..create_req(customer)
            },
        )
        .await;
        assert!(msg.contains("outdial_id"), "{msg}");
    }
}

#[tokio::test]
async fn deleted_queue_is_invalid() {
    let customer = Uuid::new_v4();
    let mut m = no_flow();
    let q = Queue {
        tm_delete: Some(chrono::Utc::now()),
        ..queue(customer)
    };
    let q_id = q.id;
    m.queue
        .expect_get_queue()
        .times(1)
        .returning(move |_| Ok(q.clone()));
    let env = Env::new(m).await;
    let msg = create_invalid(
        &env,
        CampaignCreate {
            queue_id: q_id,
            ..create_req(customer)
        },
    )
    .await;
    assert!(msg.contains("queue_id"), "{msg}");
}

#[tokio::test]
async fn unanswered_validation_is_a_peer_error_not_invalid() {
    let customer = Uuid::new_v4();
    let mut m = no_flow();
    m.queue
        .expect_get_queue()
        .times(1)
        .returning(|_| Err(timeout()));
    let env = Env::new(m).await;
    let err = env
        .service
        .create_campaign(CampaignCreate {
            queue_id: Uuid::new_v4(),
            ..create_req(customer)
        })
        .await
        .expect_err("peer timeout");
    assert!(matches!(err, ServiceError::Peer(_)), "{err:?}");
}

#[tokio::test]
async fn next_campaign_must_exist_belong_to_the_customer_and_not_be_itself() {
    let customer = Uuid::new_v4();
    let env = Env::new(no_flow()).await;
    let foreign = env
        .insert_campaign(&campaign(Uuid::new_v4(), Uuid::nil(), Uuid::nil()))
        .await;
    let id = Uuid::new_v4();
    for next in [foreign.id, Uuid::new_v4(), id] {
        let msg = create_invalid(
            &env,
            CampaignCreate {
                id,
                next_campaign_id: next,
                ..create_req(customer)
            },
        )
        .await;
        assert!(msg.contains("next_campaign_id"), "{msg}");
    }
}

// ================================================================ status

fn outdial_owned_by(m: &mut Mocks, c: &Campaign, times: usize) {
    let od = Outdial {
        id: c.outdial_id,
        customer_id: c.customer_id,
        campaign_id: c.id,
        ..Outdial::default()
    };
    m.outdial
        .expect_get_outdial()
        .times(times)
        .returning(move |_| Ok(od.clone()));
}

/// A stored, stopped campaign whose outplan is stored; `configure` sets the mocks knowing
/// the campaign's ids.
async fn runnable_with(configure: impl FnOnce(&mut Mocks, &Campaign)) -> (Env, Campaign) {
    let customer = Uuid::new_v4();
    let plan = records::outplan(customer);
    let c = campaign(customer, plan.id, Uuid::new_v4());
    let mut m = Mocks::new();
    configure(&mut m, &c);
    let env = Env::new(m).await;
    env.ts.store.outplans.create(&plan).await.expect("outplan");
    let c = env.insert_campaign(&c).await;
    (env, c)
}

#[tokio::test]
async fn run_starts_the_campaign_and_its_chain() {
    let (env, c) = runnable_with(|m, c| outdial_owned_by(m, c, 1)).await;

    let u = env.service.update_status(c.id, "run").await.expect("run");
    assert_eq!(u.status, CampaignStatus::Run);
    assert_eq!(u.execute, Execute::Run);
    let row = env.campaign(c.id).await;
    assert_eq!(
        (row.status, row.execute),
        (CampaignStatus::Run, Execute::Run)
    );
    assert_eq!(env.events(), vec!["campaign_status_run"]);
    let payload = env.notifier.events.lock().expect("lock")[0].record_json();
    assert_eq!(payload["status"], json!("run"));
    assert_eq!(env.started(), vec![(c.id, Duration::from_secs(1))]);
    assert_eq!(env.metrics.campaign_status_run_total.get(), 1);
}

#[tokio::test]
async fn run_twice_publishes_once_and_ensures_the_chain_again() {
    let (env, c) = runnable_with(|m, c| outdial_owned_by(m, c, 1)).await;

    env.service.update_status(c.id, "run").await.expect("run");
    let again = env.service.update_status(c.id, "run").await.expect("run");
    assert_eq!(again.status, CampaignStatus::Run);
    assert_eq!(env.events(), vec!["campaign_status_run"]);
    assert_eq!(
        env.started(),
        vec![
            (c.id, Duration::from_secs(1)),
            (c.id, Duration::from_secs(1))
        ]
    );
    assert_eq!(env.metrics.campaign_status_run_total.get(), 1);
}

#[tokio::test]
async fn run_a_stopping_campaign_runs_it_again() {
    let (env, mut c) = runnable_with(|m, c| outdial_owned_by(m, c, 1)).await;
    env.ts
        .store
        .campaigns
        .transition(
            c.id,
            &[CampaignStatus::Stop],
            CampaignStatus::Stopping,
            Some(Execute::Run),
        )
        .await
        .expect("stopping");
    c = env.service.update_status(c.id, "run").await.expect("run");
    assert_eq!((c.status, c.execute), (CampaignStatus::Run, Execute::Run));
    assert_eq!(env.events(), vec!["campaign_status_run"]);
    assert_eq!(env.started().len(), 1);
}

#[tokio::test]
async fn run_without_outplan_or_outdial_is_invalid() {
    let env = Env::new(Mocks::new()).await;
    let c = env
        .insert_campaign(&campaign(Uuid::new_v4(), Uuid::nil(), Uuid::nil()))
        .await;
    let err = env
        .service
        .update_status(c.id, "run")
        .await
        .expect_err("no resources");
    assert!(matches!(err, ServiceError::Invalid(_)), "{err:?}");
    assert_eq!(env.campaign(c.id).await.status, CampaignStatus::Stop);
    assert!(env.events().is_empty());
    assert!(env.started().is_empty());
}

#[tokio::test]
async fn run_with_an_outdial_taken_by_another_campaign_is_invalid() {
    let (env, c) = runnable_with(|m, c| {
        let od = Outdial {
            id: c.outdial_id,
            customer_id: c.customer_id,
            campaign_id: Uuid::new_v4(),
            ..Outdial::default()
        };
        m.outdial
            .expect_get_outdial()
            .times(1)
            .returning(move |_| Ok(od.clone()));
    })
    .await;
    let err = env
        .service
        .update_status(c.id, "run")
        .await
        .expect_err("taken outdial");
    assert!(matches!(err, ServiceError::Invalid(_)), "{err:?}");
    let row = env.campaign(c.id).await;
    assert_eq!(
        (row.status, row.execute),
        (CampaignStatus::Stop, Execute::Stop)
    );
    assert!(env.started().is_empty());
}

#[tokio::test]
async fn unsupported_status_values_are_invalid() {
    let (env, c) = runnable_with(|_, _| {}).await;
    for status in ["stopping", "", "RUN"] {
        let err = env
            .service
            .update_status(c.id, status)
            .await
            .expect_err("unsupported");
        assert!(matches!(err, ServiceError::Invalid(_)), "{status}: {err:?}");
    }
    let err = env
        .service
        .update_status(Uuid::new_v4(), "stop")
        .await
        .expect_err("unknown campaign");
    assert!(matches!(err, ServiceError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn stop_while_the_chain_runs_goes_stopping() {
    let (env, c) = runnable_with(|m, c| outdial_owned_by(m, c, 1)).await;
    env.service.update_status(c.id, "run").await.expect("run");

    let u = env.service.update_status(c.id, "stop").await.expect("stop");
    assert_eq!(u.status, CampaignStatus::Stopping);
    assert_eq!(u.execute, Execute::Run);
    assert_eq!(
        env.events(),
        vec!["campaign_status_run", "campaign_status_stopping"]
    );
    // Asking again changes nothing.
    let again = env.service.update_status(c.id, "stop").await.expect("stop");
    assert_eq!(again.status, CampaignStatus::Stopping);
    assert_eq!(env.events().len(), 2);
}

#[tokio::test]
async fn stop_without_chain_or_calls_stops_now() {
    let customer = Uuid::new_v4();
    let env = Env::new(Mocks::new()).await;
    let mut c = campaign(customer, Uuid::nil(), Uuid::nil());
    c.status = CampaignStatus::Run;
    let c = env.insert_campaign(&c).await;

    let u = env.service.update_status(c.id, "stop").await.expect("stop");
    assert_eq!(u.status, CampaignStatus::Stop);
    assert_eq!(env.events(), vec!["campaign_status_stop"]);
    assert_eq!(env.metrics.campaign_status_stop_total.get(), 1);
    // Stopping a stopped campaign is a no-op.
    env.service.update_status(c.id, "stop").await.expect("stop");
    assert_eq!(env.events().len(), 1);
}

#[tokio::test]
async fn stopping_campaign_stops_when_its_last_call_ends() {
    let customer = Uuid::new_v4();
    let mut m = Mocks::new();
    m.outdial
        .expect_set_target_status()
        .times(1)
        .returning(|_, _| Ok(()));
    let env = Env::new(m).await;
    let mut c = campaign(customer, Uuid::nil(), Uuid::nil());
    c.status = CampaignStatus::Run;
    let c = env.insert_campaign(&c).await;
    let cc = env.insert_call(&c, CampaigncallStatus::Progressing).await;

    let u = env.service.update_status(c.id, "stop").await.expect("stop");
    assert_eq!(u.status, CampaignStatus::Stopping, "a call is in progress");

    env.service
        .finish_campaigncall(cc.id, CampaigncallResult::Success)
        .await
        .expect("finish");
    env.service
        .campaigncall_ended(c.id)
        .await
        .expect("call ended");
    assert_eq!(env.campaign(c.id).await.status, CampaignStatus::Stop);
    assert_eq!(
        env.events(),
        vec![
            "campaign_status_stopping",
            "campaigncall_updated",
            "campaign_status_stop"
        ]
    );
}

// ================================================================ delete

#[tokio::test]
async fn delete_of_a_campaign_that_is_not_stopped_is_a_precondition_failure() {
    let mut m = Mocks::new();
    m.flow.expect_delete_flow().times(0);
    let env = Env::new(m).await;
    for status in [CampaignStatus::Run, CampaignStatus::Stopping] {
        let mut c = campaign(Uuid::new_v4(), Uuid::nil(), Uuid::nil());
        c.status = status;
        let c = env.insert_campaign(&c).await;
        let err = env
            .service
            .delete_campaign(c.id)
            .await
            .expect_err("not stopped");
        let typed = err.to_voipbin();
        assert_eq!(
            (
                typed.status.as_str(),
                typed.reason.as_str(),
                typed.message.as_str(),
                typed.status_code()
            ),
            (
                "FAILED_PRECONDITION",
                "CAMPAIGN_NOT_STOPPED",
                "The campaign must be stopped before it can be deleted.",
                409
            ),
            "{err:?}"
        );
        assert!(env.campaign(c.id).await.tm_delete.is_none());
    }
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn delete_of_a_stopped_campaign_deletes_its_flow_and_releases_its_outdial() {
    let customer = Uuid::new_v4();
    let mut c = campaign(customer, Uuid::nil(), Uuid::nil());
    let od = Outdial {
        campaign_id: c.id,
        ..outdial(customer)
    };
    c.outdial_id = od.id;
    let flow_id = c.flow_id;
    let mut m = Mocks::new();
    let (owner, _) = stateful_outdial(&mut m, od);
    m.flow
        .expect_delete_flow()
        .withf(move |id| *id == flow_id)
        .times(1)
        .returning(|_| Ok(()));
    let env = Env::new(m).await;
    let c = env.insert_campaign(&c).await;

    let d = env.service.delete_campaign(c.id).await.expect("delete");
    assert!(d.tm_delete.is_some());
    assert!(env.campaign(c.id).await.tm_delete.is_some());
    assert_eq!(env.events(), vec!["campaign_deleted"]);
    assert!(owner.lock().expect("lock").is_nil(), "outdial released");
    let err = env.service.campaign(c.id).await.expect_err("deleted");
    assert!(matches!(err, ServiceError::NotFound(_)), "{err:?}");
    let err = env
        .service
        .delete_campaign(c.id)
        .await
        .expect_err("deleted twice");
    assert!(matches!(err, ServiceError::NotFound(_)), "{err:?}");
}

/// `campaign_manager_campaign_flow_delete_failed_total{reason}`.
fn flow_delete_failed(env: &Env, reason: &str) -> u64 {
    env.metrics
        .campaign_flow_delete_failed_total
        .with_label_values(&[reason])
        .get()
}

#[tokio::test]
async fn delete_survives_a_flow_manager_failure_and_counts_it_by_reason() {
    let typed_404 = || PeerError::Status {
        target: "flow".into(),
        status: 404,
        typed: Some(Box::new(VoipbinError {
            domain: "flow-manager".into(),
            ..VoipbinError::new("NOT_FOUND", "FLOW_NOT_FOUND", "The flow was not found.")
        })),
    };
    let bare_500 = || PeerError::Status {
        target: "flow".into(),
        status: 500,
        typed: None,
    };
    let mut m = Mocks::new();
    let mut answers = vec![Err(timeout()), Err(bare_500()), Err(typed_404())].into_iter();
    m.flow
        .expect_delete_flow()
        .times(3)
        .returning(move |_| answers.next().unwrap_or(Ok(())));
    let env = Env::new(m).await;
    // Both series exist from the start.
    assert_eq!(
        (
            flow_delete_failed(&env, "not_found"),
            flow_delete_failed(&env, "error")
        ),
        (0, 0)
    );
    let text = env.metrics.render();
    for reason in ["not_found", "error"] {
        let series =
            format!("campaign_manager_campaign_flow_delete_failed_total{{reason=\"{reason}\"}} 0");
        assert!(text.contains(&series), "{series}");
    }
    for _ in 0..3 {
        let c = env
            .insert_campaign(&campaign(Uuid::new_v4(), Uuid::nil(), Uuid::nil()))
            .await;
        let d = env.service.delete_campaign(c.id).await.expect("delete");
        assert!(d.tm_delete.is_some());
    }
    assert_eq!(flow_delete_failed(&env, "error"), 2);
    assert_eq!(flow_delete_failed(&env, "not_found"), 1);
}

// ================================================================ updates

#[tokio::test]
async fn update_reads_omitted_keys_as_the_platform_means_them() {
    let env = Env::new(Mocks::new()).await;
    let c = env
        .insert_campaign(&campaign(Uuid::new_v4(), Uuid::nil(), Uuid::nil()))
        .await;
    assert!(!c.detail.is_empty() && c.service_level != 0);

    // api-manager omits empty values: name/detail/service_level omitted are ""/""/0;
    // end_handle and type omitted are kept.
    let body: CampaignUpdate =
        serde_json::from_value(json!({"name": "autumn sale"})).expect("body");
    let u = env
        .service
        .update_campaign(c.id, body)
        .await
        .expect("update");
    assert_eq!(u.name, "autumn sale");
    assert_eq!(u.detail, "");
    assert_eq!(u.service_level, 0);
    assert_eq!(u.kind, c.kind);
    assert_eq!(u.end_handle, c.end_handle);
    assert_eq!(u.actions, c.actions);
    assert_eq!(env.campaign(c.id).await, u);
    assert_eq!(env.events(), vec!["campaign_updated"]);

    let body: CampaignUpdate =
        serde_json::from_value(json!({"service_level": 5, "end_handle": "continue"}))
            .expect("body");
    let u = env
        .service
        .update_campaign(c.id, body)
        .await
        .expect("update");
    assert_eq!(u.name, "");
    assert_eq!(u.service_level, 5);
    assert_eq!(u.end_handle, EndHandle::Continue);

    for bad in [
        json!({"service_level": -3}),
        json!({"type": "", "service_level": 7}),
        json!({"end_handle": "", "service_level": 7}),
    ] {
        let body: CampaignUpdate = serde_json::from_value(bad).expect("body");
        let err = env
            .service
            .update_campaign(c.id, body)
            .await
            .expect_err("refused");
        assert!(matches!(err, ServiceError::Invalid(_)), "{err:?}");
    }
    let now = env.campaign(c.id).await;
    assert_eq!(
        (now.service_level, now.end_handle),
        (5, EndHandle::Continue)
    );
}

#[tokio::test]
async fn update_actions_sends_queue_join_to_the_flow_and_stores_raw_actions() {
    let customer = Uuid::new_v4();
    let mut c = campaign(customer, Uuid::nil(), Uuid::nil());
    c.queue_id = Uuid::new_v4();
    let (flow_id, queue_id) = (c.flow_id, c.queue_id);
    let new = vec![
        Action {
            kind: "talk".into(),
            ..Action::default()
        },
        answer(),
    ];
    let expected = {
        let mut a = new.clone();
        a.push(Action::queue_join(queue_id));
        a
    };
    let mut m = Mocks::new();
    m.flow
        .expect_update_flow_actions()
        .withf(move |id, actions: &[Action]| *id == flow_id && actions == expected.as_slice())
        .times(1)
        .returning(|_, _| Ok(()));
    let env = Env::new(m).await;
    let c = env.insert_campaign(&c).await;

    let u = env
        .service
        .update_actions(c.id, Some(new.clone()))
        .await
        .expect("update actions");
    assert_eq!(u.actions, Some(new));
    assert_eq!(env.events(), vec!["campaign_updated"]);
}

#[tokio::test]
async fn update_resource_info_moves_the_outdial_claim() {
    let customer = Uuid::new_v4();
    let mut c = campaign(customer, Uuid::nil(), Uuid::nil());
    let old = Outdial {
        campaign_id: c.id,
        ..outdial(customer)
    };
    let new = outdial(customer);
    c.outdial_id = old.id;
    let mut m = Mocks::new();
    let (old_owner, _) = stateful_outdial(&mut m, old);
    let (new_owner, _) = stateful_outdial(&mut m, new.clone());
    m.flow.expect_update_flow_actions().times(0);
    let env = Env::new(m).await;
    let c = env.insert_campaign(&c).await;

    let u = env
        .service
        .update_resource_info(
            c.id,
            ResourceInfo {
                outplan_id: Uuid::nil(),
                outdial_id: new.id,
                queue_id: Uuid::nil(),
                next_campaign_id: Uuid::nil(),
            },
        )
        .await
        .expect("resource info");
    assert_eq!(u.outdial_id, new.id);
    assert_eq!(*new_owner.lock().expect("lock"), c.id);
    assert!(old_owner.lock().expect("lock").is_nil());
    assert_eq!(env.events(), vec!["campaign_updated"]);
}

// ================================================================ campaigncalls

#[tokio::test]
async fn finishing_a_campaigncall_twice_changes_it_once() {
    let mut m = Mocks::new();
    let target = Arc::new(Mutex::new(Vec::new()));
    let target_in = target.clone();
    m.outdial
        .expect_set_target_status()
        .withf(move |id, st| {
            target_in.lock().expect("lock").push((*id, *st));
            true
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let env = Env::new(m).await;
    let c = env
        .insert_campaign(&campaign(Uuid::new_v4(), Uuid::nil(), Uuid::nil()))
        .await;
    let cc = env.insert_call(&c, CampaigncallStatus::Dialing).await;

    let first = env
        .service
        .finish_campaigncall(cc.id, CampaigncallResult::Success)
        .await
        .expect("finish")
        .expect("finished now");
    assert_eq!(first.status, CampaigncallStatus::Done);
    assert_eq!(first.result, CampaigncallResult::Success);
    let second = env
        .service
        .finish_campaigncall(cc.id, CampaigncallResult::Fail)
        .await
        .expect("finish again");
    assert!(second.is_none());

    let stored = env.service.campaigncall(cc.id).await.expect("read");
    assert_eq!(
        stored.result,
        CampaigncallResult::Success,
        "first result kept"
    );
    assert_eq!(
        target.lock().expect("lock").as_slice(),
        &[(cc.outdial_target_id, TargetStatus::Done)]
    );
    assert_eq!(env.events(), vec!["campaigncall_updated"]);
    assert_eq!(
        env.metrics
            .campaigncall_done_total
            .with_label_values(&["success"])
            .get(),
        1
    );
}

#[tokio::test]
async fn a_failed_campaigncall_puts_its_target_back_to_idle() {
    let mut m = Mocks::new();
    m.outdial
        .expect_set_target_status()
        .withf(|_, st| *st == TargetStatus::Idle)
        .times(1)
        .returning(|_, _| Ok(()));
    let env = Env::new(m).await;
    let c = env
        .insert_campaign(&campaign(Uuid::new_v4(), Uuid::nil(), Uuid::nil()))
        .await;
    let cc = env.insert_call(&c, CampaigncallStatus::Progressing).await;
    let done = env
        .service
        .finish_campaigncall(cc.id, CampaigncallResult::Fail)
        .await
        .expect("finish")
        .expect("finished now");
    assert_eq!(done.result, CampaigncallResult::Fail);
}

#[tokio::test]
async fn finishing_an_unknown_campaigncall_does_nothing() {
    let mut m = Mocks::new();
    m.outdial.expect_set_target_status().times(0);
    let env = Env::new(m).await;
    let r = env
        .service
        .finish_campaigncall(Uuid::new_v4(), CampaigncallResult::Success)
        .await
        .expect("finish");
    assert!(r.is_none());
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn campaigncall_delete_requires_done() {
    let mut m = Mocks::new();
    m.outdial
        .expect_set_target_status()
        .returning(|_, _| Ok(()));
    let env = Env::new(m).await;
    let c = env
        .insert_campaign(&campaign(Uuid::new_v4(), Uuid::nil(), Uuid::nil()))
        .await;
    let cc = env.insert_call(&c, CampaigncallStatus::Dialing).await;
    let err = env
        .service
        .delete_campaigncall(cc.id)
        .await
        .expect_err("not done");
    assert!(matches!(err, ServiceError::Precondition(_)), "{err:?}");

    env.service
        .finish_campaigncall(cc.id, CampaigncallResult::Fail)
        .await
        .expect("finish");
    let d = env
        .service
        .delete_campaigncall(cc.id)
        .await
        .expect("delete");
    assert!(d.tm_delete.is_some());
    assert_eq!(
        env.events(),
        vec!["campaigncall_updated", "campaigncall_deleted"]
    );
}

#[test]
fn hangup_reasons_map_to_results() {
    assert_eq!(hangup_result("normal"), CampaigncallResult::Success);
    for reason in [
        "failed", "busy", "cancel", "timeout", "noanswer", "dialout", "amd",
    ] {
        assert_eq!(hangup_result(reason), CampaigncallResult::Fail, "{reason}");
    }
    for unknown in ["", "weird", "NORMAL"] {
        assert_eq!(
            hangup_result(unknown),
            CampaigncallResult::Fail,
            "{unknown:?}"
        );
    }
    assert_eq!(hangup_result("normal").target_status(), TargetStatus::Done);
    assert_eq!(hangup_result("busy").target_status(), TargetStatus::Idle);
}

// ================================================================ outplans

fn outplan_req(customer: Uuid) -> OutplanCreate {
    OutplanCreate {
        customer_id: customer,
        name: "plan".into(),
        detail: "detail".into(),
        dials: OutplanDials {
            source: Some(Address::tel("+15551230000")),
            dial_timeout: 30000,
            try_interval: 60000,
            max_try_count_0: 3,
            max_try_count_1: 2,
            max_try_count_2: 1,
            max_try_count_3: 0,
            max_try_count_4: 0,
            ..OutplanDials::default()
        },
    }
}

#[tokio::test]
async fn outplan_create_rejects_negative_values() {
    let env = Env::new(Mocks::new()).await;
    let customer = Uuid::new_v4();
    let cases: Vec<fn(&mut OutplanDials)> = vec![
        |d| d.dial_timeout = -1,
        |d| d.try_interval = -1,
        |d| d.max_try_count_0 = -1,
        |d| d.max_try_count_1 = -1,
        |d| d.max_try_count_2 = -1,
        |d| d.max_try_count_3 = -1,
        |d| d.max_try_count_4 = -1,
    ];
    for (i, set) in cases.into_iter().enumerate() {
        let mut req = outplan_req(customer);
        set(&mut req.dials);
        let err = env.service.create_outplan(req).await.expect_err("negative");
        assert!(matches!(err, ServiceError::Invalid(_)), "case {i}: {err:?}");
    }
    let err = env
        .service
        .create_outplan(outplan_req(Uuid::nil()))
        .await
        .expect_err("no customer");
    assert!(matches!(err, ServiceError::Invalid(_)), "{err:?}");
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM campaign_outplans")
        .fetch_one(&env.ts.db.pool)
        .await
        .expect("count");
    assert_eq!(n, 0);
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn outplan_changes_publish_events() {
    let env = Env::new(Mocks::new()).await;
    let customer = Uuid::new_v4();
    let o = env
        .service
        .create_outplan(outplan_req(customer))
        .await
        .expect("create");
    assert_eq!(o.max_try_counts(), [3, 2, 1, 0, 0]);
    assert_eq!(env.events(), vec!["outplan_created"]);

    let body: OutplanUpdate = serde_json::from_value(json!({"name": "renamed"})).expect("body");
    let u = env
        .service
        .update_outplan(o.id, body)
        .await
        .expect("update");
    assert_eq!(u.name, "renamed");
    assert_eq!(u.detail, "detail", "partial body keeps detail");

    let mut dials = outplan_req(customer).dials;
    dials.try_interval = 1000;
    dials.source = None;
    let u = env
        .service
        .update_outplan_dials(o.id, dials)
        .await
        .expect("dials");
    assert_eq!(u.try_interval, 1000);
    assert_eq!(u.source, None);

    let mut bad = outplan_req(customer).dials;
    bad.max_try_count_2 = -2;
    let err = env
        .service
        .update_outplan_dials(o.id, bad)
        .await
        .expect_err("negative");
    assert!(matches!(err, ServiceError::Invalid(_)), "{err:?}");

    let d = env.service.delete_outplan(o.id).await.expect("delete");
    assert!(d.tm_delete.is_some());
    assert_eq!(
        env.events(),
        vec![
            "outplan_created",
            "outplan_updated",
            "outplan_updated",
            "outplan_deleted"
        ]
    );
    let payload = env.notifier.events.lock().expect("lock")[0].record_json();
    assert_eq!(payload["id"], json!(o.id.to_string()));
    let err = env.service.outplan(o.id).await.expect_err("deleted");
    assert!(matches!(err, ServiceError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn outplan_used_by_a_running_campaign_cannot_be_deleted() {
    let env = Env::new(Mocks::new()).await;
    let customer = Uuid::new_v4();
    let o = env
        .service
        .create_outplan(outplan_req(customer))
        .await
        .expect("create");
    let mut c = campaign(customer, o.id, Uuid::nil());
    c.status = CampaignStatus::Run;
    env.insert_campaign(&c).await;

    let err = env.service.delete_outplan(o.id).await.expect_err("in use");
    assert!(matches!(err, ServiceError::Precondition(_)), "{err:?}");
    assert!(env.service.outplan(o.id).await.is_ok());
}

/// A finish whose target update fails: the compare-and-set on the campaigncall has already
/// won, so the hangup is handled (the campaigncall done, the `stopping` campaign stopped) and
/// the target write is left in the outbox row written with the finish; the repair's outbox step
/// writes it. (Before, the target was written first and a failure made the bus redeliver the
/// hangup; a racing finish could then leave the result and the target disagreeing.)
#[tokio::test]
async fn a_finish_whose_target_update_failed_is_completed_by_the_repair() {
    let mut m = Mocks::new();
    let mut seq = mockall::Sequence::new();
    m.outdial
        .expect_set_target_status()
        .withf(|_, st| *st == TargetStatus::Idle)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Err(timeout()));
    m.outdial
        .expect_set_target_status()
        .withf(|_, st| *st == TargetStatus::Idle)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    let env = Env::new(m).await;
    let mut c = campaign(Uuid::new_v4(), Uuid::nil(), Uuid::nil());
    c.status = CampaignStatus::Stopping; // stop requested; the chain already ended
    let c = env.insert_campaign(&c).await;
    let cc = env.insert_call(&c, CampaigncallStatus::Dialing).await;

    let subs = campaign_manager::events::Subscriptions::new(env.service.clone());
    let hangup = Call {
        id: cc.reference_id,
        status: "hangup".into(),
        hangup_reason: "busy".into(),
    };
    subs.call_hangup(hangup).await.expect("handled");
    let stored = env.service.campaigncall(cc.id).await.expect("read");
    assert_eq!(stored.status, CampaigncallStatus::Done);
    assert_eq!(stored.result, CampaigncallResult::Fail);
    assert_eq!(
        env.campaign(c.id).await.status,
        CampaignStatus::Stop,
        "the last call ended: the stopping campaign stops"
    );

    assert_eq!(
        env.service.settle_outbox(0).await,
        1,
        "the repair writes the target"
    );
    assert_eq!(env.service.settle_outbox(0).await, 0, "once");
    // (Drop also checks that the target was put back to idle by the repair.)
}
