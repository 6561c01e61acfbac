//! The consensus engine (SPEC "Engines"; the seed's Phase 9.4) for P0/P1
//! incidents in mode AUTO and for mode CONSENSUS.
//!
//! K LLM personas and the expert engine answer in parallel under one
//! deadline. Answers are grouped by their structured command (already
//! normalized: two answers agree exactly when their commands are equal);
//! the group with the most weight wins, ties going to the lower risk, then
//! to the expert's group, then to the alphabetically first command, so the
//! outcome never depends on arrival order. The score is the winning weight
//! over the weight of *every* agent asked: an agent that failed or ran out
//! of time is counted, not waited for, and lowers the score. A score below
//! the threshold raises the risk one step. Every agent that did not vote —
//! its answer refused by the safety policy, a failure, no answer in time —
//! is listed with the reason, so the approver sees that two of three agents
//! wanted something unsafe. If no LLM agent answered, the expert proposal
//! stands with the agents' most common failure reason.
//!
//! `analyze` runs four named steps: ask the agents, sort their answers into
//! ballots and refusals, [`tally`] (pure), and build the proposal.

use super::EngineError;
use super::before_llm;
use super::cache::ProposalCache;
use super::expert::ExpertEngine;
use super::llm::LlmProposer;
use crate::domain::RiskLevel;
use crate::domain::proposal::{ConsensusInfo, Dissent, Refusal};
use crate::domain::{
    DisplayText, FallbackReason, Incident, Proposal, ProposalSource, RemediationCommand,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Cache scope of consensus answers.
pub const SCOPE: &str = "consensus";
/// The agent name the expert engine votes under.
pub const EXPERT_AGENT: &str = "expert";
/// Time kept back before the deadline to tally the votes and return.
const TALLY_MARGIN: Duration = Duration::from_millis(5);
/// Characters kept of a refusal's message.
const MAX_REFUSAL: usize = 300;

/// One LLM agent: a point of view given to the model, and its vote weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    pub name: String,
    #[serde(default = "one")]
    pub weight: f64,
    pub instructions: String,
}

fn one() -> f64 {
    1.0
}

/// The three default personas.
pub fn default_personas() -> Vec<Persona> {
    let p = |name: &str, instructions: &str| Persona {
        name: name.into(),
        weight: 1.0,
        instructions: instructions.into(),
    };
    vec![
        p(
            "sre",
            "You are a pragmatic site reliability engineer: restore service quickly with the least disruptive remediation that addresses the alerts.",
        ),
        p(
            "release",
            "You focus on recent changes: when the alerts suggest a bad release (errors or crashes starting suddenly), prefer rolling back; otherwise follow the symptoms.",
        ),
        p(
            "capacity",
            "You focus on load and resources: when the alerts suggest saturation (latency, CPU, memory), prefer scaling out within the allowed bounds; otherwise follow the symptoms.",
        ),
    ]
}

/// Settings of the consensus engine.
#[derive(Debug, Clone)]
pub struct ConsensusSettings {
    pub personas: Vec<Persona>,
    /// A score below this raises the risk one step.
    pub threshold: f64,
    /// The expert engine's vote weight.
    pub expert_weight: f64,
}

impl Default for ConsensusSettings {
    fn default() -> Self {
        ConsensusSettings {
            personas: default_personas(),
            threshold: 0.6,
            expert_weight: 1.0,
        }
    }
}

impl ConsensusSettings {
    /// Most personas that may vote (plus the expert).
    pub const MAX_AGENTS: usize = 9;

    /// Refuses settings that cannot work, naming the setting as a person
    /// writes it (`consensus_threshold`).
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        ensure!(
            (1..=Self::MAX_AGENTS).contains(&self.personas.len()),
            "consensus_agents must be in 1..=9"
        );
        validate_personas(&self.personas)?;
        ensure!(
            self.threshold.is_finite() && (0.0..=1.0).contains(&self.threshold),
            "consensus_threshold must be between 0 and 1"
        );
        ensure!(
            self.expert_weight.is_finite() && (0.0..=100.0).contains(&self.expert_weight),
            "consensus_expert_weight must be between 0 and 100"
        );
        Ok(())
    }
}

