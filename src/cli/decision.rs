//! `verdict decide` and `verdict decision ...`: DecisionService from the
//! command line.

use super::output::{self, Fields};
use super::{GlobalArgs, RPC_TIMEOUT, default_actor, request};
use crate::client::Table;
use crate::proto as pb;
use crate::proto::decision_service_client::DecisionServiceClient;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;
use tonic::transport::Channel;

/// Extra time the client gives the server beyond the analysis timeout, so
/// the server (which answers at the timeout with the expert proposal) is
/// never cut off by our own deadline.
const WAIT_MARGIN: Duration = Duration::from_secs(5);

/// The longest analysis timeout the server accepts, as the wire contract
/// states it (`GetOrCreateDecisionRequest.timeout`: "at most 10 minutes"):
/// the CLI knows the server only through the proto, so it mirrors the cap
/// here rather than importing the manager's.
const MAX_ANALYSIS_TIMEOUT: Duration = Duration::from_secs(600);

/// Flags of `decide`.
#[derive(Debug, clap::Args)]
pub struct DecideArgs {
    /// The incident to decide (INC-…).
    incident_id: String,
    /// Return only once the token is READY (at the latest after --timeout,
    /// with the expert engine's proposal).
    #[arg(long)]
    wait: bool,
    /// Analysis deadline, e.g. 30s or 2m [server default: 30s, at most 10m].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Which engine decides: auto (consensus for P0/P1, dual otherwise),
    /// dual (LLM with expert fallback) or consensus [default: auto].
    #[arg(long, value_enum, ignore_case = true)]
    mode: Option<ModeArg>,
}

/// A decision mode as typed on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    Auto,
    Dual,
    Consensus,
}

impl From<ModeArg> for pb::DecisionMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Auto => pb::DecisionMode::Auto,
            ModeArg::Dual => pb::DecisionMode::Dual,
            ModeArg::Consensus => pb::DecisionMode::Consensus,
        }
    }
}

/// The `decision` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DecisionCommand {
    /// Show one decision token.
    Get {
        /// The token (DEC-…).
        token: String,
    },
    /// List an incident's decisions, newest first (history outlives tokens).
    List {
        /// The incident id (INC-…).
        incident_id: String,
    },
    /// Approve a READY decision: it becomes EXECUTING and the executor runs.
    Approve {
        /// The token (DEC-…).
        token: String,
        /// Who approves, for the record [default: $USER, else "cli"].
        #[arg(long)]
        actor: Option<String>,
        /// Approve only if the decision is still at this version (the one
        /// you looked at); otherwise FAILED_PRECONDITION.
        #[arg(long, value_name = "N")]
        expected_version: Option<u64>,
    },
    /// Reject a READY decision (terminal).
    Reject {
        /// The token (DEC-…).
        token: String,
        /// Who rejects, for the record [default: $USER, else "cli"].
        #[arg(long)]
        actor: Option<String>,
        /// Why (at most 2048 bytes).
        #[arg(long)]
        reason: Option<String>,
        /// Reject only if the decision is still at this version.
        #[arg(long, value_name = "N")]
        expected_version: Option<u64>,
    },
    /// Report how an approved (EXECUTING) decision ended, as an external
    /// executor: COMPLETED with --success, ERROR with --failure.
    #[command(group(clap::ArgGroup::new("outcome").required(true)))]
    Complete {
        /// The token (DEC-…).
        token: String,
        /// The command succeeded.
        #[arg(long, group = "outcome")]
        success: bool,
        /// The command failed.
        #[arg(long, group = "outcome")]
        failure: bool,
        /// The command's output (at most 64 KiB).
        #[arg(long, value_name = "TEXT")]
        output: Option<String>,
    },
}

/// Runs `decide`: GetOrCreateDecision, with a spinner while `--wait` waits.
pub(crate) async fn decide(
    channel: Channel,
    global: &GlobalArgs,
    args: DecideArgs,
) -> anyhow::Result<()> {
    let mut client = DecisionServiceClient::new(channel);
    let timeout = args
        .timeout
        .map(prost_types::Duration::try_from)
        .transpose()
        .context("--timeout is too large")?;
    // Without --wait the server answers at once; with it, no later than the
    // analysis timeout (its own default when none is given).
    let deadline = match (args.wait, args.timeout) {
        (false, _) => RPC_TIMEOUT,
        (true, Some(t)) => t.saturating_add(WAIT_MARGIN),
        (true, None) => MAX_ANALYSIS_TIMEOUT.saturating_add(WAIT_MARGIN),
    };
    let req = pb::GetOrCreateDecisionRequest {
        incident_id: args.incident_id.clone(),
        mode: args
            .mode
            .map_or(pb::DecisionMode::Unspecified, Into::into)
            .into(),
        wait: args.wait,
        timeout,
    };
    let spinner = (args.wait && !global.json && std::io::stderr().is_terminal())
        .then(|| spinner(&args.incident_id));
    let result = client.get_or_create_decision(request(req, deadline)).await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let resp = result?.into_inner();
    output::print(&resp, global.json, |r| {
        detail_with(r.decision.as_ref(), Some(r.created))
    })
}

