//! Request routing of the five simulated services (docs/contract.md#outbound-calls, the peers' side).
//!
//! `SimState::handle` is the whole RPC surface as a pure function: request and `now` in, response
//! plus timed effects out. Each service only answers its own routes, like the real managers on
//! their own queues. Errors follow the platform: unknown route or id → bare 404, except where a
//! peer answers its typed 404 (a call call-manager does not have → `CALL_NOT_FOUND`, a flow or an
//! activeflow flow-manager does not have → `FLOW_NOT_FOUND`, `ACTIVEFLOW_NOT_FOUND`, an outdial
//! target outdial-manager does not have → `OUTDIAL_TARGET_NOT_FOUND`); undecodable
//! body or query → bare 400, duplicate/wrong state → bare 409. The peers' other read errors
//! (call-manager's bare 500, flow-manager's bare 400) are faults (`faults`). Nothing here can
//! panic on input.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::calls::{CallCreate, CallError, CallRecord};
use super::faults::FaultKind;
use super::flows::{ActiveflowCreate, FlowCreate, FlowError};
use super::outdials::{OutdialError, TargetState};
use super::service::Service;
use super::state::{Effect, SimState};
use crate::bus::{Request, Response};
use crate::model::Action;
use crate::model::json::uuid_or_nil;

/// Result of handling one request.
#[derive(Debug)]
pub struct Handled {
    /// The reply.
    pub response: Response,
    /// Timers to start.
    pub effects: Vec<Effect>,
    /// Hold the reply back this long (simulated timeout).
    pub delay: Option<Duration>,
    /// Handle the request only after this long, and never answer it (`late_effect_ms`).
    pub late_effect: Option<Duration>,
}

impl From<Response> for Handled {
    fn from(response: Response) -> Self {
        Handled {
            response,
            effects: Vec::new(),
            delay: None,
            late_effect: None,
        }
    }
}

fn not_found() -> Response {
    Response::status(404)
}

/// A peer's typed 404 (`NOT_FOUND` with its reason, from its domain).
fn typed_not_found(domain: &str, reason: &str, message: &str) -> Response {
    let typed = crate::model::VoipbinError {
        domain: domain.into(),
        ..crate::model::VoipbinError::new("NOT_FOUND", reason, message)
    };
    match crate::bus::envelope::to_raw(&typed) {
        Ok(raw) => Response::new(404, "voipbin_error", Some(raw)),
        Err(_) => not_found(),
    }
}

/// flow-manager's typed 404 for a flow it does not have.
fn flow_not_found() -> Response {
    typed_not_found("flow-manager", "FLOW_NOT_FOUND", "The flow was not found.")
}

/// flow-manager's typed 404 for an activeflow it does not have.
fn activeflow_not_found() -> Response {
    typed_not_found(
        "flow-manager",
        "ACTIVEFLOW_NOT_FOUND",
        "The activeflow was not found.",
    )
}

/// outdial-manager's typed 404 for a target it does not have (`GET /v1/outdialtargets/<id>`).
fn target_not_found() -> Response {
    typed_not_found(
        "outdial-manager",
        "OUTDIAL_TARGET_NOT_FOUND",
        "The outdial target was not found.",
    )
}

/// call-manager's typed 404 for a call it has no row of.
fn call_not_found() -> Response {
    typed_not_found("call-manager", "CALL_NOT_FOUND", "The call was not found.")
}

fn bad_request() -> Response {
    Response::status(400)
}

fn ok<T: Serialize + ?Sized>(body: &T) -> Response {
    Response::json(200, body)
}

/// Split `/v1/a/b?x=1` into (["v1","a","b"], "x=1").
fn split_uri(uri: &str) -> (Vec<&str>, &str) {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let segs = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    (segs, query)
}

/// A path id: canonical lowercase UUID only (the platform's route regexes).
fn path_id(s: &str) -> Option<Uuid> {
    let canonical = s.len() == 36
        && s.bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !canonical {
        return None;
    }
    Uuid::try_parse(s).ok()
}

fn body<T: for<'de> Deserialize<'de>>(req: &Request) -> Result<T, Response> {
    req.data_as::<T>().map_err(|_| bad_request())
}

#[derive(Deserialize)]
struct CampaignIdBody {
    #[serde(deserialize_with = "uuid_or_nil")]
    campaign_id: Uuid,
}

#[derive(Deserialize)]
struct ProgressingBody {
    destination_index: i64,
}

#[derive(Deserialize)]
struct StatusBody {
    status: TargetState,
}

#[derive(Deserialize)]
struct ActionsBody {
    actions: Vec<Action>,
}

/// `try_count_0..4` and `limit` of the available query; all required, non-negative integers.
fn available_query(query: &str) -> Option<([i32; 5], usize)> {
    let mut max: [Option<i32>; 5] = [None; 5];
    let mut limit = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let k = k.as_ref();
        if k == "limit" {
            limit = Some(v.parse::<usize>().ok()?);
        } else if let Some(i) = k.strip_prefix("try_count_") {
            let i: usize = i.parse().ok()?;
            let n: i32 = v.parse().ok()?;
            if n < 0 {
                return None;
            }
            *max.get_mut(i)? = Some(n);
        }
    }
    let [a, b, c, d, e] = max;
    Some(([a?, b?, c?, d?, e?], limit?))
}

