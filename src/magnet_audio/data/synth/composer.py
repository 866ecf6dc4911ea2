"""Composing the MIDI of a synthetic :class:`~.spec.PieceSpec`: chords, bass, pads, arpeggios,
melody and drums on a humanised timeline."""

from __future__ import annotations

import math
import random

import numpy as np

from .spec import PartSpec, PieceSpec
from .styles import DRUM_PATTERNS, STYLES
from .theory import CRASH, DRUM_KITS, HTOM, INSTRUMENTS, KICK, LTOM, MODES, MTOM, parse_chord


class _Timeline:
    """Steps (16ths) -> seconds, with swing on off-beat 8ths and humanised timing."""

    def __init__(self, spec: PieceSpec, rng: random.Random, humanize: float):
        self.beat = 60.0 / spec.bpm
        self.step = self.beat / 4
        self.steps_per_bar = spec.meter[0] * 4
        self.bar = self.beat * spec.meter[0]
        self.swing, self.rng, self.humanize = spec.swing, rng, humanize

    def time(self, bar: int, step: float, jitter: bool = True) -> float:
        t = bar * self.bar + step * self.step
        frac = step % 4
        if self.swing and frac:  # 8th off-beats move by swing * half a beat; 16ths proportionally
            t += self.swing * self.beat * 0.5 * (frac / 2 if frac <= 2 else (4 - frac) / 2)
        if jitter and self.humanize:
            t += self.rng.gauss(0, self.humanize / 2)
        return max(0.0, t)


def _voicing(pcs: list[int], center: int, previous: list[int] | None) -> list[int]:
    """A close-position voicing of ``pcs`` near ``center``, moving little from ``previous``."""
    best, best_cost = None, float("inf")
    n = len(pcs)
    for inversion in range(n):
        order = pcs[inversion:] + pcs[:inversion]
        first = center - 6 + ((order[0] - (center - 6)) % 12)
        notes = [first]
        for pc in order[1:]:
            nxt = notes[-1] + ((pc - notes[-1]) % 12 or 12)
            notes.append(nxt)
        cost = abs(sum(notes) / n - center)
        if previous:
            cost += 0.5 * sum(min(abs(a - b) for b in previous) for a in notes) / n
        if cost < best_cost:
            best, best_cost = notes, cost
    return best


def _near(pc: int, center: int) -> int:
    """The pitch of class ``pc`` nearest ``center``."""
    return center + ((pc - center + 6) % 12) - 6


