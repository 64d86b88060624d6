//! Campaign, campaigncall and outplan commands over the service's RPC API (CONTRACT §4).
//!
//! The CLI is just another RPC caller (like api-manager): it builds the request envelope, sends
//! it to the service's request queue and maps the reply — 2xx to output, a typed `voipbin_error`
//! to its message and reason, a bare status to a sentence, no reply to "is it running?". Partial
//! updates (`campaign update`, `update-resource-info`, `outplan update`) read the record first
//! and send every field, because the service's PUT routes overwrite all of them (and
//! `PUT /v1/campaigns/<id>` reads an omitted name, detail or service level as empty/0).

use std::time::Duration;

use prometheus::Registry;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::cli::{
    CampaignCmd, CampaignCreate, CampaignUpdate, CampaigncallCmd, Cli, Dials, OutplanCmd,
    OutplanCreate, OutplanUpdate, Page,
};
use super::output::{Output, record, records};
use super::{Failure, names, probe_tcp, shown};
use crate::bus::{
    Bus, BusOptions, CallOptions, ConnectionOptions, Request, Response, RpcClient, RpcError,
};
use crate::model::{self, Campaign, VoipbinError};
use crate::service::CampaignUpdate as CampaignBasicInfo;

/// How long the CLI waits for the service's reply (CONTRACT §8's default).
pub const RPC_TIMEOUT: Duration = Duration::from_secs(3);

/// Columns of `campaign list`.
const CAMPAIGN_COLUMNS: &[&str] = &[
    "id",
    "name",
    "type",
    "status",
    "execute",
    "service_level",
    "end_handle",
    "tm_create",
];
/// Columns of `campaigncall list`.
const CAMPAIGNCALL_COLUMNS: &[&str] = &[
    "id",
    "campaign_id",
    "status",
    "result",
    "reference_type",
    "destination_index",
    "try_count",
    "tm_create",
];
/// Columns of `outplan list`.
const OUTPLAN_COLUMNS: &[&str] = &[
    "id",
    "name",
    "detail",
    "dial_timeout",
    "try_interval",
    "tm_create",
];

/// A connected RPC caller of campaign-manager.
pub struct Rpc {
    bus: Bus,
    client: RpcClient,
    queue: String,
}

/// Maps a reply to its `data` (`null` when absent) or a [`Failure`] naming `what` was asked.
pub fn reply_data(what: &str, resp: &Response) -> Result<Value, Failure> {
    if resp.is_success() {
        return match &resp.data {
            None => Ok(Value::Null),
            Some(raw) => serde_json::from_str(raw.get()).map_err(|e| {
                Failure::new(format!(
                    "{what}: campaign-manager sent an unreadable reply: {e}"
                ))
            }),
        };
    }
    if resp.data_type == "voipbin_error"
        && let Ok(e) = resp.data_as::<VoipbinError>()
    {
        return Err(Failure::new(format!(
            "{what}: {} (status {}, reason {}, from {})",
            e.message, e.status, e.reason, e.domain
        )));
    }
    let hint = match resp.status_code {
        404 => "not found (404)".to_owned(),
        400 => "rejected by campaign-manager (400): check the values, and that referenced \
                 outplan/outdial/queue/campaign ids exist, belong to the customer and are not \
                 deleted (the service log has the reason)"
            .to_owned(),
        409 => "conflict (409): the record is not in a state that allows this".to_owned(),
        503 => "campaign-manager is unavailable (503): check its dependencies".to_owned(),
        code => format!("failed with status {code}"),
    };
    Err(Failure::new(format!("{what}: {hint}")))
}

/// Parses `--actions-json`: a JSON array of flow actions.
pub fn parse_actions(text: &str) -> Result<Value, Failure> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Array(_)) => Ok(v),
        Ok(_) => Err(Failure::usage(
            "--actions-json must be a JSON array, e.g. '[{\"type\":\"answer\"}]'",
        )),
        Err(e) => Err(Failure::usage(format!(
            "--actions-json is not valid JSON: {e}"
        ))),
    }
}

