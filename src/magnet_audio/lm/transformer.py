"""Transformer blocks shared by the MAGNeT and the autoregressive (MusicGen) language models.

Parameter names follow audiocraft's ``StreamingTransformer`` so official state dicts load as they
are: packed ``in_proj_weight`` [3*D, D] (rows q; k; v), ``out_proj``, ``norm1``, ``norm_cross``,
``norm2``, ``linear1``, ``linear2``. Layers are pre-norm with no biases except the LayerNorms.

Autoregressive decoding passes a :class:`KVCache`: each layer's self-attention appends the new
keys/values to it and attends over everything cached so far. Causality is the caller's
``attn_mask``; :func:`causal_mask` builds it. MAGNeT's fast decoding passes a :class:`RowKVCache`:
a full pass stores every position's keys/values; a later pass over a subset of the positions
(``RowKVCache.rows``) writes only theirs and attends over all of them. Without a cache nothing changes.

Positions (audiocraft's ``positional_embedding``): with ``sin`` or ``sin_rope`` the LMs add
:func:`sin_embedding` to their input; with ``rope`` or ``sin_rope`` a ``Transformer(rope=True)``
rotates each self-attention query and key by its position (:func:`rope_rotation`). The rotated keys
are what the caches store, so a cached key keeps the position it was computed at.

Tempo-relative positions (``Transformer(tempo_rope=True)``, our addition): the odd channel pairs of
each head turn with ``frame * bpm / 120`` instead of the frame (:func:`rope_rotation`'s
``tempo_scale``), so "one beat back" is the same rotation at every tempo; the even pairs keep
counting frames. At 120 bpm (or no tempo) it is plain rope. With ``tempo_frequencies``
(:func:`beat_frequencies`) the odd pairs turn once every 1/4, 3/8, 1/2, 3/4, 1, 1.5, 2, 3, ... beats
instead of at rope's geometric frequencies, so attention can single out "exactly one beat (or bar)
back" with one pair.
"""

from __future__ import annotations

import math

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


def rope_rotation(positions: torch.Tensor, head_dim: int, max_period: float = 10000.0,
                  tempo_scale: torch.Tensor | None = None,
                  tempo_frequencies: torch.Tensor | None = None) -> torch.Tensor:
    """Rotary-embedding angles (float32) of integer ``positions`` [T] or [B, T]: [..., head_dim / 2].

    Pair i (channels 2i and 2i + 1 of a head) turns by ``position * max_period ** (-2i / head_dim)``,
    as audiocraft's ``RotaryEmbedding`` (``positional_embedding: rope``).

    tempo_scale: [B] (bpm / 120 of each row) for tempo-relative positions: the odd pairs (i = 1, 3,
        ...) turn by ``position * tempo_scale`` instead, so they count beats; returns [B, T, head_dim / 2].
    tempo_frequencies: [head_dim / 4] the odd pairs' speeds (radians a frame at 120 bpm) in place of
        rope's (:func:`beat_frequencies`); only with ``tempo_scale``.
    """
    frequencies = rope_frequencies(head_dim, max_period, positions.device)
    if tempo_frequencies is not None:
        frequencies = frequencies.clone()
        frequencies[1::2] = tempo_frequencies.to(device=positions.device, dtype=torch.float32)
    angles = positions.to(torch.float32).unsqueeze(-1) * frequencies
    if tempo_scale is None:
        return angles
    scale = torch.ones(len(tempo_scale), head_dim // 2, dtype=torch.float32, device=angles.device)
    scale[:, 1::2] = tempo_scale.to(device=angles.device, dtype=torch.float32).unsqueeze(-1)
    if angles.dim() == 2:  # the same positions for every row
        angles = angles.unsqueeze(0)
    return angles * scale.unsqueeze(1)  # [B, T, head_dim / 2]


def rope_frequencies(head_dim: int, max_period: float = 10000.0, device: torch.device | None = None) -> torch.Tensor:
    """The rotation speed of each channel pair, ``max_period ** (-2i / head_dim)`` [head_dim / 2] (float32;
    audiocraft stores it as the buffer ``transformer.rope.frequencies``)."""
    if head_dim % 2:
        raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
    return max_period ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)


#: the tempo at which tempo-relative positions turn as plain rope (one beat = 25 frames at 50 Hz)
REFERENCE_BPM = 120.0


