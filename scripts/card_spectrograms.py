"""Log-mel spectrograms of generated clips beside the real renders of the same prompts (the model
card's figure).

    .venv/bin/python scripts/card_spectrograms.py eval/default data/synth-6h heldout24.jsonl \\
        docs/images/synth-music-spectrograms.png --rows 0,1,4

EVAL_DIR is a ``magnet eval --out`` folder (its ``generated/`` clips are numbered in prompt order,
``00000_...wav``); DATA_DIR the dataset whose ``.jsonl`` lines name the reference clips by ``path``.
Needs librosa and matplotlib (the eval and app extras).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def log_mel(path: Path, sample_rate: int = 16000) -> np.ndarray:
    """[n_mels, frames] log-mel power (dB) of the first 10 s of a clip, resampled to ``sample_rate``."""
    import librosa

    wav, _ = librosa.load(path, sr=sample_rate, mono=True, duration=10.0)
    mel = librosa.feature.melspectrogram(y=wav, sr=sample_rate, n_fft=1024, hop_length=256, n_mels=96)
    return librosa.power_to_db(mel, ref=np.max, top_db=80.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("eval_dir", type=Path)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("prompts", type=Path, help="the .jsonl given to magnet eval --prompts")
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--rows", default="0,1,2", help="prompt indices to show (default: 0,1,2)")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prompts = [json.loads(line) for line in args.prompts.read_text().splitlines() if line.strip()]
    rows = [int(r) for r in args.rows.split(",")]
    if not rows or any(not 0 <= r < len(prompts) for r in rows):
        parser.error(f"--rows must be indices in [0, {len(prompts)})")
    generated = sorted((args.eval_dir / "generated").glob("*.wav"))
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 2.3 * len(rows)), squeeze=False)
    for ax_row, r in zip(axes, rows):
        matches = [p for p in generated if p.name.startswith(f"{r:05d}_")]
        if not matches:
            parser.error(f"no generated clip {r:05d}_*.wav in {args.eval_dir / 'generated'}")
        for ax, path, title in ((ax_row[0], matches[0], "generated"),
                                (ax_row[1], args.data_dir / prompts[r]["path"], "real render")):
            ax.imshow(log_mel(path), origin="lower", aspect="auto", cmap="magma", extent=(0, 10, 0, 96))
            ax.set_title(f"{title}: {prompts[r]['description'][:70]}", fontsize=8)
            ax.set_yticks([])
            ax.set_xlabel("seconds", fontsize=7)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
