//! The `kubernetes` executor: the Kubernetes API through kube-rs, the same
//! requests `kubectl` sends, never a shell.
//!
//! - **restart** = a strategic-merge patch of the pod template's
//!   `kubectl.kubernetes.io/restartedAt` annotation, refused for a paused
//!   Deployment — what `kubectl rollout restart` does (kube-rs's own
//!   `restart()` writes another annotation and cannot dry-run). The value is
//!   the approval time ([`Run::stamp`]), not "now": a replica that takes
//!   over an execution whose owner died sends the identical patch, which
//!   changes nothing if the first one landed. So a restart is never
//!   repeated blindly.
//! - **scale** = a merge patch of the `scale` subresource (what `kubectl
//!   scale` sends); idempotent by nature.
//! - **rollout undo** (Deployments) = kubectl's algorithm ported in
//!   [`super::rollback`]: list the ReplicaSets, pick the previous revision,
//!   "skipped" when its template already matches, else a JSON patch of the
//!   template and annotations; refused for a paused Deployment. The target
//!   is chosen by the dry run and carried in [`Run::rollback_to`], so a
//!   second run skips instead of going back one revision further. A
//!   StatefulSet's undo (ControllerRevisions) is not ported.
//!
//! [`Executor::check`] sends the same requests with `dryRun=All`: the API
//! server runs admission and RBAC and persists nothing.

use super::rollback;
use super::{ExecError, Executor, ExecutorSettings, Outcome, Rollout, Run};
use crate::domain::proposal::WorkloadKind;
use crate::domain::{CommandVerb, Observed, RemediationCommand, RollbackTarget};
use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::future::Future;

/// The annotation `kubectl rollout restart` writes on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// Who verdict's writes are recorded as (`managedFields`).
const FIELD_MANAGER: &str = "verdict";
/// ReplicaSets asked for per page when listing a Deployment's history.
const RS_PAGE: u32 = 500;
/// ReplicaSets read at most for one rollback (`revisionHistoryLimit` is 10
/// by default; a selector matching more than this is refused, not paged
/// through without end).
const RS_MAX: usize = 5_000;

/// Runs commands through the Kubernetes API.
pub struct KubernetesExecutor {
    client: kube::Client,
    /// Kept to build an impersonating client per approved command.
    config: kube::Config,
    settings: ExecutorSettings,
}

