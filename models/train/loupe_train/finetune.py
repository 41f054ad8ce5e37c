"""Fine-tune the coil classifier on the images people reviewed in the dashboard.

    loupe dataset export --since 2026-11-01 --out feedback/
    models/train/finetune.sh --data feedback/ --model models/coil-classifier --out OUT_DIR
    # = (cd models/train && .venv/bin/python -m loupe_train.finetune --data ... --out ...)

The export (`loupe dataset export`) is an ImageFolder with a manifest:

    DIR/dataset.json      {"kind": "feedback", "generator": "loupe dataset export", "since": ...}
    DIR/manifest.jsonl    one record per image: file (relative to DIR), label (the reviewer's),
                          split (train or val, decided per product), and optional metadata
                          (product_id, camera_verdict, model_label, reviewer, ...)
    DIR/<label>/<file>    the image bytes the model was served (PNG or JPEG)

Only `file`, `label` and `split` are required; a record's `label` is the truth (not its folder).

The starting weights are the shipped ONNX model's: its initializers are mapped back onto the
torch module of `classifier.build_model` (the export fused each BatchNorm into its conv, so a
conv gets the fused weight and its BatchNorm becomes a per-channel bias: running mean 0,
variance 1, scale sqrt(1 + eps)), and the torch model must reproduce the ONNX model's
probabilities before any training happens. Fine-tuning then runs a few epochs at a small
learning rate on the train split, whole images only (the export has no defect boxes), with the
source card's augmentation, class balance and loss weights, BatchNorm frozen (a few hundred
reviewed photos must not re-estimate the statistics of 19 200 training images). The val split
measures the model before and after, with the card's decision rule. The result is exported like
the pipeline exports (`common.export_onnx`: opset 17, IR 10, dynamic batch, softmax in the
graph) and gets the source card with its input, labels and decision threshold unchanged (unless
--threshold is given) and a `training.finetune` record.

Refusals (exit status 2, message on stderr): no manifest, empty manifest, a label the model
does not have, a missing or unreadable image, a split other than train/val, no train images, a
source model whose ONNX graph is not the coil classifier's or that the torch model does not
reproduce, an output folder equal to the source model's.
"""

from __future__ import annotations

import argparse
import ast
import functools
import math
import os
import re
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import classifier, common, data
from .common import log

MODEL_FILE = "model.onnx"
CARD_FILE = "model.yaml"
FEEDBACK_KIND = "feedback"
SPLITS = ("train", "val")
# Largest |p_torch - p_onnx| accepted when checking that the mapped weights are the model's.
REPRODUCE_TOLERANCE = 1e-4
# Top-level keys the Rust card loader knows (nodes/classify/src/card.rs, deny_unknown_fields):
# anything else makes the classify node refuse the card, so the record of the fine-tuning
# goes under `training` (free-form there).
CARD_KEYS = ("name", "version", "description", "note", "input", "output", "labels", "threshold",
             "decision", "data", "metrics", "training")
HEAD_KEYS = CARD_KEYS[:8]


class ModelError(Exception):
    """The source model cannot be fine-tuned (not the coil classifier, or not reproduced)."""


@dataclass
class Options:
    epochs: int = 5
    lr: float = 1e-4
    batch: int = 16
    seed: int = 7
    weight_decay: float = 1e-4
    # Class shares of the sampled epochs: proportional to count ** balance; None = the source
    # card's (0.6 for the shipped model).
    balance: float | None = None
    threshold: float | None = None
    version: str | None = None
    threads: int = common.THREADS


# --- the export -------------------------------------------------------------------------------


@dataclass
class Export:
    """A `loupe dataset export` folder, read and checked, pixels preprocessed as the card says."""

    folder: Path
    info: dict
    train: data.CoilSet
    val: data.CoilSet


