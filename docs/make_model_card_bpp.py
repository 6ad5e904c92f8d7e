"""bpp per coder of the default model on the 24 Kodak images, per codebook size (header and CRC included).

Bitstreams are lossless, so these columns of the README model card depend only on
the index maps and the coders; this script recomputes them without decoding:

    python docs/make_model_card_bpp.py [--kodak ../shared/data/kodak]
"""
from __future__ import annotations

import argparse
import glob
import os


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "kodak"))
    args = ap.parse_args()
    from codec.entropy import CODERS
    from codec.image import load_image, to_tensor
    from codec.runtime import configure_cpu
    from codec.types import IndexMap
    from codec.zoo import load_codec

    configure_cpu(1)
    sizes = [1024, 512, 256, 128, 64, 32, 16, 8]
    codecs = {S: load_codec("default", S, device="cpu") for S in sizes}
    files = sorted(glob.glob(os.path.join(args.kodak, "*.png")))
    if not files:
        raise SystemExit(f"no Kodak images in {args.kodak}")
    totals = {S: {c: 0 for c in CODERS} for S in sizes}
    pixels = 0
    for f in files:
        img = load_image(f)
        pixels += img.shape[0] * img.shape[1]
        lat = codecs[1024].encode_latents(to_tensor(img))
        for S, codec in codecs.items():
            idx = codec.model.quantize.indices(lat)[0].cpu().numpy()
            imap = IndexMap(idx, S, img.shape[:2], codec.codebook_id)
            for c in CODERS:
                data = codec.compress_indices(imap, c)
                assert codec.decompress_indices(data) == imap
                totals[S][c] += len(data)
    print("| codebook | images | " + " | ".join(f"bpp {c}" for c in CODERS) + " | smallest |")
    print("|---|---|" + "---|" * (len(CODERS) + 1))
    for S in sizes:
        bpp = {c: 8 * totals[S][c] / pixels for c in CODERS}
        print(
            f"| {S} | {len(files)} | " + " | ".join(f"{bpp[c]:.4f}" for c in CODERS) + f" | {min(bpp, key=bpp.get)} |"
        )


if __name__ == "__main__":
    main()
