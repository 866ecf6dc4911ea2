"""The MAGNeT LM: parity with the reference fixture, and with torch.nn's transformer at other sizes."""

import math

import pytest
import torch
from torch import nn

from magnet_audio.checkpoints import load_export
from magnet_audio.conditioning import ConditionerConfig
from magnet_audio.errors import CheckpointError
from magnet_audio.lm import MagnetLM, MagnetLMConfig
from magnet_audio.lm.transformer import MultiheadAttention, apply_rope, rope_rotation, sin_embedding
from magnet_audio.lm.loading import load_lm_model


@pytest.fixture(scope="module")
def fixture_lm(fixture_dir):
    return load_lm_model(fixture_dir, device="cpu", t5_path=fixture_dir / "t5")


def test_fixture_config_is_read_from_xp_cfg(fixture_lm):
    cfg = fixture_lm.cfg
    assert (cfg.dim, cfg.num_heads, cfg.num_layers, cfg.n_q, cfg.card) == (64, 4, 2, 4, 64)
    assert (cfg.subcodes_context, cfg.span_len, cfg.segment_duration, cfg.max_len) == (5, 3, 1, 50)
    assert cfg.conditioner.model == "t5" and cfg.conditioner.text_dim == 768


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_fixture_logits_match_reference(fixture_lm, reference, stage):
    seq, expected = reference["stage_logits"][stage]
    with torch.no_grad():
        logits = fixture_lm(seq, fixture_lm.encode_text(reference["texts"]), stage=stage)
    assert logits.shape == expected.shape == (2, 4, 50, 64)
    # Float32 rounding moves these logits (|x| up to ~10) by ~1e-4, in the reference run as in ours,
    # and how much depends on the CPU's summation order. Measured at stage 1: our float64 result is
    # 2.8e-4 from the reference (the reference's own rounding), our float32 result 1.4e-4 from our
    # float64 one, and 1.2e-4 (one machine) to 2.6e-4 (another) from the reference, on 0.2% of the
    # 25,600 logits; the mean error stays ~100x smaller and no prediction changes.
    err = (logits - expected).abs()
    assert err.max() < 5e-4
    assert (err > 1e-4).float().mean() < 1e-2
    assert err.mean() < 5e-6
    assert torch.equal(logits.argmax(-1), expected.argmax(-1))


def test_fp16_weights_load_into_float32(fixture_dir, tmp_path):
    state, cfg = load_export(fixture_dir / "state_dict.bin")
    import yaml
    half = {k: v.half() for k, v in state.items()}
    torch.save({"best_state": half, "xp.cfg": yaml.safe_dump(cfg), "version": "1.3.0", "exported": True},
               tmp_path / "state_dict.bin")
    lm = load_lm_model(tmp_path, device="cpu")
    assert all(p.dtype == torch.float32 for p in lm.parameters())
    assert torch.equal(lm.emb[0].weight, half["emb.0.weight"].float())


def test_sin_embedding_cosines_first():
    emb = sin_embedding(2, 4)
    # half = 2, phases t / 10000 ** (i / (half - 1)) for i = 0, 1
    expected = torch.tensor([[1.0, 1.0, 0.0, 0.0],
                             [math.cos(1.0), math.cos(1e-4), math.sin(1.0), math.sin(1e-4)]])
    torch.testing.assert_close(emb, expected)


def test_rope_is_audiocraft_complex_rotation():
    """Channels (2i, 2i+1) as one complex number, times exp(1j * t * 10000 ** (-2i / Dh))."""
    x = torch.randn(2, 3, 7, 8)  # [B, H, T, Dh]
    positions = torch.tensor([0, 1, 2, 5, 9, 30, 499])
    freqs = 10000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    turn = torch.polar(torch.ones(7, 4, dtype=torch.float64), positions[:, None].double() * freqs)
    expected = torch.view_as_real(torch.view_as_complex(x.double().reshape(2, 3, 7, 4, 2)) * turn).flatten(-2)
    torch.testing.assert_close(apply_rope(x, rope_rotation(positions, 8)), expected.float(), atol=1e-5, rtol=1e-5)
    # per-row positions [B, T] give each row its own rotation
    rows = torch.stack([positions, positions.flip(0)])
    both = apply_rope(x, rope_rotation(rows, 8))
    torch.testing.assert_close(both[0], apply_rope(x[:1], rope_rotation(positions, 8))[0])
    torch.testing.assert_close(both[1], apply_rope(x[1:], rope_rotation(positions.flip(0), 8))[0])
    with pytest.raises(ValueError, match="even head dimension"):
        rope_rotation(positions, 7)


