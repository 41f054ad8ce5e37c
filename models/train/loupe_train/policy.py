"""Coil-level decisions: calibration at plant prevalence, the stop policy, its thresholds.

The plant decides per coil (8 angles). Per angle, first match wins:

    stop     if camera_verdict == loose_wire and p(loose_wire) >= confirm
    stop     if p(loose_wire) >= override       (the camera passed it: only a very sure model)
    suspect  if camera_verdict == loose_wire and p(loose_wire) >= suspect
    pass     otherwise

and a coil is stopped when any of its angles stops, or when `suspect_angles` (2) of its angles
are suspect or stop: a loose wire is seen from several cameras, so two camera-flagged angles
with weak evidence stop a coil that one such angle alone would not (multi-view). A defective
coil is one with any loose_wire angle; the camera "stops" a coil when any angle has
camera_verdict loose_wire.

Calibration: a temperature T and a per-class bias b on the image logits z (z_ok = 0),
p = softmax(z / T + b), fitted by weighted maximum likelihood on the validation images, each
image weighted by plant share / validation share of its class (plant shares from the
validation seed generated at the plant's prevalence), and baked into the exported graph.
"""

from __future__ import annotations

import math

import numpy as np

from . import data

LABELS = data.COIL_LABELS
LOOSE = LABELS.index("loose_wire")


# --- calibration ------------------------------------------------------------------------------


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def calibrated(z: np.ndarray, temperature: float, bias) -> np.ndarray:
    return softmax(np.asarray(z, np.float64) / temperature + np.asarray(bias, np.float64))


def prevalence_weights(labels: np.ndarray, plant_share: dict) -> tuple[np.ndarray, dict]:
    """Per-image weight = plant share / data share of its class (mean weight 1)."""
    n = len(LABELS)
    counts = np.bincount(labels, minlength=n).astype(np.float64)
    share = counts / counts.sum()
    target = np.array([plant_share[l] for l in LABELS], np.float64)
    target = target / target.sum()
    w_class = np.where(counts > 0, target / np.maximum(share, 1e-12), 0.0)
    w = w_class[labels]
    return w / w.mean(), {l: round(float(w_class[i]), 5) for i, l in enumerate(LABELS)}


def fit_temperature(z: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                    with_bias: bool = True) -> dict:
    """T (and bias b, b_ok = 0) minimising the weighted NLL of softmax(z / T + b)."""
    import torch

    zt = torch.tensor(z, dtype=torch.float64)
    y = torch.tensor(labels, dtype=torch.long)
    w = torch.tensor(weights, dtype=torch.float64)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(LABELS) - 1, dtype=torch.float64, requires_grad=True)
    params = [log_t, b] if with_bias else [log_t]
    opt = torch.optim.LBFGS(params, lr=0.5, max_iter=500, tolerance_grad=1e-10,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def nll():
        bias = torch.cat([torch.zeros(1, dtype=torch.float64), b])
        logp = torch.log_softmax(zt / torch.exp(log_t) + bias, 1)
        return -(w * logp[torch.arange(len(y)), y]).sum() / w.sum()

    def closure():
        opt.zero_grad()
        loss = nll()
        loss.backward()
        return loss

    before = float(nll_at(z, labels, weights, 1.0, [0.0] * len(LABELS)))
    opt.step(closure)
    t = float(torch.exp(log_t.detach()))
    bias = [0.0] + [float(v) for v in b.detach()]
    return {"temperature": t, "bias": bias, "nll_before": before,
            "nll_after": float(nll_at(z, labels, weights, t, bias))}


def nll_at(z, labels, weights, temperature, bias) -> float:
    p = calibrated(z, temperature, bias)
    lp = np.log(np.clip(p[np.arange(len(labels)), labels], 1e-300, None))
    return float(-(weights * lp).sum() / weights.sum())


def ece(p: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None,
        bins: int = 15) -> float:
    """Expected calibration error of the top-label confidence, `bins` equal-width bins,
    optionally weighted (e.g. reweighted to the plant prevalence)."""
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, np.float64)
    conf = p.max(1)
    correct = (p.argmax(1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total, err = w.sum(), 0.0
    for k in range(bins):
        m = idx == k
        if m.any():
            wk = w[m].sum()
            err += wk / total * abs(np.average(correct[m], weights=w[m])
                                    - np.average(conf[m], weights=w[m]))
    return float(err)


def ece_class(p: np.ndarray, labels: np.ndarray, k: int, weights=None, bins: int = 15) -> float:
    """ECE of p(class k) as a probability of 'is class k' (the decision's probability)."""
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, np.float64)
    q = p[:, k]
    hit = (labels == k).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(q, edges[1:-1], right=True), 0, bins - 1)
    total, err = w.sum(), 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            err += w[m].sum() / total * abs(np.average(hit[m], weights=w[m])
                                            - np.average(q[m], weights=w[m]))
    return float(err)


