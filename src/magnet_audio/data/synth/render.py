"""Rendering MIDI to audio with FluidSynth and a General MIDI soundfont, and the checks of those
optional dependencies."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

from ...errors import InputError


INSTALL_SYSTEM = "bash scripts/install_system_deps.sh  (apt-get install fluidsynth libfluidsynth3 fluid-soundfont-gm)"
INSTALL_PYTHON = "pip install 'magnet-audio[data]'  (pretty_midi, pyfluidsynth, music21)"
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
)


def find_soundfont(path: str | os.PathLike | None = None) -> Path:
    """The soundfont to use: ``path``, $MAGNET_SOUNDFONT, or a General MIDI one from the system packages."""
    if path:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"soundfont {p} not found")
        return p
    env = os.environ.get("MAGNET_SOUNDFONT")
    if env and Path(env).is_file():
        return Path(env)
    for candidate in SOUNDFONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise InputError(f"no General MIDI soundfont found (looked for {SOUNDFONT_CANDIDATES[0]} and others). "
                     f"Install it with: {INSTALL_SYSTEM}, or pass --soundfont PATH")


def check_dependencies(soundfont: str | os.PathLike | None = None) -> Path:
    """Raise :class:`InputError` naming the install command if FluidSynth, pretty_midi or a soundfont is missing."""
    try:
        import pretty_midi  # noqa: F401
    except ImportError as exc:
        raise InputError(f"`magnet data synth` needs pretty_midi: {INSTALL_PYTHON}") from exc
    try:
        import fluidsynth  # noqa: F401  (pyfluidsynth; its import loads libfluidsynth)
    except ImportError as exc:
        if "fluidsynth" in str(exc).lower() and "no module named" not in str(exc).lower():
            raise InputError(f"libfluidsynth is not installed: {INSTALL_SYSTEM}") from exc
        raise InputError(f"`magnet data synth` needs pyfluidsynth: {INSTALL_PYTHON}; "
                         f"and the FluidSynth library: {INSTALL_SYSTEM}") from exc
    except OSError as exc:
        raise InputError(f"libfluidsynth could not be loaded ({exc}): {INSTALL_SYSTEM}") from exc
    if not hasattr(fluidsynth, "Synth"):
        raise InputError("the `fluidsynth` module found is not pyfluidsynth (pip uninstall fluidsynth; "
                         f"{INSTALL_PYTHON})")
    return find_soundfont(soundfont)


class Renderer:
    """Renders ``PrettyMIDI`` objects to mono float32 with in-process FluidSynth.

    Each call makes a fresh synthesizer (FluidSynth caches the soundfont's samples, so it costs
    ~30 ms) so that no reverb tail or controller state leaks from one clip into the next.
    """

    def __init__(self, soundfont: str | os.PathLike, sample_rate: int = 32000, gain: float = 0.4):
        import fluidsynth

        self.fluidsynth = fluidsynth
        self.soundfont, self.sample_rate, self.gain = str(soundfont), sample_rate, gain
        write = fluidsynth._fl.fluid_synth_write_float
        write.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                          ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        write.restype = ctypes.c_int
        self._write = write
        self._keep = self._new_synth()  # holds the sample cache for the renderer's lifetime

    def _new_synth(self):
        settings = {"synth.cpu-cores": 1, "synth.polyphony": 512}  # one thread: deterministic output
        try:
            synth = self.fluidsynth.Synth(gain=self.gain, samplerate=float(self.sample_rate), channels=16,
                                          **settings)
        except TypeError:  # old pyfluidsynth without settings keywords
            synth = self.fluidsynth.Synth(gain=self.gain, samplerate=float(self.sample_rate))
        sfid = synth.sfload(self.soundfont)
        if sfid < 0:
            synth.delete()
            raise InputError(f"FluidSynth could not load the soundfont {self.soundfont}")
        return synth, sfid

    def render(self, pm, seconds: float) -> np.ndarray:
        n_total = int(round(seconds * self.sample_rate))
        synth, sfid = self._new_synth()
        try:
            left = np.zeros(n_total, dtype=np.float32)
            right = np.zeros(n_total, dtype=np.float32)
            events = []  # (sample, order, kind, args)
            channel = 0
            for inst in pm.instruments:
                if inst.is_drum:
                    ch = 9
                    if synth.program_select(ch, sfid, 128, inst.program) < 0:
                        synth.program_select(ch, sfid, 128, 0)
                else:
                    if channel == 9:
                        channel += 1
                    ch = channel % 16 if channel < 16 else [c for c in range(16) if c != 9][channel % 15]
                    channel += 1
                    synth.program_select(ch, sfid, 0, inst.program)
                for cc in inst.control_changes:
                    events.append((int(round(cc.time * self.sample_rate)), 1, "cc", (ch, cc.number, cc.value)))
                for note in inst.notes:
                    s = int(round(note.start * self.sample_rate))
                    if s >= n_total:
                        continue
                    events.append((s, 2, "on", (ch, note.pitch, note.velocity)))
                    events.append((int(round(note.end * self.sample_rate)), 0, "off", (ch, note.pitch)))
            events.sort(key=lambda e: (e[0], e[1]))
            pos = 0
            for sample, _, kind, args in events:
                if sample >= n_total:
                    break
                if sample > pos:
                    self._fill(synth, left, right, pos, sample)
                    pos = sample
                if kind == "on":
                    synth.noteon(*args)
                elif kind == "off":
                    synth.noteoff(*args)
                else:
                    synth.cc(*args)
            if pos < n_total:
                self._fill(synth, left, right, pos, n_total)
        finally:
            synth.delete()
        return (left + right) * 0.5

    def _fill(self, synth, left, right, start, stop):
        n = stop - start
        self._write(synth.synth, n, left.ctypes.data + 4 * start, 0, 1, right.ctypes.data + 4 * start, 0, 1)


def is_silent(wav: np.ndarray, sample_rate: int) -> bool:
    """Silent, or silent in more than half of its 250 ms frames (-60 dB below its peak frame)."""
    if not np.isfinite(wav).all():
        return True
    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
    if rms < 1e-4:
        return True
    frame = sample_rate // 4
    n = len(wav) // frame
    if n < 2:
        return False
    frames = np.sqrt(np.mean(wav[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    return float(np.mean(frames < frames.max() * 1e-3)) > 0.5


def normalize(wav: np.ndarray, target_rms_db: float = -20.0, peak: float = 0.98) -> np.ndarray:
    """RMS to ``target_rms_db`` dBFS, limited so the peak stays below ``peak``."""
    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
    gain = 10 ** (target_rms_db / 20) / max(rms, 1e-9)
    gain = min(gain, peak / max(float(np.abs(wav).max()), 1e-9))
    return (wav * gain).astype(np.float32)
