"""``magnet eval``: generate (or read) audio for a prompt list, pair it with reference audio, score it.

Steps: :func:`load_prompts` (``.txt`` one prompt a line, or ``.jsonl`` with ``description`` /
``caption`` / ``text`` / ``prompt`` and optionally the reference clip's ``path``, like the
``heldout.jsonl`` manifests ``magnet data synth`` writes) -> :func:`attach_references` ->
:func:`generate_items` (:mod:`.batch`: resumable, shared out over torchrun's processes) or
:func:`attach_generated` -> :func:`evaluate` -> :func:`format_table`,
:func:`write_results` (``results.json`` + ``results.csv``).

FAD compares the set of every reference clip under ``--reference`` with the set of generated clips
(pairing does not matter); KL compares each generated clip with the reference clip of its prompt;
CLAP compares each generated clip with its prompt. ``adherence`` scores each generated clip, each
reference clip and a shuffled pairing against the prompt's ``bpm`` / ``key`` / ``instruments``
(:mod:`.adherence`); ``codec`` encodes and decodes every reference clip (:mod:`.codec_eval`);
``musicality`` measures notes, pulse, codec-token variety and loudness range of the generated clips,
the references and their codec round trip (:mod:`.musicality`). Every
result row names the model that produced it; a model that cannot run is a row with status
``unavailable`` and the reason.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf

from ..audio import audio_read
from ..codec import load_compression_model
from ..errors import InputError, MagnetError
from ..models import MAGNeT
from . import adherence as A
from . import embeddings as E
from . import musicality as M
from .batch import generate_jobs, jobs_from_items, process_device
from .clap import clap_score
from .codec_eval import codec_report, reconstruct
from .fad import frechet_audio_distance, gaussian_stats
from .items import EvalItem, attach_generated, attach_references, list_audio, load_prompts
from .kl import kld_scores, label_distribution
from .report import MetricResult, format_table, write_results

METRICS = ("fad", "kl", "clap", "adherence", "codec", "musicality")
DEFAULT_FAD_EMBEDDINGS = ("vggish", "musicnn", "basic-pitch")
DEFAULT_KL_CLASSIFIERS = ("passt", "musicnn")

__all__ = ["METRICS", "DEFAULT_FAD_EMBEDDINGS", "DEFAULT_KL_CLASSIFIERS", "EvalItem", "MetricResult", "load_prompts",
           "list_audio", "attach_references", "attach_generated", "generate_items", "evaluate", "format_table",
           "write_results"]


# --------------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------------

def generate_items(items: list[EvalItem], model_name: str, out_dir: str | Path, *, device: str | None = None,
                   t5_path: str | None = None, params: dict | None = None, batch_size: int = 4,
                   seed: int | None = 0, progress: bool = True, fast: bool = False,
                   source: str | Path = "prompts") -> dict:
    """Generate one clip per prompt with MAGNeT into ``out_dir`` (+ ``generated.jsonl``), with the model's
    recommended decoding options updated by ``params`` (``set_generation_params`` keywords such as
    ``decoding_steps``, ``temperature``, ``max_cfg_coef``), and the fast-mode preset if ``fast``.

    The generation is :mod:`.batch`'s: clips already in ``out_dir`` (made with the same model, options
    and seeds) are kept, and under torchrun the processes share the prompts, each on its own device;
    every process returns once all clips are there, and only the first one (``rank`` 0 in the result)
    has each item's ``generated`` path set. Clips are written with audiocraft's evaluation
    normalisation (loudness, 14 dB headroom, no compressor). Returns a description of the generation
    (model, params, seconds, rank, processes)."""
    # the seeds are --seed + position: eval's prompts are often a dataset's manifest, whose ``seed`` is
    # the audio's (``magnet data synth`` writes its synthesis seed), not a generation seed
    jobs = jobs_from_items(items, source, 0 if seed is None else seed, line_seeds=False)  # bad lines fail here
    model = MAGNeT.get_pretrained(model_name, device=process_device(device), t5_path=t5_path)
    if params or fast:  # bad options fail here, before anything is written
        model.update_generation_params(**(params or {}), fast=fast)
    start = time.perf_counter()
    result = generate_jobs(model, jobs, out_dir, batch_size=batch_size, progress=progress,
                           write_options={"strategy": "loudness", "loudness_headroom_db": 14,
                                          "loudness_compressor": False, "log_clipping": False})
    for it, record in zip(items, result.get("records", [])):
        it.generated = Path(out_dir) / record["path"]
    return {"model": model_name, "params": model.generation_params.to_dict(),
            "seed": seed, "seconds": round(time.perf_counter() - start, 2), "sample_rate": model.sample_rate,
            "duration": model.duration, "device": str(model.device), "rank": result["rank"],
            "processes": result["world_size"], "generated": len(items) - result["skipped"],
            "skipped": result["skipped"]}


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------

class AudioCache:
    """Mono float32 audio per (file, rate), read once."""

    def __init__(self):
        self._cache: dict[tuple[str, int], np.ndarray] = {}

    def get(self, path: Path, sample_rate: int) -> np.ndarray:
        key = (str(path), int(sample_rate))
        if key not in self._cache:
            wav, _ = audio_read(path, sample_rate=sample_rate, channels=1)
            self._cache[key] = wav[0].numpy().astype(np.float32)
        return self._cache[key]


def _run(result: MetricResult, backend: E.AudioBackend, fn: Callable[[], None]) -> MetricResult:
    try:
        backend.load()
    except E.Unavailable as exc:
        result.status, result.reason = "unavailable", exc.reason
        result.backend_info = {"backend": backend.name, "kind": backend.kind}
        return result
    try:
        fn()
        result.status = "ok"
    except (InputError, ValueError, RuntimeError, OSError) as exc:
        result.status, result.reason = "error", f"{type(exc).__name__}: {exc}"
    result.backend_info = backend.describe()
    return result


def compute_fad(backend: E.EmbeddingModel, reference: Sequence[Path], generated: Sequence[Path],
                cache: AudioCache) -> MetricResult:
    result = MetricResult("fad", backend.name, "error")

    def fn():
        def embed_all(paths):
            parts = [backend.embed(backend.prepare(cache.get(p, backend.sample_rate))) for p in paths]
            parts = [p for p in parts if len(p)]
            if not parts:
                raise InputError("no embeddings: the clips are shorter than the model's window")
            return np.concatenate(parts)

        ref, gen = embed_all(reference), embed_all(generated)
        result.value = frechet_audio_distance(gaussian_stats(ref), gaussian_stats(gen))
        dim = ref.shape[1]
        result.details = {"n_reference_clips": len(reference), "n_generated_clips": len(generated),
                          "n_reference_embeddings": int(ref.shape[0]), "n_generated_embeddings": int(gen.shape[0]),
                          "dim": int(dim)}
        if min(ref.shape[0], gen.shape[0]) <= dim:
            result.details["warning"] = (f"fewer embeddings than dimensions ({min(ref.shape[0], gen.shape[0])} <= "
                                         f"{dim}): singular covariance, FAD is biased upward; use more clips")

    return _run(result, backend, fn)


def compute_kl(backend: E.Classifier, items: Sequence[EvalItem], cache: AudioCache) -> MetricResult:
    result = MetricResult("kl", backend.name, "error")

    def fn():
        pairs = [it for it in items if it.reference is not None and it.generated is not None]
        if not pairs:
            raise InputError("no prompt has both a reference and a generated clip")

        def dist(path):
            logits = backend.segment_logits(backend.prepare(cache.get(path, backend.sample_rate)))
            if len(logits) == 0:
                raise InputError(f"{path} is too short for the classifier")
            return label_distribution(logits)

        gen = np.stack([dist(it.generated) for it in pairs])
        ref = np.stack([dist(it.reference) for it in pairs])
        scores = kld_scores(gen, ref)
        result.value = scores["kld"]
        result.details = {"kld_pq": scores["kld_pq"], "kld_qp": scores["kld_qp"], "kld_both": scores["kld_both"],
                          "n_pairs": scores["n"], "n_labels": int(gen.shape[1])}

    return _run(result, backend, fn)


def compute_clap(backend: E.TextAudioModel, items: Sequence[EvalItem], cache: AudioCache) -> MetricResult:
    result = MetricResult("clap", backend.name, "error")

    def fn():
        done = [it for it in items if it.generated is not None]
        scores = clap_score(backend, [it.prompt for it in done],
                            [cache.get(it.generated, backend.sample_rate) for it in done])
        result.value = scores["clap"]
        result.details = {"n_clips": scores["n"]}

    return _run(result, backend, fn)


def compute_adherence(items: Sequence[EvalItem], shuffle_seed: int = 0,
                      progress: Callable[[str], None] | None = None,
                      codec_clips: Sequence[Path | None] | None = None) -> list[MetricResult]:
    """One row per :data:`.adherence.MEASURES` entry: ``value`` on the generated clips, ``details`` holding
    ``generated``, ``reference``, ``shuffled`` and, given ``codec_clips`` (item i's reference through the
    codec), ``codec`` (each ``{"value", "n", ...}``)."""
    def rows_with(status: str, reason: str) -> list[MetricResult]:
        return [MetricResult(m, A.JUDGES[m].split()[0], status, reason=reason) for m in A.MEASURES]

    if not any(k in it.meta for it in items for k in ("bpm", "key", "instruments")):
        return rows_with("error", "the prompts carry no bpm / key / instruments: give the .jsonl manifest "
                                  "that magnet data synth writes")
    try:
        report = A.adherence_report([it.meta for it in items], [it.generated for it in items],
                                    [it.reference for it in items], shuffle_seed=shuffle_seed, progress=progress,
                                    codec=codec_clips)
    except E.Unavailable as exc:
        return rows_with("unavailable", exc.reason)
    except ImportError as exc:
        return rows_with("unavailable", f"{exc} ({E.EVAL_INSTALL_HINT})")
    results = []
    for measure, by_condition in report["measures"].items():
        value = by_condition.get("generated", {}).get("value")
        results.append(MetricResult(
            measure, A.JUDGES[measure].split()[0], "ok" if value is not None else "error", value=value,
            reason=None if value is not None else A.NO_VALUE_REASON.get(
                measure, "no generated clip has the metadata this measure needs"),
            details={**by_condition, "shuffle_seed": shuffle_seed},
            backend_info={"backend": A.JUDGES[measure].split()[0], "kind": "adherence judge",
                          "model": A.JUDGES[measure],
                          **({"weights": report["weights"]} if "basic-pitch" in A.JUDGES[measure] else {})}))
    return results


def reconstruct_references(codec_name, items: Sequence[EvalItem], out_dir: str | Path, device: str = "cpu",
                           progress: Callable[[str], None] | None = None) -> list[Path | None]:
    """Encode and decode each item's reference clip with ``codec_name`` (a codec to load, or a loaded one)
    into ``out_dir`` (wav at the codec's rate, same stem); returns the paths in item order (None where an
    item has no reference)."""
    codec = (load_compression_model(codec_name, device=device) if isinstance(codec_name, (str, os.PathLike))
             else codec_name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path | None] = []
    for i, it in enumerate(items):
        if it.reference is None:
            paths.append(None)
            continue
        if progress is not None and i % 10 == 0:
            progress(f"codec: round trip of reference clip {i + 1} of {len(items)}")
        wav, _ = audio_read(it.reference, sample_rate=codec.sample_rate, channels=codec.channels)
        rec = reconstruct(codec, wav.float().to(device)).float().cpu()
        path = out_dir / f"{it.index:05d}_{Path(it.reference).stem}.wav"
        sf.write(path, rec.T.numpy(), codec.sample_rate, subtype="FLOAT")
        paths.append(path)
    return paths


def compute_musicality(items: Sequence[EvalItem], codec=None, codec_clips: Sequence[Path | None] | None = None,
                       out_dir: str | Path | None = None, codec_name: str | None = None,
                       codec_reason: str | None = None,
                       progress: Callable[[str], None] | None = None) -> list[MetricResult]:
    """One row per :data:`.musicality.MEASURES` entry: ``value`` on the generated clips, ``details``
    holding ``generated``, ``reference`` and, given ``codec_clips``, ``codec`` (each ``{"value", "n"}``).
    ``codec`` (loaded) encodes for the token measures; ``codec_reason`` says why there is none. With
    ``out_dir``, the per-clip table goes to ``musicality_clips.json`` / ``.csv`` there."""
    def rows_with(status: str, reason: str) -> list[MetricResult]:
        return [MetricResult(m, "musicality", status, reason=reason) for m in M.MEASURES]

    prompts = [it.meta or {"description": it.prompt} for it in items]
    try:
        report = M.musicality_report(prompts, [it.generated for it in items], [it.reference for it in items],
                                     codec_clips=codec_clips, codec=codec, progress=progress)
    except E.Unavailable as exc:
        return rows_with("unavailable", exc.reason)
    except ImportError as exc:
        return rows_with("unavailable", f"{exc} ({E.EVAL_INSTALL_HINT})")
    except (InputError, ValueError, RuntimeError, OSError) as exc:
        return rows_with("error", f"{type(exc).__name__}: {exc}")
    if out_dir is not None:
        M.write_clip_table(M.clip_rows(report, prompts), out_dir)
    results = []
    for measure, by_condition in report["measures"].items():
        value = by_condition.get("generated", {}).get("value")
        reason = None
        if value is None:
            reason = (codec_reason or M.NO_VALUE_REASON[measure]) if measure in M.TOKEN_MEASURES else \
                M.NO_VALUE_REASON.get(measure, "no generated clip")
        info = {"backend": "musicality", "kind": "musicality judge", "model": M.JUDGES[measure]}
        if "basic-pitch" in M.JUDGES[measure]:
            info["weights"] = report["weights"]
        if measure in M.TOKEN_MEASURES and codec_name is not None:
            info["model"] = f"{M.JUDGES[measure]} ({codec_name})"
        results.append(MetricResult(measure, "musicality", "ok" if value is not None else "error", value=value,
                                    reason=reason, details={**by_condition, "unit": M.UNITS.get(measure, "")},
                                    backend_info=info))
    return results


def compute_codec(codec_name: str | None, paths: Sequence[Path], device: str = "cpu",
                  progress: Callable[[str], None] | None = None) -> list[MetricResult]:
    """Three rows, ``codec_si_snr`` (dB), ``codec_mel`` (multi-scale log-mel L1) and ``codec_periodic``
    (frame-periodic share: a buzz at the frame rate), each the mean over the reference clips with the
    standard deviation in ``details`` (and, for ``codec_periodic``, the references' own share)."""
    rows = [MetricResult(name, "codec", "error") for name in ("codec_si_snr", "codec_mel", "codec_periodic")]
    if codec_name is None:
        for r in rows:
            r.reason = "no codec given (--codec)"
        return rows
    try:
        codec = load_compression_model(codec_name, device=device)
    except (MagnetError, OSError) as exc:
        for r in rows:
            r.status, r.reason = "unavailable", f"cannot load codec {codec_name}: {exc}"
        return rows
    try:
        report = codec_report(codec, list(paths), progress=progress)
    except (InputError, ValueError, RuntimeError, OSError) as exc:
        for r in rows:
            r.reason = f"{type(exc).__name__}: {exc}"
        return rows
    shared = {k: report[k] for k in ("n_clips", "sample_rate", "channels", "n_codebooks", "frame_rate")}
    for r, key in zip(rows, ("si_snr_db", "mel_distance", "frame_periodic_share")):
        r.status, r.value = "ok", report[key]["mean"]
        r.details = {"std": report[key]["std"], **shared}
        r.backend_info = {"backend": "codec", "kind": "codec", "model": str(codec_name)}
    rows[2].details["reference"] = report["reference_frame_periodic_share"]["mean"]
    return rows


def evaluate(items: Sequence[EvalItem], metrics: Sequence[str] = METRICS,
             fad_embeddings: Sequence[str] = DEFAULT_FAD_EMBEDDINGS,
             kl_classifiers: Sequence[str] = DEFAULT_KL_CLASSIFIERS, clap_model: str | None = None,
             reference_set: Sequence[Path] | None = None, backend_options: dict | None = None,
             codec_model: str | None = None, shuffle_seed: int = 0, progress: bool = False,
             codec_dir: str | Path | None = None, out_dir: str | Path | None = None) -> list[MetricResult]:
    """Score paired items; ``reference_set`` (default: the paired references) is FAD's background set and
    the clips the ``codec`` metric reconstructs with ``codec_model``. With both ``adherence`` and ``codec``
    asked for, adherence also scores the paired references after a ``codec_model`` round trip (written to
    ``codec_dir``, a temporary directory if None): the ceiling the codec sets. ``musicality`` always
    measures that round trip (when ``codec_model`` loads) and encodes with ``codec_model`` for its token
    measures; its per-clip table goes to ``out_dir`` when given."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise InputError(f"unknown metric(s) {unknown} (known: {', '.join(METRICS)})")
    opts = dict(backend_options or {})
    cache = AudioCache()
    generated = [it.generated for it in items if it.generated is not None]
    if reference_set is None:
        reference_set = [it.reference for it in items if it.reference is not None]
    results: list[MetricResult] = []

    def note(msg):
        if progress:
            print(msg, file=sys.stderr)

    if "fad" in metrics:
        for name in fad_embeddings:
            note(f"FAD with {name} ...")
            results.append(compute_fad(E.make_backend(E.EMBEDDINGS, name, "embedding", **opts),
                                       list(reference_set), generated, cache))
    if "kl" in metrics:
        for name in kl_classifiers:
            note(f"KL with {name} ...")
            results.append(compute_kl(E.make_backend(E.CLASSIFIERS, name, "classifier", **opts), items, cache))
    if "clap" in metrics:
        note("CLAP ...")
        results.append(compute_clap(E.make_backend(E.CLAP_MODELS, "laion-clap", "text-audio model",
                                                   **{**opts, "model": clap_model}), items, cache))
    codec_clips, tmp, codec, codec_reason = None, None, None, None
    try:
        if "musicality" in metrics or ("adherence" in metrics and "codec" in metrics):
            if codec_model is None:
                codec_reason = "no codec given (--codec)"
            else:
                try:
                    codec = load_compression_model(codec_model, device=opts.get("device") or "cpu")
                except (MagnetError, OSError, RuntimeError) as exc:
                    codec_reason = f"cannot load codec {codec_model}: {type(exc).__name__}: {exc}"
                    note(f"codec round trip skipped: {codec_reason}")
        if codec is not None and any(it.reference is not None for it in items):
            note(f"codec round trip of the references with {codec_model} (the ceiling the codec sets) ...")
            if codec_dir is None:
                tmp = tempfile.TemporaryDirectory(prefix="magnet-eval-codec-")
            try:
                codec_clips = reconstruct_references(codec, items, codec_dir or tmp.name,
                                                     device=opts.get("device") or "cpu",
                                                     progress=note if progress else None)
            except (MagnetError, OSError, RuntimeError) as exc:
                note(f"codec round trip skipped: {type(exc).__name__}: {exc}")
        if "adherence" in metrics:
            note("adherence (librosa, basic-pitch) ...")
            results += compute_adherence(items, shuffle_seed=shuffle_seed, progress=note if progress else None,
                                         codec_clips=codec_clips if "codec" in metrics else None)
        if "musicality" in metrics:
            note("musicality (basic-pitch, librosa, codec tokens) ...")
            results += compute_musicality(items, codec=codec, codec_clips=codec_clips, out_dir=out_dir,
                                          codec_name=None if codec_model is None else str(codec_model),
                                          codec_reason=codec_reason, progress=note if progress else None)
    finally:
        if tmp is not None:
            tmp.cleanup()
    if "codec" in metrics:
        note(f"codec reconstruction with {codec_model} ...")
        results += compute_codec(codec_model, list(reference_set), device=opts.get("device") or "cpu",
                                 progress=note if progress else None)
    return results
