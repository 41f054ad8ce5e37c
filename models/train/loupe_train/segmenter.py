"""Surface-defect segmenter: a small U-Net over {background, scratch, pit, patch, inclusion}.

    python -m loupe_train.segmenter --train D1 --val D2 --test D3 --out models/surface-segmenter

Output: per-pixel class probabilities [N, 5, H, W] (softmax inside the graph).
Pixel rule: the class of a pixel is the argmax over the 5 probabilities.
Image rule: score = max over pixels of 1 - p(background); an image is defective when
score >= image_threshold, chosen on the validation set (the highest threshold with defect-image
recall >= `image_recall_target` there). The held-out set is only used for the card's figures.

Dice per defect class is pooled over the whole held-out set at the model's resolution:
2 TP / (2 TP + FP + FN) counting pixels, argmax prediction vs the mask (resized with NEAREST to
the input size when it differs); mean Dice is the mean over the 4 defect classes.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import cli, common, data, metrics
from . import faults as camera_faults
from .common import log

CLASSES = data.SURFACE_CLASSES


@dataclass
class Config:
    # Model input = the full 256 px image (thin scratches and small pits do not survive
    # downscaling). Training uses random `crop` px crops (the network is fully convolutional);
    # crop = size trains on whole sheets, which a large patch (up to ~170 px across) needs:
    # its interior only differs from the sheet's own mill-scale blotches by its soft edge and
    # texture, so the network must see the whole blotch. Crops are cheaper (more steps in the
    # same CPU time); the last epochs use whole sheets, as served.
    size: int = 256
    crop: int = 192
    # The last `full_size_epochs` epochs train on whole sheets (crop = size).
    full_size_epochs: int = 8
    color_order: str = "GRAY"
    mean: tuple = (0.5,)
    std: tuple = (0.25,)
    # Channels per level: base * multipliers. Level 0 is one full-resolution conv; each
    # further level halves the resolution (a stride-2 conv), so len(multipliers) - 1 steps
    # down (5 by default: the bottleneck is 8 x 8 at 256 px and its 3x3 convs see the whole
    # sheet). `reps`: convs per encoder level after the first (the decoder uses one fewer
    # at full and half resolution, where convs are costly on a CPU).
    base: int = 8
    multipliers: tuple = (1, 2, 4, 6, 8, 12)
    reps: int = 2
    # Global context: the bottleneck's mean over the image is mixed back into every cell
    # (tells a patch from the sheet's own mill scale by comparing with the whole sheet).
    context: bool = True
    epochs: int = 16
    batch: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-4
    dice_weight: float = 1.0
    image_recall_target: float = 0.99
    seed: int = 11
    shift: int = 0
    brightness: float = 0.06
    contrast: float = 0.1
    # The sheet is rolled horizontally (grain, inclusions along it): mirror flips keep that,
    # quarter turns would not.
    hflip: bool = True
    vflip: bool = True
    # Camera-fault augmentation (faults.Mix fields), after the label-safe augmentation; the
    # tilt turns the mask too (nearest); {} = none.
    faults: dict = field(default_factory=lambda: camera_faults.Mix().record())
    # Start from an exported model (folder or .onnx): fused weights mapped onto the module,
    # BatchNorm frozen; "" = random weights.
    init_from: str = ""
    # Image threshold: the lowest threshold at which, on validation under every condition of
    # eval_faults, at most image_fpr_target of the clean sheets are flagged.
    image_fpr_target: float = 0.08
    eval_faults: tuple = ("clean", "blur:1.5", "exposure:1.3", "noise:8")
    max_train_seconds: float = 0.0
    threads: int = common.THREADS
    extra: dict = field(default_factory=dict)


def build_model(cfg: Config):
    import torch
    import torch.nn.functional as F
    from torch import nn

    def conv(cin, cout, stride=1):
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True)]

    widths = [cfg.base * m for m in cfg.multipliers]
    cin = len(cfg.mean)

    class UNet(nn.Module):
        """An encoder-decoder with skips (U-Net), built for CPU speed.

        Level 0: one 3x3 conv at full resolution; level k: a stride-2 3x3 conv then
        `reps - 1` more; at the bottom a global-context branch (mean over the image, 1x1
        conv, added back). Decoder: bilinear 2x upsampling, concatenation with the skip,
        3x3 convs; a 1x1 head gives the 5 class logits per pixel at full resolution.
        """

        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(*conv(cin, widths[0]))
            self.down = nn.ModuleList()
            c = widths[0]
            for w in widths[1:]:
                layers = conv(c, w, 2)
                for _ in range(cfg.reps - 1):
                    layers += conv(w, w)
                self.down.append(nn.Sequential(*layers))
                c = w
            self.context = (nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU(inplace=True))
                            if cfg.context else None)
            self.up = nn.ModuleList()
            for level in range(len(widths) - 2, -1, -1):
                w = widths[level]
                layers = conv(c + w, w)
                for _ in range(cfg.reps - 1 - (1 if level <= 1 else 0)):
                    layers += conv(w, w)
                self.up.append(nn.Sequential(*layers))
                c = w
            self.head = nn.Conv2d(c, len(CLASSES), 1)
            self.export_probabilities = False

        def forward(self, x):
            x = self.stem(x)
            skips = [x]
            for block in self.down:
                x = block(x)
                skips.append(x)
            skips.pop()
            if self.context is not None:
                x = x + self.context(x.mean(dim=(2, 3), keepdim=True))
            for block in self.up:
                skip = skips.pop()
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
                x = block(torch.cat([x, skip], 1))
            z = self.head(x)
            return torch.softmax(z, dim=1) if self.export_probabilities else z

    return UNet()


def load_onnx_weights(model, onnx_path: Path) -> None:
    """The exported U-Net's weights (each BatchNorm fused into its conv) mapped back onto
    `model`: convs in graph order = the module's convs in order; a conv followed by a
    BatchNorm gets the fused weight and the BatchNorm becomes its bias (mean 0, variance 1)."""
    import onnx
    import torch
    from onnx import numpy_helper
    from torch import nn

    proto = onnx.load(str(onnx_path))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    mods = list(model.modules())
    pairs = []
    for k, m in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            bn = mods[k + 1] if k + 1 < len(mods) and isinstance(mods[k + 1], nn.BatchNorm2d) else None
            pairs.append((m, bn))
    if len(pairs) != len(convs):
        raise ValueError(f"{onnx_path}: {len(convs)} convs in the graph, {len(pairs)} in the model")
    with torch.no_grad():
        for (conv, bn), node in zip(pairs, convs):
            w = inits[node.input[1]]
            b = inits[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise ValueError(f"{onnx_path}: conv {node.name} {w.shape} vs {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.tensor(w))
            if bn is not None:
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0)
                bn.weight.fill_(math.sqrt(1.0 + bn.eps))
                bn.bias.copy_(torch.tensor(b))
            else:
                conv.bias.copy_(torch.tensor(b))
    model.eval()


def train(cfg: Config, train_set: data.SurfaceSet, val_set: data.SurfaceSet | None = None):
    import torch
    import torch.nn.functional as F

    from .augment import augment

    common.set_threads(cfg.threads)
    common.seed_everything(cfg.seed)
    model = build_model(cfg)
    freeze_bn = bool(cfg.init_from)
    if cfg.init_from:
        src = common.resolve_model(cfg.init_from)
        load_onnx_weights(model, src)
        log(f"segmenter: starting from {src} ({common.sha256(src)[:12]}), BatchNorm frozen")
    mix = camera_faults.Mix(**cfg.faults) if cfg.faults else None
    # channels_last: oneDNN's fast path for the few-channel convs at high resolution.
    model = model.to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    steps = math.ceil(len(train_set) / cfg.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = common.warmup_cosine(opt, cfg.epochs * steps)
    # Class weights: inverse square root of the pixel share, normalised to mean 1.
    counts = np.array(list(train_set.class_pixels().values()), dtype=np.float64)
    w = (counts.sum() / counts) ** 0.5
    weights = torch.tensor(w / w.mean(), dtype=torch.float32)
    pixels = torch.from_numpy(train_set.pixels)
    masks = torch.from_numpy(train_set.masks)
    log(f"segmenter: {len(train_set)} training images, pixel counts {train_set.class_pixels()}, "
        f"class weights {np.round(weights.numpy(), 3).tolist()}, "
        f"{sum(p.numel() for p in model.parameters())} parameters")
    history = []
    start = time.time()
    for epoch in range(cfg.epochs):
        common.train_mode(model, freeze_bn)
        order = rng.permutation(len(train_set))
        crop = cfg.size if epoch >= cfg.epochs - cfg.full_size_epochs else min(cfg.crop, cfg.size)
        loss_sum, n = 0.0, 0
        for s in range(steps):
            idx = torch.from_numpy(order[s * cfg.batch : (s + 1) * cfg.batch])
            x, y = augment(pixels[idx], g, masks[idx], hflip=cfg.hflip, vflip=cfg.vflip,
                           shift=cfg.shift, crop=crop,
                           brightness=cfg.brightness, contrast=cfg.contrast)
            if mix is not None:
                x, y = camera_faults.mix_batch(x, g, mix, y)
            x = data.normalise(x, 1 / 255, cfg.mean, cfg.std).contiguous(
                memory_format=torch.channels_last)
            y = y.long()
            logits = model(x)
            loss = F.cross_entropy(logits, y, weight=weights)
            if cfg.dice_weight:
                p = torch.softmax(logits, 1)[:, 1:]
                onehot = F.one_hot(y, len(CLASSES)).permute(0, 3, 1, 2)[:, 1:].float()
                inter = (p * onehot).sum(dim=(0, 2, 3))
                denom = p.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
                dice = (2 * inter + 1) / (denom + 1)
                loss = loss + cfg.dice_weight * (1 - dice.mean())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            n += len(idx)
            if cfg.max_train_seconds and time.time() - start > cfg.max_train_seconds:
                break  # the epoch's entry below ends training
        entry = {"epoch": epoch + 1, "steps": n // max(cfg.batch, 1), "crop": crop,
                 "loss": round(loss_sum / n, 4),
                 "seconds": round(time.time() - start, 1)}
        last = epoch + 1 == cfg.epochs or (
            cfg.max_train_seconds and time.time() - start > cfg.max_train_seconds)
        if val_set is not None and ((epoch + 1) % 2 == 0 or last):
            if True:
                probs = predict_torch(model, val_set, cfg)
                d = metrics.dice_from_counts(
                    metrics.dice_counts(probs.argmax(1), val_set.masks, len(CLASSES)))
                entry["val_dice"] = [round(float(v), 3) for v in d[1:]]
        history.append(entry)
        log(f"segmenter epoch {entry}")
        if cfg.max_train_seconds and time.time() - start > cfg.max_train_seconds:
            log("segmenter: time budget reached, stopping early")
            break
    model = model.to(memory_format=torch.contiguous_format)
    model.eval()
    return model, history


def predict_torch(model, ds: data.SurfaceSet, cfg: Config, batch: int = 32) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(ds), batch):
            x = data.normalise(torch.from_numpy(ds.pixels[i : i + batch]), 1 / 255, cfg.mean, cfg.std)
            y = model(x)
            out.append((y if model.export_probabilities else torch.softmax(y, 1)).numpy())
    return np.concatenate(out)


def predict_onnx(path: Path, ds: data.SurfaceSet, cfg: Config):
    """(argmax classes [N, H, W] uint8, max defect probability [N], defect pixels [N])."""
    sess = common.ort_session(path, threads=cfg.threads)
    name = sess.get_inputs()[0].name
    classes, score, area = [], [], []
    for i in range(0, len(ds), 32):
        x = data.normalise(ds.pixels[i : i + 32], 1 / 255, cfg.mean, cfg.std)
        p = sess.run(None, {name: x})[0]
        c = p.argmax(1).astype(np.uint8)
        classes.append(c)
        score.append((1.0 - p[:, 0]).reshape(len(p), -1).max(1))
        area.append((c > 0).reshape(len(p), -1).sum(1))
    return np.concatenate(classes), np.concatenate(score), np.concatenate(area)


def evaluate(classes, score, area, ds: data.SurfaceSet, image_threshold: float) -> dict:
    counts = metrics.dice_counts(classes, ds.masks, len(CLASSES))
    dice = metrics.dice_from_counts(counts)
    defective = ds.has_defect()
    flagged = score >= image_threshold
    pixel_acc = float((classes == ds.masks).mean())
    return {
        "images": int(len(ds)),
        "defective_images": int(defective.sum()),
        "dice": {CLASSES[i]: round(float(dice[i]), 4) for i in range(1, len(CLASSES))},
        "mean_dice_defects": round(float(np.nanmean(dice[1:])), 4),
        "dice_background": round(float(dice[0]), 4),
        "pixel_accuracy": round(pixel_acc, 5),
        "image_auroc_max_defect_probability": round(metrics.auroc(score, defective), 5),
        "image_auroc_defect_area": round(metrics.auroc(area, defective), 5),
        "image_threshold": image_threshold,
        "image_recall": _ratio(int((flagged & defective).sum()), int(defective.sum())),
        "image_false_positive_rate": _ratio(int((flagged & ~defective).sum()),
                                            int((~defective).sum())),
        "pixel_counts": {CLASSES[i]: {"tp": int(counts[i, 0]), "fp": int(counts[i, 1]),
                                      "fn": int(counts[i, 2])} for i in range(len(CLASSES))},
    }


def _ratio(a, b):
    return round(a / b, 5) if b else None


def _brief(e: dict) -> dict:
    """The figures of one condition: Dice, AUROC, clean sheets flagged, recall."""
    return {"mean_dice_defects": e["mean_dice_defects"], "dice": e["dice"],
            "image_auroc": e["image_auroc_max_defect_probability"],
            "clean_sheets_flagged": e["image_false_positive_rate"],
            "image_recall": e["image_recall"]}


def _fault_targets(e: dict) -> dict:
    fpr = e["image_false_positive_rate"]
    out = {"mean_dice": e["mean_dice_defects"] >= 0.80,
           "auroc": e["image_auroc_max_defect_probability"] >= 0.98,
           "clean_sheets_flagged": fpr is not None and fpr <= 0.10}
    return out | {"met": all(out.values())}


def _met(value, target) -> str:
    return "met" if value is not None and value >= target else "missed"


def _faults_text(test: dict) -> str:
    return "; ".join(f"{c} Dice {f['mean_dice_defects']}, AUROC {f['image_auroc']}, clean "
                     f"sheets flagged {f['clean_sheets_flagged']}"
                     for c, f in (test.get("faults") or {}).items() if c != "clean")


def _dice_text(dice: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in dice.items())


def _note_extra(cfg: Config, report: dict | None = None) -> str:
    text = cfg.extra.get("note") or ""
    test = (report or {}).get("test", {})
    dice = test.get("dice") or {}
    mean = test.get("mean_dice_defects")
    if dice and mean is not None and mean < 0.80:
        weakest = min(dice, key=lambda k: dice[k])
        why = {
            "patch": "a large low-contrast blotch (up to ~170 px) that differs from the sheet's "
                     "own mill-scale blotches only by its soft edge and texture; its validation "
                     "Dice still moved a lot between epochs, and whole-sheet epochs raised it "
                     "most, so longer training on whole sheets is the next step",
        }.get(weakest, "the class the model confuses most")
        text = (f"Why the Dice target is missed: {weakest} (Dice {dice[weakest]}) is the weak "
                f"class, {why}. Trained {report.get('epochs_run')} epochs "
                f"({report.get('train_seconds')} s on 2 CPU cores). " + text).strip()
    return f"\n  {text}" if text else ""


def card_text(cfg: Config, image_threshold: dict, report: dict, sizes: dict) -> str:
    test = report["test"]
    c = len(cfg.mean)
    head = f"""# Model card: what the segmentation model expects and what its output means.
