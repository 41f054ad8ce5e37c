"""Coil classifier {ok, burr, loose_wire}: train, choose the threshold, export, evaluate, card.

    python -m loupe_train.classifier --train D1 --val D2 --test D3 --out models/coil-classifier

Decision rule (written to the card): an image is `loose_wire` when p(loose_wire) >= threshold,
whatever the other probabilities; otherwise it is the larger of p(ok) and p(burr). The
threshold is chosen on the validation set only: the highest threshold whose loose_wire recall
there is >= the recall target, then lowered by `threshold_margin` in log-odds (the margin
buys robustness against the validation set's finite size). The held-out test set is used once,
for the figures in the card, never for a choice.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import cli, common, data, metrics
from .common import log

LABELS = data.COIL_LABELS
LOOSE = LABELS.index("loose_wire")


@dataclass
class Config:
    # The full 256 px photo: a short thin loose wire (9-17 px long, 1-1.4 px wide) fades to
    # a smudge when the photo is halved, and a learned stride-2 first layer keeps it.
    size: int = 256
    color_order: str = "RGB"
    mean: tuple = (0.5, 0.5, 0.5)
    std: tuple = (0.25, 0.25, 0.25)
    # Trunk: (channels, stride) of each 3x3 conv; the cell head reads the last one (stride 16).
    layers: tuple = ((16, 2), (16, 1), (16, 2), (32, 1), (32, 2), (64, 1), (64, 2), (96, 1),
                     (96, 1))
    # Phase 1: random crops (crop x crop px at the input scale) centred on defects or anywhere.
    crop: int = 96
    crop_steps: int = 5000
    crop_batch: int = 64
    crop_loose_share: float = 0.35
    crop_burr_share: float = 0.25
    lr: float = 2e-3
    # Phase 2: whole images, sampled with class shares proportional to count ** balance
    # (0 = as in the data, 1 = equal shares).
    full_epochs: int = 1
    full_batch: int = 32
    full_lr: float = 5e-4
    full_with_crops: bool = True
    # Steps per whole-image epoch (0 = one pass over the training images).
    full_steps: int = 400
    balance: float = 0.6
    weight_decay: float = 1e-4
    # Loss weights [ok/background, burr, loose_wire] of the image and of the cells (cells are
    # ~1% defect); missing a loose wire costs more than a false alarm.
    image_weights: tuple = (1.0, 1.0, 3.0)
    cell_weights: tuple = (1.0, 4.0, 8.0)
    recall_target: float = 0.995
    threshold_margin: float = 1.0
    seed: int = 7
    shift: int = 4
    brightness: float = 0.08
    contrast: float = 0.1
    # Photos are taken from above at an elevation: a mirror image is a plausible photo, an
    # upside-down or quarter-turned one is not.
    hflip: bool = True
    max_train_seconds: float = 0.0  # 0 = no limit; else stop early when exceeded
    threads: int = common.THREADS
    extra: dict = field(default_factory=dict)


def build_model(cfg: Config):
    import torch
    from torch import nn

    class CoilNet(nn.Module):
        """A small fully convolutional defect detector read out as an image classifier.

        The trunk maps the image to a grid of cells (stride 16: 16 x 16 at 256 px); a 1x1 conv
        scores each cell as background, burr or loose_wire. The image's logits are
        [0, max over cells of (burr - background), max over cells of (loose_wire -
        background)]: an image is as defective as its worst cell (multiple-instance
        learning). This matches the problem (a defect is a small thing somewhere on the
        outline), lets training use crops around the manifest's defect boxes with per-cell
        supervision, and makes the same weights work on any image size. The exported graph
        ends in a softmax, so its output is probabilities over [ok, burr, loose_wire].
        """

        def __init__(self):
            super().__init__()
            layers, cin = [], len(cfg.mean)
            for cout, stride in cfg.layers:
                layers += [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                           nn.ReLU(inplace=True)]
                cin = cout
            self.trunk = nn.Sequential(*layers)
            self.cells = nn.Conv2d(cin, len(LABELS), 1)
            self.stride = int(np.prod([s for _, s in cfg.layers]))
            self.export_probabilities = False

        def forward(self, x, with_cells: bool = False):
            c = self.cells(self.trunk(x))
            d = (c[:, 1:] - c[:, :1]).amax(dim=(2, 3))
            z = torch.cat([torch.zeros_like(d[:, :1]), d], dim=1)
            if with_cells:
                return z, c
            return torch.softmax(z, dim=1) if self.export_probabilities else z

    return CoilNet()


def _sample_epoch(labels: np.ndarray, balance: float, rng: np.random.Generator) -> np.ndarray:
    counts = np.bincount(labels, minlength=len(LABELS)).astype(np.float64)
    share = counts**balance
    share /= share.sum()
    p = share[labels] / counts[labels]
    return rng.choice(len(labels), size=len(labels), replace=True, p=p / p.sum())


def _defect_centres(ds: data.CoilSet, masks: np.ndarray) -> dict[int, tuple[list, np.ndarray]]:
    """Per defect class: (image, centre y, centre x) of its box pixels in each image, and a
    sampling weight per entry. Short loose wires (9-20 px) are the hardest to see, so a loose
    wire's weight is 30 / its shortest length in that image, clipped to [1, 3]."""
    out = {1: [], 2: []}
    weights = {1: [], 2: []}
    for i in np.flatnonzero(masks.reshape(len(masks), -1).max(1) > 0):
        for k in out:
            ys, xs = np.nonzero(masks[i] == k)
            if len(ys):
                out[k].append((int(i), int(ys.mean()), int(xs.mean())))
                lengths = [d.get("length_px") or 30.0 for d in ds.records[i].get("defects", [])
                           if d.get("kind") == LABELS[k]]
                w = 30.0 / max(min(lengths, default=30.0), 1.0) if k == LOOSE else 1.0
                weights[k].append(float(np.clip(w, 1.0, 3.0)))
    return {k: (out[k], np.array(weights[k]) / max(sum(weights[k]), 1e-9)) for k in out}


