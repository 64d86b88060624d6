//! `campaign-manager`: the service. Serves the platform's RPC routes, reacts to call and
//! flow events, and runs campaign tick workers in-process (`--workers 0` for none).
//! `campaign-manager migrate` applies the database migrations and exits instead (for a job
//! that runs before the processes, which then start with `MIGRATE=false`).

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use campaign_manager::app::{Role, migrate, run_until_signal};
use campaign_manager::config::{Infra, Settings};

/// Outbound calling campaigns for the VoIP platform.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    infra: Infra,
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the database migrations and exit: 0 once the schema is current, 1 with the
    /// reason otherwise. Reads only the database settings (--database_dsn / DATABASE_DSN).
    Migrate,
}

/// The command line; every flag is accepted before or after `migrate` too.
fn parse() -> Cli {
    let matches = Cli::command().mut_args(|a| a.global(true)).get_matches();
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    campaign_manager::telemetry::init();
    let cli = parse();
    match cli.command {
        Some(Command::Migrate) => match migrate(&cli.infra).await {
            Ok(report) => {
                println!(
                    "campaign-manager migrate: the schema is current (applied {:?}, adopted \
                     rewritten {:?}, retried {:?})",
                    report.applied, report.adopted, report.retried
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("campaign-manager migrate failed: {e:#}");
                ExitCode::FAILURE
            }
        },
        None => {
            run_until_signal("campaign-manager", &cli.infra, &cli.settings, Role::Service).await
        }
    }
}
