"""The training configuration: typed dataclasses read from YAML, with ``key=value`` overrides.

``load_config("configs/train_magnet.yaml", ["optim.lr=1e-4", "data.batch_size=4"])`` reads the file,
applies the overrides (values are parsed as YAML, nested keys are dotted), and checks every key and
type: an unknown key or a wrong type is an :class:`InputError` naming it. ``configs/train_magnet.yaml``
documents every option.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..conditioning import ConditionerConfig
from ..errors import InputError
from ..lm.base import POSITIONAL_EMBEDDINGS
from ..validation import MAX_HEADS, MAX_LAYERS, MAX_MODEL_DIM, finite_float


@dataclass
class DataConfig:
    """Where the audio (or tokens) are and how batches are made."""

    train: str = ""
    valid: str | None = None
    valid_fraction: float = 0.05
    segment_duration: float = 10.0
    batch_size: int = 8
    num_workers: int = 0
    min_duration: float | None = None
    tokenize_chunk_seconds: float = 60.0
    merge_text_p: float = 0.25
    drop_desc_p: float = 0.5
    drop_other_p: float = 0.5


@dataclass
class ModelConfig:
    """The LM to train (from scratch, or fine-tuned from ``init_from``) and its codec.

    hybrid: train one network for both Hybrid-MAGNeT roles: MAGNeT's masked objective with a visible
        prefix of 0 to ``hybrid_max_prefix`` of the segment, plus ``hybrid_ar_weight`` times the
        autoregressive cross-entropy of the same network run causally over MusicGen's delay pattern.
    stage_weights: how often each codebook is the trained stage, relative weights, one per codebook
        (None: uniform, as audiocraft).
    tempo_rope: tempo-relative rotary positions (with ``positional_embedding: rope``; see
        :class:`~magnet_audio.lm.magnet.MagnetLMConfig`): each crop's positions count beats at its
        file's ``bpm`` (metadata; 120 where it has none). A rope ``init_from`` LM can be fine-tuned into it.
    tempo_periods: with ``tempo_rope``: ``rope`` (the tempo pairs keep rope's frequencies) or ``beats``
        (they turn once every 1/4, 3/8, 1/2, 3/4, 1, 1.5, 2, ... beats).
    beat_phase: with ``tempo_rope``, tell each frame where it falls in the beat and bar, counted
        from the crop's offset in its file (whose first beat is at 0 s); 20 % of rows train
        without it. An ``init_from`` LM gets a new zero map (it starts as it was).
    """

    codec: str | None = None
    init_from: str | None = None
    dim: int = 1024
    num_heads: int = 16
    num_layers: int = 24
    hidden_scale: int = 4
    subcodes_context: int = 5
    span_len: int = 3
    positional_embedding: str = "sin"
    cfg_dropout: float = 0.3
    stage_weights: list[float] | None = None
    hybrid: bool = False
    hybrid_ar_weight: float = 1.0
    hybrid_max_prefix: float = 0.5
    tempo_rope: bool = False
    tempo_periods: str = "rope"
    beat_phase: bool = False
    conditioner: ConditionerConfig = field(default_factory=lambda: ConditionerConfig(model="t5", word_dropout=0.3))


@dataclass
class OptimConfig:
    """AdamW, the learning-rate schedule, clipping and accumulation.

    max_minutes: a wall-clock budget for one invocation of the trainer: once it is spent, the update
        in progress is the last one (final metrics, validation and checkpoint, as at ``steps``), so
        ``--resume`` can continue the run later. None: train to ``steps``.
    """

    lr: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    weight_decay: float = 0.1
    max_norm: float = 1.0
    grad_accum: int = 1
    steps: int = 100_000
    schedule: str = "cosine"
    warmup: int = 4000
    lr_min_ratio: float = 0.0
    max_minutes: float | None = None


@dataclass
class EMAConfig:
    """Exponential moving average of the weights (used for validation, samples and export)."""

    use: bool = True
    decay: float = 0.99
    every: int = 10


@dataclass
class ValidConfig:
    every: int = 1000
    batches: int | None = None


@dataclass
class SamplesConfig:
    every: int = 5000
    num: int = 4
    prompts: list[str] = field(default_factory=list)
    decoding_steps: list[int] | None = None
    seed: int = 0


@dataclass
class CheckpointConfig:
    every: int = 1000
    keep_last: int = 3


@dataclass
class LogConfig:
    """Metrics rows every ``every`` updates (CSV and JSONL, always); ``tensorboard``: also event files
    in ``RUN/tensorboard`` (losses, learning rate, gradient norm, throughput, samples; needs the
    ``train`` extra)."""

    every: int = 50
    progress: bool = True
    tensorboard: bool = False


@dataclass
class DistributedConfig:
    """How several processes (torchrun) train.

    strategy: ``ddp`` (every rank holds the whole model and optimizer; one checkpoint file) or
        ``fsdp`` (FSDP2 ``fully_shard`` per block then the root: parameters, gradients, optimizer
        and EMA states sharded over ranks; sharded Distributed Checkpoint folders).
    activation_checkpointing: recompute each block's activations in the backward pass (fsdp only).
    """

    backend: str = "auto"
    timeout_minutes: float = 60.0
    find_unused_parameters: bool = False
    strategy: str = "ddp"
    activation_checkpointing: bool = False


@dataclass
class TrainConfig:
    """Everything ``magnet train`` reads (see ``configs/train_magnet.yaml``)."""

    run_dir: str = "runs/magnet"
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    valid: ValidConfig = field(default_factory=ValidConfig)
    samples: SamplesConfig = field(default_factory=SamplesConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def __post_init__(self):
        self.validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Range checks; :class:`InputError` naming the option."""
        checks = [
            (bool(self.data.train), "data.train is required (an audio folder, a .jsonl manifest or a token cache)"),
            (self.data.segment_duration > 0, "data.segment_duration must be > 0"),
            (self.data.batch_size >= 1, "data.batch_size must be >= 1"),
            (self.data.num_workers >= 0, "data.num_workers must be >= 0"),
            (0 <= self.data.valid_fraction < 1, "data.valid_fraction must be in [0, 1)"),
            (self.data.tokenize_chunk_seconds > 0, "data.tokenize_chunk_seconds must be > 0"),
            (all(0 <= p <= 1 for p in (self.data.merge_text_p, self.data.drop_desc_p, self.data.drop_other_p)),
             "data.merge_text_p, drop_desc_p and drop_other_p must be in [0, 1]"),
            (0 <= self.model.cfg_dropout <= 1, "model.cfg_dropout must be in [0, 1]"),
            (self.model.stage_weights is None
             or (all(w >= 0 for w in self.model.stage_weights) and sum(self.model.stage_weights) > 0),
             "model.stage_weights must be >= 0 with a positive sum (or null: uniform)"),
            (0 <= self.model.conditioner.word_dropout <= 1, "model.conditioner.word_dropout must be in [0, 1]"),
            (self.model.dim > 0 and self.model.num_heads > 0 and self.model.dim % self.model.num_heads == 0,
             "model.dim must be a positive multiple of model.num_heads"),
            (self.model.dim <= MAX_MODEL_DIM and self.model.num_heads <= MAX_HEADS
             and self.model.num_layers <= MAX_LAYERS and self.model.hidden_scale <= 64,
             f"model.dim must be <= {MAX_MODEL_DIM}, num_heads <= {MAX_HEADS}, num_layers <= {MAX_LAYERS} and "
             "hidden_scale <= 64"),
            (self.model.num_layers >= 1 and self.model.hidden_scale >= 1,
             "model.num_layers and hidden_scale must be >= 1"),
            (self.model.span_len >= 1, "model.span_len must be >= 1"),
            (self.model.positional_embedding in POSITIONAL_EMBEDDINGS,
             f"model.positional_embedding must be one of {', '.join(POSITIONAL_EMBEDDINGS)}"),
            (self.model.positional_embedding == "sin" or (self.model.dim // max(self.model.num_heads, 1)) % 2 == 0,
             "model.positional_embedding rope needs an even head dimension (model.dim / model.num_heads)"),
            (not self.model.tempo_rope or self.model.init_from or self.model.positional_embedding == "rope",
             "model.tempo_rope needs model.positional_embedding rope"),
            (not (self.model.tempo_rope and self.model.hybrid), "model.tempo_rope and model.hybrid do not go together"),
            (self.model.tempo_periods in ("rope", "beats"), "model.tempo_periods must be rope or beats"),
            (self.model.tempo_periods == "rope" or self.model.tempo_rope, "model.tempo_periods beats needs model.tempo_rope"),
            (not self.model.beat_phase or self.model.tempo_rope, "model.beat_phase needs model.tempo_rope"),
            (self.model.hybrid_ar_weight >= 0, "model.hybrid_ar_weight must be >= 0"),
            (0 <= self.model.hybrid_max_prefix < 1, "model.hybrid_max_prefix must be in [0, 1)"),
            (self.data.segment_duration <= 3600, "data.segment_duration must be at most 3600 seconds"),
            *loop_checks(self),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"training config: {message}")


def loop_checks(cfg) -> list[tuple[bool, str]]:
    """(condition, message) range checks of the sections every training config shares with the loop:
    ``optim``, ``ema``, ``valid``, ``samples``, ``checkpoint``, ``log``, ``precision``, ``distributed``."""
    return [
        (0 < cfg.optim.lr <= 1, "optim.lr must be in (0, 1]"),
        (0 < cfg.optim.eps <= 1, "optim.eps must be in (0, 1]"),
        (cfg.optim.weight_decay >= 0, "optim.weight_decay must be >= 0"),
        (cfg.optim.max_norm >= 0, "optim.max_norm must be >= 0 (0: no clipping)"),
        (len(cfg.optim.betas) == 2 and all(0 <= b < 1 for b in cfg.optim.betas),
         "optim.betas must be two values in [0, 1)"),
        (cfg.optim.grad_accum >= 1, "optim.grad_accum must be >= 1"),
        (cfg.optim.steps >= 1, "optim.steps must be >= 1"),
        (cfg.optim.max_minutes is None or cfg.optim.max_minutes > 0,
         "optim.max_minutes must be > 0 (or null: no time limit)"),
        (cfg.optim.warmup >= 0, "optim.warmup must be >= 0"),
        (cfg.optim.schedule in ("cosine", "inverse_sqrt", "constant"),
         "optim.schedule must be cosine, inverse_sqrt or constant"),
        (0 <= cfg.optim.lr_min_ratio <= 1, "optim.lr_min_ratio must be in [0, 1]"),
        (0 < cfg.ema.decay < 1 and cfg.ema.every >= 1, "ema.decay must be in (0, 1) and ema.every >= 1"),
        (cfg.valid.every >= 0 and (cfg.valid.batches is None or cfg.valid.batches >= 1),
         "valid.every must be >= 0 and valid.batches >= 1 (or null)"),
        (cfg.samples.every >= 0 and cfg.samples.num >= 1, "samples.every must be >= 0 and samples.num >= 1"),
        (cfg.checkpoint.every >= 1 and cfg.checkpoint.keep_last >= 1,
         "checkpoint.every and checkpoint.keep_last must be >= 1"),
        (cfg.log.every >= 1, "log.every must be >= 1"),
        (cfg.precision in ("auto", "fp32", "fp16", "bf16"), "precision must be auto, fp32, fp16 or bf16"),
        (cfg.distributed.backend in ("auto", "gloo", "nccl"), "distributed.backend must be auto, gloo or nccl"),
        (cfg.distributed.strategy in ("ddp", "fsdp"), "distributed.strategy must be ddp or fsdp"),
        (cfg.distributed.strategy == "fsdp" or not cfg.distributed.activation_checkpointing,
         "distributed.activation_checkpointing needs distributed.strategy fsdp"),
        (cfg.distributed.strategy == "ddp" or cfg.precision != "fp16",
         "precision fp16 is not supported with distributed.strategy fsdp (use bf16 or fp32)"),
    ]


# ----------------------------------------------------------------------------------- loading


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _coerce(value, hint, where: str):
    """``value`` checked against (and lightly converted to) the type ``hint``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(errors[0] if len(errors) == 1 else f"{where}: expected {_type_name(hint)}, got {value!r}")
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a mapping of {hint.__name__} options, got {value!r}")
        return from_dict(hint, value, where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint) or (typing.Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is typing.Any:
        return value
    if hint is float and (isinstance(value, (int, float)) or isinstance(value, str)) and not isinstance(value, bool):
        try:  # PyYAML reads 3e-4 (no dot) as a string; .inf and .nan are refused here, for every option
            return finite_float(value, where)
        except InputError as exc:
            if isinstance(value, str) and "must be a number" in str(exc):
                raise InputError(f"{where}: expected {_type_name(hint)}, got {value!r}") from None
            raise InputError(f"training config: {exc}") from None
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint in (int, str, bool) and isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"{where}: expected {_type_name(hint)}, got {value!r}")


def from_dict(cls, values: dict, where: str = ""):
    """Build dataclass ``cls`` from a (nested) dict; unknown keys and wrong types raise InputError."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        prefix = f"{where}." if where else ""
        raise InputError(f"training config: unknown option(s) {', '.join(prefix + u for u in unknown)} "
                         f"(known at this level: {', '.join(names)})")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InputError(f"training config {where or cls.__name__}: {exc}") from exc


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Set ``a.b.c=value`` entries (value parsed as YAML) into a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise InputError(f"override {item!r} is not of the form key=value (nested keys: a.b=c)")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text != "" else None
        except yaml.YAMLError as exc:
            raise InputError(f"override {item!r}: the value is not valid YAML ({exc})") from exc
        node = values
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise InputError(f"override {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return values


def read_config(cls, path: str | Path | None, overrides: list[str] | None = None):
    """A ``cls`` config dataclass from a YAML file (its defaults when ``path`` is None), with
    ``key=value`` overrides applied."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise InputError(f"cannot read config {path}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise InputError(f"config {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except yaml.YAMLError as exc:
            raise InputError(f"config {path} is not valid YAML: {exc}") from exc
        if not isinstance(values, dict):
            raise InputError(f"config {path} must be a YAML mapping of options")
    return from_dict(cls, apply_overrides(values, list(overrides or [])))


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML LM training config (or start from the defaults when ``path`` is None) and apply overrides."""
    return read_config(TrainConfig, path, overrides)
