"""magnet-audio: MAGNeT masked audio generation in plain PyTorch."""

from .audio import audio_read, audio_write
from .codec import load_compression_model
from .errors import CheckpointError, InputError, MagnetError
from .editing import EditInfo
from .models import MAGNeT
from .musicgen import MusicGen
from .version import __version__
__all__ = ["MAGNeT", "MusicGen", "audio_write", "audio_read", "load_compression_model", "MagnetError",
           "CheckpointError", "InputError", "EditInfo"]
