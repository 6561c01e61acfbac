//! `verdict audit list|tail|verify`: the audit trail from the command line.
//!
//! `list` pages through `ListAuditEvents`; with `--json` it prints each
//! event exactly as sealed, one JSON object per line (ready for a SIEM, and
//! verifiable). `tail` follows `WatchAuditEvents` the same way, and after a
//! dropped connection or a server restart reconnects and resumes after the
//! last event it printed, so nothing is missed or printed twice. `verify` reads the same pages and checks every chain with
//! the key from the environment, here, not on the server: a verifier that
//! holds the key need not trust the server that serves the events. (A
//! deletion of a chain's very last event leaves no gap to see from here;
//! the server-side check against the chain heads finds it.)

use super::{GlobalArgs, RPC_TIMEOUT, request};
use crate::audit::{Event, Signer, Verifier};
use crate::proto as pb;
use crate::proto::audit_service_client::AuditServiceClient;
use std::time::Duration;
use tonic::transport::Channel;

/// The `audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Events, oldest first: who did what, when, from which version.
    ///
    /// Example: verdict audit list --decision DEC-… --action approved
    List(ListArgs),
    /// Follows events as they are appended (runs until interrupted, or
    /// until --limit events), reconnecting and resuming after a dropped
    /// connection or a server restart.
    ///
    /// Example: verdict audit tail --action refused --json
    Tail(TailArgs),
    /// Checks every chain (or one incident's) with the audit key; exits
    /// non-zero at the first event of a chain that does not match.
    Verify(VerifyArgs),
}

/// Which events `list` prints.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Only this incident's events.
    #[arg(long, value_name = "INC-…")]
    incident: Option<String>,
    /// Only this decision's events. (`--decision`, not `--token`: that is
    /// the bearer token every subcommand takes, also from VERDICT_TOKEN,
    /// which would silently become this filter.)
    #[arg(long = "decision", id = "decision", value_name = "DEC-…")]
    token: Option<String>,
    /// Only this principal's events.
    #[arg(long, value_name = "SUBJECT")]
    subject: Option<String>,
    /// Only this action (incident_created, status_changed, decision_issued,
    /// proposal_ready, approved, rejected, execution_completed, refused, …).
    #[arg(long, value_name = "ACTION")]
    action: Option<String>,
    /// Only this outcome (OK, FAILED_PRECONDITION, PERMISSION_DENIED, …).
    #[arg(long, value_name = "OUTCOME")]
    outcome: Option<String>,
    /// Only events of the last DURATION (24h, 7d, …).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// At most this many events [default: all].
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

/// Which events `tail` prints, from where.
#[derive(Debug, Clone, clap::Args)]
pub struct TailArgs {
    /// The filters; --since replays the kept events of the last DURATION
    /// first, --limit stops after N events.
    #[command(flatten)]
    filter: ListArgs,
    /// Resume after this position (an event's `position`, as printed by
    /// `--json`) instead of starting with the next event appended.
    #[arg(long, value_name = "POSITION", conflicts_with = "since")]
    after: Option<String>,
}

/// Longest pause between reconnection attempts of `tail`.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What `verify` checks, with which key.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Only this incident's chain.
    #[arg(long, value_name = "INC-…")]
    incident: Option<String>,
    /// The environment variable holding the audit key (as the server's
    /// `audit_key_env`); unset or empty: the public development key.
    #[arg(long, value_name = "VAR", default_value = "VERDICT_AUDIT_KEY")]
    key_env: String,
}

/// Events asked for per page.
const PAGE: u32 = 500;

/// Runs one `audit` subcommand.
pub(crate) async fn run(
    channel: Channel,
    global: &GlobalArgs,
    cmd: AuditCommand,
) -> anyhow::Result<()> {
    let mut client = AuditServiceClient::new(channel);
    match cmd {
        AuditCommand::List(args) => {
            let mut left = args.limit.unwrap_or(usize::MAX);
            let filter = filter_of(&args);
            each_page(&mut client, filter, |e| {
                if left == 0 {
                    return false;
                }
                left -= 1;
                if global.json {
                    println!("{}", e.json);
                } else {
                    println!("{}", line(e));
                }
                true
            })
            .await
        }
        AuditCommand::Tail(args) => tail(client, global, args).await,
        AuditCommand::Verify(args) => verify(&mut client, global, args).await,
    }
}

/// `tail`: follows the stream, and after a transient failure reconnects
/// with backoff and resumes after the last event seen (the position the
/// server names when it shuts down is the same one).
async fn tail(
    mut client: AuditServiceClient<Channel>,
    global: &GlobalArgs,
    args: TailArgs,
) -> anyhow::Result<()> {
    let mut filter = filter_of(&args.filter);
    let mut after = args.after.clone().unwrap_or_default();
    let mut left = args.filter.limit.unwrap_or(usize::MAX);
    let mut backoff = Duration::from_millis(200);
    while left > 0 {
        let req = pb::WatchAuditEventsRequest {
            filter: Some(filter.clone()),
            after: after.clone(),
        };
        let outcome = follow(
            &mut client,
            req,
            global.json,
            &mut after,
            &mut left,
            &mut backoff,
        )
        .await;
        // Once any event was seen, the position (not `--since`) says where
        // to resume.
        if !after.is_empty() {
            filter.from = None;
        }
        let status = match outcome {
            Ok(()) => return Ok(()),
            Err(status) if transient(&status) => status,
            Err(status) => return Err(status.into()),
        };
        eprintln!(
            "audit tail interrupted ({}); reconnecting in {}",
            crate::client::escape::escape(status.message(), crate::client::escape::Style::Line),
            humantime::format_duration(backoff)
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        // A fresh channel: the old one may point at a connection that died.
        match crate::client::connect(&global.target()).await {
            Ok(channel) => client = AuditServiceClient::new(channel),
            Err(e) => eprintln!("audit tail cannot reconnect yet: {e}"),
        }
    }
    Ok(())
}

/// One stream of `tail`, until `left` events were printed (Ok), the server
/// ends it cleanly (Ok) or it fails (the status). `after` follows every
/// event printed.
async fn follow(
    client: &mut AuditServiceClient<Channel>,
    req: pb::WatchAuditEventsRequest,
    json: bool,
    after: &mut String,
    left: &mut usize,
    backoff: &mut Duration,
) -> Result<(), tonic::Status> {
    let mut stream = client.watch_audit_events(req).await?.into_inner();
    *backoff = Duration::from_millis(200);
    while *left > 0 {
        let Some(msg) = stream.message().await? else {
            return Ok(());
        };
        let Some(e) = msg.event else { continue };
        let text = if json { e.json.clone() } else { line(&e) };
        emit(&text, json).map_err(|err| tonic::Status::cancelled(format!("stdout: {err}")))?;
        *after = e.position;
        *left -= 1;
    }
    Ok(())
}

/// Whether a failed stream is worth resuming.
fn transient(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Internal | Code::ResourceExhausted
    )
}

