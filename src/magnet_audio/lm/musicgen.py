"""The autoregressive (MusicGen-style) language model: a causal transformer over the delay pattern.

Codes [B, K, T] are interleaved with the *delay* pattern (codebook k shifted right by delays[k]
steps, after one leading step of special tokens, see :mod:`magnet_audio.decoding.ar`), the K
embeddings of each step are summed, and a causal transformer predicts the K tokens of the next
step. Parameter names are audiocraft's ``LMModel`` names (``emb``, ``transformer.layers.N...``,
``out_norm``, ``linears``, ``condition_provider...``), so its MusicGen exports load strictly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    transformer_lm_section,
    xp_segment_duration,
)
from .transformer import KVCache, causal_mask, sin_embedding


@dataclass
class MusicGenLMConfig(LMConfig):
    """Architecture of an autoregressive LM and the facts generation needs.

    delays: the delay of each codebook in the interleaved sequence (MusicGen: [0, 1, 2, 3]).
    segment_duration: training segment length in seconds, the longest single-window generation.
    cfg_coef: the checkpoint's classifier-free guidance coefficient (``inference_coef``).
    """

    delays: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    segment_duration: float = 30.0
    cfg_coef: float = 3.0

    def __post_init__(self):
        super().__post_init__()
        self.delays = [int(d) for d in self.delays]
        if len(self.delays) != self.n_q:
            raise CheckpointError(f"{len(self.delays)} delays for {self.n_q} codebooks")
        if sorted(self.delays) != self.delays or any(d < 0 for d in self.delays):
            raise CheckpointError(f"codebook delays must be non-negative and sorted, got {self.delays}")

    @classmethod
    def from_xp_cfg(cls, cfg: dict, frame_rate: int = 50) -> "MusicGenLMConfig":
        """Read an audiocraft MusicGen ``xp.cfg`` (as a dict); refuse what this implementation lacks."""
        with reading_xp_cfg():
            lm = cfg["transformer_lm"]
            if cfg.get("lm_model") != "transformer_lm":
                hint = " (a MAGNeT checkpoint: load it with MAGNeT)" if cfg.get("lm_model") == \
                    "transformer_lm_magnet" else ""
                raise CheckpointError(f"not an autoregressive MusicGen LM (lm_model: {cfg.get('lm_model')!r}){hint}")
            conditioners = {k: v for k, v in (cfg.get("conditioners") or {}).items() if k != "args"}
            if "self_wav" in conditioners:
                kind = (conditioners["self_wav"] or {}).get("model", "self_wav")
                raise CheckpointError(
                    f"this checkpoint is conditioned on audio ('self_wav', model {kind!r}: melody/chroma or "
                    "style conditioning, e.g. facebook/musicgen-melody or musicgen-style), which is not supported; "
                    "use a text-only MusicGen (facebook/musicgen-small, -medium, -large)")
            positions = check_transformer_lm(lm, causal=True)
            pattern = cfg.get("codebooks_pattern") or {}
            if pattern.get("modeling") != "delay":
                raise CheckpointError(f"unsupported codebooks_pattern.modeling {pattern.get('modeling')!r} "
                                      "(expected 'delay', MusicGen's pattern)")
            delay = pattern.get("delay") or {}
            delays = delay.get("delays") or list(range(lm["n_q"]))
            if delay.get("flatten_first", 0) or delay.get("empty_initial", 0):
                raise CheckpointError("unsupported delay pattern: flatten_first and empty_initial must be 0")
            check_fuser(cfg)
            if set(conditioners) != {"description"}:
                raise CheckpointError(f"unsupported conditioners {sorted(conditioners)}: only 'description' (text)")
            cfg_section = cfg.get("classifier_free_guidance", {})
            return cls(dim=lm["dim"], num_heads=lm["num_heads"], num_layers=lm["num_layers"],
                       hidden_scale=lm.get("hidden_scale", 4), n_q=lm["n_q"], card=lm["card"], delays=list(delays),
                       segment_duration=float(cfg["dataset"]["segment_duration"]), frame_rate=frame_rate,
                       cfg_dropout=cfg_section.get("training_dropout", 0.3),
                       cfg_coef=cfg_section.get("inference_coef", 3.0),
                       conditioner=ConditionerConfig.from_xp_cfg(conditioners["description"]),
                       positional_embedding=positions)

    def to_xp_cfg(self) -> dict:
        """An ``xp.cfg`` (dict) laid out as audiocraft's MusicGen exports are (musicgen_lm.yaml +
        text2music.yaml), which audiocraft and :meth:`from_xp_cfg` read back."""
        return {
            "lm_model": "transformer_lm", "device": "cpu", "dtype": "float32",
            "transformer_lm": transformer_lm_section(self.dim, self.num_heads, self.num_layers, self.hidden_scale,
                                                     self.n_q, self.card, causal=True,
                                                     positional_embedding=self.positional_embedding),
            "codebooks_pattern": {
                "modeling": "delay",
                "delay": {"delays": list(self.delays), "flatten_first": 0, "empty_initial": 0},
                "unroll": {"flattening": list(range(self.n_q)), "delays": [0] * self.n_q},
                "music_lm": {"group_by": 2},
                "coarse_first": {"delays": [0] * (self.n_q - 1)}},
            "classifier_free_guidance": {"training_dropout": self.cfg_dropout, "inference_coef": self.cfg_coef},
            "attribute_dropout": {},
            "fuser": dict(FUSER),
            "conditioners": {"description": self.conditioner.to_xp_cfg()},
            "dataset": {"segment_duration": xp_segment_duration(self.segment_duration)},
        }


class MusicGenLM(CodesLM):
    """A causal LM over delay-interleaved codes; parameters named as audiocraft's ``LMModel``.

    ``modules_of``: run another LM's modules (e.g. a hybrid MAGNeT LM's, see
    :meth:`~magnet_audio.lm.magnet.MagnetLM.ar_view`) as this causal LM, sharing their parameters.
    """

    def __init__(self, cfg: MusicGenLMConfig, modules_of: CodesLM | None = None):
        super().__init__(cfg, modules_of)

    @property
    def special_token_id(self) -> int:
        """The token of empty pattern positions (and the row ``card`` of every embedding)."""
        return self.cfg.card

    @property
    def delays(self) -> list[int]:
        return list(self.cfg.delays)

    def new_cache(self, max_len: int) -> KVCache:
        """An empty self-attention cache for up to ``max_len`` sequence steps."""
        return KVCache(self.cfg.num_layers, max_len)

    def hidden(self, sequence: torch.Tensor, memory: torch.Tensor | None = None,
               cross_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
               cache: KVCache | None = None) -> torch.Tensor:
        """Interleaved sequence [B, K, S] -> normalised hidden states [B, S, D].

        Without ``cache`` the S steps are positions 0..S-1 under a causal mask. With it they follow
        the ``cache.length`` cached steps (positions and keys continue from there) and the cache grows.
        No memory means no condition (audiocraft then skips cross-attention, which equals attending
        to zeros: values are bias-free projections).
        """
        B, K, S = sequence.shape
        past = 0 if cache is None else cache.length
        x = self.embed(sequence)
        if memory is None and cross_kv is None:  # no condition: as cross-attending to zeros, it adds nothing
            memory = x.new_zeros(B, 1, self.cfg.dim)
        if self.cfg.sin_positions:
            x = x + sin_embedding(S, self.cfg.dim, offset=past, device=x.device, dtype=x.dtype)
        mask = None if S == 1 else causal_mask(S, past, device=x.device)  # one new step sees all the past
        x = self.transformer(x, memory=memory, cross_kv=cross_kv, attn_mask=mask, cache=cache)
        return self.out_norm(x)

    def forward(self, sequence: torch.Tensor, memory: torch.Tensor | None = None,
                cross_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        """sequence [B, K, S], memory [B, L, D] -> logits [B, K, S, card]; step s predicts step s + 1."""
        h = self.hidden(sequence, memory, cross_kv, cache)
        return torch.stack([lin(h) for lin in self.linears], dim=1)
