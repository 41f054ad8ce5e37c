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

from . import cli, common, data, metrics, policy
from . import faults as camera_faults
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
    # Hard examples, mined with the model itself before the whole-image phase (and before the
    # crops when starting from `init_from`): the training images whose loose_wire score is most
    # wrong — the `mine_share` highest-scoring images without a loose wire (clutter touching
    # the outline, long burrs) and the same share of lowest-scoring loose wires. This share of
    # each crop batch is centred on the hard negatives' best loose_wire cell (taken whole, the
    # rest of the crop rules unchanged), and this share of each whole-image batch is hard
    # images (half negatives, half loose wires). 0 = no mining.
    mine_share: float = 0.0
    crop_hard_share: float = 0.25
    full_hard_share: float = 0.5
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
    # Camera-fault augmentation (faults.Mix fields: random mixtures of blur, JPEG, exposure,
    # noise and tilt, some images clean), after the label-safe augmentation; {} = none.
    faults: dict = field(default_factory=lambda: camera_faults.Mix().record())
    # Start from an exported model (a folder with model.onnx, or an .onnx file) instead of
    # random weights: its fused weights are mapped onto the module and BatchNorm is frozen.
    init_from: str = ""
    # Calibration at plant prevalence (temperature, and a per-class bias when
    # calibration_bias), fitted on validation and baked into the graph.
    calibrate: bool = True
    calibration_bias: bool = True
    # Coil policy thresholds (policy.choose), on validation under every condition of
    # eval_faults: confirm lowered by policy_margin (log-odds) below the lowest defective
    # coil's score; override raised by override_margin above the good coils' quantile.
    policy_margin: float = 1.0
    # Multi-view: this many camera-flagged angles at or above the policy's `suspect` threshold
    # stop a coil together (policy.choose); 0 = off (one angle decides).
    suspect_angles: int = 2
    override_good_share: float = 0.005
    override_margin: float = 1.0
    eval_faults: tuple = tuple(camera_faults.GRID)
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
            # Calibration at plant prevalence (policy.fit_temperature): z / T + bias before the
            # softmax, baked into the exported graph once fitted (`set_calibration`).
            self.calibrated = False
            self.register_buffer("calib_scale", torch.ones(1))
            self.register_buffer("calib_bias", torch.zeros(len(LABELS)))

        def forward(self, x, with_cells: bool = False):
            c = self.cells(self.trunk(x))
            d = (c[:, 1:] - c[:, :1]).amax(dim=(2, 3))
            z = torch.cat([torch.zeros_like(d[:, :1]), d], dim=1)
            if with_cells:  # training: the raw logits
                return z, c
            if self.calibrated:
                z = z * self.calib_scale + self.calib_bias
            return torch.softmax(z, dim=1) if self.export_probabilities else z

    return CoilNet()


def set_calibration(model, temperature: float | None, bias=None) -> None:
    """Bakes p = softmax(z / temperature + bias) into the model (None: uncalibrated)."""
    import torch

    with torch.no_grad():
        if temperature is None:
            model.calibrated = False
            model.calib_scale.fill_(1.0)
            model.calib_bias.zero_()
            return
        model.calibrated = True
        model.calib_scale.fill_(1.0 / float(temperature))
        model.calib_bias.copy_(torch.tensor(
            [0.0] * len(LABELS) if bias is None else [float(b) for b in bias]))


def load_onnx_weights(model, onnx_path: Path) -> list:
    """The conv weights of an exported coil classifier (BatchNorm fused into each conv) mapped
    onto `model`: each conv gets the fused weight, its BatchNorm becomes a per-channel bias
    (mean 0, variance 1). A calibration baked into that graph is not read (the model's is
    left as it is). Returns the graph's [(channels, stride)]."""
    import onnx
    import torch
    from torch import nn

    from .finetune import _conv_chain

    proto = onnx.load(str(onnx_path))
    layers, weights = _conv_chain(proto, Path(onnx_path), len(LABELS),
                                  model.trunk[0].in_channels)
    convs = [m for m in model.trunk if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.trunk if isinstance(m, nn.BatchNorm2d)]
    if len(convs) != len(weights) - 1:
        raise ValueError(f"{onnx_path}: {len(weights) - 1} trunk convs, the model has {len(convs)}")
    with torch.no_grad():
        for conv, bn, (w, b) in zip(convs, norms, weights[:-1], strict=True):
            conv.weight.copy_(torch.tensor(w))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
            bn.weight.fill_(math.sqrt(1.0 + bn.eps))
            bn.bias.copy_(torch.tensor(b))
        w, b = weights[-1]
        model.cells.weight.copy_(torch.tensor(w))
        model.cells.bias.copy_(torch.tensor(b))
    model.eval()
    return layers


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


