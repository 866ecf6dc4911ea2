"""Evaluation metrics on inputs with known answers, backends that report why they cannot run, the
``magnet eval`` runner with a stand-in embedding model, and ``magnet bench generate`` on the tiny fixture."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math

import numpy as np
import pytest
import torch

from magnet_audio.audio import audio_write
from magnet_audio.evaluation import embeddings as E
from magnet_audio.evaluation import runner
from magnet_audio.evaluation.clap import clap_score
from magnet_audio.evaluation.fad import (frechet_audio_distance, frechet_distance, frechet_distance_scipy,
                                         gaussian_stats, trace_sqrt_product)
from magnet_audio.evaluation.kl import kl_divergence, kld_scores, label_distribution, softmax

# ----------------------------------------------------------------------------------------------
# FAD
# ----------------------------------------------------------------------------------------------


def test_fad_identical_sets_is_zero():
    x = np.random.default_rng(0).normal(size=(300, 16))
    assert frechet_audio_distance(x, x) == pytest.approx(0.0, abs=1e-9)


def test_fad_shifted_set_is_squared_shift():
    x = np.random.default_rng(1).normal(size=(200, 8)) @ np.random.default_rng(2).normal(size=(8, 8))
    shift = np.arange(8, dtype=np.float64) / 4
    # same covariance exactly, means differ by `shift`: FAD = ||shift||^2
    assert frechet_audio_distance(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-9, abs=1e-9)


def test_frechet_equal_covariances_closed_form():
    sigma = np.array([[2.0, 0.3], [0.3, 1.0]])
    assert frechet_distance([0, 0], sigma, [3, 4], sigma) == pytest.approx(25.0, abs=1e-9)


def test_frechet_diagonal_covariances_by_hand():
    # ||(1,2)||^2 = 5; trace term sum (sqrt(a_i) - sqrt(b_i))^2 = (1-2)^2 + (2-3)^2 = 2
    value = frechet_distance([0, 0], np.diag([1.0, 4.0]), [1, 2], np.diag([4.0, 9.0]))
    assert value == pytest.approx(7.0, abs=1e-9)


def test_frechet_non_commuting_by_hand():
    # S1 = [[2,1],[1,2]] has eigenvalues 3 and 1, S2 = I: Tr(sqrt(S1 S2)) = sqrt(3) + 1
    s1 = np.array([[2.0, 1.0], [1.0, 2.0]])
    assert trace_sqrt_product(s1, np.eye(2)) == pytest.approx(math.sqrt(3) + 1, abs=1e-12)
    assert frechet_distance([0, 0], s1, [0, 0], np.eye(2)) == pytest.approx(4 - 2 * math.sqrt(3), abs=1e-12)


def test_frechet_matches_scipy_sqrtm_including_singular():
    pytest.importorskip("scipy", reason="scipy is part of the eval extra: pip install -e '.[eval]'")
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T, b @ b.T
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance_scipy(mu1, s1, mu2, s2), rel=1e-8)
    # rank-deficient covariances (fewer samples than dimensions) stay finite and non-negative
    x, y = rng.normal(size=(4, 10)), rng.normal(size=(5, 10))
    value = frechet_audio_distance(x, y)
    assert np.isfinite(value) and value >= 0
    assert value == pytest.approx(frechet_distance_scipy(*_stats(x), *_stats(y)), rel=1e-4)


def _stats(x):
    s = gaussian_stats(x)
    return s.mu, s.sigma


def test_fad_rejects_bad_input():
    from magnet_audio.errors import InputError
    with pytest.raises(InputError):
        frechet_audio_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(InputError):
        frechet_audio_distance(np.zeros((5, 3)), np.zeros((5, 4)))


# ----------------------------------------------------------------------------------------------
# KL
# ----------------------------------------------------------------------------------------------


def test_kl_identical_distributions_is_zero():
    p = softmax(np.random.default_rng(4).normal(size=(5, 50)))
    scores = kld_scores(p, p)
    assert scores["kld"] == pytest.approx(0.0, abs=1e-4)  # only the 1e-6 epsilon remains
    assert scores["kld_qp"] == pytest.approx(0.0, abs=1e-4)


def test_kl_by_hand():
    ref, gen = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    pq = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)  # sum p_ref log(p_ref / p_gen) = 0.5108
    qp = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)  # 0.3681
    scores = kld_scores(gen[None], ref[None])
    assert scores["kld"] == pytest.approx(pq, rel=1e-4)
    assert scores["kld_qp"] == pytest.approx(qp, rel=1e-4)
    assert scores["kld_both"] == pytest.approx(pq + qp, rel=1e-4)
    # a zero in the reference contributes nothing; a zero in the prediction costs log(1/eps)
    assert kl_divergence(np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.5, 0.0])) == pytest.approx(0, abs=1e-5)
    assert kl_divergence(np.array([1.0, 0.0]), np.array([0.5, 0.5])) == pytest.approx(
        0.5 * math.log(0.5 / (1 + 1e-6)) + 0.5 * math.log(0.5 / 1e-6), rel=1e-9)


def test_label_distribution_is_mean_of_segment_softmaxes():
    logits = np.array([[0.0, 0.0], [math.log(3.0), 0.0]])  # softmaxes (0.5, 0.5) and (0.75, 0.25)
    np.testing.assert_allclose(label_distribution(logits), [0.625, 0.375])


# ----------------------------------------------------------------------------------------------
# CLAP score and unavailable models
# ----------------------------------------------------------------------------------------------


class FakeClap(E.TextAudioModel):
    name = "fake-clap"
    sample_rate = 100

    def _load(self):
        pass

    def audio_embeddings(self, wavs):
        return np.stack([[1.0, 0.0] if w.mean() > 0 else [0.0, 1.0] for w in wavs])

    def text_embeddings(self, texts):
        return np.stack([[1.0, 1.0] if "both" in t else [1.0, 0.0] for t in texts])


def test_clap_score_is_mean_cosine():
    wavs = [np.ones(10), -np.ones(10)]
    out = clap_score(FakeClap(), ["x", "both"], wavs)
    assert out["per_item"] == pytest.approx([1.0, 1 / math.sqrt(2)])
    assert out["clap"] == pytest.approx((1 + 1 / math.sqrt(2)) / 2)


@pytest.mark.slow
def test_unavailable_models_give_reasons(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MAGNET_VGGISH_CHECKPOINT", raising=False)
    cases = [E.VGGishEmbedding(), E.VGGishEmbedding(checkpoint=tmp_path / "missing.pth"),
             E.ClapModel(model="laion/larger_clap_music"), E.ClapModel(model=str(tmp_path / "missing.pt")),
             E.make_backend(E.EMBEDDINGS, "nope", "embedding")]
    bad = tmp_path / "bad.pth"
    torch.save({"foo": torch.zeros(1)}, bad)
    cases.append(E.VGGishEmbedding(checkpoint=bad))
    if importlib.util.find_spec("hear21passt") is None:
        cases.append(E.PasstClassifier())
    reasons = []
    for backend in cases:
        with pytest.raises(E.Unavailable) as info:
            backend.load()
        assert info.value.reason
        reasons.append(info.value.reason)
    assert "offline" in reasons[0] and "not found" in reasons[1] and "unknown embedding" in reasons[4]
    assert "not a torchvggish" in reasons[5]


def test_vggish_front_end_shapes():
    examples = E.vggish_examples(np.zeros(16000 * 2, np.float32))
    assert examples.shape == (2, 96, 64)  # two non-overlapping 0.96 s examples in 2 s
    mel = E.vggish_mel_matrix()
    assert mel.shape == (257, 64) and (mel[0] == 0).all() and (mel.sum(0) > 0).all()
    net = E.build_vggish()
    assert {k.split(".")[0] for k in net.state_dict()} == {"features", "embeddings"}
    with torch.no_grad():
        assert net(torch.from_numpy(examples)[:, None]).shape == (2, 128)


# ----------------------------------------------------------------------------------------------
# Runner (prompt files, pairing, results) with a stand-in embedding model
# ----------------------------------------------------------------------------------------------


class ToyEmbedding(E.EmbeddingModel):
    """Per-0.1 s RMS and zero-crossing rate: a deterministic stand-in for a pre-trained model."""

    name = "toy"
    sample_rate = 8000

    def _load(self):
        pass

    def embed(self, wav):
        frames = wav[: len(wav) // 800 * 800].reshape(-1, 800)
        rms = np.sqrt((frames ** 2).mean(1))
        zcr = (np.diff(np.sign(frames), axis=1) != 0).mean(1)
        return np.stack([rms, zcr], 1)


class ToyClassifier(E.Classifier):
    name = "toy"
    sample_rate = 8000
    labels = ["quiet", "loud"]

    def _load(self):
        pass

    def segment_logits(self, wav):
        return np.array([[0.0, 10 * float(np.abs(wav).mean())]])


def _tone(freq, amp, seconds=1.0, sr=8000):
    t = np.arange(int(seconds * sr)) / sr
    return torch.from_numpy((amp * np.sin(2 * np.pi * freq * t)).astype(np.float32))[None]


def test_runner_pairs_scores_and_writes(tmp_path, monkeypatch):
    monkeypatch.setitem(E.EMBEDDINGS, "toy", ToyEmbedding)
    monkeypatch.setitem(E.CLASSIFIERS, "toy", ToyClassifier)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ref_dir, gen_dir = tmp_path / "ref", tmp_path / "gen"
    prompts = ["low hum", "high whistle", "mid tone"]
    freqs = [110, 1760, 440]
    lines = []
    for i, (p, f) in enumerate(zip(prompts, freqs)):
        audio_write(ref_dir / f"{i:06d}", _tone(f, 0.5), 8000, strategy="none")
        lines.append(json.dumps({"path": f"ref/{i:06d}.wav", "description": p}))
        audio_write(gen_dir / f"{i:05d}_x", _tone(f, 0.5), 8000, strategy="none")  # index-prefixed names
    manifest = tmp_path / "prompts.jsonl"
    manifest.write_text("\n".join(lines) + "\n")

    items = runner.load_prompts(manifest)
    assert [it.prompt for it in items] == prompts
    assert "path" in runner.attach_references(items, None, manifest)
    assert "index prefix" in runner.attach_generated(items, gen_dir)
    assert [it.generated.name for it in items] == ["00000_x.wav", "00001_x.wav", "00002_x.wav"]

    results = runner.evaluate(items, ["fad", "kl"], fad_embeddings=["toy", "vggish"], kl_classifiers=["toy"])
    by = {(r.metric, r.backend): r for r in results}
    assert by["fad", "toy"].status == "ok" and by["fad", "toy"].value == pytest.approx(0.0, abs=1e-9)
    assert by["kl", "toy"].status == "ok" and by["kl", "toy"].value == pytest.approx(0.0, abs=1e-4)
    assert by["fad", "vggish"].status == "unavailable" and by["fad", "vggish"].reason

    # louder generations: the classifier's distributions move, KL > 0; FAD > 0
    for i, f in enumerate(freqs):
        audio_write(gen_dir / f"{i:05d}_x", _tone(f, 0.9), 8000, strategy="none")
    results = runner.evaluate(items, ["fad", "kl", "clap"], fad_embeddings=["toy"], kl_classifiers=["toy"])
    by = {(r.metric, r.backend): r for r in results}
    assert by["fad", "toy"].value > 0.01 and by["kl", "toy"].value > 0.01
    assert by["clap", "laion-clap"].status == "unavailable"

    json_path, csv_path = runner.write_results(results, tmp_path / "out", {"prompts": str(manifest)})
    data = json.loads(json_path.read_text())
    assert {r["status"] for r in data["results"]} == {"ok", "unavailable"}
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["metric"] for r in rows] == ["fad", "kl", "clap"] and rows[2]["reason"]
    table = runner.format_table(results)
    assert "UNAVAILABLE" in table and "FAD" in table


def test_runner_txt_prompts_and_sidecar_pairing(tmp_path):
    (tmp_path / "p.txt").write_text("# comment\nfirst prompt\n\nsecond prompt\n")
    items = runner.load_prompts(tmp_path / "p.txt")
    assert [it.prompt for it in items] == ["first prompt", "second prompt"]
    ref = tmp_path / "ref"
    for name, prompt in (("a", "second prompt"), ("b", "first prompt")):
        audio_write(ref / name, _tone(220, 0.3), 8000, strategy="none")
        (ref / f"{name}.json").write_text(json.dumps({"description": prompt}))
    assert "sidecar" in runner.attach_references(items, ref, tmp_path / "p.txt")
    assert [it.reference.name for it in items] == ["b.wav", "a.wav"]


@pytest.mark.parametrize("fast", [False, True])
def test_generate_items_exact_and_fast(tmp_path, fixture_dir, fast):
    (tmp_path / "p.txt").write_text("first prompt\nsecond prompt\n")
    items = runner.load_prompts(tmp_path / "p.txt")
    info = runner.generate_items(items, str(fixture_dir), tmp_path / "gen", t5_path=str(fixture_dir / "t5"),
                                 params={"decoding_steps": [2, 1, 1, 1], "temperature": 0.7, "max_cfg_coef": 5.0},
                                 batch_size=2, progress=False, fast=fast)
    assert [it.generated.name for it in items] == ["00000_first_prompt.wav", "00001_second_prompt.wav"]
    assert info["params"]["decoding_steps"] == [2, 1, 1, 1]
    assert info["params"]["temperature"] == 0.7 and info["params"]["max_cfg_coef"] == 5.0
    # --fast: the CPU fast preset (int8, approximate K/V cache, CFG skip); otherwise exact decoding
    assert info["params"]["int8"] is fast and (info["params"]["kv_cache_refresh"] > 1) is fast
    assert (info["params"]["cfg_skip_threshold"] > 0) is fast


# ----------------------------------------------------------------------------------------------
# Offline pre-trained models (optional heavy dependencies)
# ----------------------------------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("musicnn") is None or importlib.util.find_spec("tensorflow") is None,
                    reason="musicnn + tensorflow not installed (scripts/install_eval_deps.sh)")
def test_musicnn_embedding_and_tagger():
    wav = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000 * 7) / 16000)).astype(np.float32)
    emb, tagger = E.MusicnnEmbedding(), E.MusicnnClassifier()
    emb.load()
    tagger.load()
    assert emb.embed(wav).shape == (2, 200)  # two full 3 s patches in 7 s
    logits = tagger.segment_logits(wav)
    assert logits.shape == (2, 50) and len(tagger.labels) == 50 and np.isfinite(logits).all()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("basic_pitch") is None or importlib.util.find_spec("onnxruntime") is None,
                    reason="basic-pitch + onnxruntime not installed (scripts/install_eval_deps.sh)")
def test_basic_pitch_embedding():
    backend = E.BasicPitchEmbedding()
    backend.load()
    wav = (0.3 * np.sin(2 * np.pi * 440 * np.arange(22050 * 3) / 22050)).astype(np.float32)
    out = backend.embed(wav)
    assert out.shape == (3, 176)
    assert out[:, 88:].sum() >= 0 and out[:, 48].mean() > out[:, 0].mean()  # A4 = MIDI 69 -> bin 48


# ----------------------------------------------------------------------------------------------
# bench generate
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bench_generate_writes_json_and_png(tmp_path, fixture_dir):
    pytest.importorskip("matplotlib")
    from magnet_audio.evaluation.cli import add_bench_generate

    parser = argparse.ArgumentParser()
    add_bench_generate(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["generate", "--model", str(fixture_dir), "--t5-path", str(fixture_dir / "t5"),
                              "--batch", "1,2", "--runs", "1", "--warmup", "1", "--duration", "1",
                              "--steps", "2,1,1,1", "--ar-model", str(tmp_path / "no-such-musicgen"),
                              "--out", str(tmp_path / "bench"), "--quiet"])
    args.func(args)
    data = json.loads((tmp_path / "bench" / "bench_generate.json").read_text())
    png = (tmp_path / "bench" / "bench_generate.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    rows = data["rows"]
    assert [r["batch"] for r in rows] == [1, 2] and all(r["status"] == "ok" for r in rows)
    for r in rows:
        assert r["latency_s"] > 0 and len(r["runs_s"]) == 1 and r["peak_memory_bytes"] > 0
        assert r["throughput"] == pytest.approx(r["batch"] * r["audio_seconds"] / r["latency_s"])
    assert data["magnet"]["schedules"] == [[2, 1, 1, 1]]
    assert data["ar_model"]["status"] == "unavailable" and data["ar_model"]["reason"]
