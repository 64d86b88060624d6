//! `campaign-control`, the operator CLI, as a library module so its pieces are unit-tested and
//! the binary stays a thin `main`.
//!
//! * [`cli`]: the clap command tree (flags only).
//! * [`rpc`]: campaign, campaigncall and outplan commands. They go through the service's RPC API
//!   on RabbitMQ — never straight to MySQL — so business rules, validation against the peer
//!   managers and events stay in one place (the service).
//! * [`queue`]: the tick queue commands. They talk to Redis through
//!   [`campaign_workers::Chains`], plus two small scripts of their own for what that handle does
//!   not offer (dropping pending ticks, requeueing dead apalis jobs).
//! * [`events`]: the dead-letter queue of subscribed events, straight on RabbitMQ (the service
//!   owns no state about it, so there is no RPC route to go through).
//! * [`flows`]: `flows reconcile`, one orphaned-flow reconcile pass through the RPC API.
//! * [`handover`]: the records of a hand-over between this service and the Go service, straight
//!   in MySQL (the durable tick switch of `queue pause/drain --durable` and `queue resume`, the
//!   Go loops started by `campaign execute`), because they matter exactly when the service is
//!   gone or Redis lost its data.
//! * [`kick`]: `campaign execute`, the rollback's restart of Go loops, safe to run twice.
//! * [`stats`]: `campaign stats`.
//! * [`watch`]: the in-place `--watch` refresh of `campaign stats`, `campaign list` and
//!   `queue stats`.
//! * [`output`]: tables (comfy-table, so wide characters align) and `--json`.
//! * `completions` and `man` are generated from the clap command tree ([`cli::command`]).
//!
//! Destructive commands (deleting, purging, `queue resume`, `campaign execute --all-running`)
//! ask "…? [y/N]" on a terminal and need `--yes` otherwise ([`confirm`]).
//!
//! Every failure is a [`Failure`]: a message that says what failed and what to check, and the
//! exit code (1 failure, 2 usage).

pub mod callbacks;
pub mod cli;
pub mod customer_limits;
pub mod events;
pub mod flows;
pub mod handover;
pub mod kick;
pub mod output;
pub mod queue;
pub mod rpc;
pub mod stats;
pub mod suppressions;
pub mod watch;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

// The core's modules under the names the submodules use.
use campaign_manager::{app, bus, config, model};

use crate::app::redact;
use crate::bus::Names;
use cli::{CampaignCmd, Cli, Command, QueueCmd};
use output::Output;

/// A command that did not succeed: what to tell the operator and how to exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// One line (or a few) saying what failed and what to check.
    pub message: String,
    /// Process exit code: 1 failure, 2 usage.
    pub code: u8,
}

impl Failure {
    /// A failure (exit 1).
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
        }
    }

    /// A usage error (exit 2), for argument problems clap cannot see (e.g. bad JSON).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 2,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Queue and exchange names for a prefix (empty: the platform's names), as the service does.
pub fn names(queue_prefix: &str) -> Names {
    if queue_prefix.is_empty() {
        Names::default()
    } else {
        Names::prefixed(queue_prefix)
    }
}

/// How long a TCP reachability probe of a dependency may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens (and drops) a TCP connection to `addr`, so an unreachable dependency is reported with
/// its address and the OS reason instead of a client library's retry message.
pub async fn probe_tcp(addr: &str, what: &str, hint: &str) -> Result<(), Failure> {
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Failure::new(format!(
            "cannot reach {what} at {addr}: {e} — {hint}"
        ))),
        Err(_) => Err(Failure::new(format!(
            "cannot reach {what} at {addr}: no answer within {}s — {hint}",
            PROBE_TIMEOUT.as_secs()
        ))),
    }
}

/// Asks `question` on the terminal unless `yes`; without a terminal on stdin, refuses with a
/// usage error (exit 2) that says to pass `--yes`. Any answer but `y`/`yes` cancels (exit 1).
pub fn confirm(question: &str, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::usage(format!(
            "{question} — not confirmed: pass --yes (stdin is not a terminal)"
        )));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::new(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Failure::new("cancelled; nothing changed"))
    }
}

