"""MAGNeT's iterative decoding (Ziv et al., 2024), as audiocraft's ``MagnetLMModel`` decodes.

Codebooks are decoded one after the other (a *stage* each). A stage starts with every token of
its codebook masked, except the frozen ones, and runs ``n`` steps; at step i of n, with the mask
rate p_i = cos(pi/2 * i/(n-1)):

1. re-masking schedule: the ``max(int(p_i * N), 1)`` least confident of the N spans to generate
   (all of them at step 0) are chosen (``stride1``: overlapping spans covering about that many of
   the N frames);
2. masking: their tokens are masked;
3. guided logits: one pass of the LM gives the logits of the codebook, guided by the text with
   the coefficient annealed from ``max_cfg_coef`` to ``min_cfg_coef`` as p_i falls;
4. sampling: every masked token is sampled at a temperature annealed to 0 over the stage;
5. span scoring: each span just sampled gets a confidence from its tokens' probabilities,
   which decides what step i+1 re-masks (with ``choice_temperature`` > 0, Gumbel noise annealed
   over the stage is added to the log confidences, as MaskGIT does; 0, audiocraft's, is off).

Frozen tokens are the one mechanism behind every conditioning on audio: any mask [B, K, T]
(:func:`generate_codes`' ``codes`` + ``frozen``) is kept as given and the schedules count only the
spans to generate. A continuation's prompt (and Hybrid-MAGNeT's autoregressive prefix) is a frozen
prefix, an edit (:mod:`magnet_audio.editing`: inpainting, outpainting) freezes all but its regions,
and a variation (``strength`` < 1) starts each stage mid-schedule from the given tokens.

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
from ..lm.magnet import MagnetLM, split_tempo
from ..lm.transformer import tempo_scale
from .beats import NOT_TIED, pooled_beat_logprobs
from .guidance import Guidance, make_guidance
from .params import FastOptions, GenerationParams, default_decoding_steps
from .rescoring import Rescorer, combine_probs
from .sampling import sample
from .schedules import guidance_coef, mask_rates, num_to_mask, temperature
from .spans import DONT_REMASK, chunk_scores, least_probable_spans, token_scores, top_scores

__all__ = ["FastOptions", "GenerationParams", "decode", "default_decoding_steps", "first_step", "generate_codes"]

ProgressCallback = Callable[[int, int], None]
#: a rescoring hook: (codes [B, K, T], stage, token probabilities [B, T]) -> new probabilities [B, T]
Rescore = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]
#: a hook before a stage: (codes [B, K, T], stage) -> positions [B, T] (bool) to freeze in its steps
StageHook = Callable[[torch.Tensor, int], torch.Tensor]


@torch.no_grad()
def generate_codes(lm: MagnetLM, memory: torch.Tensor | None, params: GenerationParams, max_len: int,
                   prompt: torch.Tensor | None = None, num_samples: int | None = None,
                   callback: ProgressCallback | None = None, rescorer: Rescorer | None = None,
                   tied: torch.Tensor | None = None, *, codes: torch.Tensor | None = None,
                   frozen: torch.Tensor | None = None, strength: float = 1.0,
                   tempo: torch.Tensor | None = None) -> torch.Tensor:
    """Generate codes [B, K, T] (T = max_len, cut to a multiple of span_len for ``nonoverlap``)
    around frozen tokens: none (plain generation), a prefix (``prompt``) or any [B, K, T] mask
    (``codes`` + ``frozen``: inpainting, outpainting, variations).

    lm: the LM decoding runs (already transformed if ``params.fast`` asks for int8/half/compile).
    memory: cross-attention memory [2B, L, D], the B conditional rows then the B null rows (CFG),
        or None for no guidance.
    prompt: codes [B, K, P] kept fixed at the start (continuation), P < max_len; a thin caller of
        the frozen mask (the first P frames frozen in every codebook).
    codes / frozen: codes [B, K, max_len] and a bool mask [B, K, max_len] of the tokens to keep; the
        rest is generated (its tokens in ``codes`` only matter with ``strength`` < 1). Not with
        ``prompt``. With ``nonoverlap`` spans, a span of the grid (span_len frames from frame 0) in
        which any token is free is generated as a whole unit (its frozen tokens still kept), so
        free regions should be span-aligned (:mod:`.editing` widens them). The mask-rate, CFG and
        temperature schedules count only the units to generate.
    strength: in (0, 1]; 1 decodes the free tokens from scratch. Below 1 (variations), each
        codebook starts from the given tokens at the step of its schedule whose mask rate is
        nearest ``strength``, with that share of the free units re-masked at random.
    callback: called as callback(step, total_steps) after each step.
    rescorer: an external model's probabilities of the sampled tokens, mixed into the span scores
        with ``params.rescore_weight`` (see :mod:`.rescoring`); None for plain MAGNeT.
    tied: beat-locked decoding (:mod:`.beats`): offsets [B, max_len] from
        :func:`~.beats.beat_spans`; in each codebook, the frames at the same offset share one token,
        sampled before the codebook's steps and kept. Frozen frames stay as they are.
    tempo: bpm [B] (NaN: none, read as 120) for a ``tempo_rope`` LM's positions, the null rows too;
        or [B, 2]: (bpm, the beat at frame 0, NaN where unknown) for a ``beat_phase`` LM (others
        use the bpm; with ``params.beat_guidance`` the null rows get no beat). Ignored by LMs
        without ``tempo_rope``.
    """
    params.validate(lm.num_codebooks)
    device = next(lm.parameters()).device
    if prompt is not None and (codes is not None or frozen is not None):
        raise InputError("give either a prompt or codes and a frozen mask, not both")
    if codes is None and frozen is None:
        codes, frozen = _prompt_frozen(lm, memory, max_len, prompt, num_samples, device)
    else:
        codes, frozen = _check_frozen(lm, codes, frozen, max_len, device)
    B = codes.shape[0]
    if memory is not None and memory.shape[0] != 2 * B:
        raise InputError(f"memory has {memory.shape[0]} rows, expected {2 * B} (conditional + null)")
    if tied is not None and tied.shape != (B, max_len):
        raise InputError(f"tied has shape {tuple(tied.shape)}, expected {(B, max_len)}")
    if tempo is not None and getattr(lm.cfg, "tempo_rope", False):
        tempo = torch.as_tensor(tempo, dtype=torch.float32, device=device)
        try:  # one positive bpm (or NaN) per sample (and a beat at frame 0, or NaN), checked before any pass
            bpm, beat0 = split_tempo(tempo if tempo.dim() == 2 else tempo.reshape(-1))
            tempo_scale(bpm, B, device)
            if beat0 is not None and not bool((beat0.isnan() | beat0.isfinite()).all()):
                raise ValueError(f"the beat at frame 0 must be finite or NaN, got {beat0.tolist()}")
        except ValueError as exc:
            raise InputError(f"tempo: {exc}") from None
        if beat0 is not None and not getattr(lm.cfg, "beat_phase", False):
            tempo = bpm
    else:
        tempo = None
    null_tempo = tempo
    if params.beat_guidance and tempo is not None and tempo.dim() == 2:  # the null rows without the beat
        null_tempo = torch.stack([tempo[:, 0], torch.full_like(tempo[:, 1], float("nan"))], dim=1)
    guidance = make_guidance(lm, memory, B, params.fast, tempo, null_tempo)
    before_stage = None
    if tied is not None:
        tied = tied.to(device).masked_fill(frozen.any(dim=1), NOT_TIED)  # never over a frozen token
        if (tied != NOT_TIED).any():
            before_stage = _beat_lock(guidance, tied, params.max_cfg_coef)
    rescore = None if rescorer is None else _rescoring(rescorer, params.rescore_weight)
    return decode(lm, codes, frozen, guidance, params, callback, before_stage, rescore, strength)


def _prompt_frozen(lm: MagnetLM, memory: torch.Tensor | None, max_len: int, prompt: torch.Tensor | None,
                   num_samples: int | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes [B, K, max_len], frozen [B, K, max_len]) of a continuation: the prompt [B, K, P] first
    and frozen, masks after it."""
    if prompt is None:
        if num_samples is None:
            num_samples = memory.shape[0] // 2 if memory is not None else 1
        prompt = torch.zeros(num_samples, lm.num_codebooks, 0, dtype=torch.long, device=device)
    B, K, P = prompt.shape
    if P >= max_len:
        raise InputError(f"the prompt ({P} frames) must be shorter than the generation ({max_len} frames)")
    codes = torch.full((B, K, max_len), lm.mask_id, dtype=torch.long, device=device)
    codes[..., :P] = prompt
    frozen = torch.zeros(B, K, max_len, dtype=torch.bool, device=device)
    frozen[..., :P] = True
    return codes, frozen


