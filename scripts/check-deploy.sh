#!/usr/bin/env bash
# Validates deploy/kubernetes offline: every built-in resource against the
# Kubernetes API schema (kubernetes-validate --strict: unknown fields and
# wrong types fail), the resources kubernetes-validate has no schema for
# (Kustomization, the Prometheus Operator's ServiceMonitor) for structure,
# the kustomization's resource list against the files, and the Dockerfile
# (parsed with Docker's own parser: no daemon runs here to build it). Run by
# scripts/test.sh; needs Python 3 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/venv-deploy
PY="$VENV/bin/python"
want=$(sha256sum deploy/requirements.txt | cut -d' ' -f1)
stamp="$VENV/.verdict-deploy-tools"
if [ ! -x "$PY" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  printf '==> installing the deploy validator into %s\n' "$VENV"
  python3 -m venv "$VENV"
  "$PY" -m pip install --quiet --disable-pip-version-check -r deploy/requirements.txt
  echo "$want" >"$stamp"
fi

schema_checked=()
for f in deploy/kubernetes/*.yaml; do
  case "$(basename "$f")" in
    kustomization.yaml | servicemonitor.yaml) ;;
    *) schema_checked+=("$f") ;;
  esac
done
"$VENV/bin/kubernetes-validate" --strict --quiet "${schema_checked[@]}"
echo "kubernetes-validate --strict: ${#schema_checked[@]} files pass"

"$PY" - <<'PY'
"""Structure of what has no schema offline, and cross-references."""
import pathlib
import sys

import yaml

root = pathlib.Path("deploy/kubernetes")
docs = {}
for f in sorted(root.glob("*.yaml")):
    docs[f.name] = [d for d in yaml.safe_load_all(f.read_text()) if d]
problems = []

kust = docs["kustomization.yaml"][0]
listed = set(kust["resources"])
present = {n for n in docs if n != "kustomization.yaml"}
if listed != present:
    problems.append(f"kustomization resources {sorted(listed)} != files {sorted(present)}")

(sm,) = docs["servicemonitor.yaml"]
if (sm.get("apiVersion"), sm.get("kind")) != ("monitoring.coreos.com/v1", "ServiceMonitor"):
    problems.append("servicemonitor.yaml is not a monitoring.coreos.com/v1 ServiceMonitor")
service = next(d for d in docs["service.yaml"] if d["kind"] == "Service")
ports = {p["name"] for p in service["spec"]["ports"]}
for ep in sm["spec"]["endpoints"]:
    if ep.get("port") not in ports:
        problems.append(f"ServiceMonitor scrapes port {ep.get('port')!r}, the Service has {sorted(ports)}")
if sm["spec"]["selector"]["matchLabels"].items() > service["metadata"]["labels"].items():
    problems.append("the ServiceMonitor's selector does not match the Service's labels")

(deploy,) = [d for d in docs["deployment.yaml"] if d["kind"] == "Deployment"]
spec = deploy["spec"]
pod = spec["template"]["spec"]
(c,) = pod["containers"]
if spec["replicas"] < 2:
    problems.append("the Deployment runs fewer than two replicas")
for probe in ("livenessProbe", "readinessProbe"):
    if "grpc" not in c.get(probe, {}):
        problems.append(f"{probe} is not a grpc probe")
if not pod["securityContext"].get("runAsNonRoot"):
    problems.append("the pod may run as root")
env = docs["configmap.yaml"][0]["data"]
listen_port = int(env["VERDICT_LISTEN"].rsplit(":", 1)[1])
metrics_port = int(env["VERDICT_METRICS_LISTEN"].rsplit(":", 1)[1])
cports = {p["name"]: p["containerPort"] for p in c["ports"]}
if cports.get("grpc") != listen_port or cports.get("metrics") != metrics_port:
    problems.append(f"container ports {cports} differ from the ConfigMap's listen addresses")
(pdb,) = docs["pdb.yaml"]
if pdb["spec"]["selector"]["matchLabels"] != spec["selector"]["matchLabels"]:
    problems.append("the PodDisruptionBudget selects other pods than the Deployment")

for p in problems:
    print("deploy/kubernetes:", p, file=sys.stderr)
if problems:
    sys.exit(1)
print("deploy/kubernetes: structure and cross-references pass")

import dockerfile

cmds = dockerfile.parse_file("Dockerfile")
stages = [c for c in cmds if c.cmd == "FROM"]
final = cmds[cmds.index(stages[-1]):]
users = [c.value[0] for c in final if c.cmd == "USER"]
problems = []
if len(stages) < 2:
    problems.append("the Dockerfile is not multi-stage")
if not users or users[-1].split(":")[0] in ("root", "0"):
    problems.append("the runtime stage runs as root")
labels = [v for c in final if c.cmd == "LABEL" for v in c.value[::2]]
for want in ("org.opencontainers.image.title", "org.opencontainers.image.version"):
    if want not in labels:
        problems.append(f"the image has no {want} label")
ports = {v for c in final if c.cmd == "EXPOSE" for v in c.value}
if not {str(listen_port), str(metrics_port)} <= ports:
    problems.append(f"the image exposes {sorted(ports)}, not the manifests' ports")
for p in problems:
    print("Dockerfile:", p, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"Dockerfile: {len(stages)} stages, runs as {users[-1]}, labelled")
PY
