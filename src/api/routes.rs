//! The routes themselves: parsing a URI into a [`Route`] and running it.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::bus::{Request, Response};
use crate::model::json::uuid_or_nil;
use crate::model::{Action, CallingHours, Pacing};
use crate::service::{self as svc, Service, ServiceError, ServiceResult};
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
    /// C8 `PUT /v1/campaigns/<id>/service_level`.
    CampaignServiceLevel(Uuid),
    /// C9 `PUT /v1/campaigns/<id>/actions`.
    CampaignActions(Uuid),
    /// C10 `PUT /v1/campaigns/<id>/resource_info`.
    CampaignResourceInfo(Uuid),
    /// C11 `PUT /v1/campaigns/<id>/next_campaign_id`.
    CampaignNextCampaign(Uuid),
    /// `PUT /v1/campaigns/<id>/calling_hours` (CONTRACT.md §15, not on the platform).
    CampaignCallingHours(Uuid),
    /// `PUT /v1/campaigns/<id>/pacing` (CONTRACT.md §15, not on the platform).
    CampaignPacing(Uuid),
    /// C12 `GET /v1/campaigns/<id>/stats` (this product's addition, CONTRACT.md §15).
    CampaignStats(Uuid),
    /// K1 `GET /v1/campaigncalls?...`.
    CampaigncallList(String),
    /// K2 `GET /v1/campaigncalls/<id>`.
    CampaigncallGet(Uuid),
    /// K3 `DELETE /v1/campaigncalls/<id>`.
    CampaigncallDelete(Uuid),
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

