"""Joining ``.jsonl`` manifests (``magnet data join``): one training set from several datasets.

A manifest line is a JSON object whose ``path`` names an audio file, absolute or relative to the
manifest's folder (the format ``magnet data synth`` writes and ``magnet tokenize`` / ``magnet train``
read). Joining keeps every line's other fields and the order (the first manifest's lines, then the
second's, ...), and rewrites each ``path`` relative to the joined manifest's folder, so the result
can move with the datasets it names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import InputError


def join_manifests(out: str | os.PathLike, inputs: list[str | os.PathLike], overwrite: bool = False) -> int:
    """Write the lines of ``inputs`` (in order) to the manifest ``out``; returns the number of lines.

    Raises :class:`InputError`, writing nothing, if an input is missing or not a manifest, a line is
    not a JSON object with a ``path``, the same file is named twice, or ``out`` exists (without
    ``overwrite``) or is one of the inputs.
    """
    out = Path(out).expanduser()
    if out.suffix != ".jsonl":
        raise InputError(f"the joined manifest must be a .jsonl file, got {out}")
    if not inputs:
        raise InputError("give at least one manifest to join")
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists; pass --overwrite to replace it")
    base = out.resolve().parent
    lines, seen = [], {}
    for manifest in (Path(p).expanduser() for p in inputs):
        if manifest.resolve() == out.resolve():
            raise InputError(f"{manifest} is both an input and the output")
        if manifest.suffix != ".jsonl" or not manifest.is_file():
            raise InputError(f"{manifest}: not a .jsonl manifest file")
        try:
            text_lines = manifest.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {manifest} as UTF-8 text: {exc}") from None
        for number, text in enumerate(text_lines, 1):
            if not text.strip():
                continue
            where = f"{manifest}:{number}"
            try:
                entry = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not a JSON line ({exc})") from None
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
                raise InputError(f"{where}: a manifest line is a JSON object with a 'path'")
            audio = Path(entry["path"])
            audio = (audio if audio.is_absolute() else manifest.resolve().parent / audio).resolve()
            if str(audio) in seen:
                raise InputError(f"{where}: {audio} is already named at {seen[str(audio)]}")
            seen[str(audio)] = where
            try:
                entry["path"] = os.path.relpath(audio, base)
            except ValueError:  # another drive (Windows): keep it absolute
                entry["path"] = str(audio)
            lines.append(json.dumps(entry, ensure_ascii=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write leaves nothing behind
    return len(lines)
