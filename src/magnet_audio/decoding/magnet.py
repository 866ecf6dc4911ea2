"""MAGNeT's iterative decoding: codebook by codebook, predict every masked token, keep the
confident spans, re-mask the rest on a cosine schedule, with annealed CFG and temperature.

Exact mode (the default) gives the reference's tokens: per call, the text and null-condition
cross-attention keys/values are projected once, the restricted-context mask is built once, and
each step runs one batched conditional + null pass and the current codebook's head only.

Fast mode (opt-in, see :data:`FAST_PRESET` and docs/fast-inference.md) trades exactness for speed:
``kv_cache_refresh`` N > 1 recomputes, on steps between full passes (every N steps and at each
stage start), only the positions that are masked or whose token changed since the last pass,
reusing the other positions' self-attention keys/values from the pass that last computed them;
``cfg_skip_threshold`` drops the null-condition pass when the annealed CFG coefficient is within
it of 1; ``cfg_null_refresh`` N > 1 runs the null-condition pass only every N steps of a stage and
guides the steps in between with its cached logits (a stage's masked positions only shrink, so every
position still masked has them); ``int8``/``half``/``compile`` decode with a transformed copy of the LM (:mod:`..lm.variants`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from ..errors import InputError
from ..lm.magnet import MagnetLM
from ..lm.transformer import RowKVCache
from ..lm.variants import half_dtype, inference_variant
from .rescoring import Rescorer, combine_probs
from .beats import NOT_TIED, pooled_beat_logprobs
from .sampling import sample
from .schedules import cfg_coef, mask_rates, num_to_mask, temperature
from .spans import DONT_REMASK, chunk_scores, least_probable_spans

ProgressCallback = Callable[[int, int], None]


@dataclass
class GenerationParams:
    """Decoding options; the defaults are audiocraft's ``MAGNeT.set_generation_params`` defaults.

    use_sampling: sample (True) or take the argmax of the guided logits (False).
    top_k / top_p: nucleus sampling if top_p > 0, else top-k if top_k > 0, else plain sampling.
    temperature: initial softmax temperature, decayed linearly to 0 in each stage if anneal_temp.
    max_cfg_coef / min_cfg_coef: classifier-free guidance, annealed from max to min with the mask rate.
    decoding_steps: iterative steps per codebook stage.
    span_arrangement: ``nonoverlap`` (aligned chunks of span_len) or ``stride1`` (overlapping spans).
    span_scoring: chunk confidence from the ``max`` token probability or the ``prod`` of them.
    rescore_weight: with a rescorer (see :mod:`.rescoring`), each sampled token's probability is
        (1 - w) * MAGNeT's + w * the rescorer's before spans are scored; unused without one.
    beat_lock: seconds at the start of every beat of the tempo each prompt names that share their
        tokens (rounded to whole spans, at least one; :mod:`.beats`); 0 = off. Prompts without a
        tempo decode as usual.

    Fast-mode options (the defaults are exact):
    kv_cache_refresh: 1 = a full pass every step (exact); N > 1 = a full pass every N steps of a
        stage, in between only masked and changed positions (approximate self-attention cache).
    cfg_skip_threshold: skip the null-condition pass when |CFG coefficient - 1| <= this; 0 = never.
    cfg_null_refresh: 1 = a null-condition pass every guided step (exact); N > 1 = only at the first
        step of a stage and every N steps, the steps in between reuse its logits (stale unconditional
        logits in the CFG formula).
    int8: decode with int8 dynamically quantised Linear layers (CPU only).
    half: decode in float16 (CUDA/MPS) or bfloat16 (CPU).
    compile: ``torch.compile`` the feed-forward blocks (slow first call).
    """

    use_sampling: bool = True
    top_k: int = 0
    top_p: float = 0.9
    temperature: float = 3.0
    max_cfg_coef: float = 10.0
    min_cfg_coef: float = 1.0
    decoding_steps: list[int] = field(default_factory=lambda: [20, 10, 10, 10])
    span_arrangement: str = "nonoverlap"
    anneal_temp: bool = True
    span_scoring: str = "max"
    rescore_weight: float = 0.5
    beat_lock: float = 0.0
    kv_cache_refresh: int = 1
    cfg_skip_threshold: float = 0.0
    cfg_null_refresh: int = 1
    int8: bool = False
    half: bool = False
    compile: bool = False

    def validate(self, num_codebooks: int, card: int | None = None) -> "GenerationParams":
        """Raise :class:`InputError` on a wrong type, a non-finite or an out-of-range value (``card``:
        the vocabulary size, which bounds ``top_k``); return self with the integers normalised."""
        from .. import validation as v

        steps = self.decoding_steps
        if isinstance(steps, (str, bytes)) or not hasattr(steps, "__len__") or len(steps) != num_codebooks:
            raise InputError(f"decoding_steps must be {num_codebooks} positive integers, got {steps!r}")
        steps = [v.positive_int(s, "decoding_steps", 100_000) for s in steps]
        for name in ("use_sampling", "anneal_temp"):
            setattr(self, name, v.boolean(getattr(self, name), name))
        self.top_k = v.int_in_range(self.top_k, "top_k", 0, card)
        self.top_p = v.finite_float(self.top_p, "top_p", 0, 1)
        self.temperature = v.finite_float(self.temperature, "temperature", 0, 1e4)
        self.max_cfg_coef = v.finite_float(self.max_cfg_coef, "max_cfg_coef (CFG)", 0, 1e4)
        self.min_cfg_coef = v.finite_float(self.min_cfg_coef, "min_cfg_coef (CFG)", 0, 1e4)
        v.choice(self.span_arrangement, "span_arrangement", ("nonoverlap", "stride1"))
        v.choice(self.span_scoring, "span_scoring", ("max", "prod"))
        self.beat_lock = v.finite_float(self.beat_lock, "beat_lock (seconds)", 0, v.MAX_DURATION)
        self.rescore_weight = v.finite_float(self.rescore_weight, "rescore_weight", 0, 1)
        self.kv_cache_refresh = v.positive_int(self.kv_cache_refresh, "kv_cache_refresh", 100_000)
        self.cfg_null_refresh = v.positive_int(self.cfg_null_refresh, "cfg_null_refresh", 100_000)
        self.cfg_skip_threshold = v.finite_float(self.cfg_skip_threshold, "cfg_skip_threshold", 0, 1e4)
        for name in ("int8", "half", "compile"):
            setattr(self, name, v.boolean(getattr(self, name), name))
        if self.int8 and self.half:
            raise InputError("int8 and half are alternatives (int8 on CPU, half on GPU): choose one")
        self.decoding_steps = steps
        return self

    def to_dict(self) -> dict:
        return asdict(self)


# fast=True in ``set_generation_params`` / ``magnet generate --fast``; int8 applies on CPU and
# half on accelerators (see :func:`fast_options`)
FAST_PRESET = {"kv_cache_refresh": 5, "cfg_skip_threshold": 0.1, "cfg_null_refresh": 5, "int8": True, "half": True,
               "compile": False}
#: the options of :class:`GenerationParams` that fast mode sets (the preset's keys)
FAST_OPTIONS = tuple(FAST_PRESET)


def fast_options(device: torch.device) -> dict:
    """:data:`FAST_PRESET` for ``device``: int8 on CPU, half precision elsewhere."""
    cpu = device.type == "cpu"
    return {**FAST_PRESET, "int8": FAST_PRESET["int8"] and cpu, "half": FAST_PRESET["half"] and not cpu}


@torch.no_grad()
def generate_codes(lm: MagnetLM, memory: torch.Tensor | None, params: GenerationParams, max_len: int,
                   prompt: torch.Tensor | None = None, num_samples: int | None = None,
                   callback: ProgressCallback | None = None, rescorer: Rescorer | None = None,
                   tied: torch.Tensor | None = None) -> torch.Tensor:
    """Generate codes [B, K, T] (T = max_len, cut to a multiple of span_len for ``nonoverlap``).

    memory: cross-attention memory [2B, L, D], the B conditional rows then the B null rows (CFG),
        or None for no guidance.
    prompt: codes [B, K, P] kept fixed at the start (continuation), P < max_len.
    callback: called as callback(step, total_steps) after each step.
    rescorer: an external model's probabilities of the sampled tokens, mixed into the span scores
        with ``params.rescore_weight`` (see :mod:`.rescoring`); None for plain MAGNeT.
    tied: beat-locked decoding (:mod:`.beats`): offsets [B, max_len] from
        :func:`~.beats.beat_spans`; in each codebook, the frames at the same offset share one token,
        sampled before the codebook's steps and kept. Frames of the prompt stay the prompt's.
    """
    params.validate(lm.num_codebooks)
    device = next(lm.parameters()).device
    if params.int8 and device.type != "cpu":
        raise InputError(f"int8 decoding runs on CPU only (the model is on {device.type})")
    lm = inference_variant(lm, int8=params.int8, half=params.half, compile=params.compile)
    if params.half and memory is not None:
        memory = memory.to(half_dtype(device))
    if prompt is None:
        if num_samples is None:
            num_samples = memory.shape[0] // 2 if memory is not None else 1
        prompt = torch.zeros(num_samples, lm.num_codebooks, 0, dtype=torch.long, device=device)
    B, K, P = prompt.shape
    if P >= max_len:
        raise InputError(f"the prompt ({P} frames) must be shorter than the generation ({max_len} frames)")
    if memory is not None and memory.shape[0] != 2 * B:
        raise InputError(f"memory has {memory.shape[0]} rows, expected {2 * B} (conditional + null)")
    codes = torch.full((B, K, max_len), lm.mask_id, dtype=torch.long, device=device)
    codes[..., :P] = prompt
    if tied is not None:
        if tied.shape != (B, max_len):
            raise InputError(f"tied has shape {tuple(tied.shape)}, expected {(B, max_len)}")
        tied = tied.to(device).clone()
        tied[:, :P] = NOT_TIED
        if not (tied != NOT_TIED).any():
            tied = None
    model = GuidedLogits(lm, memory, B, params)
    total, done = sum(params.decoding_steps), 0
    for stage, n_steps in enumerate(params.decoding_steps):
        codes = _generate_stage(lm, codes, stage, n_steps, prompt, model, params, done, total, callback, rescorer,
                                tied)
        done += n_steps
    return codes


class GuidedLogits:
    """The CFG-guided logits of one decoding step of codebook ``stage``.

    Holds what is fixed for a generate call: each layer's cross-attention keys/values of the
    memory (conditional rows, then null rows), and in fast mode the self-attention
    :class:`RowKVCache` with the stage codebook's tokens at the last pass.
    """

    def __init__(self, lm: MagnetLM, memory: torch.Tensor | None, batch: int, params: GenerationParams):
        self.lm, self.batch = lm, batch
        self.cross_kv = lm.transformer.cross_kv(memory) if memory is not None else None
        self.cond_kv = None if self.cross_kv is None else [(k[:batch], v[:batch]) for k, v in self.cross_kv]
        self.refresh, self.skip = params.kv_cache_refresh, params.cfg_skip_threshold
        self.null_refresh = params.cfg_null_refresh
        self.cache = RowKVCache(len(lm.transformer.layers)) if self.refresh > 1 else None
        self.last_seq: torch.Tensor | None = None  # [B, T] stage codebook at the last pass
        self.null_stale = False  # the cache's null rows missed a pass (no null-condition pass)
        self.null_logits: torch.Tensor | None = None  # [B, T, card] of the last null pass (null_refresh > 1)
        self.null_stage = -1  # the stage null_logits belong to

    def __call__(self, codes: torch.Tensor, stage: int, step: int, coef: float
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """codes [B, K, T] -> (logits [B, R, card], rows [B, R] or None when R = T: all positions)."""
        B = self.batch
        guided = self.cross_kv is not None and not (self.skip > 0 and abs(coef - 1.0) <= self.skip)
        cached_null = (guided and self.null_refresh > 1 and step % self.null_refresh != 0
                       and self.null_stage == stage)
        null_pass = guided and not cached_null
        rows = self._rows(codes[:, stage], step, null_pass)
        inputs = torch.cat([codes, codes]) if null_pass else codes
        cross_kv = self.cross_kv if null_pass else self.cond_kv
        if self.cache is None:
            h = self.lm.hidden(inputs, stage, cross_kv=cross_kv)
        else:
            self.cache.rows = None if rows is None else rows.repeat(inputs.shape[0] // B, 1)
            h = self.lm.hidden(inputs, stage, cross_kv=cross_kv, cache=self.cache)
            self.last_seq = codes[:, stage].clone()
            self.null_stale = self.cross_kv is not None and not null_pass
        logits = self.lm.linears[stage](h)
        if null_pass:
            cond, uncond = logits.split(B)
            if self.null_refresh > 1:
                self._store_null(uncond, rows, stage)
        elif cached_null:
            cond = logits
            uncond = self.null_logits if rows is None else self.null_logits.gather(
                1, rows.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
        if guided:
            logits = uncond + (cond - uncond) * coef
        return logits, rows

    def _store_null(self, uncond: torch.Tensor, rows: torch.Tensor | None, stage: int) -> None:
        """Keep the null-condition logits [B, R, card] of ``rows`` (None: all T) for the next steps of
        ``stage``; positions outside ``rows`` are unmasked, so their logits are never read."""
        if rows is None:
            self.null_logits = uncond
        else:
            if self.null_stage != stage or self.null_logits is None:  # rows: the cache is on, last_seq set
                self.null_logits = uncond.new_zeros(uncond.shape[0], self.last_seq.shape[1], uncond.shape[-1])
            self.null_logits = self.null_logits.scatter(1, rows.unsqueeze(-1).expand_as(uncond), uncond)
        self.null_stage = stage

    def _rows(self, seq: torch.Tensor, step: int, null_pass: bool) -> torch.Tensor | None:
        """Positions [B, R] (ascending) for a partial pass over seq [B, T], or None for a full one:
        the masked positions and those whose token changed since the last pass."""
        if (self.cache is None or step % self.refresh == 0 or self.last_seq is None
                or (null_pass and self.null_stale)):
            return None
        need = (seq == self.lm.mask_id) | (seq != self.last_seq)
        count = int(need.sum(dim=1).max())
        if count == seq.shape[1]:
            return None
        # stable sort: each row's needed positions first, in order (padded with others if fewer)
        return torch.sort(need.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :count]


def _generate_stage(lm: MagnetLM, codes: torch.Tensor, stage: int, n_steps: int, prompt: torch.Tensor,
                    model: GuidedLogits, params: GenerationParams, done: int, total: int,
                    callback: ProgressCallback | None, rescorer: Rescorer | None = None,
                    tied: torch.Tensor | None = None) -> torch.Tensor:
    """Fill codebook ``stage`` of codes [B, K, T] in ``n_steps`` steps (after the beat spans of
    ``tied`` [B, T], if given, see :func:`generate_codes`)."""
    B, K, T = codes.shape
    P = prompt.shape[-1]
    L = lm.cfg.span_len
    mask_id = lm.mask_id
    chunked = L > 1 and params.span_arrangement == "nonoverlap"
    if chunked:
        T = T // L * L
        codes = codes[..., :T]
    keep = torch.zeros(B, T, dtype=torch.bool, device=codes.device)  # frames no step changes
    keep[:, :P] = True
    kept = torch.full((B, T), mask_id, dtype=torch.long, device=codes.device)
    kept[:, :P] = prompt[:, stage]
    if tied is not None:
        tied = tied[:, :T]  # codes[:, stage] is all masked beyond the prompt: the state of step 0
        kept = torch.where(tied != NOT_TIED, _beat_tokens(model, codes, stage, tied, params), kept)
        keep |= tied != NOT_TIED
    fixed = keep.reshape(B, T // L, L).all(dim=-1) if chunked else keep  # chunks (frames) the steps leave alone
    scores = torch.zeros(fixed.shape, device=codes.device).masked_fill(fixed, DONT_REMASK)
    n_gen = (~fixed).sum(dim=1).tolist()  # [B] chunks (or frames) to generate
    stage_seq = torch.full((B, T), mask_id, dtype=torch.long, device=codes.device)

    for step, rate in enumerate(mask_rates(n_steps)):
        num = [num_to_mask(rate, n) for n in n_gen]
        if L > 1 and params.span_arrangement == "stride1":
            remask = torch.stack([least_probable_spans(scores[b], num[b], L) for b in range(B)])
        else:  # each row's num[b] highest scores (topk's order: descending)
            top = scores.topk(max(num), dim=-1).indices
            ranks = torch.arange(max(num), device=codes.device)[None, :]
            take = ranks < torch.tensor(num, device=codes.device)[:, None]
            picked = torch.zeros_like(scores, dtype=torch.bool).scatter(1, top, take)
            remask = picked.repeat_interleave(L, dim=-1) if chunked else picked
        stage_seq[remask] = mask_id
        stage_seq = torch.where(keep, kept, stage_seq)
        codes[:, stage] = stage_seq

        logits, rows = model(codes, stage, step, cfg_coef(rate, params.max_cfg_coef, params.min_cfg_coef))
        t = temperature(params.temperature, step, n_steps, params.anneal_temp)
        probs = torch.softmax(logits.float() / max(t, 1e-2), dim=-1)  # [B, R, card]
        if params.use_sampling:
            sampled, score_probs = sample(probs, params.top_k, params.top_p)
        else:
            sampled, score_probs = logits.argmax(dim=-1, keepdim=True), probs
        token_probs = torch.gather(score_probs, -1, sampled)[..., 0]  # [B, R]
        if rows is not None:  # back to [B, T]: every masked position is in rows
            sampled = stage_seq.unsqueeze(-1).scatter(1, rows.unsqueeze(-1), sampled)
            token_probs = torch.ones_like(stage_seq, dtype=token_probs.dtype).scatter(1, rows, token_probs)

        was_masked = stage_seq == mask_id
        stage_seq = torch.where(was_masked, sampled[..., 0], stage_seq)
        codes[:, stage] = stage_seq
        if rescorer is not None:
            token_probs = combine_probs(token_probs, rescorer(codes, stage), params.rescore_weight)
        if chunked:
            scores = chunk_scores(token_probs, L, params.span_scoring).masked_fill(~picked, DONT_REMASK)
        else:
            scores = (-torch.log(token_probs)).masked_fill(~was_masked, DONT_REMASK)
        if callback is not None:
            callback(done + step + 1, total)
    return codes


def _beat_tokens(model: GuidedLogits, codes: torch.Tensor, stage: int, tied: torch.Tensor,
                 params: GenerationParams) -> torch.Tensor:
    """The tokens [B, T] of codebook ``stage`` at the beat spans (others: anything): one guided pass with
    the codebook masked (beyond the prompt), at the first step's guidance; per offset, the token of the
    highest mean log-probability over the beats (the most likely one everywhere, as the confident
    spans that MAGNeT's annealed steps keep; a sampled one made the key follow the prompt less)."""
    logits, _ = model(codes, stage, 0, params.max_cfg_coef)  # step 0: a full pass
    pooled = pooled_beat_logprobs(torch.log_softmax(logits.float(), dim=-1), tied, int(tied.max()) + 1)
    return torch.gather(pooled.argmax(dim=-1), 1, tied.clamp(min=0))  # [B, T]