/// Whether the command printed as it went (`--watch`) rather than returning its output.
fn prints_itself(command: &Command) -> bool {
    matches!(
        command,
        Command::Campaign(CampaignCmd::Stats { watch: true, .. })
            | Command::Campaign(CampaignCmd::List { watch: true, .. })
            | Command::Queue(QueueCmd::Stats { watch: true })
    )
}

/// A generated text as output (printed as it is; a JSON string with `--json`).
fn text_output(bytes: Vec<u8>) -> Output {
    let human = String::from_utf8_lossy(&bytes).into_owned();
    Output {
        json: serde_json::Value::String(human.clone()),
        human,
    }
}

/// `completions` and `man`: generated from the command tree, no connection needed.
fn generated(command: &Command) -> Result<Output, Failure> {
    let mut cmd = cli::command();
    match command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "campaign-control", &mut script);
            Ok(text_output(script))
        }
        Command::Man { dir: None } => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .map_err(|e| Failure::new(format!("cannot render the man page: {e}")))?;
            Ok(text_output(page))
        }
        Command::Man { dir: Some(dir) } => {
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(cmd, dir))
                .map_err(|e| {
                    Failure::new(format!(
                        "cannot write man pages into {}: {e}",
                        dir.display()
                    ))
                })?;
            Ok(Output {
                json: serde_json::json!({ "dir": dir }),
                human: format!("wrote campaign-control*.1 into {}\n", dir.display()),
            })
        }
        _ => Err(Failure::usage("not a generated text")),
    }
}

/// Runs a parsed command line and returns the text to print.
pub async fn execute(cli: &Cli) -> Result<Output, Failure> {
    match &cli.command {
        c @ (Command::Completions { .. } | Command::Man { .. }) => generated(c),
        Command::Campaign(CampaignCmd::Stats { id, watch: true }) => {
            let rpc = rpc::Rpc::connect(cli).await?;
            let result = watch::watch(cli.json, || rpc.campaign_stats(*id)).await;
            rpc.close().await;
            result
        }
        Command::Campaign(CampaignCmd::List {
            customer_id,
            running,
            with_deleted,
            watch: true,
            page,
        }) => {
            let rpc = rpc::Rpc::connect(cli).await?;
            let filters = rpc::campaign_filters(*customer_id, *running, *with_deleted);
            let result = watch::watch(cli.json, || rpc.campaign_list(&filters, page)).await;
            rpc.close().await;
            result
        }
        Command::Campaign(CampaignCmd::Execute(args)) => kick::run(cli, args).await,
        Command::Campaign(c) => rpc::Rpc::connect(cli).await?.campaign(c).await,
        Command::Campaigncall(c) => rpc::Rpc::connect(cli).await?.campaigncall(c).await,
        Command::Outplan(c) => rpc::Rpc::connect(cli).await?.outplan(c).await,
        Command::Queue(c) => queue::Queue::connect(cli).await?.run(cli, c).await,
        Command::Events(c) => events::run(cli, c).await,
        Command::Flows(c) => rpc::Rpc::connect(cli).await?.flows(c).await,
        Command::Suppression(c) => rpc::Rpc::connect(cli).await?.suppression(c).await,
        Command::Callback(c) => rpc::Rpc::connect(cli).await?.callback(c).await,
        Command::Customer(c) => rpc::Rpc::connect(cli).await?.customer(c).await,
    }
}

/// Runs a parsed command line: prints the result to stdout or the failure to stderr and returns
/// the exit code.
pub async fn main(cli: Cli) -> ExitCode {
    match execute(&cli).await {
        Ok(out) => {
            if !prints_itself(&cli.command) {
                print!("{}", out.render(cli.json));
            }
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("campaign-control: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// The broker URL with its password hidden, for messages.
pub(crate) fn shown(url: &str) -> String {
    redact(url)
}
