"""Sharded training (distributed.strategy fsdp, FSDP2) and sharded checkpoints (DCP), on CPU with
2 gloo processes: same losses as one process on the same global batch, resume on another world
size, export of a sharded checkpoint; (slow) SIGKILL mid-run and resume under torchrun."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
import yaml
from torch import nn

from magnet_audio import MAGNeT
from magnet_audio.conditioning import ConditionerConfig
from magnet_audio.lm import MagnetLM, MagnetLMConfig
from magnet_audio.training.config import TrainConfig, from_dict
from magnet_audio.training.dcp import MARKER
from magnet_audio.training.export import export
from magnet_audio.training.loop import Trainer, open_run
from magnet_audio.distributed import DistInfo, init_distributed
from magnet_audio.training.runtime import list_checkpoints, load_checkpoint

from helpers import kill_torchrun

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "audiocraft-tiny"
CODEC = FIXTURES / "compression_state_dict.bin"  # 4 codebooks of 64 at 50 Hz
GLOBAL_BATCH = 4
# float32 sums reduced in another order (2 ranks' partial gradients, sharded norms) differ in the last
# bits; a few AdamW updates keep that at ~1e-6 relative
RTOL, ATOL = 1e-4, 1e-6


def _lm() -> MagnetLM:
    torch.manual_seed(0)
    return MagnetLM(MagnetLMConfig(dim=32, num_heads=2, num_layers=2, n_q=4, card=64, segment_duration=1.0,
                                   frame_rate=50, subcodes_context=3, cfg_dropout=0.0,
                                   conditioner=ConditionerConfig(model="lut", n_bins=64, text_dim=16,
                                                                 word_dropout=0.0)))


class FixedMaskObjective(nn.Module):
    """MAGNeT's masked cross-entropy with a fixed mask (every third frame of every codebook) and no
    dropout: a function of the batch alone, so a global batch split over ranks gives the same
    gradient as the whole batch in one process (every sample has the same number of masked tokens)."""

    model_key = "lm"
    progress_metric = "ce"

    def __init__(self, lm: MagnetLM):
        super().__init__()
        self.lm = lm

    @property
    def model(self) -> MagnetLM:
        return self.lm

    def forward(self, codes, texts, generator=None, rng=None):
        B, K, T = codes.shape
        mask = (torch.arange(T) % 3 == 0).expand(B, K, T)
        logits = self.lm(codes.masked_fill(mask, self.lm.mask_id), self.lm.encode_text(list(texts)), stage=0)
        ce = F.cross_entropy(logits[mask], codes[mask])
        return ce, {"ce": ce.detach(), "count": torch.tensor(float(mask.sum()))}


class GlobalBatches:
    """position -> this rank's slice of global batch ``position`` (random codes seeded by position)."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world = rank, world

    def __call__(self, position: int):
        g = torch.Generator().manual_seed(1000 + position)
        codes = torch.randint(0, 64, (GLOBAL_BATCH, 4, 50), generator=g)
        texts = [f"piano chord {i + position % 3}" for i in range(GLOBAL_BATCH)]
        per = GLOBAL_BATCH // self.world
        part = slice(self.rank * per, (self.rank + 1) * per)
        return codes[part], texts[part]


def _cfg(run_dir: Path, steps: int, strategy: str) -> TrainConfig:
    """fsdp with activation checkpointing: recomputing the (dropout-free) layers changes nothing."""
    return from_dict(TrainConfig, {
        "run_dir": str(run_dir), "device": "cpu", "precision": "fp32", "data": {"train": "unused"},
        "optim": {"steps": steps, "warmup": 0, "lr": 3e-3, "grad_accum": 2, "max_norm": 0.2, "schedule": "constant"},
        "ema": {"every": 1, "decay": 0.9}, "valid": {"every": 2}, "samples": {"every": 0},
        "checkpoint": {"every": 2, "keep_last": 5}, "log": {"every": 1, "progress": False},
        "distributed": {"strategy": strategy, "backend": "gloo", "activation_checkpointing": strategy == "fsdp"}})


