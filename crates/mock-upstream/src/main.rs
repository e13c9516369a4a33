//! `mcp-mock-upstream`: serve the mock upstream, or probe one (`healthcheck`).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use mcp_mock_upstream::cli::{self, Cli, Command, ServeArgs};
use mcp_mock_upstream::{MockUpstream, healthcheck, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Healthcheck { url }) => Ok(probe(&url)),
        None => serve(cli.serve).await.map(|()| ExitCode::SUCCESS),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    let options = args.options().context("invalid fault flag")?;
    let mock = MockUpstream::bind(args.listen, options)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tokio::select! {
        served = mock.run() => served.context("server failed"),
        () = cli::shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

fn probe(url: &str) -> ExitCode {
    match healthcheck::probe(url, healthcheck::TIMEOUT) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("unhealthy: {error}");
            ExitCode::FAILURE
        }
    }
}
