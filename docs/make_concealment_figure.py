"""docs/concealment_kodim01.jpg: kodim01 through the default codec (K = 1,024) at 20 % and 40 % lost indices.

Row 1: the original and the loss-free reconstruction. Rows 2 and 3 (20 %, 40 % exact random loss,
``random_loss_mask`` seed 0): the lost positions in red, then latent_avg and bidir_mean (snapped to codewords),
latent_avg_soft and bidir_soft (one MaskGIT pass; the decoder gets the expected latent). Everything goes through
the codec's own decoder, which at K = 1,024 is the loss-aware one (trained on concealed maps). Each tile is the
same 384x256 crop at full resolution, labelled with LPIPS-Alex of the whole image vs the original.
Usage: python docs/make_concealment_figure.py [OUT.jpg]
"""
from __future__ import annotations

import sys

import numpy as np
import torch
from PIL import Image, ImageDraw

from codec.conceal import conceal, decode_concealment, decoder_table, random_loss_mask
from codec.image import load_image
from codec.metrics import lpips_distance
from codec.zoo import load_codec, load_concealer

CROP = (slice(96, 352), slice(192, 576))  # the door, shutters and wall of kodim01
METHODS = ["latent_avg", "bidir_mean", "latent_avg_soft", "bidir_soft"]


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x[0].clamp(0, 1) * 255 + 0.5).floor().byte().permute(1, 2, 0).numpy()


def tile(img: np.ndarray, label: str) -> Image.Image:
    t = Image.fromarray(np.ascontiguousarray(img[CROP]))
    d = ImageDraw.Draw(t)
    w = int(d.textlength(label)) + 8
    d.rectangle([0, 0, w, 14], fill=(255, 255, 255))
    d.text((4, 1), label, fill=(0, 0, 0))
    return t


@torch.no_grad()
def main(out: str = "docs/concealment_kodim01.jpg") -> None:
    img = load_image("../shared/data/kodak/kodim01.png")
    orig = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    codec = load_codec("default", 1024, device="cpu")
    bidir = load_concealer("default", 1024, "bidir")
    imap = codec.encode_indices(img)

    def lp(x: torch.Tensor) -> float:
        return float(lpips_distance(orig, x, net="alex")[0])

    rows = [[tile(img, "original")]]
    lossfree = to_uint8(codec.decode_indices_tensor(imap))
    x = torch.from_numpy(lossfree).permute(2, 0, 1)[None].float() / 255
    rows[0].append(tile(lossfree, f"loss-free: {lp(x):.3f}"))
    for p in (0.2, 0.4):
        lost = random_loss_mask(imap.shape, p, np.random.default_rng(0))
        a = lossfree.copy()  # the loss-free picture with the lost 16x16 blocks in red
        mask = np.kron(lost, np.ones((16, 16), bool))[: img.shape[0], : img.shape[1]]
        a[mask] = (0.5 * a[mask] + 0.5 * np.array([255, 0, 0])).astype(np.uint8)
        row = [tile(a, f"{int(100 * p)} % of the indices lost")]
        for m in METHODS:
            res = conceal(imap, lost, m, model=bidir if m.startswith("bidir") else None, codebook=codec.codebook,
                          decoder_codebook=decoder_table(codec), rng=torch.Generator().manual_seed(0),
                          **({"steps": 1} if m == "bidir_soft" else {}))
            x = torch.from_numpy(to_uint8(decode_concealment(codec, res))).permute(2, 0, 1)[None].float() / 255
            row.append(tile(to_uint8(x), f"{m}: {lp(x):.3f}"))
        rows.append(row)
    tw, th = rows[0][0].size
    ncol = max(len(r) for r in rows)
    sheet = Image.new("RGB", (ncol * (tw + 4), len(rows) * (th + 4)), (255, 255, 255))
    for i, r in enumerate(rows):
        for j, t in enumerate(r):
            sheet.paste(t, (j * (tw + 4), i * (th + 4)))
    sheet.save(out, quality=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