def _crop_batch(pixels, masks, centres, cfg: Config, rng: np.random.Generator, hard=None):
    """A batch of crops: some centred (with jitter) on loose wires, some on burrs, some (when
    `hard` holds mined (image, cell centre y, x) entries) on hard negatives, the rest anywhere
    in any image. A crop's label is the worst class of which it holds at least half
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
        elif (hard is not None and len(hard)
              and r < cfg.crop_loose_share + cfg.crop_burr_share + cfg.crop_hard_share):
            i, cy, cx = (int(v) for v in hard[rng.integers(len(hard))])
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


def mine_hard(model, train_set: data.CoilSet, cfg: Config) -> dict:
    """The training images the model is most wrong about (see `Config.mine_share`): hard
    negatives (image, best loose_wire cell centre y, x) and the indices of hard loose wires."""
    import torch

    model.eval()
    scores, where = [], []
    with torch.no_grad():
        for i in range(0, len(train_set), 256):
            x = data.normalise(torch.from_numpy(train_set.pixels[i : i + 256]), 1 / 255,
                               cfg.mean, cfg.std)
            _, c = model(x, with_cells=True)
            d = (c[:, LOOSE] - c[:, 0]).flatten(1)
            best, arg = d.max(1)
            scores.append(best.numpy())
            where.append(arg.numpy())
    scores, where = np.concatenate(scores), np.concatenate(where)
    width = cfg.size // model.stride
    loose = train_set.labels == LOOSE
    neg, pos = np.flatnonzero(~loose), np.flatnonzero(loose)
    hard_neg = neg[np.argsort(-scores[neg])[: max(1, int(len(neg) * cfg.mine_share))]]
    hard_pos = pos[np.argsort(scores[pos])[: max(1, int(len(pos) * cfg.mine_share))]]
    cy = where[hard_neg] // width * model.stride + model.stride // 2
    cx = where[hard_neg] % width * model.stride + model.stride // 2
    log(f"classifier: mined {len(hard_neg)} hard negatives (loose_wire cell score >= "
        f"{scores[hard_neg].min():.2f}; {int((train_set.labels[hard_neg] == 0).sum())} ok, "
        f"{int((train_set.labels[hard_neg] == 1).sum())} burr) and {len(hard_pos)} hard loose "
        f"wires (score <= {scores[hard_pos].max():.2f})")
    return {"cells": np.stack([hard_neg, cy, cx], 1), "negatives": hard_neg, "positives": hard_pos}


def train(cfg: Config, train_set: data.CoilSet, val_set: data.CoilSet | None = None):
    import torch
    import torch.nn.functional as F

    from .augment import augment

    common.set_threads(cfg.threads)
    common.seed_everything(cfg.seed)
    model = build_model(cfg)
    freeze_bn = bool(cfg.init_from)
    if cfg.init_from:
        src = common.resolve_model(cfg.init_from)
        layers = load_onnx_weights(model, src)
        if tuple(layers) != tuple(tuple(l) for l in cfg.layers):
            raise ValueError(f"{src}: layers {layers} differ from the configuration's {cfg.layers}")
        log(f"classifier: starting from {src} ({common.sha256(src)[:12]}), BatchNorm frozen")
    mix = camera_faults.Mix(**cfg.faults) if cfg.faults else None
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
        if mix is not None:
            x, m = camera_faults.mix_batch(x, g, mix, m)
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
        common.train_mode(model, freeze_bn)

    # Hard examples: mined now when starting from a trained model, else after the crops.
    hard = mine_hard(model, train_set, cfg) if cfg.mine_share and cfg.init_from else None
    common.train_mode(model, freeze_bn)

    # Phase 1: crops.
    pixels = train_set.pixels
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = common.warmup_cosine(opt, max(cfg.crop_steps, 1), warmup=0.05)
    common.train_mode(model, freeze_bn)
    loss_sum = correct = total = 0
    every = max(1, math.ceil(cfg.crop_steps / 6))
    for n in range(1, cfg.crop_steps + 1):
        x, m, y = _crop_batch(pixels, masks, centres, cfg, rng, hard and hard["cells"])
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
        if cfg.mine_share and hard is None:
            hard = mine_hard(model, train_set, cfg)
            common.train_mode(model, freeze_bn)
        n_hard = int(round(cfg.full_batch * cfg.full_hard_share)) if hard else 0
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
                idx = order[s * cfg.full_batch : (s + 1) * cfg.full_batch - n_hard]
                if n_hard:
                    idx = np.concatenate([
                        idx, rng.choice(hard["negatives"], n_hard - n_hard // 2),
                        rng.choice(hard["positives"], n_hard // 2)])
                idx = torch.from_numpy(idx)
                loss, ok = step(all_pixels[idx], all_masks[idx], labels[idx], opt, sched)
                loss_sum, correct, total = loss_sum + loss * len(idx), correct + ok, total + len(idx)
                if cfg.full_with_crops:
                    step(*_crop_batch(pixels, masks, centres, cfg, rng, hard and hard["cells"]),
                         opt, None)
                if cfg.max_train_seconds and time.time() - start > cfg.max_train_seconds:
                    log("classifier: time budget reached, stopping early")
                    steps = s + 1
                    break
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
    pol = report.get("policy")
    clean = test.get("coils", {}).get("clean", {})
    cal = report.get("calibration") or {}
    cal_text = (f"Probabilities are calibrated at plant prevalence (temperature "
                f"{cal['temperature']:.4g}, per-class bias, in the graph). " if cal.get("temperature")
                else "")
    if pol:
        rule_text = (f"""Coil policy
  (decision.policy): an angle stops the coil when the camera says loose_wire and
  p(loose_wire) >= confirm ({pol['confirm']}), or when p(loose_wire) >= override
  ({pol['override']}){_multiview_text(pol)}; chosen on validation coils under clean and faulted
  images. Image rule:
  loose_wire when p(loose_wire) >= decision.threshold ({t}), otherwise the larger of p(ok) and
  p(burr). Held-out coils (seed {sizes.get('test', {}).get('seed')}, clean): defective stopped
  {clean.get('defective_stopped')}/{clean.get('defective')}, camera false rejects cleared
  {clean.get('camera_false_rejects_cleared_rate')}.""")
    else:
        rule_text = (f"""Decision rule: an image is
  loose_wire when p(loose_wire) >= decision.threshold ({t}); otherwise the larger of p(ok) and
  p(burr).""")
    head = f"""# Model card: read by the `classify` node (and `loupe eval`) to preprocess exactly as in training.