/// A spinner on stderr while the server analyses.
fn spinner(incident_id: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        pb.set_style(style);
    }
    pb.set_message(format!("analysing {incident_id}"));
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

/// Runs one `decision` subcommand.
pub(crate) async fn run(
    channel: Channel,
    global: &GlobalArgs,
    cmd: DecisionCommand,
) -> anyhow::Result<()> {
    let mut client = DecisionServiceClient::new(channel);
    let json = global.json;
    match cmd {
        DecisionCommand::Get { token } => {
            let resp = client
                .get_decision(request(pb::GetDecisionRequest { token }, RPC_TIMEOUT))
                .await?
                .into_inner();
            output::print(&resp, json, |r| detail(r.decision.as_ref()))
        }
        DecisionCommand::List { incident_id } => {
            let req = pb::ListDecisionsRequest {
                incident_id: incident_id.clone(),
            };
            let resp = client
                .list_decisions(request(req, RPC_TIMEOUT))
                .await?
                .into_inner();
            output::print(&resp, json, |r| list(&incident_id, r))
        }
        DecisionCommand::Approve {
            token,
            actor,
            expected_version,
        } => {
            let req = pb::ApproveDecisionRequest {
                request_id: String::new(),
                token,
                actor: actor.unwrap_or_else(default_actor),
                expected_version: expected_version.unwrap_or_default(),
            };
            let resp = client
                .approve_decision(request(req, RPC_TIMEOUT))
                .await?
                .into_inner();
            output::print(&resp, json, |r| detail(r.decision.as_ref()))
        }
        DecisionCommand::Reject {
            token,
            actor,
            reason,
            expected_version,
        } => {
            let req = pb::RejectDecisionRequest {
                request_id: String::new(),
                token,
                actor: actor.unwrap_or_else(default_actor),
                reason: reason.unwrap_or_default(),
                expected_version: expected_version.unwrap_or_default(),
            };
            let resp = client
                .reject_decision(request(req, RPC_TIMEOUT))
                .await?
                .into_inner();
            output::print(&resp, json, |r| detail(r.decision.as_ref()))
        }
        DecisionCommand::Complete {
            token,
            success,
            // clap's required "outcome" group makes exactly one of the two
            // set, so `success` alone decides.
            failure: _,
            output: text,
        } => {
            let req = pb::CompleteDecisionRequest {
                lease_id: String::new(),
                request_id: String::new(),
                token,
                success,
                output: text.unwrap_or_default(),
            };
            let resp = client
                .complete_decision(request(req, RPC_TIMEOUT))
                .await?
                .into_inner();
            output::print(&resp, json, |r| detail(r.decision.as_ref()))
        }
    }
}

/// One decision, one field per line; absent fields are left out.
fn detail(decision: Option<&pb::Decision>) -> String {
    detail_with(decision, None)
}

/// [`detail`], with the token marked `(new)` or `(existing)` when the
/// answer says whether this call issued it.
fn detail_with(decision: Option<&pb::Decision>, created: Option<bool>) -> String {
    let Some(d) = decision else {
        return "(the server returned no decision)\n".to_owned();
    };
    let token = match created {
        None => d.token.clone(),
        Some(true) => format!("{} (new)", d.token),
        Some(false) => format!("{} (existing)", d.token),
    };
    let mut f = Fields::new();
    f.add("token", token)
        .add("state", output::decision_state(d.state))
        .add("incident", &d.incident_id)
        .add("version", d.version.to_string())
        .add("mode", output::decision_mode(d.mode));
    if let Some(p) = &d.proposal {
        f.add("proposal", &p.kubectl)
            .add("risk", output::risk(p.risk))
            .add("confidence", format!("{:.2}", p.confidence))
            .add("source", source(p))
            .add("latency", output::duration(p.analysis_latency.as_ref()));
        if p.agent_count > 0 {
            f.add(
                "consensus",
                format!(
                    "{:.2} agreement of {} agents (run {})",
                    p.consensus_score, p.agent_count, p.consensus_id
                ),
            );
        }
        let dissent: Vec<String> = p
            .dissenting_opinions
            .iter()
            .map(|o| format!("{}: {} ({})", o.agent, o.kubectl, o.reasoning))
            .collect();
        let refused: Vec<String> = p
            .refused_agents
            .iter()
            .map(|r| {
                let reason = output::fallback_reason(r.reason);
                format!("{}: {reason} ({})", r.agent, r.detail)
            })
            .collect();
        if let Some(c) = p.model_confidence {
            f.add(
                "model_claim",
                format!("confidence {c:.2} (the model's word)"),
            );
        }
        f.add("dissent", dissent.join("\n"))
            .add("refused", refused.join("\n"))
            .add("warning", text_warning(&p.text_warnings))
            .add("description", &p.description)
            .add("reasoning", &p.reasoning);
    }
    let decided = match (d.decided_by.as_str(), output::time(d.decided_at.as_ref())) {
        ("", _) => String::new(),
        (by, at) if at.is_empty() => by.to_owned(),
        (by, at) => format!("{by} at {at}"),
    };
    f.add("decided_by", decided)
        .add("reason", &d.reason)
        .add("error", &d.error)
        .add("output", &d.output)
        .add("created_at", output::time(d.created_at.as_ref()))
        .add("expires_at", output::time_relative(d.expires_at.as_ref()))
        .add("completed_at", output::time(d.completed_at.as_ref()));
    f.render()
}

