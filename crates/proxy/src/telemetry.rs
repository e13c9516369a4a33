//! Logging: one subscriber for the whole process, human-readable or JSON lines, on stdout.
//!
//! Lines are formatted on the thread that logs them and written by a dedicated thread through
//! a 64 KiB buffer that is flushed whenever the queue of lines runs empty. Under load one
//! `write(2)` carries many lines instead of one each, and a slow reader of stdout (a full pipe
//! to a log shipper) delays the writer thread, not the request path, until 16k lines are
//! queued; beyond that, logging threads wait rather than drop lines. The [`LogGuard`] flushes
//! what is queued when it is dropped, at the end of `main`.
//!
//! Colours only when stdout is a terminal and `NO_COLOR` is unset, so files and log
//! collectors get plain text. `RUST_LOG`, when set, overrides `log.level`.

use std::io::{BufWriter, IsTerminal};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::configuration::{LogFormat, LogSettings};

/// Bytes gathered before a write when lines arrive faster than they are written.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Lines queued for the writer before logging threads wait. The queue is allocated whole at
/// start-up (about 40 bytes a line), so this is also its memory cost.
const QUEUED_LINES: usize = 16 * 1024;

/// Keeps the log writer thread alive; dropping it writes out the lines still queued.
#[derive(Debug)]
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: WorkerGuard,
}

/// Installs the global subscriber. Fails if one is installed already.
pub fn init(log: &LogSettings) -> anyhow::Result<LogGuard> {
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&log.level))?;
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("mcp-log-writer")
        .finish(BufWriter::with_capacity(
            WRITE_BUFFER_BYTES,
            std::io::stdout(),
        ));
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let installed = match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("could not install the log subscriber: {e}"))?;
    Ok(LogGuard { _writer: guard })
}
