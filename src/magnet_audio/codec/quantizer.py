"""Residual vector quantizer (RVQ) of EnCodec: inference, and training with EMA codebooks.

Buffers and names follow audiocraft (``quantizer.vq.layers.K._codebook.{inited, cluster_size, embed,
embed_avg}``) so checkpoints load as they are and the EMA/k-means statistics are kept for a trainer.

Inference (:meth:`ResidualVectorQuantizer.encode` / ``decode``) is a nearest-codeword search and a sum
of codewords. Training (:meth:`ResidualVectorQuantizer.forward` in ``train()`` mode) follows EnCodec /
SoundStream:

* the codewords are not parameters: each codebook keeps exponential moving averages (``decay``) of how
  many latent vectors were assigned to each codeword (``cluster_size``) and of their sum
  (``embed_avg``); the codeword is their ratio, with Laplace smoothing of the counts;
* a codebook whose ``inited`` is 0 is initialised by k-means (``kmeans_iters`` Lloyd iterations) on the
  first training batch that reaches it (``kmeans_init``; otherwise it starts from a Kaiming-uniform draw);
  the EMA statistics start as the cluster sizes and sums (audiocraft stores the means as ``embed_avg``,
  which makes its first EMA update shrink every codeword by about its cluster size);
* a codeword whose EMA count falls below ``threshold_ema_dead_code`` is replaced by a random latent vector
  of the current batch (and its statistics reset to that vector with count ``threshold_ema_dead_code``,
  so the replacement survives the next EMA update — audiocraft only overwrites ``embed``, which its own
  EMA update then overwrites again);
* gradients reach the encoder through a straight-through estimator, and a commitment loss
  ``mse(x, quantized.detach())`` per codebook pulls the encoder output toward its codewords;
* ``q_dropout`` trains with a random number of codebooks in ``[1, n_q]`` per batch.

Under ``torch.distributed`` the per-batch assignment counts and sums are all-reduced before the EMA
update, so every rank applies the same update (as if it had seen the global batch); k-means
initialisation, dead-code replacement and the ``q_dropout`` draw come from rank 0 and are broadcast,
so the codebooks stay identical on all ranks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _dist_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if _dist_ready():
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    return tensor


def _broadcast(tensors) -> None:
    if _dist_ready():
        for tensor in tensors:
            torch.distributed.broadcast(tensor, src=0)


def sample_vectors(samples: torch.Tensor, num: int) -> torch.Tensor:
    """``num`` rows of ``samples`` [N, D] drawn at random: without replacement when N >= num."""
    n = samples.shape[0]
    if n >= num:
        index = torch.randperm(n, device=samples.device)[:num]
    else:
        index = torch.randint(0, n, (num,), device=samples.device)
    return samples[index]


def _nearest(x: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
    """Index of the nearest row of ``embed`` [K, D] for each row of ``x`` [N, D] (squared Euclidean)."""
    embed_t = embed.t()
    distance = x.pow(2).sum(1, keepdim=True) - 2 * x @ embed_t + embed_t.pow(2).sum(0, keepdim=True)
    return (-distance).max(dim=-1).indices


def kmeans(samples: torch.Tensor, num_clusters: int, num_iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on ``samples`` [N, D] started from ``num_clusters`` random samples.

    Returns (means [num_clusters, D], counts [num_clusters]) where counts are the cluster sizes of
    the last assignment. A cluster that receives no sample keeps its previous mean.
    """
    dim = samples.shape[-1]
    means = sample_vectors(samples, num_clusters)
    counts = torch.zeros(num_clusters, dtype=samples.dtype, device=samples.device)
    for _ in range(num_iters):
        assign = _nearest(samples, means)
        counts = torch.bincount(assign, minlength=num_clusters).to(samples.dtype)
        sums = torch.zeros(num_clusters, dim, dtype=samples.dtype, device=samples.device)
        sums.index_add_(0, assign, samples)
        empty = counts == 0
        means = torch.where(empty[:, None], means, sums / counts.clamp(min=1)[:, None])
    return means, counts


