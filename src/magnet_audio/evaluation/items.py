"""The inputs of ``magnet eval``: prompts (``.txt`` or ``.jsonl``) as :class:`EvalItem`, paired with
reference and generated audio files by index, path or sidecar prompt."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..validation import manifest_record

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
PROMPT_KEYS = ("description", "caption", "text", "prompt")
PATH_KEYS = ("path", "audio", "reference", "file")


@dataclass
class EvalItem:
    index: int
    prompt: str
    reference: Path | None = None
    generated: Path | None = None
    ref_hint: str | None = None  # the path the prompt file gave, before resolution
    meta: dict = field(default_factory=dict)  # the .jsonl row (bpm, key, instruments, ... for adherence)
    line: int = 0  # its line in the prompt file (1-based), for error messages


def load_prompts(path: str | Path) -> list[EvalItem]:
    """Prompts from a ``.txt`` (one a line; blank and ``#`` lines skipped) or ``.jsonl`` file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"prompt file not found: {path}")
    items: list[EvalItem] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if path.suffix.lower() in (".jsonl", ".json"):
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if isinstance(entry, str):
                entry = {"description": entry}
            if not isinstance(entry, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object or string, got {type(entry).__name__}")
            prompt = next((entry[k] for k in PROMPT_KEYS if isinstance(entry.get(k), str) and entry[k].strip()), None)
            if prompt is None:
                raise InputError(f"{path}:{lineno}: no prompt (expected one of {', '.join(PROMPT_KEYS)})")
            hint = next((str(entry[k]) for k in PATH_KEYS if entry.get(k)), None)
            items.append(EvalItem(len(items), prompt.strip(), ref_hint=hint, meta=entry, line=lineno))
    else:
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                items.append(EvalItem(len(items), line.strip(), line=lineno))
    if not items:
        raise InputError(f"{path} holds no prompts")
    return items


def list_audio(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"audio directory not found: {directory}")
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTS
                  and not p.name.startswith("."))


def _sidecar_prompt(audio: Path) -> str | None:
    side = audio.with_suffix(".json")
    if not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not UTF-8, not JSON
        return None
    if not isinstance(meta, dict):
        return None
    return next((meta[k].strip() for k in PROMPT_KEYS if isinstance(meta.get(k), str)), None)


def _pair_files(items: list[EvalItem], files: list[Path], attr: str, what: str) -> str:
    """Pair ``files`` with prompts (sidecar .json prompt, then ``NNNNN_`` index prefix, then sorted
    order when the counts match); returns how they were paired."""
    by_prompt: dict[str, list[Path]] = {}
    for f in files:
        p = _sidecar_prompt(f)
        if p is not None:
            by_prompt.setdefault(p, []).append(f)
    if by_prompt and all(by_prompt.get(it.prompt) for it in items):
        for it in items:
            setattr(it, attr, by_prompt[it.prompt].pop(0))
        return f"{what}: paired by the prompt in each clip's .json sidecar"
    by_index = {}
    for f in files:
        m = re.match(r"^(\d+)[_\-.]", f.name)
        if m:
            by_index.setdefault(int(m.group(1)), f)
    if by_index and all(it.index in by_index for it in items) and len(by_index) == len(items):
        for it in items:
            setattr(it, attr, by_index[it.index])
        return f"{what}: paired by the index prefix of the file names"
    if len(files) == len(items):
        for it, f in zip(items, files):
            setattr(it, attr, f)
        return f"{what}: paired by sorted file order (same count as prompts)"
    raise InputError(f"cannot pair {len(files)} {what} file(s) with {len(items)} prompts: give a .jsonl prompt "
                     f"file with a 'path' per prompt, .json sidecars with the prompt, or one file per prompt")


def attach_references(items: list[EvalItem], reference_dir: str | Path | None, prompt_file: str | Path) -> str:
    """Resolve each prompt's reference clip; returns a note on how, or raises :class:`InputError`."""
    base = Path(prompt_file).parent
    if any(it.ref_hint for it in items):
        missing = []
        for it in items:
            if not it.ref_hint:
                missing.append(it.prompt)
                continue
            hint = Path(it.ref_hint)
            candidates = [hint] if hint.is_absolute() else []
            if reference_dir is not None:
                candidates += [Path(reference_dir) / hint, Path(reference_dir) / hint.name]
            candidates.append(base / hint)
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                missing.append(it.ref_hint)
            it.reference = found
        if missing:
            raise InputError(f"{len(missing)} reference clip(s) named in {prompt_file} not found "
                             f"(first: {missing[0]!r}); looked under --reference and next to the prompt file")
        return "reference: the 'path' of each prompt in the .jsonl"
    if reference_dir is None:
        raise InputError("give --reference DIR (or a .jsonl prompt file with a 'path' per prompt)")
    return _pair_files(items, list_audio(reference_dir), "reference", "reference")


def attach_generated(items: list[EvalItem], generated_dir: str | Path) -> str:
    """Pair prompts with audio already in ``generated_dir`` (its ``generated.jsonl`` first)."""
    generated_dir = Path(generated_dir)
    manifest = generated_dir / "generated.jsonl"
    if manifest.is_file():
        by_prompt: dict[str, list[Path]] = {}
        try:
            lines = manifest.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                e = json.loads(line)
                rel = manifest_record(e, f"{manifest}:{number}")
                if not isinstance(e.get("description"), str):
                    raise InputError(f"{manifest}:{number}: 'description' must be a string")
                by_prompt.setdefault(e["description"], []).append(generated_dir / rel)
        except ValueError as exc:  # not UTF-8, not JSON, or a bad record (InputError is a ValueError too)
            raise InputError(f"{manifest} is not a valid generated.jsonl: {exc}") from None
        if all(by_prompt.get(it.prompt) for it in items):
            for it in items:
                it.generated = by_prompt[it.prompt].pop(0)
            missing = [it.generated for it in items if not it.generated.is_file()]
            if missing:
                raise InputError(f"{manifest} names missing files (first: {missing[0]})")
            return "generated: paired by generated.jsonl"
    return _pair_files(items, list_audio(generated_dir), "generated", "generated")