/// Refuses personas that cannot vote: empty or long names, duplicates,
/// weights outside (0, 100], instructions over 2000 bytes (they go into
/// every prompt).
pub fn validate_personas(personas: &[Persona]) -> anyhow::Result<()> {
    use anyhow::ensure;
    let mut names = std::collections::HashSet::new();
    for p in personas {
        ensure!(
            !p.name.trim().is_empty() && p.name.len() <= 64,
            "consensus_personas: names must be 1 to 64 characters"
        );
        ensure!(
            names.insert(p.name.as_str()),
            "consensus_personas: {:?} appears twice",
            p.name
        );
        ensure!(
            p.weight.is_finite() && p.weight > 0.0 && p.weight <= 100.0,
            "consensus_personas: {:?} needs a weight in (0, 100]",
            p.name
        );
        ensure!(
            p.instructions.len() <= 2000,
            "consensus_personas: {:?} instructions must be at most 2000 bytes",
            p.name
        );
    }
    Ok(())
}

/// One agent's valid answer.
#[derive(Debug, Clone)]
pub struct Ballot {
    pub agent: String,
    pub weight: f64,
    pub proposal: Proposal,
    pub is_expert: bool,
}

/// The outcome of a vote.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    /// The ballot whose text explains the winning command: the expert's if
    /// it agreed, else the most confident agreeing agent's.
    pub representative: usize,
    pub command: RemediationCommand,
    /// Agreeing weight over total weight.
    pub score: f64,
    /// The highest risk any agreeing agent saw, raised one step when the
    /// score is below the threshold.
    pub risk: RiskLevel,
    pub expert_agrees: bool,
    pub dissent: Vec<Dissent>,
}

struct Group {
    command: RemediationCommand,
    weight: f64,
    members: Vec<usize>,
    risk: RiskLevel,
    has_expert: bool,
    rendered: String,
}

/// Votes. `total_weight` is the weight of every agent asked, answered or
/// not. None only for an empty ballot box.
pub fn tally(ballots: &[Ballot], total_weight: f64, threshold: f64) -> Option<Tally> {
    let mut groups: Vec<Group> = Vec::new();
    for (i, b) in ballots.iter().enumerate() {
        let c = &b.proposal.command;
        match groups.iter_mut().find(|g| &g.command == c) {
            Some(g) => {
                g.weight += b.weight;
                g.members.push(i);
                g.risk = g.risk.max(b.proposal.risk);
                g.has_expert |= b.is_expert;
            }
            None => groups.push(Group {
                command: c.clone(),
                weight: b.weight,
                members: vec![i],
                risk: b.proposal.risk,
                has_expert: b.is_expert,
                rendered: c.render(),
            }),
        }
    }
    // Best first: most weight, then lower risk, then the expert's group,
    // then the alphabetically first command.
    groups.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then(a.risk.cmp(&b.risk))
            .then(b.has_expert.cmp(&a.has_expert))
            .then(a.rendered.cmp(&b.rendered))
    });
    let winner = groups.first()?;
    let score = if total_weight > 0.0 {
        (winner.weight / total_weight).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let representative = winner
        .members
        .iter()
        .copied()
        .find(|i| ballots[*i].is_expert)
        .or_else(|| {
            // The most confident by the model's own claim (only whose words
            // explain the command depends on it); the first on a tie.
            let claim = |i: usize| {
                let p = &ballots[i].proposal;
                p.model_confidence.unwrap_or(p.confidence)
            };
            winner.members.iter().copied().reduce(
                |best, i| {
                    if claim(i) > claim(best) { i } else { best }
                },
            )
        })?;
    let risk = if score < threshold {
        winner.risk.raised()
    } else {
        winner.risk
    };
    let dissent = ballots
        .iter()
        .enumerate()
        .filter(|(i, _)| !winner.members.contains(i))
        .map(|(_, b)| Dissent {
            agent: b.agent.clone(),
            kubectl: b.proposal.command.render(),
            reasoning: b.proposal.reasoning.clone(),
            text_warnings: b.proposal.text_warnings.clone(),
        })
        .collect();
    Some(Tally {
        representative,
        command: winner.command.clone(),
        score,
        risk,
        expert_agrees: winner.has_expert,
        dissent,
    })
}