def _crop_batch(pixels, masks, centres, cfg: Config, rng: np.random.Generator):
    """A batch of crops: some centred (with jitter) on loose wires, some on burrs, the rest
    anywhere in any image. A crop's label is the worst class of which it holds at least half
    of that image's box pixels (a box corner alone is not a defect)."""
    import torch

    c, n, size = cfg.crop, cfg.crop_batch, pixels.shape[-1]
    xs, ms, ys = [], [], []
    for _ in range(n):
        r = rng.random()
        if r < cfg.crop_loose_share and centres[2][0]:
            entries, p = centres[2]
            i, cy, cx = entries[rng.choice(len(entries), p=p)]
        elif r < cfg.crop_loose_share + cfg.crop_burr_share and centres[1][0]:
            entries, p = centres[1]
            i, cy, cx = entries[rng.choice(len(entries), p=p)]
        else:
            i, cy, cx = int(rng.integers(len(pixels))), *(int(v) for v in rng.integers(0, size, 2))
        j = c // 3
        top = int(np.clip(cy - c // 2 + rng.integers(-j, j + 1), 0, size - c))
        left = int(np.clip(cx - c // 2 + rng.integers(-j, j + 1), 0, size - c))
        m = masks[i, top : top + c, left : left + c]
        label = 0
        for k in (1, 2):
            inside = int((m == k).sum())
            if inside and inside * 2 >= int((masks[i] == k).sum()):
                label = k
        xs.append(pixels[i, :, top : top + c, left : left + c])
        ms.append(m)
        ys.append(label)
    return (torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ms)),
            torch.tensor(ys, dtype=torch.long))


def train(cfg: Config, train_set: data.CoilSet, val_set: data.CoilSet | None = None):
    import torch
    import torch.nn.functional as F

    from .augment import augment

    common.set_threads(cfg.threads)
    common.seed_everything(cfg.seed)
    model = build_model(cfg)
    g = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    image_weights = torch.tensor(cfg.image_weights, dtype=torch.float32)
    cell_weights = torch.tensor(cfg.cell_weights, dtype=torch.float32)
    masks = train_set.defect_masks()
    centres = _defect_centres(train_set, masks)
    monitor = _monitor_subset(val_set, cfg.seed) if val_set is not None else None
    log(f"classifier: {len(train_set)} training images {train_set.counts()}, defect boxes "
        f"{ {LABELS[k]: len(v[0]) for k, v in centres.items()} }, "
        f"{sum(p.numel() for p in model.parameters())} parameters")

    def step(x, m, y, opt, sched):
        x, m = augment(x, g, m, hflip=cfg.hflip, shift=cfg.shift, brightness=cfg.brightness,
                       contrast=cfg.contrast)
        x = data.normalise(x, 1 / 255, cfg.mean, cfg.std)
        logits, cells = model(x, with_cells=True)
        target = F.max_pool2d(m[:, None].float(), model.stride)[:, 0].long()
        loss = (F.cross_entropy(logits, y, weight=image_weights)
                + F.cross_entropy(cells, target, weight=cell_weights))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        return loss.item(), int((logits.argmax(1) == y).sum())

    history, start = [], time.time()

    def report(phase, n, loss_sum, correct, total):
        entry = {"phase": phase, "steps": n, "loss": round(loss_sum / max(total, 1), 4),
                 "train_acc": round(correct / max(total, 1), 4),
                 "seconds": round(time.time() - start, 1)}
        if monitor is not None:
            p = predict_torch(model, monitor, cfg)
            lw = monitor.labels == LOOSE
            entry["monitor_acc"] = round(float((p.argmax(1) == monitor.labels).mean()), 4)
            entry["monitor_min_loose_p"] = round(float(p[lw, LOOSE].min()), 4)
            entry["monitor_others_with_loose_p_over_0.5"] = int((p[~lw, LOOSE] > 0.5).sum())
        history.append(entry)
        log(f"classifier {entry}")
        model.train()

    # Phase 1: crops.
    pixels = train_set.pixels
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = common.warmup_cosine(opt, cfg.crop_steps, warmup=0.05)
    model.train()
    loss_sum = correct = total = 0
    every = max(1, math.ceil(cfg.crop_steps / 6))
    for n in range(1, cfg.crop_steps + 1):
        x, m, y = _crop_batch(pixels, masks, centres, cfg, rng)
        loss, ok = step(x, m, y, opt, sched)
        loss_sum, correct, total = loss_sum + loss * len(y), correct + ok, total + len(y)
        if n % every == 0 or n == cfg.crop_steps:
            report("crops", n, loss_sum, correct, total)
            loss_sum = correct = total = 0
        if cfg.max_train_seconds and time.time() - start > cfg.max_train_seconds:
            log("classifier: time budget reached, stopping early")
            break

    # Phase 2: whole images, so that the max over all cells of a full photo is calibrated,
    # alternating with crop batches so that the small loose wires are not forgotten.
    if cfg.full_epochs:
        all_pixels = torch.from_numpy(pixels)
        all_masks = torch.from_numpy(masks)
        labels = torch.from_numpy(train_set.labels)
        steps = math.ceil(len(train_set) / cfg.full_batch)
        if cfg.full_steps:
            steps = min(steps, cfg.full_steps)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.full_lr, weight_decay=cfg.weight_decay)
        sched = common.warmup_cosine(opt, cfg.full_epochs * steps, warmup=0.05)
        for epoch in range(cfg.full_epochs):
            order = _sample_epoch(train_set.labels, cfg.balance, rng)
            loss_sum = correct = total = 0
            for s in range(steps):
                idx = torch.from_numpy(order[s * cfg.full_batch : (s + 1) * cfg.full_batch])
                loss, ok = step(all_pixels[idx], all_masks[idx], labels[idx], opt, sched)
                loss_sum, correct, total = loss_sum + loss * len(idx), correct + ok, total + len(idx)
                if cfg.full_with_crops:
                    step(*_crop_batch(pixels, masks, centres, cfg, rng), opt, None)
            report(f"full-{epoch + 1}", steps, loss_sum, correct, total)
    model.eval()
    return model, history


def _monitor_subset(ds: data.CoilSet, seed: int, others: int = 600) -> data.CoilSet:
    """Every loose_wire validation image plus a fixed sample of the rest, for progress logs."""
    rng = np.random.default_rng(seed)
    lw = np.flatnonzero(ds.labels == LOOSE)
    rest = np.flatnonzero(ds.labels != LOOSE)
    idx = np.sort(np.concatenate([lw, rng.choice(rest, min(others, len(rest)), replace=False)]))
    return data.CoilSet(ds.folder, ds.pixels[idx], ds.labels[idx], ds.camera_loose[idx],
                        [ds.product_ids[i] for i in idx], [ds.records[i] for i in idx], ds.info)


def predict_torch(model, ds: data.CoilSet, cfg: Config, batch: int = 256) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(ds), batch):
            x = data.normalise(torch.from_numpy(ds.pixels[i : i + batch]), 1 / 255, cfg.mean, cfg.std)
            y = model(x)
            out.append((y if model.export_probabilities else torch.softmax(y, 1)).numpy())
    return np.concatenate(out)


