"""Before / after spectrograms of each edit (continue, inpaint, vary, outpaint) made by the default
model, for README.md and docs/editing.md.

    .venv/bin/python scripts/editing_figures.py                       # writes docs/images/editing-*.png
    .venv/bin/python scripts/editing_figures.py --steps 20,10,10,10 --out /tmp/figures   # the default steps

The bundled ``magnet-audio/synth-music`` runs on CPU with a fixed seed: it generates a source clip
from a prompt, then edits it four ways, as ``magnet generate --continue`` and ``magnet edit`` do.
Each figure shows the source above and the result below, the edited seconds shaded (for inpainting
and outpainting the regions the model used, after widening to its span grid). Needs matplotlib
(the `app` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SOURCE_PROMPT = "upbeat electronic track with punchy drums and a synth bass, 120 bpm"
EDIT_PROMPT = "calm solo piano, slow and soft"
SOURCE_SECONDS = 8.0
PROMPT_SECONDS = 3.0  # continuation: the source's last seconds prompt the model
INPAINT = [(3.0, 5.0)]
OUTPAINT = [(8.0, 10.0)]  # past the end of the 8 s source
STRENGTH = 0.4


def spectrogram_axes(ax, wav: np.ndarray, sample_rate: int, title: str, shade=(), offset: float = 0.0) -> None:
    """One panel: the dB spectrogram of ``wav`` [C, T], the ``shade`` regions (seconds + ``offset``)
    outlined."""
    from magnet_audio.app import spectrogram_db

    db, seconds = spectrogram_db(wav, sample_rate)
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
              extent=(0.0, seconds, 0.0, sample_rate / 2000.0), interpolation="nearest")
    for start, end in shade:
        ax.axvspan(start + offset, end + offset, facecolor="white", alpha=0.18, edgecolor="white", linewidth=1.5)
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_ylabel("kHz", fontsize=8)
    ax.tick_params(labelsize=7)


def figure(path: Path, sample_rate: int, before: np.ndarray, after: np.ndarray, before_title: str,
           after_title: str, before_shade=(), after_shade=(), after_offset: float = 0.0) -> Path:
    """A before / after figure on a common time axis, written as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    spectrogram_axes(top, before, sample_rate, before_title, before_shade)
    spectrogram_axes(bottom, after, sample_rate, after_title, after_shade, after_offset)
    longest = max(before.shape[-1], after.shape[-1]) / sample_rate
    top.set_xlim(0, longest)
    bottom.set_xlabel("time (s)", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def used_regions(model) -> list[tuple[float, float]]:
    """The regions the last edit generated (seconds of its input), from ``model.last_edit``."""
    return [tuple(r) for r in model.last_edit.used[0]]


def make_figures(model, out_dir: Path, seed: int = 0) -> list[Path]:
    """Generate the source clip and the four edits with ``model`` (a :class:`~magnet_audio.MAGNeT`,
    its decoding options already set), write ``editing-{continue,inpaint,vary,outpaint}.png``."""
    import torch

    sr = model.sample_rate
    torch.manual_seed(seed)
    source = model.generate([SOURCE_PROMPT])[:, :, :int(SOURCE_SECONDS * sr)].cpu()  # [1, C, T]
    src = source[0].numpy()
    before = f"source: '{SOURCE_PROMPT}'"
    written = []

    torch.manual_seed(seed + 1)
    keep = int(PROMPT_SECONDS * sr)
    out = model.generate_continuation(source[..., -keep:], sr, descriptions=[SOURCE_PROMPT]).cpu()
    written.append(figure(out_dir / "editing-continue.png", sr, src, out[0].numpy(), before,
                          f"magnet generate --continue --prompt-seconds {PROMPT_SECONDS:g}: its last "
                          f"{PROMPT_SECONDS:g} s prompt the model",
                          before_shade=[(SOURCE_SECONDS - PROMPT_SECONDS, SOURCE_SECONDS)],
                          after_shade=[(0.0, PROMPT_SECONDS)]))

    torch.manual_seed(seed + 2)
    out = model.generate_inpainting(source, sr, [EDIT_PROMPT], regions=INPAINT).cpu()
    used = used_regions(model)
    spec = " ".join(f"--region {s:g}:{e:g}" for s, e in INPAINT)
    written.append(figure(out_dir / "editing-inpaint.png", sr, src, out[0].numpy(), before,
                          f"magnet edit {spec} '{EDIT_PROMPT}'", INPAINT, used))

    torch.manual_seed(seed + 3)
    out = model.generate_variations(source, sr, [SOURCE_PROMPT], strength=STRENGTH).cpu()
    written.append(figure(out_dir / "editing-vary.png", sr, src, out[0].numpy(), before,
                          f"magnet edit --vary {STRENGTH:g}: {STRENGTH:.0%} of the tokens re-generated"))

    torch.manual_seed(seed + 4)
    out = model.generate_inpainting(source, sr, [SOURCE_PROMPT], regions=OUTPAINT).cpu()
    used = used_regions(model)
    spec = " ".join(f"--region {s:g}:{e:g}" for s, e in OUTPAINT)
    written.append(figure(out_dir / "editing-outpaint.png", sr, src, out[0].numpy(), before,
                          f"magnet edit {spec}: outpainting past the end", [], used,
                          after_offset=float(model.last_edit.prepended_s)))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="magnet-audio/synth-music", help="model (default: the bundled one)")
    parser.add_argument("--t5-path", default=None, help="local T5 directory, for models with a T5 conditioner")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="folder of the PNGs")
    parser.add_argument("--steps", default="10,5,5,5", help="decoding steps per codebook (fewer than the default "
                        "20,10,10,10: five generations on CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    import matplotlib

    matplotlib.use("Agg")
    from magnet_audio.models import MAGNeT

    model = MAGNeT.get_pretrained(args.model, device=args.device, t5_path=args.t5_path)
    model.update_generation_params(decoding_steps=[int(s) for s in args.steps.split(",")])
    for path in make_figures(model, args.out, args.seed):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
