"""Reading and writing EnCodec checkpoints: audiocraft exports, audiocraft pointers, Hugging Face dirs.

* audiocraft export (the MAGNeT repos' ``compression_state_dict.bin``): ``{'best_state': state_dict,
  'xp.cfg': YAML string, 'version', 'exported': True}``; the config lives in ``xp.cfg``'s
  ``encodec``, ``seanet`` and ``rvq`` sections.
* audiocraft pointer: ``{'pretrained': 'facebook/encodec_32khz', ...}`` naming a Hugging Face
  ``EncodecModel`` repo (or a local directory) to load instead.
* ours (``magnet export``, :data:`~magnet_audio.checkpoints.OUR_FORMAT`): the ``codec`` section of
  ``config.json`` and the ``codec.`` tensors of ``model.safetensors``. A section with
  ``"type": "spectral"`` is a :class:`~magnet_audio.codec.spectral.SpectralCodec` (our format only,
  written by :func:`save_our_codec`); any other is EnCodec.
* Hugging Face ``EncodecModel`` directory or repo: ``config.json`` + ``model.safetensors`` (or
  ``pytorch_model.bin``). As audiocraft's ``HFEncodecCompressionModel`` does, it is used with the
  codebooks of its largest target bandwidth: ``n_q = 1000·max(bw) // (ceil(sample_rate / hop) ·
  log2(bins))`` (4 for ``facebook/encodec_32khz`` at 2.2 kbps, also the number of codebooks it stores).

Weight-norm parameters may be named ``weight_g``/``weight_v`` (old ``torch.nn.utils.weight_norm``) or
``parametrizations.weight.original0``/``original1`` (``torch.nn.utils.parametrizations``); both load.
Our own ``state_dict()`` uses audiocraft's names, so :func:`save_audiocraft_export` writes files that
this module and audiocraft both read.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file

from ..checkpoints import OUR_FORMAT, load_our_weights, looks_like_hub_id, parse_xp_cfg, resolve_file, safe_load
from ..names import resolve_bundled
from ..errors import CheckpointError, InputError
from ..utils import resolve_device, write_atomic
from ..version import __version__
from .model import EncodecConfig, EncodecModel
from .spectral import CODEC_TYPE as SPECTRAL, SpectralCodec, SpectralCodecConfig

AUDIOCRAFT_FILENAME = "compression_state_dict.bin"
HF_CONFIG = "config.json"
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")

# xp.cfg keys read from `seanet` (shared by encoder and decoder) and from `seanet.decoder` only.
SEANET_KEYS = ("dimension", "channels", "n_filters", "n_residual_layers", "ratios", "activation",
               "activation_params", "norm", "kernel_size", "last_kernel_size", "residual_kernel_size",
               "dilation_base", "causal", "pad_mode", "true_skip", "compress", "lstm", "disable_norm_outer_blocks")
SEANET_DECODER_KEYS = ("trim_right_ratio", "final_activation", "final_activation_params")
RVQ_KEYS = ("n_q", "bins", "q_dropout", "decay", "kmeans_init", "kmeans_iters", "threshold_ema_dead_code")

# transformers' EncodecConfig defaults, for keys a config.json leaves out.
HF_DEFAULTS = {
    "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0], "sampling_rate": 24000, "audio_channels": 1,
    "normalize": False, "chunk_length_s": None, "hidden_size": 128, "num_filters": 32, "num_residual_layers": 1,
    "upsampling_ratios": [8, 5, 4, 2], "norm_type": "weight_norm", "kernel_size": 7, "last_kernel_size": 7,
    "residual_kernel_size": 3, "dilation_growth_rate": 2, "use_causal_conv": True, "pad_mode": "reflect",
    "compress": 2, "num_lstm_layers": 2, "trim_right_ratio": 1.0, "codebook_size": 1024, "codebook_dim": None,
    "use_conv_shortcut": True,
}


def codec_config_from_dict(values: dict) -> EncodecConfig | SpectralCodecConfig:
    """The config of either codec from its ``to_dict()`` (``type`` "spectral", or EnCodec without it)."""
    if values.get("type") == SPECTRAL:
        return SpectralCodecConfig.from_dict(values)
    return EncodecConfig.from_dict(values)


def codec_from_config(config: EncodecConfig | SpectralCodecConfig) -> EncodecModel | SpectralCodec:
    """A freshly initialised codec of ``config``'s kind."""
    return SpectralCodec(config) if isinstance(config, SpectralCodecConfig) else EncodecModel(config)


