"""scripts/decoding_sweep.py: decoding settings placed on the musicality trade-offs, with a table."""

import pytest

from helpers import load_script, write_musicality_eval

pytest.importorskip("matplotlib")


def test_sweep_figure_and_table(tmp_path):
    cold = write_musicality_eval(tmp_path / "cold", 0.5, 9.0)
    hot = write_musicality_eval(tmp_path / "hot", 0.26, 43.0)
    out, md = tmp_path / "sweep.png", tmp_path / "sweep.md"
    assert load_script("decoding_sweep").main([str(out), f"T 1, CFG 10={cold}", f"T 3, CFG 3={hot}",
                                              "--mark", "T 1, CFG 10", "--table", str(md)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [line for line in md.read_text().splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows] == ["| decoding", "| T 1, CFG 10", "| T 3, CFG 3", "| goal"]
    # settings keep their order and values; a metric an eval lacks is a dash
    assert rows[1].split(" | ")[1] == "0.50" and "9.00" in rows[1] and "43.00" in rows[2]
    assert rows[1].split(" | ")[2] == "–"
    assert "| >= 0.6 |" in rows[3]


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, capsys):
    one = write_musicality_eval(tmp_path / "one", 0.3, 20.0)
    with pytest.raises(SystemExit):
        load_script("decoding_sweep").main([str(tmp_path / "o.png"), f"a={one}", "--mark", "b"])
    assert "--mark names no setting: b" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        load_script("decoding_sweep").main([str(tmp_path / "o.png"), f"a={one}", f"b={tmp_path / 'nothing'}"])
    assert "no results.json" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()
