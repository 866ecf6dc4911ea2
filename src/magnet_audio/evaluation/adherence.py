"""Prompt adherence: does a clip have the tempo, key and instrumentation its prompt asks for?

The judges are analysis tools we did not write: librosa (beat tracking, constant-Q chroma,
harmonic/percussive separation) and Spotify's basic-pitch note transcriber (ONNX weights in its
wheel). Each clip is analysed once (:func:`analyze_clip`); each analysis is then scored against a
prompt's metadata (the ``bpm``, ``key`` and ``instruments`` of a ``magnet data synth`` manifest row)
by :func:`score_measures`. :func:`adherence_report` scores these pairings in one run:

* ``generated``: each generated clip against its own prompt;
* ``reference``: each real held-out render against its own prompt (the upper bound the judges allow);
* ``codec`` (optional): each real render encoded and decoded by the model's codec, against its own
  prompt: the upper bound the codec allows a model that generates its tokens;
* ``shuffled``: generated clip *i* against the prompt of row ``σ(i) != i`` (a fixed-seed derangement),
  the chance level for this set of prompts.

The generated (and codec) scores also carry a one-sided permutation p-value: how often 1,000 random
pairings of the same clips and prompts score at least as well (small = better than chance).

Measures (all "higher is better", in [0, 1] unless said):

``tempo_acc``         share of clips whose librosa tempo is within 8% of the prompt's bpm.
``tempo_acc_octave``  the same, also accepting twice or half the bpm (the usual octave errors).
``tempo_rank_corr``   Spearman rank correlation (in [-1, 1], chance 0) of the clips' librosa tempo with
                      their prompts' bpm: does a faster prompt get a faster clip, even when not within 8%?
``pulse_clarity``     not a prompt measure: the mean over clips of the highest peak of the normalised
                      autocorrelation of librosa's onset-strength envelope at beat lags (50-200 bpm).
                      Near 0: no regular pulse (a clip without one cannot follow a tempo); real music
                      with a beat ~0.6. It has no p-value, and its shuffled value is the generated one.
``key_exact``         share whose Krumhansl-Schmuckler key (24 major/minor keys, CQT chroma) equals the
                      prompt key mapped to major/minor with the same tonic by its third: major, lydian,
                      mixolydian -> major; minor (aeolian), dorian, phrygian, locrian -> minor.
``key_mirex``         MIREX weighted key score against that mapped key: 1 same key, 0.5 estimated tonic a
                      fifth above in the same mode, 0.3 relative major/minor, 0.2 parallel, else 0.
``key_signature``     share whose estimated key has the same diatonic pitch-class set (key signature) as
                      the prompt's key: "D dorian" is matched by C major and A minor (not by D minor,
                      which has a B flat), "A minor" by A minor and C major.
``in_scale_notes``    mean share (duration x amplitude weighted) of basic-pitch's transcribed notes whose
                      pitch class is in the prompt key's scale (7 of 12 classes).
``bass_auc``          ROC AUC of the clip's low-note share (transcribed note weight below MIDI 48, C3)
                      for telling prompts that name a bass instrument from those that do not.
``drums_auc``         ROC AUC of the clip's percussive-energy share (librosa HPSS) for telling prompts
                      that name a drum kit from those that do not.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..audio import audio_read
from ..data.synth.theory import DRUM_KITS, INSTRUMENTS
from .music_models import BasicPitchEmbedding

SAMPLE_RATE = 22050  # librosa's default rate and basic-pitch's input rate
TEMPO_TOLERANCE = 0.08
LOW_NOTE_MIDI = 48  # C3: transcribed notes below it count as bass register
BASS_REGISTER_MAX = 43  # an instrument whose register centre (synth.INSTRUMENTS) is at most G2 is a bass
PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
MODE_STEPS = {  # scale degrees (semitones above the tonic) of the seven diatonic modes
    "major": (0, 2, 4, 5, 7, 9, 11), "ionian": (0, 2, 4, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10), "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11), "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "minor": (0, 2, 3, 5, 7, 8, 10), "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
}
# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
PULSE_BPM = (50.0, 200.0)  # the beat lags pulse_clarity searches
MEASURES = ("tempo_acc", "tempo_acc_octave", "tempo_rank_corr", "pulse_clarity", "key_exact", "key_mirex",
            "key_signature", "in_scale_notes", "bass_auc", "drums_auc")
PROMPT_FREE = ("pulse_clarity",)  # measures of the clip alone: no permutation test
#: Why a measure has no value on a set of clips (default: no clip carries the metadata it needs).
NO_VALUE_REASON = {"tempo_rank_corr": "needs at least 3 clips whose prompts give a bpm, with tempi not all equal"}
JUDGES = {"tempo_acc": "librosa beat_track", "tempo_acc_octave": "librosa beat_track",
          "tempo_rank_corr": "librosa beat_track", "pulse_clarity": "librosa onset_strength",
          "key_exact": "librosa chroma_cqt + Krumhansl-Schmuckler", "key_mirex": "librosa chroma_cqt + "
          "Krumhansl-Schmuckler", "key_signature": "librosa chroma_cqt + Krumhansl-Schmuckler",
          "in_scale_notes": "basic-pitch ICASSP 2022 (ONNX)", "bass_auc": "basic-pitch ICASSP 2022 (ONNX)",
          "drums_auc": "librosa HPSS"}
CONDITIONS = ("generated", "reference", "codec", "shuffled")


# --------------------------------------------------------------------------------------------------
# Prompt metadata
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class, C = 0
    mode: str  # a MODE_STEPS name

    @property
    def scale(self) -> frozenset[int]:
        """The key's seven pitch classes."""
        return frozenset((self.tonic + s) % 12 for s in MODE_STEPS[self.mode])

    @property
    def major_minor(self) -> "Key":
        """Major or minor key on the same tonic, chosen by the mode's third."""
        return Key(self.tonic, "minor" if 3 in MODE_STEPS[self.mode] else "major")