# Generated by models/train (python -m loupe_train.classifier); retrain, do not edit by hand.
name: coil-classifier
version: "{cfg.extra.get('version', '1.1.0')}"
description: Coil image classifier (ok, burr, loose_wire) that re-checks the camera's loose_wire verdicts.
note: >-
  Trained on synthetic coils from `loupe synth coils` (seeds and sizes under `data`), with
  camera-fault augmentation (blur, JPEG, exposure, noise, tilt). {cal_text}{rule_text}
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
    decision = {
        "rule": "loose_wire when p(loose_wire) >= threshold, else argmax over the other labels",
        "label": "loose_wire",
        "threshold": t,
        "chosen_on": "validation",
    }
    if pol:
        decision["threshold_is"] = "policy.confirm"
        decision["policy"] = {
            "confirm": pol["confirm"],
            "override": pol["override"],
            **({"suspect": pol["suspect"], "suspect_angles": pol["suspect_angles"]}
               if pol.get("suspect") is not None else {}),
            "rule": "per angle, first match: review if the frame is unusable; stop if "
                    "camera_verdict == loose_wire and p(loose_wire) >= confirm; stop if "
                    "p(loose_wire) >= override; "
                    + ("suspect if camera_verdict == loose_wire and p(loose_wire) >= suspect; "
                       "else pass. A coil is stopped when any angle stops or when "
                       "suspect_angles angles are suspect or stop."
                       if pol.get("suspect") is not None else
                       "else pass. A coil is stopped when any angle is."),
            "chosen_on": "validation coils (" + ", ".join(
                str(p.get("seed")) for p in sizes["validation"].get("parts", [sizes["validation"]]))
                + ") under " + ", ".join(cfg.eval_faults),
            "confirm_rule": (f"lowest over conditions of the defective coils' best camera-flagged "
                             f"angle score ({pol['confirm_highest_meeting_target']}, decided by "
                             f"{pol['confirm_decided_by']}), lowered by {pol['margin_log_odds']} "
                             f"in log-odds"
                             if pol.get("suspect") is None else
                             f"with suspect, the pair that stops the fewest validation good "
                             f"coils (summed over conditions: "
                             f"{pol['multiview_good_stopped_summed']}) while every validation "
                             f"defective coil the camera flags is stopped under every condition "
                             f"with {pol['margin_log_odds']} log-odds to spare: its best "
                             f"camera-flagged score >= confirm, or its "
                             f"{pol['suspect_angles']}-th best >= suspect "
                             f"({pol['defective_coil_conditions_needing_multiview']} of "
                             f"{pol['defective_coil_conditions']} coil-conditions need the "
                             f"second rule)"),
            "override_rule": (f"highest over conditions of the {1 - pol['override_good_share']:.1%} "
                              f"quantile of the good coils' best camera-passed angle score "
                              f"({pol['override_quantile']}), raised by "
                              f"{pol['override_margin_log_odds']} in log-odds"
                              if pol["override_good_share"] else pol.get("override_why", "off")),
            "validation": pol["per_condition"],
        }
    if cal:
        decision["calibration"] = cal
    extra = {
        "decision": decision,
        "data": sizes,
        "training": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()
                     if k not in ("extra", "threads", "max_train_seconds")}
        | {"seconds": report["train_seconds"],
           "torch": report["torch"]}
        | ({"init": report["init"]} if report.get("init") else {})
        | ({"reused_trained_model": report["reused_trained_model"]}
           if "reused_trained_model" in report else {}),
        "metrics": {
            "test": _card_metrics(test),
            **{f"test_{k}": v for k, v in report.get("more_tests", {}).items()},
            "validation": _card_metrics(report["validation"]),
            **({"coil_targets": report["coil_targets"]} if report.get("coil_targets") else {}),
            "inference": report["timing"],
            "onnx_vs_torch_max_abs_diff": report["onnx_vs_torch_max_abs_diff"],
            **({"onnx_vs_calibrated_logits_max_abs_diff": report["onnx_vs_calibrated_max_abs_diff"]}
               if "onnx_vs_calibrated_max_abs_diff" in report else {}),
            "model_bytes": report["model_bytes"],
            "parameters": report["parameters"],
        },
    }
    sep = """
# ---------------------------------------------------------------------------------------------
# Below: sections the Rust card loader (nodes/classify/src/card.rs, deny_unknown_fields) does
# not know in detail. `decision` is the serving rule (label, threshold; policy and
# calibration are records); `data`, `training` and `metrics` are records.
# ---------------------------------------------------------------------------------------------
"""
    return head + sep + common.yaml_block(extra) + "\n"


