"""``magnet edit`` (inpaint, outpaint, vary an audio file) and ``magnet generate --continue``.

    magnet generate "calm piano" --continue in.wav --prompt-seconds 3
    magnet edit in.wav "jazz drums" --region 3.0:5.5 --region 7:8      # inpaint these seconds
    magnet edit in.wav "jazz drums" --region=-2:0 --region 10:13        # outpaint: past either end
    magnet edit in.wav "jazz drums" --vary 0.3                          # re-generate 30 % of the tokens

Each writes a new file (never the input; a taken name gets a ``_1``, ``_2``, ... suffix unless
``--overwrite``) and beside it a ``.json`` with every parameter, the regions used and the seed.
Audio at a rate or channel count the model's codec does not take is resampled / mixed first, with
a one-line note. The checks of the inputs are :mod:`magnet_audio.validation`'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from .cli_options import add_sampling_arguments, sampling_overrides
from .errors import InputError
from .validation import audio_file, finite_float, parse_regions, strength, writable_target

#: Suffixes that make ``--out`` a file name rather than a folder.
AUDIO_SUFFIXES = {".wav": "wav", ".flac": "flac", ".ogg": "ogg", ".mp3": "mp3"}


def random_seed() -> int:
    """A seed for a run that was given none, so that the sidecar can still reproduce it."""
    return secrets.randbelow(2 ** 31)


@dataclasses.dataclass
class InputAudio:
    """An audio file read for editing, converted to the model's codec rate and channels."""

    path: Path
    wav: Any  # torch.Tensor [C, T] at ``sample_rate``
    sample_rate: int
    file_sample_rate: int
    file_channels: int

    @property
    def seconds(self) -> float:
        return self.wav.shape[-1] / self.sample_rate

    def describe(self) -> dict:
        return {"path": str(self.path), "sample_rate": self.file_sample_rate, "channels": self.file_channels,
                "seconds": round(self.seconds, 4), "converted_to": {"sample_rate": self.sample_rate,
                                                                    "channels": int(self.wav.shape[0])}}


def read_input(path: str | Path, model, quiet: bool = False, what: str = "input audio") -> InputAudio:
    """Read ``path`` and convert it to ``model``'s codec rate and channels, saying so in one line."""
    from .audio import audio_read, convert_audio

    path, file_sr, file_channels, _ = audio_file(path, what)
    wav, _ = audio_read(path)
    wav = convert_audio(wav, file_sr, model.sample_rate, model.audio_channels)
    changes = []
    if file_sr != model.sample_rate:
        changes.append(f"resampled {file_sr} -> {model.sample_rate} Hz")
    if file_channels != model.audio_channels:
        changes.append(f"{'mixed' if model.audio_channels == 1 else 'converted'} {file_channels} -> "
                       f"{model.audio_channels} channel(s)")
    if changes and not quiet:
        print(f"note: {path.name}: {', '.join(changes)} for the model's codec", file=sys.stderr)
    return InputAudio(path, wav, model.sample_rate, file_sr, file_channels)


def output_stem(out: str | None, default_name: str, input_path: Path, fmt: str) -> tuple[Path, str]:
    """(stem, format) of the file to write: ``--out`` names a file when it ends in an audio suffix
    (whose format then wins), else a folder (default ``outputs``) that gets ``default_name``. The
    input file itself is never the target."""
    target = Path(out or "outputs").expanduser()
    if target.suffix.lower() in AUDIO_SUFFIXES:
        stem, fmt = target.with_suffix(""), AUDIO_SUFFIXES[target.suffix.lower()]
    else:
        stem = target / default_name
    if Path(str(stem) + "." + fmt).resolve() == input_path.resolve():
        raise InputError(f"--out {target} would replace the input file {input_path}: choose another name")
    return stem, fmt


