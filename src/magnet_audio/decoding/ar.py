"""Autoregressive (MusicGen) decoding: the cached sampling loop over the delay pattern
(:mod:`magnet_audio.lm.patterns`), and scoring.

Generation fills one step of the interleaved sequence per forward pass, all K codebooks at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch

from ..errors import InputError
from ..lm.musicgen import MusicGenLM
from ..lm.patterns import build_delay_pattern, delay_valid_mask, revert_delay_pattern
from .sampling import sample

ProgressCallback = Callable[[int, int], None]
UNKNOWN = -1  # codes not generated yet


@dataclass
class ARGenerationParams:
    """Sampling options; defaults are audiocraft's ``MusicGen.set_generation_params`` defaults.

    use_sampling: sample (True) or take the argmax of the guided logits (False).
    top_k / top_p: nucleus sampling if top_p > 0, else top-k if top_k > 0, else plain sampling.
    temperature: softmax temperature (0 means greedy).
    cfg_coef: classifier-free guidance, logits = uncond + (cond - uncond) * cfg_coef.
    """

    use_sampling: bool = True
    top_k: int = 250
    top_p: float = 0.0
    temperature: float = 1.0
    cfg_coef: float = 3.0

    def validate(self) -> "ARGenerationParams":
        """Raise :class:`InputError` on a wrong type, a non-finite or an out-of-range value; return self."""
        from .. import validation as v

        self.use_sampling = v.boolean(self.use_sampling, "use_sampling")
        self.top_k = v.int_in_range(self.top_k, "top_k", 0, v.MAX_CARD)
        self.top_p = v.finite_float(self.top_p, "top_p", 0, 1)
        self.temperature = v.finite_float(self.temperature, "temperature", 0, 1e4)
        self.cfg_coef = v.finite_float(self.cfg_coef, "cfg_coef", 0, 1e4)
        return self

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- sampling

def _guided(logits: torch.Tensor, batch: int, cfg: bool, coef: float) -> torch.Tensor:
    if not cfg:
        return logits
    cond, uncond = logits.split(batch)
    return uncond + (cond - uncond) * coef


def _next_tokens(logits: torch.Tensor, params: ARGenerationParams, card: int) -> torch.Tensor:
    """logits [B, K, card] -> tokens [B, K] (audiocraft's order: top-p, else top-k, else plain)."""
    if params.use_sampling and params.temperature > 0:
        probs = torch.softmax(logits.float() / params.temperature, dim=-1)
        ids, _ = sample(probs, min(params.top_k, card), params.top_p)
        return ids[..., 0]
    return logits.argmax(dim=-1)


def _start(prompt: torch.Tensor, lm: MusicGenLM, max_len: int, memory: torch.Tensor | None,
           num_samples: int | None) -> torch.Tensor:
    device = next(lm.parameters()).device
    if prompt is None:
        if num_samples is None:
            num_samples = memory.shape[0] // 2 if memory is not None else 1
        prompt = torch.zeros(num_samples, lm.num_codebooks, 0, dtype=torch.long, device=device)
    B, K, P = prompt.shape
    if K != lm.num_codebooks:
        raise InputError(f"the prompt has {K} codebooks, the model {lm.num_codebooks}")
    if P >= max_len:
        raise InputError(f"the prompt ({P} frames) must be shorter than the generation ({max_len} frames)")
    if memory is not None and memory.shape[0] != 2 * B:
        raise InputError(f"memory has {memory.shape[0]} rows, expected {2 * B} (conditional + null)")
    return prompt.to(device)


@torch.no_grad()
def generate_ar(lm: MusicGenLM, memory: torch.Tensor | None, params: ARGenerationParams, max_len: int,
                prompt: torch.Tensor | None = None, num_samples: int | None = None,
                callback: ProgressCallback | None = None) -> torch.Tensor:
    """Generate codes [B, K, max_len] one interleaved step at a time, with a KV cache.

    memory: cross-attention memory [2B, L, D], the B conditional rows then the B null rows (CFG),
        or None for no guidance.
    prompt: codes [B, K, P] kept as they are (continuation), P < max_len. The result starts with them.
    callback: called as callback(step, total_steps) after each step.
    """
    params.validate()
    prompt = _start(prompt, lm, max_len, memory, num_samples)
    B, K, P = prompt.shape
    delays, special = lm.delays, lm.special_token_id
    codes = torch.full((B, K, max_len), UNKNOWN, dtype=torch.long, device=prompt.device)
    codes[..., :P] = prompt
    seq = build_delay_pattern(codes, delays, special)
    valid = delay_valid_mask(max_len, delays, seq.device)
    S = seq.shape[-1]
    start = 1 + P + min(delays)  # the first step holding a code of time P
    cfg = memory is not None
    cross_kv = lm.transformer.cross_kv(memory) if cfg else None
    cache = lm.new_cache(S)
    prev = 0
    for offset in range(start, S):
        chunk = seq[..., prev:offset]  # all steps not yet in the cache (the whole prompt at first)
        h = lm.hidden(torch.cat([chunk, chunk]) if cfg else chunk, cross_kv=cross_kv, cache=cache)[:, -1]
        logits = torch.stack([lin(h) for lin in lm.linears], dim=1)  # [rows, K, card]
        tokens = _next_tokens(_guided(logits, B, cfg, params.cfg_coef), params, lm.cfg.card)
        tokens = torch.where(valid[:, offset], tokens, special)
        seq[..., offset] = torch.where(seq[..., offset] == UNKNOWN, tokens, seq[..., offset])
        prev = offset
        if callback is not None:
            callback(1 + offset - start, S - start)
    return revert_delay_pattern(seq, delays)


@torch.no_grad()
def generate_ar_reference(lm: MusicGenLM, memory: torch.Tensor | None, params: ARGenerationParams,
                          max_len: int, prompt: torch.Tensor | None = None,
                          num_samples: int | None = None) -> torch.Tensor:
    """The same generation computed the plain way, for tests: no cache; at every step the whole
    interleaved prefix is rebuilt from the codes so far and run through the LM from position 0."""
    params.validate()
    prompt = _start(prompt, lm, max_len, memory, num_samples)
    B, K, P = prompt.shape
    delays, special = lm.delays, lm.special_token_id
    codes = torch.full((B, K, max_len), UNKNOWN, dtype=torch.long, device=prompt.device)
    codes[..., :P] = prompt
    cfg = memory is not None
    for step in range(1 + P + min(delays), max_len + max(delays) + 1):
        prefix = build_delay_pattern(codes, delays, special)[..., :step]
        assert (prefix != UNKNOWN).all(), "the prefix must be complete"
        logits = lm(torch.cat([prefix, prefix]) if cfg else prefix, memory)[:, :, -1]
        tokens = _next_tokens(_guided(logits, B, cfg, params.cfg_coef), params, lm.cfg.card)
        for k, d in enumerate(delays):
            t = step - 1 - d
            if 0 <= t < max_len:
                codes[:, k, t] = torch.where(codes[:, k, t] == UNKNOWN, tokens[:, k], codes[:, k, t])
    return codes


# ---------------------------------------------------------------- scoring

@torch.no_grad()
def code_probabilities(lm: MusicGenLM, codes: torch.Tensor, memory: torch.Tensor | None = None,
                       cross_kv: list | None = None, cfg_coef: float = 1.0, temperature: float = 1.0,
                       codebooks: list[int] | None = None) -> torch.Tensor:
    """The LM's probability of each given code under teacher forcing: one forward pass.

    codes [B, K, T]; ids >= card (e.g. a MAGNeT mask token) are fed as the special token, and their
    probabilities are meaningless. memory/cross_kv: [B, ...] conditional rows, or [2B, ...]
    conditional then null rows to guide with ``cfg_coef``. Returns [B, len(codebooks), T]
    (all codebooks by default), p(code k at t | codes before it in the interleaved order).
    """
    B, K, T = codes.shape
    card = lm.cfg.card
    codebooks = list(range(K)) if codebooks is None else list(codebooks)
    if memory is not None:
        rows = memory.shape[0]
    elif cross_kv is not None:
        rows = cross_kv[0][0].shape[0]
    else:
        rows = B
    cfg = rows == 2 * B
    clean = torch.where((codes >= 0) & (codes < card), codes, lm.special_token_id)
    seq = build_delay_pattern(clean, lm.delays, lm.special_token_id)[..., :-1]  # the last step predicts nothing
    h = lm.hidden(torch.cat([seq, seq]) if cfg else seq, memory=memory, cross_kv=cross_kv)
    out = []
    for k in codebooks:
        d = lm.delays[k]
        logits = _guided(lm.linears[k](h[:, d:d + T]), B, cfg, cfg_coef)  # [B, T, card]
        probs = torch.softmax(logits.float() / max(temperature, 1e-2), dim=-1)
        out.append(torch.gather(probs, -1, clean[:, k, :, None].clamp(max=card - 1))[..., 0])
    return torch.stack(out, dim=1)