# Generated by models/train (python -m loupe_train.segmenter); retrain, do not edit by hand.
# Read by the `segment` node (nodes/segment/src/card.rs) to preprocess exactly as in training.
name: surface-segmenter
version: "{cfg.extra.get('version', '1.1.0')}"
description: Small U-Net that segments steel-surface defects (scratch, pit, patch, inclusion).
note: >-
  Trained on synthetic sheets from `loupe synth surfaces` (seeds and sizes under `data`).
  Pixel class = argmax of the 5 probabilities. Image score = max over pixels of
  1 - p(background); defective when score >= image_threshold ({image_threshold['threshold']}).
  Held-out ({test['images']} images): mean Dice over the 4 defect classes
  {test['mean_dice_defects']} (target 0.80, {_met(test['mean_dice_defects'], 0.80)};
  {_dice_text(test['dice'])}); image AUROC {test['image_auroc_max_defect_probability']}
  (target 0.98, {_met(test['image_auroc_max_defect_probability'], 0.98)}). Trained with
  camera-fault augmentation; under faults (held-out): {_faults_text(test)}.{_note_extra(cfg, report)}
input:
  name: image
  # [batch, channels, height, width]; -1 = dynamic batch.
  shape: [-1, {c}, {cfg.size}, {cfg.size}]
  layout: NCHW
  dtype: float32
  # GRAY: one luma channel (a colour file is converted like the image crate's to_luma8).
  color_order: {cfg.color_order}
  # Stretch to the input size with the image crate's Triangle filter (no crop or padding).
  resize: bilinear
  # value = (pixel * scale - mean[c]) / std[c], pixel in 0..=255.
  scale: 1/255
  mean: [{', '.join(str(m) for m in cfg.mean)}]
  std: [{', '.join(str(s) for s in cfg.std)}]
