//! An OpenAI- and Anthropic-compatible upstream simulator with latency and fault knobs: chat
//! completions, completions, embeddings, the Responses API (with a store of responses) and
//! Anthropic's Messages API, with prompt-cache and reasoning tokens in their usage.
//!
//! The gateway's integration tests and benchmarks run it in-process:
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use mcp_mock_upstream::{FaultProfile, MockOptions, MockUpstream};
//!
//! let options = MockOptions {
//!     profile: FaultProfile { error_rate: 1.0, error_status: 503, ..FaultProfile::default() },
//!     ..MockOptions::default()
//! };
//! let mock = MockUpstream::bind("127.0.0.1:0".parse().expect("an address"), options)?;
//! let base_url = mock.base_url(); // http://127.0.0.1:PORT/v1
//! tokio::spawn(mock.run());
//! # Ok(()) }
//! ```
//!
//! Two modes: generated (the default) builds every answer per request, with usage that matches
//! the content; fixed serves the [`fixtures`] verbatim from prebuilt bytes, as cheaply as
//! possible, for benchmarks. The [`FaultProfile`] can be changed at run time on
//! `PUT /admin/faults`, which also sets the `fail_next` countdown of certain failures;
//! `GET /admin/stats` shows what the mock saw. Every `/v1/*` answer names the instance in
//! `x-mock-instance`, so a test running a primary and a fallback mock can tell them apart.
//!
//! Deliberately independent of `mcp-core`: it speaks OpenAI's wire format from its own
//! fixtures, so a drift in the gateway's wire types shows up in the gateway's tests.

mod alerts;
mod api_error;
pub mod cli;
mod embeddings;
mod fail_next;
mod faults;
mod fixed;
pub mod fixtures;
mod generate;
pub mod healthcheck;
mod messages;
mod prompt_cache;
mod ratelimit;
mod request;
mod response_store;
mod responses;
mod retry_after;
mod routes;
mod sse;
mod state;
mod stats;
pub mod telemetry;
mod usage;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::{App, HttpServer, web};

pub use faults::{FaultError, FaultPatch, FaultProfile};

use state::AppState;

/// Seconds a stopping server waits for answers in progress (a hung request never finishes).
const SHUTDOWN_TIMEOUT_SECS: u64 = 1;

/// The instance name when none is given.
pub const DEFAULT_INSTANCE: &str = "mock";

/// How the mock behaves from start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct MockOptions {
    /// The faults in force at start-up, and what `DELETE /admin/faults` returns to.
    pub profile: FaultProfile,
    /// Serve the fixtures verbatim instead of generating answers.
    pub fixed: bool,
    /// When set, `/v1/*` requires `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Server worker threads (at least one).
    pub workers: usize,
    /// Makes generated content and fault rolls reproducible for a sequence of requests.
    pub seed: Option<u64>,
    /// Sent as `x-mock-instance` on every `/v1/*` answer and shown in `/admin/stats`:
    /// non-empty printable ASCII.
    pub instance: String,
    /// How many of the first completion, chat and embedding requests fail with the profile's
    /// `error_status`; also what `DELETE /admin/faults` restores the countdown to.
    pub fail_next: u64,
}

impl Default for MockOptions {
    fn default() -> Self {
        Self {
            profile: FaultProfile::default(),
            fixed: false,
            api_key: None,
            workers: 1,
            seed: None,
            instance: DEFAULT_INSTANCE.to_owned(),
            fail_next: 0,
        }
    }
}

/// A bound, not yet serving, mock upstream.
#[derive(Debug)]
pub struct MockUpstream {
    listener: TcpListener,
    local_addr: SocketAddr,
    options: MockOptions,
    state: Arc<AppState>,
}

impl MockUpstream {
    /// Binds the listener now (port 0 allowed) so the real port is known before [`Self::run`].
    /// Fails with `InvalidInput` if the fault profile is out of range or the instance name
    /// cannot be sent as a header.
    pub fn bind(addr: SocketAddr, options: MockOptions) -> std::io::Result<Self> {
        fn invalid(error: impl std::error::Error + Send + Sync + 'static) -> std::io::Error {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, error)
        }
        options.profile.validate().map_err(invalid)?;
        let state = AppState::new(&options).map_err(invalid)?;
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            options,
            state: Arc::new(state),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The OpenAI base URL clients use, `http://ADDR:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.local_addr)
    }

    /// Serves until the future is dropped (which stops the workers) or the server fails.
    /// Needs a Tokio runtime; the workers run on their own threads. Signals are left to the
    /// caller, so a test's mock does not react to the test runner's Ctrl-C.
    pub async fn run(self) -> std::io::Result<()> {
        let Self {
            listener,
            local_addr,
            options,
            state,
        } = self;
        tracing::info!(
            address = %local_addr,
            instance = options.instance,
            fixed = options.fixed,
            api_key = options.api_key.is_some(),
            workers = options.workers.max(1),
            profile = ?options.profile,
            fail_next = options.fail_next,
            "mock upstream listening"
        );
        let state = web::Data::from(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .configure(routes::configure)
        })
        // A client that closes its side is gone: its handler is dropped, which is what ends a
        // hung request and counts a cancelled stream.
        .h1_allow_half_closed(false)
        // Events and small answers leave at once instead of waiting for the client's delayed ACK.
        .tcp_nodelay(true)
        .workers(options.workers.max(1))
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .listen(listener)?
        .run();
        server.await
    }
}
