"""``magnet train``, ``magnet tokenize``, ``magnet export`` and ``magnet bench train``.

``add_subcommands(sub)`` registers ``train``, ``tokenize`` and ``export`` on the top-level
subparsers; ``add_bench_train(bench_sub)`` registers ``train`` on ``magnet bench``'s subparsers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..cli_options import setup_logging
from ..errors import InputError


def cmd_train(args: argparse.Namespace) -> None:
    from .config import load_config
    from .trainer import train

    setup_logging()
    cfg = load_config(args.config, args.overrides)
    if cfg.log.tensorboard and int(os.environ.get("RANK", "0")) == 0:
        from .tblog import tensorboard_hint

        print(tensorboard_hint(cfg.run_dir), flush=True)
    metrics = train(cfg, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0 and metrics:
        print("final validation: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))


def cmd_tokenize(args: argparse.Namespace) -> None:
    from .tokens import tokenize

    setup_logging()
    if args.chunk_seconds <= 0:
        raise InputError(f"--chunk-seconds must be > 0, got {args.chunk_seconds}")
    meta = tokenize(args.data, args.codec, args.out, device=args.device, chunk_seconds=args.chunk_seconds,
                    min_duration=args.min_duration, progress=not args.quiet)
    print(f"{args.out}: {meta.files} files tokenized ({meta.n_q} codebooks of {meta.card} at {meta.frame_rate:g} Hz); "
          f"skipped {meta.unreadable} unreadable and {meta.too_short} too short")


def cmd_export(args: argparse.Namespace) -> None:
    from .export import export

    try:
        generation = json.loads(args.generation) if args.generation else None
    except json.JSONDecodeError as exc:
        raise InputError(f"--generation must be a JSON object: {exc}") from exc
    notes: list[str] = []
    out = export(args.checkpoint, args.out_dir, use_ema=not args.no_ema, codec=args.codec, half=args.half,
                 generation=generation, notice=notes.append)
    audiocraft_lm, audiocraft_codec = (out / "state_dict.bin").exists(), (out / "compression_state_dict.bin").exists()
    if audiocraft_lm and audiocraft_codec:
        print(f"exported to {out}: state_dict.bin + compression_state_dict.bin (audiocraft), "
              "model.safetensors + config.json (magnet_audio)")
    elif audiocraft_lm:
        print(f"exported to {out}: model.safetensors + config.json (magnet_audio), and the LM alone in "
              "state_dict.bin (audiocraft)")
    elif (out / "config.json").is_file() and "lm" in json.loads((out / "config.json").read_text()):
        print(f"exported to {out}: model.safetensors + config.json (magnet_audio only)")
    elif audiocraft_codec:
        print(f"exported the codec to {out / 'compression_state_dict.bin'} (audiocraft's format)")
    else:
        print(f"exported the codec to {out}: config.json + model.safetensors (magnet_audio)")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def cmd_bench_train(args: argparse.Namespace) -> None:
    from .bench import format_result, run_train_bench, write_result

    options = dict(size=args.size, dim=args.dim, heads=args.heads, layers=args.layers, batch=args.batch,
                   duration=args.duration, steps=args.steps, warmup=args.warmup, device=args.device,
                   precision=args.precision)
    # --strategy fsdp: DDP with the same settings first, for comparison
    strategies = ["ddp", "fsdp"] if args.strategy == "fsdp" else [args.strategy]
    results = [run_train_bench(**options, strategy=s, nproc=args.nproc) for s in strategies]
    for result in results:
        print(format_result(result))
    if args.out:
        print(f"wrote {write_result(results[-1] if len(results) == 1 else results, args.out)}")


def add_subcommands(subparsers) -> None:
    """Register ``train``, ``tokenize`` and ``export`` on the top-level ``magnet`` subparsers."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = subparsers.add_parser(
        "train", formatter_class=fmt, help="train or fine-tune a MAGNeT LM on your audio",
        description="Train a MAGNeT language model (or fine-tune one with model.init_from) as CONFIG says; "
                    "configs/train_magnet.yaml documents every option. Audio data are tokenized once into "
                    "RUN_DIR/tokens. Several processes: torchrun --nproc_per_node N -m magnet_audio.train CONFIG. "
                    "Example: magnet train configs/train_magnet.yaml data.train=data/synth/train.jsonl optim.lr=3e-4")
    p.add_argument("config", help="YAML training config")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, nested keys dotted (optim.lr=1e-4 model.conditioner.model=lut)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                   help="continue the run in run_dir from its last checkpoint (or from CKPT); put it after the "
                        "overrides, which it would otherwise take for CKPT")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser(
        "tokenize", formatter_class=fmt, help="encode an audio dataset into a token cache",
        description="Encode every audio file of DATA (a folder with sidecar .json metadata, or a .jsonl manifest) "
                    "with the codec and store the codes and metadata in OUT, so LM training never runs the encoder. "
                    "Resumable: run it again to finish an interrupted run or add new files. "
                    "Example: magnet tokenize data/synth/train.jsonl --codec facebook/magnet-small-10secs "
                    "--out cache/train")
    p.add_argument("data", help="audio folder or .jsonl manifest")
    p.add_argument("--codec", required=True,
                   help="codec: a MAGNeT hub id or directory, a compression_state_dict.bin, or a Hugging Face "
                        "EncodecModel")
    p.add_argument("--out", required=True, help="cache directory")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--chunk-seconds", type=float, default=60.0, help="encode long files in chunks of this length")
    p.add_argument("--min-duration", type=float, default=0.0, help="skip files shorter than this (seconds)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_tokenize)

    p = subparsers.add_parser(
        "export", formatter_class=fmt, help="turn a training checkpoint into a model directory",
        description="Write the model of a training checkpoint (or of a run folder's last checkpoint) to OUT_DIR in "
                    "our format (model.safetensors + config.json) and, when audiocraft 1.3.0 can load the model, "
                    "in audiocraft's (state_dict.bin + compression_state_dict.bin, which audiocraft's and our "
                    "MAGNeT.get_pretrained load). Models audiocraft cannot load (a sentence text conditioner, a "
                    "segment that is not whole seconds) get our format only, with a note saying why; docs/training.md "
                    "lists which configs round-trip. "
                    "Example: magnet export runs/magnet OUT/my-magnet")
    p.add_argument("checkpoint", help="checkpoint file or run folder")
    p.add_argument("out_dir", help="output directory")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA weights")
    p.add_argument("--codec", default=None, help="codec to ship (default: the one the run used)")
    p.add_argument("--half", action="store_true",
                   help="store the LM weights in float16 (half the size; they load back into float32)")
    p.add_argument("--generation", metavar="JSON", default=None,
                   help="recommended decoding options stored with the model and applied by get_pretrained, "
                        """e.g. '{"temperature": 1.0, "max_cfg_coef": 3.0}'""")
    p.set_defaults(func=cmd_export)



def add_bench_train(bench_subparsers) -> None:
    """Register ``train`` on ``magnet bench``'s subparsers."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = bench_subparsers.add_parser(
        "train", formatter_class=fmt, help="training tokens/s and peak memory of the LM",
        description="Time full MAGNeT training updates of a random LM of the given size on random codes and report "
                    "tokens/s (B x K x T codes per second) and peak memory. Example: magnet bench train --size small "
                    "--batch 8 --device cuda")
    p.add_argument("--size", default="small", choices=["tiny", "small", "medium"], help="audiocraft model scale")
    p.add_argument("--dim", type=int, default=None, help="override the model width")
    p.add_argument("--heads", type=int, default=None, help="override the number of heads")
    p.add_argument("--layers", type=int, default=None, help="override the number of layers")
    p.add_argument("--batch", type=int, default=4, help="batch size")
    p.add_argument("--duration", type=float, default=10.0, help="segment seconds (50 frames/s)")
    p.add_argument("--steps", type=int, default=5, help="timed updates")
    p.add_argument("--warmup", type=int, default=2, help="untimed updates first")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"], help="autocast precision")
    p.add_argument("--strategy", default="single", choices=["single", "ddp", "fsdp"],
                   help="single: this process; ddp or fsdp: --nproc processes (fsdp also runs ddp for comparison)")
    p.add_argument("--nproc", type=int, default=2, help="processes for --strategy ddp / fsdp")
    p.add_argument("--out", default=None, help="also write the result as JSON here")
    p.set_defaults(func=cmd_bench_train)
