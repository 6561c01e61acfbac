//! The LLM client: an OpenAI-compatible `POST /v1/chat/completions` client
//! (OpenAI, vLLM, Ollama and llama.cpp all serve it) behind tower layers,
//! and [`LlmProposer`], which turns an incident into a vetted proposal.
//!
//! The stack, outer to inner (see [`crate::middleware`]):
//! circuit breaker → retry with budget → per-attempt timeout → concurrency
//! limit → HTTP. A dead LLM therefore costs a few failed calls, then
//! nothing until the breaker's cool-down ends.

pub mod fake;
pub mod http;
pub mod prompt;
pub mod wire;

use crate::domain::{Incident, Proposal, ProposalSource};
use crate::engine::EngineError;
use crate::engine::policy::Policy;
use crate::middleware::retry::RetrySettings;
use crate::middleware::{
    BreakerLayer, BreakerState, ConcurrencyLimitLayer, RetryLayer, TimeoutLayer,
};
use std::sync::Arc;
use std::time::Duration;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};

pub use http::HttpChat;

/// An API key. It is read from the environment variable named in the
/// config, sent only as a bearer token, and never printed: `Debug` shows
/// `[redacted]` and there is no `Display`.
#[derive(Clone)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    /// The key in `var`, or None when it is unset or empty (local servers
    /// such as Ollama need none).
    pub fn from_env(var: &str) -> Option<ApiKey> {
        std::env::var(var)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .map(|v| ApiKey(Arc::from(v)))
    }

    pub fn new(key: &str) -> ApiKey {
        ApiKey(Arc::from(key))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// One chat completion to ask for. Cheap to clone (retries clone it).
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub system: Arc<str>,
    pub user: Arc<str>,
    /// The JSON schema of the answer, for servers that take one.
    pub schema: Arc<serde_json::Value>,
}

/// The model's answer: the message content, not yet trusted.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatReply {
    pub content: String,
}

/// Settings of the LLM client.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// e.g. `https://api.openai.com/v1`; `/chat/completions` is appended.
    pub base_url: String,
    pub model: String,
    /// The label proposals carry (`openai`, `vllm`, ...).
    pub provider: String,
    pub api_key: Option<ApiKey>,
    pub temperature: f32,
    /// Per attempt.
    pub timeout: Duration,
    /// Calls in flight at most; more wait (within their timeout).
    pub max_concurrency: usize,
    pub retry: RetrySettings,
    /// Consecutive failed calls that open the circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit fails fast before it lets a probe through.
    pub breaker_cooldown: Duration,
}

/// The longest one attempt may take: no analysis a caller may ask for
/// lasts longer (the decision manager's `MAX_TIMEOUT`).
pub const MAX_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(600);

impl LlmSettings {
    /// Refuses settings that cannot work, naming the setting as a person
    /// writes it (`llm_temperature`). An empty `base_url` means no LLM is
    /// configured; the other knobs are still checked, so a bad value is
    /// found at start, not the day the LLM is turned on.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        if !self.base_url.is_empty() {
            http::chat_url(&self.base_url).map_err(|e| anyhow::anyhow!("llm_base_url: {e}"))?;
        }
        ensure!(!self.model.trim().is_empty(), "llm_model must not be empty");
        ensure!(
            self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature),
            "llm_temperature must be between 0 and 2"
        );
        ensure!(
            !self.timeout.is_zero() && self.timeout <= MAX_ATTEMPT_TIMEOUT,
            "llm_timeout must be positive and at most 10m"
        );
        ensure!(
            (1..=1024).contains(&self.max_concurrency),
            "llm_max_concurrency must be in 1..=1024"
        );
        ensure!(
            self.retry.max_retries <= 10,
            "llm_max_retries must be at most 10"
        );
        ensure!(
            self.retry.budget_ratio.is_finite() && (0.0..=10.0).contains(&self.retry.budget_ratio),
            "llm_retry_budget must be between 0 and 10"
        );
        ensure!(
            (1..=1000).contains(&self.breaker_threshold),
            "llm_breaker_threshold must be in 1..=1000"
        );
        ensure!(
            !self.breaker_cooldown.is_zero() && self.breaker_cooldown <= Duration::from_secs(3600),
            "llm_breaker_cooldown must be positive and at most 1h"
        );
        Ok(())
    }
}

