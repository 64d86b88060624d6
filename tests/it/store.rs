//! Storage against the real MariaDB and Redis: every repository operation, filters,
//! pagination, soft delete, JSON NULL handling, migrations on a platform database, cache.

use crate::support;

use campaign_manager::model::*;
use campaign_manager::store::{
    BasicInfo, Cache, Deletion, Dials, Filters, Page, ResourceInfo, Store, StoreError,
};
use serde_json::json;
use sqlx::AssertSqlSafe;
use support::{TestDb, TestPrefix, TestStore};
use uuid::Uuid;

fn campaign(customer: Uuid) -> Campaign {
    Campaign {
        id: Uuid::new_v4(),
        customer_id: customer,
        kind: CampaignType::Call,
        execute: Execute::Stop,
        name: "spring sale".into(),
        detail: "detail".into(),
        status: CampaignStatus::Stop,
        service_level: 100,
        end_handle: EndHandle::Stop,
        flow_id: Uuid::new_v4(),
        actions: Some(vec![Action {
            kind: "answer".into(),
            ..Action::default()
        }]),
        outplan_id: Uuid::new_v4(),
        outdial_id: Uuid::new_v4(),
        queue_id: Uuid::nil(),
        next_campaign_id: Uuid::nil(),
        tm_create: None,
        tm_update: None,
        tm_delete: None,
        calling_hours: None,
        pacing: None,
    }
}

fn outplan(customer: Uuid) -> Outplan {
    Outplan {
        id: Uuid::new_v4(),
        customer_id: customer,
        name: "plan".into(),
        detail: "".into(),
        source: Some(Address::tel("+821100000001")),
        dial_timeout: 30000,
        try_interval: 600000,
        max_try_count_0: 5,
        max_try_count_1: 4,
        max_try_count_2: 3,
        max_try_count_3: 2,
        max_try_count_4: 1,
        tm_create: None,
        tm_update: None,
        tm_delete: None,
        retry_rules: None,
        min_talk_ms: None,
    }
}

fn campaigncall(campaign_id: Uuid, status: CampaigncallStatus) -> Campaigncall {
    Campaigncall {
        id: Uuid::new_v4(),
        customer_id: Uuid::new_v4(),
        campaign_id,
        outplan_id: Uuid::new_v4(),
        outdial_id: Uuid::new_v4(),
        outdial_target_id: Uuid::new_v4(),
        queue_id: Uuid::nil(),
        activeflow_id: Uuid::new_v4(),
        flow_id: Uuid::new_v4(),
        reference_type: ReferenceType::Call,
        reference_id: Uuid::new_v4(),
        status,
        result: CampaigncallResult::None,
        source: None,
        destination: Some(Address::tel("+821100000002")),
        destination_index: 1,
        try_count: 2,
        tm_create: None,
        tm_update: None,
        tm_delete: None,
    }
}

fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().expect("object")
}

