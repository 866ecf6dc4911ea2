"""EnCodec: parity with audiocraft and transformers, checkpoint formats, errors."""

import math

import pytest
import torch
import yaml

from magnet_audio.checkpoints import safe_load
from magnet_audio.codec import (
    EncodecConfig,
    config_from_xp_cfg,
    config_to_xp_cfg,
    load_compression_model,
    save_audiocraft_export,
)
from magnet_audio.errors import CheckpointError, InputError

TOL = 1e-4


def _check_against(model, reference):
    codes, scale = model.encode(reference["wav"])
    assert codes.dtype == torch.int64
    assert torch.equal(codes, reference["codes"])
    with torch.no_grad():
        recon = model.decode(codes, scale)
    assert recon.shape == reference["recon"].shape
    assert (recon - reference["recon"]).abs().max() < TOL


# ---------------------------------------------------------------- reference fixtures


def test_audiocraft_fixture(fixture_dir, reference):
    model = load_compression_model(fixture_dir, device="cpu")
    assert (model.sample_rate, model.channels, model.frame_rate, model.hop_length) == (32000, 1, 50.0, 640)
    assert (model.num_codebooks, model.cardinality) == (4, 64)
    assert not model.training
    _check_against(model, reference)


def test_audiocraft_fixture_parametrization_keys(fixture_dir, reference, tmp_path):
    """An export whose weight norm uses ``parametrizations.weight.original0/1`` names loads the same."""
    package = safe_load(fixture_dir / "compression_state_dict.bin")
    package["best_state"] = {k.replace(".weight_g", ".parametrizations.weight.original0")
                              .replace(".weight_v", ".parametrizations.weight.original1"): v
                             for k, v in package["best_state"].items()}
    torch.save(package, tmp_path / "codec.bin")
    _check_against(load_compression_model(tmp_path / "codec.bin", device="cpu"), reference)


def test_hf_fixture(fixture_dir):
    model = load_compression_model(fixture_dir / "hf_encodec", device="cpu")
    assert (model.num_codebooks, model.cardinality, model.frame_rate) == (4, 2048, 50.0)
    _check_against(model, torch.load(fixture_dir / "hf_encodec" / "reference.pt", weights_only=True))


def test_dtype_float64(fixture_dir):
    model = load_compression_model(fixture_dir / "hf_encodec", device="cpu", dtype=torch.float64)
    assert model.quantizer.codebooks[0].embed.dtype == torch.float64
    reference = torch.load(fixture_dir / "hf_encodec" / "reference.pt", weights_only=True)
    codes, _ = model.encode(reference["wav"])  # float32 input is cast to the model's dtype
    assert torch.equal(codes, reference["codes"])
    assert model.decode(codes).dtype == torch.float64


def test_pointer_file(fixture_dir, tmp_path):
    """audiocraft's ``{'pretrained': name}`` compression file, given as a file or inside a directory."""
    torch.save({"pretrained": str(fixture_dir / "hf_encodec"), "exported": True, "version": "1.3.0"},
               tmp_path / "compression_state_dict.bin")
    reference = torch.load(fixture_dir / "hf_encodec" / "reference.pt", weights_only=True)
    _check_against(load_compression_model(tmp_path / "compression_state_dict.bin", device="cpu"), reference)
    _check_against(load_compression_model(tmp_path, device="cpu"), reference)


def test_export_roundtrip_and_config(fixture_dir, reference, tmp_path):
    model = load_compression_model(fixture_dir, device="cpu")
    path = save_audiocraft_export(model, tmp_path / "out" / "compression_state_dict.bin")
    package = safe_load(path)
    assert package["exported"] is True and isinstance(package["version"], str)
    original = safe_load(fixture_dir / "compression_state_dict.bin")
    assert package["best_state"].keys() == original["best_state"].keys()  # audiocraft's key names
    xp_cfg = yaml.safe_load(package["xp.cfg"])
    assert config_from_xp_cfg(xp_cfg) == model.config
    assert EncodecConfig.from_dict(model.config.to_dict()) == model.config
    assert config_to_xp_cfg(model.config)["seanet"]["pad_mode"] == "constant"
    _check_against(load_compression_model(path.parent, device="cpu"), reference)


# ---------------------------------------------------------------- transformers as independent reference

