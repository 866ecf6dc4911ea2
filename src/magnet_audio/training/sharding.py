"""Sharded training (``distributed.strategy: fsdp``) with PyTorch's FSDP2.

:func:`shard` applies ``torch.distributed.fsdp.fully_shard`` to each *block* of an objective and then
to the objective itself (the root): every rank keeps 1/N of each parameter (a ``DTensor``), gathers
a block's parameters just before its forward (and again in backward), and reduce-scatters its
gradients, so parameters, gradients and the AdamW states built on them are sharded. Blocks are the
transformer layers of an LM (:class:`~magnet_audio.lm.transformer.TransformerLayer`); a model without
them (a codec and its discriminator) is sharded per child module of the objective's parts.

Precision: on CUDA with a bf16 autocast the policy is bf16 parameters in compute and float32
gradient reduction (``MixedPrecisionPolicy``); elsewhere everything stays float32. Activation
checkpointing (``distributed.activation_checkpointing``) wraps each block with the composable
``torch.distributed._composable.checkpoint``, which keeps parameter names (and so checkpoints)
unchanged.

Module names, the optimizer's and the EMA's state names are those of the unsharded model, so a sharded
checkpoint (:mod:`.dcp`) loads on any number of processes, or on none.
"""

from __future__ import annotations

import torch
from torch import nn

from ..lm.transformer import TransformerLayer


def blocks(objective: nn.Module) -> list[nn.Module]:
    """The modules :func:`shard` makes units of, before the root."""
    layers = [m for m in objective.modules() if isinstance(m, TransformerLayer)]
    if layers:
        return layers
    units = []
    for part in objective.children():
        for child in part.children():
            if any(True for _ in child.parameters()):
                units.append(child)
    return units


def shard(objective: nn.Module, device: torch.device, autocast_dtype: torch.dtype | None,
          activation_checkpointing: bool = False) -> nn.Module:
    """Apply FSDP2 to ``objective`` in place (needs an initialised process group); returns it."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy()
    if device.type == "cuda" and autocast_dtype == torch.bfloat16:
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    units = blocks(objective)
    if activation_checkpointing:
        from torch.distributed._composable import checkpoint

        for unit in units:
            checkpoint(unit)
    for unit in units:
        fully_shard(unit, mp_policy=policy)
    fully_shard(objective, mp_policy=policy)
    return objective


def is_sharded(module: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def local(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's part of a ``DTensor`` (a plain tensor as is)."""
    from torch.distributed.tensor import DTensor

    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole value of a ``DTensor`` (a collective: every rank calls it); a plain tensor as is."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
