"""VGGish, the paper's FAD embedding: the AudioSet release's architecture and log-mel front end in
PyTorch, with the torchvggish port's weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .backend import EmbeddingModel, Unavailable, _short, load_hub_weights, offline

VGGISH_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"


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
