"""The token cache: audio encoded once by the codec, so LM training never runs the encoder.

Layout of a cache directory::

    cache.json      codec source, sample_rate, frame_rate, n_q, card, channels, dataset source, counts
    index.jsonl     one line per encoded file: {"path", "codes": "codes/000012.npy", "frames", "info"}
    codes/*.npy     codes [K, frames] of one file (uint16 when card <= 65536, else int32)

``tokenize`` is resumable: each file's codes are written to a temporary file and renamed, then its
index line is appended and flushed, so after a crash at most the file being encoded is redone (a
torn last index line is ignored). Running it again on a grown folder encodes only the new files.
Long files are encoded in chunks of ``chunk_seconds`` (whole frames) so memory stays bounded.

:class:`TokenCrops` serves random crops of ``segment_frames`` frames with their descriptions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..audio import audio_read
from ..codec import load_compression_model
from ..errors import InputError
from ..validation import finite_tensor
from .data import AudioItem, DescriptionConfig, load_items, normalize_info

logger = logging.getLogger(__name__)

CACHE_FILE = "cache.json"
INDEX_FILE = "index.jsonl"
CACHE_VERSION = 1


@dataclass
class CacheMeta:
    """What a cache was made with (``cache.json``); a resumed run must use the same codec."""

    codec: str
    sample_rate: int
    frame_rate: float
    n_q: int
    card: int
    channels: int
    source: str
    version: int = CACHE_VERSION
    files: int = 0
    unreadable: int = 0
    too_short: int = 0
    complete: bool = False

    def same_codec(self, other: "CacheMeta") -> bool:
        keys = ("codec", "sample_rate", "frame_rate", "n_q", "card", "channels", "source")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


def is_token_cache(path: str | os.PathLike) -> bool:
    return (Path(path) / CACHE_FILE).is_file()


def _read_index(cache_dir: Path, repair: bool = False) -> list[dict]:
    """Index lines. A torn (partially written) last line is ignored, and with ``repair`` removed
    from the file so that appending can go on."""
    path = cache_dir / INDEX_FILE
    if not path.is_file():
        return []
    entries = []
    text = path.read_text()
    lines = text.splitlines()
    torn = False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            if number != len(lines):
                raise InputError(f"{path}:{number} is corrupt (not JSON); delete the cache and tokenize again")
            logger.warning("%s: ignoring a torn last line (interrupted write)", path)
            torn = True
    if repair and (torn or (text and not text.endswith("\n"))):
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
        os.replace(tmp, path)
    return entries


def _write_meta(cache_dir: Path, meta: CacheMeta) -> None:
    tmp = cache_dir / f"{CACHE_FILE}.tmp"
    tmp.write_text(json.dumps(asdict(meta), indent=2) + "\n")
    os.replace(tmp, cache_dir / CACHE_FILE)


def _encode_file(codec, item: AudioItem, chunk_frames: int, batch_chunks: int) -> np.ndarray:
    """Codes [K, frames] of a whole file, frames = ceil(samples / hop) at the codec's rate."""
    hop = codec.hop_length
    chunk_seconds = chunk_frames / codec.frame_rate
    device = next(codec.parameters()).device
    n_chunks = max(1, int(np.ceil(item.duration / chunk_seconds)))
    pieces: list[torch.Tensor] = []
    full: list[torch.Tensor] = []

    def flush():
        if full:
            codes, _ = codec.encode(torch.stack(full).to(device))  # [n, K, chunk_frames]
            pieces.extend(codes.cpu())
            full.clear()

    for c in range(n_chunks):
        wav, _ = audio_read(item.path, seek=c * chunk_seconds, duration=chunk_seconds,
                            sample_rate=codec.sample_rate, channels=codec.channels)
        if wav.shape[-1] == 0:
            break
        finite_tensor(wav, f"its audio at {c * chunk_seconds:.1f} s")  # NaN would encode to all-zero codes
        if wav.shape[-1] >= chunk_frames * hop:
            full.append(wav[..., :chunk_frames * hop])
            if len(full) == batch_chunks:
                flush()
        else:  # the last, shorter chunk
            flush()
            codes, _ = codec.encode(wav[None].to(device))
            pieces.append(codes[0].cpu())
    flush()
    if not pieces:
        raise InputError(f"{item.path}: no audio")
    return torch.cat(pieces, dim=-1).numpy()


