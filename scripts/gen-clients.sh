#!/usr/bin/env bash
# Regenerates the code of both clients from proto/: the Python client with
# grpcio-tools (messages, .pyi stubs, gRPC stubs) and the TypeScript client
# with buf and protoc-gen-es. Installs the pinned generators first if they
# are missing. The output is committed; scripts/test.sh fails when it is
# stale.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/client-tools.sh
client_tools

# Python: messages and their .pyi stubs (grpcio-tools), gRPC stubs
# (grpcio-tools) and their typed .pyi (mypy-protobuf, sync and asyncio),
# generated as verdict_client.proto.verdict.v1, with the generators'
# absolute imports (`from verdict.v1 import ...`) made relative so the code
# lives inside the client package instead of claiming a top-level `verdict`.
out=clients/python/src/verdict_client/proto
rm -rf "$out"
mkdir -p "$out/verdict/v1"
"$PY" -m grpc_tools.protoc -Iproto \
  --plugin=protoc-gen-mypy_grpc="$(dirname "$PY")/protoc-gen-mypy_grpc" \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" --mypy_grpc_out="$out" \
  proto/verdict/v1/*.proto \
  2> >(grep -v '^Writing mypy to ' >&2)
sed -i -E 's/^from verdict\.v1 import /from . import /' "$out"/verdict/v1/*.py "$out"/verdict/v1/*.pyi
for d in "$out" "$out/verdict" "$out/verdict/v1"; do
  echo '"""Generated from proto/ by scripts/gen-clients.sh. Do not edit."""' >"$d/__init__.py"
done

# TypeScript: buf.gen.yaml names the inputs, the plugin and the output.
"$BUF" generate --template clients/typescript/buf.gen.yaml

echo "generated clients/python/src/verdict_client/proto and clients/typescript/src/gen"
