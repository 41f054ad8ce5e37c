"""The whole job: generate data with `loupe synth`, train, export, evaluate, write the cards.

    models/train/train_all.sh            # the one command (venv + release build + this)
    python -m loupe_train.pipeline --loupe target/release/loupe [--only coils|surfaces]

Data sets (seeds and sizes below, recorded in the cards) are written to `models/train/data/`
and reused when a folder's `dataset.json` already matches what would be generated; models go
to `models/coil-classifier/` and `models/surface-segmenter/`; the full evaluation reports
(validation and held-out, training curves) to `models/train/runs/`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import classifier, common, data, segmenter
from .common import log

TRAIN_DIR = Path(__file__).resolve().parent.parent
REPO = TRAIN_DIR.parent.parent

# Each split has its own seed; no seed is shared between splits or datasets.
# Training and validation coils are generated with more defective products than the factory
# default (5% loose_wire, 25% burr, 1% both) so that the rare class has enough distinct
# examples to learn from and the validation recall is measured on several hundred
# loose_wire images. The held-out set keeps the default prevalence, with more products so
# that it holds enough loose_wire images for the recall to mean something.
COIL_SPLITS = {
    "train": {"seed": 1101, "products": 1600, "extra": ["--loose-wire", "0.35", "--burr", "0.35",
                                                        "--both", "0.07"]},
    "val": {"seed": 2202, "products": 500, "extra": ["--loose-wire", "0.2", "--burr", "0.35",
                                                     "--both", "0.04"]},
    "test": {"seed": 3303, "products": 1500, "extra": []},
}
# More training coils from a second training seed, rich in loose wires: the short (9-13 px)
# loose wires are the ones missed, so the model needs many distinct examples of them.
COIL_TRAIN_EXTRA = {
    "train2": {"seed": 1102, "products": 800, "extra": ["--loose-wire", "0.55", "--burr", "0.25",
                                                        "--both", "0.1"]},
    # At the plant's prevalence and larger: a pool of what the camera wrongly flags (clutter
    # touching the outline, long burrs) at its natural rate, from which hard examples are mined
    # (classifier.Config.mine_share).
    "train3": {"seed": 1103, "products": 2000, "extra": []},
}
# More validation coils from a second validation seed: the threshold is a 0.5% quantile of the
# validation loose_wire scores; with ~330 loose_wire images that is the second-lowest score,
# i.e. one or two odd images decide it. ~1000 make the quantile a quantile.
COIL_VAL_EXTRA = {
    "val2": {"seed": 2203, "products": 1000, "extra": ["--loose-wire", "0.3", "--burr", "0.35",
                                                       "--both", "0.05"]},
    # At the plant's prevalence (synth defaults): its class shares weight the calibration, and
    # its coils make the coil policy's choice see the plant's mix of good coils.
    "val3": {"seed": 2204, "products": 1500, "extra": []},
}
PLANT_VAL = "val3"
# A second held-out seed at the plant's prevalence (coil figures only).
COIL_TEST_EXTRA = {
    "test2": {"seed": 3304, "products": 1500, "extra": []},
}
SURFACE_SPLITS = {
    "train": {"seed": 1111, "images": 1600},
    "val": {"seed": 2222, "images": 400},
    "test": {"seed": 3333, "images": 600},
}

TARGETS = {
    "coil inference median ms (batch 1, 1 core)": ("coils", "median_ms", 5.0),
    "surface mean Dice, 4 defect classes (held-out)": ("surfaces", "mean_dice_defects", 0.80),
    "surface image AUROC (held-out)": ("surfaces", "image_auroc_max_defect_probability", 0.98),
}


def generator_version(loupe: Path, kind: str) -> str:
    """The `generator` that this `loupe` binary writes into dataset.json (e.g. loupe-synth/1).

    `loupe synth` promises that the same generator version and options give byte-identical
    files, so a folder made with both can be reused instead of regenerated.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        count = "--products" if kind == "coils" else "--images"
        subprocess.run([str(loupe), "synth", kind, count, "1", "--size", "64", "--out", tmp],
                       check=True, stdout=subprocess.DEVNULL)
        return json.loads((Path(tmp) / data.DATASET).read_text())["generator"]


def generate(loupe: Path, kind: str, out: Path, args: list[str], seed: int) -> None:
    """Runs `loupe synth KIND` unless `out` already holds exactly that data set."""
    cmd = [str(loupe), "synth", kind, *args, "--seed", str(seed), "--out", str(out)]
    stamp = out / ".generated-by"
    if (stamp.is_file() and stamp.read_text() == " ".join(cmd[1:])
            and (out / data.MANIFEST).is_file()
            and data.read_dataset_info(out).get("generator") == generator_version(loupe, kind)):
        log(f"data: reusing {out} (same options and generator)")
        return
    if out.exists():
        shutil.rmtree(out)
    log(f"data: {' '.join(cmd)}")
    t = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    stamp.write_text(" ".join(cmd[1:]))
    log(f"data: {out.name} in {time.time() - t:.0f}s")


