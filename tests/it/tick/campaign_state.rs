//! The campaign, outplan and outdial states a tick finds, as a table: what ends the chain (and
//! stops the campaign for good), what keeps it waiting, the empty list by end handle; then
//! outdial-manager's transient errors, which back off and keep the campaign running.

use super::*;
use campaign_manager::store::{OutboxEntry, OutboxKind};

/// Mocks where outdial-manager offers no target, once.
fn no_targets(m: &mut Mocks, _: &Setup) {
    // Asked again before an `end_handle = stop` campaign ends (a target written back meanwhile).
    m.outdial
        .expect_available_targets()
        .times(1..=2)
        .returning(|_, _, _| Ok(vec![]));
}

/// An empty list, then a target set back idle by a finish that landed since (asked again
/// before the end).
fn refilled(m: &mut Mocks, _: &Setup) {
    let mut seq = mockall::Sequence::new();
    m.outdial
        .expect_available_targets()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(vec![]));
    m.outdial
        .expect_available_targets()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(vec![target()]));
}

/// outdial-manager's 404 for the campaign's outdial.
fn outdial_gone(m: &mut Mocks, _: &Setup) {
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(|_, _, _| Err(status_err(404)));
}

/// The outplan's tries per destination, on a `continue` campaign.
fn max_tries(s: &mut Setup) {
    s.outplan.max_try_count_0 = 1;
    s.outplan.max_try_count_1 = 2;
    s.outplan.max_try_count_2 = 0;
    s.outplan.max_try_count_3 = 4;
    s.outplan.max_try_count_4 = 5;
    s.campaign.end_handle = EndHandle::Continue;
}

/// outdial-manager asked once with the outplan's tries of [`max_tries`], offering nothing.
fn asked_with_max_tries(m: &mut Mocks, s: &Setup) {
    let outdial_id = s.campaign.outdial_id;
    m.outdial
        .expect_available_targets()
        .withf(move |id, max, limit| {
            *id == outdial_id && *max == [1, 2, 0, 4, 5] && *limit == DEFAULT_TARGET_BATCH
        })
        .times(1)
        .returning(|_, _, _| Ok(vec![]));
}

/// One row per state: the campaign missing, `stopping` (with and without a call up), `stop`
/// (already stopped: no second stop event), deleted; the outplan deleted, unknown or without a
/// source (no dial tried); a legacy campaign without a type or end handle; the outdial gone;
/// the list empty with each end handle (a call up may bring its target back with tries left:
/// not exhausted yet).
#[rustfmt::skip]
#[tokio::test]
async fn campaign_state_rows() {
    use CampaignType::{Call, Flow};
    use CampaigncallStatus::{Dialing, Progressing};
    use Change::{DeleteCampaign, DeleteOutplan, Missing, Nothing};
    check_table(vec![
        tick_row("missing_campaign_stops_the_chain", Call, as_is, Missing, &[], no_peer,
                 "stop ended campaign_gone | campaign gone | stops 1 | unknown dials 0 | events - | calls - | references 0"),
        tick_row("stopping_campaign_without_ongoing_calls_ends_stopped", Call, |s| s.campaign.status = CampaignStatus::Stopping, Nothing, &[], no_peer,
                 "stop ended not_running | campaign stop/stop | stops 1 | unknown dials 0 | events campaign_status_stop | calls - | references 0"),
        tick_row("stopping_campaign_with_a_dialing_call_stays_stopping", Call, |s| s.campaign.status = CampaignStatus::Stopping, Nothing, &[Dialing], no_peer,
                 "stop ended not_running | campaign stopping/stop | stops 1 | unknown dials 0 | events - | calls dialing none - | references 1"),
        tick_row("stopped_campaign_with_a_live_chain_ends_the_chain", Call, |s| s.campaign.status = CampaignStatus::Stop, Nothing, &[], no_peer,
                 "stop ended not_running | campaign stop/stop | stops 1 | unknown dials 0 | events - | calls - | references 0"),
        tick_row("deleted_campaign_ends_the_chain", Call, as_is, DeleteCampaign, &[], no_peer,
                 "stop ended campaign_deleted | campaign run/stop | stops 1 | unknown dials 0 | events - | calls - | references 0"),
        tick_row("deleted_outplan_stops_the_campaign_for_good", Call, as_is, DeleteOutplan, &[], no_peer,
                 "stop ended outplan_gone | campaign stop/stop | stops 1 | unknown dials 0 | events campaign_status_stop | calls - | references 0"),
        tick_row("legacy_campaign_without_type_stops_for_good", Call, |s| s.campaign.kind = CampaignType::Unset, Nothing, &[], no_peer,
                 "stop ended invalid_type | campaign stop/stop | stops 1 | unknown dials 0 | events campaign_status_stop | calls - | references 0"),
        tick_row("legacy_empty_end_handle_continues_like_the_platform", Call, |s| s.campaign.end_handle = EndHandle::Unset, Nothing, &[], no_targets,
                 "after 5s waiting list_empty | campaign run/run | stops 0 | unknown dials 0 | events - | calls - | references 0"),
        tick_row("unknown_outplan_stops_the_campaign_for_good", Flow, |s| s.campaign.outplan_id = Uuid::nil(), Nothing, &[], no_peer,
                 "stop ended outplan_gone | campaign stop/stop | stops 1 | unknown dials 0 | events campaign_status_stop | calls - | references 0"),
        tick_row("call_campaign_whose_outplan_has_no_source_stops_without_dialing", Call, |s| s.outplan.source = None, Nothing, &[], no_peer,
                 "stop ended outplan_without_source | campaign stop/stop | stops 1 | unknown dials 0 | events campaign_status_stop | calls - | references 0"),
        tick_row("outdial_not_found_stops_the_campaign_for_good", Call, as_is, Nothing, &[], outdial_gone,
                 "stop ended outdial_gone | campaign stop/stop | stops 1 | unknown dials 0 | events campaign_status_stop | calls - | references 0"),
        tick_row("available_targets_is_asked_with_the_outplan_max_tries", Call, max_tries, Nothing, &[], asked_with_max_tries,
                 "after 5s waiting list_empty | campaign run/run | stops 0 | unknown dials 0 | events - | calls - | references 0"),
        tick_row("empty_list_with_end_handle_stop_stops_the_campaign", Call, as_is, Nothing, &[], no_targets,
                 "stop ended list_exhausted | campaign stop/stop | stops 1 | unknown dials 0 | events campaign_status_stop | calls - | references 0"),
        tick_row("empty_list_with_end_handle_stop_waits_while_a_call_is_in_progress", Call, as_is, Nothing, &[Progressing], no_targets,
                 "after 5s waiting calls_in_flight | campaign run/run | stops 0 | unknown dials 0 | events - | calls progressing none - | references 1"),
        tick_row("empty_list_with_end_handle_stop_waits_when_a_target_came_back_since", Call, as_is, Nothing, &[], refilled,
                 "after 5s waiting list_refilled | campaign run/run | stops 0 | unknown dials 0 | events - | calls - | references 0"),
        tick_row("empty_list_with_end_handle_continue_waits", Call, |s| s.campaign.end_handle = EndHandle::Continue, Nothing, &[], no_targets,
                 "after 5s waiting list_empty | campaign run/run | stops 0 | unknown dials 0 | events - | calls - | references 0"),
    ]).await;
}

