"""KL divergence between a classifier's label distributions on reference and generated audio.

audiocraft's formula (``metrics/kld.py``), per pair of clips made from the same prompt::

    kld(p_gen, p_ref) = sum_c p_ref[c] * (log p_ref[c] - log(p_gen[c] + 1e-6))

with ``p`` the softmax of the classifier's logits (a term with ``p_ref[c] = 0`` is 0). The reported
``kld`` is the mean over pairs; ``kld_qp`` swaps the roles (reference scored against generated) and
``kld_both`` is their sum, as audiocraft returns them.

Clips longer than the classifier's input are cut into segments; the clip's distribution is the
mean of its segments' softmax distributions (audiocraft's PaSST segments are 20 s, so a 10 s clip is
one segment and this is the same thing).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

EPSILON = 1e-6


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def logit(probs: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Inverse sigmoid, for classifiers that expose only sigmoid outputs (clipped to stay finite)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def label_distribution(segment_logits: np.ndarray) -> np.ndarray:
    """One clip's label distribution [C] from its segments' logits [S, C] (mean of softmaxes)."""
    x = np.asarray(segment_logits, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"expected segment logits [S, C] with S >= 1, got shape {x.shape}")
    return softmax(x, axis=-1).mean(axis=0)


def kl_divergence(pred_probs: np.ndarray, target_probs: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    """Per-row ``sum_c target * (log target - log(pred + epsilon))`` for [B, C] (or [C]) arrays."""
    pred = np.asarray(pred_probs, dtype=np.float64)
    target = np.asarray(target_probs, dtype=np.float64)
    if pred.shape != target.shape:
        raise InputError(f"label distributions differ in shape: {pred.shape} vs {target.shape}")
    if (pred < 0).any() or (target < 0).any():
        raise InputError("label distributions must be non-negative")
    safe_target = np.where(target > 0, target, 1.0)
    terms = np.where(target > 0, target * (np.log(safe_target) - np.log(pred + epsilon)), 0.0)
    return terms.sum(axis=-1)


def kld_scores(generated_probs: np.ndarray, reference_probs: np.ndarray, epsilon: float = EPSILON) -> dict:
    """audiocraft's summary over paired clips: ``kld`` (= ``kld_pq``), ``kld_qp``, ``kld_both``, ``n``."""
    gen = np.atleast_2d(np.asarray(generated_probs, dtype=np.float64))
    ref = np.atleast_2d(np.asarray(reference_probs, dtype=np.float64))
    if gen.shape != ref.shape or gen.shape[0] == 0:
        raise InputError(f"need the same non-zero number of generated and reference distributions, "
                         f"got {gen.shape} and {ref.shape}")
    pq = kl_divergence(gen, ref, epsilon)
    qp = kl_divergence(ref, gen, epsilon)
    return {"kld": float(pq.mean()), "kld_pq": float(pq.mean()), "kld_qp": float(qp.mean()),
            "kld_both": float(pq.mean() + qp.mean()), "n": int(gen.shape[0])}