def predict_onnx(path: Path, ds: data.CoilSet, cfg: Config) -> np.ndarray:
    sess = common.ort_session(path, threads=cfg.threads)
    out = []
    for i in range(0, len(ds), 256):
        x = data.normalise(ds.pixels[i : i + 256], 1 / 255, cfg.mean, cfg.std)
        out.append(common.ort_predict(sess, x))
    return np.concatenate(out)


def choose_threshold(p_val: np.ndarray, y_val: np.ndarray, cfg: Config) -> dict:
    t_star = metrics.recall_threshold(p_val[y_val == LOOSE, LOOSE], cfg.recall_target)
    t_star = min(max(t_star, 1e-6), 1 - 1e-6)
    logit = math.log(t_star / (1 - t_star)) - cfg.threshold_margin
    t = 1 / (1 + math.exp(-logit))
    # Round down to 4 decimals (never above the chosen value): the card stores it as f32.
    t = math.floor(t * 1e4) / 1e4
    return {"threshold": t, "highest_meeting_target": round(t_star, 6),
            "margin_log_odds": cfg.threshold_margin, "recall_target": cfg.recall_target}


def decide(p: np.ndarray, threshold: float) -> np.ndarray:
    """The card's rule: loose_wire when p(loose_wire) >= threshold, else argmax(ok, burr)."""
    other = np.where(p[:, LABELS.index("burr")] > p[:, LABELS.index("ok")],
                     LABELS.index("burr"), LABELS.index("ok"))
    return np.where(p[:, LOOSE] >= threshold, LOOSE, other)


