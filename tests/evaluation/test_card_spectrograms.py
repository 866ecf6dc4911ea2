"""scripts/card_spectrograms.py: the model card's figure from an eval folder and its references."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("librosa")
pytest.importorskip("matplotlib")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "card_spectrograms.py"


def _script():
    spec = importlib.util.spec_from_file_location("card_spectrograms", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_figure_pairs_generated_and_real_clips(tmp_path):
    sr = 16000
    t = np.arange(2 * sr) / sr
    (tmp_path / "eval" / "generated").mkdir(parents=True)
    (tmp_path / "data" / "heldout").mkdir(parents=True)
    prompts = []
    for i in range(2):
        sf.write(tmp_path / "eval" / "generated" / f"{i:05d}_clip.wav", 0.1 * np.sin(2 * np.pi * 220 * t), sr)
        sf.write(tmp_path / "data" / "heldout" / f"{i}.wav", 0.1 * np.sin(2 * np.pi * 440 * t), sr)
        prompts.append({"path": f"heldout/{i}.wav", "description": f"prompt {i}"})
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("\n".join(json.dumps(p) for p in prompts))
    module = _script()
    out = tmp_path / "fig.png"
    assert module.main([str(tmp_path / "eval"), str(tmp_path / "data"), str(jsonl), str(out), "--rows", "1,0"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a 220 Hz and a 440 Hz tone: the log-mel peaks of the two sides fall in different bands
    assert module.log_mel(tmp_path / "eval" / "generated" / "00000_clip.wav").mean(1).argmax() < \
        module.log_mel(tmp_path / "data" / "heldout" / "0.wav").mean(1).argmax()
    with pytest.raises(SystemExit):
        module.main([str(tmp_path / "eval"), str(tmp_path / "data"), str(jsonl), str(out), "--rows", "5"])
