//! The campaign, outplan and outdial states a tick finds, as a table: what ends the chain (and
//! stops the campaign for good), what keeps it waiting, the empty list by end handle; then
//! outdial-manager's transient errors, which back off and keep the campaign running.

use super::*;

/// Mocks where outdial-manager offers no target, once.
fn no_targets(m: &mut Mocks, _: &Setup) {
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(|_, _, _| Ok(vec![]));
}

/// One row per state: the campaign missing, `stopping` (with and without a call up), `stop`,
/// deleted; the outplan deleted, unknown or without a source; a legacy campaign without a type
/// or end handle; the outdial gone; the list empty with each end handle.
#[tokio::test]
async fn campaign_state_rows() {
    let ended = |reason: &'static str, campaign, events: &[&str]| TickSeen {
        tick: (Next::Stop, Outcome::Ended(reason)),
        campaign,
        stopped: 1,
        unknown: 0,
        events: super::events(events),
        calls: vec![],
        references: 0,
    };
    let waiting = |reason: &'static str| TickSeen {
        tick: (WAIT, Outcome::Waiting(reason)),
        campaign: RUNNING,
        stopped: 0,
        unknown: 0,
        events: vec![],
        calls: vec![],
        references: 0,
    };
    check_ticks(vec![
        TickCase {
            change: Change::Missing,
            ..tick_case(
                "missing_campaign_stops_the_chain",
                |_, _| {},
                ended("campaign_gone", None, &[]),
            )
        },
        TickCase {
            tweak: |s| s.campaign.status = CampaignStatus::Stopping,
            ..tick_case(
                "stopping_campaign_without_ongoing_calls_ends_stopped",
                |_, _| {},
                ended("not_running", STOPPED, &["campaign_status_stop"]),
            )
        },
        TickCase {
            tweak: |s| s.campaign.status = CampaignStatus::Stopping,
            calls: &[CampaigncallStatus::Dialing],
            ..tick_case(
                "stopping_campaign_with_a_dialing_call_stays_stopping",
                |_, _| {},
                TickSeen {
                    calls: vec![(CampaigncallStatus::Dialing, CampaigncallResult::None, None)],
                    references: 1,
                    ..ended(
                        "not_running",
                        Some((CampaignStatus::Stopping, Execute::Stop)),
                        &[],
                    )
                },
            )
        },
        TickCase {
            // Already stopped: no second stop event.
            tweak: |s| s.campaign.status = CampaignStatus::Stop,
            ..tick_case(
                "stopped_campaign_with_a_live_chain_ends_the_chain",
                |_, _| {},
                ended("not_running", STOPPED, &[]),
            )
        },
        TickCase {
            change: Change::DeleteCampaign,
            ..tick_case(
                "deleted_campaign_ends_the_chain",
                |_, _| {},
                ended(
                    "campaign_deleted",
                    Some((CampaignStatus::Run, Execute::Stop)),
                    &[],
                ),
            )
        },
        TickCase {
            change: Change::DeleteOutplan,
            ..tick_case(
                "deleted_outplan_stops_the_campaign_for_good",
                |_, _| {},
                ended("outplan_gone", STOPPED, &["campaign_status_stop"]),
            )
        },
        TickCase {
            tweak: |s| s.campaign.kind = CampaignType::Unset,
            ..tick_case(
                "legacy_campaign_without_type_stops_for_good",
                |_, _| {},
                ended("invalid_type", STOPPED, &["campaign_status_stop"]),
            )
        },
        TickCase {
            tweak: |s| s.campaign.end_handle = EndHandle::Unset,
            ..tick_case(
                "legacy_empty_end_handle_continues_like_the_platform",
                no_targets,
                waiting("list_empty"),
            )
        },
        TickCase {
            kind: CampaignType::Flow,
            tweak: |s| s.campaign.outplan_id = Uuid::nil(),
            ..tick_case(
                "unknown_outplan_stops_the_campaign_for_good",
                |_, _| {},
                ended("outplan_gone", STOPPED, &["campaign_status_stop"]),
            )
        },
        TickCase {
            // No outdial/call expectations: any dial attempt fails the row.
            tweak: |s| s.outplan.source = None,
            ..tick_case(
                "call_campaign_whose_outplan_has_no_source_stops_without_dialing",
                |_, _| {},
                ended("outplan_without_source", STOPPED, &["campaign_status_stop"]),
            )
        },
        tick_case(
            "outdial_not_found_stops_the_campaign_for_good",
            |m, _| {
                m.outdial
                    .expect_available_targets()
                    .times(1)
                    .returning(|_, _, _| Err(status_err(404)));
            },
            ended("outdial_gone", STOPPED, &["campaign_status_stop"]),
        ),
        TickCase {
            tweak: |s| {
                s.outplan.max_try_count_0 = 1;
                s.outplan.max_try_count_1 = 2;
                s.outplan.max_try_count_2 = 0;
                s.outplan.max_try_count_3 = 4;
                s.outplan.max_try_count_4 = 5;
                s.campaign.end_handle = EndHandle::Continue;
            },
            ..tick_case(
                "available_targets_is_asked_with_the_outplan_max_tries",
                |m, s| {
                    let outdial_id = s.campaign.outdial_id;
                    m.outdial
                        .expect_available_targets()
                        .withf(move |id, max, limit| {
                            *id == outdial_id
                                && *max == [1, 2, 0, 4, 5]
                                && *limit == DEFAULT_TARGET_BATCH
                        })
                        .times(1)
                        .returning(|_, _, _| Ok(vec![]));
                },
                waiting("list_empty"),
            )
        },
        tick_case(
            "empty_list_with_end_handle_stop_stops_the_campaign",
            no_targets,
            ended("list_exhausted", STOPPED, &["campaign_status_stop"]),
        ),
        TickCase {
            // The call's target may come back with tries left: not exhausted yet.
            calls: &[CampaigncallStatus::Progressing],
            ..tick_case(
                "empty_list_with_end_handle_stop_waits_while_a_call_is_in_progress",
                no_targets,
                TickSeen {
                    calls: vec![(
                        CampaigncallStatus::Progressing,
                        CampaigncallResult::None,
                        None,
                    )],
                    references: 1,
                    ..waiting("calls_in_flight")
                },
            )
        },
        TickCase {
            tweak: |s| s.campaign.end_handle = EndHandle::Continue,
            ..tick_case(
                "empty_list_with_end_handle_continue_waits",
                no_targets,
                waiting("list_empty"),
            )
        },
    ])
    .await;
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
