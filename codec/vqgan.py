"""VQGAN first stage with taming-transformers' module structure and numerics.

Module tree, parameter names and arithmetic follow CompVis/taming-transformers
(``taming/modules/diffusionmodules/model.py``: ``Encoder``, ``Decoder``;
``taming/modules/vqvae/quantize.py``: ``VectorQuantizer2`` with
``legacy=True``; ``taming/models/vqgan.py``: ``VQModel`` with ``quant_conv`` /
``post_quant_conv``), so that the ``state_dict`` of an official checkpoint
loads with ``strict=True`` and gives the same indices and pixels.

Shapes (f = 2^(len(ch_mult)-1) is the downsampling factor, 16 for the
official f16 models):

* ``encode``: image (N, 3, H, W) in [-1, 1], H and W multiples of f
  → h (N, embed_dim, H/f, W/f) after ``quant_conv``
* ``quantize``: h → z_q (same shape), indices (N, H/f, W/f) int64
* ``decode_indices``: indices (N, h, w) → image (N, 3, h·f, w·f) in [-1, 1]
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ParameterError


@dataclass(frozen=True)
class VQGANConfig:
    """Hyper-parameters of a VQGAN, named as in taming's ``ddconfig`` (+ ``n_embed``, ``embed_dim``)."""

    ch: int = 128
    out_ch: int = 3
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.0
    resamp_with_conv: bool = True
    in_channels: int = 3
    resolution: int = 256
    z_channels: int = 256
    double_z: bool = False
    embed_dim: int = 256
    n_embed: int = 1024
    beta: float = 0.25
    norm_groups: int = 32         # GroupNorm groups (taming: 32); narrow models need fewer (see Normalize)
    out_norm: str = "group"  # encoder/decoder norm_out: "group" (taming) or "affine" (scale + bias only, see Affine)
    codebook_l2: bool = False  # l2-normalised (cosine) codebook lookup (ViT-VQGAN); taming: False
    #: residual blocks per decoder level beyond taming's num_res_blocks + 1 (0: taming's layout); a deeper decoder
    #: for the same encoder, grown from a trained model with :func:`load_grown_decoder` (new blocks start as identity)
    decoder_extra_blocks: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ch_mult", tuple(int(m) for m in self.ch_mult))
        object.__setattr__(self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions))
        if self.ch <= 0 or any(m <= 0 for m in self.ch_mult) or not self.ch_mult:
            raise ParameterError(f"ch and ch_mult must be positive, got ch={self.ch}, ch_mult={self.ch_mult}")
        if self.out_norm not in ("group", "affine"):
            raise ParameterError(f"out_norm must be 'group' or 'affine', got {self.out_norm!r}")
        if self.norm_groups < 1:
            raise ParameterError(f"norm_groups must be ≥ 1, got {self.norm_groups}")
        for c in {self.ch * m for m in self.ch_mult} | {self.ch}:
            if c % self.norm_groups:
                raise ParameterError(
                    f"channel count {c} (ch·ch_mult) must be a multiple of norm_groups={self.norm_groups}"
                )
        if self.num_res_blocks < 1:
            raise ParameterError(f"num_res_blocks must be ≥ 1, got {self.num_res_blocks}")
        if not 0 <= self.decoder_extra_blocks <= 16:
            raise ParameterError(f"decoder_extra_blocks must be in [0, 16], got {self.decoder_extra_blocks}")
        if not 2 <= self.n_embed <= 1 << 20:
            raise ParameterError(f"n_embed must be in [2, 2^20], got {self.n_embed}")
        if self.embed_dim <= 0 or self.z_channels <= 0:
            raise ParameterError("embed_dim and z_channels must be positive")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ch_mult"] = list(self.ch_mult)
        d["attn_resolutions"] = list(self.attn_resolutions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VQGANConfig":
        """Build from a taming ``ddconfig``-style dict (unknown keys are an error, missing keys default)."""
        from .types import from_dict_strict

        return from_dict_strict(cls, d, "VQGAN config")


def Normalize(in_channels: int, num_groups: int = 32) -> nn.GroupNorm:  # noqa: N802 (taming's name)
    """taming's GroupNorm(32, eps 1e-6).

    With one channel per group (``in_channels == num_groups``, e.g. ``ch = 32``)
    GroupNorm is per-channel instance normalization over the whole image: it
    removes every feature channel's image-wide level, which is exactly what a
    flat colour is, so a narrow model with 32 groups cannot carry colour
    (measured: flat red, green and blue decode to the same brown). Narrow
    models therefore use fewer groups (``VQGANConfig.norm_groups``).
    """
    return nn.GroupNorm(num_groups=num_groups, num_channels=in_channels, eps=1e-6, affine=True)


class Affine(nn.Module):
    """Per-channel scale and bias, y = w·x + b, with GroupNorm's parameter names and shapes (``weight``, ``bias``).

    The encoder's and decoder's ``norm_out`` are the only norms on the main
    (non-residual) path: every other GroupNorm sits inside a residual branch,
    so the skip connections carry absolute levels past it. A GroupNorm there
    removes each group's image-wide mean, i.e. the picture's overall colour,
    which the network must then re-encode as contrast between channels; a
    small model trained briefly never learns that (measured: grey
    reconstructions, low-pass chroma no better than a grey image). With
    ``out_norm="affine"`` those two layers keep the levels. The state_dict
    keys are unchanged, so the model stays in taming's layout.
    """

    def __init__(self, num_channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def _out_norm(kind: str, channels: int, groups: int) -> nn.Module:
    return Affine(channels) if kind == "affine" else Normalize(channels, groups)


def nonlinearity(x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Swish ``x · sigmoid(x)``, written as taming writes it (same rounding).

    ``inplace`` (inference only, on a temporary nobody else holds): the same elementwise product
    stored into ``x`` — bit-identical, one full-size tensor less at the peak."""
    if inplace:
        return x.mul_(torch.sigmoid(x))
    return x * torch.sigmoid(x)


class Upsample(nn.Module):
    def __init__(self, in_channels: int, with_conv: bool):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(in_channels, in_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if self.with_conv else x


class Downsample(nn.Module):
    def __init__(self, in_channels: int, with_conv: bool):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:  # no asymmetric padding in torch conv: pad right/bottom by hand
            self.conv = nn.Conv2d(in_channels, in_channels, 3, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_conv:
            return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))
        return F.avg_pool2d(x, kernel_size=2, stride=2)


class ResnetBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        conv_shortcut: bool = False,
        dropout: float = 0.0,
        norm_groups: int = 32,
    ):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.use_conv_shortcut = conv_shortcut
        self.norm1 = Normalize(in_channels, norm_groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = Normalize(out_channels, norm_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        if in_channels != out_channels:
            if conv_shortcut:
                self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
            else:
                self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():  # inference: the same operations with fewer live full-size tensors
            return self._forward_lean(x)
        h = self.conv1(nonlinearity(self.norm1(x)))
        h = self.conv2(self.dropout(nonlinearity(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.conv_shortcut(x) if self.use_conv_shortcut else self.nin_shortcut(x)
        return x + h

    def _forward_lean(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` without autograd, bit-identical: swish in place on temporaries, each intermediate
        released as soon as it is used, and the residual sum ``h + x`` (IEEE addition commutes) in place.
        The block then peaks at its convolutions (input, output and oneDNN's workspace: 3.25 tensors of the
        block's size, measured) instead of at the swish (4 tensors)."""
        h = self.norm1(x)  # one statement per step: the name h lets go of each input as soon as it is used
        h = nonlinearity(h, inplace=True)
        h = self.conv1(h)
        h = self.norm2(h)
        h = nonlinearity(h, inplace=True)
        h = self.conv2(self.dropout(h))
        if self.in_channels != self.out_channels:
            x = self.conv_shortcut(x) if self.use_conv_shortcut else self.nin_shortcut(x)
        return h.add_(x)


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1×1 conv projections."""

    def __init__(self, in_channels: int, norm_groups: int = 32):
        super().__init__()
        self.norm = Normalize(in_channels, norm_groups)
        self.q = nn.Conv2d(in_channels, in_channels, 1, 1, 0)
        self.k = nn.Conv2d(in_channels, in_channels, 1, 1, 0)
        self.v = nn.Conv2d(in_channels, in_channels, 1, 1, 0)
        self.proj_out = nn.Conv2d(in_channels, in_channels, 1, 1, 0)

    #: above this many positions the attention runs in blocks of queries so that one block's
    #: (queries × keys) weights hold at most ``CHUNK_ELEMENTS`` floats: memory grows linearly
    #: with the map instead of quadratically (a 128×128 map would need 1 GiB per weight
    #: matrix). Rows of a softmax are independent, so blocks give the same result.
    CHUNK_POSITIONS = 4096
    CHUNK_ELEMENTS = 1 << 22

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h_ = self.norm(x)
        q, k, v = self.q(h_), self.k(h_), self.v(h_)
        b, c, h, w = q.shape
        n = h * w
        q = q.reshape(b, c, n).permute(0, 2, 1)  # b, hw, c
        k = k.reshape(b, c, n)  # b, c, hw
        v = v.reshape(b, c, n)
        scale = int(c) ** (-0.5)
        if n <= self.CHUNK_POSITIONS:
            w_ = F.softmax(torch.bmm(q, k) * scale, dim=2)  # b, hw_q, hw_k
            h_ = torch.bmm(v, w_.permute(0, 2, 1))  # b, c, hw_q
        else:
            rows = max(1, self.CHUNK_ELEMENTS // n)
            h_ = torch.empty(b, c, n, dtype=v.dtype, device=v.device)
            for lo in range(0, n, rows):
                w_ = F.softmax(torch.bmm(q[:, lo : lo + rows], k) * scale, dim=2)
                h_[:, :, lo : lo + rows] = torch.bmm(v, w_.permute(0, 2, 1))
        return x + self.proj_out(h_.reshape(b, c, h, w))


class Encoder(nn.Module):
    def __init__(
        self,
        *,
        ch: int,
        out_ch: int,
        ch_mult=(1, 2, 4, 8),
        num_res_blocks: int,
        attn_resolutions,
        dropout: float = 0.0,
        resamp_with_conv: bool = True,
        in_channels: int,
        resolution: int,
        z_channels: int,
        double_z: bool = True,
        norm_groups: int = 32,
        out_norm: str = "group",
        **ignore,
    ):
        super().__init__()
        self.ch = ch
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.resolution = resolution
        self.in_channels = in_channels
        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
        curr_res = resolution
        in_ch_mult = (1,) + tuple(ch_mult)
        self.down = nn.ModuleList()
        block_in = ch
        for i_level in range(self.num_resolutions):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_in = ch * in_ch_mult[i_level]
            block_out = ch * ch_mult[i_level]
            for _ in range(num_res_blocks):
                block.append(ResnetBlock(block_in, block_out, dropout=dropout, norm_groups=norm_groups))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(AttnBlock(block_in, norm_groups))
            down = nn.Module()
            down.block, down.attn = block, attn
            if i_level != self.num_resolutions - 1:
                down.downsample = Downsample(block_in, resamp_with_conv)
                curr_res //= 2
            self.down.append(down)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, dropout=dropout, norm_groups=norm_groups)
        self.mid.attn_1 = AttnBlock(block_in, norm_groups)
        self.mid.block_2 = ResnetBlock(block_in, block_in, dropout=dropout, norm_groups=norm_groups)
        self.norm_out = _out_norm(out_norm, block_in, norm_groups)
        self.conv_out = nn.Conv2d(block_in, 2 * z_channels if double_z else z_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for i_level, down in enumerate(self.down):
            for i_block in range(self.num_res_blocks):
                h = down.block[i_block](h)
                if len(down.attn) > 0:
                    h = down.attn[i_block](h)
            if i_level != self.num_resolutions - 1:
                h = down.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(nonlinearity(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(
        self,
        *,
        ch: int,
        out_ch: int,
        ch_mult=(1, 2, 4, 8),
        num_res_blocks: int,
        attn_resolutions,
        dropout: float = 0.0,
        resamp_with_conv: bool = True,
        in_channels: int,
        resolution: int,
        z_channels: int,
        give_pre_end: bool = False,
        norm_groups: int = 32,
        out_norm: str = "group",
        decoder_extra_blocks: int = 0,
        **ignore,
    ):
        super().__init__()
        self.ch = ch
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.blocks_per_level = num_res_blocks + 1 + int(decoder_extra_blocks)
        self.resolution = resolution
        self.give_pre_end = give_pre_end
        block_in = ch * ch_mult[self.num_resolutions - 1]
        curr_res = resolution // 2 ** (self.num_resolutions - 1)
        self.z_shape = (1, z_channels, curr_res, curr_res)
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, 1, 1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, dropout=dropout, norm_groups=norm_groups)
        self.mid.attn_1 = AttnBlock(block_in, norm_groups)
        self.mid.block_2 = ResnetBlock(block_in, block_in, dropout=dropout, norm_groups=norm_groups)
        self.up = nn.ModuleList()
        for i_level in reversed(range(self.num_resolutions)):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[i_level]
            for _ in range(self.blocks_per_level):
                block.append(ResnetBlock(block_in, block_out, dropout=dropout, norm_groups=norm_groups))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(AttnBlock(block_in, norm_groups))
            up = nn.Module()
            up.block, up.attn = block, attn
            if i_level != 0:
                up.upsample = Upsample(block_in, resamp_with_conv)
                curr_res *= 2
            self.up.insert(0, up)  # keep index = level, as taming does
        self.norm_out = _out_norm(out_norm, block_in, norm_groups)
        self.conv_out = nn.Conv2d(block_in, out_ch, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for i_level in reversed(range(self.num_resolutions)):
            up = self.up[i_level]
            for i_block in range(self.blocks_per_level):
                h = up.block[i_block](h)
                if len(up.attn) > 0:
                    h = up.attn[i_block](h)
            if i_level != 0:
                h = up.upsample(h)
        if self.give_pre_end:
            return h
        if not torch.is_grad_enabled():  # inference: release h before the swish (bit-identical)
            h = self.norm_out(h)
            return self.conv_out(nonlinearity(h, inplace=True))
        return self.conv_out(nonlinearity(self.norm_out(h)))


def is_extra_decoder_key(cfg: VQGANConfig, key: str) -> bool:
    """Whether ``key`` belongs to a decoder block (or its attention) that ``decoder_extra_blocks`` added."""
    parts = key.split(".")
    return (len(parts) > 4 and parts[0] == "decoder" and parts[1] == "up" and parts[3] in ("block", "attn")
            and parts[4].isdigit() and int(parts[4]) >= cfg.num_res_blocks + 1)


def load_grown_decoder(model: "VQModel", state_dict: dict[str, torch.Tensor]) -> int:
    """Load a trained model's ``state_dict`` into ``model``, whose decoder has ``decoder_extra_blocks`` more
    residual blocks per level; the extra blocks start as the identity (their last convolution, and their
    attention's output projection, zeroed), so the grown model decodes exactly as the trained one did.

    Returns the number of tensors of the extra blocks.  Raises CheckpointError when the model has no extra
    blocks, when ``state_dict`` already has them, lacks anything else, has keys the model does not, or shapes
    differ.
    """
    from .checkpoint import check_state_dict_keys
    from .errors import CheckpointError

    own = model.state_dict()
    extra = {k for k in own if is_extra_decoder_key(model.config, k)}
    if not extra:
        raise CheckpointError("the model has no extra decoder blocks (decoder_extra_blocks = 0): nothing to grow")
    if any(k in state_dict for k in extra):
        raise CheckpointError("the checkpoint already has the extra decoder blocks: load it as it is")
    check_state_dict_keys({k: v for k, v in own.items() if k not in extra}, state_dict, "grown decoder's source")
    model.load_state_dict({**own, **state_dict})
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k in extra:
            if k.endswith((".conv2.weight", ".conv2.bias", ".proj_out.weight", ".proj_out.bias")):
                params[k].zero_()
    return len(extra)


class VectorQuantizer(nn.Module):
    """Nearest-codeword quantizer (taming's ``VectorQuantizer2``, ``legacy=True``).

    For z (N, D, h, w): index = argmin_k ‖z − e_k‖² computed as
    ‖z‖² + ‖e_k‖² − 2 z·e_k; z_q = e_index with the straight-through
    estimator; loss = ‖sg(z_q) − z‖² + β ‖z_q − sg(z)‖² (legacy order).

    With ``l2=True`` (ViT-VQGAN's l2-normalised codes) z and every codeword are
    projected onto the unit sphere first, so the lookup is by cosine
    similarity and z_q = e_k / ‖e_k‖; ``codewords()`` is the effective table.
    """

    def __init__(self, n_e: int, e_dim: int, beta: float = 0.25, l2: bool = False):
        super().__init__()
        self.n_e, self.e_dim, self.beta, self.l2 = n_e, e_dim, beta, bool(l2)
        self.embedding = nn.Embedding(n_e, e_dim)
        self.embedding.weight.data.uniform_(-1.0 / n_e, 1.0 / n_e)

    def codewords(self) -> torch.Tensor:
        """The (n_e, D) table the decoder sees (unit rows when ``l2``)."""
        e = self.embedding.weight
        return F.normalize(e, dim=1) if self.l2 else e

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, D, h, w) → indices (N, h, w), int64."""
        n, d, h, w = z.shape
        zf = z.permute(0, 2, 3, 1).reshape(-1, d)
        if self.l2:
            zf = F.normalize(zf, dim=1)
        e = self.codewords()
        dist = (zf**2).sum(dim=1, keepdim=True) + (e**2).sum(dim=1) - 2 * torch.einsum("bd,dn->bn", zf, e.t())
        return torch.argmin(dist, dim=1).view(n, h, w)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (N, h, w) → z_q (N, D, h, w)."""
        return F.embedding(indices, self.codewords()).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (z_q with straight-through gradient, codebook+commitment loss, indices)."""
        z = z.contiguous()
        if self.l2:
            z = F.normalize(z, dim=1)
        idx = self.indices(z)
        z_q = self.lookup(idx)
        loss = torch.mean((z_q.detach() - z) ** 2) + self.beta * torch.mean((z_q - z.detach()) ** 2)
        z_q = z + (z_q - z).detach()
        return z_q, loss, idx


class VQModel(nn.Module):
    """Encoder → quant_conv → VectorQuantizer → post_quant_conv → Decoder."""

    def __init__(self, config: VQGANConfig | dict):
        super().__init__()
        if isinstance(config, dict):
            config = VQGANConfig.from_dict(config)
        self.config = config
        dd = config.to_dict()
        self.encoder = Encoder(**dd)
        self.decoder = Decoder(**dd)
        self.quantize = VectorQuantizer(config.n_embed, config.embed_dim, beta=config.beta, l2=config.codebook_l2)
        self.quant_conv = nn.Conv2d(config.z_channels * (2 if config.double_z else 1), config.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)

    @property
    def downsample_factor(self) -> int:
        return self.config.downsample_factor

    @property
    def codebook_size(self) -> int:
        return self.quantize.n_e

    def encode_pre_quant(self, x: torch.Tensor) -> torch.Tensor:
        """x (N,3,H,W) in [-1,1] → h (N, embed_dim, H/f, W/f) after quant_conv."""
        return self.quant_conv(self.encoder(x))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x → (z_q, codebook loss, indices), as taming's ``VQModel.encode``."""
        return self.quantize(self.encode_pre_quant(x))

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z_q))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (N, h, w) → decoder input z_q (N, D, h, w).

        Uses the decoder-side codebook of a fine-tuned reduced model
        (``with_codebook(..., finetuned=...)``) when there is one, else the
        quantizer's codebook.
        """
        dec = getattr(self, "decoder_codebook", None)
        if dec is None:
            return self.quantize.lookup(indices)
        return dec(indices).permute(0, 3, 1, 2).contiguous()

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (N, h, w) → image (N, 3, h·f, w·f) in [-1, 1] (unclamped)."""
        return self.decode(self.lookup(indices))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (reconstruction, codebook loss, indices)."""
        z_q, qloss, idx = self.encode(x)
        return self.decode(z_q), qloss, idx

    def with_codebook(self, codebook: torch.Tensor, finetuned: dict[str, torch.Tensor] | None = None) -> "VQModel":
        """A model that quantizes with ``codebook`` (S, D) and otherwise shares this one's modules.

        Without ``finetuned`` this is the paper's "w/o fine-tune" model of a
        K-means-reduced codebook. ``finetuned`` holds the decoder-side weights
        of a fine-tuned reduced model (``codec.train.finetune``): optionally
        ``"decoder_codebook"`` (S, D), the codeword table the decoder looks
        indices up in, and state_dict entries of ``post_quant_conv.*`` /
        ``decoder.*`` that replace this model's (the modules are copied, so
        the base model is left unchanged). The encoder side, and so the index
        maps, stay those of the K-means codebook.

        Raises:
            ValueError: wrong codebook shape; CheckpointError: a fine-tuned
            entry names no such parameter or has the wrong shape.
        """
        from .errors import CheckpointError

        codebook = torch.as_tensor(codebook, dtype=self.quantize.embedding.weight.dtype)
        if codebook.ndim != 2 or codebook.shape[1] != self.config.embed_dim:
            raise ParameterError(f"codebook must be (S, {self.config.embed_dim}), got {tuple(codebook.shape)}")
        S = int(codebook.shape[0])
        cfg = VQGANConfig.from_dict({**self.config.to_dict(), "n_embed": S})
        dev = self.quantize.embedding.weight.device
        new = VQModel.__new__(VQModel)
        nn.Module.__init__(new)
        new.config = cfg
        new.encoder, new.decoder = self.encoder, self.decoder
        new.quant_conv, new.post_quant_conv = self.quant_conv, self.post_quant_conv
        new.quantize = VectorQuantizer(cfg.n_embed, cfg.embed_dim, beta=cfg.beta, l2=cfg.codebook_l2)
        new.quantize.embedding.weight.data.copy_(codebook.to(dev))
        new.quantize.to(dev)
        if finetuned:
            ft = dict(finetuned)
            dcb = ft.pop("decoder_codebook", None)
            if dcb is not None:
                dcb = torch.as_tensor(dcb)
                if tuple(dcb.shape) != (S, cfg.embed_dim):
                    raise CheckpointError(
                        f"fine-tuned decoder_codebook has shape {tuple(dcb.shape)}, expected {(S, cfg.embed_dim)}"
                    )
                new.decoder_codebook = nn.Embedding(S, cfg.embed_dim).to(dev)
                new.decoder_codebook.weight.data.copy_(dcb.to(dev, new.decoder_codebook.weight.dtype))
            if ft:
                bad = [k for k in ft if not k.startswith(("post_quant_conv.", "decoder."))]
                if bad:
                    raise CheckpointError(
                        f"fine-tuned weights may only replace post_quant_conv.* / decoder.*, got {bad[:3]}"
                    )
                new.decoder = copy.deepcopy(self.decoder)
                new.post_quant_conv = copy.deepcopy(self.post_quant_conv)
                own = dict(new.named_parameters())
                own.update(dict(new.named_buffers()))
                for k, t in ft.items():
                    if k not in own:
                        raise CheckpointError(f"fine-tuned weights name an unknown parameter {k!r}")
                    if tuple(own[k].shape) != tuple(t.shape):
                        raise CheckpointError(
                            f"fine-tuned {k!r} has shape {tuple(t.shape)}, expected {tuple(own[k].shape)}"
                        )
                    own[k].data.copy_(torch.as_tensor(t).to(own[k].device, own[k].dtype))
        return new


def infer_config_from_state_dict(sd: dict[str, torch.Tensor], resolution: int = 256, beta: float = 0.25) -> VQGANConfig:
    """Recover a VQGANConfig from the shapes of a taming VQGAN state_dict.

    ``attn_resolutions`` is expressed relative to ``resolution`` (taming's
    official configs use resolution 256, attention at 16).
    """
    try:
        ch = sd["encoder.conv_in.weight"].shape[0]
        in_channels = sd["encoder.conv_in.weight"].shape[1]
        levels = sorted({int(k.split(".")[2]) for k in sd if k.startswith("encoder.down.")})
        ch_mult = [sd[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch for i in levels]
        nrb = len({k.split(".")[4] for k in sd if k.startswith("encoder.down.0.block.")})
        attn_res = [resolution // 2**i for i in levels if f"encoder.down.{i}.attn.0.q.weight" in sd]
        z_out = sd["encoder.conv_out.weight"].shape[0]
        z_channels = sd["post_quant_conv.weight"].shape[0]
        n_embed, embed_dim = sd["quantize.embedding.weight"].shape
        out_ch = sd["decoder.conv_out.weight"].shape[0]
    except KeyError as e:
        from .errors import CheckpointError

        raise CheckpointError(f"not a taming VQGAN state_dict: missing key {e.args[0]!r}") from None
    return VQGANConfig(
        ch=ch,
        out_ch=out_ch,
        ch_mult=tuple(ch_mult),
        num_res_blocks=nrb,
        attn_resolutions=tuple(attn_res),
        in_channels=in_channels,
        resolution=resolution,
        z_channels=z_channels,
        double_z=(z_out == 2 * z_channels),
        embed_dim=embed_dim,
        n_embed=n_embed,
        beta=beta,
    )
