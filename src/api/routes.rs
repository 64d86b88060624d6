//! The routes themselves: parsing a URI into a [`Route`] and running it.

use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::bus::{Request, Response};
use crate::model::{self, CallingHoursUpdate, PacingUpdate, enum_str};
use crate::service::{Service, ServiceError, ServiceResult, SuppressionQuery};
use crate::store::{Page, ResourceInfo};

/// A matched route with its path id and query string.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// C1 `POST /v1/campaigns`.
    CampaignCreate,
    /// C2 `GET /v1/campaigns?...`.
    CampaignList(String),
    /// C3 `GET /v1/campaigns/<id>`.
    CampaignGet(Uuid),
    /// C4 `DELETE /v1/campaigns/<id>`.
    CampaignDelete(Uuid),
    /// C5 `PUT /v1/campaigns/<id>`.
    CampaignUpdate(Uuid),
    /// C6 `POST /v1/campaigns/<id>/execute`.
    CampaignExecute(Uuid),
    /// C7 `PUT /v1/campaigns/<id>/status`.
    CampaignStatus(Uuid),
    /// `POST /v1/campaigns/<id>/force_stop` (this product's addition, docs/cli.md): ends a
    /// campaign stuck in `stopping` whose calls are gone.
    CampaignForceStop(Uuid),
    /// C8 `PUT /v1/campaigns/<id>/service_level`.
    CampaignServiceLevel(Uuid),
    /// C9 `PUT /v1/campaigns/<id>/actions`.
    CampaignActions(Uuid),
    /// C10 `PUT /v1/campaigns/<id>/resource_info`.
    CampaignResourceInfo(Uuid),
    /// C11 `PUT /v1/campaigns/<id>/next_campaign_id`.
    CampaignNextCampaign(Uuid),
    /// `PUT /v1/campaigns/<id>/calling_hours` (docs/calling_hours.md, not on the platform).
    CampaignCallingHours(Uuid),
    /// `PUT /v1/campaigns/<id>/pacing` (docs/pacing.md, not on the platform).
    CampaignPacing(Uuid),
    /// C12 `GET /v1/campaigns/<id>/stats` (this product's addition, docs/stats-and-sequences.md).
    CampaignStats(Uuid),
    /// `POST /v1/campaigns/flows/reconcile`: the orphaned-flow reconcile pass.
    CampaignFlowsReconcile,
    /// K1 `GET /v1/campaigncalls?...`.
    CampaigncallList(String),
    /// K2 `GET /v1/campaigncalls/<id>`.
    CampaigncallGet(Uuid),
    /// K3 `DELETE /v1/campaigncalls/<id>`.
    CampaigncallDelete(Uuid),
    /// `POST /v1/campaigncalls/<id>/finish` (this product's addition, docs/cli.md): an
    /// operator ends a campaigncall whose call is gone.
    CampaigncallFinish(Uuid),
    /// O1 `POST /v1/outplans`.
    OutplanCreate,
    /// O2 `GET /v1/outplans?...`.
    OutplanList(String),
    /// O3 `GET /v1/outplans/<id>`.
    OutplanGet(Uuid),
    /// O4 `DELETE /v1/outplans/<id>`.
    OutplanDelete(Uuid),
    /// O5 `PUT /v1/outplans/<id>`.
    OutplanUpdate(Uuid),
    /// O6 `PUT /v1/outplans/<id>/dials`.
    OutplanDials(Uuid),
    /// `POST /v1/suppressions` (docs/contact-strategy.md, not on the platform).
    SuppressionCreate,
    /// `GET /v1/suppressions?customer_id=...`.
    SuppressionList(String),
    /// `POST /v1/suppressions/import`.
    SuppressionImport,
    /// `DELETE /v1/suppressions/<id>`.
    SuppressionDelete(Uuid),
    /// `POST /v1/campaigns/<id>/callbacks` (docs/contact-strategy.md, not on the platform).
    CallbackCreate(Uuid),
    /// `GET /v1/campaigns/<id>/callbacks?page_size=&page_token=`.
    CallbackList(Uuid, String),
    /// `GET /v1/campaigns/<id>/callbacks/<callback id>`.
    CallbackGet(Uuid, Uuid),
    /// `DELETE /v1/campaigns/<id>/callbacks/<callback id>`.
    CallbackDelete(Uuid, Uuid),
    /// `GET /v1/customers/<customer_id>/dial_limits` (docs/contact-strategy.md, not on the
    /// platform).
    CustomerDialLimitsGet(Uuid),
    /// `PUT /v1/customers/<customer_id>/dial_limits`.
    CustomerDialLimitsSet(Uuid),
    /// `DELETE /v1/customers/<customer_id>/dial_limits`.
    CustomerDialLimitsClear(Uuid),
}

