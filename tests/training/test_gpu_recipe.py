"""scripts/gpu_train_default.sh on a CPU at toy size: token cache -> training -> export -> quick
evaluation -> what may come back from the lent GPU machine -> a model directory that loads."""

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from magnet_audio import MAGNeT
from magnet_audio.codec import SpectralCodec, SpectralCodecConfig, save_our_codec
from magnet_audio.training.tokens import tokenize

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_train_default.sh"
spec = importlib.util.spec_from_file_location("gpu_train_default", REPO / "scripts" / "gpu_train_default.py")
recipe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipe)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHON": sys.executable}


def _clips(root: Path, n: int, words: list[str]) -> Path:
    root.mkdir(parents=True)
    t = np.arange(int(1.2 * 32000)) / 32000
    for i in range(n):
        wav = 0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t) * (0.5 + 0.5 * (np.sin(2 * np.pi * 2 * t) > 0))
        sf.write(root / f"{i:02d}.wav", wav.astype(np.float32), 32000)
        (root / f"{i:02d}.json").write_text(json.dumps({"description": f"{words[i % len(words)]} sine {i}"}))
    return root


def _codec(path: Path, bins: int = 64) -> Path:
    torch.manual_seed(0)
    codec = SpectralCodec(SpectralCodecConfig(sample_rate=32000, n_fft=1280, hop_length=640, hidden=16, dimension=8,
                                              encoder_dilations=[1], decoder_dilations=[1], n_q=4, bins=bins,
                                              kmeans_init=False, griffin_lim_iters=4))
    return save_our_codec(codec, path)


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_recipe")
    codec = _codec(root / "codec")
    train = tokenize(_clips(root / "train", 8, ["calm", "bright"]), str(codec), root / "cache_train",
                     device="cpu", min_duration=1.0, progress=False)
    heldout = tokenize(_clips(root / "heldout", 3, ["soft"]), str(codec), root / "cache_heldout",
                       device="cpu", min_duration=1.0, progress=False)
    assert (train.files, heldout.files) == (8, 3)
    return root, codec


@pytest.mark.slow
def test_toy_run_returns_a_model_that_assembles_and_loads(caches, tmp_path, capsys):
    root, codec = caches
    out = tmp_path / "OUT"
    proc = subprocess.run(["bash", str(SCRIPT), "--toy", str(root / "cache_train"), "--heldout",
                           str(root / "cache_heldout"), "--codec", str(codec), "--out", str(out),
                           "--work", str(tmp_path / "work")],
                          env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # what comes back from the lent machine: at most 8 files of 16 MiB, 2 folders down, plain names
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.relative_to(out).as_posix() for p in files} == {"model/config.json", "model/lm-00001.safetensors",
                                                              "report.tar.gz"}
    assert all(p.stat().st_size < 16 * 2 ** 20 and re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in files)
    with tarfile.open(out / "report.tar.gz") as tar:
        names = set(tar.getnames())
        summary = json.load(tar.extractfile("report/summary.json"))
    assert {"report/train.csv", "report/valid.csv", "report/config.yaml", "report/gpu_train.log"} <= names
    assert sum(n.startswith("report/samples/") and n.endswith(".wav") for n in names) == 2
    training = summary["training"]
    assert (training["steps_done"], training["steps_planned"], training["stopped_by_time"]) == (20, 20, False)
    assert training["valid_source"] == "held-out cache" and math.isfinite(training["final_valid"]["ce"])
    assert summary["model"] | {"params": 0} == {"dim": 64, "num_heads": 2, "num_layers": 2,
                                                "positional_embedding": "rope", "text": "lut", "params": 0}
    ev = summary["eval"]
    assert [c["prompt"] for c in ev["clips"]] == ["soft sine 0", "lofi hip hop beat with mellow piano"]
    assert all(1 <= c["distinct_tokens"] <= 50 and 0 < c["top_token_share"] <= 1 for c in ev["clips"])
    assert ev["real_heldout_clips"] == 3 and 1 <= ev["real_heldout"]["distinct_tokens"] <= 60

    # back here: a complete model directory, whose LM is exactly the returned weights
    dest = tmp_path / "assembled"
    assert recipe.main(["assemble", str(out), str(dest), "--codec", str(codec)]) == 0
    model = MAGNeT.get_pretrained(str(dest), device="cpu")
    shard = load_file(str(out / "model" / "lm-00001.safetensors"))
    state = model.lm.state_dict()
    assert all(torch.equal(state[k[3:]].half(), v) for k, v in shard.items())
    assert model.lm.cfg.positional_embedding == "rope" and model.lm.cfg.dim == 64
    model.set_generation_params(decoding_steps=[2, 1, 1, 1])
    wav, codes = model.generate(["calm sine"], return_tokens=True)
    assert codes.shape[:2] == (1, 4) and wav.shape == (1, 1, codes.shape[-1] * 640) and torch.isfinite(wav).all()

    # a codec other than the model's is refused
    other = _codec(tmp_path / "other", bins=32)
    with pytest.raises(SystemExit) as exit_info:
        recipe.main(["assemble", str(out), str(tmp_path / "bad"), "--codec", str(other)])
    assert exit_info.value.code == 2 and "is not the codec the model was trained with" in capsys.readouterr().err


def test_bad_inputs_are_one_line_errors(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path), "--toy"], env=ENV, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        f"error: cache {tmp_path} is not a token cache (no cache.json): make one with `magnet tokenize`")
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path), "--minutes", "0"], env=ENV, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "--minutes must be > 0" in proc.stderr
