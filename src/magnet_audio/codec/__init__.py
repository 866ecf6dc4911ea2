"""EnCodec, the audio tokenizer of MAGNeT: waveform [B, C, T] <-> codes [B, K, T / hop].

``load_compression_model`` reads audiocraft exports and pointers and Hugging Face ``EncodecModel``
checkpoints; ``save_audiocraft_export`` writes a model back in audiocraft's format.
"""

from .formats import (
    config_from_hf,
    config_from_xp_cfg,
    config_to_xp_cfg,
    load_compression_model,
    save_audiocraft_export,
)
from .model import CodecOutput, EncodecConfig, EncodecModel

__all__ = ["EncodecModel", "EncodecConfig", "CodecOutput", "load_compression_model", "save_audiocraft_export",
           "config_from_xp_cfg", "config_to_xp_cfg", "config_from_hf"]
