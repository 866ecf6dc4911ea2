"""Interoperability checked against audiocraft 1.3.0 itself, run in this process.

audiocraft is installed without its dependencies into ``.venv/audiocraft-1.3.0`` by
``scripts/setup.py --test`` (or found through ``$MAGNET_AUDIOCRAFT_DIR``); the stand-ins it needs here
come from ``scripts/audiocraft_compat.py``, shared with ``scripts/bench_vs_audiocraft.py``. Tests that
run audiocraft are skipped, saying why, when it is absent; the others check our side of the same
contract without it.

- ``magnet export`` of a tiny trained MAGNeT loads in audiocraft's own ``MAGNeT.get_pretrained`` and
  generates (greedy) the same tokens and audio as ours: with a T5 conditioner (the fixture's stand-in
  for t5-base, as both implementations load it) and with ``lut`` + rotary positions.
- audiocraft-built rotary MAGNeT checkpoints (``rope``, ``sin_rope``) load here: equal text
  conditioning, stage logits and greedy tokens.
- audiocraft cannot build a MAGNeT whose ``dataset.segment_duration`` is a float, nor a ``sentence``
  conditioner: our exports write whole seconds as ints and leave audiocraft's files out otherwise.
"""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from magnet_audio import MAGNeT
from magnet_audio.cli import main as cli_main
from magnet_audio.conditioning import ConditionerConfig
from magnet_audio.conditioning.lut import word_ids
from magnet_audio.decoding.magnet import GenerationParams, generate_codes
from magnet_audio.lm import MagnetLMConfig
from magnet_audio.lm.base import rope_buffer_keys
from magnet_audio.lm.loading import load_lm_model
from magnet_audio.lm.musicgen import MusicGenLMConfig
from magnet_audio.training.config import TrainConfig, from_dict
from magnet_audio.training.tokens import CacheMeta, CacheWriter
from magnet_audio.training.trainer import train

_spec = importlib.util.spec_from_file_location(
    "audiocraft_compat", Path(__file__).resolve().parents[1] / "scripts" / "audiocraft_compat.py")
compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compat)

CARD = 64  # the fixture codec's vocabulary
TEXTS = ["minor chord on A", "pattern 1 with drums"]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def audiocraft():
    """audiocraft 1.3.0, imported from its folder for this module's tests, then taken out again."""
    reason = compat.missing_reason()
    if reason:
        pytest.skip(reason)
    yield compat.activate()
    compat.deactivate()


@pytest.fixture
def fixture_t5(audiocraft, fixture_dir, monkeypatch):
    """audiocraft's T5 conditioner reads ``t5-base`` from the fixture's stand-in (no hub here), as ours does
    with ``t5_path``."""
    import audiocraft.modules.conditioners as conditioners

    for name in ("T5Tokenizer", "T5EncoderModel"):
        real = getattr(conditioners, name)
        shim = type(name, (), {"from_pretrained": staticmethod(
            lambda source, *a, real=real, **k: real.from_pretrained(str(fixture_dir / "t5"), *a, **k))})
        monkeypatch.setattr(conditioners, name, shim)


class OurWords:
    """audiocraft's tokenizer interface (texts -> ids [B, L], mask [B, L]) with our lut's word hashing:
    the weights are the same model in both, the tokenizers are not (``audiocraft_caveats``)."""

    def __init__(self, n_bins: int):
        self.n_bins = n_bins

    def __call__(self, texts, return_text=False):
        ids = [word_ids(t, self.n_bins) if t else [] for t in texts]
        tokens = torch.zeros(len(ids), max(1, max(map(len, ids))), dtype=torch.long)
        mask = torch.zeros_like(tokens, dtype=torch.int)
        for row, seq in enumerate(ids):
            tokens[row, :len(seq)], mask[row, :len(seq)] = torch.tensor(seq, dtype=torch.long), 1
        return tokens, mask


def _use_our_words(lm) -> None:
    lut = lm.condition_provider.conditioners["description"]
    lut.tokenizer = OurWords(lut.embed.num_embeddings)


# ------------------------------------------------------------------------- a tiny trained MAGNeT, exported