class Composer:
    """Turns a synthetic :class:`PieceSpec` into a ``pretty_midi.PrettyMIDI``."""

    def __init__(self, spec: PieceSpec, rng: random.Random):
        import pretty_midi

        self.pm_mod = pretty_midi
        self.spec, self.rng = spec, rng
        style = STYLES[spec.style]
        self.style = style
        self.tl = _Timeline(spec, rng, style.humanize)
        self.n_bars = int(math.ceil(spec.duration / self.tl.bar)) + 1
        self.scale = [(spec.root + i) % 12 for i in MODES[spec.mode]]
        hr = style.harmonic_rhythm * (2 if spec.bpm >= 150 and style.harmonic_rhythm == 1 and len(
            spec.progression) < 8 else 1)
        self.chords = [parse_chord(spec.progression[(bar // hr) % len(spec.progression)], spec.root)
                       for bar in range(self.n_bars)]
        self.vel = 58 + int(45 * spec.energy)

    # ------------------------------------------------------------------------------------------
    def compose(self):
        pm = self.pm_mod.PrettyMIDI(initial_tempo=float(self.spec.bpm))
        pm.time_signature_changes.append(self.pm_mod.TimeSignature(self.spec.meter[0], self.spec.meter[1], 0.0))
        for part in self.spec.parts:
            if part.role == "drums":
                program, is_drum = DRUM_KITS[part.instrument][0], True
            else:
                program, is_drum = INSTRUMENTS[part.instrument][0], False
            inst = self.pm_mod.Instrument(program=program, is_drum=is_drum, name=f"{part.role}:{part.instrument}")
            notes = getattr(self, f"_{part.role}")(part)
            for start, end, pitch, velocity in notes:
                if end - start < 0.02 or not 0 <= pitch <= 127:
                    continue
                velocity = int(min(127, max(1, velocity)))
                inst.notes.append(self.pm_mod.Note(velocity=velocity, pitch=int(pitch), start=start, end=end))
            inst.control_changes.append(self.pm_mod.ControlChange(7, part.volume, 0.0))
            inst.control_changes.append(self.pm_mod.ControlChange(91, self.style.reverb, 0.0))
            if part.pattern in ("ballad_arp", "alberti", "solo_accomp", "arp_up") and program <= 7:
                for bar in range(self.n_bars):  # sustain pedal, changed each bar
                    inst.control_changes.append(self.pm_mod.ControlChange(64, 100, self.tl.time(bar, 0.2, False)))
                    inst.control_changes.append(self.pm_mod.ControlChange(64, 0, self.tl.time(bar + 1, -0.3, False)))
            pm.instruments.append(inst)
        return pm

    def _v(self, base: int, spread: int = 8) -> int:
        return base + self.rng.randint(-spread, spread)

    # ------------------------------------------------------------------------------------------ chords
    def _chords(self, part: PartSpec) -> list:
        center = INSTRUMENTS[part.instrument][2]
        tl, spb = self.tl, self.tl.steps_per_bar
        notes, prev = [], None
        vel = self.vel - 8
        pattern = part.pattern
        beats = self.spec.meter[0]
        rng = self.rng
        for bar in range(self.n_bars):
            pcs = self.chords[bar]
            voice = _voicing(pcs[:4], center, prev)
            prev = voice
            root = _near(pcs[0], center - 12)

            def hit(step, length, pitches, v=vel, spread=0.0):
                t0 = tl.time(bar, step)
                for i, p in enumerate(pitches):
                    notes.append((t0 + i * spread, tl.time(bar, step + length, False), p, self._v(v)))

            if pattern in ("sustain", "solo_sustain"):
                hit(0, spb - 0.2, voice, vel - 10)
            elif pattern == "half":
                for s in range(0, spb, 8 if beats == 4 else 6):
                    hit(s, 7.5 if beats == 4 else 5.5, voice)
            elif pattern == "quarters":
                for s in range(0, spb, 4):
                    hit(s, 3.3, voice, vel + (8 if s == 0 else 0))
            elif pattern == "eighths":
                for s in range(0, spb, 2):
                    hit(s, 1.6, voice, vel + (8 if s % 4 == 0 else -6))
            elif pattern == "strum":
                strum = "D.DU.UDU" if beats == 4 else "D.DUDU"
                for i, ch in enumerate(strum):
                    if ch == ".":
                        continue
                    pitches = [root + 12] + voice if ch == "D" else list(reversed(voice))
                    hit(i * 2, 2.0 if ch == "U" else 3.5, pitches, vel + (6 if ch == "D" else -10), spread=0.012)
            elif pattern == "fingerpick":
                seq = [root, voice[-1], voice[0] + 12 if len(voice) > 2 else voice[1], voice[1]]
                for i, s in enumerate(range(0, spb, 2)):
                    p = seq[i % 4] if i % 4 else (root if i == 0 else _near(pcs[min(2, len(pcs) - 1)], center - 12))
                    hit(s, 3.5, [p], vel - 5)
            elif pattern == "power":
                low = _near(pcs[0], 45)
                for s in range(0, spb, 2):
                    hit(s, 1.7, [low, low + 7, low + 12], vel + (8 if s % 8 == 0 else 0))
            elif pattern == "chug":
                low = _near(pcs[0], 40)
                for s in range(spb):
                    if s % 8 in (0, 4) or rng.random() < 0.75:
                        hit(s, 0.8, [low, low + 7], vel + (12 if s % 4 == 0 else 0))
            elif pattern in ("stabs", "stabs16"):
                steps = ([2, 6, 10, 14] if pattern == "stabs" else
                         sorted(rng.sample([1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15], 6)))
                for s in steps:
                    if s < spb:
                        hit(s, 0.8, voice, vel + 5)
            elif pattern == "skank":
                for s in range(4, spb, 8):
                    hit(s, 1.2, voice, vel)
            elif pattern == "house_piano":
                for s in (0, 3, 6, 10, 12):
                    hit(s, 1.5, voice, vel + 5)
            elif pattern == "waltz":
                for s in (4, 8):
                    hit(s, 3, voice, vel - 5)
            elif pattern in ("alberti", "arp_up", "ballad_arp", "solo_accomp"):
                notes += self._broken(bar, pcs, center, pattern, vel)
            elif pattern == "jazz_comp":
                rootless = _voicing([pcs[1 % len(pcs)]] + pcs[2:] + pcs[:1], center, None)
                for s in rng.choice([(0, 6), (2, 10), (4, 12, 14), (0, 6, 10), (6, 14)]):
                    hit(s, rng.choice([1.5, 3.0]), rootless, vel - 6)
            elif pattern == "lazy_chords":
                hit(0, spb * 0.95, voice, vel - 6, spread=0.025)
                if rng.random() < 0.4:
                    hit(spb - 2 if beats == 4 else 8, 2, voice, vel - 14, spread=0.02)
            elif pattern == "bossa_comp":
                for s in (0, 3, 6, 10, 12):
                    hit(s, 1.6, voice, vel - 4)
            elif pattern == "shuffle_comp":
                low = _near(pcs[0], 45)
                for s in range(0, spb, 2):
                    sixth = 9 if (s // 4) % 2 else 7
                    hit(s, 1.7, [low, low + sixth], vel)
            else:
                raise ValueError(f"unknown chord pattern {pattern!r}")
        return notes

    def _broken(self, bar: int, pcs: list[int], center: int, pattern: str, vel: int) -> list:
        """Arpeggiated accompaniment: Alberti bass, rising arpeggio, a piano-ballad left hand."""
        tl, spb = self.tl, self.tl.steps_per_bar
        out = []
        if pattern == "alberti":
            v = _voicing(pcs[:3], center - 5, None)
            seq, step = [v[0], v[2], v[1], v[2]], 2
        elif pattern == "arp_up":
            v = _voicing(pcs[:4], center, None)
            seq, step = v + [x + 12 for x in v], 2 if self.spec.bpm > 90 else 1
        else:  # ballad_arp / solo_accomp: bass note, fifth, octave, third above...
            bass = _near(pcs[0], center - 17)
            third = pcs[1] if len(pcs) > 1 else pcs[0]
            seq = [bass, bass + 7, bass + 12, _near(third, bass + 16), bass + 12 + 7, _near(third, bass + 16)]
            step = 2
        for i, s in enumerate(np.arange(0, spb, step)):
            p = seq[i % len(seq)]
            end = tl.time(bar, s + step * (3 if pattern != "arp_up" else 1.5), False)
            out.append((tl.time(bar, s), end, p, self._v(vel - (0 if i == 0 else 8))))
        return out

    # ------------------------------------------------------------------------------------------ bass
    def _bass(self, part: PartSpec) -> list:
        tl, spb, rng = self.tl, self.tl.steps_per_bar, self.rng
        center = INSTRUMENTS[part.instrument][2]
        vel = self.vel
        out = []
        pattern = part.pattern
        for bar in range(self.n_bars):
            pcs = self.chords[bar]
            nxt = self.chords[min(bar + 1, self.n_bars - 1)]
            r = _near(pcs[0], center)
            fifth = r + 7 if r + 7 <= center + 9 else r - 5
            third = _near(pcs[1], r + 4) if len(pcs) > 1 else r

            def n(step, length, pitch, v=vel):
                out.append((tl.time(bar, step), tl.time(bar, step + length, False), pitch, self._v(v, 6)))

            if pattern == "whole":
                n(0, spb - 0.3, r)
            elif pattern == "half":
                n(0, spb / 2 - 0.3, r)
                n(spb / 2, spb / 2 - 0.3, fifth if rng.random() < 0.5 else r)
            elif pattern == "eighths":
                for s in range(0, spb, 2):
                    n(s, 1.7, r, vel + (6 if s % 4 == 0 else 0))
            elif pattern == "sixteenths":
                for s in range(spb):
                    n(s, 0.8, r, vel + (8 if s % 4 == 0 else -4))
            elif pattern == "root_fifth":
                for i, s in enumerate(range(0, spb, 4 if self.spec.meter[0] == 4 else 4)):
                    n(s, 3.4, r if i % 2 == 0 else fifth)
            elif pattern == "octave":
                for s in range(0, spb, 2):
                    n(s, 1.5, r if s % 4 == 0 else r + 12, vel + (5 if s % 4 == 0 else -5))
            elif pattern == "offbeat":
                for s in range(2, spb, 4):
                    n(s, 1.6, r, vel + 5)
            elif pattern == "walking":
                target = _near(nxt[0], r)
                line = [r, third if rng.random() < 0.5 else fifth, fifth if rng.random() < 0.6 else r + 12,
                        target + rng.choice([-1, 1])]
                for i, s in enumerate(range(0, spb, 4)):
                    n(s, 3.6, line[i % 4] if i < 3 else line[3])
            elif pattern == "boogie":
                line = [r, third, fifth, r + 9, r + 10, r + 9, fifth, third]
                for i, s in enumerate(range(0, spb, 2)):
                    n(s, 1.8, line[i % 8])
            elif pattern == "funk":
                steps = rng.choice([(0, 3, 6, 8, 10, 11, 14), (0, 2, 7, 8, 10, 13, 14), (0, 3, 7, 10, 12, 14, 15)])
                for s in steps:
                    p = r if s in (0, 8) else rng.choice([r, r + 12, fifth, r + 10, r + 7])
                    n(s, 0.9 if s else 1.8, p, vel + (10 if s == 0 else 0))
            elif pattern == "reggae":
                n(0, 5, r, vel + 5)
                n(6, 1.5, third)
                n(8, 3, fifth)
                n(12, 1.5, r + 12 if rng.random() < 0.5 else fifth)
                n(14, 1.5, third)
            elif pattern == "bossa":
                n(0, 5.5, r)
                n(6, 1.8, fifth)
                n(8, 5.5, fifth)
                n(14, 1.8, r)
            elif pattern == "lazy":
                n(0, 5.5, r)
                if rng.random() < 0.6:
                    n(10, 1.5, r if rng.random() < 0.5 else fifth, vel - 10)
                n(12, 3.5, rng.choice([r, fifth, third]))
            elif pattern == "waltz_bass":
                n(0, 3.6, r if bar % 2 == 0 else fifth, vel + 5)
            elif pattern == "pulse":  # timpani / cello ostinato
                for s in range(0, spb, 4):
                    n(s, 3.5, r, vel + (10 if s == 0 else -5))
            else:
                raise ValueError(f"unknown bass pattern {pattern!r}")
        return out

    # ------------------------------------------------------------------------------------------ pads, arps
    def _pad(self, part: PartSpec) -> list:
        center = INSTRUMENTS[part.instrument][2]
        out, prev = [], None
        for bar in range(self.n_bars):
            voice = _voicing(self.chords[bar][:4], center, prev)
            prev = voice
            t0, t1 = self.tl.time(bar, 0, False), self.tl.time(bar + 1, -0.1, False)
            out += [(t0, t1, p, self.vel - 20) for p in voice]
        return out

    def _arp(self, part: PartSpec) -> list:
        center = INSTRUMENTS[part.instrument][2]
        tl, spb, rng = self.tl, self.tl.steps_per_bar, self.rng
        step = 1 if self.spec.bpm < 140 and self.style.name != "ambient" else 2
        shape = rng.choice(["up", "updown", "random"])
        out = []
        for bar in range(self.n_bars):
            v = _voicing(self.chords[bar][:3], center, None)
            seq = v + [x + 12 for x in v]
            if shape == "updown":
                seq = seq + seq[-2:0:-1]
            for i, s in enumerate(range(0, spb, step)):
                p = seq[i % len(seq)] if shape != "random" else rng.choice(seq)
                out.append((tl.time(bar, s), tl.time(bar, s + step * 0.9, False), p, self._v(self.vel - 12)))
        return out

    # ------------------------------------------------------------------------------------------ melody
    def _melody(self, part: PartSpec) -> list:
        rng, tl, spb = self.rng, self.tl, self.tl.steps_per_bar
        center = INSTRUMENTS[part.instrument][2]
        if part.instrument in ("piano", "electric piano", "nylon guitar", "harp", "harpsichord", "acoustic guitar"):
            center = max(center, 67 if "guitar" not in part.instrument else 64)
        lo, hi = center - 7, center + 9
        scale_pitches = [p for p in range(lo - 12, hi + 13) if p % 12 in self.scale]
        density = self.style.density * (0.7 + 0.6 * self.spec.energy)
        grid = 1 if density > 1.7 else (2 if density > 0.45 else 4)
        positions = list(range(0, spb, grid))

        def bar_rhythm() -> list[int]:
            onsets = []
            for s in positions:
                strength = 1.0 if s % (4 * (self.spec.meter[0] // 2 or 1)) == 0 else (0.75 if s % 4 == 0 else 0.45)
                if rng.random() < min(0.95, strength * density * grid / 4 * 1.6):
                    onsets.append(s)
            return onsets or [0]

        motif_a, motif_b = bar_rhythm(), bar_rhythm()
        current = min(scale_pitches, key=lambda p: abs(p - center))
        out = []
        for bar in range(self.n_bars):
            phrase_pos = bar % 4
            rhythm = [motif_a, motif_b, motif_a, bar_rhythm()][phrase_pos]
            if phrase_pos == 3 and rng.random() < 0.5:  # cadence: fewer, longer notes
                rhythm = rhythm[: max(1, len(rhythm) // 2)]
            chord = self.chords[bar]
            for i, s in enumerate(rhythm):
                end_step = rhythm[i + 1] if i + 1 < len(rhythm) else spb
                if phrase_pos == 3 and i == len(rhythm) - 1:
                    end_step = spb + 2
                    target_pcs = [chord[0], chord[1 % len(chord)]]
                    current = min((p for p in scale_pitches if p % 12 in target_pcs and lo <= p <= hi),
                                  key=lambda p: abs(p - current), default=current)
                elif s % 4 == 0 and rng.random() < 0.65:
                    current = min((p for p in scale_pitches if p % 12 in chord and lo <= p <= hi),
                                  key=lambda p: abs(p - current) + rng.random() * 2, default=current)
                else:
                    idx = scale_pitches.index(current) if current in scale_pitches else 0
                    move = rng.choices([-2, -1, 0, 1, 2, 3, -3], weights=[12, 30, 8, 30, 12, 4, 4])[0]
                    idx = min(len(scale_pitches) - 1, max(0, idx + move))
                    current = scale_pitches[idx]
                    if current > hi:
                        current -= 12 if current - 12 >= lo else 0
                    if current < lo:
                        current += 12
                length = max(grid * 0.5, (end_step - s) * (0.92 if rng.random() < 0.8 else 0.55))
                accent = 8 if s % 4 == 0 else 0
                out.append((tl.time(bar, s), tl.time(bar, s + length, False), current, self._v(self.vel + accent)))
        return out

    # ------------------------------------------------------------------------------------------ drums
    def _drums(self, part: PartSpec) -> list:
        tl, spb, rng = self.tl, self.tl.steps_per_bar, self.rng
        pattern = DRUM_PATTERNS[part.pattern]
        vel = self.vel + 5
        out = []
        for bar in range(self.n_bars):
            fill = bar % 4 == 3 and rng.random() < 0.4 and spb == 16
            for note, steps in pattern.items():
                for s, ch in enumerate(steps[:spb]):
                    if ch == "." or (fill and s >= 12 and note not in (KICK,)):
                        continue
                    if note == CRASH and bar % 4 != 0 and part.pattern != "metal":
                        continue
                    v = vel + 10 if ch == "x" else vel - 35
                    t = tl.time(bar, s)
                    out.append((t, t + 0.1, note, self._v(v, 6)))
            if fill:
                for s, tom in zip(range(12, 16), (HTOM, HTOM, MTOM, LTOM)):
                    t = tl.time(bar, s)
                    out.append((t, t + 0.1, tom, self._v(vel, 6)))
            if bar % 4 == 0 and bar and part.pattern not in ("swing", "bossa", "onedrop", "ballad") \
                    and rng.random() < 0.5:
                t = tl.time(bar, 0)
                out.append((t, t + 0.1, CRASH, self._v(vel, 5)))
        return out

    _voice = _melody
    _drone = _pad


def compose(spec: PieceSpec, rng: random.Random):
    """The ``pretty_midi.PrettyMIDI`` of a synthetic spec."""
    return Composer(spec, rng).compose()