def beat_frequencies(head_dim: int, frame_rate: float) -> torch.Tensor:
    """Speeds [head_dim / 4] (radians a frame at 120 bpm) of the odd channel pairs that turn once
    every 1/4, 3/8, 1/2, 3/4, 1, 1.5, 2, 3, 4, 6, ... beats (alternately 2^j / 4 and 1.5 x 2^j / 4)."""
    periods = torch.tensor([0.25 * 2 ** (j // 2) * (1.5 if j % 2 else 1.0) for j in range(head_dim // 4)])
    frames_per_beat = frame_rate * 60.0 / REFERENCE_BPM
    return 2 * math.pi / (periods * frames_per_beat)


def tempo_scale(tempo: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """bpm [B] -> the odd channel pairs' position scale bpm / 120 [B] (float32); a NaN (no tempo)
    counts as 120. Refuses a tempo that is not one finite positive number per row."""
    tempo = torch.as_tensor(tempo, dtype=torch.float32, device=device).reshape(-1)
    if tempo.numel() != batch:
        raise ValueError(f"expected one tempo per row ({batch}), got {tempo.numel()}")
    tempo = torch.nan_to_num(tempo, nan=REFERENCE_BPM)
    if not bool((torch.isfinite(tempo) & (tempo > 0)).all()):
        raise ValueError(f"tempi must be positive bpm, got {tempo.tolist()}")
    return tempo / REFERENCE_BPM


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate the channel pairs of x [B, H, T, Dh] by ``angles`` [T, Dh/2] (every row) or [B, T, Dh/2].

    (x[2i], x[2i+1]) -> (x[2i] cos a - x[2i+1] sin a, x[2i] sin a + x[2i+1] cos a), computed in
    float32 and returned in x's dtype.
    """
    if angles.dim() == 3:
        angles = angles.unsqueeze(1)  # [B, 1, T, Dh/2]: the same positions for every head
    cos, sin = angles.cos(), angles.sin()
    pairs = x.float().unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    out = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)
    return out.flatten(-2).to(x.dtype)


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

    def layer(self, index: int) -> "_LayerCache":
        return _LayerCache(self, index)


class RowKVCache:
    """Self-attention keys/values [N, H, T, Dh] of every position of a non-causal pass, per layer.

    ``rows`` None (a full pass): each layer stores the keys/values it computes. ``rows`` [n, R]
    (position indices, n <= N): the pass covers only those positions of the first n sequences;
    each layer writes their new keys/values into the stored ones and attends over all T, so the
    other positions contribute the keys/values of the pass that last computed them.
    """

    def __init__(self, num_layers: int):
        self.rows: torch.Tensor | None = None
        self._keys: list[torch.Tensor | None] = [None] * num_layers
        self._values: list[torch.Tensor | None] = [None] * num_layers

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k, v [n, H, R, Dh] of this pass -> keys/values [n, H, T, Dh] to attend over."""
        if self.rows is None:
            stored = self._keys[layer]
            if stored is None or stored.shape[0] < k.shape[0] or stored.shape[2:] != k.shape[2:]:
                self._keys[layer], self._values[layer] = k.contiguous(), v.contiguous()
            else:
                self._keys[layer][:k.shape[0]] = k
                self._values[layer][:v.shape[0]] = v
            return k, v
        n, H, R, Dh = k.shape
        index = self.rows.view(n, 1, R, 1).expand(n, H, R, Dh)
        keys, values = self._keys[layer][:n], self._values[layer][:n]
        keys.scatter_(2, index, k)
        values.scatter_(2, index, v)
        return keys, values

    def advance(self, steps: int) -> None:
        """Nothing to advance: positions are absolute (for :class:`Transformer`'s interface)."""

    def layer(self, index: int) -> "_LayerCache":
        return _LayerCache(self, index)


class _LayerCache:
    """One layer's view of a :class:`KVCache` or :class:`RowKVCache`."""

    def __init__(self, cache: KVCache | RowKVCache, layer: int):
        self.cache, self.layer = cache, layer

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This layer's new keys/values [B, H, T, Dh] -> all keys/values to attend over."""
        if isinstance(self.cache, KVCache):
            return self.cache.append(self.layer, k, v)
        return self.cache.update(self.layer, k, v)


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
        # the input projection as a module (q; k; v rows for self-attention, q rows for
        # cross-attention) when one is attached (see :meth:`attach_in_proj`), e.g. to quantise it
        self.in_proj: nn.Module | None = None
        nn.init.xavier_uniform_(self.in_proj_weight)

    def attach_in_proj(self, self_attention: bool) -> None:
        """Give the packed input projection an ``nn.Linear`` (sharing ``in_proj_weight``) that
        module-level transforms such as ``quantize_dynamic`` can replace; cross-attention only
        needs the query rows (its keys/values are projected once per memory)."""
        weight = self.in_proj_weight if self_attention else self.in_proj_weight[:self.dim]
        linear = nn.Linear(self.dim, weight.shape[0], bias=False, device=weight.device, dtype=weight.dtype)
        linear.weight = nn.Parameter(weight.detach(), requires_grad=False)
        self.in_proj = linear

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
                attn_mask: torch.Tensor | None = None, cache: _LayerCache | None = None,
                rope: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, D]; memory [B, S, D] or precomputed ``kv``; attn_mask bool [T, S] or [B, 1, T, S]
        (True = attend).

        ``cache`` (self-attention only): keys/values of earlier positions, extended with this call's.
        ``rope`` (self-attention only): the :func:`rope_rotation` angles of x's positions, which
        rotate the queries and keys.
        """
        if memory is None and kv is None:
            qkv = F.linear(x, self.in_proj_weight) if self.in_proj is None else self.in_proj(x)
            q, k, v = qkv.chunk(3, dim=-1)
            q, k, v = self._heads(q), self._heads(k), self._heads(v)
            if rope is not None:
                q, k = apply_rope(q, rope), apply_rope(k, rope)
            if cache is not None:
                k, v = cache.update(k, v)
        else:
            q = F.linear(x, self.in_proj_weight[:self.dim]) if self.in_proj is None else self.in_proj(x)
            q = self._heads(q)
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
                attn_mask: torch.Tensor | None = None, cache: _LayerCache | None = None,
                rope: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x), attn_mask=attn_mask, cache=cache, rope=rope)
        if self.cross_attention is not None:
            x = x + self.cross_attention(self.norm_cross(x), memory=memory, kv=cross_kv)
        return self.feed_forward(x)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The residual feed-forward block, x [B, T, D] -> [B, T, D] (what ``torch.compile`` fuses)."""
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class Transformer(nn.Module):
    """A stack of :class:`TransformerLayer` (the ``transformer.layers.N`` keys of a checkpoint).

    rope: rotate self-attention queries and keys by their positions (no parameters: the state dict
        is the same either way).
    tempo_rope: with ``rope``, the odd channel pairs count beats at the ``tempo`` given to
        :meth:`forward` (module docstring; still no parameters).
    tempo_frequencies: with ``tempo_rope``, the odd pairs' speeds (:func:`beat_frequencies`), or
        None for rope's.
    """

    def __init__(self, dim: int, num_heads: int, num_layers: int, hidden_scale: int = 4,
                 cross_attention: bool = True, rope: bool = False, tempo_rope: bool = False,
                 tempo_frequencies: torch.Tensor | None = None):
        super().__init__()
        if rope and (dim // num_heads) % 2:
            raise ValueError(f"rotary embeddings need an even head dimension, got {dim} / {num_heads}")
        if tempo_rope and not rope:
            raise ValueError("tempo_rope turns rotary embeddings: it needs rope")
        if tempo_frequencies is not None and (not tempo_rope or tempo_frequencies.shape != ((dim // num_heads) // 4,)):
            raise ValueError("tempo_frequencies go with tempo_rope, one per odd channel pair (head_dim / 4)")
        self.rope, self.tempo_rope, self.head_dim = rope, tempo_rope, dim // num_heads
        self.tempo_frequencies = tempo_frequencies  # a plain attribute: no state-dict key
        self.layers = nn.ModuleList(
            TransformerLayer(dim, num_heads, hidden_scale, cross_attention) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None,
                cross_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
                attn_mask: torch.Tensor | None = None, cache: KVCache | RowKVCache | None = None,
                tempo: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, D] -> [B, T, D]; ``cross_kv`` optionally holds each layer's projected memory.

        With a :class:`KVCache`, x holds the T positions after the cached ones; ``attn_mask`` is
        then [T, cache.length + T]. The cache is advanced by T. With a :class:`RowKVCache`, x holds
        the positions ``cache.rows`` (or all of them) and ``attn_mask`` is over all positions.
        tempo: bpm [B] of each row for a ``tempo_rope`` transformer (None: 120, plain rope);
            ignored otherwise.
        """
        rope = None
        if self.rope:
            scale = None
            if self.tempo_rope and (tempo is not None or self.tempo_frequencies is not None):
                scale = tempo_scale(torch.full((x.shape[0],), REFERENCE_BPM) if tempo is None else tempo,
                                    x.shape[0], x.device)
            rope = rope_rotation(self.positions(x.shape[1], cache, x.device), self.head_dim, tempo_scale=scale,
                                 tempo_frequencies=self.tempo_frequencies if self.tempo_rope else None)
        for i, layer in enumerate(self.layers):
            x = layer(x, memory=memory, cross_kv=None if cross_kv is None else cross_kv[i], attn_mask=attn_mask,
                      cache=None if cache is None else cache.layer(i), rope=rope)
        if cache is not None:
            cache.advance(x.shape[1])
        return x

    @staticmethod
    def positions(length: int, cache: KVCache | RowKVCache | None, device: torch.device) -> torch.Tensor:
        """Positions of the ``length`` inputs: [T] after a :class:`KVCache`'s cached ones (from 0
        without), or a :class:`RowKVCache`'s ``rows`` [B, R] when set."""
        if isinstance(cache, RowKVCache) and cache.rows is not None:
            return cache.rows
        start = cache.length if isinstance(cache, KVCache) else 0
        return torch.arange(start, start + length, device=device)

    def cross_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's cross-attention keys/values for ``memory`` [B, S, D]: compute once, reuse per step."""
        return [layer.cross_attention.project_kv(memory) for layer in self.layers]