HF_CASES = {
    "16k-reflect-identity-skip": dict(sampling_rate=16000, upsampling_ratios=[8, 5, 4, 2], num_filters=4,
                                      hidden_size=8, num_lstm_layers=1, pad_mode="reflect",
                                      use_conv_shortcut=False, use_causal_conv=False, codebook_size=64,
                                      target_bandwidths=[0.6, 0.9]),
    "32k-constant-conv-skip": dict(sampling_rate=32000, upsampling_ratios=[8, 5, 4, 4], num_filters=2,
                                   hidden_size=16, num_lstm_layers=2, num_residual_layers=2, pad_mode="constant",
                                   use_conv_shortcut=True, use_causal_conv=False, codebook_size=128,
                                   target_bandwidths=[1.4]),
    "causal-stereo": dict(sampling_rate=8000, upsampling_ratios=[4, 2], num_filters=4, hidden_size=8,
                          num_lstm_layers=1, pad_mode="reflect", use_causal_conv=True, trim_right_ratio=0.5,
                          audio_channels=2, codebook_size=16, target_bandwidths=[8.0], kernel_size=5,
                          last_kernel_size=3, residual_kernel_size=5, dilation_growth_rate=3,
                          num_residual_layers=2),
    "normalize-replicate": dict(sampling_rate=24000, upsampling_ratios=[6, 4], num_filters=3, hidden_size=6,
                                compress=3, num_lstm_layers=1, pad_mode="replicate", use_causal_conv=False,
                                normalize=True, audio_channels=2, codebook_size=32,
                                target_bandwidths=[5.0, 15.0]),
}


@torch.no_grad()
def _fill_codebooks(hf, wav):
    """A fresh EncodecModel has all-zero codebooks: draw each codebook's words from the latent
    frames (then residuals) of ``wav`` plus noise, so codes are diverse and sensitive to the latent."""
    residual = hf.encoder(wav).transpose(1, 2).reshape(-1, hf.config.hidden_size)
    for layer in hf.quantizer.layers:
        embed = layer.codebook.embed
        rows = residual[torch.randint(len(residual), (len(embed),))]
        embed.copy_(rows + 0.1 * rows.std() * torch.randn_like(rows))
        nearest = torch.cdist(residual, embed).argmin(dim=1)
        residual = residual - embed[nearest]


@pytest.mark.parametrize("case", sorted(HF_CASES))
def test_matches_transformers(case, tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.EncodecConfig(**HF_CASES[case])
    torch.manual_seed(0)
    hf = transformers.EncodecModel(config).eval()
    _fill_codebooks(hf, torch.randn(4, config.audio_channels, 64 * config.hop_length) * 0.3)
    hf.save_pretrained(tmp_path / "hf")
    ours = load_compression_model(tmp_path / "hf", device="cpu")
    bandwidth = max(config.target_bandwidths)
    expected_n_q = int(1000 * bandwidth // (math.ceil(config.sampling_rate / config.hop_length)
                                            * math.log2(config.codebook_size)))
    assert ours.num_codebooks == expected_n_q and ours.cardinality == config.codebook_size
    save_audiocraft_export(ours, tmp_path / "ac.bin")
    exported = load_compression_model(tmp_path / "ac.bin", device="cpu")

    hop = config.hop_length
    for length in (3, 20 * hop + hop // 3):  # shorter than the padding (reflect edge case); not a multiple of hop
        wav = torch.randn(2, config.audio_channels, length) * 0.3
        with torch.no_grad():
            hf_codes, hf_scales = hf.encode(wav, bandwidth=bandwidth, return_dict=False)[:2]
            hf_wav = hf.decode(hf_codes, hf_scales, return_dict=False)[0]
        for model in (ours, exported):
            codes, scale = model.encode(wav)
            assert codes.shape == (2, expected_n_q, math.ceil(length / hop))
            assert torch.equal(codes, hf_codes[0])
            if length > 3:  # the codes vary, so a small error in the latent would show
                assert min(len(codes[:, k].unique()) for k in range(expected_n_q)) >= 3
            if config.normalize:
                assert torch.allclose(scale, hf_scales[0], rtol=1e-6)
            else:
                assert scale is None
            with torch.no_grad():
                recon = model.decode(codes, scale)
            assert recon.shape == hf_wav.shape == (2, config.audio_channels, codes.shape[-1] * hop)
            assert (recon - hf_wav).abs().max() < TOL


# ---------------------------------------------------------------- errors


class _Evil:
    ran = False

    def __reduce__(self):
        return (_mark_ran, ())


def _mark_ran():
    _Evil.ran = True
    return "pwned"


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_compression_model(tmp_path / "nope.bin", device="cpu")
    with pytest.raises(CheckpointError, match="neither"):
        load_compression_model(tmp_path, device="cpu")  # an empty directory
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
                        .numpy().tobytes())
    with pytest.raises(CheckpointError):
        load_compression_model(corrupt, device="cpu")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text('{"model_type": "encodec"}')
    (tmp_path / "hf" / "model.safetensors").write_bytes(corrupt.read_bytes())
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_compression_model(tmp_path / "hf", device="cpu")


