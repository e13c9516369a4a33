//! The alert sink: Alertmanager's webhook receiver in the monitoring stack. It logs one line
//! per alert and keeps the latest ones, so an end-to-end test can ask which alerts fired.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use serde_json::{Map, Value};

/// How many alerts are kept; older ones are forgotten first.
pub(crate) const KEPT_ALERTS: usize = 200;

/// One alert as received, in Alertmanager's field names.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AlertRecord {
    status: String,
    receiver: String,
    labels: Map<String, Value>,
    annotations: Map<String, Value>,
    starts_at: String,
    ends_at: String,
    fingerprint: String,
}

impl AlertRecord {
    fn label(&self, name: &str) -> &str {
        self.labels.get(name).and_then(Value::as_str).unwrap_or("")
    }

    fn annotation(&self, name: &str) -> &str {
        self.annotations
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// The payload is not a webhook notification at all.
#[derive(Debug, thiserror::Error)]
#[error("expected an Alertmanager webhook payload (a JSON object): {0}")]
pub(crate) struct NotAWebhook(String);

/// Reads a webhook payload (version "4"). Anything that is a JSON object is accepted; missing
/// or oddly typed fields become empty rather than failing the notification.
pub(crate) fn parse_webhook(body: &[u8]) -> Result<Vec<AlertRecord>, NotAWebhook> {
    let payload: Value =
        serde_json::from_slice(body).map_err(|error| NotAWebhook(error.to_string()))?;
    let Value::Object(payload) = payload else {
        return Err(NotAWebhook("the body is not an object".into()));
    };
    let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or("").to_owned();
    let object = |value: Option<&Value>| match value {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    let receiver = text(payload.get("receiver"));
    let alerts = payload.get("alerts").and_then(Value::as_array);
    Ok(alerts
        .into_iter()
        .flatten()
        .map(|alert| AlertRecord {
            status: text(alert.get("status")),
            receiver: receiver.clone(),
            labels: object(alert.get("labels")),
            annotations: object(alert.get("annotations")),
            starts_at: text(alert.get("startsAt")),
            ends_at: text(alert.get("endsAt")),
            fingerprint: text(alert.get("fingerprint")),
        })
        .collect())
}

/// The latest [`KEPT_ALERTS`] alerts, oldest first.
#[derive(Debug, Default)]
pub(crate) struct AlertLog {
    alerts: Mutex<VecDeque<AlertRecord>>,
}

impl AlertLog {
    pub(crate) fn record(&self, received: Vec<AlertRecord>) {
        for alert in &received {
            tracing::info!(
                status = alert.status,
                alertname = alert.label("alertname"),
                severity = alert.label("severity"),
                summary = alert.annotation("summary"),
                "alert received"
            );
        }
        // A panic while holding the lock cannot leave the queue half-updated in a way that
        // matters here, so a poisoned lock is used as is.
        let mut alerts = self.alerts.lock().unwrap_or_else(PoisonError::into_inner);
        alerts.extend(received);
        let excess = alerts.len().saturating_sub(KEPT_ALERTS);
        alerts.drain(..excess);
    }

    pub(crate) fn snapshot(&self) -> Vec<AlertRecord> {
        let alerts = self.alerts.lock().unwrap_or_else(PoisonError::into_inner);
        alerts.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_payload_yields_one_record_per_alert_with_the_receiver() {
        let body = br#"{"version":"4","status":"firing","receiver":"mock","groupLabels":{},
            "alerts":[{"status":"firing","labels":{"alertname":"HighErrorRate","severity":"page"},
            "annotations":{"summary":"5xx above 5%"},"startsAt":"2025-01-01T00:00:00Z",
            "endsAt":"0001-01-01T00:00:00Z","fingerprint":"abc","generatorURL":"x"}]}"#;
        let alerts = parse_webhook(body).unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].label("alertname"), "HighErrorRate");
        assert_eq!(alerts[0].annotation("summary"), "5xx above 5%");
        assert_eq!(alerts[0].receiver, "mock");
    }

    #[test]
    fn non_json_and_non_objects_are_refused_but_odd_fields_are_not() {
        assert!(parse_webhook(b"alerts!").is_err());
        assert!(parse_webhook(b"[1]").is_err());
        let odd = parse_webhook(br#"{"alerts":[{"status":3,"labels":[]}],"extra":true}"#).unwrap();
        assert_eq!(odd[0].status, "");
        assert!(parse_webhook(b"{}").unwrap().is_empty());
    }

    #[test]
    fn the_log_keeps_only_the_newest_alerts() {
        let log = AlertLog::default();
        let alert = |n: usize| AlertRecord {
            status: "firing".into(),
            receiver: String::new(),
            labels: Map::new(),
            annotations: Map::new(),
            starts_at: String::new(),
            ends_at: String::new(),
            fingerprint: n.to_string(),
        };
        log.record((0..KEPT_ALERTS + 5).map(alert).collect());
        let kept = log.snapshot();
        assert_eq!(kept.len(), KEPT_ALERTS);
        assert_eq!(kept[0].fingerprint, "5");
        assert_eq!(
            kept[KEPT_ALERTS - 1].fingerprint,
            (KEPT_ALERTS + 4).to_string()
        );
    }
}