class CacheWriter:
    """Appends encoded files to a cache directory, crash-safely (see the module docstring).

    Opening an existing cache checks that it was made with the same codec and source (``meta``);
    :attr:`done` holds the paths already in it. Use as a context manager; :meth:`finish` records
    the counts and marks the cache complete.
    """

    def __init__(self, out: str | os.PathLike, meta: CacheMeta):
        self.out, self.meta = Path(out), meta
        if is_token_cache(self.out):
            old = load_meta(self.out)
            if not old.same_codec(meta):
                raise InputError(f"{out} holds a token cache made from {old.source} with codec {old.codec!r} "
                                 f"({old.n_q}x{old.card} @ {old.frame_rate} Hz); use another folder for "
                                 f"{meta.source} with {meta.codec!r}")
        (self.out / "codes").mkdir(parents=True, exist_ok=True)
        _write_meta(self.out, meta)
        self.done = {e["path"] for e in _read_index(self.out, repair=True)}
        self.count = len(self.done)
        self.dtype = np.uint16 if meta.card <= 65536 else np.int32
        self._index = open(self.out / INDEX_FILE, "a")

    def add(self, path: str, codes: np.ndarray, info: dict) -> None:
        """Store codes [K, frames] of the file ``path`` with its metadata."""
        if codes.ndim != 2 or codes.shape[0] != self.meta.n_q:
            raise ValueError(f"codes must be [{self.meta.n_q}, frames], got {codes.shape}")
        rel = f"codes/{self.count:06d}.npy"
        tmp = self.out / f"{rel}.tmp.npy"
        np.save(tmp, codes.astype(self.dtype))
        os.replace(tmp, self.out / rel)
        line = {"path": path, "codes": rel, "frames": int(codes.shape[-1]), "info": info}
        self._index.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._index.flush()
        os.fsync(self._index.fileno())
        self.done.add(path)
        self.count += 1

    def finish(self, unreadable: int = 0, too_short: int = 0) -> CacheMeta:
        self.meta.files, self.meta.unreadable, self.meta.too_short = self.count, unreadable, too_short
        self.meta.complete = True
        _write_meta(self.out, self.meta)
        return self.meta

    def __enter__(self) -> "CacheWriter":
        return self

    def __exit__(self, *exc) -> None:
        self._index.close()


def tokenize(source: str | os.PathLike, codec_name: str, out: str | os.PathLike,
             device: str | torch.device | None = None, chunk_seconds: float = 60.0, batch_chunks: int = 8,
             min_duration: float = 0.0, progress: bool = True, codec=None) -> CacheMeta:
    """Encode every usable audio file of ``source`` (folder or .jsonl manifest) into the cache ``out``.

    Args:
        codec_name: the codec (hub id, directory or file :func:`load_compression_model` reads),
            recorded in ``cache.json``; ``codec`` may pass the already-loaded model.
        chunk_seconds: files are encoded in chunks of this length (rounded to whole frames).
        batch_chunks: chunks of one file encoded together.
        min_duration: shorter files are skipped (and counted).
    Returns the cache's :class:`CacheMeta` (``complete`` once every file is in).
    """
    codec = codec if codec is not None else load_compression_model(codec_name, device=device)
    items, report = load_items(source, min_duration)
    meta = CacheMeta(codec=str(codec_name), sample_rate=codec.sample_rate, frame_rate=float(codec.frame_rate),
                     n_q=codec.num_codebooks, card=codec.cardinality, channels=codec.channels,
                     source=str(Path(source).expanduser().resolve()))
    chunk_frames = max(1, int(round(chunk_seconds * codec.frame_rate)))
    fresh = not is_token_cache(out)
    with CacheWriter(out, meta) as writer, torch.no_grad():
        done = {os.path.realpath(p) for p in writer.done}  # the same file by another path is not added again
        todo = [item for item in items if os.path.realpath(item.path) not in done]
        for item in tqdm(todo, desc="tokenize", unit="file", disable=not progress):
            try:
                codes = _encode_file(codec, item, chunk_frames, batch_chunks)
            except InputError as exc:
                report.skip(item.path, str(exc), "unreadable")
                continue
            writer.add(item.path, codes, item.info)
        if writer.count == 0:  # nothing encodable: no empty cache left behind to train on
            writer._index.close()
            if fresh:
                for name in (CACHE_FILE, INDEX_FILE):
                    (Path(out) / name).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    (Path(out) / "codes").rmdir()
            raise InputError(f"no file of {source} could be tokenized: {'; '.join(report.skipped[:3])}"
                             + (f"; and {len(report.skipped) - 3} more" if len(report.skipped) > 3 else ""))
        return writer.finish(report.unreadable, report.too_short)


