"""Moods (valence, energy), the chord progressions, the 20 styles a synthetic piece can have and
their drum patterns."""

from __future__ import annotations

from dataclasses import dataclass

from .theory import CHH, CLAP, CRASH, KICK, LTOM, OHH, PHH, RIDE, RIM, SHAKER, SNARE, TAMB


MOODS: dict[str, tuple[float, float]] = {
    "happy": (0.9, 0.6), "cheerful": (0.9, 0.6), "uplifting": (0.8, 0.7), "bright": (0.7, 0.5),
    "joyful": (0.9, 0.7), "playful": (0.7, 0.6), "upbeat": (0.8, 0.75), "catchy": (0.7, 0.6),
    "sunny": (0.8, 0.5), "hopeful": (0.6, 0.4), "lively": (0.8, 0.75), "heroic": (0.5, 0.85),
    "sad": (-0.9, 0.2), "melancholic": (-0.7, 0.3), "dark": (-0.8, 0.6), "somber": (-0.7, 0.2),
    "mysterious": (-0.4, 0.3), "tense": (-0.6, 0.7), "gritty": (-0.3, 0.6), "soulful": (-0.1, 0.4),
    "nostalgic": (-0.1, 0.3), "bittersweet": (-0.3, 0.3),
    "calm": (0.1, 0.1), "peaceful": (0.4, 0.1), "relaxed": (0.3, 0.25), "chill": (0.2, 0.3),
    "dreamy": (0.2, 0.2), "mellow": (0.2, 0.25), "laid-back": (0.3, 0.3), "gentle": (0.3, 0.15),
    "tender": (0.2, 0.15), "serene": (0.4, 0.1), "meditative": (0.0, 0.05), "atmospheric": (0.0, 0.15),
    "energetic": (0.5, 0.9), "driving": (0.0, 0.8), "aggressive": (-0.6, 1.0), "intense": (-0.3, 0.9),
    "heavy": (-0.5, 0.9), "powerful": (0.1, 0.9), "epic": (0.1, 0.9), "dramatic": (-0.3, 0.8),
    "hypnotic": (0.0, 0.7), "groovy": (0.5, 0.7), "funky": (0.6, 0.7), "danceable": (0.6, 0.8),
    "romantic": (0.4, 0.3), "elegant": (0.4, 0.35), "graceful": (0.5, 0.35), "warm": (0.4, 0.3),
    "smooth": (0.3, 0.35), "sophisticated": (0.2, 0.4), "rustic": (0.5, 0.45), "breezy": (0.5, 0.4),
    "retro": (0.6, 0.6), "solemn": (-0.3, 0.2), "reverent": (0.1, 0.15),
}

MAJOR_PROGS = ["I V vi IV", "I vi IV V", "vi IV I V", "I IV vi V", "I IV I V", "I iii IV V", "IV V iii vi",
               "I V IV V", "ii V I I", "I IV ii V"]
MINOR_PROGS = ["i bVI bIII bVII", "i iv v i", "i bVII bVI bVII", "i iv bVII bIII", "i bVI iv V", "i v bVI iv",
               "i iv i V", "i bIII bVII iv"]
MODE_PROGS = {
    "major": MAJOR_PROGS, "minor": MINOR_PROGS,
    "dorian": ["i IV i IV", "i bIII IV i", "i ii bIII IV", "i7 IV7 i7 IV7", "i bVII IV i"],
    "mixolydian": ["I bVII IV I", "I bVII I bVII", "I v IV I", "I IV bVII IV"],
    "phrygian": ["i bII i bII", "i bII bIII bII", "i bVII bVI bII", "i i bII i"],
    "lydian": ["I II I II", "I II iii II", "I II vii I"],
}
JAZZ_PROGS = {"major": ["ii7 V7 Imaj7 Imaj7", "Imaj7 vi7 ii7 V7", "iii7 vi7 ii7 V7", "Imaj7 IVmaj7 iii7 vi7",
                        "Imaj7 VI7 ii7 V7"],
              "minor": ["i7 iv7 bVII7 bIIImaj7", "iim7b5 V7 i7 i7", "i7 bVImaj7 iim7b5 V7", "i7 iv7 i7 V7"],
              "dorian": ["i7 IV7 i7 IV7", "i7 ii7 i7 ii7"]}