def _train(info: DistInfo, run_dir: Path, steps: int, strategy: str, resume=False) -> None:
    cfg = _cfg(run_dir, steps, strategy)
    lm = _lm()
    meta = {"kind": "magnet", "lm_config": lm.cfg.to_dict(), "codec": str(CODEC)}
    valid = [GlobalBatches(info.rank, info.world_size)(10_000)]
    trainer = Trainer(cfg, FixedMaskObjective(lm), info, GlobalBatches(info.rank, info.world_size), valid, meta)
    trainer.run(open_run(cfg, resume, info))


def _worker(rank: int, world: int, port: int, run_dir: str, steps: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = init_distributed("cpu", "gloo", 5.0)
    try:
        _train(info, Path(run_dir), steps, "fsdp")
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(run_dir: Path, split: str) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["split"] == split]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """4 updates of 2 micro-batches each: 2 FSDP processes, and 1 process on the same global batches."""
    root = tmp_path_factory.mktemp("fsdp")
    # spawn, not fork: forking a process whose OpenMP pool has run can hang the children
    mp.spawn(_worker, args=(2, _free_port(), str(root / "fsdp"), 4), nprocs=2, join=True)
    _train(DistInfo(), root / "single", 4, "ddp")
    return root


def test_fsdp_matches_one_process_on_the_same_global_batch(runs):
    sharded, single = _rows(runs / "fsdp", "train"), _rows(runs / "single", "train")
    assert [r["step"] for r in sharded] == [r["step"] for r in single] == [1, 2, 3, 4]
    for a, b in zip(sharded, single):
        assert a["ce"] == pytest.approx(b["ce"], rel=RTOL)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=RTOL)  # the norm of the whole gradient
    assert sharded[0]["grad_norm"] > 0.2  # max_norm 0.2: clipping was active
    for a, b in zip(_rows(runs / "fsdp", "valid"), _rows(runs / "single", "valid")):  # with the EMA weights
        assert a["step"] == b["step"] and a["ce"] == pytest.approx(b["ce"], rel=RTOL)

    found = list_checkpoints(runs / "fsdp")
    assert [step for step, _ in found] == [2, 4] and all(path.suffix == ".dcp" for _, path in found)
    assert sorted(p.name for p in found[-1][1].glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]  # 1 per rank
    a, b = load_checkpoint(found[-1][1]), load_checkpoint(list_checkpoints(runs / "single")[-1][1])
    assert a["world_size"] == 2 and len(a["rng"]) == 2 and a["step"] == b["step"] == 4
    for key, value in b["objective"].items():
        torch.testing.assert_close(a["objective"][key], value, rtol=RTOL, atol=ATOL)
    for key, value in b["ema"]["state"].items():
        torch.testing.assert_close(a["ema"]["state"][key], value, rtol=RTOL, atol=ATOL)
    assert a["ema"]["count"] == b["ema"]["count"]
    names = [k for k in b["objective"]]  # the single-file optimizer is keyed by position, the sharded by name
    for i, state in b["optimizer"]["state"].items():
        torch.testing.assert_close(a["optimizer"]["state"][names[i]]["exp_avg"], state["exp_avg"], rtol=RTOL,
                                   atol=ATOL)


def test_uncommitted_checkpoint_is_ignored(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs / "fsdp", run)
    last = list_checkpoints(run)[-1][1]
    (last / MARKER).unlink()  # as if rank 0 died before committing
    assert [step for step, _ in list_checkpoints(run)] == [2]


def test_two_process_checkpoint_resumes_in_one_process(runs, tmp_path):
    """Resharding: the 2-process checkpoint at step 2, continued by 1 process to step 4, ends where
    the 1-process run does."""
    run = tmp_path / "resumed"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copytree(runs / "fsdp" / "checkpoints" / "checkpoint_00000002.dcp",
                    run / "checkpoints" / "checkpoint_00000002.dcp")
    _train(DistInfo(), run, 4, "fsdp", resume=True)
    found = list_checkpoints(run)
    assert [step for step, _ in found] == [2, 4]
    a, b = load_checkpoint(found[-1][1]), load_checkpoint(list_checkpoints(runs / "single")[-1][1])
    assert a["world_size"] == 1
    for key, value in b["objective"].items():
        torch.testing.assert_close(a["objective"][key], value, rtol=RTOL, atol=ATOL)
    for key, value in b["ema"]["state"].items():
        torch.testing.assert_close(a["ema"]["state"][key], value, rtol=RTOL, atol=ATOL)