def test_unreachable_hub_repo(tmp_path):
    with pytest.raises(CheckpointError, match="no codec found in hub repo"):
        load_compression_model("nobody-here/no-such-codec", device="cpu")  # tests run with HF_HUB_OFFLINE=1
    torch.save({"pretrained": "nobody-here/no-such-codec"}, tmp_path / "pointer.bin")
    with pytest.raises(CheckpointError, match="no-such-codec"):
        load_compression_model(tmp_path / "pointer.bin", device="cpu")


def test_unsafe_pickle_is_refused(tmp_path):
    torch.save({"best_state": {}, "xp.cfg": "", "hook": _Evil()}, tmp_path / "evil.bin")
    with pytest.raises(CheckpointError, match="arbitrary code"):
        load_compression_model(tmp_path / "evil.bin", device="cpu")
    assert not _Evil.ran


def test_wrong_keys_are_named(fixture_dir, tmp_path):
    package = safe_load(fixture_dir / "compression_state_dict.bin")
    state = package["best_state"]
    state["encoder.model.99.conv.conv.bias"] = torch.zeros(1)
    del state["decoder.model.15.conv.conv.bias"]
    torch.save(package, tmp_path / "bad.bin")
    with pytest.raises(CheckpointError, match=r"decoder\.model\.15\.conv\.conv\.bias.*encoder\.model\.99"):
        load_compression_model(tmp_path / "bad.bin", device="cpu")
    del state["encoder.model.99.conv.conv.bias"]
    state["decoder.model.15.conv.conv.bias"] = torch.zeros(3)
    torch.save(package, tmp_path / "bad.bin")
    with pytest.raises(CheckpointError, match=r"shapes.*decoder\.model\.15\.conv\.conv\.bias"):
        load_compression_model(tmp_path / "bad.bin", device="cpu")


@pytest.mark.parametrize("section,key,value,match", [
    ("seanet", "norm", "time_group_norm", "norm"),
    ("seanet", "pad_mode", "zeros", "pad_mode"),
    ("encodec", "quantizer", "no_quant", "quantizer"),
    ("seanet", "decoder", {"n_filters": 8}, "differ"),
])
def test_unsupported_config_values(fixture_dir, tmp_path, section, key, value, match):
    package = safe_load(fixture_dir / "compression_state_dict.bin")
    cfg = yaml.safe_load(package["xp.cfg"])
    cfg[section][key] = value
    package["xp.cfg"] = yaml.safe_dump(cfg)
    torch.save(package, tmp_path / "cfg.bin")
    with pytest.raises(CheckpointError, match=match):
        load_compression_model(tmp_path / "cfg.bin", device="cpu")


def test_bad_inputs(fixture_dir):
    model = load_compression_model(fixture_dir, device="cpu")
    for wav in (torch.zeros(1, 640), torch.zeros(1, 2, 640), torch.zeros(1, 1, 0),
                torch.zeros(1, 1, 640, dtype=torch.int16), [0.0] * 640):
        with pytest.raises(InputError):
            model.encode(wav)
    for codes in (torch.zeros(4, 10, dtype=torch.long), torch.zeros(1, 5, 10, dtype=torch.long),
                  torch.zeros(1, 4, 10), torch.full((1, 4, 10), 64)):
        with pytest.raises(InputError):
            model.decode(codes)
    with pytest.raises(InputError, match="scale"):
        model.decode(torch.zeros(1, 4, 10, dtype=torch.long), torch.ones(1, 1))
    with pytest.raises(InputError, match="unknown keys"):
        EncodecConfig.from_dict({"sample_rate": 32000, "bogus": 1})
