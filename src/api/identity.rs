//! `verdict.v1.IdentityService`: who the caller is and what it may do.
//!
//! The permissions are not a second copy of the rules: every verdict RPC
//! (read from the compiled descriptors, so a new one is listed without
//! touching this file) is looked up in the authorization table
//! (`auth::table`) the edge admits or refuses calls with, and judged
//! against the caller's roles the way the edge judges them. A dashboard
//! that disables "Approve" for a viewer therefore disables exactly what
//! the server would refuse.

use crate::auth::table::{self, Access};
use crate::domain::{AuthMethod, Principal, Role};
use crate::proto as pb;
use crate::proto::identity_service_server::IdentityService;
use prost::Message;
use std::sync::LazyLock;
use tonic::{Request, Response, Status};

/// The protobuf package whose RPCs are described.
const PACKAGE: &str = "verdict.v1";

/// Every verdict RPC as `package.Service/Method`, in descriptor order.
/// Read once from the descriptor set `build.rs` compiled into the binary
/// (it always decodes; were it ever not to, the list would be empty and
/// clients would show every action as unavailable, never as allowed).
static METHODS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let Ok(set) = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET) else {
        tracing::error!("the compiled descriptor set does not decode: WhoAmI lists no RPC");
        return Vec::new();
    };
    set.file
        .iter()
        .filter(|f| f.package() == PACKAGE)
        .flat_map(|f| f.service.iter())
        .flat_map(|s| {
            s.method
                .iter()
                .map(move |m| format!("{PACKAGE}.{}/{}", s.name(), m.name()))
        })
        .collect()
});

/// Answers `WhoAmI` from the principal the edge attached.
#[derive(Debug, Default)]
pub struct IdentityApi;

impl IdentityApi {
    pub fn new() -> Self {
        IdentityApi
    }
}

#[tonic::async_trait]
impl IdentityService for IdentityApi {
    async fn who_am_i(
        &self,
        req: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        Ok(Response::new(describe(&Principal::of(req.extensions()))))
    }
}

/// The answer for `principal`.
pub fn describe(principal: &Principal) -> pb::WhoAmIResponse {
    pb::WhoAmIResponse {
        subject: principal.subject.clone(),
        auth_method: method_to(principal.method) as i32,
        roles: principal.roles.iter().map(|r| role_to(*r) as i32).collect(),
        permissions: METHODS.iter().map(|m| permission(principal, m)).collect(),
    }
}

/// Whether `principal` may call `method` and what it needs, by the table.
fn permission(principal: &Principal, method: &str) -> pb::Permission {
    // Reflection's switch is irrelevant here: it opens reflection only.
    let (allowed, needed) = match table::required(&format!("/{method}"), false) {
        Access::Open | Access::Authenticated => (true, pb::Role::Unspecified),
        Access::Role(r) => (principal.may(r), role_to(r)),
        // Only plain HTTP routes take the webhook's access; should an RPC
        // ever, it needs an operator principal (or the webhook's token).
        Access::Webhook => (principal.may(Role::Operator), pb::Role::Operator),
    };
    pb::Permission {
        method: method.to_owned(),
        allowed,
        needed_role: needed as i32,
    }
}

fn role_to(r: Role) -> pb::Role {
    match r {
        Role::Viewer => pb::Role::Viewer,
        Role::Operator => pb::Role::Operator,
        Role::Approver => pb::Role::Approver,
        Role::Admin => pb::Role::Admin,
        Role::Executor => pb::Role::Executor,
    }
}

fn method_to(m: AuthMethod) -> pb::AuthMethod {
    match m {
        AuthMethod::Anonymous => pb::AuthMethod::Anonymous,
        AuthMethod::StaticToken => pb::AuthMethod::StaticToken,
        AuthMethod::Jwt => pb::AuthMethod::Jwt,
        AuthMethod::Mtls => pb::AuthMethod::Mtls,
        AuthMethod::Chat => pb::AuthMethod::Chat,
        AuthMethod::System => pb::AuthMethod::System,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &[Role]) -> Principal {
        Principal {
            subject: "vera".into(),
            method: AuthMethod::StaticToken,
            roles: roles.iter().copied().collect(),
        }
    }

    fn allowed(p: &pb::WhoAmIResponse, method: &str) -> Option<(bool, pb::Role)> {
        p.permissions
            .iter()
            .find(|x| x.method == method)
            .map(|x| (x.allowed, x.needed_role()))
    }

    #[test]
    fn every_verdict_rpc_is_listed_once() {
        assert!(METHODS.len() >= 20, "{:?}", *METHODS);
        assert!(METHODS.contains(&"verdict.v1.DecisionService/ApproveDecision".to_owned()));
        assert!(METHODS.contains(&"verdict.v1.IdentityService/WhoAmI".to_owned()));
        let mut unique = METHODS.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), METHODS.len());
    }

    #[test]
    fn a_viewer_may_read_but_not_approve_and_is_told_the_role() {
        let w = describe(&principal(&[Role::Viewer]));
        assert_eq!(w.roles, vec![pb::Role::Viewer as i32]);
        assert_eq!(
            allowed(&w, "verdict.v1.DecisionService/ApproveDecision"),
            Some((false, pb::Role::Approver))
        );
        assert_eq!(
            allowed(&w, "verdict.v1.DecisionService/GetDecision"),
            Some((true, pb::Role::Viewer))
        );
        assert_eq!(
            allowed(&w, "verdict.v1.IdentityService/WhoAmI"),
            Some((true, pb::Role::Unspecified))
        );
    }

    #[test]
    fn executor_and_approver_stand_apart_and_admin_may_everything() {
        let e = describe(&principal(&[Role::Executor]));
        assert_eq!(
            allowed(&e, "verdict.v1.DecisionService/CompleteDecision"),
            Some((true, pb::Role::Executor))
        );
        assert_eq!(
            allowed(&e, "verdict.v1.DecisionService/GetDecision"),
            Some((false, pb::Role::Viewer))
        );
        let a = describe(&principal(&[Role::Approver]));
        assert_eq!(
            allowed(&a, "verdict.v1.DecisionService/CompleteDecision"),
            Some((false, pb::Role::Executor))
        );
        let admin = describe(&Principal::anonymous());
        assert_eq!(admin.auth_method(), pb::AuthMethod::Anonymous);
        assert!(admin.permissions.iter().all(|p| p.allowed));
    }
}