def test_export_of_a_sharded_checkpoint_loads_with_get_pretrained(runs, tmp_path):
    notes = []
    out = export(runs / "fsdp", tmp_path / "model", notice=notes.append)
    model = MAGNeT.get_pretrained(str(out), device="cpu")
    ema = load_checkpoint(list_checkpoints(runs / "fsdp")[-1][1])["ema"]["state"]
    state = model.lm.state_dict()
    assert ema and set(ema) <= set(state)
    for key, value in ema.items():  # the exported weights are the EMA's
        assert torch.equal(state[key], value), key


# ----------------------------------------------------------------------------------- torchrun, SIGKILL


def _write_audio(root: Path, n: int = 6) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        t = np.arange(int(1.2 * 32000)) / 32000
        wav = 0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(root / f"{i:02d}.wav", wav.astype(np.float32), 32000)
        (root / f"{i:02d}.json").write_text(json.dumps({"description": f"tone {i}"}))
    return root


ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
def test_sigkill_then_resume_under_torchrun_is_bit_for_bit(tmp_path):
    """Two FSDP processes (hybrid objective) killed with SIGKILL after a checkpoint, then resumed,
    end with the same weights, EMA and optimizer state as a run that never stopped."""
    from magnet_audio.training.tokens import tokenize

    tokenize(_write_audio(tmp_path / "audio"), str(CODEC), tmp_path / "tokens", device="cpu", progress=False)
    values = {"run_dir": "unused", "device": "cpu", "data": {"train": str(tmp_path / "tokens"), "segment_duration": 1.0,
                                                             "batch_size": 2, "valid_fraction": 0.2},
              "model": {"dim": 32, "num_heads": 2, "num_layers": 2, "hybrid": True,
                        "conditioner": {"model": "lut", "n_bins": 64, "text_dim": 16, "word_dropout": 0.1}},
              "optim": {"steps": 24, "warmup": 2, "lr": 3e-3, "grad_accum": 2}, "ema": {"every": 1, "decay": 0.9},
              "valid": {"every": 12, "batches": 1}, "samples": {"every": 0},
              "checkpoint": {"every": 4, "keep_last": 2}, "log": {"every": 4, "progress": False},
              "distributed": {"strategy": "fsdp"}}
    config = tmp_path / "fsdp.yaml"
    config.write_text(yaml.safe_dump(values))

    def torchrun(run_dir: Path, resume: bool = False) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "magnet_audio.train", str(config), f"run_dir={run_dir}"] + (["--resume"] if resume else [])
        return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

    killed_dir = tmp_path / "killed"
    killed = torchrun(killed_dir)
    try:
        deadline = time.time() + 240
        while not list_checkpoints(killed_dir) and killed.poll() is None and time.time() < deadline:
            time.sleep(0.05)
    finally:
        kill_torchrun(killed)  # torchrun and both ranks (each in a session of its own)
    on_disk = list_checkpoints(killed_dir)
    assert on_disk and on_disk[-1][0] < 24, killed.stdout.read()
    resumed = torchrun(killed_dir, resume=True)
    out = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, out
    straight = torchrun(tmp_path / "straight")
    out = straight.communicate(timeout=600)[0]
    assert straight.returncode == 0, out

    a = load_checkpoint(list_checkpoints(tmp_path / "straight")[-1][1])
    b = load_checkpoint(list_checkpoints(killed_dir)[-1][1])
    assert a["step"] == b["step"] == 24
    for key in a["objective"]:
        assert torch.equal(a["objective"][key], b["objective"][key]), key
    for key in a["ema"]["state"]:
        assert torch.equal(a["ema"]["state"][key], b["ema"]["state"][key]), key
    for name, state in a["optimizer"]["state"].items():
        assert all(torch.equal(state[k], b["optimizer"]["state"][name][k]) for k in state), name
    assert not list((killed_dir / "checkpoints").glob(".*tmp*"))