pub struct ConsensusEngine {
    expert: Arc<ExpertEngine>,
    llm: Option<LlmProposer>,
    cache: Option<ProposalCache>,
    settings: ConsensusSettings,
}

/// What one agent came back with by the cutoff: None when it did not.
type Answer = Option<Result<Proposal, EngineError>>;

/// The agents' answers sorted: votes, and the agents that cast none.
struct Votes {
    ballots: Vec<Ballot>,
    refused: Vec<Refusal>,
}

impl ConsensusEngine {
    pub fn new(
        expert: Arc<ExpertEngine>,
        llm: Option<LlmProposer>,
        cache: Option<ProposalCache>,
        settings: ConsensusSettings,
    ) -> Self {
        ConsensusEngine {
            expert,
            llm,
            cache,
            settings,
        }
    }

    /// The voted proposal for `incident`, ready by `deadline`.
    pub async fn analyze(&self, incident: &Incident, deadline: Instant) -> Proposal {
        let (mut expert, llm) = match before_llm(
            &self.expert,
            self.llm.as_ref(),
            self.cache.as_ref(),
            incident,
            SCOPE,
        )
        .await
        {
            ControlFlow::Break(answer) => return answer,
            ControlFlow::Continue(next) => next,
        };
        let answers = self.ask_agents(llm, incident, deadline).await;
        let votes = self.sort_answers(incident, &expert, answers);
        if votes.ballots.len() == 1 {
            let reasons: Vec<_> = votes.refused.iter().map(|r| r.reason).collect();
            expert.fallback_reason = Some(most_common(&reasons));
            return expert;
        }
        let total = self.settings.expert_weight
            + self.settings.personas.iter().map(|p| p.weight).sum::<f64>();
        let Some(t) = tally(&votes.ballots, total, self.settings.threshold) else {
            return expert;
        };
        let refused = votes.refused.len();
        let proposal = self.voted_proposal(llm, &expert, t, votes);
        tracing::info!(incident = %incident.id, command = %proposal.command.render(), score = proposal.confidence, refused, "consensus reached");
        // Only a full vote is worth replaying: a partial one would freeze a
        // moment when some agents were down.
        if refused == 0
            && let Some(cache) = &self.cache
        {
            cache.put(incident, SCOPE, &proposal);
        }
        proposal
    }

    /// Asks every persona at once; what has come back by the cutoff (the
    /// deadline less the tally margin), by persona index. Agents still
    /// thinking then are dropped (their requests cancelled).
    async fn ask_agents(
        &self,
        llm: &LlmProposer,
        incident: &Incident,
        deadline: Instant,
    ) -> Vec<Answer> {
        let personas = &self.settings.personas;
        let mut answers: Vec<Answer> = personas.iter().map(|_| None).collect();
        let mut calls: FuturesUnordered<_> = personas
            .iter()
            .enumerate()
            .map(|(i, p)| async move { (i, llm.propose(incident, Some(&p.instructions)).await) })
            .collect();
        let cutoff = deadline.checked_sub(TALLY_MARGIN).unwrap_or(deadline);
        let collect = async {
            while let Some((i, r)) = calls.next().await {
                if let Some(slot) = answers.get_mut(i) {
                    *slot = Some(r);
                }
            }
        };
        let _ = tokio::time::timeout_at(cutoff, collect).await;
        drop(calls);
        answers
    }

