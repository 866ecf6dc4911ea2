"""What every pre-trained model behind the metrics is: an :class:`AudioBackend` with an input rate that
loads lazily and raises :class:`Unavailable` with a readable reason; the embedding, classifier and
text-audio kinds, and the helpers they share."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

EVAL_INSTALL_HINT = "install the evaluation extras: see docs/evaluation.md (scripts/install_eval_deps.sh)"


def sha256_of(path: str | os.PathLike) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_hub_weights(url: str, what: str) -> dict:
    """Tensors of a torch hub file ``url`` whose name carries its published SHA-256 prefix
    (``vggish-10086976.pth``), from the torch hub cache or downloaded.

    The file is checked against that prefix (a cached one too: torch's own check runs only on
    download) and read with ``weights_only=True``, so a file planted in the cache can neither run
    code nor pass for the weights. Failures raise :class:`Unavailable` with the reason.
    """
    import re

    import torch

    name = url.rsplit("/", 1)[-1]
    match = re.search(r"-([a-f0-9]{6,})\.", name)
    if match is None:
        raise Unavailable(f"{what}: {url} publishes no hash in its file name; refusing to load it unchecked")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    if not cached.is_file():
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(cached), hash_prefix=match.group(1), progress=False)
        except Exception as exc:  # noqa: BLE001 - network, disk, hash mismatch
            raise Unavailable(f"{what}: the download of {url} failed: {_short(exc)} (or give a local checkpoint: "
                              "--vggish-checkpoint or MAGNET_VGGISH_CHECKPOINT)") from exc
    digest = sha256_of(cached)
    if not digest.startswith(match.group(1)):
        raise Unavailable(f"{what}: {cached} is not the published file (SHA-256 {digest[:8]}..., expected "
                          f"{match.group(1)}...): refusing to load it; delete it to download it again, or pass a "
                          "copy you trust with --vggish-checkpoint")
    try:
        return torch.load(cached, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - an unpicklable or corrupt file
        raise Unavailable(f"{what}: {cached} is not a plain tensor file, refusing to unpickle it: {_short(exc)}") from exc


class Unavailable(Exception):
    """A backend cannot run here; ``reason`` says why (shown in the results table)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def offline() -> bool:
    """True when downloads must not be attempted (``HF_HUB_OFFLINE`` or ``MAGNET_OFFLINE`` set)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "MAGNET_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 3] + "..."


class quiet_stderr:
    """Silence file descriptor 2 (TensorFlow's C++ start-up chatter) unless ``MAGNET_EVAL_VERBOSE`` is set.
    Python exceptions still propagate; only what native code prints is dropped."""

    def __enter__(self):
        self._saved = None
        if os.environ.get("MAGNET_EVAL_VERBOSE"):
            return self
        try:
            import sys
            sys.stderr.flush()
            self._saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:
            self._saved = None
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            import sys
            sys.stderr.flush()
            os.dup2(self._saved, 2)
            os.close(self._saved)
        return False


def peak_normalize(wav: np.ndarray, headroom_db: float = 1.0) -> np.ndarray:
    """audiocraft's 'peak' strategy: scale so the peak is ``-headroom_db`` dBFS (silence unchanged)."""
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak <= 0:
        return wav
    return (wav / peak * 10 ** (-headroom_db / 20)).astype(np.float32)


class AudioBackend:
    """Base: ``name``, input ``sample_rate`` (mono), lazy :meth:`load`, and :meth:`describe`."""

    name = "backend"
    kind = "embedding"
    sample_rate = 16000
    #: audiocraft writes FAD inputs with the 'peak' strategy; backends that mimic it set this.
    peak_normalize = False

    def __init__(self):
        self._loaded = False
        self._lock = threading.Lock()

    def load(self) -> None:
        """Make the model ready or raise :class:`Unavailable`; cheap after the first call."""
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    def _load(self) -> None:
        raise NotImplementedError

    def describe(self) -> dict:
        """What produced the numbers: shown in results (model, weights, input rate, ...)."""
        return {"backend": self.name, "kind": self.kind, "sample_rate": self.sample_rate}

    def prepare(self, wav: np.ndarray) -> np.ndarray:
        wav = np.asarray(wav, dtype=np.float32).reshape(-1)
        return peak_normalize(wav) if self.peak_normalize else wav


class EmbeddingModel(AudioBackend):
    kind = "embedding"

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """Mono audio [T] at ``sample_rate`` -> embeddings [N, D] (N frames/windows, may be 0)."""
        raise NotImplementedError


class Classifier(AudioBackend):
    kind = "classifier"
    labels: list[str] = []

    def segment_logits(self, wav: np.ndarray) -> np.ndarray:
        """Mono audio [T] at ``sample_rate`` -> logits [S, C] for each input segment."""
        raise NotImplementedError


class TextAudioModel(AudioBackend):
    kind = "text-audio"

    def audio_embeddings(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError


def _as_array(out) -> np.ndarray:
    tensor = out if hasattr(out, "detach") else getattr(out, "pooler_output", None)
    if tensor is None:
        tensor = out[0]
    return tensor.detach().double().cpu().numpy()


def _fit_length(wav: np.ndarray, length: int) -> np.ndarray:
    """Repeat-pad (laion_clap's 'repeatpad') or cut to ``length`` samples."""
    wav = np.asarray(wav, np.float32)
    if wav.shape[0] >= length:
        return wav[:length]
    if wav.shape[0] == 0:
        return np.zeros(length, np.float32)
    reps = int(np.ceil(length / wav.shape[0]))
    return np.tile(wav, reps)[:length]


def cosine_similarity(a: np.ndarray, b: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Row-wise cosine similarity of [B, D] arrays (torch's ``cosine_similarity`` eps convention)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na = np.maximum(np.linalg.norm(a, axis=-1), eps)
    nb = np.maximum(np.linalg.norm(b, axis=-1), eps)
    return (a * b).sum(-1) / (na * nb)


class UnavailableBackend(AudioBackend):
    """Stands in for a backend name that is not registered, so the reason still reaches the table."""

    def __init__(self, name: str, kind: str, reason: str):
        super().__init__()
        self.name, self.kind, self.reason = name, kind, reason

    def _load(self) -> None:
        raise Unavailable(self.reason)
