//! `mcp-loadgen`: parse the flags, start logging, run the subcommand until it ends or a
//! Ctrl-C / SIGTERM stops it.

use std::process::ExitCode;

use clap::Parser;
use mcp_loadgen::cli::Cli;
use mcp_loadgen::shutdown::Stop;
use mcp_loadgen::{commands, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match commands::execute(cli.command, Stop::on_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
