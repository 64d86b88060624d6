//! The command line of `campaign-control`: clap derive types only, no behaviour.
//!
//! Kept apart from the code that runs the commands so the whole command tree (and its `--help`
//! texts) can be read in one place. The infrastructure flags come from [`Infra`] and are made
//! global in [`command`], so they work before or after any subcommand (the Go CLI only accepted
//! them on the root).

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use uuid::Uuid;

use crate::config::Infra;
use crate::model::{CampaignType, CampaigncallResult, CampaigncallStatus, EndHandle, parse_enum};

/// Operator CLI for campaign-manager: campaigns, outplans and campaign calls over the service's
/// RPC API, and the tick queue in Redis.
#[derive(Debug, Parser)]
#[command(name = "campaign-control", version, propagate_version = true)]
pub struct Cli {
    /// How to reach RabbitMQ, Redis and MySQL (same flags and env as the service).
    #[command(flatten)]
    pub infra: Infra,

    /// Prefix of every queue and exchange name (empty: the platform's names).
    #[arg(long = "queue_prefix", env = "QUEUE_PREFIX", default_value = "")]
    pub queue_prefix: String,

    /// Redis namespace of the tick scheduler.
    #[arg(
        long = "tick_namespace",
        env = "TICK_NAMESPACE",
        default_value = "campaign-manager:ticks"
    )]
    pub tick_namespace: String,

    /// Shards the tick chains are spread over: the service's --tick_shards (TICK_SHARDS).
    #[arg(long = "tick_shards", env = "TICK_SHARDS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub tick_shards: u16,

    /// Print results as pretty JSON (for scripts) instead of tables.
    #[arg(long)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Builds the clap command with every flag global (usable after subcommands too).
/// Flags of [`Infra`] the CLI does not use (the service's metrics endpoint) are
/// accepted, so one environment serves every binary, but hidden from `--help`.
pub fn command() -> clap::Command {
    Cli::command().mut_args(|a| {
        let unused = matches!(
            a.get_id().as_str(),
            "prometheus_endpoint" | "prometheus_listen_address"
        );
        a.global(true).hide(unused).help_heading("Global options")
    })
}

/// Parses the process arguments; prints help/usage and exits (0 for help, 2 for usage errors).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    match Cli::from_arg_matches(&matches).and_then(with_secret_files) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    }
}

/// Parses the given arguments (the first one is the program name).
pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches).and_then(with_secret_files)
}

/// Reads `--rabbitmq_address_file` / `--redis_password_file` (and the like) into their values.
fn with_secret_files(mut cli: Cli) -> Result<Cli, clap::Error> {
    cli.infra = cli
        .infra
        .with_secret_files()
        .map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e}\n")))?;
    Ok(cli)
}

/// Top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage campaigns (via the service's RPC API).
    #[command(subcommand)]
    Campaign(CampaignCmd),
    /// Inspect campaign calls (via the service's RPC API).
    #[command(subcommand)]
    Campaigncall(CampaigncallCmd),
    /// Manage outplans (via the service's RPC API).
    #[command(subcommand)]
    Outplan(OutplanCmd),
    /// Inspect and steer the tick queue (Redis).
    #[command(subcommand)]
    Queue(QueueCmd),
    /// Subscribed events (RabbitMQ): the dead-letter queue of events that failed every retry.
    #[command(subcommand)]
    Events(EventsCmd),
    /// The flows of deleted campaigns at flow-manager (via the service's RPC API).
    #[command(subcommand)]
    Flows(FlowsCmd),
    /// A customer's suppression (do-not-call) list (via the service's RPC API).
    #[command(subcommand)]
    Suppression(SuppressionCmd),
    /// A campaign's callbacks: a target dialed at a time asked for (via the service's RPC API).
    #[command(subcommand)]
    Callback(CallbackCmd),
    /// A customer's settings across all its campaigns (via the service's RPC API).
    #[command(subcommand)]
    Customer(CustomerCmd),
    /// Print a shell completion script, e.g. `campaign-control completions bash >
    /// /etc/bash_completion.d/campaign-control`.
    Completions {
        /// Shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, or write one page per command into a directory.
    Man {
        /// Write `campaign-control.1`, `campaign-control-campaign.1`, ... into this directory.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

/// A clap value parser for a model enum: `choices` are its wire values offered on the command
/// line (shown in `--help` and completions); the value itself is read by the model's serde, so
/// the CLI holds no copy of the enum (a unit test checks every choice parses).
pub fn model_enum<T>(
    field: &'static str,
    choices: &'static [&'static str],
) -> impl TypedValueParser<Value = T>
where
    T: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(choices).try_map(move |s| parse_enum::<T>(field, &s))
}