#[tokio::test]
async fn campaign_repository_operations() {
    let t = TestStore::new().await;
    let repo = &t.store.campaigns;
    let customer = Uuid::new_v4();
    let c = campaign(customer);

    let stored = repo.create(&c).await.unwrap();
    assert!(stored.tm_create.is_some());
    assert_eq!(stored.tm_update, None, "create leaves tm_update NULL");
    assert_eq!(stored.actions, c.actions);
    assert_eq!(repo.get(c.id).await.unwrap().as_ref(), Some(&stored));
    assert_eq!(repo.get(Uuid::new_v4()).await.unwrap(), None);

    let info = BasicInfo {
        name: "n2".into(),
        detail: "d2".into(),
        kind: Some(CampaignType::Flow),
        service_level: 50,
        end_handle: Some(EndHandle::Continue),
    };
    let u = repo.update_basic_info(c.id, &info).await.unwrap().unwrap();
    assert_eq!(
        (u.name.as_str(), u.kind, u.service_level, u.end_handle),
        ("n2", CampaignType::Flow, 50, EndHandle::Continue)
    );
    let keep = BasicInfo {
        name: String::new(),
        detail: String::new(),
        kind: None,
        service_level: 0,
        end_handle: None,
    };
    let u = repo.update_basic_info(c.id, &keep).await.unwrap().unwrap();
    assert_eq!(
        (
            u.name.as_str(),
            u.detail.as_str(),
            u.kind,
            u.service_level,
            u.end_handle
        ),
        ("", "", CampaignType::Flow, 0, EndHandle::Continue),
        "type and end handle not given are kept"
    );
    assert!(u.tm_update.is_some(), "every write sets tm_update");

    assert_eq!(
        repo.update_service_level(c.id, 70)
            .await
            .unwrap()
            .unwrap()
            .service_level,
        70
    );
    let u = repo.update_actions(c.id, &None).await.unwrap().unwrap();
    assert_eq!(u.actions, None);
    let r = ResourceInfo {
        outplan_id: Uuid::new_v4(),
        outdial_id: Uuid::new_v4(),
        queue_id: Uuid::new_v4(),
        next_campaign_id: Uuid::new_v4(),
    };
    let u = repo.update_resource_info(c.id, r).await.unwrap().unwrap();
    assert_eq!(
        (u.outplan_id, u.outdial_id, u.queue_id, u.next_campaign_id),
        (r.outplan_id, r.outdial_id, r.queue_id, r.next_campaign_id)
    );
    let next = Uuid::new_v4();
    assert_eq!(
        repo.update_next_campaign_id(c.id, next)
            .await
            .unwrap()
            .unwrap()
            .next_campaign_id,
        next
    );
    let flow = Uuid::new_v4();
    assert_eq!(
        repo.update_flow_id(c.id, flow)
            .await
            .unwrap()
            .unwrap()
            .flow_id,
        flow
    );

    // Status compare-and-set: only from an allowed status.
    assert!(
        repo.transition(
            c.id,
            &[CampaignStatus::Stop],
            CampaignStatus::Run,
            Some(Execute::Run)
        )
        .await
        .unwrap()
    );
    assert!(
        !repo
            .transition(
                c.id,
                &[CampaignStatus::Stop],
                CampaignStatus::Run,
                Some(Execute::Run)
            )
            .await
            .unwrap()
    );
    let u = repo.get(c.id).await.unwrap().unwrap();
    assert_eq!((u.status, u.execute), (CampaignStatus::Run, Execute::Run));
    assert_eq!(repo.ids_executing().await.unwrap(), vec![c.id]);
    assert!(repo.set_execute(c.id, Execute::Stop).await.unwrap());
    assert!(!repo.set_execute(c.id, Execute::Stop).await.unwrap());
    assert!(repo.ids_executing().await.unwrap().is_empty());

    // Unknown id: updates are no-ops that read back nothing.
    assert_eq!(
        repo.update_service_level(Uuid::new_v4(), 1).await.unwrap(),
        None
    );

    // Soft delete stamps once.
    let d = repo.delete(c.id).await.unwrap().unwrap();
    let first = d.tm_delete.expect("tm_delete set");
    assert_eq!(d.tm_update, Some(first));
    let again = repo.delete(c.id).await.unwrap().unwrap();
    assert_eq!(
        again.tm_delete,
        Some(first),
        "second delete does not re-stamp"
    );
    assert_eq!(
        repo.get(c.id).await.unwrap().unwrap().tm_delete,
        Some(first),
        "get still returns deleted rows"
    );
    assert!(
        !repo
            .transition(c.id, &[CampaignStatus::Run], CampaignStatus::Stop, None)
            .await
            .unwrap(),
        "no transition on a deleted campaign"
    );
}

