"""Training objective of the EnCodec codec: reconstruction losses, commitment, MS-STFT discriminator.

The generator (codec) loss is a plain weighted sum (no gradient balancer)::

    g_loss = w_msspec · msspec + w_l1 · l1 + w_mel · mel + w_periodic · periodic + w_commit · commit
             + w_adv · adv + w_feat · feat

* ``msspec``: multi-scale mel loss (EnCodec / audiocraft ``msspec``): for n_fft = 2^i, i in
  [range_start, range_end), hop n_fft/4, ``n_mels`` mel bands, ``L1(mel_x, mel_y) + α_i ·
  MSE(log10(floor + mel_x), log10(floor + mel_y))`` summed over scales (α_i = sqrt(2^i − 1) with
  ``alphas``, else 1), divided by Σ(1 + α_i) when ``normalized``.
* ``mel``: single-scale log-mel L1 (audiocraft ``mel``; weight 0 by default).
* ``l1``: waveform L1.
* ``periodic``: the energy of the error's frame-synchronous average (the one ``hop``-sample waveform
  that repeats every code frame) over the target's energy, ``N ||mean_n(fake_n - real_n)||² / ||real||²``
  over the N whole frames: it penalises a buzz at the frame rate, a comb on the harmonics of the frame
  rate that the mel losses accept as tonal content (weight 0 by default).
* ``commit``: the quantizer's commitment loss (audiocraft backpropagates it with weight 1 outside its
  balancer).
* ``adv`` / ``feat``: generator hinge (or least-squares) loss against a multi-scale STFT discriminator
  and L1 feature matching on its feature maps, each averaged over the sub-discriminators.

audiocraft scales the balanced losses with a gradient balancer (each loss's gradient on the output
normalised and re-weighted); we use the plain weighted sum, which is simpler and deterministic. The
default weights are audiocraft's (msspec 2, l1 0.1, adv 4, feat 4, commit 1); with the balancer off,
they are the relative importance of raw loss values, so a run may want to retune them.

The spectral codec (:class:`~magnet_audio.codec.spectral.SpectralCodec`) is trained on magnitudes
instead (:func:`spectral_reconstruction`)::

    g_loss = w_log_magnitude · L1(pred, log(|X| + floor)) + w_magnitude · L1(exp(pred), |X| + floor)
             + w_commit · commit

with X the STFT of the unit-RMS input and ``pred`` the decoded log magnitudes; the waveform losses,
the periodic loss and the discriminator do not apply to it.

Mel filterbanks and spectrograms are computed with plain torch (``torch.stft``), no torchaudio.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..codec.seanet import pad1d
from ..errors import InputError

ADV_LOSSES = ("hinge", "mse")


# ----------------------------------------------------------------------------- spectrograms


def hz_to_mel(freq):
    """HTK mel scale."""
    return 2595.0 * math.log10(1.0 + freq / 700.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular HTK-mel filterbank [n_fft // 2 + 1, n_mels] (no area normalisation).

    Filter m rises linearly from mel point m to m+1 and falls to m+2, with the ``n_mels + 2`` points
    evenly spaced in mel between ``f_min`` and ``f_max`` (default Nyquist). Filters narrower than one
    FFT bin may be all zero, as with torchaudio's ``melscale_fbanks``.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max:
        raise InputError(f"mel filterbank: need 0 <= f_min < f_max, got f_min={f_min}, f_max={f_max}")
    freqs = torch.linspace(0, sample_rate // 2, n_fft // 2 + 1, dtype=torch.float64)
    mels = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    points = 700.0 * (torch.pow(10.0, mels / 2595.0) - 1.0)  # back to Hz
    widths = points[1:] - points[:-1]                          # [n_mels + 1]
    offsets = points[None, :] - freqs[:, None]                 # [n_freqs, n_mels + 2]
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def _frame_padding(length: int, n_fft: int, hop: int) -> int:
    """Right padding that makes the last STFT window (center=False) full."""
    n_frames = max(math.ceil((length - n_fft) / hop), 0) + 1
    return max((n_frames - 1) * hop + n_fft - length, 0)


def _reflect_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Reflect padding that also works when the signal is shorter than the padding."""
    return pad1d(x, left, right, "reflect")