impl KubernetesExecutor {
    /// Connects with `settings.kubeconfig`, or in-cluster / `$KUBECONFIG`
    /// when unset. Nothing is requested until a command runs.
    pub async fn connect(settings: ExecutorSettings) -> anyhow::Result<Self> {
        let config = match &settings.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path)?;
                kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
            }
            None => kube::Config::infer().await?,
        };
        let client = kube::Client::try_from(config.clone())?;
        Ok(KubernetesExecutor {
            client,
            config,
            settings,
        })
    }

    /// The client a command's writes go through: with `impersonate`, one
    /// that sends `Impersonate-User: <the approver>` so the cluster's RBAC
    /// also decides what that person may change (verdict's account then
    /// needs the `impersonate` verb); else verdict's own. The dry run at
    /// READY has no approver yet and checks as verdict's own account.
    fn client_for(&self, run: &Run) -> Result<kube::Client, ExecError> {
        match (&run.approver, self.settings.impersonate) {
            (Some(subject), true) => {
                let mut config = self.config.clone();
                config.auth_info.impersonate = Some(subject.clone());
                kube::Client::try_from(config)
                    .map_err(|e| ExecError::Cluster(format!("impersonating {subject:?}: {e}")))
            }
            _ => Ok(self.client.clone()),
        }
    }

    /// Runs one request under the configured timeout, mapping kube's errors.
    async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ExecError> {
        match tokio::time::timeout(self.settings.timeout, fut).await {
            Ok(r) => r.map_err(|e| map_error(what, e)),
            Err(_) => Err(ExecError::Cluster(format!(
                "{what}: no answer within {}",
                humantime::format_duration(self.settings.timeout)
            ))),
        }
    }

    async fn run(
        &self,
        command: &RemediationCommand,
        run: &Run,
        dry_run: bool,
    ) -> Result<Outcome, ExecError> {
        let ns = command.namespace.as_str();
        if !self.settings.allows(ns) {
            return Err(ExecError::NamespaceNotAllowed(ns.to_owned()));
        }
        let target = target(command);
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            dry_run,
            ..PatchParams::default()
        };
        let client = self.client_for(run)?;
        let done = match command.verb {
            CommandVerb::RolloutRestart => {
                self.restart(&client, command, run, &pp, &target).await?;
                "restarted"
            }
            CommandVerb::Scale => {
                let replicas = command.replicas.unwrap_or(1);
                let patch = Patch::Merge(serde_json::json!({ "spec": { "replicas": replicas } }));
                let name = command.name.as_str();
                match command.kind {
                    WorkloadKind::Deployment => {
                        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
                        self.call(&target, api.patch_scale(name, &pp, &patch))
                            .await?;
                    }
                    WorkloadKind::StatefulSet => {
                        let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
                        self.call(&target, api.patch_scale(name, &pp, &patch))
                            .await?;
                    }
                }
                "scaled"
            }
            CommandVerb::RolloutUndo => {
                return self.rollback(&client, command, run, &pp, &target).await;
            }
        };
        // The dry run records what it checked, to compare before running.
        let observed = if dry_run {
            Some(self.read_observed(command, &target).await?)
        } else {
            None
        };
        let summary = if dry_run {
            format!("would succeed: {target} {done} (server dry run)")
        } else {
            format!("{target} {done}")
        };
        Ok(Outcome { summary, observed })
    }

    /// The target object's `resourceVersion` and `generation` (one GET).
    async fn read_observed(
        &self,
        command: &RemediationCommand,
        target: &str,
    ) -> Result<Observed, ExecError> {
        let ns = command.namespace.as_str();
        let name = command.name.as_str();
        let meta = match command.kind {
            WorkloadKind::Deployment => {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                self.call(target, api.get(name)).await?.metadata
            }
            WorkloadKind::StatefulSet => {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
                self.call(target, api.get(name)).await?.metadata
            }
        };
        Ok(observed_of(&meta, None))
    }

    /// `kubectl rollout undo` of a Deployment ([`super::rollback`]), to
    /// `run.rollback_to` when the check chose it, else to kubectl's
    /// previous revision.
    async fn rollback(
        &self,
        client: &kube::Client,
        command: &RemediationCommand,
        run: &Run,
        pp: &PatchParams,
        target: &str,
    ) -> Result<Outcome, ExecError> {
        if command.kind != WorkloadKind::Deployment {
            return Err(ExecError::Unsupported(
                "rollout undo of a statefulset (kubectl restores a ControllerRevision; not ported)"
                    .into(),
            ));
        }
        let ns = command.namespace.as_str();
        let name = command.name.as_str();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let deployment = self.call(target, deployments.get(name)).await?;
        let all = rollback::all_replica_sets(
            &deployment,
            self.replica_sets(client, &deployment, ns, target).await?,
        );
        let chosen = match &run.rollback_to {
            Some(t) => all
                .iter()
                .find(|rs| rs.metadata.name.as_deref() == Some(t.replica_set.as_str()))
                .ok_or_else(|| {
                    ExecError::NotFound(format!(
                        "replicaset {} (revision {}), the rollback's approved target,",
                        t.replica_set, t.revision
                    ))
                })?,
            None => rollback::previous_revision(&all).ok_or_else(|| {
                ExecError::Refused(format!("no rollout history found for deployment {name:?}"))
            })?,
        };
        let revision = rollback::revision(chosen).unwrap_or(0);
        let observed = observed_of(
            &deployment.metadata,
            Some(RollbackTarget {
                replica_set: chosen.metadata.name.clone().unwrap_or_default(),
                revision,
            }),
        );
        if deployment.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            // kubectl: "you cannot rollback a paused deployment; resume it
            // first with 'kubectl rollout resume' and try again".
            return Err(ExecError::Refused(format!(
                "{target} is paused (resume the rollout first)"
            )));
        }
        let current = deployment
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let restored = chosen
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .unwrap_or_default();
        let skipped = rollback::equal_ignore_hash(&restored, &current);
        if !skipped {
            let patch: json_patch::Patch =
                serde_json::from_value(rollback::rollback_patch(&deployment, chosen))
                    .map_err(|e| ExecError::Cluster(format!("{target}: {e}")))?;
            self.call(
                target,
                deployments.patch(name, pp, &Patch::<()>::Json(patch)),
            )
            .await?;
        }
        let done = if skipped {
            format!("skipped rollback (current template already matches revision {revision})")
        } else {
            format!("rolled back to revision {revision}")
        };
        let summary = if pp.dry_run {
            format!("would succeed: {target} {done} (server dry run)")
        } else {
            format!("{target} {done}")
        };
        Ok(Outcome {
            summary,
            observed: Some(observed),
        })
    }

    /// The ReplicaSets matching the Deployment's selector, all pages (at
    /// most [`RS_MAX`]); [`rollback::all_replica_sets`] keeps the owned ones.
    async fn replica_sets(
        &self,
        client: &kube::Client,
        deployment: &Deployment,
        ns: &str,
        target: &str,
    ) -> Result<Vec<ReplicaSet>, ExecError> {
        let selector = deployment
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        let selector = kube::core::Selector::try_from(selector)
            .map_err(|e| ExecError::Refused(format!("{target}: its selector: {e}")))?;
        let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
        let mut lp = ListParams::default().labels_from(&selector).limit(RS_PAGE);
        let mut out = Vec::new();
        loop {
            let page = self
                .call(&format!("replicasets of {target}"), api.list(&lp))
                .await?;
            out.extend(page.items);
            match page.metadata.continue_ {
                Some(c) if !c.is_empty() => {
                    if out.len() >= RS_MAX {
                        return Err(ExecError::Refused(format!(
                            "{target}: its selector matches more than {RS_MAX} replicasets"
                        )));
                    }
                    lp = lp.continue_token(&c);
                }
                _ => return Ok(out),
            }
        }
    }

    /// `kubectl rollout restart`: refuse a paused Deployment, then patch the
    /// template's restart annotation with the run's stamp.
    async fn restart(
        &self,
        client: &kube::Client,
        command: &RemediationCommand,
        run: &Run,
        pp: &PatchParams,
        target: &str,
    ) -> Result<(), ExecError> {
        let ns = command.namespace.as_str();
        let name = command.name.as_str();
        let patch = Patch::Strategic(restart_patch(run));
        match command.kind {
            WorkloadKind::Deployment => {
                let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
                let current = self.call(target, api.get(name)).await?;
                if current.spec.as_ref().and_then(|s| s.paused) == Some(true) {
                    // kubectl's wording: "can't restart paused deployment
                    // (run rollout resume first)".
                    return Err(ExecError::Refused(format!(
                        "{target} is paused (resume the rollout first)"
                    )));
                }
                self.call(target, api.patch(name, pp, &patch)).await?;
            }
            WorkloadKind::StatefulSet => {
                let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
                self.call(target, api.patch(name, pp, &patch)).await?;
            }
        }
        Ok(())
    }
}