/// Wire values of [`CampaignType`] accepted on input.
pub const CAMPAIGN_TYPES: &[&str] = &["call", "flow"];
/// Wire values of [`EndHandle`] accepted on input.
pub const END_HANDLES: &[&str] = &["stop", "continue"];
/// Wire values of [`CampaigncallStatus`].
pub const CAMPAIGNCALL_STATUSES: &[&str] = &["dialing", "progressing", "done"];
/// Results an operator can give a campaigncall.
pub const FINISH_RESULTS: &[&str] = &["fail", "success"];

/// Pagination of list commands.
#[derive(Debug, Clone, Args)]
pub struct Page {
    /// Rows per page (the service applies its default and maximum).
    #[arg(long = "page-size")]
    pub page_size: Option<u32>,
    /// Page token: the `tm_create` of the last row of the previous page (default: now).
    #[arg(long = "page-token")]
    pub page_token: Option<String>,
}

/// The id of the record to act on.
#[derive(Debug, Clone, Args)]
pub struct IdArg {
    /// Record id (UUID).
    #[arg(long)]
    pub id: Uuid,
}

/// `campaign ...`
#[derive(Debug, Subcommand)]
pub enum CampaignCmd {
    /// List a customer's campaigns, or the running campaigns of every customer, newest first.
    List {
        /// Owner (UUID).
        #[arg(long = "customer-id", required_unless_present = "running")]
        customer_id: Option<Uuid>,
        /// Only running campaigns (status run); without --customer-id, of every customer.
        #[arg(long)]
        running: bool,
        /// Include deleted campaigns.
        #[arg(long = "with-deleted")]
        with_deleted: bool,
        /// Refresh the table in place every second until Ctrl-C.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        page: Page,
    },
    /// Show one campaign.
    Get(IdArg),
    /// Live stats of one campaign (calls up, results, pacing, why it waits).
    Stats {
        /// Campaign id.
        #[arg(long)]
        id: Uuid,
        /// Refresh the table in place every second until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
    /// Create a campaign (stopped; `run` starts it).
    Create(CampaignCreate),
    /// Update name, detail, type, service level and end handle (unset flags keep their value).
    Update(CampaignUpdate),
    /// Set the service level (percent of available agents to dial for).
    UpdateServiceLevel {
        /// Campaign id.
        #[arg(long)]
        id: Uuid,
        /// Service level in percent.
        #[arg(long = "service-level")]
        service_level: i32,
    },
    /// Replace the flow actions.
    UpdateActions {
        /// Campaign id.
        #[arg(long)]
        id: Uuid,
        /// Actions as a JSON array, e.g. '[{"type":"answer"}]'.
        #[arg(long = "actions-json")]
        actions_json: String,
    },
    /// Set outplan, outdial, queue and next campaign (unset flags keep their value; pass the
    /// nil UUID to clear one).
    UpdateResourceInfo {
        /// Campaign id.
        #[arg(long)]
        id: Uuid,
        /// Outplan id.
        #[arg(long = "outplan-id")]
        outplan_id: Option<Uuid>,
        /// Outdial id.
        #[arg(long = "outdial-id")]
        outdial_id: Option<Uuid>,
        /// Queue id.
        #[arg(long = "queue-id")]
        queue_id: Option<Uuid>,
        /// Next campaign id.
        #[arg(long = "next-campaign-id")]
        next_campaign_id: Option<Uuid>,
    },
    /// Set the next campaign.
    UpdateNextCampaign {
        /// Campaign id.
        #[arg(long)]
        id: Uuid,
        /// Next campaign id (the nil UUID clears it).
        #[arg(long = "next-campaign-id")]
        next_campaign_id: Uuid,
    },
    /// Set calling hours from a JSON file, or clear them (docs/calling_hours.md).
    CallingHours {
        /// Campaign id.
        #[arg(long)]
        id: Uuid,
        /// File with the `calling_hours` object, e.g.
        /// `{"time_zone":"Asia/Seoul","windows":[{"days":["mon"],"start":"09:00","end":"20:00"}]}`.
        #[arg(
            long = "json-file",
            required_unless_present = "clear",
            conflicts_with = "clear"
        )]
        json_file: Option<std::path::PathBuf>,
        /// Clear the calling hours (dial at any time).
        #[arg(long)]
        clear: bool,
    },
    /// Set the pacing (docs/pacing.md): a cap on calls up at once and/or a dial rate; a limit
    /// not given is unset. Or clear it.
    Pacing {
        /// Campaign id.
        #[arg(long)]
        id: Uuid,
        /// Most calls of the campaign up at once (an integer >= 0; 0 dials nothing).
        #[arg(
            long = "max-concurrent-calls",
            allow_negative_numbers = true,
            required_unless_present_any = ["dials_per_second", "clear"],
            conflicts_with = "clear"
        )]
        max_concurrent_calls: Option<i64>,
        /// Most dials per second (0.1 to 50).
        #[arg(
            long = "dials-per-second",
            allow_negative_numbers = true,
            conflicts_with = "clear"
        )]
        dials_per_second: Option<f64>,
        /// Clear the pacing (no cap, default dial rate).
        #[arg(long)]
        clear: bool,
    },
    /// Start dialing (status run).
    Run(IdArg),
    /// Stop dialing (status stop, or stopping while calls are in progress).
    Stop {
        /// Campaign id.
        #[arg(long)]
        id: Uuid,
        /// For a campaign stuck in stopping whose calls are gone: settle its open campaign
        /// calls (asking their peer; those not reported ended finish as fail) and stop it.
        #[arg(long)]
        force: bool,
    },
    /// Delete a stopped campaign (asks for confirmation).
    Delete(ConfirmId),
    /// Send `POST /v1/campaigns/<id>/execute`: one campaign, or every running campaign of
    /// every customer (rollback to the Go service: restarts its loops; see docs/cutover.md).
    /// Needs the durable tick switch off (`queue drain --durable`); a campaign whose Go loop was
    /// started already is skipped.
    Execute(ExecuteArgs),
}

