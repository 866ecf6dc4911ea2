"""``magnet export CKPT OUT_DIR``: a training checkpoint -> a model directory.

OUT_DIR gets two formats of the same model:

* ours: ``model.safetensors`` (LM weights under ``lm.``, codec weights under ``codec.``) and
  ``config.json`` (``{"format": "magnet_audio", "lm": ..., "codec": ..., "training": ...}``), read
  back by ``MAGNeT.get_pretrained(OUT_DIR)``; always written;
* audiocraft's export format, which audiocraft 1.3.0's own ``MAGNeT.get_pretrained(OUT_DIR)`` (and
  ours) load: ``state_dict.bin`` = ``{'best_state': LM state dict, 'xp.cfg': YAML string, 'version',
  'exported': True}`` and ``compression_state_dict.bin`` (the codec, via
  :func:`~magnet_audio.codec.save_audiocraft_export`). Written only for models audiocraft can load:
  not for a ``sentence`` text conditioner (audiocraft has none) or a segment that is not a whole
  number of seconds (:func:`~magnet_audio.lm.base.audiocraft_blockers`); a stale pair from an
  earlier export is then removed. Our spectral codec has no audiocraft form: its models get
  ``state_dict.bin`` (the LM alone, which audiocraft's ``load_lm_model_magnet`` reads) but no
  ``compression_state_dict.bin``. A ``lut`` model loads in audiocraft but its prompts pick other
  table rows there (:func:`~magnet_audio.lm.base.audiocraft_caveats`). :func:`export` reports each
  of these as a notice; ``tests/test_audiocraft_interop.py`` runs audiocraft itself on the results.

The LM weights are the EMA weights when the run kept an EMA (as audiocraft exports them), else the
raw weights. Every file is written to a temporary name and renamed. A codec training checkpoint
(``magnet train-codec``) gives the codec alone: ``OUT_DIR/compression_state_dict.bin`` for EnCodec,
``config.json`` + ``model.safetensors`` for the spectral codec.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import torch
import yaml
from safetensors.torch import save_file

from ..checkpoints import OUR_CONFIG as CONFIG_FILE, OUR_FORMAT as FORMAT, OUR_WEIGHTS as SAFETENSORS_FILE
from ..codec import EncodecModel, load_compression_model, save_audiocraft_export
from ..errors import CheckpointError, InputError
from ..lm.base import audiocraft_blockers, audiocraft_caveats, to_audiocraft_state
from ..lm.loading import CODEC_FILENAME, LM_FILENAME
from ..lm.magnet import MagnetLM, MagnetLMConfig
from ..models import MAGNeT
from ..utils import write_atomic
from ..validation import _show, one_line, writable_target
from ..version import __version__
from .codec_train import export_codec
from .runtime import checkpoint_weights, find_checkpoint, load_checkpoint


def export(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, use_ema: bool = True,
           codec: str | None = None, half: bool = False, generation: dict | None = None,
           notice: Callable[[str], None] | None = None) -> Path:
    """Write the model of a MAGNeT training checkpoint (or a run folder's last one) to ``out_dir``.

    codec: the codec to ship (default: the one the run used, recorded in the checkpoint).
    half: store the LM weights in float16 (both formats), as the official exports do; they load
        back into float32.
    generation: the model's recommended ``set_generation_params`` options (e.g. ``{"temperature":
        1.0}``), stored in ``config.json`` and applied by ``MAGNeT.get_pretrained``.
    notice: called with one line for each way the export is not a full audiocraft model (see the
        module docstring); default: :func:`warnings.warn`.
    Everything (the generation options included) is checked before anything is written; the files
    are written into a staging folder and then renamed into ``out_dir``, so a failure leaves a model
    already there intact.
    Returns ``out_dir``.
    """
    writable_target(out_dir, "export folder")
    path = find_checkpoint(checkpoint)
    ckpt = load_checkpoint(path)
    meta = ckpt.get("meta") or {}
    if meta.get("kind") == "codec":  # a `magnet train-codec` run: the codec alone, audiocraft's format
        return export_codec(path, out_dir, use_ema).parent
    if meta.get("kind") != "magnet":
        raise CheckpointError(f"{path} is not a MAGNeT LM training checkpoint (kind {meta.get('kind')!r})")
    lm_cfg = MagnetLMConfig.from_dict(meta["lm_config"])
    generation = check_generation_options(generation, lm_cfg, "--generation")  # before anything is written
    weights = checkpoint_weights(ckpt, use_ema)
    lm = MagnetLM(lm_cfg)
    try:
        lm.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: its weights do not match its LM config: {exc}") from exc
    codec_name = codec or meta.get("codec")
    if not codec_name:
        raise InputError(f"{path} does not record its codec: pass --codec")
    codec_model = load_compression_model(codec_name, device="cpu")
    if (codec_model.num_codebooks, codec_model.cardinality) != (lm_cfg.n_q, lm_cfg.card) or \
            abs(codec_model.frame_rate - lm_cfg.frame_rate) > 1e-6:
        raise InputError(f"codec {codec_name} ({codec_model.num_codebooks}x{codec_model.cardinality} at "
                         f"{codec_model.frame_rate} Hz) does not match the LM ({lm_cfg.n_q}x{lm_cfg.card} at "
                         f"{lm_cfg.frame_rate} Hz)")

    # every file is written into a staging folder first, then renamed into ``out``: a failure leaves
    # the model already there untouched (never weights of one model with the config of another)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        _write_export(staging, lm_cfg, lm, codec_model, ckpt, path, use_ema, half, generation,
                      notice or (lambda line: warnings.warn(line, stacklevel=5)))
        for stale in (LM_FILENAME, CODEC_FILENAME):  # audiocraft files this export did not write describe
            if not (staging / stale).exists():      # another model (and would be loaded first)
                (out / stale).unlink(missing_ok=True)
        for file in sorted(staging.iterdir(), key=lambda f: f.name == CONFIG_FILE):  # config.json last
            os.replace(file, out / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _write_export(out: Path, lm_cfg: MagnetLMConfig, lm: MagnetLM, codec_model, ckpt: dict, path: Path,
                  use_ema: bool, half: bool, generation: dict, notice: Callable[[str], None]) -> None:
    """The export's files, written into the (empty, staging) folder ``out``."""
    from safetensors.torch import save_file

    from .. import __version__

    state = {k: v.detach().to("cpu", torch.float16 if half and v.is_floating_point() else v.dtype).contiguous()
             for k, v in lm.state_dict().items()}
    _write_audiocraft_form(out, state, lm_cfg, codec_model, notice)

    tensors = {f"lm.{k}": v.clone() for k, v in state.items()}
    tensors.update({f"codec.{k}": v.detach().cpu().contiguous().clone() for k, v in codec_model.state_dict().items()})
    write_atomic(lambda tmp: save_file(tensors, str(tmp), metadata={"format": FORMAT}), out / SAFETENSORS_FILE)
    config = {"format": FORMAT, "version": __version__, "lm": lm_cfg.to_dict(), "codec": codec_model.config.to_dict(),
              "generation": generation or {},
              "training": {"checkpoint": path.name, "step": int(ckpt["step"]),
                           "ema": bool(use_ema and ckpt.get("ema") is not None)}}
    write_atomic(lambda tmp: tmp.write_text(json.dumps(config, indent=2) + "\n"), out / CONFIG_FILE)