/// The `calling_hours` object in `--json-file` (validated by the service, which names the bad
/// field; here only that it is a JSON object).
pub fn read_calling_hours(file: &std::path::Path) -> Result<Value, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Failure::usage(format!(
            "{} must hold a JSON object (the calling_hours value)",
            file.display()
        ))),
        Err(e) => Err(Failure::usage(format!(
            "{} is not valid JSON: {e}",
            file.display()
        ))),
    }
}

/// The five `max_try_count_i` values from `--max-try-count` (one value for all, or five).
pub fn max_try_counts(v: &[i32]) -> Result<[i32; 5], Failure> {
    match v {
        [n] => Ok([*n; 5]),
        [a, b, c, d, e] => Ok([*a, *b, *c, *d, *e]),
        _ => Err(Failure::usage(
            "--max-try-count takes one value (for all five destinations) or five comma-separated values",
        )),
    }
}

/// The query string of a list request (`page_size`, `page_token`), always with the `?` the
/// list routes require.
pub fn list_uri(path: &str, page: &Page) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(n) = page.page_size {
        q.append_pair("page_size", &n.to_string());
    }
    if let Some(t) = &page.page_token {
        q.append_pair("page_token", t);
    }
    format!("{path}?{}", q.finish())
}

fn list_output(data: Value, columns: &[&str]) -> Output {
    let mut human = records(&data, columns);
    if let Some(last) = data.as_array().and_then(|a| a.last())
        && let Some(t) = last.get("tm_create").and_then(Value::as_str)
    {
        human.push_str(&format!("next page: --page-token {t}\n"));
    }
    Output { json: data, human }
}

fn record_output(data: Value) -> Output {
    Output {
        human: record(&data),
        json: data,
    }
}

/// Copies `key` from `current` into `body` (used to fill the fields a partial update keeps).
fn keep(body: &mut Map<String, Value>, current: &Value, key: &str) {
    body.insert(
        key.to_owned(),
        current.get(key).cloned().unwrap_or(Value::Null),
    );
}

/// The body of `PUT /v1/campaigns/<id>`: the flags given, the current values for the rest,
/// every field explicit. The route reads an omitted `name`/`detail`/`service_level` as
/// `""`/`0` (the platform's caller omits empty values), so keeping a value means sending it.
/// A type or end handle the campaign does not have (`""` in rows the Go service wrote) is
/// left out, which the route reads as "keep", since `""` is refused on input.
pub fn campaign_update_body(current: &Campaign, u: &CampaignUpdate) -> CampaignBasicInfo {
    CampaignBasicInfo {
        name: u.name.clone().unwrap_or_else(|| current.name.clone()),
        detail: u.detail.clone().unwrap_or_else(|| current.detail.clone()),
        kind: u
            .kind
            .map(model::CampaignType::from)
            .or(Some(current.kind))
            .filter(|k| *k != model::CampaignType::Unset),
        service_level: u.service_level.unwrap_or(current.service_level),
        end_handle: u
            .end_handle
            .map(model::EndHandle::from)
            .or(Some(current.end_handle))
            .filter(|e| *e != model::EndHandle::Unset),
    }
}

/// The body of `PUT /v1/outplans/<id>/dials`: the flags given, the current values for the rest.
pub fn outplan_dials_body(current: &Value, d: &Dials) -> Result<Value, Failure> {
    let mut b = Map::new();
    for k in [
        "source",
        "dial_timeout",
        "try_interval",
        "max_try_count_0",
        "max_try_count_1",
        "max_try_count_2",
        "max_try_count_3",
        "max_try_count_4",
    ] {
        keep(&mut b, current, k);
    }
    if d.source_type.is_some() || d.source_target.is_some() {
        let mut src = current
            .get("source")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(t) = &d.source_type {
            src.insert("type".into(), json!(t));
        }
        if let Some(t) = &d.source_target {
            src.insert("target".into(), json!(t));
        }
        b.insert("source".into(), Value::Object(src));
    }
    if let Some(v) = d.dial_timeout {
        b.insert("dial_timeout".into(), json!(v));
    }
    if let Some(v) = d.try_interval {
        b.insert("try_interval".into(), json!(v));
    }
    if let Some(v) = &d.max_try_count {
        for (i, n) in max_try_counts(v)?.into_iter().enumerate() {
            b.insert(format!("max_try_count_{i}"), json!(n));
        }
    }
    Ok(Value::Object(b))
}

