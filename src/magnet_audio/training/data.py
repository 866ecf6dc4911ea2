"""Training data: audio datasets with text metadata, and a deterministic, resumable, sharded sampler.

A dataset is given as

* a **folder** scanned recursively for ``.wav``, ``.flac``, ``.mp3`` and ``.ogg`` files, each with an
  optional sidecar ``.json`` of the same stem holding audiocraft's ``MusicInfo`` metadata
  (``description``, ``genre``, ``moods``, ``keywords``, ``instrument``, ``bpm``, ``key``, ...), or
* a **.jsonl manifest**, one JSON object per line with ``path`` (absolute, or relative to the
  manifest's folder), optionally ``duration`` and ``sample_rate``, and the same metadata fields
  (audiocraft's ``AudioMeta`` lines, as ``magnet data synth`` writes them). A sidecar ``.json`` next
  to the audio file is read too; fields of the manifest line win.

Files that cannot be read, or that are shorter than the minimum duration, are skipped with a
warning and counted (:class:`ScanReport`); a run never crashes on them.

Descriptions follow audiocraft's ``augment_music_info_description``: with probability
``merge_text_p`` the metadata fields ``key``, ``bpm``, ``genre``, ``moods``, ``keywords`` and
``instrument`` (each kept with probability ``drop_other_p`` — audiocraft's name for it) are
shuffled and joined as ``"name: value"`` pairs, and the original description is dropped with
probability ``drop_desc_p``; the pieces are joined with ``". "``.

Sampling (:class:`EpochSampler`): epoch e visits the items in a permutation seeded by (seed, e);
rank r of W takes every W-th entry, so ranks see disjoint shards; every batch and every random
crop is a pure function of (seed, epoch, position), so a run resumes exactly from a batch count.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf
import torch

from ..audio import audio_read
from ..errors import InputError
from ..validation import finite_tensor, manifest_record

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
#: The metadata fields merged into descriptions, in audiocraft's ``MusicInfo`` field order.
MERGED_FIELDS = ("key", "bpm", "genre", "moods", "keywords", "instrument")


@dataclass
class AudioItem:
    """One audio file: where it is, how long, and its metadata (``info``: the sidecar/manifest fields)."""

    path: str
    duration: float
    sample_rate: int
    channels: int
    info: dict = field(default_factory=dict)


@dataclass
class ScanReport:
    """What a scan kept and skipped (each skipped file is also logged as a warning)."""

    kept: int = 0
    unreadable: int = 0
    too_short: int = 0
    skipped: list[str] = field(default_factory=list)  # "path: reason"

    def skip(self, path: str | Path, reason: str, kind: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.skipped.append(f"{path}: {reason}")
        logger.warning("skipping %s: %s", path, reason)

    def summary(self) -> str:
        return f"{self.kept} files kept, {self.unreadable} unreadable, {self.too_short} too short"


# ----------------------------------------------------------------------------------- metadata


def _keyword(value) -> str | None:
    if not isinstance(value, str) or not value or value == "None":
        return None
    return value.strip().lower()


def _keyword_list(value) -> list[str] | None:
    if isinstance(value, str):
        value = [v.strip() for v in re.split(r"[,\s]", value)]
    elif isinstance(value, float) and math.isnan(value):
        value = []
    if not isinstance(value, list):
        value = [str(value)]
    words = [k for k in (_keyword(v) for v in value) if k is not None]
    return words or None


def _musical_key(value) -> str | None:
    if not isinstance(value, str) or not value or value == "None" or "," in value:
        return None  # several keys: discarded, as audiocraft does
    return value.strip().lower()


def _bpm(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def normalize_info(info: dict) -> dict:
    """The metadata fields cleaned as audiocraft's ``MusicInfo.from_dict`` does: ``key`` lower-cased
    (None when several), ``bpm`` a float, ``genre``/``instrument`` lower-cased keywords,
    ``moods``/``keywords`` lists of lower-cased words, ``description`` stripped."""
    desc = info.get("description")
    return {
        "description": desc.strip() if isinstance(desc, str) and desc and desc != "None" else None,
        "key": _musical_key(info.get("key")),
        "bpm": _bpm(info.get("bpm")),
        "genre": _keyword(info.get("genre")),
        "moods": _keyword_list(info["moods"]) if "moods" in info else None,
        "keywords": _keyword_list(info["keywords"]) if "keywords" in info else None,
        "instrument": _keyword(info.get("instrument")),
    }


def make_description(info: dict, rng: random.Random | None = None, merge_text_p: float = 0.0,
                     drop_desc_p: float = 0.0, drop_other_p: float = 0.0) -> str | None:
    """The text condition of an item (None when it has none), as audiocraft's music dataset builds it.

    ``info`` is raw metadata (it is normalised here). Without merging, a description ``"calm
    piano"`` becomes ``"calm piano."`` exactly as in audiocraft (the empty metadata text is joined
    with ``". "`` and the result stripped).
    """
    rng = rng or random
    info = normalize_info(info)
    description = info["description"]
    metadata_text = ""
    if rng.uniform(0, 1) < merge_text_p:
        pairs = []
        for name in MERGED_FIELDS:
            value = info[name]
            if value is not None and rng.uniform(0, 1) < drop_other_p:
                text = ", ".join(value) if isinstance(value, list) else str(value)
                pairs.append(f"{name}: {text}")
        rng.shuffle(pairs)
        metadata_text = ". ".join(pairs)
        if rng.uniform(0, 1) < drop_desc_p:
            description = None
    if description is None:
        description = metadata_text if len(metadata_text) > 1 else None
    else:
        description = ". ".join([description.rstrip("."), metadata_text])
    return description.strip() if description else None


@dataclass
class DescriptionConfig:
    """Text augmentation of descriptions (audiocraft's ``text2music`` defaults: 0.25, 0.5, 0.5)."""

    merge_text_p: float = 0.25
    drop_desc_p: float = 0.5
    drop_other_p: float = 0.5

    def describe(self, info: dict, rng: random.Random) -> str | None:
        return make_description(info, rng, self.merge_text_p, self.drop_desc_p, self.drop_other_p)


# ----------------------------------------------------------------------------------- scanning


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        logger.warning("ignoring unreadable metadata %s: %s", path, exc)
        return {}
    return value if isinstance(value, dict) else {}


def _probe(path: Path, report: ScanReport, min_duration: float, info: dict) -> AudioItem | None:
    try:
        meta = sf.info(str(path))
        duration = meta.frames / meta.samplerate if meta.frames > 0 else 0.0
    except (sf.SoundFileError, RuntimeError, OSError, ValueError) as exc:
        report.skip(path, f"cannot read ({exc})", "unreadable")
        return None
    if duration < min_duration or duration <= 0:
        report.skip(path, f"{duration:.2f} s is shorter than {min_duration:.2f} s", "too_short")
        return None
    report.kept += 1
    return AudioItem(str(path), duration, int(meta.samplerate), int(meta.channels), info)


def scan_folder(root: str | Path, min_duration: float = 0.0) -> tuple[list[AudioItem], ScanReport]:
    """All audio files under ``root`` (sorted by path) with their sidecar metadata."""
    root = Path(root)
    report = ScanReport()
    items = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()):
        sidecar = path.with_suffix(".json")
        item = _probe(path, report, min_duration, _read_json(sidecar) if sidecar.is_file() else {})
        if item is not None:
            items.append(item)
    return items, report