def write_result(stem: Path, audio, model, args, record: dict) -> Path:
    """Write ``audio`` [C, T] as ``stem`` + suffix (the unique-name rules of ``magnet generate``) and
    ``record`` (plus the model, its decoding options and the file) as the ``.json`` beside it."""
    from .audio import audio_write

    path = audio_write(stem, audio.float().cpu(), model.sample_rate, format=args.format, strategy=args.strategy,
                       loudness_compressor=True, exclusive=not args.overwrite)
    record = {"output": path.name, "model": model.name, "sample_rate": model.sample_rate,
              "seconds": round(audio.shape[-1] / model.sample_rate, 4), **record,
              "generation_params": dataclasses.asdict(model.generation_params)}
    path.with_suffix(".json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path


def edit_record(model) -> dict | None:
    """``model.last_edit`` (the regions requested and used, per item) as JSON-ready data."""
    info = getattr(model, "last_edit", None)
    if info is None:
        return None
    return dataclasses.asdict(info) if dataclasses.is_dataclass(info) else dict(vars(info))


# --------------------------------------------------------------------------------------------------
# magnet generate --continue
# --------------------------------------------------------------------------------------------------


def add_continue_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("continuation", "continue an audio file instead of starting from silence")
    group.add_argument("--continue", dest="continue_from", metavar="IN", default=None,
                       help="audio file whose end each prompt continues; the output starts with the prompt audio "
                            "(re-encoded) and lasts --duration")
    group.add_argument("--prompt-seconds", type=float, default=None, metavar="S",
                       help="how many seconds at the end of --continue's file prompt the model (default: all of "
                            "it, at most half the model's window)")


def prompt_seconds(source: InputAudio, seconds: float | None, model, what: str = "--prompt-seconds") -> float:
    """The seconds at the end of ``source`` that prompt a continuation: ``seconds``, in (0, the
    model's window) and at most the file's length; None: all of it, at most half the window."""
    if seconds is None:
        seconds = min(source.seconds, model.max_duration / 2)
    seconds = finite_float(seconds, what, 0, model.max_duration, low_open=True, high_open=True)
    if seconds > source.seconds + 1e-6:
        raise InputError(f"{what} {seconds:g} is longer than {source.path.name} ({source.seconds:.2f} s)")
    return seconds


@dataclasses.dataclass
class Continuation:
    """``magnet generate --continue``: the prompt audio and what the sidecar records."""

    source: InputAudio
    prompt_seconds: float
    seed: int

    @staticmethod
    def prepare(args: argparse.Namespace, model) -> "Continuation":
        for flag, given in (("--hybrid-ar", args.hybrid_ar), ("--prompts-file", getattr(args, "prompts_file", None))):
            if given:
                raise InputError(f"--continue and {flag} cannot be combined")
        source = read_input(args.continue_from, model, args.quiet, "--continue file")
        seed = random_seed() if args.seed is None else args.seed
        return Continuation(source, prompt_seconds(source, args.prompt_seconds, model), seed)

    def generate(self, model, prompts: list[str], progress: bool):
        keep = max(1, int(round(self.prompt_seconds * self.source.sample_rate)))
        prompt = self.source.wav[..., -keep:]
        return model.generate_continuation(prompt.expand(len(prompts), -1, -1), self.source.sample_rate,
                                           descriptions=prompts, progress=progress)

    def write(self, stem: Path, audio, model, args, prompt: str) -> Path:
        return write_result(stem, audio, model, args, {
            "command": "generate --continue", "prompt": prompt, "seed": self.seed, "input": self.source.describe(),
            "prompt_seconds": round(self.prompt_seconds, 4), "duration": model.duration})


# --------------------------------------------------------------------------------------------------
# magnet edit
# --------------------------------------------------------------------------------------------------


def cmd_edit(args: argparse.Namespace) -> None:
    import torch

    from .models import MAGNeT

    prompt = args.prompt.strip()
    if not prompt:
        raise InputError("give a non-empty prompt")
    input_path, _, _, seconds = audio_file(args.input)  # before loading the model: a bad file fails at once
    regions = parse_regions(args.region) if args.region else None
    vary = strength(args.vary, "--vary") if args.vary is not None else None
    if regions is None and vary is None:
        raise InputError("give --region START:END (inpaint / outpaint) or --vary STRENGTH")
    if vary is not None and args.no_splice:
        raise InputError("--no-splice applies to --region edits only")
    mode = "vary" if vary is not None else (
        "outpaint" if any(s < 0 or e > seconds for s, e in regions) else "inpaint")
    stem, fmt = output_stem(args.out, f"{input_path.stem}_{mode}", input_path, args.format)
    args.format = fmt
    writable_target(stem.parent, "--out folder")

    model = MAGNeT.get_pretrained(args.model, device=args.device, t5_path=args.t5_path)
    model.update_generation_params(use_sampling=not args.greedy, **sampling_overrides(args), fast=args.fast)
    source = read_input(input_path, model, args.quiet)
    seed = random_seed() if args.seed is None else args.seed
    torch.manual_seed(seed)
    wav = source.wav[None]
    if vary is not None:
        out = model.generate_variations(wav, source.sample_rate, [prompt], strength=vary, progress=not args.quiet)
        record = {"strength": vary}
    else:
        out = model.generate_inpainting(wav, source.sample_rate, [prompt], regions=regions,
                                        progress=not args.quiet, splice=not args.no_splice)
        record = {"regions": [list(r) for r in regions], "splice": not args.no_splice}
    record = {"command": "edit", "mode": mode, "prompt": prompt, "seed": seed, "input": source.describe(),
              **record, "edit": edit_record(model)}
    path = write_result(stem, out[0], model, args, record)
    print(f"{path}  ({out.shape[-1] / model.sample_rate:.2f} s)  {mode} {prompt!r}")
    if not args.quiet:
        print(f"parameters in {path.with_suffix('.json')}", file=sys.stderr)


def add_edit_command(sub) -> None:
    """Add ``magnet edit`` to the ``magnet`` command's subparsers."""
    edit = sub.add_parser(
        "edit", help="inpaint, outpaint or vary an audio file", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Re-generate parts of an audio file from a prompt, keeping the rest. Examples: "
                    "magnet edit in.wav \"jazz drums\" --region 3.0:5.5;  magnet edit in.wav \"jazz drums\" "
                    "--vary 0.3. A region before 0 or past the end outpaints (write a negative start as "
                    "--region=-2:0). Writes a new file and a .json of the parameters beside it.")
    edit.add_argument("input", help="audio file to edit (never replaced)")
    edit.add_argument("prompt", help="text prompt for the re-generated audio")
    what = edit.add_mutually_exclusive_group()
    what.add_argument("--region", action="append", default=None, metavar="START:END",
                      help="seconds to re-generate (repeat for several, none overlapping)")
    what.add_argument("--vary", type=float, default=None, metavar="STRENGTH",
                      help="a variation: the share of the tokens re-generated, 0..1")
    edit.add_argument("--no-splice", action="store_true",
                      help="keep the model's re-encoded audio outside the regions instead of the original samples")
    edit.add_argument("--out", "-o", default=None,
                      help="output file (.wav/.flac/.ogg/.mp3) or folder (default: outputs/, named "
                           "<input>_<mode>.<format>)")
    edit.add_argument("--model", "-m", default=None,
                      help="hub repo id or local directory; default as for magnet generate")
    edit.add_argument("--t5-path", default=None, help="local directory of the T5 text encoder (offline use)")
    edit.add_argument("--device", default=None, help="cpu, cuda or mps; None picks the best available")
    edit.add_argument("--seed", type=int, default=None, help="random seed (default: a random one, recorded)")
    add_sampling_arguments(edit)
    edit.add_argument("--greedy", action="store_true", help="argmax decoding instead of sampling")
    edit.add_argument("--fast", action="store_true", help="fast-mode preset (docs/fast-inference.md)")
    edit.add_argument("--overwrite", action="store_true",
                      help="replace a file of the same name; by default a taken name gets a _1, _2, ... suffix")
    edit.add_argument("--format", default="wav", choices=sorted(set(AUDIO_SUFFIXES.values())),
                      help="audio file format (an --out file's suffix wins)")
    edit.add_argument("--strategy", default="loudness", choices=["loudness", "peak", "rms", "clip", "none"],
                      help="normalisation of the written audio")
    edit.add_argument("--quiet", "-q", action="store_true", help="no progress bar or notes")
    edit.set_defaults(func=cmd_edit)
