"""``vqsim encode | decode | eval``: the codec from the command line."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from codec.errors import ParameterError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="image → VQ index bitstream (.vqb)")
    p.add_argument("input", help="image file (PNG, JPEG, ...)")
    p.add_argument("output", help="bitstream file to write")
    _model_args(p)
    p.add_argument("--max-pixels", type=int, default=None,
                   help="largest image (H*W pixels) to encode (default 2^21, or $VQSIM_MAX_PIXELS; the same "
                        "limit as decoding)")
    p.add_argument("--coder", choices=["arith_rep", "arith", "deflate", "raw"], default="arith_rep",
                   help="entropy coder: adaptive arithmetic with a repeat-left context (default: the smallest at every "
                        "codebook size), plain adaptive arithmetic, DEFLATE (the paper's ZIP), fixed-width raw")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="VQ index bitstream → image")
    p.add_argument("input", help="bitstream file (.vqb)")
    p.add_argument("output", help="image file to write (.png)")
    p.add_argument("--model", default=None, help="model name or checkpoint (default: the one named in the bitstream)")
    p.add_argument("--config", default=None, help="taming config yaml for an official checkpoint")
    p.add_argument("--no-finetune", action="store_true",
                   help="reduced sizes: decode with the plain K-means model even if a fine-tuned decoder is shipped")
    p.add_argument("--device", default=None)
    add_precision_arg(p)
    add_limit_args(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("eval", help="bpp / LPIPS / PSNR / SSIM / timings over images and codebook sizes")
    p.add_argument("--images", nargs="+", required=True, help="image files, folders or globs")
    p.add_argument("--model", default="default", help="model name or checkpoint path (default: default)")
    p.add_argument("--config", default=None, help="taming config yaml for an official checkpoint")
    p.add_argument("--codebook-size", type=int, nargs="+", default=None,
                   help="codebook sizes (default: the model's full size)")
    p.add_argument("--variants", choices=["both", "auto", "finetuned", "kmeans"], default="both",
                   help="reduced sizes: evaluate the fine-tuned decoder, the plain K-means model ('w/o fine-tune'), "
                        "both (default) or whichever is shipped (auto)")
    p.add_argument("--nets", default="alex,vgg", help="LPIPS backbones, comma separated (default: alex,vgg)")
    p.add_argument("--dists", action="store_true", help="also measure DISTS (Ding et al. 2020; a 'dists' column; "
                   "needs pip install --no-deps dists-pytorch==0.1)")
    p.add_argument("--csv", default=None, help="also write every row to this CSV file (appended as rows finish)")
    p.add_argument("--per-image", action="store_true", help="print every image's row, not only the means")
    p.add_argument("--anchors", default="", help="classical references on the same metrics, comma separated: "
                   "palette (64-colour palette of 16x16 block means), webp_down (WebP of a 3x-downscaled image, "
                   "<= 0.04 bpp), jpeg, webp (lowest quality)")
    p.add_argument("--plot", default=None, metavar="FILE.png",
                   help="also draw quality vs bits per pixel: the VQ codec per codebook size and the anchors")
    p.add_argument("--device", default=None)
    add_precision_arg(p)
    p.set_defaults(func=cmd_eval)


def add_limit_args(p: argparse.ArgumentParser) -> None:
    """``--max-pixels`` / ``--max-indices``: the receiver's decode limits (``codec.limits``)."""
    p.add_argument("--max-pixels", type=int, default=None,
                   help="largest image (H*W pixels) a bitstream may claim (default 2^21, or $VQSIM_MAX_PIXELS)")
    p.add_argument("--max-indices", type=int, default=None,
                   help="largest index map (h*w) a bitstream may claim (default 2^15, or $VQSIM_MAX_INDICES)")


def limits_from_args(args):
    """DecodeLimits from ``--max-pixels`` / ``--max-indices``, the environment and the defaults."""
    from dataclasses import replace

    from codec.limits import DecodeLimits

    limits = DecodeLimits.from_env()
    if args.max_pixels is not None:
        limits = replace(limits, max_pixels=args.max_pixels)
    if args.max_indices is not None:
        limits = replace(limits, max_indices=args.max_indices)
    return limits


def codec_for_bitstream(data: bytes, model: str | None, limits, **load_kw):
    """The codec that decodes ``data``: the receiver's ``model``, else the registered model the
    header names (``zoo.model_for_bitstream``); the header's sizes are checked against ``limits``
    before any model is loaded."""
    from codec.bitstream import parse_header
    from codec.zoo import load_codec, model_for_bitstream

    head = parse_header(data)
    limits.check(head.h, head.w, head.H, head.W, what="bitstream header")
    return load_codec(model_for_bitstream(head.codebook_id, model), head.codebook_size, **load_kw)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="model name or checkpoint path (default: default)")
    p.add_argument("--config", default=None, help="taming config yaml for an official checkpoint")
    p.add_argument("--codebook-size", type=int, default=None, help="K-means-reduced codebook size S (default: full)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    add_precision_arg(p)


def add_precision_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: bfloat16 autocast (CPU or CUDA): on this 2-core CPU encode 2.3x and decode 1.4x "
                        "faster, but 1.1 %% of kodim01's indices differ from fp32 and decoded pixels differ "
                        "(61.5 dB PSNR); default fp32")