def read_manifest(manifest: str | Path, min_duration: float = 0.0) -> tuple[list[AudioItem], ScanReport]:
    """Items of a ``.jsonl`` manifest (see the module docstring); bad lines are skipped and counted."""
    manifest = Path(manifest)
    report = ScanReport()
    items = []
    try:
        raw = manifest.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read manifest {manifest}: {exc.strerror or exc}") from None
    for number, data in enumerate(raw.splitlines(), 1):
        try:
            line = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            report.skip(f"{manifest}:{number}", f"not UTF-8 text ({exc.reason} at byte {exc.start})", "unreadable")
            continue
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            rel = manifest_record(entry, f"{manifest}:{number}")
        except json.JSONDecodeError as exc:
            report.skip(f"{manifest}:{number}", f"not a JSON manifest line ({exc})", "unreadable")
            continue
        except InputError as exc:
            report.skip(f"{manifest}:{number}", str(exc).split(": ", 1)[-1], "unreadable")
            continue
        path = Path(rel) if Path(rel).is_absolute() else manifest.parent / rel
        try:
            sidecar = path.with_suffix(".json")
        except ValueError as exc:  # "dir/..": no file name
            report.skip(f"{manifest}:{number}", f"'path' {rel!r} names no file ({exc})", "unreadable")
            continue
        info = _read_json(sidecar) if sidecar.is_file() else {}
        info.update({k: v for k, v in entry.items() if k not in ("path", "duration", "sample_rate")})
        item = _probe(path, report, min_duration, info)
        if item is not None:
            items.append(item)
    return items, report


