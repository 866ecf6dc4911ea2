"""SEANet encoder and decoder, the convolutional autoencoder of EnCodec.

Layer layout, padding and parameter names follow audiocraft's ``modules/seanet.py`` checkpoints
(``encoder.model.N.conv.conv.weight_g`` ...), so an audiocraft ``best_state`` loads with a plain
``load_state_dict``. Tensors are laid out ``[B, C, T]`` throughout.

Weight norm is computed on the fly (``w = g · v / ‖v‖``, norm over all dims but 0, exactly as
``torch.nn.utils.weight_norm``): it costs one pass over the weights per call, which is negligible next
to the convolutions, and keeps the audiocraft parameters trainable and exportable as they are.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import EncodecConfig, make_activation


def pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """Pad the last dim of ``x`` [B, C, T]. ``reflect`` also works when T <= the padding: the input
    is first zero-extended on the right so the reflection is defined, and the extension is dropped."""
    if mode != "reflect":
        return F.pad(x, (left, right), mode=mode)
    length = x.shape[-1]
    grow = max(left, right) - length + 1
    if grow <= 0:
        return F.pad(x, (left, right), mode="reflect")
    padded = F.pad(F.pad(x, (0, grow)), (left, right), mode="reflect")
    return padded[..., : padded.shape[-1] - grow]


class NormedConvWeights(nn.Module):
    """Parameters and op of a ``Conv1d`` or ``ConvTranspose1d``, optionally weight-normalised.

    With weight norm the parameters are ``weight_g`` [W0, 1, 1] and ``weight_v`` (the shape of the
    weight: [out, in, k] for a conv, [in, out, k] for a transposed conv); without, ``weight``. Both
    have ``bias`` [out]. Initialised like the matching ``torch.nn`` layer (with ``g = ‖v‖``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, transposed: bool = False, weight_norm: bool = True):
        super().__init__()
        self.stride, self.dilation, self.transposed, self.weight_norm = stride, dilation, transposed, weight_norm
        if transposed:
            reference = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride)
        else:
            reference = nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation)
        weight = reference.weight.detach()
        if weight_norm:
            self.weight_g = nn.Parameter(weight.flatten(1).norm(dim=1).view(-1, 1, 1))
            self.weight_v = nn.Parameter(weight.clone())
        else:
            self.weight = nn.Parameter(weight.clone())
        self.bias = nn.Parameter(reference.bias.detach().clone())

    def effective_weight(self) -> torch.Tensor:
        if self.weight_norm:
            return torch._weight_norm(self.weight_v, self.weight_g, 0)  # the op torch's weight norms use
        return self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            return F.conv_transpose1d(x, self.effective_weight(), self.bias, self.stride)
        return F.conv1d(x, self.effective_weight(), self.bias, self.stride, dilation=self.dilation)