def load_compression_model(name_or_path: str | os.PathLike, device: str | torch.device | None = None,
                           dtype: torch.dtype = torch.float32) -> EncodecModel | SpectralCodec:
    """Load a codec (EnCodec, or our :class:`~magnet_audio.codec.spectral.SpectralCodec`) in eval mode.

    Args:
        name_or_path: an audiocraft export or pointer file; a directory holding
            ``compression_state_dict.bin`` or a Hugging Face ``EncodecModel`` (``config.json`` +
            weights); or a hub repo id (``compression_state_dict.bin`` is tried first, then
            ``config.json``).
        device: defaults to CUDA, then MPS, then CPU.
        dtype: parameter dtype.

    Raises:
        CheckpointError: missing, corrupt or unsafe file, unsupported config, or weights that do
            not match the config (the offending keys are named).
    """
    model = _load(name_or_path, follow_pointer=True)
    return model.to(device=resolve_device(device), dtype=dtype).eval()


def save_audiocraft_export(model: EncodecModel, path: str | os.PathLike) -> Path:
    """Write ``model`` as an audiocraft export ``{'best_state', 'xp.cfg', 'version', 'exported'}``
    (weights in float32 on CPU, config from :func:`config_to_xp_cfg`). Returns the path."""
    if not isinstance(model, EncodecModel):
        raise InputError(f"audiocraft's format holds EnCodec models only, not a {type(model).__name__}: "
                         "use save_our_codec")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).clone() for k, v in model.state_dict().items()}
    package = {"best_state": state, "xp.cfg": yaml.safe_dump(config_to_xp_cfg(model.config), sort_keys=False),
               "version": f"magnet_audio {__version__}", "exported": True}
    torch.save(package, path)
    return path


def save_our_codec(model: EncodecModel | SpectralCodec, out_dir: str | os.PathLike) -> Path:
    """Write ``model`` in our format: ``out_dir/config.json`` (its config as the ``codec`` section) and
    ``out_dir/model.safetensors`` (float32 ``codec.`` tensors), each replaced atomically. Returns ``out_dir``."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    tensors = {f"codec.{k}": v.detach().to("cpu", torch.float32).contiguous().clone()
               for k, v in model.state_dict().items()}
    config = {"format": OUR_FORMAT, "version": __version__, "codec": model.config.to_dict()}
    write_atomic(lambda tmp: save_file(tensors, str(tmp), metadata={"format": OUR_FORMAT}), out / HF_WEIGHTS[0])
    write_atomic(lambda tmp: tmp.write_text(json.dumps(config, indent=2) + "\n"), out / HF_CONFIG)
    return out


def config_to_xp_cfg(config: EncodecConfig) -> dict:
    """The ``xp.cfg`` sections audiocraft's ``get_compression_model`` builds this codec from."""
    c = config
    seanet = {key: getattr(c, key) for key in SEANET_KEYS}
    seanet.update(norm_params={}, encoder={}, decoder={key: getattr(c, key) for key in SEANET_DECODER_KEYS})
    return {
        "compression_model": "encodec",
        "sample_rate": c.sample_rate,
        "channels": c.channels,
        "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": c.sample_rate,
                    "channels": c.channels, "causal": c.causal, "renormalize": c.renormalize},
        "seanet": seanet,
        "rvq": {key: getattr(c, key) for key in RVQ_KEYS},
    }


def config_from_xp_cfg(xp_cfg: dict, source: str | os.PathLike = "xp.cfg") -> EncodecConfig:
    """Codec config from an audiocraft ``xp.cfg`` dict. Reads only the keys listed in
    ``SEANET_KEYS``, ``SEANET_DECODER_KEYS`` and ``RVQ_KEYS`` plus ``encodec.{sample_rate, channels,
    renormalize}``; missing ones take audiocraft's defaults."""
    if xp_cfg.get("compression_model", "encodec") != "encodec":
        raise CheckpointError(f"{source}: compression_model {xp_cfg.get('compression_model')!r} is not supported "
                              "(only 'encodec')")
    encodec, seanet, rvq = (_section(xp_cfg, name, source) for name in ("encodec", "seanet", "rvq"))
    for key, expected in (("autoencoder", "seanet"), ("quantizer", "rvq")):
        if encodec.get(key, expected) != expected:
            raise CheckpointError(f"{source}: encodec.{key} {encodec[key]!r} is not supported (only {expected!r})")
    sample_rate = encodec.get("sample_rate", xp_cfg.get("sample_rate"))
    channels = encodec.get("channels", xp_cfg.get("channels"))
    if sample_rate is None or channels is None:
        raise CheckpointError(f"{source}: xp.cfg gives no encodec.sample_rate / encodec.channels")
    if "renormalize" in encodec:
        renormalize = bool(encodec["renormalize"])
    else:  # configs older than `renormalize` had `renorm: <kind>` or `renorm: null`
        renormalize = encodec.get("renorm") is not None

    encoder = {**seanet, **_section(seanet, "encoder", source)}
    decoder = {**seanet, **_section(seanet, "decoder", source)}
    differing = [key for key in SEANET_KEYS if encoder.get(key) != decoder.get(key)]
    if differing:
        raise CheckpointError(f"{source}: encoder and decoder differ in seanet {differing}; not supported")
    if seanet.get("channels", channels) != channels:
        raise CheckpointError(f"{source}: seanet.channels {seanet['channels']} != encodec.channels {channels}")
    values = {key: encoder[key] for key in SEANET_KEYS if key in encoder}
    values.update({key: decoder[key] for key in SEANET_DECODER_KEYS if key in decoder})
    values.update({key: rvq[key] for key in RVQ_KEYS if key in rvq})
    values.update(sample_rate=sample_rate, channels=channels, renormalize=renormalize)
    return _make_config(values, source)


