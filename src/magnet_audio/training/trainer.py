"""MAGNeT LM training: the token caches, the LM and its objective, run by the generic loop
(:class:`~magnet_audio.training.loop.Trainer`). :func:`train` is ``magnet train``.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn

from ..audio import audio_write
from ..codec import load_compression_model
from ..errors import CheckpointError, InputError
from ..genmodel import codec_source
from ..lm.loading import load_lm_model
from ..lm.magnet import MagnetLM, MagnetLMConfig
from ..models import MAGNeT
from ..utils import slugify
from .config import TrainConfig
from .data import DescriptionConfig, EpochSampler, split_items, sub_seed
from .loop import Trainer, open_run
from .objectives import MagnetObjective
from ..distributed import DistInfo, barrier, init_distributed
from .runtime import seed_all
from .tokens import CacheMeta, TokenCache, TokenCrops, is_token_cache, tokenize


logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------- MAGNeT LM training


def init_lm_weights(lm: MagnetLM) -> None:
    """audiocraft's initialisation for training from scratch (``weight_init gaussian``,
    ``depthwise_init current``): truncated normals (at ±3 std) with std 1/sqrt(fan_in) for the
    embeddings, the heads and every Linear of each layer, divided by sqrt(2 i) in layer i (from 1);
    the packed attention projections keep PyTorch's default Linear initialisation."""
    def normal_(weight: torch.Tensor, std: float) -> None:
        nn.init.trunc_normal_(weight, std=std, a=-3 * std, b=3 * std)

    dim = lm.cfg.dim
    for emb in lm.emb:
        normal_(emb.weight, 1 / math.sqrt(dim))
    for depth, layer in enumerate(lm.transformer.layers, 1):
        for module in layer.modules():
            if isinstance(module, nn.Linear):
                normal_(module.weight, 1 / math.sqrt(module.in_features) / math.sqrt(2 * depth))
        for attn in (layer.self_attn, layer.cross_attention):
            if attn is not None:
                nn.init.kaiming_uniform_(attn.in_proj_weight, a=math.sqrt(5))
    for head in lm.linears:
        normal_(head.weight, 1 / math.sqrt(dim))


def default_decoding_steps(n_q: int) -> list[int]:
    """audiocraft's [20, 10, 10, 10] for any number of codebooks."""
    return [20] + [10] * (n_q - 1)


def _absolute_if_local(source: str) -> str:
    path = Path(source).expanduser()
    return str(path.resolve()) if path.exists() else source


def codec_source_for(cfg: TrainConfig, cache_codec: str | None = None) -> str | None:
    """The codec of a run: ``model.codec``, else the one shipped with ``model.init_from``, else the
    one the token cache was made with."""
    if cfg.model.codec:
        return _absolute_if_local(cfg.model.codec)
    if cfg.model.init_from:
        return _absolute_if_local(codec_source(cfg.model.init_from))
    return cache_codec


class _CropBatches:
    """position -> (codes [B, K, T], descriptions, tempi [B, 2]: bpm, beat at frame 0) for one rank (picklable for DataLoader workers)."""

    def __init__(self, crops: TokenCrops, sampler: EpochSampler, seed: int):
        self.crops, self.sampler, self.seed = crops, sampler, seed

    def __call__(self, position: int) -> tuple[torch.Tensor, list[str | None], torch.Tensor]:
        epoch, indices = self.sampler.batch(position)
        seeds = [sub_seed(self.seed, 1, epoch, position, self.sampler.rank, j) for j in range(len(indices))]
        return self.crops.batch(indices, seeds)


def _valid_batches(crops: TokenCrops | None, cfg: TrainConfig, info: DistInfo) -> list[tuple]:
    """Fixed validation crops: ``valid.batches`` global batches (default: one crop per item),
    spread over the ranks."""
    if crops is None:
        return []
    B = cfg.data.batch_size
    total = cfg.valid.batches * B * info.world_size if cfg.valid.batches else len(crops)
    mine = list(range(info.rank, total, info.world_size))
    batches = []
    for start in range(0, len(mine), B):
        chunk = mine[start:start + B]
        batches.append(crops.batch([i % len(crops) for i in chunk], [sub_seed(cfg.seed, 2, i) for i in chunk]))
    return batches


