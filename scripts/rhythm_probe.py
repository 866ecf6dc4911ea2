"""Does the LM know where the next beat falls? A one-pass probe of codebook 0 on real clips with drums.

    .venv/bin/python scripts/rhythm_probe.py --model magnet-audio/synth-music \\
        --prompts data/synth-6h/heldout.jsonl --reference data/synth-6h/heldout --n 24 --out eval/rhythm.png

Each clip (the first ``--n`` whose prompt names drums, with a ``bpm``) is encoded; its first
``--given`` seconds stay visible and everything after is masked, as when the model continues it.
One forward pass of the LM (codebook-0 head, the clip's prompt as text) gives a distribution
``p_t`` for every masked frame t. The probe scores the clip's own codebook-0 tokens shifted by a
fraction f of a beat against those distributions:

    score(f) = mean over masked frames t of log p_t(x[t + f * frames_per_beat])

A model that predicts the same distribution at every masked frame (no idea where beats fall)
gives a flat score; one that places onsets where the given beat continues scores the clip's own
tokens (f = 0) and a whole beat away (f = +-1) above half a beat away (f = +-0.5). The printed
``phase contrast`` is score(0) - score(+-0.5) in nats a frame, near (the first second after the given
part) and far (the rest); the figure plots score(f) - score(0.5) for both, beside the reference's.
A model that only predicts what is typical nearby also scores f = 0 above f = +-0.5 (nearer is likelier), so the
``beat contrast``, score(+-1) - score(+-0.5), is the sharper test: above 0 only if a whole beat away
is likelier than half a beat away, which nearness alone never gives.

For scale, the same is printed for a reference predictor that knows only the beat (a quarter of
its probability on the token one beat back, a quarter on the token two beats back, the rest
uniform: :func:`beat_copy_logprobs`). ``--bpm LOW HIGH`` keeps only clips of those tempi.
``--given-codebooks 0`` leaves only codebook 0 visible in the given part (what a stage-0 training
batch shows); the default gives every codebook, as ``generate_continuation`` does.
For an LM with tempo-relative positions (``tempo_rope``), ``--tempo prompt`` (default) gives it the
tempo each prompt asks for, as generation does (120 where it names none); ``--tempo metadata`` the
clip's exact bpm, as training does. Other LMs have no tempo input.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from stage_swap import clip_parser, load_clips, read_items  # a neighbour: a script's own folder is on sys.path

from magnet_audio import MAGNeT

DRUMS = re.compile(r"drum|beat|percussion|808|909|kit", re.IGNORECASE)


def shifted_scores(logp: torch.Tensor, tokens: torch.Tensor, start: int, stop: int,
                   frames_per_beat: float, fractions: np.ndarray) -> np.ndarray:
    """Mean log p_t(x[t + d]) over frames t in [start, stop) for each shift d = round(f * frames_per_beat).

    logp [T, card] (log-probabilities of codebook 0), tokens [T]; frames whose shifted index falls
    outside [0, T) are left out (NaN where none is left).
    """
    T = tokens.shape[0]
    out = []
    for f in fractions:
        d = int(round(f * frames_per_beat))
        lo, hi = max(start, -d), min(stop, T - d)
        t = torch.arange(lo, max(lo, hi))
        out.append(float(logp[t, tokens[t + d]].mean()) if len(t) else float("nan"))
    return np.array(out)


def beat_copy_logprobs(tokens: torch.Tensor, frames_per_beat: float, card: int, weight: float = 0.25) -> torch.Tensor:
    """log p [T, card] of a reference predictor that knows only the beat: ``weight`` on the token one
    beat back and ``weight`` on the token two beats back (where they exist), the rest uniform.

    On real clips it shows how large a phase contrast knowing the beat gives with these tokens."""
    T = tokens.shape[0]
    p = torch.full((T, card), 1.0 / card)
    for beats in (1, 2):
        d = int(round(beats * frames_per_beat))
        t = torch.arange(d, T)
        p[t, tokens[t - d]] += weight
    return torch.log(p / p.sum(-1, keepdim=True))


def probe_tempo(model: MAGNeT, items: list[dict], source: str) -> torch.Tensor | None:
    """The bpm [B] a ``tempo_rope`` LM is given for these clips: each clip's ``bpm`` (``source``
    "metadata", as training) or the tempo its prompt asks for ("prompt", as generation: NaN, read
    as 120, where it names none); None for an LM without tempo_rope. A ``beat_phase`` LM gets
    [B, 2], the beat at frame 0 being 0 either way: the renders start on a beat."""
    if not getattr(model.lm.cfg, "tempo_rope", False):
        return None
    if source == "metadata":
        bpm = torch.tensor([float(item["bpm"]) for item in items])
        return torch.stack([bpm, torch.zeros_like(bpm)], dim=1) if model.lm.cfg.beat_phase else bpm
    return model.decoding_tempo([item["description"] for item in items])


def main() -> None:
    parser = clip_parser(__doc__, n=24, which="clips with drums to use (the first N)")
    parser.add_argument("--given", type=float, default=3.0, help="seconds of each clip left visible")
    parser.add_argument("--given-codebooks", choices=["all", "0"], default="all")
    parser.add_argument("--bpm", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="only clips whose bpm is in [LOW, HIGH]")
    parser.add_argument("--tempo", choices=["prompt", "metadata"], default="prompt",
                        help="the tempo a tempo_rope LM is given: the prompt's (as generation) or the clip's bpm")
    parser.add_argument("--out", default=None, help="figure (.png) of score against shift; none if omitted")
    args = parser.parse_args()
    if args.out and not Path(args.out).resolve().parent.is_dir():
        parser.error(f"--out {args.out}: its folder does not exist")

    model = MAGNeT.get_pretrained(args.model, device="cpu")
    codec, lm = model.compression_model, model.lm
    items = read_items(args.prompts)
    low, high = args.bpm or (0, float("inf"))
    items = [it for it in items if it.get("bpm") and low <= it["bpm"] <= high and DRUMS.search(it["description"])]
    items = items[:args.n]
    if not items:
        parser.error("no clip in --prompts has a bpm (in --bpm) and a prompt that names drums")
    fractions = np.linspace(-1, 1, 33)
    near, far, copy_near, copy_far = [], [], [], []
    with torch.no_grad():
        codes, _ = codec.encode(load_clips(items, args.reference, model.sample_rate))  # [B, K, T]
        B, K, T = codes.shape
        given = int(round(args.given * codec.frame_rate))
        if not 0 < given < T - codec.frame_rate:
            parser.error(f"--given must leave more than a second of the {T / codec.frame_rate:.1f} s clips")
        inputs = codes.clone()
        inputs[..., given:] = lm.mask_id
        if args.given_codebooks == "0":
            inputs[:, 1:] = lm.mask_id
        descriptions = [item["description"] for item in items]
        memory = lm.encode_text(descriptions)
        tempo = probe_tempo(model, items, args.tempo)
        logp = torch.log_softmax(lm(inputs, memory, stage=0, tempo=tempo)[:, 0].float(), dim=-1)  # [B, T, card]
        split = given + int(codec.frame_rate)
        for i, item in enumerate(items):
            fpb = codec.frame_rate * 60.0 / item["bpm"]
            near.append(shifted_scores(logp[i], codes[i, 0], given, split, fpb, fractions))
            far.append(shifted_scores(logp[i], codes[i, 0], split, T, fpb, fractions))
            copy = beat_copy_logprobs(codes[i, 0], fpb, logp.shape[-1])
            copy_near.append(shifted_scores(copy, codes[i, 0], given, split, fpb, fractions))
            copy_far.append(shifted_scores(copy, codes[i, 0], split, T, fpb, fractions))
    near, far = np.mean(near, axis=0), np.mean(far, axis=0)
    copy_near, copy_far = np.mean(copy_near, axis=0), np.mean(copy_far, axis=0)
    half = [int(np.argmin(abs(fractions - h))) for h in (-0.5, 0.5)]
    zero, one = int(np.argmin(abs(fractions))), [int(np.argmin(abs(fractions - h))) for h in (-1, 1)]
    tempo_note = f", tempo from the {args.tempo}" if getattr(lm.cfg, "tempo_rope", False) else ""
    print(f"{len(items)} clips with drums, {args.given:g} s given ({args.given_codebooks} codebooks{tempo_note}), "
          "mean log p of the clip's codebook-0 tokens shifted by f beats:")
    for name, s in (("near (first second)", near), ("far (the rest)", far),
                    ("beat copy, near", copy_near), ("beat copy, far", copy_far)):
        print(f"  {name:20s} f=0 {s[zero]:7.3f}  f=+-0.5 {np.mean(s[half]):7.3f}  f=+-1 {np.mean(s[one]):7.3f}"
              f"  phase contrast {s[zero] - np.mean(s[half]):+.3f}  beat contrast "
              f"{np.mean(s[one]) - np.mean(s[half]):+.3f} nats/frame")
    if args.out:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        panels = ((axes[0], f"{Path(args.model).name}", near, far),
                  (axes[1], "reference: copies the tokens 1 and 2 beats back", copy_near, copy_far))
        for ax, title, n, f in panels:
            for name, s in (("first second after the given part", n), ("the rest", f)):
                ax.plot(fractions, s - np.mean(s[half]), marker=".", label=name)
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_xlabel("shift of the clip's own tokens (beats)")
            ax.set_title(title, fontsize=9)
        axes[0].set_ylabel("log p - log p at half a beat (nats)")
        axes[0].legend(fontsize=8)
        fig.suptitle("does codebook 0 know where the next beat falls? (peaks at 0 and +-1 beat: yes)", fontsize=9)
        fig.tight_layout()
        fig.savefig(args.out, dpi=120)
        print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
