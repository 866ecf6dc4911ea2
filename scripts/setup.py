#!/usr/bin/env python3
"""Create ./.venv and install magnet-audio into it (idempotent; re-run after pulling).

    python3 scripts/setup.py           # the package
    python3 scripts/setup.py --test    # plus everything the test suite exercises: the test, data
                                       # and app extras, the system packages of
                                       # scripts/install_system_deps.sh (needs root or sudo),
                                       # the light evaluation models (install_eval_deps.sh --no-musicnn)
                                       # and audiocraft 1.3.0 without its dependencies in
                                       # .venv/audiocraft-1.3.0 (scripts/audiocraft_compat.py), which
                                       # tests/test_audiocraft_interop.py runs

PyTorch is installed first, pinned (MAGNET_TORCH, default torch==2.13.0), so that pip does not
pick an unrelated multi-GB build to satisfy a range. Needs only Python >= 3.10.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
TORCH = os.environ.get("MAGNET_TORCH", "torch==2.13.0")


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", action="store_true", help="also install the test dependencies")
    args = parser.parse_args()
    if sys.version_info < (3, 10):
        sys.exit(f"magnet-audio needs Python >= 3.10, this is {sys.version.split()[0]}")
    python = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists():
        print(f"[setup] creating {VENV}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    extras = "[test,data,app]" if args.test else ""
    if args.test:
        run("bash", str(ROOT / "scripts" / "install_system_deps.sh"))
        # audiocraft has its own folder and stamp: never importable from .venv, never mixed with our packages
        from audiocraft_compat import install as install_audiocraft  # beside this script
        install_audiocraft(python)
    stamp = VENV / ".magnet-installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + (TORCH + extras).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == want:
        return 0
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode != 0:
        print(f"[setup] installing {TORCH}", file=sys.stderr)
        run(*pip, TORCH)
    print(f"[setup] installing magnet-audio{extras}", file=sys.stderr)
    run(*pip, "-e", f"{ROOT}{extras}")
    if args.test:
        run("bash", str(ROOT / "scripts" / "install_eval_deps.sh"), "--no-musicnn")
    stamp.write_text(want)
    return 0


if __name__ == "__main__":
    sys.exit(main())
