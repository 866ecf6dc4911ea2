"""Codec training: RVQ in training mode, the codec objective, and `magnet train-codec` end to end."""

import math
import os
import socket

import pytest
import torch

from magnet_audio.codec import EncodecConfig, load_compression_model
from magnet_audio.codec.quantizer import Codebook, ResidualVectorQuantizer, kmeans
from magnet_audio.training.codec_objective import (
    CodecLossConfig,
    CodecObjective,
    MelSpectrogram,
    MultiScaleMelLoss,
    MultiScaleSTFTDiscriminator,
    discriminator_loss,
    mel_filterbank,
)

# ---------------------------------------------------------------- RVQ training mode


def _clusters(centres: torch.Tensor, per: int, spread: float = 0.01, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    rows = centres.repeat_interleave(per, dim=0)
    return rows + spread * torch.randn(rows.shape, generator=gen)


def test_kmeans_init_sets_inited_and_codebook_from_data():
    centres = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 5.0]])
    data = _clusters(centres, 25)
    torch.manual_seed(0)
    means, counts = kmeans(data, 4, 10)
    # a Lloyd fixed point: each mean is the mean of the rows nearest to it, counts are those rows
    assign = torch.cdist(data, means).argmin(dim=1)
    for k in range(4):
        assert counts[k] == (assign == k).sum()
        if counts[k]:
            assert torch.allclose(means[k], data[assign == k].mean(0), atol=1e-5)

    codebook = Codebook(2, 4, kmeans_iters=10, threshold_ema_dead_code=0)
    assert codebook.inited.item() == 0 and not codebook.embed.any()
    codebook.train()
    torch.manual_seed(0)  # a seed whose random start finds the 4 clusters
    quantized, codes = codebook(data)
    assert codebook.inited.item() == 1
    assert torch.cdist(centres, codebook.embed).min(dim=1).values.max() < 0.02  # one word per cluster
    assert torch.allclose(quantized, codebook.embed[codes])  # codes index the (updated, here unchanged) words
    assert codebook.cluster_size.sum().item() == pytest.approx(100.0, abs=1e-3)
    # an inited codebook is not re-initialised
    before = codebook.embed.clone()
    codebook(_clusters(centres, 25, seed=1))
    assert torch.allclose(codebook.embed, before, atol=0.02)


def test_ema_update_hand_computed():
    codebook = Codebook(2, 2, decay=0.5, kmeans_init=False, threshold_ema_dead_code=0)
    codebook.embed.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    codebook.embed_avg.copy_(codebook.embed)
    codebook.cluster_size.fill_(1.0)
    codebook.train()
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0], [9.0, 9.0]])
    quantized, codes = codebook(x)
    assert codes.tolist() == [0, 0, 1]
    assert quantized.tolist() == [[0.0, 0.0], [0.0, 0.0], [10.0, 10.0]]  # the words before the update
    # counts: 0.5·1 + 0.5·[2, 1] = [1.5, 1]; sums: 0.5·[0, 10] + 0.5·[2, 9] = [1, 9.5]
    assert torch.allclose(codebook.cluster_size, torch.tensor([1.5, 1.0]))
    assert torch.allclose(codebook.embed_avg, torch.tensor([[1.0, 1.0], [9.5, 9.5]]))
    # words = sums / counts (Laplace smoothing with eps=1e-5 is negligible here): both moved toward x
    assert torch.allclose(codebook.embed, torch.tensor([[1 / 1.5, 1 / 1.5], [9.5, 9.5]]), atol=1e-4)
    # eval mode leaves the statistics alone
    codebook.eval()
    state = {k: v.clone() for k, v in codebook.state_dict().items()}
    codebook(x)
    assert all(torch.equal(state[k], v) for k, v in codebook.state_dict().items())


