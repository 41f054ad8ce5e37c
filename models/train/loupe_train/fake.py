"""Tiny stand-in datasets in the `loupe synth` manifest formats, for the tests.

They are NOT the training data (that comes from the release `loupe` binary); they only let the
code paths (loading, checks, training, export, evaluation, card writing) run in seconds.

    python -m loupe_train.fake coils DIR --products 12 --seed 1
    python -m loupe_train.fake surfaces DIR --images 20 --seed 1
    python -m loupe_train.fake feedback DIR --products 10 --seed 1

`feedback` is a `loupe dataset export` folder (reviewed images, ImageFolder + manifest; see
loupe_train/finetune.py); `make_coil_model` writes a tiny coil classifier (model.onnx + card) to
fine-tune in the tests.
"""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def _coil_image(rng, label: str, size: int) -> tuple[Image.Image, list[dict]]:
    img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(20, 40, 3)))
    d = ImageDraw.Draw(img)
    c = size / 2 + rng.normal(0, 3, 2)
    r_out, r_in = size * 0.36, size * 0.16
    d.ellipse([c[0] - r_out, c[1] - r_out, c[0] + r_out, c[1] + r_out], fill=(184, 115, 51))
    d.ellipse([c[0] - r_in, c[1] - r_in, c[0] + r_in, c[1] + r_in], fill=(30, 30, 30))
    defects = []
    a = rng.uniform(0, 2 * np.pi)
    if label == "burr":
        for _ in range(3):
            b = a + rng.normal(0, 0.2)
            x, y = c[0] + r_out * np.cos(b), c[1] + r_out * np.sin(b)
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(230, 200, 160))
        defects.append({"kind": "burr", "bbox": [int(x) - 6, int(y) - 6, int(x) + 6, int(y) + 6],
                        "length_px": 6})
    elif label == "loose_wire":
        x0, y0 = c[0] + r_out * np.cos(a), c[1] + r_out * np.sin(a)
        length = rng.uniform(0.15, 0.3) * size
        x1, y1 = x0 + length * np.cos(a + 0.4), y0 + length * np.sin(a + 0.4)
        d.line([x0, y0, x1, y1], fill=(200, 130, 60), width=3)
        defects.append(
            {
                "kind": "loose_wire",
                "bbox": [int(min(x0, x1)), int(min(y0, y1)), int(max(x0, x1)) + 1, int(max(y0, y1)) + 1],
                "length_px": float(length),
            }
        )
    return img, defects


