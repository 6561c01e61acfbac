//! `verdict watch`: follows one decision (or all of them) as it changes,
//! one line per change, reconnecting and resuming after a dropped
//! connection or a server restart.

use super::GlobalArgs;
use super::output::{self, ProtoMessage};
use crate::client::connect;
use crate::proto as pb;
use crate::proto::decision_service_client::DecisionServiceClient;
use std::io::Write;
use std::time::Duration;
use tonic::Code;

/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The token to follow (DEC-…). The command ends when the decision
    /// reaches a terminal state or expires.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub token: Option<String>,
    /// Follow every decision change instead (runs until interrupted).
    #[arg(long)]
    pub all: bool,
    /// With --all: only this incident's decisions.
    #[arg(long, requires = "all", value_name = "INC-ID")]
    pub incident: Option<String>,
    /// Start after this version instead of with the current snapshot.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub after_version: u64,
}

/// Whether a failed stream is worth resuming.
fn transient(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Cancelled
            | Code::Internal
            | Code::ResourceExhausted
    )
}

fn line(d: &pb::Decision) -> String {
    let p = d.proposal.as_ref();
    let mut parts = vec![
        output::time(d.updated_at.as_ref()),
        d.token.clone(),
        format!("v{}", d.version),
        output::decision_state(d.state),
        d.incident_id.clone(),
    ];
    if !d.decided_by.is_empty() {
        parts.push(format!("by {}", d.decided_by));
    }
    if let Some(p) = p {
        parts.push(p.kubectl.clone());
    }
    parts.join("  ") + "\n"
}

/// Writes one update, escaped; unlike `output::write_stdout` a closed pipe
/// is an error here, so `verdict watch | head` ends the watch.
fn emit(text: &str) -> anyhow::Result<()> {
    use crate::client::escape::{Style, escape};
    let text = escape(text, Style::Terminal);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn render<M: ProtoMessage>(msg: &M, d: &pb::Decision, json: bool) -> anyhow::Result<String> {
    if json {
        output::json_line(msg)
    } else {
        Ok(line(d))
    }
}

/// Runs `verdict watch`.
pub(crate) async fn run(global: &GlobalArgs, args: WatchArgs) -> anyhow::Result<()> {
    let mut after = args.after_version;
    let mut backoff = Duration::from_millis(200);
    let mut connected_once = false;
    loop {
        let outcome = match connect(&global.target()).await {
            // Never reached the server at all: a wrong address, not a blip.
            Err(e) if !connected_once => return Err(e),
            Err(e) => Err(e),
            Ok(channel) => {
                connected_once = true;
                let mut client = DecisionServiceClient::new(channel);
                if args.all {
                    follow_all(&mut client, &args, global.json, &mut backoff).await
                } else {
                    follow_one(&mut client, &args, global.json, &mut after, &mut backoff).await
                }
            }
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) => {
                let resumable = match e.downcast_ref::<tonic::Status>() {
                    Some(status) => transient(status),
                    // Could not connect: the server may be restarting.
                    None => true,
                };
                if !resumable {
                    return Err(e);
                }
                let why = e.to_string();
                eprintln!(
                    "watch interrupted ({}); reconnecting in {}",
                    crate::client::escape::escape(&why, crate::client::escape::Style::Line),
                    humantime::format_duration(backoff)
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn follow_one(
    client: &mut DecisionServiceClient<tonic::transport::Channel>,
    args: &WatchArgs,
    json: bool,
    after: &mut u64,
    backoff: &mut Duration,
) -> anyhow::Result<()> {
    let token = args.token.clone().unwrap_or_default();
    let stream = client
        .watch_decision(super::stream_request(pb::WatchDecisionRequest {
            token,
            after_version: *after,
        }))
        .await?
        .into_inner();
    print_stream(stream, |m| m.decision.as_ref(), json, backoff, Some(after)).await
}

async fn follow_all(
    client: &mut DecisionServiceClient<tonic::transport::Channel>,
    args: &WatchArgs,
    json: bool,
    backoff: &mut Duration,
) -> anyhow::Result<()> {
    let stream = client
        .watch_decisions(super::stream_request(pb::WatchDecisionsRequest {
            incident_id: args.incident.clone().unwrap_or_default(),
            ..Default::default()
        }))
        .await?
        .into_inner();
    print_stream(stream, |m| m.decision.as_ref(), json, backoff, None).await
}

/// Prints each decision `stream` carries until it ends. A message resets
/// `backoff` (the connection is healthy again) and, when given, moves
/// `after` to the newest version seen so a reconnection resumes there.
async fn print_stream<M: ProtoMessage>(
    mut stream: tonic::Streaming<M>,
    decision_of: impl Fn(&M) -> Option<&pb::Decision>,
    json: bool,
    backoff: &mut Duration,
    mut after: Option<&mut u64>,
) -> anyhow::Result<()> {
    while let Some(msg) = stream.message().await? {
        *backoff = Duration::from_millis(200);
        if let Some(d) = decision_of(&msg) {
            if let Some(after) = after.as_deref_mut() {
                *after = d.version.max(*after);
            }
            emit(&render(&msg, d, json)?)?;
        }
    }
    Ok(())
}
