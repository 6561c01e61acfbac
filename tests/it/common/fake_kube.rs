//! A fake Kubernetes API server for the executor tests: axum on
//! `127.0.0.1:0`, implementing only what the `kubernetes` executor uses
//! (GET and PATCH of Deployments and StatefulSets, GET and PATCH of their
//! `scale` subresource, LIST of ReplicaSets by label selector, in pages)
//! with the API server's semantics where they matter:
//! `resourceVersion` moves on every write that changes the object and not on
//! a no-op; `metadata.generation` moves when the spec changes; `dryRun=All`
//! answers what would be written and persists nothing; a missing object is
//! a 404 `Status`, a namespace listed as forbidden a 403 `Status`.
//! Strategic-merge and merge patches are both applied as RFC 7386 merge
//! patches, which is exact for the patches the executor sends (maps only);
//! a JSON patch (`application/json-patch+json`) is applied as RFC 6902 (the
//! json-patch crate), and one that does not apply is a 422.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The `Impersonate-User` header, when sent.
    pub impersonate: Option<String>,
}

#[derive(Default)]
struct World {
    objects: HashMap<(String, String, String), Value>,
    resource_version: u64,
    forbidden: BTreeSet<String>,
    seen: Vec<Seen>,
    /// Real (not dry-run) writes that changed an object.
    writes: u64,
    /// After a real write lands, never answer (a replica dies waiting).
    hang_after_write: bool,
    /// What the "controllers" do after a real write.
    rollouts: Rollouts,
}

/// What the fake's controllers do with a spec change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Rollouts {
    /// Finish it at once: every replica updated and available.
    #[default]
    Complete,
    /// Observe it but never bring up a new replica.
    Stall,
    /// Observe it and report `ProgressDeadlineExceeded`.
    Fail,
}

/// The status of `obj` after its controller dealt with its current spec.
fn roll_out(obj: &mut Value, how: Rollouts) {
    let generation = obj["metadata"]["generation"].clone();
    let replicas = obj["spec"]["replicas"].as_u64().unwrap_or(1);
    let revision = format!("r{generation}");
    obj["status"] = match how {
        Rollouts::Complete => json!({
            "observedGeneration": generation, "replicas": replicas,
            "updatedReplicas": replicas, "availableReplicas": replicas, "readyReplicas": replicas,
            "currentRevision": revision, "updateRevision": revision
        }),
        Rollouts::Stall => json!({
            "observedGeneration": generation, "replicas": replicas,
            "updatedReplicas": 0, "availableReplicas": replicas, "readyReplicas": replicas
        }),
        Rollouts::Fail => json!({
            "observedGeneration": generation, "replicas": replicas,
            "updatedReplicas": 0, "availableReplicas": replicas, "readyReplicas": replicas,
            "conditions": [{"type": "Progressing", "status": "False",
                            "reason": "ProgressDeadlineExceeded"}]
        }),
    };
}

#[derive(Clone)]
struct Shared {
    world: Arc<Mutex<World>>,
    /// Bumped on every request, so tests wait on events, not time.
    events: watch::Sender<u64>,
}

/// The running fake; stops with the test's runtime.
pub struct FakeKube {
    pub url: String,
    shared: Shared,
    dir: tempfile::TempDir,
}

