"""Face crops of Kodak images (unseen in training) through several codec checkpoints, side by side (issue 22).

Each column is one model: the original, then every ``NAME=CHECKPOINT`` (a train-codec ``model.pt``/``best.pt`` or a
shipped model file) at its trained codebook size, full image encoded, the crop taken from the reconstruction.
Usage: python docs/make_campaign_crops.py OUT.(png|jpg) NAME=CKPT [NAME=CKPT ...]
"""
from __future__ import annotations

import sys

import numpy as np
import torch
from PIL import Image, ImageDraw

from codec.checkpoint import load_vqgan, read_checkpoint
from codec.image import load_image
from codec.train.export import model_from_training_checkpoint

# (image, y, x, size): the faces of kodim04 and kodim15, the parrot's eye of kodim23
CROPS = [("kodim04", 270, 150, 240), ("kodim15", 60, 370, 320), ("kodim23", 150, 60, 192)]


def load_any(path: str):
    ck = read_checkpoint(path)
    if isinstance(ck, dict) and "format" in ck:
        return load_vqgan(path)[0].float().eval()
    return model_from_training_checkpoint(path)[0].eval()


@torch.no_grad()
def reconstruct(model, img: np.ndarray) -> np.ndarray:
    h, w = (s // 16 * 16 for s in img.shape[:2])
    x = torch.from_numpy(np.ascontiguousarray(img[:h, :w])).permute(2, 0, 1)[None].float().div(127.5).sub(1)
    rec = model(x)[0]
    return ((rec[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def main() -> None:
    torch.set_num_threads(1)
    out, specs = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
    models = [(name, load_any(path)) for name, path in specs]
    names = ["original"] + [n for n, _ in models]
    s, pad, top = 192, 4, 18
    sheet = Image.new("RGB", (len(names) * (s + pad), len(CROPS) * (s + pad) + top), "white")
    draw = ImageDraw.Draw(sheet)
    for c, n in enumerate(names):
        draw.text((c * (s + pad) + 4, 3), n, fill="black")
    for r, (name, y, x, size) in enumerate(CROPS):
        img = load_image(f"../shared/data/kodak/{name}.png")
        tiles = [img] + [reconstruct(m, img) for _, m in models]
        for c, t in enumerate(tiles):
            tile = Image.fromarray(t[y:y + size, x:x + size]).resize((s, s), Image.LANCZOS)
            sheet.paste(tile, (c * (s + pad), top + r * (s + pad)))
    sheet.save(out, **({"quality": 90} if out.lower().endswith((".jpg", ".jpeg")) else {}))


if __name__ == "__main__":
    main()
