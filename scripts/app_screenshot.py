"""The screenshot of ``magnet app`` in docs/app.png: the app serving the default model (the bundled
``magnet-audio/synth-music``), one generated clip, in headless Chromium.

    .venv/bin/python scripts/app_screenshot.py                 # writes docs/app.png
    .venv/bin/python scripts/app_screenshot.py --out /tmp/app.png --prompt "slow piano, 70 bpm"

The app runs on CPU, offline, on a free loopback port with its results in a temporary folder (the
page shows no path of this machine); the seed is fixed, so the clip is the same every time.
Needs the `app` extra (gradio, selenium) and Chromium with chromedriver
(scripts/install_system_deps.sh).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "magnet-audio/synth-music"
PROMPT = "upbeat electronic track with punchy drums and a synth bass, 120 bpm"


def start_app(port: int, workdir: Path, model: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    log = open(workdir / "server.log", "w")
    return subprocess.Popen([sys.executable, "-m", "magnet_audio.cli", "app", "--model", model, "--only-listed",
                             "--device", "cpu", "--port", str(port), "--output-dir", str(workdir / "out")],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)


def wait_for(url: str, proc: subprocess.Popen, workdir: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"magnet app did not start:\n{(workdir / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)


def browser(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        raise SystemExit("needs chromium and chromedriver (bash scripts/install_system_deps.sh)")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                 "--disable-background-networking", f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def shoot(url: str, out: Path, prompt: str, seed: int, width: int, height: int, timeout: float) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser(width, height)
    try:
        wait = WebDriverWait(driver, timeout, poll_frequency=0.2)
        driver.get(url)
        box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#prompts textarea"))
        box.send_keys(prompt)
        seed_box = driver.find_element(By.CSS_SELECTOR, "#seed input")
        seed_box.clear()
        seed_box.send_keys(str(seed))
        driver.find_element(By.CSS_SELECTOR, "#generate").click()
        wait.until(lambda d: "Generated" in d.find_element(By.CSS_SELECTOR, "#result-status").text)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#spectrogram-0 img"))
        time.sleep(2)  # the waveform and the image finish drawing
        driver.execute_script("window.scrollTo(0, 0)")
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "app.png", help="PNG to write")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model the app serves")
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--size", default="1400x1250", help="browser window WIDTHxHEIGHT")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the generation")
    args = parser.parse_args(argv)
    width, height = (int(x) for x in args.size.lower().split("x"))
    sys.path.insert(0, str(ROOT / "src"))
    from magnet_audio.app_page import free_port

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="magnet-screenshot-") as tmp:
        proc = start_app(port, Path(tmp), args.model)
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_for(url, proc, Path(tmp))
            shoot(url, args.out, args.prompt, args.seed, width, height, args.timeout)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
