//! `campaign-manager`: the service. Serves the platform's RPC routes, reacts to call and
//! flow events, and runs campaign tick workers in-process (`--workers 0` for none).

use clap::Parser;

use campaign_manager::app::{Role, run_until_signal};
use campaign_manager::config::{Infra, Settings};

/// Outbound calling campaigns for the VoIP platform.
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
    let cli = Cli::parse();
    run_until_signal("campaign-manager", &cli.infra, &cli.settings, Role::Service).await
}
