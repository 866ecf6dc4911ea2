"""TensorBoard logging of a training run (``log.tensorboard: true``), rank 0 only.

Event files go to ``RUN/tensorboard`` (``tensorboard --logdir RUN/tensorboard``), beside the CSV and
JSONL logs of :class:`~magnet_audio.training.runtime.MetricsLog`: every metrics row as scalars
``train/<name>`` and ``valid/<name>`` (losses and per-stage losses, ``lr``, ``grad_norm``,
``tokens_per_s``), and each samples folder's clips as audio with their log-magnitude spectrograms.
On resume, events after the resumed step are dropped (``purge_step``), like the CSV rows.
Needs the ``tensorboard`` package (``pip install magnet-audio[train]``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..audio import audio_read
from ..errors import InputError

TENSORBOARD_DIR = "tensorboard"


def tensorboard_hint(run_dir: str | Path) -> str:
    """The line ``magnet train`` prints when ``log.tensorboard`` is on."""
    return f"TensorBoard logs: tensorboard --logdir {Path(run_dir) / TENSORBOARD_DIR}"


def spectrogram_image(wav: torch.Tensor, n_fft: int = 1024, hop: int = 256, floor_db: float = -80.0) -> torch.Tensor:
    """[F, T] values in [0, 1] (low frequencies at the bottom) of a mono mix of ``wav`` [C, N]."""
    mono = wav.float().mean(0)
    if mono.numel() < n_fft:
        mono = torch.nn.functional.pad(mono, (0, n_fft - mono.numel()))
    spec = torch.stft(mono, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True).abs()
    db = 20 * torch.log10(spec.clamp_min(1e-8) / spec.max().clamp_min(1e-8))
    return ((db.clamp_min(floor_db) - floor_db) / -floor_db).flip(0)


class TensorBoardLog:
    def __init__(self, run_dir: Path, resume_step: int | None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise InputError("log.tensorboard needs the tensorboard package: pip install 'magnet-audio[train]' "
                             "(or set log.tensorboard=false)") from exc
        self.dir = Path(run_dir) / TENSORBOARD_DIR
        self.writer = SummaryWriter(str(self.dir), purge_step=resume_step + 1 if resume_step is not None else None)

    def write(self, split: str, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(f"{split}/{name}", value, step)
        self.writer.flush()

    def add_samples(self, step: int, folder: Path) -> None:
        """Each audio file of ``folder`` as ``samples/<name>`` audio and ``spectrogram/<name>`` image."""
        for path in sorted(p for p in Path(folder).iterdir() if p.suffix in (".wav", ".flac", ".mp3", ".ogg")):
            wav, sr = audio_read(path)
            self.writer.add_audio(f"samples/{path.stem}", wav.float().mean(0).clamp(-1, 1), step, sample_rate=sr)
            self.writer.add_image(f"spectrogram/{path.stem}", spectrogram_image(wav), step, dataformats="HW")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
