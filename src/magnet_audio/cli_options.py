"""Command-line helpers shared by every ``magnet`` subcommand: argparse types, the decoding flags,
logging set-up and running a parsed command. Standard library only, so any module may use them."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .errors import MagnetError
from .validation import cli_args, one_line


def int_list(text: str) -> list[int]:
    """argparse type: comma-separated integers (at least one), e.g. ``20,10,10,10``."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def cfg_pair(text: str) -> tuple[float, float]:
    """argparse type: ``MAX[,MIN]`` classifier-free guidance coefficients (MIN defaults to 1)."""
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected MAX[,MIN] CFG coefficients, got {text!r}")
    return (values[0], values[-1] if len(values) == 2 else 1.0)


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """The decoding flags shared by ``magnet generate`` and ``magnet eval``: --steps, --cfg, --temperature,
    --top-p, --top-k, --choice-temperature, --beat-lock, --beat-guidance. Each defaults to the model's recommendation (read back by
    :func:`sampling_overrides`)."""
    parser.add_argument("--steps", type=int_list, default=None, help="decoding steps per codebook, e.g. 20,10,10,10")
    parser.add_argument("--cfg", type=cfg_pair, default=None,
                        help="max,min classifier-free guidance (default: the model's recommendation, else 10,1)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="initial sampling temperature, annealed (default: the model's recommendation, else 3.0)")
    parser.add_argument("--top-p", type=float, default=None,
                        help="nucleus sampling mass, 0 disables (default: the model's recommendation, else 0.9)")
    parser.add_argument("--top-k", type=int, default=None, help="top-k sampling, used when top-p is 0 (default: 0)")
    parser.add_argument("--choice-temperature", type=float, default=None,
                        help="MaskGIT's randomised choice of the spans each step keeps (Gumbel noise on their log "
                             "confidences, annealed); 0 keeps the surest (default: the model's recommendation, else 0)")
    parser.add_argument("--beat-lock", type=float, default=None, metavar="SECONDS",
                        help="the first SECONDS of every beat of the tempo the prompt names ('120 bpm', 'slow') "
                             "share their tokens, 0 disables (default: the model's recommendation, else 0)")
    parser.add_argument("--beat-guidance", choices=["on", "off"], default=None,
                        help="for LMs told where the beat falls (beat_phase): guidance without the beat in its "
                             "null rows (default: the model's recommendation, else on)")


def sampling_overrides(args: argparse.Namespace) -> dict:
    """The decoding options given with :func:`add_sampling_arguments`' flags, as ``set_generation_params``
    keywords; flags left out are absent, so the model's recommendation applies."""
    given = {"top_k": args.top_k, "top_p": args.top_p, "temperature": args.temperature,
             "max_cfg_coef": args.cfg[0] if args.cfg else None, "min_cfg_coef": args.cfg[1] if args.cfg else None,
             "decoding_steps": args.steps, "beat_lock": args.beat_lock,
             "choice_temperature": args.choice_temperature,
             "beat_guidance": None if args.beat_guidance is None else args.beat_guidance == "on"}
    return {k: v for k, v in given.items() if v is not None}


def setup_logging() -> None:
    """INFO messages on rank 0 (stderr), warnings only on the other ranks."""
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(message)s" if rank else "%(asctime)s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv``, check the options every subcommand shares (devices, seeds, numbers, outputs) and
    call the chosen subcommand's ``func``; a :class:`MagnetError` is printed as one line ``error: ...``
    with exit status 2, an interrupt exits with 130."""
    args = parser.parse_args(argv)
    try:
        cli_args(args)
        args.func(args)
    except MagnetError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
