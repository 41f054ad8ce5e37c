#!/usr/bin/env bash
# Stat calls and wall time of draining an inbox of N files with capture -> report (JSON
# lines): `benches/capture/run.sh target/debug/loupe 5000` from the repository root.
# Needs strace. Figures: benches/README.md ("capture: draining an inbox").
set -euo pipefail
BIN=$(realpath "$1"); N=$2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cp "$(dirname "$0")/drain.yaml" "$work/flow.yaml"
cd "$work" && mkdir inbox
python3 - "$N" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    open(f"inbox/img-{i:05d}.png", "wb").write(b"\x89PNG\r\n\x1a\n" + bytes(64))
PY
start=$(date +%s.%N)
strace -f -c -e trace=statx,newfstatat,getdents64 -o strace.txt \
    "$BIN" run flow.yaml --once --progress off >/dev/null 2>&1
end=$(date +%s.%N)
echo "files=$N records=$(wc -l <records.jsonl) left=$(ls inbox | wc -l) wall=$(echo "$end - $start" | bc) s"
awk '$NF ~ /^(statx|newfstatat|getdents64|total)$/ {print $NF, $4}' strace.txt
