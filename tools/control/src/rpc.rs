//! Campaign, campaigncall and outplan commands over the RPC API (docs/contract.md#routes).
//!
//! The CLI is just another RPC caller (like api-manager): it sends the model's request bodies
//! (`crate::model::requests`) to the service's request queue and reads the replies as the
//! model's records, so it holds no copy of the contract's types. A reply maps to output (2xx),
//! a typed `voipbin_error` to its message and reason, a bare status to a sentence, no reply to
//! "is it running?". Partial updates follow each route's own rule: `PUT /v1/outplans/<id>`
//! keeps omitted fields, so only the flags given are sent; `PUT /v1/campaigns/<id>`,
//! `resource_info` and `dials` write every field (an omitted name reads as empty), so the
//! record is read first and the fields no flag changes are sent as they are.

use std::collections::HashSet;
use std::time::Duration;

use prometheus::Registry;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use super::cli::{
    CampaignCmd, CampaignCreate, CampaignUpdate, CampaigncallCmd, Cli, Dials, OutplanCmd,
    OutplanCreate, OutplanUpdate, Page,
};
use super::output::{Output, record, records};
use super::{Failure, confirm, names, probe_tcp, shown};
use crate::bus::{
    Bus, BusOptions, CallOptions, ConnectionOptions, Request, Response, RpcClient, RpcError,
};
use crate::model::{
    self, Action, Address, CallingHours, Campaign, CampaignFilters, CampaignStats, CampaignStatus,
    CampaignStatusUpdate, Campaigncall, CampaigncallFilters, CampaigncallFinish, EndHandle,
    Outplan, OutplanDials, OutplanFilters, Pacing, RetryRules, VoipbinError,
};

/// How long the CLI waits for the service's reply (the platform's RPC timeout).
pub const RPC_TIMEOUT: Duration = Duration::from_secs(3);

/// How long `campaign stop --force` waits: the service hangs live calls up one after another,
/// each bounded by its own call-manager timeout, so a campaign with many calls up takes longer
/// than one RPC timeout. Running it again is safe (it settles what is still open).
pub const FORCE_STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// How long `campaign execute` waits for each reply: the Go service runs the whole tick
/// (peer requests included) before it answers.
pub const EXECUTE_TIMEOUT: Duration = Duration::from_secs(15);

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
/// Columns of `campaign list` across customers.
const CAMPAIGN_ALL_COLUMNS: &[&str] = &[
    "id",
    "customer_id",
    "name",
    "type",
    "status",
    "execute",
    "service_level",
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

/// Reads a reply's data as the model type `T`.
fn typed<T: DeserializeOwned>(what: &str, data: Value) -> Result<T, Failure> {
    serde_json::from_value(data).map_err(|e| {
        Failure::new(format!(
            "{what}: campaign-manager sent a reply this CLI cannot read: {e}"
        ))
    })
}

/// Parses `--actions-json`: a JSON array of flow actions.
pub fn parse_actions(text: &str) -> Result<Vec<Action>, Failure> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Array(_)) => serde_json::from_value(v)
            .map_err(|e| Failure::usage(format!("--actions-json holds an invalid action: {e}"))),
        Ok(_) => Err(Failure::usage(
            "--actions-json must be a JSON array, e.g. '[{\"type\":\"answer\"}]'",
        )),
        Err(e) => Err(Failure::usage(format!(
            "--actions-json is not valid JSON: {e}"
        ))),
    }
}

/// The `calling_hours` object in `--json-file`. Only its shape is checked here; the service
/// validates the values and names a bad field.
pub fn read_calling_hours(file: &std::path::Path) -> Result<CallingHours, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => serde_json::from_value(v).map_err(|e| {
            Failure::usage(format!(
                "{} is not a calling_hours object: {e}",
                file.display()
            ))
        }),
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