/// A lowercase canonical UUID, as the platform's route regexes accept.
fn lower_uuid(s: &str) -> Option<Uuid> {
    let ok = s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        });
    if ok { Uuid::parse_str(s).ok() } else { None }
}

/// One row of the route table: the method, the URI pattern, and how a match becomes a
/// [`Route`]. A pattern is a path whose `{name}` segments are lowercase UUIDs; a pattern
/// ending in `?{query}` needs a query string (possibly empty), any other refuses one.
pub struct RouteSpec {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The URI pattern, e.g. `/v1/campaigns/{campaign_id}/status`.
    pub pattern: &'static str,
    build: Build,
}

/// How a matched row becomes a [`Route`].
enum Build {
    /// A route without an id or query.
    Fixed(Route),
    /// A route of the path's id.
    Id(fn(Uuid) -> Route),
    /// A route of the path's two ids (a record of a campaign).
    Ids(fn(Uuid, Uuid) -> Route),
    /// A list route of the query string.
    Query(fn(String) -> Route),
    /// A list route of the path's id and the query string.
    IdQuery(fn(Uuid, String) -> Route),
}

const fn row(method: &'static str, pattern: &'static str, build: Build) -> RouteSpec {
    RouteSpec {
        method,
        pattern,
        build,
    }
}

/// Every route served, in matching order. [`Route::parse`] reads nothing else, and the
/// AsyncAPI document (`docs/asyncapi.yaml`) is checked against it (`tests/it/contract_docs.rs`).
#[rustfmt::skip]
static ROUTES: &[RouteSpec] = {
    use Build::*;
    use Route::*;
    &[
        row("POST",   "/v1/campaigns",                                Fixed(CampaignCreate)),
        row("GET",    "/v1/campaigns?{query}",                        Query(CampaignList)),
        row("POST",   "/v1/campaigns/flows/reconcile",                Fixed(CampaignFlowsReconcile)),
        row("GET",    "/v1/campaigns/{campaign_id}",                  Id(CampaignGet)),
        row("DELETE", "/v1/campaigns/{campaign_id}",                  Id(CampaignDelete)),
        row("PUT",    "/v1/campaigns/{campaign_id}",                  Id(CampaignUpdate)),
        row("POST",   "/v1/campaigns/{campaign_id}/execute",          Id(CampaignExecute)),
        row("POST",   "/v1/campaigns/{campaign_id}/force_stop",       Id(CampaignForceStop)),
        row("GET",    "/v1/campaigns/{campaign_id}/stats",            Id(CampaignStats)),
        row("PUT",    "/v1/campaigns/{campaign_id}/status",           Id(CampaignStatus)),
        row("PUT",    "/v1/campaigns/{campaign_id}/service_level",    Id(CampaignServiceLevel)),
        row("PUT",    "/v1/campaigns/{campaign_id}/actions",          Id(CampaignActions)),
        row("PUT",    "/v1/campaigns/{campaign_id}/resource_info",    Id(CampaignResourceInfo)),
        row("PUT",    "/v1/campaigns/{campaign_id}/next_campaign_id", Id(CampaignNextCampaign)),
        row("PUT",    "/v1/campaigns/{campaign_id}/calling_hours",    Id(CampaignCallingHours)),
        row("PUT",    "/v1/campaigns/{campaign_id}/pacing",           Id(CampaignPacing)),
        row("GET",    "/v1/campaigncalls?{query}",                    Query(CampaigncallList)),
        row("GET",    "/v1/campaigncalls/{campaigncall_id}",          Id(CampaigncallGet)),
        row("DELETE", "/v1/campaigncalls/{campaigncall_id}",          Id(CampaigncallDelete)),
        row("POST",   "/v1/campaigncalls/{campaigncall_id}/finish",   Id(CampaigncallFinish)),
        row("POST",   "/v1/outplans",                                 Fixed(OutplanCreate)),
        row("GET",    "/v1/outplans?{query}",                         Query(OutplanList)),
        row("GET",    "/v1/outplans/{outplan_id}",                    Id(OutplanGet)),
        row("DELETE", "/v1/outplans/{outplan_id}",                    Id(OutplanDelete)),
        row("PUT",    "/v1/outplans/{outplan_id}",                    Id(OutplanUpdate)),
        row("PUT",    "/v1/outplans/{outplan_id}/dials",              Id(OutplanDials)),
        row("POST",   "/v1/suppressions",                             Fixed(SuppressionCreate)),
        row("GET",    "/v1/suppressions?{query}",                     Query(SuppressionList)),
        row("POST",   "/v1/suppressions/import",                      Fixed(SuppressionImport)),
        row("DELETE", "/v1/suppressions/{suppression_id}",            Id(SuppressionDelete)),
        row("POST",   "/v1/campaigns/{campaign_id}/callbacks",        Id(CallbackCreate)),
        row("GET",    "/v1/campaigns/{campaign_id}/callbacks?{query}", IdQuery(CallbackList)),
        row("GET",    "/v1/campaigns/{campaign_id}/callbacks/{callback_id}", Ids(CallbackGet)),
        row("DELETE", "/v1/campaigns/{campaign_id}/callbacks/{callback_id}", Ids(CallbackDelete)),
        row("GET",    "/v1/customers/{customer_id}/dial_limits",      Id(CustomerDialLimitsGet)),
        row("PUT",    "/v1/customers/{customer_id}/dial_limits",      Id(CustomerDialLimitsSet)),
        row("DELETE", "/v1/customers/{customer_id}/dial_limits",      Id(CustomerDialLimitsClear)),
    ]
};

