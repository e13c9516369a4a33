//! The mock upstream's admin API, as far as the loadgen drives it: read, patch and reset the
//! fault profile on `/admin/faults`. The profile is kept as JSON: the mock owns its fields and
//! validates them, and the loadgen only passes a patch through and shows the answer.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::target::describe;

/// How long one admin call may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A mock upstream's admin API at its root URL (e.g. `http://127.0.0.1:8081`).
#[derive(Debug, Clone)]
pub struct MockAdmin {
    client: reqwest::Client,
    faults_url: String,
}

impl MockAdmin {
    /// The admin API of the mock at `root`.
    pub fn new(root: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().timeout(ADMIN_TIMEOUT).build()?;
        Ok(Self {
            client,
            faults_url: format!("{}/admin/faults", root.trim_end_matches('/')),
        })
    }

    /// The fault profile in force.
    pub async fn show(&self) -> anyhow::Result<Value> {
        self.call(self.client.get(&self.faults_url)).await
    }

    /// Lays `patch`'s fields over the profile in force; returns the new profile.
    pub async fn set(&self, patch: &Value) -> anyhow::Result<Value> {
        self.call(self.client.put(&self.faults_url).json(patch))
            .await
    }

    /// Restores the mock's start-up profile; returns it.
    pub async fn clear(&self) -> anyhow::Result<Value> {
        self.call(self.client.delete(&self.faults_url)).await
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .send()
            .await
            .map_err(|error| anyhow::anyhow!("{}: {}", self.faults_url, describe(&error)))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .with_context(|| format!("{}: reading the answer", self.faults_url))?;
        if !status.is_success() {
            anyhow::bail!("{} answered {status}: {body}", self.faults_url);
        }
        serde_json::from_str(&body).with_context(|| {
            format!(
                "{} answered something other than JSON: {body}",
                self.faults_url
            )
        })
    }
}
