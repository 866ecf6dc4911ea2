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

import os
import tempfile
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

VGGISH_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
DEFAULT_CLAP = "laion/larger_clap_music"
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


# --------------------------------------------------------------------------------------------------
# VGGish (PyTorch; architecture and log-mel front end of the AudioSet release)
# --------------------------------------------------------------------------------------------------

def _hz_to_mel_htk(hz):
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def vggish_mel_matrix(num_mel_bins: int = 64, num_spectrogram_bins: int = 257, sample_rate: int = 16000,
                      lower_hz: float = 125.0, upper_hz: float = 7500.0) -> np.ndarray:
    """The triangular HTK-mel filterbank of VGGish's ``mel_features`` ([bins, mels], DC row zeroed)."""
    spec_mel = _hz_to_mel_htk(np.linspace(0.0, sample_rate / 2.0, num_spectrogram_bins))
    edges = np.linspace(_hz_to_mel_htk(lower_hz), _hz_to_mel_htk(upper_hz), num_mel_bins + 2)
    weights = np.empty((num_spectrogram_bins, num_mel_bins))
    for i in range(num_mel_bins):
        lower, center, upper = edges[i:i + 3]
        lower_slope = (spec_mel - lower) / (center - lower)
        upper_slope = (upper - spec_mel) / (upper - center)
        weights[:, i] = np.maximum(0.0, np.minimum(lower_slope, upper_slope))
    weights[0, :] = 0.0
    return weights


def vggish_examples(wav16k: np.ndarray) -> np.ndarray:
    """16 kHz mono -> log-mel examples [N, 96, 64] (25 ms periodic-Hann frames, 10 ms hop, 512-point
    FFT magnitude, 64 HTK mels 125-7500 Hz, log(mel + 0.01), non-overlapping 0.96 s examples)."""
    window, hop, fft = 400, 160, 512
    x = np.asarray(wav16k, dtype=np.float64)
    if x.shape[0] < window:
        return np.zeros((0, 96, 64), dtype=np.float32)
    n_frames = 1 + (x.shape[0] - window) // hop
    idx = np.arange(window)[None, :] + hop * np.arange(n_frames)[:, None]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)
    spec = np.abs(np.fft.rfft(x[idx] * hann, fft))
    logmel = np.log(spec @ vggish_mel_matrix() + 0.01)
    n_ex = 0 if logmel.shape[0] < 96 else 1 + (logmel.shape[0] - 96) // 96
    if n_ex == 0:
        return np.zeros((0, 96, 64), dtype=np.float32)
    return np.stack([logmel[i * 96:(i + 1) * 96] for i in range(n_ex)]).astype(np.float32)


def build_vggish():
    """The VGGish network with torchvggish's parameter names (``features.*``, ``embeddings.*``);
    the last ReLU is dropped so it outputs the raw 128-d embedding layer, as Google's FAD uses."""
    import torch
    from torch import nn

    class VGGish(nn.Module):
        def __init__(self):
            super().__init__()
            layers, channels = [], 1
            for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=True)]
                    channels = v
            self.features = nn.Sequential(*layers)
            self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096),
                                            nn.ReLU(True), nn.Linear(4096, 128))

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 1, 96, 64]
            x = self.features(x)  # [N, 512, 6, 4]
            x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # TF's (H, W, C) flattening order
            return self.embeddings(x)

    return VGGish()


class VGGishEmbedding(EmbeddingModel):
    name = "vggish"
    sample_rate = 16000
    peak_normalize = True

    def __init__(self, checkpoint: str | os.PathLike | None = None, device: str = "cpu"):
        super().__init__()
        self.checkpoint = checkpoint or os.environ.get("MAGNET_VGGISH_CHECKPOINT") or None
        self.device = device
        self.source = None
        self.model = None

    def _load(self) -> None:
        import torch

        if self.checkpoint:
            path = Path(self.checkpoint).expanduser()
            if not path.is_file():
                raise Unavailable(f"VGGish checkpoint {path} not found")
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any failure to read is "unavailable"
                raise Unavailable(f"cannot read VGGish checkpoint {path}: {_short(exc)}") from exc
            self.source = str(path)
        else:
            if offline():
                raise Unavailable("no VGGish checkpoint given (--vggish-checkpoint or MAGNET_VGGISH_CHECKPOINT) "
                                  "and downloads are disabled (offline mode)")
            state = load_hub_weights(VGGISH_URL, "VGGish")
            self.source = VGGISH_URL
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        state = {k: v for k, v in state.items() if k.startswith(("features.", "embeddings."))}
        model = build_vggish()
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise Unavailable(f"{self.source} is not a torchvggish VGGish state dict: {_short(exc)}") from exc
        self.model = model.to(self.device).eval()

    def embed(self, wav: np.ndarray) -> np.ndarray:
        import torch

        examples = vggish_examples(wav)
        if examples.shape[0] == 0:
            return np.zeros((0, 128), dtype=np.float32)
        with torch.no_grad():
            out = self.model(torch.from_numpy(examples)[:, None].to(self.device))
        return out.cpu().numpy()

    def describe(self) -> dict:
        return {**super().describe(), "model": "VGGish (AudioSet), raw 128-d embedding layer, 0.96 s windows",
                "weights": self.source}


