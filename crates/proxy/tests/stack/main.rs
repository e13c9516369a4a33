//! Tests of the repository's deployment files: dashboards, compose, and the whole stack end to end.

mod compose;
mod dashboard_lint;
mod dashboards;
mod e2e;
mod reload;
mod run_script;
mod shutdown;
