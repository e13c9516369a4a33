//! The `mcp-proxy` binary: read settings, start logging, serve.

use std::io::Write;

use anyhow::Context;
use clap::Parser;
use mcp_proxy::cli::{self, Cli, Command};
use mcp_proxy::configuration::Secrets;
use mcp_proxy::{Application, telemetry};

/// Every request allocates a few small buffers; mimalloc's thread-local free lists serve
/// them in fewer instructions than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck { url }) = &cli.command {
        std::process::exit(if cli::healthcheck(url).await { 0 } else { 1 });
    }
    let settings = cli.settings()?;
    if let Some(Command::CheckConfig) = cli.command {
        writeln!(std::io::stdout(), "{settings:#?}")?;
        return Ok(());
    }
    // Held to the end of `main`: dropping it writes out the log lines still queued.
    let _log = telemetry::init(&settings.log)?;
    let secrets = Secrets::from_env(&settings);
    // A SIGHUP reads the same sources again: the file, the environment and the flags.
    let app = Application::build(settings, secrets)?.reload_from(Box::new(move || {
        let settings = cli.settings()?;
        let secrets = Secrets::from_env(&settings);
        Ok((settings, secrets))
    }));
    app.run_until_stopped()
        .await
        .context("the server stopped with an error")
}