/// The strategic-merge patch of `kubectl rollout restart`, with the run's
/// stamp (RFC 3339, seconds, as kubectl formats `time.Now()`).
pub fn restart_patch(run: &Run) -> serde_json::Value {
    let stamp = run.stamp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    serde_json::json!({
        "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: stamp } } } }
    })
}

/// What a check saw of an object.
fn observed_of(meta: &ObjectMeta, rollback_to: Option<RollbackTarget>) -> Observed {
    Observed {
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        generation: meta.generation.unwrap_or(0),
        rollback_to,
    }
}

/// `deployment.apps/api -n payments`, as kubectl names its target.
fn target(command: &RemediationCommand) -> String {
    let kind = match command.kind {
        WorkloadKind::Deployment => "deployment.apps",
        WorkloadKind::StatefulSet => "statefulset.apps",
    };
    format!("{kind}/{} -n {}", command.name, command.namespace)
}

/// kube's error as one of ours: the API's own status reason when it
/// answered, else a transport failure.
fn map_error(what: &str, e: kube::Error) -> ExecError {
    match e {
        kube::Error::Api(status) => match status.code {
            404 => ExecError::NotFound(what.to_owned()),
            401 | 403 => ExecError::Forbidden(format!("{what}: {}", status.message)),
            409 | 422 => ExecError::Refused(format!("{what}: {}", status.message)),
            _ => ExecError::Cluster(format!(
                "{what}: {} {} {}",
                status.code, status.reason, status.message
            )),
        },
        other => ExecError::Cluster(format!("{what}: {other}")),
    }
}

