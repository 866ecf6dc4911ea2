"""Real pieces from the corpus that ships with music21 (chorales, folk tunes, Renaissance
polyphony), with instruments and a tempo chosen here and key and meter read from the score."""

from __future__ import annotations

import random
import re
from pathlib import Path

from ...errors import InputError
from .render import INSTALL_PYTHON
from .spec import PartSpec, PieceSpec, _weighted
from .theory import INSTRUMENTS, MODES


# category -> (genre, caption nouns, bpm range of the beat, instrument setups)
FOLK_SOLO = ("fiddle", "flute", "tin whistle", "accordion", "violin", "piano", "harmonica", "recorder", "clarinet",
             "nylon guitar", "harp", "dulcimer", "oboe", "banjo")
CORPUS_CATEGORIES = {
    "chorale": ("classical", ("Bach chorale", "chorale by J.S. Bach", "four-part Bach chorale",
                              "baroque chorale"), (56, 92)),
    "irish": ("folk", ("traditional Irish tune", "Irish folk tune", "Celtic folk tune"), (88, 132)),
    "scottish": ("folk", ("traditional Scottish tune", "Scottish folk tune", "Celtic air"), (72, 120)),
    "fiddle": ("folk", ("traditional dance tune", "old-time folk tune", "folk dance tune"), (90, 132)),
    "german": ("folk", ("German folk song", "European folk song", "traditional folk melody"), (70, 120)),
    "chinese": ("folk", ("Chinese folk melody", "traditional Chinese folk song"), (60, 104)),
    "children": ("folk", ("children's song", "nursery tune", "simple folk song"), (80, 120)),
    "american": ("folk", ("American folk tune", "traditional folk tune"), (80, 124)),
    "renaissance": ("classical", ("Renaissance polyphony", "Renaissance motet", "early music",
                                  "Renaissance choral piece"),
                    (56, 88)),
    "medieval": ("classical", ("medieval piece", "trecento polyphony", "early music"), (60, 96)),
}
ENSEMBLES = {  # name -> instruments for voices top to bottom
    "string quartet": ("violin", "violin", "viola", "cello"),
    "church organ": ("church organ",),
    "choir": ("choir",),
    "brass quartet": ("trumpet", "trumpet", "trombone", "tuba"),
    "woodwind quartet": ("flute", "oboe", "clarinet", "bassoon"),
    "piano": ("piano",),
    "string orchestra": ("strings",),
    "harpsichord": ("harpsichord",),
    "recorder consort": ("recorder", "recorder", "recorder", "bassoon"),
}
_FORMS = ("reel", "jig", "hornpipe", "strathspey", "waltz", "polka", "march", "air", "slide", "lament", "clog",
          "schottische", "quickstep", "fling", "set dance")


def _corpus_category(path: str) -> str | None:
    top, _, rest = path.partition("/")
    name = rest.rsplit("/", 1)[-1]
    if path.endswith(".rntxt"):
        return None
    if top == "bach":
        return "chorale"
    if top == "oneills1850":
        return "irish"
    if top == "airdsAirs":
        return "scottish"
    if top == "ryansMammoth":
        return "fiddle"
    if top == "miscFolk":
        return "american"
    if top == "essenFolksong":
        if name.startswith(("test", "variant")):
            return None
        if name.startswith("han"):
            return "chinese"
        if name.startswith("kinder"):
            return "children"
        if name.startswith("irl"):
            return "irish"
        return "german"
    if top in ("palestrina", "josquin") or (top == "monteverdi" and not path.endswith(".rntxt")):
        return "renaissance"
    if top == "trecento":
        return "medieval"
    return None