impl FakeKube {
    pub async fn start() -> FakeKube {
        let shared = Shared {
            world: Arc::new(Mutex::new(World::default())),
            events: watch::channel(0).0,
        };
        let app = Router::new()
            .route(
                "/apis/apps/v1/namespaces/{ns}/{plural}",
                axum::routing::get(list),
            )
            .route(
                "/apis/apps/v1/namespaces/{ns}/{plural}/{name}",
                axum::routing::get(object).patch(object),
            )
            .route(
                "/apis/apps/v1/namespaces/{ns}/{plural}/{name}/scale",
                axum::routing::get(scale).patch(scale),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake kube");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeKube {
            url: format!("http://{addr}"),
            shared,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A kubeconfig pointing at this fake, with no credentials.
    pub fn kubeconfig(&self) -> PathBuf {
        let path = self.dir.path().join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// The arguments of a `verdict serve` replica running the `kubernetes`
    /// executor against this fake on `redis_url` (namespace `shop`, a
    /// 600 ms execution lease, the periodic sweep out of the way), followed
    /// by `extra`.
    pub fn replica_args(&self, redis_url: &str, extra: &[&str]) -> Vec<String> {
        let kubeconfig = self.kubeconfig();
        let mut args: Vec<String> = [
            "--redis-url",
            redis_url,
            "--executor",
            "kubernetes",
            "--executor-namespace",
            "shop",
            "--executor-kubeconfig",
            &kubeconfig.to_string_lossy(),
            "--executor-lease-ttl",
            "600ms",
            "--sweep-interval",
            "1h",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.shared.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a Deployment with `replicas` and one container.
    pub fn add_deployment(&self, ns: &str, name: &str, replicas: u32, paused: bool) {
        self.add("deployments", ns, name, replicas, paused);
    }

    pub fn add_statefulset(&self, ns: &str, name: &str, replicas: u32) {
        self.add("statefulsets", ns, name, replicas, false);
    }

    fn add(&self, plural: &str, ns: &str, name: &str, replicas: u32, paused: bool) {
        let kind = if plural == "deployments" {
            "Deployment"
        } else {
            "StatefulSet"
        };
        let mut w = self.world();
        w.resource_version += 1;
        let mut spec = json!({
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "example/app:1"}]}
            }
        });
        if paused {
            spec["paused"] = json!(true);
        }
        if plural == "statefulsets" {
            spec["serviceName"] = json!(name);
        }
        let obj = json!({
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {
                "name": name, "namespace": ns, "uid": format!("uid-{name}"),
                "resourceVersion": w.resource_version.to_string(), "generation": 1
            },
            "spec": spec
        });
        let mut obj = obj;
        roll_out(&mut obj, Rollouts::Complete);
        w.objects
            .insert((plural.into(), ns.into(), name.into()), obj);
    }

    /// Gives Deployment `name` (added before) a rollout history, oldest
    /// first: one ReplicaSet per `(revision, image)`, controlled by it, its
    /// template the Deployment's with that image and a `pod-template-hash`
    /// label. The Deployment's template becomes the last one's (without the
    /// hash), and its annotations what the controller and `kubectl apply`
    /// leave: the revision, the last applied configuration, and `extra`.
    pub fn add_history(&self, ns: &str, name: &str, history: &[(u32, &str)], extra: Value) {
        let mut w = self.world();
        let key = ("deployments".to_owned(), ns.to_owned(), name.to_owned());
        let Some(mut d) = w.objects.get(&key).cloned() else {
            return;
        };
        let mut last = None;
        for (i, (revision, image)) in history.iter().enumerate() {
            w.resource_version += 1;
            let hash = format!("h{revision}x{i}");
            let mut template = d["spec"]["template"].clone();
            template["spec"]["containers"][0]["image"] = json!(image);
            let without_hash = template.clone();
            template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let rs_name = format!("{name}-{hash}");
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name, "namespace": ns, "uid": format!("uid-{rs_name}"),
                    "resourceVersion": w.resource_version.to_string(),
                    "creationTimestamp": format!("2026-01-01T00:00:{:02}Z", i),
                    "labels": {"app": name, "pod-template-hash": hash},
                    "annotations": {
                        "deployment.kubernetes.io/revision": revision.to_string(),
                        "deployment.kubernetes.io/desired-replicas": "2",
                        "deployment.kubernetes.io/max-replicas": "3",
                        "note": format!("built from {image}")
                    },
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                        "name": name, "uid": format!("uid-{name}"), "controller": true,
                        "blockOwnerDeletion": true}]
                },
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name, "pod-template-hash": hash}},
                         "template": template}
            });
            w.objects
                .insert(("replicasets".into(), ns.into(), rs_name), rs);
            last = Some((revision, without_hash));
        }
        if let Some((revision, template)) = last {
            d["spec"]["template"] = template;
            let mut annotations = json!({
                "deployment.kubernetes.io/revision": revision.to_string(),
                "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Deployment\"}"
            });
            merge_patch(&mut annotations, &extra);
            d["metadata"]["annotations"] = annotations;
        }
        // A ReplicaSet of another Deployment with the same labels: kubectl
        // ignores it (not controlled by this one).
        w.resource_version += 1;
        let stray = format!("{name}-stray");
        let stray_obj = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": stray, "namespace": ns, "uid": "uid-stray",
                "resourceVersion": w.resource_version.to_string(),
                "creationTimestamp": "2026-01-02T00:00:00Z",
                "labels": {"app": name},
                "annotations": {"deployment.kubernetes.io/revision": "99"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                    "name": "other", "uid": "uid-other", "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "stray"}]}}}
        });
        w.objects
            .insert(("replicasets".into(), ns.into(), stray), stray_obj);
        w.resource_version += 1;
        d["metadata"]["resourceVersion"] = json!(w.resource_version.to_string());
        w.objects.insert(key, d);
    }

    /// Changes an object as someone else would (a `kubectl apply`
    /// elsewhere): a merge patch, a real write with a new resourceVersion.
    pub fn change(&self, plural: &str, ns: &str, name: &str, patch: Value) {
        let key = (plural.to_owned(), ns.to_owned(), name.to_owned());
        let _ = write(&self.shared, key, &Edit::Merge(patch), false);
    }

    /// What rollouts do from now on.
    pub fn rollouts(&self, how: Rollouts) {
        self.world().rollouts = how;
    }

    /// Requests to namespace `ns` answer 403, as RBAC would.
    pub fn forbid(&self, ns: &str) {
        self.world().forbidden.insert(ns.into());
    }

    /// From now on, a real write is applied and then never answered.
    pub fn hang_after_write(&self, on: bool) {
        self.world().hang_after_write = on;
    }

    pub fn object(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.world()
            .objects
            .get(&(plural.into(), ns.into(), name.into()))
            .cloned()
    }

    /// Real writes that changed an object so far.
    pub fn writes(&self) -> u64 {
        self.world().writes
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.world().seen.clone()
    }

    /// Waits until `done` holds for the fake's state (checked after every
    /// request).
    pub async fn until(&self, mut done: impl FnMut(&FakeKube) -> bool) {
        let mut rx = self.shared.events.subscribe();
        loop {
            if done(self) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    (
        code,
        axum::Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code.as_u16()
        })),
    )
        .into_response()
}

