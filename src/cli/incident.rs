//! `verdict incident ...`: IncidentService from the command line.

use super::output::{self, Fields};
use super::{GlobalArgs, RPC_TIMEOUT, default_actor, request};
use crate::client::Table;
use crate::proto as pb;
use crate::proto::incident_service_client::IncidentServiceClient;
use tonic::transport::Channel;

/// Longest title shown in `incident list` (the full title is in `get`).
const LIST_TITLE_WIDTH: usize = 48;

/// The `incident` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum IncidentCommand {
    /// Open an incident by hand (alerts normally arrive via Alertmanager).
    ///
    /// Example: verdict incident create --title "Checkout pods crashing"
    /// --severity P2 --service checkout --namespace shop --alert PodCrashLooping
    Create(CreateArgs),
    /// Show one incident.
    Get {
        /// The incident id (INC-…).
        id: String,
    },
    /// List incidents, newest first.
    List(ListArgs),
    /// Mark an incident RESOLVED (sets resolved_at).
    Resolve {
        /// The incident id (INC-…).
        id: String,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Set an incident's status.
    Status {
        /// The incident id (INC-…).
        id: String,
        /// The new status.
        #[arg(value_enum, ignore_case = true)]
        status: StatusArg,
        #[command(flatten)]
        change: ChangeArgs,
    },
}

/// Flags of `incident create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Short human-readable title (at most 256 bytes).
    #[arg(long)]
    title: String,
    /// How urgent: P0 (total outage) … P4 (informational). P0 and P1 get a
    /// consensus decision.
    #[arg(long, value_enum, ignore_case = true)]
    severity: SeverityArg,
    /// An affected Kubernetes deployment (RFC 1123 label); repeat for
    /// several. The first is the default remediation target.
    #[arg(long = "service", value_name = "SERVICE")]
    services: Vec<String>,
    /// Kubernetes namespace of the services [server default: the first
    /// alert's namespace label, else `default`].
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// The name of a firing alert behind the incident (e.g. PodCrashLooping);
    /// repeat for several. The expert engine matches its rules on these.
    #[arg(long = "alert", value_name = "NAME")]
    alerts: Vec<String>,
    /// Choose the id instead of letting the server generate INC-…
    /// (1 to 64 characters of [A-Za-z0-9._:-]).
    #[arg(long)]
    id: Option<String>,
    /// Idempotency key: repeating the command with the same key returns the
    /// incident the first call created (within 24 h).
    #[arg(long, value_name = "RID")]
    request_id: Option<String>,
}

/// Flags of `incident list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only incidents with this status.
    #[arg(long, value_enum, ignore_case = true)]
    status: Option<StatusArg>,
    /// Only incidents with this severity.
    #[arg(long, value_enum, ignore_case = true)]
    severity: Option<SeverityArg>,
    /// Only incidents affecting this service.
    #[arg(long)]
    service: Option<String>,
    /// At most this many incidents [server default: 50, at most 500].
    #[arg(long, value_name = "N")]
    page_size: Option<i32>,
    /// Continue after a previous page (its "next page" token).
    #[arg(long, value_name = "TOKEN")]
    page_token: Option<String>,
}

/// Who changes a status, and why.
#[derive(Debug, clap::Args)]
pub struct ChangeArgs {
    /// Who makes the change, for the record [default: $USER, else "cli"].
    #[arg(long)]
    actor: Option<String>,
    /// Why (at most 2048 bytes).
    #[arg(long)]
    note: Option<String>,
}

/// A severity as typed on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SeverityArg {
    #[value(name = "P0")]
    P0,
    #[value(name = "P1")]
    P1,
    #[value(name = "P2")]
    P2,
    #[value(name = "P3")]
    P3,
    #[value(name = "P4")]
    P4,
}

impl From<SeverityArg> for pb::Severity {
    fn from(s: SeverityArg) -> Self {
        match s {
            SeverityArg::P0 => pb::Severity::P0,
            SeverityArg::P1 => pb::Severity::P1,
            SeverityArg::P2 => pb::Severity::P2,
            SeverityArg::P3 => pb::Severity::P3,
            SeverityArg::P4 => pb::Severity::P4,
        }
    }
}

/// An incident status as typed on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StatusArg {
    Open,
    Investigating,
    Resolved,
    Closed,
}

impl From<StatusArg> for pb::IncidentStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Open => pb::IncidentStatus::Open,
            StatusArg::Investigating => pb::IncidentStatus::Investigating,
            StatusArg::Resolved => pb::IncidentStatus::Resolved,
            StatusArg::Closed => pb::IncidentStatus::Closed,
        }
    }
}