def _multiview_text(pol: dict) -> str:
    if pol.get("suspect") is None:
        return ""
    return (f", or when {pol['suspect_angles']} camera-flagged angles have p(loose_wire) >= suspect "
            f"({pol['suspect']}) (multi-view)")


def _card_metrics(m: dict) -> dict:
    keys = ["images", "counts", "threshold", "loose_wire_recall", "loose_wire_missed",
            "camera_false_alarms", "camera_false_alarms_cleared",
            "camera_false_alarms_cleared_rate", "model_false_alarms", "accuracy",
            "accuracy_argmax", "per_class", "confusion", "products", "coils"]
    return {k: m[k] for k in keys if k in m}


_SESSIONS: dict = {}


def _logits_onnx(path: Path, pixels: np.ndarray, cfg: Config, threads: int) -> np.ndarray:
    key = (str(path), path.stat().st_mtime_ns, threads)
    if key not in _SESSIONS:
        _SESSIONS.clear()
        _SESSIONS[key] = common.ort_session(path, threads=threads)
    sess = _SESSIONS[key]
    out = []
    for i in range(0, len(pixels), 256):
        x = data.normalise(pixels[i : i + 256], 1 / 255, cfg.mean, cfg.std)
        out.append(common.ort_predict(sess, x))
    return np.concatenate(out).astype(np.float64)


