#!/usr/bin/env bash
# Regenerates extensions/loupe_nifi/loupe_pb2.py from proto/loupe/v1/loupe.proto.
#
#   docker/nifi/python/generate.sh            # rewrite the shipped module
#   docker/nifi/python/generate.sh OUT_DIR    # write OUT_DIR/loupe_pb2.py instead (the test's check)
#
# Needs grpcio-tools (pinned in tests/python/requirements.txt): set PYTHON to an interpreter
# that has it, default <repo>/.venv/bin/python, else python3. The .proto is compiled under
# its repository path (loupe/v1/loupe.proto) so that the descriptor is the same one every
# other Python client registers, and only messages are generated: the processor calls the
# one RPC itself (see LoupeProcessor.py).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
OUT="${1:-$HERE/extensions/loupe_nifi}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$PYTHON" -m grpc_tools.protoc -I"$ROOT/proto" --python_out="$TMP" loupe/v1/loupe.proto
mkdir -p "$OUT"
cp "$TMP/loupe/v1/loupe_pb2.py" "$OUT/loupe_pb2.py"
echo "wrote $OUT/loupe_pb2.py"
