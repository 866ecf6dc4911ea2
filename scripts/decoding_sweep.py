"""A decoding sweep on the musicality metrics, as a trade-off picture and a table (issue #28's
"decoding settings swept on the metrics").

    .venv/bin/python scripts/decoding_sweep.py docs/images/default-decoding-sweep.png \\
        "T 1, CFG 3=eval/sw-T1-cfg3" "T 3, CFG 10=eval/sw-T3-cfg10" ... --mark "T 1, CFG 3" \\
        --table docs/notes/sweep.md

Each ``LABEL=DIR`` is a ``magnet eval --metrics musicality`` folder (``results.json``) of one model
decoded with one setting (``--temperature``, ``--cfg``, ``--top-p`` ...). Two panels put each setting
where the goal needs two things at once: clear notes (confident-note frames) *and* varied tokens
(distinct first-codebook tokens), and held notes (note stability) *and* no single dominant token
(top-token share). The goal region of issue #28 is shaded; ``--mark`` rings the settings a model
ships with. The codec round trip and the real renders are drawn when an eval has them. Needs
matplotlib.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metric_curves import PANELS, EvalPoint, parse_pair, read_eval  # noqa: E402

GOALS = {key: (goal, direction) for key, _, goal, direction in PANELS}
TITLES = {key: title for key, title, _, _ in PANELS}
#: (x metric, y metric) of each panel
AXES = [("distinct_tokens", "confident_notes"), ("top_token_share", "note_stability")]


def table(points: list[EvalPoint]) -> str:
    """A markdown table: one row per setting, one column per goal metric (generated values)."""
    lines = ["| decoding | " + " | ".join(TITLES[k] for k, *_ in PANELS) + " |", "|" + "---|" * (len(PANELS) + 1)]
    for p in points:
        cells = [p.metrics.get(k, {}).get("generated") for k, *_ in PANELS]
        lines.append(f"| {p.label} | " + " | ".join("–" if v is None else f"{v:.2f}" for v in cells) + " |")
    goal = " | ".join(f"{'>=' if d > 0 else '<='} {g:g}" for _, _, g, d in PANELS)
    lines.append(f"| goal | {goal} |")
    return "\n".join(lines) + "\n"


def _goal_span(key: str, lo: float, hi: float) -> tuple[float, float]:
    goal, direction = GOALS[key]
    return (goal, hi) if direction > 0 else (lo, goal)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("evals", nargs="+", type=lambda s: parse_pair(s, False), help="LABEL=EVAL_DIR per setting")
    parser.add_argument("--mark", action="append", default=[], help="a LABEL to ring (the shipped setting)")
    parser.add_argument("--table", type=Path, help="also write the values as a markdown table here")
    args = parser.parse_args(argv)
    missing = [str(path) for _, path, _ in args.evals if not (path / "results.json").is_file()]
    if missing:
        parser.error(f"no results.json (a `magnet eval --out` folder) in: {', '.join(missing)}")
    points = [read_eval(path, label, None) for label, path, _ in args.evals]
    unknown = set(args.mark) - {p.label for p in points}
    if unknown:
        parser.error(f"--mark names no setting: {', '.join(sorted(unknown))}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(AXES), figsize=(12, 5))
    for ax, (xkey, ykey) in zip(axes, AXES):
        have = [p for p in points if xkey in p.metrics and ykey in p.metrics]
        xs = [p.metrics[xkey]["generated"] for p in have]
        ys = [p.metrics[ykey]["generated"] for p in have]
        levels = {}
        for level in ("codec", "reference"):
            for p in have:
                if level in p.metrics[xkey] and level in p.metrics[ykey]:
                    levels[level] = (p.metrics[xkey][level], p.metrics[ykey][level])
        allx, ally = xs + [v[0] for v in levels.values()], ys + [v[1] for v in levels.values()]
        (x0, x1), (y0, y1) = _pad(allx + [GOALS[xkey][0]]), _pad(ally + [GOALS[ykey][0]])
        gx, gy = _goal_span(xkey, x0, x1), _goal_span(ykey, y0, y1)
        ax.fill_between(gx, gy[0], gy[1], color="C2", alpha=0.12, label="goal (issue #28)")
        ax.scatter(xs, ys, color="C0", zorder=3, label="generated, one decoding setting each")
        for p, x, y in zip(have, xs, ys):
            ax.annotate(p.label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
            if p.label in args.mark:
                ax.scatter([x], [y], s=160, facecolors="none", edgecolors="C3", zorder=4, label=f"shipped: {p.label}")
        for (level, (x, y)), marker in zip(levels.items(), ("s", "D")):
            ax.scatter([x], [y], marker=marker, color="0.3", zorder=3,
                       label={"codec": "codec round trip", "reference": "real renders"}[level])
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel(TITLES[xkey], fontsize=9)
        ax.set_ylabel(TITLES[ykey], fontsize=9)
        ax.tick_params(labelsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    if args.table:
        args.table.write_text(table(points))
        print(f"wrote {args.table}")
    return 0


def _pad(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    margin = 0.08 * (hi - lo or 1.0)
    return lo - margin, hi + margin


if __name__ == "__main__":
    raise SystemExit(main())