class Codebook(nn.Module):
    """One codebook of ``bins`` vectors of size ``dim``.

    Buffers: ``embed`` [bins, dim] (the codewords), ``embed_avg`` [bins, dim] and ``cluster_size``
    [bins] (EMA statistics), ``inited`` [1] (1.0 once the codewords are initialised; a new codebook
    with ``kmeans_init`` starts at 0 with zero codewords, waiting for k-means initialisation on its
    first training batch; without ``kmeans_init`` it starts Kaiming-uniform and initialised).

    The other arguments only matter in training (see the module docstring).
    """

    def __init__(self, dim: int, bins: int, *, decay: float = 0.99, kmeans_init: bool = True,
                 kmeans_iters: int = 10, threshold_ema_dead_code: float = 2.0, epsilon: float = 1e-5):
        super().__init__()
        self.bins, self.decay, self.epsilon = bins, decay, epsilon
        self.kmeans_iters, self.threshold_ema_dead_code = kmeans_iters, threshold_ema_dead_code
        embed = torch.zeros(bins, dim)
        if not kmeans_init:
            nn.init.kaiming_uniform_(embed)
        self.register_buffer("inited", torch.tensor([0.0 if kmeans_init else 1.0]))
        self.register_buffer("cluster_size", torch.zeros(bins))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codeword (squared Euclidean distance) for each row of ``x`` [N, dim] -> [N]."""
        # Full distance, not just the cross term: the same float ops as the reference, so ties break alike.
        return _nearest(x, self.embed)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codewords for ``codes`` [...] -> [..., dim]."""
        return F.embedding(codes, self.embed)

    # ------------------------------------------------------------------ training

    @torch.no_grad()
    def init_embed_(self, x: torch.Tensor) -> None:
        """k-means initialisation from the rows of ``x`` [N, dim] (rank 0's, broadcast)."""
        means, counts = kmeans(x.to(self.embed.dtype), self.bins, self.kmeans_iters)
        self.embed.copy_(means)
        self.embed_avg.copy_(means * counts[:, None])  # consistent statistics: embed = embed_avg / count
        self.cluster_size.copy_(counts)
        self.inited.fill_(1.0)
        _broadcast(self.buffers())

    @torch.no_grad()
    def expire_codes_(self, x: torch.Tensor) -> int:
        """Replace the codewords whose EMA count is below ``threshold_ema_dead_code`` by random rows of
        ``x`` [N, dim]. Returns how many were replaced (the same on every rank)."""
        if self.threshold_ema_dead_code <= 0:
            return 0
        dead = self.cluster_size < self.threshold_ema_dead_code
        n_dead = int(dead.sum())
        if n_dead == 0:
            return 0
        samples = sample_vectors(x.to(self.embed.dtype), self.bins)
        self.embed.copy_(torch.where(dead[:, None], samples, self.embed))
        reset = float(self.threshold_ema_dead_code)
        self.embed_avg.copy_(torch.where(dead[:, None], samples * reset, self.embed_avg))
        self.cluster_size.masked_fill_(dead, reset)
        _broadcast((self.embed, self.embed_avg, self.cluster_size))
        return n_dead

    @torch.no_grad()
    def ema_update_(self, x: torch.Tensor, codes: torch.Tensor) -> None:
        """Move the EMA statistics toward this batch's assignment of rows ``x`` [N, dim] to ``codes`` [N]
        (counts and sums all-reduced over ranks) and recompute the codewords."""
        x = x.to(self.embed.dtype)
        counts = torch.bincount(codes, minlength=self.bins).to(x.dtype)
        sums = torch.zeros(self.bins, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, codes, x)
        stats = _all_reduce_sum(torch.cat([counts[:, None], sums], dim=1))
        counts, sums = stats[:, 0], stats[:, 1:]
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (total + self.bins * self.epsilon) * total
        self.embed.copy_(self.embed_avg / smoothed[:, None])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``x`` [N, dim] -> (their codewords [N, dim], codes [N]).

        In training mode this also initialises the codebook (first call), replaces dead codewords and
        applies the EMA update; the codewords returned are those before this batch's update.
        """
        if self.training and not bool(self.inited):
            self.init_embed_(x.detach())
        codes = self.encode(x.detach())
        quantized = self.decode(codes)
        if self.training:
            rows = x.detach()
            self.expire_codes_(rows)
            self.ema_update_(rows, codes)
        return quantized, codes


class ResidualVectorQuantizer(nn.Module):
    """``n_q`` codebooks applied in turn to the residual left by the previous ones.

    ``q_dropout``, ``decay``, ``kmeans_init``, ``kmeans_iters`` and ``threshold_ema_dead_code`` only
    matter in training (see the module docstring).
    """

    def __init__(self, dim: int, n_q: int, bins: int, *, q_dropout: bool = False, decay: float = 0.99,
                 kmeans_init: bool = True, kmeans_iters: int = 10, threshold_ema_dead_code: float = 2.0):
        super().__init__()
        self.n_q, self.bins, self.q_dropout = n_q, bins, q_dropout
        options = dict(decay=decay, kmeans_init=kmeans_init, kmeans_iters=kmeans_iters,
                       threshold_ema_dead_code=threshold_ema_dead_code)
        layers = nn.ModuleList(nn.ModuleDict({"_codebook": Codebook(dim, bins, **options)}) for _ in range(n_q))
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

    def _draw_n_q(self, device: torch.device) -> int:
        if not (self.training and self.q_dropout):
            return self.n_q
        n_q = torch.randint(1, self.n_q + 1, (1,)).to(device)
        _broadcast([n_q])  # every rank must run the same codebooks (their statistics are all-reduced)
        return int(n_q.item())

    def forward(self, z: torch.Tensor, n_q: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Latent [B, D, T] -> (quantized [B, D, T], codes [B, K, T], commit_loss []).

        In training mode: codebooks are initialised / updated (see the module docstring); ``quantized``
        carries the straight-through gradient to ``z``; ``commit_loss`` is the mean over the K codebooks
        of ``mse(residual_k, codeword_k)`` with the codewords detached (its gradient reaches ``z``).
        K is ``n_q`` if given, else a random count in ``[1, n_q]`` with ``q_dropout``, else all.
        In eval mode the same values are computed without touching the buffers, and ``quantized`` is
        exactly ``decode(codes)`` (no gradient path from the codes).
        """
        if n_q is None:
            n_q = self._draw_n_q(z.device)
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be in [1, {self.n_q}], got {n_q}")
        batch, dim, length = z.shape
        with torch.autocast(z.device.type, enabled=False):  # distances and EMA statistics in float32
            x = z if z.dtype == torch.float64 else z.float()
            residual = x
            quantized = torch.zeros_like(x)
            codes, losses = [], []
            for codebook in self.codebooks[:n_q]:
                rows = residual.transpose(1, 2).reshape(batch * length, dim)
                words, index = codebook(rows)
                words = words.view(batch, length, dim).transpose(1, 2)
                losses.append(F.mse_loss(residual, words.detach()))
                residual = residual - words.detach()
                quantized = quantized + words.detach()
                codes.append(index.view(batch, length))
            commit_loss = torch.stack(losses).mean()
            if self.training:
                quantized = x + (quantized - x).detach()  # straight-through, for the sum of all codebooks
        return quantized.to(z.dtype), torch.stack(codes, dim=1), commit_loss