class MelSpectrogram(nn.Module):
    """Mel spectrogram [B, C, T] -> [B, C · n_mels, ceil(T / hop)] (log10(floor + mel) with ``log``).

    As audiocraft's ``MelSpectrogramWrapper``: the signal is reflect-padded by (n_fft − hop) // 2 on both
    sides and on the right until the last window is full, then a Hann-window power STFT without
    centering; ``normalized`` divides the magnitude by the window's L2 norm.
    """

    def __init__(self, sample_rate: int, n_fft: int = 1024, hop_length: int = 256, win_length: int | None = None,
                 n_mels: int = 64, f_min: float = 0.0, f_max: float | None = None, log: bool = True,
                 normalized: bool = False, floor_level: float = 1e-5):
        super().__init__()
        self.n_fft, self.hop_length = int(n_fft), int(hop_length)
        self.win_length = int(win_length or n_fft)
        self.log, self.normalized, self.floor_level = log, normalized, floor_level
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)
        self.register_buffer("filterbank", mel_filterbank(sample_rate, self.n_fft, n_mels, f_min, f_max),
                             persistent=False)

    def power(self, x: torch.Tensor) -> torch.Tensor:
        """Power spectrogram [B, C, n_fft // 2 + 1, frames]."""
        batch, channels, _ = x.shape
        side = (self.n_fft - self.hop_length) // 2
        x = _reflect_pad(x, side, side)
        x = F.pad(x, (0, _frame_padding(x.shape[-1], self.n_fft, self.hop_length)))
        spec = torch.stft(x.reshape(batch * channels, -1).float(), self.n_fft, self.hop_length, self.win_length,
                          window=self.window, center=False, return_complex=True)
        power = spec.real.pow(2) + spec.imag.pow(2)
        if self.normalized:
            power = power / self.window.pow(2).sum()
        return power.view(batch, channels, *power.shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mel = torch.einsum("bcft,fm->bcmt", self.power(x), self.filterbank)
        if self.log:
            mel = torch.log10(self.floor_level + mel)
        return mel.flatten(1, 2)


class MelLoss(nn.Module):
    """L1 between the log-mel spectrograms of two signals [B, C, T] (audiocraft's ``mel`` loss)."""

    def __init__(self, sample_rate: int, n_fft: int = 1024, hop_length: int = 256, win_length: int = 1024,
                 n_mels: int = 64, f_min: float = 64.0, f_max: float | None = None, floor_level: float = 1e-5):
        super().__init__()
        self.mel = MelSpectrogram(sample_rate, n_fft, hop_length, win_length, n_mels, f_min, f_max, log=True,
                                  floor_level=floor_level)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(self.mel(x), self.mel(y))


class MultiScaleMelLoss(nn.Module):
    """Multi-scale mel loss (see the module docstring) between signals [B, C, T]; 0 for identical ones."""

    def __init__(self, sample_rate: int, range_start: int = 6, range_end: int = 11, n_mels: int = 64,
                 f_min: float = 64.0, f_max: float | None = None, normalized: bool = True, alphas: bool = False,
                 floor_level: float = 1e-5):
        super().__init__()
        if not 1 <= range_start < range_end:
            raise InputError(f"msspec: need 1 <= range_start < range_end, got {range_start}, {range_end}")
        self.mels = nn.ModuleList(
            MelSpectrogram(sample_rate, 2 ** i, 2 ** i // 4, 2 ** i, n_mels, f_min, f_max, log=False,
                           normalized=normalized, floor_level=floor_level)
            for i in range(range_start, range_end))
        self.alphas = [math.sqrt(2 ** i - 1) if alphas else 1.0 for i in range(range_start, range_end)]
        self.total = sum(1 + a for a in self.alphas) if normalized else 1.0
        self.floor_level = floor_level

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = x.new_zeros((), dtype=torch.float32)
        for mel, alpha in zip(self.mels, self.alphas):
            mx, my = mel(x), mel(y)
            loss = loss + F.l1_loss(mx, my) + alpha * F.mse_loss(
                torch.log10(self.floor_level + mx), torch.log10(self.floor_level + my))
        return loss / self.total


def frame_periodic_loss(fake: torch.Tensor, real: torch.Tensor, hop: int) -> torch.Tensor:
    """Energy of the frame-synchronous average of ``fake - real`` [B, C, T] over the energy of ``real``
    (module docstring), over the whole frames of ``hop`` samples; 0 when the error has no component
    that repeats every frame."""
    n = real.shape[-1] // hop
    error = (fake - real)[..., :n * hop].reshape(*real.shape[:-1], n, hop)
    return n * error.mean(dim=-2).square().sum() / real[..., :n * hop].square().sum().clamp_min(1e-8)


# ----------------------------------------------------------------------------- discriminator


class NormConv2d(nn.Module):
    """``Conv2d`` with optional weight norm (``weight_g``/``weight_v``, norm over all dims but 0);
    ``forward(x, frozen=True)`` uses detached weights, so a loss computed through it
    sends gradients to ``x`` but none to the conv (the codec step of GAN training)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: tuple[int, int], stride=(1, 1), dilation=(1, 1),
                 norm: str = "weight_norm"):
        super().__init__()
        if norm not in ("weight_norm", "none"):
            raise InputError(f"discriminator norm {norm!r} is not supported (weight_norm, none)")
        self.stride, self.dilation = tuple(stride), tuple(dilation)
        self.padding = ((kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2)
        reference = nn.Conv2d(in_ch, out_ch, kernel)
        weight = reference.weight.detach()
        self.norm = norm
        if norm == "weight_norm":
            self.weight_g = nn.Parameter(weight.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
            self.weight_v = nn.Parameter(weight.clone())
        else:
            self.weight = nn.Parameter(weight.clone())
        self.bias = nn.Parameter(reference.bias.detach().clone())

    def forward(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        if self.norm == "weight_norm":
            g, v = (self.weight_g.detach(), self.weight_v.detach()) if frozen else (self.weight_g, self.weight_v)
            weight = torch._weight_norm(v, g, 0)
        else:
            weight = self.weight.detach() if frozen else self.weight
        bias = self.bias.detach() if frozen else self.bias
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)


class STFTDiscriminator(nn.Module):
    """One scale of the MS-STFT discriminator: complex STFT (real and imaginary parts as 2·C input
    channels, laid out [B, 2C, frames, freqs]), a conv (kernel_size), ``len(dilations)`` convs dilated
    over time and strided over frequency, a conv (k0 × k0), all followed by the activation, and a
    final 1-channel conv. Returns (logits [B, out_channels, frames, freqs'], feature maps)."""

    def __init__(self, filters: int = 32, in_channels: int = 1, out_channels: int = 1, n_fft: int = 1024,
                 hop_length: int = 256, win_length: int = 1024, max_filters: int = 1024, filters_scale: int = 1,
                 kernel_size=(3, 9), dilations=(1, 2, 4), stride=(1, 2), normalized: bool = True,
                 norm: str = "weight_norm", activation: str = "LeakyReLU",
                 activation_params: dict | None = None):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length, self.normalized = n_fft, hop_length, win_length, normalized
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        self.activation = getattr(nn, activation)(**(activation_params or {"negative_slope": 0.2}))
        kernel, stride = tuple(kernel_size), tuple(stride)
        square = (kernel[0], kernel[0])
        self.convs = nn.ModuleList([NormConv2d(2 * in_channels, filters, kernel, norm=norm)])
        width = min(filters_scale * filters, max_filters)
        for i, dilation in enumerate(dilations):
            out = min(filters_scale ** (i + 1) * filters, max_filters)
            self.convs.append(NormConv2d(width, out, kernel, stride=stride, dilation=(dilation, 1), norm=norm))
            width = out
        out = min(filters_scale ** (len(dilations) + 1) * filters, max_filters)
        self.convs.append(NormConv2d(width, out, square, norm=norm))
        self.conv_post = NormConv2d(out, out_channels, square, norm=norm)

    def forward(self, x: torch.Tensor, frozen: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, channels, length = x.shape
        if length < self.n_fft:
            x = F.pad(x, (0, self.n_fft - length))
        spec = torch.stft(x.reshape(batch * channels, -1).float(), self.n_fft, self.hop_length, self.win_length,
                          window=self.window, center=False, return_complex=True)
        if self.normalized:
            spec = spec / self.window.pow(2).sum().sqrt()
        spec = spec.view(batch, channels, *spec.shape[1:])                 # [B, C, F, frames]
        z = torch.cat([spec.real, spec.imag], dim=1).transpose(2, 3)       # [B, 2C, frames, F]
        features = []
        for conv in self.convs:
            z = self.activation(conv(z, frozen))
            features.append(z)
        return self.conv_post(z, frozen), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """EnCodec's MS-STFT discriminator: one :class:`STFTDiscriminator` per (n_fft, hop, win) scale.
    ``forward(x)`` -> (list of logits, list of feature-map lists), one entry per scale.

    Unlike audiocraft, the first conv of each scale is weight-normalised too (audiocraft leaves it
    without normalisation, apparently by accident)."""

    def __init__(self, filters: int = 32, in_channels: int = 1, out_channels: int = 1,
                 n_ffts=(1024, 2048, 512, 256, 128), hop_lengths=(256, 512, 128, 64, 32),
                 win_lengths=(1024, 2048, 512, 256, 128), **kwargs):
        super().__init__()
        if not len(n_ffts) == len(hop_lengths) == len(win_lengths) or not n_ffts:
            raise InputError("discriminator: n_ffts, hop_lengths and win_lengths must be non-empty and of one length")
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(filters, in_channels, out_channels, n_fft=n, hop_length=h, win_length=w, **kwargs)
            for n, h, w in zip(n_ffts, hop_lengths, win_lengths))

    def forward(self, x: torch.Tensor, frozen: bool = False) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """``frozen``: use detached weights (gradients reach ``x`` only)."""
        logits, features = [], []
        for disc in self.discriminators:
            logit, fmap = disc(x, frozen)
            logits.append(logit)
            features.append(fmap)
        return logits, features


def discriminator_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor],
                       kind: str = "hinge") -> torch.Tensor:
    """Discriminator loss averaged over scales: hinge ``relu(1 − D(real)) + relu(1 + D(fake))`` or
    least-squares ``(D(real) − 1)² + D(fake)²``."""
    total = real_logits[0].new_zeros(())
    for real, fake in zip(real_logits, fake_logits):
        if kind == "hinge":
            total = total + F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        else:
            total = total + (real - 1).pow(2).mean() + fake.pow(2).mean()
    return total / len(real_logits)


def generator_adv_loss(fake_logits: list[torch.Tensor], kind: str = "hinge") -> torch.Tensor:
    """Generator loss averaged over scales: ``−D(fake)`` (hinge) or ``(D(fake) − 1)²``."""
    total = fake_logits[0].new_zeros(())
    for fake in fake_logits:
        total = total + (-fake.mean() if kind == "hinge" else (fake - 1).pow(2).mean())
    return total / len(fake_logits)


def feature_matching_loss(fake_features: list[list[torch.Tensor]],
                          real_features: list[list[torch.Tensor]]) -> torch.Tensor:
    """L1 between the feature maps of fake and real (detached) inputs, averaged over layers, then scales."""
    total = fake_features[0][0].new_zeros(())
    for fake_maps, real_maps in zip(fake_features, real_features):
        total = total + sum(F.l1_loss(f, r.detach()) for f, r in zip(fake_maps, real_maps)) / len(fake_maps)
    return total / len(fake_features)


# ----------------------------------------------------------------------------- config and objective


@dataclass
class MSSpecConfig:
    """Multi-scale mel loss (audiocraft ``msspec``)."""

    range_start: int = 6          # smallest n_fft = 2**range_start
    range_end: int = 11           # largest n_fft = 2**(range_end - 1)
    n_mels: int = 64
    f_min: float = 64.0
    f_max: float | None = None    # default: Nyquist
    normalized: bool = True       # divide by sum(1 + alpha)
    alphas: bool = False          # weight the log-mel term of scale i by sqrt(2**i - 1)
    floor_level: float = 1e-5


@dataclass
class MelConfig:
    """Single-scale log-mel L1 (audiocraft ``mel``)."""

    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 64
    f_min: float = 64.0
    f_max: float | None = None
    floor_level: float = 1e-5


@dataclass
class DiscriminatorConfig:
    """Multi-scale STFT discriminator (audiocraft ``msstftd``) and its training."""

    filters: int = 32
    max_filters: int = 1024
    filters_scale: int = 1
    n_ffts: list[int] = field(default_factory=lambda: [1024, 2048, 512, 256, 128])
    hop_lengths: list[int] = field(default_factory=lambda: [256, 512, 128, 64, 32])
    win_lengths: list[int] = field(default_factory=lambda: [1024, 2048, 512, 256, 128])
    norm: str = "weight_norm"
    activation: str = "LeakyReLU"
    activation_params: Any = field(default_factory=lambda: {"negative_slope": 0.3})


@dataclass
class CodecLossConfig:
    """Weights and settings of the codec objective (see the module docstring)."""

    msspec: float = 2.0
    l1: float = 0.1
    mel: float = 0.0
    periodic: float = 0.0
    commit: float = 1.0
    adv: float = 4.0
    feat: float = 4.0
    adversarial: bool = True      # train the discriminator and use adv/feat (off for quick runs)
    adv_loss: str = "hinge"       # hinge | mse
    log_magnitude: float = 1.0    # spectral codec only: L1 on the log magnitudes
    magnitude: float = 1.0        # spectral codec only: L1 on the magnitudes
    msspec_params: MSSpecConfig = field(default_factory=MSSpecConfig)
    mel_params: MelConfig = field(default_factory=MelConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self):
        for name, cls in (("msspec_params", MSSpecConfig), ("mel_params", MelConfig),
                          ("discriminator", DiscriminatorConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                unknown = sorted(set(value) - {f.name for f in dataclasses.fields(cls)})
                if unknown:
                    raise InputError(f"codec loss config: unknown keys in {name}: {unknown}")
                setattr(self, name, cls(**value))
        for name in ("msspec", "l1", "mel", "periodic", "commit", "adv", "feat", "log_magnitude", "magnitude"):
            if getattr(self, name) < 0:
                raise InputError(f"codec loss config: weight {name} must be >= 0, got {getattr(self, name)}")
        if self.adv_loss not in ADV_LOSSES:
            raise InputError(f"codec loss config: adv_loss must be one of {ADV_LOSSES}, got {self.adv_loss!r}")

    @property
    def uses_discriminator(self) -> bool:
        return self.adversarial and (self.adv > 0 or self.feat > 0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def spectral_reconstruction(prediction: torch.Tensor, target: torch.Tensor,
                            config: CodecLossConfig) -> dict[str, torch.Tensor]:
    """Spectral codec losses on log magnitudes [B, F, T'] (decoded, and the input's): ``log_magnitude``,
    ``magnitude`` and ``recon``, their weighted sum (see the module docstring)."""
    with torch.autocast(prediction.device.type, enabled=False):
        pred, target = prediction.float(), target.float()
        metrics = {"log_magnitude": F.l1_loss(pred, target), "magnitude": F.l1_loss(pred.exp(), target.exp())}
    metrics["recon"] = config.log_magnitude * metrics["log_magnitude"] + config.magnitude * metrics["magnitude"]
    return metrics


class CodecObjective(nn.Module):
    """The losses of codec training; holds the discriminator when adversarial training is on.

    * :meth:`generator_loss` (fake, real, commit_loss) -> (weighted total, metrics) for the codec step;
    * :meth:`discriminator_loss` (fake, real) -> loss for the discriminator step (``fake`` is detached);
    * :meth:`reconstruction` (fake, real) -> metrics without the adversarial terms, for validation.
    """

    def __init__(self, config: CodecLossConfig, sample_rate: int, channels: int = 1, hop_length: int | None = None):
        super().__init__()
        if config.periodic > 0 and not hop_length:
            raise InputError("the periodic loss needs the codec's hop length")
        self.config, self.hop_length = config, hop_length
        m = config.msspec_params
        self.msspec = MultiScaleMelLoss(sample_rate, m.range_start, m.range_end, m.n_mels, m.f_min, m.f_max,
                                        m.normalized, m.alphas, m.floor_level)
        self.mel = None
        if config.mel > 0:
            p = config.mel_params
            self.mel = MelLoss(sample_rate, p.n_fft, p.hop_length, p.win_length, p.n_mels, p.f_min, p.f_max,
                               p.floor_level)
        self.discriminator = None
        if config.uses_discriminator:
            d = config.discriminator
            self.discriminator = MultiScaleSTFTDiscriminator(
                d.filters, in_channels=channels, n_ffts=d.n_ffts, hop_lengths=d.hop_lengths,
                win_lengths=d.win_lengths, max_filters=d.max_filters, filters_scale=d.filters_scale, norm=d.norm,
                activation=d.activation, activation_params=d.activation_params)

    def reconstruction(self, fake: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """``msspec``, ``l1`` (and ``mel``, ``periodic`` when weighted) plus ``recon``, their weighted sum."""
        fake, real = fake.float(), real.float()
        with torch.autocast(fake.device.type, enabled=False):  # spectra and logs in float32
            metrics = {"msspec": self.msspec(fake, real), "l1": F.l1_loss(fake, real)}
            if self.mel is not None:
                metrics["mel"] = self.mel(fake, real)
            if self.config.periodic > 0:
                metrics["periodic"] = frame_periodic_loss(fake, real, self.hop_length)
        metrics["recon"] = sum(getattr(self.config, name) * value for name, value in metrics.items())
        return metrics

    def generator_loss(self, fake: torch.Tensor, real: torch.Tensor,
                       commit_loss: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted sum of the reconstruction, commitment and (with the discriminator) adv/feat losses."""
        c = self.config
        metrics = self.reconstruction(fake, real)
        metrics["commit"] = commit_loss
        total = metrics["recon"] + c.commit * commit_loss
        if self.discriminator is not None:
            # frozen weights: the codec's losses send no gradient to the discriminator
            fake_logits, fake_features = self.discriminator(fake, frozen=True)
            with torch.no_grad():
                _, real_features = self.discriminator(real, frozen=True)
            fake_logits = [t.float() for t in fake_logits]
            metrics["adv"] = generator_adv_loss(fake_logits, c.adv_loss)
            metrics["feat"] = feature_matching_loss(fake_features, real_features)
            total = total + c.adv * metrics["adv"] + c.feat * metrics["feat"]
        metrics["g_loss"] = total
        return total, metrics

    def discriminator_loss(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Loss of the discriminator telling ``real`` from ``fake`` (detached here)."""
        if self.discriminator is None:
            raise RuntimeError("discriminator_loss: adversarial training is off")
        real_logits, _ = self.discriminator(real.detach())
        fake_logits, _ = self.discriminator(fake.detach())
        return discriminator_loss([t.float() for t in real_logits], [t.float() for t in fake_logits],
                                  self.config.adv_loss)