/// `kubectl rollout status` for a Deployment (kubectl's
/// `DeploymentStatusViewer`, in its order).
pub fn deployment_rollout(d: &Deployment) -> Rollout {
    let name = d.metadata.name.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.clone().unwrap_or_default();
    if generation > status.observed_generation.unwrap_or(0) {
        return Rollout::Progressing(
            "waiting for the deployment spec update to be observed".into(),
        );
    }
    let deadline = status.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if deadline {
        return Rollout::Failed(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if let Some(want) = d.spec.as_ref().and_then(|s| s.replicas)
        && updated < want
    {
        return Rollout::Progressing(format!(
            "{updated} out of {want} new replicas have been updated"
        ));
    }
    if replicas > updated {
        return Rollout::Progressing(format!(
            "{} old replicas are pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return Rollout::Progressing(format!(
            "{available} of {updated} updated replicas are available"
        ));
    }
    Rollout::Done(format!("deployment {name:?} successfully rolled out"))
}

/// `kubectl rollout status` for a StatefulSet (kubectl's
/// `StatefulSetStatusViewer`, in its order).
pub fn statefulset_rollout(s: &StatefulSet) -> Rollout {
    let spec = s.spec.clone().unwrap_or_default();
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return Rollout::Failed(
            "rollout status is only available for the RollingUpdate strategy".into(),
        );
    }
    let status = s.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0);
    if observed == 0 || s.metadata.generation.unwrap_or(0) > observed {
        return Rollout::Progressing(
            "waiting for the statefulset spec update to be observed".into(),
        );
    }
    let want = spec.replicas.unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    if ready < want {
        return Rollout::Progressing(format!("waiting for {} pods to be ready", want - ready));
    }
    let partition = strategy
        .rolling_update
        .and_then(|r| r.partition)
        .unwrap_or(0);
    if partition > 0 {
        let updated = status.updated_replicas.unwrap_or(0);
        if updated < want - partition {
            return Rollout::Progressing(format!(
                "waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated",
                want - partition
            ));
        }
        return Rollout::Done(format!(
            "partitioned roll out complete: {updated} new pods have been updated"
        ));
    }
    if status.update_revision != Some(status.current_revision.clone().unwrap_or_default()) {
        return Rollout::Progressing(format!(
            "waiting for the rolling update to complete: {} pods at the new revision",
            status.updated_replicas.unwrap_or(0)
        ));
    }
    Rollout::Done("statefulset rolling update complete".into())
}

