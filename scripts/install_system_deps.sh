#!/usr/bin/env bash
# Install the system packages `magnet data synth` needs: FluidSynth (the synthesizer and the
# shared library pyfluidsynth loads) and the FluidR3 General MIDI soundfont; and, for the
# `magnet app` browser test (tests/interfaces/test_app.py), Debian's chromium and chromium-driver.
#
#     bash scripts/install_system_deps.sh          # as root, or as a user with sudo
#
# Idempotent: packages already installed are skipped, and nothing runs when all are present.
# Debian/Ubuntu (apt-get) only; elsewhere install FluidSynth >= 2 and a GM .sf2 yourself and pass
# `magnet data synth ... --soundfont PATH`.
set -euo pipefail

PACKAGES=(fluidsynth libfluidsynth3 fluid-soundfont-gm)
PACKAGES+=(chromium chromium-driver)  # `magnet app`'s end-to-end test: headless Chromium + ChromeDriver

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "[install_system_deps] already installed: ${PACKAGES[*]}"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "[install_system_deps] apt-get not found: install these yourself (FluidSynth >= 2 and a General MIDI soundfont): ${missing[*]}" >&2
  exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
elif command -v sudo >/dev/null 2>&1 && [ -t 0 ]; then
  SUDO=(sudo)  # interactive: sudo asks for the password
else
  echo "[install_system_deps] need root to install: ${missing[*]}" >&2
  echo "  run:  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "[install_system_deps] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
  # Stale or empty package lists: refresh them once and retry.
  "${SUDO[@]}" apt-get update
  "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
echo "[install_system_deps] done"