def _check_frozen(lm: MagnetLM, codes: torch.Tensor | None, frozen: torch.Tensor | None, max_len: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """codes [B, K, max_len] (long) and frozen [B, K, max_len] (bool) on ``device``, or an InputError."""
    if codes is None or frozen is None:
        raise InputError("codes and frozen go together: give both")
    expected = (lm.num_codebooks, max_len)
    if codes.dim() != 3 or tuple(codes.shape[1:]) != expected or frozen.shape != codes.shape:
        raise InputError(f"codes {tuple(codes.shape)} and frozen {tuple(frozen.shape)} must both be "
                         f"[B, {expected[0]}, {expected[1]}]")
    if frozen.dtype != torch.bool or codes.is_floating_point():
        raise InputError("frozen must be a bool mask and codes integer tokens")
    return codes.to(device), frozen.to(device)


@torch.no_grad()
def decode(lm: MagnetLM, codes: torch.Tensor, frozen: torch.Tensor, guidance: Guidance, params: GenerationParams,
           callback: ProgressCallback | None = None, before_stage: StageHook | None = None,
           rescore: Rescore | None = None, strength: float = 1.0) -> torch.Tensor:
    """Fill every token of codes [B, K, T] that ``frozen`` [B, K, T] (bool) does not freeze; the
    frozen tokens are the given ones and stay as they are. Returns codes [B, K, T'], T' = T cut to a
    multiple of span_len with ``nonoverlap`` spans.

    before_stage: a hook run before each codebook's steps (e.g. beat lock) that may write tokens of
        the codebook into codes and returns where [B, T'] (bool), to freeze during its steps.
    rescore: a hook on the sampled tokens' probabilities before their spans are scored.
    strength: 1 = the free tokens are decoded from scratch; in (0, 1) each codebook's steps start
        at the step whose mask rate is nearest ``strength`` (:func:`first_step`), from the given
        tokens (the codebooks after it stay masked until their own stage, as in plain decoding).
    """
    if not 0 < strength <= 1:
        raise InputError(f"strength must be in (0, 1], got {strength}")
    L = lm.cfg.span_len
    unit_len = L if L > 1 and params.span_arrangement == "nonoverlap" else 1  # frames per re-masked unit
    T = codes.shape[-1] // unit_len * unit_len
    start, frozen = codes[..., :T], frozen[..., :T]
    codes = start.masked_fill(~frozen, lm.mask_id)  # every free token masked until its stage
    firsts = [first_step(n, strength) for n in params.decoding_steps]
    total, done = sum(n - f for n, f in zip(params.decoding_steps, firsts)), 0

    def step_done() -> None:
        nonlocal done
        done += 1
        if callback is not None:
            callback(done, total)

    for stage, n_steps in enumerate(params.decoding_steps):
        stage_frozen = frozen[:, stage]
        if firsts[stage] > 0:  # variations: the stage starts from the given tokens
            codes[:, stage] = start[:, stage]
        if before_stage is not None:
            stage_frozen = stage_frozen | before_stage(codes, stage)
        _decode_stage(lm, codes, stage_frozen, stage, n_steps, guidance, params, unit_len, step_done, rescore,
                      firsts[stage])
    return codes


def first_step(n_steps: int, strength: float) -> int:
    """The step of an ``n_steps`` stage whose mask rate is nearest ``strength`` (0 for strength 1)."""
    if strength >= 1:
        return 0
    rates = torch.stack(mask_rates(n_steps))
    return int((rates - strength).abs().argmin())


def _decode_stage(lm: MagnetLM, codes: torch.Tensor, frozen: torch.Tensor, stage: int, n_steps: int,
                  guidance: Guidance, params: GenerationParams, unit_len: int, step_done: Callable[[], None],
                  rescore: Rescore | None, first: int = 0) -> None:
    """Fill codebook ``stage`` of codes [B, K, T] in place in ``n_steps`` steps, except where
    ``frozen`` [B, T]. ``first`` > 0 (variations): start at that step from the tokens in codes,
    re-masking its share of the free units at random.

    The units a step re-masks are the U = T // unit_len spans of the ``nonoverlap`` grid, else the T
    frames (``stride1`` spans are unions of frames). ``scores`` rank them: higher is less confident,
    :data:`DONT_REMASK` is never re-masked.
    """
    B, _, T = codes.shape
    mask_id, span_len = lm.mask_id, lm.cfg.span_len
    stride1 = span_len > 1 and params.span_arrangement == "stride1"
    frozen_units = frozen.reshape(B, T // unit_len, unit_len).all(dim=-1)  # [B, U] nothing to generate
    scores = torch.zeros(frozen_units.shape, device=codes.device)
    if first > 0:  # no confidences yet: the units a later step re-masks are drawn at random
        scores = torch.rand(frozen_units.shape, device=codes.device)
    scores = scores.masked_fill(frozen_units, DONT_REMASK)
    n_units = (~frozen_units).sum(dim=1).tolist()  # [B] units to generate
    seq = codes[:, stage].clone()  # [B, T] the codebook being decoded

    for step, rate in enumerate(mask_rates(n_steps)):
        if step < first:
            continue
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

        # guided logits (at every masked position; fast mode's partial passes skip some others;
        # the guidance counts steps from the stage's first, where its caches start with a full pass)
        guided = guidance(codes, stage, step - first, guidance_coef(rate, params.max_cfg_coef, params.min_cfg_coef))

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
        choice = temperature(params.choice_temperature, step, n_steps)  # randomised choice, annealed; 0: off
        if unit_len > 1:
            scores = chunk_scores(token_probs, unit_len, params.span_scoring, choice)
            scores = scores.masked_fill(~remasked_units, DONT_REMASK)
        else:
            scores = token_scores(token_probs, choice).masked_fill(~masked, DONT_REMASK)
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
