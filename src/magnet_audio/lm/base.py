"""What the MAGNeT and MusicGen LMs share: config fields, the module skeleton with audiocraft's
parameter names, and the common parts of audiocraft's ``xp.cfg``.

Reading an ``xp.cfg`` checks every setting this implementation does not have and refuses it by
name; writing produces the layout audiocraft's own exports use, so audiocraft reads ours back.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..conditioning import ConditionerConfig, ConditionProvider, build_conditioner
from ..errors import CheckpointError
from .transformer import Transformer, beat_frequencies, rope_frequencies


POSITIONAL_EMBEDDINGS = ("sin", "rope", "sin_rope")
ROPE_BUFFER = "transformer.rope.frequencies"  # audiocraft's state-dict key; ours computes it


@dataclass
class LMConfig:
    """Architecture fields every codes LM has (subclasses add their own).

    positional_embedding: as audiocraft's ``transformer_lm.positional_embedding``: ``sin`` (sinusoids
        added to the input; every official checkpoint), ``rope`` (rotary embeddings of the
        self-attention queries and keys) or ``sin_rope`` (both).
    """

    dim: int = 1024
    num_heads: int = 16
    num_layers: int = 24
    hidden_scale: int = 4
    n_q: int = 4
    card: int = 2048
    segment_duration: float = 10.0
    frame_rate: int = 50
    cfg_dropout: float = 0.3
    conditioner: ConditionerConfig = field(default_factory=ConditionerConfig)
    positional_embedding: str = "sin"

    def __post_init__(self):
        from ..validation import lm_architecture
        lm_architecture(self)  # types and ranges: a config.json with dim "512", 1e9 or num_heads 0 is refused
        if self.positional_embedding not in POSITIONAL_EMBEDDINGS:
            raise ValueError(f"positional_embedding must be one of {', '.join(POSITIONAL_EMBEDDINGS)}, "
                             f"got {self.positional_embedding!r}")

    @property
    def sin_positions(self) -> bool:
        """Whether sinusoidal positions are added to the input embeddings."""
        return self.positional_embedding in ("sin", "sin_rope")

    @property
    def max_len(self) -> int:
        """Frames in one training segment (500 for 10 s at 50 Hz)."""
        return int(self.segment_duration * self.frame_rate)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        if not isinstance(d, dict) or not isinstance(d.get("conditioner", {}), dict):
            raise ValueError(f"an LM config must be a mapping with a 'conditioner' mapping, got {type(d).__name__}")
        d = dict(d)
        d["conditioner"] = ConditionerConfig(**d.get("conditioner", {}))
        return cls(**d)


ARCHITECTURE_FIELDS = ("dim", "num_heads", "num_layers", "hidden_scale", "n_q", "card", "positional_embedding")


class CodesLM(nn.Module):
    """K summed codebook embeddings (``card`` + 1 rows: the last is the mask/special token), a
    transformer with cross-attention to the text, ``out_norm`` and one head per codebook.

    MAGNeT and MusicGen LMs have exactly these modules, so one network can serve both roles:
    ``modules_of`` builds an LM around another LM's modules (the same parameter tensors, no copy),
    which must have the same architecture (:data:`ARCHITECTURE_FIELDS`).
    """

    def __init__(self, cfg: LMConfig, modules_of: "CodesLM | None" = None):
        super().__init__()
        self.cfg = copy.deepcopy(cfg)
        if modules_of is not None:
            self._share_modules(modules_of)
            return
        self.condition_provider = ConditionProvider(build_conditioner(cfg.conditioner, cfg.dim))
        self.emb = nn.ModuleList(nn.Embedding(cfg.card + 1, cfg.dim) for _ in range(cfg.n_q))
        self.transformer = Transformer(cfg.dim, cfg.num_heads, cfg.num_layers, cfg.hidden_scale, cross_attention=True,
                                       rope=cfg.positional_embedding != "sin",
                                       tempo_rope=getattr(cfg, "tempo_rope", False),  # a MAGNeT LM's field
                                       tempo_frequencies=tempo_frequencies(cfg))
        self.out_norm = nn.LayerNorm(cfg.dim, eps=1e-5)
        self.linears = nn.ModuleList(nn.Linear(cfg.dim, cfg.card, bias=False) for _ in range(cfg.n_q))

    def _share_modules(self, other: "CodesLM") -> None:
        """Use ``other``'s text conditioner, embeddings, transformer, norm and heads as this LM's."""
        differ = [f for f in ARCHITECTURE_FIELDS if getattr(self.cfg, f) != getattr(other.cfg, f)]
        if differ:
            raise ValueError(f"cannot share modules between LMs whose {', '.join(differ)} differ")
        self.condition_provider, self.emb, self.transformer = other.condition_provider, other.emb, other.transformer
        self.out_norm, self.linears = other.out_norm, other.linears

    @property
    def num_codebooks(self) -> int:
        return self.cfg.n_q

    def encode_text(self, texts: list[str | None]) -> torch.Tensor:
        """texts (None = null) -> cross-attention memory [B, L, D] (padded rows are zeros)."""
        embeds, _ = self.condition_provider.text.encode(texts)
        return embeds

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] -> summed embeddings [B, T, D]."""
        if codes.shape[1] != self.cfg.n_q:
            raise ValueError(f"expected {self.cfg.n_q} codebooks, got {codes.shape[1]}")
        return sum(self.emb[k](codes[:, k]) for k in range(self.cfg.n_q))