/// RFC 7386.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// A patch, by its content type.
enum Edit {
    /// Merge or strategic-merge patch (applied as RFC 7386).
    Merge(Value),
    /// RFC 6902.
    Json(json_patch::Patch),
}

/// Applies (or, dry, only computes) a patch of the object's spec; returns
/// the object as written, or an error response. `Err(None)` = hang.
fn write(
    shared: &Shared,
    key: (String, String, String),
    edit: &Edit,
    dry: bool,
) -> Result<Value, Option<Box<Response>>> {
    let mut w = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    let Some(old) = w.objects.get(&key).cloned() else {
        return Err(Some(Box::new(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{}.apps \"{}\" not found", key.0, key.2),
        ))));
    };
    let mut new = old.clone();
    match edit {
        Edit::Merge(patch) => merge_patch(&mut new, patch),
        Edit::Json(patch) => {
            if let Err(e) = json_patch::patch(&mut new, patch) {
                return Err(Some(Box::new(status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("the JSON patch does not apply: {e}"),
                ))));
            }
        }
    }
    if new == old {
        return Ok(old);
    }
    if new["spec"] != old["spec"] {
        let g = old["metadata"]["generation"].as_u64().unwrap_or(1) + 1;
        new["metadata"]["generation"] = json!(g);
    }
    if dry {
        return Ok(new);
    }
    if new["spec"] != old["spec"] {
        roll_out(&mut new, w.rollouts);
    }
    w.resource_version += 1;
    new["metadata"]["resourceVersion"] = json!(w.resource_version.to_string());
    w.objects.insert(key, new.clone());
    w.writes += 1;
    if w.hang_after_write {
        return Err(None);
    }
    Ok(new)
}

/// Records the request and answers the forbidden namespaces.
fn admit(
    shared: &Shared,
    method: &Method,
    path: String,
    query: &str,
    ns: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    let mut w = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    w.seen.push(Seen {
        method: method.to_string(),
        path,
        query: query.to_owned(),
        impersonate: headers
            .get("impersonate-user")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    w.forbidden.contains(ns).then(|| {
        status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("namespace {ns} is forbidden for this user"),
        )
    })
}

async fn answer(shared: &Shared, r: Result<Value, Option<Box<Response>>>) -> Response {
    shared.events.send_modify(|n| *n += 1);
    match r {
        Ok(v) => axum::Json(v).into_response(),
        Err(Some(resp)) => *resp,
        Err(None) => std::future::pending().await,
    }
}

async fn object(
    State(shared): State<Shared>,
    method: Method,
    headers: HeaderMap,
    Path((ns, plural, name)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    let path = format!("/{ns}/{plural}/{name}");
    if let Some(denied) = admit(&shared, &method, path, &query, &ns, &headers) {
        return answer(&shared, Err(Some(Box::new(denied)))).await;
    }
    let key = (plural, ns, name);
    let r = if method == Method::PATCH {
        let json_patch = headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json-patch+json"));
        let edit = if json_patch {
            match serde_json::from_slice(&body) {
                Ok(p) => Edit::Json(p),
                Err(e) => {
                    let bad = status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string());
                    return answer(&shared, Err(Some(Box::new(bad)))).await;
                }
            }
        } else {
            Edit::Merge(serde_json::from_slice(&body).unwrap_or(Value::Null))
        };
        write(&shared, key, &edit, query.contains("dryRun=All"))
    } else {
        let w = shared.world.lock().unwrap_or_else(|p| p.into_inner());
        w.objects.get(&key).cloned().ok_or_else(|| {
            Some(Box::new(status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{}.apps \"{}\" not found", key.0, key.2),
            )))
        })
    };
    answer(&shared, r).await
}

