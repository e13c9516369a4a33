//! Counting what happened: requests started and skipped, answers by endpoint and status
//! class, exact status codes, streams completed or broken, and latency percentiles. Two
//! ledgers are kept side by side: one for the whole run (the final summary) and one that is
//! emptied at every periodic report (the "last 10 s" line).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use reqwest::header::HeaderValue;
use tokio::time::Instant;

use crate::latency::LatencyHistogram;
use crate::mix::Endpoint;
use crate::sse::StreamFault;

/// A coarse outcome, as the summaries count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatusClass {
    /// 2xx.
    Success,
    /// 4xx.
    ClientError,
    /// 5xx.
    ServerError,
    /// Any other status (1xx, 3xx).
    Other,
    /// No answer at all: connection refused or reset, or the request timed out.
    Failed,
}

impl StatusClass {
    /// Every class, in report order.
    pub const ALL: [Self; 5] = [
        Self::Success,
        Self::ClientError,
        Self::ServerError,
        Self::Other,
        Self::Failed,
    ];

    /// The class of an HTTP status, or [`Self::Failed`] without one.
    pub fn of(status: Option<u16>) -> Self {
        match status {
            Some(200..=299) => Self::Success,
            Some(400..=499) => Self::ClientError,
            Some(500..=599) => Self::ServerError,
            Some(_) => Self::Other,
            None => Self::Failed,
        }
    }

    /// The short name used in log lines.
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "2xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
            Self::Other => "other",
            Self::Failed => "failed",
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub endpoint: Endpoint,
    /// The HTTP status, if an answer came at all.
    pub status: Option<u16>,
    /// From sending the request to the last byte of the answer (or the failure).
    pub latency: Duration,
    /// For a streamed 200: how the stream ended.
    pub stream: Option<Result<(), StreamFault>>,
    /// The answer's `x-mcp-upstream` header: which upstream the gateway says served it.
    pub upstream: Option<HeaderValue>,
}

/// Answers per status class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassCounts([u64; StatusClass::ALL.len()]);

impl ClassCounts {
    /// The count of one class.
    pub fn get(&self, class: StatusClass) -> u64 {
        self.0[class as usize]
    }

    /// Every answer (and failure) counted.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub(crate) fn add(&mut self, class: StatusClass) {
        self.0[class as usize] += 1;
    }

    fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
    }
}

/// A snapshot of one ledger: the whole run, or one report window.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// How long the ledger has been counting.
    pub elapsed: Duration,
    /// Requests the schedule started.
    pub started: u64,
    /// Requests the schedule skipped because the concurrency limit was reached.
    pub skipped: u64,
    /// Answers (and failures) per endpoint, in [`Endpoint::ALL`] order.
    pub by_endpoint: [ClassCounts; Endpoint::ALL.len()],
    /// Answers per exact HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Streamed 200s read to `[DONE]`.
    pub streams_completed: u64,
    /// Streamed 200s that broke: an error event, no `[DONE]`, or a failed read.
    pub stream_errors: u64,
    /// Median latency of the answers.
    pub p50: Option<Duration>,
    /// 99th percentile latency of the answers.
    pub p99: Option<Duration>,
}

impl Summary {
    /// Answers per class, all endpoints together.
    pub fn classes(&self) -> ClassCounts {
        let mut all = ClassCounts::default();
        for counts in &self.by_endpoint {
            all.merge(counts);
        }
        all
    }

    /// Answers per class at one endpoint.
    pub fn endpoint(&self, endpoint: Endpoint) -> ClassCounts {
        self.by_endpoint[endpoint.index()]
    }

    /// Answers with exactly this status.
    pub fn status(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// Requests started per second.
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.started as f64 / seconds
        } else {
            0.0
        }
    }
}

/// The counters behind one [`Summary`].
#[derive(Debug)]
struct Ledger {
    since: Instant,
    started: u64,
    skipped: u64,
    by_endpoint: [ClassCounts; Endpoint::ALL.len()],
    statuses: BTreeMap<u16, u64>,
    streams_completed: u64,
    stream_errors: u64,
    latency: LatencyHistogram,
}

impl Ledger {
    fn new(since: Instant) -> Self {
        Self {
            since,
            started: 0,
            skipped: 0,
            by_endpoint: Default::default(),
            statuses: BTreeMap::new(),
            streams_completed: 0,
            stream_errors: 0,
            latency: LatencyHistogram::default(),
        }
    }

    fn record(&mut self, outcome: &Outcome) {
        self.by_endpoint[outcome.endpoint.index()].add(StatusClass::of(outcome.status));
        if let Some(status) = outcome.status {
            // At most a few hundred distinct codes exist, so this map stays small.
            *self.statuses.entry(status).or_default() += 1;
            self.latency.record(outcome.latency);
        }
        match outcome.stream {
            Some(Ok(())) => self.streams_completed += 1,
            Some(Err(_)) => self.stream_errors += 1,
            None => {}
        }
    }

    fn summary(&self, now: Instant) -> Summary {
        Summary {
            elapsed: now.saturating_duration_since(self.since),
            started: self.started,
            skipped: self.skipped,
            by_endpoint: self.by_endpoint,
            statuses: self.statuses.clone(),
            streams_completed: self.streams_completed,
            stream_errors: self.stream_errors,
            p50: self.latency.percentile(0.50),
            p99: self.latency.percentile(0.99),
        }
    }
}