#[tokio::test]
async fn campaigncall_repository_operations() {
    let t = TestStore::new().await;
    let repo = &t.store.campaigncalls;
    let campaign_id = Uuid::new_v4();
    let a = repo
        .create(&campaigncall(campaign_id, CampaigncallStatus::Dialing))
        .await
        .unwrap();
    let b = repo
        .create(&campaigncall(campaign_id, CampaigncallStatus::Dialing))
        .await
        .unwrap();
    let _other = repo
        .create(&campaigncall(Uuid::new_v4(), CampaigncallStatus::Dialing))
        .await
        .unwrap();

    assert_eq!(a.source, None);
    assert_eq!(repo.get(a.id).await.unwrap().unwrap(), a);
    assert_eq!(
        repo.get_by_reference_id(a.reference_id)
            .await
            .unwrap()
            .unwrap()
            .id,
        a.id
    );
    assert_eq!(
        repo.get_by_activeflow_id(b.activeflow_id)
            .await
            .unwrap()
            .unwrap()
            .id,
        b.id
    );
    assert_eq!(
        repo.get_by_reference_id(Uuid::new_v4()).await.unwrap(),
        None
    );

    assert_eq!(
        repo.count_status(campaign_id, CampaigncallStatus::Dialing)
            .await
            .unwrap(),
        2
    );
    let p = repo.set_progressing(b.id).await.unwrap().unwrap();
    assert_eq!(p.status, CampaigncallStatus::Progressing);
    assert!(
        repo.set_progressing(b.id).await.unwrap().is_none(),
        "only from dialing"
    );
    assert_eq!(
        repo.count_status(campaign_id, CampaigncallStatus::Dialing)
            .await
            .unwrap(),
        1
    );
    assert_eq!(repo.list_ongoing(campaign_id, 10).await.unwrap().len(), 2);
    assert!(repo.has_ongoing(campaign_id).await.unwrap());

    let done = repo
        .finish(a.id, CampaigncallResult::Success)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.status, done.result),
        (CampaigncallStatus::Done, CampaigncallResult::Success)
    );
    assert!(
        repo.finish(a.id, CampaigncallResult::Fail)
            .await
            .unwrap()
            .is_none(),
        "finishing twice changes nothing"
    );
    assert_eq!(
        repo.get(a.id).await.unwrap().unwrap().result,
        CampaigncallResult::Success
    );
    repo.finish(b.id, CampaigncallResult::Fail)
        .await
        .unwrap()
        .unwrap();
    assert!(!repo.has_ongoing(campaign_id).await.unwrap());

    let f = repo
        .filters(&obj(
            json!({"campaign_id": campaign_id.to_string(), "result": "fail"}),
        ))
        .unwrap();
    let listed = repo.list(&f, Page::default()).await.unwrap();
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![b.id]);
    let f = repo
        .filters(&obj(json!({"destination_index": 1, "deleted": false})))
        .unwrap();
    assert_eq!(repo.list(&f, Page::default()).await.unwrap().len(), 3);

    let d = repo.delete(b.id).await.unwrap().unwrap();
    assert!(d.tm_delete.is_some());
    let f = repo.filters(&obj(json!({"deleted": true}))).unwrap();
    assert_eq!(repo.list(&f, Page::default()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn outplan_repository_operations() {
    let t = TestStore::new().await;
    let repo = &t.store.outplans;
    let o = outplan(Uuid::new_v4());
    let stored = repo.create(&o).await.unwrap();
    assert_eq!(stored.source, o.source);
    assert_eq!(stored.max_try_counts(), [5, 4, 3, 2, 1]);
    let u = repo
        .update_basic_info(o.id, "new", "more")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((u.name.as_str(), u.detail.as_str()), ("new", "more"));
    let dials = Dials {
        source: None,
        dial_timeout: 1,
        try_interval: 2,
        max_try_counts: [0, 1, 2, 3, 4],
    };
    let u = repo.update_dials(o.id, &dials).await.unwrap().unwrap();
    assert_eq!(
        (
            u.source.clone(),
            u.dial_timeout,
            u.try_interval,
            u.max_try_counts()
        ),
        (None, 1, 2, [0, 1, 2, 3, 4])
    );
    let f = repo
        .filters(&obj(
            json!({"customer_id": o.customer_id.to_string(), "try_interval": 2}),
        ))
        .unwrap();
    assert_eq!(repo.list(&f, Page::default()).await.unwrap().len(), 1);
    assert!(
        repo.delete(o.id)
            .await
            .unwrap()
            .unwrap()
            .tm_delete
            .is_some()
    );
    assert_eq!(repo.delete(Uuid::new_v4()).await.unwrap(), None);
}

#[tokio::test]
async fn filters_are_whitelisted_and_typed() {
    let t = TestStore::new().await;
    let customer = Uuid::new_v4();
    for _ in 0..3 {
        t.store.campaigns.create(&campaign(customer)).await.unwrap();
    }
    t.store
        .campaigns
        .create(&campaign(Uuid::new_v4()))
        .await
        .unwrap();
    let repo = &t.store.campaigns;

    let f = repo.filters(&obj(json!({"customer_id": customer.to_string(), "status": "stop", "type": "call", "service_level": 100, "name": "spring sale"}))).unwrap();
    assert_eq!(repo.list(&f, Page::default()).await.unwrap().len(), 3);
    let f = repo.filters(&obj(json!({"queue_id": ""}))).unwrap();
    assert_eq!(
        repo.list(&f, Page::default()).await.unwrap().len(),
        4,
        "empty uuid string is the nil UUID"
    );

    for bad in [
        json!({"id = id OR 1=1 --": "x"}),
        json!({"customer_id": "not-a-uuid"}),
        json!({"service_level": "100"}),
        json!({"status": "flying"}),
        json!({"actions": []}),
        json!({"tm_create": "2020-01-01"}),
        json!({"deleted": 0}),
    ] {
        assert!(
            matches!(
                repo.filters(&obj(bad.clone())),
                Err(StoreError::InvalidFilter(_))
            ),
            "{bad}"
        );
    }
    // Nothing was executed by the hostile key: the table still has its four rows.
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM campaign_campaigns")
        .fetch_one(&t.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 4);
}

#[tokio::test]
async fn pagination_skips_nothing_across_equal_timestamps() {
    let t = TestStore::new().await;
    let customer = Uuid::new_v4();
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(
            t.store
                .campaigns
                .create(&campaign(customer))
                .await
                .unwrap()
                .id,
        );
    }
    // Five rows share one tm_create; two are older.
    sqlx::query("UPDATE campaign_campaigns SET tm_create = '2024-01-01 00:00:00.000001'")
        .execute(&t.db.pool)
        .await
        .unwrap();
    for id in &ids[..2] {
        sqlx::query("UPDATE campaign_campaigns SET tm_create = '2023-01-01 00:00:00' WHERE id = ?")
            .bind(id.as_bytes().to_vec())
            .execute(&t.db.pool)
            .await
            .unwrap();
    }
    let f = Filters::none().and_uuid("customer_id", customer);
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let page = Page::parse(token.as_deref(), Some("2")).unwrap();
        let rows = t.store.campaigns.list(&f, page).await.unwrap();
        if rows.is_empty() {
            break;
        }
        token = rows
            .last()
            .and_then(|r| r.tm_create)
            .map(|t| format_time(&t));
        seen.extend(rows.iter().map(|r| r.id));
    }
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids, "every row exactly once");
}

