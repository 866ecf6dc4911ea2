"""Exact-mode MAGNeT decoding against audiocraft 1.3.0 on the same weights: tokens and CPU time.

Builds a random-weight MAGNeT LM of the given size with our code, loads the same state dict into
audiocraft's ``MagnetLMModel`` (built by audiocraft's own ``get_lm_model`` from the ``xp.cfg`` our
config writes), gives both the same cross-attention memory (conditional rows, then null rows) and
decodes greedily with the same steps. Prints whether the tokens are identical and the CPU seconds
(``time.process_time``, steadier than wall time on a shared machine) and wall seconds of each, best
of ``--runs``. Text encoding and the codec are left out: only LM decoding differs between the two.

audiocraft is not a dependency of this project (it pins torch and needs torchaudio, which does not
pair with the CPU wheel we use). `python3 scripts/setup.py --test` installs it without its
dependencies into `.venv/audiocraft-1.3.0`; by hand (the pinned list is `audiocraft_compat.PACKAGES`):

    .venv/bin/pip install --no-deps -t .venv/audiocraft-1.3.0 audiocraft==1.3.0 flashy julius einops \\
        hydra-core omegaconf antlr4-python3-runtime==4.9.3 num2words docopt
    .venv/bin/python scripts/bench_vs_audiocraft.py --dim 1024 --layers 24 --heads 16

Modules audiocraft imports but its LM never runs (torchaudio, av, spacy, ...) are replaced by empty
stand-ins, and xformers' two attention ops by PyTorch equivalents (the backend audiocraft's loader
selects for the released models, on the same SDPA kernel as ours): see `scripts/audiocraft_compat.py`,
which the interoperability tests share.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

import audiocraft_compat  # beside this script


def audiocraft_lm(xp_cfg: dict, state: dict, memory: torch.Tensor):
    """audiocraft's MagnetLMModel for ``xp_cfg`` with ``state`` loaded, its text conditioning replaced
    by the precomputed ``memory`` [2B, L, D] (conditional rows, then null rows)."""
    from audiocraft.models.builders import get_lm_model
    from audiocraft.modules.transformer import set_efficient_attention_backend
    from omegaconf import OmegaConf

    set_efficient_attention_backend("xformers")  # as audiocraft's loader does for memory_efficient models
    lm = get_lm_model(OmegaConf.create(xp_cfg))
    lm.load_state_dict(state, strict=True)
    lm.eval()
    provider = lm.condition_provider
    mask = torch.ones(memory.shape[:2], dtype=torch.long)
    provider.tokenize = lambda conditions: {}
    provider.forward = lambda tokenized: {"description": (memory, mask)}
    return lm


def timed(fn, runs: int) -> tuple[torch.Tensor, float, float]:
    """fn's output and its best CPU and wall seconds over ``runs`` calls."""
    best_cpu, best_wall, out = float("inf"), float("inf"), None
    for _ in range(runs):
        cpu, wall = time.process_time(), time.perf_counter()
        out = fn()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return out, best_cpu, best_wall


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--acpkgs", default=None,
                   help="folder audiocraft 1.3.0 was installed into (pip -t; default: $MAGNET_AUDIOCRAFT_DIR, "
                        "else .venv/audiocraft-1.3.0)")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--duration", type=float, default=2.0, help="seconds to decode (50 frames/s)")
    p.add_argument("--steps", default="20,10,10,10", help="decoding steps per codebook")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=1, help="timed runs of each (best reported)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)

    audiocraft_compat.activate(args.acpkgs)
    if args.threads:
        torch.set_num_threads(args.threads)
    from audiocraft.modules.conditioners import ConditioningAttributes

    from magnet_audio.conditioning import ConditionerConfig
    from magnet_audio.decoding.magnet import GenerationParams, generate_codes
    from magnet_audio.lm.magnet import MagnetLM, MagnetLMConfig

    torch.manual_seed(args.seed)
    steps = [int(s) for s in args.steps.split(",")]
    cfg = MagnetLMConfig(dim=args.dim, num_heads=args.heads, num_layers=args.layers, n_q=len(steps), card=2048,
                         segment_duration=args.duration, frame_rate=50,
                         conditioner=ConditionerConfig(model="lut", n_bins=4096, text_dim=min(args.dim, 768)))
    ours = MagnetLM(cfg).eval()
    max_len = int(args.duration * 50)
    texts = [f"prompt {i}" for i in range(args.batch)]
    with torch.no_grad():
        memory = ours.encode_text(texts + [None] * args.batch)
    xp_cfg = cfg.to_xp_cfg()
    # audiocraft wants whole seconds here (its mask size); it rebuilds the masks for other lengths
    xp_cfg["transformer_lm"].update(compression_model_framerate=50, segment_duration=math.ceil(args.duration),
                                    span_len=cfg.span_len)
    theirs = audiocraft_lm(xp_cfg, ours.state_dict(), memory)

    params = GenerationParams(use_sampling=False, decoding_steps=steps)
    with torch.no_grad():
        our_codes, our_cpu, our_wall = timed(lambda: generate_codes(ours, memory, params, max_len), args.runs)
        conditions = [ConditioningAttributes(text={"description": t}) for t in texts]
        their_codes, their_cpu, their_wall = timed(lambda: theirs.generate(
            conditions=conditions, max_gen_len=max_len, use_sampling=False, decoding_steps=steps,
            temp=params.temperature, top_k=params.top_k, top_p=params.top_p, anneal_temp=params.anneal_temp,
            max_cfg_coef=params.max_cfg_coef, min_cfg_coef=params.min_cfg_coef, span_scoring=params.span_scoring,
            span_arrangement=params.span_arrangement), args.runs)  # all given: its generate() defaults differ
    n = min(our_codes.shape[-1], their_codes.shape[-1])
    same = bool(torch.equal(our_codes[..., :n], their_codes[..., :n]))
    result = {"dim": args.dim, "layers": args.layers, "heads": args.heads, "frames": max_len, "steps": steps,
              "batch": args.batch, "threads": torch.get_num_threads(), "torch": torch.__version__,
              "tokens_identical": same,
              "token_agreement": float((our_codes[..., :n] == their_codes[..., :n]).float().mean()),
              "ours_cpu_s": round(our_cpu, 2), "audiocraft_cpu_s": round(their_cpu, 2),
              "ours_wall_s": round(our_wall, 2), "audiocraft_wall_s": round(their_wall, 2),
              "speedup_cpu": round(their_cpu / our_cpu, 3), "speedup_wall": round(their_wall / our_wall, 3)}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