def _write_audiocraft_form(out: Path, state: dict[str, torch.Tensor], lm_cfg: MagnetLMConfig, codec_model,
                           notice: Callable[[str], None]) -> None:
    """``state_dict.bin`` and ``compression_state_dict.bin`` when audiocraft can load them, with a
    notice for each way the export falls short of an audiocraft model (see the module docstring)."""
    blockers = audiocraft_blockers(lm_cfg)
    if blockers:  # no audiocraft files: a stale pair from an earlier export would describe another model
        for stale in (LM_FILENAME, CODEC_FILENAME):
            (out / stale).unlink(missing_ok=True)
        notice(f"not an audiocraft model: {'; '.join(blockers)}. Wrote magnet_audio's format only "
               "(config.json + model.safetensors), which MAGNeT.get_pretrained of magnet_audio loads")
    else:
        package = {"best_state": to_audiocraft_state(state, lm_cfg),
                   "xp.cfg": yaml.safe_dump(lm_cfg.to_xp_cfg(), sort_keys=False),
                   "version": f"magnet_audio {__version__}", "exported": True}
        write_atomic(lambda tmp: torch.save(package, tmp), out / LM_FILENAME)
        if isinstance(codec_model, EncodecModel):
            write_atomic(lambda tmp: save_audiocraft_export(codec_model, tmp), out / CODEC_FILENAME)
        else:  # our spectral codec has no audiocraft form; an older export's EnCodec would be loaded first
            (out / CODEC_FILENAME).unlink(missing_ok=True)
            notice("audiocraft cannot load this folder as a model: its spectral codec has no audiocraft form "
                   "(state_dict.bin holds the LM alone, for audiocraft's load_lm_model_magnet)")
        for caveat in audiocraft_caveats(lm_cfg):
            notice(f"audiocraft loads this model, but {caveat}")


def check_generation_options(options: Any, lm_cfg, what: str = "generation options") -> dict:
    """Check a model's recommended ``set_generation_params`` options (``magnet export --generation``,
    ``config.json``'s ``generation``) with the very checks ``MAGNeT.set_generation_params`` runs,
    for an LM of config ``lm_cfg``, without building the model. Returns the options."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise InputError(f"{what} must be a JSON object of set_generation_params options, got {_show(options)}")
    if "rescorer" in options:
        raise InputError(f"{what}: 'rescorer' is a model, not an option a config can store")
    lm = SimpleNamespace(num_codebooks=lm_cfg.n_q, cfg=lm_cfg)
    stub = SimpleNamespace(device=torch.device("cpu"), lm=lm, max_duration=float(lm_cfg.segment_duration),
                           _transformed_lm=lambda fast: None)  # checking options transforms no model
    try:
        MAGNeT.set_generation_params(stub, **options)
    except TypeError as exc:
        raise InputError(f"{what}: {one_line(exc).replace('set_generation_params() ', '')}") from None
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None
    return dict(options)