def _folder_logits(logits_path: Path, ds: data.CoilSet, cfg: Config, conditions, needed_all: bool,
                   seed: int) -> dict:
    """Raw logits of every image (clean) and, per fault, of the images the policy can stop
    (all when `needed_all`, else those the camera flags and those of defective coils); NaN
    for the rest."""
    coils = policy.Coils(ds.product_ids, ds.labels, ds.camera_loose)
    needed = np.ones(len(ds), bool) if needed_all else (
        ds.camera_loose | coils.defective[coils.coil])
    idx = np.flatnonzero(needed)
    out = {}
    for k, spec in enumerate(conditions):
        t = time.time()
        z = np.full((len(ds), len(LABELS)), np.nan)
        if spec == "clean":
            z = _logits_onnx(logits_path, ds.pixels, cfg, cfg.threads)
        else:
            # The next chunk's faults (numpy, one thread) while ONNX Runtime runs this one.
            from concurrent.futures import ThreadPoolExecutor

            chunks = [idx[a : a + 512] for a in range(0, len(idx), 512)]
            fault = lambda j: camera_faults.apply_batch(  # noqa: E731
                spec, ds.pixels[chunks[j]], seed=seed * 1000 + k * 100 + j * 512)
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(fault, 0) if chunks else None
                for j, part in enumerate(chunks):
                    px = pending.result()
                    if j + 1 < len(chunks):
                        pending = pool.submit(fault, j + 1)
                    z[part] = _logits_onnx(logits_path, px, cfg, cfg.threads)
        out[spec] = z
        log(f"classifier: {ds.folder.name} {spec}: "
            f"{len(ds) if spec == 'clean' else len(idx)} images in {time.time() - t:.0f}s")
    return out


class _Split:
    """Labels, camera verdicts, product ids and per-condition logits of one or more folders,
    without their pixels (freed after each folder)."""

    def __init__(self):
        self.labels, self.camera, self.ids, self.z, self.parts = [], [], [], {}, []

    def add(self, ds: data.CoilSet, z: dict, describe: dict):
        seed = ds.info.get("seed")
        self.labels.append(ds.labels)
        self.camera.append(ds.camera_loose)
        self.ids += [f"{seed}/{p}" for p in ds.product_ids]
        for k, v in z.items():
            self.z.setdefault(k, []).append(v)
        self.parts.append(describe)

    def done(self):
        self.labels = np.concatenate(self.labels)
        self.camera = np.concatenate(self.camera)
        self.z = {k: np.concatenate(v) for k, v in self.z.items()}
        self.coils = policy.Coils(self.ids, self.labels, self.camera)
        return self

    def coilset(self) -> data.CoilSet:
        return data.CoilSet(Path("."), None, self.labels, self.camera, self.ids, [], {})


def _describe(ds: data.CoilSet) -> dict:
    return {"folder": common.repo_relative(ds.folder), "seed": ds.info.get("seed"),
            "products": len(set(ds.product_ids)), "images": len(ds), "counts": ds.counts(),
            "prevalence": ds.info.get("prevalence"),
            "generator": ds.info.get("generator", ds.info.get("command"))}


def _p_loose(split: _Split, cond: str, cal: dict) -> np.ndarray:
    z = split.z[cond]
    p = np.full(len(z), np.nan)
    ok = np.isfinite(z).all(1)
    if cal.get("temperature"):
        p[ok] = policy.calibrated(z[ok], cal["temperature"], cal["bias"])[:, LOOSE]
    else:
        p[ok] = policy.softmax(z[ok])[:, LOOSE]
    return p


def coil_targets(figures: dict) -> dict:
    """MET/MISS of issue 11's coil targets for one held-out seed: {condition: {...}}."""
    out = {}
    for cond, f in figures.items():
        need = 0.95 if cond == "clean" else 0.85
        rate = f["camera_false_rejects_cleared_rate"] or 0.0
        out[cond] = {"every_defective_stopped": f["defective_missed"] == 0,
                     "cleared_rate": rate, "cleared_target": need, "cleared_met": rate >= need,
                     "met": f["defective_missed"] == 0 and rate >= need}
    return out


