//! `kubectl rollout undo` for a Deployment, ported from kubectl
//! (`pkg/polymorphichelpers/rollback.go`, `DeploymentRollbacker`, and
//! `pkg/util/deployment`): the pure half. The requests are in
//! [`super::kubernetes`]; this file decides what they carry.
//!
//! kubectl's steps, in its order:
//! 1. list the ReplicaSets matching the Deployment's selector and keep the
//!    ones it controls (controller owner reference with its uid);
//! 2. the "new" ReplicaSet is the oldest whose template equals the
//!    Deployment's ignoring `pod-template-hash`; the others follow it in
//!    creation order, then the new one is appended;
//! 3. the target is the second-highest `deployment.kubernetes.io/revision`
//!    (or the one asked for with `--to-revision`);
//! 4. a paused Deployment is refused;
//! 5. "skipped rollback" when the target's template already equals the
//!    Deployment's ([`equal_ignore_hash`]);
//! 6. otherwise a JSON patch replacing `/spec/template` (the target's,
//!    without `pod-template-hash`) and `/metadata/annotations` (the
//!    Deployment's own for the keys kubectl skips, the ReplicaSet's for
//!    all others) — [`rollback_patch`].
//!
//! One deliberate difference, for exactly-once: verdict picks the target
//! when the command is checked and then names it by its ReplicaSet (see
//! [`crate::domain::RollbackTarget`]), so running it again after a crash
//! finds the template already restored and skips, where a second `kubectl
//! rollout undo` would go back one revision further.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;
use std::collections::BTreeMap;

/// The revision annotation of a Deployment's ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The label the Deployment controller adds to each ReplicaSet's template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// kubectl's `annotationsToSkip`: kept from the Deployment, never copied
/// from the ReplicaSet.
pub const ANNOTATIONS_TO_SKIP: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// The revision of a ReplicaSet as kubectl reads it (`deploymentutil.
/// Revision`): no annotation is revision 0; an unparsable one is an error
/// (and kubectl then ignores the ReplicaSet).
pub fn revision(rs: &ReplicaSet) -> Option<i64> {
    match rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
    {
        None => Some(0),
        Some(v) => v.parse().ok(),
    }
}

