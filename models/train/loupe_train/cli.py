"""The command line both trainers share: data folders, output, report, and `Config` overrides.

`python -m loupe_train.classifier ...` and `python -m loupe_train.segmenter ...` differ only in
which `Config` fields they let the command line set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import data


def main(doc: str, config, run, options: dict[str, type], argv=None) -> int:
    """Parses `argv`, applies the `options` (Config field -> type) given, runs
    `run(cfg, train, val, test, out, report)`; exit status 2 with the message on bad data."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("train", "val", "test", "out"):
        ap.add_argument(f"--{name}", type=Path, required=True)
    ap.add_argument("--report", type=Path)
    for field, kind in options.items():
        ap.add_argument("--" + field.replace("_", "-"), type=kind)
    a = ap.parse_args(argv)
    for field in options:
        if getattr(a, field) is not None:
            setattr(config, field, getattr(a, field))
    try:
        run(config, a.train, a.val, a.test, a.out, a.report)
    except data.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
