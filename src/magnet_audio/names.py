"""Model names: the models that ship in the package, the default, and the official hub repos.

Light on purpose (no torch import), so the command line can name its defaults quickly.
"""

from __future__ import annotations

import os
from pathlib import Path

# Models that ship inside the package: ``magnet-audio/NAME`` is ``magnet_audio/pretrained/NAME``.
BUNDLED_PREFIX = "magnet-audio/"
BUNDLED_DIR = Path(__file__).resolve().parent / "pretrained"
DEFAULT_MODEL = "magnet-audio/synth-music"

# The official audiocraft exports on the hub.
MAGNET_REPOS = (
    "facebook/magnet-small-10secs", "facebook/magnet-medium-10secs",
    "facebook/magnet-small-30secs", "facebook/magnet-medium-30secs",
    "facebook/audio-magnet-small", "facebook/audio-magnet-medium",
)
MUSICGEN_REPOS = ("facebook/musicgen-small", "facebook/musicgen-medium", "facebook/musicgen-large")
AUDIOCRAFT_REPOS = MAGNET_REPOS + MUSICGEN_REPOS


def default_model_name() -> str:
    """The model the command line and the app use when none is named: $MAGNET_MODEL, else ours."""
    return os.environ.get("MAGNET_MODEL", DEFAULT_MODEL)


def resolve_bundled(name_or_path: str | os.PathLike) -> str | os.PathLike:
    """The directory of a bundled model (``magnet-audio/NAME``); any other name unchanged."""
    name = str(name_or_path)
    if name.startswith(BUNDLED_PREFIX) and not Path(name).exists():
        candidate = BUNDLED_DIR / name[len(BUNDLED_PREFIX):]
        if candidate.is_dir():
            return candidate
    return name_or_path


def bundled_models() -> list[str]:
    """Names of the models that ship in the package."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(BUNDLED_PREFIX + d.name for d in BUNDLED_DIR.iterdir() if (d / "config.json").is_file())
