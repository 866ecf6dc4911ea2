"""Pre-trained music models run through their own frameworks: musicnn (a TensorFlow 1 graph, weights in
its wheel; embedding and tagger), basic-pitch (ONNX, in its wheel) and PaSST (``hear21passt``)."""

from __future__ import annotations

import os
import tempfile
import threading

import numpy as np

from .backend import (EVAL_INSTALL_HINT, AudioBackend, Classifier, EmbeddingModel, Unavailable, _short, offline,
                      quiet_stderr)

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


class _MusicnnBackend(AudioBackend):
    """What the musicnn embedding and tagger share: the named model's network, loaded on first use."""

    name = "musicnn"
    sample_rate = 16000

    def __init__(self, model: str = "MTT_musicnn"):
        super().__init__()
        self.model = model
        self.net: _Musicnn | None = None

    def _load(self) -> None:
        self.net = _Musicnn.get(self.model)


class MusicnnEmbedding(_MusicnnBackend, EmbeddingModel):
    def embed(self, wav: np.ndarray) -> np.ndarray:
        return self.net.run(wav)[1]

    def describe(self) -> dict:
        return {**super().describe(), "model": f"musicnn {self.model}, 200-d penultimate layer per 3 s patch",
                "weights": f"musicnn wheel ({self.net.weights if self.net else self.model})"}


class MusicnnClassifier(_MusicnnBackend, Classifier):
    def _load(self) -> None:
        super()._load()
        self.labels = self.net.labels

    def segment_logits(self, wav: np.ndarray) -> np.ndarray:
        return self.net.run(wav)[0]

    def describe(self) -> dict:
        return {**super().describe(),
                "model": f"musicnn {self.model} tagger, {len(self.labels) or 50} tags, softmax over logits per 3 s "
                         f"patch, averaged per clip", "weights": "musicnn wheel"}



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
