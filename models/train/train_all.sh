#!/usr/bin/env bash
# The one command: models/train/train_all.sh
#
# Creates models/train/.venv from requirements.txt (only when missing or changed), builds the
# release `loupe` binary, then generates the data with `loupe synth`, trains the coil
# classifier and the surface segmenter on the CPU (2 threads), exports both to ONNX, evaluates
# them on held-out data and writes models/{coil-classifier,surface-segmenter}/model.{onnx,yaml}.
# Extra arguments go to `python -m loupe_train.pipeline` (e.g. --only coils).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv"

if [[ ! -x "$venv/bin/python" ]] || ! cmp -s "$here/requirements.txt" "$venv/.requirements.txt"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$venv/.requirements.txt"
fi

(cd "$root" && cargo build --release --bin loupe)

cd "$here"
export OPENBLAS_NUM_THREADS=1
exec "$venv/bin/python" -m loupe_train.pipeline --loupe "$root/target/release/loupe" "$@"
