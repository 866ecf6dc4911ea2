"""The audio tokenizers: waveform [B, C, T] <-> codes [B, K, T / hop].

EnCodec (:class:`EncodecModel`) is MAGNeT's; :class:`SpectralCodec` is ours, a magnitude codec that
a CPU can train to keep pitch (see :mod:`.spectral`). ``load_compression_model`` reads audiocraft
exports and pointers, Hugging Face ``EncodecModel`` checkpoints and our format;
``save_audiocraft_export`` writes EnCodec back in audiocraft's format, ``save_our_codec`` either in ours.
"""

from .formats import (
    codec_config_from_dict,
    codec_from_config,
    config_from_hf,
    config_from_xp_cfg,
    config_to_xp_cfg,
    load_compression_model,
    save_audiocraft_export,
    save_our_codec,
)
from .model import CodecOutput, EncodecConfig, EncodecModel
from .spectral import SpectralCodec, SpectralCodecConfig

__all__ = ["EncodecModel", "EncodecConfig", "CodecOutput", "load_compression_model", "save_audiocraft_export",
           "config_from_xp_cfg", "config_to_xp_cfg", "config_from_hf", "SpectralCodec", "SpectralCodecConfig",
           "save_our_codec", "codec_config_from_dict", "codec_from_config"]
