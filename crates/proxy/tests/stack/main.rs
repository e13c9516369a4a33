//! Tests of the repository's deployment files.

mod dashboard_lint;
mod dashboards;
