//! The engines' settings, taken from the server [`Config`] once at startup
//! (that is also when the API key is read from its environment variable).

use super::consensus::ConsensusSettings;
use super::llm::{ApiKey, LlmSettings};
use super::policy::{Policy, PolicyError};
use crate::config::Config;
use crate::middleware::retry::RetrySettings;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the engines need to know.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// None: no LLM configured, the expert engine decides alone.
    pub llm: Option<LlmSettings>,
    /// How long a proposal is reused for the same incident signature
    /// (zero: no cache).
    pub cache_ttl: Duration,
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// The safety policy file (TOML); None: the built-in policy. Read once
    /// at startup (hot reload comes with the rest of the config's).
    pub policy_file: Option<PathBuf>,
    pub consensus: ConsensusSettings,
}

impl EngineSettings {
    pub fn from_config(c: &Config) -> Self {
        let llm = c.llm_base_url.as_ref().map(|base_url| LlmSettings {
            base_url: base_url.clone(),
            model: c.llm_model.clone(),
            provider: c
                .llm_provider
                .clone()
                .unwrap_or_else(|| provider_from_url(base_url)),
            api_key: ApiKey::from_env(&c.llm_api_key_env),
            temperature: c.llm_temperature,
            timeout: c.llm_timeout,
            max_concurrency: c.llm_max_concurrency,
            retry: RetrySettings {
                max_retries: c.llm_max_retries,
                budget_ratio: c.llm_retry_budget,
                ..RetrySettings::default()
            },
            breaker_threshold: c.llm_breaker_threshold,
            breaker_cooldown: c.llm_breaker_cooldown,
        });
        let personas = c
            .consensus_personas
            .iter()
            .take(c.consensus_agents)
            .cloned()
            .collect();
        EngineSettings {
            llm,
            cache_ttl: c.llm_cache_ttl,
            min_replicas: c.min_replicas,
            max_replicas: c.max_replicas,
            policy_file: c.policy_file.clone(),
            consensus: ConsensusSettings {
                personas,
                threshold: c.consensus_threshold,
                expert_weight: c.consensus_expert_weight,
            },
        }
    }

    /// The safety policy: the file's, or the built-in one, with the global
    /// replica bounds.
    pub fn policy(&self) -> Result<Policy, PolicyError> {
        match &self.policy_file {
            Some(path) => Policy::load(path, self.min_replicas, self.max_replicas),
            None => Ok(Policy::new(self.min_replicas, self.max_replicas)),
        }
    }
}

/// A provider label from the base URL's host: `api.openai.com` → `openai`,
/// otherwise the host itself (`127.0.0.1`, `vllm.internal`).
pub fn provider_from_url(base_url: &str) -> String {
    let host = reqwest::Url::parse(base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    if host == "api.openai.com" {
        "openai".into()
    } else if host.is_empty() {
        "llm".into()
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_named_after_the_host() {
        assert_eq!(provider_from_url("https://api.openai.com/v1"), "openai");
        assert_eq!(provider_from_url("http://127.0.0.1:11434/v1"), "127.0.0.1");
        assert_eq!(provider_from_url("nonsense"), "llm");
    }
}