impl Route {
    /// Matches a method and URI; `None` is a 404.
    pub fn parse(method: &str, uri: &str) -> Option<Route> {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (uri, None),
        };
        let segs: Vec<&str> = path.split('/').collect();
        // "/v1/<res>[/<id>[/<sub>]]" splits into ["", "v1", res, id?, sub?].
        if segs.len() < 3 || !segs[0].is_empty() || segs[1] != "v1" {
            return None;
        }
        let id = segs.get(3).and_then(|s| lower_uuid(s));
        use Route::*;
        let route = match (method, segs[2], segs.len(), segs.get(4).copied()) {
            ("POST", "campaigns", 3, _) if query.is_none() => CampaignCreate,
            ("GET", "campaigns", 3, _) => CampaignList(query?),
            ("GET", "campaigns", 4, _) if query.is_none() => CampaignGet(id?),
            ("DELETE", "campaigns", 4, _) if query.is_none() => CampaignDelete(id?),
            ("PUT", "campaigns", 4, _) if query.is_none() => CampaignUpdate(id?),
            ("POST", "campaigns", 5, Some("execute")) if query.is_none() => CampaignExecute(id?),
            ("GET", "campaigns", 5, Some("stats")) if query.is_none() => CampaignStats(id?),
            ("PUT", "campaigns", 5, Some(sub)) if query.is_none() => match sub {
                "status" => CampaignStatus(id?),
                "service_level" => CampaignServiceLevel(id?),
                "actions" => CampaignActions(id?),
                "resource_info" => CampaignResourceInfo(id?),
                "next_campaign_id" => CampaignNextCampaign(id?),
                "calling_hours" => CampaignCallingHours(id?),
                "pacing" => CampaignPacing(id?),
                _ => return None,
            },
            ("GET", "campaigncalls", 3, _) => CampaigncallList(query?),
            ("GET", "campaigncalls", 4, _) if query.is_none() => CampaigncallGet(id?),
            ("DELETE", "campaigncalls", 4, _) if query.is_none() => CampaigncallDelete(id?),
            ("POST", "outplans", 3, _) if query.is_none() => OutplanCreate,
            ("GET", "outplans", 3, _) => OutplanList(query?),
            ("GET", "outplans", 4, _) if query.is_none() => OutplanGet(id?),
            ("DELETE", "outplans", 4, _) if query.is_none() => OutplanDelete(id?),
            ("PUT", "outplans", 4, _) if query.is_none() => OutplanUpdate(id?),
            ("PUT", "outplans", 5, Some("dials")) if query.is_none() => OutplanDials(id?),
            _ => return None,
        };
        Some(route)
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
        CampaignServiceLevel(_) => "/v1/campaigns/<campaign-id>/service_level",
        CampaignActions(_) => "/v1/campaigns/<campaign-id>/actions",
        CampaignResourceInfo(_) => "/v1/campaigns/<campaign-id>/resource_info",
        CampaignNextCampaign(_) => "/v1/campaigns/<campaign-id>/next_campaign_id",
        CampaignCallingHours(_) => "/v1/campaigns/<campaign-id>/calling_hours",
        CampaignPacing(_) => "/v1/campaigns/<campaign-id>/pacing",
        CampaignStats(_) => "/v1/campaigns/<campaign-id>/stats",
        CampaigncallList(_) => "/v1/campaigncalls",
        CampaigncallGet(_) | CampaigncallDelete(_) => "/v1/campaigncalls/<campaigncall-id>",
        OutplanCreate | OutplanList(_) => "/v1/outplans",
        OutplanGet(_) | OutplanDelete(_) | OutplanUpdate(_) => "/v1/outplans/<outplan-id>",
        // Deliberately `outdials`, not `outplans`: a quirk of the platform's label for
        // `PUT /v1/outplans/<id>/dials` (CONTRACT.md §12), kept because dashboards select on it.
        OutplanDials(_) => "/v1/outdials/<outplan-id>/dials",
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

#[derive(Deserialize)]
struct StatusBody {
    status: String,
}

#[derive(Deserialize)]
struct ServiceLevelBody {
    service_level: i32,
}

#[derive(Deserialize)]
struct ActionsBody {
    #[serde(default)]
    actions: Option<Vec<Action>>,
}

#[derive(Deserialize)]
struct ResourceInfoBody {
    #[serde(default, deserialize_with = "uuid_or_nil")]
    outplan_id: Uuid,
    #[serde(default, deserialize_with = "uuid_or_nil")]
    outdial_id: Uuid,
    #[serde(default, deserialize_with = "uuid_or_nil")]
    queue_id: Uuid,
    #[serde(default, deserialize_with = "uuid_or_nil")]
    next_campaign_id: Uuid,
}

#[derive(Deserialize)]
struct NextCampaignBody {
    #[serde(default, deserialize_with = "uuid_or_nil")]
    next_campaign_id: Uuid,
}

/// The body of `PUT .../calling_hours`: the key is required, `null` clears.
fn calling_hours_body(req: &Request) -> ServiceResult<Option<CallingHours>> {
    let mut b = body::<serde_json::Map<String, Value>>(req)?;
    let value = b.remove("calling_hours").ok_or_else(|| {
        ServiceError::Invalid("calling_hours is required (null clears it)".into())
    })?;
    serde_json::from_value(value)
        .map_err(|e| ServiceError::Invalid(format!("invalid calling_hours: {e}")))
}

/// The body of `PUT .../pacing`: the key is required, `null` clears; the error names the
/// field (`pacing.dials_per_second: ...`).
fn pacing_body(req: &Request) -> ServiceResult<Option<Pacing>> {
    let mut b = body::<serde_json::Map<String, Value>>(req)?;
    let value = b
        .remove("pacing")
        .ok_or_else(|| ServiceError::Invalid("pacing is required (null clears it)".into()))?;
    serde_json::from_value(value).map_err(|e| ServiceError::Invalid(e.to_string()))
}

/// Runs a matched route.
pub async fn handle(s: &Service, route: Route, req: &Request) -> ServiceResult<Response> {
    use Route::*;
    match route {
        CampaignCreate => ok(&s.create_campaign(body::<svc::CampaignCreate>(req)?).await?),
        CampaignList(q) => ok(&s.campaigns(&filters(req)?, page(&q)?).await?),
        CampaignGet(id) => ok(&s.campaign(id).await?),
        CampaignDelete(id) => ok(&s.delete_campaign(id).await?),
        CampaignUpdate(id) => ok(&s
            .update_campaign(id, body::<svc::CampaignUpdate>(req)?)
            .await?),
        CampaignExecute(id) => {
            s.execute(id).await?;
            Ok(Response::new(200, "application/json", None))
        }
        CampaignStatus(id) => ok(&s
            .update_status(id, &body::<StatusBody>(req)?.status)
            .await?),
        CampaignServiceLevel(id) => ok(&s
            .update_service_level(id, body::<ServiceLevelBody>(req)?.service_level)
            .await?),
        CampaignActions(id) => ok(&s
            .update_actions(id, body::<ActionsBody>(req)?.actions)
            .await?),
        CampaignResourceInfo(id) => {
            let b = body::<ResourceInfoBody>(req)?;
            let r = ResourceInfo {
                outplan_id: b.outplan_id,
                outdial_id: b.outdial_id,
                queue_id: b.queue_id,
                next_campaign_id: b.next_campaign_id,
            };
            ok(&s.update_resource_info(id, r).await?)
        }
        CampaignNextCampaign(id) => ok(&s
            .update_next_campaign_id(id, body::<NextCampaignBody>(req)?.next_campaign_id)
            .await?),
        CampaignCallingHours(id) => {
            ok(&s.update_calling_hours(id, calling_hours_body(req)?).await?)
        }
        CampaignPacing(id) => ok(&s.update_pacing(id, pacing_body(req)?).await?),
        CampaignStats(id) => ok(&s.campaign_stats(id).await?),
        CampaigncallList(q) => ok(&s.campaigncalls(&filters(req)?, page(&q)?).await?),
        CampaigncallGet(id) => ok(&s.campaigncall(id).await?),
        CampaigncallDelete(id) => ok(&s.delete_campaigncall(id).await?),
        OutplanCreate => ok(&s.create_outplan(body::<svc::OutplanCreate>(req)?).await?),
        OutplanList(q) => ok(&s.outplans(&filters(req)?, page(&q)?).await?),
        OutplanGet(id) => ok(&s.outplan(id).await?),
        OutplanDelete(id) => ok(&s.delete_outplan(id).await?),
        OutplanUpdate(id) => ok(&s
            .update_outplan(id, body::<svc::OutplanUpdate>(req)?)
            .await?),
        OutplanDials(id) => ok(&s
            .update_outplan_dials(id, body::<svc::OutplanDials>(req)?)
            .await?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3653adb2-c454-11ec-8c9f-7bcd6924ee69";

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
            Route::parse("PUT", &format!("/v1/outplans/{ID}/dials")),
            Some(Route::OutplanDials(id))
        );
        assert_eq!(
            Route::parse("GET", "/v1/campaigns?page_size=1"),
            Some(Route::CampaignList("page_size=1".into()))
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
    }
}