def test_rope_attention_scores_depend_on_the_offset_only():
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m, n):
        rotated_q = apply_rope(q, rope_rotation(torch.tensor([m]), 16))
        return (rotated_q * apply_rope(k, rope_rotation(torch.tensor([n]), 16))).sum()

    torch.testing.assert_close(score(3, 10), score(103, 110))
    torch.testing.assert_close(score(40, 2), score(38, 0))
    assert not torch.isclose(score(3, 10), score(3, 11))


def test_rope_self_attention_matches_a_direct_computation():
    torch.manual_seed(0)
    attn = MultiheadAttention(16, 2).eval()
    x, positions = torch.randn(2, 9, 16), torch.arange(9)
    with torch.no_grad():
        ours = attn(x, rope=rope_rotation(positions, 8))
        q, k, v = (attn._heads(t) for t in (x @ attn.in_proj_weight.T).chunk(3, dim=-1))
        turn = torch.polar(torch.ones(9, 4), positions[:, None].float() * 10000.0 ** (-torch.arange(0, 8, 2) / 8))
        q, k = (torch.view_as_real(torch.view_as_complex(t.reshape(2, 2, 9, 4, 2)) * turn).flatten(-2) for t in (q, k))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1)
        expected = attn.out_proj((weights @ v).transpose(1, 2).reshape(2, 9, 16))
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positions", ["rope", "sin_rope"])
def test_rope_lm_uses_positions_and_sin_only_when_asked(positions):
    """Same weights, three position schemes: each changes the output; ``rope`` adds no sinusoids, so
    its input embeddings are the sin model's minus them."""
    sin_lm = _random_lm(32, 2, 2, 16, 4, ctx=5)
    lm = _random_lm(32, 2, 2, 16, 4, ctx=5, positional_embedding=positions)
    lm.load_state_dict(sin_lm.state_dict())
    codes = torch.randint(0, 17, (1, 4, 20))
    memory = lm.encode_text(["x"])
    with torch.no_grad():
        assert not torch.allclose(lm(codes, memory, stage=0), sin_lm(codes, memory, stage=0))
        rolled = codes.roll(3, dims=-1)  # no positions at all would make the output roll with the input
        assert not torch.allclose(lm(rolled, memory, stage=0), lm(codes, memory, stage=0).roll(3, dims=2), atol=1e-4)
    assert lm.cfg.sin_positions == (positions == "sin_rope") and lm.transformer.rope


def _random_lm(dim, heads, layers, card, n_q, ctx, seed=0, positional_embedding="sin"):
    torch.manual_seed(seed)
    cfg = MagnetLMConfig(dim=dim, num_heads=heads, num_layers=layers, card=card, n_q=n_q, subcodes_context=ctx,
                         segment_duration=1, conditioner=ConditionerConfig(model="lut", n_bins=50, text_dim=24),
                         positional_embedding=positional_embedding)
    lm = MagnetLM(cfg)
    with torch.no_grad():
        for p in lm.parameters():  # non-trivial norms too
            p.normal_(0, 0.3)
    return lm.eval()