fn format_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    campaign_manager::model::json::format_time(t)
}

#[tokio::test]
async fn json_columns_read_null_and_json_null_alike() {
    let t = TestStore::new().await;
    let c = t
        .store
        .campaigns
        .create(&campaign(Uuid::new_v4()))
        .await
        .unwrap();
    for value in ["NULL", "'null'"] {
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE campaign_campaigns SET actions = {value} WHERE id = ?"
        )))
        .bind(c.id.as_bytes().to_vec())
        .execute(&t.db.pool)
        .await
        .unwrap();
        assert_eq!(
            t.store
                .campaigns
                .get_fresh(c.id)
                .await
                .unwrap()
                .unwrap()
                .actions,
            None,
            "{value}"
        );
    }
    // NULL uuid columns read as nil.
    sqlx::query("UPDATE campaign_campaigns SET queue_id = NULL WHERE id = ?")
        .bind(c.id.as_bytes().to_vec())
        .execute(&t.db.pool)
        .await
        .unwrap();
    assert!(
        t.store
            .campaigns
            .get_fresh(c.id)
            .await
            .unwrap()
            .unwrap()
            .queue_id
            .is_nil()
    );
    // Legacy rows of the Go service may hold "" in type and end_handle: they read as Unset.
    sqlx::query("UPDATE campaign_campaigns SET type = '', end_handle = '' WHERE id = ?")
        .bind(c.id.as_bytes().to_vec())
        .execute(&t.db.pool)
        .await
        .unwrap();
    let legacy = t.store.campaigns.get_fresh(c.id).await.unwrap().unwrap();
    assert_eq!(
        (legacy.kind, legacy.end_handle),
        (CampaignType::Unset, EndHandle::Unset)
    );
    assert!(
        serde_json::to_string(&legacy)
            .unwrap()
            .contains(r#""type":"","#)
    );
    // A corrupt enum is an error naming the column, not a panic.
    sqlx::query("UPDATE campaign_campaigns SET status = 'flying' WHERE id = ?")
        .bind(c.id.as_bytes().to_vec())
        .execute(&t.db.pool)
        .await
        .unwrap();
    let err = t.store.campaigns.get_fresh(c.id).await.unwrap_err();
    assert!(
        err.to_string().contains("campaign_campaigns.status"),
        "{err}"
    );
}

