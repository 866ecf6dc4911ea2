"""Loading the language models (MAGNeT, MusicGen) from audiocraft exports or our format (local or on the hub)."""

from __future__ import annotations

import os

import torch

from ..checkpoints import OUR_WEIGHTS, load_export, load_our_weights, read_our_config, resolve_file
from ..conditioning.config import check_text_encoder
from ..errors import CheckpointError
from ..names import AUDIOCRAFT_REPOS
from ..utils import resolve_device
from .base import from_audiocraft_state
from .magnet import MagnetLM, MagnetLMConfig
from .musicgen import MusicGenLM, MusicGenLMConfig

LM_FILENAME = "state_dict.bin"
CODEC_FILENAME = "compression_state_dict.bin"


def load_lm_model(name_or_path: str | os.PathLike, device: str | torch.device | None = None,
                  t5_path: str | os.PathLike | None = None, frame_rate: int = 50,
                  dtype: torch.dtype = torch.float32) -> MagnetLM:
    """Load a MAGNeT LM from ``state_dict.bin`` (a file, a directory holding it, or a hub repo id).

    As audiocraft's loader does, the segment length and span length come from the config's
    ``dataset.segment_duration`` and ``masking.span_len``; the frame rate from the codec.
    """
    return load_lm(name_or_path, MagnetLMConfig, MagnetLM, device, t5_path, frame_rate, dtype)


def load_musicgen_lm(name_or_path: str | os.PathLike, device: str | torch.device | None = None,
                     t5_path: str | os.PathLike | None = None, frame_rate: int = 50,
                     dtype: torch.dtype = torch.float32) -> MusicGenLM:
    """Load a MusicGen LM from ``state_dict.bin`` (a file, a directory holding it, or a hub repo id)."""
    return load_lm(name_or_path, MusicGenLMConfig, MusicGenLM, device, t5_path, frame_rate, dtype)


def load_lm(name_or_path: str | os.PathLike, config_cls, model_cls, device: str | torch.device | None = None,
            t5_path: str | os.PathLike | None = None, frame_rate: int = 50, dtype: torch.dtype = torch.float32):
    """Build ``model_cls`` from the ``xp.cfg`` of an audiocraft LM export and load its weights strictly.

    A model in our format (``model.safetensors`` + ``config.json``, see ``magnet export``) is read
    from its config instead. Weights stored in fp16 are loaded into ``dtype``. ``t5_path`` points a
    T5 conditioner to a local directory instead of the hub.
    """
    ours = read_our_config(name_or_path, probe_hub=str(name_or_path) not in AUDIOCRAFT_REPOS)
    if ours is not None:
        path = resolve_file(name_or_path, OUR_WEIGHTS)
        try:
            cfg = config_cls.from_dict(ours["lm"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{name_or_path}: config.json has no valid 'lm' section: {exc}") from exc
        if t5_path is None:  # a folder must not make us fetch and run any hub repo as its text encoder
            check_text_encoder(cfg.conditioner, f"{name_or_path}: config.json")
        state = load_our_weights(name_or_path, "lm.")
    else:
        path = resolve_file(name_or_path, LM_FILENAME)
        state, xp_cfg = load_export(path)
        cfg = config_cls.from_xp_cfg(xp_cfg, frame_rate=frame_rate)
        state = from_audiocraft_state(state, cfg)
        proj = state.get("condition_provider.conditioners.description.output_proj.weight")
        if proj is not None:
            cfg.conditioner.text_dim = proj.shape[1]
    if t5_path is not None and cfg.conditioner.model == "t5":
        cfg.conditioner.path = str(t5_path)
    model = model_cls(cfg)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not match the architecture its xp.cfg describes: {exc}") from exc
    return model.to(resolve_device(device)).eval()