/// `campaign execute` flags.
#[derive(Debug, Clone, Args)]
#[command(group = clap::ArgGroup::new("which").required(true))]
pub struct ExecuteArgs {
    /// This campaign (sent even if a Go loop was started for it already, after a confirmation).
    #[arg(long, group = "which")]
    pub id: Option<Uuid>,
    /// Every running campaign, all customers, one request each, except those whose Go loop was
    /// started already (recorded in MySQL).
    #[arg(long = "all-running", group = "which")]
    pub all_running: bool,
    /// Show what would be sent and skipped; send nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Campaigns read per list request (1 to 1000).
    #[arg(long = "page-size", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: u32,
    /// Do not ask for confirmation (needed for --all-running without a terminal).
    #[arg(long)]
    pub yes: bool,
}

/// The id of a record to remove, and the confirmation.
#[derive(Debug, Clone, Args)]
pub struct ConfirmId {
    /// Record id (UUID).
    #[arg(long)]
    pub id: Uuid,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
}

/// `campaign create` flags.
#[derive(Debug, Clone, Args)]
pub struct CampaignCreate {
    /// Owner (UUID).
    #[arg(long = "customer-id")]
    pub customer_id: Uuid,
    /// Name.
    #[arg(long)]
    pub name: String,
    /// Campaign type.
    #[arg(long = "type", default_value = "call",
          value_parser = model_enum::<CampaignType>("type", CAMPAIGN_TYPES))]
    pub kind: CampaignType,
    /// Free text.
    #[arg(long, default_value = "")]
    pub detail: String,
    /// Service level in percent.
    #[arg(long = "service-level", default_value_t = 100)]
    pub service_level: i32,
    /// What to do when the outdial list is exhausted.
    #[arg(long = "end-handle", default_value = "stop",
          value_parser = model_enum::<EndHandle>("end_handle", END_HANDLES))]
    pub end_handle: EndHandle,
    /// Outplan id.
    #[arg(long = "outplan-id")]
    pub outplan_id: Option<Uuid>,
    /// Outdial id.
    #[arg(long = "outdial-id")]
    pub outdial_id: Option<Uuid>,
    /// Queue id.
    #[arg(long = "queue-id")]
    pub queue_id: Option<Uuid>,
    /// Next campaign id.
    #[arg(long = "next-campaign-id")]
    pub next_campaign_id: Option<Uuid>,
    /// Flow actions as a JSON array (default: none).
    #[arg(long = "actions-json")]
    pub actions_json: Option<String>,
}

