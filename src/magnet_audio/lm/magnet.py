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

import math

import torch
from torch import nn

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
    beat_phase: with ``tempo_rope``, each frame is also told where it falls in the beat and bar
        (:func:`beat_phase_features` through a linear map added to the input embeddings), given
        the beat of frame 0 with the tempo: in training the crop's offset in its file (whose first
        beat is at 0 s), in generation from nothing 0 (the clip starts on a downbeat), unknown
        (no features) where audio is continued or edited. Ours; audiocraft has no such model.
    """

    subcodes_context: int = 5
    span_len: int = 3
    hybrid: bool = False
    tempo_rope: bool = False
    tempo_periods: str = "rope"
    beat_phase: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.tempo_periods not in ("rope", "beats"):
            raise ValueError(f"tempo_periods must be rope or beats, got {self.tempo_periods!r}")
        if self.tempo_periods != "rope" and not self.tempo_rope:
            raise ValueError("tempo_periods beats needs tempo_rope")
        if self.tempo_rope and self.positional_embedding != "rope":
            raise ValueError(f"tempo_rope needs positional_embedding rope, got {self.positional_embedding!r}")
        if self.beat_phase and not self.tempo_rope:
            raise ValueError("beat_phase needs tempo_rope (the phase is counted at the tempo given with the codes)")
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


#: the periods (in beats) whose phase a ``beat_phase`` LM is told at every frame: half a beat, a
#: beat, and bars of 2, 3 and 4 beats
PHASE_PERIODS = (0.5, 1.0, 2.0, 3.0, 4.0)


def split_tempo(tempo: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """tempo [B] (bpm) or [B, 2] (bpm, the beat at frame 0) -> (bpm [B], beat at frame 0 [B] or None)."""
    if tempo is None or tempo.dim() == 1:
        return tempo, None
    if tempo.dim() != 2 or tempo.shape[1] != 2:
        raise ValueError(f"tempo must be bpm [B] or (bpm, beat at frame 0) [B, 2], got shape {tuple(tempo.shape)}")
    return tempo[:, 0], tempo[:, 1]


def tempo_from_frame(tempo: torch.Tensor | None, frame: int, frame_rate: float) -> torch.Tensor | None:
    """The tempo of a window starting ``frame`` frames into the codes ``tempo`` describes: a [B, 2]
    tempo's beat at frame 0 moves on by ``frame`` frames; bpm [B] (or None) is returned as it is."""
    bpm, beat0 = split_tempo(tempo)
    if beat0 is None:
        return tempo
    return torch.stack([bpm, beat0 + frame * bpm / (60.0 * frame_rate)], dim=1)


def beat_phase_features(bpm: torch.Tensor, beat0: torch.Tensor, length: int, frame_rate: float) -> torch.Tensor:
    """bpm [B], the beat at frame 0 [B] (NaN: unknown) -> [B, T, 2 * len(PHASE_PERIODS)]: cos and
    sin of each frame's phase in every period of :data:`PHASE_PERIODS`; zeros in rows whose beat
    (or bpm) is unknown."""
    beats = beat0[:, None].double() + torch.arange(length, device=bpm.device, dtype=torch.float64)[None] * (
        bpm[:, None].double() / (60.0 * frame_rate))  # [B, T]
    periods = torch.tensor(PHASE_PERIODS, device=bpm.device, dtype=torch.float64)
    angles = 2 * math.pi * torch.remainder(beats[..., None], periods) / periods  # [B, T, P]
    known = torch.isfinite(beat0) & torch.isfinite(bpm) & (bpm > 0)
    feats = torch.cat([angles.cos(), angles.sin()], dim=-1).float()
    return torch.where(known[:, None, None], feats, torch.zeros_like(feats))


class MagnetLM(CodesLM):
    """Parameters are named as in audiocraft's ``MagnetLMModel`` so its state dicts load strictly
    (a ``beat_phase`` LM adds ``beat_phase.weight``, which audiocraft's has not)."""

    def __init__(self, cfg: MagnetLMConfig):
        super().__init__(cfg)
        self._masks: dict[tuple[int, str], torch.Tensor] = {}
        if cfg.beat_phase:
            self._add_beat_phase()

    def _add_beat_phase(self) -> None:
        """The phase features' map to the input, zero at first (an LM starts as it was without it)."""
        weight = next(self.emb.parameters())
        self.beat_phase = nn.Linear(2 * len(PHASE_PERIODS), self.cfg.dim, bias=False, device=weight.device,
                                    dtype=weight.dtype)
        nn.init.zeros_(self.beat_phase.weight)

    def use_beat_phase(self) -> None:
        """Tell a ``tempo_rope`` LM where each frame falls in the beat (``beat_phase``), as
        fine-tuning into it does: a new zero map, so its outputs are unchanged until it trains."""
        if self.cfg.beat_phase:
            return
        self.cfg = dataclasses.replace(self.cfg, beat_phase=True)  # validated (needs tempo_rope) before any change
        self._add_beat_phase()

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
            by other LMs. [B, 2]: (bpm, the beat at frame 0, NaN where unknown) for a ``beat_phase``
            LM (others read the bpm only).
        """
        T = codes.shape[-1]
        tempo, beat0 = split_tempo(tempo)
        phase = None
        if self.cfg.beat_phase and beat0 is not None:
            feats = beat_phase_features(tempo.to(codes.device), beat0.to(codes.device), T, self.cfg.frame_rate)
            phase = self.beat_phase(feats.to(self.beat_phase.weight.dtype))  # [B, T, D]
        mask = self.attn_mask(stage, T, codes.device)
        rows = None if cache is None else cache.rows
        if rows is None:
            x = self.embed(codes)
            if self.cfg.sin_positions:
                x = x + sin_embedding(T, self.cfg.dim, device=x.device, dtype=x.dtype)
            if phase is not None:
                x = x + phase.to(x.dtype)
        else:
            x = self.embed(codes.gather(2, rows.unsqueeze(1).expand(-1, codes.shape[1], -1)))
            if self.cfg.sin_positions:
                x = x + sin_embedding(T, self.cfg.dim, device=x.device, dtype=x.dtype)[rows]
            if phase is not None:
                x = x + phase.gather(1, rows.unsqueeze(-1).expand(-1, -1, phase.shape[-1])).to(x.dtype)
            mask = None if mask is None else mask[rows].unsqueeze(1)  # [B, 1, R, T]
        x = self.transformer(x, memory=memory, cross_kv=cross_kv, attn_mask=mask, cache=cache, tempo=tempo)
        return self.out_norm(x)

    def forward(self, codes: torch.Tensor, memory: torch.Tensor | None, stage: int = -1,
                tempo: torch.Tensor | None = None) -> torch.Tensor:
        """codes [B, K, T], memory [B, L, D] (, tempo [B] bpm or [B, 2]: see :meth:`hidden`) -> logits
        [B, K, T, card] of every head."""
        h = self.hidden(codes, stage, memory, tempo=tempo)
        return torch.stack([lin(h) for lin in self.linears], dim=1)
