// A fake Kubernetes API server for the dashboard's browser tests, the
// Node twin of tests/it/common/fake_kube.rs (only what the `kubernetes`
// executor uses): GET and PATCH of Deployments and their `scale`
// subresource on 127.0.0.1:0. Every Deployment asked for exists (2
// replicas) unless its namespace is forbidden, which answers a 403
// `Status` as RBAC would; `dryRun=All` answers what would be written and
// persists nothing; a real write bumps `generation` and finishes its
// rollout at once (every replica updated and available).
import { createServer } from "node:http";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const OBJECT = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments\/([^/]+)(\/scale)?$/;

/** The status a finished rollout of `obj` reports. */
function rolledOut(obj) {
  const generation = obj.metadata.generation;
  const replicas = obj.spec.replicas;
  obj.status = {
    observedGeneration: generation,
    replicas,
    updatedReplicas: replicas,
    availableReplicas: replicas,
    readyReplicas: replicas,
  };
  return obj;
}

function deployment(ns, name, resourceVersion) {
  return rolledOut({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: ns, uid: `uid-${name}`, resourceVersion: String(resourceVersion), generation: 1 },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: "app", image: "example/app:1" }] } },
    },
  });
}

/** RFC 7386 (exact for the maps-only patches the executor sends). */
function merge(target, patch) {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const out = target && typeof target === "object" && !Array.isArray(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = merge(out[k], v);
  }
  return out;
}

function scaleOf(obj) {
  return {
    apiVersion: "autoscaling/v1",
    kind: "Scale",
    metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace, resourceVersion: obj.metadata.resourceVersion },
    spec: { replicas: obj.spec.replicas },
    status: { replicas: obj.status.replicas, selector: `app=${obj.metadata.name}` },
  };
}

export class FakeKube {
  /** Namespaces whose every request is forbidden (403). */
  forbidden = new Set();
  /** Real (not dry-run) writes that changed an object. */
  writes = 0;
  #objects = new Map();
  #resourceVersion = 0;
  #server;
  url = "";

  static async start() {
    const kube = new FakeKube();
    kube.#server = createServer((req, res) => kube.#handle(req, res));
    await new Promise((resolve) => kube.#server.listen(0, "127.0.0.1", resolve));
    kube.url = `http://127.0.0.1:${kube.#server.address().port}`;
    return kube;
  }

  async stop() {
    this.#server.closeAllConnections?.();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  /** Writes a kubeconfig pointing at this fake (no credentials) into `dir`. */
  kubeconfig(dir) {
    const path = join(dir, "kubeconfig");
    writeFileSync(
      path,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: ${this.url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user: {}\n`,
    );
    return path;
  }

  #send(res, code, body) {
    res.writeHead(code, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  }

  #status(res, code, reason, message) {
    this.#send(res, code, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code });
  }

  #handle(req, res) {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url, this.url);
      const m = OBJECT.exec(url.pathname);
      if (!m) return this.#status(res, 404, "NotFound", `the fake has no ${url.pathname}`);
      const [, ns, name, scale] = m;
      if (this.forbidden.has(ns)) {
        return this.#status(res, 403, "Forbidden", `deployments.apps "${name}" is forbidden: User "verdict" cannot patch resource "deployments" in API group "apps" in the namespace "${ns}"`);
      }
      const key = `${ns}/${name}`;
      if (!this.#objects.has(key)) this.#objects.set(key, deployment(ns, name, ++this.#resourceVersion));
      const old = this.#objects.get(key);
      if (req.method === "GET") return this.#send(res, 200, scale ? scaleOf(old) : old);
      if (req.method !== "PATCH") return this.#status(res, 405, "MethodNotAllowed", req.method);
      let patch;
      try {
        patch = JSON.parse(Buffer.concat(chunks).toString("utf8") || "null");
      } catch {
        return this.#status(res, 400, "BadRequest", "the patch is not JSON");
      }
      if (scale) patch = { spec: { replicas: patch?.spec?.replicas } };
      const next = merge(structuredClone(old), patch);
      if (JSON.stringify(next.spec) !== JSON.stringify(old.spec)) next.metadata.generation = old.metadata.generation + 1;
      const dry = url.searchParams.get("dryRun") === "All";
      if (!dry && JSON.stringify(next) !== JSON.stringify(old)) {
        rolledOut(next);
        next.metadata.resourceVersion = String(++this.#resourceVersion);
        this.#objects.set(key, next);
        this.writes += 1;
      }
      const shown = dry ? next : this.#objects.get(key);
      return this.#send(res, 200, scale ? scaleOf(shown) : shown);
    });
  }
}