/// `campaign update` flags.
#[derive(Debug, Clone, Args)]
pub struct CampaignUpdate {
    /// Campaign id.
    #[arg(long)]
    pub id: Uuid,
    /// New name.
    #[arg(long)]
    pub name: Option<String>,
    /// New detail.
    #[arg(long)]
    pub detail: Option<String>,
    /// New type.
    #[arg(long = "type", value_parser = model_enum::<CampaignType>("type", CAMPAIGN_TYPES))]
    pub kind: Option<CampaignType>,
    /// New service level in percent.
    #[arg(long = "service-level")]
    pub service_level: Option<i32>,
    /// New end handle.
    #[arg(long = "end-handle",
          value_parser = model_enum::<EndHandle>("end_handle", END_HANDLES))]
    pub end_handle: Option<EndHandle>,
}

/// `flows ...`
#[derive(Debug, Subcommand)]
pub enum FlowsCmd {
    /// Run one orphaned-flow reconcile pass now, as the platform's schedule-manager does every
    /// 6 hours: delete the flows still live of campaigns deleted in the last 7 days (newest
    /// first, at most 500, at most 90 s).
    Reconcile {
        /// The interval, in seconds, the pass stands for: `recent_saturated` says whether the
        /// campaigns deleted within it alone fill a pass (default 24 hours).
        #[arg(long = "recent-interval-sec", value_parser = clap::value_parser!(u64).range(1..))]
        recent_interval_sec: Option<u64>,
    },
}

/// `campaigncall ...`
#[derive(Debug, Subcommand)]
pub enum CampaigncallCmd {
    /// List campaign calls, newest first (filters are combined).
    List {
        /// Only calls of this campaign.
        #[arg(long = "campaign-id")]
        campaign_id: Option<Uuid>,
        /// Only calls in this status.
        #[arg(long,
              value_parser = model_enum::<CampaigncallStatus>("status", CAMPAIGNCALL_STATUSES))]
        status: Option<CampaigncallStatus>,
        /// Only calls of this customer.
        #[arg(long = "customer-id")]
        customer_id: Option<Uuid>,
        #[command(flatten)]
        page: Page,
    },
    /// Show one campaign call.
    Get(IdArg),
    /// Finish a campaign call whose call is known to be gone (escape hatch for a stuck
    /// record): through the service, so the target, events and a stopping campaign follow.
    Finish {
        /// Campaign call id.
        #[arg(long)]
        id: Uuid,
        /// The result to record.
        #[arg(long,
              value_parser = model_enum::<CampaigncallResult>("result", FINISH_RESULTS))]
        result: CampaigncallResult,
        /// With `--result fail`: do not ask call-manager / flow-manager whether the call is
        /// gone first (without it, a call the peer reports up, or cannot say about, is refused).
        #[arg(long)]
        force: bool,
    },
}