def test_dead_codes_are_replaced_by_batch_vectors():
    codebook = Codebook(2, 4, decay=0.99, kmeans_init=False, threshold_ema_dead_code=2)
    words = torch.tensor([[0.0, 0.0], [1.0, 0.0], [100.0, 100.0], [-100.0, 100.0]])
    codebook.embed.copy_(words)
    codebook.cluster_size.copy_(torch.tensor([10.0, 10.0, 0.5, 0.0]))  # codes 2 and 3 are dead
    codebook.embed_avg.copy_(words * codebook.cluster_size[:, None])
    codebook.train()
    torch.manual_seed(0)
    x = torch.rand(16, 2)
    codebook(x)
    for k in (2, 3):  # replaced by (very nearly: the EMA step follows) rows of the batch
        assert torch.cdist(codebook.embed[k:k + 1], x).min() < 1e-3
        assert codebook.cluster_size[k] > 1.9  # reset to the threshold, so the replacement sticks
    assert codebook.embed[:2].abs().max() < 1.5  # live codes only moved by the EMA


def test_rvq_straight_through_commitment_and_dropout():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(8, 4, 16, kmeans_iters=3, q_dropout=True).train()
    z = torch.randn(3, 8, 20, requires_grad=True)
    quantized, codes, commit = rvq(z, n_q=4)
    assert quantized.shape == z.shape and codes.shape == (3, 4, 20) and commit.dim() == 0
    assert all(cb.inited.item() == 1 for cb in rvq.codebooks)
    quantized.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))  # straight-through: identity gradient
    z.grad = None
    commit.backward()
    assert z.grad.abs().sum() > 0  # the commitment loss pulls the encoder output
    seen = {rvq(torch.randn(2, 8, 10))[1].shape[1] for _ in range(30)}
    assert seen <= {1, 2, 3, 4} and len(seen) > 1
    rvq.eval()
    assert {rvq(torch.randn(2, 8, 10))[1].shape[1] for _ in range(5)} == {4}


def test_loaded_codec_inference_unchanged(fixture_dir, reference):
    model = load_compression_model(fixture_dir, device="cpu")
    codes, _ = model.encode(reference["wav"])
    assert torch.equal(codes, reference["codes"])
    latent = model.encoder(reference["wav"])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        quantized, forward_codes, _ = model.quantizer(latent)
        out = model(reference["wav"])
    assert torch.equal(forward_codes, reference["codes"])
    assert torch.equal(quantized, model.quantizer.decode(forward_codes))
    assert torch.equal(out.codes, reference["codes"])
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    # training mode: a loaded (inited) codebook is not re-initialised; codes come before the update
    model.train()
    out = model(reference["wav"])
    assert torch.equal(out.codes, reference["codes"])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items() if k.endswith("inited"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, data: torch.Tensor, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(rank)  # different random draws on each rank
        rvq = ResidualVectorQuantizer(4, 2, 8, kmeans_iters=2, q_dropout=True).train()
        for step in range(4):
            rvq(data[rank, step])
        torch.save(rvq.state_dict(), f"{out}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_rvq_ddp_ranks_stay_in_sync(tmp_path):
    """Each rank sees different data and draws different random numbers; all-reduced EMA statistics
    and rank-0 broadcasts keep the codebooks identical."""
    data = torch.randn(2, 4, 3, 4, 10)
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), data, str(tmp_path / "rvq")), nprocs=2)
    s0, s1 = (torch.load(tmp_path / f"rvq.{r}", weights_only=True) for r in (0, 1))
    assert all(torch.equal(s0[k], s1[k]) for k in s0)
    assert s0["vq.layers.0._codebook.inited"].item() == 1


# ---------------------------------------------------------------- objective


def test_mel_filterbank_and_spectrogram():
    fb = mel_filterbank(16000, 512, 40, f_min=0.0)
    assert fb.shape == (257, 40) and fb.min() >= 0 and fb.max() <= 1.0
    assert (fb.sum(0) > 0).all()  # every band catches some bin at this resolution
    peaks = fb.argmax(0)
    assert (peaks[1:] >= peaks[:-1]).all()  # bands ordered by frequency
    mel = MelSpectrogram(16000, n_fft=256, hop_length=64, n_mels=20)
    x = torch.randn(2, 1, 1000)
    assert mel(x).shape == (2, 20, math.ceil(1000 / 64))
    # a 1 kHz tone puts its energy in the band around 1 kHz
    t = torch.arange(16000) / 16000
    spec = MelSpectrogram(16000, n_fft=1024, hop_length=256, n_mels=64, log=False)(
        torch.sin(2 * math.pi * 1000 * t).view(1, 1, -1))
    band = spec.mean(-1).argmax().item()
    centre = 700 * (10 ** (torch.linspace(0, 2595 * math.log10(1 + 8000 / 700), 66)[band + 1] / 2595) - 1)
    assert abs(centre.item() - 1000) < 120


