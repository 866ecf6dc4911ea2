"""The dataset builder: one clip per (seed, index), rendered in worker processes, written with
its metadata and manifests (see the package docstring for the layout)."""

from __future__ import annotations

import json
import multiprocessing as mp
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from ...errors import InputError
from .captions import keywords, make_caption
from .composer import compose
from .corpus import CorpusSource
from .render import INSTALL_PYTHON, Renderer, check_dependencies, is_silent, normalize
from .spec import PieceSpec, sample_synth_spec


def clip_seed(seed: int, index: int, attempt: int = 0) -> int:
    """The RNG seed of one clip attempt: a function of (seed, index, attempt) only."""
    return int(np.random.SeedSequence([seed % 2**63, index, attempt]).generate_state(1)[0])


@dataclass
class SynthConfig:
    out: str
    n_clips: int
    seed: int = 0
    sample_rate: int = 32000
    clip_seconds: float = 10.0
    heldout: float = 0.05
    soundfont: str | None = None
    corpus_fraction: float = 0.2
    write_midi: bool = True
    subtype: str = "PCM_16"


_WORKER: dict = {}


def _worker_init(cfg: SynthConfig, soundfont: str) -> None:
    _WORKER["cfg"] = cfg
    _WORKER["renderer"] = Renderer(soundfont, cfg.sample_rate)
    _WORKER["corpus"] = None


def _corpus() -> CorpusSource:
    if _WORKER.get("corpus") is None:
        _WORKER["corpus"] = CorpusSource()
    return _WORKER["corpus"]


def make_clip(index: int, split: str) -> dict:
    """Compose, render and write clip ``index``; returns its manifest entry."""
    cfg: SynthConfig = _WORKER["cfg"]
    renderer: Renderer = _WORKER["renderer"]
    last_error = None
    for attempt in range(20):
        rng = random.Random(clip_seed(cfg.seed, index, attempt))
        use_corpus = cfg.corpus_fraction > 0 and rng.random() < cfg.corpus_fraction
        try:
            if use_corpus:
                spec, pm = _corpus().sample(rng, index, cfg.seed, cfg.clip_seconds)
            else:
                spec = sample_synth_spec(rng, index, cfg.seed, cfg.clip_seconds)
                pm = compose(spec, rng)
        except InputError:
            raise
        except Exception as exc:  # an unparsable corpus piece, say: draw another piece
            last_error = exc
            continue
        wav = renderer.render(pm, cfg.clip_seconds)
        if is_silent(wav, cfg.sample_rate):
            last_error = "silent render"
            continue
        wav = normalize(wav)
        caption = make_caption(spec, random.Random(clip_seed(cfg.seed, index, 1000 + attempt)))
        break
    else:
        raise RuntimeError(f"clip {index}: no usable piece in 20 attempts (last: {last_error})")

    out_dir = Path(cfg.out) / split
    stem = f"{index:06d}"
    sf.write(out_dir / f"{stem}.wav", wav, cfg.sample_rate, subtype=cfg.subtype, format="WAV")
    if cfg.write_midi:
        pm.write(str(out_dir / f"{stem}.mid"))
    meta = clip_metadata(spec, caption, cfg)
    (out_dir / f"{stem}.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    entry = {"path": f"{split}/{stem}.wav", "duration": float(cfg.clip_seconds), "sample_rate": cfg.sample_rate,
             "amplitude": None, "weight": None, "info_path": None}
    entry.update({k: v for k, v in meta.items() if k not in entry})
    return entry