/// `suppression ...` (docs/contact-strategy.md)
#[derive(Debug, Subcommand)]
pub enum SuppressionCmd {
    /// Put a target on the customer's list (a listed target: shows its entry).
    Add {
        /// Owner (UUID).
        #[arg(long = "customer-id")]
        customer_id: Uuid,
        /// An E.164 number (+ and digits; spaces, dashes, dots, parentheses are dropped) or
        /// any other address target.
        #[arg(long)]
        target: String,
        /// Why (free text).
        #[arg(long, default_value = "")]
        reason: String,
        /// When the entry stops suppressing (RFC 3339, in the future); default: never.
        #[arg(long)]
        expire: Option<String>,
    },
    /// List the customer's entries, newest first.
    List {
        /// Owner (UUID).
        #[arg(long = "customer-id")]
        customer_id: Uuid,
        /// Only this target's entry.
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Remove an entry (asks for confirmation).
    Remove(ConfirmId),
    /// List every target of FILE (one per line; blank lines and lines starting with # are
    /// skipped; - reads stdin): all of them, or none. At most 10,000 per run.
    Import {
        /// Owner (UUID).
        #[arg(long = "customer-id")]
        customer_id: Uuid,
        /// Why (free text, the same for every target).
        #[arg(long, default_value = "")]
        reason: String,
        /// The file of targets.
        file: std::path::PathBuf,
    },
}

/// `callback ...` (docs/contact-strategy.md)
#[derive(Debug, Subcommand)]
pub enum CallbackCmd {
    /// Dial a target of the campaign's outdial at a time (not before it, and within a tick of
    /// it, inside the calling hours), whatever its tries used.
    Add {
        /// The campaign (UUID).
        #[arg(long = "campaign-id")]
        campaign_id: Uuid,
        /// The outdial target (UUID).
        #[arg(long = "target-id")]
        target_id: Uuid,
        /// Which of its destinations (0 to 4).
        #[arg(long = "destination-index", default_value_t = 0)]
        destination_index: i32,
        /// When (RFC 3339, in the future), e.g. 2026-12-07T18:00:00+01:00.
        #[arg(long)]
        at: String,
    },
    /// List the campaign's callbacks, newest first.
    List {
        /// The campaign (UUID).
        #[arg(long = "campaign-id")]
        campaign_id: Uuid,
        #[command(flatten)]
        page: Page,
    },
    /// Remove a callback (asks for confirmation).
    Remove {
        /// The campaign (UUID).
        #[arg(long = "campaign-id")]
        campaign_id: Uuid,
        /// The callback (UUID).
        #[arg(long)]
        id: Uuid,
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// `customer ...` (docs/contact-strategy.md)
#[derive(Debug, Subcommand)]
pub enum CustomerCmd {
    /// The customer's dial limits across all its campaigns.
    #[command(subcommand)]
    Limits(LimitsCmd),
}

/// `customer limits ...`
#[derive(Debug, Subcommand)]
pub enum LimitsCmd {
    /// Show the customer's dial limits (both null when none are set).
    Get {
        /// Customer (UUID).
        #[arg(long = "customer-id")]
        customer_id: Uuid,
    },
    /// Set the customer's dial limits; a limit not given is unset.
    Set {
        /// Customer (UUID).
        #[arg(long = "customer-id")]
        customer_id: Uuid,
        /// Most calls of all the customer's campaigns up at once (an integer >= 0; 0 dials
        /// nothing).
        #[arg(
            long = "max-concurrent-calls",
            allow_negative_numbers = true,
            required_unless_present = "dials_per_second"
        )]
        max_concurrent_calls: Option<i64>,
        /// Most dials per second of all the customer's campaigns (0.1 to 50).
        #[arg(long = "dials-per-second", allow_negative_numbers = true)]
        dials_per_second: Option<f64>,
    },
    /// Clear the customer's dial limits (asks for confirmation).
    Clear {
        /// Customer (UUID).
        #[arg(long = "customer-id")]
        customer_id: Uuid,
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// `outplan ...`
#[derive(Debug, Subcommand)]
pub enum OutplanCmd {
    /// List a customer's outplans, newest first.
    List {
        /// Owner (UUID).
        #[arg(long = "customer-id")]
        customer_id: Uuid,
        /// Include deleted outplans.
        #[arg(long = "with-deleted")]
        with_deleted: bool,
        #[command(flatten)]
        page: Page,
    },
    /// Show one outplan.
    Get(IdArg),
    /// Create an outplan.
    Create(OutplanCreate),
    /// Update an outplan (unset flags keep their value).
    Update(OutplanUpdate),
    /// Delete an outplan (asks for confirmation).
    Delete(ConfirmId),
}

/// Dial settings of an outplan.
#[derive(Debug, Clone, Args)]
pub struct Dials {
    /// Caller id type (e.g. tel, sip).
    #[arg(long = "source-type")]
    pub source_type: Option<String>,
    /// Caller id (e.g. +821100000001).
    #[arg(long = "source-target")]
    pub source_target: Option<String>,
    /// Ring timeout, ms.
    #[arg(long = "dial-timeout")]
    pub dial_timeout: Option<i32>,
    /// Minimum time between two attempts on one target, ms.
    #[arg(long = "try-interval")]
    pub try_interval: Option<i32>,
    /// Maximum attempts per destination: one value for all five, or five comma-separated.
    #[arg(long = "max-try-count", value_delimiter = ',', num_args = 1..=5)]
    pub max_try_count: Option<Vec<i32>>,
    /// Retry rules by hangup reason as a JSON object, e.g.
    /// '{"busy":{"delay_ms":300000},"failed":{"final":true}}'; `null` clears them
    /// (docs/contact-strategy.md). Unset: kept.
    #[arg(long = "retry-rules")]
    pub retry_rules: Option<String>,
    /// A `normal` hangup that talked less (ms) is a fail retried under `noanswer`; 0 turns it
    /// off. Unset: kept.
    #[arg(long = "min-talk-ms")]
    pub min_talk_ms: Option<i32>,
}

/// `outplan create` flags.
#[derive(Debug, Clone, Args)]
pub struct OutplanCreate {
    /// Owner (UUID).
    #[arg(long = "customer-id")]
    pub customer_id: Uuid,
    /// Name.
    #[arg(long)]
    pub name: String,
    /// Free text.
    #[arg(long, default_value = "")]
    pub detail: String,
    #[command(flatten)]
    pub dials: Dials,
}

/// `outplan update` flags.
#[derive(Debug, Clone, Args)]
pub struct OutplanUpdate {
    /// Outplan id.
    #[arg(long)]
    pub id: Uuid,
    /// New name.
    #[arg(long)]
    pub name: Option<String>,
    /// New detail.
    #[arg(long)]
    pub detail: Option<String>,
    #[command(flatten)]
    pub dials: Dials,
}

/// `queue ...`
#[derive(Debug, Subcommand)]
pub enum QueueCmd {
    /// Chains, ticks due / scheduled / running / failed / dead, lateness, workers, throughput.
    Stats {
        /// Refresh the table in place every second until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
    /// Upcoming ticks, soonest first.
    List {
        /// Only this campaign's chain.
        #[arg(long)]
        campaign: Option<Uuid>,
        /// Most rows.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Pause ticks cluster-wide now (no wait; `drain` waits for running ticks).
    Pause {
        /// Also switch ticking off in MySQL, which every worker reads and which survives a loss
        /// of Redis; only `queue resume` undoes it.
        #[arg(long)]
        durable: bool,
        /// Why (kept with the durable switch, shown by `queue resume`).
        #[arg(long, default_value = "", requires = "durable")]
        reason: String,
    },
    /// Pause ticks cluster-wide and wait until running ticks have finished; chains stay owned.
    Drain {
        /// Give up after this long (e.g. 60s, 500ms, 2m); exit 1 if ticks are still running.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: std::time::Duration,
        /// Also switch ticking off in MySQL first (see `queue pause --durable`).
        #[arg(long)]
        durable: bool,
        /// Why (kept with the durable switch).
        #[arg(long, default_value = "", requires = "durable")]
        reason: String,
        /// Also drop the pending ticks; the reconciler re-seeds the chains of running campaigns
        /// (asks for confirmation).
        #[arg(long)]
        purge: bool,
        /// Do not ask for confirmation of --purge (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Resume ticks after `pause` or `drain` (asks for confirmation): clears the durable switch
    /// in MySQL and the pause in Redis, and forgets the Go loops `campaign execute` started
    /// (this service drives the campaigns again); overdue ticks start at once.
    Resume {
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// End one campaign's chain now (asks for confirmation).
    Purge {
        /// Campaign id.
        #[arg(long)]
        campaign: Uuid,
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Requeue tick jobs apalis gave up on (its dead and failed sets).
    RetryDead,
    /// Remove finished tick jobs from Redis now.
    Vacuum,
}

/// `events ...`
#[derive(Debug, Subcommand)]
pub enum EventsCmd {
    /// Events that failed every retry, kept in `<subscribe queue>.dead`.
    #[command(subcommand)]
    Dead(DeadCmd),
}

/// `events dead ...`
#[derive(Debug, Subcommand)]
pub enum DeadCmd {
    /// Show dead-lettered events, oldest first, without removing them.
    List {
        /// Most events shown.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Move dead-lettered events back to the subscribe queue (retry count reset), oldest first.
    #[command(group = clap::ArgGroup::new("how_many").required(true))]
    Replay {
        /// Every event present when the replay starts.
        #[arg(long, group = "how_many")]
        all: bool,
        /// At most this many events.
        #[arg(long, group = "how_many", value_parser = clap::value_parser!(u32).range(1..))]
        count: Option<u32>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Delete every dead-lettered event.
    Purge {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Parses `60s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 60s, 500ms, 2m"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "invalid duration unit {other:?}: use ms, s, m or h"
            ));
        }
    };
    if !secs.is_finite() || !(0.0..=86_400.0 * 7.0).contains(&secs) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn command_tree_is_valid_and_flags_are_global() {
        command().debug_assert();
        let cli = try_parse_from([
            "campaign-control",
            "queue",
            "stats",
            "--redis_address",
            "h:1",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.infra.redis_address, "h:1");
        assert!(cli.json);
        let err =
            try_parse_from(["campaign-control", "campaign", "get", "--id", "nope"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn every_offered_choice_is_a_model_value() {
        for c in CAMPAIGN_TYPES {
            let t: CampaignType = parse_enum("type", c).unwrap();
            assert_eq!(crate::model::enum_str(&t), *c);
        }
        for c in END_HANDLES {
            let t: EndHandle = parse_enum("end_handle", c).unwrap();
            assert_eq!(crate::model::enum_str(&t), *c);
        }
        for c in CAMPAIGNCALL_STATUSES {
            let t: CampaigncallStatus = parse_enum("status", c).unwrap();
            assert_eq!(crate::model::enum_str(&t), *c);
        }
        for c in FINISH_RESULTS {
            let t: CampaigncallResult = parse_enum("result", c).unwrap();
            assert_eq!(crate::model::enum_str(&t), *c);
        }
        let cli = try_parse_from([
            "campaign-control",
            "campaign",
            "create",
            "--customer-id",
            "00000000-0000-0000-0000-000000000001",
            "--name",
            "n",
            "--type",
            "flow",
        ])
        .unwrap();
        let Command::Campaign(CampaignCmd::Create(c)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(
            (c.kind, c.end_handle),
            (CampaignType::Flow, EndHandle::Stop)
        );
    }

    #[test]
    fn secrets_are_read_from_files() {
        let path = std::env::temp_dir().join(format!("cm-control-secret-{}", std::process::id()));
        std::fs::write(&path, "amqps://ops:Secret@mq:5671/%2f\n").unwrap();
        let file = path.to_string_lossy().into_owned();
        let cli = try_parse_from([
            "campaign-control",
            "queue",
            "stats",
            "--rabbitmq_address_file",
            &file,
        ]);
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            cli.unwrap().infra.rabbitmq_address,
            "amqps://ops:Secret@mq:5671/%2f"
        );
        let missing = try_parse_from([
            "campaign-control",
            "queue",
            "stats",
            "--redis_password_file",
            "/nonexistent",
        ]);
        let err = missing.unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("invalid redis_password_file"),
            "{err}"
        );
    }
}
