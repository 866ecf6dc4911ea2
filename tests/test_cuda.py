"""The CUDA code paths (issue 27), each the GPU counterpart of a CPU test: fp16 official-format
checkpoints (tests/decoding/test_generation.py), autocast training and resume (tests/training/test_training.py),
half-precision fast mode and ``torch.compile`` (tests/decoding/test_fast_inference.py), device
auto-selection, peak-memory reporting (``magnet bench generate``).

Marked ``cuda`` and skipped without a CUDA device; ``scripts/gpu_check.sh`` runs them with
``pytest -m cuda``. Sizes are the test fixture's (dim 64, 2 layers): seconds each, the compile test
~30 s for its first call.
"""

import json
import logging
import math
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from magnet_audio import MAGNeT
from magnet_audio.decoding import magnet as decoding
from magnet_audio.lm.variants import half_dtype
from magnet_audio.utils import default_device, resolve_device

DEVICE = "cuda"
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module")
def fp16_dir(fixture_dir, tmp_path_factory):
    """The fixture checkpoint with its LM weights stored in float16, as the official ones are."""
    out = tmp_path_factory.mktemp("fp16") / "magnet-tiny-fp16"
    out.mkdir()
    pkg = torch.load(fixture_dir / "state_dict.bin", weights_only=True)
    pkg["best_state"] = {k: v.half() if v.is_floating_point() else v for k, v in pkg["best_state"].items()}
    torch.save(pkg, out / "state_dict.bin")
    shutil.copy(fixture_dir / "compression_state_dict.bin", out / "compression_state_dict.bin")
    return out


@pytest.fixture(scope="module")
def model(fp16_dir, fixture_dir):
    return MAGNeT.get_pretrained(str(fp16_dir), device=DEVICE, t5_path=fixture_dir / "t5")


def _codes(model, seed=0, **params):
    """Codes [2, 4, 48] of two prompts decoded with these options (no autocast, no audio), by the
    half-precision / compiled copy of the LM that they ask for, as ``MAGNeT.generate`` decodes."""
    model.set_generation_params(**params)
    try:
        with torch.no_grad():
            memory = model.lm.encode_text(["lofi beat", "calm piano", None, None])
        if model.generation_params.fast.half:
            memory = memory.to(half_dtype(model.device))
        torch.manual_seed(seed)
        return decoding.generate_codes(model.decoding_lm, memory, model.generation_params, 50)
    finally:
        model.set_generation_params()


def test_fp16_official_checkpoint_loads_and_generates(model, fp16_dir, reference):
    stored = torch.load(fp16_dir / "state_dict.bin", weights_only=True)["best_state"]
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    assert model.device.type == DEVICE
    assert {p.device.type for p in model.compression_model.parameters()} == {DEVICE}
    assert {p.dtype for p in model.lm.parameters()} == {torch.float32}  # fp16 weights load into float32
    # Per forward, under the float16 autocast generation runs in: close to the float32 reference.
    with torch.no_grad(), torch.autocast(DEVICE, dtype=torch.float16):
        memory = model.lm.encode_text(reference["texts"])
        for stage in range(4):
            seq, want = reference["stage_logits"][stage]
            got = model.lm(seq.to(DEVICE), memory, stage).float().cpu()
            assert got.shape == want.shape
            assert (got - want).norm() / want.norm() < 0.02, stage
            assert (got.argmax(-1) == want.argmax(-1)).float().mean() > 0.9, stage
    # The reference's greedy run (token-wise masking, as in tests/decoding/test_generation.py).
    model.lm.cfg.span_len = -1
    try:
        model.set_generation_params(**reference["greedy_params"])
        wav, codes = model.generate(reference["texts"], return_tokens=True)
    finally:
        model.lm.cfg.span_len = 3
        model.set_generation_params()
    assert codes.device.type == DEVICE and codes.shape == reference["greedy_codes"].shape
    assert ((codes >= 0) & (codes < 64)).all()
    # the fixture's near-flat logits let fp16 rounding flip some argmaxes; chance is 1/64
    assert (codes.cpu() == reference["greedy_codes"]).float().mean() > 0.5
    assert wav.shape == reference["greedy_wav"].shape and torch.isfinite(wav).all()


def test_half_precision_fast_mode(model):
    model.set_generation_params(use_sampling=False, decoding_steps=[4, 2, 2, 2], fast=True)
    params, variant = model.generation_params.fast, model.decoding_lm
    model.set_generation_params()
    assert params.half and not params.int8 and params.kv_cache_refresh == 5  # the GPU preset
    assert model.decoding_lm is model.lm
    exact = _codes(model, use_sampling=False, decoding_steps=[4, 2, 2, 2])
    fast = _codes(model, use_sampling=False, decoding_steps=[4, 2, 2, 2], fast=True)
    assert {p.dtype for p in variant.transformer.parameters()} == {torch.float16}
    assert {p.device.type for p in variant.parameters()} == {DEVICE}
    assert {p.dtype for p in model.lm.parameters()} == {torch.float32}  # the original is untouched
    assert fast.shape == exact.shape == (2, 4, 48) and ((fast >= 0) & (fast < 64)).all()
    assert (fast == exact).float().mean() > 0.3  # approximate by design; chance is 1/64
    model.set_generation_params(decoding_steps=[4, 2, 2, 2], fast=True)  # sampling, full API, audio
    try:
        wav = model.generate(["lofi beat"])
    finally:
        model.set_generation_params()
    assert wav.shape == (1, 1, 48 * 640) and torch.isfinite(wav).all()


