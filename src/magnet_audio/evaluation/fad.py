"""Fréchet Audio Distance: the Fréchet distance between Gaussians fitted to two sets of embeddings.

    FAD = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))

Everything is float64. The matrix square root term only enters through its trace, and
``Tr((S_r S_g)^(1/2)) = Tr((A S_g A)^(1/2))`` with ``A = S_r^(1/2)`` (``S_r S_g`` is similar to the
symmetric PSD matrix ``A S_g A``), so it is the sum of the square roots of the eigenvalues of a
symmetric matrix: two ``eigh`` calls, no complex numbers, and exact for singular covariances (tiny
negative eigenvalues from round-off are clipped to 0). :func:`frechet_distance_scipy` is the usual
``scipy.linalg.sqrtm`` formulation (with an ``eps`` offset on the diagonals when the product is
singular), kept to cross-check the fast path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass
class GaussianStats:
    """Mean [D] and covariance [D, D] of ``n`` embeddings."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])


def gaussian_stats(embeddings: np.ndarray) -> GaussianStats:
    """Fit a Gaussian to embeddings [N, D] (unbiased covariance, ``np.cov`` like Google's FAD)."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"embeddings must be a 2-D array [N, D], got shape {x.shape}")
    if x.shape[0] < 2:
        raise InputError(f"FAD needs at least 2 embeddings per set, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise InputError("embeddings contain NaN or inf")
    return GaussianStats(mu=x.mean(axis=0), sigma=np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]),
                         n=int(x.shape[0]))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix via ``eigh`` (negative round-off eigenvalues -> 0)."""
    sym = (matrix + matrix.T) / 2.0
    values, vectors = np.linalg.eigh(sym)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr((sigma1 sigma2)^(1/2))`` for symmetric PSD matrices, via a symmetric eigenproblem."""
    root1 = _psd_sqrt(np.asarray(sigma1, dtype=np.float64))
    middle = root1 @ np.asarray(sigma2, dtype=np.float64) @ root1
    values = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    return float(np.sqrt(np.clip(values, 0.0, None)).sum())


def _check_pair(mu1, sigma1, mu2, sigma2):
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise InputError(f"mismatched Gaussian statistics: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    return mu1, sigma1, mu2, sigma2


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (>= 0, float64)."""
    mu1, sigma1, mu2, sigma2 = _check_pair(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2))
    return max(value, 0.0)  # the exact value is >= 0; clip round-off


def frechet_distance_scipy(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """The same distance with ``scipy.linalg.sqrtm`` (the formulation of Google's FAD code)."""
    from scipy import linalg

    mu1, sigma1, mu2, sigma2 = _check_pair(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_audio_distance(reference: np.ndarray | GaussianStats, generated: np.ndarray | GaussianStats) -> float:
    """FAD between two embedding sets [N, D] (or precomputed :class:`GaussianStats`)."""
    ref = reference if isinstance(reference, GaussianStats) else gaussian_stats(reference)
    gen = generated if isinstance(generated, GaussianStats) else gaussian_stats(generated)
    if ref.dim != gen.dim:
        raise InputError(f"embedding sizes differ: reference {ref.dim}, generated {gen.dim}")
    return frechet_distance(ref.mu, ref.sigma, gen.mu, gen.sigma)
