"""The ``magnet`` command: thin wrappers that parse arguments, call the API and report."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .app_page import add_subcommands as add_app
from .cli_options import add_sampling_arguments, run_command, sampling_overrides
from .data.cli import add_subcommands as add_data
from .edit_cli import Continuation, add_continue_arguments, add_edit_command
from .errors import InputError
from .evaluation.cli import add_bench_edit, add_bench_generate
from .evaluation.cli import add_subcommands as add_eval
from .training.cli import add_bench_train
from .training.cli import add_subcommands as add_training
from .training.codec_train import add_subcommands as add_codec_training
from .utils import slugify
from .validation import one_line

SELF_AR = "self"  # --hybrid-ar value: the MAGNeT model's own autoregressive view


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
    jobs = None
    if args.prompts_file:  # one clip per line, shared out over torchrun's processes, resumable (docs/scale-out.md)
        from .evaluation.batch import generate_jobs, process_device, read_jobs
        if prompts:
            raise InputError("give prompts or --prompts-file, not both")
        jobs, args.device = read_jobs(args.prompts_file, args.seed or 0), process_device(args.device)
    elif not prompts or any(not p for p in prompts):
        raise InputError("give at least one non-empty prompt (or --prompts-file)")
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
    continuation = Continuation.prepare(args, model) if args.continue_from else None
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
    if jobs is not None:
        hybrid = lambda texts: model.generate_hybrid(texts, hybrid_ar, args.hybrid_prefix_seconds)  # noqa: E731
        generate_jobs(model, jobs, out_dir, batch_size=args.batch, overwrite=args.overwrite, echo=True,
                      generate=hybrid if args.hybrid_ar else None, progress=not args.quiet,
                      write_options={"format": args.format, "strategy": args.strategy})
        return
    seed = continuation.seed if continuation else args.seed  # a continuation records a seed, given or not
    if seed is not None:
        torch.manual_seed(seed)
    written = []
    for start in range(0, len(prompts), args.batch):
        batch = prompts[start:start + args.batch]
        if args.hybrid_ar:
            wav = model.generate_hybrid(batch, hybrid_ar, prefix_seconds=args.hybrid_prefix_seconds,
                                        progress=not args.quiet)
        elif continuation:
            wav = continuation.generate(model, batch, progress=not args.quiet)
        else:
            wav = model.generate(batch, progress=not args.quiet)
        for offset, (prompt, audio) in enumerate(zip(batch, wav)):
            stem = out_dir / f"{start + offset:02d}_{slugify(prompt)}"
            if continuation:  # the audio and a .json of the parameters
                path = continuation.write(stem, audio, model, args, prompt)
            else:
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
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="magnet", description="MAGNeT text-to-music / text-to-sound: generate, and more.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser(
        "generate", help="generate audio from text prompts", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Generate one audio file per prompt. Example: magnet generate \"lofi beat\" \"calm piano\" -o out/")
    gen.add_argument("prompts", nargs="*", help="text prompts, one file each")
    gen.add_argument("--prompts-file", metavar="FILE", default=None,
                     help="generate one file per line of FILE (.jsonl: description/text, optional id, seed, duration; "
                          "else one prompt a line) plus OUT/generated.jsonl, skipping clips already in OUT; under "
                          "torchrun the processes share the prompts (docs/scale-out.md)")
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
    add_continue_arguments(gen)
    gen.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    gen.set_defaults(func=cmd_generate)
    add_edit_command(sub)
    add_data(sub)
    add_eval(sub)
    bench = sub.add_parser("bench", help="benchmarks: generation latency/throughput",
                           description="Speed and memory benchmarks (not tests).")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    add_bench_generate(bench_sub)
    add_bench_edit(bench_sub)
    add_app(sub)
    add_training(sub)
    add_codec_training(sub)
    add_bench_train(bench_sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv)

if __name__ == "__main__":
    sys.exit(main())