def load_meta(cache_dir: str | os.PathLike) -> CacheMeta:
    path = Path(cache_dir) / CACHE_FILE
    try:
        return CacheMeta(**json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise InputError(f"{cache_dir} is not a readable token cache ({path}: {exc})") from exc


class TokenCache:
    """A cache directory opened for reading: :attr:`meta` and :attr:`entries` (index lines)."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.dir = Path(cache_dir).expanduser()
        if not is_token_cache(self.dir):
            raise InputError(f"{cache_dir} is not a token cache (no {CACHE_FILE}); make one with `magnet tokenize`")
        self.meta = load_meta(self.dir)
        if not self.meta.complete:
            logger.warning("token cache %s is incomplete (tokenize was interrupted); using what is there", self.dir)
        self.entries = _read_index(self.dir)
        if not self.entries:
            raise InputError(f"token cache {cache_dir} is empty")
        self._arrays: dict[str, np.ndarray] = {}

    def codes(self, entry: dict) -> np.ndarray:
        """Codes [K, frames] of an index entry (memory-mapped)."""
        rel = entry["codes"]
        if rel not in self._arrays:
            self._arrays[rel] = np.load(self.dir / rel, mmap_mode="r")
        return self._arrays[rel]


class TokenCrops:
    """Random crops of ``segment_frames`` frames from cache ``entries`` (shorter entries are skipped
    with a warning and counted in :attr:`too_short`), with their descriptions."""

    def __init__(self, cache: TokenCache, entries: list[dict], segment_frames: int,
                 descriptions: DescriptionConfig | None = None):
        self.cache, self.segment_frames = cache, segment_frames
        self.descriptions = descriptions or DescriptionConfig(0.0, 0.0, 0.0)
        self.entries = [e for e in entries if e["frames"] >= segment_frames]
        self.too_short = len(entries) - len(self.entries)
        for e in entries:
            if e["frames"] < segment_frames:
                logger.warning("skipping %s: %d frames < %d (the segment)", e["path"], e["frames"], segment_frames)
        if not self.entries:
            raise InputError(f"no file of token cache {cache.dir} is at least {segment_frames} frames long")

    def __len__(self) -> int:
        return len(self.entries)

    def crop(self, index: int, seed: int) -> tuple[torch.Tensor, str | None]:
        """(codes [K, segment_frames] int64, description) of entry ``index`` at an offset drawn from ``seed``."""
        codes, description, _ = self._crop(index, seed)
        return codes, description

    def _crop(self, index: int, seed: int) -> tuple[torch.Tensor, str | None, int]:
        rng = random.Random(seed)
        entry = self.entries[index]
        start = rng.randint(0, entry["frames"] - self.segment_frames)
        codes = np.asarray(self.cache.codes(entry)[:, start:start + self.segment_frames], dtype=np.int64)
        return torch.from_numpy(codes), self.descriptions.describe(entry.get("info", {}), rng), start

    def tempo(self, index: int) -> float:
        """The bpm of entry ``index`` from its metadata (``info.bpm``), NaN where it has none."""
        bpm = normalize_info(self.entries[index].get("info") or {})["bpm"]
        return bpm if bpm is not None and math.isfinite(bpm) and bpm > 0 else math.nan

    def batch(self, indices: list[int], seeds: list[int]) -> tuple[torch.Tensor, list[str | None], torch.Tensor]:
        """(codes [B, K, segment_frames], descriptions, tempi [B, 2]): each file's bpm (NaN where
        unknown) and the beat at the crop's first frame (its files start on a beat, as the
        synthetic renders do: offset x bpm / 60 / frame rate; NaN where the bpm is unknown)."""
        crops = [self._crop(i, s) for i, s in zip(indices, seeds)]
        bpm = torch.tensor([self.tempo(i) for i in indices], dtype=torch.float64)
        starts = torch.tensor([start for _, _, start in crops], dtype=torch.float64)
        beat0 = starts * bpm / (60.0 * self.cache.meta.frame_rate)
        tempi = torch.stack([bpm, beat0], dim=1).float()
        return torch.stack([c for c, _, _ in crops]), [d for _, d, _ in crops], tempi