def test_mel_loss_zero_for_identical_positive_otherwise():
    loss = MultiScaleMelLoss(16000, range_start=6, range_end=9)
    torch.manual_seed(0)
    x = torch.randn(2, 1, 4000)
    assert loss(x, x).item() == 0.0
    assert loss(x, x + 0.01 * torch.randn_like(x)).item() > 0
    assert loss(x, 0.5 * x).item() > loss(x, 0.9 * x).item() > 0


def test_frame_periodic_loss_by_hand():
    from magnet_audio.training.codec_objective import frame_periodic_loss

    torch.manual_seed(0)
    real = torch.randn(2, 1, 4 * 8 + 3)  # 4 whole frames of 8 samples, 3 trailing samples ignored
    assert frame_periodic_loss(real, real, 8).item() == 0.0
    pattern = torch.randn(8)
    buzzed = real.clone()
    buzzed[..., :32] += pattern.repeat(4)  # the same error in every frame
    want = 4 * 2 * pattern.square().sum() / real[..., :32].square().sum()
    assert frame_periodic_loss(buzzed, real, 8).item() == pytest.approx(want.item(), rel=1e-5)
    # an error that changes sign from frame to frame averages out
    alternating = real.clone()
    alternating[..., :32] += torch.cat([pattern, -pattern, pattern, -pattern])
    assert frame_periodic_loss(alternating, real, 8).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(Exception, match="hop length"):
        CodecObjective(CodecLossConfig(adversarial=False, periodic=1.0), sample_rate=16000)
    metrics = CodecObjective(CodecLossConfig(adversarial=False, periodic=1.0), 16000, hop_length=8).reconstruction(
        buzzed, real)
    assert metrics["periodic"].item() == pytest.approx(want.item(), rel=1e-5)
    assert metrics["recon"].item() == pytest.approx(
        (2.0 * metrics["msspec"] + 0.1 * metrics["l1"] + metrics["periodic"]).item(), rel=1e-5)


