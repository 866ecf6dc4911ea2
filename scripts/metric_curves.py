"""Musicality and validation loss of a training run against its training compute (issue #28's
"plot the metrics against training compute so the next step is visible").

    .venv/bin/python scripts/metric_curves.py RUN_DIR docs/images/default-v2-curves.png \\
        --eval 300=eval/rope-300 --eval 900=eval/rope-900 --baseline "v1 (shipped)=eval/shipped@2400" \\
        --params 6.9e6 --tokens-per-update 16000 --table docs/notes/curves.md

RUN_DIR is a ``magnet train`` run folder (its ``valid.csv``: the validation cross-entropy per stage);
each ``--eval STEP=DIR`` is a ``magnet eval --metrics musicality`` folder (``results.json``) made from
the checkpoint of update STEP; ``--baseline LABEL=DIR[@STEP]`` another model's eval, drawn as a
marker (at STEP of its own run, else at the right edge). Compute is the usual estimate
6 x parameters x tokens: ``--params`` the LM's trained parameters, ``--tokens-per-update`` the codec
tokens of one update (batch x frames x codebooks). The goal lines are those of issue #28; the
codec round trip and the real renders come from the evals themselves (``details.codec`` /
``details.reference``). Needs matplotlib.
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass
from pathlib import Path

#: (metric key in results.json, title, goal, goal direction: +1 at least / -1 at most)
PANELS: list[tuple[str, str, float, int]] = [
    ("confident_notes", "frames with a confident note", 0.6, +1),
    ("note_stability", "note stability", 0.5, +1),
    ("distinct_tokens", "distinct first-codebook tokens", 25.0, +1),
    ("top_token_share", "top-token share", 0.35, -1),
    ("loudness_range", "loudness range (dB)", 8.0, +1),
    ("pulse_clarity_drums", "pulse clarity (drum prompts)", 0.35, +1),
    ("tempo_within_8pct", "tempo within 8 %", 0.4, +1),
]


@dataclass(frozen=True)
class EvalPoint:
    label: str
    step: int | None
    metrics: dict[str, dict]  # metric -> {"generated", "codec", "reference"}


def read_eval(path: Path, label: str, step: int | None) -> EvalPoint:
    """The musicality rows of a ``magnet eval`` folder's results.json (the last row of a metric wins:
    ``pulse_clarity`` appears once for adherence and once for musicality, the latter has ``codec``)."""
    results = json.loads((path / "results.json").read_text())["results"]
    metrics = {}
    for row in results:
        if row.get("status") == "ok" and isinstance(row.get("details"), dict):
            values = {k: _number(v) for k, v in row["details"].items()}
            metrics[row["metric"]] = {k: v for k, v in values.items() if v is not None}
    return EvalPoint(label, step, metrics)


def _number(value) -> float | None:
    """A column of a results.json row: a number, or ``{"value": number, "n": clips}``."""
    if isinstance(value, dict):
        value = value.get("value")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read_valid(run_dir: Path) -> tuple[list[int], list[float]]:
    """(steps, stage-0 validation cross-entropy) from RUN_DIR/valid.csv."""
    with open(run_dir / "valid.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [int(r["step"]) for r in rows], [float(r["ce_stage0"]) for r in rows]


def parse_pair(text: str, with_step: bool) -> tuple[str, Path, int | None]:
    """``STEP=DIR`` (with_step) or ``LABEL=DIR[@STEP]``."""
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected KEY=DIR, got {text!r}")
    if with_step:
        return key, Path(value), int(key)
    path, _, step = value.partition("@")
    return key, Path(path), int(step) if step else None


def table(points: list[EvalPoint], pflop_per_update: float) -> str:
    """A markdown table: one row per eval, one column per goal metric (generated values)."""
    head = "| model | updates | PFLOP | " + " | ".join(title for _, title, _, _ in PANELS) + " |"
    lines = [head, "|" + "---|" * (len(PANELS) + 3)]
    for p in points:
        cells = []
        for key, _, _, _ in PANELS:
            value = p.metrics.get(key, {}).get("generated")
            cells.append("–" if value is None else f"{value:.2f}")
        updates = "–" if p.step is None else str(p.step)
        pflop = "–" if p.step is None else f"{p.step * pflop_per_update:.1f}"
        lines.append(f"| {p.label} | {updates} | {pflop} | " + " | ".join(cells) + " |")
    goal = " | ".join(f"{'>=' if d > 0 else '<='} {g:g}" for _, _, g, d in PANELS)
    lines.append(f"| goal | | | {goal} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--eval", dest="evals", action="append", default=[], type=lambda s: parse_pair(s, True),
                        help="STEP=EVAL_DIR, once per evaluated checkpoint")
    parser.add_argument("--baseline", action="append", default=[], type=lambda s: parse_pair(s, False),
                        help="LABEL=EVAL_DIR[@STEP], another model drawn as a marker")
    parser.add_argument("--params", type=float, required=True, help="trained LM parameters")
    parser.add_argument("--tokens-per-update", type=float, required=True)
    parser.add_argument("--table", type=Path, help="also write the values as a markdown table here")
    args = parser.parse_args(argv)
    if args.params <= 0 or args.tokens_per_update <= 0:
        parser.error("--params and --tokens-per-update must be positive")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pflop = 6 * args.params * args.tokens_per_update / 1e15  # per update
    points = sorted((read_eval(path, label, step) for label, path, step in args.evals), key=lambda p: p.step)
    baselines = [read_eval(path, label, step) for label, path, step in args.baseline]
    steps, ce0 = read_valid(args.run_dir)
    right = max([*steps, *(p.step for p in points)], default=1) * pflop

    fig, axes = plt.subplots(2, 4, figsize=(15, 6.5))
    ax = axes.flat[0]
    ax.plot([s * pflop for s in steps], ce0, "o-", color="C0")
    ax.set_title("validation cross-entropy, stage 0 (nats)", fontsize=9)
    for (key, title, goal, _), ax in zip(PANELS, axes.flat[1:]):
        xs = [p.step * pflop for p in points if key in p.metrics]
        ax.plot(xs, [p.metrics[key]["generated"] for p in points if key in p.metrics], "o-", color="C0",
                label="generated")
        for level, style, name in (("codec", ":", "codec round trip"), ("reference", "-.", "real renders")):
            known = [p.metrics[key][level] for p in points + baselines if level in p.metrics.get(key, {})]
            if known:
                ax.axhline(known[-1], color="0.4", linestyle=style, linewidth=1, label=name)
        ax.axhline(goal, color="C2", linestyle="--", linewidth=1, label="goal")
        for i, b in enumerate(baselines):
            if key in b.metrics:
                x = right if b.step is None else b.step * pflop
                ax.plot([x], [b.metrics[key]["generated"]], marker="s", color=f"C{3 + i}", linestyle="none",
                        label=b.label)
        ax.set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.set_xlabel("training compute (PFLOP)", fontsize=8)
        ax.tick_params(labelsize=8)
    handles, labels = axes.flat[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    if args.table:
        args.table.write_text(table(points + baselines, pflop))
        print(f"wrote {args.table}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