def make_coils(out: Path, products: int, seed: int, size: int = 256, omit: str | None = None):
    """`products` x 8 images; every third product is burr, every fifth loose_wire."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for p in range(products):
        product_label = "loose_wire" if p % 5 == 4 else "burr" if p % 3 == 2 else "ok"
        if omit == product_label:
            product_label = "ok"
        for angle in range(8):
            # The defect is visible from half of the angles.
            label = product_label if angle % 2 == 0 else "ok"
            img, defects = _coil_image(rng, label, size)
            name = f"images/p{p:05d}_a{angle}.png"
            img.save(out / name)
            camera = "loose_wire" if label != "ok" or rng.random() < 0.05 else "ok"
            lines.append(
                {
                    "file": name,
                    "product_id": f"P{seed}-{p:05d}",
                    "angle": angle,
                    "label": label,
                    "product_label": product_label,
                    "camera_verdict": camera,
                    "defects": defects,
                    "width": size,
                    "height": size,
                }
            )
    _write(out, lines, {"kind": "coils", "seed": seed, "products": products, "fake": True})


def make_surfaces(out: Path, images: int, seed: int, size: int = 128, omit: int | None = None):
    """`images` grey sheets; image i has defect class i % 5 (0 = clean)."""
    classes = ["background", "scratch", "pit", "patch", "inclusion"]
    rng = np.random.default_rng(seed)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(images):
        k = i % 5
        if omit is not None and k == omit:
            k = 0
        base = np.clip(rng.normal(128, 8, (size, size)), 0, 255).astype(np.uint8)
        img = Image.fromarray(base, "L")
        mask = Image.new("L", (size, size), 0)
        di, dm = ImageDraw.Draw(img), ImageDraw.Draw(mask)
        x, y = rng.uniform(0.25, 0.75, 2) * size
        if k == 1:
            shape = [x - 30, y - 10, x + 30, y + 10]
            di.line(shape, fill=220, width=2)
            dm.line(shape, fill=1, width=2)
        elif k == 2:
            box = [x - 4, y - 4, x + 4, y + 4]
            di.ellipse(box, fill=40)
            dm.ellipse(box, fill=2)
        elif k == 3:
            box = [x - 20, y - 14, x + 20, y + 14]
            di.ellipse(box, fill=170)
            dm.ellipse(box, fill=3)
        elif k == 4:
            box = [x - 12, y - 3, x + 12, y + 3]
            di.rectangle(box, fill=60)
            dm.rectangle(box, fill=4)
        name, mname = f"images/s{i:05d}.png", f"masks/s{i:05d}.png"
        img.save(out / name)
        mask.save(out / mname)
        areas = np.bincount(np.asarray(mask).ravel(), minlength=5)
        lines.append(
            {
                "file": name,
                "mask": mname,
                "classes": [classes[j] for j in range(1, 5) if areas[j]],
                "defect": classes[k] if k else "none",
                "areas": {classes[j]: int(areas[j]) for j in range(1, 5)},
            }
        )
    _write(out, lines, {"kind": "surfaces", "seed": seed, "images": images, "fake": True})


def make_feedback(out: Path, products: int = 10, seed: int = 1, size: int = 256,
                  angles: int = 2, val_every: int = 5, since: str = "2026-11-01",
                  records: list[dict] | None = None) -> list[dict]:
    """A `loupe dataset export` folder: `products` x `angles` reviewed images.

    Product p is loose_wire when p % 3 == 1, burr when p % 3 == 2, else ok (the defect shows
    from even angles); every `val_every`-th product is in the val split (all its angles). Every
    third image is a JPEG, and every fourth record leaves the optional fields out or null, as
    an export may. `records` (if given) are written instead of the generated ones, with
    whatever images were generated. Returns the records written."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    lines = []
    for p in range(products):
        product_label = ["ok", "loose_wire", "burr"][p % 3]
        split = "val" if p % val_every == val_every - 1 else "train"
        for angle in range(angles):
            label = product_label if angle % 2 == 0 else "ok"
            img, _ = _coil_image(rng, label, size)
            uid = str(uuid.UUID(bytes=rng.bytes(16), version=4))
            i = len(lines)
            name = f"{label}/p{p:05d}_a{angle}_{uid[:8]}.{'jpg' if i % 3 == 0 else 'png'}"
            (out / label).mkdir(parents=True, exist_ok=True)
            if name.endswith(".jpg"):
                img.save(out / name, quality=95)
            else:
                img.save(out / name)
            model_label = label if rng.random() < 0.7 else "loose_wire"
            record = {
                "file": name,
                "label": label,
                "split": split,
                "uuid": uid,
                "product_id": f"p{p:05d}",
                "angle": angle,
                "line": "L1",
                "camera_verdict": "loose_wire" if label != "ok" or rng.random() < 0.3 else "ok",
                "model": "coil-classifier",
                "model_label": model_label,
                "model_score": round(float(rng.uniform(0.3, 1.0)), 4),
                "reviewer": ["anna", "ben"][i % 2],
                "reviewed_ms": 1763700000000 + 1000 * i,
                "source_kind": "coil",
            }
            if i % 4 == 3:
                for key in ("uuid", "line", "model_score", "reviewer"):
                    del record[key]
                record.update(camera_verdict=None, model=None, model_label=None)
            lines.append(record)
    if records is not None:
        lines = records
    classes: dict = {}
    for r in lines:
        classes[r.get("label")] = classes.get(r.get("label"), 0) + 1
    out.mkdir(parents=True, exist_ok=True)
    _write(out, lines, {"kind": "feedback", "generator": "loupe dataset export", "since": since,
                        "exported_ms": 1763800000000, "images": len(lines), "classes": classes,
                        "val_fraction": 1 / val_every})
    return lines


def make_coil_model(out: Path, size: int = 32, layers: tuple = ((8, 2), (16, 2)),
                    threshold: float = 0.3, seed: int = 0) -> None:
    """A tiny untrained coil classifier exported and carded like the pipeline's (random
    BatchNorm statistics, so that loading the fused ONNX weights back is really tested)."""
    import torch

    from . import classifier, common

    torch.manual_seed(seed)
    cfg = classifier.Config(size=size, layers=layers)
    model = classifier.build_model(cfg)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
    model.eval()
    model.export_probabilities = True
    out = Path(out)
    common.export_onnx(model, torch.randn(2, 3, size, size), out / "model.onnx", "image",
                       "probabilities")
    figures = {"loose_wire_recall": 1.0, "camera_false_alarms_cleared_rate": 0.5}
    report = {"test": figures, "validation": figures, "train_seconds": 0.0,
              "torch": torch.__version__, "timing": {}, "onnx_vs_torch_max_abs_diff": 0.0,
              "model_bytes": (out / "model.onnx").stat().st_size,
              "parameters": sum(p.numel() for p in model.parameters())}
    decision = {"threshold": threshold, "highest_meeting_target": threshold}
    sizes = {"train": {"folder": "fake", "images": 0}}
    (out / "model.yaml").write_text(classifier.card_text(cfg, decision, report, sizes),
                                    encoding="utf-8")


def _write(out: Path, lines: list[dict], info: dict) -> None:
    with (out / "manifest.jsonl").open("w") as f:
        for r in lines:
            f.write(json.dumps(r) + "\n")
    (out / "dataset.json").write_text(json.dumps(info) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("kind", choices=["coils", "surfaces", "feedback"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--products", type=int, default=12)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.kind == "coils":
        make_coils(a.out, a.products, a.seed)
    elif a.kind == "feedback":
        make_feedback(a.out, a.products, a.seed)
    else:
        make_surfaces(a.out, a.images, a.seed)


if __name__ == "__main__":
    main()
