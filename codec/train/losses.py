"""Loss terms of codec training: PatchGAN discriminator, hinge loss, adaptive GAN weight, low-pass colour L1,
DiffAugment for the discriminator.

Following taming-transformers' ``VQLPIPSWithDiscriminator``:

    L_D = ½ (mean relu(1 − D(x)) + mean relu(1 + D(x̂)))          (hinge)
    λ   = ‖∇_{W_last} L_rec‖ / (‖∇_{W_last} L_G‖ + 1e-4), clamped to [0, 1e4]
    L_lowpass = |Y(B(x)) − Y(B(x̂))|₁ + w_c · |CbCr(B(x)) − CbCr(B(x̂))|₁

where W_last is the decoder's last conv, L_G = −mean(D(x̂)), B averages over
f×f blocks and Y, Cb, Cr are BT.601 (``codec.metrics.rgb_to_ycbcr``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator (pix2pix / taming), BatchNorm, LeakyReLU 0.2."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            seq += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=False),
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        seq += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.main = nn.Sequential(*seq)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def adaptive_weight(
    rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor, scale: float
) -> torch.Tensor:
    """λ = ‖∇L_rec‖ / (‖∇L_G‖ + 1e-4) at the decoder's last layer, clamped to [0, 1e4], times ``scale``."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    w = torch.norm(g_rec) / (torch.norm(g_gan) + 1e-4)
    return torch.clamp(w, 0.0, 1e4).detach() * scale


def lowpass_loss(x: torch.Tensor, xr: torch.Tensor, block: int, chroma_weight: float) -> torch.Tensor:
    """L1 between block×block means in YCbCr: |ΔY| + w_c·|ΔCb, ΔCr| (inputs in [-1, 1])."""
    from ..metrics import block_means, rgb_to_ycbcr

    d = (rgb_to_ycbcr(block_means(x, block)) - rgb_to_ycbcr(block_means(xr, block))).abs()
    return d[:, 0].mean() + chroma_weight * d[:, 1:].mean()


def diff_augment(x: torch.Tensor, gen: torch.Generator, translate: float = 0.125, cutout: float = 0.5) -> torch.Tensor:
    """Differentiable augmentation of a discriminator input (DiffAugment, Zhao et al. 2020, "color,translation,cutout").

    Per image, independently: brightness x + (u − ½); saturation (x − x̄_c)·2u + x̄_c with x̄_c the mean over
    channels; contrast (x − x̄)·(u + ½) + x̄ with x̄ the image mean; a shift by up to ``translate``·(H, W) pixels
    with zero fill; one zeroed square of ``cutout``·(H, W) at a random centre (u ~ U(0, 1), draws from ``gen``).
    Applied to real and reconstructed images alike, so the discriminator cannot overfit the small training set
    while the generator still gets gradients through the augmentation. Input/output (N, C, H, W) in [-1, 1] units.
    """
    n, _, h, w = x.shape
    dev, dt = x.device, x.dtype

    def u(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen).to(dev, dt)

    x = x + (u(n, 1, 1, 1) - 0.5)
    m = x.mean(1, keepdim=True)
    x = (x - m) * (2 * u(n, 1, 1, 1)) + m
    m = x.mean((1, 2, 3), keepdim=True)
    x = (x - m) * (u(n, 1, 1, 1) + 0.5) + m
    sy, sx = int(h * translate + 0.5), int(w * translate + 0.5)
    ty = torch.randint(-sy, sy + 1, (n, 1, 1), generator=gen).to(dev)
    tx = torch.randint(-sx, sx + 1, (n, 1, 1), generator=gen).to(dev)
    gy = (torch.arange(h, device=dev).view(1, h, 1) + ty + 1).clamp(0, h + 1).expand(n, h, w)
    gx = (torch.arange(w, device=dev).view(1, 1, w) + tx + 1).clamp(0, w + 1).expand(n, h, w)
    padded = F.pad(x, [1, 1, 1, 1])
    b = torch.arange(n, device=dev).view(n, 1, 1).expand(n, h, w)
    x = padded.permute(0, 2, 3, 1)[b, gy, gx].permute(0, 3, 1, 2)
    ch, cw = int(h * cutout + 0.5), int(w * cutout + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen).to(dev)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen).to(dev)
    yy = torch.arange(h, device=dev).view(1, h, 1)
    xx = torch.arange(w, device=dev).view(1, 1, w)
    oy, ox = yy - cy + ch // 2, xx - cx + cw // 2  # position inside the square, if 0 ≤ o < side
    keep = ~((oy >= 0) & (oy < ch) & (ox >= 0) & (ox < cw))
    return x * keep.unsqueeze(1).to(dt)