/// The platform's own DDL (as its scripts create the tables), to prove we adopt it.
const PLATFORM_DDL: &[&str] = &[
    "create table campaign_campaigns(id binary(16), customer_id binary(16), type varchar(255), execute varchar(255), name varchar(255), detail text, status varchar(255), service_level integer, end_handle varchar(255), flow_id binary(16), actions json, outplan_id binary(16), outdial_id binary(16), queue_id binary(16), next_campaign_id binary(16), tm_create datetime(6), tm_update datetime(6), tm_delete datetime(6), primary key(id))",
    "create index idx_campaign_campaigns_customer_id on campaign_campaigns(customer_id)",
    "create index idx_campaign_campaigns_flow_id on campaign_campaigns(flow_id)",
    "create table campaign_outplans(id binary(16), customer_id binary(16), name varchar(255), detail text, source json, dial_timeout integer, try_interval integer, max_try_count_0 integer, max_try_count_1 integer, max_try_count_2 integer, max_try_count_3 integer, max_try_count_4 integer, tm_create datetime(6), tm_update datetime(6), tm_delete datetime(6), primary key(id))",
    "create index idx_campaign_outplans_customer_id on campaign_outplans(customer_id)",
    "insert into campaign_campaigns(id, customer_id, type, execute, name, detail, status, service_level, end_handle, actions, tm_create) values (unhex('3653adb2c45411ec8c9f7bcd6924ee69'), unhex('60f76478c45411ec969b13906a5eea9d'), 'call', 'stop', 'legacy', '', 'stop', 100, 'stop', '[{\"type\":\"answer\"}]', '2022-04-25 10:11:12.123456')",
    "insert into campaign_outplans(id, customer_id, name, source, tm_create) values (unhex('3ca9708ec46311ec95e753d07a0e8bb2'), unhex('99f40c64c46211ecb1e457c64041ff4e'), 'p', '{\"type\":\"tel\",\"target\":\"+821100000001\"}', '2022-04-25 10:11:12.123456')",
];

async fn checksum(db: &TestDb, table: &str) -> String {
    let rows: Vec<(String, Option<i64>)> =
        sqlx::query_as(AssertSqlSafe(format!("CHECKSUM TABLE {table} EXTENDED")))
            .fetch_all(&db.pool)
            .await
            .unwrap();
    format!("{:?}", rows.first().map(|r| r.1))
}

