//! The ingestion's settings: the `[ingest]` table of the config file,
//! owned here so the ingestion's defaults and checks live beside the code
//! that uses them. `config` fills it from the file, environment and flags.

use crate::domain::Severity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Settings of the alert ingestion.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    pub group_by: Vec<String>,
    /// Extra or overriding entries of the severity mapping (keys are
    /// matched case-insensitively).
    pub severity_map: BTreeMap<String, Severity>,
    pub default_severity: Severity,
    pub service_labels: Vec<String>,
    pub auto_resolve: bool,
    pub auto_decide: bool,
    pub webhook_token_env: Option<String>,
    pub max_webhook_bytes: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            group_by: vec!["namespace".into(), "service".into()],
            severity_map: BTreeMap::new(),
            default_severity: Severity::P3,
            service_labels: [
                "service",
                "app.kubernetes.io/name",
                "app",
                "deployment",
                "job",
            ]
            .map(String::from)
            .to_vec(),
            auto_resolve: true,
            auto_decide: true,
            webhook_token_env: None,
            max_webhook_bytes: 4 * 1024 * 1024,
        }
    }
}

/// The severity mapping every deployment starts from; `severity_map`
/// entries are added to it (and win).
pub const BUILTIN_SEVERITIES: [(&str, Severity); 3] = [
    ("critical", Severity::P1),
    ("warning", Severity::P3),
    ("info", Severity::P4),
];

impl IngestConfig {
    /// Refuses settings that cannot work, naming the `ingest.` setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        let label_ok = |l: &String| !l.trim().is_empty() && l.len() <= 128;
        anyhow::ensure!(
            !self.group_by.is_empty() && self.group_by.len() <= 16,
            "ingest.group_by must name 1 to 16 labels"
        );
        anyhow::ensure!(
            self.group_by.iter().all(label_ok),
            "ingest.group_by labels must be non-empty and at most 128 bytes"
        );
        anyhow::ensure!(
            self.service_labels.len() <= 16 && self.service_labels.iter().all(label_ok),
            "ingest.service_labels must be at most 16 non-empty labels of at most 128 bytes"
        );
        anyhow::ensure!(
            self.severity_map.len() <= 256
                && self
                    .severity_map
                    .keys()
                    .all(|k| !k.trim().is_empty() && k.len() <= 128),
            "ingest.severity_map keys must be non-empty and at most 128 bytes (at most 256 entries)"
        );
        anyhow::ensure!(
            (4096..=64 * 1024 * 1024).contains(&self.max_webhook_bytes),
            "ingest.max_webhook_bytes must be between 4 KiB and 64 MiB"
        );
        if let Some(name) = &self.webhook_token_env {
            anyhow::ensure!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "ingest.webhook_token_env must be an environment variable name ([A-Za-z0-9_])"
            );
        }
        Ok(())
    }

    /// The severity mapping in force: the built-in entries, then the
    /// configured ones; keys lower-cased.
    pub fn severities(&self) -> BTreeMap<String, Severity> {
        BUILTIN_SEVERITIES
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .chain(
                self.severity_map
                    .iter()
                    .map(|(k, v)| (k.trim().to_lowercase(), *v)),
            )
            .collect()
    }

    /// Reads the webhook bearer token from the environment variable named
    /// by `webhook_token_env`. A named variable that is unset or empty is
    /// an error: starting without the protection asked for would be worse
    /// than not starting.
    pub fn webhook_token(&self) -> anyhow::Result<Option<super::WebhookToken>> {
        let Some(name) = &self.webhook_token_env else {
            return Ok(None);
        };
        let value = std::env::var(name).map_err(|_| {
            anyhow::anyhow!(
                "ingest.webhook_token_env names {name}, which is not set (or not UTF-8)"
            )
        })?;
        super::WebhookToken::new(value).map(Some).ok_or_else(|| {
            anyhow::anyhow!("the webhook token in {name} is empty or not a valid header value")
        })
    }
}
