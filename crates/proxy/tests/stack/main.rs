//! Tests of the repository's deployment files: dashboards, compose, and the whole stack end to end.

mod bad_input;
mod compose;
mod dashboard_lint;
mod dashboards;
mod e2e;
mod kubernetes;
mod reload;
mod replicas;
mod run_script;
mod secrets;
mod shutdown;
