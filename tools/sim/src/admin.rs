//! The simulator's admin interface over HTTP (for the standalone `campaign-sim` binary, the demo
//! and end-to-end tests that run the simulator as a separate process).
//!
//! All routes are JSON in, JSON out, and map 1:1 onto the `Sim` methods; `route` is a plain
//! function so it is testable without a socket, and the axum server is a single fallback handler
//! (the crate builds axum without its `json`/`query` features).
//!
//! | Method & path | Body | Reply |
//! |---|---|---|
//! | `GET /health` | – | `{"ok":true}` |
//! | `GET /stats` | – | counters (`Stats` + `events_published`, `event_publish_failures`) |
//! | `GET /scenario`, `PUT /scenario` | `Scenario` | the scenario |
//! | `POST /outdials` | `{"customer_id"?, "targets":N, "destinations"?:1..5}` | `{"id","target_ids"}` |
//! | `GET /outdials/<id>`, `DELETE /outdials/<id>` | – | outdial JSON / `{}` |
//! | `GET /outdials/<id>/targets` | – | array of target JSON |
//! | `POST /outdials/<id>/targets` | `{"count":N,"destinations"?:1..5}` or `{"targets":[TargetSpec]}` | `{"target_ids"}` |
//! | `POST /queues` | `{"customer_id"?, "agents":N}` | `{"id"}` |
//! | `PUT /queues/<id>/agents` | `{"agents":N}` | `{}` |
//! | `GET /calls`, `/activeflows`, `/flows` | – | arrays of records |
//! | `GET /attempts` | – | every dial attempt in order: target, destination index, try, time, and once placed and ended the call, destination, outcome, hangup reason, talk time (docs/operations.md) |
//! | `GET /webhooks` | – | `{"count":N,"recent":[...]}` |
//! | `GET /faults`, `POST /faults` (`Fault`), `DELETE /faults` | | pending faults / `{}` |
//!
//! A `Fault` is `{"service"?, "method"?, "uri_contains"?, "kind", "count"}` with `kind` one of
//! `{"status":N}` (bare status, request not handled), `{"no_reply_ms":N}` (bare 500 after N ms,
//! request not handled) or `{"late_reply_ms":N}` (request handled as usual, reply sent after N ms).

use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri, header};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use uuid::Uuid;

use super::{Fault, Scenario, Sim, SimError, TargetSpec};

#[derive(Deserialize)]
struct NewOutdial {
    #[serde(default)]
    customer_id: Option<Uuid>,
    #[serde(default)]
    targets: usize,
    #[serde(default = "one")]
    destinations: usize,
}

#[derive(Deserialize)]
struct NewTargets {
    #[serde(default)]
    count: usize,
    #[serde(default = "one")]
    destinations: usize,
    #[serde(default)]
    targets: Vec<TargetSpec>,
}

#[derive(Deserialize)]
struct NewQueue {
    #[serde(default)]
    customer_id: Option<Uuid>,
    agents: usize,
}

#[derive(Deserialize)]
struct Agents {
    agents: usize,
}

fn one() -> usize {
    1
}

type Reply = (u16, Value);

fn err(code: u16, msg: impl std::fmt::Display) -> Reply {
    (code, json!({ "error": msg.to_string() }))
}

