"""Tiny stand-in datasets in the `loupe synth` manifest formats, for the tests.

They are NOT the training data (that comes from the release `loupe` binary); they only let the
code paths (loading, checks, training, export, evaluation, card writing) run in seconds.

    python -m loupe_train.fake coils DIR --products 12 --seed 1
    python -m loupe_train.fake surfaces DIR --images 20 --seed 1
"""

from __future__ import annotations

import argparse
import json
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


def _write(out: Path, lines: list[dict], info: dict) -> None:
    with (out / "manifest.jsonl").open("w") as f:
        for r in lines:
            f.write(json.dumps(r) + "\n")
    (out / "dataset.json").write_text(json.dumps(info) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("kind", choices=["coils", "surfaces"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--products", type=int, default=12)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.kind == "coils":
        make_coils(a.out, a.products, a.seed)
    else:
        make_surfaces(a.out, a.images, a.seed)


if __name__ == "__main__":
    main()
