//! `campaign-control`: the operator CLI. Campaigns, outplans and campaign calls through the
//! service's RPC API; the tick queue through Redis. All behaviour lives in
//! `campaign_control`; this file only parses arguments and starts a runtime.

use std::process::ExitCode;

fn main() -> ExitCode {
    // clap prints help (exit 0) or usage errors (exit 2) itself.
    let cli = campaign_control::cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("campaign-control: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(campaign_control::main(cli))
}
