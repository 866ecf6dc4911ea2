"""Generate one clip per line of a prompts file into one folder: sharded over the processes of a
``torchrun`` job (or one process without it), in batches, resumable.

Used by ``magnet generate --prompts-file FILE -o OUT`` and by ``magnet eval``'s generation phase
(docs/scale-out.md, "Generation on many processes").

The prompts file is the one ``magnet eval --prompts`` reads (:func:`.items.load_prompts`): a
``.jsonl`` file of JSON objects with the prompt in ``description`` (or ``caption`` / ``text`` /
``prompt``) and optionally ``id`` (the output file's stem), ``seed`` and ``duration`` (seconds),
other keys kept as metadata; or any other file with one prompt a line (blank and ``#`` lines
skipped). A bad line stops everything before a model is loaded, with one line naming ``FILE:LINE``.

Per prompt ``OUT/STEM.EXT`` (the audio) then ``OUT/STEM.json`` (its sidecar: prompt, seed, model,
decoding options), each written to a temporary name and renamed, so the sidecar exists only for a
complete clip; ``STEM`` is the line's ``id``, else ``NNNNN_slug`` (NNNNN its position in the
file). A re-run skips every prompt whose sidecar matches (same prompt, seed, duration, model and
decoding options) and whose audio is there; a sidecar that does not match is an error, not silently
kept or replaced (``overwrite`` regenerates everything). At the end, after every process is done,
the first one writes ``OUT/generated.jsonl`` (one line per prompt, in file order: the manifest
``magnet eval --generated`` reads).

Seeds: a line's ``seed``, else the base seed + its position. Batches are cut in file order, at
``batch_size`` prompts, where the duration changes and around every line that has its own ``seed``
(generated alone); each batch is generated after ``torch.manual_seed(seed of its first prompt)``.
So a clip depends on the file, the batch size and the seeds, never on the number of processes nor
on what an earlier, killed run finished (a batch with missing clips is generated whole again and
only its missing clips are written).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.distributed as dist

from .. import validation
from ..audio import audio_write
from ..distributed import barrier, init_distributed
from ..errors import InputError
from ..utils import slugify, write_atomic
from .items import EvalItem, load_prompts

MANIFEST = "generated.jsonl"
#: How long a process waits for the others at the start and at the end (the slowest rank's share).
TIMEOUT_MINUTES = 24 * 60.0


@dataclass
class Job:
    """One prompt of the file."""

    index: int  # position among the prompts (0-based)
    line: int  # line in the file (1-based)
    text: str
    stem: str
    seed: int
    duration: float | None  # None: the model's (or --duration's)
    own_seed: bool = False  # the line gave its seed: generated alone


def jobs_from_items(items: Sequence[EvalItem], source: str | os.PathLike, base_seed: int = 0, *,
                    line_seeds: bool = True) -> list[Job]:
    """:class:`Job` s of :func:`.items.load_prompts`' items, their ``id`` / ``seed`` / ``duration``
    checked; a bad value is an :class:`InputError` naming ``source:LINE``. ``line_seeds=False``: a
    line's ``seed`` is metadata, not the generation's (every seed is ``base_seed`` + position)."""
    base_seed = validation.seed(base_seed, "seed")
    jobs, stems = [], {}
    for it in items:
        where = f"{source}:{it.line}"
        meta = it.meta or {}
        raw = meta.get("id")
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        stem = f"{it.index:05d}_{slugify(it.prompt)}" if raw is None else validation.file_stem(raw, f"{where}: id")
        if stem in stems:
            raise InputError(f"{where}: file name {stem!r} is taken by line {stems[stem]}: give each line its own id")
        stems[stem] = it.line
        own = line_seeds and meta.get("seed") is not None
        seed = validation.seed(meta["seed"], f"{where}: seed") if own else base_seed + it.index
        seed = validation.seed(seed, f"{where}: seed (--seed + position)")
        duration = meta.get("duration")
        if duration is not None:
            duration = validation.duration(duration, f"{where}: duration (seconds)")
        jobs.append(Job(it.index, it.line, it.prompt, stem, seed, duration, own))
    return jobs


def read_jobs(path: str | os.PathLike, base_seed: int = 0) -> list[Job]:
    """The prompts of ``path`` (see the module's docstring) as :class:`Job` s."""
    return jobs_from_items(load_prompts(path), path, base_seed)


def cut_batches(jobs: Sequence[Job], size: int) -> list[list[Job]]:
    """Consecutive jobs, at most ``size`` a batch, one duration a batch; a job with its own seed alone."""
    size = validation.positive_int(size, "batch size", 1_000_000)
    batches: list[list[Job]] = []
    for job in jobs:
        last = batches[-1] if batches else None
        if (last is None or len(last) >= size or job.own_seed or last[0].own_seed
                or last[0].duration != job.duration):
            batches.append([job])
        else:
            last.append(job)
    return batches


def process_device(device: str | None) -> str | None:
    """The device of this process: under torchrun (``LOCAL_RANK`` set) ``cuda:LOCAL_RANK`` when
    ``device`` is None or ``cuda`` and CUDA is there, CPU when None without CUDA; else ``device``."""
    if "LOCAL_RANK" not in os.environ:
        return device
    local = int(os.environ["LOCAL_RANK"])
    if device in (None, "cuda") and torch.cuda.is_available():
        return validation.device(f"cuda:{local}", f"the device of process LOCAL_RANK={local}")
    return "cpu" if device is None else device


def _params(model) -> dict:
    return json.loads(json.dumps(model.generation_params.to_dict()))  # tuples as lists: as read back


def _model_id(model) -> str:
    """The model's name; a local directory as its absolute path (the same from any working folder)."""
    name = str(model.name)
    return str(Path(name).resolve()) if Path(name).exists() else name


def _expected(job: Job, model) -> dict:
    """What a finished clip's sidecar holds for ``job``, ``model`` and its current options."""
    return {"description": job.text, "seed": job.seed, "duration": job.duration or model.duration,
            "model": _model_id(model), "params": _params(model)}


def finished(out_dir: Path, job: Job, expected: dict) -> dict | None:
    """The sidecar of ``job``'s clip when it is complete and was made as ``expected`` says, else None;
    an InputError when ``OUT/STEM.json`` belongs to another prompt, seed, duration, model or options."""
    side = out_dir / f"{job.stem}.json"
    try:
        record = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent (sidecars are written atomically), or not ours
        return None
    if not isinstance(record, dict) or not isinstance(record.get("path"), str):
        return None
    differ = [k for k, v in expected.items() if record.get(k) != v]
    if differ:
        raise InputError(f"{side} does not match line {job.line} ({', '.join(differ)} differ): write to another "
                         f"folder, or pass --overwrite to regenerate every clip")
    return record if (out_dir / record["path"]).is_file() else None


def generate_jobs(model, jobs: Sequence[Job], out_dir: str | os.PathLike, *, batch_size: int = 4,
                  overwrite: bool = False, generate: Callable[[list[str]], torch.Tensor] | None = None,
                  write_options: dict | None = None, progress: bool = True, echo: bool = False) -> dict:
    """Generate the clips of ``jobs`` not yet in ``out_dir`` with ``model`` (its current decoding
    options), this process's share of them under torchrun; see the module's docstring.

    ``generate(texts)`` returns audio [B, C, T] (default ``model.generate``); ``write_options`` go to
    :func:`~magnet_audio.audio.audio_write`; ``echo`` prints each file written. Returns ``rank``,
    ``world_size``, ``generated`` (clips this process wrote), ``skipped`` (clips already there at the
    start) and, on the first process, ``records`` (every sidecar, in file order) and ``manifest``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    generate = generate or (lambda texts: model.generate(texts))
    options = {"strategy": "loudness", "loudness_compressor": True, **(write_options or {})}
    batches = cut_batches(jobs, batch_size)
    expected = {job.stem: _expected(job, model) for job in jobs}
    # every process reads the folder before any joins the group, and none writes before all joined
    done = {} if overwrite else {j.stem: r for j in jobs if (r := finished(out_dir, j, expected[j.stem]))}
    pending = [b for b in batches if any(j.stem not in done for j in b)]
    info = init_distributed(str(model.device), timeout_minutes=TIMEOUT_MINUTES)
    rank, world = info.rank, info.world_size
    try:
        barrier(info)
        mine = pending[rank::world]
        written = 0
        for number, batch in enumerate(mine, 1):
            if progress:
                print(f"[rank {rank}] batch {number} of {len(mine)}: prompts {batch[0].index + 1}-"
                      f"{batch[-1].index + 1} of {len(jobs)}", file=sys.stderr)
            written += _generate_batch(model, batch, out_dir, done, expected, generate, options, rank, echo)
        barrier(info)
        result = {"rank": rank, "world_size": world, "generated": written, "skipped": len(done)}
        if rank == 0:
            result["records"] = _write_manifest(out_dir, jobs, expected)
            result["manifest"] = out_dir / MANIFEST
            if progress:
                print(f"{out_dir}: {len(jobs)} clip(s), {len(jobs) - len(done)} generated by {world} process(es), "
                      f"{len(done)} already there; manifest {result['manifest']}", file=sys.stderr)
        return result
    finally:
        if info.owns_group:
            dist.destroy_process_group()


def _generate_batch(model, batch: list[Job], out_dir: Path, done: dict, expected: dict, generate, options: dict,
                    rank: int, echo: bool) -> int:
    saved = model.duration
    if batch[0].duration is not None:
        model.duration = batch[0].duration  # validated like set_generation_params' duration
    try:
        torch.manual_seed(batch[0].seed)
        wav = generate([j.text for j in batch])
    finally:
        model.duration = saved
    written = 0
    for job, audio in zip(batch, wav):
        if job.stem in done:  # finished by an earlier run: its batch mates were missing
            continue
        path = audio_write(out_dir / job.stem, audio.float().cpu(), model.sample_rate, **options)
        seconds = audio.shape[-1] / model.sample_rate
        record = {"id": job.stem, "index": job.index, "path": path.name, **expected[job.stem],
                  "seconds": round(seconds, 3), "sample_rate": model.sample_rate, "rank": rank}
        text = json.dumps(record, ensure_ascii=False) + "\n"
        write_atomic(lambda tmp: tmp.write_text(text, encoding="utf-8"), out_dir / f"{job.stem}.json")
        written += 1
        if echo:
            print(f"{path}  ({seconds:.2f} s)  {job.text!r}")
    return written


def _write_manifest(out_dir: Path, jobs: Sequence[Job], expected: dict) -> list[dict]:
    records = []
    for job in jobs:
        record = finished(out_dir, job, expected[job.stem])
        if record is None:
            raise InputError(f"{out_dir / job.stem}.json is missing after generation (line {job.line})")
        records.append(record)
    keys = ("path", "description", "id", "index", "seed", "duration", "seconds")
    text = "".join(json.dumps({k: r.get(k) for k in keys}, ensure_ascii=False) + "\n" for r in records)
    manifest = out_dir / MANIFEST
    try:
        same = manifest.read_text(encoding="utf-8") == text  # a re-run with nothing to do writes nothing
    except (OSError, ValueError):
        same = False
    if not same:
        write_atomic(lambda tmp: tmp.write_text(text, encoding="utf-8"), manifest)
    return records