def test_tensorboard_logs_scalars_and_samples(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from magnet_audio.audio import audio_write

    def write_samples(step: int, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        t = torch.arange(16000) / 16000
        audio_write(out / "00_tone", (0.3 * torch.sin(2 * torch.pi * 440 * t))[None], 16000)

    cfg = _cfg(tmp_path / "run", 2, "ddp")
    cfg.log.tensorboard, cfg.samples.every = True, 2
    lm = _lm()
    trainer = Trainer(cfg, FixedMaskObjective(lm), DistInfo(), GlobalBatches(0, 1), [GlobalBatches(0, 1)(10_000)],
                      {"kind": "magnet"}, write_samples)
    trainer.run(open_run(cfg, False, DistInfo()))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"audio": 0, "images": 0}).Reload()
    tags = events.Tags()
    assert {"train/ce", "train/lr", "train/grad_norm", "train/tokens_per_s", "valid/ce"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("train/ce")] == [1, 2]
    assert [e.value for e in events.Scalars("train/ce")] == pytest.approx([r["ce"] for r in _rows(tmp_path / "run",
                                                                                                   "train")])
    assert tags["audio"] == ["samples/00_tone"] and tags["images"] == ["spectrogram/00_tone"]


@pytest.mark.slow
def test_codec_trains_sharded_under_torchrun(tmp_path):
    """The codec with its discriminator under FSDP: sharded checkpoints, and the export at the end."""
    data = tmp_path / "audio"
    data.mkdir()
    t = np.arange(16000) / 32000
    for i in range(6):
        sf.write(data / f"{i}.wav", (0.3 * np.sin(2 * np.pi * (200 + 30 * i) * t)).astype(np.float32), 32000)
    run = tmp_path / "codec"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "magnet_audio.training.codec_train", "configs/codec_tiny.yaml", f"data.train={data}", f"run_dir={run}",
           "losses.adversarial=true", "losses.discriminator.filters=4", "losses.discriminator.n_ffts=[256,128]",
           "losses.discriminator.hop_lengths=[64,32]", "losses.discriminator.win_lengths=[256,128]",
           "model.n_filters=4", "model.dimension=16", "data.segment_duration=0.25", "data.batch_size=4",
           "model.threshold_ema_dead_code=1", "log.progress=false", "device=cpu", "optim.steps=4",
           "checkpoint.every=2", "valid.every=2", "log.every=2", "distributed.strategy=fsdp"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = list_checkpoints(run)
    assert [step for step, _ in found] == [2, 4] and all(path.suffix == ".dcp" for _, path in found)
    ckpt = load_checkpoint(found[-1][1])
    assert ckpt["world_size"] == 2 and ckpt["meta"]["kind"] == "codec"
    assert (run / "export" / "compression_state_dict.bin").is_file()


def test_activation_checkpointing_recomputes_each_layer_in_backward():
    from magnet_audio.training.sharding import blocks, shard

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    try:
        calls = []
        for checkpointing in (False, True):
            objective = FixedMaskObjective(_lm())
            shard(objective, torch.device("cpu"), None, activation_checkpointing=checkpointing)
            count = [0]
            blocks(objective)[0].self_attn.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
            loss, _ = objective(*GlobalBatches(0, 1)(0))
            loss.backward()
            calls.append(count[0])
        assert calls == [1, 2]  # once in forward, and once more in backward when checkpointed
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_bench_train_fsdp_halves_the_training_state_per_rank():
    from magnet_audio.training.bench import format_result, run_train_bench

    options = dict(size="tiny", batch=1, duration=0.5, steps=1, warmup=0, device="cpu", precision="fp32", nproc=2)
    ddp, fsdp = (run_train_bench(**options, strategy=s) for s in ("ddp", "fsdp"))
    assert ddp["nproc"] == fsdp["nproc"] == 2 and len(fsdp["peak_memory_per_rank"]) == 2
    # float32 weights, gradients and 2 AdamW moments (plus AdamW's 4-byte step count per tensor: the tolerance)
    assert ddp["state_bytes_per_rank"][0] == pytest.approx(16 * ddp["params"], rel=1e-4)
    # each rank holds its shard of every tensor: together, one copy
    assert sum(fsdp["state_bytes_per_rank"]) == pytest.approx(16 * ddp["params"], rel=1e-4)
    assert max(fsdp["state_bytes_per_rank"]) < 0.6 * ddp["state_bytes_per_rank"][0]
    assert "fsdp x 2 processes" in format_result(fsdp) and fsdp["tokens_per_s"] > 0