BLUES_PROGS = {"major": ["I7 I7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7", "I7 IV7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7"],
               "minor": ["i7 i7 i7 i7 iv7 iv7 i7 i7 bVI7 V7 i7 V7"],
               "mixolydian": ["I7 I7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7"],
               "dorian": ["i7 i7 i7 i7 IV7 IV7 i7 i7 V7 IV7 i7 V7"]}


@dataclass(frozen=True)
class Style:
    """How one style is composed. Instrument choices are (name, pattern) pairs."""

    name: str
    words: tuple[str, ...]                       # caption nouns
    bpm: tuple[int, int]
    modes: dict                                  # mode -> weight
    moods: tuple[str, ...]
    kits: tuple[str, ...] = ()                   # drum kits ('' = none)
    drum_patterns: tuple[str, ...] = ()
    drum_prob: float = 1.0
    bass: tuple[tuple[str, str], ...] = ()
    bass_prob: float = 1.0
    chords: tuple[tuple[str, str], ...] = ()
    melody: tuple[str, ...] = ()
    melody_prob: float = 0.9
    pads: tuple[str, ...] = ()
    pad_prob: float = 0.0
    arps: tuple[str, ...] = ()
    arp_prob: float = 0.0
    solo: tuple[str, ...] = ()                   # instruments that can play the piece alone
    solo_prob: float = 0.0
    meters: tuple[tuple[int, int], ...] = ((4, 4),)
    progressions: dict | None = None             # mode -> list (None: the generic ones)
    sevenths: float = 0.0                        # probability of seventh chords
    swing: tuple[float, float] = (0.0, 0.0)
    harmonic_rhythm: int = 1                     # bars per chord
    density: float = 1.0                         # melody notes per beat
    reverb: int = 50                             # CC91
    humanize: float = 0.008                      # seconds of timing jitter


