"""scripts/editing_figures.py: the README's before / after figures, with a stand-in model (fast)."""

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch

pytest.importorskip("matplotlib")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "editing_figures.py"
PNG = b"\x89PNG\r\n\x1a\n"


def _script():
    spec = importlib.util.spec_from_file_location("editing_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclasses.dataclass
class _Info:
    used: list
    prepended_s: float = 0.0


class _Model:
    """What the script uses of MAGNeT: tones instead of music, and a record of the calls."""

    sample_rate = 8000

    def __init__(self):
        self.calls = []

    def _tone(self, seconds: float, hz: float) -> torch.Tensor:
        t = torch.arange(int(seconds * self.sample_rate)) / self.sample_rate
        return (0.3 * torch.sin(2 * torch.pi * hz * t))[None, None]

    def generate(self, descriptions):
        self.calls.append(("generate", descriptions))
        return self._tone(10.0, 440)

    def generate_continuation(self, prompt, sample_rate, descriptions):
        self.calls.append(("continue", prompt.shape[-1] / sample_rate))
        return torch.cat([prompt, self._tone(10.0 - prompt.shape[-1] / sample_rate, 880)], -1)

    def generate_inpainting(self, audio, sample_rate, descriptions, regions):
        self.calls.append(("inpaint", regions))
        end = max(e for _, e in regions)
        out = torch.cat([audio, self._tone(max(0.0, end - audio.shape[-1] / sample_rate), 220)], -1)
        self.last_edit = _Info([[(s - 0.02, e) for s, e in regions]])
        return out

    def generate_variations(self, audio, sample_rate, descriptions, strength):
        self.calls.append(("vary", strength))
        return audio * 0.5


def test_figures_are_written_for_each_edit(tmp_path):
    module = _script()
    model = _Model()
    paths = module.make_figures(model, tmp_path, seed=1)
    assert [p.name for p in paths] == ["editing-continue.png", "editing-inpaint.png", "editing-vary.png",
                                       "editing-outpaint.png"]
    assert all(p.read_bytes()[:8] == PNG and p.stat().st_size > 10_000 for p in paths)
    assert [c[0] for c in model.calls] == ["generate", "continue", "inpaint", "vary", "inpaint"]
    assert model.calls[1][1] == module.PROMPT_SECONDS
    assert model.calls[2][1] == module.INPAINT and model.calls[4][1] == module.OUTPAINT
    assert model.calls[3][1] == module.STRENGTH