fn as_scale(obj: &Value) -> Value {
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {
            "name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"],
            "resourceVersion": obj["metadata"]["resourceVersion"]
        },
        "spec": {"replicas": obj["spec"]["replicas"]},
        "status": {"replicas": obj["status"]["replicas"], "selector": format!("app={}", obj["metadata"]["name"].as_str().unwrap_or_default())}
    })
}

async fn scale(
    State(shared): State<Shared>,
    method: Method,
    headers: HeaderMap,
    Path((ns, plural, name)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    let path = format!("/{ns}/{plural}/{name}/scale");
    if let Some(denied) = admit(&shared, &method, path, &query, &ns, &headers) {
        return answer(&shared, Err(Some(Box::new(denied)))).await;
    }
    let key = (plural, ns, name);
    let r = if method == Method::PATCH {
        // A Scale patch touches spec.replicas of the object.
        let patch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let replicas = patch["spec"]["replicas"].clone();
        write(
            &shared,
            key,
            &Edit::Merge(json!({"spec": {"replicas": replicas}})),
            query.contains("dryRun=All"),
        )
        .map(|o| as_scale(&o))
    } else {
        let w = shared.world.lock().unwrap_or_else(|p| p.into_inner());
        w.objects.get(&key).map(as_scale).ok_or_else(|| {
            Some(Box::new(status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{}.apps \"{}\" not found", key.0, key.2),
            )))
        })
    };
    answer(&shared, r).await
}

/// `%XX` decoding of one query value (`+` is a space).
fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(c) => out.push(c),
                    Err(_) => out.extend_from_slice(&b[i..i + 3]),
                }
                i += 3;
                continue;
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode(v))
}

/// LIST with `labelSelector` (equality terms `k=v`, comma-separated: what
/// a `matchLabels` selector renders to), `limit` and `continue` (the index
/// to resume at), ordered by name as etcd orders keys.
async fn list(
    State(shared): State<Shared>,
    method: Method,
    headers: HeaderMap,
    Path((ns, plural)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let path = format!("/{ns}/{plural}");
    if let Some(denied) = admit(&shared, &method, path, &query, &ns, &headers) {
        return answer(&shared, Err(Some(Box::new(denied)))).await;
    }
    let terms: Vec<(String, String)> = param(&query, "labelSelector")
        .unwrap_or_default()
        .split(',')
        .filter(|t| !t.is_empty())
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| {
            (
                k.trim_end_matches('=').to_owned(),
                v.trim_start_matches('=').to_owned(),
            )
        })
        .collect();
    let limit: usize = param(&query, "limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let start: usize = param(&query, "continue")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let items: Vec<Value> = {
        let w = shared.world.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<(&String, &Value)> = w
            .objects
            .iter()
            .filter(|((p, n, _), _)| *p == plural && *n == ns)
            .filter(|(_, o)| {
                terms
                    .iter()
                    .all(|(k, v)| o["metadata"]["labels"][k].as_str() == Some(v.as_str()))
            })
            .map(|((_, _, name), o)| (name, o))
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all.into_iter().map(|(_, o)| o.clone()).collect()
    };
    let end = start.saturating_add(limit).min(items.len());
    let page: Vec<Value> = items.get(start..end).unwrap_or_default().to_vec();
    let cont = if end < items.len() {
        end.to_string()
    } else {
        String::new()
    };
    let kind = if plural == "replicasets" {
        "ReplicaSetList"
    } else {
        "List"
    };
    let body = json!({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"resourceVersion": "1", "continue": cont},
        "items": page
    });
    answer(&shared, Ok(body)).await
}
