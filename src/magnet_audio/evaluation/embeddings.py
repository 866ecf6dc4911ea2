"""Pre-trained audio models behind the metrics: embedding models (FAD), classifiers (KL), CLAP.

Each backend declares its input rate and loads lazily. :meth:`AudioBackend.load` raises
:class:`Unavailable` with a human-readable reason (package missing, no weights, download failed)
instead of failing the whole evaluation; the runner reports that reason next to the metric.

Backends (``EMBEDDINGS``, ``CLASSIFIERS``, ``CLAP_MODELS`` map names to factories):

========================  ==========  ==========================================================
name                      kind        what
========================  ==========  ==========================================================
``vggish``                embedding   VGGish (the paper's FAD model), PyTorch port weights
                                      (torchvggish ``vggish-10086976.pth``) from a local file
                                      (``MAGNET_VGGISH_CHECKPOINT``) or downloaded; 128-d per
                                      0.96 s, raw embedding layer (no ReLU, no PCA), as Google's FAD
``musicnn``               embedding   musicnn MTT_musicnn (weights in the ``musicnn`` wheel), 200-d
                                      penultimate layer per 3 s patch. Works offline.
``basic-pitch``           embedding   Spotify basic-pitch ICASSP-2022 model (ONNX, in the wheel):
                                      note + onset posteriorgrams (88 + 88) mean-pooled per 1 s.
                                      Works offline; sees pitch/rhythm content, not timbre.
``passt``                 classifier  PaSST AudioSet tagger (527 classes; the paper's KL model)
                                      through ``hear21passt``; downloads its weights.
``musicnn``               classifier  musicnn MTT_musicnn tagger, 50 MagnaTagATune tags, logits
                                      per 3 s patch. Works offline.
``laion-clap``            text-audio  LAION-CLAP: a ``laion_clap`` ``.pt`` checkpoint (audiocraft's
                                      ``music_audioset_epoch_15_esc_90.14.pt``) or a Hugging Face
                                      ``ClapModel`` directory / repo id (``laion/larger_clap_music``)
========================  ==========  ==========================================================
"""

from __future__ import annotations

import inspect
from typing import Callable

from .backend import (EVAL_INSTALL_HINT, AudioBackend, Classifier, EmbeddingModel, TextAudioModel, Unavailable,
                      UnavailableBackend, cosine_similarity, load_hub_weights, offline, peak_normalize, sha256_of)
from .clap import DEFAULT_CLAP, ClapModel, load_laion_checkpoint
from .music_models import BasicPitchEmbedding, MusicnnClassifier, MusicnnEmbedding, PasstClassifier
from .vggish import VGGISH_URL, VGGishEmbedding, build_vggish, vggish_examples, vggish_mel_matrix

EMBEDDINGS: dict[str, Callable[..., EmbeddingModel]] = {
    "vggish": VGGishEmbedding, "musicnn": MusicnnEmbedding, "basic-pitch": BasicPitchEmbedding,
}
CLASSIFIERS: dict[str, Callable[..., Classifier]] = {"passt": PasstClassifier, "musicnn": MusicnnClassifier}
CLAP_MODELS: dict[str, Callable[..., TextAudioModel]] = {"laion-clap": ClapModel}


def make_backend(registry: dict, name: str, kind: str, **options) -> AudioBackend:
    """Instantiate ``registry[name]`` with the options its constructor accepts."""
    factory = registry.get(name)
    if factory is None:
        return UnavailableBackend(name, kind, f"unknown {kind} {name!r} (known: {', '.join(sorted(registry))})")
    params = inspect.signature(factory).parameters
    return factory(**{k: v for k, v in options.items() if k in params and v is not None})


__all__ = ["EMBEDDINGS", "CLASSIFIERS", "CLAP_MODELS", "make_backend", "EVAL_INSTALL_HINT", "AudioBackend", "Classifier",
           "EmbeddingModel", "TextAudioModel", "Unavailable", "UnavailableBackend", "cosine_similarity",
           "load_hub_weights", "offline", "peak_normalize", "sha256_of", "DEFAULT_CLAP", "ClapModel",
           "load_laion_checkpoint", "BasicPitchEmbedding", "MusicnnClassifier", "MusicnnEmbedding",
           "PasstClassifier", "VGGISH_URL", "VGGishEmbedding", "build_vggish", "vggish_examples", "vggish_mel_matrix"]
