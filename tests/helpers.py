"""What tests import (``from helpers import tiny_magnet_lm``): tiny models and checkpoint writers.
tests/ is on ``sys.path`` (pyproject's ``pythonpath``). Fixtures live in conftest.py; no test imports
conftest.py or another test module."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import torch
import yaml


def _lut(text_dim: int, word_dropout: float):
    from magnet_audio.conditioning import ConditionerConfig

    return ConditionerConfig(model="lut", n_bins=64, text_dim=text_dim, word_dropout=word_dropout)


def tiny_magnet_lm(seed: int = 0, *, train: bool = False, text_dim: int = 16, word_dropout: float = 0.0,
                   **config):
    """A random MAGNeT LM small enough for any test: 2 layers of width 32, 4 codebooks of 16 codes,
    1 s, a lookup-table text conditioner. ``config`` overrides :class:`MagnetLMConfig` fields.
    Weights drawn after ``torch.manual_seed(seed)``; in eval mode unless ``train``."""
    from magnet_audio.lm import MagnetLM, MagnetLMConfig

    torch.manual_seed(seed)
    fields = dict(dim=32, num_heads=2, num_layers=2, n_q=4, card=16, segment_duration=1.0, subcodes_context=3)
    lm = MagnetLM(MagnetLMConfig(**{**fields, **config}, conditioner=_lut(text_dim, word_dropout)))
    return lm.train() if train else lm.eval()


def tiny_musicgen_lm(seed: int = 0, *, delays=(0, 1, 2, 3), **config):
    """The autoregressive counterpart of :func:`tiny_magnet_lm` (one codebook per delay), in eval mode."""
    from magnet_audio.lm.musicgen import MusicGenLM, MusicGenLMConfig

    torch.manual_seed(seed)
    fields = dict(dim=32, num_heads=2, num_layers=2, card=16, n_q=len(delays), delays=list(delays),
                  segment_duration=1.0)
    return MusicGenLM(MusicGenLMConfig(**{**fields, **config}, conditioner=_lut(16, 0.0))).eval()


def fixture_sized_musicgen_lm(segment=2.0, seed=0):
    """A MusicGen LM of the fixture MAGNeT's sizes (dim 64, 4 heads, 2 layers, card 64, a t5-base
    conditioner), in eval mode."""
    from magnet_audio.conditioning import ConditionerConfig
    from magnet_audio.lm.musicgen import MusicGenLM, MusicGenLMConfig

    torch.manual_seed(seed)
    cfg = MusicGenLMConfig(dim=64, num_heads=4, num_layers=2, card=64, segment_duration=segment,
                           conditioner=ConditionerConfig(model="t5", name="t5-base", text_dim=768))
    return MusicGenLM(cfg).eval()


def write_export(lm, directory, codec_file):
    """A checkpoint directory of ``lm`` (MAGNeT or MusicGen) as audiocraft exports it (fp16
    best_state, YAML xp.cfg) next to a copy of ``codec_file``; returns ``directory``."""
    directory.mkdir(parents=True)
    torch.save({"best_state": {k: v.half() for k, v in lm.state_dict().items()},
                "xp.cfg": yaml.safe_dump(lm.cfg.to_xp_cfg()), "version": "1.3.0", "exported": True},
               directory / "state_dict.bin")
    shutil.copy(codec_file, directory / "compression_state_dict.bin")
    return directory


def kill_torchrun(proc) -> None:
    """SIGKILL a ``torchrun`` started with ``start_new_session=True`` and its worker processes, and
    wait until they are gone. torch elastic starts every worker in a session of its own, so killing
    torchrun's process group alone leaves the ranks running (orphans that keep training, writing and
    pruning checkpoints under a resumed run's feet)."""
    import os
    import signal
    import time
    from pathlib import Path

    def children(pid: int) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # field 4: the parent's pid
                    found.append(int(entry.name))
        return found

    workers = children(proc.pid)  # before torchrun dies: then they are reparented
    for pid in workers:  # each leads its own session and process group
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.time() + 60
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str):
    """scripts/NAME.py as a module (scripts are not a package; their dataclasses need sys.modules)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))  # a script may import its neighbours
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_musicality_eval(path: Path, confident: float, distinct: float) -> Path:
    """A ``magnet eval --metrics musicality`` folder (results.json) with these generated values of
    confident_notes and distinct_tokens, the real/codec columns, an adherence pulse_clarity row before
    musicality's, and an unavailable note_stability."""
    path.mkdir(parents=True)
    rows = [
        {"metric": "pulse_clarity", "status": "ok", "details": {"generated": 0.9, "reference": 0.6}},
        {"metric": "confident_notes", "status": "ok",
         "details": {"generated": {"value": confident, "n": 24}, "reference": {"value": 0.84, "n": 24},
                     "codec": {"value": 0.71, "n": 24}, "unit": ""}},
        {"metric": "distinct_tokens", "status": "ok", "details": {"generated": distinct, "codec": 38.0}},
        {"metric": "note_stability", "status": "unavailable", "details": None},
    ]
    (path / "results.json").write_text(json.dumps({"results": rows}))
    return path
