"""The one-shot GPU check (``scripts/gpu_check.sh``): the CUDA-marked tests, then the paper's latency
claim (Figure 2) at MAGNeT-small and -medium size, in one budgeted command.

    scripts/gpu_check.sh [--out DIR]   # CUDA, ~8 minutes
    scripts/gpu_check.sh --toy         # CPU smoke run, tiny size

The script runs ``PYTHONPATH=src python -m magnet_audio.evaluation.gpu_check`` (no install step)
after putting stand-ins in place of soundfile and soxr where that Python lacks them: ``magnet_audio``
imports them at start-up, the check never uses them. Called directly, the module needs them installed.

Phases, each in its own subprocess with a time budget (a phase that overruns is killed and the next
one starts; ``--total`` bounds the whole run):

1. ``tests``: ``pytest -m cuda tests/test_cuda.py`` (reported as unavailable when pytest is absent).
2. ``bench_<size>`` per size: random-weight MAGNeT (exact mode and the fast preset, ``[20,10,10,10]``)
   and the same-size autoregressive MusicGen, timed with :func:`.bench.bench_model` at every batch
   size, batch-major (batch 1 of all three first, so the headline ratio survives a cut). Rows whose
   predicted cost exceeds the time left are skipped; the phase JSON is rewritten after every row.

Precision is what users of this library get: weights as ``get_pretrained`` loads them (float32), CUDA
generation under ``torch.autocast`` float16 (audiocraft autocasts too, over float16 weights), fast
mode with a float16 copy of the LM.

Writes to OUT: ``gpu_check.json`` (environment, phases, rows, ratios, the paper's claims checked),
``gpu_check.png`` (latency vs batch and throughput vs batch, the paper's Figure 2; skipped with a
message without matplotlib), ``bench_<size>/bench_generate.{json,png}`` (the ``magnet bench
generate --compare`` format) and ``cuda_tests.{log,xml}``. Exit status 0 when every phase completed,
every test passed and no row failed (rows skipped for time or out of memory are reported, not
failures), 1 otherwise (the JSON is written either way).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path

import torch

from ..utils import write_atomic

REPO = Path(__file__).resolve().parents[3]
PAPER_SPEEDUP = 7.0  # MAGNeT vs the same-size AR model at batch 1 on an A100, the paper's claim (~7x)
PLANS = {  # budgets in seconds; "total" bounds the whole command
    "gpu": {"sizes": ["small", "medium"], "batches": [1, 4, 16, 64], "duration": 10.0, "steps": [20, 10, 10, 10],
            "runs": 3, "warmup": 1, "device": "cuda", "total": 465,
            "budgets": {"tests": 150, "small": 110, "medium": 190}},  # the last size also gets what is left
    "toy": {"sizes": ["tiny"], "batches": [1, 2], "duration": 0.2, "steps": [2, 1, 1, 1], "runs": 1, "warmup": 0,
            "device": "cpu", "total": 150, "budgets": {"tests": 70, "tiny": 60}},
}
RESERVE_S = 10.0  # kept back at the end for the summary and the plot
STARTUP_S = 10.0  # a bench child's imports and CUDA context, before its own clock starts
GRACE_S = 20.0  # past a phase's budget before its process is killed


def _dump(path: Path, data: dict) -> None:
    write_atomic(lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8"), path)


def environment() -> dict:
    cuda = torch.cuda.is_available()
    return {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "cuda_available": cuda, "cuda_version": torch.version.cuda,
            "device_name": torch.cuda.get_device_name(0) if cuda else None,
            "device_count": torch.cuda.device_count() if cuda else 0,
            "pytest": importlib.util.find_spec("pytest") is not None,
            "matplotlib": importlib.util.find_spec("matplotlib") is not None,
            "stand_ins": [m for m in os.environ.get("MAGNET_GPU_CHECK_STAND_INS", "").split(",") if m],
            "commit": _git_commit()}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def run_phase(cmd: list[str], timeout: float, log: Path) -> dict:
    """Run ``cmd`` in its own process group, output to ``log`` (and echoed), killed after ``timeout`` s."""
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=max(1.0, timeout))
            status = "ok" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
            status = "timeout"
    text = log.read_text(encoding="utf-8", errors="replace")
    sys.stdout.write(text)
    sys.stdout.flush()
    return {"status": status, "returncode": rc, "seconds": round(time.perf_counter() - start, 2),
            "timeout_s": round(timeout, 1), "log": log.name, "tail": text[-2000:]}


def junit_results(path: Path) -> list[dict]:
    """[{name, outcome: passed|failed|error|skipped, message}] from a pytest JUnit XML file."""
    if not path.is_file():
        return []
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return []
    results = []
    for case in root.iter("testcase"):
        outcome, message = "passed", None
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                message = (child.get("message") or "")[:300]
                break
        results.append({"name": case.get("name"), "outcome": outcome, "message": message})
    return results


def log_results(text: str) -> list[dict]:
    """[{name, outcome}] from the ``PASSED``/``FAILED``/... lines of ``pytest -v`` output."""
    outcomes = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error", "SKIPPED": "skipped"}
    found = re.findall(r"^\S+::(\S+) (PASSED|FAILED|ERROR|SKIPPED)\b", text, flags=re.MULTILINE)
    return [{"name": name, "outcome": outcomes[word], "message": None} for name, word in found]


def tests_phase(out: Path, timeout: float) -> dict:
    test_file = REPO / "tests" / "test_cuda.py"
    if importlib.util.find_spec("pytest") is None:
        return {"status": "unavailable", "reason": "pytest is not installed in this Python: CUDA tests not run"}
    if not test_file.is_file():
        return {"status": "unavailable", "reason": f"{test_file} not found (run from a repository checkout)"}
    xml = out / "cuda_tests.xml"
    xml.unlink(missing_ok=True)  # never read a previous run's results
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-v", "-p", "no:cacheprovider", f"--junitxml={xml}",
           str(test_file)]
    result = run_phase(cmd, timeout, out / "cuda_tests.log")
    # the XML is written at the end: after a timeout, the verbose log has the tests that finished
    result["tests"] = junit_results(xml) or log_results((out / "cuda_tests.log").read_text(errors="replace"))
    counts = {k: sum(t["outcome"] == k for t in result["tests"]) for k in ("passed", "failed", "error", "skipped")}
    result["counts"] = counts
    if result["status"] == "ok" and counts["passed"] == 0:
        result["status"] = "skipped"  # e.g. no CUDA device: every test skipped
    return result


# --------------------------------------------------------------------------------------------------
# One size (runs in a child process)
# --------------------------------------------------------------------------------------------------

def plan_row(upper: float | None, lower: float | None, runs: int, warmup: int, left: float) -> tuple[int, int] | None:
    """(runs, warmup) for a row whose one generation should take between ``lower`` and ``upper``
    seconds (None: unknown), fewer for long ones, one cold run when only ``lower`` fits in the
    ``left`` seconds of the phase; None (skip the row) when not even that fits."""
    if left <= 0:
        return None
    if upper is None:
        return runs, warmup
    if upper > 10.0:
        runs, warmup = 1, 0
    elif upper > 2.0:
        runs, warmup = 1, min(warmup, 1)
    if upper * (runs + warmup) <= left:
        return runs, warmup
    return (1, 0) if (upper if lower is None else lower) <= left else None


def predict(seen: list[tuple[int, float]], batch: int) -> tuple[float | None, float | None]:
    """(upper, lower) guesses of one generation's latency at ``batch`` from the (batch, latency)
    points measured so far: proportional to the batch from the last point (GPUs scale no worse), and
    the straight line through the last two (no less than the last latency)."""
    if not seen:
        return None, None
    (b1, l1) = seen[-1]
    upper = l1 * batch / b1
    if len(seen) < 2:
        return upper, None
    (b0, l0) = seen[-2]
    return upper, max(l1, l1 + (l1 - l0) / (b1 - b0) * (batch - b1))


def bench_size(size: str, out_dir: Path, batches: list[int], duration: float, steps: list[int], runs: int,
               warmup: int, budget: float, device: str) -> dict:
    """Exact MAGNeT, fast MAGNeT and the same-size MusicGen at every batch size, batch-major; the
    result (the ``bench generate --compare`` JSON format) is rewritten after every row."""
    from .bench import (BenchRow, _device_name, bench_model, compare_ratios, format_table, plot, random_magnet,
                        random_musicgen)

    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    torch.manual_seed(0)
    try:  # initialise the random weights on the device itself (seconds for 1.5B parameters on a CPU)
        with dev:
            magnet, ar = random_magnet(size, dev, duration), random_musicgen(size, dev, duration)
    except Exception as exc:  # noqa: BLE001 - then the usual way: built on the CPU, moved
        print(f"note: building on {dev} failed ({type(exc).__name__}: {exc}); building on the CPU", file=sys.stderr)
        magnet, ar = random_magnet(size, dev, duration), random_musicgen(size, dev, duration)
    magnet.duration = duration
    ar.set_generation_params(duration=duration)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    sched = ",".join(map(str, steps))
    label, ar_label = f"MAGNeT random-{size}", f"MusicGen random-{size}"

    def magnet_mode(fast: bool):
        def generate(prompts):
            magnet.set_generation_params(decoding_steps=steps, fast=fast)
            return magnet.generate(prompts)
        return generate

    entries = [(label, f"{sched} exact", magnet_mode(False), magnet.sample_rate),
               (label, f"{sched} fast", magnet_mode(True), magnet.sample_rate),
               (ar_label, "-", ar.generate, ar.sample_rate)]
    magnet.set_generation_params(decoding_steps=steps, fast=True)
    fast_params = asdict(magnet.generation_params.fast)
    result = {"benchmark": "generate", "phase": f"bench_{size}", "complete": False, "device": str(dev),
              "device_name": _device_name(dev), "torch": torch.__version__, "duration": duration, "batches": batches,
              "precision": ("float32 weights, torch.autocast float16 (fast mode: float16 weights)"
                            if dev.type == "cuda" else "float32 (fast mode: int8 on CPU)"),
              "build_s": round(time.perf_counter() - start, 2), "budget_s": budget,
              "magnet": {"label": label, "parameters": sum(p.numel() for p in magnet.lm.parameters()),
                         "schedules": [steps], "random_weights": True},
              "ar_model": {"status": "ok", "label": ar_label, "parameters": sum(p.numel() for p in ar.lm.parameters()),
                           "random_weights": True},
              "latency": "median seconds from generate() to the decoded waveform of the whole batch",
              "throughput": "batch x clip seconds / latency (audio seconds per second)",
              "rows": [], "row_plan": []}
    rows: list[BenchRow] = []
    seen: dict[str, list[tuple[int, float]]] = {}
    json_path = out_dir / "bench_generate.json"
    for b in batches:
        for model_label, schedule, generate, sample_rate in entries:
            key = f"{model_label} {schedule}"
            upper, lower = predict(seen.get(key, []), b)
            left = budget - (time.perf_counter() - start)
            plan = plan_row(upper, lower, runs, warmup, left)
            if plan is None:
                row = BenchRow(model_label, schedule, b, status="skipped",
                               reason=f"phase budget: one run predicted {lower or upper or 0:.1f} s, {left:.1f} s left")
                print(f"{key} batch {b}: SKIPPED ({row.reason})", file=sys.stderr)
            else:
                try:  # bench_model reports out-of-memory and RuntimeErrors; anything else must not end the phase
                    (row,) = bench_model(model_label, schedule, generate, sample_rate, [b], plan[0], plan[1], dev)
                except Exception as exc:  # noqa: BLE001
                    row = BenchRow(model_label, schedule, b, status="error", reason=f"{type(exc).__name__}: {exc}")
                    print(f"{key} batch {b}: ERROR ({row.reason})", file=sys.stderr)
                if row.status == "ok":
                    seen.setdefault(key, []).append((b, row.latency_s))
            rows.append(row)
            result["row_plan"].append({"row": key, "batch": b, "runs": plan and plan[0], "warmup": plan and plan[1],
                                       "predicted_s": [upper, lower]})
            result["rows"] = [r.__dict__ for r in rows]
            result["compare"] = {"schedule": steps, "fast_options": fast_params,
                                 "ratios": compare_ratios(rows, [sched], batches)}
            result["elapsed_s"] = round(time.perf_counter() - start, 2)
            _dump(json_path, result)
    result["complete"] = True
    result["table"] = format_table(rows)
    try:
        plot(rows, out_dir / "bench_generate.png", f"{label} vs {ar_label} ({_device_name(dev)}, {duration:g} s)")
        result["plot"] = "bench_generate.png"
    except ImportError as exc:
        result["plot"] = f"skipped: matplotlib is not installed ({exc})"
    except Exception as exc:  # noqa: BLE001 - the numbers matter more than the picture
        result["plot"] = f"failed: {type(exc).__name__}: {exc}"
    _dump(json_path, result)
    print(result["table"])
    return result


# --------------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------------

def _fmt(value: float | None, spec: str = ".3f", suffix: str = "") -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:{spec}}{suffix}"


def summarize(benches: dict[str, dict]) -> tuple[str, dict]:
    """The per-size table (latency, throughput, peak memory, ratios) and the paper's claims checked."""
    header = ("size", "batch", "exact s", "fast s", "AR s", "exact vs AR", "fast vs AR", "fast vs exact",
              "exact aud-s/s", "fast aud-s/s", "AR aud-s/s", "peak GiB e/f/AR")
    lines, claims = [header], {}
    for size, data in benches.items():
        rows = data.get("rows") or []

        def pick(b, schedule):
            found = [r for r in rows if r["batch"] == b and r["schedule"] == schedule and r["status"] == "ok"]
            return found[0] if found else None

        for ratio in (data.get("compare") or {}).get("ratios", []):
            b = ratio["batch"]
            e, f, a = (pick(b, s) for s in (f"{ratio['schedule']} exact", f"{ratio['schedule']} fast", "-"))
            mem = "/".join(_fmt(r and r["peak_memory_bytes"] and r["peak_memory_bytes"] / 2**30, ".2f")
                           for r in (e, f, a))
            lines.append((size, str(b), _fmt(ratio["exact_latency_s"]), _fmt(ratio["fast_latency_s"]),
                          _fmt(ratio["ar_latency_s"]), _fmt(ratio["exact_speedup_vs_ar"], ".2f", "x"),
                          _fmt(ratio["fast_speedup_vs_ar"], ".2f", "x"),
                          _fmt(ratio["fast_speedup_vs_exact"], ".2f", "x"),
                          *(_fmt(r and r["throughput"], ".3g") for r in (e, f, a)), mem))
            if b == 1:
                exact, fast = ratio["exact_speedup_vs_ar"], ratio["fast_speedup_vs_exact"]
                claims[size] = {"exact_speedup_vs_ar_batch1": exact, "paper_speedup": PAPER_SPEEDUP,
                                "meets_paper": None if exact is None else exact >= PAPER_SPEEDUP,
                                "fast_faster_than_exact": None if fast is None else fast > 1.0}
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    table = ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines]
    table.insert(1, "  ".join("-" * w for w in widths))
    for size, c in claims.items():
        verdict = {True: "meets", False: "BELOW", None: "not measured:"}[c["meets_paper"]]
        table.append(f"MAGNeT-{size} exact vs same-size AR at batch 1: "
                     f"{_fmt(c['exact_speedup_vs_ar_batch1'], '.2f', 'x')} faster ({verdict} the paper's "
                     f"~{PAPER_SPEEDUP:g}x on an A100); fast mode faster than exact: "
                     f"{ {True: 'yes', False: 'NO', None: '-'}[c['fast_faster_than_exact']] }")
    return "\n".join(table), claims


