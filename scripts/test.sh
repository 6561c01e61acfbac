#!/usr/bin/env bash
# Runs every check and test of verdict on a fresh machine: installs what is
# missing (redis-server, prometheus, Debian's chromium; the clients' and the
# dashboard's pinned Python and npm tools, buf and playwright-core among
# them), then fmt, the Kubernetes manifests, the generated clients' and the
# dashboard bundle's freshness, buf lint and breaking, clippy, the Rust test
# suite, the dashboard in a real browser, and the Python and TypeScript
# client suites against the real `verdict serve` (and real Redis servers on
# private ports).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
# The dashboard's browser tests drive Debian's Chromium (Playwright's own
# browser download is not available everywhere); CHROMIUM overrides the path.
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || need_apt+=(chromium)
# The metrics suite runs the real Prometheus and promtool.
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# The Debian packages may start their own services (Redis on 6379,
# Prometheus on 9090); tests never use them.
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "Node $node_major is too old for the TypeScript client; it needs Node 20 or later" >&2
  exit 1
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "Kubernetes manifests, offline (scripts/check-deploy.sh)"
scripts/check-deploy.sh

log "regenerating the clients (scripts/gen-clients.sh)"
scripts/gen-clients.sh
# Modified or new generated files mean proto/ (or a generator version)
# changed without regenerating. Only the generated directories are checked,
# so uncommitted work on the hand-written wrappers does not fail the run.
generated=(clients/python/src/verdict_client/proto clients/typescript/src/gen)
stale=$(git status --porcelain --untracked-files=all -- "${generated[@]}")
if [ -n "$stale" ]; then
  printf '%s\n' "$stale"
  git --no-pager diff --stat -- "${generated[@]}"
  echo "the committed client code is stale: run scripts/gen-clients.sh and commit the result" >&2
  exit 1
fi

# The dashboard's bundle (web/dist, embedded in the binary) is committed
# like the generated clients: rebuilt in memory and compared.
log "dashboard: npm ci and the committed bundle's freshness (web/)"
(cd web && npm ci --no-audit --no-fund --loglevel=error && node build.mjs --check)

source scripts/client-tools.sh
log "buf lint"
"$BUF" lint
# Breaking changes are judged against where this branch left main (on main
# itself: the last commit), or against $VERDICT_BUF_AGAINST (any buf input).
against=${VERDICT_BUF_AGAINST:-}
if [ -z "$against" ]; then
  for ref in main origin/main; do
    if base=$(git merge-base HEAD "$ref" 2>/dev/null); then
      against=".git#ref=$base,subdir=proto"
      break
    fi
  done
fi
if [ -n "$against" ]; then
  log "buf breaking against $against"
  "$BUF" breaking proto --against "$against"
else
  log "buf breaking skipped: no main branch to compare with (set VERDICT_BUF_AGAINST)"
fi

log "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
# The binary without the bench feature (server and client commands only)
# must build too: code behind `#[cfg(feature = "bench")]` hides breakage.
log "cargo clippy --no-default-features"
cargo clippy --all-targets --no-default-features --locked -- -D warnings

log "cargo test"
# Build once, then run every test binary; tests inside a binary run in parallel.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi

log "cargo build (the verdict binary the client suites start)"
cargo build --locked --bin verdict
export VERDICT_BIN="$PWD/target/debug/verdict"

log "Python client: mypy --strict"
(cd clients/python && "../../$PY" -m mypy)

log "Python client: pytest"
# Exit code 5 means pytest collected no test: a broken suite, never a pass.
rc=0
(cd clients/python && "../../$PY" -m pytest -p no:cacheprovider) || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
elif [ "$rc" -ne 0 ]; then
  exit "$rc"
fi

log "dashboard: tsc, then Playwright in Chromium against verdict serve with Redis (web/test)"
(cd clients/typescript && npm run build --silent)
(cd web && npm test --silent)

log "TypeScript client: tsc and node --test (gRPC and gRPC-Web)"
printf '(%ss so far)\n' "$((SECONDS - started))"
# Last on purpose: the output ends with node's test summary.
cd clients/typescript
npm test --silent