def test_discriminator_shapes_and_losses():
    disc = MultiScaleSTFTDiscriminator(filters=4, n_ffts=[256, 128], hop_lengths=[64, 32], win_lengths=[256, 128])
    x = torch.randn(3, 1, 4000)
    logits, features = disc(x)
    assert len(logits) == len(features) == 2
    for logit, fmaps, n_fft, hop in zip(logits, features, (256, 128), (64, 32)):
        frames = (4000 - n_fft) // hop + 1
        assert logit.shape[:3] == (3, 1, frames)
        assert len(fmaps) == 5 and all(f.shape[:3] == (3, 4, frames) for f in fmaps)
        assert fmaps[0].shape[3] == n_fft // 2 + 1  # then strided by 2 over frequency three times
        assert fmaps[-1].shape[3] == math.ceil(math.ceil(math.ceil((n_fft // 2 + 1) / 2) / 2) / 2)
    # hinge: 0 when real logits >= 1 and fake <= -1
    ones = [torch.ones(2, 1, 3, 3)]
    assert discriminator_loss([2 * t for t in ones], [-2 * t for t in ones]).item() == 0.0
    assert discriminator_loss(ones, ones).item() == pytest.approx(2.0)


def test_objective_generator_and_discriminator_steps():
    config = CodecLossConfig(discriminator=dict(filters=4, n_ffts=[128], hop_lengths=[32], win_lengths=[128]),
                             msspec_params=dict(range_start=6, range_end=8))
    objective = CodecObjective(config, sample_rate=16000)
    real = torch.randn(2, 1, 2000)
    fake = (real + 0.1 * torch.randn_like(real)).requires_grad_(True)
    total, metrics = objective.generator_loss(fake, real, torch.tensor(0.5))
    assert set(metrics) >= {"msspec", "l1", "commit", "adv", "feat", "recon", "g_loss"}
    total.backward()
    assert fake.grad is not None
    assert all(p.grad is None for p in objective.discriminator.parameters())  # codec step spares the D
    d_loss = objective.discriminator_loss(fake, real)
    d_loss.backward()
    assert all(p.grad is not None for p in objective.discriminator.parameters())
    quick = CodecObjective(CodecLossConfig(adversarial=False), sample_rate=16000)
    assert quick.discriminator is None
    assert "adv" not in quick.generator_loss(fake, real, torch.tensor(0.0))[1]


# ---------------------------------------------------------------- training end to end

SR = 16000
TINY = ["losses.adversarial=false", "model.n_filters=4", "model.dimension=16", "data.segment_duration=0.25",
        "data.batch_size=8", "model.threshold_ema_dead_code=1", "optim.lr=3e-3", "log.progress=false",
        "device=cpu"]
TINY_DISC = ["losses.adversarial=true", "losses.discriminator.filters=4", "losses.discriminator.n_ffts=[256,128]",
             "losses.discriminator.hop_lengths=[64,32]", "losses.discriminator.win_lengths=[256,128]"]


@pytest.fixture(scope="module")
def codec_data(tmp_path_factory):
    """20 clips of 0.5 s: single sines and major chords with random roots and a decaying envelope."""
    np = pytest.importorskip("numpy")
    sf = pytest.importorskip("soundfile")
    folder = tmp_path_factory.mktemp("codec_data")
    rng = np.random.default_rng(0)
    t = np.arange(SR // 2) / SR
    for i in range(20):
        root = 110 * 2 ** (rng.integers(0, 24) / 12)
        notes = [root * 2 ** (s / 12) for s in ((0, 4, 7) if i % 2 else (0,))]
        wave = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in notes) / len(notes)
        envelope = np.minimum(1, t * 40) * np.exp(-t * rng.uniform(0.5, 3))
        sf.write(folder / f"clip{i:02d}.wav", (0.5 * wave * envelope).astype(np.float32), SR)
    return folder


def _read_csv(path):
    import csv
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_tiny_codec_trains_and_exports(codec_data, tmp_path, caplog):
    from magnet_audio.training.codec_train import load_codec_config, train_codec

    run = tmp_path / "run"
    cfg = load_codec_config("configs/codec_tiny.yaml", [
        f"data.train={codec_data}", f"run_dir={run}", *TINY, "optim.steps=40", "valid.every=10", "log.every=10",
        "checkpoint.every=40", "ema.decay=0.8"])
    with caplog.at_level("WARNING"):
        final = train_codec(cfg)
    assert "will count as dead" not in caplog.text
    valid = _read_csv(run / "valid.csv")
    assert [row["step"] for row in valid] == [0, 10, 20, 30, 40]
    first, early, last = valid[0]["recon"], valid[1]["recon"], valid[-1]["recon"]
    print(f"valid recon: {[round(row['recon'], 4) for row in valid]}")
    assert last == pytest.approx(final["recon"])
    # step 0 has no codebook yet (all-zero words: the decoder hears silence), so `first` is about the
    # loss of a silent output; the trained codec must do far better than that
    assert last < 0.5 * first and early < 0.7 * first
    train_rows = _read_csv(run / "train.csv")
    assert "d_loss" not in train_rows[-1] and train_rows[-1]["commit"] >= 0

    codec = load_compression_model(run / "export", device="cpu")
    assert (codec.sample_rate, codec.num_codebooks, codec.cardinality, codec.frame_rate) == (SR, 4, 64, 50.0)
    assert all(cb.inited.item() > 0 for cb in codec.quantizer.codebooks)
    import soundfile as sf
    wav = torch.stack([torch.from_numpy(sf.read(codec_data / f"clip{i:02d}.wav", dtype="float32")[0]).view(1, -1)
                       for i in range(0, 20, 3)])
    codes, scale = codec.encode(wav)
    assert codes.shape == (7, 4, 25) and scale is None
    assert 0 <= codes.min() and codes.max() < 64
    assert all(len(codes[:, k].unique()) > 3 for k in range(4))  # no codebook collapsed to one word
    with torch.no_grad():
        recon = codec.decode(codes)
    assert recon.shape == wav.shape and torch.isfinite(recon).all()
    # the exported (EMA) codec reconstructs: far better than a silent output, on the full clips
    objective = CodecObjective(CodecLossConfig(adversarial=False), SR)
    ours, silence = (objective.reconstruction(x, wav)["recon"].item() for x in (recon, torch.zeros_like(wav)))
    print(f"exported codec recon {ours:.4f} vs silence {silence:.4f}")
    assert ours < 0.7 * silence


@pytest.mark.slow
def test_decoder_only_fine_tuning_keeps_the_codes(codec_data, tmp_path):
    """decoder_only: the encoder and the codebooks of init_from stay as they are (so do the codes of
    every clip), the decoder trains and reconstructs better than before."""
    import soundfile as sf

    from magnet_audio.training.codec_train import load_codec_config, train_codec

    base_run, tuned_run = tmp_path / "base", tmp_path / "tuned"
    common = [f"data.train={codec_data}", *TINY, "valid.every=0", "log.every=10", "ema.use=false"]
    train_codec(load_codec_config("configs/codec_tiny.yaml", [*common, f"run_dir={base_run}", "optim.steps=10",
                                                              "checkpoint.every=10"]))
    train_codec(load_codec_config("configs/codec_tiny.yaml", [
        *common, f"run_dir={tuned_run}", "optim.steps=60", "checkpoint.every=60", "optim.lr=1e-3", "decoder_only=true",
        f"model={{init_from: {base_run / 'export'}}}"]))
    base = load_compression_model(base_run / "export", device="cpu")
    tuned = load_compression_model(tuned_run / "export", device="cpu")
    fixed = [k for k in base.state_dict() if not k.startswith("decoder.")]
    assert fixed and all(torch.equal(base.state_dict()[k], tuned.state_dict()[k]) for k in fixed)
    assert any(not torch.equal(v, tuned.state_dict()[k]) for k, v in base.state_dict().items()
               if k.startswith("decoder."))
    wav = torch.stack([torch.from_numpy(sf.read(codec_data / f"clip{i:02d}.wav", dtype="float32")[0]).view(1, -1)
                       for i in range(20)])
    codes = base.encode(wav)[0]
    assert torch.equal(codes, tuned.encode(wav)[0])
    objective = CodecObjective(CodecLossConfig(adversarial=False), SR)
    with torch.no_grad():
        before, after = (objective.reconstruction(c.decode(codes), wav)["recon"].item() for c in (base, tuned))
    print(f"recon with the base decoder {before:.4f}, fine-tuned {after:.4f}")
    assert after < 0.9 * before
    with pytest.raises(Exception, match="decoder_only needs model.init_from"):
        load_codec_config("configs/codec_tiny.yaml", ["data.train=x", "decoder_only=true"])


def test_warns_when_most_codewords_would_count_as_dead(codec_data, tmp_path, caplog):
    """threshold x bins above the latent frames per update (here 2 x 1024 > 8 x 13) makes the EMA count
    of most words fall below the threshold, so they are replaced every update: warn before training."""
    from magnet_audio.training.codec_train import load_codec_config, train_codec

    cfg = load_codec_config("configs/codec_tiny.yaml", [
        f"data.train={codec_data}", f"run_dir={tmp_path / 'run'}", *TINY, "model.bins=1024",
        "model.threshold_ema_dead_code=2", "model.kmeans_init=false", "optim.steps=1", "valid.every=0",
        "valid.batches=1"])
    with caplog.at_level("WARNING"):
        train_codec(cfg)
    assert "will count as dead" in caplog.text


@pytest.mark.slow
def test_adversarial_step_resume_and_export_cli(codec_data, tmp_path):
    """Two steps with the discriminator through `magnet train-codec`; resuming the second step from
    the first checkpoint gives the same weights; `magnet export` writes the codec."""
    import shutil

    from magnet_audio.cli import main
    from magnet_audio.training.runtime import list_checkpoints, load_checkpoint

    run = tmp_path / "run"
    args = ["configs/codec_tiny.yaml", f"data.train={codec_data}", f"run_dir={run}", *TINY, *TINY_DISC,
            "optim.steps=2", "valid.every=0", "valid.batches=1", "log.every=1", "checkpoint.every=1",
            "checkpoint.keep_last=5"]
    assert main(["train-codec", *args]) == 0
    rows = _read_csv(run / "train.csv")
    assert len(rows) == 2 and all(k in rows[0] for k in ("d_loss", "adv", "feat", "msspec", "g_loss"))
    (_, ckpt1), (_, ckpt2) = list_checkpoints(run)
    s1, s2 = load_checkpoint(ckpt1)["objective"], load_checkpoint(ckpt2)["objective"]
    disc_keys = [k for k in s2 if k.startswith("losses.discriminator.")]
    assert disc_keys and any(not torch.equal(s1[k], s2[k]) for k in disc_keys)  # the discriminator trains

    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    (resumed / "checkpoints" / ckpt2.name).unlink()
    assert main(["train-codec", *args[:2], f"run_dir={resumed}", *args[3:], "--resume"]) == 0
    s2_resumed = load_checkpoint(resumed / "checkpoints" / ckpt2.name)["objective"]
    assert all(torch.equal(s2[k], s2_resumed[k]) for k in s2)

    assert main(["export", str(run), str(tmp_path / "exported")]) == 0
    codec = load_compression_model(tmp_path / "exported", device="cpu")
    codes, _ = codec.encode(torch.randn(2, 1, 4000) * 0.1)
    assert codes.shape == (2, 4, 13)
    assert codec.decode(codes).shape == (2, 1, 13 * 320)


@pytest.mark.slow
def test_two_processes_gloo(codec_data, tmp_path):
    """torchrun with 2 CPU processes: discriminator, q_dropout (one draw for both ranks), all-reduced
    codebook statistics; the trainer checks that the ranks' weights agree at every checkpoint."""
    import subprocess
    import sys

    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "magnet_audio.training.codec_train", "configs/codec_tiny.yaml", f"data.train={codec_data}",
           f"run_dir={run}", *TINY, *TINY_DISC, "model.q_dropout=true", "optim.steps=4", "checkpoint.every=2",
           "valid.every=2", "log.every=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from magnet_audio.training.runtime import list_checkpoints, load_checkpoint
    checkpoints = list_checkpoints(run)
    assert [step for step, _ in checkpoints] == [2, 4]
    ckpt = load_checkpoint(checkpoints[-1][1])
    assert ckpt["world_size"] == 2 and ckpt["meta"]["kind"] == "codec"
    assert "2 process(es)" in proc.stderr
    assert load_compression_model(run / "export", device="cpu").num_codebooks == 4


def _dotted(cls, prefix=""):
    import dataclasses
    import typing
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _dotted(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def test_example_config_documents_every_option():
    import dataclasses
    from pathlib import Path

    import yaml

    from magnet_audio.training.codec_train import CodecTrainConfig, load_codec_config

    path = Path(__file__).parents[2] / "configs" / "codec_tiny.yaml"
    raw = yaml.safe_load(path.read_text())
    keys = [k for k in _dotted(CodecTrainConfig) if k != "model"]
    keys += [f"model.{f.name}" for f in dataclasses.fields(EncodecConfig)] + ["model.init_from"]
    for key in keys:
        node = raw
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{key} is not documented in {path}"
            node = node[part]
    cfg = load_codec_config(path, ["data.train=x"])
    assert (cfg.codec_config.sample_rate, cfg.codec_config.n_q, cfg.codec_config.bins) == (16000, 4, 64)
    with pytest.raises(Exception, match="init_from"):
        load_codec_config(path, ["data.train=x", "model.init_from=some/codec"])
    assert load_codec_config(path, ["data.train=x", "model={init_from: a/b, q_dropout: true}"]).init_from == "a/b"