/// The warning shown above model-written text that mentions a command, a
/// URL or hid characters: only `proposal` is what will run.
fn text_warning(warnings: &[i32]) -> String {
    if warnings.is_empty() {
        return String::new();
    }
    let names: Vec<String> = warnings
        .iter()
        .map(|w| {
            pb::TextWarning::try_from(*w)
                .map(|e| {
                    e.as_str_name()
                        .trim_start_matches("TEXT_WARNING_")
                        .to_owned()
                })
                .unwrap_or_else(|_| w.to_string())
        })
        .collect();
    format!(
        "the model's text below is not the proposal ({}); only `proposal` runs",
        names.join(", ")
    )
}

/// Where a proposal came from: `EXPERT (rule pod_crash; fallback
/// NOT_CONFIGURED)`, `LLM openai/gpt-4o (cached)`.
fn source(p: &pb::Proposal) -> String {
    let mut s = output::proposal_source(p.source);
    let model = [p.provider.as_str(), p.model.as_str()]
        .into_iter()
        .filter(|x| !x.is_empty())
        .collect::<Vec<_>>()
        .join("/");
    if !model.is_empty() {
        s.push(' ');
        s.push_str(&model);
    }
    let mut notes = Vec::new();
    if !p.matched_rule.is_empty() {
        notes.push(format!("rule {}", p.matched_rule));
    }
    if p.fallback_reason != pb::FallbackReason::Unspecified as i32 {
        notes.push(format!(
            "fallback {}",
            output::fallback_reason(p.fallback_reason)
        ));
    }
    if p.from_cache {
        notes.push("cached".to_owned());
    }
    if !notes.is_empty() {
        s.push_str(&format!(" ({})", notes.join("; ")));
    }
    s
}

/// An incident's decisions as a table.
fn list(incident_id: &str, resp: &pb::ListDecisionsResponse) -> String {
    if resp.decisions.is_empty() {
        return format!("no decisions for {incident_id}\n");
    }
    let mut t = Table::new(vec![
        "TOKEN", "STATE", "VERSION", "SOURCE", "RISK", "CREATED", "PROPOSAL",
    ]);
    for d in &resp.decisions {
        let (src, risk, kubectl) = match &d.proposal {
            Some(p) => (
                output::proposal_source(p.source),
                output::risk(p.risk),
                p.kubectl.clone(),
            ),
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        t.row(vec![
            d.token.clone(),
            output::decision_state(d.state),
            d.version.to_string(),
            src,
            risk,
            output::time(d.created_at.as_ref()),
            kubectl,
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests may look past the wire: the mirrored cap is the server's.
    #[test]
    fn the_wait_cap_mirrors_the_servers() {
        assert_eq!(MAX_ANALYSIS_TIMEOUT, crate::manager::decisions::MAX_TIMEOUT);
    }

    #[test]
    fn decision_detail_shows_the_proposal() {
        let d = pb::Decision {
            token: "DEC-0123456789AB".into(),
            incident_id: "INC-1".into(),
            state: pb::DecisionState::Ready as i32,
            version: 2,
            proposal: Some(pb::Proposal {
                source: pb::ProposalSource::Expert as i32,
                kubectl: "kubectl rollout restart deployment/checkout -n shop".into(),
                risk: pb::RiskLevel::Medium as i32,
                matched_rule: "pod_crash".into(),
                fallback_reason: pb::FallbackReason::NotConfigured as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = detail(Some(&d));
        assert!(text.contains("state       READY\n"), "{text}");
        assert!(text.contains("proposal    kubectl rollout restart deployment/checkout -n shop\n"));
        assert!(text.contains("source      EXPERT (rule pod_crash; fallback NOT_CONFIGURED)\n"));
        assert!(!text.contains("decided_by"));
    }

    #[test]
    fn model_text_with_a_command_is_shown_under_a_warning() {
        let d = pb::Decision {
            token: "DEC-0123456789AB".into(),
            state: pb::DecisionState::Ready as i32,
            proposal: Some(pb::Proposal {
                source: pb::ProposalSource::Llm as i32,
                kubectl: "kubectl rollout restart deployment/checkout -n shop".into(),
                description: "Restart, then run: kubectl delete ns shop".into(),
                text_warnings: vec![pb::TextWarning::MentionsCommand as i32],
                model_confidence: Some(1.0),
                refused_agents: vec![pb::RefusedAgent {
                    agent: "release".into(),
                    reason: pb::FallbackReason::Unsafe as i32,
                    detail: "verb \"delete\" is not allowed".into(),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = detail(Some(&d));
        assert!(
            text.contains("not the proposal (MENTIONS_COMMAND)"),
            "{text}"
        );
        assert!(text.contains("release: UNSAFE (verb"), "{text}");
        assert!(
            text.contains("confidence 1.00 (the model's word)"),
            "{text}"
        );
    }
}