def evaluate(p: np.ndarray, ds: data.CoilSet, threshold: float) -> dict:
    y = ds.labels
    pred = decide(p, threshold)
    cm = metrics.confusion(y, pred, len(LABELS))
    flagged = pred == LOOSE
    lw = y == LOOSE
    false_alarms = ds.camera_loose & ~lw
    cleared = false_alarms & ~flagged
    # Products: flagged when any angle is; a loose_wire product is one with any loose_wire image.
    products: dict = {}
    for i, pid in enumerate(ds.product_ids):
        d = products.setdefault(pid, {"true": False, "model": False, "camera": False})
        d["true"] |= bool(lw[i])
        d["model"] |= bool(flagged[i])
        d["camera"] |= bool(ds.camera_loose[i])
    pt = np.array([d["true"] for d in products.values()])
    pm = np.array([d["model"] for d in products.values()])
    pc = np.array([d["camera"] for d in products.values()])
    cam_fa_products = pc & ~pt
    return {
        "images": int(len(y)),
        "counts": ds.counts(),
        "threshold": threshold,
        "loose_wire_recall": _ratio(int((flagged & lw).sum()), int(lw.sum())),
        "loose_wire_missed": int((lw & ~flagged).sum()),
        "camera_false_alarms": int(false_alarms.sum()),
        "camera_false_alarms_cleared": int(cleared.sum()),
        "camera_false_alarms_cleared_rate": _ratio(int(cleared.sum()), int(false_alarms.sum())),
        "camera_false_alarms_by_true_label": {
            l: int((false_alarms & (y == i)).sum()) for i, l in enumerate(LABELS) if i != LOOSE
        },
        "model_false_alarms": int((flagged & ~lw).sum()),
        "accuracy": _ratio(int((pred == y).sum()), int(len(y))),
        "accuracy_argmax": _ratio(int((p.argmax(1) == y).sum()), int(len(y))),
        "per_class": {
            k: {m: (round(v, 4) if isinstance(v, float) else v) for m, v in d.items()}
            for k, d in metrics.per_class(cm, LABELS).items()
        },
        "confusion": {"rows_true_cols_predicted": LABELS, "matrix": cm.tolist()},
        "products": {
            "products": int(len(pt)),
            "loose_wire_products": int(pt.sum()),
            "loose_wire_recall": _ratio(int((pm & pt).sum()), int(pt.sum())),
            "model_flagged_not_loose": int((pm & ~pt).sum()),
            "camera_flagged_not_loose": int(cam_fa_products.sum()),
            "camera_false_alarms_cleared": int((cam_fa_products & ~pm).sum()),
            "camera_false_alarms_cleared_rate": _ratio(
                int((cam_fa_products & ~pm).sum()), int(cam_fa_products.sum())),
        },
    }


