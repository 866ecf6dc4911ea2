"""Running audiocraft 1.3.0 itself beside this project: where it is installed, how, and the stand-ins
it needs to import here. One copy, shared by ``scripts/setup.py --test`` (which installs it), the
interoperability tests (``tests/test_audiocraft_interop.py``) and ``scripts/bench_vs_audiocraft.py``.

audiocraft is not a dependency of this project: it pins torch and needs torchaudio, which does not
pair with the CPU wheel we use. It is installed without its dependencies into a separate folder,
``.venv/audiocraft-1.3.0`` (or ``$MAGNET_AUDIOCRAFT_DIR``)::

    .venv/bin/pip install --no-deps -t .venv/audiocraft-1.3.0 audiocraft==1.3.0 flashy julius einops \\
        hydra-core omegaconf antlr4-python3-runtime==4.9.3 num2words docopt      # (PACKAGES: pinned)

and put on ``sys.path`` by :func:`activate`. Modules audiocraft imports that its LMs and codec never
run (torchaudio, av, spacy, ...) are replaced by empty stand-ins at import time, and xformers' two
attention ops by PyTorch equivalents (the backend audiocraft's loader selects for the released
MAGNeT models, on the same SDPA kernel as ours). :func:`deactivate` takes all of it back out of the
interpreter, so that other code in the same process never sees the stand-ins.

Light on purpose: nothing here imports torch or audiocraft until :func:`activate` is called.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import subprocess
import sys
import types
from pathlib import Path

VERSION = "1.3.0"
#: what `pip install --no-deps -t DIR` installs: audiocraft and the pure-Python packages its model
#: code imports (pinned, so that every machine and CI runs the same code)
PACKAGES = (f"audiocraft=={VERSION}", "flashy==0.0.2", "julius==0.2.8", "einops==0.8.2", "hydra-core==1.3.2",
            "omegaconf==2.3.0", "antlr4-python3-runtime==4.9.3", "num2words==0.5.14", "docopt==0.6.2")
ENV = "MAGNET_AUDIOCRAFT_DIR"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / ".venv" / f"audiocraft-{VERSION}"
MARKER = ".magnet-audiocraft-installed"  # written after a complete install: its content is PACKAGES

#: top-level packages audiocraft imports that its LMs and codec do not use at run time
STUBBED = ("torchaudio", "av", "spacy", "demucs", "torchmetrics", "encodec", "pesq", "pystoi",
           "laion_clap", "dora", "submitit", "treetable", "gradio", "colorlog")
#: top-level modules that activate() brings in from the folder, removed again by deactivate()
_OWN = ("audiocraft", "flashy", "julius", "einops", "hydra", "omegaconf", "antlr4", "num2words", "docopt",
        "xformers") + STUBBED


def install_dir() -> Path:
    """Where audiocraft is (to be) installed: ``$MAGNET_AUDIOCRAFT_DIR``, else ``.venv/audiocraft-1.3.0``."""
    return Path(os.environ.get(ENV) or DEFAULT_DIR).expanduser()


def is_installed(folder: str | os.PathLike | None = None) -> bool:
    """Whether :func:`install` completed in ``folder`` with exactly :data:`PACKAGES`."""
    marker = Path(folder or install_dir()) / MARKER
    return marker.is_file() and marker.read_text().split() == list(PACKAGES)


def missing_reason(folder: str | os.PathLike | None = None) -> str | None:
    """None when ``folder`` holds audiocraft 1.3.0 (installed by :func:`install` or by hand with
    ``pip install --no-deps -t``); else why not and how to install it."""
    folder = Path(folder or install_dir())
    if (folder / "audiocraft" / "__init__.py").is_file() and (folder / f"audiocraft-{VERSION}.dist-info").is_dir():
        return None
    return (f"audiocraft {VERSION} is not installed in {folder} (run `python3 scripts/setup.py --test`, "
            f"or set ${ENV} to a folder made with `pip install --no-deps -t DIR {' '.join(PACKAGES)}`)")


def install(python: str | os.PathLike = sys.executable, folder: str | os.PathLike | None = None) -> Path:
    """``pip install --no-deps -t folder PACKAGES`` with ``python``'s pip, unless already done (idempotent)."""
    folder = Path(folder or install_dir())
    if is_installed(folder):
        return folder
    print(f"[setup] installing audiocraft {VERSION} (no dependencies) into {folder}", file=sys.stderr)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--upgrade", "-t", str(folder), *PACKAGES], check=True)
    (folder / MARKER).write_text("\n".join(PACKAGES) + "\n")
    return folder


class _Stub(types.ModuleType):
    """A module whose every attribute is another stand-in (so ``from x import y`` works)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub(f"{self.__name__}.{name}")

    def __call__(self, *args, **kwargs):
        return _Stub(f"{self.__name__}()")

    def __mro_entries__(self, bases):
        return (object,)


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in STUBBED:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Stub(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def _xformers_ops() -> types.ModuleType:
    """The two xformers ops audiocraft's attention calls, on PyTorch: ``unbind`` and
    ``memory_efficient_attention`` (layout [B, T, H, D], additive bias)."""
    import torch

    ops = types.ModuleType("xformers.ops")
    ops.unbind = torch.unbind

    def memory_efficient_attention(q, k, v, attn_bias=None, p=0.0):
        out = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=attn_bias, dropout_p=p)
        return out.transpose(1, 2)

    ops.memory_efficient_attention = memory_efficient_attention
    ops.LowerTriangularMask = type("LowerTriangularMask", (), {})  # imported by a compatibility check only
    return ops


_state: dict = {}


def activate(folder: str | os.PathLike | None = None) -> types.ModuleType:
    """Make ``import audiocraft`` work in this process (from ``folder``); returns the module."""
    folder = str(Path(folder or install_dir()))
    reason = missing_reason(folder)
    if reason:
        raise RuntimeError(reason)
    if not _state:
        finder = _StubFinder()
        sys.path.insert(0, folder)
        sys.meta_path.insert(0, finder)
        xformers = types.ModuleType("xformers")  # no xformers.profiler: not profiled
        xformers.ops = _xformers_ops()
        sys.modules.update({"xformers": xformers, "xformers.ops": xformers.ops})
        _state.update(folder=folder, finder=finder)
    import audiocraft

    if audiocraft.__version__ != VERSION:
        raise RuntimeError(f"{folder} holds audiocraft {audiocraft.__version__}, expected {VERSION}")
    return audiocraft


def deactivate() -> None:
    """Undo :func:`activate`: the folder, the stand-ins and every module imported from them leave."""
    if not _state:
        return
    sys.meta_path[:] = [f for f in sys.meta_path if f is not _state["finder"]]
    if _state["folder"] in sys.path:
        sys.path.remove(_state["folder"])
    for name in list(sys.modules):
        module = sys.modules[name]
        top = name.split(".")[0]
        origin = getattr(module, "__file__", None) or ""
        if top in _OWN or origin.startswith(_state["folder"] + os.sep):
            del sys.modules[name]
    _state.clear()
