"""The outputs of ``magnet eval``: a :class:`MetricResult` per metric and backend, the printed table and
``results.json`` / ``results.csv``."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence


@dataclass
class MetricResult:
    metric: str
    backend: str
    status: str  # ok | unavailable | error
    value: float | None = None
    reason: str | None = None
    details: dict = field(default_factory=dict)
    backend_info: dict = field(default_factory=dict)


def _detail_text(r: MetricResult) -> str:
    d = r.details
    if r.metric == "fad":
        text = f"{d.get('n_reference_clips')} ref / {d.get('n_generated_clips')} gen clips, " \
               f"{d.get('n_reference_embeddings')}/{d.get('n_generated_embeddings')} x {d.get('dim')}-d"
        return text + (" (few embeddings: biased)" if "warning" in d else "")
    if r.metric == "kl":
        return f"{d.get('n_pairs')} pairs, kld_qp {d.get('kld_qp', 0):.4f}, kld_both {d.get('kld_both', 0):.4f}"
    if r.metric == "clap":
        return f"{d.get('n_clips')} clips"
    if r.metric.startswith("codec_"):
        real = f", real clips {d['reference']:.4f}" if "reference" in d else ""
        return f"std {d.get('std', 0):.4f}{real}, {d.get('n_clips')} clips at {d.get('sample_rate')} Hz"
    if r.backend == "musicality":
        unit = f" {d['unit']}" if d.get("unit") else ""

        def fmt_m(cond: str) -> str:
            c = d.get(cond) or {}
            return "-" if c.get("value") is None else f"{c['value']:.4g}{unit} (n {c['n']})"

        return f"real {fmt_m('reference')}, codec round trip {fmt_m('codec')}; generated n " \
               f"{(d.get('generated') or {}).get('n')}"
    if "generated" in d:  # adherence

        def fmt(cond: str) -> str:
            c = d.get(cond) or {}
            return "-" if c.get("value") is None else f"{c['value']:.3f} (n {c['n']})"

        codec = f", codec round trip {fmt('codec')}" if "codec" in d else ""
        p = (d.get("generated") or {}).get("p_value")
        p_text = "" if p is None else f", p {p:.3f} (vs chance)"
        return f"real {fmt('reference')}{codec}, shuffled {fmt('shuffled')}{p_text}"
    return ""


def format_table(results: Sequence[MetricResult]) -> str:
    """A plain-text table: metric, model, value, and details or the reason it is missing."""
    rows = [("metric", "model", "value", "details")]
    for r in results:
        if r.status == "ok":
            rows.append((r.metric.upper(), f"{r.backend}", f"{r.value:.4f}", _detail_text(r)))
        else:
            rows.append((r.metric.upper(), r.backend, r.status.upper(), r.reason or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(row[i].ljust(widths[i]) for i in range(3)) + "  " + row[3])
        if k == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    models = {r.backend_info.get("model") for r in results if r.status == "ok" and r.backend_info.get("model")}
    if models:
        lines.append("")
        lines += [f"  {r.metric.upper()}[{r.backend}]: {r.backend_info['model']}" for r in results
                  if r.status == "ok" and r.backend_info.get("model")]
    return "\n".join(lines)


def write_results(results: Sequence[MetricResult], out_dir: str | Path, meta: dict | None = None) -> tuple[Path, Path]:
    """``results.json`` (everything) and ``results.csv`` (one row per metric and model)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {**(meta or {}), "results": [asdict(r) for r in results]}
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    csv_path = out_dir / "results.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["metric", "backend", "status", "value", "model", "weights", "reason", "details"])
        for r in results:
            writer.writerow([r.metric, r.backend, r.status, "" if r.value is None else repr(float(r.value)),
                             r.backend_info.get("model", ""), r.backend_info.get("weights", ""), r.reason or "",
                             json.dumps(r.details, default=str)])
    return json_path, csv_path
