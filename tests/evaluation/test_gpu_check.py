"""scripts/gpu_check.sh (the one-shot GPU check of issue 27), run end to end at its CPU toy size,
and its budgeting, degradation and summary pieces."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from magnet_audio.evaluation import gpu_check

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_toy_check_end_to_end(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--toy", "--out", str(out)],
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHON": sys.executable, "MAGNET_GPU_CHECK_STAND_INS": "soundfile,soxr"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["mode"] == "toy" and report["complete"] and report["plan"]["sizes"] == ["tiny"]
    assert report["environment"]["torch"] == torch.__version__
    # soundfile and soxr replaced as on a machine without them: the check does not need them
    assert report["environment"]["stand_ins"] == ["soundfile", "soxr"] and "stand-ins for soundfile,soxr" in proc.stderr
    tests = report["phases"]["tests"]
    assert tests["counts"]["failed"] == tests["counts"]["error"] == 0 and len(tests["tests"]) >= 7
    if torch.cuda.is_available():  # the toy check on a GPU machine runs the CUDA tests for real
        assert tests["status"] == "ok" and tests["counts"]["passed"] >= 1
    else:  # every CUDA test collected, and skipped
        assert tests["status"] == "skipped" and {t["outcome"] for t in tests["tests"]} == {"skipped"}
    assert report["phases"]["bench_tiny"]["status"] == "ok" and report["phases"]["bench_tiny"]["rows_ok"] == 6
    bench = json.loads((out / "bench_tiny" / "bench_generate.json").read_text())
    assert bench["complete"] and bench == report["bench"]["tiny"]
    rows = bench["rows"]
    assert [(r["batch"], r["schedule"]) for r in rows] == [
        (b, s) for b in (1, 2) for s in ("2,1,1,1 exact", "2,1,1,1 fast", "-")]  # batch-major
    for r in rows:
        assert r["status"] == "ok" and r["latency_s"] > 0 and r["peak_memory_bytes"] > 0
        assert r["throughput"] == pytest.approx(r["batch"] * r["audio_seconds"] / r["latency_s"])
        assert r["audio_seconds"] == pytest.approx(0.2, abs=0.05)
    ratio = next(x for x in bench["compare"]["ratios"] if x["batch"] == 1)
    assert ratio["exact_speedup_vs_ar"] == pytest.approx(ratio["ar_latency_s"] / ratio["exact_latency_s"])
    claim = report["claims"]["tiny"]
    assert claim["exact_speedup_vs_ar_batch1"] == ratio["exact_speedup_vs_ar"] and claim["paper_speedup"] == 7.0
    assert "MAGNeT-tiny exact vs same-size AR at batch 1" in proc.stdout and "paper" in proc.stdout
    if report["environment"]["matplotlib"]:
        assert report["plot"] == "gpu_check.png"
        for png in (out / "gpu_check.png", out / "bench_tiny" / "bench_generate.png"):
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert report["plot"].startswith("skipped")


@pytest.mark.parametrize("upper, lower, left, want", [
    (None, None, 100.0, (3, 1)),   # unknown: the plan's runs
    (None, None, 0.0, None),       # no time left at all
    (0.5, None, 100.0, (3, 1)),
    (5.0, None, 100.0, (1, 1)),    # long: one run after a warm-up
    (20.0, None, 100.0, (1, 0)),   # very long: one cold run
    (5.0, None, 7.0, (1, 0)),      # the warm-up does not fit
    (8.0, None, 7.0, None),        # not even one run fits: skipped
    (30.0, 6.0, 7.0, (1, 0)),      # only the optimistic guess fits: one cold run
    (30.0, 9.0, 7.0, None),
])
def test_plan_row_fits_the_budget(upper, lower, left, want):
    assert gpu_check.plan_row(upper, lower, 3, 1, left) == want


def test_predict_latency_from_smaller_batches():
    assert gpu_check.predict([], 4) == (None, None)
    assert gpu_check.predict([(1, 2.0)], 4) == (8.0, None)
    upper, lower = gpu_check.predict([(1, 2.0), (4, 2.6)], 16)
    assert upper == pytest.approx(10.4) and lower == pytest.approx(5.0)  # 2.6 + 0.2 * 12
    assert gpu_check.predict([(4, 3.0), (16, 2.5)], 64)[1] == 2.5  # never below the last latency


def test_partial_test_results_from_the_verbose_log():
    log = ("tests/test_cuda.py::test_a PASSED                  [ 14%]\n"
           "tests/test_cuda.py::test_b[fp16] FAILED            [ 28%]\n"
           "tests/test_cuda.py::test_c SKIPPED (needs a CUDA device) [ 42%]\n"
           "tests/test_cuda.py::test_d ")  # killed while running
    assert [(t["name"], t["outcome"]) for t in gpu_check.log_results(log)] == [
        ("test_a", "passed"), ("test_b[fp16]", "failed"), ("test_c", "skipped")]


def test_phase_past_its_timeout_is_killed(tmp_path):
    result = gpu_check.run_phase([sys.executable, "-c", "print('started', flush=True); import time; time.sleep(60)"],
                                 timeout=3, log=tmp_path / "log.txt")
    assert result["status"] == "timeout" and result["seconds"] < 30 and "started" in result["tail"]


def test_missing_pytest_and_matplotlib_degrade(tmp_path, monkeypatch):
    real = gpu_check.importlib.util.find_spec
    monkeypatch.setattr(gpu_check.importlib.util, "find_spec", lambda name: None if name == "pytest" else real(name))
    result = gpu_check.tests_phase(tmp_path, 10)
    assert result["status"] == "unavailable" and "pytest is not installed" in result["reason"]
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    assert gpu_check.figure({}, tmp_path / "x.png", "t").startswith("skipped: matplotlib")
    assert not (tmp_path / "x.png").exists()


def _row(batch, schedule, latency, model="MAGNeT random-small"):
    return {"model": model, "schedule": schedule, "batch": batch, "status": "ok", "latency_s": latency,
            "throughput": batch * 10 / latency, "peak_memory_bytes": 2**30}


def test_summary_ratios_and_claims():
    from magnet_audio.evaluation.bench import BenchRow, compare_ratios

    rows = [_row(1, "20,10,10,10 exact", 2.0), _row(1, "20,10,10,10 fast", 1.0),
            _row(1, "-", 16.0, "MusicGen random-small"), _row(4, "20,10,10,10 exact", 3.0)]
    ratios = compare_ratios([BenchRow(**r) for r in rows], ["20,10,10,10"], [1, 4])
    table, claims = gpu_check.summarize({"small": {"rows": rows, "compare": {"ratios": ratios}}})
    assert claims["small"] == {"exact_speedup_vs_ar_batch1": 8.0, "paper_speedup": 7.0, "meets_paper": True,
                               "fast_faster_than_exact": True}
    line = next(x for x in table.splitlines() if x.split()[:2] == ["small", "1"])
    assert "8.00x" in line and "16.00x" in line and "2.00x" in line
    assert next(x for x in table.splitlines() if x.split()[:2] == ["small", "4"]).split()[3:5] == ["-", "-"]
    assert "8.00x faster (meets the paper's ~7x" in table
    _, claims = gpu_check.summarize({"small": {"rows": rows[:2], "compare": {"ratios": compare_ratios(
        [BenchRow(**r) for r in rows[:2]], ["20,10,10,10"], [1])}}})
    assert claims["small"]["meets_paper"] is None  # the AR row never ran: not measured, not a pass


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_gpu_mode_without_cuda_says_so(tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path)]) == 2
    assert "--toy" in capsys.readouterr().err