def load_items(source: str | Path, min_duration: float = 0.0) -> tuple[list[AudioItem], ScanReport]:
    """A folder or a ``.jsonl`` manifest -> (items, report); :class:`InputError` if there is none."""
    path = Path(source).expanduser()
    if path.is_dir():
        items, report = scan_folder(path, min_duration)
    elif path.is_file() and path.suffix == ".jsonl":
        items, report = read_manifest(path, min_duration)
    else:
        raise InputError(f"dataset {source}: expected a folder of audio files or a .jsonl manifest")
    if report.unreadable or report.too_short:
        logger.warning("dataset %s: %s", source, report.summary())
    if not items:
        raise InputError(f"dataset {source} has no usable audio file ({report.summary()}; "
                         f"formats: {', '.join(AUDIO_EXTENSIONS)})")
    return items, report


def split_items(items: list, valid_fraction: float, seed: int) -> tuple[list, list]:
    """Hold out round(n * valid_fraction) items (at least one when n > 1) chosen with ``seed``."""
    if not 0.0 <= valid_fraction < 1.0:
        raise InputError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    n = len(items)
    n_valid = min(max(1, round(n * valid_fraction)), n - 1) if valid_fraction > 0 and n > 1 else 0
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held = set(order[:n_valid])
    return [x for i, x in enumerate(items) if i not in held], [x for i, x in enumerate(items) if i in held]


# ----------------------------------------------------------------------------------- sampling