#: mixed-precision settings of the trainers (``precision:`` in their configs)
TRAIN_PRECISIONS = ("fp32", "bf16")


def decoder_autocast(precision: str, device: torch.device | str):
    """The context the decoder forward and the perceptual loss run in: bf16 autocast for ``"bf16"`` (weights,
    optimizer state and gradients stay fp32; only matmuls / convolutions run in bf16), else a no-op.

    Measured on this project's 2-core AMD EPYC (AVX512-BF16): one robust-decoder step (batch 8, 256², decoder +
    LPIPS-Alex + LPIPS-VGG, forward and backward) 2.1× faster (3.7× with channels-last), gradient cosine to fp32
    0.998 (README, "Training precision"; ``vqsim bench --only train``).  The encoder and the quantizer stay
    outside it, so indices are those of fp32.
    """
    if precision not in TRAIN_PRECISIONS:
        raise ValueError(f"precision must be one of {TRAIN_PRECISIONS}, got {precision!r}")
    dev = torch.device(device).type
    return torch.autocast(dev, dtype=torch.bfloat16, enabled=precision == "bf16")


#: perceptual losses a trainer takes: one LPIPS backbone, or the mean of both
LPIPS_LOSS_NETS = ("alex", "vgg", "alex+vgg")


def check_lpips_net(spec: str) -> str:
    """``spec`` if it is one of :data:`LPIPS_LOSS_NETS`, else a one-line ParameterError."""
    from ..errors import ParameterError

    if spec not in LPIPS_LOSS_NETS:
        raise ParameterError(f"lpips_net must be one of {', '.join(LPIPS_LOSS_NETS)}, got {spec!r}")
    return spec


def loss_nets(spec: str, perceptual_weight: float, device) -> list:
    """The (cached) LPIPS nets of ``spec`` ("alex+vgg": both), none when the perceptual weight is 0; the list
    :func:`reconstruction_loss` averages over."""
    if perceptual_weight <= 0:
        return []
    from ..metrics import get_lpips

    return [get_lpips(n, device=device) for n in check_lpips_net(spec).split("+")]


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`TRAIN_PRECISIONS`, else a one-line ParameterError."""
    from ..errors import ParameterError

    if precision not in TRAIN_PRECISIONS:
        raise ParameterError(f"precision must be one of {', '.join(TRAIN_PRECISIONS)}, got {precision!r}")
    return precision


def reconstruction_loss(model, z: torch.Tensor, x: torch.Tensor, lps: list, perceptual_weight: float,
                        precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's reconstruction loss ``|x − x̂|₁ + w · mean_n LPIPS_n(x, x̂)`` with x̂ = decode(z), the decoder
    and the ``lps`` nets under :func:`decoder_autocast`; x, x̂ in [−1, 1] (N, 3, H, W).  Returns (loss, x̂ fp32)."""
    with decoder_autocast(precision, z.device):
        xr = model.decode(z)
        perc = [lp(x, xr).mean() for lp in lps]
    xr = xr.float()
    loss = (x - xr).abs().mean()
    if perc:
        loss = loss + perceptual_weight * sum(p.float() for p in perc) / len(perc)
    return loss, xr
