"""Fast inference: exact mode gives the tokens of the plain full-recompute decoding, the fast-mode
machinery (row cache, CFG skip, int8, half) does what it says, and ``bench generate --compare``."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from magnet_audio import MAGNeT
from magnet_audio.decoding import FastOptions
from magnet_audio.decoding import magnet as decoding
from magnet_audio.decoding.guidance import CachedGuidance, GuidedLogits
from magnet_audio.decoding.schedules import guidance_coef, mask_rates
from magnet_audio.errors import InputError
from magnet_audio.lm import MagnetLM
from magnet_audio.lm.transformer import RowKVCache
from helpers import tiny_magnet_lm


@pytest.fixture(scope="module")
def model(fixture_dir):
    return MAGNeT.get_pretrained(str(fixture_dir), device="cpu", t5_path=fixture_dir / "t5")


class FullRecompute:
    """The decoding step computed the plain way: a full forward of every head at every step, the
    text memory projected again in every layer (no caching of any kind)."""

    def __init__(self, lm, memory, batch, fast, tempo=None, null_tempo=None):
        self.lm, self.memory, self.batch, self.tempo, self.null_tempo = lm, memory, batch, tempo, null_tempo

    def __call__(self, codes, stage, step, coef):
        if self.memory is None:
            return GuidedLogits(self.lm(codes, None, stage, tempo=self.tempo)[:, stage])
        tempo = None if self.tempo is None else torch.cat([self.tempo, self.null_tempo])
        cond, uncond = self.lm(torch.cat([codes, codes]), self.memory, stage, tempo=tempo)[:, stage].split(self.batch)
        return GuidedLogits(uncond + (cond - uncond) * coef)


def _generate(model, seed=0, **params):
    """Codes [2, 4, 48] of two prompts with these ``set_generation_params``, through ``MAGNeT.generate``
    (which decodes with the int8 / half copy of the LM that the params ask for)."""
    model.set_generation_params(**params)
    try:
        torch.manual_seed(seed)
        _, codes = model.generate(["lofi beat", "calm piano"], return_tokens=True)
        return codes
    finally:
        model.set_generation_params()


@pytest.mark.parametrize("params", [
    {"use_sampling": False, "decoding_steps": [4, 2, 2, 2]},
    {"decoding_steps": [4, 2, 2, 2]},  # top-p sampling, seeded
    {"top_k": 5, "top_p": 0.0, "decoding_steps": [3, 2, 2, 1], "span_arrangement": "stride1"},
])
def test_exact_mode_equals_full_recompute(model, monkeypatch, params):
    exact = _generate(model, **params)
    monkeypatch.setattr(decoding, "make_guidance", FullRecompute)
    plain = _generate(model, **params)
    assert torch.equal(exact, plain)


def test_cached_guidance_at_exact_settings_equals_exact(model, monkeypatch):
    """The approximations' machinery (:class:`CachedGuidance`) with every option at its exact value
    computes the exact guided logits."""
    exact = _generate(model, decoding_steps=[4, 2, 2, 2])
    monkeypatch.setattr(decoding, "make_guidance", CachedGuidance)
    assert torch.equal(_generate(model, decoding_steps=[4, 2, 2, 2]), exact)


def test_fast_mode_refreshing_every_step_equals_exact(model):
    exact = _generate(model, decoding_steps=[4, 2, 2, 2])
    fast = _generate(model, decoding_steps=[4, 2, 2, 2], fast=True, kv_cache_refresh=1, cfg_skip_threshold=0.0,
                     cfg_null_refresh=1, int8=False)
    assert torch.equal(exact, fast)


def test_fast_preset_and_overrides(model):
    model.set_generation_params(fast=True)
    p = model.generation_params.fast
    assert (p.kv_cache_refresh, p.cfg_skip_threshold, p.int8, p.half, p.compile) == (5, 0.1, True, False, False)
    assert p.cfg_null_refresh == 5
    model.set_generation_params(fast=True, int8=False, kv_cache_refresh=2)
    assert (model.generation_params.fast.int8, model.generation_params.fast.kv_cache_refresh) == (False, 2)
    with pytest.raises(InputError):
        model.set_generation_params(int8=True, half=True)
    model.set_generation_params()
    p = model.generation_params.fast
    assert (p.kv_cache_refresh, p.cfg_skip_threshold, p.int8, p.half, p.compile) == (1, 0.0, False, False, False)
    assert p.cfg_null_refresh == 1
    with pytest.raises(InputError, match="cfg_null_refresh"):
        model.set_generation_params(cfg_null_refresh=0)


def _tiny_lm(num_layers: int, positional_embedding: str = "sin") -> MagnetLM:
    return tiny_magnet_lm(num_layers=num_layers, segment_duration=0.6, subcodes_context=2, text_dim=32,
                          positional_embedding=positional_embedding)


@pytest.mark.parametrize("positions", ["sin", "rope"])
@pytest.mark.parametrize("stage", [0, 2])  # full attention, restricted context
def test_partial_pass_is_exact_when_only_the_recomputed_rows_changed(stage, positions):
    """With one layer, a position's keys/values depend on its own input only: recomputing just the
    changed positions over the cached others must give the full pass's hidden states there (with
    rotary embeddings too: the recomputed rows are rotated by their own positions)."""
    lm = _tiny_lm(num_layers=1, positional_embedding=positions)
    gen = torch.Generator().manual_seed(1)
    before = torch.randint(0, 17, (2, 4, 30), generator=gen)
    rows = torch.tensor([[1, 5, 7, 20, 29], [0, 5, 9, 13, 28]])
    after = before.clone()
    after[:, stage].scatter_(1, rows, torch.randint(0, 17, rows.shape, generator=gen))
    with torch.no_grad():
        cross_kv = lm.transformer.cross_kv(lm.encode_text(["a", "b"]))
        cache = RowKVCache(num_layers=1)
        lm.hidden(before, stage, cross_kv=cross_kv, cache=cache)
        cache.rows = rows
        partial = lm.hidden(after, stage, cross_kv=cross_kv, cache=cache)
        full = lm.hidden(after, stage, cross_kv=cross_kv)
    assert partial.shape == (2, 5, 32)
    torch.testing.assert_close(partial, full.gather(1, rows.unsqueeze(-1).expand(-1, -1, 32)), atol=1e-5, rtol=0)


def _count_rows(model, monkeypatch) -> list[int]:
    """The list that receives the batch size (rows) of every transformer pass of ``model.lm``."""
    batches = []
    hidden = model.lm.hidden

    def spy(codes, *args, **kwargs):
        batches.append(codes.shape[0])
        return hidden(codes, *args, **kwargs)

    monkeypatch.setattr(model.lm, "hidden", spy)
    return batches


def test_cfg_skip_only_where_the_coefficient_is_near_one(model, monkeypatch):
    batches = _count_rows(model, monkeypatch)
    steps = [4, 3, 2, 2]
    coefs = [guidance_coef(rate, 10.0, 1.0) for n in steps for rate in mask_rates(n)]
    for threshold in (0.0, 0.5, 3.0):
        batches.clear()
        _generate(model, decoding_steps=steps, cfg_skip_threshold=threshold)
        assert batches == [2 if threshold and abs(c - 1) <= threshold else 4 for c in coefs]
    assert 2 in batches and 4 in batches
    batches.clear()  # with the row cache: the stale null rows force a full pass when CFG resumes
    codes = _generate(model, decoding_steps=steps, kv_cache_refresh=3, cfg_skip_threshold=3.0)
    assert codes.shape == (2, 4, 48) and (codes < 64).all()


class CachedNullRecompute(FullRecompute):
    """cfg_null_refresh done the plain way: full forwards; the null-condition logits of every position
    computed at the first step of a stage and every ``n`` steps, reused as they are in between."""

    n = 3

    def __call__(self, codes, stage, step, coef):
        cond, uncond = self.lm(torch.cat([codes, codes]), self.memory, stage)[:, stage].split(self.batch)
        if step % self.n == 0:
            self.uncond = uncond
        return GuidedLogits(self.uncond + (cond - self.uncond) * coef)


def test_cached_null_pass_equals_plain_reuse_of_the_null_logits(model, monkeypatch):
    params = {"decoding_steps": [7, 4, 3, 2], "cfg_null_refresh": 3}  # top-p sampling, seeded
    cached = _generate(model, **params)
    exact = _generate(model, decoding_steps=[7, 4, 3, 2])
    assert not torch.equal(cached, exact)  # the stale null logits do change the decoding
    monkeypatch.setattr(decoding, "make_guidance", CachedNullRecompute)
    assert torch.equal(cached, _generate(model, **params))


def test_null_pass_runs_every_n_steps_of_each_stage(model, monkeypatch):
    batches = _count_rows(model, monkeypatch)
    steps = [7, 4, 3, 2]
    _generate(model, decoding_steps=steps, cfg_null_refresh=3, kv_cache_refresh=3)
    assert batches == [4 if step % 3 == 0 else 2 for n in steps for step in range(n)]


def test_cached_null_logits_under_the_row_cache():
    """With the row cache, a step between null passes computes the conditional logits of the rows it
    recomputes only and guides them with the null logits the last null pass computed at those rows."""
    lm = _tiny_lm(num_layers=2)
    B, T, card = 2, 30, lm.cfg.card
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        memory = lm.encode_text(["a", "b", None, None])
        null_kv = [(k[B:], v[B:]) for k, v in lm.transformer.cross_kv(memory)]
        codes = torch.full((B, 4, T), lm.mask_id)
        guided = CachedGuidance(lm, memory, B, FastOptions(kv_cache_refresh=4, cfg_null_refresh=4))
        # the same row cache without any null pass: its logits are the conditional ones
        plain = CachedGuidance(lm, memory, B, FastOptions(kv_cache_refresh=4, cfg_skip_threshold=100.0))
        uncond = lm.linears[0](lm.hidden(codes, 0, cross_kv=null_kv))  # [B, T, card] at the null pass
        guided(codes, 0, 0, 4.0)
        plain(codes, 0, 0, 1.0)
        for step, unmask in ((1, slice(0, T, 3)), (2, slice(1, T, 6))):
            codes[:, 0, unmask] = torch.randint(0, card, codes[:, 0, unmask].shape, generator=gen)
            got = guided(codes, 0, step, 3.0)
            cond = plain(codes, 0, step, 1.0)
            rows = got.positions
            if rows is None:  # step 1: every position is masked or has just changed
                assert cond.positions is None
                stale = uncond
            else:
                assert torch.equal(rows, cond.positions) and rows.shape == (B, 20)  # 15 masked + 5 changed
                stale = uncond.gather(1, rows.unsqueeze(-1).expand(-1, -1, card))
                filled = got.full_length(torch.full_like(rows, -1), codes[:, 0])  # [B, T]: -1 exactly at rows
                assert torch.equal(filled == -1, torch.zeros(B, T, dtype=torch.bool).scatter(1, rows, True))
            torch.testing.assert_close(got.logits, stale + (cond.logits - stale) * 3.0, atol=1e-5, rtol=1e-5)
    assert rows is not None


def test_approximate_cache_decodes_valid_tokens_and_agrees_mostly(model):
    exact = _generate(model, use_sampling=False, decoding_steps=[6, 3, 3, 3])
    fast = _generate(model, use_sampling=False, decoding_steps=[6, 3, 3, 3], kv_cache_refresh=3)
    assert fast.shape == exact.shape and (fast < 64).all()
    assert (fast == exact).float().mean() > 0.5


def test_int8_runs_and_agrees_mostly_with_float32(model, reference):
    exact = _generate(model, use_sampling=False, decoding_steps=[4, 2, 2, 2])
    weights = {k: v.clone() for k, v in model.lm.state_dict().items()}
    int8 = _generate(model, use_sampling=False, decoding_steps=[4, 2, 2, 2], int8=True)
    assert int8.shape == exact.shape and (int8 < 64).all()
    model.set_generation_params(int8=True)
    variant = model.decoding_lm
    with torch.no_grad():  # per forward: measured 3-14% relative error, 87-93% same argmax (dim 64)
        memory = model.lm.encode_text(reference["texts"])
        for stage in range(4):
            seq, _ = reference["stage_logits"][stage]
            want, got = model.lm(seq, memory, stage), variant(seq, memory, stage)
            assert (got - want).norm() / want.norm() < 0.25
            assert (got.argmax(-1) == want.argmax(-1)).float().mean() > 0.8
    model.set_generation_params(int8=True, decoding_steps=[2, 1, 1, 1])
    assert model.decoding_lm is variant  # made once
    model.set_generation_params()
    assert model.decoding_lm is model.lm
    assert any("quantized" in type(m).__module__ for m in variant.modules())
    assert all(torch.equal(v, weights[k]) for k, v in model.lm.state_dict().items())  # the original is untouched
    assert torch.equal(_generate(model, use_sampling=False, decoding_steps=[4, 2, 2, 2]), exact)


def test_half_precision_runs_on_cpu(model):
    codes = _generate(model, use_sampling=False, decoding_steps=[2, 1, 1, 1], half=True)
    assert codes.shape == (2, 4, 48) and (codes < 64).all()
    assert next(model.lm.parameters()).dtype == torch.float32


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("cc") and not shutil.which("gcc"), reason="torch.compile (inductor) needs a C compiler")
def test_compile_gives_the_exact_tokens(model):
    """compile=True (torch.compile of the feed-forward blocks) computes the same function: greedy
    decoding of the fixture gives exact mode's tokens (the first call compiles, ~20 s on 2 cores)."""
    exact = _generate(model, use_sampling=False, decoding_steps=[4, 2, 2, 2])
    compiled = _generate(model, use_sampling=False, decoding_steps=[4, 2, 2, 2], compile=True)
    assert torch.equal(compiled, exact)