fn dials_given(d: &Dials) -> bool {
    d.source_type.is_some()
        || d.source_target.is_some()
        || d.dial_timeout.is_some()
        || d.try_interval.is_some()
        || d.max_try_count.is_some()
}

/// The body of `POST /v1/campaigns`.
pub fn campaign_create_body(c: &CampaignCreate) -> Result<Value, Failure> {
    let actions = match &c.actions_json {
        Some(text) => parse_actions(text)?,
        None => json!([]),
    };
    let id = |v: Option<Uuid>| json!(v.unwrap_or_default());
    Ok(json!({
        "customer_id": c.customer_id,
        "type": c.kind.as_str(),
        "name": c.name,
        "detail": c.detail,
        "actions": actions,
        "service_level": c.service_level,
        "end_handle": c.end_handle.as_str(),
        "outplan_id": id(c.outplan_id),
        "outdial_id": id(c.outdial_id),
        "queue_id": id(c.queue_id),
        "next_campaign_id": id(c.next_campaign_id),
    }))
}

/// The body of `POST /v1/outplans` (platform defaults for unset dial settings).
pub fn outplan_create_body(c: &OutplanCreate) -> Result<Value, Failure> {
    let d = &c.dials;
    let counts = match &d.max_try_count {
        Some(v) => max_try_counts(v)?,
        None => [5; 5],
    };
    let source = if d.source_type.is_some() || d.source_target.is_some() {
        let mut s = Map::new();
        if let Some(t) = &d.source_type {
            s.insert("type".into(), json!(t));
        }
        if let Some(t) = &d.source_target {
            s.insert("target".into(), json!(t));
        }
        Value::Object(s)
    } else {
        Value::Null
    };
    Ok(json!({
        "customer_id": c.customer_id,
        "name": c.name,
        "detail": c.detail,
        "source": source,
        "dial_timeout": d.dial_timeout.unwrap_or(30_000),
        "try_interval": d.try_interval.unwrap_or(600_000),
        "max_try_count_0": counts[0],
        "max_try_count_1": counts[1],
        "max_try_count_2": counts[2],
        "max_try_count_3": counts[3],
        "max_try_count_4": counts[4],
    }))
}

impl Rpc {
    /// Connects to the broker named by the command line's infrastructure flags.
    pub async fn connect(cli: &Cli) -> Result<Rpc, Failure> {
        let url = &cli.infra.rabbitmq_address;
        let uri: lapin::uri::AMQPUri = url.parse().map_err(|e| {
            Failure::usage(format!(
                "invalid --rabbitmq_address {} (RABBITMQ_ADDRESS): {e}",
                shown(url)
            ))
        })?;
        let addr = format!("{}:{}", uri.authority.host, uri.authority.port);
        let hint = "is rabbitmq-server running? (--rabbitmq_address / RABBITMQ_ADDRESS)";
        probe_tcp(&addr, "RabbitMQ", hint).await?;
        let names = names(&cli.queue_prefix);
        let queue = names.request_queue.clone();
        let options = BusOptions {
            connection: ConnectionOptions {
                connection_name: format!("campaign-control-{}", std::process::id()),
                initial_connect_wait: Duration::from_secs(5),
                ..ConnectionOptions::default()
            },
            ..BusOptions::default()
        };
        let bus = Bus::connect_with(url, names, &Registry::new(), options)
            .await
            .map_err(|e| {
                Failure::new(format!(
                    "cannot connect to RabbitMQ at {}: {e} — check the credentials and vhost in \
                     --rabbitmq_address / RABBITMQ_ADDRESS",
                    shown(url)
                ))
            })?;
        let client = bus.rpc();
        Ok(Rpc { bus, client, queue })
    }