STYLES: dict[str, Style] = {s.name: s for s in [
    Style("pop", ("pop", "pop song", "pop track", "pop tune", "pop instrumental"), (90, 128),
          {"major": 4, "minor": 2}, ("upbeat", "happy", "catchy", "uplifting", "bright", "energetic", "bittersweet",
                                     "hopeful", "sunny"),
          kits=("drums", "electronic drums"), drum_patterns=("pop", "pop2"), drum_prob=0.9,
          bass=(("electric bass", "eighths"), ("synth bass", "eighths"), ("electric bass", "root_fifth")),
          chords=(("piano", "quarters"), ("electric piano", "half"), ("acoustic guitar", "strum"),
                  ("polysynth", "stabs"), ("piano", "eighths")),
          melody=("saw lead", "flute", "electric piano", "electric guitar", "piano", "marimba", "alto sax"),
          pads=("warm pad", "strings", "synth strings"), pad_prob=0.4, arps=("polysynth", "electric guitar"),
          arp_prob=0.15, density=1.2, reverb=45),
    Style("rock", ("rock", "rock song", "rock track", "guitar rock", "rock instrumental"), (100, 150),
          {"major": 2, "minor": 2, "mixolydian": 2}, ("energetic", "driving", "powerful", "gritty", "upbeat",
                                                     "intense"),
          kits=("rock drums", "drums"), drum_patterns=("rock", "rock2"),
          bass=(("picked bass", "eighths"), ("electric bass", "eighths")),
          chords=(("overdriven guitar", "power"), ("distorted guitar", "power"), ("electric guitar", "strum")),
          melody=("overdriven guitar", "rock organ", "electric guitar"), melody_prob=0.7,
          pads=("rock organ",), pad_prob=0.25, density=1.2, reverb=35, harmonic_rhythm=1),
    Style("metal", ("metal", "heavy metal", "metal track", "thrash metal riff"), (130, 180),
          {"minor": 3, "phrygian": 2}, ("aggressive", "dark", "heavy", "intense", "powerful"),
          kits=("rock drums",), drum_patterns=("metal",),
          bass=(("picked bass", "sixteenths"), ("picked bass", "eighths")),
          chords=(("distorted guitar", "chug"),), melody=("distorted guitar", "overdriven guitar"),
          melody_prob=0.5, density=1.5, reverb=25, humanize=0.004, harmonic_rhythm=2),
    Style("funk", ("funk", "funk groove", "funky jam", "funk track"), (92, 118),
          {"dorian": 3, "minor": 1, "mixolydian": 2}, ("groovy", "funky", "upbeat", "danceable", "energetic"),
          kits=("drums", "room drums"), drum_patterns=("funk",),
          bass=(("slap bass", "funk"), ("electric bass", "funk"), ("synth bass", "funk")),
          chords=(("clavinet", "stabs16"), ("muted guitar", "stabs16"), ("electric guitar", "stabs16"),
                  ("electric piano", "stabs")),
          melody=("brass section", "alto sax", "tenor sax", "trumpet", "synth brass"), melody_prob=0.6,
          progressions={"dorian": ["i7 i7 IV7 IV7", "i7 IV7 i7 IV7", "i9 i9 i9 IV9"],
                        "minor": ["i7 i7 iv7 iv7", "i7 bVII7 i7 bVII7"],
                        "mixolydian": ["I7 I7 IV7 I7", "I9 bVII I9 bVII"]},
          density=1.0, reverb=30, harmonic_rhythm=2),
    Style("jazz", ("jazz", "jazz tune", "jazz combo piece", "swing jazz", "small-group jazz"), (80, 170),
          {"major": 3, "minor": 1, "dorian": 1}, ("smooth", "relaxed", "sophisticated", "mellow", "lively",
                                                   "romantic"),
          kits=("jazz drums", "brushed drums"), drum_patterns=("swing",), drum_prob=0.85,
          bass=(("upright bass", "walking"),),
          chords=(("piano", "jazz_comp"), ("jazz guitar", "jazz_comp"), ("electric piano", "jazz_comp")),
          melody=("tenor sax", "alto sax", "trumpet", "muted trumpet", "vibraphone", "clarinet", "jazz guitar",
                  "trombone", "flute"),
          solo=("piano",), solo_prob=0.1, progressions=JAZZ_PROGS, sevenths=1.0, swing=(0.25, 0.34),
          density=1.6, reverb=45),
    Style("lofi", ("lofi", "lo-fi hip hop", "lofi beat", "lo-fi chill beat", "chillhop"), (70, 92),
          {"major": 2, "minor": 2, "dorian": 1}, ("chill", "relaxed", "mellow", "nostalgic", "dreamy", "laid-back"),
          kits=("room drums", "808 drums", "drums"), drum_patterns=("boombap", "boombap2"),
          bass=(("electric bass", "lazy"), ("synth bass", "lazy"), ("upright bass", "lazy")),
          chords=(("electric piano", "lazy_chords"), ("piano", "lazy_chords"), ("electric guitar", "lazy_chords")),
          melody=("vibraphone", "electric piano", "flute", "muted trumpet", "kalimba", "electric guitar"),
          melody_prob=0.6, pads=("warm pad",), pad_prob=0.2,
          progressions={"major": ["Imaj7 vi7 ii7 V7", "IVmaj7 iii7 vi7 Imaj7", "IVmaj7 V7 iii7 vi7",
                                  "Imaj7 IVmaj7 Imaj7 IVmaj7"],
                        "minor": ["i7 iv7 bVIImaj7 bIIImaj7", "i7 bVImaj7 iv7 v7", "i7 iv7 i7 iv7"],
                        "dorian": ["i7 IV7 i7 IV7", "i7 ii7 i7 ii7"]},
          sevenths=1.0, swing=(0.12, 0.25), density=0.8, reverb=55, harmonic_rhythm=1, humanize=0.012),
    Style("hip hop", ("hip hop beat", "boom bap beat", "hip hop instrumental", "rap beat"), (80, 98),
          {"minor": 4, "dorian": 1, "phrygian": 1}, ("gritty", "dark", "driving", "chill", "mysterious"),
          kits=("808 drums", "drums"), drum_patterns=("boombap", "trap"),
          bass=(("analog bass", "lazy"), ("synth bass", "whole")),
          chords=(("piano", "half"), ("strings", "sustain"), ("electric piano", "lazy_chords"),
                  ("pizzicato strings", "quarters")),
          melody=("piano", "flute", "strings", "music box", "saw lead", "glockenspiel"),
          melody_prob=0.6, density=0.8, reverb=40, swing=(0.0, 0.15)),
    Style("ambient", ("ambient", "ambient soundscape", "ambient piece", "atmospheric ambient music", "drone music"),
          (60, 80), {"lydian": 2, "major": 2, "minor": 2, "dorian": 1},
          ("calm", "peaceful", "dreamy", "atmospheric", "meditative", "serene", "mysterious"),
          bass_prob=0.3, bass=(("synth bass", "whole"), ("cello", "whole")),
          chords=(("halo pad", "sustain"), ("warm pad", "sustain"), ("soft strings", "sustain"),
                  ("new age pad", "sustain"), ("sweep pad", "sustain"), ("choir pad", "sustain")),
          melody=("celesta", "music box", "pan flute", "piano", "vibraphone", "harp", "glockenspiel", "kalimba"),
          melody_prob=0.7, arps=("harp", "celesta", "piano", "marimba"), arp_prob=0.35,
          density=0.35, reverb=110, harmonic_rhythm=2, humanize=0.015),
    Style("classical", ("classical piece", "classical music", "classical composition", "chamber music"),
          (60, 132), {"major": 3, "minor": 2}, ("elegant", "calm", "romantic", "dramatic", "graceful", "tender",
                                                "lively"),
          bass=(("cello", "half"), ("bassoon", "half")), bass_prob=0.6,
          chords=(("strings", "sustain"), ("piano", "alberti"), ("harpsichord", "alberti"), ("harp", "arp_up"),
                  ("strings", "half")),
          melody=("violin", "flute", "oboe", "clarinet", "french horn", "cello", "piano"),
          solo=("piano", "harpsichord", "harp", "nylon guitar"), solo_prob=0.35,
          density=1.4, reverb=70, humanize=0.01),
    Style("waltz", ("waltz", "waltz in 3/4", "classic waltz", "Viennese waltz"), (84, 180),
          {"major": 4, "minor": 1}, ("graceful", "romantic", "elegant", "playful", "nostalgic"),
          bass=(("upright bass", "waltz_bass"), ("tuba", "waltz_bass"), ("cello", "waltz_bass")),
          chords=(("strings", "waltz"), ("piano", "waltz"), ("accordion", "waltz"), ("pizzicato strings", "waltz")),
          melody=("violin", "flute", "accordion", "clarinet", "piano", "oboe"),
          solo=("piano", "accordion"), solo_prob=0.3, meters=((3, 4),), density=1.0, reverb=60),
    Style("house", ("house", "house track", "deep house groove", "house music"), (118, 128),
          {"minor": 3, "dorian": 2, "major": 1}, ("danceable", "energetic", "groovy", "uplifting", "hypnotic"),
          kits=("electronic drums", "808 drums"), drum_patterns=("house",),
          bass=(("synth bass", "offbeat"), ("analog bass", "octave")),
          chords=(("electric piano", "stabs"), ("polysynth", "stabs"), ("piano", "house_piano"), ("organ", "stabs")),
          melody=("saw lead", "fm electric piano", "polysynth"), melody_prob=0.4,
          pads=("warm pad", "synth strings"), pad_prob=0.4, sevenths=0.6, density=0.8, reverb=45, humanize=0.0),
    Style("techno", ("techno", "techno track", "driving techno", "minimal techno"), (124, 140),
          {"minor": 3, "phrygian": 1, "dorian": 1}, ("hypnotic", "driving", "dark", "energetic", "intense"),
          kits=("808 drums", "electronic drums"), drum_patterns=("techno",),
          bass=(("analog bass", "offbeat"), ("synth bass", "sixteenths")),
          chords=(("polysynth", "stabs"), ("sweep pad", "sustain")),
          melody=("saw lead",), melody_prob=0.25, arps=("saw lead", "polysynth", "square lead"), arp_prob=0.6,
          progressions={"minor": ["i i i i", "i i bVI bVII", "i i iv iv"], "phrygian": ["i i bII i"],
                        "dorian": ["i i IV i"]},
          density=0.8, reverb=40, humanize=0.0, harmonic_rhythm=2),
    Style("folk", ("folk", "folk song", "acoustic folk tune", "folk ballad", "singer-songwriter folk"), (80, 130),
          {"major": 4, "mixolydian": 1, "dorian": 1, "minor": 1}, ("warm", "cheerful", "rustic", "nostalgic",
                                                                   "gentle", "hopeful"),
          kits=("brushed drums", "room drums"), drum_patterns=("folk",), drum_prob=0.4,
          bass=(("upright bass", "root_fifth"),), bass_prob=0.6,
          chords=(("acoustic guitar", "strum"), ("nylon guitar", "fingerpick"), ("banjo", "fingerpick"),
                  ("accordion", "half")),
          melody=("fiddle", "flute", "harmonica", "tin whistle", "banjo", "accordion", "recorder"),
          solo=("acoustic guitar", "nylon guitar"), solo_prob=0.2, meters=((4, 4), (4, 4), (3, 4)),
          density=1.2, reverb=40),
    Style("blues", ("blues", "blues shuffle", "twelve-bar blues", "Chicago blues"), (70, 120),
          {"major": 3, "minor": 1, "mixolydian": 1}, ("soulful", "laid-back", "gritty", "melancholic", "groovy"),
          kits=("drums", "room drums"), drum_patterns=("shuffle",),
          bass=(("electric bass", "boogie"), ("upright bass", "walking")),
          chords=(("piano", "quarters"), ("organ", "sustain"), ("electric guitar", "shuffle_comp")),
          melody=("harmonica", "overdriven guitar", "tenor sax", "electric guitar", "piano"),
          progressions=BLUES_PROGS, swing=(0.28, 0.34), density=1.0, reverb=45),
    Style("reggae", ("reggae", "reggae groove", "roots reggae", "dub reggae"), (64, 90),
          {"major": 3, "minor": 2}, ("laid-back", "sunny", "relaxed", "groovy", "warm"),
          kits=("drums", "room drums"), drum_patterns=("onedrop",),
          bass=(("electric bass", "reggae"),),
          chords=(("electric guitar", "skank"), ("organ", "skank"), ("piano", "skank")),
          melody=("harmonica", "trumpet", "organ", "flute", "steel drums"),
          melody_prob=0.6, swing=(0.05, 0.2), density=0.8, reverb=60),
    Style("bossa nova", ("bossa nova", "Brazilian bossa nova", "bossa nova tune"), (110, 140),
          {"major": 3, "minor": 2}, ("breezy", "relaxed", "romantic", "smooth", "warm"),
          kits=("brushed drums", "jazz drums"), drum_patterns=("bossa",),
          bass=(("upright bass", "bossa"), ("electric bass", "bossa")),
          chords=(("nylon guitar", "bossa_comp"), ("electric piano", "bossa_comp")),
          melody=("flute", "alto sax", "vibraphone", "piano", "tenor sax"),
          progressions=JAZZ_PROGS, sevenths=1.0, density=1.0, reverb=45),
    Style("cinematic", ("cinematic", "cinematic orchestral piece", "film score cue", "epic orchestral music",
                        "trailer music"), (70, 110),
          {"minor": 4, "major": 1, "dorian": 1}, ("epic", "dramatic", "heroic", "tense", "dark", "powerful"),
          kits=("orchestral percussion",), drum_patterns=("cinematic",), drum_prob=0.7,
          bass=(("timpani", "pulse"), ("cello", "eighths"), ("tuba", "half")),
          chords=(("strings", "sustain"), ("strings", "eighths"), ("choir", "sustain"), ("brass section", "half")),
          melody=("french horn", "brass section", "trumpet", "strings", "choir", "cello"),
          pads=("choir", "strings"), pad_prob=0.4, density=0.9, reverb=90, harmonic_rhythm=1),
    Style("ballad", ("ballad", "slow ballad", "love ballad", "heartfelt ballad"), (60, 84),
          {"major": 3, "minor": 3}, ("calm", "sad", "tender", "romantic", "melancholic", "gentle", "hopeful"),
          kits=("brushed drums", "drums"), drum_patterns=("ballad",), drum_prob=0.35,
          bass=(("electric bass", "whole"), ("fretless bass", "whole"), ("upright bass", "half")), bass_prob=0.5,
          chords=(("piano", "ballad_arp"), ("acoustic guitar", "fingerpick"), ("electric piano", "ballad_arp")),
          melody=("piano", "violin", "cello", "flute", "soprano sax", "strings", "oboe"),
          pads=("soft strings", "warm pad"), pad_prob=0.4,
          solo=("piano", "piano", "electric piano", "nylon guitar"), solo_prob=0.5, density=0.8, reverb=65),
    Style("disco", ("disco", "disco track", "funky disco", "disco groove"), (110, 126),
          {"major": 2, "minor": 2, "dorian": 1}, ("danceable", "upbeat", "groovy", "joyful", "retro"),
          kits=("drums",), drum_patterns=("disco",),
          bass=(("electric bass", "octave"), ("slap bass", "octave"), ("synth bass", "octave")),
          chords=(("electric guitar", "stabs16"), ("piano", "eighths"), ("strings", "stabs")),
          melody=("strings", "brass section", "synth brass", "flute", "saw lead"), melody_prob=0.7,
          sevenths=0.5, density=1.0, reverb=45, humanize=0.004),
    Style("chiptune", ("chiptune", "8-bit video game music", "retro game tune", "8-bit chiptune"), (110, 170),
          {"major": 3, "minor": 2}, ("playful", "upbeat", "retro", "energetic", "cheerful"),
          kits=("electronic drums",), drum_patterns=("chip",), drum_prob=0.8,
          bass=(("square lead", "octave"),),
          chords=(), melody=("square lead",), melody_prob=1.0, arps=("square lead",), arp_prob=0.6,
          density=2.0, reverb=15, humanize=0.0),
]}