def _ratio(a: int, b: int):
    return round(a / b, 5) if b else None


def card_text(cfg: Config, threshold: dict, report: dict, sizes: dict) -> str:
    t = threshold["threshold"]
    test = report["test"]
    head = f"""# Model card: read by the `classify` node (and `loupe eval`) to preprocess exactly as in training.
# Generated by models/train (python -m loupe_train.classifier); retrain, do not edit by hand.
name: coil-classifier
version: "1.0.0"
description: Coil image classifier (ok, burr, loose_wire) that re-checks the camera's loose_wire verdicts.
note: >-
  Trained on synthetic coils from `loupe synth coils` (seeds and sizes under `data`). Decision
  rule: an image is loose_wire when p(loose_wire) >= decision.threshold ({t}), chosen on the
  validation set for loose_wire recall >= {cfg.recall_target:.1%}; otherwise the larger of
  p(ok) and p(burr). Held-out test: loose_wire recall {test['loose_wire_recall']}, camera
  false alarms cleared {test['camera_false_alarms_cleared_rate']}.
input:
  # Tensor name in the ONNX graph.
  name: image
  # [batch, channels, height, width]; -1 = dynamic batch.
  shape: [-1, 3, {cfg.size}, {cfg.size}]
  layout: NCHW
  dtype: float32
  # Channel order the model expects.
  color_order: {cfg.color_order}
  # Stretch to the input size (no crop or padding); the `image` crate's Triangle filter,
  # which training reproduces exactly (models/train/loupe_train/data.py: resize_bilinear).
  resize: bilinear
  # value = (pixel * scale - mean[c]) / std[c], pixel in 0..=255, c in color_order.
  scale: 1/255
  mean: [{', '.join(str(m) for m in cfg.mean)}]
  std: [{', '.join(str(s) for s in cfg.std)}]
output:
  name: probabilities
  # `probabilities` (already softmaxed) or `logits` (the server applies softmax).
  semantics: probabilities
# Index i of the output is labels[i].
labels: [{', '.join(LABELS)}]
# Winning probability at or above which a decision counts as confident (classify.confident).
threshold: 0.9
"""
    extra = {
        "decision": {
            "rule": "loose_wire when p(loose_wire) >= threshold, else argmax over the other labels",
            "label": "loose_wire",
            "threshold": t,
            "chosen_on": "validation",
            "recall_target": cfg.recall_target,
            "highest_threshold_meeting_target": threshold["highest_meeting_target"],
            "margin_log_odds": cfg.threshold_margin,
        },
        "data": sizes,
        "training": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()
                     if k not in ("extra", "threads", "max_train_seconds")}
        | {"seconds": report["train_seconds"],
           "torch": report["torch"]}
        | ({"reused_trained_model": report["reused_trained_model"]}
           if "reused_trained_model" in report else {}),
        "metrics": {
            "test": _card_metrics(test),
            "validation": _card_metrics(report["validation"]),
            "inference": report["timing"],
            "onnx_vs_torch_max_abs_diff": report["onnx_vs_torch_max_abs_diff"],
            "model_bytes": report["model_bytes"],
            "parameters": report["parameters"],
        },
    }
    sep = """
# ---------------------------------------------------------------------------------------------
# Below: sections the Rust card loader (nodes/classify/src/card.rs, deny_unknown_fields) does
# not know yet. `decision` is the serving rule; `data`, `training` and `metrics` are records.
# ---------------------------------------------------------------------------------------------
"""
    return head + sep + common.yaml_block(extra) + "\n"


def _card_metrics(m: dict) -> dict:
    keys = ["images", "counts", "loose_wire_recall", "loose_wire_missed", "camera_false_alarms",
            "camera_false_alarms_cleared", "camera_false_alarms_cleared_rate",
            "model_false_alarms", "accuracy", "accuracy_argmax", "per_class", "confusion",
            "products"]
    return {k: m[k] for k in keys if k in m}