    /// Sends one request and maps the reply; `what` names the operation in messages.
    pub async fn call(
        &self,
        what: &str,
        method: &str,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let mut req = Request::new(method, uri);
        if let Some(b) = body {
            req = req
                .with_json(b)
                .map_err(|e| Failure::new(format!("{what}: cannot encode the request: {e}")))?;
        }
        let resp = self
            .client
            .call_with(&self.queue, &req, CallOptions::timeout(RPC_TIMEOUT))
            .await
            .map_err(|e| self.rpc_failure(what, e))?;
        reply_data(what, &resp)
    }

    fn rpc_failure(&self, what: &str, e: RpcError) -> Failure {
        match e {
            RpcError::Timeout { target, after } => Failure::new(format!(
                "campaign-manager did not answer on queue {target} within {} s: is it running? \
                 (check --queue_prefix / QUEUE_PREFIX if it uses one)",
                after.as_secs_f64()
            )),
            other => Failure::new(format!(
                "{what}: request to queue {} failed: {other}",
                self.queue
            )),
        }
    }

    /// Closes the connection to the broker.
    pub async fn close(self) {
        self.bus.shutdown().await;
    }

    /// Runs a `campaign` subcommand.
    pub async fn campaign(self, cmd: &CampaignCmd) -> Result<Output, Failure> {
        let out = self.campaign_inner(cmd).await;
        self.close().await;
        out
    }

