//! `campaign-worker`: campaign tick workers only, for pods that add tick capacity. It serves
//! no RPC routes and no event subscriptions; chains spread over every worker process.

use clap::Parser;

use campaign_manager::app::{Role, run_until_signal};
use campaign_manager::config::{Infra, Settings};

/// Runs campaign ticks from the shared Redis queue.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    infra: Infra,
    #[command(flatten)]
    settings: Settings,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    campaign_manager::telemetry::init();
    let mut cli = Cli::parse();
    if cli.settings.workers == 0 {
        eprintln!("campaign-worker with --workers 0 would do nothing; give it at least 1");
        return std::process::ExitCode::from(2);
    }
    // Migrations belong to the service; a worker only reads and writes rows.
    cli.settings.migrate = false;
    run_until_signal("campaign-worker", &cli.infra, &cli.settings, Role::Worker).await
}
