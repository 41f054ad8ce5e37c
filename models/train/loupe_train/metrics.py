"""Evaluation figures: confusion matrices, recall/precision, threshold choice, AUROC, Dice.

Pure numpy so the tests can check them on hand-made numbers.
"""

from __future__ import annotations

import numpy as np


def confusion(true: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """[n, n] counts, rows = true class, columns = predicted class."""
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (true, pred), 1)
    return m


def per_class(matrix: np.ndarray, labels: list[str]) -> dict[str, dict]:
    """Precision, recall and support per class from a confusion matrix."""
    out = {}
    for i, label in enumerate(labels):
        tp = int(matrix[i, i])
        support = int(matrix[i].sum())
        predicted = int(matrix[:, i].sum())
        out[label] = {
            "precision": tp / predicted if predicted else None,
            "recall": tp / support if support else None,
            "support": support,
        }
    return out


def recall_threshold(positive_scores: np.ndarray, target: float) -> float:
    """The highest threshold t with recall(score >= t) >= target over `positive_scores`.

    Allowed misses k = floor((1 - target) * n) (computed with a tolerance so that 0.995 * 200
    allows exactly one); t is then the (k+1)-th smallest positive score, so at most k positives
    fall below it.
    """
    scores = np.sort(np.asarray(positive_scores, dtype=np.float64))
    if scores.size == 0:
        raise ValueError("no positive examples to choose a threshold from")
    allowed = int(np.floor((1.0 - target) * scores.size + 1e-9))
    return float(scores[allowed])


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties count one half)."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties.
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def dice_counts(pred: np.ndarray, true: np.ndarray, n_classes: int) -> np.ndarray:
    """[n_classes, 3] = (true positives, false positives, false negatives) per class."""
    pred = pred.ravel().astype(np.int64)
    true = true.ravel().astype(np.int64)
    joint = np.bincount(true * n_classes + pred, minlength=n_classes * n_classes)
    m = joint.reshape(n_classes, n_classes)
    tp = np.diag(m)
    fp = m.sum(axis=0) - tp
    fn = m.sum(axis=1) - tp
    return np.stack([tp, fp, fn], axis=1)


def dice_from_counts(counts: np.ndarray) -> np.ndarray:
    """Dice = 2 TP / (2 TP + FP + FN) per class (NaN when a class is absent and never predicted)."""
    tp, fp, fn = counts[:, 0].astype(np.float64), counts[:, 1], counts[:, 2]
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)