def config_from_hf(hf_cfg: dict, source: str | os.PathLike = HF_CONFIG) -> EncodecConfig:
    """Codec config from a transformers ``EncodecModel`` ``config.json`` dict."""
    if hf_cfg.get("model_type", "encodec") != "encodec":
        raise CheckpointError(f"{source}: model_type {hf_cfg.get('model_type')!r} is not an EnCodec model")
    c = {key: hf_cfg.get(key, default) for key, default in HF_DEFAULTS.items()}
    if c["norm_type"] != "weight_norm":
        raise CheckpointError(f"{source}: norm_type {c['norm_type']!r} is not supported (only 'weight_norm')")
    if c["chunk_length_s"] is not None:
        raise CheckpointError(f"{source}: chunked encoding (chunk_length_s={c['chunk_length_s']}) is not supported")
    if c["codebook_dim"] not in (None, c["hidden_size"]):
        raise CheckpointError(f"{source}: codebook_dim {c['codebook_dim']} != hidden_size {c['hidden_size']} "
                              "is not supported")
    bandwidths = c["target_bandwidths"]
    if not bandwidths or not all(isinstance(b, (int, float)) and b > 0 for b in bandwidths):
        raise CheckpointError(f"{source}: target_bandwidths must be positive numbers, got {bandwidths!r}")
    try:
        frame_rate = math.ceil(c["sampling_rate"] / math.prod(c["upsampling_ratios"]))
        n_q = int(1000 * max(bandwidths) // (frame_rate * math.ceil(math.log2(c["codebook_size"]))))
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise CheckpointError(f"{source}: invalid sampling_rate / upsampling_ratios / codebook_size: {exc}") from exc
    values = dict(
        sample_rate=c["sampling_rate"], channels=c["audio_channels"], renormalize=bool(c["normalize"]),
        dimension=c["hidden_size"], n_filters=c["num_filters"], n_residual_layers=c["num_residual_layers"],
        ratios=c["upsampling_ratios"], activation="ELU", activation_params={"alpha": 1.0}, norm="weight_norm",
        kernel_size=c["kernel_size"], last_kernel_size=c["last_kernel_size"],
        residual_kernel_size=c["residual_kernel_size"], dilation_base=c["dilation_growth_rate"],
        causal=bool(c["use_causal_conv"]), pad_mode=c["pad_mode"], true_skip=not c["use_conv_shortcut"],
        compress=c["compress"], lstm=c["num_lstm_layers"], trim_right_ratio=c["trim_right_ratio"],
        n_q=n_q, bins=c["codebook_size"],
    )
    return _make_config(values, source)


def hf_key(key: str) -> str:
    """transformers' name for one of our (audiocraft) state-dict keys."""
    key = re.sub(r"^(encoder|decoder)\.model\.", r"\1.layers.", key)
    key = key.replace(".conv.conv.", ".conv.").replace(".convtr.convtr.", ".conv.")
    return re.sub(r"^quantizer\.vq\.layers\.(\d+)\._codebook\.", r"quantizer.layers.\1.codebook.", key)


def normalize_weight_norm_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``parametrizations.weight.original0/1`` to ``weight_g``/``weight_v``."""
    renamed = {}
    for key, value in state.items():
        key = key.replace(".parametrizations.weight.original0", ".weight_g")
        renamed[key.replace(".parametrizations.weight.original1", ".weight_v")] = value
    return renamed


def _section(cfg: dict, name: str, source) -> dict:
    value = cfg.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CheckpointError(f"{source}: xp.cfg section {name!r} should be a mapping, got {type(value).__name__}")
    return value


def _make_config(values: dict, source) -> EncodecConfig:
    try:
        return EncodecConfig(**values)
    except (InputError, TypeError) as exc:  # TypeError: e.g. a string where a number belongs
        raise CheckpointError(f"{source}: {exc}") from exc


def _load(name_or_path: str | os.PathLike, follow_pointer: bool) -> EncodecModel:
    name_or_path = resolve_bundled(name_or_path)
    path = Path(os.path.expanduser(str(name_or_path)))
    if path.is_dir():
        if (path / AUDIOCRAFT_FILENAME).is_file():
            return _load_package(path / AUDIOCRAFT_FILENAME, follow_pointer)
        if (path / HF_CONFIG).is_file():
            return _load_hf(path)
        raise CheckpointError(f"{path} holds neither {AUDIOCRAFT_FILENAME} (audiocraft) nor {HF_CONFIG} "
                              "(Hugging Face EncodecModel)")
    if path.is_file():
        return _load_package(path, follow_pointer)
    name = str(name_or_path)
    if not looks_like_hub_id(name):
        raise CheckpointError(f"codec checkpoint {name!r} not found: it is neither a local file or directory "
                              "nor a hub repo id (owner/name)")
    try:
        file = resolve_file(name, AUDIOCRAFT_FILENAME)
    except CheckpointError as audiocraft_error:
        try:
            return _load_hf(name)
        except CheckpointError as hf_error:
            raise CheckpointError(f"no codec found in hub repo {name!r}: {audiocraft_error} / {hf_error}") from hf_error
    return _load_package(file, follow_pointer)


def _load_package(path: Path, follow_pointer: bool) -> EncodecModel:
    package = safe_load(path)
    if isinstance(package, dict) and "best_state" in package:
        config = config_from_xp_cfg(parse_xp_cfg(package, path), path)
        return _build(config, package["best_state"], lambda key: key, path)
    if isinstance(package, dict) and "pretrained" in package:
        target = package["pretrained"]
        if not isinstance(target, str):
            raise CheckpointError(f"{path}: 'pretrained' should name a model, got {type(target).__name__}")
        if not follow_pointer:
            raise CheckpointError(f"{path}: a compression pointer may not point to another pointer")
        return _load(target, follow_pointer=False)
    raise CheckpointError(f"{path} is not an audiocraft compression checkpoint "
                          "(expected a dict with 'best_state' and 'xp.cfg', or with 'pretrained')")


def _load_hf(name_or_dir: str | os.PathLike) -> EncodecModel:
    config_file = resolve_file(name_or_dir, HF_CONFIG)
    try:
        hf_cfg = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"could not read {config_file}: {exc}") from exc
    if not isinstance(hf_cfg, dict):
        raise CheckpointError(f"{config_file}: expected a JSON object")
    if hf_cfg.get("format") == OUR_FORMAT:  # a magnet_audio model: its codec part
        if not isinstance(hf_cfg.get("codec"), dict):
            raise CheckpointError(f"{config_file}: no 'codec' section")
        try:
            config = codec_config_from_dict(hf_cfg["codec"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{config_file}: bad 'codec' section: {exc}") from exc
        state = {k: v.float() for k, v in load_our_weights(name_or_dir, "codec.").items()}
        return _build(config, state, lambda key: key, config_file)
    config = config_from_hf(hf_cfg, config_file)
    errors = []
    for filename in HF_WEIGHTS:
        try:
            weights_file = resolve_file(name_or_dir, filename)
            break
        except CheckpointError as exc:
            errors.append(str(exc))
    else:
        raise CheckpointError(f"no weights for {name_or_dir}: " + "; ".join(errors))
    if weights_file.suffix == ".safetensors":
        try:
            state = load_file(weights_file)
        except Exception as exc:  # safetensors raises several types for a corrupt file
            raise CheckpointError(f"could not read {weights_file}: {exc}") from exc
    else:
        state = safe_load(weights_file)
    return _build(config, state, hf_key, weights_file)


def _build(config: EncodecConfig | SpectralCodecConfig, state, key_map, source) -> EncodecModel | SpectralCodec:
    """A model for ``config`` holding ``state``, whose key for each of ours is ``key_map(ours)``."""
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise CheckpointError(f"{source}: the weights are not a state dict of named tensors")
    state = normalize_weight_norm_keys(state)
    model = codec_from_config(config)
    expected = {key_map(key): (key, value.shape) for key, value in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{source}: the weights do not match the codec config; "
                              f"missing keys {_preview(missing)}, unexpected keys {_preview(unexpected)}")
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(shape)})"
             for k, (_, shape) in expected.items() if state[k].shape != shape]
    if wrong:
        raise CheckpointError(f"{source}: wrong tensor shapes: {_preview(wrong)}")
    model.load_state_dict({ours: state[theirs] for theirs, (ours, _) in expected.items()})
    return model


def _preview(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit]) if items else "none"
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