# --- coils ------------------------------------------------------------------------------------


class Coils:
    """Groups images into coils (products) once: index arrays for fast per-coil maxima."""

    def __init__(self, product_ids: list, labels: np.ndarray, camera_loose: np.ndarray):
        keys = {}
        self.coil = np.array([keys.setdefault(pid, len(keys)) for pid in product_ids])
        self.n = len(keys)
        self.labels = labels
        self.camera = camera_loose.astype(bool)
        self.defective = np.zeros(self.n, bool)
        np.logical_or.at(self.defective, self.coil, labels == LOOSE)
        self.camera_stop = np.zeros(self.n, bool)
        np.logical_or.at(self.camera_stop, self.coil, self.camera)

    def max_per_coil(self, values: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """Per coil, the max of `values` over its images (over those in `where`); -inf if none."""
        out = np.full(self.n, -np.inf)
        v = values if where is None else np.where(where, values, -np.inf)
        np.maximum.at(out, self.coil, v)
        return out

    def nth_per_coil(self, values: np.ndarray, where: np.ndarray, n: int) -> np.ndarray:
        """Per coil, the n-th largest (1 = the largest) of `values` over its images in `where`;
        -inf where the coil has fewer such images."""
        v = np.where(where, values, -np.inf)
        order = np.lexsort((-v, self.coil))
        coil, v = self.coil[order], v[order]
        first = np.searchsorted(coil, np.arange(self.n))
        count = np.bincount(coil, minlength=self.n)
        out = np.full(self.n, -np.inf)
        has = count >= n
        out[has] = v[first[has] + n - 1]
        return out

    def stopped(self, p_loose: np.ndarray, confirm: float, override: float,
                suspect: float | None = None, suspect_angles: int = 2) -> np.ndarray:
        stop = (self.camera & (p_loose >= confirm)) | (p_loose >= override)
        out = np.zeros(self.n, bool)
        np.logical_or.at(out, self.coil, stop)
        if suspect is not None:
            weak = stop | (self.camera & (p_loose >= suspect))
            out |= np.bincount(self.coil, weights=weak, minlength=self.n) >= suspect_angles
        return out

    def figures(self, p_loose: np.ndarray, confirm: float, override: float,
                suspect: float | None = None, suspect_angles: int = 2) -> dict:
        s = self.stopped(p_loose, confirm, override, suspect, suspect_angles)
        d, c = self.defective, self.camera_stop
        good = ~d
        cam_good = int((c & good).sum())
        good_stopped = int((s & good).sum())
        cleared = int((c & good & ~s).sum())
        return {
            "coils": int(self.n),
            "defective": int(d.sum()),
            "defective_stopped": int((s & d).sum()),
            "defective_missed": int((d & ~s).sum()),
            "defective_camera_stopped": int((d & c).sum()),
            "good": int(good.sum()),
            "good_stopped": good_stopped,
            "good_camera_stopped": cam_good,
            "camera_false_rejects_cleared": cleared,
            "camera_false_rejects_cleared_rate": round(cleared / cam_good, 5) if cam_good else None,
            "good_stopped_over_camera": round(good_stopped / cam_good, 5) if cam_good else None,
        }


def logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def choose(conditions: dict[str, tuple["Coils", np.ndarray]], margin: float = 1.0,
           override_good_share: float = 0.005, override_margin: float = 1.0,
           complete: set | None = None, suspect_angles: int | None = None) -> dict:
    """T_confirm and T_override from validation coils under every condition (clean, faults).

    confirm: the lowest, over conditions, of the defective coils' best camera-flagged angle
    score (the highest threshold at which confirm alone still stops every defective coil the
    camera flags at least once), lowered by `margin` in log-odds.
    override: the highest, over conditions, of the (1 - override_good_share) quantile of the
    good coils' best camera-passed angle score, raised by `override_margin` in log-odds, and
    never below confirm. Defective coils that the camera never flags can only be stopped by it.
    `complete`: the conditions whose scores cover every image (None = all); the others only
    cover the images the camera flags and those of defective coils, so no override quantile.

    `suspect_angles` (multi-view): `confirm` and `suspect` are chosen together, as the pair
    that stops the fewest validation good coils (summed over the conditions) while every
    validation defective coil the camera flags is stopped, under every condition, with
    `margin` to spare: its best camera-flagged score at least `confirm` raised by `margin`,
    or its `suspect_angles`-th best camera-flagged score at least `suspect` raised by
    `margin`. A coil whose loose wire shows from one angle only is still stopped by that angle,
    and confirm is never above override.
    """
    lowest, worst = 1.0, None
    per_condition = {}
    for name, (coils, p) in conditions.items():
        best = coils.max_per_coil(p, coils.camera)[coils.defective & coils.camera_stop]
        low = float(best.min()) if best.size else 1.0
        good_passed = coils.max_per_coil(p, ~coils.camera)[~coils.defective]
        good_passed = np.where(np.isfinite(good_passed), good_passed, 0.0)
        full = complete is None or name in complete
        q = (float(np.quantile(good_passed, 1 - max(override_good_share, 0.005), method="higher"))
             if full else None)
        missed_cam = coils.max_per_coil(p)[coils.defective & ~coils.camera_stop]
        per_condition[name] = {
            "lowest_defective_confirm_score": round(low, 6),
            "good_passed_quantile": None if q is None else round(q, 6),
            "camera_never_flags_defective": int(missed_cam.size),
            "their_best_scores": [round(float(v), 4) for v in np.sort(missed_cam)],
        }
        if low < lowest:
            lowest, worst = low, name
    confirm = _floor4(sigmoid(logit(lowest) - margin))
    q_max = max(v["good_passed_quantile"] for v in per_condition.values()
                if v["good_passed_quantile"] is not None)
    override = sigmoid(logit(q_max) + override_margin)
    override = max(math.ceil(override * 1e4) / 1e4, confirm)
    multiview = None
    if suspect_angles is not None:
        confirm, suspect, multiview = _choose_multiview(conditions, margin, override,
                                                        suspect_angles, per_condition)
    out = {"confirm": confirm, "override": override,
           "confirm_highest_meeting_target": round(lowest, 6), "confirm_decided_by": worst,
           "margin_log_odds": margin, "override_good_share": override_good_share,
           "override_quantile": round(q_max, 6), "override_margin_log_odds": override_margin,
           "per_condition": per_condition}
    if multiview:
        out |= multiview
    return out


def _floor4(p: float) -> float:
    return math.floor(p * 1e4) / 1e4


def _choose_multiview(conditions: dict, margin: float, override: float, n: int,
                      per_condition: dict) -> tuple[float, float, dict]:
    """(confirm, suspect, record) of the multi-view rule (see `choose`)."""
    evidence = []  # (logit of the best, logit of the n-th best) flagged score per defective coil
    for name, (coils, p) in conditions.items():
        flagged = coils.defective & coils.camera_stop
        best = coils.max_per_coil(p, coils.camera)[flagged]
        nth = coils.nth_per_coil(p, coils.camera, n)[flagged]
        per_condition[name][f"defective_with_{n}_flagged_angles"] = int(np.isfinite(nth).sum())
        evidence += [(logit(b), logit(v) if np.isfinite(v) else -np.inf) for b, v in zip(best, nth)]
    if not evidence:
        raise ValueError("no validation defective coil the camera flags: nothing to choose on")
    ev = np.array(evidence)
    # A camera-flagged angle the model is as sure of as the override always stops.
    candidates = sorted({_floor4(sigmoid(b - margin)) for b in ev[:, 0]
                         if sigmoid(b - margin) < override} | {override})
    best = None
    for confirm in candidates:
        # The defective coils this confirm does not stop with the margin need multi-view.
        weak = ev[:, 0] - margin < logit(confirm)
        need = ev[weak, 1]
        if need.size and not np.isfinite(need).all():
            continue  # a coil seen on one angle only would pass
        suspect = min(_floor4(sigmoid(need.min() - margin)), confirm) if need.size else confirm
        cost = sum(int((coils.stopped(p, confirm, override, suspect, n)
                        & ~coils.defective).sum()) for coils, p in conditions.values())
        if best is None or cost < best[0] or (cost == best[0] and confirm > best[1]):
            best = (cost, confirm, suspect, int(weak.sum()))
    cost, confirm, suspect, weak = best
    return confirm, suspect, {
        "suspect": suspect, "suspect_angles": n,
        "multiview_good_stopped_summed": cost,
        "defective_coil_conditions_needing_multiview": weak,
        "defective_coil_conditions": int(len(ev)),
    }