def clip_metadata(spec: PieceSpec, caption: str, cfg: SynthConfig) -> dict:
    """The JSON sidecar (audiocraft ``MusicInfo`` fields plus the spec)."""
    spec_dict = spec.to_dict()
    return {
        "title": spec.title,
        "artist": spec.artist,
        "description": caption,
        "genre": spec.genre,
        "style": spec.style,
        "moods": list(spec.moods),
        "instrument": ", ".join(spec.instruments),
        "instruments": spec.instruments,
        "bpm": spec.bpm,
        "key": spec.key,
        "meter": f"{spec.meter[0]}/{spec.meter[1]}",
        "keywords": keywords(spec),
        "duration": float(cfg.clip_seconds),
        "sample_rate": cfg.sample_rate,
        "source": spec.source if spec.source == "synth" else f"music21:{spec.origin}",
        "seed": cfg.seed,
        "spec": spec_dict,
    }


def split_of(n_clips: int, heldout: float, seed: int) -> list[str]:
    """'train' or 'heldout' per clip index: round(n * heldout) clips (at least one if heldout > 0 and n > 1)."""
    n_held = int(round(n_clips * heldout))
    if heldout > 0 and n_clips > 1:
        n_held = max(1, n_held)
    n_held = min(n_held, n_clips - 1) if n_clips > 1 else 0
    order = list(range(n_clips))
    random.Random(clip_seed(seed, 2**32)).shuffle(order)
    held = set(order[:n_held])
    return ["heldout" if i in held else "train" for i in range(n_clips)]


def synthesize(cfg: SynthConfig, workers: int = 1, progress: bool = True, overwrite: bool = False) -> dict:
    """Build the dataset; returns {"train": n, "heldout": n, "seconds": wall time}."""
    if cfg.n_clips < 1:
        raise InputError("nothing to make: --hours (or --clips) gives 0 clips")
    if cfg.clip_seconds <= 0 or cfg.sample_rate < 8000:
        raise InputError("--clip-seconds must be > 0 and --sample-rate >= 8000")
    if not 0 <= cfg.heldout < 1:
        raise InputError(f"--heldout must be in [0, 1), got {cfg.heldout}")
    if not 0 <= cfg.corpus_fraction <= 1:
        raise InputError(f"--corpus-fraction must be in [0, 1], got {cfg.corpus_fraction}")
    soundfont = str(check_dependencies(cfg.soundfont))
    if cfg.corpus_fraction > 0:
        try:
            import music21  # noqa: F401
        except ImportError as exc:
            raise InputError(f"the music21 corpus source needs music21: {INSTALL_PYTHON}, "
                             "or pass --corpus-fraction 0") from exc
    out = Path(cfg.out)
    targets = [out / "train", out / "heldout", out / "train.jsonl", out / "heldout.jsonl"]
    if any(t.exists() for t in targets):
        if not overwrite:
            raise InputError(f"{out} already holds a dataset; pass --overwrite to replace it")
        for t in targets:
            if t.is_dir():
                shutil.rmtree(t)
            elif t.exists():
                t.unlink()
    try:
        for split in ("train", "heldout"):
            (out / split).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write to {out}: {exc.strerror or exc}") from exc

    splits = split_of(cfg.n_clips, cfg.heldout, cfg.seed)
    jobs = list(enumerate(splits))
    start = time.time()
    entries: dict[int, dict] = {}
    bar = tqdm(total=len(jobs), desc="synth", unit="clip", disable=not progress)
    if workers <= 1:
        _worker_init(cfg, soundfont)
        for index, split in jobs:
            entries[index] = make_clip(index, split)
            bar.update()
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_worker_init, initargs=(cfg, soundfont)) as pool:
            for index, entry in pool.imap_unordered(_make_clip_star, jobs, chunksize=4):
                entries[index] = entry
                bar.update()
    bar.close()
    counts = {}
    for split in ("train", "heldout"):
        lines = [json.dumps(entries[i], ensure_ascii=False) for i in sorted(entries) if splits[i] == split]
        (out / f"{split}.jsonl").write_text("".join(line + "\n" for line in lines))
        counts[split] = len(lines)
    counts["seconds"] = round(time.time() - start, 2)
    return counts


def _make_clip_star(job: tuple[int, str]) -> tuple[int, dict]:
    index, split = job
    return index, make_clip(index, split)
