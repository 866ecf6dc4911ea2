"""Musicality: does a clip hold notes, a pulse, varied codec tokens and a loudness contour, as music does?

Prompt-free measures of each clip, defined as in the "Default model v2" issue so that everyone's
numbers are the same measure. Every clip is read as mono; the librosa measures run at 22.05 kHz
(librosa's default rate, also basic-pitch's input rate), the token measures at the codec's rate.

``confident_notes``    share of basic-pitch frames (ICASSP 2022 model, ~86 frames/s) whose highest note
                       posterior is above 0.5: a clear note is sounding. Real renders ~0.9, noise 0.
``note_stability``     of basic-pitch's note events (start, end, pitch, amplitude; its default thresholds
                       as ``basic_pitch.inference.predict``), the duration x amplitude of notes lasting
                       >= 0.25 s over that of all notes (0 with no notes): held notes, not flicker.
``pitch_salience``     mean over frames of the highest note posterior (how pitched the clip is at all).
``distinct_tokens``    the clip normalised to RMS 0.1 and cut to its first 10 s, encoded with the
                       model's own codec: the number of distinct codebook-0 values. A drone repeats a few.
``top_token_share``    share of those codebook-0 frames holding the clip's most common value.
``spectral_flatness``  mean of librosa ``spectral_flatness`` (n_fft 1024, hop 256): near 0 for tones,
                       high for noise. For a clip recorded below 22.05 kHz only its own band counts
                       (:func:`spectral_flatness`), else a 16 kHz clip's empty top band reads as tonal.
``pulse_clarity``      the highest normalised autocorrelation of librosa's onset strength (hop 512) at
                       lags of 50-200 bpm (:func:`.adherence.pulse_clarity_of`, the one implementation).
``loudness_range``     librosa RMS (frame 2048, hop 512) in dB (``amplitude_to_db``), 95th minus 5th
                       percentile: a fade or phrasing scores high, a steady drone low.
``pulse_clarity_drums``  the mean ``pulse_clarity`` over prompts whose instruments name a drum kit
                       (:func:`.adherence.names_drums`).
``tempo_within_8pct``  share of prompts naming a bpm whose clip's librosa beat-tracker tempo is within 8 %
                       of it (:func:`.adherence.tempo_match`; the same as adherence's ``tempo_acc``).

:func:`musicality_table` measures a folder or list of audio files (one dict per clip);
:func:`summarize` averages such a table, with the two prompt subsets when the prompts' metadata is
given; :func:`musicality_report` does both for the generated clips, the real renders and their codec
round trip (``magnet eval --metrics musicality``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf
import torch

from ..audio import audio_read, convert_audio
from ..codec import load_compression_model
from ..errors import InputError, MagnetError
from .adherence import (SAMPLE_RATE, NoteTranscriber, PromptTarget, analyze_conditions, estimate_tempo,
                        pulse_clarity_of, tempo_match)
from .backend import Unavailable
from .items import list_audio

CONFIDENT_NOTE = 0.5  # a frame's highest note posterior above this: a confident note
STABLE_NOTE_SECONDS = 0.25
TOKEN_RMS = 0.1  # clips are normalised to this RMS before encoding
TOKEN_SECONDS = 10.0  # token measures look at the first 10 s, so clip length does not inflate the count
FLATNESS_FFT, FLATNESS_HOP = 1024, 256
FLATNESS_BAND = 0.95  # share of a low-rate clip's Nyquist band flatness looks at (above it: resampler roll-off)
RMS_FRAME, RMS_HOP = 2048, 512
LOUDNESS_PERCENTILES = (5.0, 95.0)

#: Per-clip measures, in the order they are reported (the token ones need a codec).
CLIP_MEASURES = ("confident_notes", "note_stability", "pitch_salience", "distinct_tokens", "top_token_share",
                 "spectral_flatness", "pulse_clarity", "loudness_range")
TOKEN_MEASURES = ("distinct_tokens", "top_token_share")
#: Measures over a subset of prompts (need the prompts' metadata).
SUBSET_MEASURES = ("pulse_clarity_drums", "tempo_within_8pct")
MEASURES = CLIP_MEASURES + SUBSET_MEASURES
CONDITIONS = ("generated", "reference", "codec")
JUDGES = {"confident_notes": "basic-pitch ICASSP 2022 (ONNX) note posteriorgram",
          "note_stability": "basic-pitch ICASSP 2022 (ONNX) note events",
          "pitch_salience": "basic-pitch ICASSP 2022 (ONNX) note posteriorgram",
          "distinct_tokens": "the model's codec, codebook 0", "top_token_share": "the model's codec, codebook 0",
          "spectral_flatness": "librosa spectral_flatness", "pulse_clarity": "librosa onset_strength",
          "loudness_range": "librosa rms", "pulse_clarity_drums": "librosa onset_strength",
          "tempo_within_8pct": "librosa beat_track"}
UNITS = {"loudness_range": "dB"}
NO_VALUE_REASON = {
    "distinct_tokens": "no codec (--codec, or a --model whose codec loads)",
    "top_token_share": "no codec (--codec, or a --model whose codec loads)",
    "pulse_clarity_drums": "no prompt's instruments name a drum kit (needs the .jsonl manifest's 'instruments')",
    "tempo_within_8pct": "no prompt gives a bpm (needs the .jsonl manifest's 'bpm')"}


# --------------------------------------------------------------------------------------------------
# Measures of one clip
# --------------------------------------------------------------------------------------------------

def note_measures(note_posteriorgram: np.ndarray, notes: Sequence[tuple[float, float, int, float]]) -> dict:
    """``confident_notes``, ``pitch_salience`` and ``note_stability`` from basic-pitch's note
    posteriorgram [frames, 88] and its note events (start s, end s, MIDI pitch, amplitude)."""
    post = np.asarray(note_posteriorgram, dtype=np.float64)
    if post.ndim != 2:
        raise ValueError(f"note posteriorgram must be [frames, pitches], got shape {post.shape}")
    peak = post.max(axis=1) if post.size else np.zeros(0)
    weight = np.array([max(e - s, 0.0) * a for s, e, _, a in notes], dtype=np.float64)
    long = np.array([e - s >= STABLE_NOTE_SECONDS for s, e, _, _ in notes], dtype=bool)
    total = float(weight.sum())
    return {"confident_notes": float((peak > CONFIDENT_NOTE).mean()) if len(peak) else 0.0,
            "pitch_salience": float(peak.mean()) if len(peak) else 0.0,
            "note_stability": float(weight[long].sum()) / total if total > 0 else 0.0,
            "n_notes": len(notes)}


def token_measures(codes: np.ndarray) -> dict:
    """``distinct_tokens`` and ``top_token_share`` of a 1-d sequence of codebook-0 tokens."""
    codes = np.asarray(codes).reshape(-1)
    if codes.size == 0:
        raise ValueError("no codec frames: the clip is shorter than one codec frame")
    _, counts = np.unique(codes, return_counts=True)
    return {"distinct_tokens": int(len(counts)), "top_token_share": float(counts.max() / codes.size)}


def spectral_flatness(wav: np.ndarray, sr: int = SAMPLE_RATE, native_rate: int | None = None) -> float:
    """Mean librosa spectral flatness (n_fft 1024, hop 256) of ``wav`` at ``sr``.

    ``native_rate``: the rate the clip was recorded at. Below ``sr``, the STFT bins above
    ``FLATNESS_BAND`` of its Nyquist frequency are left out: they are empty (resampling adds no content)
    and would pull the geometric mean to 0, so that noise made at 16 kHz would score like a pure tone.
    At or above ``sr`` (or None) every bin counts: librosa's own ``spectral_flatness(y=...)``."""
    import librosa

    spec = np.abs(librosa.stft(wav, n_fft=FLATNESS_FFT, hop_length=FLATNESS_HOP))
    if native_rate is not None and native_rate < sr:
        spec = spec[librosa.fft_frequencies(sr=sr, n_fft=FLATNESS_FFT) < FLATNESS_BAND * native_rate / 2]
    return float(librosa.feature.spectral_flatness(S=spec).mean())