def tempo_frequencies(cfg) -> torch.Tensor | None:
    """The tempo channel pairs' speeds of an LM with ``tempo_rope`` and ``tempo_periods: beats``
    (:func:`~.transformer.beat_frequencies`), else None (rope's own)."""
    if getattr(cfg, "tempo_rope", False) and getattr(cfg, "tempo_periods", "rope") == "beats":
        return beat_frequencies(cfg.dim // cfg.num_heads, cfg.frame_rate)
    return None


def rope_buffer_keys(num_layers: int) -> list[str]:
    """The state-dict keys of audiocraft's rotary-embedding buffer: its transformer holds one
    ``RotaryEmbedding`` and every layer's self-attention holds the same module again, so it is saved
    ``1 + num_layers`` times."""
    return [ROPE_BUFFER] + [f"transformer.layers.{i}.self_attn.rope.frequencies" for i in range(num_layers)]


def from_audiocraft_state(state: dict[str, torch.Tensor], cfg: LMConfig) -> dict[str, torch.Tensor]:
    """An audiocraft LM state dict without the rotary-embedding buffers audiocraft stores and this
    implementation computes (:func:`rope_buffer_keys`; any of them may be absent). Each one present
    must hold the standard frequencies, else the checkpoint is refused. A ``sin`` model keeps such
    keys, so that strict loading refuses them."""
    if cfg.positional_embedding == "sin":
        return state
    expected = rope_frequencies(cfg.dim // cfg.num_heads)
    keys = [k for k in rope_buffer_keys(cfg.num_layers) if k in state]
    for key in keys:
        stored = state[key].float()
        if stored.shape != expected.shape or not torch.allclose(stored, expected, rtol=1e-3, atol=0):
            raise CheckpointError(f"{key} holds non-standard rotary frequencies (max_period 10000 expected)")
    return {k: v for k, v in state.items() if k not in keys}


def to_audiocraft_state(state: dict[str, torch.Tensor], cfg: LMConfig) -> dict[str, torch.Tensor]:
    """Our LM state dict as audiocraft's: with its rotary-embedding buffers (float32, every key of
    :func:`rope_buffer_keys`) for rope models, as audiocraft's ``load_state_dict(strict=True)`` wants."""
    if cfg.positional_embedding == "sin":
        return dict(state)
    frequencies = rope_frequencies(cfg.dim // cfg.num_heads)
    return {**state, **{key: frequencies.clone() for key in rope_buffer_keys(cfg.num_layers)}}


def xp_segment_duration(seconds: float) -> int | float:
    """``dataset.segment_duration`` as audiocraft's configs hold it: an int for whole seconds.
    (audiocraft's MAGNeT LM slices its attention masks with ``frame_rate * segment_duration``, so a
    float there fails with "slice indices must be integers"; see :func:`audiocraft_blockers`.)"""
    seconds = float(seconds)
    return int(seconds) if seconds.is_integer() else seconds


def audiocraft_blockers(cfg: LMConfig) -> list[str]:
    """Why audiocraft 1.3.0 cannot load an LM of this config (empty when it can)."""
    reasons = []
    if cfg.conditioner.model not in ("t5", "lut"):
        reasons.append(f"audiocraft has no {cfg.conditioner.model!r} text conditioner (it has t5 and lut)")
    if getattr(cfg, "tempo_rope", False):
        reasons.append("its tempo_rope positions are ours: audiocraft's rotary embeddings count frames only")
    if not float(cfg.segment_duration).is_integer():
        reasons.append(f"its segment_duration {cfg.segment_duration} s is not a whole number of seconds "
                       "(audiocraft's MAGNeT builds its attention masks for frame_rate x segment_duration "
                       "frames and needs an integer there)")
    return reasons


def audiocraft_caveats(cfg: LMConfig) -> list[str]:
    """What differs when audiocraft loads an LM of this config (it loads, but does not behave as here)."""
    if cfg.conditioner.model != "lut":
        return []
    return ["its lut text conditioner is ours: we hash lower-cased words (sha256 into rows 1..n_bins-1), "
            "audiocraft hashes spaCy lemmas without stop words (sha256 % n_bins), so in audiocraft a prompt "
            "picks other table rows and the model does not follow it as it does here"]


FUSER = {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1, "sum": [], "prepend": [],
         "cross": ["description"], "input_interpolate": []}


def check_transformer_lm(lm: dict, causal: bool) -> str:
    """Refuse ``transformer_lm`` settings other than the official models' (a pre-norm, bias-free,
    GELU transformer) and return its ``positional_embedding`` (sin, rope or sin_rope)."""
    expected = {"norm_first": True, "norm": "layer_norm", "activation": "gelu",
                "bias_ff": False, "bias_attn": False, "bias_proj": False, "causal": causal, "kv_repeat": 1,
                "qk_layer_norm": False, "layer_scale": None, "xpos": False, "past_context": None,
                "max_period": 10000, "positional_scale": 1.0}
    for key, value in expected.items():
        if lm.get(key, value) != value:
            raise CheckpointError(f"unsupported transformer_lm.{key}: {lm.get(key)!r} (expected {value!r})")
    positions = lm.get("positional_embedding", "sin")
    if positions not in POSITIONAL_EMBEDDINGS:
        raise CheckpointError(f"unsupported transformer_lm.positional_embedding: {positions!r} "
                              f"(expected one of {', '.join(POSITIONAL_EMBEDDINGS)})")
    return positions


def check_fuser(cfg: dict) -> None:
    """Only cross-attention to the text description is supported."""
    fuser = cfg.get("fuser") or {}
    if list(fuser.get("cross") or []) != ["description"] or fuser.get("sum") or fuser.get("prepend"):
        raise CheckpointError(f"unsupported fuser {fuser!r}: only cross-attention to 'description'")


@contextmanager
def reading_xp_cfg():
    """Around the reading of an ``xp.cfg``: a missing key or a value of the wrong kind becomes a
    :class:`CheckpointError` that says which."""
    try:
        yield
    except KeyError as exc:
        raise CheckpointError(f"the checkpoint's xp.cfg lacks {exc}") from exc
    except (TypeError, ValueError) as exc:  # e.g. a segment_duration that is no number
        raise CheckpointError(f"the checkpoint's xp.cfg holds an invalid value: {exc}") from exc


def transformer_lm_section(dim: int, num_heads: int, num_layers: int, hidden_scale: int, n_q: int, card: int,
                           causal: bool, positional_embedding: str = "sin") -> dict:
    """``transformer_lm`` as audiocraft writes it for these architectures."""
    return {
        "dim": dim, "num_heads": num_heads, "num_layers": num_layers, "hidden_scale": hidden_scale, "n_q": n_q,
        "card": card, "dropout": 0.0, "emb_lr": None, "activation": "gelu", "norm_first": True, "bias_ff": False,
        "bias_attn": False, "bias_proj": False, "past_context": None, "causal": causal, "custom": False,
        "memory_efficient": True, "attention_as_float32": False, "layer_scale": None,
        "positional_embedding": positional_embedding, "xpos": False, "checkpointing": "none",
        "weight_init": "gaussian", "depthwise_init": "current",
        "zero_bias_init": True, "norm": "layer_norm", "cross_attention": False, "qk_layer_norm": False,
        "qk_layer_norm_cross": False, "attention_dropout": None, "kv_repeat": 1, "two_step_cfg": False}