def _token_cache(directory: Path, codec_file: Path, frames: int = 90) -> Path:
    meta = CacheMeta(codec=str(codec_file), sample_rate=32000, frame_rate=50.0, n_q=4, card=CARD, channels=1,
                     source="synthetic")
    rng = np.random.default_rng(0)
    with CacheWriter(directory, meta) as writer:
        for i in range(6):
            writer.add(f"item{i}.wav", np.tile(rng.integers(0, CARD, size=(4, 6)), (1, frames // 6)),
                       {"description": f"pattern {i % 3}"})
        writer.finish()
    return directory


def _trained_run(root: Path, fixture_dir: Path, conditioner: dict, positions: str = "sin",
                 segment: float = 1.0) -> Path:
    """A tiny MAGNeT trained for 2 updates on synthetic tokens of the fixture codec."""
    cache = root / "cache"
    if not cache.exists():
        _token_cache(cache, fixture_dir / "compression_state_dict.bin")
    run = root / f"run-{conditioner['model']}-{positions}-{segment}"
    train(from_dict(TrainConfig, {
        "run_dir": str(run), "seed": 0,
        "data": {"train": str(cache), "segment_duration": segment, "batch_size": 2, "valid_fraction": 0.3},
        "model": {"dim": 32, "num_heads": 2, "num_layers": 2, "positional_embedding": positions,
                  "conditioner": conditioner},
        "optim": {"steps": 2, "warmup": 0, "lr": 3e-3, "schedule": "constant"},
        "ema": {"every": 1, "decay": 0.9}, "valid": {"every": 2, "batches": 1}, "samples": {"every": 0},
        "checkpoint": {"every": 2, "keep_last": 1}, "log": {"every": 1, "progress": False}}))
    return run


def _export(run: Path, out: Path, capsys) -> str:
    """``magnet export RUN OUT``; returns what it printed on stderr (its notes)."""
    capsys.readouterr()
    assert cli_main(["export", str(run), str(out)]) == 0
    return capsys.readouterr().err


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("interop")


T5 = {"model": "t5", "name": "t5-base"}
LUT = {"model": "lut", "n_bins": 64, "text_dim": 16}


@pytest.mark.parametrize("conditioner,positions", [(T5, "sin"), (LUT, "rope")], ids=["t5-sin", "lut-rope"])
def test_audiocraft_loads_our_export_and_generates_the_same(audiocraft, fixture_t5, work, fixture_dir, capsys,
                                                            conditioner, positions):
    conditioner = dict(conditioner, **({"path": str(fixture_dir / "t5")} if conditioner["model"] == "t5" else {}))
    out = work / f"export-{conditioner['model']}-{positions}"
    notes = _export(_trained_run(work, fixture_dir, conditioner, positions), out, capsys)
    assert {p.name for p in out.iterdir()} >= {"state_dict.bin", "compression_state_dict.bin"}
    assert ("not an audiocraft model" in notes) is False
    assert ("picks other table rows" in notes) == (conditioner["model"] == "lut")
    xp = yaml.safe_load(torch.load(out / "state_dict.bin", weights_only=True)["xp.cfg"])
    assert type(xp["dataset"]["segment_duration"]) is int  # audiocraft slices with frame_rate * it

    from audiocraft.models import MAGNeT as TheirMAGNeT

    theirs = TheirMAGNeT.get_pretrained(str(out), device="cpu")  # its own loaders: codec and LM
    if conditioner["model"] == "lut":
        _use_our_words(theirs.lm)
    ours = MAGNeT.get_pretrained(str(out), device="cpu", t5_path=fixture_dir / "t5")
    if positions == "sin":
        run = lambda model: model.generate(TEXTS, return_tokens=True)  # noqa: E731
    else:  # rotary positions alone: an all-mask start is near-symmetric, ties would be broken by rounding
        prompt = torch.randn(2, 1, 16000, generator=torch.Generator().manual_seed(0)) * 0.1
        run = lambda model: model.generate_continuation(prompt, 32000, TEXTS, return_tokens=True)  # noqa: E731
    results = []
    for model in (theirs, ours):
        model.set_generation_params(use_sampling=False, decoding_steps=[3, 2, 2, 2])
        results.append(run(model))
    (their_wav, their_codes), (our_wav, our_codes) = results
    assert our_codes.shape == (2, 4, 48) and torch.equal(our_codes, their_codes)
    torch.testing.assert_close(our_wav, their_wav, atol=1e-4, rtol=0)


# -------------------------------------------------------------- audiocraft-built rotary checkpoints, here

def _audiocraft_lm(xp_cfg: dict, frame_rate: int = 50):
    """audiocraft's MagnetLMModel for ``xp_cfg``, built as its ``load_lm_model_magnet`` builds it."""
    from audiocraft.models.builders import get_lm_model
    from audiocraft.modules.transformer import set_efficient_attention_backend
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(xp_cfg)
    cfg.transformer_lm.compression_model_framerate = frame_rate
    cfg.transformer_lm.segment_duration = cfg.dataset.segment_duration
    cfg.transformer_lm.span_len = cfg.masking.span_len
    set_efficient_attention_backend("xformers")
    return get_lm_model(cfg).eval()


@pytest.mark.parametrize("positions", ["rope", "sin_rope"])
def test_audiocraft_built_rotary_checkpoint_loads_here(audiocraft, tmp_path, positions):
    cfg = MagnetLMConfig(dim=64, num_heads=4, num_layers=3, card=CARD, n_q=4, subcodes_context=2, span_len=3,
                         segment_duration=2, positional_embedding=positions,
                         conditioner=ConditionerConfig(model="lut", n_bins=50, text_dim=24))
    torch.manual_seed(0)
    theirs = _audiocraft_lm(cfg.to_xp_cfg())
    state = theirs.state_dict()
    assert set(rope_buffer_keys(3)) <= set(state)  # one shared module, saved 1 + num_layers times
    torch.save({"best_state": state, "xp.cfg": yaml.safe_dump(cfg.to_xp_cfg()), "version": "1.3.0",
                "exported": True}, tmp_path / "state_dict.bin")
    ours = load_lm_model(tmp_path, device="cpu")  # strict: no unexpected key
    assert ours.cfg.positional_embedding == positions

    _use_our_words(theirs)
    cond = theirs.condition_provider.conditioners["description"]
    with torch.no_grad():
        their_memory, mask = cond(cond.tokenize(TEXTS + [None, None]))
        our_memory = ours.encode_text(TEXTS + [None, None])
        torch.testing.assert_close(our_memory, their_memory[:, :our_memory.shape[1]], atol=1e-6, rtol=0)
        codes = torch.randint(0, CARD + 1, (4, 4, 100), generator=torch.Generator().manual_seed(1))
        for stage in range(4):
            their_logits = theirs(codes, [], {"description": (their_memory, mask)}, stage=stage)
            torch.testing.assert_close(ours(codes, our_memory, stage=stage), their_logits, atol=1e-4, rtol=0)

        from audiocraft.modules.conditioners import ConditioningAttributes
        # prompted: with rotary positions alone an all-mask start is nearly symmetric, and which of
        # the near-tied spans is kept first would be decided by float rounding, not by the model
        prompt = codes[:2, :, :30].clamp(max=CARD - 1)
        params = GenerationParams(use_sampling=False, decoding_steps=[4, 2, 2, 2])
        our_codes = generate_codes(ours, our_memory, params, 100, prompt=prompt)
        their_codes = theirs.generate(
            prompt=prompt, conditions=[ConditioningAttributes(text={"description": t}) for t in TEXTS], max_gen_len=100,
            use_sampling=False, decoding_steps=params.decoding_steps, temp=params.temperature, top_k=params.top_k,
            top_p=params.top_p, max_cfg_coef=params.max_cfg_coef, min_cfg_coef=params.min_cfg_coef)
    assert torch.equal(our_codes, their_codes)


def test_our_rotary_state_dict_is_audiocraft_s(audiocraft):
    """Every key audiocraft's MAGNeT has (the rope buffer of each layer included), and no other."""
    from magnet_audio.lm import MagnetLM
    from magnet_audio.lm.base import to_audiocraft_state

    cfg = MagnetLMConfig(dim=32, num_heads=2, num_layers=2, card=CARD, segment_duration=1,
                         positional_embedding="rope",
                         conditioner=ConditionerConfig(model="lut", n_bins=64, text_dim=16))
    theirs = _audiocraft_lm(cfg.to_xp_cfg())
    ours = to_audiocraft_state(MagnetLM(cfg).state_dict(), cfg)
    assert set(ours) == set(theirs.state_dict())
    theirs.load_state_dict(ours, strict=True)


# ------------------------------------------------------------------ what audiocraft cannot load, and why

def test_audiocraft_needs_whole_seconds_as_an_int(audiocraft):
    """The bug of issue 23: a float segment_duration (even 2.0) breaks audiocraft's MAGNeT; ours writes an int."""
    cfg = MagnetLMConfig(dim=32, num_heads=2, num_layers=1, card=CARD, segment_duration=2.0,
                         conditioner=ConditionerConfig(model="lut", n_bins=64, text_dim=16))
    xp = cfg.to_xp_cfg()
    assert xp["dataset"]["segment_duration"] == 2 and type(xp["dataset"]["segment_duration"]) is int
    _audiocraft_lm(xp)
    for seconds in (2.0, 1.5):
        xp["dataset"]["segment_duration"] = seconds
        with pytest.raises(TypeError, match="slice indices must be integers"):
            _audiocraft_lm(xp)


def test_audiocraft_has_no_sentence_conditioner(audiocraft):
    cfg = MagnetLMConfig(dim=32, num_heads=2, num_layers=1, card=CARD, segment_duration=1,
                         conditioner=ConditionerConfig(model="sentence"))
    with pytest.raises(Exception, match="sentence"):
        _audiocraft_lm(cfg.to_xp_cfg())


def test_xp_cfg_writers_give_whole_seconds_as_ints():
    for config in (MagnetLMConfig, MusicGenLMConfig):
        for seconds, written in ((2.0, "2"), (30, "30"), (1.5, "1.5")):
            xp = config(segment_duration=seconds).to_xp_cfg()
            assert yaml.safe_dump(xp["dataset"]).strip() == f"segment_duration: {written}"
            assert config.from_xp_cfg(yaml.safe_load(yaml.safe_dump(xp))).segment_duration == float(seconds)


@pytest.mark.parametrize("conditioner,segment,reason", [
    ({"model": "sentence"}, 1.0, "audiocraft has no 'sentence' text conditioner"),
    (LUT, 1.5, "segment_duration 1.5 s is not a whole number of seconds"),
], ids=["sentence", "1.5s"])
def test_exports_audiocraft_cannot_load_are_ours_only_and_say_so(work, fixture_dir, capsys, conditioner, segment,
                                                                 reason):
    run = _trained_run(work, fixture_dir, conditioner, segment=segment)
    out = work / f"ours-only-{conditioner['model']}-{segment}"
    out.mkdir()
    for stale in ("state_dict.bin", "compression_state_dict.bin"):  # an earlier export's: removed
        shutil.copy(fixture_dir / stale, out / stale)
    notes = _export(run, out, capsys)
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "config.json"}
    assert "note: not an audiocraft model: " in notes and reason in notes
    from magnet_audio.training.export import export

    lines = []
    export(run, out, notice=lines.append)
    assert len(lines) == 1 and lines[0].startswith("not an audiocraft model: ") and reason in lines[0]
    assert json.loads((out / "config.json").read_text())["lm"]["segment_duration"] == segment
    model = MAGNeT.get_pretrained(str(out), device="cpu")
    assert model.max_duration == segment


def test_lut_exports_say_their_tokenizer_is_ours(work, fixture_dir, capsys):
    out = work / "export-lut-notes"
    notes = _export(_trained_run(work, fixture_dir, LUT), out, capsys)
    assert {"state_dict.bin", "compression_state_dict.bin"} <= {p.name for p in out.iterdir()}
    (note,) = [line for line in notes.splitlines() if line.startswith("note: ")]
    assert note.startswith("note: audiocraft loads this model, but its lut text conditioner is ours")
    assert "spaCy lemmas" in note and "picks other table rows" in note