def loudness_range(wav: np.ndarray) -> float:
    """95th minus 5th percentile of librosa's frame RMS (frame 2048, hop 512) in dB."""
    import librosa

    rms = librosa.feature.rms(y=wav, frame_length=RMS_FRAME, hop_length=RMS_HOP)[0]
    db = librosa.amplitude_to_db(rms)
    lo, hi = np.percentile(db, LOUDNESS_PERCENTILES)
    return float(hi - lo)


def first_codebook(codec, wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Codebook-0 tokens of mono ``wav`` (at ``sample_rate``): resampled to the codec's rate, cut to
    ``TOKEN_SECONDS``, normalised to RMS ``TOKEN_RMS`` and encoded."""
    x = torch.as_tensor(np.asarray(wav, dtype=np.float32)).reshape(1, -1)
    x = convert_audio(x, sample_rate, codec.sample_rate, codec.channels)[:, :int(TOKEN_SECONDS * codec.sample_rate)]
    rms = float(x.square().mean().sqrt())
    if rms > 0:
        x = x * (TOKEN_RMS / rms)
    codes, _ = codec.encode(x[None])
    return codes[0, 0].cpu().numpy()


def _as_paths(paths) -> list[Path]:
    if isinstance(paths, (str, Path)):
        p = Path(paths)
        if p.is_dir():
            found = list_audio(p)
            if not found:
                raise InputError(f"no audio files in {p}")
            return found
        paths = [p]
    out = [Path(p) for p in paths]
    missing = [p for p in out if not p.is_file()]
    if missing:
        raise InputError(f"audio file not found: {missing[0]}")
    return out


def load_codec(codec, device: str = "cpu"):
    """A loaded codec (returned as is), or a codec / MAGNeT directory, file or hub id to load."""
    if codec is None or not isinstance(codec, (str, os.PathLike)):
        return codec
    return load_compression_model(codec, device=device)


def analyze_clip(path: str | Path, codec=None, transcriber: NoteTranscriber | None = None) -> dict:
    """Every clip measure of one audio file (token measures None without ``codec``), plus its
    librosa ``tempo`` (bpm), basic-pitch ``n_notes`` and the file's ``sample_rate``."""
    transcriber = transcriber or NoteTranscriber()
    wav = audio_read(path, sample_rate=SAMPLE_RATE, channels=1)[0][0].numpy().astype(np.float32)
    if wav.size == 0:
        raise InputError(f"{path} holds no audio")
    native_rate = int(sf.info(str(path)).samplerate)
    output, notes = transcriber.transcribe(path)
    row = {"path": str(path), "sample_rate": native_rate, **note_measures(output["note"], notes)}
    if codec is not None:  # read again at the codec's rate: one resampling, not two
        at_codec_rate = audio_read(path, sample_rate=codec.sample_rate, channels=1)[0][0].numpy()
        row.update(token_measures(first_codebook(codec, at_codec_rate, codec.sample_rate)))
    else:
        row.update(dict.fromkeys(TOKEN_MEASURES))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa's n_fft warnings on very short clips
        row.update(spectral_flatness=spectral_flatness(wav, SAMPLE_RATE, native_rate),
                   pulse_clarity=pulse_clarity_of(wav, SAMPLE_RATE), loudness_range=loudness_range(wav),
                   tempo=estimate_tempo(wav, SAMPLE_RATE))
    return {k: row[k] for k in ("path", *CLIP_MEASURES, "tempo", "n_notes", "sample_rate")}


def musicality_table(paths, codec=None, *, transcriber: NoteTranscriber | None = None, device: str = "cpu",
                     progress: Callable[[str], None] | None = None) -> list[dict]:
    """One row per clip (dicts keyed ``path``, :data:`CLIP_MEASURES`, ``tempo``, ``n_notes`` and the
    file's ``sample_rate``).

    ``paths``: a directory (its audio files, sorted) or a list of audio files. ``codec``: a loaded
    codec, or a codec / MAGNeT directory or hub id (e.g. ``"magnet-audio/synth-music"``); None leaves
    the token measures None. Raises :class:`~magnet_audio.evaluation.embeddings.Unavailable` when
    basic-pitch cannot run, :class:`InputError` for missing files."""
    files = _as_paths(paths)
    codec = load_codec(codec, device)
    transcriber = transcriber or NoteTranscriber()
    transcriber.load()
    rows = []
    for i, path in enumerate(files):
        if progress is not None and i % 10 == 0:
            progress(f"musicality: clip {i + 1} of {len(files)}")
        rows.append(analyze_clip(path, codec, transcriber))
    return rows


# --------------------------------------------------------------------------------------------------
# Averages
# --------------------------------------------------------------------------------------------------

def summarize(rows: Sequence[dict | None], prompts: Sequence[dict] | None = None) -> dict[str, dict]:
    """``{measure: {"value": mean | None, "n": clips used}}`` over a :func:`musicality_table` (None rows
    skipped). Given ``prompts`` (metadata rows aligned with ``rows``: ``bpm``, ``instruments``), also
    ``pulse_clarity_drums`` and ``tempo_within_8pct``; without them those two have no value."""
    if prompts is not None and len(prompts) != len(rows):
        raise InputError(f"{len(rows)} clips but {len(prompts)} prompt rows")
    out = {}
    for m in CLIP_MEASURES:
        values = [r[m] for r in rows if r is not None and r.get(m) is not None]
        out[m] = {"value": float(np.mean(values)) if values else None, "n": len(values)}
    targets = [PromptTarget.from_row(p) for p in prompts] if prompts is not None else [None] * len(rows)
    drums = [r["pulse_clarity"] for r, t in zip(rows, targets) if r is not None and t is not None and t.has_drums]
    out["pulse_clarity_drums"] = {"value": float(np.mean(drums)) if drums else None, "n": len(drums)}
    tempo = [float(tempo_match(r["tempo"], t.bpm)) for r, t in zip(rows, targets)
             if r is not None and t is not None and t.bpm is not None]
    out["tempo_within_8pct"] = {"value": float(np.mean(tempo)) if tempo else None, "n": len(tempo)}
    return out


def musicality_report(prompts: Sequence[dict], generated: Sequence[Path | None], reference: Sequence[Path | None],
                      codec_clips: Sequence[Path | None] | None = None, codec=None,
                      transcriber: NoteTranscriber | None = None,
                      progress: Callable[[str], None] | None = None) -> dict:
    """Measure the generated clips, the real renders and (``codec_clips``) their codec round trip.

    ``prompts[i]`` is prompt i's metadata, ``generated[i]`` / ``reference[i]`` / ``codec_clips[i]`` its
    clips (None: missing). Returns ``{"measures": {measure: {condition: {"value", "n"}}}, "clips":
    {condition: [row | None]}}``; a condition without any clip is absent."""
    codec = load_codec(codec)
    transcriber = transcriber or NoteTranscriber()
    transcriber.load()
    conditions = {"generated": generated, "reference": reference, "codec": codec_clips or []}
    for condition, paths in conditions.items():
        if any(p is not None for p in paths) and len(paths) != len(prompts):
            raise InputError(f"{len(paths)} {condition} clips but {len(prompts)} prompts")
    analyses = analyze_conditions(conditions, lambda p: analyze_clip(p, codec, transcriber), "musicality", progress)
    clips = {c: [None if a is None else {"index": i, "condition": c, **a, "path": str(conditions[c][i])}
                 for i, a in enumerate(found)] for c, found in analyses.items()}
    summaries = {c: summarize(rows, prompts) for c, rows in clips.items()}
    measures = {m: {c: summaries[c][m] for c in CONDITIONS if c in summaries} for m in MEASURES}
    return {"measures": measures, "clips": clips, "weights": transcriber.weights}


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------

CLIP_COLUMNS = ("condition", "index", "prompt", "bpm", "asks_drums", *CLIP_MEASURES, "tempo",
                "tempo_within_8pct", "n_notes", "sample_rate", "path")


def clip_rows(report: dict, prompts: Sequence[dict]) -> list[dict]:
    """The report's per-clip rows, flat, with each prompt's text, bpm and whether it asks for drums."""
    out = []
    for condition, rows in report["clips"].items():
        for row in rows:
            if row is None:
                continue
            meta = prompts[row["index"]]
            target = PromptTarget.from_row(meta)
            text = next((meta[k] for k in ("description", "caption", "text", "prompt") if isinstance(meta.get(k), str)),
                        "")
            out.append({**row, "prompt": text, "bpm": target.bpm, "asks_drums": target.has_drums,
                        "tempo_within_8pct": None if target.bpm is None else tempo_match(row["tempo"], target.bpm)})
    return [{k: r.get(k) for k in CLIP_COLUMNS} for r in out]


def write_clip_table(rows: Sequence[dict], out_dir: str | Path) -> tuple[Path, Path]:
    """``musicality_clips.json`` and ``musicality_clips.csv`` (one row per clip and condition)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out_dir / "musicality_clips.json", out_dir / "musicality_clips.csv"
    json_path.write_text(json.dumps(list(rows), indent=2, default=str) + "\n", encoding="utf-8")
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(CLIP_COLUMNS))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if r.get(k) is None else r[k] for k in CLIP_COLUMNS})
    return json_path, csv_path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m magnet_audio.evaluation.musicality DIR|FILES... [--codec C] [--out DIR]``: the per-clip
    table of a folder of clips (no prompts needed) and the mean of each measure."""
    parser = argparse.ArgumentParser(prog="python -m magnet_audio.evaluation.musicality",
                                     description="Musicality measures of a folder (or list) of audio clips.")
    parser.add_argument("paths", nargs="+", help="a directory of audio files, or audio files")
    parser.add_argument("--codec", default=None, help="codec or MAGNeT model for the token measures "
                                                      "(e.g. magnet-audio/synth-music); none: token measures left out")
    parser.add_argument("--out", default=None, help="write musicality_clips.json / .csv here")
    args = parser.parse_args(argv)
    try:
        paths = args.paths[0] if len(args.paths) == 1 else args.paths
        rows = musicality_table(paths, codec=args.codec, progress=lambda m: print(m, file=sys.stderr))
    except (MagnetError, Unavailable) as exc:
        print(f"error: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 2
    for name, s in summarize(rows).items():
        if name in CLIP_MEASURES:
            value = "-" if s["value"] is None else f"{s['value']:.4g}"
            print(f"{name:18s} {value}{' ' + UNITS[name] if name in UNITS and s['value'] is not None else ''}"
                  f"  (n {s['n']})")
    if args.out:
        json_path, csv_path = write_clip_table([{k: r.get(k) for k in CLIP_COLUMNS} for r in rows], args.out)
        print(f"wrote {json_path} and {csv_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