/// The route table: what the service answers on its request queue.
pub fn route_table() -> &'static [RouteSpec] {
    ROUTES
}

impl RouteSpec {
    /// The path's ids in order (nil where the pattern has none) when `path` and `query` fit
    /// the pattern.
    fn fit(&self, path: &str, query: Option<&str>) -> Option<[Uuid; 2]> {
        let (pattern_path, wants_query) = match self.pattern.split_once('?') {
            Some((p, _)) => (p, true),
            None => (self.pattern, false),
        };
        if wants_query != query.is_some() {
            return None;
        }
        let mut ids = [Uuid::nil(); 2];
        let mut found = 0;
        let mut segs = path.split('/');
        for want in pattern_path.split('/') {
            let seg = segs.next()?;
            if want.starts_with('{') {
                *ids.get_mut(found)? = lower_uuid(seg)?;
                found += 1;
            } else if want != seg {
                return None;
            }
        }
        segs.next().is_none().then_some(ids)
    }
}

impl Route {
    /// Matches a method and URI against the route table; `None` is a 404.
    pub fn parse(method: &str, uri: &str) -> Option<Route> {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        let (spec, [id, second]) = ROUTES
            .iter()
            .filter(|r| r.method == method)
            .find_map(|r| Some((r, r.fit(path, query)?)))?;
        Some(match &spec.build {
            Build::Fixed(route) => route.clone(),
            Build::Id(make) => make(id),
            Build::Ids(make) => make(id, second),
            Build::Query(make) => make(query.unwrap_or_default().to_owned()),
            Build::IdQuery(make) => make(id, query.unwrap_or_default().to_owned()),
        })
    }

    /// The metric label of the route (the platform's names).
    pub fn label(&self) -> &'static str {
        route_label(self)
    }
}