class CorpusSource:
    """Pieces of the music21 corpus, in a fixed order (so a seed picks the same piece everywhere)."""

    def __init__(self):
        try:
            from music21 import corpus
        except ImportError as exc:
            raise InputError(f"the music21 corpus source needs music21: {INSTALL_PYTHON}, "
                             "or pass --corpus-fraction 0") from exc
        bundle = corpus.corpora.CoreCorpus().metadataBundle
        entries = getattr(bundle, "_metadataEntries", None)  # iterating the bundle itself takes ~20 s
        entries = list(entries.values()) if isinstance(entries, dict) else list(bundle)
        works = []
        for entry in entries:
            if entry.metadata is None:
                continue
            path = str(entry.sourcePath)
            category = _corpus_category(path)
            if category is None:
                continue
            if category == "chorale" and getattr(entry.metadata, "numberOfParts", 4) != 4:
                continue
            title = entry.metadata.title or ""
            composer = entry.metadata.composer or ""
            works.append((category, path, str(entry.number) if entry.number else "", title, composer))
        works.sort()
        self.by_category: dict[str, list] = {}
        for w in works:
            self.by_category.setdefault(w[0], []).append(w)
        if not works:
            raise InputError("the music21 corpus is empty or missing; reinstall music21 or pass --corpus-fraction 0")

    def sample(self, rng: random.Random, index: int, seed: int, duration: float):
        """(spec, PrettyMIDI) of a random corpus piece; raises on an unparsable piece."""
        import pretty_midi
        from music21 import meter

        # categories weighted so no single collection dominates
        weights = {"chorale": 3, "irish": 2, "scottish": 1.5, "fiddle": 1.5, "german": 2, "chinese": 1,
                   "children": 0.5, "american": 0.5, "renaissance": 1.5, "medieval": 0.5}
        weights = {k: v for k, v in weights.items() if k in self.by_category}
        category = _weighted(rng, weights)
        _, path, number, title, composer = rng.choice(self.by_category[category])
        score = _load_score(path, number)
        ts = score.recurse().getElementsByClass(meter.TimeSignature).first()
        num, den = (ts.numerator, ts.denominator) if ts is not None else (4, 4)
        beat_ql = 4.0 / den * (3 if den == 8 and num % 3 == 0 and num > 3 else 1)
        key = score.analyze("key")
        mode = key.mode if key.mode in MODES else "major"
        root = key.tonic.pitchClass

        parts = [p for p in (score.parts if score.parts else [score]) if p.flatten().notes]
        if not parts:
            raise ValueError("no notes")
        genre = CORPUS_CATEGORIES[category][0]
        form, lo, hi = _form_and_tempo_range(category, title, num, den)
        bpm = rng.randint(lo, hi)
        ensemble, insts, roles = _instruments(rng, category, len(parts))

        sec_per_ql = 60.0 / (bpm * beat_ql)
        start_ql = _start_offset(rng, float(score.highestTime), duration, sec_per_ql, num * 4.0 / den)
        pm = pretty_midi.PrettyMIDI(initial_tempo=float(bpm / beat_ql))
        pm.time_signature_changes.append(pretty_midi.TimeSignature(num, den, 0.0))
        reverb = 70 if category in ("chorale", "renaissance", "medieval") else 45
        volumes = {"voice": 90, "melody": 100}
        melody_pitches = _add_parts(pm, rng, parts, insts, roles, start_ql, sec_per_ql, duration, volumes, reverb)
        if not any(i.notes for i in pm.instruments):
            raise ValueError("no notes in the window")
        extra_parts = _add_accompaniment(pm, rng, category, insts, roles, melody_pitches, root, duration, reverb)

        moods = _moods(rng, category, mode == "minor", (bpm - lo) / max(1, hi - lo) > 0.5)
        part_specs = [PartSpec(role, inst, ensemble or "score", volumes[role]) for inst, role in zip(insts, roles)]
        clean_title = _clean_title(title)
        origin = f"{path}#{number}" if number else path
        spec = PieceSpec(index=index, seed=seed, source="music21", style=category, genre=genre, moods=moods,
                         bpm=bpm, root=root, mode=mode, meter=(num, den), parts=part_specs + extra_parts,
                         duration=duration, title=clean_title or Path(path).stem, artist=composer.split("\n")[0],
                         form=form or ("chorale" if category == "chorale" else ""), origin=origin,
                         ensemble=ensemble)
        return spec, pm


