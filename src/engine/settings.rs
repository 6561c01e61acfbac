//! The engines' settings and their checks. The engines own this type;
//! `config` maps the server's settings onto it at startup (that is also
//! when the API key is read from its environment variable). Nothing here
//! knows where a value came from.

use super::consensus::ConsensusSettings;
use super::llm::LlmSettings;
use super::policy::{Policy, PolicyError};
use std::path::PathBuf;
use std::time::Duration;

/// The longest a proposal may be reused.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

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
    /// The safety policy file (TOML); None: the built-in policy. Read
    /// at startup and again on every reload (`Policy::reload_from`).
    pub policy_file: Option<PathBuf>,
    pub consensus: ConsensusSettings,
}

impl EngineSettings {
    /// Refuses settings that cannot work, naming each setting as a person
    /// writes it. Split by part: the LLM client's own checks, the
    /// consensus', then what the engines add (cache, replica bounds).
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(llm) = &self.llm {
            llm.validate()?;
        }
        anyhow::ensure!(
            self.cache_ttl <= MAX_CACHE_TTL,
            "llm_cache_ttl must be at most 7days"
        );
        self.consensus.validate()?;
        anyhow::ensure!(
            (1..=10_000).contains(&self.max_replicas),
            "max_replicas must be in 1..=10000"
        );
        anyhow::ensure!(
            self.min_replicas >= 1 && self.min_replicas <= self.max_replicas,
            "min_replicas must be at least 1 and at most max_replicas"
        );
        Ok(())
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