/// The `type` label of `receive_request_process_time` for a route.
pub fn route_label(r: &Route) -> &'static str {
    use Route::*;
    match r {
        CampaignCreate | CampaignList(_) => "/v1/campaigns",
        CampaignGet(_) | CampaignDelete(_) | CampaignUpdate(_) => "/v1/campaigns/<campaign-id>",
        CampaignExecute(_) => "/v1/campaigns/<campaign-id>/execute",
        CampaignStatus(_) => "/v1/campaigns/<campaign-id>/status",
        CampaignForceStop(_) => "/v1/campaigns/<campaign-id>/force_stop",
        CampaignServiceLevel(_) => "/v1/campaigns/<campaign-id>/service_level",
        CampaignActions(_) => "/v1/campaigns/<campaign-id>/actions",
        CampaignResourceInfo(_) => "/v1/campaigns/<campaign-id>/resource_info",
        CampaignNextCampaign(_) => "/v1/campaigns/<campaign-id>/next_campaign_id",
        CampaignCallingHours(_) => "/v1/campaigns/<campaign-id>/calling_hours",
        CampaignPacing(_) => "/v1/campaigns/<campaign-id>/pacing",
        CampaignStats(_) => "/v1/campaigns/<campaign-id>/stats",
        CampaignFlowsReconcile => "/v1/campaigns/flows/reconcile",
        CampaigncallList(_) => "/v1/campaigncalls",
        CampaigncallGet(_) | CampaigncallDelete(_) => "/v1/campaigncalls/<campaigncall-id>",
        CampaigncallFinish(_) => "/v1/campaigncalls/<campaigncall-id>/finish",
        OutplanCreate | OutplanList(_) => "/v1/outplans",
        OutplanGet(_) | OutplanDelete(_) | OutplanUpdate(_) => "/v1/outplans/<outplan-id>",
        // Deliberately `outdials`, not `outplans`: a quirk of the platform's label for
        // `PUT /v1/outplans/<id>/dials` (docs/metrics.md), kept because dashboards select on it.
        OutplanDials(_) => "/v1/outdials/<outplan-id>/dials",
        SuppressionCreate | SuppressionList(_) => "/v1/suppressions",
        SuppressionImport => "/v1/suppressions/import",
        SuppressionDelete(_) => "/v1/suppressions/<suppression-id>",
        CallbackCreate(_) | CallbackList(..) => "/v1/campaigns/<campaign-id>/callbacks",
        CallbackGet(..) | CallbackDelete(..) => {
            "/v1/campaigns/<campaign-id>/callbacks/<callback-id>"
        }
        CustomerDialLimitsGet(_) | CustomerDialLimitsSet(_) | CustomerDialLimitsClear(_) => {
            "/v1/customers/<customer-id>/dial_limits"
        }
    }
}

/// Parses the request body as `T`; a missing or malformed body is a 400 naming the problem.
fn body<T: DeserializeOwned>(req: &Request) -> ServiceResult<T> {
    let Some(raw) = req.data.as_deref() else {
        return Err(ServiceError::Invalid("request body is required".into()));
    };
    // Only a JSON object is a body: serde's derived structs would also take an array, which
    // Go's decoder (and so the platform) never accepts.
    let value: Value = serde_json::from_str(raw.get())
        .map_err(|e| ServiceError::Invalid(format!("invalid request body: {e}")))?;
    if !value.is_object() {
        return Err(ServiceError::Invalid(
            "request body must be a JSON object".into(),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| ServiceError::Invalid(format!("invalid request body: {e}")))
}

/// The filter object of a list request (absent or `null` means no filter).
fn filters(req: &Request) -> ServiceResult<serde_json::Map<String, Value>> {
    match req
        .data
        .as_deref()
        .map(|r| serde_json::from_str::<Value>(r.get()))
    {
        None => Ok(serde_json::Map::new()),
        Some(Ok(Value::Null)) => Ok(serde_json::Map::new()),
        Some(Ok(Value::Object(m))) => Ok(m),
        Some(Ok(_)) => Err(ServiceError::Invalid(
            "filters must be a JSON object".into(),
        )),
        Some(Err(e)) => Err(ServiceError::Invalid(format!("invalid filters: {e}"))),
    }
}

fn page(query: &str) -> ServiceResult<Page> {
    let mut token = None;
    let mut size = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "page_token" => token = Some(v.into_owned()),
            "page_size" => size = Some(v.into_owned()),
            _ => {}
        }
    }
    Ok(Page::parse(token.as_deref(), size.as_deref())?)
}