def run(cfg: Config, train_dir: Path | list[Path], val_dir: Path | list[Path], test_dir: Path,
        out: Path, report_path: Path | None = None, reuse: tuple[Path, Path] | None = None) -> dict:
    """Train, export, choose the threshold on validation, evaluate, write the card.

    `reuse` = (model.onnx, report .json) of an earlier run of the same configuration on the
    same training data: training is skipped and that model is exported as is, with its
    training record; the threshold choice and every figure are computed again (e.g. after the
    validation set grew). Training never looks at the validation or test sets.
    """
    import torch

    size = (cfg.size, cfg.size)
    t0 = time.time()
    train_dirs = train_dir if isinstance(train_dir, (list, tuple)) else [train_dir]
    train_set = data.concat_coils([data.load_coils(d, size, cfg.color_order) for d in train_dirs])
    val_dirs = val_dir if isinstance(val_dir, (list, tuple)) else [val_dir]
    val_set = data.concat_coils([data.load_coils(d, size, cfg.color_order) for d in val_dirs])
    test_set = data.load_coils(test_dir, size, cfg.color_order)
    log(f"classifier: data loaded in {time.time() - t0:.0f}s: train {train_set.counts()}, "
        f"val {val_set.counts()}, test {test_set.counts()}")
    out = Path(out)
    onnx_path = out / "model.onnx"
    example = data.normalise(torch.from_numpy(val_set.pixels[:2]), 1 / 255, cfg.mean, cfg.std)
    if reuse is None:
        t1 = time.time()
        model, history = train(cfg, train_set, val_set)
        train_seconds = round(time.time() - t1, 1)
        model.export_probabilities = True
        common.export_onnx(model, example, onnx_path, "image", "probabilities")
        p_val = predict_onnx(onnx_path, val_set, cfg)
        p_torch = predict_torch(model, val_set, cfg)
        diff = float(np.abs(p_val - p_torch).max())
        parameters = sum(p.numel() for p in model.parameters())
        torch_version = torch.__version__
        reused = None
    else:
        import json
        import shutil

        earlier = json.loads(Path(reuse[1]).read_text())
        out.mkdir(parents=True, exist_ok=True)
        if Path(reuse[0]).resolve() != onnx_path.resolve():
            shutil.copyfile(reuse[0], onnx_path)
        history, train_seconds = earlier["history"], earlier["train_seconds"]
        diff = earlier["onnx_vs_torch_max_abs_diff"]
        parameters, torch_version = earlier["parameters"], earlier["torch"]
        reused = {"onnx_sha256": common.sha256(onnx_path),
                  "why": "trained once; threshold and figures recomputed on the final splits"}
        log(f"classifier: reusing the trained model {reuse[0]} ({reused['onnx_sha256'][:12]})")
        p_val = predict_onnx(onnx_path, val_set, cfg)
    threshold = choose_threshold(p_val, val_set.labels, cfg)
    log(f"classifier: threshold {threshold}")
    p_test = predict_onnx(onnx_path, test_set, cfg)
    report = {
        "validation": evaluate(p_val, val_set, threshold["threshold"]),
        "test": evaluate(p_test, test_set, threshold["threshold"]),
        "threshold": threshold,
        "history": history,
        "train_seconds": train_seconds,
        "timing": common.time_batch1(onnx_path, example.numpy()),
        "onnx_vs_torch_max_abs_diff": float(f"{diff:.2e}"),
        "model_bytes": onnx_path.stat().st_size,
        "parameters": parameters,
        "torch": torch_version,
    }
    if reused:
        report["reused_trained_model"] = reused
    def describe(ds):
        return {"folder": common.repo_relative(ds.folder), "seed": ds.info.get("seed"),
                "products": len(set(ds.product_ids)), "images": len(ds), "counts": ds.counts(),
                "prevalence": ds.info.get("prevalence"),
                "generator": ds.info.get("generator", ds.info.get("command"))}

    sizes = {"train": describe(train_set), "validation": describe(val_set),
             "test": describe(test_set)}
    for name, ds in (("train", train_set), ("validation", val_set)):
        parts = getattr(ds, "parts", None)
        if parts:
            sizes[name] = {"total": {"images": len(ds), "counts": ds.counts()},
                           "parts": [describe(d) for d in parts]}
    (out / "model.yaml").write_text(card_text(cfg, threshold, report, sizes), encoding="utf-8")
    if report_path:
        common.write_json(report_path, report)
    log(f"classifier: test {report['test']['loose_wire_recall']=} "
        f"{report['test']['camera_false_alarms_cleared_rate']=} timing {report['timing']}")
    return report


def main(argv=None) -> int:
    return cli.main(__doc__, Config(), run, {"crop_steps": int, "full_epochs": int, "size": int, "seed": int,
                     "max_train_seconds": float}, argv)


if __name__ == "__main__":
    sys.exit(main())
