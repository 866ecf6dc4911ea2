"""Evaluation (FAD, KL, CLAP; ``magnet eval``) and generation benchmarks (``magnet bench generate``).

The metric maths (:mod:`.fad`, :mod:`.kl`, :mod:`.clap`) is plain NumPy; the pre-trained models
behind them live in :mod:`.embeddings` and load lazily, reporting why when they cannot run.
"""

from .fad import GaussianStats, frechet_audio_distance, frechet_distance, gaussian_stats
from .kl import kl_divergence, kld_scores, label_distribution

__all__ = ["frechet_distance", "frechet_audio_distance", "gaussian_stats", "GaussianStats", "kl_divergence",
           "kld_scores", "label_distribution"]
