"""Beat-locked decoding: the same span of tokens on every beat of the prompt's tempo.

A small LM may learn what a prompt sounds like but not to keep a beat (the default model's clips
have no steady pulse, see its model card). Beat locking imposes one: before a codebook's iterative
steps, one guided pass predicts every frame with the codebook all masked; the first frames of each
beat (``spans`` spans of ``span_len`` frames from the one nearest the beat) then all get, per
offset within the beat's frames, the token of the highest mean log-probability over the beats (the
most likely token at all of them), and are kept while the steps fill the rest around them. Every
beat thus starts with the same short sound, chosen by the LM. Spans longer than a beat overlap the
next beat's, which wins.

Pure functions here; :func:`~magnet_audio.decoding.magnet.generate_codes` applies them, with the
tempo read from the prompt by :func:`magnet_audio.conditioning.tempo.prompt_tempi`.
"""

from __future__ import annotations

import torch

NOT_TIED = -1  # offset of the frames outside the beat spans


def beat_spans(bpm: torch.Tensor, length: int, frame_rate: float, span_len: int, first_frame: int = 0,
               spans: int = 1) -> torch.Tensor:
    """The frames tied on each beat: offsets [B, length] (long), j in 0..W-1 (W = spans * span_len)
    for the j-th frame of a beat's span, :data:`NOT_TIED` elsewhere and in rows whose bpm is NaN.

    bpm [B]: tempo of each row (the first beat at frame 0 of the piece).
    first_frame: index in the piece of this call's first frame (a later window of long-form generation).
    Spans lie on the grid of ``span_len`` frames from the start of the piece: beat n ties the
    frames [s, s + W) of the grid span whose start s is within span_len / 2 of its frame, so that
    each beat has one grid span and each grid span at most one beat.
    """
    bpm = bpm.double()
    B = bpm.shape[0]
    offsets = torch.full((B, length), NOT_TIED, dtype=torch.long)
    if length == 0:
        return offsets
    width = span_len * spans
    first_span = max(first_frame - width + 1, 0) // span_len  # the first grid span whose beat span reaches here
    n_spans = (first_frame + length - 1) // span_len - first_span + 1
    starts = (torch.arange(n_spans, dtype=torch.float64) + first_span) * span_len  # [S] in frames of the piece
    half = span_len / 2
    beats_per_frame = (bpm / 60.0 / frame_rate)[:, None]  # [B, 1]
    # a beat n lies in (s - half, s + half] iff floor((s + half) * r) > floor((s - half) * r) (r = beats/frame)
    hit = torch.floor((starts + half) * beats_per_frame) > torch.floor((starts - half) * beats_per_frame)  # [B, S]
    hit &= ~torch.isnan(bpm)[:, None]
    frames = starts.long()[:, None] + torch.arange(width)[None, :] - first_frame  # [S, W] local frame indices
    inside = (frames >= 0) & (frames < length)
    for b in range(B):
        at = frames[hit[b]]  # [n, W]
        ok = inside[hit[b]]
        offsets[b, at[ok]] = torch.arange(width).expand_as(at)[ok]
    return offsets


def pooled_beat_logprobs(logprobs: torch.Tensor, offsets: torch.Tensor, span_len: int) -> torch.Tensor:
    """Mean log-probabilities over the beats: logprobs [B, T, card], offsets [B, T] (from
    :func:`beat_spans`) -> [B, span_len, card], the mean of the frames at each offset of the beat
    spans (zeros, a uniform distribution, at offsets no frame has)."""
    B, T, card = logprobs.shape
    onehot = torch.zeros(B, T, span_len, dtype=logprobs.dtype, device=logprobs.device)
    tied = offsets != NOT_TIED
    onehot[tied] = torch.nn.functional.one_hot(offsets[tied], span_len).to(logprobs.dtype)
    sums = torch.einsum("btj,btc->bjc", onehot, logprobs)
    counts = onehot.sum(dim=1).clamp(min=1)[..., None]  # [B, L, 1]
    return sums / counts