    async fn campaign_inner(&self, cmd: &CampaignCmd) -> Result<Output, Failure> {
        let path = |id: &Uuid| format!("/v1/campaigns/{id}");
        match cmd {
            CampaignCmd::List {
                customer_id,
                with_deleted,
                page,
            } => {
                let mut filter = json!({ "customer_id": customer_id });
                if !with_deleted {
                    filter["deleted"] = json!(false);
                }
                let data = self
                    .call(
                        "list campaigns",
                        "GET",
                        &list_uri("/v1/campaigns", page),
                        Some(&filter),
                    )
                    .await?;
                Ok(list_output(data, CAMPAIGN_COLUMNS))
            }
            CampaignCmd::Stats { id, .. } => {
                let what = format!("stats of campaign {id}");
                let data = self
                    .call(&what, "GET", &super::stats::stats_uri(*id), None)
                    .await?;
                Ok(super::stats::stats_output(data))
            }
            CampaignCmd::Get(a) => {
                let what = format!("get campaign {}", a.id);
                Ok(record_output(
                    self.call(&what, "GET", &path(&a.id), None).await?,
                ))
            }
            CampaignCmd::Create(c) => {
                let body = campaign_create_body(c)?;
                let data = self
                    .call("create campaign", "POST", "/v1/campaigns", Some(&body))
                    .await?;
                Ok(record_output(data))
            }
            CampaignCmd::Update(u) => {
                let what = format!("update campaign {}", u.id);
                let current = self.call(&what, "GET", &path(&u.id), None).await?;
                let current: Campaign = serde_json::from_value(current).map_err(|e| {
                    Failure::new(format!(
                        "{what}: campaign-manager sent a campaign this CLI cannot read: {e}"
                    ))
                })?;
                let body = serde_json::to_value(campaign_update_body(&current, u))
                    .map_err(|e| Failure::new(format!("{what}: cannot encode the request: {e}")))?;
                Ok(record_output(
                    self.call(&what, "PUT", &path(&u.id), Some(&body)).await?,
                ))
            }
            CampaignCmd::UpdateServiceLevel { id, service_level } => {
                let what = format!("update service level of campaign {id}");
                let body = json!({ "service_level": service_level });
                let uri = format!("{}/service_level", path(id));
                Ok(record_output(
                    self.call(&what, "PUT", &uri, Some(&body)).await?,
                ))
            }
            CampaignCmd::UpdateActions { id, actions_json } => {
                let what = format!("update actions of campaign {id}");
                let body = json!({ "actions": parse_actions(actions_json)? });
                let uri = format!("{}/actions", path(id));
                Ok(record_output(
                    self.call(&what, "PUT", &uri, Some(&body)).await?,
                ))
            }
            CampaignCmd::UpdateResourceInfo {
                id,
                outplan_id,
                outdial_id,
                queue_id,
                next_campaign_id,
            } => {
                let what = format!("update resource info of campaign {id}");
                let current = self.call(&what, "GET", &path(id), None).await?;
                let mut b = Map::new();
                for (k, v) in [
                    ("outplan_id", outplan_id),
                    ("outdial_id", outdial_id),
                    ("queue_id", queue_id),
                    ("next_campaign_id", next_campaign_id),
                ] {
                    match v {
                        Some(v) => {
                            b.insert(k.into(), json!(v));
                        }
                        None => keep(&mut b, &current, k),
                    }
                }
                let uri = format!("{}/resource_info", path(id));
                let body = Value::Object(b);
                Ok(record_output(
                    self.call(&what, "PUT", &uri, Some(&body)).await?,
                ))
            }
            CampaignCmd::UpdateNextCampaign {
                id,
                next_campaign_id,
            } => {
                let what = format!("update next campaign of campaign {id}");
                let body = json!({ "next_campaign_id": next_campaign_id });
                let uri = format!("{}/next_campaign_id", path(id));
                Ok(record_output(
                    self.call(&what, "PUT", &uri, Some(&body)).await?,
                ))
            }
            CampaignCmd::CallingHours {
                id,
                json_file,
                clear,
            } => {
                let hours = match (json_file, clear) {
                    (Some(file), false) => read_calling_hours(file)?,
                    _ => Value::Null,
                };
                let what = format!("update calling hours of campaign {id}");
                let body = json!({ "calling_hours": hours });
                let uri = format!("{}/calling_hours", path(id));
                Ok(record_output(
                    self.call(&what, "PUT", &uri, Some(&body)).await?,
                ))
            }
            CampaignCmd::Pacing {
                id,
                max_concurrent_calls,
                dials_per_second,
                clear,
            } => {
                let pacing = if *clear {
                    Value::Null
                } else {
                    json!({
                        "max_concurrent_calls": max_concurrent_calls,
                        "dials_per_second": dials_per_second,
                    })
                };
                let what = format!("update pacing of campaign {id}");
                let body = json!({ "pacing": pacing });
                let uri = format!("{}/pacing", path(id));
                Ok(record_output(
                    self.call(&what, "PUT", &uri, Some(&body)).await?,
                ))
            }
            CampaignCmd::Run(a) | CampaignCmd::Stop(a) => {
                let status = if matches!(cmd, CampaignCmd::Run(_)) {
                    "run"
                } else {
                    "stop"
                };
                let what = format!("set campaign {} to {status}", a.id);
                let uri = format!("{}/status", path(&a.id));
                let body = json!({ "status": status });
                Ok(record_output(
                    self.call(&what, "PUT", &uri, Some(&body)).await?,
                ))
            }
            CampaignCmd::Delete(a) => {
                let what = format!("delete campaign {}", a.id);
                match self.call(&what, "DELETE", &path(&a.id), None).await? {
                    Value::Null => Err(Failure::new(format!(
                        "{what}: not deleted — only a stopped campaign can be deleted (run \
                         `campaign-control campaign stop --id {}` and wait for status stop)",
                        a.id
                    ))),
                    data => Ok(record_output(data)),
                }
            }
        }
    }

