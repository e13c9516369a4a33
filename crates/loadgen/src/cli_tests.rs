//! The command line's flags, defaults and refusals.

use super::*;

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("mcp-loadgen").chain(args.iter().copied())).unwrap()
}

#[test]
fn run_defaults_to_five_per_second_against_the_local_gateway_forever() {
    let Command::Run(args) = parse(&["run"]).command else {
        panic!("expected run");
    };
    let config = args.config();
    assert_eq!(config.targets, ["http://127.0.0.1:8080"]);
    assert_eq!(config.rate, 5.0);
    assert_eq!(config.duration, None);
    assert_eq!(config.concurrency_limit, 256);
    assert_eq!(config.stream_share, 0.3);
    assert_eq!(config.health_wait, Duration::from_secs(120));
    assert!(config.api_keys.is_empty());
}

#[test]
fn several_targets_are_repeatable_or_comma_separated_and_shared_by_the_scenarios() {
    let targets = [
        "--target",
        "http://proxy:8080",
        "--target",
        "http://proxy-2:8083,,",
    ];
    let expected = ["http://proxy:8080", "http://proxy-2:8083"];
    let Command::Run(args) = parse(&[&["run"][..], &targets].concat()).command else {
        panic!("expected run");
    };
    assert_eq!(args.config().targets, expected);
    for scenario in ["incident", "slow-upstream", "failover"] {
        let Command::Scenario(command) =
            parse(&[&["scenario", scenario][..], &targets].concat()).command
        else {
            panic!("expected a scenario");
        };
        assert_eq!(command.config().traffic.targets, expected, "{scenario}");
    }
}

#[test]
fn client_keys_are_repeatable_shared_by_every_traffic_command_and_never_shown() {
    let keys = [
        "--api-key",
        "sk-first-7d1e",
        "--api-key",
        "sk-second-7d1e,,",
    ];
    let expected = [ApiKey::new("sk-first-7d1e"), ApiKey::new("sk-second-7d1e")];
    let run = parse(&[&["run"][..], &keys].concat());
    assert!(!format!("{run:?}").contains("7d1e"), "{run:?}");
    let Command::Run(args) = run.command else {
        panic!("expected run");
    };
    assert_eq!(args.config().api_keys, expected);
    assert!(!format!("{:?}", args.config()).contains("7d1e"));
    for scenario in ["incident", "slow-upstream", "failover"] {
        let Command::Scenario(command) =
            parse(&[&["scenario", scenario][..], &keys].concat()).command
        else {
            panic!("expected a scenario");
        };
        assert_eq!(command.config().traffic.api_keys, expected, "{scenario}");
    }
    // A key that looks like a flag is still a key.
    let Command::Run(args) = parse(&["run", "--api-key", "-dash-key"]).command else {
        panic!("expected run");
    };
    assert_eq!(args.config().api_keys, [ApiKey::new("-dash-key")]);
}

#[test]
fn the_incident_scenario_takes_its_phases_and_fault_from_flags() {
    let cli = parse(&[
        "--log-format",
        "json",
        "scenario",
        "incident",
        "--rate",
        "12",
        "--baseline",
        "1",
        "--incident",
        "2",
        "--recovery",
        "3",
        "--error-rate",
        "0.5",
        "--error-status",
        "503",
        "--mock-admin",
        "http://mock:8081",
    ]);
    assert_eq!(cli.log_format, LogFormat::Json);
    let Command::Scenario(scenario) = cli.command else {
        panic!("expected a scenario");
    };
    let config = scenario.config();
    assert_eq!(config.traffic.rate, 12.0);
    assert_eq!(config.mock_admin, "http://mock:8081");
    assert_eq!(
        (config.baseline, config.incident_for, config.recovery),
        (
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(3)
        )
    );
    assert_eq!(
        config.incident,
        Incident::Errors {
            rate: 0.5,
            status: 503
        }
    );
}

#[test]
fn the_slow_upstream_scenario_lasts_long_enough_for_the_latency_alerts() {
    let Command::Scenario(scenario) = parse(&["scenario", "slow-upstream"]).command else {
        panic!("expected a scenario");
    };
    let config = scenario.config();
    assert_eq!(config.incident_for, Duration::from_secs(900));
    assert!(matches!(
        config.incident,
        Incident::Slow {
            latency_ms: 4000,
            ..
        }
    ));
}

#[test]
fn out_of_range_values_are_refused() {
    let refused = [
        &["run", "--rate", "0"][..],
        &["run", "--rate", "-3"],
        &["run", "--stream-share", "1.5"],
        &["run", "--concurrency-limit", "0"],
        &["scenario", "incident", "--error-rate", "2"],
        &["scenario", "incident", "--error-status", "200"],
        &["scenario", "failover", "--error-rate", "1.5"],
        &["scenario", "failover", "--error-status", "302"],
    ];
    for args in refused {
        let full = std::iter::once("mcp-loadgen").chain(args.iter().copied());
        assert!(Cli::try_parse_from(full).is_err(), "{args:?} was accepted");
    }
}

#[test]
fn the_faults_helper_takes_a_json_patch() {
    let Command::Faults(args) = parse(&["faults", "set", r#"{"error_rate":0.3}"#]).command else {
        panic!("expected faults");
    };
    assert_eq!(args.mock_admin, "http://127.0.0.1:8081");
    let FaultsAction::Set { patch } = args.action else {
        panic!("expected set");
    };
    assert_eq!(patch, r#"{"error_rate":0.3}"#);
}

#[test]
fn the_failover_scenario_fails_the_primary_hard_by_default() {
    let Command::Scenario(scenario) = parse(&["scenario", "failover"]).command else {
        panic!("expected a scenario");
    };
    let config = scenario.config();
    assert_eq!(config.mock_admin, "http://127.0.0.1:8081");
    assert_eq!(config.traffic.targets, ["http://127.0.0.1:8080"]);
    assert_eq!(
        config.incident,
        Incident::Outage {
            rate: 1.0,
            status: 503
        }
    );
    assert_eq!(
        (config.baseline, config.incident_for, config.recovery),
        (
            Duration::from_secs(60),
            Duration::from_secs(120),
            Duration::from_secs(300)
        )
    );
}

#[test]
fn the_failover_scenario_takes_its_phases_and_fault_from_flags() {
    let Command::Scenario(scenario) = parse(&[
        "scenario",
        "failover",
        "--mock-admin",
        "http://primary:8081",
        "--baseline",
        "5",
        "--incident",
        "30",
        "--recovery",
        "45",
        "--error-rate",
        "0.9",
        "--error-status",
        "500",
    ])
    .command
    else {
        panic!("expected a scenario");
    };
    let config = scenario.config();
    assert_eq!(config.mock_admin, "http://primary:8081");
    assert_eq!(
        (config.baseline, config.incident_for, config.recovery),
        (
            Duration::from_secs(5),
            Duration::from_secs(30),
            Duration::from_secs(45)
        )
    );
    assert_eq!(
        config.incident,
        Incident::Outage {
            rate: 0.9,
            status: 500
        }
    );
}