fn ok<T: serde::Serialize>(value: &T) -> ServiceResult<Response> {
    Ok(Response::json(200, value))
}

/// The body of `PUT .../calling_hours`: the key is required (which serde would not check for
/// an `Option`), `null` clears.
fn calling_hours_body(req: &Request) -> ServiceResult<CallingHoursUpdate> {
    let mut b = body::<serde_json::Map<String, Value>>(req)?;
    let value = b.remove("calling_hours").ok_or_else(|| {
        ServiceError::Invalid("calling_hours is required (null clears it)".into())
    })?;
    let calling_hours = serde_json::from_value(value)
        .map_err(|e| ServiceError::Invalid(format!("invalid calling_hours: {e}")))?;
    Ok(CallingHoursUpdate { calling_hours })
}

/// The body of `PUT .../pacing`: the key is required, `null` clears; the error names the
/// field (`pacing.dials_per_second: ...`).
fn pacing_body(req: &Request) -> ServiceResult<PacingUpdate> {
    let mut b = body::<serde_json::Map<String, Value>>(req)?;
    let value = b
        .remove("pacing")
        .ok_or_else(|| ServiceError::Invalid("pacing is required (null clears it)".into()))?;
    let pacing = serde_json::from_value(value).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    Ok(PacingUpdate { pacing })
}

/// The reconcile pass's `recent_interval_sec` from the body (absent body, key, `null` or 0:
/// `None`); a bad value is a 400 naming the field.
fn recent_interval(req: &Request) -> ServiceResult<Option<std::time::Duration>> {
    let body = match req.data.as_deref() {
        None => None,
        Some(raw) => Some(
            serde_json::from_str::<Value>(raw.get())
                .map_err(|e| ServiceError::Invalid(format!("invalid request body: {e}")))?,
        ),
    };
    model::recent_interval_sec(body.as_ref())
        .map(|secs| secs.map(std::time::Duration::from_secs))
        .map_err(ServiceError::Invalid)
}

/// `POST /v1/campaigns/flows/reconcile`. A pass that ran answers 200 with its counts, failures
/// and a cut-short pass included; a database that cannot be read answers a bare 400, as the
/// platform's service does (the pass did not run; its caller records the status).
async fn reconcile_flows(s: &Service, req: &Request) -> ServiceResult<Response> {
    match s.reconcile_flows(recent_interval(req)?).await {
        Ok(result) => ok(&result),
        Err(ServiceError::Store(e)) => {
            tracing::error!(error = %e, "reconcile pass: cannot read the deleted campaigns");
            Ok(Response::status(400))
        }
        Err(e) => Err(e),
    }
}

