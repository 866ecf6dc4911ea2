"""``magnet data ...`` subcommands (hooked into the main parser by :func:`add_subcommands`)."""

from __future__ import annotations

import argparse
import os

from ..errors import InputError


def cmd_synth(args: argparse.Namespace) -> None:
    from .synth import SynthConfig, synthesize

    if args.clips is not None:
        n_clips = args.clips
    elif args.hours is not None:
        if args.hours <= 0:
            raise InputError(f"--hours must be > 0, got {args.hours}")
        n_clips = max(1, int(round(args.hours * 3600 / args.clip_seconds)))
    else:
        raise InputError("give --hours H (or --clips N)")
    cfg = SynthConfig(out=args.out, n_clips=n_clips, seed=args.seed, sample_rate=args.sample_rate,
                      clip_seconds=args.clip_seconds, heldout=args.heldout, soundfont=args.soundfont,
                      corpus_fraction=args.corpus_fraction, write_midi=not args.no_midi)
    workers = args.workers if args.workers is not None else min(8, os.cpu_count() or 1)
    counts = synthesize(cfg, workers=workers, progress=not args.quiet, overwrite=args.overwrite)
    hours = (counts["train"] + counts["heldout"]) * args.clip_seconds / 3600
    rate = (counts["train"] + counts["heldout"]) / max(counts["seconds"], 1e-9)
    print(f"{args.out}: {counts['train']} train + {counts['heldout']} held-out clips ({hours:.2f} h) "
          f"in {counts['seconds']:.1f} s ({rate:.1f} clips/s); manifests train.jsonl, heldout.jsonl")


def cmd_join(args: argparse.Namespace) -> None:
    from .manifest import join_manifests

    n = join_manifests(args.out, args.manifests, overwrite=args.overwrite)
    print(f"{args.out}: {n} lines from {len(args.manifests)} manifests")


def add_subcommands(subparsers) -> None:
    """Register ``data synth`` and ``data join`` on the main parser's subparsers."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    data = subparsers.add_parser("data", help="build datasets offline", formatter_class=fmt,
                                 description="Build training data without downloading anything.")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    synth = data_sub.add_parser(
        "synth", formatter_class=fmt, help="compose and render a captioned music dataset with FluidSynth",
        description="Compose music as MIDI (20 styles, all keys, GM instruments) and take pieces from the music21 "
                    "corpus, render them with FluidSynth, and write OUT/{train,heldout}/NNNNNN.{wav,json,mid} "
                    "with captions and metadata, plus OUT/{train,heldout}.jsonl manifests. Needs the system "
                    "packages of scripts/install_system_deps.sh and pip install 'magnet-audio[data]'. "
                    "Example: magnet data synth data/synth --hours 2 --seed 0")
    synth.add_argument("out", help="output directory")
    synth.add_argument("--hours", type=float, default=None, help="total audio to make, in hours")
    synth.add_argument("--clips", type=int, default=None, help="number of clips (instead of --hours)")
    synth.add_argument("--seed", type=int, default=0, help="random seed: the same seed makes the same files")
    synth.add_argument("--sample-rate", type=int, default=32000, help="sample rate of the wav files")
    synth.add_argument("--clip-seconds", type=float, default=10.0, help="length of each clip")
    synth.add_argument("--heldout", type=float, default=0.05, help="fraction of clips in the held-out split")
    synth.add_argument("--soundfont", default=None,
                       help="General MIDI .sf2/.sf3 soundfont "
                            "(default: $MAGNET_SOUNDFONT, else /usr/share/sounds/sf2/FluidR3_GM.sf2)")
    synth.add_argument("--corpus-fraction", type=float, default=0.2,
                       help="fraction of clips taken from the music21 corpus (the rest are composed)")
    synth.add_argument("--workers", type=int, default=None, help="worker processes (default: min(8, CPUs))")
    synth.add_argument("--no-midi", action="store_true", help="do not write the .mid next to each clip")
    synth.add_argument("--overwrite", action="store_true", help="replace a dataset already in OUT")
    synth.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    synth.set_defaults(func=cmd_synth)
    join = data_sub.add_parser(
        "join", formatter_class=fmt, help="join .jsonl manifests into one training set",
        description="Write the lines of several .jsonl manifests, in order, to one manifest whose paths are "
                    "relative to its own folder, for magnet tokenize / magnet train. Example: magnet data join "
                    "data/train24.jsonl data/synth-6h/train.jsonl data/synth-extra18h/train.jsonl")
    join.add_argument("out", help="the joined manifest (.jsonl)")
    join.add_argument("manifests", nargs="+", help="manifests to join, in order")
    join.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    join.set_defaults(func=cmd_join)