def parse_key(text: str) -> Key | None:
    """'A minor', 'Bb major', 'F# dorian', 'c#m' -> :class:`Key`; None when it is not a key."""
    m = re.fullmatch(r"\s*([A-Ga-g])([#b♯♭]*)\s*(m|maj|min|[A-Za-z]+)?\s*", text or "")
    if m is None:
        return None
    tonic = PITCH_CLASSES[m.group(1).upper()] + sum(1 if c in "#♯" else -1 for c in m.group(2))
    mode = {None: "major", "maj": "major", "m": "minor", "min": "minor"}.get(m.group(3), (m.group(3) or "").lower())
    return Key(tonic % 12, mode) if mode in MODE_STEPS else None


def names_bass(instruments: Sequence[str]) -> bool:
    """True when a named instrument plays in the bass register: a ``synth.INSTRUMENTS`` entry with a register
    centre at or below G2 (the basses, tuba, timpani), else any name with the word 'bass' (not bassoon)."""
    for name in instruments:
        name = name.lower().strip()
        if name in INSTRUMENTS:
            if INSTRUMENTS[name][2] <= BASS_REGISTER_MAX:
                return True
        elif re.search(r"\bbass\b", name):
            return True
    return False


def names_drums(instruments: Sequence[str]) -> bool:
    """True when a named instrument is a drum kit (``synth.DRUM_KITS``, or an unknown name with 'drum' or
    'percussion'; pitched ones such as steel drums are in ``synth.INSTRUMENTS`` and do not count)."""
    for name in instruments:
        name = name.lower().strip()
        if name in DRUM_KITS or (name not in INSTRUMENTS and re.search(r"drum|percussion", name)):
            return True
    return False