/// Runs one `incident` subcommand.
pub(crate) async fn run(
    channel: Channel,
    global: &GlobalArgs,
    cmd: IncidentCommand,
) -> anyhow::Result<()> {
    let mut client = IncidentServiceClient::new(channel);
    let json = global.json;
    match cmd {
        IncidentCommand::Create(args) => {
            let resp = client
                .create_incident(request(create_request(args), RPC_TIMEOUT))
                .await?
                .into_inner();
            output::print(&resp, json, |r| detail(r.incident.as_ref()))
        }
        IncidentCommand::Get { id } => {
            let resp = client
                .get_incident(request(pb::GetIncidentRequest { id }, RPC_TIMEOUT))
                .await?
                .into_inner();
            output::print(&resp, json, |r| detail(r.incident.as_ref()))
        }
        IncidentCommand::List(args) => {
            let req = pb::ListIncidentsRequest {
                status: args
                    .status
                    .map_or(pb::IncidentStatus::Unspecified, Into::into)
                    .into(),
                severity: args
                    .severity
                    .map_or(pb::Severity::Unspecified, Into::into)
                    .into(),
                service: args.service.unwrap_or_default(),
                page_size: args.page_size.unwrap_or_default(),
                page_token: args.page_token.unwrap_or_default(),
            };
            let resp = client
                .list_incidents(request(req, RPC_TIMEOUT))
                .await?
                .into_inner();
            output::print(&resp, json, list)
        }
        IncidentCommand::Resolve { id, change } => {
            let resp = update_status(&mut client, id, StatusArg::Resolved, change).await?;
            output::print(&resp, json, |r| detail(r.incident.as_ref()))
        }
        IncidentCommand::Status { id, status, change } => {
            let resp = update_status(&mut client, id, status, change).await?;
            output::print(&resp, json, |r| detail(r.incident.as_ref()))
        }
    }
}

fn create_request(args: CreateArgs) -> pb::CreateIncidentRequest {
    let signals = args
        .alerts
        .into_iter()
        .map(|alert_name| pb::Signal {
            alert_name,
            status: pb::SignalStatus::Firing.into(),
            ..Default::default()
        })
        .collect();
    pb::CreateIncidentRequest {
        incident: Some(pb::Incident {
            id: args.id.unwrap_or_default(),
            title: args.title,
            severity: pb::Severity::from(args.severity).into(),
            signals,
            affected_services: args.services,
            namespace: args.namespace.unwrap_or_default(),
            ..Default::default()
        }),
        request_id: args.request_id.unwrap_or_default(),
    }
}

async fn update_status(
    client: &mut IncidentServiceClient<Channel>,
    id: String,
    status: StatusArg,
    change: ChangeArgs,
) -> anyhow::Result<pb::UpdateIncidentStatusResponse> {
    let req = pb::UpdateIncidentStatusRequest {
        request_id: String::new(),
        id,
        status: pb::IncidentStatus::from(status).into(),
        actor: change.actor.unwrap_or_else(default_actor),
        note: change.note.unwrap_or_default(),
    };
    Ok(client
        .update_incident_status(request(req, RPC_TIMEOUT))
        .await?
        .into_inner())
}

/// One incident, one field per line.
fn detail(incident: Option<&pb::Incident>) -> String {
    let Some(i) = incident else {
        return "(the server returned no incident)\n".to_owned();
    };
    let mut f = Fields::new();
    f.add("id", &i.id)
        .add("title", &i.title)
        .add("severity", output::severity(i.severity))
        .add("status", output::incident_status(i.status))
        .add("namespace", &i.namespace)
        .add("services", i.affected_services.join(", "))
        .add("version", i.version.to_string())
        .add("created_at", output::time(i.created_at.as_ref()))
        .add("updated_at", output::time(i.updated_at.as_ref()))
        .add("resolved_at", output::time(i.resolved_at.as_ref()))
        .add("status_actor", &i.status_actor)
        .add("status_note", &i.status_note);
    let signals: Vec<String> = i
        .signals
        .iter()
        .map(|s| {
            let since = output::time(s.starts_at.as_ref());
            let mut line = format!("{} ({})", s.alert_name, output::signal_status(s.status));
            if !since.is_empty() {
                line.push_str(&format!(" since {since}"));
            }
            line
        })
        .collect();
    f.add("signals", signals.join("\n"));
    f.render()
}

/// A page of incidents as a table, then the next page's token if any.
fn list(resp: &pb::ListIncidentsResponse) -> String {
    let mut out = if resp.incidents.is_empty() {
        "no incidents\n".to_owned()
    } else {
        let mut t = Table::new(vec![
            "ID", "SEVERITY", "STATUS", "CREATED", "TITLE", "SERVICES",
        ]);
        for i in &resp.incidents {
            t.row(vec![
                i.id.clone(),
                output::severity(i.severity),
                output::incident_status(i.status),
                output::time(i.created_at.as_ref()),
                output::truncate(&i.title, LIST_TITLE_WIDTH),
                i.affected_services.join(","),
            ]);
        }
        t.render()
    };
    if !resp.next_page_token.is_empty() {
        out.push_str(&format!(
            "\nnext page: --page-token {}\n",
            resp.next_page_token
        ));
    }
    out
}
