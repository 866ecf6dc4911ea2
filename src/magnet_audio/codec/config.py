"""EnCodec's hyperparameters (:class:`EncodecConfig`) and the names they may take: activations,
padding modes and weight normalisations."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from torch import nn

from ..errors import InputError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "ELU": nn.ELU, "LeakyReLU": nn.LeakyReLU, "ReLU": nn.ReLU, "GELU": nn.GELU, "SiLU": nn.SiLU, "Tanh": nn.Tanh,
}
PAD_MODES = ("constant", "reflect", "replicate")


def make_activation(name: str, params: dict | None) -> nn.Module:
    """An activation from :data:`ACTIVATIONS` built with ``params`` (e.g. ``{'alpha': 1.0}`` for ELU)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported activation {name!r}; supported: {sorted(ACTIVATIONS)}")
    try:
        return ACTIVATIONS[name](**(params or {}))
    except TypeError as exc:
        raise ValueError(f"bad parameters {params!r} for activation {name}: {exc}") from exc


NORMS = ("weight_norm", "none")


@dataclass
class EncodecConfig:
    """Hyperparameters of an EnCodec model, named as in audiocraft's ``seanet`` / ``rvq`` configs.

    Defaults are audiocraft's constructor defaults (used for keys absent from an ``xp.cfg``), not
    MAGNeT's codec: that one is ``sample_rate=32000, dimension=128, n_filters=64,
    n_residual_layers=1, ratios=[8, 5, 4, 4], norm='weight_norm', lstm=2, n_q=4, bins=2048``.
    ``decay``, ``kmeans_init``, ``kmeans_iters``, ``threshold_ema_dead_code`` and ``q_dropout`` only
    matter for training; they are kept so exports carry them.
    """

    sample_rate: int
    channels: int = 1
    renormalize: bool = False
    # SEANet
    dimension: int = 128
    n_filters: int = 32
    n_residual_layers: int = 3
    ratios: list[int] = field(default_factory=lambda: [8, 5, 4, 2])
    activation: str = "ELU"
    activation_params: dict = field(default_factory=lambda: {"alpha": 1.0})
    final_activation: str | None = None
    final_activation_params: dict | None = None
    norm: str = "none"
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    causal: bool = False
    pad_mode: str = "reflect"
    true_skip: bool = True
    compress: int = 2
    lstm: int = 0
    disable_norm_outer_blocks: int = 0
    trim_right_ratio: float = 1.0
    # RVQ
    n_q: int = 8
    bins: int = 1024
    q_dropout: bool = False
    decay: float = 0.99
    kmeans_init: bool = True
    kmeans_iters: int = 10
    threshold_ema_dead_code: int = 2

    def __post_init__(self):
        if not isinstance(self.ratios, (list, tuple)) or not self.ratios or not all(
                isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in self.ratios):
            raise InputError(f"codec config: ratios must be a non-empty list of positive integers, got {self.ratios!r}")
        self.ratios = list(self.ratios)
        for name in ("activation_params", "final_activation_params"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, dict):
                raise InputError(f"codec config: {name} must be a mapping, got {value!r}")
        self.activation_params = dict(self.activation_params or {})
        positive = ("sample_rate", "channels", "dimension", "n_filters", "kernel_size", "last_kernel_size",
                    "residual_kernel_size", "dilation_base", "compress", "n_q", "bins")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"codec config: {name} must be a positive integer, got {value!r}")
        for name in ("n_residual_layers", "lstm", "disable_norm_outer_blocks"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InputError(f"codec config: {name} must be a non-negative integer, got {value!r}")
        if self.norm not in NORMS:
            raise InputError(f"codec config: norm {self.norm!r} is not supported (supported: {', '.join(NORMS)})")
        if self.pad_mode not in PAD_MODES:
            raise InputError(f"codec config: pad_mode {self.pad_mode!r} is not supported "
                             f"(supported: {', '.join(PAD_MODES)})")
        if self.disable_norm_outer_blocks > len(self.ratios) + 2:
            raise InputError(f"codec config: disable_norm_outer_blocks {self.disable_norm_outer_blocks} exceeds "
                             f"the {len(self.ratios) + 2} blocks")
        if self.causal and self.renormalize:
            raise InputError("codec config: a causal codec cannot renormalize its input")
        if not self.causal and self.trim_right_ratio != 1.0:
            raise InputError("codec config: trim_right_ratio != 1.0 only applies to causal codecs")
        if not 0.0 <= self.trim_right_ratio <= 1.0:
            raise InputError(f"codec config: trim_right_ratio must be in [0, 1], got {self.trim_right_ratio}")
        try:
            make_activation(self.activation, self.activation_params)
            if self.final_activation is not None:
                make_activation(self.final_activation, self.final_activation_params)
        except ValueError as exc:
            raise InputError(f"codec config: {exc}") from exc

    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)

    def to_dict(self) -> dict:
        """Plain (YAML/JSON-safe) dict; :meth:`from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> EncodecConfig:
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InputError(f"codec config: unknown keys {unknown}")
        return cls(**values)
