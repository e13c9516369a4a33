//! Counting a scenario phase by phase, and by the upstream that served each answer (the
//! gateway names it in `x-mcp-upstream`). This is what shows a failover at work: while the
//! primary is down the answers move to the secondary and the errors clients see stay near
//! zero; once it heals the answers come back to it.
//!
//! A request counts in the phase in which it was started, whenever its answer comes back, so
//! that the phase in force decides what it should have seen.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use reqwest::header::HeaderValue;
use tokio::time::Instant;

use crate::tally::{ClassCounts, Outcome, StatusClass};

/// Answers that name no upstream: the gateway's own refusals, or a target (such as the mock
/// itself) that does not send the header.
pub const UNKNOWN_UPSTREAM: &str = "unknown";
/// Answers from upstreams beyond the first [`MAX_UPSTREAMS`] names, and header values that are
/// no name at all.
pub const OTHER_UPSTREAM: &str = "other";
/// Distinct names kept per phase ("unknown" included): the header comes from the target, and
/// a misbehaving one must not grow the counts without bound.
pub const MAX_UPSTREAMS: usize = 8;
/// The longest header value taken as a name.
const MAX_NAME_BYTES: usize = 64;

/// Answers per upstream name, bounded as described on [`MAX_UPSTREAMS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamCounts(BTreeMap<String, u64>);

impl UpstreamCounts {
    /// Counts one answer with this `x-mcp-upstream` value.
    pub fn add(&mut self, upstream: Option<&HeaderValue>) {
        let name = match upstream {
            None => UNKNOWN_UPSTREAM,
            Some(value) => value
                .to_str()
                .ok()
                .filter(|name| !name.is_empty() && name.len() <= MAX_NAME_BYTES)
                .unwrap_or(OTHER_UPSTREAM),
        };
        if let Some(count) = self.0.get_mut(name) {
            *count += 1;
            return;
        }
        let names = self.0.keys().filter(|key| *key != OTHER_UPSTREAM).count();
        let key = if names < MAX_UPSTREAMS {
            name
        } else {
            OTHER_UPSTREAM
        };
        *self.0.entry(key.to_owned()).or_default() += 1;
    }

    /// The answers `name` served.
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// Every answer counted.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// The names and their counts, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(name, count)| (name.as_str(), *count))
    }
}

impl fmt::Display for UpstreamCounts {
    /// As in "primary=120 secondary=3"; "-" when nothing was answered.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        for (index, (name, count)) in self.iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={count}")?;
        }
        Ok(())
    }
}

/// What happened to the requests started during one phase.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseSummary {
    /// "baseline", "outage", "recovery", ...
    pub name: &'static str,
    /// How long the phase lasted (so far, if it is the last one and still running).
    pub elapsed: Duration,
    /// Answers (and failures) per status class.
    pub classes: ClassCounts,
    /// Streamed 200s that broke.
    pub stream_errors: u64,
    /// Answers per upstream; requests without an answer are not here (see `classes`).
    pub upstreams: UpstreamCounts,
}

impl PhaseSummary {
    /// The errors clients saw: 5xx answers, requests without an answer, and broken streams.
    /// The 4xx are left out (they still count by class and status): the mix sends deliberate
    /// client errors (404, 400, and 401 for its wrong key), and a 429 is a key's own limit or
    /// budget at work, not the gateway failing.
    pub fn errors(&self) -> u64 {
        self.classes.get(StatusClass::ServerError)
            + self.classes.get(StatusClass::Failed)
            + self.stream_errors
    }
}

#[derive(Debug)]
struct Phase {
    name: &'static str,
    began: Instant,
    ended: Option<Instant>,
    classes: ClassCounts,
    stream_errors: u64,
    upstreams: UpstreamCounts,
}

impl Phase {
    fn new(name: &'static str, began: Instant) -> Self {
        Self {
            name,
            began,
            ended: None,
            classes: ClassCounts::default(),
            stream_errors: 0,
            upstreams: UpstreamCounts::default(),
        }
    }
}

/// The phases of a scenario so far, shared by the scenario (which moves from one phase to the
/// next) and every request task (which records its answer in the phase it started in).
#[derive(Debug)]
pub struct PhaseTally {
    phases: Mutex<Vec<Phase>>,
}

impl PhaseTally {
    /// Counting from now, in the phase `first`.
    pub fn new(first: &'static str) -> Self {
        Self {
            phases: Mutex::new(vec![Phase::new(first, Instant::now())]),
        }
    }

    /// Ends the current phase and starts `name`.
    pub fn begin(&self, name: &'static str) {
        let now = Instant::now();
        let mut phases = self.lock();
        if let Some(current) = phases.last_mut() {
            current.ended.get_or_insert(now);
        }
        phases.push(Phase::new(name, now));
    }

    /// Ends the current phase; later answers still count in the phase their request began in.
    pub fn finish(&self) {
        let now = Instant::now();
        if let Some(current) = self.lock().last_mut() {
            current.ended.get_or_insert(now);
        }
    }

    /// The phase requests started now belong to, for [`Self::record`].
    pub fn current(&self) -> usize {
        self.lock().len().saturating_sub(1)
    }

    /// Counts the outcome of a request started in phase `index`.
    pub fn record(&self, index: usize, outcome: &Outcome) {
        let mut phases = self.lock();
        let Some(phase) = phases.get_mut(index) else {
            return;
        };
        phase.classes.add(StatusClass::of(outcome.status));
        if outcome.status.is_some() {
            phase.upstreams.add(outcome.upstream.as_ref());
        }
        if let Some(Err(_)) = outcome.stream {
            phase.stream_errors += 1;
        }
    }

