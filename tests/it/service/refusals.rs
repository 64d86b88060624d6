//! What a campaign's create refuses before any flow is created or outdial claimed, as a table:
//! bad bodies, then references to resources that are unknown, deleted, of another customer or
//! taken (each a typed `Invalid` naming the field), and a validation no peer answered (a peer
//! error, not `Invalid`). Every row starts with mocks that expect nothing else, so a flow
//! created or an outdial claimed fails the row, and no event may be published.

use crate::table::{check_table, table_row};

use super::*;

/// Ids a row's request, stored records and mocks share, made before the mocks are.
struct Ids {
    customer: Uuid,
    /// A record of this id is stored by [`Stored`], or the peers know it.
    known: Uuid,
    /// The id of the campaign the request creates.
    campaign: Uuid,
}

/// What is stored before the create.
#[derive(Clone, Copy)]
enum Stored {
    Nothing,
    /// An outplan `known` of another customer.
    ForeignOutplan,
    /// An outplan `known` of the customer, deleted.
    DeletedOutplan,
    /// A campaign `known` of another customer.
    ForeignCampaign,
}

/// What a row must be refused with.
#[derive(Clone, Copy)]
enum Refused {
    /// `Invalid` with a message naming this.
    Naming(&'static str),
    /// A peer error: the validation was not answered.
    Peer,
}

struct Case {
    case: &'static str,
    stored: Stored,
    peers: fn(&mut Mocks, &Ids),
    req: fn(&Ids) -> CampaignCreate,
    want: Refused,
}

fn case(
    case: &'static str,
    stored: Stored,
    peers: fn(&mut Mocks, &Ids),
    req: fn(&Ids) -> CampaignCreate,
    want: Refused,
) -> Case {
    Case {
        case,
        stored,
        peers,
        req,
        want,
    }
}

/// How a refusal reads in the table: what it must be, or what it was instead.
fn described(want: Refused, got: Result<Campaign, ServiceError>, events: Vec<String>) -> String {
    let refusal = match (want, got) {
        (Refused::Naming(field), Err(ServiceError::Invalid(m))) if m.contains(field) => {
            format!("invalid naming {field:?}")
        }
        (Refused::Peer, Err(ServiceError::Peer(_))) => "a peer error".to_string(),
        (_, other) => format!("{other:?}"),
    };
    if events.is_empty() {
        refusal
    } else {
        format!("{refusal}, events {events:?}")
    }
}

fn wanted(want: Refused) -> String {
    match want {
        Refused::Naming(field) => format!("invalid naming {field:?}"),
        Refused::Peer => "a peer error".to_string(),
    }
}

/// Runs one row on a database of its own.
async fn run(c: Case) -> String {
    let ids = Ids {
        customer: Uuid::new_v4(),
        known: Uuid::new_v4(),
        campaign: Uuid::new_v4(),
    };
    let mut m = Mocks::new();
    (c.peers)(&mut m, &ids);
    let env = Env::new(m).await;
    match c.stored {
        Stored::Nothing => {}
        Stored::ForeignOutplan => {
            let mut o = records::outplan(Uuid::new_v4());
            o.id = ids.known;
            env.insert_outplan(&o).await;
        }
        Stored::DeletedOutplan => {
            let mut o = records::outplan(ids.customer);
            o.id = ids.known;
            env.insert_outplan(&o).await;
            env.ts.store.outplans.delete(o.id).await.expect("delete");
        }
        Stored::ForeignCampaign => {
            let mut other = campaign(Uuid::new_v4(), Uuid::nil(), Uuid::nil());
            other.id = ids.known;
            env.insert_campaign(&other).await;
        }
    }
    let got = env.service.create_campaign((c.req)(&ids)).await;
    described(c.want, got, env.events())
}

/// An outdial `known`, of `customer`, owned by `campaign_id`, read once.
fn outdial_read(m: &mut Mocks, known: Uuid, customer: Uuid, campaign_id: Uuid) {
    let od = Outdial {
        id: known,
        customer_id: customer,
        campaign_id,
        ..Outdial::default()
    };
    m.outdial
        .expect_get_outdial()
        .withf(move |id| *id == known)
        .times(1)
        .returning(move |_| Ok(od.clone()));
}

/// The customer's outdial `known`, owned by another campaign.
fn outdial_taken(m: &mut Mocks, i: &Ids) {
    outdial_read(m, i.known, i.customer, Uuid::new_v4());
}

/// Another customer's outdial `known`.
fn outdial_foreign(m: &mut Mocks, i: &Ids) {
    outdial_read(m, i.known, Uuid::new_v4(), Uuid::nil());
}

/// outdial-manager's 404 for the outdial `known`.
fn outdial_missing(m: &mut Mocks, i: &Ids) {
    let known = i.known;
    m.outdial
        .expect_get_outdial()
        .withf(move |id| *id == known)
        .returning(|_| {
            Err(PeerError::Status {
                target: "bin-manager.outdial-manager.request".into(),
                status: 404,
                typed: None,
            })
        });
}

/// The customer's queue `known`, deleted.
fn queue_deleted(m: &mut Mocks, i: &Ids) {
    let q = Queue {
        id: i.known,
        tm_delete: Some(chrono::Utc::now()),
        ..queue(i.customer)
    };
    m.queue
        .expect_get_queue()
        .times(1)
        .returning(move |_| Ok(q.clone()));
}

/// queue-manager not answering.
fn queue_silent(m: &mut Mocks, _: &Ids) {
    m.queue
        .expect_get_queue()
        .times(1)
        .returning(|_| Err(timeout()));
}

fn no_peer(_: &mut Mocks, _: &Ids) {}

/// Every row: `stored`, the peers, the request, and how it must be refused.
#[rustfmt::skip]
#[tokio::test]
async fn create_refusal_rows() {
    use Refused::{Naming, Peer};
    use Stored::{DeletedOutplan, ForeignCampaign, ForeignOutplan, Nothing};
    let invalid = Naming("");
    let cases = vec![
        case("create_rejects_bad_bodies_before_any_flow: no type", Nothing, no_peer, |i| CampaignCreate { kind: None, ..create_req(i.customer) }, invalid),
        case("create_rejects_bad_bodies_before_any_flow: negative service level", Nothing, no_peer, |i| CampaignCreate { service_level: -1, ..create_req(i.customer) }, invalid),
        case("create_rejects_bad_bodies_before_any_flow: nil customer", Nothing, no_peer, |_| create_req(Uuid::nil()), invalid),
        // "" exists only in legacy rows; requests must give a real value.
        case("create_rejects_bad_bodies_before_any_flow: type \"\"", Nothing, no_peer, |i| CampaignCreate { kind: Some(CampaignType::Unset), ..create_req(i.customer) }, invalid),
        case("create_rejects_bad_bodies_before_any_flow: end handle \"\"", Nothing, no_peer, |i| CampaignCreate { end_handle: Some(EndHandle::Unset), ..create_req(i.customer) }, invalid),
        case("outplan_of_another_customer_is_invalid", ForeignOutplan, no_peer, |i| CampaignCreate { outplan_id: i.known, ..create_req(i.customer) }, Naming("outplan_id")),
        case("deleted_or_unknown_outplan_is_invalid: deleted", DeletedOutplan, no_peer, |i| CampaignCreate { outplan_id: i.known, ..create_req(i.customer) }, Naming("outplan_id")),
        case("deleted_or_unknown_outplan_is_invalid: unknown", Nothing, no_peer, |i| CampaignCreate { outplan_id: i.known, ..create_req(i.customer) }, Naming("outplan_id")),
        case("outdial_used_by_another_campaign_is_invalid", Nothing, outdial_taken, |i| CampaignCreate { outdial_id: i.known, ..create_req(i.customer) }, Naming("another campaign")),
        case("outdial_of_another_customer_or_missing_is_invalid: another customer", Nothing, outdial_foreign, |i| CampaignCreate { outdial_id: i.known, ..create_req(i.customer) }, Naming("outdial_id")),
        case("outdial_of_another_customer_or_missing_is_invalid: missing", Nothing, outdial_missing, |i| CampaignCreate { outdial_id: i.known, ..create_req(i.customer) }, Naming("outdial_id")),
        case("deleted_queue_is_invalid", Nothing, queue_deleted, |i| CampaignCreate { queue_id: i.known, ..create_req(i.customer) }, Naming("queue_id")),
        case("unanswered_validation_is_a_peer_error_not_invalid", Nothing, queue_silent, |i| CampaignCreate { queue_id: i.known, ..create_req(i.customer) }, Peer),
        case("next_campaign_must_exist_belong_to_the_customer_and_not_be_itself: another customer's", ForeignCampaign, no_peer, |i| CampaignCreate { id: i.campaign, next_campaign_id: i.known, ..create_req(i.customer) }, Naming("next_campaign_id")),
        case("next_campaign_must_exist_belong_to_the_customer_and_not_be_itself: unknown", Nothing, no_peer, |i| CampaignCreate { id: i.campaign, next_campaign_id: i.known, ..create_req(i.customer) }, Naming("next_campaign_id")),
        case("next_campaign_must_exist_belong_to_the_customer_and_not_be_itself: itself", Nothing, no_peer, |i| CampaignCreate { id: i.campaign, next_campaign_id: i.campaign, ..create_req(i.customer) }, Naming("next_campaign_id")),
    ];
    check_table(cases.into_iter().map(|c| table_row(c.case, wanted(c.want), run(c))).collect()).await;
}