def test_device_auto_selection_picks_cuda(fixture_dir):
    from magnet_audio.training.runtime import autocast_dtype, init_distributed

    assert default_device().type == DEVICE and resolve_device(None).type == DEVICE
    auto = MAGNeT.get_pretrained(str(fixture_dir), t5_path=fixture_dir / "t5")  # device=None
    assert auto.device.type == DEVICE
    assert {p.device.type for p in auto.compression_model.parameters()} == {DEVICE}
    assert init_distributed("auto").device.type == DEVICE
    want = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert autocast_dtype("auto", torch.device(DEVICE)) == want


def test_bench_reports_cuda_peak_memory():
    from magnet_audio.evaluation.bench import bench_model, random_magnet

    magnet = random_magnet("tiny", DEVICE, duration=0.2)
    magnet.set_generation_params(decoding_steps=[2, 1, 1, 1])
    rows = bench_model("tiny", "exact", magnet.generate, magnet.sample_rate, [1, 2], runs=1, warmup=1,
                       device=torch.device(DEVICE), progress=False)
    assert [r.status for r in rows] == ["ok", "ok"], [r.reason for r in rows]
    for r in rows:
        assert r.memory_kind == "cuda_max_memory_allocated" and r.peak_memory_bytes > 0
        assert r.latency_s > 0 and r.throughput == pytest.approx(r.batch * r.audio_seconds / r.latency_s)


def _write_audio(root, n=6, seconds=1.2, sr=32000):
    root.mkdir(parents=True)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        freqs = (220.0 * (1 + i % 3), 330.0, 440.0 + 20 * i)
        wav = sum(np.sin(2 * np.pi * f * t) for f in freqs) * 0.2 * (0.5 + 0.5 * (np.sin(4 * np.pi * t) > 0))
        sf.write(root / f"{i:02d}.wav", wav.astype(np.float32), sr)
        (root / f"{i:02d}.json").write_text(json.dumps({"description": f"chord number {i}", "bpm": 120}))
    return root


def _losses(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["ce"] for r in rows if r["split"] == "train"}


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_autocast_training_is_finite_and_resumes(precision, fixture_dir, tmp_path, caplog):
    from magnet_audio.training.config import TrainConfig, from_dict
    from magnet_audio.training.runtime import list_checkpoints, load_checkpoint
    from magnet_audio.training.trainer import train

    if getattr(sf, "STAND_IN", False):
        pytest.skip("soundfile is not installed in this Python (scripts/gpu_check.sh stand-in): training reads audio")
    if precision == "bf16" and DEVICE == "cuda" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    run_dir = tmp_path / "run"
    cfg = from_dict(TrainConfig, {
        "run_dir": str(run_dir), "seed": 0, "device": DEVICE, "precision": precision,
        "data": {"train": str(_write_audio(tmp_path / "data")), "segment_duration": 1.0, "batch_size": 4,
                 "valid_fraction": 0.2},
        "model": {"codec": str(fixture_dir / "compression_state_dict.bin"), "dim": 32, "num_heads": 2,
                  "num_layers": 2, "conditioner": {"model": "lut", "n_bins": 64, "text_dim": 16}},
        "optim": {"steps": 6, "warmup": 1, "lr": 3e-3}, "ema": {"every": 1, "decay": 0.9},
        "valid": {"every": 3, "batches": 1}, "samples": {"every": 0},
        "checkpoint": {"every": 3, "keep_last": 2}, "log": {"every": 1, "progress": False}})
    final = train(cfg)
    assert final and all(math.isfinite(v) for v in final.values()), final
    straight = _losses(run_dir)
    assert sorted(straight) == [1, 2, 3, 4, 5, 6] and all(math.isfinite(v) for v in straight.values())
    (step3, _), (step6, last) = list_checkpoints(run_dir)
    assert (step3, step6) == (3, 6)
    ckpt = load_checkpoint(last)
    assert ckpt["step"] == 6 and ckpt["objective"]
    assert all(torch.isfinite(v).all() for v in ckpt["objective"].values() if v.is_floating_point())
    if precision == "fp16":  # the GradScaler's state travels with the checkpoint
        assert math.isfinite(ckpt["scaler"]["scale"]) and ckpt["scaler"]["scale"] > 0
    else:
        assert not ckpt["scaler"]  # no scaler under bf16
    # resume from step 3: the same masks and weights again (up to GPU arithmetic), to step 6
    last.unlink()
    caplog.set_level(logging.INFO, logger="magnet_audio")
    train(cfg, resume=True)
    assert "resuming from" in caplog.text and "(step 3)" in caplog.text
    resumed = _losses(run_dir)
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    for step in (4, 5, 6):
        assert resumed[step] == pytest.approx(straight[step], rel=1e-2), step
    assert load_checkpoint(list_checkpoints(run_dir)[-1][1])["step"] == 6


@pytest.mark.skipif(not shutil.which("cc") and not shutil.which("gcc"),
                    reason="torch.compile (inductor/triton) needs a C compiler")
def test_compile_decoding_equals_eager(model):
    """Last in the file: the slowest (the first call compiles)."""
    eager = _codes(model, use_sampling=False, decoding_steps=[4, 2, 2, 2])
    compiled = _codes(model, use_sampling=False, decoding_steps=[4, 2, 2, 2], compile=True)
    assert compiled.device.type == DEVICE
    assert torch.equal(compiled, eager)