/// The boxed layered service.
pub type ChatService = BoxCloneSyncService<ChatRequest, ChatReply, EngineError>;

/// The LLM client: the layered service plus what proposals need to say
/// about where they came from.
#[derive(Clone)]
pub struct LlmClient {
    service: ChatService,
    breaker: BreakerLayer,
    provider: String,
    model: String,
}

impl LlmClient {
    /// The client over HTTP.
    pub fn new(s: &LlmSettings) -> Result<Self, EngineError> {
        Ok(Self::with_transport(s, HttpChat::new(s)?))
    }

    /// The layers over any transport (a scripted one in tests).
    pub fn with_transport<T>(s: &LlmSettings, transport: T) -> Self
    where
        T: Service<ChatRequest, Response = ChatReply, Error = EngineError>
            + Clone
            + Send
            + Sync
            + 'static,
        T::Future: Send + 'static,
    {
        let breaker = BreakerLayer::new(s.breaker_threshold, s.breaker_cooldown);
        let service = ServiceBuilder::new()
            .layer(breaker.clone())
            .layer(RetryLayer::new(s.retry))
            .map_request(|r| {
                crate::metrics::llm_attempt();
                r
            })
            .layer(TimeoutLayer(s.timeout))
            .layer(ConcurrencyLimitLayer::new(s.max_concurrency))
            .service(transport);
        LlmClient {
            service: BoxCloneSyncService::new(service),
            breaker,
            provider: s.provider.clone(),
            model: s.model.clone(),
        }
    }

    /// One chat completion through every layer.
    pub async fn chat(&self, req: ChatRequest) -> Result<ChatReply, EngineError> {
        let started = std::time::Instant::now();
        let r = self.service.clone().oneshot(req).await;
        let outcome = r.as_ref().map_or_else(EngineError::kind, |_| "ok");
        crate::metrics::llm_request(outcome, started.elapsed(), self.circuit());
        r
    }

    /// The breaker's state as the metrics show it.
    fn circuit(&self) -> crate::metrics::Circuit {
        match self.breaker.state() {
            BreakerState::Closed { .. } => crate::metrics::Circuit::Closed,
            BreakerState::HalfOpen => crate::metrics::Circuit::HalfOpen,
            BreakerState::Open => crate::metrics::Circuit::Open,
        }
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    pub fn provider(&self) -> &str {
        &self.provider
    }

    pub fn model(&self) -> &str {
        &self.model
    }
}

/// Asks the LLM for a proposal and vets it with the safety policy: the only
/// way model output becomes a [`Proposal`].
#[derive(Clone)]
pub struct LlmProposer {
    client: LlmClient,
    policy: Policy,
}

impl LlmProposer {
    pub fn new(client: LlmClient, policy: Policy) -> Self {
        LlmProposer { client, policy }
    }

    /// A vetted LLM proposal, or why there is none. `persona` gives the
    /// model a point of view (consensus agents).
    pub async fn propose(
        &self,
        incident: &Incident,
        persona: Option<&str>,
    ) -> Result<Proposal, EngineError> {
        let req = prompt::build(
            incident,
            self.policy.bounds(),
            self.policy.kind_of(incident),
            persona,
        );
        let reply = self.client.chat(req).await?;
        let vetted = self.policy.vet(incident, &reply.content)?;
        Ok(vetted.into_proposal(
            ProposalSource::Llm,
            self.client.provider(),
            self.client.model(),
        ))
    }

    pub fn client(&self) -> &LlmClient {
        &self.client
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_key_never_prints() {
        let s = LlmSettings {
            base_url: "http://127.0.0.1:1/v1".into(),
            model: "m".into(),
            provider: "p".into(),
            api_key: Some(ApiKey::new("sk-very-secret")),
            temperature: 0.2,
            timeout: Duration::from_secs(1),
            max_concurrency: 1,
            retry: RetrySettings::default(),
            breaker_threshold: 1,
            breaker_cooldown: Duration::from_secs(1),
        };
        let shown = format!("{s:?} {:?}", HttpChat::new(&s).unwrap());
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }
}