# --------------------------------------------------------------------------------------------------
# musicnn (TensorFlow 1 graph, weights in the musicnn wheel)
# --------------------------------------------------------------------------------------------------

class _Musicnn:
    """One TF graph + session per musicnn model, shared by the embedding and the tagger."""

    _instances: dict[str, "_Musicnn"] = {}
    _guard = threading.Lock()
    SR, HOP, N_FFT, N_MELS = 16000, 256, 512, 96
    INPUT_SECONDS = 3.0

    @classmethod
    def get(cls, model: str) -> "_Musicnn":
        with cls._guard:
            if model not in cls._instances:
                cls._instances[model] = cls(model)
            return cls._instances[model]

    def __init__(self, model: str):
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # musicnn's tf.compat.v1.layers need Keras 2
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import sys
        if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
            raise Unavailable("TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set; musicnn needs it")
        try:
            import librosa  # noqa: F401
        except ImportError as exc:
            raise Unavailable(f"librosa is not installed ({EVAL_INSTALL_HINT})") from exc
        try:
            with quiet_stderr():
                import tensorflow as tf
        except ImportError as exc:
            raise Unavailable(f"tensorflow is not installed ({EVAL_INSTALL_HINT})") from exc
        try:
            import musicnn
            from musicnn import configuration, models
        except ImportError as exc:
            raise Unavailable(f"musicnn is not installed: pip install --no-deps musicnn==0.1.0 ({EVAL_INSTALL_HINT})") \
                from exc
        import warnings
        self.model = model
        self.labels = list(configuration.MTT_LABELS if model.startswith("MTT") else configuration.MSD_LABELS)
        self.n_frames = int(self.INPUT_SECONDS * self.SR - self.N_FFT // 2) // self.HOP + 1  # 187, as musicnn
        self.weights = os.path.join(os.path.dirname(musicnn.__file__), model)
        try:
            graph = tf.Graph()
            with graph.as_default(), warnings.catch_warnings(), quiet_stderr():
                warnings.simplefilter("ignore")
                self.x = tf.compat.v1.placeholder(tf.float32, [None, self.n_frames, self.N_MELS])
                self.is_training = tf.compat.v1.placeholder(tf.bool)
                with tf.name_scope("model"):
                    out = models.define_model(self.x, self.is_training, model, len(self.labels))
                self.logits, self.penultimate = out[0], out[-1]
                self.session = tf.compat.v1.Session(graph=graph)
                tf.compat.v1.train.Saver().restore(self.session, self.weights + "/")
        except Exception as exc:  # noqa: BLE001
            raise Unavailable(f"cannot build musicnn {model}: {_short(exc)}") from exc
        self._run_lock = threading.Lock()

    def patches(self, wav16k: np.ndarray) -> np.ndarray:
        """musicnn's front end: log10(10000 * mel + 1) of a 512/256 STFT, 96 mels (librosa), as float16
        then float32, cut into non-overlapping 3 s patches [P, 187, 96]. Audio shorter than one
        patch is zero-padded to 3 s."""
        import librosa

        wav = np.asarray(wav16k, dtype=np.float32)
        min_len = self.HOP * (self.n_frames - 1) + 1
        if wav.shape[0] < min_len:
            wav = np.pad(wav, (0, min_len - wav.shape[0]))
        mel = librosa.feature.melspectrogram(y=wav, sr=self.SR, hop_length=self.HOP, n_fft=self.N_FFT,
                                             n_mels=self.N_MELS).T.astype(np.float16)
        rep = np.log10(10000 * mel.astype(np.float32) + 1)
        starts = range(0, rep.shape[0] - self.n_frames + 1, self.n_frames)
        return np.stack([rep[s:s + self.n_frames] for s in starts]).astype(np.float32)

    def run(self, wav16k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> (logits [P, C], penultimate [P, 200])."""
        batch = self.patches(wav16k)
        with self._run_lock:
            logits, pen = self.session.run([self.logits, self.penultimate],
                                           {self.x: batch, self.is_training: False})
        return np.asarray(logits, np.float64), np.asarray(pen, np.float64)


class MusicnnEmbedding(EmbeddingModel):
    name = "musicnn"
    sample_rate = 16000

    def __init__(self, model: str = "MTT_musicnn"):
        super().__init__()
        self.model = model
        self.net: _Musicnn | None = None

    def _load(self) -> None:
        self.net = _Musicnn.get(self.model)

    def embed(self, wav: np.ndarray) -> np.ndarray:
        return self.net.run(wav)[1]

    def describe(self) -> dict:
        return {**super().describe(), "model": f"musicnn {self.model}, 200-d penultimate layer per 3 s patch",
                "weights": f"musicnn wheel ({self.net.weights if self.net else self.model})"}


class MusicnnClassifier(Classifier):
    name = "musicnn"
    sample_rate = 16000

    def __init__(self, model: str = "MTT_musicnn"):
        super().__init__()
        self.model = model
        self.net: _Musicnn | None = None

    def _load(self) -> None:
        self.net = _Musicnn.get(self.model)
        self.labels = self.net.labels

    def segment_logits(self, wav: np.ndarray) -> np.ndarray:
        return self.net.run(wav)[0]

    def describe(self) -> dict:
        return {**super().describe(),
                "model": f"musicnn {self.model} tagger, {len(self.labels) or 50} tags, softmax over logits per 3 s "
                         f"patch, averaged per clip", "weights": "musicnn wheel"}


# --------------------------------------------------------------------------------------------------
# basic-pitch (ONNX, in the wheel)
# --------------------------------------------------------------------------------------------------

class BasicPitchEmbedding(EmbeddingModel):
    name = "basic-pitch"
    sample_rate = 22050
    POOL_SECONDS = 1.0

    def __init__(self):
        super().__init__()
        self.model = None
        self.path = None

    def _load(self) -> None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise Unavailable(f"onnxruntime is not installed ({EVAL_INSTALL_HINT})") from exc
        try:
            import logging
            import warnings
            import librosa  # noqa: F401
            logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # its tflite warning
            with quiet_stderr(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
                from basic_pitch.inference import Model
        except ImportError as exc:
            raise Unavailable(f"basic-pitch is not installed: pip install --no-deps basic-pitch==0.4.0 "
                              f"({EVAL_INSTALL_HINT})") from exc
        try:
            self.path = build_icassp_2022_model_path(FilenameSuffix.onnx)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model = Model(self.path)
        except Exception as exc:  # noqa: BLE001
            raise Unavailable(f"cannot load basic-pitch's ONNX model: {_short(exc)}") from exc

    def embed(self, wav: np.ndarray) -> np.ndarray:
        import warnings

        import soundfile as sf
        from basic_pitch.constants import ANNOTATIONS_FPS
        from basic_pitch.inference import run_inference

        with tempfile.TemporaryDirectory() as tmp:  # basic-pitch reads files
            path = os.path.join(tmp, "clip.wav")
            sf.write(path, np.asarray(wav, np.float32), self.sample_rate, subtype="FLOAT")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = run_inference(path, self.model)
        frames = np.concatenate([out["note"], out["onset"]], axis=1).astype(np.float64)  # [F, 176]
        pool = max(1, int(round(self.POOL_SECONDS * ANNOTATIONS_FPS)))
        n = frames.shape[0] // pool
        if n == 0:
            return frames.mean(axis=0, keepdims=True) if frames.shape[0] else np.zeros((0, 176))
        return frames[:n * pool].reshape(n, pool, -1).mean(axis=1)

    def describe(self) -> dict:
        return {**super().describe(), "model": "basic-pitch ICASSP 2022 (ONNX), note+onset posteriorgrams "
                                               "(176-d) mean-pooled per 1 s", "weights": str(self.path)}


# --------------------------------------------------------------------------------------------------
# PaSST (hear21passt)
# --------------------------------------------------------------------------------------------------

class PasstClassifier(Classifier):
    """audiocraft's KL classifier: PaSST on AudioSet, 527 logits, 32 kHz, segments of at most
    ``pretrained_length`` seconds (10, 20 or 30; audiocraft uses 20 for music), segments <= 0.15 s dropped."""

    name = "passt"
    sample_rate = 32000

    def __init__(self, pretrained_length: int = 20, device: str = "cpu"):
        super().__init__()
        self.pretrained_length = pretrained_length
        self.device = device
        self.model = None

    def _load(self) -> None:
        import contextlib
        import importlib
        module = {30: "hear21passt.base30sec", 20: "hear21passt.base20sec"}.get(self.pretrained_length,
                                                                                 "hear21passt.base")
        try:
            get_basic_model = importlib.import_module(module).get_basic_model
        except ImportError as exc:
            raise Unavailable("hear21passt is not installed (pip install hear21passt; it downloads the AudioSet "
                              "PaSST weights on first use)") from exc
        if offline():
            raise Unavailable("PaSST downloads its weights on first use and downloads are disabled (offline mode)")
        try:
            with open(os.devnull, "w") as f, contextlib.redirect_stdout(f):
                self.model = get_basic_model(mode="logits").to(self.device).eval()
        except Exception as exc:  # noqa: BLE001
            raise Unavailable(f"cannot load PaSST weights: {_short(exc)}") from exc

    def segment_logits(self, wav: np.ndarray) -> np.ndarray:
        import contextlib
        from functools import partial

        import torch

        x = torch.from_numpy(np.asarray(wav, np.float32))
        seg = int(self.pretrained_length * self.sample_rate)
        segments = [s for s in torch.split(x, seg) if s.shape[-1] > int(0.15 * self.sample_rate)]
        out = []
        old_stft = torch.stft
        torch.stft = partial(old_stft, return_complex=False)  # PaSST calls the pre-1.8 stft
        try:
            with torch.no_grad(), open(os.devnull, "w") as f, contextlib.redirect_stdout(f):
                for s in segments:
                    out.append(self.model(s[None].to(self.device))[0].double().cpu().numpy())
        finally:
            torch.stft = old_stft
        return np.stack(out) if out else np.zeros((0, 527))

    def describe(self) -> dict:
        return {**super().describe(), "model": f"PaSST AudioSet tagger (527 classes), {self.pretrained_length} s "
                                               f"segments", "weights": "hear21passt"}


# --------------------------------------------------------------------------------------------------
# LAION-CLAP
# --------------------------------------------------------------------------------------------------

def load_laion_checkpoint(path: str | os.PathLike) -> dict:
    """A ``laion_clap`` training checkpoint read with ``weights_only=True``.

    These checkpoints pickle their training arguments (an ``argparse.Namespace``) and numpy scalars
    beside the tensors: those few plain-data types are allowed, nothing else, so a planted pickle
    cannot run code. Raises :class:`Unavailable` saying why a file is refused.
    """
    import argparse

    import torch

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    allowed: list = [argparse.Namespace, np.dtype, (scalar, "numpy.core.multiarray.scalar"),
                     (scalar, "numpy._core.multiarray.scalar")]
    allowed += [type(np.dtype(t)) for t in (np.float32, np.float64, np.int32, np.int64, np.bool_)]
    try:
        with torch.serialization.safe_globals(allowed):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle.UnpicklingError for anything but data
        raise Unavailable(f"CLAP checkpoint {path} holds objects other than tensors and plain data; refusing to "
                          f"unpickle it (it could run code): {_short(exc)}") from exc
    if not isinstance(state, dict):
        raise Unavailable(f"CLAP checkpoint {path} is not a state dict")
    return state


class ClapModel(TextAudioModel):
    """Text-audio cosine model. ``model`` is a ``laion_clap`` ``.pt`` checkpoint (loaded with
    ``laion_clap.CLAP_Module(enable_fusion=False, amodel='HTSAT-base')`` as audiocraft does) or a
    Hugging Face ``ClapModel`` directory or repo id (default ``laion/larger_clap_music``)."""

    name = "laion-clap"
    sample_rate = 48000

    def __init__(self, model: str | None = None, device: str = "cpu", amodel: str = "HTSAT-base"):
        super().__init__()
        self.model_name = model or os.environ.get("MAGNET_CLAP_MODEL") or DEFAULT_CLAP
        self.device = device
        self.amodel = amodel
        self.impl = None

    def _load(self) -> None:
        path = Path(self.model_name).expanduser()
        if path.suffix in (".pt", ".ckpt", ".pth") or path.is_file():
            self._load_laion_clap(path)
        else:
            self._load_transformers(path)

    def _load_laion_clap(self, path: Path) -> None:
        if not path.is_file():
            raise Unavailable(f"CLAP checkpoint {path} not found")
        state = load_laion_checkpoint(path)  # first: a refused file is never handed to anything else
        try:
            import laion_clap
        except Exception as exc:  # noqa: BLE001 - it fails with ModuleNotFoundError for torchvision too
            raise Unavailable(f"laion_clap cannot be imported ({_short(exc)}); give a Hugging Face ClapModel "
                              f"directory instead") from exc
        try:
            import torch
            from transformers import RobertaTokenizer
            tokenizer = RobertaTokenizer.from_pretrained("roberta-base")
            module = laion_clap.CLAP_Module(enable_fusion=False, amodel=self.amodel)
            state = state.get("state_dict", state)
            state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
            state.pop("text_branch.embeddings.position_ids", None)
            module.model.load_state_dict(state, strict=False)
            module.eval()
        except Exception as exc:  # noqa: BLE001
            raise Unavailable(f"cannot load CLAP from {path}: {_short(exc)}") from exc

        def tok(texts):
            return tokenizer(texts, padding="max_length", truncation=True, max_length=77, return_tensors="pt")

        def audio_fn(wavs):
            x = torch.from_numpy(np.stack([_fit_length(w, 10 * self.sample_rate) for w in wavs]))
            return module.get_audio_embedding_from_data(x, use_tensor=True).detach().cpu().numpy()

        def text_fn(texts):
            return module.get_text_embedding(list(texts), tokenizer=tok, use_tensor=True).detach().cpu().numpy()

        self.impl = ("laion_clap", audio_fn, text_fn, str(path))

    def _load_transformers(self, path: Path) -> None:
        try:
            import torch
            from transformers import ClapModel as HFClap, ClapProcessor
        except ImportError as exc:
            raise Unavailable(f"transformers has no ClapModel ({_short(exc)})") from exc
        source = str(path) if path.is_dir() else self.model_name
        try:
            model = HFClap.from_pretrained(source, local_files_only=offline() and not path.is_dir())
            processor = ClapProcessor.from_pretrained(source, local_files_only=offline() and not path.is_dir())
        except Exception as exc:  # noqa: BLE001
            where = "directory" if path.is_dir() else ("hub repo (offline mode: local cache only)" if offline()
                                                       else "hub repo")
            raise Unavailable(f"cannot load CLAP {where} {source!r}: {_short(exc)}") from exc
        model = model.to(self.device).eval()

        def audio_fn(wavs):
            inputs = processor(audio=[np.asarray(w, np.float32) for w in wavs], sampling_rate=self.sample_rate,
                               return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            with torch.no_grad():
                out = model.get_audio_features(**inputs)
            return _as_array(out)

        def text_fn(texts):
            inputs = processor(text=list(texts), padding=True, return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            with torch.no_grad():
                out = model.get_text_features(**inputs)
            return _as_array(out)

        self.impl = ("transformers", audio_fn, text_fn, source)

    def audio_embeddings(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        return self.impl[1](list(wavs))

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        return self.impl[2](list(texts))

    def describe(self) -> dict:
        impl = self.impl[0] if self.impl else None
        return {**super().describe(), "model": f"LAION-CLAP ({impl or 'laion_clap or transformers'})",
                "weights": self.impl[3] if self.impl else self.model_name}


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


# --------------------------------------------------------------------------------------------------
# Registries
# --------------------------------------------------------------------------------------------------

EMBEDDINGS: dict[str, Callable[..., EmbeddingModel]] = {
    "vggish": VGGishEmbedding, "musicnn": MusicnnEmbedding, "basic-pitch": BasicPitchEmbedding,
}
CLASSIFIERS: dict[str, Callable[..., Classifier]] = {"passt": PasstClassifier, "musicnn": MusicnnClassifier}
CLAP_MODELS: dict[str, Callable[..., TextAudioModel]] = {"laion-clap": ClapModel}


class UnavailableBackend(AudioBackend):
    """Stands in for a backend name that is not registered, so the reason still reaches the table."""

    def __init__(self, name: str, kind: str, reason: str):
        super().__init__()
        self.name, self.kind, self.reason = name, kind, reason

    def _load(self) -> None:
        raise Unavailable(self.reason)


def make_backend(registry: dict, name: str, kind: str, **options) -> AudioBackend:
    """Instantiate ``registry[name]`` with the options its constructor accepts."""
    import inspect

    factory = registry.get(name)
    if factory is None:
        return UnavailableBackend(name, kind, f"unknown {kind} {name!r} (known: {', '.join(sorted(registry))})")
    params = inspect.signature(factory).parameters
    return factory(**{k: v for k, v in options.items() if k in params and v is not None})
