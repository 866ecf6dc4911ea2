"""Inference variants of a language model for fast decoding: int8 dynamic quantisation (CPU), half
precision, ``torch.compile``. Each is a copy of the LM, made once by the model that decodes with it
(``MAGNeT.set_generation_params``) from the weights of that moment.

- **int8**: every ``nn.Linear`` (feed-forward, attention output, output heads, and the packed
  attention input projections, exposed as modules by
  :meth:`~.transformer.MultiheadAttention.attach_in_proj`) becomes a dynamically quantised one:
  int8 weights, activations quantised per call. CPU only (PyTorch's fbgemm/qnnpack kernels).
  Unquantised parameters (embeddings, norms) are shared with the original, not copied.
- **half**: all weights in float16 on CUDA/MPS, bfloat16 on CPU (a half-size copy).
- **compile**: each layer's feed-forward block goes through ``torch.compile`` (dynamic shapes, as
  fast decoding changes the number of positions per pass); the first calls are slow.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from .transformer import TransformerLayer

def half_dtype(device: torch.device) -> torch.dtype:
    """float16 on accelerators, bfloat16 on CPU (where float16 matmuls are slow)."""
    return torch.bfloat16 if device.type == "cpu" else torch.float16


def inference_variant(lm: nn.Module, int8: bool = False, half: bool = False, compile: bool = False) -> nn.Module:
    """``lm`` itself when no option is set, else a transformed copy for decoding (``lm`` is untouched)."""
    if not (int8 or half or compile):
        return lm
    return _build(lm, int8, half, compile)


def _build(lm: nn.Module, int8: bool, half: bool, compile: bool) -> nn.Module:
    device = next(lm.parameters()).device
    memo: dict[int, object] = {}
    provider = getattr(lm, "condition_provider", None)
    if provider is not None:
        memo[id(provider)] = provider  # the text encoder is not used by decoding: share it
    if not half:  # share the weights that stay as they are (half converts every one)
        memo.update({id(p): p for p in lm.parameters()})
        memo.update({id(b): b for b in lm.buffers()})
    variant = copy.deepcopy(lm, memo).eval()
    if half:
        for part in (variant.emb, variant.transformer, variant.out_norm, variant.linears):
            part.to(half_dtype(device))
    layers = [m for m in variant.transformer.modules() if isinstance(m, TransformerLayer)]
    if int8:
        for layer in layers:
            layer.self_attn.attach_in_proj(self_attention=True)
            if layer.cross_attention is not None:
                layer.cross_attention.attach_in_proj(self_attention=False)
        with warnings.catch_warnings():  # torch.ao.quantization's deprecation notices
            warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
            for part in (variant.transformer, variant.linears):
                torch.ao.quantization.quantize_dynamic(part, {nn.Linear}, dtype=torch.qint8, inplace=True)
    if compile:
        for layer in layers:
            layer.feed_forward = torch.compile(layer.feed_forward, dynamic=True)
    return variant