output:
  name: probabilities
  # [batch, classes, height, width] at the input size; softmax over the class axis is in the
  # graph. To map a mask onto the original image, stretch the argmax mask with nearest.
  shape: [-1, {len(CLASSES)}, {cfg.size}, {cfg.size}]
  layout: NCHW
  semantics: probabilities
# Index i of the class axis is labels[i]; 0 is background.
labels: [{', '.join(CLASSES)}]
# Pixel class: argmax over labels (no per-pixel threshold).
pixel_rule: argmax
# Image-level decision: defective when image_score >= image_threshold.
image_score: max_defect_probability   # max over pixels of 1 - p(background)
image_threshold: {image_threshold['threshold']}
"""
    extra = {
        "image_threshold_choice": image_threshold,
        "data": sizes,
        "training": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()
                     if k not in ("extra", "threads", "max_train_seconds")}
        | {"epochs_run": report["epochs_run"], "seconds": report["train_seconds"],
           "torch": report["torch"]}
        | ({"init": report["init"]} if report.get("init") else {})
        | ({"reused_trained_model": report["reused_trained_model"]}
           if "reused_trained_model" in report else {}),
        "metrics": {
            "test": {k: v for k, v in test.items() if k != "pixel_counts"},
            "validation": {k: v for k, v in report["validation"].items() if k != "pixel_counts"},
            "fault_targets": report.get("fault_targets"),
            "dice_definition": "per class, pooled over all held-out pixels at the input size: "
                               "2TP/(2TP+FP+FN), argmax prediction vs mask (NEAREST-resized)",
            "inference": report["timing"],
            "onnx_vs_torch_max_abs_diff": report["onnx_vs_torch_max_abs_diff"],
            "model_bytes": report["model_bytes"],
            "parameters": report["parameters"],
        },
    }
    sep = """
