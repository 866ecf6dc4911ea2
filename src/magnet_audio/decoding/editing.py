"""Frame arithmetic of masked editing: where each decoding window of an edit lies and which of its
frames it generates.

An edit (inpainting, outpainting, variations: :mod:`magnet_audio.editing`) is decoding with frozen
tokens (:func:`~.magnet.generate_codes` with ``codes`` + ``frozen``): every frame outside the edited
regions is frozen. The LM sees one window of ``window`` frames at a time, so an edit of a clip
longer than that is done in windows:

* regions whose union (from the first start to the last end) fits in a window are decoded in one
  window centred on them, so that they get context on both sides (clamped to the clip);
* a region longer than a window is decoded in pieces, each in a window that starts ``context``
  frames before the piece (what the previous piece generated, as long-form generation does) and
  ends at most a window later.

Regions are widened to the span grid of their window (``unit`` frames from the window's first
frame, the ``nonoverlap`` spans that decoding re-masks as a whole), never beyond the window.
Pure functions of integers; no tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Frames = tuple[int, int]  # [start, end) in frames


@dataclass(frozen=True)
class Window:
    """One decoding pass of an edit: frames [start, start + length) of the (extended) clip, of which
    the ``free`` ranges [a, b) (absolute frames, span-aligned within the window) are generated."""

    start: int
    length: int
    free: tuple[Frames, ...]


def seconds_to_frames(start_s: float, end_s: float, frame_rate: float, offset: int = 0) -> Frames:
    """The frames [a, b) that cover [start_s, end_s) seconds (a frame touched at all is in; at least
    one), plus ``offset`` (the frames prepended before second 0)."""
    eps = 1e-6  # 0.1 s * 50 Hz is 5.000000000000001 frames, not 6
    a = math.floor(start_s * frame_rate + eps)
    return (a + offset, max(math.ceil(end_s * frame_rate - eps), a + 1) + offset)  # at least one frame


def frames_to_seconds(frames: Frames, frame_rate: float, offset: int = 0) -> tuple[float, float]:
    """Inverse of :func:`seconds_to_frames` on the frame grid: [a, b) -> seconds from second 0."""
    return ((frames[0] - offset) / frame_rate, (frames[1] - offset) / frame_rate)


def round_up(n: int, unit: int) -> int:
    """``n`` rounded up to a multiple of ``unit``."""
    return -(-n // unit) * unit


def merge(ranges: list[Frames]) -> list[Frames]:
    """Sorted ranges with the overlapping and touching ones merged."""
    out: list[Frames] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def align(region: Frames, start: int, unit: int, end: int) -> Frames:
    """``region`` widened to the grid of ``unit`` frames from frame ``start``, cut at ``end``."""
    a, b = region
    return (start + (a - start) // unit * unit, min(start + round_up(b - start, unit), end))


def plan_windows(regions: list[Frames], total: int, window: int, unit: int, context: int) -> list[Window]:
    """The decoding windows of an edit of ``regions`` (non-overlapping frame ranges within
    [0, total)) in a clip of ``total`` frames (a multiple of ``unit``), with windows of at most
    ``window`` frames (a multiple of ``unit``), each later piece of a long region prompted by the
    ``context`` frames before it (0 < context < window)."""
    if total % unit or window % unit or not 0 < context < window:
        raise ValueError(f"bad edit geometry: total {total}, window {window}, unit {unit}, context {context}")
    W = min(window, total)
    groups: list[list[Frames]] = []
    for region in sorted(regions):
        if groups and region[1] - groups[-1][0][0] <= W:
            groups[-1].append(region)
        else:
            groups.append([region])
    windows = []
    for group in groups:
        a, b = group[0][0], max(r[1] for r in group)
        if b - a <= W:  # one window, centred on the regions
            s = min(max((a + b - W) // 2, 0), total - W)
            windows.append(Window(s, W, tuple(merge([align(r, s, unit, s + W) for r in group]))))
            continue
        cur = a
        while cur < b:  # a long region: pieces, each after `context` frames of the previous one
            s = min(max(cur - context, 0), total - W)
            end = min(b, s + W)
            windows.append(Window(s, W, (align((cur, end), s, unit, s + W),)))
            cur = end
    return windows


def used_regions(windows: list[Window]) -> list[Frames]:
    """The frames an edit generated: the union of its windows' free ranges."""
    return merge([r for w in windows for r in w.free])
