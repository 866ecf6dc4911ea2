"""Where does a model lose the prompt's tempo? The checks behind the default model card's
"Why" and "Where tempo is lost" paragraphs, on a ``magnet data synth`` dataset:

1. text: does the frozen text encoder carry the bpm? A ridge regression from each caption's
   mean-pooled sentence embedding to log bpm, fitted on the training captions, scored on the
   held-out ones (Pearson r of the logs, share within 8 %).
2. decoding: pulse clarity (``adherence.pulse_clarity_of``) of clips generated for the first N
   held-out prompts under each decoding setting of ``--settings`` (a JSON object of
   ``set_generation_params`` overrides on top of the model's recommended options).
3. continuation: pulse clarity of the audio the model adds after the first ``--prefix`` seconds of
   each real held-out render (``generate_continuation``), next to the render's own remainder.
4. context: does the LM use the first codebook's context? Its cross-entropy on a masked 1 s block in
   the middle of each held-out render's codebook 0 (stage 0: codebooks 1-3 hidden), given the true
   context, the true context only within a few frames of the block (another render's codes beyond),
   another render's codes all around, or nothing (all of codebook 0 masked).
5. left-to-right: can the LM keep a beat when sampled one span at a time? After the first
   ``--prefix`` seconds of each real held-out render, codebook 0 is sampled left to right, one span
   (3 frames) a step, each given all that came before and nothing after (MAGNeT's confidence order and
   parallel steps out of the way), with codebooks 1-3 uniformly random words (they do not carry the
   beat: see the model card); pulse clarity of the added audio.
6. rhythm: how much the beat grid of each held-out render's bpm (first beat at the start, 16
   sixteenth-note slots of a 4/4 bar) says about its first codebook's tokens after the first 0.5 s:
   the rate of token changes on beats, on the other eighth notes and on the other sixteenths, and the
   mutual information of the slot with the token and with whether it changes, next to the same with
   each render paired with another render's bpm (chance, which also holds the estimate's bias). It
   bounds what knowing the beat can save an LM's cross-entropy. Renders without a bpm are left out.

The decoding check also reports two statistics of the first codebook's tokens, next to the held-out
renders' own: distinct tokens per clip and the share of frames that repeat the previous frame's token.

    .venv/bin/python research/tempo_diagnostics.py data/synth-6h --n 24
    .venv/bin/python research/tempo_diagnostics.py data/synth-6h --checks rhythm --n 108
    .venv/bin/python research/tempo_diagnostics.py data/synth-6h --checks decoding \\
        --settings '{"steps 60": {"decoding_steps": [60, 10, 10, 10]}, "temperature 0.3": {"temperature": 0.3}}'

About 5 min of CPU per 24 clips per decoding setting, and the same for the continuation and
left-to-right checks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from magnet_audio import MAGNeT
from magnet_audio.audio import audio_read, convert_audio
from magnet_audio.decoding.sampling import sample
from magnet_audio.evaluation import adherence as A


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def pulse(wav: torch.Tensor, sample_rate: int) -> float:
    """Pulse clarity of mono audio [T] at ``sample_rate``."""
    mono = convert_audio(wav.reshape(1, 1, -1).float(), sample_rate, A.SAMPLE_RATE, 1)
    return A.pulse_clarity_of(mono.reshape(-1).numpy())


def summary(values: list[float]) -> str:
    return f"mean {np.mean(values):.3f}, median {np.median(values):.3f}, above 0.3: {sum(v > 0.3 for v in values)}" \
           f"/{len(values)}"


def text_check(model: MAGNeT, train: list[dict], heldout: list[dict], ridge: float = 0.1) -> None:
    conditioner = next(iter(model.lm.condition_provider.conditioners.values()))
    if not hasattr(conditioner, "sentence_embedding"):
        print(f"text: skipped ({type(conditioner).__name__} has no sentence embedding)")
        return

    def embed(rows):
        texts = [r["description"] for r in rows]
        return torch.cat([conditioner.sentence_embedding(texts[i:i + 64]) for i in range(0, len(texts), 64)]).numpy()

    x_train, x_held = embed(train), embed(heldout)
    y_train, y_held = np.log([r["bpm"] for r in train]), np.log([r["bpm"] for r in heldout])
    design = np.c_[x_train, np.ones(len(x_train))]
    weights = np.linalg.solve(design.T @ design + ridge * np.eye(design.shape[1]), design.T @ y_train)
    predicted = np.c_[x_held, np.ones(len(x_held))] @ weights
    r = np.corrcoef(predicted, y_held)[0, 1]
    within = np.mean(np.abs(np.exp(predicted - y_held) - 1) <= A.TEMPO_TOLERANCE)
    print(f"text: ridge probe of log bpm from the prompt embedding, {len(train)} train -> {len(heldout)} held out: "
          f"Pearson r {r:.3f}, within 8 % {within:.3f}")


@torch.no_grad()
def context_check(model: MAGNeT, data: Path, rows: list[dict]) -> None:
    lm, sr = model.lm, model.sample_rate
    codes = torch.cat([model.compression_model.encode(
        audio_read(data / r["path"], sample_rate=sr, channels=1)[0][None].to(model.device))[0] for r in rows])
    memory = lm.encode_text([r["description"] for r in rows])
    half = int(model.frame_rate) // 2  # the block: 1 s around the middle
    start, end = codes.shape[-1] // 2 - half, codes.shape[-1] // 2 + half
    other = codes.roll(1, 0)  # each row gets the next render's codes

    def block_ce(visible: torch.Tensor) -> float:
        x = visible.clone()
        x[:, 1:] = lm.mask_id
        x[:, 0, start:end] = lm.mask_id
        logits = lm(x, memory, stage=0)[:, 0, start:end].float()
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 codes[:, 0, start:end].reshape(-1)).item()

    print(f"context: cross-entropy (nats) on a masked 1 s block of codebook 0, {len(rows)} renders:")
    print(f"context:   true context {block_ce(codes):.3f}")
    for frames in (5, 12, 25):
        mixed = other.clone()
        mixed[..., start - frames:end + frames] = codes[..., start - frames:end + frames]
        print(f"context:   true within {frames} frames, another render beyond {block_ce(mixed):.3f}")
    print(f"context:   another render all around {block_ce(other):.3f}")
    blank = codes.clone()
    blank[:, 0] = lm.mask_id
    print(f"context:   nothing visible {block_ce(blank):.3f}")


def token_stats(codes: torch.Tensor) -> str:
    """Distinct tokens per clip and the share of frames repeating the previous token, in codebook 0
    of codes [B, K, T]."""
    first = codes[:, 0]
    distinct = np.mean([len(torch.unique(row)) for row in first])
    repeats = (first[:, 1:] == first[:, :-1]).float().mean().item()
    return f"codebook 0: {distinct:.1f} distinct tokens per clip, repeat rate {repeats:.3f}"


def beat_slots(frames: int, bpm: float, frame_rate: float) -> np.ndarray:
    """The sixteenth-note slot (0-15) of a 4/4 bar of each frame, the first beat on frame 0."""
    return (np.round(np.arange(frames) / frame_rate * bpm / 60 * 4) % 16).astype(int)


def mutual_information(counts: np.ndarray) -> float:
    """I(X; Y) in nats from a table of counts [X values, Y values]."""
    p = counts / counts.sum()
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nonzero = p > 0
    return float((p[nonzero] * np.log(p[nonzero] / (px @ py)[nonzero])).sum())


def rhythm_stats(codes: torch.Tensor, bpms: list[float], frame_rate: float, card: int, skip: int = 25) -> dict:
    """Codebook 0 of codes [B, K, T] against each clip's beat grid (frames from ``skip`` on): the
    rate of token changes on beats, on the other eighths and on the other sixteenths, and
    I(slot; change) and I(slot; token) in nats per frame."""
    tokens = np.zeros((16, card))
    changes = np.zeros((16, 2))
    for row, bpm in zip(codes[:, 0].numpy(), bpms):
        slots = beat_slots(len(row), bpm, frame_rate)[skip:]
        changed = (row[1:] != row[:-1])[skip - 1:].astype(int)
        np.add.at(tokens, (slots, row[skip:]), 1)
        np.add.at(changes, (slots, changed), 1)
    rate = changes[:, 1] / np.maximum(changes.sum(1), 1)
    return {"beats": rate[0::4].mean(), "eighths": rate[2::4].mean(), "sixteenths": rate[1::2].mean(),
            "mi_change": mutual_information(changes), "mi_token": mutual_information(tokens)}


def rhythm_check(model: MAGNeT, rows: list[dict], codes: torch.Tensor) -> None:
    """The rhythm check on the renders of ``rows`` (their codes [N, K, T]) that have a bpm."""
    keep = [i for i, r in enumerate(rows) if isinstance(r.get("bpm"), (int, float)) and r["bpm"] > 0]
    if len(keep) < 2:
        print(f"rhythm: skipped, {len(keep)} of {len(rows)} renders have a bpm (2 needed)")
        return
    codes, bpms = codes[keep], [float(rows[i]["bpm"]) for i in keep]
    card, fr = model.lm.cfg.card, model.frame_rate
    own = rhythm_stats(codes, bpms, fr, card)
    other = rhythm_stats(codes, bpms[1:] + bpms[:1], fr, card)  # each render with the next one's bpm
    print(f"rhythm: {len(bpms)} renders, codebook 0 after 0.5 s: token changes on beats {own['beats']:.3f}, other "
          f"eighths {own['eighths']:.3f}, other sixteenths {own['sixteenths']:.3f} (another render's bpm: "
          f"{other['beats']:.3f}, {other['eighths']:.3f}, {other['sixteenths']:.3f})")
    print(f"rhythm: I(slot; change) {own['mi_change']:.4f} nats/frame (another render's bpm {other['mi_change']:.4f}), "
          f"I(slot; token) {own['mi_token']:.4f} ({other['mi_token']:.4f})")


def generate_batches(model: MAGNeT, prompts: list[str], batch: int, audio=None
                     ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Mono clips [T] for ``prompts`` (continuing ``audio[i]`` [1, T] when given), seeded per batch,
    and their codes [N, K, T']."""
    out, codes = [], []
    for start in range(0, len(prompts), batch):
        torch.manual_seed(start)
        texts = prompts[start:start + batch]
        if audio is None:
            wav, tokens = model.generate(texts, return_tokens=True)
        else:
            wav, tokens = model.generate_continuation(torch.stack(audio[start:start + batch]), model.sample_rate,
                                                      texts, return_tokens=True)
        out += [w[0] for w in wav]
        codes.append(tokens)
    return out, torch.cat(codes)


