"""Residual vector quantizer (RVQ) of EnCodec, inference side.

Buffers and names follow audiocraft (``quantizer.vq.layers.K._codebook.{inited, cluster_size, embed,
embed_avg}``) so checkpoints load as they are and the EMA/k-means statistics are kept for a trainer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Codebook(nn.Module):
    """One codebook of ``bins`` vectors of size ``dim``.

    Buffers: ``embed`` [bins, dim] (the codewords), ``embed_avg`` [bins, dim] and ``cluster_size``
    [bins] (EMA statistics), ``inited`` [1] (1.0 once the codewords are initialised; a new codebook
    starts at 0 with zero codewords, waiting for k-means initialisation).
    """

    def __init__(self, dim: int, bins: int):
        super().__init__()
        self.register_buffer("inited", torch.zeros(1))
        self.register_buffer("cluster_size", torch.zeros(bins))
        self.register_buffer("embed", torch.zeros(bins, dim))
        self.register_buffer("embed_avg", torch.zeros(bins, dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codeword (squared Euclidean distance) for each row of ``x`` [N, dim] -> [N]."""
        embed_t = self.embed.t()
        # Full distance, not just the cross term: the same float ops as the reference, so ties break alike.
        distance = x.pow(2).sum(1, keepdim=True) - 2 * x @ embed_t + embed_t.pow(2).sum(0, keepdim=True)
        return (-distance).max(dim=-1).indices

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codewords for ``codes`` [...] -> [..., dim]."""
        return F.embedding(codes, self.embed)


class ResidualVectorQuantizer(nn.Module):
    """``n_q`` codebooks applied in turn to the residual left by the previous ones."""

    def __init__(self, dim: int, n_q: int, bins: int):
        super().__init__()
        layers = nn.ModuleList(nn.ModuleDict({"_codebook": Codebook(dim, bins)}) for _ in range(n_q))
        self.vq = nn.ModuleDict({"layers": layers})  # nesting reproduces audiocraft's key names

    @property
    def codebooks(self) -> list[Codebook]:
        return [layer["_codebook"] for layer in self.vq["layers"]]

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent [B, D, T] -> codes [B, n_q, T] (int64)."""
        batch, _, length = z.shape
        residual = z
        codes = []
        for codebook in self.codebooks:
            rows = residual.transpose(1, 2).reshape(batch * length, -1)
            index = codebook.encode(rows).view(batch, length)
            residual = residual - codebook.decode(index).transpose(1, 2)
            codes.append(index)
        return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, K, T] with K <= n_q -> sum of the first K codebooks' codewords [B, D, T]."""
        out = self.codebooks[0].decode(codes[:, 0])
        for k in range(1, codes.shape[1]):
            out = out + self.codebooks[k].decode(codes[:, k])
        return out.transpose(1, 2)