# Drum patterns: per part a string of steps (16 per 4/4 bar, 12 per 3/4 bar): 'x' accent, 'o' soft.
DRUM_PATTERNS: dict[str, dict[int, str]] = {
    "pop": {KICK: "x.......x.x.....", SNARE: "....x.......x...", CHH: "x.o.x.o.x.o.x.o."},
    "pop2": {KICK: "x..x....x.......", CLAP: "....x.......x...", CHH: "xoxoxoxoxoxoxoxo", TAMB: "....x.......x..."},
    "rock": {KICK: "x.....x.x.......", SNARE: "....x.......x...", CHH: "x.x.x.x.x.x.x.x."},
    "rock2": {KICK: "x.x.....x.x.....", SNARE: "....x.......x...", RIDE: "x.x.x.x.x.x.x.x."},
    "metal": {KICK: "xxxxxxxxxxxxxxxx", SNARE: "....x.......x...", CRASH: "x.......x......."},
    "funk": {KICK: "x.....x...x..x..", SNARE: "....x..o.o..x..o", CHH: "xoxoxoxoxoxoxoxo"},
    "swing": {RIDE: "x...x.x.x...x.x.", PHH: "....x.......x...", KICK: "o.......o.......", SNARE: "......o.......o."},
    "boombap": {KICK: "x.......x.x.....", SNARE: "....x.......x...", CHH: "x.x.x.x.x.x.x.x."},
    "boombap2": {KICK: "x......x..x.....", SNARE: "....x.......x...", CHH: "x.o.x.o.x.o.x.o.", OHH: "..............x."},
    "trap": {KICK: "x......x..x.....", CLAP: "........x.......", CHH: "xxxxxxxxxxxxxxxx"},
    "house": {KICK: "x...x...x...x...", CLAP: "....x.......x...", OHH: "..x...x...x...x.", CHH: "x.o.x.o.x.o.x.o."},
    "techno": {KICK: "x...x...x...x...", CLAP: "....x.......x...", CHH: "oooooooooooooooo", OHH: "..x...x...x...x."},
    "disco": {KICK: "x...x...x...x...", SNARE: "....x.......x...", OHH: "..x...x...x...x.", CHH: "x...x...x...x..."},
    "folk": {KICK: "x.......x.......", SNARE: "....o.......o...", SHAKER: "xoxoxoxoxoxoxoxo"},
    "shuffle": {KICK: "x.......x.......", SNARE: "....x.......x...", CHH: "x.x.x.x.x.x.x.x."},
    "onedrop": {RIM: "........x.......", KICK: "........x.......", CHH: "x.x.x.x.x.x.x.x."},
    "bossa": {KICK: "x..xx..xx..xx..x", RIM: "x..x..x...x..x..", CHH: "oooooooooooooooo"},
    "ballad": {KICK: "x.........x.....", RIM: "....x.......x...", CHH: "x...x...x...x..."},
    "cinematic": {KICK: "x.......x..x....", CRASH: "x...............", LTOM: "............xoxo"},
    "chip": {KICK: "x.......x.......", SNARE: "....x.......x...", CHH: "x.x.x.x.x.x.x.x."},
    # 3/4 (12 steps)
    "waltz": {KICK: "x...........", SNARE: "....o...o...", CHH: "x...x...x..."},
    "folk3": {KICK: "x...........", SHAKER: "xoxoxoxoxoxo", TAMB: "....x...x..."},
}
