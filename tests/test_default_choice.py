"""Which model loads when none is named (``MAGNeT.get_pretrained()``, ``magnet generate``): as in
audiocraft, ``facebook/magnet-small-10secs`` when it is cached or the hub answers; else the bundled
``magnet-audio/synth-music`` with a one-line note saying why, quickly; ``$MAGNET_MODEL`` and
``--model`` override. One owner decides: :func:`magnet_audio.names.resolve_default_model`."""

import socket
import time

import huggingface_hub.constants
import pytest

from magnet_audio import MAGNeT, names
from magnet_audio.cli import main as cli_main
from magnet_audio.names import BUNDLED_MODEL, DEFAULT_MODEL, resolve_default_model


@pytest.fixture
def clean(monkeypatch, tmp_path):
    """No $MAGNET_MODEL, empty Hugging Face caches (ours and transformers'), offline."""
    monkeypatch.delenv("MAGNET_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MAGNET_CACHE_DIR", str(tmp_path / "magnet-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return tmp_path


def _cache(root, repo: str, *files: str) -> None:
    """Files of ``repo`` laid out as huggingface_hub caches them (refs/main -> a snapshot)."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text("0" * 40)
    for name in files:
        path = folder / "snapshots" / ("0" * 40) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def _cache_default_model(root, t5: bool = True) -> None:
    _cache(root / "magnet-cache", DEFAULT_MODEL, "state_dict.bin", "compression_state_dict.bin")
    _cache(root / "magnet-cache", "facebook/encodec_32khz", "config.json", "model.safetensors")
    if t5:
        _cache(root / "hf-cache", "google-t5/t5-base", "config.json", "model.safetensors", "spiece.model")


def _no_probe(*args, **kwargs):
    raise AssertionError("the hub was asked")


def test_offline_and_not_cached_falls_back_to_the_bundled_model_with_a_note(clean, monkeypatch):
    monkeypatch.setattr(names, "probe_hub", _no_probe)
    notes = []
    assert resolve_default_model(notice=notes.append) == BUNDLED_MODEL  # no probe: it would raise
    assert len(notes) == 1 and "\n" not in notes[0]
    assert DEFAULT_MODEL in notes[0] and "HF_HUB_OFFLINE" in notes[0] and "not in the local" in notes[0]


def test_the_cached_default_model_is_used_even_offline(clean, monkeypatch):
    monkeypatch.setattr(names, "probe_hub", _no_probe)
    _cache_default_model(clean, t5=False)  # its T5 text encoder missing: not usable offline
    assert resolve_default_model(notice=lambda line: None) == BUNDLED_MODEL
    assert resolve_default_model(t5_path=clean, notice=_no_probe) == DEFAULT_MODEL  # a local T5 given
    _cache_default_model(clean)
    assert resolve_default_model(notice=_no_probe) == DEFAULT_MODEL


def test_online_the_default_model_is_used_when_the_hub_answers(clean, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(names, "probe_hub", lambda timeout=None: None)
    assert resolve_default_model(notice=_no_probe) == DEFAULT_MODEL
    monkeypatch.setattr(names, "probe_hub", lambda timeout=None: "ConnectError: no route")
    notes = []
    assert resolve_default_model(notice=notes.append) == BUNDLED_MODEL
    assert "the hub did not answer (ConnectError: no route)" in notes[0]


def test_an_unreachable_hub_falls_back_quickly(clean, monkeypatch):
    """A refused connection (a closed local port as the hub) and a hub that never answers both give
    the bundled model within the probe's short timeout, not a long network timeout."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with socket.socket() as sock:  # a free port with nothing listening on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    notes = []
    start = time.perf_counter()
    assert resolve_default_model(notice=notes.append) == BUNDLED_MODEL
    # bounds the wait, not speed: far below a network timeout, with room for a loaded machine
    assert time.perf_counter() - start < names.HUB_PROBE_TIMEOUT + 10
    assert "the hub did not answer" in notes[0]

    def hang(*args, **kwargs):
        time.sleep(30)

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", hang)
    monkeypatch.setattr(names, "HUB_PROBE_TIMEOUT", 0.3)
    start = time.perf_counter()
    assert names.probe_hub() == "no answer within 0.3 s"
    assert time.perf_counter() - start < 10  # the hung request (30 s) is abandoned at the timeout


def test_magnet_model_and_explicit_names_override(clean, monkeypatch, fixture_dir):
    monkeypatch.setattr(names, "probe_hub", _no_probe)
    monkeypatch.setattr(names, "default_model_cached", _no_probe)
    monkeypatch.setenv("MAGNET_MODEL", str(fixture_dir))
    assert resolve_default_model(notice=_no_probe) == str(fixture_dir)
    model = MAGNeT.get_pretrained(device="cpu", t5_path=fixture_dir / "t5")  # no name: $MAGNET_MODEL
    assert model.name == str(fixture_dir) and model.lm.cfg.dim == 64


def test_get_pretrained_without_a_name_loads_the_cached_default_model(clean, monkeypatch):
    import magnet_audio.models

    _cache_default_model(clean)
    loading = []

    def record(name, device=None):
        loading.append(str(name))
        raise RuntimeError("stop here")

    monkeypatch.setattr(magnet_audio.models, "load_compression_model", record)
    with pytest.raises(RuntimeError, match="stop here"):
        MAGNeT.get_pretrained(device="cpu")
    assert loading == [DEFAULT_MODEL]


def test_magnet_generate_asks_the_resolver_only_without_model(monkeypatch, fixture_dir, tmp_path):
    import magnet_audio.models

    asked = []
    monkeypatch.setattr(magnet_audio.models, "resolve_default_model",
                        lambda *a, **k: asked.append(1) or str(fixture_dir))
    assert cli_main(["generate", "x", "--model", str(fixture_dir), "--t5-path", str(fixture_dir / "t5"),
                     "-o", str(tmp_path / "a"), "--steps", "1,1,1,1", "-q"]) == 0
    assert asked == []
    assert cli_main(["generate", "x", "--t5-path", str(fixture_dir / "t5"), "-o", str(tmp_path / "b"),
                     "--steps", "1,1,1,1", "-q"]) == 0
    assert asked == [1] and len(list((tmp_path / "b").glob("*.wav"))) == 1


def test_the_parser_does_not_probe_the_hub(monkeypatch):
    """Building the command line (e.g. for --help) asks nothing: the default is resolved at load time."""
    monkeypatch.setattr(names, "probe_hub", _no_probe)
    monkeypatch.setattr(names, "default_model_cached", _no_probe)
    from magnet_audio.cli import build_parser
    assert build_parser().parse_args(["generate", "x"]).model is None