/// The JSON form of a record or list for output.
fn to_json<T: Serialize>(what: &str, v: &T) -> Result<Value, Failure> {
    serde_json::to_value(v).map_err(|e| Failure::new(format!("{what}: cannot show the reply: {e}")))
}

pub(crate) fn list_output<T: Serialize>(
    what: &str,
    rows: &[T],
    columns: &[&str],
) -> Result<Output, Failure> {
    let data = to_json(what, &rows)?;
    let mut human = records(&data, columns);
    if let Some(last) = data.as_array().and_then(|a| a.last())
        && let Some(t) = last.get("tm_create").and_then(Value::as_str)
    {
        human.push_str(&format!("next page: --page-token {t}\n"));
    }
    Ok(Output { json: data, human })
}

pub(crate) fn record_output<T: Serialize>(what: &str, v: &T) -> Result<Output, Failure> {
    let data = to_json(what, v)?;
    Ok(Output {
        human: record(&data),
        json: data,
    })
}

/// The body of `PUT /v1/campaigns/<id>`: the flags given, the current values for the rest,
/// every field explicit. The route reads an omitted `name`/`detail`/`service_level` as
/// `""`/`0` (the platform's caller omits empty values), so keeping a value means sending it.
/// A type or end handle the campaign does not have (`""` in rows the Go service wrote) is
/// left out, which the route reads as "keep", since `""` is refused on input.
pub fn campaign_update_body(current: &Campaign, u: &CampaignUpdate) -> model::CampaignUpdate {
    model::CampaignUpdate {
        name: u.name.clone().unwrap_or_else(|| current.name.clone()),
        detail: u.detail.clone().unwrap_or_else(|| current.detail.clone()),
        kind: u
            .kind
            .or(Some(current.kind))
            .filter(|k| *k != model::CampaignType::Unset),
        service_level: u.service_level.unwrap_or(current.service_level),
        end_handle: u
            .end_handle
            .or(Some(current.end_handle))
            .filter(|e| *e != EndHandle::Unset),
    }
}

/// The body of `PUT /v1/outplans/<id>/dials`: the flags given, the current values for the rest.
pub fn outplan_dials_body(current: &Outplan, d: &Dials) -> Result<OutplanDials, Failure> {
    let mut b = OutplanDials {
        source: current.source.clone(),
        dial_timeout: d.dial_timeout.unwrap_or(current.dial_timeout),
        try_interval: d.try_interval.unwrap_or(current.try_interval),
        ..OutplanDials::default()
    };
    b.set_max_try_counts([
        current.max_try_count_0,
        current.max_try_count_1,
        current.max_try_count_2,
        current.max_try_count_3,
        current.max_try_count_4,
    ]);
    if d.source_type.is_some() || d.source_target.is_some() {
        let mut src = b.source.take().unwrap_or_default();
        if let Some(t) = &d.source_type {
            src.kind = t.clone();
        }
        if let Some(t) = &d.source_target {
            src.target = t.clone();
        }
        b.source = Some(src);
    }
    if let Some(v) = &d.max_try_count {
        b.set_max_try_counts(max_try_counts(v)?);
    }
    b.retry_rules = retry_rules(&d.retry_rules)?;
    b.min_talk_ms = d.min_talk_ms.map(Some);
    Ok(b)
}

/// `--retry-rules`: a JSON object by hangup reason, or `null` to clear (the service checks the
/// reasons and delays); `None` when the flag is not given (the stored rules are kept).
pub fn retry_rules(text: &Option<String>) -> Result<Option<Option<RetryRules>>, Failure> {
    let Some(text) = text else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Null) => Ok(Some(None)),
        Ok(v @ Value::Object(_)) => serde_json::from_value(v)
            .map(|r| Some(Some(r)))
            .map_err(|e| Failure::usage(format!("--retry-rules holds an invalid rule: {e}"))),
        Ok(_) => Err(Failure::usage(
            "--retry-rules must be a JSON object by hangup reason, e.g.              '{\"busy\":{\"delay_ms\":300000}}', or null",
        )),
        Err(e) => Err(Failure::usage(format!(
            "--retry-rules is not valid JSON: {e}"
        ))),
    }
}

