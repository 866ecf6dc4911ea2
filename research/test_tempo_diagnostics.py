"""research/tempo_diagnostics.py: the first-codebook token statistics, the left-to-right sampler and
the beat-grid statistics behind the default model card's tempo paragraphs."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from magnet_audio import MAGNeT
from magnet_audio.audio import audio_read

SCRIPT = Path(__file__).resolve().parent / "tempo_diagnostics.py"
CLIP = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "synth" / "heldout_clip.wav"  # a held-out render


@pytest.fixture(scope="module")
def diagnostics():
    spec = importlib.util.spec_from_file_location("tempo_diagnostics", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model() -> MAGNeT:
    return MAGNeT.get_pretrained("magnet-audio/synth-music", device="cpu")


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


def test_mutual_information_of_count_tables(diagnostics):
    assert diagnostics.mutual_information(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-12)  # independent
    assert diagnostics.mutual_information(np.eye(2) * 5) == pytest.approx(math.log(2))  # one determines the other


def test_rhythm_stats_of_tokens_that_change_on_the_beat_only(diagnostics):
    slots = diagnostics.beat_slots(200, 120.0, 50.0)
    assert slots[:13].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2] and slots[25] == 4  # a beat every 25 frames
    row = np.zeros(200, dtype=np.int64)
    for t in range(1, 200):
        row[t] = (row[t - 1] + 1) % 8 if slots[t] % 4 == 0 else row[t - 1]  # a new token in every beat slot frame
    codes = torch.from_numpy(np.stack([row, row]))[:, None].expand(2, 4, 200)
    stats = diagnostics.rhythm_stats(codes, [120.0, 120.0], 50.0, card=8)
    assert (stats["beats"], stats["eighths"], stats["sixteenths"]) == (1.0, 0.0, 0.0)
    p = float(np.mean(slots[25:] % 4 == 0))  # share of frames in a beat slot: then the change is known
    assert stats["mi_change"] == pytest.approx(-p * math.log(p) - (1 - p) * math.log(1 - p))
    assert 0 < stats["mi_token"] <= math.log(8)
    shifted = diagnostics.rhythm_stats(codes, [100.0, 100.0], 50.0, card=8)  # the wrong tempo: weaker
    assert shifted["mi_change"] < stats["mi_change"] / 2


def test_rhythm_check_leaves_out_renders_without_a_bpm(diagnostics, model, capsys):
    codes = torch.randint(0, model.lm.cfg.card, (3, 4, 100))
    diagnostics.rhythm_check(model, [{"bpm": 120}, {"bpm": None}, {}], codes)
    assert "skipped, 1 of 3 renders have a bpm" in capsys.readouterr().out
    diagnostics.rhythm_check(model, [{"bpm": 120}, {"bpm": None}, {"bpm": 90.5}], codes)
    assert capsys.readouterr().out.startswith("rhythm: 2 renders")
