"""Small helpers shared across the package."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import torch


def write_atomic(write: Callable[[Path], object], path: str | os.PathLike) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, give it the usual permissions (some
    writers create private files), then rename it over ``path``: readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def default_device() -> torch.device:
    """CUDA if present, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    return default_device() if device is None else torch.device(device)


def slugify(text: str, max_len: int = 40) -> str:
    """A file-name-safe stem from a prompt."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug[:max_len].rstrip("_") or "audio"