def _torch_reference(lm: MagnetLM, codes, memory, stage):
    """The same network assembled from torch.nn.TransformerDecoderLayer (an independent implementation)."""
    cfg = lm.cfg
    x = sum(lm.emb[k](codes[:, k]) for k in range(cfg.n_q))
    T = codes.shape[-1]
    pos = torch.arange(T, dtype=torch.float32)[:, None]
    half = cfg.dim // 2
    phase = pos / 10000 ** (torch.arange(half, dtype=torch.float32)[None] / (half - 1))
    x = x + torch.cat([phase.cos(), phase.sin()], dim=-1)
    mask = None
    if stage > 0 and cfg.subcodes_context >= 0:
        d = (torch.arange(T)[:, None] - torch.arange(T)[None]).abs()
        mask = d > cfg.subcodes_context  # True = not allowed, torch.nn convention
    for ours in lm.transformer.layers:
        ref = nn.TransformerDecoderLayer(cfg.dim, cfg.num_heads, cfg.hidden_scale * cfg.dim, dropout=0.0,
                                         activation="gelu", batch_first=True, norm_first=True)
        with torch.no_grad():
            for p in ref.parameters():
                p.zero_()
            ref.self_attn.in_proj_weight.copy_(ours.self_attn.in_proj_weight)
            ref.self_attn.out_proj.weight.copy_(ours.self_attn.out_proj.weight)
            ref.multihead_attn.in_proj_weight.copy_(ours.cross_attention.in_proj_weight)
            ref.multihead_attn.out_proj.weight.copy_(ours.cross_attention.out_proj.weight)
            ref.linear1.weight.copy_(ours.linear1.weight)
            ref.linear2.weight.copy_(ours.linear2.weight)
            for a, b in ((ref.norm1, ours.norm1), (ref.norm2, ours.norm_cross), (ref.norm3, ours.norm2)):
                a.weight.copy_(b.weight)
                a.bias.copy_(b.bias)
        x = ref.eval()(x, memory, tgt_mask=mask)
    x = lm.out_norm(x)
    return torch.stack([lin(x) for lin in lm.linears], dim=1)


@pytest.mark.parametrize("dim,heads,layers,card,n_q,ctx", [
    (32, 2, 1, 16, 4, 5), (48, 4, 3, 100, 2, 2), (64, 8, 2, 32, 3, -1)])
def test_other_sizes_match_torch_transformer(dim, heads, layers, card, n_q, ctx):
    lm = _random_lm(dim, heads, layers, card, n_q, ctx)
    codes = torch.randint(0, card + 1, (2, n_q, 37))  # includes the mask id
    memory = lm.encode_text(["a calm piano piece", "drums"])
    for stage in range(n_q):
        with torch.no_grad():
            ours = lm(codes, memory, stage=stage)
            ref = _torch_reference(lm, codes, memory, stage)
        assert ours.shape == (2, n_q, 37, card)
        torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-5)


def test_restricted_context_only_for_stages_above_zero():
    lm = _random_lm(32, 2, 1, 16, 4, ctx=2)
    codes = torch.randint(0, 16, (1, 4, 30))
    changed = codes.clone()
    changed[0, 0, 15] = (codes[0, 0, 15] + 1) % 16
    memory = lm.encode_text(["x"])
    with torch.no_grad():
        for stage in (0, 1):
            diff = (lm.hidden(codes, stage, memory) - lm.hidden(changed, stage, memory)).abs().amax(-1)[0]
            touched = (diff > 0).nonzero().flatten().tolist()
            assert touched == (list(range(30)) if stage == 0 else list(range(13, 18)))


def test_null_condition_is_zero_memory():
    lm = _random_lm(32, 2, 1, 16, 4, ctx=5)
    memory = lm.encode_text(["some words here", "one", None, ""])
    assert memory.shape[:2] == (4, 3)
    assert memory[2].abs().max() == 0 and memory[3].abs().max() == 0
    assert memory[0].abs().amax(-1).gt(0).all()
    assert memory[1, :1].abs().max() > 0 and memory[1, 1:].abs().max() == 0  # padding is zeros


def test_xp_cfg_round_trip():
    cfg = MagnetLMConfig(dim=48, num_heads=4, num_layers=3, card=100, n_q=2, subcodes_context=2, span_len=4,
                         segment_duration=30, conditioner=ConditionerConfig(model="lut", n_bins=77, text_dim=16))
    back = MagnetLMConfig.from_xp_cfg(cfg.to_xp_cfg())
    assert back == cfg
    assert MagnetLMConfig.from_dict(cfg.to_dict()) == cfg
    rope = MagnetLMConfig(dim=48, num_heads=4, positional_embedding="rope")
    assert rope.to_xp_cfg()["transformer_lm"]["positional_embedding"] == "rope"
    assert MagnetLMConfig.from_xp_cfg(rope.to_xp_cfg()) == rope
    assert MagnetLMConfig.from_dict(rope.to_dict()) == rope
    old = cfg.to_dict()
    del old["positional_embedding"]  # configs written before the option existed
    assert MagnetLMConfig.from_dict(old).positional_embedding == "sin"
    with pytest.raises(ValueError, match="positional_embedding"):
        MagnetLMConfig(positional_embedding="alibi")