def _autocast(args) -> str | None:
    if args.precision == "bf16":
        import sys

        print(f"vqsim {args.command}: note: --precision bf16: indices and pixels differ from fp32 "
              "(measured on kodim01: 1.1 % of indices, 61.5 dB PSNR)", file=sys.stderr)
        return "bf16"
    return None


def cmd_encode(args) -> int:
    from codec.bitstream import bits_per_pixel
    from codec.image import load_image
    from codec.zoo import load_codec

    from dataclasses import replace

    from codec.limits import DecodeLimits

    limits = DecodeLimits.from_env()
    if args.max_pixels is not None:
        limits = replace(limits, max_pixels=args.max_pixels)
    image = load_image(args.input, limits=limits)  # the header is checked before the pixels are decoded
    codec = load_codec(args.model, args.codebook_size, device=args.device, coder=args.coder, config=args.config,
                       autocast=_autocast(args))
    t0 = time.perf_counter()
    data = codec.compress(image, limits=limits)
    ms = 1000 * (time.perf_counter() - t0)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_bytes(data)
    H, W = image.shape[:2]
    h, w = codec.latent_shape((H, W))
    print(f"{args.input}: {W}x{H} -> {h}x{w} indices, codebook {codec.codebook_id}, coder {args.coder}: "
          f"{len(data)} bytes = {bits_per_pixel(len(data), (H, W)):.4f} bpp ({ms:.0f} ms) -> {args.output}")
    return 0


def cmd_decode(args) -> int:
    from codec.image import check_output_image_path, save_image

    check_output_image_path(args.output)  # before any decoding
    path = Path(args.input)
    if not path.exists():
        raise FileNotFoundError(f"bitstream not found: {path}")
    data = path.read_bytes()
    limits = limits_from_args(args)
    codec = codec_for_bitstream(data, args.model, limits, device=args.device, config=args.config,
                                finetuned=False if args.no_finetune else None, autocast=_autocast(args))
    t0 = time.perf_counter()
    image = codec.decompress(data, limits=limits)
    ms = 1000 * (time.perf_counter() - t0)
    save_image(args.output, image)
    print(f"{args.input}: {len(data)} bytes, codebook {codec.codebook_id} ({codec.variant}) -> {image.shape[1]}x{image.shape[0]} "
          f"image ({ms:.0f} ms) -> {args.output}")
    return 0