#[tokio::test]
async fn transient_outdial_errors_back_off_and_keep_the_campaign_running() {
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    let mut seq = mockall::Sequence::new();
    m.outdial
        .expect_available_targets()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Err(timeout()));
    m.outdial
        .expect_available_targets()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| {
            Err(PeerError::BreakerOpen {
                target: "bin-manager.outdial-manager.request".into(),
            })
        });
    m.outdial
        .expect_available_targets()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Err(status_err(503)));
    let env = env_with(&s, m).await;

    for _ in 0..3 {
        let (next, outcome) = env.tick(s.campaign.id).await;
        assert!(matches!(outcome, Outcome::Backoff(_)), "{outcome:?}");
        match next {
            Next::Continue(d) => assert!(d >= Duration::from_secs(5), "{d:?}"),
            Next::Stop => panic!("a transient error must not end the chain"),
        }
        let c = env.campaign(s.campaign.id).await;
        assert_eq!(c.status, CampaignStatus::Run);
        assert_eq!(c.execute, Execute::Run);
    }
    assert_eq!(
        env.metrics
            .tick_backoff_total
            .with_label_values(&["transient"])
            .get(),
        3
    );
    assert!(env.events().is_empty());
}

/// A finished call's target is written back after its campaigncall is finished (the finish's
/// outbox row goes once it is written): until then the target is neither offered nor does the
/// campaign have a call up, and an `end_handle = stop` campaign must not end without it.
#[tokio::test]
async fn empty_list_with_end_handle_stop_waits_while_a_target_is_written_back() {
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    no_targets(&mut m, &s);
    let env = env_with(&s, m).await;
    let pending = OutboxEntry::new(
        OutboxKind::TargetStatus,
        s.campaign.id,
        Uuid::new_v4(),
        Uuid::new_v4(),
        "idle",
    );
    env.ts
        .store
        .outbox
        .insert(&pending)
        .await
        .expect("outbox row");

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(outcome, Outcome::Waiting("targets_settling"));
    assert!(matches!(next, Next::Continue(_)), "{next:?}");
    assert_eq!(
        env.campaign(s.campaign.id).await.status,
        CampaignStatus::Run
    );
}