def sub_seed(*values: int) -> int:
    """A 63-bit seed mixing integers (numpy's SeedSequence): stable across runs and platforms."""
    state = np.random.SeedSequence([int(v) & 0xFFFFFFFF for v in values]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


@dataclass
class EpochSampler:
    """Which items make up each batch of each rank: deterministic in (seed, epoch, batch).

    An epoch is a permutation of ``max(num_items, world * batch_size)`` entries (items repeated
    when the dataset is smaller than one global batch); rank r takes entries r, r+W, r+2W, ...
    and splits them into ``batches_per_epoch`` batches (the remainder is dropped).
    """

    num_items: int
    batch_size: int
    seed: int
    rank: int = 0
    world_size: int = 1

    def __post_init__(self):
        if self.num_items < 1:
            raise InputError("the dataset is empty")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {self.batch_size}")
        self.epoch_len = max(self.num_items, self.world_size * self.batch_size)
        self.batches_per_epoch = self.epoch_len // self.world_size // self.batch_size

    def _permutation(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng(sub_seed(self.seed, epoch))
        reps = -(-self.epoch_len // self.num_items)
        return np.concatenate([rng.permutation(self.num_items) for _ in range(reps)])[:self.epoch_len]

    def batch(self, position: int) -> tuple[int, list[int]]:
        """The ``position``-th batch (counted from the start of training) of this rank:
        (epoch, item indices)."""
        epoch, index = divmod(position, self.batches_per_epoch)
        shard = self._permutation(epoch)[self.rank::self.world_size]
        return epoch, [int(i) for i in shard[index * self.batch_size:(index + 1) * self.batch_size]]


class BatchStream:
    """Batches ``make(position)`` for position = start, start+1, ... — in this process, or in
    ``num_workers`` DataLoader workers (order preserved, results identical)."""

    def __init__(self, make: Callable[[int], object], start: int = 0, num_workers: int = 0):
        self.make, self.start, self.num_workers = make, start, num_workers

    def __iter__(self) -> Iterator:
        if self.num_workers <= 0:
            position = self.start
            while True:
                yield self.make(position)
                position += 1
        # an own generator: the loader draws its workers' base seed from it, not from the global RNG
        loader = torch.utils.data.DataLoader(_Positions(self.make, self.start), batch_size=None,
                                             num_workers=self.num_workers, generator=torch.Generator().manual_seed(0))
        yield from loader


class _Positions(torch.utils.data.Dataset):
    def __init__(self, make: Callable[[int], object], start: int):
        self.make, self.start = make, start

    def __len__(self) -> int:
        return 2 ** 62

    def __getitem__(self, index: int):
        return self.make(self.start + index)


# ----------------------------------------------------------------------------------- audio segments


class AudioSegments:
    """Random ``segment_duration`` crops of audio items, resampled to ``sample_rate`` with
    ``channels`` channels (zero-padded at the end when an item is shorter).

    ``segment(index, seed)`` reads item ``index`` at an offset drawn from ``seed``; an item that fails
    to read is skipped with a warning (counted in :attr:`read_errors`) and the next one is used.
    """

    def __init__(self, items: list[AudioItem], segment_duration: float, sample_rate: int, channels: int,
                 descriptions: DescriptionConfig | None = None):
        if not items:
            raise InputError("no audio items")
        self.items, self.segment_duration = items, segment_duration
        self.sample_rate, self.channels = sample_rate, channels
        self.descriptions = descriptions or DescriptionConfig(0.0, 0.0, 0.0)
        self.read_errors = 0

    def __len__(self) -> int:
        return len(self.items)

    def segment(self, index: int, seed: int) -> tuple[torch.Tensor, str | None]:
        """(audio [C, T] with T = round(segment_duration * sample_rate), description)."""
        rng = random.Random(seed)
        length = int(round(self.segment_duration * self.sample_rate))
        for attempt in range(len(self.items)):
            item = self.items[(index + attempt) % len(self.items)]
            seek = rng.uniform(0, max(0.0, item.duration - self.segment_duration))
            try:
                wav, _ = audio_read(item.path, seek=seek, duration=self.segment_duration, pad=True,
                                    sample_rate=self.sample_rate, channels=self.channels)
                finite_tensor(wav, str(item.path))  # NaN audio is skipped like unreadable audio, by name
            except InputError as exc:
                self.read_errors += 1
                logger.warning("skipping %s: %s", item.path, exc)
                continue
            wav = torch.nn.functional.pad(wav, (0, max(0, length - wav.shape[-1])))[..., :length]
            return wav, self.descriptions.describe(item.info, rng)
        raise InputError("no audio file of the dataset could be read")

    def batch(self, indices: list[int], seeds: list[int]) -> tuple[torch.Tensor, list[str | None]]:
        """(audio [B, C, T], descriptions) of items ``indices`` with crop seeds ``seeds``."""
        pairs = [self.segment(i, s) for i, s in zip(indices, seeds)]
        return torch.stack([w for w, _ in pairs]), [d for _, d in pairs]
