//! The binary itself: environment variables, exit codes, the `faults` helper, and SIGTERM
//! during an incident.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mcp_mock_upstream::FaultProfile;
use serde_json::Value;

use crate::helpers::{Mock, closed_port};

pub const BINARY: &str = env!("CARGO_BIN_EXE_mcp-loadgen");

/// Runs the binary to its end off the async runtime, so the in-process mock keeps serving.
pub async fn loadgen(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BINARY);
    command.args(args).env("RUST_LOG", "info");
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_non_zero_when_the_target_never_becomes_healthy() {
    let target = format!("http://127.0.0.1:{}", closed_port());
    let started = Instant::now();

    let output = loadgen(
        &["run"],
        &[("LOADGEN_TARGET", &target), ("LOADGEN_WAIT_SECS", "1")],
    )
    .await;

    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(
        stderr.contains(&format!("{target}/health did not answer 200")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_for_its_duration_and_logs_a_json_final_summary() {
    let mock = Mock::spawn(FaultProfile::default());

    let output = loadgen(
        &[
            "--log-format",
            "json",
            "run",
            "--rate",
            "20",
            "--duration",
            "1",
        ],
        &[("LOADGEN_TARGET", &mock.root), ("LOADGEN_SEED", "3")],
    )
    .await;

    let summary = final_summary(&output);
    let started = summary["started"].as_u64().unwrap();
    assert!((15..=25).contains(&started), "{summary}");
    assert_eq!(mock.stats().await["requests_total"].as_u64(), Some(started));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_faults_helper_sets_shows_and_clears_the_mock_profile() {
    let mock = Mock::spawn(FaultProfile::default());
    let admin = mock.root.as_str();

    let set = loadgen(
        &[
            "faults",
            "--mock-admin",
            admin,
            "set",
            r#"{"error_rate":0.3}"#,
        ],
        &[],
    )
    .await;
    assert!(set.status.success(), "{}", text(&set.stderr));
    let printed: Value = serde_json::from_slice(&set.stdout).unwrap();
    assert_eq!(printed["error_rate"], 0.3);
    assert_eq!(mock.faults().await["error_rate"], 0.3);

    let shown = loadgen(&["faults", "show"], &[("LOADGEN_MOCK_ADMIN", admin)]).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&shown.stdout).unwrap(),
        printed
    );

    let cleared = loadgen(&["faults", "--mock-admin", admin, "clear"], &[]).await;
    let printed: Value = serde_json::from_slice(&cleared.stdout).unwrap();
    assert_eq!(printed["error_rate"], 0.0);
    assert_eq!(mock.faults().await["error_rate"], 0.0);

    // The mock refuses a bad patch by name, and the helper says so and fails.
    let refused = loadgen(
        &["faults", "--mock-admin", admin, "set", r#"{"error_rat":1}"#],
        &[],
    )
    .await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("error_rat"),
        "{}",
        text(&refused.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failover_scenario_logs_each_phase_start_and_a_summary_per_phase() {
    let mock = Mock::spawn(FaultProfile::default());

    let output = loadgen(
        &[
            "--log-format",
            "json",
            "scenario",
            "failover",
            "--rate",
            "20",
        ],
        &[
            ("LOADGEN_TARGET", &mock.root),
            ("LOADGEN_MOCK_ADMIN", &mock.root),
            ("LOADGEN_BASELINE", "0"),
            ("LOADGEN_INCIDENT", "1"),
            ("LOADGEN_RECOVERY", "1"),
        ],
    )
    .await;

    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|line| line["message"].as_str())
        .collect();
    for expected in [
        "baseline started",
        "outage started: the primary answers 100% 503s",
        "outage cleared",
        "recovery started",
        "scenario finished",
    ] {
        assert!(
            messages.contains(&expected),
            "no {expected:?} in:\n{stderr}"
        );
    }
    let summaries: Vec<&Value> = lines
        .iter()
        .filter(|line| line["message"] == "phase summary")
        .collect();
    let phases: Vec<&str> = summaries
        .iter()
        .map(|line| line["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["baseline", "outage", "recovery"], "{stderr}");
    // Straight at the mock, no answer names its upstream.
    let recovery = summaries[2];
    let answers = recovery["answers"].as_u64().unwrap();
    assert!(answers > 0, "{recovery}");
    assert_eq!(recovery["upstreams"], format!("unknown={answers}"));
    assert_eq!(recovery["errors"], 0, "{recovery}");
    assert!(summaries[1]["status_5xx"].as_u64().unwrap() > 0, "{stderr}");
    assert_eq!(mock.faults().await["error_rate"], 0.0);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_the_incident_clears_the_fault_before_exiting() {
    let mock = Mock::spawn(FaultProfile::default());
    let child = Command::new(BINARY)
        .args(["scenario", "incident", "--rate", "20", "--baseline", "0"])
        .args([
            "--incident",
            "60",
            "--error-rate",
            "0.5",
            "--error-status",
            "503",
        ])
        .args(["--target", &mock.root, "--mock-admin", &mock.root])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    mock.faults_until(Duration::from_secs(10), |f| f["error_rate"] == 0.5)
        .await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let pid = child.id().to_string();
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap());
    let Ok(output) = tokio::time::timeout(Duration::from_secs(10), waiting).await else {
        Command::new("kill").args(["-KILL", &pid]).status().unwrap();
        panic!("the loadgen did not exit within 10 s of SIGTERM");
    };
    let output = output.unwrap();

    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("incident started: 50% 503s"), "{stderr}");
    assert!(stderr.contains("incident cleared"), "{stderr}");
    assert_eq!(mock.faults().await["error_rate"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_targets_in_the_environment_are_sent_requests_in_turn() {
    let (first, second) = (
        Mock::spawn(FaultProfile::default()),
        Mock::spawn(FaultProfile::default()),
    );
    let targets = format!("{},{}/", first.root, second.root);

    let output = loadgen(
        &[
            "--log-format",
            "json",
            "run",
            "--rate",
            "20",
            "--duration",
            "1",
        ],
        &[("LOADGEN_TARGET", &targets), ("LOADGEN_SEED", "3")],
    )
    .await;

    let summary = final_summary(&output);
    let started = summary["started"].as_u64().unwrap();
    let seen = [
        first.stats().await["requests_total"].as_u64().unwrap(),
        second.stats().await["requests_total"].as_u64().unwrap(),
    ];
    assert_eq!(seen[0] + seen[1], started, "{summary}");
    assert!(seen[0].abs_diff(seen[1]) <= 1, "not in turn: {seen:?}");
    assert!(seen[1] >= 5, "{seen:?}");
}

/// The run's `final summary` line, from a successful run's JSON log.
fn final_summary(output: &std::process::Output) -> Value {
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"] == "final summary")
        .unwrap_or_else(|| panic!("no final summary in:\n{stderr}"))
}