/// Writes one event and flushes it (a tail is read as it happens); a
/// closed pipe is an error, so `verdict audit tail | head` ends.
/// Control characters in events (details come from outside) are escaped.
fn emit(text: &str, json: bool) -> std::io::Result<()> {
    use crate::client::escape::{Style, escape};
    use std::io::Write;
    let style = if json { Style::Json } else { Style::Line };
    let mut out = std::io::stdout().lock();
    out.write_all(escape(text, style).as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

fn filter_of(a: &ListArgs) -> pb::AuditFilter {
    let from = a.since.map(|d| {
        let t = std::time::SystemTime::now()
            .checked_sub(d)
            .unwrap_or(std::time::UNIX_EPOCH);
        let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        prost_types::Timestamp {
            seconds: since.as_secs() as i64,
            nanos: since.subsec_nanos() as i32,
        }
    });
    pb::AuditFilter {
        from,
        to: None,
        subject: a.subject.clone().unwrap_or_default(),
        incident_id: a.incident.clone().unwrap_or_default(),
        token: a.token.clone().unwrap_or_default(),
        action: a.action.clone().unwrap_or_default(),
        outcome: a.outcome.clone().unwrap_or_default(),
    }
}

/// Pages through the events matching `filter`, handing each to `f` until
/// it returns false or the trail ends.
async fn each_page(
    client: &mut AuditServiceClient<Channel>,
    filter: pb::AuditFilter,
    mut f: impl FnMut(&pb::AuditEvent) -> bool,
) -> anyhow::Result<()> {
    let mut token = String::new();
    loop {
        let req = pb::ListAuditEventsRequest {
            filter: Some(filter.clone()),
            page_size: PAGE,
            page_token: token,
        };
        let page = client
            .list_audit_events(request(req, RPC_TIMEOUT))
            .await?
            .into_inner();
        for e in &page.events {
            if !f(e) {
                return Ok(());
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        token = page.next_page_token;
    }
}

/// One event as a line of text.
fn line(e: &pb::AuditEvent) -> String {
    let time = e
        .time
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    let who = match e.actor.as_str() {
        "" => e.subject.clone(),
        actor => format!("{} (actor {actor})", e.subject),
    };
    let version = match (e.version_before, e.version_after) {
        (0, 0) => String::new(),
        (0, a) => format!(" v{a}"),
        (b, 0) => format!(" at v{b}"),
        (b, a) => format!(" v{b}→v{a}"),
    };
    format!(
        "{time} {chain}#{seq} {action} {outcome} by {who} via {rpc}{token}{version}: {detail}{cut}",
        chain = e.chain,
        seq = e.seq,
        action = e.action,
        outcome = e.outcome,
        rpc = if e.rpc.is_empty() { "verdict" } else { &e.rpc },
        token = if e.token.is_empty() {
            String::new()
        } else {
            format!(" {}", e.token)
        },
        detail = e.detail,
        cut = if e.detail_cut { " [cut]" } else { "" },
    )
}

async fn verify(
    client: &mut AuditServiceClient<Channel>,
    global: &GlobalArgs,
    args: VerifyArgs,
) -> anyhow::Result<()> {
    let key = std::env::var(&args.key_env).unwrap_or_default();
    let signer = if key.is_empty() {
        Signer::new(crate::audit::DEVELOPMENT_KEY)
    } else {
        Signer::new(key.as_bytes())
    };
    let mut v = Verifier::new(signer);
    let mut unreadable = None;
    let filter = pb::AuditFilter {
        incident_id: args.incident.unwrap_or_default(),
        ..Default::default()
    };
    each_page(client, filter, |e| {
        match serde_json::from_str::<Event>(&e.json) {
            Ok(event) => {
                v.push(&event);
                true
            }
            Err(err) => {
                unreadable = Some(format!("event {} does not parse: {err}", e.position));
                false
            }
        }
    })
    .await?;
    if let Some(u) = unreadable {
        anyhow::bail!(u);
    }
    let report = v.finish();
    if global.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for (chain, seq) in &report.trimmed {
            println!("{chain}: kept from event {seq} (older events trimmed by retention)");
        }
        for b in &report.breaks {
            println!("{}: BROKEN at event {}: {}", b.chain, b.seq, b.reason);
        }
        if report.is_whole() {
            println!(
                "{} events in {} chains: every chain is whole",
                report.events, report.chains
            );
        }
    }
    if !report.is_whole() {
        anyhow::bail!("{} chain(s) broken", report.breaks.len());
    }
    Ok(())
}