#[async_trait]
impl Executor for KubernetesExecutor {
    async fn observe(&self, command: &RemediationCommand) -> Result<Option<Observed>, ExecError> {
        if !self.settings.allows(command.namespace.as_str()) {
            return Err(ExecError::NamespaceNotAllowed(
                command.namespace.as_str().to_owned(),
            ));
        }
        self.read_observed(command, &target(command))
            .await
            .map(Some)
    }

    async fn rollout(&self, command: &RemediationCommand) -> Result<Rollout, ExecError> {
        let ns = command.namespace.as_str();
        let name = command.name.as_str();
        let target = target(command);
        Ok(match command.kind {
            WorkloadKind::Deployment => {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                deployment_rollout(&self.call(&target, api.get(name)).await?)
            }
            WorkloadKind::StatefulSet => {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
                statefulset_rollout(&self.call(&target, api.get(name)).await?)
            }
        })
    }

    async fn check(&self, command: &RemediationCommand, run: &Run) -> Result<Outcome, ExecError> {
        self.run(command, run, true).await
    }

    async fn execute(&self, command: &RemediationCommand, run: &Run) -> Result<Outcome, ExecError> {
        self.run(command, run, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_patch_is_kubectls_with_the_approval_time() {
        let run = Run::at(
            chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z")
                .map(|t| t.to_utc())
                .unwrap_or_default(),
        );
        assert_eq!(
            restart_patch(&run),
            serde_json::json!({"spec":{"template":{"metadata":{"annotations":{
                "kubectl.kubernetes.io/restartedAt": "2026-01-02T03:04:05Z"
            }}}}})
        );
    }

    fn deployment(v: serde_json::Value) -> Deployment {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn deployment_rollout_status_follows_kubectls_order() {
        let base = serde_json::json!({
            "metadata": {"name": "api", "generation": 3},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
        });
        let with = |status: serde_json::Value| {
            let mut v = base.clone();
            v["status"] = status;
            deployment_rollout(&deployment(v))
        };
        assert!(
            matches!(with(serde_json::json!({"observedGeneration": 2})), Rollout::Progressing(m) if m.contains("observed"))
        );
        assert!(matches!(
            with(
                serde_json::json!({"observedGeneration": 3, "updatedReplicas": 0,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]})
            ),
            Rollout::Failed(_)
        ));
        assert_eq!(
            with(serde_json::json!({"observedGeneration": 3, "updatedReplicas": 1, "replicas": 3})),
            Rollout::Progressing("1 out of 3 new replicas have been updated".into())
        );
        assert_eq!(
            with(serde_json::json!({"observedGeneration": 3, "updatedReplicas": 3, "replicas": 4})),
            Rollout::Progressing("1 old replicas are pending termination".into())
        );
        assert_eq!(
            with(
                serde_json::json!({"observedGeneration": 3, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 2})
            ),
            Rollout::Progressing("2 of 3 updated replicas are available".into())
        );
        assert!(matches!(
            with(
                serde_json::json!({"observedGeneration": 3, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3})
            ),
            Rollout::Done(_)
        ));
    }

    #[test]
    fn statefulset_rollout_status_waits_for_ready_pods_and_the_revision() {
        let sts = |status: serde_json::Value| -> StatefulSet {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "db", "generation": 2},
                "spec": {"replicas": 2, "selector": {}, "template": {}, "serviceName": "db"},
                "status": status,
            }))
            .unwrap_or_default()
        };
        assert!(
            matches!(statefulset_rollout(&sts(serde_json::json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 1}))), Rollout::Progressing(m) if m.contains("1 pods to be ready"))
        );
        assert!(matches!(
            statefulset_rollout(&sts(
                serde_json::json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2, "currentRevision": "a", "updateRevision": "b"})
            )),
            Rollout::Progressing(_)
        ));
        assert!(matches!(
            statefulset_rollout(&sts(
                serde_json::json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2, "currentRevision": "b", "updateRevision": "b"})
            )),
            Rollout::Done(_)
        ));
    }
}
