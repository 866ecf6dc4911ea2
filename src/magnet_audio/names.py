"""Model names: the models that ship in the package, the default, and the official hub repos.

Light on purpose (no torch import), so the command line can name its defaults quickly. The one
owner of "which model when none is named": :func:`resolve_default_model` (``MAGNeT.get_pretrained()``,
``magnet generate``) and :func:`default_model_name` (``magnet eval``, ``magnet bench``, ``magnet app``).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Callable

# Models that ship inside the package: ``magnet-audio/NAME`` is ``magnet_audio/pretrained/NAME``.
BUNDLED_PREFIX = "magnet-audio/"
BUNDLED_DIR = Path(__file__).resolve().parent / "pretrained"
#: The default model, as audiocraft's ``MAGNeT.get_pretrained()``: when it is cached or the hub answers.
DEFAULT_MODEL = "facebook/magnet-small-10secs"
#: The bundled model used when the default cannot be had (offline, nothing cached).
BUNDLED_MODEL = "magnet-audio/synth-music"
#: Environment variables: the model to use when none is named; the hub cache of our downloads.
MODEL_ENV = "MAGNET_MODEL"
HUB_CACHE_ENV = "MAGNET_CACHE_DIR"
#: Seconds the hub has to answer before the bundled model is used instead.
HUB_PROBE_TIMEOUT = 3.0

# The official audiocraft exports on the hub.
MAGNET_REPOS = (
    "facebook/magnet-small-10secs", "facebook/magnet-medium-10secs",
    "facebook/magnet-small-30secs", "facebook/magnet-medium-30secs",
    "facebook/audio-magnet-small", "facebook/audio-magnet-medium",
)
MUSICGEN_REPOS = ("facebook/musicgen-small", "facebook/musicgen-medium", "facebook/musicgen-large")
AUDIOCRAFT_REPOS = MAGNET_REPOS + MUSICGEN_REPOS


def default_model_name() -> str:
    """The model ``magnet eval``, ``magnet bench generate`` and ``magnet app`` use when none is named:
    ``$MAGNET_MODEL``, else the bundled model (they measure it, and never download one on their own)."""
    return os.environ.get(MODEL_ENV) or BUNDLED_MODEL


# What the default model needs besides its own two files: its codec (the pointer in its
# compression_state_dict.bin) and its text encoder. (repo, cache_dir env or None, alternatives per file)
_DEFAULT_MODEL_FILES = (
    (DEFAULT_MODEL, HUB_CACHE_ENV, (("state_dict.bin",), ("compression_state_dict.bin",))),
    ("facebook/encodec_32khz", HUB_CACHE_ENV, (("config.json",), ("model.safetensors", "pytorch_model.bin"))),
)
_DEFAULT_T5_FILES = ("google-t5/t5-base", None,  # transformers' own cache
                     (("config.json",), ("model.safetensors", "pytorch_model.bin"), ("spiece.model", "tokenizer.json")))


def _offline_variable() -> str | None:
    """The variable that forbids downloads (``HF_HUB_OFFLINE`` ...), if one is set."""
    for name in ("HF_HUB_OFFLINE", "MAGNET_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return name
    return None


def default_model_cached(t5_path: str | os.PathLike | None = None) -> bool:
    """Whether :data:`DEFAULT_MODEL`, its codec and (unless ``t5_path`` is given) its T5 text encoder are
    all in the local Hugging Face cache, so that loading it needs no network."""
    from huggingface_hub import try_to_load_from_cache

    wanted = _DEFAULT_MODEL_FILES + (() if t5_path else (_DEFAULT_T5_FILES,))
    try:
        for repo, env, files in wanted:
            cache_dir = os.environ.get(env) if env else None
            for alternatives in files:
                if not any(isinstance(try_to_load_from_cache(repo, f, cache_dir=cache_dir), str) for f in alternatives):
                    return False
    except Exception:  # an unreadable cache is no cache
        return False
    return True


def probe_hub(timeout: float | None = None) -> str | None:
    """None when the hub serves :data:`DEFAULT_MODEL` within ``timeout`` seconds (default
    :data:`HUB_PROBE_TIMEOUT`), else why not. Runs in a thread that is given up on after the timeout
    (name resolution has no timeout of its own)."""
    timeout = HUB_PROBE_TIMEOUT if timeout is None else timeout
    outcome: list = []

    def ask() -> None:
        try:
            from huggingface_hub import get_hf_file_metadata, hf_hub_url

            url = hf_hub_url(DEFAULT_MODEL, "state_dict.bin", endpoint=os.environ.get("HF_ENDPOINT") or None)
            get_hf_file_metadata(url, timeout=timeout)
            outcome.append(None)
        except Exception as exc:  # no network, DNS, proxy, HTTP error: all mean "not now"
            outcome.append(" ".join(f"{type(exc).__name__}: {exc}".split())[:160])

    thread = threading.Thread(target=ask, daemon=True, name="magnet-hub-probe")
    thread.start()
    thread.join(timeout + 0.5)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def resolve_default_model(t5_path: str | os.PathLike | None = None,
                          notice: Callable[[str], None] | None = None) -> str:
    """The model to load when none is named (``MAGNeT.get_pretrained()``, ``magnet generate``).

    ``$MAGNET_MODEL`` when set; else :data:`DEFAULT_MODEL` (audiocraft's default) when it is cached
    locally or the hub answers within :data:`HUB_PROBE_TIMEOUT` seconds (not asked when
    ``HF_HUB_OFFLINE`` is set); else the bundled :data:`BUNDLED_MODEL`, with a one-line ``notice``
    (default: printed to stderr) saying why.
    """
    chosen = os.environ.get(MODEL_ENV)
    if chosen:
        return chosen
    if default_model_cached(t5_path):
        return DEFAULT_MODEL
    offline = _offline_variable()
    if offline:
        why = f"it is not in the local Hugging Face cache and {offline} is set"
    else:
        failure = probe_hub()
        if failure is None:
            return DEFAULT_MODEL
        why = f"it is not in the local Hugging Face cache and the hub did not answer ({failure})"
    message = (f"note: using the bundled {BUNDLED_MODEL}, not the default {DEFAULT_MODEL}: {why}; "
               f"--model or ${MODEL_ENV} picks another")
    (notice or (lambda line: print(line, file=sys.stderr, flush=True)))(message)
    return BUNDLED_MODEL


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