@pytest.mark.slow
def test_bench_compare_writes_ratios(tmp_path):
    pytest.importorskip("matplotlib")
    from magnet_audio.evaluation.bench import run_generate_bench

    result = run_generate_bench(random_size="tiny", compare=True, duration=0.2, steps=[[2, 1, 1, 1]], batches=[1],
                                runs=1, warmup=0, device="cpu", out_dir=tmp_path, progress=False)
    data = json.loads((tmp_path / "bench_generate.json").read_text())
    assert [r["schedule"] for r in data["rows"]] == ["2,1,1,1 exact", "2,1,1,1 fast", "-"]
    assert data["ar_model"]["status"] == "ok"
    compare = data["compare"]
    assert compare["fast_options"]["kv_cache_refresh"] == 5 and compare["fast_options"]["int8"] is True
    assert compare["fast_options"]["cfg_null_refresh"] == 5
    (ratios,) = compare["ratios"]
    for key in ("fast_speedup_vs_exact", "exact_speedup_vs_ar", "fast_speedup_vs_ar"):
        assert ratios[key] > 0
    assert ratios["fast_speedup_vs_exact"] == pytest.approx(ratios["exact_latency_s"] / ratios["fast_latency_s"])
    assert len(result["table"].splitlines()) == 5  # header, rule, three rows


