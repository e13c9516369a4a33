//! Logging: one subscriber for the whole process, human-readable or JSON lines.
//!
//! `RUST_LOG`, when set, overrides `log.level`.

use tracing_subscriber::EnvFilter;

use crate::configuration::{LogFormat, LogSettings};

/// Installs the global subscriber. Fails if one is installed already.
pub fn init(log: &LogSettings) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&log.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let installed = match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("could not install the log subscriber: {e}"))
}
