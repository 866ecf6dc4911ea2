"""Finding and safely reading checkpoint files.

A model is named by a local directory, a local file, or a Hugging Face hub repo id
(``facebook/magnet-small-10secs``). Files are read with ``torch.load(weights_only=True)``: a file
that would need arbitrary unpickling is refused, never executed. audiocraft's exports store their
config (``xp.cfg``) as a YAML string, so they load this way.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file

from .errors import CheckpointError
from .names import HUB_CACHE_ENV, resolve_bundled


# Our model format (written by `magnet export`): one safetensors file with the LM weights under
# ``lm.`` and the codec weights under ``codec.``, and a config.json {"format": "magnet_audio", "lm":
# MagnetLMConfig dict, "codec": EncodecConfig dict, ...}.
OUR_FORMAT = "magnet_audio"
OUR_CONFIG = "config.json"
OUR_WEIGHTS = "model.safetensors"

def read_our_config(name_or_path: str | os.PathLike, probe_hub: bool = True) -> dict | None:
    """The ``config.json`` of a model in our format, or None for any other model.

    A local directory is checked for the file; a hub repo is asked for it only if ``probe_hub``
    (a repo without it, or an unreachable hub, gives None).
    """
    path = Path(os.path.expanduser(str(resolve_bundled(name_or_path))))
    if path.is_dir():
        file = path / OUR_CONFIG
        if not file.is_file():
            return None
    elif probe_hub and looks_like_hub_id(str(name_or_path)):
        try:
            file = _hub_download(str(name_or_path), OUR_CONFIG)
        except CheckpointError:
            return None
    else:
        return None
    try:
        config = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"could not read {file}: {exc}") from exc
    return config if isinstance(config, dict) and config.get("format") == OUR_FORMAT else None


def load_our_weights(name_or_path: str | os.PathLike, prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix`` (``lm.`` or ``codec.``) of a model in our format, prefix removed."""
    file = resolve_file(name_or_path, OUR_WEIGHTS)
    try:
        tensors = load_file(str(file))
    except Exception as exc:  # safetensors raises several types for a corrupt file
        raise CheckpointError(f"could not read {file}: {exc}") from exc
    part = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not part:
        raise CheckpointError(f"{file} holds no weights under {prefix!r}")
    return part


def looks_like_hub_id(name: str) -> bool:
    """``owner/name`` with no local counterpart."""
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not Path(name).exists() and not name.startswith((".", "~"))


def resolve_file(name_or_path: str | os.PathLike, filename: str | None = None) -> Path:
    """Return a local path for ``filename`` inside a directory or hub repo, or the file itself.

    Args:
        name_or_path: a file, a directory holding ``filename``, or a hub repo id.
        filename: the file to look for when ``name_or_path`` is a directory or repo id.
    """
    name_or_path = resolve_bundled(name_or_path)
    path = Path(os.path.expanduser(str(name_or_path)))
    if path.is_file():
        return path
    if path.is_dir():
        if filename is None:
            raise CheckpointError(f"{path} is a directory; expected a file")
        candidate = path / filename
        if not candidate.is_file():
            raise CheckpointError(f"{candidate} not found (expected {filename!r} inside {path})")
        return candidate
    name = str(name_or_path)
    if filename is not None and looks_like_hub_id(name):
        return _hub_download(name, filename)
    raise CheckpointError(f"{name!r} is neither a local file or directory nor a hub repo id (owner/name)")


def _hub_download(repo_id: str, filename: str) -> Path:
    from huggingface_hub import hf_hub_download  # here: it reads HF_HUB_OFFLINE & co. when first imported

    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=os.environ.get(HUB_CACHE_ENV)))
    except Exception as exc:  # network, auth, missing file: all reported the same way
        raise CheckpointError(
            f"could not fetch {filename!r} from the Hugging Face hub repo {repo_id!r}: {exc}. "
            "Without network access, download the repo elsewhere and pass its local directory."
        ) from exc


def safe_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` restricted to tensors and plain containers, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {path}: it needs arbitrary code to unpickle ({exc}). "
            "Only checkpoints made of tensors and plain containers are loaded."
        ) from exc
    except Exception as exc:
        raise CheckpointError(f"could not read checkpoint {path}: {exc}") from exc


def parse_xp_cfg(package: dict, path: str | os.PathLike) -> dict:
    """The experiment config of an audiocraft export, as a plain dict."""
    cfg = package.get("xp.cfg")
    if isinstance(cfg, str):
        try:
            cfg = yaml.safe_load(cfg)
        except yaml.YAMLError as exc:
            raise CheckpointError(f"{path}: its 'xp.cfg' is not valid YAML: {exc}") from exc
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: expected an audiocraft export with an 'xp.cfg' config")
    return cfg


def load_export(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an audiocraft export ``{'best_state', 'xp.cfg', ...}``: (state_dict, config)."""
    package = safe_load(path)
    if not isinstance(package, dict) or "best_state" not in package:
        raise CheckpointError(f"{path}: not an audiocraft export (no 'best_state')")
    state = package["best_state"]
    if isinstance(state, dict) and "model" in state and not any(torch.is_tensor(v) for v in state.values()):
        state = state["model"]  # solver checkpoints nest the weights one level down
    return state, parse_xp_cfg(package, path)