def _load_score(path: str, number: str | None):
    """The music21 score of a corpus piece (the first of an opus), repeats expanded in short pieces, ties merged."""
    from music21 import corpus, stream

    score = corpus.parse(path, number=int(number) if number else None)
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    if score.highestTime < 400:
        try:
            score = score.expandRepeats()
        except Exception:  # badly formed repeats: play it as written
            pass
    return score.stripTies()


def _form_and_tempo_range(category: str, title: str, num: int, den: int) -> tuple[str, int, int]:
    """The dance form a title or meter names (reel, jig, air ...) and the bpm range it is played at."""
    lo, hi = CORPUS_CATEGORIES[category][2]
    form = next((f for f in _FORMS if re.search(rf"\b{f}", title.lower())), "")
    if not form and category in ("irish", "scottish", "fiddle"):
        form = {(6, 8): "jig", (9, 8): "slip jig", (3, 4): "waltz", (2, 4): "polka"}.get((num, den), "")
    if form in ("reel", "hornpipe", "jig", "polka", "slide", "quickstep", "fling"):
        lo, hi = max(lo, 100), max(hi, 132)
    elif form in ("air", "lament"):
        lo, hi = 60, 90
    return form, lo, hi


def _instruments(rng: random.Random, category: str, n_parts: int) -> tuple[str, list[str], list[str]]:
    """(ensemble name or "", an instrument per part, their roles) for a piece of ``n_parts`` voices."""
    if n_parts >= 3:
        ensembles = ["string quartet", "church organ", "choir", "brass quartet", "woodwind quartet", "piano",
                     "string orchestra"] + (["recorder consort"] if category != "chorale" else [])
        ensemble = rng.choice(ensembles)
        voices = ENSEMBLES[ensemble]
        insts = [voices[min(i * len(voices) // n_parts, len(voices) - 1)] if len(voices) > 1 else voices[0]
                 for i in range(n_parts)]
        return ensemble, insts, ["voice"] * n_parts
    if n_parts == 2:
        pair = rng.choice([("violin", "cello"), ("flute", "bassoon"), ("piano", "piano"), ("harpsichord",) * 2,
                           ("recorder", "recorder"), ("clarinet", "bassoon"), ("violin", "viola")])
        return "", list(pair), ["voice", "voice"]
    pool = {"chinese": ("flute", "pan flute", "koto", "dulcimer", "piano", "violin"),
            "renaissance": ("recorder", "church organ", "choir")}.get(category, FOLK_SOLO)
    return "", [rng.choice(pool)], ["melody"]


def _start_offset(rng: random.Random, length_ql: float, duration: float, sec_per_ql: float, bar_ql: float) -> float:
    """Where the clip starts (quarter notes): a random bar of the first half of longer pieces, so
    clips of one piece differ; else the beginning."""
    length_s = length_ql * sec_per_ql
    if length_s > 2 * duration and rng.random() < 0.5:
        max_bar = int((length_s - duration) / (bar_ql * sec_per_ql))
        return rng.randint(0, max(0, max_bar // 2)) * bar_ql
    return 0.0


def _add_parts(pm, rng: random.Random, parts, insts: list[str], roles: list[str], start_ql: float,
               sec_per_ql: float, duration: float, volumes: dict[str, int], reverb: int) -> list[int]:
    """Add the score's parts within the clip's window to ``pm``, one instrument each (velocities
    humanised, high instruments kept in their range); returns the MIDI pitches played."""
    import pretty_midi

    melody_pitches = []
    for part, inst_name, role in zip(parts, insts, roles):
        program = INSTRUMENTS[inst_name][0]
        inst = pretty_midi.Instrument(program=program, name=f"{role}:{inst_name}")
        for n in part.flatten().notes:
            ql = float(n.duration.quarterLength)
            if ql <= 0:  # grace note
                continue
            start = (float(n.offset) - start_ql) * sec_per_ql
            end = start + ql * sec_per_ql * 0.95
            if end <= 0 or start >= duration + 1:
                continue
            vel = 70 + (n.volume.velocity - 64) // 4 if n.volume.velocity else 80
            for p in n.pitches:
                midi = p.midi
                if inst_name in ("fiddle", "violin", "flute", "tin whistle", "recorder") and midi < 55:
                    midi += 12
                if inst_name == "tin whistle" and midi < 62:
                    midi += 12
                inst.notes.append(pretty_midi.Note(int(max(30, min(120, vel + rng.randint(-6, 6)))), midi,
                                                   max(0.0, start), end))
                melody_pitches.append(midi)
        inst.control_changes.append(pretty_midi.ControlChange(7, volumes[role], 0.0))
        inst.control_changes.append(pretty_midi.ControlChange(91, reverb, 0.0))
        pm.instruments.append(inst)
    return melody_pitches


def _add_accompaniment(pm, rng: random.Random, category: str, insts: list[str], roles: list[str],
                       melody_pitches: list[int], root: int, duration: float, reverb: int) -> list[PartSpec]:
    """Sometimes accompany a solo tune: a bagpipe-style drone (folk fiddle tunes) or the tune doubled
    an octave below by a second instrument. Returns the parts added."""
    import pretty_midi

    if roles == ["melody"] and category in ("irish", "scottish", "fiddle") and rng.random() < 0.3:
        # a drone on the tonic and fifth, bagpipe-style
        low = min(melody_pitches) if melody_pitches else 60
        tonic = low - 12 - ((low - 12 - root) % 12)
        drone = pretty_midi.Instrument(program=INSTRUMENTS["strings"][0], name="drone:strings")
        end = duration + 1
        drone.notes += [pretty_midi.Note(55, tonic, 0.0, end), pretty_midi.Note(50, tonic + 7, 0.0, end)]
        drone.control_changes.append(pretty_midi.ControlChange(7, 70, 0.0))
        pm.instruments.append(drone)
        return [PartSpec("drone", "strings", "drone", 70)]
    if roles == ["melody"] and rng.random() < 0.2:
        # the tune doubled an octave below by a second instrument
        second = rng.choice([i for i in FOLK_SOLO if i != insts[0]])
        double = pretty_midi.Instrument(program=INSTRUMENTS[second][0], name=f"melody:{second}")
        double.notes = [pretty_midi.Note(max(30, n.velocity - 10), n.pitch - 12, n.start, n.end)
                        for n in pm.instruments[0].notes]
        double.control_changes.append(pretty_midi.ControlChange(7, 85, 0.0))
        double.control_changes.append(pretty_midi.ControlChange(91, reverb, 0.0))
        pm.instruments.append(double)
        return [PartSpec("melody", second, "doubling", 85)]
    return []


def _moods(rng: random.Random, category: str, minor: bool, fast: bool) -> list[str]:
    """One or two moods from the mode and the tempo (within its range)."""
    mood_pool = {(False, False): ["gentle", "serene", "warm", "peaceful"],
                 (False, True): ["lively", "cheerful", "joyful", "playful"],
                 (True, False): ["melancholic", "somber", "sad", "nostalgic"],
                 (True, True): ["dramatic", "driving", "mysterious", "intense"]}[(minor, fast)]
    if category in ("chorale", "renaissance", "medieval"):
        mood_pool = (["solemn", "somber", "reverent", "melancholic"] if minor else
                     ["serene", "reverent", "calm", "bright" if fast else "gentle"])
    return rng.sample(mood_pool, 1 + (rng.random() < 0.4))


def _clean_title(title: str) -> str:
    clean_title = title.strip().rstrip(".").strip()
    if clean_title.isupper():
        clean_title = clean_title.title()
    return re.sub(r"\s*--\s*", " - ", clean_title)