@torch.no_grad()
def sample_left_to_right(model: MAGNeT, prompt: torch.Tensor, texts: list[str], length: int,
                         span: int = 3, cfg_coef: float = 3.0, temperature: float = 1.0,
                         top_p: float = 0.9) -> torch.Tensor:
    """Codes [B, K, length]: codebook 0 after prompt [B, K, P] sampled ``span`` frames a step, each
    step given the frames before it (later ones masked, and codebooks 1-3 after the prompt, as
    MAGNeT's decoding of codebook 0 sees them), with classifier-free guidance ``cfg_coef``; then
    codebooks 1-3 after the prompt become uniformly random words."""
    lm = model.lm
    B, K, P = prompt.shape
    memory = lm.encode_text(list(texts) + [None] * B)
    codes = torch.full((B, K, length), lm.mask_id, dtype=torch.long, device=prompt.device)
    codes[..., :P] = prompt
    for start in range(P, length, span):
        end = min(start + span, length)
        cond, uncond = lm(torch.cat([codes, codes]), memory, stage=0)[:, 0, start:end].float().split(B)
        probs = torch.softmax((uncond + (cond - uncond) * cfg_coef) / temperature, dim=-1)
        codes[:, 0, start:end] = sample(probs, top_p=top_p)[0][..., 0]
    codes[:, 1:, P:] = torch.randint(0, lm.cfg.card, (B, K - 1, length - P), device=codes.device)
    return codes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("data", type=Path, help="a magnet data synth folder (train.jsonl, heldout.jsonl)")
    parser.add_argument("--model", default="magnet-audio/synth-music")
    parser.add_argument("--n", type=int, default=24,
                        help="held-out prompts for the decoding, continuation and left-to-right checks")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--checks", default="text,decoding,continuation,context,left-to-right,rhythm")
    parser.add_argument("--settings", default='{"recommended": {}}',
                        help="JSON {name: set_generation_params overrides} for the decoding check")
    parser.add_argument("--prefix", type=float, default=3.0, help="seconds of real audio the continuation keeps")
    args = parser.parse_args(argv)
    if args.n < 1 or args.batch < 1:
        parser.error("--n and --batch must be at least 1")
    if args.prefix <= 0:
        parser.error(f"--prefix must be a positive number of seconds, got {args.prefix}")
    checks = {c.strip() for c in args.checks.split(",") if c.strip()}
    known = ("text", "decoding", "continuation", "context", "left-to-right", "rhythm")
    unknown = checks - set(known)
    if unknown:
        parser.error(f"unknown checks {sorted(unknown)}: choose from {', '.join(known)}")
    try:
        settings = json.loads(args.settings)
    except json.JSONDecodeError as exc:
        parser.error(f"--settings is not JSON: {exc}")
    if not isinstance(settings, dict) or not all(isinstance(v, dict) for v in settings.values()):
        parser.error('--settings must be a JSON object of objects, e.g. {"temperature 0.3": {"temperature": 0.3}}')
    missing = [name for name in ("train.jsonl", "heldout.jsonl") if not (args.data / name).is_file()]
    if missing:
        parser.error(f"{args.data} has no {' or '.join(missing)}: make it with magnet data synth {args.data} --hours 6")
    train, heldout = read_rows(args.data / "train.jsonl"), read_rows(args.data / "heldout.jsonl")
    rows = heldout[:args.n]
    prompts = [r["description"] for r in rows]
    model = MAGNeT.get_pretrained(args.model)
    if checks & {"continuation", "left-to-right"} and args.prefix >= model.max_duration:
        parser.error(f"--prefix must be shorter than the model's window ({model.max_duration:g} s), got {args.prefix}")
    recommended = getattr(model, "recommended_generation_params", {})  # the model's config.json options
    sr = model.sample_rate
    if "text" in checks:
        text_check(model, train, heldout)
    real = [audio_read(args.data / r["path"], sample_rate=sr, channels=1)[0] for r in rows]
    real_codes = model.encode_prompt(torch.stack(real), sr) if checks & {"decoding", "rhythm"} else None
    if "decoding" in checks:
        print(f"decoding: the held-out renders' {token_stats(real_codes)}")
        for name, overrides in settings.items():
            model.set_generation_params(**{**recommended, **overrides})
            clips, codes = generate_batches(model, prompts, args.batch)
            print(f"decoding '{name}': pulse clarity of {len(clips)} clips: {summary([pulse(w, sr) for w in clips])}; "
                  f"{token_stats(codes)}")
    if "rhythm" in checks:
        rhythm_check(model, rows, real_codes)
    if "context" in checks:
        context_check(model, args.data, heldout[:max(args.n, 2)])
    keep = int(args.prefix * sr)
    if "continuation" in checks or "left-to-right" in checks:
        print(f"continuation: real renders after {args.prefix:g} s: {summary([pulse(w[0, keep:], sr) for w in real])}")
    if "continuation" in checks:
        clips, _ = generate_batches(model, prompts, args.batch, audio=[w[:, :keep] for w in real])
        print(f"continuation: generated after the real {args.prefix:g} s: "
              f"{summary([pulse(w[keep:], sr) for w in clips])}")
    if "left-to-right" in checks:
        frames, span = int(model.max_duration * model.frame_rate), model.lm.cfg.span_len
        clips = []
        for start in range(0, len(rows), args.batch):
            torch.manual_seed(start)
            prompt = model.encode_prompt(torch.stack([w[:, :keep] for w in real[start:start + args.batch]]), sr)
            codes = sample_left_to_right(model, prompt, prompts[start:start + args.batch], frames, span,
                                         recommended.get("max_cfg_coef", 3.0), recommended.get("temperature", 1.0))
            clips += [w[0] for w in model.generate_audio(codes)]
        print(f"left-to-right: codebook 0 sampled {span} frames a step after the real {args.prefix:g} s: "
              f"{summary([pulse(w[keep:], sr) for w in clips])}")


if __name__ == "__main__":
    main()