class StreamableConv1d(nn.Module):
    """Conv1d [B, C_in, T] -> [B, C_out, ceil(T / stride)] with EnCodec's padding.

    The total padding ``k_eff - stride`` (k_eff = (k-1)·dilation + 1) goes left when causal, else is
    split right = total // 2, left = the rest; extra right padding ``(-T) mod stride`` completes the
    last window. Parameters live under ``conv.conv.*`` (audiocraft's names).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 *, weight_norm: bool, causal: bool, pad_mode: str):
        super().__init__()
        self.conv = nn.ModuleDict({"conv": NormedConvWeights(in_channels, out_channels, kernel_size, stride,
                                                             dilation, weight_norm=weight_norm)})
        self.stride, self.causal, self.pad_mode = stride, causal, pad_mode
        self.padding_total = (kernel_size - 1) * dilation + 1 - stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extra = -x.shape[-1] % self.stride
        if self.causal:
            left, right = self.padding_total, extra
        else:
            right = self.padding_total // 2
            left, right = self.padding_total - right, right + extra
        return self.conv["conv"](pad1d(x, left, right, self.pad_mode))


class StreamableConvTranspose1d(nn.Module):
    """ConvTranspose1d [B, C_in, T] -> [B, C_out, T·stride], trimming ``k - stride`` samples: split
    right = total // 2, left = the rest when non-causal; right = ceil(total · trim_right_ratio) when
    causal. Parameters live under ``convtr.convtr.*`` (audiocraft's names)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 *, weight_norm: bool, causal: bool, trim_right_ratio: float):
        super().__init__()
        self.convtr = nn.ModuleDict({"convtr": NormedConvWeights(in_channels, out_channels, kernel_size, stride,
                                                                 transposed=True, weight_norm=weight_norm)})
        total = kernel_size - stride
        right = math.ceil(total * trim_right_ratio) if causal else total // 2
        self.trim_left, self.trim_right = total - right, right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convtr["convtr"](x)
        return y[..., self.trim_left: y.shape[-1] - self.trim_right]


class SEANetResnetBlock(nn.Module):
    """``shortcut(x) + block(x)`` on [B, dim, T]; ``block`` = act, conv dim→dim/compress (kernel k,
    dilation d), act, conv →dim (kernel 1). ``shortcut`` is the identity (``true_skip``) or a 1×1 conv."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, *, compress: int, true_skip: bool,
                 activation: tuple[str, dict], weight_norm: bool, causal: bool, pad_mode: str):
        super().__init__()
        hidden = dim // compress
        conv_args = dict(weight_norm=weight_norm, causal=causal, pad_mode=pad_mode)
        self.block = nn.Sequential(
            make_activation(*activation), StreamableConv1d(dim, hidden, kernel_size, dilation=dilation, **conv_args),
            make_activation(*activation), StreamableConv1d(hidden, dim, 1, **conv_args),
        )
        self.shortcut = nn.Identity() if true_skip else StreamableConv1d(dim, dim, 1, **conv_args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class StreamableLSTM(nn.Module):
    """Multi-layer LSTM over time with a skip connection: [B, C, T] -> ``lstm(x) + x``."""

    def __init__(self, dim: int, num_layers: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(2, 0, 1)
        return (self.lstm(x)[0] + x).permute(1, 2, 0)


def _block_norms(n_ratios: int, disable_outer: int, weight_norm: bool) -> list[bool]:
    """Weight norm on/off for the encoder's blocks in order: first conv, one per ratio, last conv.
    ``disable_outer`` turns it off for the first N blocks (the decoder mirrors this list)."""
    n_blocks = n_ratios + 2
    norms = [disable_outer < 1] + [disable_outer < i + 2 for i in range(n_ratios)] + [disable_outer != n_blocks]
    return [weight_norm and on for on in norms]


class SEANetEncoder(nn.Module):
    """Waveform [B, channels, T] -> latent [B, dimension, ceil(T / hop)], hop = prod(ratios).

    ``model``: conv(channels → n_filters, kernel_size); for each ratio r of ``reversed(ratios)``:
    ``n_residual_layers`` resblocks (dilation dilation_base**j), act, conv(×2 channels, kernel 2r,
    stride r); then the LSTM if ``lstm`` > 0, act, conv(→ dimension, last_kernel_size).
    """

    def __init__(self, cfg: EncodecConfig):
        super().__init__()
        norms = _block_norms(len(cfg.ratios), cfg.disable_norm_outer_blocks, cfg.norm == "weight_norm")
        act = (cfg.activation, cfg.activation_params)
        conv = dict(causal=cfg.causal, pad_mode=cfg.pad_mode)
        width = cfg.n_filters
        layers: list[nn.Module] = [
            StreamableConv1d(cfg.channels, width, cfg.kernel_size, weight_norm=norms[0], **conv)]
        for i, ratio in enumerate(reversed(cfg.ratios)):
            for j in range(cfg.n_residual_layers):
                layers.append(SEANetResnetBlock(width, cfg.residual_kernel_size, cfg.dilation_base ** j,
                                                compress=cfg.compress, true_skip=cfg.true_skip, activation=act,
                                                weight_norm=norms[i + 1], **conv))
            layers += [make_activation(*act),
                       StreamableConv1d(width, width * 2, 2 * ratio, stride=ratio, weight_norm=norms[i + 1], **conv)]
            width *= 2
        if cfg.lstm:
            layers.append(StreamableLSTM(width, cfg.lstm))
        layers += [make_activation(*act),
                   StreamableConv1d(width, cfg.dimension, cfg.last_kernel_size, weight_norm=norms[-1], **conv)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SEANetDecoder(nn.Module):
    """Latent [B, dimension, T'] -> waveform [B, channels, T' · hop]; the mirror of the encoder.

    ``model``: conv(dimension → n_filters·2^len(ratios), kernel_size); the LSTM if ``lstm`` > 0; for
    each ratio r of ``ratios``: act, transposed conv(÷2 channels, kernel 2r, stride r), resblocks;
    then act, conv(→ channels, last_kernel_size), and the optional final activation.
    """

    def __init__(self, cfg: EncodecConfig):
        super().__init__()
        norms = _block_norms(len(cfg.ratios), cfg.disable_norm_outer_blocks, cfg.norm == "weight_norm")[::-1]
        act = (cfg.activation, cfg.activation_params)
        conv = dict(causal=cfg.causal, pad_mode=cfg.pad_mode)
        width = cfg.n_filters * 2 ** len(cfg.ratios)
        layers: list[nn.Module] = [
            StreamableConv1d(cfg.dimension, width, cfg.kernel_size, weight_norm=norms[0], **conv)]
        if cfg.lstm:
            layers.append(StreamableLSTM(width, cfg.lstm))
        for i, ratio in enumerate(cfg.ratios):
            layers += [make_activation(*act),
                       StreamableConvTranspose1d(width, width // 2, 2 * ratio, ratio, weight_norm=norms[i + 1],
                                                 causal=cfg.causal, trim_right_ratio=cfg.trim_right_ratio)]
            for j in range(cfg.n_residual_layers):
                layers.append(SEANetResnetBlock(width // 2, cfg.residual_kernel_size, cfg.dilation_base ** j,
                                                compress=cfg.compress, true_skip=cfg.true_skip, activation=act,
                                                weight_norm=norms[i + 1], **conv))
            width //= 2
        layers += [make_activation(*act),
                   StreamableConv1d(width, cfg.channels, cfg.last_kernel_size, weight_norm=norms[-1], **conv)]
        if cfg.final_activation is not None:
            layers.append(make_activation(cfg.final_activation, cfg.final_activation_params))
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)
