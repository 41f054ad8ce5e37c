"""Batch augmentation on uint8 tensors [N, C, H, W] (and masks [N, H, W]), seeded by a Generator.

Only transformations that keep the label true: random crops (segmentation: the model is fully
convolutional), mirror flips, quarter turns, small shifts (edge replicated), and a mild
brightness/contrast change; each caller enables the ones that stay realistic for its images. Geometric ones are applied identically to a
mask when one is given.
"""

from __future__ import annotations

import torch


def augment(x: torch.Tensor, g: torch.Generator, mask: torch.Tensor | None = None, *,
            hflip: bool = True, vflip: bool = False, quarter_turns: bool = False,
            shift: int = 0, crop: int = 0, brightness: float = 0.0, contrast: float = 0.0):
    """Returns float32 pixels in 0..255 (and the mask) after random label-safe changes."""
    n = x.shape[0]
    x = x.float()
    if crop:
        out = torch.empty((*x.shape[:2], crop, crop), dtype=x.dtype)
        out_mask = None if mask is None else torch.empty((n, crop, crop), dtype=mask.dtype)
    else:
        out, out_mask = torch.empty_like(x), None if mask is None else torch.empty_like(mask)
    for i in range(n):
        xi = x[i]
        mi = None if mask is None else mask[i]
        if crop:
            h, w = xi.shape[-2:]
            top = int(torch.randint(0, h - crop + 1, (), generator=g))
            left = int(torch.randint(0, w - crop + 1, (), generator=g))
            xi = xi[:, top : top + crop, left : left + crop]
            mi = None if mi is None else mi[top : top + crop, left : left + crop]
        if hflip and torch.rand((), generator=g) < 0.5:
            xi = xi.flip(-1)
            mi = None if mi is None else mi.flip(-1)
        if vflip and torch.rand((), generator=g) < 0.5:
            xi = xi.flip(-2)
            mi = None if mi is None else mi.flip(-2)
        if quarter_turns and xi.shape[-1] == xi.shape[-2]:
            k = int(torch.randint(0, 4, (), generator=g))
            if k:
                xi = torch.rot90(xi, k, (-2, -1))
                mi = None if mi is None else torch.rot90(mi, k, (-2, -1))
        if shift:
            dy, dx = (int(v) for v in torch.randint(-shift, shift + 1, (2,), generator=g))
            xi = _shift(xi, dy, dx)
            mi = None if mi is None else _shift(mi[None], dy, dx)[0]
        out[i] = xi
        if mi is not None:
            out_mask[i] = mi
    if brightness or contrast:
        b = (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * brightness * 255.0
        c = 1.0 + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * contrast
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = ((out - mean) * c + mean + b).clamp(0.0, 255.0)
    return out, out_mask


def _shift(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate [C, H, W] by (dy, dx), replicating the edge."""
    if dy == 0 and dx == 0:
        return t
    h, w = t.shape[-2:]
    ys = (torch.arange(h) - dy).clamp(0, h - 1)
    xs = (torch.arange(w) - dx).clamp(0, w - 1)
    return t[:, ys][:, :, xs]