def _prepare_tokens(cfg: TrainConfig, info: DistInfo, codec_source: str | None,
                    load_codec: Callable[[], object]) -> tuple[TokenCache, list[dict], TokenCache | None, list[dict]]:
    """Open (or make, from audio) the train and validation token caches; returns (train cache,
    train entries, valid cache, valid entries)."""
    min_duration = cfg.data.min_duration if cfg.data.min_duration is not None else cfg.data.segment_duration

    def open_cache(source: str, name: str) -> TokenCache:
        if is_token_cache(source):
            return TokenCache(source)
        if codec_source is None:
            raise InputError(f"data.{name} ({source}) is audio: set model.codec to the codec that tokenizes it "
                             f"(or run `magnet tokenize` first and point data.{name} to the cache)")
        out = Path(cfg.run_dir) / "tokens" / name
        if info.is_main:
            logger.info("tokenizing %s into %s with %s", source, out, codec_source)
            tokenize(source, codec_source, out, device=info.device, chunk_seconds=cfg.data.tokenize_chunk_seconds,
                     min_duration=min_duration, progress=cfg.log.progress, codec=load_codec())
        barrier(info)
        return TokenCache(out)

    train_cache = open_cache(cfg.data.train, "train")
    if cfg.data.valid:
        valid_cache = open_cache(cfg.data.valid, "valid")
        m, v = train_cache.meta, valid_cache.meta
        if (m.n_q, m.card, m.frame_rate) != (v.n_q, v.card, v.frame_rate):
            raise InputError(f"the train and valid token caches come from different codecs ({m.codec} vs {v.codec})")
        return train_cache, train_cache.entries, valid_cache, valid_cache.entries
    train_entries, valid_entries = split_items(train_cache.entries, cfg.data.valid_fraction, cfg.seed)
    return train_cache, train_entries, (train_cache if valid_entries else None), valid_entries


def build_lm(cfg: TrainConfig, meta: CacheMeta) -> MagnetLM:
    """A new LM sized by ``cfg.model`` (initialised as audiocraft does, seeded by ``cfg.seed``), or
    the pretrained one of ``model.init_from`` with this config's dropouts, segment length and
    ``model.hybrid`` (a plain MAGNeT can be fine-tuned into a hybrid one: the weights are the same)."""
    frame_rate = int(round(meta.frame_rate))
    m = cfg.model
    if m.init_from:
        lm = load_lm_model(m.init_from, device="cpu", t5_path=m.conditioner.path, frame_rate=frame_rate)
        if (lm.cfg.n_q, lm.cfg.card) != (meta.n_q, meta.card):
            raise InputError(f"model.init_from {m.init_from} models {lm.cfg.n_q} codebooks of {lm.cfg.card}, but the "
                             f"tokens have {meta.n_q} of {meta.card}: tokenize with the model's codec")
        lm.cfg.segment_duration = cfg.data.segment_duration
        lm.cfg.cfg_dropout = m.cfg_dropout
        lm.cfg.conditioner.word_dropout = m.conditioner.word_dropout
        lm.condition_provider.text.word_dropout = m.conditioner.word_dropout
        lm.cfg.hybrid = m.hybrid
        if m.tempo_rope and not lm.cfg.tempo_rope:  # rope positions become tempo-relative ones (no new weights)
            if lm.cfg.positional_embedding != "rope":
                raise InputError(f"model.tempo_rope needs a rope LM; model.init_from {m.init_from} has "
                                 f"{lm.cfg.positional_embedding} positions")
            lm.use_tempo_positions(m.tempo_periods)
        if m.beat_phase:  # a new zero map of the beat phase (the LM starts as it was)
            lm.use_beat_phase()
    else:
        lm_cfg = MagnetLMConfig(dim=m.dim, num_heads=m.num_heads, num_layers=m.num_layers, hidden_scale=m.hidden_scale,
                                n_q=meta.n_q, card=meta.card, segment_duration=cfg.data.segment_duration,
                                frame_rate=frame_rate, cfg_dropout=m.cfg_dropout, subcodes_context=m.subcodes_context,
                                span_len=m.span_len, hybrid=m.hybrid, conditioner=copy.deepcopy(m.conditioner),
                                positional_embedding=m.positional_embedding, tempo_rope=m.tempo_rope,
                                tempo_periods=m.tempo_periods, beat_phase=m.beat_phase)
        torch.manual_seed(cfg.seed)
        lm = MagnetLM(lm_cfg)
        init_lm_weights(lm)
    lm.condition_provider.text.load_text_model()
    return lm


