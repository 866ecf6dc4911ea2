import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network (set before magnet_audio is imported)
torch.set_num_threads(min(2, torch.get_num_threads()))

FIXTURES = Path(__file__).parent / "fixtures" / "audiocraft-tiny"


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def reference() -> dict:
    return torch.load(FIXTURES / "reference.pt", weights_only=True)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models decode step by step: threads only add synchronisation (and stall on busy cores).
    Use per module with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _lut(text_dim: int, word_dropout: float):
    from magnet_audio.conditioning import ConditionerConfig

    return ConditionerConfig(model="lut", n_bins=64, text_dim=text_dim, word_dropout=word_dropout)


def tiny_magnet_lm(seed: int = 0, *, train: bool = False, text_dim: int = 16, word_dropout: float = 0.0,
                   **config):
    """A random MAGNeT LM small enough for any test: 2 layers of width 32, 4 codebooks of 16 codes,
    1 s, a lookup-table text conditioner. ``config`` overrides :class:`MagnetLMConfig` fields.
    Weights drawn after ``torch.manual_seed(seed)``; in eval mode unless ``train``."""
    from magnet_audio.lm import MagnetLM, MagnetLMConfig

    torch.manual_seed(seed)
    fields = dict(dim=32, num_heads=2, num_layers=2, n_q=4, card=16, segment_duration=1.0, subcodes_context=3)
    lm = MagnetLM(MagnetLMConfig(**{**fields, **config}, conditioner=_lut(text_dim, word_dropout)))
    return lm.train() if train else lm.eval()


def tiny_musicgen_lm(seed: int = 0, *, delays=(0, 1, 2, 3), **config):
    """The autoregressive counterpart of :func:`tiny_magnet_lm` (one codebook per delay), in eval mode."""
    from magnet_audio.lm.musicgen import MusicGenLM, MusicGenLMConfig

    torch.manual_seed(seed)
    fields = dict(dim=32, num_heads=2, num_layers=2, card=16, n_q=len(delays), delays=list(delays),
                  segment_duration=1.0)
    return MusicGenLM(MusicGenLMConfig(**{**fields, **config}, conditioner=_lut(16, 0.0))).eval()
