"""The MAGNeT language model: a bidirectional transformer over summed codebook embeddings.

Input codes [B, K, T] (id ``card`` is the mask token) -> logits [B, K, T, card]. Self-attention is
full for stage (codebook) 0 and restricted to |t_q - t_k| <= ``subcodes_context`` for stages > 0.

A MAGNeT LM has exactly a MusicGen LM's parameters, so :meth:`MagnetLM.ar_view` runs the same
weights as a causal LM over MusicGen's delay pattern: the autoregressive half of the paper's
jointly trained Hybrid-MAGNeT (``hybrid`` in the config marks a model trained for both roles).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

import torch

from ..conditioning import ConditionerConfig
from ..errors import CheckpointError
from .base import (
    FUSER,
    CodesLM,
    LMConfig,
    check_fuser,
    check_transformer_lm,
    reading_xp_cfg,
    tempo_frequencies,
    transformer_lm_section,
    xp_segment_duration,
)
from .musicgen import MusicGenLM, MusicGenLMConfig
from .transformer import RowKVCache, band_mask, sin_embedding


@dataclass
class MagnetLMConfig(LMConfig):
    """Architecture and the few training facts generation needs (segment length, span length).

    hybrid: the model was trained jointly with the autoregressive objective (Hybrid-MAGNeT), so its
        :meth:`MagnetLM.ar_view` can generate the prefix that MAGNeT decoding completes.
    tempo_rope: tempo-relative positions (ours; :mod:`.transformer`): with ``rope`` positions, half
        of the rotary channel pairs count beats at a tempo given with the codes (the file's bpm in
        training, the prompt's in generation). No parameters; audiocraft has no such model.
    tempo_periods: with ``tempo_rope``, what those pairs turn with: ``rope`` (rope's geometric
        frequencies, plain rope at 120 bpm) or ``beats`` (once every 1/4, 3/8, 1/2, ... beats:
        :func:`~.transformer.beat_frequencies`).
    """

    subcodes_context: int = 5
    span_len: int = 3
    hybrid: bool = False
    tempo_rope: bool = False
    tempo_periods: str = "rope"

    def __post_init__(self):
        super().__post_init__()
        if self.tempo_periods not in ("rope", "beats"):
            raise ValueError(f"tempo_periods must be rope or beats, got {self.tempo_periods!r}")
        if self.tempo_periods != "rope" and not self.tempo_rope:
            raise ValueError("tempo_periods beats needs tempo_rope")
        if self.tempo_rope and self.positional_embedding != "rope":
            raise ValueError(f"tempo_rope needs positional_embedding rope, got {self.positional_embedding!r}")
        if self.tempo_rope and self.hybrid:
            raise ValueError("tempo_rope is not available for hybrid LMs (their autoregressive view has no tempo)")

    @classmethod
    def from_xp_cfg(cls, cfg: dict, frame_rate: int = 50) -> "MagnetLMConfig":
        """Read an audiocraft ``xp.cfg`` (as a dict); refuse settings this implementation lacks."""
        with reading_xp_cfg():
            lm = cfg["transformer_lm"]
            if cfg.get("lm_model") != "transformer_lm_magnet":
                raise CheckpointError(f"not a MAGNeT LM (lm_model: {cfg.get('lm_model')!r})")
            positions = check_transformer_lm(lm, causal=False)
            if cfg.get("codebooks_pattern", {}).get("modeling", "parallel") != "parallel":
                raise CheckpointError("unsupported codebooks_pattern (MAGNeT uses 'parallel')")
            check_fuser(cfg)
            conditioner = ConditionerConfig.from_xp_cfg(cfg["conditioners"]["description"])
            return cls(dim=lm["dim"], num_heads=lm["num_heads"], num_layers=lm["num_layers"],
                       hidden_scale=lm.get("hidden_scale", 4), n_q=lm["n_q"], card=lm["card"],
                       subcodes_context=lm.get("subcodes_context", 5),
                       span_len=cfg.get("masking", {}).get("span_len", 3),
                       segment_duration=float(cfg["dataset"]["segment_duration"]), frame_rate=frame_rate,
                       cfg_dropout=cfg.get("classifier_free_guidance", {}).get("training_dropout", 0.3),
                       conditioner=conditioner, hybrid=bool((cfg.get("magnet_audio") or {}).get("hybrid", False)),
                       positional_embedding=positions)

    def to_xp_cfg(self) -> dict:
        """An audiocraft-style ``xp.cfg`` (dict) that audiocraft and :meth:`from_xp_cfg` read back."""
        lm = transformer_lm_section(self.dim, self.num_heads, self.num_layers, self.hidden_scale, self.n_q,
                                    self.card, causal=False, positional_embedding=self.positional_embedding)
        # audiocraft's loader fills these three in from dataset/masking/the codec
        lm.update(subcodes_context=self.subcodes_context, compression_model_framerate=0, segment_duration=0,
                  span_len=-1)
        # our own section, only for hybrid models (audiocraft ignores it and reads a plain MAGNeT)
        extra = {"magnet_audio": {"hybrid": True}} if self.hybrid else {}
        return {
            "lm_model": "transformer_lm_magnet", "device": "cpu", "dtype": "float32", "transformer_lm": lm,
            "codebooks_pattern": {"modeling": "parallel", "parallel": {"empty_initial": -1}},
            "classifier_free_guidance": {"training_dropout": self.cfg_dropout, "inference_coef": 3.0},
            "attribute_dropout": {},
            "fuser": dict(FUSER),
            "conditioners": {"description": self.conditioner.to_xp_cfg()},
            "dataset": {"segment_duration": xp_segment_duration(self.segment_duration)},
            "masking": {"span_len": self.span_len},
            **extra,
        }


class MagnetLM(CodesLM):
    """Parameters are named as in audiocraft's ``MagnetLMModel`` so its state dicts load strictly."""

    def __init__(self, cfg: MagnetLMConfig):
        super().__init__(cfg)
        self._masks: dict[tuple[int, str], torch.Tensor] = {}

    def use_tempo_positions(self, periods: str = "rope") -> None:
        """Make a ``rope`` LM's positions tempo-relative (``tempo_rope`` with ``tempo_periods``), as
        fine-tuning into them does: no weights change."""
        if self.cfg.positional_embedding != "rope":
            raise ValueError(f"tempo_rope needs a rope LM, this one has {self.cfg.positional_embedding} positions")
        self.cfg = dataclasses.replace(self.cfg, tempo_rope=True, tempo_periods=periods)  # validated before any change
        self.transformer.tempo_rope = True
        self.transformer.tempo_frequencies = tempo_frequencies(self.cfg)

    @property
    def mask_id(self) -> int:
        return self.cfg.card

    def ar_view(self) -> MusicGenLM:
        """This network as a causal MusicGen LM over the delay pattern [0, 1, ..., K-1]: a
        :class:`MusicGenLM` whose modules are this LM's (the same parameters, no copy; moving or
        training either changes both). It differs from MAGNeT's use of the weights only by the
        causal mask and the interleaved input: the embeddings' extra row ``card`` (MAGNeT's mask
        token) is the pattern's special token, positions are the same. Cheap to build.
        """
        common = {f.name: getattr(self.cfg, f.name) for f in fields(LMConfig)}
        view = MusicGenLM(MusicGenLMConfig(**common, delays=list(range(self.cfg.n_q))), modules_of=self)
        view.training = self.training  # the wrapper's own flag; the shared modules keep theirs
        return view

    def attn_mask(self, stage: int, length: int, device: torch.device) -> torch.Tensor | None:
        """None (full attention) for stage 0 or subcodes_context -1; else the band mask [T, T]."""
        if stage <= 0 or self.cfg.subcodes_context < 0:
            return None
        key = (length, str(device))
        if key not in self._masks:
            self._masks[key] = band_mask(length, self.cfg.subcodes_context, device)
        return self._masks[key]

    def hidden(self, codes: torch.Tensor, stage: int, memory: torch.Tensor | None = None,
               cross_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
               cache: RowKVCache | None = None, tempo: torch.Tensor | None = None) -> torch.Tensor:
        """codes [B, K, T] -> normalised hidden states [B, T, D] for decoding ``stage``.

        With a ``cache`` whose ``rows`` [B, R] are set, only those positions are computed (their
        queries attend over all T positions' cached keys/values): returns [B, R, D].
        tempo: bpm [B] (NaN: none) for a ``tempo_rope`` LM; None is 120 bpm (plain rope). Ignored
            by other LMs.
        """
        T = codes.shape[-1]
        mask = self.attn_mask(stage, T, codes.device)
        rows = None if cache is None else cache.rows
        if rows is None:
            x = self.embed(codes)
            if self.cfg.sin_positions:
                x = x + sin_embedding(T, self.cfg.dim, device=x.device, dtype=x.dtype)
        else:
            x = self.embed(codes.gather(2, rows.unsqueeze(1).expand(-1, codes.shape[1], -1)))
            if self.cfg.sin_positions:
                x = x + sin_embedding(T, self.cfg.dim, device=x.device, dtype=x.dtype)[rows]
            mask = None if mask is None else mask[rows].unsqueeze(1)  # [B, 1, R, T]
        x = self.transformer(x, memory=memory, cross_kv=cross_kv, attn_mask=mask, cache=cache, tempo=tempo)
        return self.out_norm(x)

    def forward(self, codes: torch.Tensor, memory: torch.Tensor | None, stage: int = -1,
                tempo: torch.Tensor | None = None) -> torch.Tensor:
        """codes [B, K, T], memory [B, L, D] (, tempo [B] bpm) -> logits [B, K, T, card] of every head."""
        h = self.hidden(codes, stage, memory, tempo=tempo)
        return torch.stack([lin(h) for lin in self.linears], dim=1)
