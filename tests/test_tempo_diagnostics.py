"""scripts/tempo_diagnostics.py: the first-codebook token statistics and the left-to-right sampler
behind the default model card's tempo paragraphs."""

import importlib.util
from pathlib import Path

import pytest
import torch

from magnet_audio import MAGNeT
from magnet_audio.audio import audio_read

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "tempo_diagnostics.py"
CLIP = Path(__file__).resolve().parent / "fixtures" / "synth" / "heldout_clip.wav"  # a held-out render


@pytest.fixture(scope="module")
def diagnostics():
    spec = importlib.util.spec_from_file_location("tempo_diagnostics", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model() -> MAGNeT:
    return MAGNeT.get_pretrained(device="cpu")


def test_token_stats_counts_distinct_tokens_and_repeats(diagnostics):
    codes = torch.zeros(2, 4, 5, dtype=torch.long)
    codes[0, 0] = torch.tensor([1, 1, 2, 2, 2])  # 2 distinct, 3 of 4 transitions repeat
    codes[1, 0] = torch.tensor([1, 2, 3, 4, 5])  # 5 distinct, none repeat
    codes[:, 1:] = 7  # other codebooks do not count
    assert diagnostics.token_stats(codes) == "codebook 0: 3.5 distinct tokens per clip, repeat rate 0.375"


def test_left_to_right_keeps_the_prompt_and_samples_each_span_from_the_past(diagnostics, model):
    sr, lm = model.sample_rate, model.lm
    wav, _ = audio_read(CLIP, sample_rate=sr, channels=1)
    prompt = model.encode_prompt(wav[None], sr)[..., :9]  # [1, 4, 9]
    texts = ["upbeat funk with slap bass and drums, 120 bpm"]
    torch.manual_seed(0)
    codes = diagnostics.sample_left_to_right(model, prompt, texts, 15, temperature=1e-4)
    assert codes.shape == (1, 4, 15) and torch.equal(codes[..., :9], prompt)
    assert int(codes.min()) >= 0 and int(codes.max()) < lm.cfg.card  # no mask ids left
    # near-zero temperature: each span is the guided argmax given the frames before it, later ones masked
    memory = lm.encode_text(texts + [None])
    for start in (9, 12):
        visible = codes.clone()
        visible[:, 0, start:] = lm.mask_id
        visible[:, 1:, 9:] = lm.mask_id  # as MAGNeT decoding of codebook 0 sees them: the prompt whole
        with torch.no_grad():
            cond, uncond = lm(torch.cat([visible, visible]), memory, stage=0)[:, 0, start:start + 3].split(1)
        assert torch.equal(codes[0, 0, start:start + 3], (uncond + (cond - uncond) * 3.0).argmax(-1)[0])
    # codebooks 1-3 after the prompt are random words, not decoded
    torch.manual_seed(1)
    again = diagnostics.sample_left_to_right(model, prompt, texts, 15, temperature=1e-4)
    assert torch.equal(again[:, 0], codes[:, 0]) and not torch.equal(again[:, 1:, 9:], codes[:, 1:, 9:])
