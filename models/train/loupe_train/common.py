"""Shared plumbing: seeding, threads, ONNX export and checking, timing, card writing."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from pathlib import Path

import numpy as np

# ONNX Runtime 1.31 (the runtime the Rust nodes load) reads IR version 10 at opset 17; the
# exported file is pinned to both so it does not depend on the torch/onnx release defaults.
OPSET = 17
IR_VERSION = 10
THREADS = 2


def seed_everything(seed: int) -> None:
    """Python, numpy and torch RNGs; deterministic torch kernels where available."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def set_threads(n: int = THREADS) -> None:
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def warmup_cosine(opt, total_steps: int, warmup: float = 0.1):
    """LR schedule: linear warm-up over `warmup` of the steps, then cosine decay to 2%."""
    import torch

    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def export_onnx(model, example, path: Path, input_name: str, output_name: str) -> None:
    """Exports `model` (eval mode) with a dynamic batch, opset 17, IR 10; checks the file."""
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            dynamo=False,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    proto = onnx.load(str(tmp))
    tmp.unlink()
    proto.ir_version = IR_VERSION
    proto.producer_name = "loupe-train"
    proto.producer_version = ""
    proto.doc_string = ""
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def ort_session(path: Path, threads: int = 1):
    """An ONNX Runtime CPU session: `threads` intra-op threads, 1 inter-op, sequential."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def time_batch1(path: Path, example: np.ndarray, runs: int = 300, warmup: int = 30) -> dict:
    """Median / p90 latency in ms of one image, one core (intra 1, inter 1, sequential)."""
    sess = ort_session(path, threads=1)
    name = sess.get_inputs()[0].name
    x = example[:1].astype(np.float32)
    for _ in range(warmup):
        sess.run(None, {name: x})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t0) * 1000.0)
    times = np.array(times)
    return {
        "median_ms": round(float(np.median(times)), 3),
        "p90_ms": round(float(np.percentile(times, 90)), 3),
        "runs": runs,
        "warmup": warmup,
        "onnxruntime": _ort_version(),
        "threads": "intra_op 1, inter_op 1, ORT_SEQUENTIAL, CPUExecutionProvider",
    }


def _ort_version() -> str:
    import onnxruntime as ort

    return ort.__version__


def ort_predict(sess, batch: np.ndarray, chunk: int = 64) -> np.ndarray:
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: batch[i : i + chunk]})[0] for i in range(0, len(batch), chunk)]
    return np.concatenate(outs)


def resolve_model(spec: str) -> Path:
    """An exported model to start from: a folder holding model.onnx, an .onnx file, or
    `git:REV:FOLDER` (model.onnx of FOLDER at commit REV of this repository, e.g.
    `git:d1ae5bb:models/coil-classifier`; read with `git show`, written to a temp file)."""
    if spec.startswith("git:"):
        import subprocess
        import tempfile

        _, rev, folder = spec.split(":", 2)
        repo = Path(__file__).resolve().parents[3]
        blob = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{folder.rstrip('/')}/model.onnx"],
                              check=True, capture_output=True).stdout
        out = Path(tempfile.mkdtemp(prefix="loupe-init-")) / "model.onnx"
        out.write_bytes(blob)
        return out
    p = Path(spec)
    return p / "model.onnx" if p.is_dir() else p


def repo_relative(path: Path) -> str:
    """`path` relative to the repository root (e.g. models/train/data/coils-test) when it is
    inside it, else as given: cards must not record one machine's absolute paths."""
    repo = Path(__file__).resolve().parents[3]
    p = Path(path).resolve()
    try:
        return p.relative_to(repo).as_posix()
    except ValueError:
        return str(path)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_json(path: Path, obj) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def yaml_scalar(v) -> str:
    """A YAML flow scalar for the card writer (strings quoted only when needed)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v != v:
            return ".nan"
        text = repr(round(v, 6))
        # YAML 1.1 (PyYAML) reads `3e-06` as a string: its floats need a dot.
        mantissa, e, exponent = text.partition("e")
        if e and "." not in mantissa:
            text = f"{mantissa}.0e{exponent}"
        return text
    s = str(v)
    safe = s and all(c.isalnum() or c in "-_./@+" for c in s) and not s[0].isdigit()
    safe = safe and s.lower() not in ("true", "false", "null", "yes", "no", "on", "off", "y", "n")
    return s if safe else json.dumps(s)


def yaml_block(obj, indent: int = 0) -> str:
    """Block YAML for nested dicts; lists of scalars in flow style."""
    pad = "  " * indent
    lines = []
    for k, v in obj.items():
        k = yaml_scalar(str(k)) if (":" in str(k) or " " in str(k)) else k
        if isinstance(v, dict):
            if not v:
                lines.append(f"{pad}{k}: {{}}")
            else:
                lines.append(f"{pad}{k}:")
                lines.append(yaml_block(v, indent + 1))
        elif isinstance(v, (list, tuple)) and all(not isinstance(x, (dict, list)) for x in v):
            lines.append(f"{pad}{k}: [{', '.join(yaml_scalar(x) for x in v)}]")
        elif isinstance(v, (list, tuple)):
            lines.append(f"{pad}{k}:")
            for x in v:
                if isinstance(x, dict):
                    sub = yaml_block(x, indent + 2).split("\n")
                    lines.append(f"{pad}  - {sub[0].strip()}")
                    lines.extend(sub[1:])
                else:
                    lines.append(f"{pad}  - [{', '.join(yaml_scalar(y) for y in x)}]")
        else:
            lines.append(f"{pad}{k}: {yaml_scalar(v)}")
    return "\n".join(lines)


def train_mode(model, freeze_bn: bool) -> None:
    """Puts `model` in training mode; with `freeze_bn` its BatchNorm layers keep their running
    statistics (a fine-tune on a small set must not re-estimate them)."""
    from torch import nn

    model.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