    /// Runs a `campaigncall` subcommand.
    pub async fn campaigncall(self, cmd: &CampaigncallCmd) -> Result<Output, Failure> {
        let out = match cmd {
            CampaigncallCmd::List {
                campaign_id,
                status,
                customer_id,
                page,
            } => {
                let mut filter = Map::new();
                if let Some(v) = campaign_id {
                    filter.insert("campaign_id".into(), json!(v));
                }
                if let Some(v) = status {
                    filter.insert("status".into(), json!(v));
                }
                if let Some(v) = customer_id {
                    filter.insert("customer_id".into(), json!(v));
                }
                filter.insert("deleted".into(), json!(false));
                let filter = Value::Object(filter);
                let uri = list_uri("/v1/campaigncalls", page);
                self.call("list campaign calls", "GET", &uri, Some(&filter))
                    .await
                    .map(|d| list_output(d, CAMPAIGNCALL_COLUMNS))
            }
            CampaigncallCmd::Get(a) => {
                let what = format!("get campaign call {}", a.id);
                let uri = format!("/v1/campaigncalls/{}", a.id);
                self.call(&what, "GET", &uri, None).await.map(record_output)
            }
        };
        self.close().await;
        out
    }

    /// Runs an `outplan` subcommand.
    pub async fn outplan(self, cmd: &OutplanCmd) -> Result<Output, Failure> {
        let out = self.outplan_inner(cmd).await;
        self.close().await;
        out
    }

    async fn outplan_inner(&self, cmd: &OutplanCmd) -> Result<Output, Failure> {
        let path = |id: &Uuid| format!("/v1/outplans/{id}");
        match cmd {
            OutplanCmd::List {
                customer_id,
                with_deleted,
                page,
            } => {
                let mut filter = json!({ "customer_id": customer_id });
                if !with_deleted {
                    filter["deleted"] = json!(false);
                }
                let uri = list_uri("/v1/outplans", page);
                let data = self
                    .call("list outplans", "GET", &uri, Some(&filter))
                    .await?;
                Ok(list_output(data, OUTPLAN_COLUMNS))
            }
            OutplanCmd::Get(a) => {
                let what = format!("get outplan {}", a.id);
                Ok(record_output(
                    self.call(&what, "GET", &path(&a.id), None).await?,
                ))
            }
            OutplanCmd::Create(c) => {
                let body = outplan_create_body(c)?;
                let data = self
                    .call("create outplan", "POST", "/v1/outplans", Some(&body))
                    .await?;
                Ok(record_output(data))
            }
            OutplanCmd::Update(u) => self.outplan_update(u).await,
            OutplanCmd::Delete(a) => {
                let what = format!("delete outplan {}", a.id);
                Ok(record_output(
                    self.call(&what, "DELETE", &path(&a.id), None).await?,
                ))
            }
        }
    }

