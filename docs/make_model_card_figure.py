"""The model card's picture: original | reconstruction at K = 1024, 128, 16, for two Kodak images.

Full-resolution centre crops (so the viewer sees the codec's real pixels, not a rescale), written as
docs/model_card_kodak.jpg (quality 92). Usage: python docs/make_model_card_figure.py [out.jpg]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ["kodim23.png", "kodim05.png"]
SIZES = [1024, 128, 16]
CROP = (320, 448)  # h, w


def main(out: str = str(ROOT / "docs" / "model_card_kodak.jpg")) -> None:
    from codec.image import load_image
    from codec.zoo import load_codec

    codecs = {s: load_codec("default", None if s == 1024 else s, device="cpu") for s in SIZES}
    rows = []
    for name in IMAGES:
        img = load_image(ROOT.parent / "shared" / "data" / "kodak" / name)
        H, W = img.shape[:2]
        y, x = (H - CROP[0]) // 2, (W - CROP[1]) // 2
        panels = [("original", img)]
        for s, c in codecs.items():
            data = c.compress(img)
            panels.append((f"K={s}: {8 * len(data) / (H * W):.3f} bpp", c.decompress(data)))
        tiles = []
        for label, a in panels:
            t = Image.fromarray(np.ascontiguousarray(a[y:y + CROP[0], x:x + CROP[1]]))
            ImageDraw.Draw(t).rectangle([0, 0, 8 + 7 * len(label), 16], fill=(0, 0, 0))
            ImageDraw.Draw(t).text((4, 3), label, fill=(255, 255, 255))
            tiles.append(np.asarray(t))
        rows.append(np.concatenate(tiles, axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(out, quality=92)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
