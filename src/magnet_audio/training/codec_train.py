"""``magnet train-codec``: train (or fine-tune) a codec on a folder of audio: EnCodec, or with
``model.type: spectral`` our :class:`~magnet_audio.codec.spectral.SpectralCodec`.

Built on the generic training loop (:class:`~magnet_audio.training.loop.Trainer`): the same checkpoints
(atomic, last N kept), ``--resume`` (bit for bit), EMA, metrics log, progress bar, mixed precision,
gradient accumulation and DDP under torchrun. Only the objective, the data and the config differ:

* data: random ``data.segment_duration`` crops (1 s by default, as audiocraft) of the audio files of
  ``data.train`` (a folder or a ``.jsonl`` manifest), resampled to the codec's rate and channels;
* objective (:class:`CodecTrainingObjective`): codec forward (RVQ with EMA codebooks, k-means init,
  dead-code replacement, straight-through gradients), then the losses of
  :mod:`~magnet_audio.training.codec_objective` — reconstruction (multi-scale mel, waveform L1),
  commitment and, when ``losses.adversarial``, a multi-scale STFT discriminator (hinge + feature
  matching). The spectral codec (:class:`SpectralTrainingObjective`) is trained on log magnitudes
  (``losses.log_magnitude``, ``losses.magnitude``) and commitment, without a discriminator.

GAN updates: one backward pass gives the codec the gradient of its loss (computed through the
discriminator with its weights detached) and the discriminator the gradient of its own loss
(computed on the detached reconstruction), and the single AdamW step (``optim``, audiocraft's
compression settings by default: lr 3e-4, betas (0.5, 0.9), no weight decay) updates both at once.
audiocraft instead steps the discriminator first and the codec second against the updated
discriminator; updating both from the same batch keeps one optimizer, scaler and checkpoint path.
Gradient clipping (``optim.max_norm``) applies to the joint norm.

At the end of a run the codec (EMA weights when ``ema.use``) is exported to ``RUN_DIR/export``:
EnCodec as ``compression_state_dict.bin`` in audiocraft's format, the spectral codec as
``config.json`` + ``model.safetensors`` in ours. :func:`~magnet_audio.codec.load_compression_model`
loads either (audiocraft the first) and ``model.codec`` of LM training accepts the folder;
``magnet export CKPT OUT_DIR`` does the same for any codec checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..audio import audio_write
from ..cli_options import run_command, setup_logging
from ..codec import (EncodecConfig, EncodecModel, SpectralCodecConfig, codec_config_from_dict, codec_from_config,
                     load_compression_model, save_audiocraft_export, save_our_codec)
from ..errors import CheckpointError, InputError
from ..utils import write_atomic
from .codec_objective import CodecLossConfig, CodecObjective, spectral_reconstruction
from .config import (CheckpointConfig, DistributedConfig, EMAConfig, LogConfig, OptimConfig, ValidConfig, loop_checks,
                     read_config)
from .data import AudioSegments, EpochSampler, load_items, split_items, sub_seed
from .loop import Trainer, open_run
from ..distributed import init_distributed
from .runtime import checkpoint_weights, find_checkpoint, load_checkpoint, seed_all
from .tblog import tensorboard_hint

logger = logging.getLogger(__name__)

EXPORT_DIR = "export"
#: MAGNeT's 32 kHz music codec (audiocraft ``encodec_large_nq4_s640``): what ``model`` keys override.
MAGNET_CODEC_32K = dict(sample_rate=32000, channels=1, dimension=128, n_filters=64, n_residual_layers=1,
                        ratios=[8, 5, 4, 4], norm="weight_norm", pad_mode="constant", lstm=2, n_q=4, bins=2048,
                        q_dropout=False, decay=0.99, kmeans_init=True, kmeans_iters=50, threshold_ema_dead_code=2)
#: The ``model`` keys that may come with ``init_from``: training settings of the quantizer.
FINE_TUNE_KEYS = ("q_dropout", "decay", "kmeans_init", "kmeans_iters", "threshold_ema_dead_code")


# ----------------------------------------------------------------------------------- config


@dataclass
class CodecDataConfig:
    """The audio and how batches are made."""

    train: str = ""
    valid: str | None = None
    valid_fraction: float = 0.05
    segment_duration: float = 1.0
    batch_size: int = 16
    num_workers: int = 0
    min_duration: float = 0.0


@dataclass
class CodecSamplesConfig:
    """Reconstructions of validation crops written as audio (original and decoded side by side)."""

    every: int = 0
    num: int = 4
    seed: int = 0


def _codec_optim() -> OptimConfig:
    return OptimConfig(lr=3e-4, betas=[0.5, 0.9], weight_decay=0.0, max_norm=1000.0, steps=100_000,
                       schedule="constant", warmup=0)


@dataclass
class CodecTrainConfig:
    """Everything ``magnet train-codec`` reads (see ``configs/codec_tiny.yaml``).

    ``model`` holds :class:`~magnet_audio.codec.EncodecConfig` keys over :data:`MAGNET_CODEC_32K`,
    or, with ``type: spectral``, :class:`~magnet_audio.codec.SpectralCodecConfig` keys over its
    defaults; plus ``init_from`` (a codec to fine-tune, whose architecture is then used).

    ``decoder_only`` (needs ``model.init_from``): train the decoder alone. The encoder and the
    quantizer stay frozen in inference mode (no codebook updates), so every clip keeps the codes
    ``init_from`` gives it and an LM trained on those tokens works unchanged with the new decoder.
    """

    run_dir: str = "runs/codec"
    seed: int = 0
    decoder_only: bool = False
    device: str = "auto"
    precision: str = "auto"
    data: CodecDataConfig = field(default_factory=CodecDataConfig)
    model: Any = field(default_factory=dict)
    losses: CodecLossConfig = field(default_factory=CodecLossConfig)
    optim: OptimConfig = field(default_factory=_codec_optim)
    ema: EMAConfig = field(default_factory=lambda: EMAConfig(use=True, decay=0.99, every=1))
    valid: ValidConfig = field(default_factory=ValidConfig)
    samples: CodecSamplesConfig = field(default_factory=CodecSamplesConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def __post_init__(self):
        if not isinstance(self.model, dict):
            raise InputError(f"codec training config: model must be a mapping of codec options, got {self.model!r}")
        options = dict(self.model)
        self.init_from = options.pop("init_from", None)
        self.codec_config = None
        if self.init_from is None and options.get("type") == "spectral":
            self.codec_config = SpectralCodecConfig.from_dict(options)
        elif self.init_from is None:
            self.codec_config = EncodecConfig.from_dict({**MAGNET_CODEC_32K, **options})
        else:
            extra = sorted(set(options) - set(FINE_TUNE_KEYS))
            if extra:
                raise InputError(f"codec training config: model.init_from ({self.init_from}) gives the architecture; "
                                 f"only {', '.join(FINE_TUNE_KEYS)} may be set with it, not {', '.join(extra)} "
                                 "(e.g. pass model={init_from: NAME} to replace the whole model section)")
            self.fine_tune_options = options
        self.validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def spectral(self) -> bool:
        """Whether the codec trained is a spectral one (from ``model.type``, or ``init_from``'s kind
        once :func:`build_codec` has loaded it)."""
        return isinstance(self.codec_config, SpectralCodecConfig)

    def validate(self) -> None:
        d = self.data
        checks = [
            (bool(d.train), "data.train is required (an audio folder or a .jsonl manifest)"),
            (d.segment_duration > 0, "data.segment_duration must be > 0"),
            (d.batch_size >= 1 and d.num_workers >= 0, "data.batch_size must be >= 1 and data.num_workers >= 0"),
            (0 <= d.valid_fraction < 1, "data.valid_fraction must be in [0, 1)"),
            (d.min_duration >= 0, "data.min_duration must be >= 0"),
            *loop_checks(self),
        ]
        checks.append((not self.decoder_only or self.init_from is not None,
                       "decoder_only needs model.init_from (the codec whose encoder and codebooks stay fixed)"))
        checks.append((not (self.spectral and self.losses.uses_discriminator),
                       "the spectral codec trains on magnitudes without a discriminator: set losses.adversarial=false"))
        for ok, message in checks:
            if not ok:
                raise InputError(f"codec training config: {message}")


def load_codec_config(path: str | Path | None, overrides: list[str] | None = None) -> CodecTrainConfig:
    """Read a YAML codec training config (defaults when ``path`` is None) and apply ``key=value`` overrides."""
    return read_config(CodecTrainConfig, path, overrides)


# ----------------------------------------------------------------------------------- objective


class CodecTrainingObjective(nn.Module):
    """The codec and its losses for :class:`~magnet_audio.training.loop.Trainer`:
    ``forward(audio [B, C, T])`` -> (loss, metrics).

    Training mode: ``loss = g_loss + d_loss`` (see the module docstring; ``d_loss`` only with the
    discriminator), metrics ``g_loss``, ``d_loss``, ``recon``, ``msspec``, ``l1``, ``commit``, ``adv``,
    ``feat``. Eval mode (validation): ``loss = recon`` (the weighted reconstruction losses, the number
    to watch), plus its parts and ``commit``; the codebooks are left alone.
    """

    model_key = "codec"
    progress_metric = "recon"  # shown on the progress bar

    def __init__(self, codec: nn.Module, losses: CodecObjective, decoder_only: bool = False):
        super().__init__()
        self.codec = codec
        self.losses = losses
        self.decoder_only = decoder_only
        if decoder_only:
            for module in (codec.encoder, codec.quantizer):
                module.requires_grad_(False)

    @property
    def model(self) -> nn.Module:
        return self.codec

    def train(self, mode: bool = True) -> "CodecTrainingObjective":
        super().train(mode)
        if self.decoder_only:  # frozen parts in inference mode: no codebook updates, fixed codes
            self.codec.encoder.eval()
            self.codec.quantizer.eval()
        return self

    def _autoencode(self, audio: torch.Tensor):
        """(reconstruction [B, C, T], commitment loss []) of audio [B, C, T]."""
        if not self.decoder_only:
            out = self.codec(audio)
            return out.audio, out.commit_loss
        codes, scale = self.codec.encode(audio)  # no gradient: the tokens of init_from
        fake = self.codec.decode(codes, scale)[..., :audio.shape[-1]]
        return fake, audio.new_zeros((), dtype=torch.float32)

    def forward(self, audio: torch.Tensor, generator: torch.Generator | None = None,
                rng=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fake, commit_loss = self._autoencode(audio)
        if self.training:
            loss, metrics = self.losses.generator_loss(fake, audio, commit_loss)
            if self.losses.discriminator is not None:
                d_loss = self.losses.discriminator_loss(fake, audio)
                metrics["d_loss"] = d_loss
                loss = loss + d_loss
        else:
            metrics = self.losses.reconstruction(fake, audio)
            metrics["commit"] = commit_loss
            loss = metrics["recon"]
        metrics = {k: v.detach().float() for k, v in metrics.items()}
        metrics["count"] = torch.tensor(float(audio.shape[0]))
        return loss, metrics


class SpectralTrainingObjective(CodecTrainingObjective):
    """:class:`CodecTrainingObjective` for the spectral codec: ``loss = recon + commit · w_commit`` on
    log magnitudes (:func:`~magnet_audio.training.codec_objective.spectral_reconstruction`); metrics
    ``recon``, ``log_magnitude``, ``magnitude``, ``commit`` (and ``g_loss`` in training). Validation:
    ``loss = recon``. With ``decoder_only``, the frozen encoder and quantizer give ``init_from``'s codes."""

    def __init__(self, codec: nn.Module, losses: CodecLossConfig, decoder_only: bool = False):
        super().__init__(codec, nn.Module(), decoder_only)  # no discriminator: the losses hold no weights
        self.loss_config = losses

    def forward(self, audio: torch.Tensor, generator: torch.Generator | None = None,
                rng=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.codec(audio)
        commit_loss = out.commit_loss if not self.decoder_only else audio.new_zeros((), dtype=torch.float32)
        metrics = spectral_reconstruction(out.prediction, out.target, self.loss_config)
        metrics["commit"] = commit_loss
        loss = metrics["recon"]
        if self.training:
            loss = loss + self.loss_config.commit * commit_loss
            metrics["g_loss"] = loss
        metrics = {k: v.detach().float() for k, v in metrics.items()}
        metrics["count"] = torch.tensor(float(audio.shape[0]))
        return loss, metrics


# ----------------------------------------------------------------------------------- data


class _AudioBatches:
    """position -> (audio [B, C, T],) for one rank (picklable for DataLoader workers)."""

    def __init__(self, segments: AudioSegments, sampler: EpochSampler, seed: int):
        self.segments, self.sampler, self.seed = segments, sampler, seed

    def __call__(self, position: int) -> tuple[torch.Tensor]:
        epoch, indices = self.sampler.batch(position)
        seeds = [sub_seed(self.seed, 11, epoch, position, self.sampler.rank, j) for j in range(len(indices))]
        return (self.segments.batch(indices, seeds)[0],)


def _valid_batches(segments: AudioSegments | None, cfg: CodecTrainConfig, info) -> list[tuple[torch.Tensor]]:
    """Fixed validation crops: ``valid.batches`` global batches (default: one crop per file), spread
    over the ranks."""
    if segments is None:
        return []
    B = cfg.data.batch_size
    total = cfg.valid.batches * B * info.world_size if cfg.valid.batches else len(segments)
    mine = list(range(info.rank, total, info.world_size))
    return [(segments.batch([i % len(segments) for i in mine[s:s + B]],
                            [sub_seed(cfg.seed, 12, i) for i in mine[s:s + B]])[0],)
            for s in range(0, len(mine), B)]


def _sample_writer(codec: nn.Module, clips: torch.Tensor):
    def write(step: int, out: Path) -> None:
        was_training = codec.training
        codec.eval()
        with torch.no_grad():
            codes, scale = codec.encode(clips)
            recon = codec.decode(codes, scale)[..., :clips.shape[-1]].float().cpu()
        codec.train(was_training)
        out.mkdir(parents=True, exist_ok=True)
        for i, (orig, rec) in enumerate(zip(clips, recon)):
            audio_write(out / f"{i:02d}_original", orig, codec.sample_rate, strategy="none")
            audio_write(out / f"{i:02d}_decoded", rec, codec.sample_rate, strategy="none")
        logger.info("step %d: wrote %d reconstructions to %s", step, len(clips), out)
    return write


# ----------------------------------------------------------------------------------- training


def build_codec(cfg: CodecTrainConfig):
    """A new codec (seeded by ``cfg.seed``; codebooks wait for k-means) or the ``model.init_from`` one."""
    if cfg.init_from:
        loaded = load_compression_model(cfg.init_from, device="cpu")
        cfg.codec_config = dataclasses.replace(loaded.config, **cfg.fine_tune_options)
        codec = codec_from_config(cfg.codec_config)
        codec.load_state_dict(loaded.state_dict())
        return codec
    torch.manual_seed(cfg.seed)
    return codec_from_config(cfg.codec_config)


def train_codec(cfg: CodecTrainConfig, resume: bool | str = False) -> dict[str, float]:
    """Train a codec as ``cfg`` says; returns the last validation metrics. ``resume`` as
    :func:`~magnet_audio.training.trainer.train` (True: the run folder's last checkpoint; a path)."""
    info = init_distributed(cfg.device, cfg.distributed.backend, cfg.distributed.timeout_minutes,
                            what="the config's device")
    owns_group = info.distributed
    try:
        return _train_codec(cfg, resume, info)
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _train_codec(cfg: CodecTrainConfig, resume: bool | str, info) -> dict[str, float]:
    ckpt = open_run(cfg, resume, info)
    if ckpt is not None and (ckpt.get("meta") or {}).get("kind") != "codec":
        raise CheckpointError("the checkpoint to resume is not a codec training checkpoint")
    codec = build_codec(cfg)
    cfg.validate()  # again, now that init_from's kind is known
    if ckpt is not None:
        if codec_config_from_dict(ckpt["meta"]["codec_config"]) != codec.config:
            raise CheckpointError("the checkpoint's codec architecture differs from this config's model section")
    c = codec.config
    rows = cfg.data.batch_size * info.world_size * math.ceil(cfg.data.segment_duration * codec.frame_rate)
    if c.threshold_ema_dead_code * c.bins > rows:
        logger.warning("model.threshold_ema_dead_code x model.bins (%g x %d) exceeds the latent frames per update (%d):"
                       " most codewords will count as dead and be replaced every update, and the codec will not "
                       "learn. Lower the threshold or the bins, or raise data.batch_size / segment_duration",
                       c.threshold_ema_dead_code, c.bins, rows)
    items, _ = load_items(cfg.data.train, cfg.data.min_duration)
    if cfg.data.valid:
        train_items, (valid_items, _) = items, load_items(cfg.data.valid, cfg.data.min_duration)
    else:
        train_items, valid_items = split_items(items, cfg.data.valid_fraction, cfg.seed)
    train_segments = AudioSegments(train_items, cfg.data.segment_duration, c.sample_rate, c.channels)
    valid_segments = AudioSegments(valid_items, cfg.data.segment_duration, c.sample_rate, c.channels) \
        if valid_items else None
    if valid_segments is None:
        logger.warning("no validation data (data.valid is unset and data.valid_fraction gives no file)")
    sampler = EpochSampler(len(train_segments), cfg.data.batch_size, cfg.seed, info.rank, info.world_size)
    torch.manual_seed(sub_seed(cfg.seed, 13))  # the discriminator's initialisation
    if cfg.spectral:
        objective = SpectralTrainingObjective(codec, cfg.losses, decoder_only=cfg.decoder_only)
    else:
        objective = CodecTrainingObjective(codec, CodecObjective(cfg.losses, c.sample_rate, c.channels, c.hop_length),
                                           decoder_only=cfg.decoder_only)
    valid_batches = _valid_batches(valid_segments, cfg, info)
    write_samples = None
    if cfg.samples.every and info.is_main and valid_segments is not None:
        n = cfg.samples.num
        clips = valid_segments.batch([i % len(valid_segments) for i in range(n)],
                                     [sub_seed(cfg.seed, 14, i) for i in range(n)])[0]
        write_samples = _sample_writer(codec, clips)
    meta = {"kind": "codec", "codec_config": c.to_dict(), "init_from": cfg.init_from,
            "decoder_only": cfg.decoder_only}
    seed_all(sub_seed(cfg.seed, 15, info.rank))  # per-rank streams: k-means starts, dead-code draws
    trainer = Trainer(cfg, objective, info, _AudioBatches(train_segments, sampler, cfg.seed), valid_batches, meta,
                      write_samples)
    n_disc = sum(p.numel() for p in objective.losses.parameters())
    logger.info("training a codec of %.2fM parameters (discriminator %.2fM) on %d train / %d valid files, "
                "%d process(es), device %s", sum(p.numel() for p in codec.parameters()) / 1e6, n_disc / 1e6,
                len(train_segments), len(valid_segments) if valid_segments else 0, info.world_size, info.device)
    metrics = trainer.run(ckpt)
    if info.is_main:
        out = export_codec(Path(cfg.run_dir), Path(cfg.run_dir) / EXPORT_DIR, use_ema=cfg.ema.use)
        logger.info("exported the codec to %s", out)
    return metrics


# ----------------------------------------------------------------------------------- export


def export_codec(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, use_ema: bool = True) -> Path:
    """Write the codec of a codec training checkpoint (or of a run folder's last one) to ``out_dir``
    (EMA weights if kept and ``use_ema``): EnCodec as ``compression_state_dict.bin`` (audiocraft's
    format), the spectral codec as ``config.json`` + ``model.safetensors`` (ours). Returns the path of
    the file written (``config.json`` for ours)."""
    path = find_checkpoint(checkpoint)
    ckpt = load_checkpoint(path)
    meta = ckpt.get("meta") or {}
    if meta.get("kind") != "codec":
        raise CheckpointError(f"{path} is not a codec training checkpoint (kind {meta.get('kind')!r})")
    codec = codec_from_config(codec_config_from_dict(meta["codec_config"]))
    weights = checkpoint_weights(ckpt, use_ema)
    try:
        codec.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: its weights do not match its codec config: {exc}") from exc
    out = Path(out_dir).expanduser()
    if not isinstance(codec, EncodecModel):
        stale = out / "compression_state_dict.bin"  # an earlier EnCodec export there would be loaded first
        if stale.exists():
            stale.unlink()
        return save_our_codec(codec, out) / "config.json"
    out.mkdir(parents=True, exist_ok=True)
    return write_atomic(lambda tmp: save_audiocraft_export(codec, tmp), out / "compression_state_dict.bin")


# ----------------------------------------------------------------------------------- command line


def cmd_train_codec(args: argparse.Namespace) -> None:
    setup_logging()
    cfg = load_codec_config(args.config, args.overrides)
    if cfg.log.tensorboard and int(os.environ.get("RANK", "0")) == 0:
        print(tensorboard_hint(cfg.run_dir), flush=True)
    metrics = train_codec(cfg, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        if metrics:
            print("final validation: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        print(f"codec: {Path(cfg.run_dir) / EXPORT_DIR}")


def add_subcommands(subparsers) -> None:
    """Register ``train-codec`` on the top-level ``magnet`` subparsers."""
    p = subparsers.add_parser(
        "train-codec", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="train or fine-tune an audio codec (EnCodec, or our spectral codec) on your audio",
        description="Train an EnCodec codec (SEANet + RVQ, multi-scale mel / L1 / commitment losses and an MS-STFT "
                    "discriminator), or with model.type=spectral our magnitude codec, as CONFIG says; "
                    "configs/codec_tiny.yaml documents every option (configs/default/codec.yaml trains the default "
                    "model's spectral codec). The codec is exported to RUN_DIR/export at the end. Several processes: torchrun "
                    "--nproc_per_node N -m magnet_audio.training.codec_train CONFIG. Example: magnet train-codec "
                    "configs/codec_tiny.yaml data.train=data/synth/train.jsonl losses.adversarial=false")
    p.add_argument("config", help="YAML codec training config")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, nested keys dotted (optim.lr=1e-4 model.n_q=8)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                   help="continue the run in run_dir from its last checkpoint (or from CKPT)")
    p.set_defaults(func=cmd_train_codec)


if __name__ == "__main__":  # torchrun --nproc_per_node N -m magnet_audio.training.codec_train CONFIG ...
    _parser = argparse.ArgumentParser(prog="python -m magnet_audio.training.codec_train")
    add_subcommands(_parser.add_subparsers(dest="command", required=True))
    sys.exit(run_command(_parser, ["train-codec", *sys.argv[1:]]))
