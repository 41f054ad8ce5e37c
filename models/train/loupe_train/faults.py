"""Camera faults: what a dirty, misaligned or mis-exposed camera does to a photo.

Each fault is a function of a uint8 image (H x W x 3 or H x W) and a numpy Generator (used by
`noise` only; the others are deterministic), returning a new uint8 image of the same shape.
The Rust side (`loupe eval --fault NAME:VALUE`) implements the same definitions:

- `blur:S`      Gaussian blur, standard deviation S px: the kernel w(k) = exp(-k^2 / (2 S^2)),
                k = -r..r with r = ceil(3 S), normalised to sum 1; separable (horizontal pass,
                then vertical, no rounding in between), edges replicated (a sample outside
                the image takes the nearest edge pixel). S <= 0: unchanged.
- `jpeg:Q`      encoded as a JPEG of quality Q with Pillow (its default 4:2:0 chroma
                subsampling for colour, luma only for grey) and decoded.
- `exposure:F`  every value * F, rounded, clipped to 0..255.
- `noise:S`     N(0, S^2) added independently per pixel and channel (`rng.normal(0, S, shape)`),
                rounded, clipped.
- `tilt:D`      rotated by D degrees about the image centre ((W-1)/2, (H-1)/2 in pixel
                coordinates), clockwise as displayed for D > 0 (y points down; the Rust
                `loupe_synth::faults` direction): the output pixel (x, y) samples the input at
                    xs = cx + (x - cx) cos D + (y - cy) sin D
                    ys = cy - (x - cx) sin D + (y - cy) cos D
                bilinearly, a sample outside the image replicating the edge (the
                four neighbour indices clamped to the image). Masks (class indices) take the
                nearest pixel instead: floor(xs + 0.5), floor(ys + 0.5), clamped.

"Rounded" is half away from zero (Rust's f32::round), then clipped to 0..255. Arithmetic is
float32 in the Rust side's order (`nodes/synth/src/faults.rs`), so the two agree up to the last
bit of exp/sin/cos (a rare pixel may differ by one grey level); the noise comes from each
side's own generator (the same distribution, not the same numbers).

Evaluation grid (`GRID`): clean, blur:1.5, jpeg:50, exposure:0.7, exposure:1.3, noise:8,
tilt:7, tilt:-7.

Training uses random mixtures of these with broader ranges (`Mix`), as fast torch batch
operations (`mix_batch`); they are the same operations, up to float32 instead of float64 and
no intermediate rounding to uint8.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass

import numpy as np

GRID = ["clean", "blur:1.5", "jpeg:50", "exposure:0.7", "exposure:1.3", "noise:8", "tilt:7",
        "tilt:-7"]


F32 = np.float32


def _round_clip(v: np.ndarray) -> np.ndarray:
    """float32 -> uint8: rounded half away from zero (f32::round), clipped to 0..255."""
    r = np.floor(v)
    r += (v - r) >= F32(0.5)
    return np.clip(r, 0, 255).astype(np.uint8)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """float32 weights exp(-k^2 / (2 sigma^2)), k = -r..r, r = ceil(3 sigma), summed in order
    and normalised (as the Rust side computes them)."""
    s = F32(sigma)
    r = int(math.ceil(float(F32(3.0) * s)))
    k = np.arange(-r, r + 1).astype(F32)
    w = np.exp(-(k * k) / (F32(2.0) * s * s)).astype(F32)
    total = F32(0.0)
    for v in w:
        total = F32(total + v)
    return (w / total).astype(F32)


def _blur_axes(f: np.ndarray, w: np.ndarray, ax_h: int, ax_w: int) -> np.ndarray:
    """Separable blur of float32 `f` along ax_w (first), then ax_h, edges replicated; each
    output is sum_k w[k] * sample, accumulated in k order from 0 (the Rust loop)."""
    r = len(w) // 2
    tmp = np.empty_like(f)
    for ax in (ax_w, ax_h):
        pad = [(0, 0)] * f.ndim
        pad[ax] = (r, r)
        fp = np.pad(f, pad, mode="edge")
        n = f.shape[ax]
        acc = np.zeros_like(f)
        for j in range(len(w)):
            np.multiply(fp[(slice(None),) * ax + (slice(j, j + n),)], w[j], out=tmp)
            acc += tmp
        f = acc
    return f


def blur(img: np.ndarray, sigma: float, rng: np.random.Generator | None = None) -> np.ndarray:
    if sigma <= 0:
        return img.copy()
    return _round_clip(_blur_axes(img.astype(F32), gaussian_kernel(sigma), 0, 1))


def jpeg(img: np.ndarray, quality: float, rng: np.random.Generator | None = None) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        out = np.asarray(im.convert("L" if img.ndim == 2 else "RGB"), dtype=np.uint8)
    return out.copy()


def exposure(img: np.ndarray, factor: float, rng: np.random.Generator | None = None) -> np.ndarray:
    return _round_clip(img.astype(F32) * F32(factor))


def noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return _round_clip(img.astype(F32) + rng.normal(0.0, sigma, img.shape).astype(F32))


def _tilt_coords(h: int, w: int, degrees: float):
    """float32 source coordinates of every output pixel (the Rust side's arithmetic)."""
    a = F32(F32(degrees) * F32(math.pi / 180.0))
    sin, cos = np.sin(a, dtype=F32), np.cos(a, dtype=F32)
    cy, cx = F32((h - 1.0) / 2.0), F32((w - 1.0) / 2.0)
    y, x = np.mgrid[0:h, 0:w].astype(F32)
    dx, dy = x - cx, y - cy
    xs = (cos * dx + sin * dy) + cx
    ys = (-sin * dx + cos * dy) + cy
    return xs, ys


def tilt(img: np.ndarray, degrees: float, rng: np.random.Generator | None = None) -> np.ndarray:
    if degrees == 0:
        return img.copy()
    h, w = img.shape[:2]
    xs, ys = _tilt_coords(h, w, degrees)
    return _round_clip(_bilinear(img.astype(F32), xs, ys, 0))


def _bilinear(f: np.ndarray, xs: np.ndarray, ys: np.ndarray, ax: int) -> np.ndarray:
    """Samples float32 `f` (its H, W axes at ax, ax + 1) at (xs, ys), edges replicated."""
    h, w = f.shape[ax], f.shape[ax + 1]
    x0, y0 = np.floor(xs), np.floor(ys)
    fx, fy = xs - x0, ys - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    x1, y1 = np.clip(x0 + 1, 0, w - 1), np.clip(y0 + 1, 0, h - 1)
    x0, y0 = np.clip(x0, 0, w - 1), np.clip(y0, 0, h - 1)
    trail = (None,) * (f.ndim - ax - 2)
    fx, fy = fx[(...,) + trail], fy[(...,) + trail]
    lead = (slice(None),) * ax
    g = lambda yy, xx: f[lead + (yy, xx)]  # noqa: E731
    one = F32(1.0)
    top = g(y0, x0) * (one - fx) + g(y0, x1) * fx
    bottom = g(y1, x0) * (one - fx) + g(y1, x1) * fx
    return top * (one - fy) + bottom * fy


def tilt_mask(mask: np.ndarray, degrees: float) -> np.ndarray:
    """A class-index mask [H, W] rotated like `tilt`, nearest neighbour."""
    if degrees == 0:
        return mask.copy()
    h, w = mask.shape[:2]
    xs, ys = _tilt_coords(h, w, degrees)
    xi = np.clip(np.floor(xs + 0.5).astype(np.int64), 0, w - 1)
    yi = np.clip(np.floor(ys + 0.5).astype(np.int64), 0, h - 1)
    return mask[yi, xi]


FAULTS = {"blur": blur, "jpeg": jpeg, "exposure": exposure, "noise": noise, "tilt": tilt}


def parse(spec: str) -> tuple[str, float | None]:
    """'blur:1.5' -> ('blur', 1.5); 'clean' -> ('clean', None)."""
    if spec == "clean":
        return "clean", None
    name, sep, value = spec.partition(":")
    if not sep or name not in FAULTS:
        raise ValueError(f"unknown fault {spec!r}: expected clean or one of "
                         f"{sorted(FAULTS)} as NAME:VALUE")
    return name, float(value)


def apply(spec: str, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One fault (e.g. 'noise:8') on one uint8 image [H, W, 3] or [H, W]."""
    name, value = parse(spec)
    return img.copy() if name == "clean" else FAULTS[name](img, value, rng)


def apply_chw(spec: str, pixels: np.ndarray, seed: int = 0) -> np.ndarray:
    """One fault on a batch uint8 [N, C, H, W] (the loaders' layout); noise seeded by `seed`
    (one Generator for the batch, images in order)."""
    if spec == "clean":
        return pixels
    rng = np.random.default_rng(seed)
    out = np.empty_like(pixels)
    for i in range(len(pixels)):
        img = pixels[i].transpose(1, 2, 0)
        if img.shape[2] == 1:
            out[i, 0] = apply(spec, img[:, :, 0], rng)
        else:
            out[i] = apply(spec, np.ascontiguousarray(img), rng).transpose(2, 0, 1)
    return out


def apply_batch(spec: str, pixels: np.ndarray, seed: int = 0) -> np.ndarray:
    """`apply_chw`, faster: blur, tilt and exposure over the whole batch at once (the same
    elementwise float32 arithmetic, so the same bytes); the others per image."""
    name, value = parse(spec)
    if name not in ("blur", "tilt", "exposure") or (name != "exposure" and not value):
        return apply_chw(spec, pixels, seed)
    n, c, h, w = pixels.shape
    out = np.empty_like(pixels)
    step = 16
    if name == "blur":
        k = gaussian_kernel(value)
        for i in range(0, n, step):
            out[i : i + step] = _round_clip(_blur_axes(pixels[i : i + step].astype(F32), k, 2, 3))
    elif name == "tilt":
        xs, ys = _tilt_coords(h, w, value)
        for i in range(0, n, step):
            out[i : i + step] = _round_clip(_bilinear(pixels[i : i + step].astype(F32), xs, ys, 2))
    else:
        for i in range(0, n, step):
            out[i : i + step] = _round_clip(pixels[i : i + step].astype(F32) * F32(value))
    return out


# --- training: random mixtures as torch batch operations -------------------------------------


@dataclass
class Mix:
    """Random fault mixtures for training. Each image is left clean with probability `clean`;
    otherwise each fault applies independently with probability `p`, with its strength
    uniform in the range below (often several at once)."""

    clean: float = 0.2
    p: float = 0.45
    blur: tuple = (0.0, 2.0)
    jpeg: tuple = (30, 95)
    jpeg_p: float = 0.3
    exposure: tuple = (0.6, 1.45)
    noise: tuple = (0.0, 12.0)
    tilt: tuple = (-10.0, 10.0)

    def record(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def mix_batch(x, g, mix: Mix, mask=None):
    """Random fault mixtures on float pixels [N, C, H, W] in 0..255 (torch), seeded by the
    torch Generator `g`; a mask [N, H, W] (class indices) gets the same tilts (nearest).
    Order: tilt, blur, exposure, noise, JPEG (geometry, optics, sensor, encoding)."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    r = lambda: torch.rand(n, generator=g)  # noqa: E731
    active = r() >= mix.clean
    use = {k: active & (r() < mix.p) for k in ("tilt", "blur", "exposure", "noise")}
    use["jpeg"] = active & (r() < mix.jpeg_p)
    u = {k: r() for k in ("tilt", "blur", "exposure", "noise", "jpeg")}
    lerp = lambda rng, t: rng[0] + (rng[1] - rng[0]) * t  # noqa: E731
    x = x.float()

    if bool(use["tilt"].any()):
        deg = torch.where(use["tilt"], lerp(mix.tilt, u["tilt"]), torch.zeros(n))
        a = deg * math.pi / 180.0
        cos, sin = torch.cos(a), torch.sin(a)
        # Pixel-centre coordinates; grid_sample(align_corners=True) maps -1..1 to pixel
        # centres 0..W-1, so the rotation about ((W-1)/2, (H-1)/2) is exact for any H, W.
        sx, sy = (w - 1) / 2.0, (h - 1) / 2.0
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = cos
        theta[:, 0, 1] = sin * sy / sx
        theta[:, 1, 0] = -sin * sx / sy
        theta[:, 1, 1] = cos
        grid = F.affine_grid(theta, (n, c, h, w), align_corners=True)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
        if mask is not None:
            m = F.grid_sample(mask[:, None].float(), grid, mode="nearest",
                              padding_mode="border", align_corners=True)
            mask = m[:, 0].round().to(mask.dtype)

    if bool(use["blur"].any()):
        sig = torch.where(use["blur"], lerp(mix.blur, u["blur"]), torch.zeros(n))
        rad = int(math.ceil(3.0 * float(sig.max())))
        if rad > 0:
            k = torch.arange(-rad, rad + 1, dtype=torch.float32)
            s = sig.clamp_min(1e-3)[:, None]
            kern = torch.exp(-(k[None] ** 2) / (2 * s**2))
            kern = kern * (k[None].abs() <= torch.ceil(3 * s))  # radius ceil(3 sigma) per image
            kern = kern / kern.sum(1, keepdim=True)
            kern = torch.where((sig > 1e-3)[:, None], kern, (k == 0).float()[None])
            kk = kern.repeat_interleave(c, 0)  # [N*C, K]
            y = x.reshape(1, n * c, h, w)
            y = F.pad(y, (rad, rad, 0, 0), mode="replicate")
            y = F.conv2d(y, kk[:, None, None, :], groups=n * c)
            y = F.pad(y, (0, 0, rad, rad), mode="replicate")
            y = F.conv2d(y, kk[:, None, :, None], groups=n * c)
            x = y.reshape(n, c, h, w)

    if bool(use["exposure"].any()):
        f = torch.where(use["exposure"], lerp(mix.exposure, u["exposure"]), torch.ones(n))
        x = (x * f[:, None, None, None]).clamp(0, 255)

    if bool(use["noise"].any()):
        s = torch.where(use["noise"], lerp(mix.noise, u["noise"]), torch.zeros(n))
        x = (x + torch.randn(x.shape, generator=g) * s[:, None, None, None]).clamp(0, 255)

    if bool(use["jpeg"].any()):
        x = x.round().clamp(0, 255)
        q = lerp(mix.jpeg, u["jpeg"]).round()
        for i in torch.nonzero(use["jpeg"]).flatten().tolist():
            img = x[i].to(torch.uint8).permute(1, 2, 0).numpy()
            img = img[:, :, 0] if c == 1 else img
            out = jpeg(np.ascontiguousarray(img), int(q[i]))
            out = out[:, :, None] if c == 1 else out
            x[i] = torch.from_numpy(out).permute(2, 0, 1).float()
    return x, mask
