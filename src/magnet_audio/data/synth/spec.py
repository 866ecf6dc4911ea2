"""The structured description of a piece (:class:`PieceSpec`, one :class:`PartSpec` per
instrument) and sampling a synthetic one from the styles."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from .styles import MODE_PROGS, MOODS, STYLES
from .theory import MINOR_FAMILY, add_seventh, key_name


@dataclass
class PartSpec:
    """One instrument of a piece: what it plays (role, pattern) and how loud (CC7)."""

    role: str                 # melody, chords, bass, pad, arp, drums, drone, voice
    instrument: str           # a key of INSTRUMENTS or DRUM_KITS
    pattern: str = ""
    volume: int = 100


@dataclass
class PieceSpec:
    """Everything that decides a clip: the MIDI and the caption are both made from it."""

    index: int
    seed: int
    source: str               # "synth" or "music21"
    style: str                # a key of STYLES, or the corpus category ("chorale", "irish folk", ...)
    genre: str
    moods: list[str]
    bpm: float
    root: int                 # tonic pitch class
    mode: str                 # major, minor, dorian, ...
    meter: tuple[int, int]
    parts: list[PartSpec]
    progression: list[str] = field(default_factory=list)
    energy: float = 0.5
    swing: float = 0.0
    duration: float = 10.0
    title: str = ""
    artist: str = ""
    form: str = ""            # corpus pieces: reel, jig, chorale, ...
    origin: str = ""          # corpus pieces: the music21 corpus path (and tune number)
    ensemble: str = ""        # corpus pieces: "string quartet", "choir", ... ("" for none)

    @property
    def key(self) -> str:
        return key_name(self.root, self.mode)

    @property
    def instruments(self) -> list[str]:
        """Instrument names, most prominent first (melody, then the rest in part order), no repeats."""
        order = {"melody": 0, "voice": 0, "chords": 1, "arp": 2, "pad": 3, "bass": 4, "drone": 5, "drums": 6}
        names: list[str] = []
        for part in sorted(self.parts, key=lambda p: order.get(p.role, 9)):
            if part.instrument not in names:
                names.append(part.instrument)
        return names

    @property
    def solo(self) -> bool:
        return len(self.instruments) == 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["meter"] = list(self.meter)
        return d




def _weighted(rng: random.Random, weights: dict):
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def sample_synth_spec(rng: random.Random, index: int, seed: int, duration: float) -> PieceSpec:
    """A random piece of a random style: moods first, then mode, tempo and arrangement to match."""
    style = STYLES[rng.choice(sorted(STYLES))]
    moods = [rng.choice(style.moods)]
    if rng.random() < 0.5:
        valence = MOODS[moods[0]][0]
        compatible = [m for m in style.moods if m != moods[0] and abs(MOODS[m][0] - valence) < 0.8]
        if compatible:
            moods.append(rng.choice(compatible))
    valence = sum(MOODS[m][0] for m in moods) / len(moods)
    energy = min(1.0, max(0.0, sum(MOODS[m][1] for m in moods) / len(moods) + rng.uniform(-0.15, 0.15)))

    modes = dict(style.modes)
    if valence < -0.2:
        modes = {m: w for m, w in modes.items() if m in MINOR_FAMILY} or modes
    elif valence > 0.2:
        modes = {m: w for m, w in modes.items() if m not in MINOR_FAMILY} or modes
    mode = _weighted(rng, modes)
    root = rng.randrange(12)
    lo, hi = style.bpm
    position = min(1.0, max(0.0, 0.25 + 0.6 * energy + rng.uniform(-0.25, 0.25)))
    bpm = int(round(lo + (hi - lo) * position))
    meter = rng.choice(style.meters)

    progs = (style.progressions or MODE_PROGS).get(mode) or MODE_PROGS[mode]
    progression = rng.choice(progs).split()
    if style.sevenths and rng.random() < style.sevenths:
        progression = [add_seventh(c) for c in progression]

    parts: list[PartSpec] = []
    if style.solo and rng.random() < style.solo_prob:
        inst = rng.choice(style.solo)
        parts.append(PartSpec("chords", inst, "solo_accomp", 90))
        parts.append(PartSpec("melody", inst, "melody", 100))
    else:
        if style.chords:
            inst, pattern = rng.choice(style.chords)
            parts.append(PartSpec("chords", inst, pattern, 85))
        if style.melody and rng.random() < style.melody_prob:
            choices = [m for m in style.melody if m not in [p.instrument for p in parts]] or list(style.melody)
            parts.append(PartSpec("melody", rng.choice(choices), "melody", 100))
        if style.arps and rng.random() < style.arp_prob:
            parts.append(PartSpec("arp", rng.choice(style.arps), "arp", 75))
        if style.pads and rng.random() < style.pad_prob:
            pad = rng.choice(style.pads)
            if pad not in [p.instrument for p in parts]:
                parts.append(PartSpec("pad", pad, "sustain", 65))
        if style.bass and rng.random() < style.bass_prob:
            inst, pattern = rng.choice(style.bass)
            parts.append(PartSpec("bass", inst, pattern, 95))
        if style.kits and rng.random() < style.drum_prob:
            pattern = rng.choice(style.drum_patterns)
            if meter[0] == 3:
                pattern = "folk3" if style.name == "folk" else "waltz"
            parts.append(PartSpec("drums", rng.choice(style.kits), pattern, 90))
        if not parts:
            parts.append(PartSpec("melody", rng.choice(style.melody or ("piano",)), "melody", 100))
    swing = rng.uniform(*style.swing) if style.swing[1] > 0 else 0.0
    return PieceSpec(index=index, seed=seed, source="synth", style=style.name, genre=style.name, moods=moods,
                     bpm=bpm, root=root, mode=mode, meter=meter, parts=parts, progression=progression,
                     energy=round(energy, 3), swing=round(swing, 3), duration=duration,
                     title=f"{style.name.title()} sketch no. {index}", artist="magnet-audio synth")
