"""Loss terms of codec training: PatchGAN discriminator, hinge loss, adaptive GAN weight, low-pass colour L1.

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
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=False), nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
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


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor, scale: float) -> torch.Tensor:
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