#[tokio::test]
async fn migrations_run_twice_and_adopt_a_platform_database() {
    let db = TestDb::empty().await;
    for stmt in PLATFORM_DDL {
        sqlx::query(AssertSqlSafe(*stmt))
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let before = (
        checksum(&db, "campaign_campaigns").await,
        checksum(&db, "campaign_outplans").await,
    );

    let store = Store::with_pool(db.pool.clone(), Cache::disabled());
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();

    let after = (
        checksum(&db, "campaign_campaigns").await,
        checksum(&db, "campaign_outplans").await,
    );
    assert_eq!(before, after, "existing rows untouched");
    // The missing table and indexes were added.
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() AND index_name LIKE 'idx_campaign_%'")
        .fetch_one(&db.pool).await.unwrap();
    assert!(n >= 13, "indexes present: {n}");
    let legacy = store
        .campaigns
        .get(Uuid::parse_str("3653adb2-c454-11ec-8c9f-7bcd6924ee69").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(legacy.name, "legacy");
    assert_eq!(legacy.actions.unwrap()[0].kind, "answer");
    assert_eq!(
        campaign_manager::model::json::format_time(&legacy.tm_create.unwrap()),
        "2022-04-25T10:11:12.123456Z"
    );
    let p = store
        .outplans
        .get(Uuid::parse_str("3ca9708e-c463-11ec-95e7-53d07a0e8bb2").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.source, Some(Address::tel("+821100000001")));
    assert_eq!(p.max_try_count_0, 0, "NULL integers read as 0");
}

#[tokio::test]
async fn cache_is_read_through_and_refreshed_on_write() {
    let t = TestStore::new().await;
    let c = t
        .store
        .campaigns
        .create(&campaign(Uuid::new_v4()))
        .await
        .unwrap();
    let cache = t.prefix.cache();
    let key = cache.key("campaign", c.id);
    assert!(key.starts_with(&t.prefix.0) && key.ends_with(&format!("campaign:{}", c.id)));
    assert_eq!(
        cache.get::<Campaign>("campaign", c.id).await,
        Some(c.clone()),
        "written through on create"
    );

    // A change made behind the service's back is not seen while cached...
    sqlx::query("UPDATE campaign_campaigns SET name = 'sneaky' WHERE id = ?")
        .bind(c.id.as_bytes().to_vec())
        .execute(&t.db.pool)
        .await
        .unwrap();
    assert_eq!(
        t.store.campaigns.get(c.id).await.unwrap().unwrap().name,
        "spring sale"
    );
    // ...and a write through the repository refreshes the cache from MySQL.
    let u = t
        .store
        .campaigns
        .update_service_level(c.id, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.name, "sneaky");
    assert_eq!(
        cache
            .get::<Campaign>("campaign", c.id)
            .await
            .unwrap()
            .service_level,
        10
    );

    // TTL is 24 h.
    let mut conn = redis::Client::open(support::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 86_000 && ttl <= 86_400, "ttl {ttl}");
    // A garbage value is a miss, not an error.
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("{oops")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        t.store
            .campaigns
            .get(c.id)
            .await
            .unwrap()
            .unwrap()
            .service_level,
        10
    );
}

/// Issue 9 item 6: a read's cache fill that lost a race with a write must not put the old
/// row back. Simulated deterministically: the reader's row is read, the write happens (and
/// refreshes the cache), then the reader's fill arrives.
#[tokio::test]
async fn a_late_cache_fill_never_overwrites_a_newer_write() {
    let t = TestStore::new().await;
    let repo = &t.store.campaigns;
    let cache = t.prefix.cache();
    let c = repo.create(&campaign(Uuid::new_v4())).await.unwrap();

    // Reader: cache miss, reads v0 from MySQL...
    let _: () = redis::cmd("DEL")
        .arg(cache.key("campaign", c.id))
        .query_async(&mut redis_conn().await)
        .await
        .unwrap();
    let read_by_the_reader = repo.get_fresh(c.id).await.unwrap().unwrap();
    // ...writer: v1 in MySQL, refreshed into the cache...
    let v1 = repo.update_service_level(c.id, 7).await.unwrap().unwrap();
    // ...reader: fills the cache with what it read.
    assert!(
        !cache.set("campaign", c.id, &read_by_the_reader).await,
        "the older row is refused"
    );
    assert_eq!(
        cache.get::<Campaign>("campaign", c.id).await,
        Some(v1.clone())
    );
    assert_eq!(repo.get(c.id).await.unwrap(), Some(v1.clone()));

    // Same with an older row that was updated before (tm_update set on both sides).
    let v2 = repo.update_service_level(c.id, 8).await.unwrap().unwrap();
    assert!(!cache.set("campaign", c.id, &v1).await);
    assert_eq!(repo.get(c.id).await.unwrap().unwrap().service_level, 8);
    // The other order (fill first, then the write) ends with the write, and the same
    // version stores again (a repeated refresh).
    assert!(cache.set("campaign", c.id, &v2).await);
    let v3 = repo.update_service_level(c.id, 9).await.unwrap().unwrap();
    assert_eq!(
        cache.get::<Campaign>("campaign", c.id).await,
        Some(v3.clone())
    );

    // Writers on clocks that disagree: a row stamped in the future (another process's
    // clock) still gets a later tm_update on the next write, so its refresh is stored.
    let future = chrono::DateTime::parse_from_rfc3339("2100-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    sqlx::query("UPDATE campaign_campaigns SET tm_update = ? WHERE id = ?")
        .bind(future.naive_utc())
        .bind(c.id.as_bytes().to_vec())
        .execute(&t.db.pool)
        .await
        .unwrap();
    let ahead = t
        .store
        .campaigns
        .update_actions(c.id, &None)
        .await
        .unwrap()
        .unwrap();
    assert!(ahead.tm_update > Some(future), "{:?}", ahead.tm_update);
    let v5 = repo.update_service_level(c.id, 11).await.unwrap().unwrap();
    assert!(v5.tm_update > ahead.tm_update);
    assert_eq!(cache.get::<Campaign>("campaign", c.id).await, Some(v5));

    // Versions compare as times, not as the trimmed RFC 3339 text ("17Z" < "17.5Z").
    let at = |text: &str| {
        let mut r = v3.clone();
        r.tm_update = Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&chrono::Utc),
        );
        r
    };
    let (whole, half, later) = (
        at("2030-04-18T03:22:17Z"),
        at("2030-04-18T03:22:17.5Z"),
        at("2030-04-18T03:22:17.500001Z"),
    );
    let other = Uuid::new_v4();
    assert!(cache.set("campaign", other, &half).await);
    assert!(!cache.set("campaign", other, &whole).await);
    assert!(cache.set("campaign", other, &later).await);
    assert_eq!(cache.get::<Campaign>("campaign", other).await, Some(later));
}

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(support::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Deletes check the status in the UPDATE: a stale read cannot let a running campaign or an
/// unfinished campaigncall be deleted.
#[tokio::test]
async fn conditional_deletes_check_the_row_not_a_copy() {
    let t = TestStore::new().await;
    let c = t
        .store
        .campaigns
        .create(&campaign(Uuid::new_v4()))
        .await
        .unwrap();
    assert!(
        t.store
            .campaigns
            .transition(c.id, &[CampaignStatus::Stop], CampaignStatus::Run, None)
            .await
            .unwrap()
    );
    match t.store.campaigns.delete_if_stopped(c.id).await.unwrap() {
        Deletion::Refused(now) => assert_eq!(now.status, CampaignStatus::Run),
        other => panic!("{other:?}"),
    }
    assert!(
        t.store
            .campaigns
            .get_fresh(c.id)
            .await
            .unwrap()
            .unwrap()
            .tm_delete
            .is_none()
    );

    let cc = support::records::campaigncall_of(&c, CampaigncallStatus::Dialing);
    let cc = t.store.campaigncalls.create(&cc).await.unwrap();
    assert!(matches!(
        t.store.campaigncalls.delete_if_done(cc.id).await.unwrap(),
        Deletion::Refused(_)
    ));
    t.store
        .campaigncalls
        .finish(cc.id, CampaigncallResult::Success)
        .await
        .unwrap();
    assert!(matches!(
        t.store.campaigncalls.delete_if_done(cc.id).await.unwrap(),
        Deletion::Deleted(d) if d.tm_delete.is_some() && d.tm_delete == d.tm_update
    ));
    assert_eq!(
        t.store.campaigncalls.delete_if_done(cc.id).await.unwrap(),
        Deletion::Missing,
        "deleted already"
    );

    // An outplan used by a campaign that is not stopped stays.
    let mut o = outplan(c.customer_id);
    o.id = c.outplan_id;
    let o = t.store.outplans.create(&o).await.unwrap();
    assert!(matches!(
        t.store.outplans.delete_if_unused(o.id).await.unwrap(),
        Deletion::Refused(_)
    ));
    assert!(
        t.store
            .campaigns
            .transition(c.id, &[CampaignStatus::Run], CampaignStatus::Stop, None)
            .await
            .unwrap()
    );
    assert!(matches!(
        t.store.outplans.delete_if_unused(o.id).await.unwrap(),
        Deletion::Deleted(_)
    ));
    assert!(matches!(
        t.store.campaigns.delete_if_stopped(c.id).await.unwrap(),
        Deletion::Deleted(_)
    ));
    assert_eq!(
        t.store
            .campaigns
            .delete_if_stopped(Uuid::new_v4())
            .await
            .unwrap(),
        Deletion::Missing
    );
}

#[tokio::test]
async fn cache_outage_degrades_to_the_database() {
    let db = TestDb::migrated().await;
    // Nothing listens on this port: every cache call fails fast.
    let cache = Cache::new("redis://127.0.0.1:1/0", "x:").unwrap();
    assert!(!cache.ping().await);
    let store = Store::with_pool(db.pool.clone(), cache);
    let c = store
        .campaigns
        .create(&campaign(Uuid::new_v4()))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(store.campaigns.get(c.id).await.unwrap().unwrap().id, c.id);
    assert!(
        store
            .campaigns
            .update_service_level(c.id, 5)
            .await
            .unwrap()
            .is_some()
    );
    // Not a speed assertion: a hung cache would block for the whole test timeout.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let _unused = TestPrefix::new();
}
