"""MAGNeT's iterative decoding (Ziv et al., 2024), as audiocraft's ``MagnetLMModel`` decodes.

Codebooks are decoded one after the other (a *stage* each). A stage starts with every token of
its codebook masked, except the frozen ones (a prompt), and runs ``n`` steps; at step i of n, with
the mask rate p_i = cos(pi/2 * i/(n-1)):

1. re-masking schedule: the ``max(int(p_i * N), 1)`` least confident of the N spans to generate
   (all of them at step 0) are chosen (``stride1``: overlapping spans covering about that many of
   the N frames);
2. masking: their tokens are masked;
3. guided logits: one pass of the LM gives the logits of the codebook, guided by the text with
   the coefficient annealed from ``max_cfg_coef`` to ``min_cfg_coef`` as p_i falls;
4. sampling: every masked token is sampled at a temperature annealed to 0 over the stage;
5. span scoring: each span just sampled gets a confidence from its tokens' probabilities,
   which decides what step i+1 re-masks.

Spans are chunks of ``span_len`` frames on a fixed grid (``nonoverlap``) or any ``span_len``
frames (``stride1``). The guided logits come from a :class:`~.guidance.Guidance`: exact, or fast
mode's approximations (:mod:`.guidance`). Beat lock and rescoring are hooks of this loop: beat lock
freezes the tokens it chooses before a stage's steps, a rescorer mixes its probabilities into the
span scores. Model transforms (int8, half precision, compile) are the caller's: pass the
transformed LM (see ``MAGNeT.set_generation_params``).
"""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import InputError
from ..lm.magnet import MagnetLM
from .beats import NOT_TIED, pooled_beat_logprobs
from .guidance import Guidance, make_guidance
from .params import FastOptions, GenerationParams, default_decoding_steps
from .rescoring import Rescorer, combine_probs
from .sampling import sample
from .schedules import guidance_coef, mask_rates, num_to_mask, temperature
from .spans import DONT_REMASK, chunk_scores, least_probable_spans, top_scores

__all__ = ["FastOptions", "GenerationParams", "default_decoding_steps", "generate_codes"]

ProgressCallback = Callable[[int, int], None]
#: a rescoring hook: (codes [B, K, T], stage, token probabilities [B, T]) -> new probabilities [B, T]
Rescore = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]
#: a hook before a stage: (codes [B, K, T], stage) -> positions [B, T] (bool) to freeze in its steps
StageHook = Callable[[torch.Tensor, int], torch.Tensor]