@pytest.mark.parametrize("change,message", [
    (lambda c: c.update(lm_model="transformer_lm"), "not a MAGNeT LM"),
    (lambda c: c["transformer_lm"].update(positional_embedding="alibi"), "positional_embedding"),
    (lambda c: c["transformer_lm"].update(max_period=5000), "max_period"),
    (lambda c: c["transformer_lm"].update(xpos=True), "xpos"),
    (lambda c: c["fuser"].update(prepend=["description"]), "fuser"),
    (lambda c: c.pop("dataset"), "dataset"),
])
def test_unsupported_configs_are_refused(change, message):
    cfg = MagnetLMConfig().to_xp_cfg()
    change(cfg)
    with pytest.raises(CheckpointError, match=message):
        MagnetLMConfig.from_xp_cfg(cfg)


def test_mismatched_weights_are_refused(fixture_dir, tmp_path):
    state, cfg = load_export(fixture_dir / "state_dict.bin")
    import yaml
    cfg["transformer_lm"]["num_layers"] = 3
    torch.save({"best_state": state, "xp.cfg": yaml.safe_dump(cfg)}, tmp_path / "state_dict.bin")
    with pytest.raises(CheckpointError, match="does not match"):
        load_lm_model(tmp_path, device="cpu")


def _audiocraft_rope_export(path, lm, frequencies, layer_frequencies=None):
    """An audiocraft-layout export of ``lm`` whose state dict carries audiocraft's rope buffer, once for
    the transformer and once for each layer's self-attention (the same module), as audiocraft saves it."""
    import yaml
    layer_frequencies = frequencies if layer_frequencies is None else layer_frequencies
    state = {**lm.state_dict(), "transformer.rope.frequencies": frequencies,
             **{f"transformer.layers.{i}.self_attn.rope.frequencies": layer_frequencies
                for i in range(lm.cfg.num_layers)}}
    torch.save({"best_state": state, "xp.cfg": yaml.safe_dump(lm.cfg.to_xp_cfg()), "exported": True},
               path / "state_dict.bin")


def test_audiocraft_rope_checkpoint_loads_and_its_buffer_is_checked(tmp_path):
    lm = _random_lm(32, 2, 2, 16, 4, ctx=5, positional_embedding="rope")
    head_frequencies = 10000.0 ** (-torch.arange(0, 16, 2, dtype=torch.float32) / 16)
    _audiocraft_rope_export(tmp_path, lm, head_frequencies.half())  # audiocraft's fp16 exports round it
    loaded = load_lm_model(tmp_path, device="cpu")
    assert loaded.cfg.positional_embedding == "rope"
    codes, memory = torch.randint(0, 17, (1, 4, 12)), lm.encode_text(["x"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(codes, memory, stage=0), lm(codes, memory, stage=0))
    _audiocraft_rope_export(tmp_path, lm, head_frequencies * 2)
    with pytest.raises(CheckpointError, match="non-standard rotary frequencies"):
        load_lm_model(tmp_path, device="cpu")
    _audiocraft_rope_export(tmp_path, lm, head_frequencies, layer_frequencies=head_frequencies * 2)
    with pytest.raises(CheckpointError, match=r"layers\.0\.self_attn\.rope\.frequencies holds non-standard"):
        load_lm_model(tmp_path, device="cpu")


def test_rope_state_dict_round_trips_through_audiocraft_layout():
    from magnet_audio.lm.base import from_audiocraft_state, to_audiocraft_state
    for positions in ("sin", "rope", "sin_rope"):
        lm = _random_lm(32, 2, 1, 16, 4, ctx=5, positional_embedding=positions)
        theirs = to_audiocraft_state(lm.state_dict(), lm.cfg)
        assert ("transformer.rope.frequencies" in theirs) == (positions != "sin")
        assert ("transformer.layers.0.self_attn.rope.frequencies" in theirs) == (positions != "sin")
        assert len(theirs) - len(lm.state_dict()) == (0 if positions == "sin" else 1 + lm.cfg.num_layers)
        assert from_audiocraft_state(theirs, lm.cfg).keys() == lm.state_dict().keys()
    sin_lm = _random_lm(32, 2, 1, 16, 4, ctx=5)  # a sin model given the buffer: strict loading refuses it
    with pytest.raises(RuntimeError, match="rope.frequencies"):
        sin_lm.load_state_dict(from_audiocraft_state(to_audiocraft_state(sin_lm.state_dict(), lm.cfg), sin_lm.cfg))
