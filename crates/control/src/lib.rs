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
//! * [`stats`]: `campaign stats`, including the in-place `--watch` refresh.
//! * [`output`]: tables and `--json`.
//!
//! Every failure is a [`Failure`]: a message that says what failed and what to check, and the
//! exit code (1 failure, 2 usage).

pub mod cli;
pub mod events;
pub mod output;
pub mod queue;
pub mod rpc;
pub mod stats;

use std::process::ExitCode;
use std::time::Duration;

// The core's modules under the names the submodules use.
use campaign_manager::{app, bus, config, model, service};

use crate::app::redact;
use crate::bus::Names;
use cli::{Cli, Command};
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

/// Runs a parsed command line and returns the text to print.
pub async fn execute(cli: &Cli) -> Result<Output, Failure> {
    match &cli.command {
        Command::Campaign(cli::CampaignCmd::Stats { id, watch: true }) => {
            stats::watch(cli, *id).await
        }
        Command::Campaign(c) => rpc::Rpc::connect(cli).await?.campaign(c).await,
        Command::Campaigncall(c) => rpc::Rpc::connect(cli).await?.campaigncall(c).await,
        Command::Outplan(c) => rpc::Rpc::connect(cli).await?.outplan(c).await,
        Command::Queue(c) => queue::Queue::connect(cli).await?.run(c, cli.json).await,
        Command::Events(c) => events::run(cli, c).await,
    }
}

/// Runs a parsed command line: prints the result to stdout or the failure to stderr and returns
/// the exit code.
pub async fn main(cli: Cli) -> ExitCode {
    match execute(&cli).await {
        Ok(out) => {
            // `--watch` printed as it went.
            let watched = matches!(
                &cli.command,
                Command::Campaign(cli::CampaignCmd::Stats { watch: true, .. })
            );
            if !watched {
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