fn outdial_error(e: OutdialError) -> Response {
    match e {
        OutdialError::NotFound => not_found(),
        OutdialError::Invalid(_) => bad_request(),
    }
}

fn flow_error(e: FlowError) -> Response {
    match e {
        FlowError::NotFound => not_found(),
        FlowError::Conflict(_) => Response::status(409),
    }
}

impl SimState {
    /// Handle one request addressed to `service` at time `now`.
    ///
    /// A `status` or `no_reply_ms` fault answers before routing (nothing changes); a
    /// `late_reply_ms` fault lets the request be handled as usual and only holds its reply back;
    /// `status_after_effect` handles it and replaces its reply with a bare status;
    /// `late_effect_ms` handles nothing now: the transport hands the request to
    /// [`SimState::route`] after the delay and never answers it.
    pub fn handle(&mut self, service: Service, req: &Request, now: DateTime<Utc>) -> Handled {
        *self.requests.entry(service).or_insert(0) += 1;
        let fault = self.faults.take(service, &req.method, &req.uri);
        let early = |delay: Option<Duration>, late_effect: Option<Duration>| Handled {
            response: Response::status(500),
            effects: Vec::new(),
            delay,
            late_effect,
        };
        match fault {
            Some(FaultKind::Status(code)) => Response::status(code).into(),
            Some(FaultKind::NoReplyMs(ms)) => early(Some(Duration::from_millis(ms)), None),
            Some(FaultKind::LateEffectMs(ms)) => early(None, Some(Duration::from_millis(ms))),
            Some(FaultKind::LateReplyMs(ms)) => Handled {
                delay: Some(Duration::from_millis(ms)),
                ..self.route(service, req, now)
            },
            Some(FaultKind::StatusAfterEffect(code)) => Handled {
                response: Response::status(code),
                ..self.route(service, req, now)
            },
            None => self.route(service, req, now),
        }
    }

    /// Handles a request with no fault applied (what a consumer does once it acts on it).
    pub fn route(&mut self, service: Service, req: &Request, now: DateTime<Utc>) -> Handled {
        let (segs, query) = split_uri(&req.uri);
        if segs.first() != Some(&"v1") {
            return not_found().into();
        }
        let method = req.method.to_ascii_uppercase();
        let rest = &segs[1..];
        let result = match service {
            Service::Outdial => self.outdial_routes(&method, rest, query, req, now),
            Service::Call => return self.call_routes(&method, rest, req, now),
            Service::Flow => return self.flow_routes(&method, rest, req, now),
            Service::Queue => self.queue_routes(&method, rest),
            Service::Webhook => self.webhook_routes(&method, rest, req),
        };
        result.unwrap_or_else(|r| r).into()
    }

    fn outdial_routes(
        &mut self,
        method: &str,
        segs: &[&str],
        query: &str,
        req: &Request,
        now: DateTime<Utc>,
    ) -> Result<Response, Response> {
        match (method, segs) {
            ("GET", ["outdials", id]) => {
                let id = path_id(id).ok_or_else(not_found)?;
                let o = self.outdials.get(id).ok_or_else(not_found)?;
                Ok(ok(&o.json()))
            }
            ("PUT", ["outdials", id, "campaign_id"]) => {
                let id = path_id(id).ok_or_else(not_found)?;
                let b: CampaignIdBody = body(req)?;
                let o = self
                    .outdials
                    .set_campaign(id, b.campaign_id, now)
                    .map_err(outdial_error)?;
                Ok(ok(&o.json()))
            }
            ("GET", ["outdials", id, "available"]) => {
                let id = path_id(id).ok_or_else(not_found)?;
                let (max, limit) = available_query(query).ok_or_else(bad_request)?;
                let found = self
                    .outdials
                    .available(id, &max, limit)
                    .map_err(outdial_error)?;
                let json: Vec<_> = found.iter().map(|t| t.json()).collect();
                Ok(ok(&json))
            }
            ("GET", ["outdials", id, "targets"]) => {
                let id = path_id(id).ok_or_else(not_found)?;
                let ts = self.outdials.targets_of(id).ok_or_else(not_found)?;
                let json: Vec<_> = ts.iter().map(|t| t.json()).collect();
                Ok(ok(&json))
            }
            ("GET", ["outdialtargets", id]) => {
                let id = path_id(id).ok_or_else(not_found)?;
                let t = self.outdials.target(id).ok_or_else(target_not_found)?;
                Ok(ok(&t.json()))
            }
            ("POST", ["outdialtargets", id, "progressing"]) => {
                let id = path_id(id).ok_or_else(not_found)?;
                let b: ProgressingBody = body(req)?;
                let index = usize::try_from(b.destination_index)
                    .ok()
                    .filter(|i| *i < 5)
                    .ok_or_else(bad_request)?;
                let t = self
                    .outdials
                    .progressing(id, index, now)
                    .map_err(outdial_error)?;
                Ok(ok(&t.json()))
            }
            ("PUT", ["outdialtargets", id, "status"]) => {
                let id = path_id(id).ok_or_else(not_found)?;
                let b: StatusBody = body(req)?;
                let t = self
                    .outdials
                    .set_status(id, b.status, now)
                    .map_err(outdial_error)?;
                Ok(ok(&t.json()))
            }
            _ => Err(not_found()),
        }
    }