@pytest.mark.slow
def test_bench_compare_further_schedules_run_fast(tmp_path):
    pytest.importorskip("matplotlib")
    from magnet_audio.evaluation.bench import format_ratios, run_generate_bench

    run_generate_bench(random_size="tiny", compare=True, duration=0.2, steps=[[2, 2, 2, 2], [2, 1, 1, 1]],
                       batches=[1], runs=1, warmup=0, device="cpu", out_dir=tmp_path, progress=False)
    data = json.loads((tmp_path / "bench_generate.json").read_text())
    assert [r["schedule"] for r in data["rows"]] == ["2,2,2,2 exact", "2,2,2,2 fast", "2,1,1,1 fast", "-"]
    first, second = data["compare"]["ratios"]
    assert (first["schedule"], second["schedule"]) == ("2,2,2,2", "2,1,1,1")
    # every fast schedule is measured against exact mode on the first schedule and against the AR model
    assert second["exact_latency_s"] == first["exact_latency_s"] and second["ar_latency_s"] == first["ar_latency_s"]
    assert second["fast_speedup_vs_exact"] == pytest.approx(second["exact_latency_s"] / second["fast_latency_s"])
    assert second["fast_speedup_vs_ar"] == pytest.approx(second["ar_latency_s"] / second["fast_latency_s"])
    text = format_ratios(data["compare"]["ratios"])
    assert "fast with steps 2,1,1,1" in text and text.count("\n") == 1