def _sample_writer(cfg: TrainConfig, lm: MagnetLM, codec, prompts: list[str | None]) -> Callable[[int, Path], None]:
    def write(step: int, out: Path) -> None:
        model = MAGNeT("training", codec, lm)
        model.set_generation_params(decoding_steps=cfg.samples.decoding_steps or default_decoding_steps(lm.cfg.n_q))
        wav = model.generate(prompts)
        out.mkdir(parents=True, exist_ok=True)
        for i, (prompt, audio) in enumerate(zip(prompts, wav)):
            audio_write(out / f"{i:02d}_{slugify(prompt or 'unconditional')}", audio.float().cpu(), model.sample_rate,
                        strategy="loudness", loudness_compressor=True)
        logger.info("step %d: wrote %d samples to %s", step, len(prompts), out)
    return write


def train(cfg: TrainConfig, resume: bool | str = False) -> dict[str, float]:
    """Train (or fine-tune) a MAGNeT LM as ``cfg`` says; returns the last validation metrics.

    ``resume``: True continues from the run folder's last checkpoint (from scratch if there is
    none), a path from that checkpoint. Without it, a run folder that already has checkpoints is
    refused. Works alone or under torchrun (see the module docstring).
    """
    info = init_distributed(cfg.device, cfg.distributed.backend, cfg.distributed.timeout_minutes,
                            what="the config's device")
    owns_group = info.distributed
    try:
        return _train(cfg, resume, info)
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, resume: bool | str, info: DistInfo) -> dict[str, float]:
    ckpt = open_run(cfg, resume, info)
    if ckpt is not None and (ckpt.get("meta") or {}).get("kind") != "magnet":
        raise CheckpointError("the checkpoint to resume is not a MAGNeT LM training checkpoint")
    source = codec_source_for(cfg)

    @functools.cache
    def load_codec():  # only when tokenizing audio or writing samples
        return load_compression_model(source, device=info.device)

    train_cache, train_entries, valid_cache, valid_entries = _prepare_tokens(cfg, info, source, load_codec)
    source = source or train_cache.meta.codec
    meta = train_cache.meta
    lm = build_lm(cfg, meta)
    segment_frames = lm.cfg.max_len
    descriptions = DescriptionConfig(cfg.data.merge_text_p, cfg.data.drop_desc_p, cfg.data.drop_other_p)
    train_crops = TokenCrops(train_cache, train_entries, segment_frames, descriptions)
    valid_crops = TokenCrops(valid_cache, valid_entries, segment_frames) if valid_entries else None
    if valid_crops is None:
        logger.warning("no validation data (data.valid is unset and data.valid_fraction gives no item)")
    sampler = EpochSampler(len(train_crops), cfg.data.batch_size, cfg.seed, info.rank, info.world_size)
    if cfg.model.stage_weights is not None and len(cfg.model.stage_weights) != lm.cfg.n_q:
        raise InputError(f"model.stage_weights has {len(cfg.model.stage_weights)} values; the codec has "
                         f"{lm.cfg.n_q} codebooks (one weight each)")
    objective = MagnetObjective(lm, cfg.model.cfg_dropout, ar_weight=cfg.model.hybrid_ar_weight,
                                max_prefix=cfg.model.hybrid_max_prefix, stage_weights=cfg.model.stage_weights)
    write_samples = None
    if cfg.samples.every and info.is_main:
        prompts = list(cfg.samples.prompts)[:cfg.samples.num]
        if not prompts:
            prompts = [valid_crops.crop(i % len(valid_crops), sub_seed(cfg.seed, 4, i))[1] if valid_crops else None
                       for i in range(cfg.samples.num)]
        write_samples = _sample_writer(cfg, lm, load_codec(), prompts)
    export_meta = {"kind": "magnet", "lm_config": lm.cfg.to_dict(), "codec": source}
    seed_all(sub_seed(cfg.seed, 5, info.rank))  # per-rank streams: stages, masks, dropouts
    trainer = Trainer(cfg, objective, info, _CropBatches(train_crops, sampler, cfg.seed),
                      _valid_batches(valid_crops, cfg, info), export_meta, write_samples)
    logger.info("training %.1fM parameters on %d train / %d valid items, %d process(es), device %s",
                sum(p.numel() for p in lm.parameters()) / 1e6, len(train_crops),
                len(valid_crops) if valid_crops else 0, info.world_size, info.device)
    return trainer.run(ckpt)
