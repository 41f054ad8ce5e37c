"""Datasets written by `loupe synth`: manifest reading, checks, and preprocessing.

Both datasets are a folder with `manifest.jsonl` (one JSON object per image) and
`dataset.json` (how it was generated). Training refuses a folder that has no manifest, an
empty manifest, or a class with no examples, with a message that says which folder and which
class: a model silently trained without its rarest class is worse than no model.

Preprocessing here is exactly what the model cards say, because the Rust `classify` node
implements the card and nothing else:

1. decode, convert to 8-bit RGB (or luma with the `image` crate's Rec. 709 formula for GRAY;
   a file that is already 8-bit grey is used as is);
2. stretch to the input size with the card's `bilinear`: a port of the `image` crate's
   (0.25) `resize` with `FilterType::Triangle` (`resize_bilinear` below: vertical pass in f32,
   then horizontal pass, weights normalised per output pixel, support widened by the
   downscale ratio, rounded half away from zero) — what the `classify` node runs; no
   resize at all when the size already matches;
3. `(pixel * scale - mean[c]) / std[c]` per channel — done on the fly in `normalise`.

Masks are resized with NEAREST (class indices must not be blended).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

COIL_LABELS = ["ok", "burr", "loose_wire"]
SURFACE_CLASSES = ["background", "scratch", "pit", "patch", "inclusion"]
MANIFEST = "manifest.jsonl"
DATASET = "dataset.json"


class DataError(Exception):
    """A data folder cannot be used for training or evaluation."""


def read_manifest(folder: Path) -> list[dict]:
    """The manifest's records, in file order; DataError when missing, unreadable or empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist")
    path = folder / MANIFEST
    if not path.is_file():
        raise DataError(
            f"data folder {folder} has no {MANIFEST}: generate it with `loupe synth ...`"
        )
    records = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{number}: not JSON: {e}") from e
            if not isinstance(record, dict) or "file" not in record:
                raise DataError(f"{path}:{number}: a record needs a `file` field")
            records.append(record)
    if not records:
        raise DataError(f"{path} lists no images")
    return records


def read_dataset_info(folder: Path) -> dict:
    """`dataset.json` if present (generator, seed, counts), else {}."""
    path = Path(folder) / DATASET
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {}


# --- pixels -----------------------------------------------------------------------------------


def to_luma_rec709(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 [..., 3] -> luma uint8 like the `image` crate's `to_luma8` (0.25.10).

    That converts through f32: `round((0.2126 r + 0.7152 g + 0.0722 b) / 255 * 255)` with
    coefficients derived from the sRGB primaries; this port agrees on all but ~0.3% of random
    pixels, which it misses by one grey level. Only used when a GRAY model gets a colour file.
    """
    f = rgb.astype(np.float32) / np.float32(255.0)
    coef = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    luma = (f * coef).sum(axis=-1, dtype=np.float32)
    return np.floor(np.clip(luma * np.float32(255.0), 0, 255) + 0.5).astype(np.uint8)


@functools.lru_cache(maxsize=16)
def _triangle_weights(src: int, dst: int) -> np.ndarray:
    """[dst, src] float32 weights of the image crate's triangle filter (sample.rs)."""
    ratio = np.float32(src) / np.float32(dst)
    sratio = max(ratio, np.float32(1.0))
    support = np.float32(1.0) * sratio
    weights = np.zeros((dst, src), dtype=np.float32)
    for out in range(dst):
        centre = (np.float32(out) + np.float32(0.5)) * ratio
        left = int(np.floor(centre - support))
        left = min(max(left, 0), src - 1)
        right = int(np.ceil(centre + support))
        right = min(max(right, left + 1), src)
        centre = centre - np.float32(0.5)
        x = (np.arange(left, right, dtype=np.float32) - centre) / sratio
        w = np.where(np.abs(x) < 1.0, 1.0 - np.abs(x), 0.0).astype(np.float32)
        weights[out, left:right] = w / w.sum(dtype=np.float32)
    return weights


def resize_bilinear(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [H, W] or [H, W, C] stretched like `image::imageops::resize(.., Triangle)`."""
    planar = pixels.astype(np.float32)
    planar = planar[None] if planar.ndim == 2 else planar.transpose(2, 0, 1)  # [C, H, W]
    wv = _triangle_weights(pixels.shape[0], height)
    wh = _triangle_weights(pixels.shape[1], width)
    tmp = np.matmul(wv, planar)  # vertical pass first, kept in f32: [C, height, W]
    out = np.matmul(tmp, wh.T)  # then horizontal: [C, height, width]
    # f32::round: half away from zero (values are >= 0 after the clamp).
    out = np.floor(np.clip(out, 0.0, 255.0) + 0.5).astype(np.uint8)
    return out[0] if pixels.ndim == 2 else out.transpose(1, 2, 0)


def load_pixels(path: Path, size: tuple[int, int], color_order: str) -> np.ndarray:
    """One image as uint8 [C, H, W] in `color_order`, stretched to size=(height, width)."""
    height, width = size
    with Image.open(path) as img:
        img.load()
        if color_order == "GRAY":
            if img.mode != "L":
                img = Image.fromarray(to_luma_rec709(np.asarray(img.convert("RGB"))), "L")
        else:
            img = img.convert("RGB")
        arr = np.asarray(img, dtype=np.uint8)
    if arr.shape[:2] != (height, width):
        arr = resize_bilinear(arr, height, width)
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
        if color_order == "BGR":
            arr = arr[::-1]
    return np.ascontiguousarray(arr)


def load_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A class-index mask as uint8 [H, W], resized with NEAREST when needed."""
    height, width = size
    with Image.open(path) as img:
        img.load()
        if img.mode not in ("L", "P"):
            img = img.convert("L")
        if img.size != (width, height):
            img = img.resize((width, height), Image.NEAREST)
        return np.asarray(img, dtype=np.uint8).copy()


def normalise(pixels, scale: float, mean, std):
    """(pixel * scale - mean[c]) / std[c] for a uint8 batch [N, C, H, W] (numpy or torch)."""
    c = len(mean)
    try:
        import torch

        if isinstance(pixels, torch.Tensor):
            m = torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1)
            s = torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1)
            return (pixels.float() * scale - m) / s
    except ImportError:  # pragma: no cover - numpy-only use
        pass
    m = np.asarray(mean, np.float32).reshape(1, c, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, c, 1, 1)
    return ((pixels.astype(np.float32) * np.float32(scale)) - m) / s


