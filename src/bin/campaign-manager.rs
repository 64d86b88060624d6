//! `campaign-manager`: the service. Serves the platform's RPC routes, reacts to call and
//! flow events, and runs campaign tick workers in-process (`--workers 0` for none).

use clap::Parser;

use campaign_manager::app::{App, Role, Settings, shutdown_signal};
use campaign_manager::config::Infra;

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
    let app = match App::start(&cli.infra, &cli.settings, Role::Service).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "campaign-manager could not start");
            eprintln!("campaign-manager could not start: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    shutdown_signal().await;
    tracing::info!("shutting down");
    app.stop().await;
    std::process::ExitCode::SUCCESS
}
