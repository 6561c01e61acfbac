//! A fake Kubernetes API server for the executor tests: axum on
//! `127.0.0.1:0`, implementing only what the `kubernetes` executor uses
//! (GET and PATCH of Deployments and StatefulSets, GET and PATCH of their
//! `scale` subresource) with the API server's semantics where they matter:
//! `resourceVersion` moves on every write that changes the object and not on
//! a no-op; `metadata.generation` moves when the spec changes; `dryRun=All`
//! answers what would be written and persists nothing; a missing object is
//! a 404 `Status`, a namespace listed as forbidden a 403 `Status`.
//! Strategic-merge and merge patches are both applied as RFC 7386 merge
//! patches, which is exact for the patches the executor sends (maps only).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
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

/// Applies (or, dry, only computes) a patch of the object's spec; returns
/// the object as written, or an error response. `Err(None)` = hang.
fn write(
    shared: &Shared,
    key: (String, String, String),
    patch: &Value,
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
    merge_patch(&mut new, patch);
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
) -> Option<Response> {
    let mut w = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    w.seen.push(Seen {
        method: method.to_string(),
        path,
        query: query.to_owned(),
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
    Path((ns, plural, name)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    let path = format!("/{ns}/{plural}/{name}");
    if let Some(denied) = admit(&shared, &method, path, &query, &ns) {
        return answer(&shared, Err(Some(Box::new(denied)))).await;
    }
    let key = (plural, ns, name);
    let r = if method == Method::PATCH {
        let patch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        write(&shared, key, &patch, query.contains("dryRun=All"))
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
    Path((ns, plural, name)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    let path = format!("/{ns}/{plural}/{name}/scale");
    if let Some(denied) = admit(&shared, &method, path, &query, &ns) {
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
            &json!({"spec": {"replicas": replicas}}),
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
