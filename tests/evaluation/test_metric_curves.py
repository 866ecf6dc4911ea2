"""scripts/metric_curves.py: musicality and validation loss of a run against training compute."""

import pytest

from helpers import load_script, write_musicality_eval as _eval_dir

pytest.importorskip("matplotlib")


def test_curves_and_table(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "valid.csv").write_text("step,ce,ce_stage0\n0,6.0,6.1\n300,5.5,5.4\n600,5.0,4.9\n")
    a = _eval_dir(tmp_path / "e300", 0.2, 12.0)
    b = _eval_dir(tmp_path / "e600", 0.5, 30.0)
    v1 = _eval_dir(tmp_path / "v1", 0.36, 19.0)
    out, md = tmp_path / "curves.png", tmp_path / "curves.md"
    module = load_script("metric_curves")
    # evals given out of order are sorted by step
    assert module.main([str(run), str(out), "--eval", f"600={b}", "--eval", f"300={a}",
                        "--baseline", f"v1={v1}@2400", "--params", "1e7", "--tokens-per-update", "16000",
                        "--table", str(md)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = md.read_text().splitlines()
    rows = [line for line in lines if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows] == ["| model", "| 300", "| 600", "| v1", "| goal"]
    # 6 * 1e7 params * 16000 tokens = 0.96 PFLOP per 1000 updates: 300 updates -> 0.3 PFLOP
    assert rows[1].split(" | ")[1:4] == ["300", "0.3", "0.20"]
    assert rows[2].split(" | ")[3] == "0.50" and "30.00" in rows[2]
    assert rows[3].split(" | ")[1:4] == ["2400", "2.3", "0.36"]
    assert "| >= 0.6 |" in rows[4] and "<= 0.35" in rows[4]
    # the unavailable metric is a dash, not a number
    assert rows[1].split(" | ")[4] == "–"


def test_points_read_the_musicality_row(tmp_path):
    point = load_script("metric_curves").read_eval(_eval_dir(tmp_path / "e", 0.4, 20.0), "x", 5)
    assert point.metrics["confident_notes"] == {"generated": 0.4, "reference": 0.84, "codec": 0.71}
    assert "note_stability" not in point.metrics


def test_bad_pairs_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        load_script("metric_curves").main([str(tmp_path), str(tmp_path / "o.png"), "--eval", "notastep", "--params", "1",
                        "--tokens-per-update", "1"])