@dataclass(frozen=True)
class PromptTarget:
    """What a prompt row asks for (None where the row does not say)."""

    bpm: float | None
    key: Key | None
    has_bass: bool | None
    has_drums: bool | None

    @classmethod
    def from_row(cls, row: dict) -> "PromptTarget":
        bpm = row.get("bpm")
        bpm = float(bpm) if isinstance(bpm, (int, float)) and bpm > 0 else None
        key = parse_key(row["key"]) if isinstance(row.get("key"), str) else None
        inst = row.get("instruments")
        if isinstance(inst, str):
            inst = [x for x in inst.split(",") if x.strip()]
        if not isinstance(inst, list) or not inst:
            return cls(bpm, key, None, None)
        return cls(bpm, key, names_bass(inst), names_drums(inst))


# --------------------------------------------------------------------------------------------------
# Clip analysis
# --------------------------------------------------------------------------------------------------

@dataclass
class ClipAnalysis:
    """What the judges hear in one clip."""

    tempo: float  # bpm (librosa beat tracker)
    key: Key  # Krumhansl-Schmuckler estimate (major or minor)
    key_r: float  # its correlation with the chroma
    pitch_class_weight: list[float]  # 12 values: transcribed note weight per pitch class
    low_note_share: float | None  # note weight below LOW_NOTE_MIDI / all note weight (None: no notes)
    percussive_share: float  # percussive / (harmonic + percussive) spectral energy
    n_notes: int
    pulse_clarity: float  # highest normalised onset autocorrelation at beat lags (pulse_clarity_of)


def estimate_key(chroma: np.ndarray) -> tuple[Key, float]:
    """The major/minor key whose rotated Krumhansl-Kessler profile correlates best with a 12-d chroma."""
    chroma = np.asarray(chroma, dtype=np.float64).reshape(12)
    best, best_r = Key(0, "major"), -np.inf
    for mode, profile in (("major", KK_MAJOR), ("minor", KK_MINOR)):
        for tonic in range(12):
            r = np.corrcoef(chroma, np.roll(profile, tonic))[0, 1]
            if np.isfinite(r) and r > best_r:
                best, best_r = Key(tonic, mode), float(r)
    return best, float(best_r) if np.isfinite(best_r) else 0.0