# --- coils ------------------------------------------------------------------------------------


@dataclass
class CoilSet:
    """A coil dataset in memory: pixels [N, C, H, W] uint8 and per-image metadata."""

    folder: Path
    pixels: np.ndarray
    labels: np.ndarray  # index into COIL_LABELS
    camera_loose: np.ndarray  # bool: the simulated camera said loose_wire
    product_ids: list
    records: list[dict]
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def defect_masks(self) -> np.ndarray:
        """uint8 [N, H, W] at the pixel size: each defect's bbox filled with its label index
        (burr 1, loose_wire 2, loose_wire drawn last); for dense auxiliary supervision."""
        n, _, h, w = self.pixels.shape
        out = np.zeros((n, h, w), dtype=np.uint8)
        for i, r in enumerate(self.records):
            sx = w / float(r.get("width") or w)
            sy = h / float(r.get("height") or h)
            for d in sorted(r.get("defects") or [], key=lambda d: d.get("kind") == "loose_wire"):
                if d.get("kind") not in COIL_LABELS[1:] or len(d.get("bbox") or []) != 4:
                    continue
                x0, y0, x1, y1 = d["bbox"]
                x0, x1 = int(np.floor(x0 * sx)), max(int(np.ceil(x1 * sx)), int(np.floor(x0 * sx)) + 1)
                y0, y1 = int(np.floor(y0 * sy)), max(int(np.ceil(y1 * sy)), int(np.floor(y0 * sy)) + 1)
                out[i, max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)] = COIL_LABELS.index(d["kind"])
        return out

    def counts(self) -> dict[str, int]:
        return {l: int((self.labels == i).sum()) for i, l in enumerate(COIL_LABELS)}


def concat_coils(sets: list["CoilSet"]) -> "CoilSet":
    """Several coil data sets as one (for training on more than one generated folder).

    Product ids are prefixed with the folder's seed so that they stay distinct; `folder` and
    `info` are those of the first set, `folders` lists them all."""
    if len(sets) == 1:
        return sets[0]
    ids = [f"{ds.info.get('seed', k)}/{pid}" for k, ds in enumerate(sets) for pid in ds.product_ids]
    out = CoilSet(
        folder=sets[0].folder,
        pixels=np.concatenate([ds.pixels for ds in sets]),
        labels=np.concatenate([ds.labels for ds in sets]),
        camera_loose=np.concatenate([ds.camera_loose for ds in sets]),
        product_ids=ids,
        records=[r for ds in sets for r in ds.records],
        info=sets[0].info,
    )
    out.parts = sets
    return out


