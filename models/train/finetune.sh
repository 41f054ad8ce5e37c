#!/usr/bin/env bash
# Fine-tune the coil classifier on reviewed images (models/train/README.md, "Fine-tuning from
# reviewed images"):
#
#   loupe dataset export --since 2026-11-01 --out feedback/
#   models/train/finetune.sh --data feedback/ --model models/coil-classifier --out feedback-model/
#
# Creates models/train/.venv from requirements.txt when missing or changed (as train_all.sh
# does), then runs `python -m loupe_train.finetune` with the arguments given; relative paths
# are relative to the current directory. No Rust build is needed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"

if [[ ! -x "$venv/bin/python" ]] || ! cmp -s "$here/requirements.txt" "$venv/.requirements.txt"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$venv/.requirements.txt"
fi

export OPENBLAS_NUM_THREADS=1
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec "$venv/bin/python" -m loupe_train.finetune "$@"