# ---------------------------------------------------------------------------------------------
# Records: how the threshold was chosen, the data (seeds, sizes), training, measured figures.
# ---------------------------------------------------------------------------------------------
"""
    return head + sep + common.yaml_block(extra) + "\n"


def run(cfg: Config, train_dir: Path, val_dir: Path, test_dir: Path, out: Path,
        report_path: Path | None = None, reuse: tuple[Path, Path] | None = None) -> dict:
    """Train, export, choose the image threshold on validation, evaluate, write the card.

    `reuse` = (model.onnx, report .json) of an earlier run of the same settings: training is
    skipped, that model and its training record are used, and everything after training is
    computed again."""
    import torch

    size = (cfg.size, cfg.size)
    t0 = time.time()
    train_set = data.load_surfaces(train_dir, size, cfg.color_order)
    val_set = data.load_surfaces(val_dir, size, cfg.color_order)
    test_set = data.load_surfaces(test_dir, size, cfg.color_order)
    log(f"segmenter: data loaded in {time.time() - t0:.0f}s: train {len(train_set)}, "
        f"val {len(val_set)}, test {len(test_set)}")
    out = Path(out)
    onnx_path = out / "model.onnx"
    example = data.normalise(torch.from_numpy(val_set.pixels[:2]), 1 / 255, cfg.mean, cfg.std)
    reused = None
    if reuse is None:
        t1 = time.time()
        model, history = train(cfg, train_set, val_set)
        train_seconds = round(time.time() - t1, 1)
        model.export_probabilities = True
        common.export_onnx(model, example, onnx_path, "image", "probabilities")
        with torch.no_grad():
            p_torch = model(example).numpy()
        sess = common.ort_session(onnx_path, threads=cfg.threads)
        p_onnx = sess.run(None, {"image": example.numpy()})[0]
        diff = float(np.abs(p_onnx - p_torch).max())
        parameters = sum(p.numel() for p in model.parameters())
        torch_version = torch.__version__
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
                  "why": "trained once; threshold and figures recomputed"}
        log(f"segmenter: reusing the trained model {reuse[0]} ({reused['onnx_sha256'][:12]})")
    conds = list(cfg.eval_faults)

    def under(ds, spec, k):
        if spec == "clean":
            return ds
        px = camera_faults.apply_batch(spec, ds.pixels, seed=int(ds.info.get("seed") or 0) * 1000 + k)
        return data.SurfaceSet(ds.folder, px, ds.masks, ds.records, ds.info)

    val_out = {c: predict_onnx(onnx_path, under(val_set, c, k), cfg) for k, c in enumerate(conds)}
    defective = val_set.has_defect()
    # Recall-based threshold (the previous rule), for the record.
    t_recall = metrics.recall_threshold(val_out["clean"][1][defective], cfg.image_recall_target)
    per_cond = {}
    t_star = 0.0
    for c in conds:
        clean_scores = np.sort(val_out[c][1][~defective])[::-1]
        allowed = int(np.floor(cfg.image_fpr_target * len(clean_scores) + 1e-9))
        t_c = float(np.nextafter(clean_scores[allowed], np.inf)) if allowed < len(clean_scores) else 0.0
        per_cond[c] = {"lowest_threshold_meeting_fpr": round(t_c, 6),
                       "recall_at_it": _ratio(int((val_out[c][1][defective] >= t_c).sum()),
                                              int(defective.sum()))}
        t_star = max(t_star, t_c)
    t = math.ceil(t_star * 1e4) / 1e4
    image_threshold = {"threshold": t, "chosen_on": "validation",
                       "rule": f"lowest threshold with clean sheets flagged <= "
                               f"{cfg.image_fpr_target} on validation under each of "
                               f"{', '.join(conds)}",
                       "per_condition": per_cond,
                       "recall_rule_threshold": round(float(t_recall), 6),
                       "recall_rule": f"highest threshold with defect-image recall >= "
                                      f"{cfg.image_recall_target} on clean validation (the "
                                      f"previous rule; not used)"}
    log(f"segmenter: image threshold {image_threshold}")
    test_eval = {}
    for k, c in enumerate(conds):
        tc, ts, ta = predict_onnx(onnx_path, under(test_set, c, k), cfg)
        test_eval[c] = evaluate(tc, ts, ta, test_set, t)
    val_eval = {c: evaluate(*val_out[c], val_set, t) for c in conds}
    strip = lambda e: {k: v for k, v in e.items() if k != "pixel_counts"}  # noqa: E731
    report = {
        "validation": val_eval["clean"] | {"faults": {c: _brief(val_eval[c]) for c in conds}},
        "test": test_eval["clean"] | {"faults": {c: _brief(test_eval[c]) for c in conds}},
        "fault_targets": {c: _fault_targets(test_eval[c]) for c in conds},
        "image_threshold": image_threshold,
        "history": history,
        "epochs_run": len(history),
        "train_seconds": train_seconds,
        "init": ({"from": cfg.init_from,
                  "onnx_sha256": common.sha256(common.resolve_model(cfg.init_from)),
                  "batchnorm": "frozen (the source's fused statistics)"}
                 if cfg.init_from and reuse is None else None),
        "timing": common.time_batch1(onnx_path, example.numpy(), runs=200, warmup=20),
        "onnx_vs_torch_max_abs_diff": float(f"{diff:.2e}"),
        "model_bytes": onnx_path.stat().st_size,
        "parameters": parameters,
        "torch": torch_version,
    }
    del strip
    if reused:
        report["reused_trained_model"] = reused
    sizes = {
        name: {"folder": common.repo_relative(ds.folder), "seed": ds.info.get("seed"), "images": len(ds),
               "defective_images": int(ds.has_defect().sum()),
               "generator": ds.info.get("generator", ds.info.get("command"))}
        for name, ds in (("train", train_set), ("validation", val_set), ("test", test_set))
    }
    (out / "model.yaml").write_text(card_text(cfg, image_threshold, report, sizes), encoding="utf-8")
    if report_path:
        common.write_json(report_path, report)
    print("\n== segmenter under faults (held-out) ==")
    for c, f in report["test"]["faults"].items():
        ok = report["fault_targets"][c]
        print(f"  {'MET ' if ok['met'] else 'MISS'} {c:<13} mean Dice {f['mean_dice_defects']} "
              f"AUROC {f['image_auroc']} clean flagged {f['clean_sheets_flagged']} "
              f"recall {f['image_recall']}")
    log(f"segmenter: test dice {report['test']['dice']} mean {report['test']['mean_dice_defects']} "
        f"auroc {report['test']['image_auroc_max_defect_probability']} timing {report['timing']}")
    return report


def main(argv=None) -> int:
    return cli.main(__doc__, Config(), run, {"epochs": int, "size": int, "seed": int, "max_train_seconds": float}, argv)


if __name__ == "__main__":
    sys.exit(main())