def _config(cfg, overrides: list[str]):
    """`cfg` with KEY=VALUE overrides (VALUE a Python literal, else a string)."""
    import ast

    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not hasattr(cfg, key):
            raise ValueError(f"unknown setting {item!r} for {type(cfg).__module__}.Config")
        try:
            v = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            v = value
        setattr(cfg, key, v)
    return cfg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loupe", type=Path, default=REPO / "target/release/loupe")
    ap.add_argument("--data", type=Path, default=TRAIN_DIR / "data")
    ap.add_argument("--runs", type=Path, default=TRAIN_DIR / "runs")
    ap.add_argument("--models", type=Path, default=REPO / "models")
    ap.add_argument("--only", choices=["coils", "surfaces"])
    ap.add_argument("--coil", action="append", default=[], metavar="KEY=VALUE",
                    help="override a classifier.Config field (recorded in the card), e.g. "
                         "crop_steps=500")
    ap.add_argument("--seg", action="append", default=[], metavar="KEY=VALUE",
                    help="override a segmenter.Config field (recorded in the card), e.g. epochs=2")
    ap.add_argument("--coil-reuse", nargs=2, type=Path, metavar=("MODEL_ONNX", "REPORT_JSON"),
                    help="skip coil training: use this model.onnx and its run report from an "
                         "earlier run of the same settings (threshold and figures recomputed)")
    ap.add_argument("--seg-reuse", nargs=2, type=Path, metavar=("MODEL_ONNX", "REPORT_JSON"),
                    help="skip segmenter training, like --coil-reuse")
    a = ap.parse_args(argv)
    try:
        coil_cfg = _config(classifier.Config(), a.coil)
        seg_cfg = _config(segmenter.Config(), a.seg)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not a.loupe.is_file():
        print(f"error: {a.loupe} not found: build it with `cargo build --release --bin loupe`",
              file=sys.stderr)
        return 2
    start = time.time()
    results: dict = {}
    try:
        if a.only in (None, "coils"):
            dirs = {}
            for split, s in (COIL_SPLITS | COIL_TRAIN_EXTRA | COIL_VAL_EXTRA
                             | COIL_TEST_EXTRA).items():
                dirs[split] = a.data / f"coils-{split}"
                generate(a.loupe, "coils", dirs[split],
                         ["--products", str(s["products"]), *s["extra"]], s["seed"])
            t = time.time()
            train_dirs = [dirs["train"], *(dirs[k] for k in COIL_TRAIN_EXTRA)]
            val_dirs = [dirs["val"], *(dirs[k] for k in COIL_VAL_EXTRA)]
            test_dirs = [dirs["test"], *(dirs[k] for k in COIL_TEST_EXTRA)]
            report = classifier.run(coil_cfg, train_dirs, val_dirs, test_dirs,
                                    a.models / "coil-classifier", a.runs / "coil-classifier.json",
                                    reuse=a.coil_reuse, plant_val=dirs[PLANT_VAL])
            results["coils"] = {**report["test"], **report["timing"],
                                "seconds": round(time.time() - t)}
            coil_targets = report["coil_targets"]
        if a.only in (None, "surfaces"):
            dirs = {}
            for split, s in SURFACE_SPLITS.items():
                dirs[split] = a.data / f"surfaces-{split}"
                generate(a.loupe, "surfaces", dirs[split], ["--images", str(s["images"])], s["seed"])
            t = time.time()
            report = segmenter.run(seg_cfg, dirs["train"], dirs["val"], dirs["test"],
                                   a.models / "surface-segmenter",
                                   a.runs / "surface-segmenter.json", reuse=a.seg_reuse)
            results["surfaces"] = {**report["test"], "seconds": round(time.time() - t)}
            seg_targets = report["fault_targets"]
    except data.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    total = round(time.time() - start)
    summary = {"seconds": total, "targets": {}}
    print("\n== targets (held-out data) ==")
    for name, (kind, key, target) in TARGETS.items():
        if kind not in results:
            continue
        value = results[kind][key]
        ok = value <= target if key == "median_ms" else value >= target
        summary["targets"][name] = {"value": value, "target": target, "met": ok}
        op = "<=" if key == "median_ms" else ">="
        print(f"  {'MET ' if ok else 'MISS'} {name}: {value} (target {op} {target})")
    if "coils" in results:
        for seed, conds in coil_targets.items():
            for cond, t in conds.items():
                name = f"coils seed {seed} {cond}: every defective coil stopped, camera false rejects cleared >= {t['cleared_target']:.0%}"
                summary["targets"][name] = {"value": t["cleared_rate"], "met": t["met"],
                                            "every_defective_stopped": t["every_defective_stopped"]}
                print(f"  {'MET ' if t['met'] else 'MISS'} {name}: cleared {t['cleared_rate']:.2%}"
                      f"{'' if t['every_defective_stopped'] else ', a defective coil passed'}")
    if "surfaces" in results:
        for cond, t in seg_targets.items():
            if cond == "clean":
                continue
            name = f"surfaces {cond}: mean Dice >= 0.80, AUROC >= 0.98, clean sheets flagged <= 10%"
            summary["targets"][name] = t
            print(f"  {'MET ' if t['met'] else 'MISS'} {name}: {t}")
    print(f"total {total // 60} min {total % 60} s")
    common.write_json(a.runs / "summary.json", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