fn dials_given(d: &Dials) -> bool {
    d.source_type.is_some()
        || d.source_target.is_some()
        || d.dial_timeout.is_some()
        || d.try_interval.is_some()
        || d.max_try_count.is_some()
        || d.retry_rules.is_some()
        || d.min_talk_ms.is_some()
}

/// The body of `POST /v1/campaigns`.
pub fn campaign_create_body(c: &CampaignCreate) -> Result<model::CampaignCreate, Failure> {
    let actions = match &c.actions_json {
        Some(text) => parse_actions(text)?,
        None => Vec::new(),
    };
    Ok(model::CampaignCreate {
        customer_id: c.customer_id,
        kind: Some(c.kind),
        name: c.name.clone(),
        detail: c.detail.clone(),
        actions: Some(actions),
        service_level: c.service_level,
        end_handle: Some(c.end_handle),
        outplan_id: c.outplan_id.unwrap_or_default(),
        outdial_id: c.outdial_id.unwrap_or_default(),
        queue_id: c.queue_id.unwrap_or_default(),
        next_campaign_id: c.next_campaign_id.unwrap_or_default(),
        ..model::CampaignCreate::default()
    })
}

/// The body of `POST /v1/outplans` (platform defaults for unset dial settings).
pub fn outplan_create_body(c: &OutplanCreate) -> Result<model::OutplanCreate, Failure> {
    let d = &c.dials;
    let source = (d.source_type.is_some() || d.source_target.is_some()).then(|| Address {
        kind: d.source_type.clone().unwrap_or_default(),
        target: d.source_target.clone().unwrap_or_default(),
        ..Address::default()
    });
    let mut dials = OutplanDials {
        source,
        dial_timeout: d.dial_timeout.unwrap_or(30_000),
        try_interval: d.try_interval.unwrap_or(600_000),
        ..OutplanDials::default()
    };
    dials.set_max_try_counts(match &d.max_try_count {
        Some(v) => max_try_counts(v)?,
        None => [5; 5],
    });
    dials.retry_rules = retry_rules(&d.retry_rules)?;
    dials.min_talk_ms = d.min_talk_ms.map(Some);
    Ok(model::OutplanCreate {
        customer_id: c.customer_id,
        name: c.name.clone(),
        detail: c.detail.clone(),
        dials,
    })
}