/// The run's counters, shared by the scheduler and every request task.
#[derive(Debug)]
pub struct Tally {
    ledgers: Mutex<Ledgers>,
}

#[derive(Debug)]
struct Ledgers {
    run: Ledger,
    window: Ledger,
}

impl Tally {
    /// Empty counters, counting from now.
    pub fn new() -> Self {
        let now = Instant::now();
        Self {
            ledgers: Mutex::new(Ledgers {
                run: Ledger::new(now),
                window: Ledger::new(now),
            }),
        }
    }

    /// A request was started.
    pub fn started(&self) {
        let mut ledgers = self.lock();
        ledgers.run.started += 1;
        ledgers.window.started += 1;
    }

    /// A request was due but skipped: too many in flight.
    pub fn skipped(&self) {
        let mut ledgers = self.lock();
        ledgers.run.skipped += 1;
        ledgers.window.skipped += 1;
    }

    /// A request ended.
    pub fn record(&self, outcome: &Outcome) {
        let mut ledgers = self.lock();
        ledgers.run.record(outcome);
        ledgers.window.record(outcome);
    }

    /// The whole run so far.
    pub fn summary(&self) -> Summary {
        self.lock().run.summary(Instant::now())
    }

    /// The window since the last call (or the start), and a new window from now.
    pub fn take_window(&self) -> Summary {
        let now = Instant::now();
        let mut ledgers = self.lock();
        let summary = ledgers.window.summary(now);
        ledgers.window = Ledger::new(now);
        summary
    }

    fn lock(&self) -> MutexGuard<'_, Ledgers> {
        // Counters stay meaningful even if a holder panicked mid-update.
        self.ledgers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(endpoint: Endpoint, status: Option<u16>, millis: u64) -> Outcome {
        Outcome {
            endpoint,
            status,
            latency: Duration::from_millis(millis),
            stream: None,
            upstream: None,
        }
    }

    #[test]
    fn statuses_fall_into_their_classes() {
        assert_eq!(StatusClass::of(Some(200)), StatusClass::Success);
        assert_eq!(StatusClass::of(Some(404)), StatusClass::ClientError);
        assert_eq!(StatusClass::of(Some(502)), StatusClass::ServerError);
        assert_eq!(StatusClass::of(Some(302)), StatusClass::Other);
        assert_eq!(StatusClass::of(None), StatusClass::Failed);
    }

    #[test]
    fn answers_are_counted_by_endpoint_class_and_status() {
        let tally = Tally::new();
        tally.record(&outcome(Endpoint::ChatCompletions, Some(200), 10));
        tally.record(&outcome(Endpoint::ChatCompletions, Some(502), 20));
        tally.record(&outcome(Endpoint::Embeddings, Some(200), 30));
        tally.record(&outcome(Endpoint::Completions, None, 5));
        let summary = tally.summary();
        let chat = summary.endpoint(Endpoint::ChatCompletions);
        assert_eq!(chat.get(StatusClass::Success), 1);
        assert_eq!(chat.get(StatusClass::ServerError), 1);
        assert_eq!(summary.classes().get(StatusClass::Success), 2);
        assert_eq!(summary.classes().get(StatusClass::Failed), 1);
        assert_eq!(summary.classes().total(), 4);
        assert_eq!(summary.status(502), 1);
        assert_eq!(summary.status(500), 0);
        // Failures have no answer, so no latency: the slowest answer is the embeddings one.
        assert_eq!(summary.p99, Some(Duration::from_millis(30)));
    }

    #[test]
    fn streams_are_counted_as_completed_or_broken() {
        let tally = Tally::new();
        let mut streamed = outcome(Endpoint::Completions, Some(200), 10);
        streamed.stream = Some(Ok(()));
        tally.record(&streamed);
        streamed.stream = Some(Err(StreamFault::NoDone));
        tally.record(&streamed);
        let summary = tally.summary();
        assert_eq!((summary.streams_completed, summary.stream_errors), (1, 1));
    }

    #[test]
    fn taking_a_window_starts_a_new_one_but_keeps_the_run() {
        let tally = Tally::new();
        tally.started();
        tally.skipped();
        tally.record(&outcome(Endpoint::Embeddings, Some(200), 1));
        let window = tally.take_window();
        assert_eq!((window.started, window.skipped), (1, 1));
        tally.started();
        let window = tally.take_window();
        assert_eq!((window.started, window.skipped), (1, 0));
        assert_eq!(window.classes().total(), 0);
        assert_eq!(window.p50, None);
        let run = tally.summary();
        assert_eq!((run.started, run.skipped), (2, 1));
        assert_eq!(run.classes().total(), 1);
    }

    #[test]
    fn the_rate_is_requests_started_over_time_elapsed() {
        let summary = Summary {
            elapsed: Duration::from_secs(4),
            started: 10,
            skipped: 0,
            by_endpoint: Default::default(),
            statuses: BTreeMap::new(),
            streams_completed: 0,
            stream_errors: 0,
            p50: None,
            p99: None,
        };
        assert_eq!(summary.rate(), 2.5);
    }
}
