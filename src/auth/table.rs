//! The one table of what each route needs: every gRPC method (by its
//! HTTP/2 path, the same for gRPC-Web) and every plain HTTP route. The
//! edge consults it before a handler runs; a route missing from it needs
//! `admin` (deny by default), so a new RPC is closed until it is listed.

use crate::domain::Role;

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without credentials (health probes).
    Open,
    /// Any authenticated principal, whatever its roles (`WhoAmI`;
    /// reflection, unless configured open).
    Authenticated,
    /// A principal holding a role that grants this one.
    Role(Role),
    /// The Alertmanager webhook: its own bearer token, or a principal
    /// holding `operator`. The webhook checks its token itself.
    Webhook,
}

/// Each route and what it needs. A path ending in `/` covers a whole
/// service.
pub const TABLE: &[(&str, Access)] = &[
    // Kubernetes probes must work without credentials.
    ("/grpc.health.v1.Health/", Access::Open),
    (
        "/grpc.reflection.v1.ServerReflection/",
        Access::Authenticated,
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/",
        Access::Authenticated,
    ),
    // Incidents: reads → viewer, writes → operator.
    (
        "/verdict.v1.IncidentService/CreateIncident",
        Access::Role(Role::Operator),
    ),
    (
        "/verdict.v1.IncidentService/IngestSignals",
        Access::Role(Role::Operator),
    ),
    (
        "/verdict.v1.IncidentService/GetIncident",
        Access::Role(Role::Viewer),
    ),
    (
        "/verdict.v1.IncidentService/ListIncidents",
        Access::Role(Role::Viewer),
    ),
    (
        "/verdict.v1.IncidentService/UpdateIncidentStatus",
        Access::Role(Role::Operator),
    ),
    // Decisions: asking → operator, deciding → approver, reporting the
    // execution → executor, reading and watching → viewer.
    (
        "/verdict.v1.DecisionService/GetOrCreateDecision",
        Access::Role(Role::Operator),
    ),
    (
        "/verdict.v1.DecisionService/GetDecision",
        Access::Role(Role::Viewer),
    ),
    (
        "/verdict.v1.DecisionService/ListDecisions",
        Access::Role(Role::Viewer),
    ),
    (
        "/verdict.v1.DecisionService/ListCurrentDecisions",
        Access::Role(Role::Viewer),
    ),
    (
        "/verdict.v1.DecisionService/ApproveDecision",
        Access::Role(Role::Approver),
    ),
    (
        "/verdict.v1.DecisionService/RejectDecision",
        Access::Role(Role::Approver),
    ),
    (
        "/verdict.v1.DecisionService/CompleteDecision",
        Access::Role(Role::Executor),
    ),
    (
        "/verdict.v1.DecisionService/ClaimExecution",
        Access::Role(Role::Executor),
    ),
    (
        "/verdict.v1.DecisionService/WatchDecision",
        Access::Role(Role::Viewer),
    ),
    (
        "/verdict.v1.DecisionService/WatchDecisions",
        Access::Role(Role::Viewer),
    ),
    // Statistics are reads.
    ("/verdict.v1.StatsService/", Access::Role(Role::Viewer)),
    // The audit trail is read like any other record (each RPC named: a
    // new one is admin-only until it is listed here).
    (
        "/verdict.v1.AuditService/ListAuditEvents",
        Access::Role(Role::Viewer),
    ),
    (
        "/verdict.v1.AuditService/WatchAuditEvents",
        Access::Role(Role::Viewer),
    ),
    // Who am I: anyone who authenticated may ask what it may do (never
    // open: without credentials there is nobody to describe).
    ("/verdict.v1.IdentityService/WhoAmI", Access::Authenticated),
    // Plain HTTP.
    ("/api/v1/alertmanager", Access::Webhook),
    // Telegram's webhook proves itself with its own secret token, checked
    // by the route in constant time.
    ("/api/v1/telegram", Access::Open),
    // Slack's interactivity requests likewise: the route checks their v0
    // HMAC signature and age.
    ("/api/v1/slack/interactions", Access::Open),
    // The dashboard's static page and bundle: the login form must load
    // before a token exists; everything it then does is a gRPC-Web call
    // checked like any other.
    ("/", Access::Open),
    ("/assets/app.js", Access::Open),
    ("/assets/app.css", Access::Open),
];