    fn call_routes(
        &mut self,
        method: &str,
        segs: &[&str],
        req: &Request,
        now: DateTime<Utc>,
    ) -> Handled {
        match (method, segs) {
            ("POST", ["calls", id]) => {
                let Some(id) = path_id(id) else {
                    return not_found().into();
                };
                match self.create_call(id, req, now) {
                    Ok(h) => h,
                    Err(r) => r.into(),
                }
            }
            // As call-manager answers: its typed 404 only when it has no row of the call.
            ("GET", ["calls", id]) => match path_id(id).and_then(|id| self.calls.get(id)) {
                Some(c) => ok(&c.json(now)).into(),
                None => call_not_found().into(),
            },
            // As call-manager's hangup handler answers: the call, or a bare 500 for any error
            // (an unknown call included); a live call then ends at once (`calls.rs`).
            ("POST", ["calls", id, "hangup"]) => {
                match path_id(id).and_then(|id| Some((id, self.calls.request_hangup(id, now)?))) {
                    Some((call_id, reply)) => Handled {
                        response: ok(&reply),
                        effects: vec![Effect::HangUp {
                            call_id,
                            after: Duration::ZERO,
                        }],
                        delay: None,
                        late_effect: None,
                    },
                    None => Response::status(500).into(),
                }
            }
            _ => not_found().into(),
        }
    }

    fn create_call(
        &mut self,
        id: Uuid,
        req: &Request,
        now: DateTime<Utc>,
    ) -> Result<Handled, Response> {
        let b: CallCreate = body(req)?;
        let destination = b.destination.ok_or_else(bad_request)?;
        if self.calls.get(id).is_some() {
            return Err(Response::status(409));
        }
        let located = self.outdials.locate(&destination);
        let index = located.map(|(_, i)| i);
        let plan = self
            .scenario
            .plan_call(&mut self.rng, index, destination.target.as_str());
        let record = CallRecord {
            id,
            customer_id: b.customer_id,
            flow_id: b.flow_id,
            activeflow_id: b.activeflow_id,
            source: b.source,
            destination,
            target_id: located.map(|(t, _)| t),
            destination_index: index,
            outcome: plan.outcome,
            ring: plan.ring,
            duration: plan.duration,
            tm_create: Some(now),
            tm_hangup: None,
            requested_hangup: None,
        };
        let call = self
            .calls
            .insert(record)
            .map_err(|CallError::Duplicate| Response::status(409))?;
        if let Some((target, index)) = located {
            self.outdials
                .note_call(target, index, id, &call.destination.target, call.outcome);
        }
        let response = ok(&call.created_json());
        let effects = if call.outcome == super::scenario::Outcome::Silent {
            Vec::new()
        } else {
            vec![Effect::HangUp {
                call_id: id,
                after: plan.duration,
            }]
        };
        Ok(Handled {
            response,
            effects,
            delay: None,
            late_effect: None,
        })
    }

    fn flow_routes(
        &mut self,
        method: &str,
        segs: &[&str],
        req: &Request,
        now: DateTime<Utc>,
    ) -> Handled {
        let r: Result<Handled, Response> = (|| match (method, segs) {
            ("POST", ["flows"]) => {
                let b: FlowCreate = body(req)?;
                Ok(ok(self.flows.create(b, now)).into())
            }
            // As flow-manager answers: a deleted flow too (with `tm_delete`), a typed 404
            // for an unknown one.
            ("GET", ["flows", id]) => {
                let id = path_id(id).ok_or_else(not_found)?;
                let flow = self.flows.get_any(id).ok_or_else(flow_not_found)?;
                Ok(ok(flow).into())
            }
            ("PUT", ["flows", id, "actions"]) => {
                let id = path_id(id).ok_or_else(not_found)?;
                let b: ActionsBody = body(req)?;
                let f = self
                    .flows
                    .update_actions(id, b.actions, now)
                    .map_err(flow_error)?;
                Ok(ok(f).into())
            }
            ("DELETE", ["flows", id]) => {
                let id = path_id(id).ok_or_else(not_found)?;
                let flow = self.flows.delete(id, now).map_err(|_| flow_not_found())?;
                Ok(ok(flow).into())
            }
            ("POST", ["activeflows"]) => {
                let b: ActiveflowCreate = body(req)?;
                let af = self.flows.create_activeflow(b, now).map_err(flow_error)?;
                Ok(ok(&af.json()).into())
            }
            ("GET", ["activeflows", id]) => {
                let id = path_id(id).ok_or_else(not_found)?;
                let af = self.flows.activeflow(id).ok_or_else(activeflow_not_found)?;
                Ok(ok(&af.json()).into())
            }
            ("POST", ["activeflows", id, "execute"]) => {
                let id = path_id(id).ok_or_else(not_found)?;
                let after = self.scenario.plan_flow(&mut self.rng);
                let af = self.flows.execute(id).map_err(flow_error)?;
                Ok(Handled {
                    response: ok(&af.json()),
                    effects: vec![Effect::EndActiveflow { id, after }],
                    delay: None,
                    late_effect: None,
                })
            }
            _ => Err(not_found()),
        })();
        r.unwrap_or_else(Handled::from)
    }

    fn queue_routes(&mut self, method: &str, segs: &[&str]) -> Result<Response, Response> {
        match (method, segs) {
            ("GET", ["queues", id]) => {
                let id = path_id(id).ok_or_else(not_found)?;
                Ok(ok(&self.queues.get(id).ok_or_else(not_found)?.json()))
            }
            ("GET", ["queues", id, "agents"]) => {
                let id = path_id(id).ok_or_else(not_found)?;
                let q = self.queues.get(id).ok_or_else(not_found)?;
                Ok(ok(&q.agents_json()))
            }
            _ => Err(not_found()),
        }
    }