@torch.no_grad()
def generate_codes(lm: MagnetLM, memory: torch.Tensor | None, params: GenerationParams, max_len: int,
                   prompt: torch.Tensor | None = None, num_samples: int | None = None,
                   callback: ProgressCallback | None = None, rescorer: Rescorer | None = None,
                   tied: torch.Tensor | None = None) -> torch.Tensor:
    """Generate codes [B, K, T] (T = max_len, cut to a multiple of span_len for ``nonoverlap``).

    lm: the LM decoding runs (already transformed if ``params.fast`` asks for int8/half/compile).
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
    if prompt is None:
        if num_samples is None:
            num_samples = memory.shape[0] // 2 if memory is not None else 1
        prompt = torch.zeros(num_samples, lm.num_codebooks, 0, dtype=torch.long, device=device)
    B, K, P = prompt.shape
    if P >= max_len:
        raise InputError(f"the prompt ({P} frames) must be shorter than the generation ({max_len} frames)")
    if memory is not None and memory.shape[0] != 2 * B:
        raise InputError(f"memory has {memory.shape[0]} rows, expected {2 * B} (conditional + null)")
    if tied is not None and tied.shape != (B, max_len):
        raise InputError(f"tied has shape {tuple(tied.shape)}, expected {(B, max_len)}")
    codes = torch.full((B, K, max_len), lm.mask_id, dtype=torch.long, device=device)
    codes[..., :P] = prompt
    frozen = torch.zeros(B, K, max_len, dtype=torch.bool, device=device)
    frozen[..., :P] = True
    guidance = make_guidance(lm, memory, B, params.fast)
    before_stage = None
    if tied is not None:
        tied = tied.to(device).masked_fill(frozen[:, 0], NOT_TIED)
        if (tied != NOT_TIED).any():
            before_stage = _beat_lock(guidance, tied, params.max_cfg_coef)
    rescore = None if rescorer is None else _rescoring(rescorer, params.rescore_weight)
    return decode(lm, codes, frozen, guidance, params, callback, before_stage, rescore)


@torch.no_grad()
def decode(lm: MagnetLM, codes: torch.Tensor, frozen: torch.Tensor, guidance: Guidance, params: GenerationParams,
           callback: ProgressCallback | None = None, before_stage: StageHook | None = None,
           rescore: Rescore | None = None) -> torch.Tensor:
    """Fill every token of codes [B, K, T] that ``frozen`` [B, K, T] (bool) does not freeze; the
    frozen tokens are the given ones and stay as they are. Returns codes [B, K, T'], T' = T cut to a
    multiple of span_len with ``nonoverlap`` spans.

    before_stage: a hook run before each codebook's steps (e.g. beat lock) that may write tokens of
        the codebook into codes and returns where [B, T'] (bool), to freeze during its steps.
    rescore: a hook on the sampled tokens' probabilities before their spans are scored.
    """
    L = lm.cfg.span_len
    unit_len = L if L > 1 and params.span_arrangement == "nonoverlap" else 1  # frames per re-masked unit
    T = codes.shape[-1] // unit_len * unit_len
    codes, frozen = codes[..., :T], frozen[..., :T]
    total, done = sum(params.decoding_steps), 0

    def step_done() -> None:
        nonlocal done
        done += 1
        if callback is not None:
            callback(done, total)

    for stage, n_steps in enumerate(params.decoding_steps):
        stage_frozen = frozen[:, stage]
        if before_stage is not None:
            stage_frozen = stage_frozen | before_stage(codes, stage)
        _decode_stage(lm, codes, stage_frozen, stage, n_steps, guidance, params, unit_len, step_done, rescore)
    return codes


def _decode_stage(lm: MagnetLM, codes: torch.Tensor, frozen: torch.Tensor, stage: int, n_steps: int,
                  guidance: Guidance, params: GenerationParams, unit_len: int, step_done: Callable[[], None],
                  rescore: Rescore | None) -> None:
    """Fill codebook ``stage`` of codes [B, K, T] in place in ``n_steps`` steps, except where
    ``frozen`` [B, T].

    The units a step re-masks are the U = T // unit_len spans of the ``nonoverlap`` grid, else the T
    frames (``stride1`` spans are unions of frames). ``scores`` rank them: higher is less confident,
    :data:`DONT_REMASK` is never re-masked.
    """
    B, _, T = codes.shape
    mask_id, span_len = lm.mask_id, lm.cfg.span_len
    stride1 = span_len > 1 and params.span_arrangement == "stride1"
    frozen_units = frozen.reshape(B, T // unit_len, unit_len).all(dim=-1)  # [B, U] nothing to generate
    scores = torch.zeros(frozen_units.shape, device=codes.device).masked_fill(frozen_units, DONT_REMASK)
    n_units = (~frozen_units).sum(dim=1).tolist()  # [B] units to generate
    seq = codes[:, stage].clone()  # [B, T] the codebook being decoded

    for step, rate in enumerate(mask_rates(n_steps)):
        # re-masking schedule: the least confident units, fewer at each step (all of them at step 0)
        num = [num_to_mask(rate, n) for n in n_units]
        if stride1:
            remask = torch.stack([least_probable_spans(scores[b], num[b], span_len) for b in range(B)])  # [B, T]
        else:
            remasked_units = top_scores(scores, num)  # [B, U]
            remask = remasked_units.repeat_interleave(unit_len, dim=-1)  # [B, T]

        # masking
        seq = seq.masked_fill(remask & ~frozen, mask_id)
        masked = seq == mask_id  # [B, T] the positions this step samples
        codes[:, stage] = seq

        # guided logits (at every masked position; fast mode's partial passes skip some others)
        guided = guidance(codes, stage, step, guidance_coef(rate, params.max_cfg_coef, params.min_cfg_coef))

        # sampling
        temp = temperature(params.temperature, step, n_steps, params.anneal_temp)
        tokens, token_probs = _sample(guided.logits, params, temp)
        tokens = guided.full_length(tokens, seq)  # [B, T]; positions not computed are not masked
        token_probs = guided.full_length(token_probs, torch.ones_like(seq, dtype=token_probs.dtype))  # ... and sure
        seq = torch.where(masked, tokens, seq)
        codes[:, stage] = seq

        # span scoring
        if rescore is not None:
            token_probs = rescore(codes, stage, token_probs)
        if unit_len > 1:
            scores = chunk_scores(token_probs, unit_len, params.span_scoring).masked_fill(~remasked_units, DONT_REMASK)
        else:
            scores = (-torch.log(token_probs)).masked_fill(~masked, DONT_REMASK)
        step_done()


def _sample(logits: torch.Tensor, params: GenerationParams, temp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Guided logits [B, R, card] -> (tokens [B, R], the probability of each [B, R] that spans are
    scored with): sampled at temperature ``temp`` with top-k/top-p, or the argmax."""
    probs = torch.softmax(logits.float() / max(temp, 1e-2), dim=-1)
    if params.use_sampling:
        tokens, score_probs = sample(probs, params.top_k, params.top_p)
    else:
        tokens, score_probs = logits.argmax(dim=-1, keepdim=True), probs
    return tokens[..., 0], torch.gather(score_probs, -1, tokens)[..., 0]


def _rescoring(rescorer: Rescorer, weight: float) -> Rescore:
    """The rescoring hook: MAGNeT's token probabilities mixed with ``rescorer``'s (:func:`.combine_probs`)."""
    return lambda codes, stage, probs: combine_probs(probs, rescorer(codes, stage), weight)


def _beat_lock(guidance: Guidance, tied: torch.Tensor, coef: float) -> StageHook:
    """Beat lock's hook (tied [B, T] offsets from :func:`~.beats.beat_spans`): before the steps of a
    codebook, write the tokens of the beat spans into codes [B, K, T'] and return where they are.

    One guided pass with the codebook masked (but for frozen tokens), at the first step's guidance;
    per offset, the token of the highest mean log-probability over the beats (the most likely one
    everywhere, as the confident spans MAGNeT's annealed steps keep; a sampled one made the key
    follow the prompt less)."""

    def lock(codes: torch.Tensor, stage: int) -> torch.Tensor:
        offsets = tied[:, :codes.shape[-1]]
        logits = guidance(codes, stage, 0, coef).logits  # step 0: a full pass, [B, T', card]
        pooled = pooled_beat_logprobs(torch.log_softmax(logits.float(), dim=-1), offsets, int(offsets.max()) + 1)
        tokens = torch.gather(pooled.argmax(dim=-1), 1, offsets.clamp(min=0))  # [B, T']
        locked = offsets != NOT_TIED
        codes[:, stage] = torch.where(locked, tokens, codes[:, stage])
        return locked

    return lock
