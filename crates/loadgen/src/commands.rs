//! What each subcommand does, given its parsed flags and a [`Stop`].

use std::io::Write;

use anyhow::Context;
use serde_json::Value;

use crate::admin::MockAdmin;
use crate::cli::{Command, FaultsAction, FaultsArgs};
use crate::shutdown::Stop;
use crate::{scenario, traffic};

/// Runs one subcommand to its end.
pub async fn execute(command: Command, stop: Stop) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => traffic::run_when_healthy(&args.config(), stop)
            .await
            .map(drop),
        Command::Scenario(scenario) => scenario::run(&scenario.config(), stop).await.map(drop),
        Command::Faults(args) => faults(&args).await,
    }
}

/// The `faults` helper: one admin call, then the resulting profile on stdout.
async fn faults(args: &FaultsArgs) -> anyhow::Result<()> {
    let admin = MockAdmin::new(&args.mock_admin)?;
    let profile = match &args.action {
        FaultsAction::Show => admin.show().await?,
        FaultsAction::Clear => admin.clear().await?,
        FaultsAction::Set { patch } => {
            let patch: Value = serde_json::from_str(patch)
                .with_context(|| format!("the patch is not JSON: {patch}"))?;
            admin.set(&patch).await?
        }
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::to_string_pretty(&profile)?)?;
    Ok(())
}
