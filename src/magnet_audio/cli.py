"""The ``magnet`` command: thin wrappers that parse arguments, call the API and report."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from .errors import InputError, MagnetError

SELF_AR = "self"  # --hybrid-ar value: the MAGNeT model's own autoregressive view


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
    --top-p, --top-k, --beat-lock. Each defaults to the model's recommendation (read back by
    :func:`sampling_overrides`)."""
    parser.add_argument("--steps", type=int_list, default=None, help="decoding steps per codebook, e.g. 20,10,10,10")
    parser.add_argument("--cfg", type=cfg_pair, default=None,
                        help="max,min classifier-free guidance (default: the model's recommendation, else 10,1)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="initial sampling temperature, annealed (default: the model's recommendation, else 3.0)")
    parser.add_argument("--top-p", type=float, default=None,
                        help="nucleus sampling mass, 0 disables (default: the model's recommendation, else 0.9)")
    parser.add_argument("--top-k", type=int, default=None, help="top-k sampling, used when top-p is 0 (default: 0)")
    parser.add_argument("--beat-lock", type=float, default=None, metavar="SECONDS",
                        help="the first SECONDS of every beat of the tempo the prompt names ('120 bpm', 'slow') "
                             "share their tokens, 0 disables (default: the model's recommendation, else 0)")


def sampling_overrides(args: argparse.Namespace) -> dict:
    """The decoding options given with :func:`add_sampling_arguments`' flags, as ``set_generation_params``
    keywords; flags left out are absent, so the model's recommendation applies."""
    given = {"top_k": args.top_k, "top_p": args.top_p, "temperature": args.temperature,
             "max_cfg_coef": args.cfg[0] if args.cfg else None, "min_cfg_coef": args.cfg[1] if args.cfg else None,
             "decoding_steps": args.steps, "beat_lock": args.beat_lock}
    return {k: v for k, v in given.items() if v is not None}


def slugify(text: str, max_len: int = 40) -> str:
    """A file-name-safe stem from a prompt."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug[:max_len].rstrip("_") or "audio"


def _check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise InputError(f"cannot write to output directory {directory}: {exc.strerror or exc}") from exc


def cmd_generate(args: argparse.Namespace) -> None:
    import torch

    from .audio import audio_write
    from .models import MAGNeT

    prompts = [p.strip() for p in args.prompts]
    if not prompts or any(not p for p in prompts):
        raise InputError("give at least one non-empty prompt")
    if args.batch < 1:
        raise InputError(f"--batch must be >= 1, got {args.batch}")
    if not 0.0 <= args.rescore_weight <= 1.0:
        raise InputError(f"--rescore-weight must be in [0, 1], got {args.rescore_weight}")
    if args.duration is not None and args.duration <= 0:
        raise InputError(f"--duration must be > 0 seconds, got {args.duration}")
    if args.hybrid_ar and args.hybrid_prefix_seconds <= 0:
        raise InputError(f"--hybrid-prefix-seconds must be > 0, got {args.hybrid_prefix_seconds}")
    out_dir = Path(args.output)
    _check_writable(out_dir)  # fail before spending minutes on generation

    model = MAGNeT.get_pretrained(args.model, device=args.device, t5_path=args.t5_path)
    ar_models: dict = {}

    def load_ar(name: str):  # MusicGen checkpoints, loaded once even if used for both roles
        if name not in ar_models:
            from .musicgen import MusicGen
            ar_models[name] = MusicGen.get_pretrained(name, device=args.device, t5_path=args.t5_path)
            ar_models[name].set_generation_params(use_sampling=not args.greedy,
                                                  duration=ar_models[name].max_duration)
        return ar_models[name]

    # --hybrid-ar self: the model's own autoregressive view (a model trained with model.hybrid: true)
    hybrid_ar = load_ar(args.hybrid_ar) if args.hybrid_ar and args.hybrid_ar != SELF_AR else None
    model.update_generation_params(  # the model's recommendation, then the flags given
        use_sampling=not args.greedy, **sampling_overrides(args),
        span_arrangement=args.span_arrangement, span_scoring=args.span_scoring,
        rescorer=load_ar(args.rescorer) if args.rescorer else None, rescore_weight=args.rescore_weight,
        duration=args.duration, fast=args.fast, kv_cache_refresh=args.kv_cache_refresh,
        cfg_skip_threshold=args.cfg_skip_threshold, cfg_null_refresh=args.cfg_null_refresh, int8=args.int8,
        half=args.half, compile=args.compile)
    if args.seed is not None:
        torch.manual_seed(args.seed)
    written = []
    for start in range(0, len(prompts), args.batch):
        batch = prompts[start:start + args.batch]
        if args.hybrid_ar:
            wav = model.generate_hybrid(batch, hybrid_ar, prefix_seconds=args.hybrid_prefix_seconds,
                                        progress=not args.quiet)
        else:
            wav = model.generate(batch, progress=not args.quiet)
        for offset, (prompt, audio) in enumerate(zip(batch, wav)):
            stem = out_dir / f"{start + offset:02d}_{slugify(prompt)}"
            path = audio_write(stem, audio.float().cpu(), model.sample_rate, format=args.format,
                               strategy=args.strategy, loudness_compressor=True, exclusive=not args.overwrite)
            written.append(path)
            print(f"{path}  ({audio.shape[-1] / model.sample_rate:.2f} s)  {prompt!r}")
    if not args.quiet:
        print(f"wrote {len(written)} file(s) to {out_dir}", file=sys.stderr)


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``magnet generate: error: argument --seed:
    invalid int value: '1e23' (see --help)``) and exit 2, like the commands' own errors; the full
    usage stays in ``--help``. Subparsers inherit the class."""

    def error(self, message: str):
        from .validation import one_line
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="magnet", description="MAGNeT text-to-music / text-to-sound: generate, and more.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser(
        "generate", help="generate audio from text prompts", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Generate one audio file per prompt. Example: magnet generate \"lofi beat\" \"calm piano\" -o out/")
    gen.add_argument("prompts", nargs="+", help="text prompts, one file each")
    gen.add_argument("--model", "-m", default=None,
                     help="hub repo id or local directory (state_dict.bin + compression_state_dict.bin). Default: "
                          "$MAGNET_MODEL, else facebook/magnet-small-10secs when it is cached or the hub answers, "
                          "else the bundled magnet-audio/synth-music (with a note saying why)")
    gen.add_argument("--t5-path", default=None, help="local directory of the T5 text encoder (offline use)")
    gen.add_argument("--output", "-o", default="outputs", help="output directory")
    gen.add_argument("--overwrite", action="store_true",
                     help="replace files of the same name; by default a taken name gets a _1, _2, ... suffix")
    gen.add_argument("--format", default="wav", choices=["wav", "flac", "ogg", "mp3"], help="audio file format")
    gen.add_argument("--strategy", default="loudness", choices=["loudness", "peak", "rms", "clip", "none"],
                     help="normalisation of the written audio")
    gen.add_argument("--seed", type=int, default=None, help="random seed for reproducible sampling")
    add_sampling_arguments(gen)
    gen.add_argument("--greedy", action="store_true", help="argmax decoding instead of sampling")
    gen.add_argument("--span-arrangement", default="nonoverlap", choices=["nonoverlap", "stride1"],
                     help="re-mask aligned 3-frame chunks, or the least probable overlapping spans")
    gen.add_argument("--span-scoring", default="max", choices=["max", "prod"],
                     help="span confidence: its most probable token, or the product of its tokens")
    gen.add_argument("--batch", type=int, default=4, help="prompts generated together")
    gen.add_argument("--device", default=None, help="cpu, cuda or mps; None picks the best available")
    gen.add_argument("--duration", type=float, default=None,
                     help="seconds to generate (default: the model's window); longer durations slide the window, "
                          "prompting each new one with the previous one's last half")
    gen.add_argument("--rescorer", metavar="MODEL", default=None,
                     help="rescore MAGNeT's predictions with this autoregressive MusicGen (hub id or directory, "
                          "e.g. facebook/musicgen-small; must share the codec)")
    gen.add_argument("--rescore-weight", type=float, default=0.5, metavar="W",
                     help="rescorer's share w: token probability = (1 - w) * MAGNeT + w * rescorer")
    gen.add_argument("--hybrid-ar", metavar="MODEL", default=None,
                     help="Hybrid-MAGNeT: this MusicGen generates the first --hybrid-prefix-seconds "
                          f"autoregressively, MAGNeT the rest; '{SELF_AR}': the model itself does both (a model "
                          "trained with model.hybrid=true)")
    gen.add_argument("--hybrid-prefix-seconds", type=float, default=3.0, metavar="S",
                     help="seconds generated autoregressively with --hybrid-ar")
    fast = gen.add_argument_group("fast inference", "approximate, faster decoding (docs/fast-inference.md); "
                                                    "each option overrides the --fast preset")
    fast.add_argument("--fast", action="store_true",
                      help="fast-mode preset: --kv-cache-refresh 5 --cfg-skip-threshold 0.1 --cfg-null-refresh 5, "
                           "--int8 on CPU, --half on GPU")
    fast.add_argument("--kv-cache-refresh", type=int, default=None, metavar="N",
                      help="full pass every N steps; in between recompute only masked and changed positions "
                           "(1 = exact)")
    fast.add_argument("--cfg-skip-threshold", type=float, default=None, metavar="EPS",
                      help="skip the unconditional pass when the CFG coefficient is within EPS of 1 (0 = never)")
    fast.add_argument("--cfg-null-refresh", type=int, default=None, metavar="N",
                      help="unconditional pass every N steps; in between CFG reuses its logits (1 = exact)")
    fast.add_argument("--int8", action=argparse.BooleanOptionalAction, default=None,
                      help="int8 dynamic quantisation of the linear layers (CPU)")
    fast.add_argument("--half", action=argparse.BooleanOptionalAction, default=None,
                      help="half precision: float16 on GPU, bfloat16 on CPU")
    fast.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                      help="torch.compile the feed-forward blocks (slow first call)")
    gen.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    gen.set_defaults(func=cmd_generate)
    from .data.cli import add_subcommands as add_data
    from .evaluation.cli import add_bench_generate
    from .evaluation.cli import add_subcommands as add_eval

    add_data(sub)
    add_eval(sub)
    bench = sub.add_parser("bench", help="benchmarks: generation latency/throughput",
                           description="Speed and memory benchmarks (not tests).")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    add_bench_generate(bench_sub)
    from .app import add_subcommands as add_app
    add_app(sub)
    from .training.cli import add_bench_train, add_subcommands as add_training
    add_training(sub)
    from .training.codec_train import add_subcommands as add_codec_training
    add_codec_training(sub)
    add_bench_train(bench_sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from .validation import cli_args
        cli_args(args)  # devices, seeds, numbers and outputs every subcommand shares
        args.func(args)
    except MagnetError as exc:
        from .validation import one_line
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