def estimate_tempo(wav: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """librosa's beat-tracker tempo (bpm; 0 for silence)."""
    import librosa

    tempo, _ = librosa.beat.beat_track(y=wav, sr=sr)
    return float(np.atleast_1d(tempo)[0])


def pulse_clarity_of(wav: np.ndarray, sr: int = SAMPLE_RATE, hop: int = 512) -> float:
    """How regular the clip's pulse is, in [0, 1]: the autocorrelation of librosa's onset-strength
    envelope (mean removed, divided by its lag-0 value) at its highest peak between the lags of
    ``PULSE_BPM`` (a click every 0.5 s scores near 1, white noise near 0; 0 for silence)."""
    import librosa

    env = librosa.onset.onset_strength(y=wav, sr=sr, hop_length=hop)
    env = env - env.mean()
    ac = librosa.autocorrelate(env)
    if len(ac) == 0 or ac[0] <= 1e-12:
        return 0.0
    frames_per_s = sr / hop
    lo, hi = int(frames_per_s * 60 / PULSE_BPM[1]), int(np.ceil(frames_per_s * 60 / PULSE_BPM[0]))
    window = ac[lo:hi + 1] / ac[0]
    return float(max(window.max(), 0.0)) if len(window) else 0.0


def percussive_share(wav: np.ndarray) -> float:
    """Energy of librosa's percussive STFT component over harmonic + percussive energy."""
    import librosa

    spec = np.abs(librosa.stft(wav))
    harmonic, percussive = librosa.decompose.hpss(spec)
    total = float((harmonic ** 2).sum() + (percussive ** 2).sum())
    return float((percussive ** 2).sum()) / total if total > 0 else 0.0


class NoteTranscriber:
    """basic-pitch's ICASSP 2022 model (the ONNX file in its wheel) with its default note thresholds."""

    def __init__(self):
        self._backend = BasicPitchEmbedding()

    def load(self) -> None:
        """Raise :class:`~magnet_audio.evaluation.embeddings.Unavailable` if basic-pitch cannot run."""
        self._backend.load()

    @property
    def weights(self) -> str:
        return str(self._backend.path)

    def transcribe(self, path: str | Path) -> tuple[dict, list[tuple[float, float, int, float]]]:
        """basic-pitch's raw output (``note``, ``onset``, ``contour`` posteriorgrams, frames first) and
        the (start s, end s, MIDI pitch, amplitude) of each note, with ``basic_pitch.inference.predict``'s
        default thresholds."""
        from basic_pitch import note_creation
        from basic_pitch.constants import AUDIO_SAMPLE_RATE, FFT_HOP
        from basic_pitch.inference import run_inference

        self.load()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            output = run_inference(str(path), self._backend.model)
            _, events = note_creation.model_output_to_notes(
                output, onset_thresh=0.5, frame_thresh=0.3,
                min_note_len=int(round(0.1277 * AUDIO_SAMPLE_RATE / FFT_HOP)), melodia_trick=True)
        return output, [(float(s), float(e), int(p), float(a)) for s, e, p, a, *_ in events]

    def notes(self, path: str | Path) -> list[tuple[float, float, int, float]]:
        """(start s, end s, MIDI pitch, amplitude) of each note transcribed from an audio file."""
        return self.transcribe(path)[1]


def note_statistics(notes: Sequence[tuple[float, float, int, float]]) -> tuple[list[float], float | None]:
    """Pitch-class weight histogram and low-note share; a note weighs duration x amplitude."""
    pcs = np.zeros(12)
    low = total = 0.0
    for start, end, pitch, amp in notes:
        w = max(end - start, 0.0) * amp
        pcs[pitch % 12] += w
        total += w
        if pitch < LOW_NOTE_MIDI:
            low += w
    return pcs.tolist(), (low / total if total > 0 else None)


def analyze_clip(path: str | Path, transcriber: NoteTranscriber) -> ClipAnalysis:
    """Run every judge on one audio file (read as mono at 22.05 kHz)."""
    import librosa

    wav = audio_read(path, sample_rate=SAMPLE_RATE, channels=1)[0][0].numpy().astype(np.float32)
    chroma = librosa.feature.chroma_cqt(y=wav, sr=SAMPLE_RATE).mean(axis=1)
    key, r = estimate_key(chroma)
    notes = transcriber.notes(path)
    pcs, low = note_statistics(notes)
    return ClipAnalysis(tempo=estimate_tempo(wav), key=key, key_r=r, pitch_class_weight=pcs,
                        low_note_share=low, percussive_share=percussive_share(wav), n_notes=len(notes),
                        pulse_clarity=pulse_clarity_of(wav))


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------

def tempo_match(estimate: float, target: float, octave: bool = False, tol: float = TEMPO_TOLERANCE) -> bool:
    """|estimate - target| <= tol * target; with ``octave`` also for 2x and 0.5x the target."""
    factors = (1.0, 2.0, 0.5) if octave else (1.0,)
    return any(abs(estimate - f * target) <= tol * f * target for f in factors)


def mirex_key_score(estimate: Key, target: Key) -> float:
    """MIREX weighted key score of two major/minor keys (as ``mir_eval.key.weighted_score``)."""
    if estimate.mode == target.mode:
        if estimate.tonic == target.tonic:
            return 1.0
        return 0.5 if (estimate.tonic - target.tonic) % 12 == 7 else 0.0
    if estimate.tonic == target.tonic:
        return 0.2  # parallel
    if target.mode == "major" and (estimate.tonic - target.tonic) % 12 == 9:
        return 0.3  # relative minor
    if target.mode == "minor" and (estimate.tonic - target.tonic) % 12 == 3:
        return 0.3  # relative major
    return 0.0


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """P(score of a positive > score of a negative), ties count 1/2; None without both classes."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho (Pearson correlation of the ranks, ties given their mean rank); None with fewer
    than 3 pairs or when either side is constant."""
    if len(x) < 3:
        return None
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def score_measures(pairs: Sequence[tuple[ClipAnalysis, PromptTarget]]) -> dict[str, dict]:
    """Every measure over (analysis, target) pairs: ``{measure: {"value": v | None, "n": clips used}}``
    (a pair counts for a measure only when its prompt gives what the measure needs)."""
    out: dict[str, dict] = {}

    def mean_of(values: list[float], **extra) -> dict:
        return {"value": float(np.mean(values)) if values else None, "n": len(values), **extra}

    tempo = [(a.tempo, t.bpm) for a, t in pairs if t.bpm is not None]
    out["tempo_acc"] = mean_of([float(tempo_match(e, b)) for e, b in tempo],
                               median_abs_error_pct=float(np.median([abs(e - b) / b * 100 for e, b in tempo]))
                               if tempo else None)
    out["tempo_acc_octave"] = mean_of([float(tempo_match(e, b, octave=True)) for e, b in tempo])
    out["tempo_rank_corr"] = {"value": rank_correlation([e for e, _ in tempo], [b for _, b in tempo]),
                              "n": len(tempo)}
    out["pulse_clarity"] = mean_of([a.pulse_clarity for a, _ in pairs])
    keys = [(a.key, t.key) for a, t in pairs if t.key is not None]
    out["key_exact"] = mean_of([float(e == k.major_minor) for e, k in keys])
    out["key_mirex"] = mean_of([mirex_key_score(e, k.major_minor) for e, k in keys])
    out["key_signature"] = mean_of([float(e.scale == k.scale) for e, k in keys])
    in_scale = []
    for a, t in pairs:
        total = sum(a.pitch_class_weight)
        if t.key is not None and total > 0:
            in_scale.append(sum(a.pitch_class_weight[pc] for pc in t.key.scale) / total)
    out["in_scale_notes"] = mean_of(in_scale)
    for name, get, flag in (("bass_auc", lambda a: a.low_note_share, lambda t: t.has_bass),
                            ("drums_auc", lambda a: a.percussive_share, lambda t: t.has_drums)):
        used = [(get(a), flag(t)) for a, t in pairs if flag(t) is not None and get(a) is not None]
        with_ = [v for v, f in used if f]
        without = [v for v, f in used if not f]
        out[name] = {"value": roc_auc([v for v, _ in used], [f for _, f in used]), "n": len(used),
                     "n_named": len(with_), "mean_share_named": float(np.mean(with_)) if with_ else None,
                     "mean_share_not_named": float(np.mean(without)) if without else None}
    return out


def permutation_p_values(pairs: Sequence[tuple[ClipAnalysis, PromptTarget]], observed: dict[str, dict],
                         permutations: int = 1000, seed: int = 0) -> dict[str, float | None]:
    """One-sided permutation test of each measure against chance: the share of random re-pairings of
    the same clips with the same prompts (uniform permutations, seeded) that score at least the
    ``observed`` value, as ``(1 + count) / (1 + permutations)``; None where the measure has no value
    or does not depend on the prompt (``PROMPT_FREE``)."""
    rng = np.random.default_rng(seed)
    clips, targets = [a for a, _ in pairs], [t for _, t in pairs]
    tested = [m for m in MEASURES if m not in PROMPT_FREE]
    counts = dict.fromkeys(tested, 0)
    for _ in range(permutations):
        order = rng.permutation(len(pairs))
        scored = score_measures([(a, targets[j]) for a, j in zip(clips, order)])
        for m in tested:
            value, ref = scored[m]["value"], observed[m]["value"]
            if value is not None and ref is not None and value >= ref - 1e-12:
                counts[m] += 1
    return {m: None if m not in counts or observed[m]["value"] is None else (1 + counts[m]) / (1 + permutations)
            for m in MEASURES}


def derangement(n: int, seed: int = 0) -> list[int]:
    """A fixed-seed permutation σ of range(n) with σ(i) != i for every i (identity for n < 2)."""
    if n < 2:
        return list(range(n))
    order = np.random.default_rng(seed).permutation(n)
    sigma = [0] * n
    for pos, i in enumerate(order):  # each element maps to the next one in a random cycle
        sigma[int(i)] = int(order[(pos + 1) % n])
    return sigma


def analyze_conditions(conditions: dict[str, Sequence[str | Path | None]], analyze: Callable[[str | Path], object],
                       label: str, progress: Callable[[str], None] | None = None) -> dict[str, list]:
    """``analyze`` every clip of each condition (generated / reference / codec round trip), in order;
    None stays None, a clip given twice (e.g. ``--generated`` = ``--reference``) is analysed once, and
    a condition without any clip is left out of the result."""
    done: dict[Path, object] = {}
    out: dict[str, list] = {}
    for condition, paths in conditions.items():
        if not any(p is not None for p in paths):
            continue
        results = []
        for i, p in enumerate(paths):
            if p is not None and progress is not None and i % 10 == 0:
                progress(f"{label}: analysing {condition} clip {i + 1} of {len(paths)}")
            if p is not None and Path(p).resolve() not in done:
                done[Path(p).resolve()] = analyze(p)
            results.append(None if p is None else done[Path(p).resolve()])
        out[condition] = results
    return out


def adherence_report(rows: Sequence[dict], generated: Sequence[Path | None], reference: Sequence[Path | None],
                     transcriber: NoteTranscriber | None = None, shuffle_seed: int = 0,
                     progress: Callable[[str], None] | None = None,
                     codec: Sequence[Path | None] | None = None, permutations: int = 1000) -> dict:
    """Score each measure on generated clips, reference clips, codec round trips and shuffled pairing.

    ``rows[i]`` is prompt ``i``'s metadata; ``generated[i]`` / ``reference[i]`` / ``codec[i]`` its clips
    (None: missing; ``codec`` None: no such condition). The generated and codec conditions also get a
    ``p_value`` per measure: a permutation test against chance (:func:`permutation_p_values`).
    Returns ``{"measures": {measure: {condition: {"value", "n", ...}}}, "clips": per-clip analyses,
    "shuffle": σ}``; a condition without clips is absent."""
    transcriber = transcriber or NoteTranscriber()
    transcriber.load()
    targets = [PromptTarget.from_row(r) for r in rows]
    analyses = analyze_conditions({"generated": generated, "reference": reference, "codec": codec or []},
                                  lambda p: analyze_clip(p, transcriber), "adherence", progress)
    sigma = derangement(len(rows), shuffle_seed)
    pairings: dict[str, list[tuple[ClipAnalysis, PromptTarget]]] = {}
    for condition, clips in analyses.items():
        pairings[condition] = [(a, targets[i]) for i, a in enumerate(clips) if a is not None]
    if "generated" in analyses:
        pairings["shuffled"] = [(a, targets[sigma[i]]) for i, a in enumerate(analyses["generated"]) if a is not None]
    scored = {c: score_measures(p) for c, p in pairings.items()}
    for condition in ("generated", "codec"):
        if condition in scored and permutations > 0:
            if progress is not None:
                progress(f"adherence: {permutations} random pairings of the {condition} clips (p-values)")
            p_values = permutation_p_values(pairings[condition], scored[condition], permutations, shuffle_seed)
            for m, p in p_values.items():
                scored[condition][m]["p_value"] = p
    measures = {m: {c: scored[c][m] for c in CONDITIONS if c in scored} for m in MEASURES}
    clips = {c: [None if a is None else {**asdict(a), "key": f"{a.key.tonic} {a.key.mode}"} for a in clips]
             for c, clips in analyses.items()}
    return {"measures": measures, "clips": clips, "shuffle": sigma, "weights": transcriber.weights}