def check_coil_records(folder: Path, records: list[dict]) -> None:
    """Every record has a known label and the file exists; every class has an image."""
    counts = {l: 0 for l in COIL_LABELS}
    for r in records:
        label = r.get("label")
        if label not in counts:
            raise DataError(
                f"{folder / MANIFEST}: image {r.get('file')!r} has label {label!r}, "
                f"expected one of {COIL_LABELS}"
            )
        counts[label] += 1
    empty = [l for l, n in counts.items() if n == 0]
    if empty:
        raise DataError(
            f"{folder / MANIFEST}: class {', '.join(empty)} has no images "
            f"(counts: {counts}); every class needs examples"
        )


def load_coils(folder: Path, size: tuple[int, int], color_order: str = "RGB") -> CoilSet:
    """Reads and checks a coil dataset; preprocessed pixels are cached beside the manifest."""
    folder = Path(folder)
    records = read_manifest(folder)
    check_coil_records(folder, records)
    pixels = _cached_pixels(folder, records, size, color_order)
    labels = np.array([COIL_LABELS.index(r["label"]) for r in records], dtype=np.int64)
    camera = np.array([r.get("camera_verdict") == "loose_wire" for r in records], dtype=bool)
    return CoilSet(
        folder=folder,
        pixels=pixels,
        labels=labels,
        camera_loose=camera,
        product_ids=[r.get("product_id") for r in records],
        records=records,
        info=read_dataset_info(folder),
    )


def _cached_pixels(folder: Path, records, size, color_order) -> np.ndarray:
    h, w = size
    cache = folder / f".cache-{color_order}-{h}x{w}.npy"
    manifest_mtime = (folder / MANIFEST).stat().st_mtime
    if cache.is_file() and cache.stat().st_mtime >= manifest_mtime:
        arr = np.load(cache)
        if arr.shape[0] == len(records):
            return arr
    paths = [_existing(folder, r["file"]) for r in records]
    arr = np.stack(_parallel(functools.partial(load_pixels, size=size, color_order=color_order), paths))
    np.save(cache, arr)
    return arr


def _parallel(fn, items: list, workers: int = 2) -> list:
    """fn over items in `workers` forked processes (decoding PNGs is the slow part)."""
    if len(items) < 64:
        return [fn(i) for i in items]
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.map(fn, items, chunksize=64)


def _existing(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise DataError(f"{folder / MANIFEST}: listed file {name!r} does not exist")
    return path


# --- surfaces ---------------------------------------------------------------------------------


@dataclass
class SurfaceSet:
    """A surface dataset in memory: pixels [N, C, H, W] uint8, masks [N, H, W] uint8."""

    folder: Path
    pixels: np.ndarray
    masks: np.ndarray
    records: list[dict]
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.masks)

    def has_defect(self) -> np.ndarray:
        return (self.masks.reshape(len(self.masks), -1) > 0).any(axis=1)

    def class_pixels(self) -> dict[str, int]:
        counts = np.bincount(self.masks.ravel(), minlength=len(SURFACE_CLASSES))
        return {c: int(counts[i]) for i, c in enumerate(SURFACE_CLASSES)}


def load_surfaces(folder: Path, size: tuple[int, int], color_order: str = "GRAY") -> SurfaceSet:
    """Reads and checks a surface dataset (every class must cover some pixels)."""
    folder = Path(folder)
    records = read_manifest(folder)
    for r in records:
        if "mask" not in r:
            raise DataError(f"{folder / MANIFEST}: image {r.get('file')!r} has no `mask` field")
    pixels = _cached_pixels(folder, records, size, color_order)
    h, w = size
    cache = folder / f".cache-mask-{h}x{w}.npy"
    if cache.is_file() and cache.stat().st_mtime >= (folder / MANIFEST).stat().st_mtime:
        masks = np.load(cache)
    else:
        paths = [_existing(folder, r["mask"]) for r in records]
        masks = np.stack(_parallel(functools.partial(load_mask, size=size), paths))
        np.save(cache, masks)
    if masks.max() >= len(SURFACE_CLASSES):
        raise DataError(
            f"{folder}: a mask has class index {int(masks.max())}, "
            f"expected 0..{len(SURFACE_CLASSES) - 1}"
        )
    data = SurfaceSet(folder, pixels, masks, records, read_dataset_info(folder))
    counts = data.class_pixels()
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise DataError(
            f"{folder}: class {', '.join(empty)} covers no pixels in any mask "
            f"(pixel counts: {counts}); every class needs examples"
        )
    return data
