# Sourced by gen-clients.sh and test.sh: installs, only when missing or
# stale, what generating and testing the clients needs, and sets
#   PY  - the Python of a venv under target/ with the pinned dev tools and
#         the client installed in editable mode;
#   BUF - buf from clients/typescript's npm dev dependencies.
# Python 3.10+ (with venv) and Node 20+ (with npm) must be on PATH.

VENV=target/venv
PY="$VENV/bin/python"
BUF=clients/typescript/node_modules/.bin/buf

client_tools() {
  local stamp want
  if [ ! -x "$PY" ]; then
    printf '==> creating the Python venv %s\n' "$VENV"
    python3 -m venv "$VENV" || {
      echo "python3 -m venv failed; on Debian: apt-get install python3-venv" >&2
      return 1
    }
  fi
  want=$(cat clients/python/requirements-dev.txt clients/python/pyproject.toml | sha256sum | cut -d' ' -f1)
  stamp="$VENV/.verdict-client-tools"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    printf '==> installing the Python client tools into %s\n' "$VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check -r clients/python/requirements-dev.txt
    "$PY" -m pip install --quiet --disable-pip-version-check -e clients/python
    echo "$want" >"$stamp"
  fi

  # npm ci only when node_modules was not installed from this very lock.
  want=$(sha256sum clients/typescript/package-lock.json | cut -d' ' -f1)
  stamp=clients/typescript/node_modules/.verdict-client-tools
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x "$BUF" ]; then
    printf '==> npm ci in clients/typescript\n'
    (cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
  fi
}