fn sim_err(e: SimError) -> Reply {
    match e {
        SimError::NotFound(_) => err(404, e),
        SimError::Invalid(_) => err(400, e),
        SimError::Bus(_) => err(500, e),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Reply> {
    let text = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(text).map_err(|e| err(400, format!("bad body: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Reply {
    match serde_json::to_value(v) {
        Ok(v) => (200, v),
        Err(e) => err(500, e),
    }
}

/// Handle one admin request.
pub fn route(sim: &Sim, method: &Method, path: &str, body: &[u8]) -> Reply {
    route_inner(sim, method, path, body).unwrap_or_else(|r| r)
}

fn id(s: &str) -> Result<Uuid, Reply> {
    Uuid::try_parse(s).map_err(|_| err(404, format!("bad id {s:?}")))
}

fn route_inner(sim: &Sim, method: &Method, path: &str, body: &[u8]) -> Result<Reply, Reply> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let m = method.as_str();
    Ok(match (m, segs.as_slice()) {
        ("GET", ["health"]) => (200, json!({"ok": true})),
        ("GET", ["stats"]) => {
            let (published, failed) = sim.published_events();
            let mut v = to_json(&sim.stats()).1;
            if let Some(o) = v.as_object_mut() {
                o.insert("events_published".into(), json!(published));
                o.insert("event_publish_failures".into(), json!(failed));
            }
            (200, v)
        }
        ("GET", ["scenario"]) => to_json(&sim.scenario()),
        ("PUT", ["scenario"]) => {
            let s: Scenario = parse(body)?;
            sim.set_scenario(s.clone());
            to_json(&s)
        }
        ("POST", ["outdials"]) => {
            let b: NewOutdial = parse(body)?;
            if !(1..=5).contains(&b.destinations) {
                return Err(err(400, "destinations must be 1..=5"));
            }
            let customer = b.customer_id.unwrap_or_else(Uuid::new_v4);
            let od = sim.create_outdial(customer, 0, 1);
            let ids = sim
                .add_targets(od, b.targets, b.destinations)
                .map_err(sim_err)?;
            (
                200,
                json!({"id": od, "customer_id": customer, "target_ids": ids}),
            )
        }
        ("GET", ["outdials", od]) => {
            let o = sim
                .outdial(id(od)?)
                .ok_or_else(|| err(404, "no such outdial"))?;
            to_json(&o.json())
        }
        ("DELETE", ["outdials", od]) => {
            sim.delete_outdial(id(od)?).map_err(sim_err)?;
            (200, json!({}))
        }
        ("GET", ["outdials", od, "targets"]) => {
            let od = id(od)?;
            if sim.outdial(od).is_none() {
                return Err(err(404, "no such outdial"));
            }
            let ts = sim.targets(od);
            let v: Vec<_> = ts.iter().map(|t| t.json()).collect();
            to_json(&v)
        }
        ("POST", ["outdials", od, "targets"]) => {
            let od = id(od)?;
            let b: NewTargets = parse(body)?;
            let mut ids = sim
                .add_targets(od, b.count, b.destinations)
                .map_err(sim_err)?;
            for spec in b.targets {
                ids.push(sim.add_target(od, spec).map_err(sim_err)?);
            }
            (200, json!({ "target_ids": ids }))
        }
        ("POST", ["queues"]) => {
            let b: NewQueue = parse(body)?;
            let customer = b.customer_id.unwrap_or_else(Uuid::new_v4);
            let q = sim.create_queue(customer, b.agents);
            (200, json!({"id": q, "customer_id": customer}))
        }
        ("PUT", ["queues", q, "agents"]) => {
            let b: Agents = parse(body)?;
            sim.set_queue_agents(id(q)?, b.agents).map_err(sim_err)?;
            (200, json!({}))
        }
        ("GET", ["calls"]) => to_json(&sim.calls()),
        ("GET", ["activeflows"]) => to_json(&sim.activeflows()),
        ("GET", ["flows"]) => to_json(&sim.flows()),
        ("GET", ["attempts"]) => to_json(&sim.attempts()),
        ("GET", ["webhooks"]) => (
            200,
            json!({"count": sim.webhook_count(), "recent": sim.webhooks()}),
        ),
        ("GET", ["faults"]) => to_json(&sim.with_state(|s| s.faults.pending().to_vec())),
        ("POST", ["faults"]) => {
            let f: Fault = parse(body)?;
            sim.inject(f);
            (200, json!({}))
        }
        ("DELETE", ["faults"]) => {
            sim.clear_faults();
            (200, json!({}))
        }
        _ => err(404, format!("no route {m} {path}")),
    })
}

/// Serve the admin API on `listener` until `shutdown` resolves.
pub async fn serve(
    sim: Sim,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
        let sim = sim.clone();
        async move {
            let (code, value) = route(&sim, &method, uri.path(), &body);
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                value.to_string(),
            )
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