    async fn outplan_update(&self, u: &OutplanUpdate) -> Result<Output, Failure> {
        let basic = u.name.is_some() || u.detail.is_some();
        let dials = dials_given(&u.dials);
        if !basic && !dials {
            return Err(Failure::usage(
                "outplan update: nothing to change; pass --name, --detail or a dial setting \
                 (--source-type, --source-target, --dial-timeout, --try-interval, --max-try-count)",
            ));
        }
        let what = format!("update outplan {}", u.id);
        let uri = format!("/v1/outplans/{}", u.id);
        let mut current = self.call(&what, "GET", &uri, None).await?;
        if basic {
            let pick = |given: &Option<String>, key: &str| {
                given
                    .as_ref()
                    .map(|s| json!(s))
                    .unwrap_or_else(|| current.get(key).cloned().unwrap_or(json!("")))
            };
            let body =
                json!({ "name": pick(&u.name, "name"), "detail": pick(&u.detail, "detail") });
            current = self.call(&what, "PUT", &uri, Some(&body)).await?;
        }
        if dials {
            let body = outplan_dials_body(&current, &u.dials)?;
            current = self
                .call(&what, "PUT", &format!("{uri}/dials"), Some(&body))
                .await?;
        }
        Ok(record_output(current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{CampaignType, EndHandle};

    #[test]
    fn replies_map_to_data_or_failures() {
        let ok = Response::json(200, &json!({"id": "x"}));
        assert_eq!(reply_data("w", &ok).unwrap(), json!({"id": "x"}));
        assert_eq!(
            reply_data("w", &Response::status(200)).unwrap(),
            Value::Null
        );
        let typed = Response::json(
            404,
            &VoipbinError::new(
                "NOT_FOUND",
                "CAMPAIGN_NOT_FOUND",
                "The campaign was not found.",
            ),
        );
        let mut typed = typed;
        typed.data_type = "voipbin_error".into();
        let f = reply_data("get campaign 1", &typed).unwrap_err();
        assert_eq!(f.code, 1);
        assert!(f.message.contains("The campaign was not found."), "{f}");
        assert!(f.message.contains("CAMPAIGN_NOT_FOUND"), "{f}");
        let bare = reply_data("get x", &Response::status(404)).unwrap_err();
        assert!(bare.message.contains("not found"), "{bare}");
        let bad = reply_data("get x", &Response::status(400)).unwrap_err();
        assert!(bad.message.contains("400"), "{bad}");
    }

    #[test]
    fn bodies() {
        let nil = Uuid::nil();
        let stored = |kind: &str, end_handle: &str| -> Campaign {
            serde_json::from_value(json!({
                "id": nil, "customer_id": nil, "type": kind, "execute": "stop", "name": "a",
                "detail": "d", "status": "stop", "service_level": 100, "end_handle": end_handle,
                "flow_id": nil, "actions": null, "outplan_id": nil, "outdial_id": nil,
                "queue_id": nil, "next_campaign_id": nil, "tm_create": null, "tm_update": null,
                "tm_delete": null
            }))
            .expect("campaign json")
        };
        let u = CampaignUpdate {
            id: Uuid::nil(),
            name: Some("b".into()),
            detail: None,
            kind: Some(CampaignType::Flow),
            service_level: None,
            end_handle: Some(EndHandle::Continue),
        };
        assert_eq!(
            serde_json::to_value(campaign_update_body(&stored("call", "stop"), &u)).unwrap(),
            json!({"name": "b", "detail": "d", "type": "flow", "service_level": 100,
                   "end_handle": "continue"})
        );
        let only_name = CampaignUpdate {
            id: Uuid::nil(),
            name: Some("b".into()),
            detail: None,
            kind: None,
            service_level: None,
            end_handle: None,
        };
        assert_eq!(
            serde_json::to_value(campaign_update_body(&stored("call", "stop"), &only_name))
                .unwrap(),
            json!({"name": "b", "detail": "d", "type": "call", "service_level": 100,
                   "end_handle": "stop"}),
            "every kept field is sent"
        );
        assert_eq!(
            serde_json::to_value(campaign_update_body(&stored("", ""), &only_name)).unwrap(),
            json!({"name": "b", "detail": "d", "service_level": 100}),
            "a legacy empty type or end handle is kept by leaving it out"
        );
        let d = Dials {
            source_type: None,
            source_target: Some("+1".into()),
            dial_timeout: None,
            try_interval: Some(1),
            max_try_count: Some(vec![2]),
        };
        let op = json!({"source": {"type": "tel", "target": "+0"}, "dial_timeout": 30000,
                        "try_interval": 5, "max_try_count_0": 5});
        let b = outplan_dials_body(&op, &d).unwrap();
        assert_eq!(b["source"], json!({"type": "tel", "target": "+1"}));
        assert_eq!(b["try_interval"], json!(1));
        assert_eq!(b["dial_timeout"], json!(30000));
        assert_eq!(b["max_try_count_4"], json!(2));
        assert_eq!(max_try_counts(&[1, 2]).unwrap_err().code, 2);
        assert_eq!(parse_actions("{}").unwrap_err().code, 2);
        assert_eq!(parse_actions("[").unwrap_err().code, 2);
        assert_eq!(
            list_uri(
                "/v1/x",
                &Page {
                    page_size: Some(3),
                    page_token: Some("2020-01-01 00:00:00".into())
                }
            ),
            "/v1/x?page_size=3&page_token=2020-01-01+00%3A00%3A00"
        );
        assert_eq!(
            list_uri(
                "/v1/x",
                &Page {
                    page_size: None,
                    page_token: None
                }
            ),
            "/v1/x?"
        );
    }
}