def run(cfg: Config, train_dir: Path | list[Path], val_dir: Path | list[Path],
        test_dir: Path | list[Path], out: Path, report_path: Path | None = None,
        reuse: tuple[Path, Path] | None = None, plant_val: Path | None = None) -> dict:
    """Train (or fine-tune from `init_from`), calibrate at plant prevalence, choose the coil
    policy on validation under clean and faulted images, export, evaluate, write the card.

    `test_dir`: one or more held-out folders; the first gives `metrics.test` (image figures the
    Rust `loupe eval --check` compares, and coil figures per condition), the others
    `metrics.test_SEED` (coil figures). `plant_val`: the validation folder generated at the
    plant's prevalence (its class shares weight the calibration). `reuse` = (model.onnx,
    report .json): training is skipped, that model's weights are used (any calibration in it
    is ignored and fitted again) and everything after training is computed again.
    """
    import torch

    size = (cfg.size, cfg.size)
    t0 = time.time()
    common.set_threads(cfg.threads)
    train_dirs = train_dir if isinstance(train_dir, (list, tuple)) else [train_dir]
    val_dirs = list(val_dir) if isinstance(val_dir, (list, tuple)) else [val_dir]
    test_dirs = list(test_dir) if isinstance(test_dir, (list, tuple)) else [test_dir]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    init = None
    if cfg.init_from:
        src = common.resolve_model(cfg.init_from)
        init = {"from": cfg.init_from, "onnx_sha256": common.sha256(src),
                "batchnorm": "frozen (the source's fused statistics)"}
    train_parts = []
    if reuse is None:
        train_set = data.concat_coils([data.load_coils(d, size, cfg.color_order) for d in train_dirs])
        train_parts = [_describe(d) for d in getattr(train_set, "parts", [train_set])]
        train_total = {"images": len(train_set), "counts": train_set.counts()}
        monitor_set = data.load_coils(val_dirs[0], size, cfg.color_order)
        log(f"classifier: data loaded in {time.time() - t0:.0f}s: train {train_set.counts()}")
        t1 = time.time()
        model, history = train(cfg, train_set, monitor_set)
        train_seconds = round(time.time() - t1, 1)
        example = data.normalise(torch.from_numpy(monitor_set.pixels[:2]), 1 / 255, cfg.mean, cfg.std)
        del train_set, monitor_set
        parameters = sum(p.numel() for p in model.parameters())
        torch_version = torch.__version__
        reused = None
    else:
        import json

        earlier = json.loads(Path(reuse[1]).read_text())
        model = build_model(cfg)
        load_onnx_weights(model, Path(reuse[0]))
        history, train_seconds = earlier["history"], earlier["train_seconds"]
        parameters, torch_version = earlier["parameters"], earlier["torch"]
        init = earlier.get("init", init)
        train_parts, train_total = earlier.get("train_parts", []), earlier.get("train_total")
        reused = {"onnx_sha256": common.sha256(Path(reuse[0])),
                  "why": "trained once; calibration, policy and figures recomputed"}
        log(f"classifier: reusing the trained model {reuse[0]} ({reused['onnx_sha256'][:12]})")
        example = None
    model.eval()
    set_calibration(model, None)
    logits_path = out / ".logits.onnx"
    if example is None:
        example = torch.zeros(2, len(cfg.mean), cfg.size, cfg.size)
    model.export_probabilities = False
    common.export_onnx(model, example, logits_path, "image", "logits")
    conditions = list(cfg.eval_faults)
    needed_all = cfg.override_margin is not None and cfg.override_good_share > 0

    # Validation: logits per condition, folder by folder (pixels freed after each).
    val, plant_counts, p_torch_check = _Split(), None, None
    for d in val_dirs:
        ds = data.load_coils(d, size, cfg.color_order)
        val.add(ds, _folder_logits(logits_path, ds, cfg, conditions, needed_all,
                                   int(ds.info.get("seed") or 0)), _describe(ds))
        if plant_val is not None and Path(d).resolve() == Path(plant_val).resolve():
            plant_counts = ds.counts()
        if p_torch_check is None:
            with torch.no_grad():
                xs = data.normalise(torch.from_numpy(ds.pixels[:16]), 1 / 255, cfg.mean, cfg.std)
                p_torch_check = (xs.numpy(), model(xs).numpy().astype(np.float64))
        del ds
    val.done()

    # Calibration at plant prevalence.
    cal = {}
    if cfg.calibrate:
        share = plant_counts or {l: 1.0 for l in LABELS}
        w, w_class = policy.prevalence_weights(val.labels, share)
        z = val.z["clean"]
        fit = policy.fit_temperature(z, val.labels, w, with_bias=cfg.calibration_bias)
        p0 = policy.softmax(z)
        p1 = policy.calibrated(z, fit["temperature"], fit["bias"])
        total = sum(share.values())
        cal = {
            "method": "temperature" + (" + per-class log-prior bias" if cfg.calibration_bias else "")
                      + ": p = softmax(z / temperature + bias), z = the image logits (z_ok = 0); "
                        "weighted maximum likelihood on the validation images, each weighted by "
                        "plant share / validation share of its class",
            "temperature": round(fit["temperature"], 6),
            "bias": [round(b, 6) for b in fit["bias"]],
            "prevalence": {l: round(share[l] / total, 5) for l in LABELS},
            "prevalence_from": (f"image class shares of the plant-prevalence validation seed "
                                f"{common.repo_relative(Path(plant_val))}" if plant_counts
                                else "none (uniform)"),
            "class_weights": w_class,
            "nll_before": round(fit["nll_before"], 5), "nll_after": round(fit["nll_after"], 5),
            "ece_bins": 15,
            "ece_top_label_before": round(policy.ece(p0, val.labels, w), 5),
            "ece_top_label_after": round(policy.ece(p1, val.labels, w), 5),
            "ece_loose_wire_before": round(policy.ece_class(p0, val.labels, LOOSE, w), 5),
            "ece_loose_wire_after": round(policy.ece_class(p1, val.labels, LOOSE, w), 5),
            "ece_on": "validation (clean), reweighted to the plant prevalence",
        }
        log(f"classifier: calibration {cal}")
        set_calibration(model, cal["temperature"], cal["bias"])
    model.export_probabilities = True
    common.export_onnx(model, example, onnx_path, "image", "probabilities")
    # The exported graph vs the torch model and vs the calibration applied to the logits.
    xs, z16 = p_torch_check
    p_onnx = common.ort_predict(common.ort_session(onnx_path, threads=cfg.threads), xs)
    with torch.no_grad():
        p_torch = model(torch.from_numpy(xs)).numpy()
    diff = float(np.abs(p_onnx - p_torch).max())
    p_num = (policy.calibrated(z16, cal["temperature"], cal["bias"]) if cal
             else policy.softmax(z16))
    diff_cal = float(np.abs(p_onnx - p_num).max())
    log(f"classifier: onnx vs torch {diff:.2e}, vs calibrated logits {diff_cal:.2e}")

    # Policy thresholds on validation coils, every condition.
    pv = {c: _p_loose(val, c, cal) for c in conditions}
    chosen = policy.choose({c: (val.coils, np.nan_to_num(pv[c], nan=0.0)) for c in conditions},
                           margin=cfg.policy_margin,
                           override_good_share=cfg.override_good_share if needed_all else 0.0,
                           override_margin=cfg.override_margin if needed_all else 0.0,
                           complete=None if needed_all else {"clean"},
                           suspect_angles=cfg.suspect_angles or None)
    if not needed_all:
        chosen["override"] = 1.0
        clean = chosen["per_condition"].get("clean", {})
        chosen["override_why"] = (
            f"off (1.0; a probability reaches 1.0 only by float saturation): the camera flags "
            f"{int((val.coils.defective & val.coils.camera_stop).sum())} of "
            f"{int(val.coils.defective.sum())} validation defective coils, so an override can "
            f"only add the {clean.get('camera_never_flags_defective')} it misses (best clean "
            f"scores {clean.get('their_best_scores')}) while exposing every good coil the camera "
            f"passes to the model's own false alarms; the good coils' best camera-passed score "
            f"has its 99.5% quantile at {clean.get('good_passed_quantile')} on clean validation. "
            f"Under faults only camera-flagged images and defective coils' images were "
            f"evaluated (override_good_share = 0)")
    log(f"classifier: policy confirm {chosen['confirm']} override {chosen['override']}")
    threshold = {"threshold": chosen["confirm"],
                 "highest_meeting_target": chosen["confirm_highest_meeting_target"],
                 "margin_log_odds": cfg.policy_margin, "recall_target": None}
    pol = chosen
    p_val_clean = (policy.calibrated(val.z["clean"], cal["temperature"], cal["bias"]) if cal
                   else policy.softmax(val.z["clean"]))
    validation = evaluate(p_val_clean, val.coilset(), chosen["confirm"])
    multiview = (pol.get("suspect"), cfg.suspect_angles or 2)
    validation["coils"] = {c: val.coils.figures(np.nan_to_num(pv[c], nan=0.0), pol["confirm"],
                                                pol["override"], *multiview) for c in conditions}

    # Held-out folders: never used for a choice.
    tests, more = {}, {}
    test_sizes = []
    for k, d in enumerate(test_dirs):
        ds = data.load_coils(d, size, cfg.color_order)
        split = _Split()
        split.add(ds, _folder_logits(logits_path, ds, cfg, conditions, needed_all,
                                     int(ds.info.get("seed") or 0)), _describe(ds))
        if k == 0:
            p_test = predict_onnx(onnx_path, ds, cfg)
            first = evaluate(p_test, ds, chosen["confirm"])
        split.done()
        figs = {c: split.coils.figures(np.nan_to_num(_p_loose(split, c, cal), nan=0.0),
                                       pol["confirm"], pol["override"], *multiview)
                for c in conditions}
        test_sizes.append(_describe(ds))
        if k == 0:
            first["coils"] = figs
            tests = first
        else:
            more[str(ds.info.get("seed"))] = {"folder": common.repo_relative(ds.folder),
                                              "seed": ds.info.get("seed"), "coils": figs}
        del ds
    logits_path.unlink(missing_ok=True)
    targets = {str(test_sizes[0]["seed"]): coil_targets(tests["coils"])}
    for seed, m in more.items():
        targets[seed] = coil_targets(m["coils"])
    report = {
        "validation": validation,
        "test": tests,
        "more_tests": more,
        "coil_targets": targets,
        "threshold": threshold,
        "policy": pol,
        "calibration": cal,
        "init": init,
        "history": history,
        "train_seconds": train_seconds,
        "train_parts": train_parts,
        "train_total": train_total,
        "timing": common.time_batch1(onnx_path, example.numpy()),
        "onnx_vs_torch_max_abs_diff": float(f"{diff:.2e}"),
        "onnx_vs_calibrated_max_abs_diff": float(f"{diff_cal:.2e}"),
        "model_bytes": onnx_path.stat().st_size,
        "parameters": parameters,
        "torch": torch_version,
        "seconds_total": round(time.time() - t0, 1),
    }
    if reused:
        report["reused_trained_model"] = reused
    sizes = {
        "train": ({"total": train_total, "parts": train_parts} if len(train_parts) > 1
                  else (train_parts[0] if train_parts else {})),
        "validation": ({"total": {"images": int(len(val.labels)),
                                  "counts": {l: int((val.labels == i).sum())
                                             for i, l in enumerate(LABELS)}},
                        "parts": val.parts} if len(val.parts) > 1 else val.parts[0]),
        "test": test_sizes[0],
    }
    for extra_test in test_sizes[1:]:
        sizes[f"test_{extra_test['seed']}"] = extra_test
    (out / "model.yaml").write_text(card_text(cfg, threshold, report, sizes), encoding="utf-8")
    if report_path:
        common.write_json(report_path, report)
    print_coil_table(report)
    return report