def read_export(folder: Path, labels: list[str], size: tuple[int, int],
                color_order: str) -> Export:
    """Reads and checks an export; DataError with the reason (and the folder) otherwise."""
    folder = Path(folder)
    if folder.is_dir() and not (folder / data.MANIFEST).is_file():
        raise data.DataError(
            f"data folder {folder} has no {data.MANIFEST}: write it with "
            f"`loupe dataset export --since DATE --out {folder}`"
        )
    records = data.read_manifest(folder)  # missing folder, bad JSON, no records
    manifest = folder / data.MANIFEST
    info = data.read_dataset_info(folder)
    if info.get("kind") not in (None, FEEDBACK_KIND):
        raise data.DataError(
            f"{folder / data.DATASET}: kind {info.get('kind')!r} is not a `loupe dataset export` "
            f"folder (kind {FEEDBACK_KIND!r})"
        )
    unknown: dict = {}
    for r in records:
        if r.get("label") not in labels:
            label = r.get("label")
            unknown.setdefault(label if isinstance(label, str) or label is None else str(label),
                               []).append(r["file"])
    if unknown:
        what = "; ".join(f"label {k!r}: {len(v)} image(s), e.g. {v[0]!r}"
                         for k, v in unknown.items())
        raise data.DataError(
            f"{manifest}: {what} — not a label of the model (its labels: {labels}); remove "
            f"those records or fine-tune a model that has the label"
        )
    bad_split = [r for r in records if r.get("split") not in SPLITS]
    if bad_split:
        r = bad_split[0]
        raise data.DataError(
            f"{manifest}: image {r['file']!r} has split {r.get('split')!r}, expected one of "
            f"{list(SPLITS)} ({len(bad_split)} such record(s))"
        )
    root = folder.resolve()
    missing = []
    for r in records:
        name = r["file"]
        path = (folder / name).resolve() if isinstance(name, str) and name else None
        if path is None or not path.is_relative_to(root) or not path.is_file():
            missing.append(name)
    if missing:
        raise data.DataError(
            f"{manifest}: listed file {missing[0]!r} does not exist in {folder}"
            + (f" ({len(missing)} missing files)" if len(missing) > 1 else "")
        )
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    if not train:
        raise data.DataError(
            f"{manifest}: no train images ({len(val)} val): nothing to fine-tune on; export a "
            f"longer period (--since) or more reviews"
        )
    leaked = {r.get("product_id") for r in train} & {r.get("product_id") for r in val} - {None}
    if leaked:
        log(f"finetune: warning: {len(leaked)} product(s) in both splits (e.g. "
            f"{min(leaked)!r}): the val figures are optimistic")
    load = functools.partial(_load_image, folder=folder, size=size, color_order=color_order)
    pixels = np.stack(data._parallel(load, [r["file"] for r in records]))
    index = {id(r): i for i, r in enumerate(records)}
    return Export(folder, info, _coil_set(folder, train, pixels, index, labels, info),
                  _coil_set(folder, val, pixels, index, labels, info))


def _load_image(name: str, folder: Path, size: tuple[int, int], color_order: str) -> np.ndarray:
    try:
        return data.load_pixels(folder / name, size, color_order)
    except (OSError, ValueError, SyntaxError) as e:  # PIL raises each for broken files
        raise data.DataError(f"{folder / data.MANIFEST}: image {name!r} cannot be read: {e}") from e


def _coil_set(folder: Path, records: list[dict], pixels: np.ndarray, index: dict,
              labels: list[str], info: dict) -> data.CoilSet:
    c, h, w = pixels.shape[1:]
    rows = [index[id(r)] for r in records]
    return data.CoilSet(
        folder=folder,
        pixels=pixels[rows] if rows else np.zeros((0, c, h, w), np.uint8),
        labels=np.array([labels.index(r["label"]) for r in records], dtype=np.int64),
        camera_loose=np.array([r.get("camera_verdict") == "loose_wire" for r in records],
                              dtype=bool),
        # Products join the angles of one coil; without an id each image is its own product.
        product_ids=[r.get("product_id") or r.get("uuid") or r["file"] for r in records],
        records=records,
        info=info,
    )


def describe(ds: data.CoilSet) -> dict:
    return {"images": len(ds), "products": len(set(ds.product_ids)), "counts": ds.counts()}


# --- the source model -------------------------------------------------------------------------


@dataclass
class Source:
    """The model to start from: its card, ONNX file, and the training `Config` it implies."""

    folder: Path
    card: dict
    card_text: str
    onnx_path: Path
    onnx_sha256: str
    cfg: classifier.Config
    scale: float
    weights: list  # [(weight, bias)] of the convs in graph order; the last is the cell head
    threshold: float | None  # the card's decision threshold for loose_wire
    # decision.calibration of the card (temperature, bias) baked into the graph, if any.
    calibration: dict | None = None

    @property
    def id(self) -> str:
        return f"{self.card.get('name')}@{self.card.get('version')}"