    fn webhook_routes(
        &mut self,
        method: &str,
        segs: &[&str],
        req: &Request,
    ) -> Result<Response, Response> {
        match (method, segs) {
            ("POST", ["webhooks"]) => {
                let b: Value = body(req)?;
                if b.is_null() {
                    return Err(bad_request());
                }
                self.webhooks.accept(b);
                Ok(Response::new(
                    200,
                    crate::bus::envelope::DATA_TYPE_JSON,
                    None,
                ))
            }
            _ => Err(not_found()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Address;
    use crate::outdials::TargetSpec;
    use crate::scenario::{Outcome, Scenario};
    use serde_json::json;

    fn req(method: &str, uri: &str, data: Option<Value>) -> Request {
        let r = Request::new(method, uri);
        match data {
            Some(d) => r.with_json(&d).unwrap(),
            None => r,
        }
    }

    fn st() -> SimState {
        SimState::new(Scenario::instant(Outcome::Answered).with_index_override(0, Outcome::Busy))
    }

    fn data(h: &Handled) -> Value {
        h.response.data_as::<Value>().unwrap()
    }

    #[test]
    fn outdial_routes_end_to_end() {
        let mut s = st();
        let now = Utc::now();
        let od = s.outdials.create(None, Uuid::new_v4(), "l", now);
        let spec = TargetSpec {
            destinations: vec![Some(Address::tel("+100")), Some(Address::tel("+101"))],
            ..TargetSpec::default()
        };
        let t = s.outdials.add_target(od, spec, now).unwrap();
        let q = "try_count_0=1&try_count_1=1&try_count_2=1&try_count_3=1&try_count_4=1&limit=1";
        let h = s.handle(
            Service::Outdial,
            &req("GET", &format!("/v1/outdials/{od}/available?{q}"), None),
            now,
        );
        assert_eq!(h.response.status_code, 200);
        assert_eq!(data(&h)[0]["id"], t.to_string());
        let h = s.handle(
            Service::Outdial,
            &req(
                "POST",
                &format!("/v1/outdialtargets/{t}/progressing"),
                Some(json!({"destination_index":1})),
            ),
            now,
        );
        assert_eq!(data(&h)["try_count_1"], 1);
        assert_eq!(data(&h)["status"], "progressing");
        let h = s.handle(
            Service::Outdial,
            &req("GET", &format!("/v1/outdials/{od}/available?{q}"), None),
            now,
        );
        assert_eq!(data(&h), json!([]));
        let h = s.handle(
            Service::Outdial,
            &req(
                "PUT",
                &format!("/v1/outdialtargets/{t}/status"),
                Some(json!({"status":"idle"})),
            ),
            now,
        );
        assert_eq!(data(&h)["status"], "idle");
        let camp = Uuid::new_v4();
        let h = s.handle(
            Service::Outdial,
            &req(
                "PUT",
                &format!("/v1/outdials/{od}/campaign_id"),
                Some(json!({"campaign_id":camp})),
            ),
            now,
        );
        assert_eq!(data(&h)["campaign_id"], camp.to_string());
    }

    #[test]
    fn errors_never_panic() {
        let mut s = st();
        let now = Utc::now();
        let od = s.outdials.create(None, Uuid::nil(), "l", now);
        let unknown = Uuid::new_v4();
        let cases: Vec<(Service, Request, u16)> = vec![
            (
                Service::Outdial,
                req("GET", &format!("/v1/outdials/{unknown}"), None),
                404,
            ),
            (
                Service::Outdial,
                req("GET", "/v1/outdials/NOT-A-UUID", None),
                404,
            ),
            (
                Service::Outdial,
                req(
                    "GET",
                    &format!("/v1/outdials/{}", od.to_string().to_uppercase()),
                    None,
                ),
                404,
            ),
            (
                Service::Outdial,
                req("DELETE", &format!("/v1/outdials/{od}"), None),
                404,
            ),
            (
                Service::Outdial,
                req("GET", &format!("/v1/outdials/{od}/available?limit=1"), None),
                400,
            ),
            (
                Service::Outdial,
                req(
                    "GET",
                    &format!(
                        "/v1/outdials/{od}/available?try_count_0=x&try_count_1=1&try_count_2=1&try_count_3=1&try_count_4=1&limit=1"
                    ),
                    None,
                ),
                400,
            ),
            (
                Service::Outdial,
                req(
                    "GET",
                    &format!(
                        "/v1/outdials/{od}/available?try_count_0=1&try_count_1=1&try_count_2=1&try_count_3=1&try_count_4=1&limit=-1"
                    ),
                    None,
                ),
                400,
            ),
            (
                Service::Outdial,
                req(
                    "GET",
                    &format!("/v1/outdials/{od}/available?try_count_9=1&limit=1"),
                    None,
                ),
                400,
            ),
            (
                Service::Outdial,
                req(
                    "POST",
                    &format!("/v1/outdialtargets/{unknown}/progressing"),
                    Some(json!({"destination_index":0})),
                ),
                404,
            ),
            (
                Service::Outdial,
                req(
                    "POST",
                    &format!("/v1/outdialtargets/{unknown}/progressing"),
                    Some(json!({"destination_index":7})),
                ),
                400,
            ),
            (
                Service::Outdial,
                req(
                    "POST",
                    &format!("/v1/outdialtargets/{unknown}/progressing"),
                    None,
                ),
                400,
            ),
            (
                Service::Outdial,
                req(
                    "PUT",
                    &format!("/v1/outdialtargets/{unknown}/status"),
                    Some(json!({"status":"weird"})),
                ),
                400,
            ),
            (
                Service::Outdial,
                req(
                    "PUT",
                    &format!("/v1/outdials/{od}/campaign_id"),
                    Some(json!({"campaign_id":""})),
                ),
                400,
            ),
            (
                Service::Call,
                req(
                    "POST",
                    &format!("/v1/calls/{unknown}"),
                    Some(json!({"flow_id":"x"})),
                ),
                400,
            ),
            (
                Service::Call,
                req("POST", &format!("/v1/calls/{unknown}"), Some(json!({}))),
                400,
            ),
            (
                Service::Call,
                req("GET", &format!("/v1/calls/{unknown}"), None),
                404,
            ),
            (
                Service::Flow,
                req(
                    "PUT",
                    &format!("/v1/flows/{unknown}/actions"),
                    Some(json!({"actions":[]})),
                ),
                404,
            ),
            (
                Service::Flow,
                req(
                    "PUT",
                    &format!("/v1/flows/{unknown}/actions"),
                    Some(json!({"actions":7})),
                ),
                400,
            ),
            (
                Service::Flow,
                req("DELETE", &format!("/v1/flows/{unknown}"), None),
                404,
            ),
            (
                Service::Flow,
                req("POST", "/v1/activeflows", Some(json!({"flow_id":unknown}))),
                404,
            ),
            (
                Service::Flow,
                req("POST", &format!("/v1/activeflows/{unknown}/execute"), None),
                404,
            ),
            (
                Service::Flow,
                req("POST", "/v1/flows", Some(json!([1, 2]))),
                400,
            ),
            (
                Service::Queue,
                req("GET", &format!("/v1/queues/{unknown}"), None),
                404,
            ),
            (
                Service::Queue,
                req(
                    "GET",
                    &format!("/v1/queues/{unknown}/agents"),
                    Some(json!({"status":"available"})),
                ),
                404,
            ),
            (Service::Webhook, req("POST", "/v1/webhooks", None), 400),
            (Service::Webhook, req("GET", "/v1/webhooks", None), 404),
            // A route of another service is not served here.
            (
                Service::Queue,
                req("GET", &format!("/v1/outdials/{od}"), None),
                404,
            ),
            (Service::Call, req("GET", "", None), 404),
            (Service::Call, req("GET", "?", None), 404),
            (Service::Call, req("GET", "//v1///", None), 404),
        ];
        for (service, r, code) in cases {
            let h = s.handle(service, &r, now);
            assert_eq!(
                h.response.status_code, code,
                "{service:?} {} {}",
                r.method, r.uri
            );
            assert!(h.effects.is_empty());
        }
        // An undecodable raw body is a 400 as well.
        let raw: Request = serde_json::from_str(&format!(
            r#"{{"uri":"/v1/outdials/{od}/campaign_id","method":"PUT","data":"zzz"}}"#
        ))
        .unwrap();
        assert_eq!(
            s.handle(Service::Outdial, &raw, now).response.status_code,
            400
        );
    }

    #[test]
    fn calls_plan_and_hang_up_with_overrides() {
        let mut s = st();
        let now = Utc::now();
        let od = s.outdials.create(None, Uuid::nil(), "l", now);
        let spec = TargetSpec {
            destinations: vec![Some(Address::tel("+200")), Some(Address::tel("+201"))],
            ..TargetSpec::default()
        };
        let t = s.outdials.add_target(od, spec, now).unwrap();
        let mut make = |dest: &str| {
            let id = Uuid::new_v4();
            let h = s.handle(
                Service::Call,
                &req(
                    "POST",
                    &format!("/v1/calls/{id}"),
                    Some(json!({"activeflow_id":Uuid::new_v4(),"destination":{"type":"tel","target":dest}})),
                ),
                now,
            );
            assert_eq!(h.response.status_code, 200);
            assert_eq!(h.effects.len(), 1);
            id
        };
        let busy = make("+200");
        let answered = make("+201");
        let stranger = make("+999");
        let p = s.hang_up(busy, now);
        assert_eq!(p.len(), 1);
        let call: crate::model::Call = p[0].event.data_as().unwrap();
        assert_eq!((call.id, call.hangup_reason.as_str()), (busy, "busy"));
        assert_eq!(p[0].event.publisher, "call-manager");
        assert_eq!(p[0].event.r#type, "call_hangup");
        let p = s.hang_up(answered, now);
        let call: crate::model::Call = p[0].event.data_as().unwrap();
        assert_eq!(call.hangup_reason, "normal");
        assert!(s.hang_up(answered, now).is_empty());
        let rec = s.calls.get(busy).unwrap();
        assert_eq!((rec.target_id, rec.destination_index), (Some(t), Some(0)));
        assert_eq!(s.calls.get(stranger).unwrap().destination_index, None);
        let dup = s.handle(
            Service::Call,
            &req(
                "POST",
                &format!("/v1/calls/{busy}"),
                Some(json!({"destination":{"target":"+1"}})),
            ),
            now,
        );
        assert_eq!(dup.response.status_code, 409);
        s.scenario.call_activeflow_events = true;
        assert_eq!(s.hang_up(stranger, now).len(), 2);
        assert_eq!(s.stats().calls_live, 0);
    }

    /// A hangup request as call-manager's `HangingUp` answers it: an answered call goes
    /// `terminating` and ends with `normal`, one still ringing goes `canceling` and ends with
    /// `cancel`, an ended call is answered as it is, an unknown id is a bare 500.
    #[test]
    fn hangup_request_ends_a_call_as_call_manager_does_and_500s_unknown_ids() {
        let now = Utc::now();
        let create = |s: &mut SimState, id: Uuid| {
            let create = req(
                "POST",
                &format!("/v1/calls/{id}"),
                Some(json!({"destination":{"type":"tel","target":"+1"}})),
            );
            assert_eq!(
                s.handle(Service::Call, &create, now).response.status_code,
                200
            );
        };
        let hangup = |id: Uuid| req("POST", &format!("/v1/calls/{id}/hangup"), None);
        let get = |id: Uuid| req("GET", &format!("/v1/calls/{id}"), None);
        // (plan, reply status, hangup reason): a `Silent` call answered at once; a busy call
        // still in its long ring.
        for (scenario, replied, reason) in [
            (Scenario::instant(Outcome::Silent), "terminating", "normal"),
            (
                Scenario {
                    ring_ms: crate::MsRange::fixed(600_000),
                    ..Scenario::instant(Outcome::Busy)
                },
                "canceling",
                "cancel",
            ),
        ] {
            let mut s = SimState::new(scenario);
            let id = Uuid::new_v4();
            create(&mut s, id);
            let h = s.handle(Service::Call, &hangup(id), now);
            assert_eq!(h.response.status_code, 200);
            assert_eq!(data(&h)["status"], json!(replied), "{reason}");
            assert_eq!(h.effects.len(), 1, "it ends at once");
            let ended = s.hang_up(id, now);
            assert_eq!(ended.len(), 1);
            assert_eq!(ended[0].event.r#type, "call_hangup");
            let h = s.handle(Service::Call, &get(id), now);
            assert_eq!(
                (
                    data(&h)["status"].clone(),
                    data(&h)["hangup_reason"].clone()
                ),
                (json!("hangup"), json!(reason))
            );
            // Asked again once ended: the call as it is, nothing ends twice.
            let h = s.handle(Service::Call, &hangup(id), now);
            assert_eq!(h.response.status_code, 200);
            assert_eq!(data(&h)["status"], json!("hangup"));
            assert!(s.hang_up(id, now).is_empty(), "already ended");
        }
        let mut s = SimState::new(Scenario::instant(Outcome::Silent));
        let h = s.handle(Service::Call, &hangup(Uuid::new_v4()), now);
        assert_eq!(h.response.status_code, 500);
        assert!(h.response.data.is_none(), "a bare 500");
    }

    #[test]
    fn get_call_follows_its_life_and_404s_unknown_ids() {
        let mut s = SimState::new(Scenario {
            ring_ms: crate::MsRange::fixed(10_000),
            ..Scenario::instant(Outcome::Busy)
        });
        let now = Utc::now();
        let id = Uuid::new_v4();
        let create = req(
            "POST",
            &format!("/v1/calls/{id}"),
            Some(json!({"destination":{"type":"tel","target":"+1"}})),
        );
        let h = s.handle(Service::Call, &create, now);
        assert_eq!(data(&h)["status"], "dialing");
        let get = req("GET", &format!("/v1/calls/{id}"), None);
        let at = |secs: i64| now + chrono::Duration::seconds(secs);
        let h = s.handle(Service::Call, &get, at(1));
        assert_eq!(h.response.status_code, 200);
        assert_eq!(
            (data(&h)["id"].clone(), data(&h)["status"].clone()),
            (json!(id), json!("ringing"))
        );
        assert_eq!(
            data(&s.handle(Service::Call, &get, at(11)))["status"],
            "terminating"
        );
        assert_eq!(s.hang_up(id, at(12)).len(), 1);
        let h = s.handle(Service::Call, &get, at(13));
        assert_eq!(data(&h)["status"], "hangup");
        assert_eq!(data(&h)["hangup_reason"], "busy");
        assert!(data(&h)["tm_hangup"].is_string());
        let unknown = req("GET", &format!("/v1/calls/{}", Uuid::new_v4()), None);
        assert_eq!(
            s.handle(Service::Call, &unknown, now).response.status_code,
            404
        );
    }

    #[test]
    fn late_reply_handles_the_request_and_no_reply_does_not() {
        let mut s = st();
        let now = Utc::now();
        let create = |id: Uuid| {
            req(
                "POST",
                &format!("/v1/calls/{id}"),
                Some(json!({"destination":{"type":"tel","target":"+1"}})),
            )
        };
        let lost = Uuid::new_v4();
        s.faults.add(super::super::faults::Fault::no_reply(
            Service::Call,
            Duration::from_secs(3),
            1,
        ));
        let h = s.handle(Service::Call, &create(lost), now);
        assert_eq!(h.delay, Some(Duration::from_secs(3)));
        assert!(h.effects.is_empty());
        assert!(s.calls.get(lost).is_none(), "no_reply changes nothing");

        let late = Uuid::new_v4();
        s.faults.add(
            super::super::faults::Fault::late_reply(Service::Call, Duration::from_secs(2), 1)
                .on_method("POST"),
        );
        // A GET does not match the POST-only rule.
        let get = req("GET", &format!("/v1/calls/{late}"), None);
        assert_eq!(s.handle(Service::Call, &get, now).response.status_code, 404);
        let h = s.handle(Service::Call, &create(late), now);
        assert_eq!(h.delay, Some(Duration::from_secs(2)));
        assert_eq!(h.response.status_code, 200);
        assert_eq!(h.effects.len(), 1, "the hangup timer starts at once");
        assert!(s.calls.get(late).is_some());
        assert_eq!(s.handle(Service::Call, &get, now).delay, None, "used up");
        assert_eq!(s.hang_up(late, now)[0].event.r#type, "call_hangup");
    }

    #[test]
    fn realistic_faults_take_effect_as_the_peers_do() {
        let mut s = st();
        let now = Utc::now();
        let create = |id: Uuid| {
            req(
                "POST",
                &format!("/v1/calls/{id}"),
                Some(json!({"destination":{"type":"tel","target":"+1"}})),
            )
        };
        // A bare 500 after the call row was inserted: the call exists and ends as planned.
        let inserted = Uuid::new_v4();
        s.faults.add(
            super::super::faults::Fault::status_after_effect(Service::Call, 500, 1)
                .on_method("POST"),
        );
        let h = s.handle(Service::Call, &create(inserted), now);
        assert_eq!(
            (h.response.status_code, h.response.data_type.as_str()),
            (500, "")
        );
        assert_eq!(h.effects.len(), 1, "its hangup timer runs");
        assert!(s.calls.get(inserted).is_some());

        // Taken now, acted on later, never answered: nothing changes until `route` runs it.
        let stalled = Uuid::new_v4();
        s.faults.add(super::super::faults::Fault::late_effect(
            Service::Call,
            Duration::from_secs(7),
            1,
        ));
        let h = s.handle(Service::Call, &create(stalled), now);
        assert_eq!(h.late_effect, Some(Duration::from_secs(7)));
        assert!(h.effects.is_empty());
        assert!(s.calls.get(stalled).is_none());
        let get = req("GET", &format!("/v1/calls/{stalled}"), None);
        let r = s.handle(Service::Call, &get, now).response;
        assert_eq!(
            (r.status_code, r.data_type.as_str()),
            (404, "voipbin_error")
        );
        let typed: crate::model::VoipbinError = r.data_as().unwrap();
        assert_eq!(
            (typed.status.as_str(), typed.reason.as_str()),
            ("NOT_FOUND", "CALL_NOT_FOUND")
        );
        let later = s.route(Service::Call, &create(stalled), now);
        assert_eq!(later.response.status_code, 200);
        assert!(s.calls.get(stalled).is_some());
        assert_eq!(s.handle(Service::Call, &get, now).response.status_code, 200);
    }

    #[test]
    fn activeflows_flow_manager_does_not_have_get_its_typed_404() {
        let mut s = st();
        let r = s
            .handle(
                Service::Flow,
                &req("GET", &format!("/v1/activeflows/{}", Uuid::new_v4()), None),
                Utc::now(),
            )
            .response;
        let typed: crate::model::VoipbinError = r.data_as().unwrap();
        assert_eq!(
            (r.status_code, typed.reason.as_str(), typed.domain.as_str()),
            (404, "ACTIVEFLOW_NOT_FOUND", "flow-manager")
        );
    }

    #[test]
    fn target_tries_only_go_up() {
        let mut s = st();
        let now = Utc::now();
        let od = s.outdials.create(None, Uuid::nil(), "l", now);
        let spec = TargetSpec {
            destinations: vec![Some(Address::tel("+300"))],
            ..TargetSpec::default()
        };
        let t = s.outdials.add_target(od, spec, now).unwrap();
        let progressing = req(
            "POST",
            &format!("/v1/outdialtargets/{t}/progressing"),
            Some(json!({"destination_index":0})),
        );
        for (i, status) in ["idle", "idle", "done"].into_iter().enumerate() {
            let h = s.handle(Service::Outdial, &progressing, now);
            assert_eq!(data(&h)["try_count_0"], i + 1);
            let set = req(
                "PUT",
                &format!("/v1/outdialtargets/{t}/status"),
                Some(json!({"status":status})),
            );
            let h = s.handle(Service::Outdial, &set, now);
            assert_eq!(
                data(&h)["try_count_0"],
                i + 1,
                "a status never lowers a try"
            );
        }
    }

    #[test]
    fn flows_and_activeflows() {
        let mut s = st();
        let now = Utc::now();
        let h = s.handle(
            Service::Flow,
            &req("POST", "/v1/flows", Some(json!({"customer_id":Uuid::nil(),"type":"campaign","name":"","detail":"","actions":[{"type":"answer"}],"on_complete_flow_id":Uuid::nil(),"persist":true}))),
            now,
        );
        let flow = data(&h)["id"].as_str().unwrap().to_string();
        let h = s.handle(
            Service::Flow,
            &req(
                "PUT",
                &format!("/v1/flows/{flow}/actions"),
                Some(json!({"actions":[]})),
            ),
            now,
        );
        assert_eq!(h.response.status_code, 200);
        let af = Uuid::new_v4();
        let h = s.handle(
            Service::Flow,
            &req("POST", "/v1/activeflows", Some(json!({"id":af,"customer_id":Uuid::nil(),"flow_id":flow,"reference_type":"campaign","reference_id":Uuid::new_v4(),"reference_activeflow_id":Uuid::nil()}))),
            now,
        );
        assert_eq!(data(&h)["id"], af.to_string());
        let get = req("GET", &format!("/v1/activeflows/{af}"), None);
        let h = s.handle(Service::Flow, &get, now);
        assert_eq!(data(&h)["status"], "running");
        assert!(data(&h)["tm_delete"].is_null());
        let unknown = req("GET", &format!("/v1/activeflows/{}", Uuid::new_v4()), None);
        assert_eq!(
            s.handle(Service::Flow, &unknown, now).response.status_code,
            404
        );
        let exec = req("POST", &format!("/v1/activeflows/{af}/execute"), None).with_data_type("");
        let h = s.handle(Service::Flow, &exec, now);
        assert_eq!(
            h.effects,
            vec![Effect::EndActiveflow {
                id: af,
                after: Duration::ZERO
            }]
        );
        assert_eq!(
            s.handle(Service::Flow, &exec, now).response.status_code,
            409
        );
        let p = s.end_activeflow(af, now);
        assert_eq!(p[0].event.r#type, "activeflow_deleted");
        assert_eq!(p[0].event.publisher, "flow-manager");
        let a: crate::model::Activeflow = p[0].event.data_as().unwrap();
        assert_eq!(a.id, af);
        let h = s.handle(Service::Flow, &get, now);
        let a: crate::model::Activeflow = h.response.data_as().unwrap();
        assert_eq!((a.status.as_str(), a.tm_delete), ("ended", Some(now)));
        assert!(a.is_finished());
        let h = s.handle(
            Service::Flow,
            &req("DELETE", &format!("/v1/flows/{flow}"), None),
            now,
        );
        assert_eq!(h.response.status_code, 200);
    }

    #[test]
    fn flows_answer_as_flow_manager_does() {
        let mut s = st();
        let now = Utc::now();
        let create = req(
            "POST",
            "/v1/flows",
            Some(json!({"type":"campaign","persist":true})),
        );
        let flow = data(&s.handle(Service::Flow, &create, now))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let get = req("GET", &format!("/v1/flows/{flow}"), None);
        let live: crate::model::Flow = s
            .handle(Service::Flow, &get, now)
            .response
            .data_as()
            .unwrap();
        assert_eq!(live.tm_delete, None);
        let delete = req("DELETE", &format!("/v1/flows/{flow}"), None);
        assert_eq!(
            s.handle(Service::Flow, &delete, now).response.status_code,
            200
        );
        // A deleted flow is still answered, with its tm_delete; deleting it again works.
        let deleted: crate::model::Flow = s
            .handle(Service::Flow, &get, now)
            .response
            .data_as()
            .unwrap();
        assert_eq!(deleted.tm_delete, Some(now));
        assert_eq!(
            s.handle(Service::Flow, &delete, now).response.status_code,
            200
        );
        // An unknown flow: flow-manager's typed 404.
        for method in ["GET", "DELETE"] {
            let unknown = req(method, &format!("/v1/flows/{}", Uuid::new_v4()), None);
            let r = s.handle(Service::Flow, &unknown, now).response;
            assert_eq!(
                (r.status_code, r.data_type.as_str()),
                (404, "voipbin_error"),
                "{method}"
            );
            let typed: crate::model::VoipbinError = r.data_as().unwrap();
            assert_eq!(
                (
                    typed.status.as_str(),
                    typed.reason.as_str(),
                    typed.domain.as_str()
                ),
                ("NOT_FOUND", "FLOW_NOT_FOUND", "flow-manager")
            );
        }
    }

    #[test]
    fn queues_webhooks_and_faults() {
        let mut s = st();
        let now = Utc::now();
        let q = s.queues.create(None, Uuid::nil(), 4, now);
        let agents = req(
            "GET",
            &format!("/v1/queues/{q}/agents"),
            Some(json!({"status":"available"})),
        );
        assert_eq!(
            data(&s.handle(Service::Queue, &agents, now))
                .as_array()
                .unwrap()
                .len(),
            4
        );
        s.queues.set_agents(q, 0);
        assert_eq!(data(&s.handle(Service::Queue, &agents, now)), json!([]));
        let wh = req(
            "POST",
            "/v1/webhooks",
            Some(json!({"type":"campaign_created"})),
        );
        let h = s.handle(Service::Webhook, &wh, now);
        assert_eq!(
            (h.response.status_code, h.response.data_type.as_str()),
            (200, "application/json")
        );
        assert_eq!(s.webhooks.count(), 1);
        s.faults.add(super::super::faults::Fault::status(
            Service::Webhook,
            500,
            1,
        ));
        assert_eq!(
            s.handle(Service::Webhook, &wh, now).response.status_code,
            500
        );
        assert_eq!(s.webhooks.count(), 1, "faulted request has no effect");
        s.faults.add(super::super::faults::Fault::no_reply(
            Service::Queue,
            Duration::from_secs(5),
            1,
        ));
        assert_eq!(
            s.handle(Service::Queue, &agents, now).delay,
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            s.handle(Service::Webhook, &wh, now).response.status_code,
            200
        );
        assert_eq!(s.stats().requests[&Service::Webhook], 3);
    }
}