/// The reflection services, which `reflection_open` opens to anyone.
const REFLECTION: &str = "/grpc.reflection.";

/// What `path` needs: its entry (an exact path before its service's), or
/// `admin` for anything unlisted. `reflection_open` opens reflection only:
/// every other `Authenticated` route (`WhoAmI`) keeps needing credentials.
pub fn required(path: &str, reflection_open: bool) -> Access {
    let exact = TABLE.iter().find(|(p, _)| *p == path);
    let service = || {
        TABLE
            .iter()
            // `/` is the dashboard's page, never a prefix of everything.
            .find(|(p, _)| p.len() > 1 && p.ends_with('/') && path.starts_with(p))
    };
    match exact.or_else(service).map(|(_, a)| *a) {
        Some(Access::Authenticated) if reflection_open && path.starts_with(REFLECTION) => {
            Access::Open
        }
        Some(a) => a,
        None => Access::Role(Role::Admin),
    }
}

/// Whether a call of `path` changes something: a route that needs more
/// than `viewer` (operator, approver, executor, admin) or the webhook. Its
/// refusals are audited. An unlisted path outside verdict's own services
/// (a scanner's `/wp-login.php`) needs `admin` but changes nothing and
/// answers 404 to anyone allowed, so its refusals are not audited — they
/// would only let anyone fill the trail.
pub fn mutating(path: &str) -> bool {
    let listed = TABLE.iter().any(|(p, _)| *p == path)
        || path.starts_with("/verdict.")
        || path.starts_with("/grpc.");
    match required(path, false) {
        Access::Role(Role::Viewer) | Access::Open | Access::Authenticated => false,
        Access::Role(_) => listed,
        Access::Webhook => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlisted_routes_need_admin_and_services_cover_their_methods() {
        assert_eq!(
            required("/verdict.v1.Secret/Do", false),
            Access::Role(Role::Admin)
        );
        assert_eq!(required("/", false), Access::Open);
        assert_eq!(required("/anything-else", false), Access::Role(Role::Admin));
        assert_eq!(
            required("/assets/other.js", false),
            Access::Role(Role::Admin)
        );
        assert_eq!(
            required("/verdict.v1.StatsService/GetResolutionStats", false),
            Access::Role(Role::Viewer)
        );
        assert_eq!(
            required("/grpc.health.v1.Health/Watch", false),
            Access::Open
        );
        let reflect = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        assert_eq!(required(reflect, false), Access::Authenticated);
        assert_eq!(required(reflect, true), Access::Open);
        let whoami = "/verdict.v1.IdentityService/WhoAmI";
        assert_eq!(required(whoami, false), Access::Authenticated);
        assert_eq!(
            required(whoami, true),
            Access::Authenticated,
            "opening reflection does not open WhoAmI"
        );
        assert!(!mutating(whoami));
    }

    #[test]
    fn mutating_routes_are_those_above_viewer() {
        assert!(mutating("/verdict.v1.DecisionService/ApproveDecision"));
        assert!(mutating("/verdict.v1.DecisionService/CompleteDecision"));
        assert!(mutating("/verdict.v1.IncidentService/CreateIncident"));
        assert!(mutating("/verdict.v1.Admin/Unlisted"));
        assert!(mutating("/api/v1/alertmanager"));
        assert!(!mutating("/verdict.v1.DecisionService/GetDecision"));
        assert!(!mutating("/verdict.v1.AuditService/ListAuditEvents"));
        assert!(!mutating("/grpc.health.v1.Health/Check"));
        assert!(!mutating("/wp-login.php"));
    }
}
