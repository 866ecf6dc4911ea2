"""``magnet eval``, ``magnet bench generate`` and ``magnet bench edit`` (hooked into the main parser by the lead).

``add_subcommands(sub)`` registers ``eval`` on the top-level subparsers;
``add_bench_generate(bench_sub)`` and ``add_bench_edit(bench_sub)`` register ``generate`` and ``edit``
on ``magnet bench``'s subparsers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli_options import add_sampling_arguments, int_list, run_command, sampling_overrides
from ..errors import InputError
from ..names import default_model_name


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def cmd_eval(args: argparse.Namespace) -> None:
    from . import runner

    metrics = _names(args.metrics)
    unknown = [m for m in metrics if m not in runner.METRICS]
    if unknown or not metrics:
        raise InputError(f"--metrics: unknown {unknown} (choose from {', '.join(runner.METRICS)})")
    out = Path(args.out)
    items = runner.load_prompts(args.prompts)
    notes = []
    try:
        notes.append(runner.attach_references(items, args.reference, args.prompts))
    except InputError as exc:
        if {"fad", "kl", "codec"} & set(metrics):
            raise
        notes.append(f"reference: none ({exc})")  # CLAP alone needs no reference
    generation = None
    if args.generated:
        notes.append(runner.attach_generated(items, args.generated))
    elif set(metrics) == {"codec"}:
        notes.append("generated: none (the codec metric reconstructs the reference clips only)")
    else:
        generation = runner.generate_items(items, args.model, out / "generated", device=args.device,
                                           t5_path=args.t5_path, params=sampling_overrides(args),
                                           batch_size=args.batch, seed=args.seed, progress=not args.quiet,
                                           fast=args.fast, source=args.prompts)
        if generation["rank"] != 0:  # under torchrun: the first process scores, once every clip is there
            return
        notes.append(f"generated: {len(items)} clips with {args.model} into {out / 'generated'}")
    reference_set = runner.list_audio(args.reference) if args.reference else None
    options = {"checkpoint": args.vggish_checkpoint, "pretrained_length": args.passt_length,
               "device": args.eval_device}
    results = runner.evaluate(items, metrics, fad_embeddings=_names(args.fad_embeddings),
                              kl_classifiers=_names(args.kl_classifiers), clap_model=args.clap_model,
                              reference_set=reference_set, backend_options=options,
                              codec_model=args.codec or args.model, progress=not args.quiet,
                              codec_dir=out / "codec", out_dir=out)
    meta = {"prompts": str(args.prompts), "reference": args.reference, "generated": args.generated,
            "model": None if args.generated else args.model, "generation": generation, "n_prompts": len(items),
            "pairing": notes, "items": [{"prompt": it.prompt, "reference": str(it.reference or ""),
                                         "generated": str(it.generated or "")} for it in items]}
    json_path, csv_path = runner.write_results(results, out, meta)
    print(runner.format_table(results))
    if not args.quiet:
        for n in notes:
            print(f"note: {n}", file=sys.stderr)
        print(f"wrote {json_path} and {csv_path}", file=sys.stderr)


def cmd_bench_generate(args: argparse.Namespace) -> None:
    from .bench import run_generate_bench

    if args.model is None and args.random_size is None:
        args.model = default_model_name()
    result = run_generate_bench(model=args.model, random_size=args.random_size, batches=args.batch,
                                duration=args.duration, steps=args.steps, ar_model=args.ar_model,
                                ar_random_size=args.ar_random_size, runs=args.runs, warmup=args.warmup,
                                device=args.device, t5_path=args.t5_path, out_dir=args.out, seed=args.seed,
                                progress=not args.quiet, compare=args.compare)
    print(result["table"])
    if "compare" in result:
        from .bench import format_ratios
        print(format_ratios(result["compare"]["ratios"]))
    ar = result["ar_model"]
    if ar["status"] == "unavailable":
        print(f"AR model (MusicGen): unavailable: {ar['reason']}")
    print(f"wrote {result['files']['json']} and {result['files']['png']}", file=sys.stderr)


def add_subcommands(subparsers) -> None:
    """Register ``eval`` on the top-level ``magnet`` subparsers."""
    from .runner import DEFAULT_FAD_EMBEDDINGS, DEFAULT_KL_CLASSIFIERS

    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = subparsers.add_parser(
        "eval", formatter_class=fmt,
        help="score generated audio: FAD, KL, CLAP, prompt adherence, codec, musicality",
        description="Generate one clip per prompt (or read --generated DIR), pair each with its reference clip, "
                    "and report FAD (embedding distributions), KL (classifier label distributions, paired by "
                    "prompt), CLAP (text-audio similarity), adherence (tempo, key, notes, bass and drums of each "
                    "clip judged by librosa and basic-pitch against the prompt's bpm/key/instruments, also on the "
                    "reference clips and on shuffled prompts), codec (SI-SNR and mel distance of the "
                    "reference clips encoded and decoded) and musicality (confident notes, note stability, pitch "
                    "salience, codec-token variety, spectral flatness, pulse clarity and loudness range of the "
                    "generated clips, the references and their codec round trip; per clip in "
                    "OUT/musicality_clips.csv). Each metric names the model that produced it; a "
                    "model that cannot run here is reported as UNAVAILABLE with the reason. Writes "
                    "OUT/results.json and OUT/results.csv. Example: magnet eval --model M --prompts "
                    "data/synth/heldout.jsonl --reference data/synth/heldout --out eval/")
    p.add_argument("--model", "-m", default=default_model_name(),
                   help="MAGNeT to generate with (hub id or local directory); ignored with --generated")
    p.add_argument("--prompts", required=True, help=".txt (one prompt a line) or .jsonl (description/caption + "
                                                    "optional 'path' of the reference clip)")
    p.add_argument("--reference", default=None, help="directory of reference audio (FAD's background set; "
                                                     "KL pairs by the .jsonl path, .json sidecars or file order)")
    p.add_argument("--generated", default=None, help="directory of already generated audio (skip generation)")
    p.add_argument("--metrics", default="fad,kl,clap",
                   help="comma-separated: fad, kl, clap, adherence, codec, musicality")
    p.add_argument("--codec", default=None, help="codec for the codec and musicality metrics: codec "
                                                 "directory, compression_state_dict.bin or MAGNeT model "
                                                 "(default: --model)")
    p.add_argument("--fad-embeddings", default=",".join(DEFAULT_FAD_EMBEDDINGS),
                   help="embedding models for FAD: vggish (the paper's), musicnn, basic-pitch")
    p.add_argument("--kl-classifiers", default=",".join(DEFAULT_KL_CLASSIFIERS),
                   help="classifiers for KL: passt (the paper's), musicnn")
    p.add_argument("--vggish-checkpoint", default=None,
                   help="torchvggish vggish-10086976.pth (default: $MAGNET_VGGISH_CHECKPOINT, else download)")
    p.add_argument("--clap-model", default=None,
                   help="laion_clap .pt checkpoint, or Hugging Face ClapModel dir/repo "
                        "(default: $MAGNET_CLAP_MODEL, else laion/larger_clap_music)")
    p.add_argument("--passt-length", type=int, default=20, choices=[10, 20, 30],
                   help="PaSST variant (seconds); audiocraft uses 20 for music")
    p.add_argument("--out", "-o", default="eval", help="output directory (results.json, results.csv, generated/)")
    p.add_argument("--t5-path", default=None, help="local T5 directory for generation (offline use)")
    add_sampling_arguments(p)
    p.add_argument("--fast", action="store_true", help="generate with the fast-mode preset (approximate; "
                   "see docs/fast-inference.md) to measure its quality cost")
    p.add_argument("--batch", type=int, default=4, help="prompts generated together")
    p.add_argument("--seed", type=int, default=0, help="generation seed")
    p.add_argument("--device", default=None, help="device for generation (default: best available)")
    p.add_argument("--eval-device", default="cpu", help="device for the PyTorch evaluation models")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the table")
    p.set_defaults(func=cmd_eval)


def add_bench_generate(bench_subparsers) -> None:
    """Register ``generate`` on ``magnet bench``'s subparsers."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = bench_subparsers.add_parser(
        "generate", formatter_class=fmt, help="latency / throughput of generation (the paper's Figure 2)",
        description="Time MAGNeT (and MusicGen with --ar-model) generating a batch of clips for each batch size: "
                    "latency = median seconds to the full decoded clip (warm-up runs excluded), throughput = "
                    "audio seconds per second, plus peak memory. Writes OUT/bench_generate.json and "
                    "OUT/bench_generate.png. Example: magnet bench generate --model facebook/magnet-small-10secs "
                    "--ar-model facebook/musicgen-small --batch 1,2,4,8,16 --duration 10")
    p.add_argument("--model", "-m", default=None, help="MAGNeT hub id or local directory "
                                                       "(default: $MAGNET_MODEL or magnet-audio/synth-music)")
    p.add_argument("--random-size", default=None, choices=["tiny", "small", "medium"],
                   help="bench a random-weight MAGNeT of this size instead of a checkpoint (LUT text conditioner, "
                        "random 32 kHz EnCodec); latency does not depend on the weights")
    p.add_argument("--batch", type=int_list, default=[1, 2, 4, 8, 16], help="batch sizes, comma-separated")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds per clip (default: the checkpoint's segment length; 10 for --random-size)")
    p.add_argument("--steps", type=int_list, action="append", default=None,
                   help="decoding steps per codebook; repeat to compare schedules (default 20,10,10,10)")
    p.add_argument("--ar-model", default=None, help="MusicGen (hub id or directory) to compare with")
    p.add_argument("--ar-random-size", default=None, choices=["tiny", "small", "medium"],
                   help="compare with a random-weight MusicGen of this size")
    p.add_argument("--runs", type=int, default=3, help="timed runs per batch size (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs per batch size")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--t5-path", default=None, help="local T5 directory (offline use)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", "-o", default="bench", help="output directory")
    p.add_argument("--compare", action="store_true",
                   help="time exact and fast mode (the --fast preset) on the first schedule, fast mode on each "
                        "further --steps schedule, and the AR model of the same size (--ar-random-size defaults "
                        "to --random-size); print and save the ratios")
    p.add_argument("--quiet", "-q", action="store_true", help="no per-row progress")
    p.set_defaults(func=cmd_bench_generate)


def cmd_bench_edit(args: argparse.Namespace) -> None:
    from .bench_edit import format_edit_ratios, run_edit_bench

    if args.model is None and args.random_size is None:
        args.model = default_model_name()
    result = run_edit_bench(model=args.model, random_size=args.random_size, clip_seconds=args.clip_seconds,
                            edit_seconds=args.edit_seconds, steps=args.steps, batches=args.batch, runs=args.runs,
                            warmup=args.warmup, device=args.device, t5_path=args.t5_path, out_dir=args.out,
                            seed=args.seed, fast=args.fast, progress=not args.quiet)
    print(result["table"])
    print(format_edit_ratios(result["ratios"]))
    print(f"wrote {result['files']['json']}", file=sys.stderr)


def add_bench_edit(bench_subparsers) -> None:
    """Register ``edit`` on ``magnet bench``'s subparsers."""
    p = bench_subparsers.add_parser(
        "edit", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="cost of an inpainting edit against generating the whole clip",
        description="Time generating a clip and inpainting a region in its middle with the same model and steps "
                    "(median latency, warm-up excluded) and print their ratio. Writes OUT/bench_edit.json. "
                    "Example: magnet bench edit --clip-seconds 10 --edit-seconds 2")
    p.add_argument("--model", "-m", default=None, help="MAGNeT hub id or local directory "
                                                       "(default: $MAGNET_MODEL or magnet-audio/synth-music)")
    p.add_argument("--random-size", default=None, choices=["tiny", "small", "medium"],
                   help="a random-weight MAGNeT of this size (window = --clip-seconds) instead of a checkpoint")
    p.add_argument("--clip-seconds", type=float, default=10.0, help="length of the clip generated and edited")
    p.add_argument("--edit-seconds", type=float, default=2.0, help="length of the region inpainted (centred)")
    p.add_argument("--steps", type=int_list, default=None, help="decoding steps per codebook (default: the model's)")
    p.add_argument("--batch", type=int_list, default=[1], help="batch sizes, comma-separated")
    p.add_argument("--fast", action="store_true", help="both in fast mode (the --fast preset)")
    p.add_argument("--runs", type=int, default=3, help="timed runs (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--t5-path", default=None, help="local T5 directory (offline use)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", "-o", default="bench", help="output directory")
    p.add_argument("--quiet", "-q", action="store_true", help="no per-row progress")
    p.set_defaults(func=cmd_bench_edit)


def _standalone_parser() -> argparse.ArgumentParser:
    """A parser with ``eval`` and ``bench generate`` alone (``python -m magnet_audio.evaluation.cli``)."""
    parser = argparse.ArgumentParser(prog="magnet")
    sub = parser.add_subparsers(dest="command", required=True)
    add_subcommands(sub)
    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    add_bench_generate(bench_sub)
    add_bench_edit(bench_sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(_standalone_parser(), argv)

if __name__ == "__main__":
    sys.exit(main())
