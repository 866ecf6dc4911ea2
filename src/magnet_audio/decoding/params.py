"""The options of MAGNeT decoding: :class:`GenerationParams` (the paper's algorithm) with its
:class:`FastOptions` (approximations and model transforms; the defaults are exact).

``MAGNeT.set_generation_params`` takes all of them as flat, audiocraft-compatible keywords;
:meth:`GenerationParams.to_dict` writes them back flat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from .. import validation as v
from ..errors import InputError

#: audiocraft's decoding steps: 20 for the first codebook, 10 for each other one
FIRST_STAGE_STEPS, LATER_STAGE_STEPS = 20, 10


def default_decoding_steps(num_codebooks: int = 4) -> list[int]:
    """audiocraft's schedule ``[20, 10, 10, 10]`` for any number of codebooks."""
    return [FIRST_STAGE_STEPS] + [LATER_STAGE_STEPS] * (num_codebooks - 1)


@dataclass
class FastOptions:
    """Fast-mode options; the defaults decode exactly (docs/fast-inference.md has the trade-offs).

    Approximations of the guided logits (:class:`~.guidance.CachedGuidance`):

    kv_cache_refresh: 1 = a full pass every step (exact); N > 1 = a full pass every N steps of a
        stage, in between only masked and changed positions (approximate self-attention cache).
    cfg_skip_threshold: skip the null-condition pass when |guidance coefficient - 1| <= this; 0 = never.
    cfg_null_refresh: 1 = a null-condition pass every guided step (exact); N > 1 = only at the first
        step of a stage and every N steps, the steps in between reuse its logits.

    Model transforms, applied once by the caller that owns the model (``MAGNeT``, see
    :func:`~magnet_audio.lm.variants.inference_variant`), not by the decoding loop:

    int8: int8 dynamically quantised Linear layers (CPU only).
    half: float16 (CUDA/MPS) or bfloat16 (CPU) weights.
    compile: ``torch.compile`` the feed-forward blocks (slow first call).
    """

    kv_cache_refresh: int = 1
    cfg_skip_threshold: float = 0.0
    cfg_null_refresh: int = 1
    int8: bool = False
    half: bool = False
    compile: bool = False

    @classmethod
    def preset(cls, device: torch.device) -> "FastOptions":
        """Fast mode (``set_generation_params(fast=True)``): a full pass every 5 steps, guidance
        skipped within 0.1 of 1, the null-condition pass every 5 steps; int8 on CPU, half precision
        elsewhere."""
        cpu = device.type == "cpu"
        return cls(kv_cache_refresh=5, cfg_skip_threshold=0.1, cfg_null_refresh=5, int8=cpu, half=not cpu)

    @property
    def exact_guidance(self) -> bool:
        """Whether the guided logits are computed exactly (the transforms aside)."""
        return self.kv_cache_refresh == 1 and self.cfg_skip_threshold == 0 and self.cfg_null_refresh == 1

    @property
    def transforms(self) -> dict[str, bool]:
        """The model transforms, as :func:`~magnet_audio.lm.variants.inference_variant` keywords."""
        return {"int8": self.int8, "half": self.half, "compile": self.compile}

    def validate(self) -> "FastOptions":
        """Raise :class:`InputError` on a wrong type, a non-finite or an out-of-range value; return
        self with the integers normalised."""
        self.kv_cache_refresh = v.positive_int(self.kv_cache_refresh, "kv_cache_refresh", 100_000)
        self.cfg_null_refresh = v.positive_int(self.cfg_null_refresh, "cfg_null_refresh", 100_000)
        self.cfg_skip_threshold = v.finite_float(self.cfg_skip_threshold, "cfg_skip_threshold", 0, 1e4)
        for name in ("int8", "half", "compile"):
            setattr(self, name, v.boolean(getattr(self, name), name))
        if self.int8 and self.half:
            raise InputError("int8 and half are alternatives (int8 on CPU, half on GPU): choose one")
        return self


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
    choice_temperature: 0 (audiocraft): each step keeps the surest spans. > 0: MaskGIT's randomised
        choice, Gumbel noise of this scale (annealed to 0 over each stage, as the temperature) added
        to the spans' log confidences, so the kept spans are sampled in proportion to confidence
        rather than always the surest ones (:func:`~.spans.choice_noise`).
    rescore_weight: with a rescorer (see :mod:`.rescoring`), each sampled token's probability is
        (1 - w) * MAGNeT's + w * the rescorer's before spans are scored; unused without one.
    beat_lock: seconds at the start of every beat of the tempo each prompt names that share their
        tokens (rounded to whole spans, at least one; :mod:`.beats`); 0 = off. Prompts without a
        tempo decode as usual.
    beat_guidance: for a ``beat_phase`` LM told where the beat falls (generation from nothing), the
        null-condition rows of classifier-free guidance decode without the beat, so guidance
        strengthens the LM's own sense of what comes on the beat as it does the text's; the tokens
        stay the LM's samples. No effect on other LMs, continuations or edits.
    fast: approximations and model transforms (:class:`FastOptions`; the defaults are exact).
    """

    use_sampling: bool = True
    top_k: int = 0
    top_p: float = 0.9
    temperature: float = 3.0
    max_cfg_coef: float = 10.0
    min_cfg_coef: float = 1.0
    decoding_steps: list[int] = field(default_factory=default_decoding_steps)
    span_arrangement: str = "nonoverlap"
    anneal_temp: bool = True
    span_scoring: str = "max"
    choice_temperature: float = 0.0
    rescore_weight: float = 0.5
    beat_lock: float = 0.0
    beat_guidance: bool = True
    fast: FastOptions = field(default_factory=FastOptions)

    def validate(self, num_codebooks: int, card: int | None = None) -> "GenerationParams":
        """Raise :class:`InputError` on a wrong type, a non-finite or an out-of-range value (``card``:
        the vocabulary size, which bounds ``top_k``); return self with the integers normalised."""
        steps = self.decoding_steps
        if isinstance(steps, (str, bytes)) or not hasattr(steps, "__len__") or len(steps) != num_codebooks:
            raise InputError(f"decoding_steps must be {num_codebooks} positive integers, got {steps!r}")
        steps = [v.positive_int(s, "decoding_steps", 100_000) for s in steps]
        for name in ("use_sampling", "anneal_temp", "beat_guidance"):
            setattr(self, name, v.boolean(getattr(self, name), name))
        self.top_k = v.int_in_range(self.top_k, "top_k", 0, card)
        self.top_p = v.finite_float(self.top_p, "top_p", 0, 1)
        self.temperature = v.finite_float(self.temperature, "temperature", 0, 1e4)
        self.choice_temperature = v.finite_float(self.choice_temperature, "choice_temperature", 0, 1e4)
        self.max_cfg_coef = v.finite_float(self.max_cfg_coef, "max_cfg_coef (CFG)", 0, 1e4)
        self.min_cfg_coef = v.finite_float(self.min_cfg_coef, "min_cfg_coef (CFG)", 0, 1e4)
        v.choice(self.span_arrangement, "span_arrangement", ("nonoverlap", "stride1"))
        v.choice(self.span_scoring, "span_scoring", ("max", "prod"))
        self.beat_lock = v.finite_float(self.beat_lock, "beat_lock (seconds)", 0, v.MAX_DURATION)
        self.rescore_weight = v.finite_float(self.rescore_weight, "rescore_weight", 0, 1)
        self.fast.validate()
        self.decoding_steps = steps
        return self

    def to_dict(self) -> dict:
        """All options as flat ``set_generation_params`` keywords (the fast options at top level)."""
        options = asdict(self)
        fast = options.pop("fast")
        return {**options, **fast}