def figure(benches: dict[str, dict], path: Path, title: str) -> str:
    """Latency vs batch and throughput vs batch (log-log), one line per size and model."""
    try:
        import matplotlib
    except ImportError:
        return "skipped: matplotlib is not installed (the JSON has every number)"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    styles = ["-", "--", ":", "-."]
    colors = {"exact": "tab:blue", "fast": "tab:green", "-": "tab:red"}
    drawn = 0
    for k, (size, data) in enumerate(benches.items()):
        series: dict[tuple[str, str], list[dict]] = {}
        for r in data.get("rows") or []:
            if r["status"] == "ok":
                series.setdefault((r["model"], r["schedule"]), []).append(r)
        for (model, schedule), pts in series.items():
            pts.sort(key=lambda r: r["batch"])
            mode = schedule.split()[-1]
            name = f"{model} {mode}" if mode != "-" else model
            for ax, key in zip(axes, ("latency_s", "throughput")):
                ax.plot([p["batch"] for p in pts], [p[key] for p in pts], styles[k % len(styles)], marker="o",
                        color=colors.get(mode, "tab:gray"), label=name)
            drawn += 1
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    batches = sorted({r["batch"] for data in benches.values() for r in data.get("rows") or []})
    for ax, ylabel in zip(axes, ("latency: seconds to the full clips (log)", "throughput: audio s per s (log)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(batches)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    if drawn:
        axes[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m magnet_audio.evaluation.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toy", action="store_true", default=os.environ.get("MAGNET_GPU_CHECK_TOY") == "1",
                        help="CPU smoke run at a tiny size (also MAGNET_GPU_CHECK_TOY=1)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out",
                        help="output folder (default $OUT, else ./gpu_check_out)")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the CUDA-marked tests")
    parser.add_argument("--sizes", default=None, help="comma-separated model sizes (default small,medium)")
    parser.add_argument("--total", type=float, default=None, help="seconds for the whole check (default 465)")
    parser.add_argument("--bench-size", default=None, help=argparse.SUPPRESS)  # the child process of one size
    parser.add_argument("--budget", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    plan = PLANS["toy" if args.toy else "gpu"]
    out = Path(args.out).resolve()  # the phases run from the repository root
    out.mkdir(parents=True, exist_ok=True)
    if args.bench_size:
        bench_size(args.bench_size, out, plan["batches"], plan["duration"], plan["steps"], plan["runs"], plan["warmup"],
                   args.budget or plan["budgets"].get(args.bench_size, 120), plan["device"])
        return 0
    if plan["device"] == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device here; run scripts/gpu_check.sh --toy (or MAGNET_GPU_CHECK_TOY=1) for the CPU "
              "smoke run", file=sys.stderr)
        return 2
    sizes = [s.strip() for s in args.sizes.split(",")] if args.sizes else plan["sizes"]
    from ..benchmarking import RANDOM_SIZES
    bad = [s for s in sizes if s not in RANDOM_SIZES]
    if bad or not sizes:
        print(f"error: --sizes must name sizes among {', '.join(RANDOM_SIZES)}, got {args.sizes!r}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    total = args.total or plan["total"]
    left = lambda: total - RESERVE_S - (time.perf_counter() - start)  # noqa: E731
    report = {"check": "gpu", "mode": "toy" if args.toy else "gpu", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
              time.gmtime()), "total_budget_s": total, "plan": {**plan, "sizes": sizes}, "environment": environment(),
              "phases": {}, "complete": False}
    summary_path = out / "gpu_check.json"
    _dump(summary_path, report)
    print(f"gpu_check ({report['mode']}): torch {torch.__version__}, device "
          f"{report['environment']['device_name'] or 'cpu'}, budget {total:.0f} s, output {out}", flush=True)

    if args.skip_tests:
        report["phases"]["tests"] = {"status": "not run", "reason": "--skip-tests"}
    else:
        print("== phase tests: pytest -m cuda", flush=True)
        report["phases"]["tests"] = tests_phase(out, min(plan["budgets"]["tests"], left()))
        if report["phases"]["tests"]["status"] == "unavailable":
            print(f"note: {report['phases']['tests']['reason']}", flush=True)
    _dump(summary_path, report)

    benches: dict[str, dict] = {}
    for i, size in enumerate(sizes):
        # the last size gets all the time left; an earlier one its own budget, less what the later need
        later = sum(plan["budgets"].get(s, 120) for s in sizes[i + 1:])
        budget = min(plan["budgets"].get(size, 120), left() - later) if later else left()
        name = f"bench_{size}"
        if budget < STARTUP_S + 5:
            report["phases"][name] = {"status": "skipped", "reason": f"{max(budget, 0):.0f} s left of the total budget"}
            continue
        print(f"== phase {name}: exact, fast, AR at batch {plan['batches']} ({budget:.0f} s)", flush=True)
        # The child plans its rows to fit the budget less its start-up (imports, CUDA context); the
        # hard timeout, never past the total, catches a hang or a row that ran far over its prediction.
        cmd = [sys.executable, "-m", "magnet_audio.evaluation.gpu_check", "--bench-size", size,
               "--out", str(out / name), "--budget", f"{budget - STARTUP_S:.1f}"] + (["--toy"] if args.toy else [])
        (out / name).mkdir(parents=True, exist_ok=True)
        json_path = out / name / "bench_generate.json"
        json_path.unlink(missing_ok=True)  # never read a previous run's rows
        hard = min(budget + GRACE_S, total - 3 - (time.perf_counter() - start))
        phase = run_phase(cmd, hard, out / name / "log.txt")
        if json_path.is_file():
            benches[size] = json.loads(json_path.read_text(encoding="utf-8"))
            phase["complete"] = benches[size].get("complete", False)
            phase["rows_ok"] = sum(r["status"] == "ok" for r in benches[size]["rows"])
            phase["rows"] = len(benches[size]["rows"])
        report["phases"][name] = phase
        report["bench"] = benches
        _dump(summary_path, report)

    table, claims = summarize(benches)
    report["claims"], report["table"] = claims, table
    device_name = report["environment"]["device_name"] or "CPU"
    try:
        report["plot"] = figure(benches, out / "gpu_check.png", f"MAGNeT vs same-size AR MusicGen, "
                                f"{plan['duration']:g} s clips ({device_name}, random weights)")
    except Exception as exc:  # noqa: BLE001 - the numbers matter more than the picture
        report["plot"] = f"failed: {type(exc).__name__}: {exc}"
    report["complete"] = True
    report["elapsed_s"] = round(time.perf_counter() - start, 1)
    _dump(summary_path, report)
    print("\n== summary (latency in s; 'x' = times faster; aud-s/s = audio seconds per second)")
    print(table)
    for name, phase in report["phases"].items():
        extra = phase.get("counts") or phase.get("reason") or (f"{phase.get('rows_ok')}/{phase.get('rows')} rows"
                                                               if "rows" in phase else "")
        print(f"phase {name}: {phase['status']} {extra}")
    print(f"plot: {report['plot']}\nwrote {summary_path} in {report['elapsed_s']} s")
    tests = report["phases"]["tests"]["status"]  # on CPU (toy) the CUDA tests skip: that is their pass
    failed = tests in (("failed", "timeout") if args.toy else ("failed", "timeout", "skipped", "unavailable")) or any(
        p["status"] != "ok" or not p.get("complete") for n, p in report["phases"].items() if n.startswith("bench_"))
    failed = failed or any(r["status"] == "error" for data in benches.values() for r in data["rows"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