/// kubectl's `metav1.IsControlledBy`: a controller owner reference with the
/// Deployment's uid.
pub fn controlled_by(rs: &ReplicaSet, deployment: &Deployment) -> bool {
    let Some(uid) = deployment.metadata.uid.as_deref() else {
        return false;
    };
    rs.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

fn template_of(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

fn deployment_template(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// The ReplicaSets kubectl considers, in the order it walks them
/// (`GetAllReplicaSets`: the owned ones by creation time then name, the new
/// one moved last).
pub fn all_replica_sets(deployment: &Deployment, listed: Vec<ReplicaSet>) -> Vec<ReplicaSet> {
    let mut owned: Vec<ReplicaSet> = listed
        .into_iter()
        .filter(|rs| controlled_by(rs, deployment))
        .collect();
    owned.sort_by(|a, b| {
        (&a.metadata.creation_timestamp, &a.metadata.name)
            .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
    });
    let current = deployment_template(deployment);
    if let Some(i) = owned
        .iter()
        .position(|rs| equal_ignore_hash(&template_of(rs), &current))
    {
        let new = owned.remove(i);
        owned.push(new);
    }
    owned
}

/// kubectl's `deploymentRevision` with `toRevision` 0: the ReplicaSet with
/// the second-highest revision. None = "no rollout history found".
pub fn previous_revision(all: &[ReplicaSet]) -> Option<&ReplicaSet> {
    let mut latest: Option<(i64, &ReplicaSet)> = None;
    let mut previous: Option<(i64, &ReplicaSet)> = None;
    for rs in all {
        let Some(v) = revision(rs) else { continue };
        let latest_rev = latest.map_or(-1, |(r, _)| r);
        if latest_rev < v {
            previous = latest;
            latest = Some((v, rs));
        } else if previous.map_or(-1, |(r, _)| r) < v {
            previous = Some((v, rs));
        }
    }
    previous.map(|(_, rs)| rs)
}

/// kubectl's `deploymentRevision` with `--to-revision=n`.
pub fn to_revision(all: &[ReplicaSet], n: i64) -> Option<&ReplicaSet> {
    all.iter().find(|rs| revision(rs) == Some(n))
}

/// kubectl's `equalIgnoreHash`: the templates equal once `pod-template-hash`
/// is removed from both, compared as `apiequality.Semantic.DeepEqual` does
/// (an empty map or list equals an absent one).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalized(a) == normalized(b)
}

fn normalized(t: &PodTemplateSpec) -> Value {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    let mut v = serde_json::to_value(&t).unwrap_or(Value::Null);
    drop_empty(&mut v);
    v
}

/// Removes nulls and empty maps and lists, recursively (Go's semantic
/// equality treats nil and empty alike).
fn drop_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                drop_empty(x);
            }
            m.retain(|_, x| !is_empty(x));
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                drop_empty(x);
            }
        }
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The annotations kubectl writes on the Deployment: its own values of the
/// skipped keys, then every other annotation of the ReplicaSet.
pub fn merged_annotations(deployment: &Deployment, rs: &ReplicaSet) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let own = deployment.metadata.annotations.clone().unwrap_or_default();
    for k in ANNOTATIONS_TO_SKIP {
        if let Some(v) = own.get(k) {
            out.insert(k.to_owned(), v.clone());
        }
    }
    for (k, v) in rs.metadata.annotations.iter().flatten() {
        if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// kubectl's `getDeploymentPatch`: the JSON patch (RFC 6902) restoring
/// `rs`'s template, without its `pod-template-hash` label, and the merged
/// annotations.
pub fn rollback_patch(deployment: &Deployment, rs: &ReplicaSet) -> Value {
    let mut template = template_of(rs);
    if let Some(meta) = template.metadata.as_mut()
        && let Some(labels) = meta.labels.as_mut()
    {
        labels.remove(POD_TEMPLATE_HASH);
        if labels.is_empty() {
            meta.labels = None;
        }
    }
    serde_json::json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": merged_annotations(deployment, rs)},
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "api", "uid": "d-1", "annotations": {
                "deployment.kubernetes.io/revision": "3",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "team": "payments"
            }},
            "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "app", "image": "api:3"}]}
            }}
        }))
        .unwrap_or_default()
    }

    fn rs(name: &str, rev: Option<&str>, image: &str, created: &str, owner: &str) -> ReplicaSet {
        let mut annotations = serde_json::Map::new();
        if let Some(r) = rev {
            annotations.insert(REVISION.into(), json!(r));
        }
        annotations.insert(
            "deployment.kubernetes.io/desired-replicas".into(),
            json!("2"),
        );
        annotations.insert("owner-note".into(), json!(format!("from {name}")));
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created, "annotations": annotations,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api",
                                     "uid": owner, "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": {
                "metadata": {"labels": {"app": "api", "pod-template-hash": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }}
        }))
        .unwrap_or_default()
    }

    fn name(rs: Option<&ReplicaSet>) -> Option<&str> {
        rs.and_then(|r| r.metadata.name.as_deref())
    }

    #[test]
    fn the_previous_revision_is_the_second_highest_of_the_owned_sets() {
        let d = deployment();
        let listed = vec![
            rs("api-c", Some("3"), "api:3", "2026-01-03T00:00:00Z", "d-1"),
            rs("api-a", Some("1"), "api:1", "2026-01-01T00:00:00Z", "d-1"),
            rs("api-b", Some("2"), "api:2", "2026-01-02T00:00:00Z", "d-1"),
            // Higher, but controlled by another Deployment: ignored.
            rs("other", Some("9"), "api:9", "2026-01-04T00:00:00Z", "d-2"),
            // Unparsable revision: ignored, as kubectl ignores it.
            rs("api-x", Some("x"), "api:x", "2026-01-05T00:00:00Z", "d-1"),
        ];
        let all = all_replica_sets(&d, listed);
        assert_eq!(
            all.iter()
                .map(|r| r.metadata.name.as_deref().unwrap_or_default())
                .collect::<Vec<_>>(),
            ["api-a", "api-b", "api-x", "api-c"],
            "creation order, the current one last"
        );
        assert_eq!(name(previous_revision(&all)), Some("api-b"));
        assert_eq!(name(to_revision(&all, 1)), Some("api-a"));
        assert_eq!(name(to_revision(&all, 7)), None);
    }

    #[test]
    fn one_revision_is_no_history() {
        let d = deployment();
        let all = all_replica_sets(
            &d,
            vec![rs(
                "api-c",
                Some("3"),
                "api:3",
                "2026-01-03T00:00:00Z",
                "d-1",
            )],
        );
        assert!(previous_revision(&all).is_none());
        assert!(previous_revision(&[]).is_none());
    }

    #[test]
    fn templates_compare_without_the_hash_label_and_empty_fields() {
        let d = deployment();
        let current = rs("api-c", Some("3"), "api:3", "2026-01-03T00:00:00Z", "d-1");
        let older = rs("api-b", Some("2"), "api:2", "2026-01-02T00:00:00Z", "d-1");
        assert!(equal_ignore_hash(
            &template_of(&current),
            &deployment_template(&d)
        ));
        assert!(!equal_ignore_hash(
            &template_of(&older),
            &deployment_template(&d)
        ));
        let mut with_empty = deployment_template(&d);
        if let Some(m) = with_empty.metadata.as_mut() {
            m.annotations = Some(BTreeMap::new());
        }
        assert!(equal_ignore_hash(&with_empty, &deployment_template(&d)));
    }

    #[test]
    fn the_patch_is_kubectls_json_patch() {
        let d = deployment();
        let target = rs("api-b", Some("2"), "api:2", "2026-01-02T00:00:00Z", "d-1");
        assert_eq!(
            rollback_patch(&d, &target),
            json!([
                {"op": "replace", "path": "/spec/template", "value": {
                    "metadata": {"labels": {"app": "api"}},
                    "spec": {"containers": [{"name": "app", "image": "api:2"}]}
                }},
                {"op": "replace", "path": "/metadata/annotations", "value": {
                    // Kept from the Deployment.
                    "deployment.kubernetes.io/revision": "3",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    // Copied from the ReplicaSet; its desired-replicas is
                    // skipped, and the Deployment's "team" is dropped, as
                    // kubectl drops it.
                    "owner-note": "from api-b"
                }}
            ])
        );
    }
}
