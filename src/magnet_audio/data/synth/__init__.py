"""An offline text-to-music dataset: MIDI composed (or taken from the music21 corpus), rendered with FluidSynth.

``magnet data synth OUT --hours H`` writes::

    OUT/train/000000.wav   32 kHz mono PCM-16, ``clip_seconds`` long
    OUT/train/000000.json  audiocraft ``MusicInfo`` metadata (description, genre, moods, ...)
    OUT/train/000000.mid   the MIDI that was rendered (ground truth for note-level evaluation)
    OUT/heldout/...        the same for the held-out split
    OUT/train.jsonl        one line per clip: path (relative to OUT), duration, sample_rate,
    OUT/heldout.jsonl      description and the metadata of the sidecar

Every clip comes from a :class:`PieceSpec`, a structured description (style, moods, tempo, key,
mode, meter, instruments and their roles, chord progression). The MIDI is composed from the spec
and the caption is written from the same spec, so what a caption says ("upbeat funk with slap bass
and drums, 112 bpm") is what was rendered: prompt adherence can be measured against the metadata.

Two sources:

* ``synth``: music composed here, across 20 styles (pop, rock, metal, funk, jazz, lofi, hip hop,
  ambient, classical, waltz, house, techno, folk, blues, reggae, bossa nova, cinematic, ballad, disco,
  chiptune), all 12 keys, major/minor and dorian/mixolydian/phrygian/lydian, 60-180 bpm, 4/4 and
  3/4, with General MIDI instruments picked by role (melody, chords, bass, pad, arpeggio, drums).
* ``music21``: real pieces from the corpus that ships with music21 (Bach chorales, Irish, Scottish,
  American and German/Chinese folk tunes, Renaissance polyphony) with instruments assigned here
  and the tempo chosen here; key and meter come from the score.

Metadata convention: ``instrument`` is a comma-separated string (audiocraft's ``MusicInfo``
declares it a string), and ``instruments`` the same names as a list. ``bpm`` is in beats of the
meter (quarter notes; dotted quarters for 6/8, 9/8, 12/8). ``key`` reads "A minor", "D dorian".

Reproducible: each clip depends only on (seed, clip index), whatever the number of workers, and
every clip is rendered by a fresh synthesizer (the soundfont's samples are cached, so that costs
about 30 ms), so the same seed writes the same bytes.
"""

from .captions import TEMPO_WORDS, keywords, make_caption, tempo_word
from .composer import Composer, compose
from .corpus import CorpusSource
from .dataset import SynthConfig, clip_metadata, clip_seed, make_clip, split_of, synthesize
from .render import Renderer, check_dependencies, find_soundfont, is_silent, normalize
from .spec import PartSpec, PieceSpec, sample_synth_spec
from .styles import DRUM_PATTERNS, MOODS, STYLES, Style
from .theory import DRUM_KITS, INSTRUMENTS, MODES, add_seventh, key_name, parse_chord

__all__ = ["TEMPO_WORDS", "keywords", "make_caption", "tempo_word", "Composer", "compose", "CorpusSource",
           "SynthConfig", "clip_metadata", "clip_seed", "make_clip", "split_of", "synthesize", "Renderer",
           "check_dependencies", "find_soundfont", "is_silent", "normalize", "PartSpec", "PieceSpec",
           "sample_synth_spec", "DRUM_PATTERNS", "MOODS", "STYLES", "Style", "DRUM_KITS", "INSTRUMENTS", "MODES",
           "add_seventh", "key_name", "parse_chord"]