def test_generate_cli_fast_flags():
    from magnet_audio.cli import build_parser

    args = build_parser().parse_args(["generate", "x", "--fast", "--kv-cache-refresh", "3", "--no-int8",
                                      "--cfg-null-refresh", "2"])
    assert (args.fast, args.kv_cache_refresh, args.int8, args.half, args.cfg_skip_threshold) == (True, 3, False, None,
                                                                                                 None)
    assert args.cfg_null_refresh == 2
    args = build_parser().parse_args(["generate", "x"])
    assert not args.fast and args.int8 is None and args.compile is None


def test_exact_mode_tokens_equal_audiocraft_on_same_weights(tmp_path):
    """scripts/bench_vs_audiocraft.py on audiocraft 1.3.0 as scripts/setup.py --test installs it."""
    import importlib.util
    import subprocess
    import sys

    scripts = Path(__file__).resolve().parents[2] / "scripts"
    spec = importlib.util.spec_from_file_location("audiocraft_compat", scripts / "audiocraft_compat.py")
    compat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compat)
    if compat.missing_reason():
        pytest.skip(compat.missing_reason())
    out = tmp_path / "vs.json"
    run = subprocess.run([sys.executable, str(scripts / "bench_vs_audiocraft.py"),
                          "--acpkgs", str(compat.install_dir()),
                          "--dim", "64", "--heads", "2", "--layers", "2", "--duration", "1.2", "--steps", "6,3,3,3",
                          "--batch", "2", "--json", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    assert result["tokens_identical"] and result["frames"] == 60