def print_coil_table(report: dict) -> None:
    pol = report["policy"]
    multiview = ("" if pol.get("suspect") is None else
                 f", suspect {pol['suspect']} on {pol['suspect_angles']} angles")
    print(f"\n== coil policy: confirm {pol['confirm']}, override {pol['override']}{multiview} ==")
    rows = [(str(report["coil_targets"] and list(report["coil_targets"])[0]), report["test"]["coils"])]
    rows += [(seed, m["coils"]) for seed, m in report.get("more_tests", {}).items()]
    print(f"  {'seed':>5} {'condition':<13} {'defective':>10} {'good stop':>9} "
          f"{'camera':>6} {'cleared':>8}  target")
    for seed, figs in rows:
        for cond, f in figs.items():
            t = report["coil_targets"][seed][cond]
            print(f"  {seed:>5} {cond:<13} {f['defective_stopped']:>4}/{f['defective']:<5} "
                  f"{f['good_stopped']:>9} {f['good_camera_stopped']:>6} "
                  f"{(f['camera_false_rejects_cleared_rate'] or 0):>8.2%}  "
                  f"{'MET ' if t['met'] else 'MISS'} (all defective stopped, cleared >= "
                  f"{t['cleared_target']:.0%})")


def main(argv=None) -> int:
    return cli.main(__doc__, Config(), run, {"crop_steps": int, "full_epochs": int,
                     "full_steps": int, "size": int, "seed": int, "max_train_seconds": float,
                     "init_from": str, "lr": float, "full_lr": float, "suspect_angles": int}, argv)


if __name__ == "__main__":
    sys.exit(main())