    /// The expert's ballot and each persona's valid answer; every other
    /// persona is listed with why it did not vote (the policy refused its
    /// answer, it failed, or it ran out of time).
    fn sort_answers(&self, incident: &Incident, expert: &Proposal, answers: Vec<Answer>) -> Votes {
        let mut ballots = vec![Ballot {
            agent: EXPERT_AGENT.into(),
            weight: self.settings.expert_weight,
            proposal: expert.clone(),
            is_expert: true,
        }];
        let mut refused = Vec::new();
        for (p, answer) in self.settings.personas.iter().zip(answers) {
            match answer {
                Some(Ok(proposal)) => ballots.push(Ballot {
                    agent: p.name.clone(),
                    weight: p.weight,
                    proposal,
                    is_expert: false,
                }),
                Some(Err(e)) => {
                    tracing::warn!(incident = %incident.id, agent = %p.name, error = %e, "consensus agent gave no usable answer");
                    refused.push(Refusal {
                        agent: p.name.clone(),
                        reason: e.fallback_reason(),
                        detail: DisplayText::untrusted(&e.to_string(), MAX_REFUSAL).text,
                    });
                }
                None => {
                    tracing::warn!(incident = %incident.id, agent = %p.name, "consensus agent did not answer by the deadline");
                    refused.push(Refusal {
                        agent: p.name.clone(),
                        reason: FallbackReason::Timeout,
                        detail: "did not answer by the deadline".into(),
                    });
                }
            }
        }
        Votes { ballots, refused }
    }

    /// The consensus proposal: the winning command, explained by its
    /// representative's text, with verdict's confidence (the score) and the
    /// vote's dissent and refusals.
    fn voted_proposal(
        &self,
        llm: &LlmProposer,
        expert: &Proposal,
        t: Tally,
        votes: Votes,
    ) -> Proposal {
        let rep = &votes.ballots[t.representative].proposal;
        Proposal {
            provider: llm.client().provider().to_owned(),
            model: llm.client().model().to_owned(),
            description: rep.description.clone(),
            reasoning: rep.reasoning.clone(),
            matched_rule: if t.expert_agrees {
                expert.matched_rule.clone()
            } else {
                String::new()
            },
            text_warnings: rep.text_warnings.clone(),
            policy_hash: llm.policy().hash().to_owned(),
            consensus: Some(ConsensusInfo {
                id: format!(
                    "CON-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..12].to_ascii_uppercase()
                ),
                score: t.score,
                agent_count: u32::try_from(self.settings.personas.len() + 1).unwrap_or(u32::MAX),
                dissenting: t.dissent,
                refused: votes.refused,
            }),
            ..Proposal::new(
                ProposalSource::Consensus,
                t.command.clone(),
                t.risk,
                t.score,
            )
        }
    }
}

