import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network (set before magnet_audio is imported)
torch.set_num_threads(min(2, torch.get_num_threads()))

FIXTURES = Path(__file__).parent / "fixtures" / "audiocraft-tiny"


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def reference() -> dict:
    return torch.load(FIXTURES / "reference.pt", weights_only=True)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models decode step by step: threads only add synchronisation (and stall on busy cores).
    Use per module with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