    /// Every phase so far, in order.
    pub fn summaries(&self) -> Vec<PhaseSummary> {
        let now = Instant::now();
        self.lock()
            .iter()
            .map(|phase| PhaseSummary {
                name: phase.name,
                elapsed: phase.ended.unwrap_or(now).duration_since(phase.began),
                classes: phase.classes,
                stream_errors: phase.stream_errors,
                upstreams: phase.upstreams.clone(),
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Phase>> {
        // Counters stay meaningful even if a holder panicked mid-update.
        self.phases.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One line per phase, at the end of a scenario.
pub fn log_summaries(phases: &[PhaseSummary]) {
    for phase in phases {
        tracing::info!(
            phase = phase.name,
            seconds = format_args!("{:.1}", phase.elapsed.as_secs_f64()),
            answers = phase.upstreams.total(),
            // As a string value, so that a line reader sees it quoted: it holds spaces.
            upstreams = phase.upstreams.to_string().as_str(),
            status_2xx = phase.classes.get(StatusClass::Success),
            status_4xx = phase.classes.get(StatusClass::ClientError),
            status_5xx = phase.classes.get(StatusClass::ServerError),
            failed = phase.classes.get(StatusClass::Failed),
            stream_errors = phase.stream_errors,
            errors = phase.errors(),
            "phase summary"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::Endpoint;
    use crate::sse::StreamFault;

    fn answer(status: Option<u16>, upstream: Option<&'static str>) -> Outcome {
        Outcome {
            endpoint: Endpoint::ChatCompletions,
            status,
            latency: Duration::from_millis(1),
            stream: None,
            upstream: upstream.map(HeaderValue::from_static),
        }
    }

    #[test]
    fn answers_count_by_upstream_and_a_missing_header_is_unknown() {
        let mut counts = UpstreamCounts::default();
        counts.add(Some(&HeaderValue::from_static("primary")));
        counts.add(Some(&HeaderValue::from_static("primary")));
        counts.add(None);
        assert_eq!(counts.get("primary"), 2);
        assert_eq!(counts.get(UNKNOWN_UPSTREAM), 1);
        assert_eq!(counts.total(), 3);
        assert_eq!(counts.to_string(), "primary=2 unknown=1");
        assert_eq!(UpstreamCounts::default().to_string(), "-");
    }

    #[test]
    fn names_beyond_the_bound_and_values_that_are_no_name_count_as_other() {
        let mut counts = UpstreamCounts::default();
        for index in 0..MAX_UPSTREAMS + 3 {
            let name = HeaderValue::from_str(&format!("upstream-{index:02}")).unwrap();
            counts.add(Some(&name));
        }
        counts.add(Some(&HeaderValue::from_static("upstream-00")));
        counts.add(Some(&HeaderValue::from_bytes(b"caf\xe9").unwrap()));
        counts.add(Some(&HeaderValue::from_static("")));
        assert_eq!(counts.iter().count(), MAX_UPSTREAMS + 1);
        assert_eq!(counts.get("upstream-00"), 2);
        assert_eq!(counts.get(OTHER_UPSTREAM), 3 + 2);
        assert_eq!(counts.total(), MAX_UPSTREAMS as u64 + 3 + 3);
    }

    #[test]
    fn an_answer_counts_in_the_phase_its_request_started_in() {
        let tally = PhaseTally::new("baseline");
        let baseline = tally.current();
        tally.record(baseline, &answer(Some(200), Some("primary")));
        tally.begin("outage");
        let outage = tally.current();
        // A baseline request whose answer arrives during the outage.
        tally.record(baseline, &answer(Some(200), Some("primary")));
        tally.record(outage, &answer(Some(200), Some("secondary")));
        tally.record(outage, &answer(Some(502), None));
        tally.record(outage, &answer(None, None));
        let mut broken = answer(Some(200), Some("secondary"));
        broken.stream = Some(Err(StreamFault::NoDone));
        tally.record(outage, &broken);
        tally.finish();

        let phases = tally.summaries();
        let names: Vec<_> = phases.iter().map(|phase| phase.name).collect();
        assert_eq!(names, ["baseline", "outage"]);
        assert_eq!(phases[0].upstreams.to_string(), "primary=2");
        assert_eq!(phases[0].errors(), 0);
        assert_eq!(phases[1].upstreams.to_string(), "secondary=2 unknown=1");
        assert_eq!(phases[1].classes.total(), 4);
        // The 502, the request without an answer, and the broken stream.
        assert_eq!(phases[1].errors(), 3);
    }

    #[test]
    fn refused_keys_and_spent_limits_count_as_4xx_not_as_errors() {
        let tally = PhaseTally::new("baseline");
        for status in [401, 429, 429, 404, 200] {
            tally.record(0, &answer(Some(status), None));
        }
        let phase = &tally.summaries()[0];
        assert_eq!(phase.classes.get(StatusClass::ClientError), 4);
        assert_eq!(phase.upstreams.get(UNKNOWN_UPSTREAM), 5);
        assert_eq!(phase.errors(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_phase_lasts_until_the_next_one_begins_or_the_scenario_finishes() {
        let tally = PhaseTally::new("baseline");
        tokio::time::advance(Duration::from_secs(3)).await;
        tally.begin("outage");
        tokio::time::advance(Duration::from_secs(5)).await;
        tally.finish();
        tokio::time::advance(Duration::from_secs(7)).await;
        let lengths: Vec<_> = tally.summaries().iter().map(|p| p.elapsed).collect();
        assert_eq!(lengths, [Duration::from_secs(3), Duration::from_secs(5)]);
    }
}