/// The most frequent reason; on a tie the one seen first.
fn most_common(reasons: &[FallbackReason]) -> FallbackReason {
    let mut best = (FallbackReason::Error, 0);
    for r in reasons {
        let n = reasons.iter().filter(|x| *x == r).count();
        if n > best.1 {
            best = (*r, n);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CommandVerb;

    fn ballot(
        agent: &str,
        verb: CommandVerb,
        replicas: Option<u32>,
        risk: RiskLevel,
        confidence: f64,
    ) -> Ballot {
        let base = crate::domain::proposal::fixture::proposal();
        Ballot {
            agent: agent.into(),
            weight: 1.0,
            is_expert: agent == EXPERT_AGENT,
            proposal: Proposal {
                source: ProposalSource::Llm,
                command: RemediationCommand {
                    verb,
                    replicas,
                    ..base.command
                },
                description: format!("{agent} says"),
                reasoning: format!("because {agent}"),
                risk,
                confidence,
                ..base
            },
        }
    }

    use CommandVerb::*;
    use RiskLevel::*;

    #[test]
    fn plurality_wins_and_dissent_is_listed() {
        let b = vec![
            ballot("expert", RolloutRestart, None, Medium, 0.75),
            ballot("sre", RolloutRestart, None, Low, 0.8),
            ballot("release", RolloutUndo, None, Critical, 0.9),
            ballot("capacity", RolloutRestart, None, Medium, 0.6),
        ];
        let t = tally(&b, 4.0, 0.6).unwrap();
        assert_eq!(t.command.verb, RolloutRestart);
        assert_eq!(t.score, 0.75);
        assert_eq!(t.risk, Medium, "highest agreeing risk, not raised");
        assert_eq!(t.representative, 0, "the expert explains when it agrees");
        assert_eq!(t.dissent.len(), 1);
        assert_eq!(t.dissent[0].agent, "release");
        assert_eq!(t.dissent[0].reasoning, "because release");
        assert!(t.dissent[0].kubectl.contains("rollout undo"));
    }

    #[test]
    fn a_low_score_raises_the_risk_and_failed_agents_count() {
        // Two agents answered the same, two of five failed: 2/5 < 0.6.
        let b = vec![
            ballot("expert", Scale, Some(3), Low, 0.75),
            ballot("sre", Scale, Some(3), Low, 0.8),
            ballot("capacity", Scale, Some(4), Low, 0.8),
        ];
        let t = tally(&b, 5.0, 0.6).unwrap();
        assert_eq!(t.command.replicas, Some(3));
        assert_eq!(t.score, 0.4);
        assert_eq!(t.risk, Medium);
    }

    #[test]
    fn ties_go_to_lower_risk_then_the_expert_then_the_first_command() {
        let b = vec![
            ballot("expert", RolloutUndo, None, Critical, 0.75),
            ballot("sre", RolloutRestart, None, Medium, 0.5),
        ];
        let t = tally(&b, 2.0, 0.6).unwrap();
        assert_eq!(t.command.verb, RolloutRestart, "lower risk wins a tie");
        assert_eq!(t.risk, High, "0.5 < 0.6 raises Medium");
        assert_eq!(t.representative, 1);

        let b = vec![
            ballot("sre", RolloutUndo, None, Medium, 0.5),
            ballot("expert", RolloutRestart, None, Medium, 0.75),
        ];
        assert_eq!(tally(&b, 2.0, 0.5).unwrap().command.verb, RolloutRestart);

        let b = vec![
            ballot("sre", Scale, Some(3), Medium, 0.5),
            ballot("capacity", RolloutRestart, None, Medium, 0.9),
        ];
        let t1 = tally(&b, 2.0, 0.5).unwrap();
        let reversed: Vec<_> = b.iter().rev().cloned().collect();
        let t2 = tally(&reversed, 2.0, 0.5).unwrap();
        assert_eq!(t1.command, t2.command, "arrival order never matters");
        assert_eq!(
            t1.command.verb, RolloutRestart,
            "`rollout` sorts before `scale`"
        );
    }

    #[test]
    fn the_most_confident_agreeing_agent_explains_without_the_expert() {
        let b = vec![
            ballot("expert", Scale, Some(2), Low, 0.75),
            ballot("sre", RolloutUndo, None, High, 0.6),
            ballot("release", RolloutUndo, None, High, 0.95),
        ];
        let t = tally(&b, 3.0, 0.6).unwrap();
        assert_eq!(t.representative, 2);
        assert!(!t.expert_agrees);
        assert!((t.score - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(t.dissent[0].agent, "expert");
    }

    #[test]
    fn the_most_common_failure_is_reported() {
        use FallbackReason as F;
        assert_eq!(most_common(&[F::Timeout, F::Unsafe, F::Unsafe]), F::Unsafe);
        assert_eq!(most_common(&[F::Invalid, F::Timeout]), F::Invalid);
        assert_eq!(most_common(&[]), F::Error);
    }
}