def evaluate(images, model: str = "default", sizes=None, nets=("alex", "vgg"), device=None, config=None,
             progress=None, variants: str = "both", anchors=(), autocast: str | None = None, dists: bool = False):
    """Rows (dicts) of bpp per coder, LPIPS, PSNR, SSIM and timings, one per (image, codebook size, variant).

    The encoder runs once per image (timed); each codebook size then only
    re-quantizes (timed and added to its encode time) and decodes.
    ``variants`` (reduced sizes only): "kmeans" (w/o fine-tune), "finetuned"
    (sizes without a shipped fine-tune are skipped), "both", or "auto"
    (what ``load_codec`` picks). The variant is in each row's ``variant``.
    ``anchors`` (names from ``codec.anchors.ANCHORS``) add one row per image
    and anchor (``variant`` = the anchor's name, ``codebook_size`` 0, its
    real byte count in every ``bpp_*`` column).
    ``dists``: add a ``dists`` column (``codec.metrics.dists`` of the same pair).
    """
    import numpy as np
    import torch

    from codec.bitstream import bits_per_pixel
    from codec.entropy import CODERS
    from codec.errors import ModelNotFoundError
    from codec.image import load_image, to_tensor
    from codec.metrics import image_metrics
    from codec.zoo import load_codec

    from codec.anchors import ANCHORS, run_anchor

    if dists:
        from codec.metrics import dists as dists_distance

    if variants not in ("both", "auto", "finetuned", "kmeans"):
        raise ParameterError(f"variants must be both, auto, finetuned or kmeans, got {variants!r}")
    for a in anchors:
        if a not in ANCHORS:
            raise ParameterError(f"unknown anchor {a!r}; allowed: {', '.join(ANCHORS)}")
    base = load_codec(model, None, device=device, config=config, autocast=autocast)
    sizes = sorted(set(sizes or [base.codebook_size]), reverse=True)
    codecs = []
    for s in sizes:
        if s == base.codebook_size:
            codecs.append(base)
            continue
        want = {"both": [False, True], "auto": [None], "finetuned": [True], "kmeans": [False]}[variants]
        for ft in want:
            try:
                codecs.append(load_codec(model, s, device=device, config=config, finetuned=ft, autocast=autocast))
            except ModelNotFoundError:
                if variants == "finetuned" or (variants == "both" and ft):
                    continue  # no fine-tuned decoder shipped for this size
                raise
    rows = []
    for path in images:
        img = load_image(path)
        x = to_tensor(img, device=base.device)
        H, W = img.shape[:2]
        sync = torch.cuda.synchronize if base.device.type == "cuda" else (lambda: None)
        with torch.no_grad():
            t0 = time.perf_counter()
            h = base.encode_latents(x)
            sync()
            t_enc = time.perf_counter() - t0
            for codec in codecs:
                t0 = time.perf_counter()
                idx = codec.model.quantize.indices(h)
                sync()
                t_q = time.perf_counter() - t0
                from codec.types import IndexMap

                imap = IndexMap(idx[0].cpu().numpy(), codec.codebook_size, (H, W), codec.codebook_id)
                sizes_b = {c: len(codec.compress_indices(imap, c)) for c in CODERS}
                t0 = time.perf_counter()
                rec = codec.decode_indices_tensor(imap)
                sync()
                t_dec = time.perf_counter() - t0
                m = image_metrics(x, rec, nets=nets, device=base.device)
                if dists:
                    m["dists"] = dists_distance(x, rec, device=base.device)[0]
                rows.append({
                    "image": Path(path).name, "codebook_size": codec.codebook_size,
                    "variant": getattr(codec, "variant", "custom"), "width": W, "height": H,
                    **{f"bpp_{c}": bits_per_pixel(n, (H, W)) for c, n in sizes_b.items()},
                    **{f"bytes_{c}": n for c, n in sizes_b.items()},
                    **{k: float(v) for k, v in m.items()},
                    "codewords_used": int(np.unique(imap.indices).size),
                    "encode_ms": 1000 * (t_enc + t_q), "decode_ms": 1000 * t_dec,
                })
                if progress:
                    progress(rows[-1])
        for a in anchors:
            t0 = time.perf_counter()
            rec_a, nbytes = run_anchor(a, img)
            t_a = time.perf_counter() - t0
            m = image_metrics(img, rec_a, nets=nets, device=base.device)
            if dists:
                m["dists"] = dists_distance(x, to_tensor(rec_a, device=base.device), device=base.device)[0]
            rows.append({
                "image": Path(path).name, "codebook_size": 0, "variant": a, "width": W, "height": H,
                **{f"bpp_{c}": bits_per_pixel(nbytes, (H, W)) for c in CODERS},
                **{f"bytes_{c}": nbytes for c in CODERS},
                **{k: float(v) for k, v in m.items()},
                "codewords_used": 0, "encode_ms": 1000 * t_a, "decode_ms": 0.0,
            })
            if progress:
                progress(rows[-1])
    return rows


def cmd_eval(args) -> int:
    import csv

    import pandas as pd

    from codec.image import list_images

    images = list_images(args.images)
    nets = tuple(n.strip() for n in args.nets.split(",") if n.strip())
    sink: dict = {}
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)

    def progress(r: dict) -> None:
        print(f"  {r['image']} S={r['codebook_size']} {r['variant']}: {r['bpp_arith']:.4f} bpp, "
              f"LPIPS {r.get('lpips_alex', float('nan')):.3f}", flush=True)
        if args.csv:  # appended row by row: an interrupted run keeps what it measured
            if "writer" not in sink:
                sink["file"] = open(args.csv, "w", newline="")
                sink["writer"] = csv.DictWriter(sink["file"], fieldnames=list(r))
                sink["writer"].writeheader()
            sink["writer"].writerow(r)
            sink["file"].flush()

    try:
        anchors = tuple(a.strip() for a in args.anchors.split(",") if a.strip())
        rows = evaluate(images, args.model, args.codebook_size, nets=nets, device=args.device, config=args.config,
                        progress=progress, variants=args.variants, anchors=anchors, autocast=_autocast(args),
                        dists=args.dists)
    finally:
        if "file" in sink:
            sink["file"].close()
    df = pd.DataFrame(rows)
    cols = [c for c in df.columns if c.startswith("bpp_")] + [c for c in df.columns if c.startswith(("lpips_", "dists", "psnr", "lowpass_", "ssim", "ms_ssim"))] + ["encode_ms", "decode_ms"]
    pd.set_option("display.width", 200)
    if args.per_image:
        print(df[["image", "codebook_size", "variant"] + cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    g = df.groupby(["codebook_size", "variant"], sort=False)
    summary = g[cols].mean().reset_index()
    summary.insert(2, "images", g.size().values)
    print(f"\nmeans over {len(images)} image(s), model {args.model}:")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.plot:
        from .plots.rate import plot_eval_rd

        plot_eval_rd(df, args.plot)
        print(f"plot: {args.plot}")
    if args.csv:
        print(f"rows written to {args.csv}")
    return 0