def load_source(folder: Path) -> Source:
    """Reads the card and the ONNX graph; ModelError unless it is the coil classifier."""
    import onnx
    import yaml

    folder = Path(folder)
    onnx_path, card_path = folder / MODEL_FILE, folder / CARD_FILE
    for path in (onnx_path, card_path):
        if not path.is_file():
            raise ModelError(f"model folder {folder} has no {path.name}")
    text = card_path.read_text(encoding="utf-8")
    try:
        card = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ModelError(f"{card_path} is not YAML: {e}") from e
    if not isinstance(card, dict) or not isinstance(card.get("input"), dict):
        raise ModelError(f"{card_path} is not a model card (no `input` section)")
    spec = card["input"]
    if card.get("labels") != data.COIL_LABELS:
        raise ModelError(f"{card_path}: labels {card.get('labels')} are not the coil "
                         f"classifier's {data.COIL_LABELS}")
    shape = spec.get("shape") or []
    if (spec.get("layout") != "NCHW" or spec.get("dtype", "float32") != "float32"
            or len(shape) != 4 or shape[2] != shape[3]
            or len(spec.get("mean") or []) != shape[1] or len(spec.get("std") or []) != shape[1]):
        raise ModelError(f"{card_path}: input must be NCHW float32 [batch, C, S, S] with C "
                         f"means and stds, got {spec}")
    training = card.get("training") or {}
    defaults = classifier.Config()

    def trained(key: str, conv):
        """The source training's setting `key` (augmentation, loss weights), else the default."""
        try:
            return conv(training[key]) if training.get(key) is not None else getattr(defaults, key)
        except (TypeError, ValueError) as e:
            raise ModelError(f"{card_path}: training.{key} {training[key]!r}: {e}") from e

    cfg = classifier.Config(
        size=int(shape[2]),
        color_order=spec.get("color_order", "RGB"),
        mean=tuple(float(m) for m in spec["mean"]),
        std=tuple(float(s) for s in spec["std"]),
        image_weights=trained("image_weights", lambda v: tuple(float(x) for x in v)),
        balance=trained("balance", float),
        hflip=trained("hflip", bool),
        shift=trained("shift", int),
        brightness=trained("brightness", float),
        contrast=trained("contrast", float),
    )
    try:
        proto = onnx.load(str(onnx_path))
    except Exception as e:  # protobuf's DecodeError and friends
        raise ModelError(f"{onnx_path} is not an ONNX model: {e}") from e
    dims = [d.dim_value or d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    if dims[1:] != list(shape[1:]):
        raise ModelError(f"{onnx_path}: input dims {dims} differ from the card's shape {shape}")
    layers, weights = _conv_chain(proto, onnx_path, len(data.COIL_LABELS), int(shape[1]))
    if "layers" in training:
        try:
            carded = [tuple(ast.literal_eval(x)) if isinstance(x, str) else tuple(x)
                      for x in training["layers"]]
        except (ValueError, SyntaxError, TypeError):
            carded = None
        if carded != layers:
            raise ModelError(f"{card_path}: training.layers {training['layers']} do not match "
                             f"the graph's convolutions {layers}")
    cfg.layers = tuple(layers)
    names = ({"input": spec.get("name"), "output": (card.get("output") or {}).get("name")},
             {"input": proto.graph.input[0].name, "output": proto.graph.output[0].name})
    if names[0] != names[1]:
        raise ModelError(f"{folder}: the card names the tensors {names[0]}, the graph {names[1]}")
    decision = card.get("decision") or {}
    threshold = decision.get("threshold") if decision.get("label") == "loose_wire" else None
    calibration = decision.get("calibration")
    if calibration is not None:
        try:
            calibration = {"temperature": float(calibration["temperature"]),
                           "bias": [float(b) for b in calibration.get("bias") or [0.0] * 3]}
        except (TypeError, ValueError, KeyError) as e:
            raise ModelError(f"{card_path}: decision.calibration {calibration!r}: {e}") from e
    return Source(folder, card, text, onnx_path, common.sha256(onnx_path), cfg,
                  _scale(spec.get("scale", 1.0)), weights,
                  None if threshold is None else float(threshold), calibration)


def _scale(v) -> float:
    """The card's `scale`: a number or a fraction written `1/255`."""
    if isinstance(v, str) and "/" in v:
        a, b = v.split("/", 1)
        return float(a) / float(b)
    return float(v)


def _conv_chain(proto, path: Path, classes: int, channels: int):
    """The coil classifier's graph: input -> (Conv 3x3 pad 1 -> Relu) x n -> Conv 1x1 (cells)
    -> readout. Returns the trunk's [(channels, stride)] and every conv's (weight, bias)."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    producer = {o: n for n in proto.graph.node for o in n.output}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    bad = [n.op_type for n in proto.graph.node if n.op_type == "BatchNormalization"]
    if len(convs) < 2 or bad:
        raise ModelError(f"{path}: not the coil classifier's graph (convs {len(convs)}, "
                         f"unfused BatchNorm {len(bad)})")
    layers, weights, previous = [], [], proto.graph.input[0].name
    for k, n in enumerate(convs):
        head = k == len(convs) - 1
        attrs = {a.name: list(a.ints) if a.ints else a.i for a in n.attribute}
        if len(n.input) != 3 or n.input[1] not in inits or n.input[2] not in inits:
            raise ModelError(f"{path}: conv {k} has no constant weight and bias")
        w, b = inits[n.input[1]], inits[n.input[2]]
        src = producer.get(n.input[0])
        feeds = n.input[0] == previous if k == 0 else (
            src is not None and src.op_type == "Relu" and src.input[0] == previous)
        kernel = 1 if head else 3
        stride = (attrs.get("strides") or [1, 1])[0]
        ok = (feeds and attrs.get("kernel_shape") == [kernel, kernel]
              and attrs.get("group", 1) == 1
              and (attrs.get("dilations") or [1, 1]) == [1, 1]
              and attrs.get("strides", [1, 1]) == [stride, stride]
              and (attrs.get("pads") or [0] * 4) == [kernel // 2] * 4
              and w.shape[1:] == (channels, kernel, kernel))
        if head:
            ok = ok and w.shape[0] == classes and stride == 1
        if not ok:
            raise ModelError(f"{path}: conv {k} ({n.name}) is not the coil classifier's "
                             f"(3x3 convs with ReLU, then a 1x1 conv to {classes} cell scores)")
        if not head:
            layers.append((int(w.shape[0]), int(stride)))
        weights.append((w, b))
        channels, previous = int(w.shape[0]), n.output[0]
    return layers, weights


def torch_model(source: Source):
    """`classifier.build_model` with the ONNX weights; BatchNorm carries the fused bias."""
    import torch
    from torch import nn

    model = classifier.build_model(source.cfg)
    convs = [m for m in model.trunk if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.trunk if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for conv, bn, (w, b) in zip(convs, norms, source.weights[:-1], strict=True):
            conv.weight.copy_(torch.tensor(w))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
            bn.weight.fill_(math.sqrt(1.0 + bn.eps))
            bn.bias.copy_(torch.tensor(b))
        w, b = source.weights[-1]
        model.cells.weight.copy_(torch.tensor(w))
        model.cells.bias.copy_(torch.tensor(b))
    if source.calibration:  # kept as it is: the fine-tuned graph bakes in the same one
        classifier.set_calibration(model, source.calibration["temperature"],
                                   source.calibration["bias"])
    model.eval()
    return model


def check_reproduces(model, source: Source, pixels: np.ndarray, seed: int = 0) -> float:
    """Max |p_torch - p_onnx| over random inputs and `pixels` (uint8 [N, C, H, W], some of the
    export's images); ModelError when above REPRODUCE_TOLERANCE."""
    c, s = len(source.cfg.mean), source.cfg.size
    rng = np.random.default_rng(seed)
    x = np.concatenate([
        rng.normal(0.0, 1.5, (3, c, s, s)).astype(np.float32),
        _normalise(pixels[:5], source),
    ])
    p_onnx = common.ort_predict(common.ort_session(source.onnx_path, threads=2), x)
    p_torch = _torch_probabilities(model, x)
    diff = float(np.abs(p_onnx - p_torch).max())
    if not diff <= REPRODUCE_TOLERANCE:
        raise ModelError(
            f"{source.onnx_path}: the torch model built from its weights does not reproduce it "
            f"(max |p_torch - p_onnx| = {diff:.3g} > {REPRODUCE_TOLERANCE}); it is not the "
            f"architecture of loupe_train/classifier.py"
        )
    return diff


def _normalise(pixels: np.ndarray, source: Source) -> np.ndarray:
    return data.normalise(pixels, source.scale, source.cfg.mean, source.cfg.std)


def _torch_probabilities(model, x: np.ndarray, batch: int = 64) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(torch.softmax(model(torch.from_numpy(x[i : i + batch])), 1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(data.COIL_LABELS)), np.float32)


def predict_onnx(path: Path, ds: data.CoilSet, source: Source, threads: int) -> np.ndarray:
    if not len(ds):
        return np.zeros((0, len(data.COIL_LABELS)), np.float32)
    return common.ort_predict(common.ort_session(path, threads=threads),
                              _normalise(ds.pixels, source))


# --- fine-tuning ------------------------------------------------------------------------------


def _freeze_batchnorm(model) -> None:
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def finetune(model, source: Source, train_set: data.CoilSet, val_set: data.CoilSet,
             opts: Options) -> list[dict]:
    """Whole-image fine-tuning of `model` in place; returns the per-epoch history."""
    import torch
    import torch.nn.functional as F

    from .augment import augment

    cfg = source.cfg
    balance = cfg.balance if opts.balance is None else opts.balance
    g = torch.Generator().manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    weights = torch.tensor(cfg.image_weights, dtype=torch.float32)
    pixels, labels = torch.from_numpy(train_set.pixels), torch.from_numpy(train_set.labels)
    steps = math.ceil(len(train_set) / opts.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    sched = common.warmup_cosine(opt, opts.epochs * steps, warmup=0.1)
    history, start = [], time.time()
    for epoch in range(1, opts.epochs + 1):
        model.train()
        _freeze_batchnorm(model)
        order = classifier._sample_epoch(train_set.labels, balance, rng)
        loss_sum = correct = 0
        for s in range(steps):
            idx = torch.from_numpy(order[s * opts.batch : (s + 1) * opts.batch])
            x, _ = augment(pixels[idx], g, hflip=cfg.hflip, shift=cfg.shift,
                           brightness=cfg.brightness, contrast=cfg.contrast)
            logits = model(data.normalise(x, source.scale, cfg.mean, cfg.std))
            loss = F.cross_entropy(logits, labels[idx], weight=weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == labels[idx]).sum())
        entry = {"epoch": epoch, "steps": steps, "loss": round(loss_sum / len(order), 4),
                 "train_acc": round(correct / len(order), 4),
                 "seconds": round(time.time() - start, 1)}
        if len(val_set):
            p = _torch_probabilities(model, _normalise(val_set.pixels, source))
            entry["val_acc_argmax"] = round(float((p.argmax(1) == val_set.labels).mean()), 4)
        history.append(entry)
        log(f"finetune {entry}")
    model.eval()
    return history


# --- figures and card -------------------------------------------------------------------------

FIGURES = ("images", "counts", "accuracy", "accuracy_argmax", "loose_wire_recall",
           "loose_wire_missed", "model_false_alarms", "camera_false_alarms",
           "camera_false_alarms_cleared", "camera_false_alarms_cleared_rate")


def figures(p: np.ndarray, ds: data.CoilSet, threshold: float) -> dict:
    """The card's figures of one model on one split (the classifier's evaluation)."""
    m = classifier.evaluate(p, ds, threshold)
    return {k: m[k] for k in FIGURES} | {"confusion": m["confusion"]["matrix"]}


def card_text(source: Source, version: str, threshold: float, threshold_from: str,
              record: dict) -> str:
    """The source card with a new version, note and threshold (when given) and the record of
    the fine-tuning under `training.finetune`; input, output and labels as they were."""
    import yaml

    card = source.card
    decision = dict(card.get("decision") or {})
    if threshold_from != "source card":
        decision = {"rule": decision.get("rule", "loose_wire when p(loose_wire) >= threshold, "
                                                 "else argmax over the other labels"),
                    "label": "loose_wire", "threshold": threshold, "chosen_on": threshold_from,
                    "source_threshold": source.threshold}
    training = dict(card.get("training") or {})
    if "finetune" in training:  # a fine-tuned model fine-tuned again: keep the chain
        record = record | {"previous": training.pop("finetune")}
    training["finetune"] = record
    metrics = card.get("metrics")
    if isinstance(metrics, dict) and "note" not in metrics:
        metrics = {"note": f"not re-measured after fine-tuning: figures of {source.id} (the model "
                           "fine-tuned from) on its own splits; the fine-tuned model's are under "
                           "training.finetune.validation"} | metrics
    tail = {k: v for k, v in card.items() if k not in HEAD_KEYS}
    tail.update({"decision": decision, "training": training}
                | ({"metrics": metrics} if metrics is not None else {}))
    tail = {k: tail[k] for k in [*card, "decision", "training"] if k in tail}
    val = record["validation"]
    note = " ".join((
        f"Fine-tuned from {source.id} (model.onnx sha256 {source.onnx_sha256[:12]}) on "
        f"{record['data']['train']['images']} images people reviewed "
        f"(`loupe dataset export`, since {record['data'].get('since')}); see training.finetune. "
        f"Decision rule: loose_wire when p(loose_wire) >= decision.threshold ({threshold}, "
        f"{threshold_from}); otherwise the larger of p(ok) and p(burr). Reviewed val split "
        f"({val['images']} images): accuracy {val.get('before', {}).get('accuracy')} before, "
        f"{val.get('after', {}).get('accuracy')} after; loose_wire recall "
        f"{val.get('before', {}).get('loose_wire_recall')} before, "
        f"{val.get('after', {}).get('loose_wire_recall')} after."
    ).split())
    header = (
        "# Model card: read by the `classify` node (and `loupe eval`) to preprocess exactly as in "
        "training.\n"
        f"# Generated by models/train (python -m loupe_train.finetune) from {source.id}'s card; "
        "fine-tune again, do not edit by hand.\n"
    )
    head = _head_text(source.card_text, version, note)
    sep = (
        "\n# -------------------------------------------------------------------------------------"
        "--------\n"
        "# Below: sections the Rust card loader (nodes/classify/src/card.rs, deny_unknown_fields) "
        "does\n# not know in detail. `decision` is the serving rule; `data`, `training` and "
        "`metrics` are records\n# (`data` and `metrics`: the source model's; `training.finetune`: "
        "this fine-tuning).\n"
        "# -------------------------------------------------------------------------------------"
        "--------\n"
    )
    expected = {k: card[k] for k in HEAD_KEYS if k in card} | {"version": version, "note": note}
    if head is not None:
        text = header + head + sep + common.yaml_block(tail) + "\n"
        try:
            got = yaml.safe_load(text)
        except yaml.YAMLError:
            got = None
        if isinstance(got, dict) and {k: got.get(k) for k in expected} == expected:
            return text
    # The source card is not laid out like the pipeline's: write every section plainly.
    return header + common.yaml_block(expected | tail) + "\n"


def _head_text(text: str, version: str, note: str) -> str | None:
    """The source card's sections up to the first non-serving one, comments kept, with
    `version` and `note` replaced (None when the card is not laid out that way)."""
    lines = text.splitlines()
    top = [(i, m.group(1)) for i, line in enumerate(lines)
           if (m := re.match(r"^([A-Za-z_][\w-]*):", line))]
    if not top:
        return None
    start = top[0][0]
    end = next((i for i, key in top if key not in HEAD_KEYS), len(lines))
    while end > start and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    out, skipping, has_note = [], False, False
    for line in lines[start:end]:
        key = re.match(r"^([A-Za-z_][\w-]*):", line)
        if key:
            skipping = False
            if key.group(1) == "version":
                line = f"version: {common.yaml_scalar(str(version))}"
            elif key.group(1) == "note":
                out += _note_lines(note)
                skipping = has_note = True
                continue
        elif skipping and (line.startswith(" ") or not line.strip()):
            continue
        out.append(line)
    if not has_note:
        at = next((i + 1 for i, line in enumerate(out) if line.startswith("description:")), 1)
        out[at:at] = _note_lines(note)
    return "\n".join(out) + "\n"


def _note_lines(note: str, width: int = 96) -> list[str]:
    words, lines, line = note.split(), [], "  "
    for w in words:
        if len(line) + len(w) + 1 > width and line.strip():
            lines.append(line.rstrip())
            line = "  "
        line += w + " "
    lines.append(line.rstrip())
    return ["note: >-", *lines]


# --- the command ------------------------------------------------------------------------------


def run(data_dir: Path, model_dir: Path, out: Path, opts: Options,
        command: str | None = None) -> dict:
    """Fine-tunes, exports, evaluates before and after, writes OUT/model.onnx + model.yaml."""
    if Path(out).resolve() == Path(model_dir).resolve():
        raise ModelError(f"--out {out} is the source model's folder: write to another folder, "
                         f"check the report, then copy model.onnx and model.yaml over")
    if opts.epochs < 1 or opts.batch < 1 or not opts.lr > 0:
        raise ModelError("--epochs and --batch must be at least 1 and --lr positive")
    if opts.threshold is not None and not 0.0 <= opts.threshold <= 1.0:
        raise ModelError(f"--threshold must be within [0, 1], got {opts.threshold}")
    common.set_threads(opts.threads)
    common.seed_everything(opts.seed)
    source = load_source(model_dir)
    cfg = source.cfg
    if opts.threshold is None and source.threshold is None:
        raise ModelError(f"{model_dir / CARD_FILE} has no loose_wire decision threshold: pass "
                         f"--threshold")
    threshold = source.threshold if opts.threshold is None else opts.threshold
    threshold_from = "source card" if opts.threshold is None else "--threshold at fine-tuning"
    t0 = time.time()
    export = read_export(data_dir, data.COIL_LABELS, (cfg.size, cfg.size), cfg.color_order)
    train_set, val_set = export.train, export.val
    log(f"finetune: {export.folder}: train {describe(train_set)}, val {describe(val_set)} "
        f"({time.time() - t0:.0f}s)")
    empty = [k for k, n in train_set.counts().items() if n == 0]
    if empty:
        log(f"finetune: warning: no train images of {', '.join(empty)}: nothing corrects the "
            f"model on that class (it keeps what it learnt)")
    model = torch_model(source)
    reproduce = check_reproduces(model, source, train_set.pixels, opts.seed)
    log(f"finetune: torch reproduces {source.id} (max |p diff| {reproduce:.2g})")
    p_before = predict_onnx(source.onnx_path, val_set, source, opts.threads)

    t1 = time.time()
    history = finetune(model, source, train_set, val_set, opts)
    seconds = round(time.time() - t1, 1)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    staged, staged_card = out / ".finetune-model.onnx", out / ".finetune-model.yaml"
    try:
        report = _export_and_record(model, source, export, out, staged, staged_card, opts,
                                    threshold, threshold_from, p_before, history, seconds,
                                    reproduce, command)
    finally:
        staged.unlink(missing_ok=True)
        staged_card.unlink(missing_ok=True)
    print_report(report)
    return report


def _export_and_record(model, source: Source, export: Export, out: Path, staged: Path,
                       staged_card: Path, opts: Options, threshold: float, threshold_from: str,
                       p_before: np.ndarray, history: list, seconds: float, reproduce: float,
                       command: str | None) -> dict:
    """Exports like the pipeline, measures the result, writes model.onnx + the card."""
    import torch

    cfg, train_set, val_set = source.cfg, export.train, export.val
    model.export_probabilities = True
    example = torch.from_numpy(_normalise(train_set.pixels[:2], source))
    with warnings.catch_warnings():  # the TorchScript exporter's tracer and deprecation notes
        warnings.simplefilter("ignore")
        common.export_onnx(model, example, staged, source.card["input"]["name"],
                           source.card["output"]["name"])
    model.export_probabilities = False
    _check_same_io(source.onnx_path, staged)
    p_after = predict_onnx(staged, val_set, source, opts.threads)
    x = _normalise(train_set.pixels[:8], source)
    diff = float(np.abs(common.ort_predict(common.ort_session(staged), x)
                        - _torch_probabilities(model, x)).max())
    new_sha = common.sha256(staged)
    # Build metadata names this model (classify.model = name@version); a model fine-tuned
    # again replaces it (training.finetune.previous keeps the chain).
    base = str(source.card.get("version")).split("+", 1)[0]
    version = opts.version or f"{base}+ft.{new_sha[:8]}"

    # The source model is measured with its own card's rule, the fine-tuned one with its card's.
    before_threshold = threshold if source.threshold is None else source.threshold
    if len(val_set):
        validation = {"images": len(val_set), "products": len(set(val_set.product_ids)),
                      "before": figures(p_before, val_set, before_threshold)
                      | {"threshold": before_threshold},
                      "after": figures(p_after, val_set, threshold) | {"threshold": threshold},
                      "rows_true_cols_predicted": data.COIL_LABELS}
    else:
        validation = {"images": 0, "note": "the export has no val images: nothing measured"}
    info = export.info
    record = {
        "command": command,
        "source": {"model": source.id, "folder": common.repo_relative(source.folder),
                   "onnx_sha256": source.onnx_sha256,
                   "card_sha256": common.sha256(source.folder / CARD_FILE)},
        "onnx_sha256": new_sha,
        "data": {"folder": common.repo_relative(export.folder),
                 "generator": info.get("generator"), "since": info.get("since"),
                 "exported_ms": info.get("exported_ms"), "images": len(train_set) + len(val_set),
                 "train": describe(train_set), "val": describe(val_set),
                 "reviewers": len({r.get("reviewer") for r in train_set.records + val_set.records
                                   if r.get("reviewer")})},
        "epochs": opts.epochs, "lr": opts.lr, "batch": opts.batch, "seed": opts.seed,
        "weight_decay": opts.weight_decay,
        "balance": cfg.balance if opts.balance is None else opts.balance,
        "image_weights": list(cfg.image_weights),
        "augmentation": {"hflip": cfg.hflip, "shift": cfg.shift, "brightness": cfg.brightness,
                         "contrast": cfg.contrast},
        "batchnorm": "frozen: the source model's statistics",
        "loss": "weighted cross-entropy of the image logits (no defect boxes in the export)",
        "threshold": {"value": threshold, "from": threshold_from},
        "validation": validation,
        "torch_reproduces_source_max_abs_diff": float(f"{reproduce:.2e}"),
        "onnx_vs_torch_max_abs_diff": float(f"{diff:.2e}"),
        "seconds": seconds,
        "torch": torch.__version__,
        "history": history,
    }
    staged_card.write_text(card_text(source, version, threshold, threshold_from, record),
                           encoding="utf-8")
    # model.onnx first, then the card: the classify node reloads once both stop changing.
    os.replace(staged, out / MODEL_FILE)
    os.replace(staged_card, out / CARD_FILE)
    return {"out": str(out), "version": version, "source": source.id, "finetune": record}


def _check_same_io(source_path: Path, path: Path) -> None:
    """The new graph's input and output names and shapes are the source's."""
    def io(p):
        sess = common.ort_session(p)
        return [(t.name, list(t.shape)) for t in sess.get_inputs() + sess.get_outputs()]

    if io(source_path) != io(path):
        raise ModelError(f"the exported model's inputs/outputs {io(path)} differ from the "
                         f"source's {io(source_path)}")


def print_report(report: dict) -> None:
    r = report["finetune"]
    d = r["data"]
    print(f"\nfine-tuned {report['source']} -> version {report['version']} "
          f"({r['epochs']} epochs, lr {r['lr']}, batch {r['batch']}, {r['seconds']} s)")
    print(f"  data {d['folder']} (since {d['since']}): train {d['train']['images']} images "
          f"{d['train']['counts']}, val {d['val']['images']} images {d['val']['counts']}")
    v = r["validation"]
    if v["images"]:
        print(f"  val split, {v['images']} images ({v['products']} products); decision threshold "
              f"{r['threshold']['value']} ({r['threshold']['from']}):")
        print(f"    {'':34} {'before':>8} {'after':>8}")
        for key in ("accuracy", "accuracy_argmax", "loose_wire_recall", "loose_wire_missed",
                    "model_false_alarms", "camera_false_alarms_cleared_rate"):
            b, a = v["before"][key], v["after"][key]
            print(f"    {key:34} {'-' if b is None else b:>8} {'-' if a is None else a:>8}")
        b, a = v["before"]["loose_wire_missed"], v["after"]["loose_wire_missed"]
        if a > b:
            print(f"  WARNING: the fine-tuned model misses {a - b} more loose_wire val image(s) "
                  f"than the source model: do not ship it as is")
    else:
        print("  no val images in the export: the fine-tuned model is not measured")
    print(f"  wrote {report['out']}/{MODEL_FILE} (sha256 {r['onnx_sha256'][:12]}) and "
          f"{report['out']}/{CARD_FILE}")
    print("  to serve it: copy both files into models/coil-classifier/, or point the classify "
          "node's `model:` at this folder (the node hot-reloads a changed model directory)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loupe_train.finetune", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True,
                    help="folder written by `loupe dataset export`")
    ap.add_argument("--model", type=Path, required=True,
                    help="the model folder to start from (model.onnx + model.yaml)")
    ap.add_argument("--out", type=Path, required=True,
                    help="folder for the fine-tuned model.onnx + model.yaml")
    d = Options()
    ap.add_argument("--epochs", type=int, default=d.epochs)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--batch", type=int, default=d.batch)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--weight-decay", type=float, default=d.weight_decay)
    ap.add_argument("--balance", type=float, help="class balance of the sampled epochs "
                    "(0 = as in the data, 1 = equal shares; default: the source card's)")
    ap.add_argument("--threshold", type=float, help="loose_wire decision threshold for the "
                    "card (default: the source card's)")
    ap.add_argument("--version", help="card version (default: the source's, with build metadata "
                    "+ft.HASH8 = the first 8 hex digits of the new model.onnx's sha256)")
    ap.add_argument("--threads", type=int, default=d.threads)
    ap.add_argument("--report", type=Path, help="also write the record as JSON here")
    a = ap.parse_args(argv)
    opts = Options(epochs=a.epochs, lr=a.lr, batch=a.batch, seed=a.seed,
                   weight_decay=a.weight_decay, balance=a.balance, threshold=a.threshold,
                   version=a.version, threads=a.threads)
    command = "python -m loupe_train.finetune " + shlex.join(
        sys.argv[1:] if argv is None else [str(x) for x in argv])
    try:
        report = run(a.data, a.model, a.out, opts, command)
    except (data.DataError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.report:
        common.write_json(a.report, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