/// Runs a matched route.
pub async fn handle(s: &Service, route: Route, req: &Request) -> ServiceResult<Response> {
    use Route::*;
    match route {
        CampaignCreate => ok(&s
            .create_campaign(body::<model::CampaignCreate>(req)?)
            .await?),
        CampaignList(q) => ok(&s.campaigns(&filters(req)?, page(&q)?).await?),
        CampaignGet(id) => ok(&s.campaign(id).await?),
        CampaignDelete(id) => ok(&s.delete_campaign(id).await?),
        CampaignUpdate(id) => ok(&s
            .update_campaign(id, body::<model::CampaignUpdate>(req)?)
            .await?),
        CampaignExecute(id) => {
            s.execute(id).await?;
            Ok(Response::new(200, "application/json", None))
        }
        CampaignStatus(id) => {
            let b = body::<model::CampaignStatusUpdate>(req)?;
            ok(&s.update_status(id, &enum_str(&b.status)).await?)
        }
        CampaignForceStop(id) => ok(&s.force_stop_campaign(id).await?),
        CampaignServiceLevel(id) => ok(&s
            .update_service_level(id, body::<model::ServiceLevelUpdate>(req)?.service_level)
            .await?),
        CampaignActions(id) => ok(&s
            .update_actions(id, body::<model::ActionsUpdate>(req)?.actions)
            .await?),
        CampaignResourceInfo(id) => {
            let b = body::<model::ResourceInfoUpdate>(req)?;
            let r = ResourceInfo {
                outplan_id: b.outplan_id,
                outdial_id: b.outdial_id,
                queue_id: b.queue_id,
                next_campaign_id: b.next_campaign_id,
            };
            ok(&s.update_resource_info(id, r).await?)
        }
        CampaignNextCampaign(id) => ok(&s
            .update_next_campaign_id(id, body::<model::NextCampaignUpdate>(req)?.next_campaign_id)
            .await?),
        CampaignCallingHours(id) => ok(&s
            .update_calling_hours(id, calling_hours_body(req)?.calling_hours)
            .await?),
        CampaignPacing(id) => ok(&s.update_pacing(id, pacing_body(req)?.pacing).await?),
        CampaignStats(id) => ok(&s.campaign_stats(id).await?),
        CampaignFlowsReconcile => reconcile_flows(s, req).await,
        CampaigncallList(q) => ok(&s.campaigncalls(&filters(req)?, page(&q)?).await?),
        CampaigncallGet(id) => ok(&s.campaigncall(id).await?),
        CampaigncallDelete(id) => ok(&s.delete_campaigncall(id).await?),
        CampaigncallFinish(id) => {
            let f = body::<model::CampaigncallFinish>(req)?;
            ok(&s
                .operator_finish_campaigncall(id, f.result, f.force)
                .await?)
        }
        OutplanCreate => ok(&s.create_outplan(body::<model::OutplanCreate>(req)?).await?),
        OutplanList(q) => ok(&s.outplans(&filters(req)?, page(&q)?).await?),
        OutplanGet(id) => ok(&s.outplan(id).await?),
        OutplanDelete(id) => ok(&s.delete_outplan(id).await?),
        OutplanUpdate(id) => ok(&s
            .update_outplan(id, body::<model::OutplanUpdate>(req)?)
            .await?),
        OutplanDials(id) => ok(&s
            .update_outplan_dials(id, body::<model::OutplanDials>(req)?)
            .await?),
        SuppressionCreate => ok(&s.create_suppression(&body(req)?).await?),
        SuppressionList(q) => ok(&s
            .suppressions(&SuppressionQuery::parse(&q)?, page(&q)?)
            .await?),
        SuppressionImport => ok(&s.import_suppressions(&body(req)?).await?),
        SuppressionDelete(id) => ok(&s.delete_suppression(id).await?),
        CallbackCreate(id) => ok(&s.create_callback(id, &body(req)?).await?),
        CallbackList(id, q) => ok(&s.callbacks(id, page(&q)?).await?),
        CallbackGet(id, callback) => ok(&s.callback(id, callback).await?),
        CallbackDelete(id, callback) => ok(&s.delete_callback(id, callback).await?),
        CustomerDialLimitsGet(id) => ok(&s.customer_dial_limits(id).await?),
        CustomerDialLimitsSet(id) => ok(&s.set_customer_dial_limits(id, body(req)?).await?),
        CustomerDialLimitsClear(id) => ok(&s.clear_customer_dial_limits(id).await?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3653adb2-c454-11ec-8c9f-7bcd6924ee69";

    impl RouteSpec {
        fn fit_uri(&self, uri: &str) -> bool {
            let (path, query) = match uri.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (uri, None),
            };
            self.fit(path, query).is_some()
        }
    }

    #[test]
    fn matches_like_the_platform_regexes() {
        let id = Uuid::parse_str(ID).unwrap();
        assert_eq!(
            Route::parse("GET", &format!("/v1/campaigns/{ID}")),
            Some(Route::CampaignGet(id))
        );
        assert_eq!(
            Route::parse("POST", &format!("/v1/campaigns/{ID}/execute")),
            Some(Route::CampaignExecute(id))
        );
        assert_eq!(
            Route::parse("GET", &format!("/v1/campaigns/{ID}/stats")),
            Some(Route::CampaignStats(id))
        );
        assert_eq!(
            Route::parse("PUT", &format!("/v1/campaigns/{ID}/stats")),
            None
        );
        assert_eq!(
            Route::parse("POST", &format!("/v1/campaigns/{ID}/force_stop")),
            Some(Route::CampaignForceStop(id))
        );
        assert_eq!(
            Route::parse("PUT", &format!("/v1/campaigns/{ID}/force_stop")),
            None
        );
        assert_eq!(
            Route::parse("POST", &format!("/v1/campaigncalls/{ID}/finish")),
            Some(Route::CampaigncallFinish(id))
        );
        assert_eq!(
            Route::parse("POST", &format!("/v1/campaigncalls/{ID}/finish?x=1")),
            None
        );
        let other = Uuid::new_v4();
        assert_eq!(
            Route::parse("GET", &format!("/v1/campaigns/{ID}/callbacks/{other}")),
            Some(Route::CallbackGet(id, other))
        );
        assert_eq!(
            Route::parse("GET", &format!("/v1/campaigns/{ID}/callbacks?page_size=2")),
            Some(Route::CallbackList(id, "page_size=2".into()))
        );
        assert_eq!(
            Route::parse("GET", &format!("/v1/campaigns/{ID}/callbacks/{other}/x")),
            None
        );
        assert_eq!(
            Route::parse("PUT", &format!("/v1/outplans/{ID}/dials")),
            Some(Route::OutplanDials(id))
        );
        assert_eq!(
            Route::parse("GET", "/v1/campaigns?page_size=1"),
            Some(Route::CampaignList("page_size=1".into()))
        );
        assert_eq!(
            Route::parse("POST", "/v1/campaigns/flows/reconcile"),
            Some(Route::CampaignFlowsReconcile)
        );
        assert_eq!(Route::parse("GET", "/v1/campaigns/flows/reconcile"), None);
        assert_eq!(
            Route::parse("POST", "/v1/campaigns/flows/reconcile?x"),
            None
        );
        assert_eq!(Route::parse("GET", "/v1/campaigns"), None, "list needs '?'");
        assert_eq!(
            Route::parse("GET", &format!("/v1/campaigns/{}", ID.to_uppercase())),
            None,
            "uppercase id"
        );
        assert_eq!(Route::parse("GET", "/v1/campaigns/not-a-uuid"), None);
        assert_eq!(Route::parse("PATCH", &format!("/v1/campaigns/{ID}")), None);
        assert_eq!(
            Route::parse("PUT", &format!("/v1/campaigns/{ID}/nope")),
            None
        );
        assert_eq!(
            Route::parse("GET", &format!("/v1/campaigns/{ID}/extra/more")),
            None
        );
        assert_eq!(Route::parse("GET", "/v2/campaigns?"), None);
        assert_eq!(Route::parse("GET", ""), None);
        assert_eq!(
            Route::parse("GET", &format!("/v1/campaigns/{ID}/")),
            None,
            "trailing slash"
        );
        assert_eq!(
            Route::parse("GET", &format!("/v1/campaigns/{ID}?x=1")),
            None,
            "query on a get"
        );
        assert_eq!(
            Route::parse("POST", "/v1/campaigns?"),
            None,
            "query on a create"
        );
    }

    /// Each row of the table is reached by a URI made from its own pattern (no row hides
    /// another), and each route gets its own metric label family.
    #[test]
    fn every_table_row_is_reachable() {
        let mut seen = Vec::new();
        for spec in route_table() {
            let uri = spec
                .pattern
                .replace("{campaign_id}", ID)
                .replace("{campaigncall_id}", ID)
                .replace("{outplan_id}", ID)
                .replace("{suppression_id}", ID)
                .replace("{callback_id}", ID)
                .replace("{customer_id}", ID)
                .replace("{query}", "page_size=1");
            let route = Route::parse(spec.method, &uri)
                .unwrap_or_else(|| panic!("{} {uri} does not match", spec.method));
            let hit = route_table()
                .iter()
                .position(|r| r.method == spec.method && r.fit_uri(&uri));
            assert_eq!(
                hit.map(|i| route_table()[i].pattern),
                Some(spec.pattern),
                "{} {uri} is taken by an earlier row",
                spec.method
            );
            assert!(!seen.contains(&route), "{route:?} twice");
            seen.push(route);
        }
    }
}