/// The filters of `campaign list`.
pub fn campaign_filters(
    customer_id: Option<Uuid>,
    running: bool,
    with_deleted: bool,
) -> CampaignFilters {
    CampaignFilters {
        customer_id,
        status: running.then_some(CampaignStatus::Run),
        deleted: (!with_deleted).then_some(false),
    }
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

    /// Sends one request and returns the raw reply; `what` names the operation in messages.
    pub(crate) async fn send(
        &self,
        what: &str,
        method: &str,
        uri: &str,
        body: Option<Value>,
        timeout: Duration,
    ) -> Result<Response, Failure> {
        let mut req = Request::new(method, uri);
        if let Some(b) = &body {
            req = req
                .with_json(b)
                .map_err(|e| Failure::new(format!("{what}: cannot encode the request: {e}")))?;
        }
        self.client
            .call_with(&self.queue, &req, CallOptions::timeout(timeout))
            .await
            .map_err(|e| self.rpc_failure(what, e))
    }

    /// Sends one request with a model body (or none) and reads the reply as the model type `T`.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        what: &str,
        method: &str,
        uri: &str,
        body: Option<&B>,
    ) -> Result<T, Failure> {
        let body = body
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| Failure::new(format!("{what}: cannot encode the request: {e}")))?;
        let resp = self.send(what, method, uri, body, RPC_TIMEOUT).await?;
        typed(what, reply_data(what, &resp)?)
    }

    /// A request without a body, read as the model type `T`.
    pub async fn request<T: DeserializeOwned>(
        &self,
        what: &str,
        method: &str,
        uri: &str,
    ) -> Result<T, Failure> {
        self.call::<(), T>(what, method, uri, None).await
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

    /// `GET /v1/campaigns/<id>/stats` as a table (also each refresh of `--watch`).
    pub async fn campaign_stats(&self, id: Uuid) -> Result<Output, Failure> {
        let what = format!("stats of campaign {id}");
        let stats: CampaignStats = self
            .request(&what, "GET", &super::stats::stats_uri(id))
            .await?;
        Ok(super::stats::stats_output(to_json(&what, &stats)?))
    }

    /// One page of `GET /v1/campaigns` (also each refresh of `campaign list --watch`).
    pub async fn campaign_list(
        &self,
        filters: &CampaignFilters,
        page: &Page,
    ) -> Result<Output, Failure> {
        let what = "list campaigns";
        let rows: Vec<Campaign> = self
            .call(what, "GET", &list_uri("/v1/campaigns", page), Some(filters))
            .await?;
        let columns = if filters.customer_id.is_some() {
            CAMPAIGN_COLUMNS
        } else {
            CAMPAIGN_ALL_COLUMNS
        };
        list_output(what, &rows, columns)
    }

    /// Every campaign matching `filters`, all pages, each once (a page ends inside a group of
    /// equal `tm_create` on the Go service, so a row can come twice; none is sent twice).
    pub async fn all_campaigns(
        &self,
        filters: &CampaignFilters,
        page_size: u32,
    ) -> Result<Vec<Campaign>, Failure> {
        let mut seen = HashSet::new();
        let mut all = Vec::new();
        let mut page = Page {
            page_size: Some(page_size.max(1)),
            page_token: None,
        };
        loop {
            let what = format!(
                "list campaigns (page {})",
                all.len() / page_size.max(1) as usize + 1
            );
            let rows: Vec<Campaign> = self
                .call(
                    &what,
                    "GET",
                    &list_uri("/v1/campaigns", &page),
                    Some(filters),
                )
                .await?;
            let full = rows.len() >= page_size.max(1) as usize;
            let last = rows.last().and_then(|c| c.tm_create);
            all.extend(rows.into_iter().filter(|c| seen.insert(c.id)));
            match last {
                // The platform's token form (microseconds, `Z`), which both services read.
                Some(t) if full => {
                    page.page_token = Some(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
                }
                _ => return Ok(all),
            }
        }
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
                running,
                with_deleted,
                page,
                ..
            } => {
                self.campaign_list(
                    &campaign_filters(*customer_id, *running, *with_deleted),
                    page,
                )
                .await
            }
            CampaignCmd::Stats { id, .. } => self.campaign_stats(*id).await,
            CampaignCmd::Get(a) => {
                let what = format!("get campaign {}", a.id);
                let c: Campaign = self.request(&what, "GET", &path(&a.id)).await?;
                record_output(&what, &c)
            }
            CampaignCmd::Create(c) => {
                let what = "create campaign";
                let body = campaign_create_body(c)?;
                let c: Campaign = self
                    .call(what, "POST", "/v1/campaigns", Some(&body))
                    .await?;
                record_output(what, &c)
            }
            CampaignCmd::Update(u) => {
                let what = format!("update campaign {}", u.id);
                let current: Campaign = self.request(&what, "GET", &path(&u.id)).await?;
                let body = campaign_update_body(&current, u);
                let c: Campaign = self.call(&what, "PUT", &path(&u.id), Some(&body)).await?;
                record_output(&what, &c)
            }
            CampaignCmd::UpdateServiceLevel { id, service_level } => {
                let what = format!("update service level of campaign {id}");
                let body = model::ServiceLevelUpdate {
                    service_level: *service_level,
                };
                let uri = format!("{}/service_level", path(id));
                let c: Campaign = self.call(&what, "PUT", &uri, Some(&body)).await?;
                record_output(&what, &c)
            }
            CampaignCmd::UpdateActions { id, actions_json } => {
                let what = format!("update actions of campaign {id}");
                let body = model::ActionsUpdate {
                    actions: Some(parse_actions(actions_json)?),
                };
                let uri = format!("{}/actions", path(id));
                let c: Campaign = self.call(&what, "PUT", &uri, Some(&body)).await?;
                record_output(&what, &c)
            }
            CampaignCmd::UpdateResourceInfo {
                id,
                outplan_id,
                outdial_id,
                queue_id,
                next_campaign_id,
            } => {
                let what = format!("update resource info of campaign {id}");
                let current: Campaign = self.request(&what, "GET", &path(id)).await?;
                let body = model::ResourceInfoUpdate {
                    outplan_id: outplan_id.unwrap_or(current.outplan_id),
                    outdial_id: outdial_id.unwrap_or(current.outdial_id),
                    queue_id: queue_id.unwrap_or(current.queue_id),
                    next_campaign_id: next_campaign_id.unwrap_or(current.next_campaign_id),
                };
                let uri = format!("{}/resource_info", path(id));
                let c: Campaign = self.call(&what, "PUT", &uri, Some(&body)).await?;
                record_output(&what, &c)
            }
            CampaignCmd::UpdateNextCampaign {
                id,
                next_campaign_id,
            } => {
                let what = format!("update next campaign of campaign {id}");
                let body = model::NextCampaignUpdate {
                    next_campaign_id: *next_campaign_id,
                };
                let uri = format!("{}/next_campaign_id", path(id));
                let c: Campaign = self.call(&what, "PUT", &uri, Some(&body)).await?;
                record_output(&what, &c)
            }
            CampaignCmd::CallingHours {
                id,
                json_file,
                clear,
            } => {
                let calling_hours = match (json_file, clear) {
                    (Some(file), false) => Some(read_calling_hours(file)?),
                    _ => None,
                };
                let what = format!("update calling hours of campaign {id}");
                let body = model::CallingHoursUpdate { calling_hours };
                let uri = format!("{}/calling_hours", path(id));
                let c: Campaign = self.call(&what, "PUT", &uri, Some(&body)).await?;
                record_output(&what, &c)
            }
            CampaignCmd::Pacing {
                id,
                max_concurrent_calls,
                dials_per_second,
                clear,
            } => {
                let pacing = (!*clear).then_some(Pacing {
                    max_concurrent_calls: *max_concurrent_calls,
                    dials_per_second: *dials_per_second,
                });
                let what = format!("update pacing of campaign {id}");
                let body = model::PacingUpdate { pacing };
                let uri = format!("{}/pacing", path(id));
                let c: Campaign = self.call(&what, "PUT", &uri, Some(&body)).await?;
                record_output(&what, &c)
            }
            CampaignCmd::Run(a) => {
                let what = format!("set campaign {} to run", a.id);
                let body = CampaignStatusUpdate {
                    status: CampaignStatus::Run,
                };
                let uri = format!("{}/status", path(&a.id));
                let c: Campaign = self.call(&what, "PUT", &uri, Some(&body)).await?;
                record_output(&what, &c)
            }
            CampaignCmd::Stop { id, force: false } => {
                let what = format!("set campaign {id} to stop");
                let body = CampaignStatusUpdate {
                    status: CampaignStatus::Stop,
                };
                let uri = format!("{}/status", path(id));
                let c: Campaign = self.call(&what, "PUT", &uri, Some(&body)).await?;
                record_output(&what, &c)
            }
            CampaignCmd::Stop { id, force: true } => {
                let what = format!("force-stop campaign {id}");
                let uri = format!("{}/force_stop", path(id));
                let resp = self
                    .send(&what, "POST", &uri, None, FORCE_STOP_TIMEOUT)
                    .await?;
                let c: Campaign = typed(&what, reply_data(&what, &resp)?)?;
                record_output(&what, &c)
            }
            CampaignCmd::Delete(a) => {
                let what = format!("delete campaign {}", a.id);
                confirm(&format!("Delete campaign {}?", a.id), a.yes)?;
                let c: Campaign = self.request(&what, "DELETE", &path(&a.id)).await?;
                record_output(&what, &c)
            }
            // Dispatched before an Rpc exists: it needs MySQL as well (see `kick`).
            CampaignCmd::Execute(args) => Err(Failure::usage(format!(
                "campaign execute is not an RPC-only command ({args:?})"
            ))),
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
                let what = "list campaign calls";
                let filters = CampaigncallFilters {
                    campaign_id: *campaign_id,
                    customer_id: *customer_id,
                    status: *status,
                    deleted: Some(false),
                };
                let uri = list_uri("/v1/campaigncalls", page);
                match self
                    .call::<_, Vec<Campaigncall>>(what, "GET", &uri, Some(&filters))
                    .await
                {
                    Ok(rows) => list_output(what, &rows, CAMPAIGNCALL_COLUMNS),
                    Err(f) => Err(f),
                }
            }
            CampaigncallCmd::Get(a) => {
                let what = format!("get campaign call {}", a.id);
                let uri = format!("/v1/campaigncalls/{}", a.id);
                match self.request::<Campaigncall>(&what, "GET", &uri).await {
                    Ok(c) => record_output(&what, &c),
                    Err(f) => Err(f),
                }
            }
            CampaigncallCmd::Finish { id, result, force } => {
                let what = format!("finish campaign call {id}");
                let uri = format!("/v1/campaigncalls/{id}/finish");
                let body = CampaigncallFinish {
                    result: *result,
                    force: *force,
                };
                match self
                    .call::<_, Campaigncall>(&what, "POST", &uri, Some(&body))
                    .await
                {
                    Ok(c) => record_output(&what, &c),
                    Err(f) => Err(f),
                }
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
                let what = "list outplans";
                let filters = OutplanFilters {
                    customer_id: Some(*customer_id),
                    deleted: (!with_deleted).then_some(false),
                };
                let uri = list_uri("/v1/outplans", page);
                let rows: Vec<Outplan> = self.call(what, "GET", &uri, Some(&filters)).await?;
                list_output(what, &rows, OUTPLAN_COLUMNS)
            }
            OutplanCmd::Get(a) => {
                let what = format!("get outplan {}", a.id);
                let o: Outplan = self.request(&what, "GET", &path(&a.id)).await?;
                record_output(&what, &o)
            }
            OutplanCmd::Create(c) => {
                let what = "create outplan";
                let body = outplan_create_body(c)?;
                let o: Outplan = self.call(what, "POST", "/v1/outplans", Some(&body)).await?;
                record_output(what, &o)
            }
            OutplanCmd::Update(u) => self.outplan_update(u).await,
            OutplanCmd::Delete(a) => {
                let what = format!("delete outplan {}", a.id);
                confirm(&format!("Delete outplan {}?", a.id), a.yes)?;
                let o: Outplan = self.request(&what, "DELETE", &path(&a.id)).await?;
                record_output(&what, &o)
            }
        }
    }

    /// `PUT /v1/outplans/<id>` with only the name/detail given (the route keeps the rest), then
    /// `PUT .../dials` with every dial setting (that route writes them all).
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
        let mut current: Outplan = if basic {
            let body = model::OutplanUpdate {
                name: u.name.clone(),
                detail: u.detail.clone(),
            };
            self.call(&what, "PUT", &uri, Some(&body)).await?
        } else {
            self.request(&what, "GET", &uri).await?
        };
        if dials {
            let body = outplan_dials_body(&current, &u.dials)?;
            current = self
                .call(&what, "PUT", &format!("{uri}/dials"), Some(&body))
                .await?;
        }
        record_output(&what, &current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_map_to_data_or_failures() {
        let ok = Response::json(200, &json!({"id": "x"}));
        assert_eq!(reply_data("w", &ok).unwrap(), json!({"id": "x"}));
        assert_eq!(
            reply_data("w", &Response::status(200)).unwrap(),
            Value::Null
        );
        let typed_err = Response::json(
            404,
            &VoipbinError::new(
                "NOT_FOUND",
                "CAMPAIGN_NOT_FOUND",
                "The campaign was not found.",
            ),
        );
        let mut typed_err = typed_err;
        typed_err.data_type = "voipbin_error".into();
        let f = reply_data("get campaign 1", &typed_err).unwrap_err();
        assert_eq!(f.code, 1);
        assert!(f.message.contains("The campaign was not found."), "{f}");
        assert!(f.message.contains("CAMPAIGN_NOT_FOUND"), "{f}");
        let bare = reply_data("get x", &Response::status(404)).unwrap_err();
        assert!(bare.message.contains("not found"), "{bare}");
        let bad = reply_data("get x", &Response::status(400)).unwrap_err();
        assert!(bad.message.contains("400"), "{bad}");
        // A success without the record (what the old delete branch guessed at) is unreadable.
        let none = typed::<Campaign>("delete campaign 1", Value::Null).unwrap_err();
        assert!(none.message.contains("cannot read"), "{none}");
    }

    #[test]
    fn bodies() {
        use model::{CampaignType, EndHandle};
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
            retry_rules: None,
            min_talk_ms: None,
        };
        let op: Outplan = serde_json::from_value(json!({
            "id": nil, "customer_id": nil, "name": "p", "detail": "",
            "source": {"type": "tel", "target": "+0"}, "dial_timeout": 30000,
            "try_interval": 5, "max_try_count_0": 5, "max_try_count_1": 5, "max_try_count_2": 5,
            "max_try_count_3": 5, "max_try_count_4": 5, "tm_create": null, "tm_update": null,
            "tm_delete": null
        }))
        .expect("outplan json");
        let b = serde_json::to_value(outplan_dials_body(&op, &d).unwrap()).unwrap();
        assert_eq!(b["source"], json!({"type": "tel", "target": "+1"}));
        assert_eq!(b["try_interval"], json!(1));
        assert_eq!(b["dial_timeout"], json!(30000));
        assert_eq!(b["max_try_count_4"], json!(2));
        assert!(
            b.get("retry_rules").is_none() && b.get("min_talk_ms").is_none(),
            "kept: {b}"
        );
        let with_rules = Dials {
            retry_rules: Some(r#"{"busy":{"delay_ms":5}}"#.into()),
            min_talk_ms: Some(3000),
            ..d.clone()
        };
        let b = serde_json::to_value(outplan_dials_body(&op, &with_rules).unwrap()).unwrap();
        assert_eq!(
            b["retry_rules"],
            json!({"busy": {"delay_ms": 5, "final": false}})
        );
        assert_eq!(b["min_talk_ms"], json!(3000));
        assert_eq!(retry_rules(&Some("null".into())).unwrap(), Some(None));
        for bad in ["[]", "{", r#"{"busy":{"delay":1}}"#] {
            assert_eq!(retry_rules(&Some(bad.into())).unwrap_err().code, 2, "{bad}");
        }
        assert_eq!(max_try_counts(&[1, 2]).unwrap_err().code, 2);
        assert_eq!(parse_actions("{}").unwrap_err().code, 2);
        assert_eq!(parse_actions("[").unwrap_err().code, 2);
        assert_eq!(parse_actions("[1]").unwrap_err().code, 2);
        assert_eq!(
            serde_json::to_value(campaign_filters(None, true, false)).unwrap(),
            json!({"status": "run", "deleted": false})
        );
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
