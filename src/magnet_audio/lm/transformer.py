"""Transformer blocks shared by the MAGNeT and the autoregressive (MusicGen) language models.

Parameter names follow audiocraft's ``StreamingTransformer`` so official state dicts load as they
are: packed ``in_proj_weight`` [3*D, D] (rows q; k; v), ``out_proj``, ``norm1``, ``norm_cross``,
``norm2``, ``linear1``, ``linear2``. Layers are pre-norm with no biases except the LayerNorms.

Autoregressive decoding passes a :class:`KVCache`: each layer's self-attention appends the new
keys/values to it and attends over everything cached so far. Without a cache (MAGNeT) nothing
changes. Causality is the caller's ``attn_mask``; :func:`causal_mask` builds it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sin_embedding(num_positions: int, dim: int, offset: int = 0, max_period: float = 10000.0,
                  device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Sinusoidal positions [T, D]: all cosines first, then all sines.

    The phase of channel i (0 <= i < D/2) at position t is t / max_period ** (i / (D/2 - 1)).
    """
    assert dim % 2 == 0, "sinusoidal embedding needs an even dimension"
    half = dim // 2
    positions = torch.arange(offset, offset + num_positions, device=device, dtype=dtype).view(-1, 1)
    exponent = torch.arange(half, device=device, dtype=dtype).view(1, -1) / max(half - 1, 1)
    phase = positions / torch.full([], max_period, device=device, dtype=dtype) ** exponent
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)


def band_mask(length: int, context: int, device: torch.device | None = None) -> torch.Tensor:
    """Boolean [T, T] mask, True where |query - key| <= context (MAGNeT's restricted context)."""
    pos = torch.arange(length, device=device)
    return (pos.view(-1, 1) - pos.view(1, -1)).abs() <= context


def causal_mask(length: int, past: int = 0, device: torch.device | None = None) -> torch.Tensor:
    """Boolean [T, past + T] mask for T new queries after ``past`` cached positions: query i
    (absolute position past + i) may attend to keys 0 .. past + i."""
    q = torch.arange(past, past + length, device=device).view(-1, 1)
    k = torch.arange(past + length, device=device).view(1, -1)
    return k <= q


class KVCache:
    """Self-attention keys and values of the positions decoded so far, for every layer.

    Storage is allocated once for ``max_len`` positions on the first write (so decoding T steps
    copies O(T) rather than O(T^2) data). ``length`` counts the cached positions; the
    :class:`Transformer` advances it after each forward.
    """

    def __init__(self, num_layers: int, max_len: int):
        self.max_len = max_len
        self.length = 0
        self._keys: list[torch.Tensor | None] = [None] * num_layers
        self._values: list[torch.Tensor | None] = [None] * num_layers

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v [B, H, T, Dh] after the cached positions; return all keys/values [B, H, length + T, Dh]."""
        B, H, T, Dh = k.shape
        end = self.length + T
        if end > self.max_len:
            raise RuntimeError(f"KV cache overflow: {end} positions > max_len {self.max_len}")
        if self._keys[layer] is None:
            self._keys[layer] = k.new_empty(B, H, self.max_len, Dh)
            self._values[layer] = v.new_empty(B, H, self.max_len, Dh)
        keys, values = self._keys[layer], self._values[layer]
        keys[:, :, self.length:end] = k
        values[:, :, self.length:end] = v
        return keys[:, :, :end], values[:, :, :end]

    def advance(self, steps: int) -> None:
        self.length += steps


class _LayerCache:
    """One layer's view of a :class:`KVCache`."""

    def __init__(self, cache: KVCache, layer: int):
        self.cache, self.layer = cache, layer

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cache.append(self.layer, k, v)


class MultiheadAttention(nn.Module):
    """Multi-head attention with a packed, bias-free q/k/v projection.

    Self-attention when ``memory`` is None, cross-attention to ``memory`` otherwise.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        assert dim % num_heads == 0, f"dim {dim} is not divisible by num_heads {num_heads}"
        self.dim, self.num_heads = dim, num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.out_proj = nn.Linear(dim, dim, bias=False)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> [B, H, T, D/H]"""
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, -1).transpose(1, 2)

    def project_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values [B, H, S, D/H] of a memory [B, S, D]; cacheable for cross-attention."""
        w = self.in_proj_weight[self.dim:]
        k, v = F.linear(memory, w).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None,
                kv: tuple[torch.Tensor, torch.Tensor] | None = None,
                attn_mask: torch.Tensor | None = None, cache: _LayerCache | None = None) -> torch.Tensor:
        """x [B, T, D]; memory [B, S, D] or precomputed ``kv``; attn_mask bool [T, S] (True = attend).

        ``cache`` (self-attention only): keys/values of earlier positions, extended with this call's.
        """
        if memory is None and kv is None:
            q, k, v = F.linear(x, self.in_proj_weight).chunk(3, dim=-1)
            q, k, v = self._heads(q), self._heads(k), self._heads(v)
            if cache is not None:
                k, v = cache.append(k, v)
        else:
            q = self._heads(F.linear(x, self.in_proj_weight[:self.dim]))
            k, v = kv if kv is not None else self.project_kv(memory)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        B, _, T, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.dim))


class TransformerLayer(nn.Module):
    """Pre-norm layer: x += SA(norm1(x)); x += CA(norm_cross(x), memory); x += FFN(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, hidden_scale: int = 4, cross_attention: bool = True):
        super().__init__()
        self.self_attn = MultiheadAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.cross_attention = MultiheadAttention(dim, num_heads) if cross_attention else None
        self.norm_cross = nn.LayerNorm(dim, eps=1e-5) if cross_attention else None
        self.linear1 = nn.Linear(dim, hidden_scale * dim, bias=False)
        self.linear2 = nn.Linear(hidden_scale * dim, dim, bias=False)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None,
                cross_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
                attn_mask: torch.Tensor | None = None, cache: _LayerCache | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x), attn_mask=attn_mask, cache=cache)
        if self.cross_attention is not None:
            x = x + self.cross_attention(self.norm_cross(x), memory=memory, kv=cross_kv)
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class Transformer(nn.Module):
    """A stack of :class:`TransformerLayer` (the ``transformer.layers.N`` keys of a checkpoint)."""

    def __init__(self, dim: int, num_heads: int, num_layers: int, hidden_scale: int = 4,
                 cross_attention: bool = True):
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerLayer(dim, num_heads, hidden_scale, cross_attention) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None,
                cross_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
                attn_mask: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        """x [B, T, D] -> [B, T, D]; ``cross_kv`` optionally holds each layer's projected memory.

        With ``cache``, x holds the T positions after the cached ones; ``attn_mask`` is then
        [T, cache.length + T]. The cache is advanced by T.
        """
        if cache is None:
            for i, layer in enumerate(self.layers):
                x = layer(x, memory=memory, cross_kv=None if cross_kv is None else cross_kv[i], attn_mask=attn_mask)
            return x
        for i, layer in enumerate(self.layers):
            x = layer(x, memory=memory, cross_kv=None if cross_kv is None else cross_kv[i], attn_mask=attn_mask,
                      cache=_LayerCache(cache, i))
        cache.advance(x.shape[1])
        return x

    def cross_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's cross-attention keys/values for ``memory`` [B, S, D]: compute once, reuse per step."""
        return [layer.cross_attention.project_kv(memory) for layer in self.layers]
