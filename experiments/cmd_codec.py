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
    p.add_argument("--coder", choices=["arith_rep", "arith", "deflate", "raw", "tf_ar"], default="arith_rep",
                   help="entropy coder: adaptive arithmetic with a repeat-left context (default), plain adaptive "
                        "arithmetic, DEFLATE (the paper's ZIP), fixed-width raw, or tf_ar: the shipped AR "
                        "transformer's probabilities through a range coder (K = 1024 and 128 only; 22 %% fewer "
                        "bits than arith_rep on Kodak, 10-30 s per image on one CPU thread)")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="VQ index bitstream → image")
    p.add_argument("input", help="bitstream file (.vqb)")
    p.add_argument("output", help="image file to write (.png)")
    p.add_argument("--model", default=None, help="model name or checkpoint (default: the one named in the bitstream)")
    p.add_argument("--config", default=None, help="taming config yaml for an official checkpoint")
    p.add_argument("--no-finetune", action="store_true",
                   help="reduced sizes: decode with the plain K-means model even if a fine-tuned decoder is shipped")
    p.add_argument("--device", default=None)
    # issue 23 (codec.conceal.decoder_variant): same bitstream, another decoder side
    p.add_argument("--decoder", default="plain",
                   help="decoder variant: plain (default), robust (loss-aware, where shipped) or a decoder file")
    add_precision_arg(p)
    add_limit_args(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("eval", help="bpp / LPIPS / PSNR / SSIM / timings over images and codebook sizes; "
                                     "anchors; BD-rate tables")
    p.add_argument("--images", nargs="+", default=None, help="image files, folders or globs (each folder is an "
                   "image set: a column of the --bd-rate table)")
    p.add_argument("--images-per-set", type=int, default=None, metavar="N",
                   help="evaluate only the first N images (sorted by name) of each set (folder)")
    p.add_argument("--model", default="default", help="model name or checkpoint path (default: default)")
    p.add_argument("--config", default=None, help="taming config yaml for an official checkpoint")
    p.add_argument("--codebook-size", type=int, nargs="+", default=None,
                   help="codebook sizes (default: the model's full size; with --bd-rate: every shipped size)")
    p.add_argument("--variants", choices=["both", "auto", "finetuned", "kmeans"], default=None,
                   help="reduced sizes: evaluate the fine-tuned decoder, the plain K-means model ('w/o fine-tune'), "
                        "both (default; auto with --bd-rate) or whichever is shipped (auto)")
    p.add_argument("--nets", default="alex,vgg", help="LPIPS backbones, comma separated (default: alex,vgg)")
    p.add_argument("--decoder", default="plain",
                   help="decoder variant: plain (default), robust (loss-aware, where shipped) or a decoder file "
                   "from train-robust-decoder; same indices and bits, another reconstruction")
    p.add_argument("--dists", action="store_true", help="also measure DISTS (Ding et al. 2020; a 'dists' column; "
                   "needs pip install --no-deps dists-pytorch==0.1)")
    p.add_argument("--coders", default=None, help="coders whose sizes are measured, comma separated (default: "
                   "raw,deflate,arith,arith_rep; add tf_ar for the transformer coder, ~1 s per image and size)")
    p.add_argument("--csv", default=None,
                   help="also write every row to this CSV file, appended as rows finish; an existing file with the "
                   "same columns is extended (rows of earlier runs are kept), one with other columns is refused")
    p.add_argument("--per-image", action="store_true", help="print every image's row, not only the means")
    p.add_argument("--anchors", default="", help="classical references on the same metrics, comma separated: "
                   "rate sweeps jpeg, webp, avif, heic (HEVC intra, the BPG stand-in), jxl (each over downscale "
                   "factor x quality, see codec.anchors.SWEEPS; 'sweeps' = all five); single points palette "
                   "(64-colour palette of 16x16 block means), webp_down (WebP of a 3x-downscaled image, <= 0.04 bpp), "
                   "jpeg_q1, webp_q0 (lowest quality, full size)")
    p.add_argument("--bd-rate", action="store_true",
                   help="print the paper's Table-1 layout: BD-rate (and BD-LPIPS / BD-DISTS) of the codec against "
                        "each anchor sweep per image set, plus the paper's published Kodak curve; defaults to "
                        "--anchors sweeps and every shipped codebook size")
    p.add_argument("--from-csv", nargs="+", default=None, metavar="CSV",
                   help="with --bd-rate: build the table from rows written earlier with --csv instead of measuring")
    p.add_argument("--bd-metrics", default="lpips_alex,dists",
                   help="quality columns of the --bd-rate table, comma separated (default lpips_alex,dists; also "
                        "lpips_vgg, psnr, ms_ssim)")
    p.add_argument("--bd-coder", default="arith_rep", help="coder whose bitstream sizes give the codec's rate in "
                   "--bd-rate (default arith_rep)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (rows done, ETA) on stderr")
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
    from dataclasses import replace

    from codec.bitstream import bits_per_pixel
    from codec.image import load_image
    from codec.limits import DecodeLimits
    from codec.zoo import load_codec

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
    from codec.conceal.decoder_variant import with_decoder_variant  # issue 23: --decoder

    codec = with_decoder_variant(codec, args.decoder)
    t0 = time.perf_counter()
    image = codec.decompress(data, limits=limits)
    ms = 1000 * (time.perf_counter() - t0)
    save_image(args.output, image)
    print(f"{args.input}: {len(data)} bytes, codebook {codec.codebook_id} ({codec.variant}) -> "
          f"{image.shape[1]}x{image.shape[0]} image ({ms:.0f} ms) -> {args.output}")
    return 0


def evaluate(*args, **kwargs):
    """Moved to :func:`experiments.evaluation.evaluate` (library code); kept here as an alias."""
    from .evaluation import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def _select_images(paths, per_set: int | None) -> list:
    """The first ``per_set`` images of each folder (all when None), keeping the given order of folders."""
    if per_set is None:
        return list(paths)
    if per_set < 1:
        raise ParameterError(f"--images-per-set must be >= 1, got {per_set}")
    groups: dict = {}
    for p in paths:
        groups.setdefault(str(Path(p).parent), []).append(p)
    return [p for g in groups.values() for p in sorted(g, key=lambda q: Path(q).name)[:per_set]]


def _eval_anchors(args) -> tuple[str, ...]:
    """``--anchors`` as a tuple, ``sweeps`` expanded; every sweep anchor when ``--bd-rate`` names none."""
    from codec.anchors import SWEEPS

    anchors = [a.strip() for a in args.anchors.split(",") if a.strip()]
    if "sweeps" in anchors:
        i = anchors.index("sweeps")
        anchors[i:i + 1] = [a for a in SWEEPS if a not in anchors]
    if args.bd_rate and not anchors:
        anchors = list(SWEEPS)
    return tuple(dict.fromkeys(anchors))


def _eval_rows_from_csv(args):
    """The rows of earlier ``vqsim eval --csv`` runs (``--from-csv``), checked for the columns BD needs."""
    import pandas as pd

    if not args.bd_rate:
        raise ParameterError("--from-csv only builds a --bd-rate table; add --bd-rate")
    frames = []
    for f in args.from_csv:
        if not Path(f).is_file():
            raise FileNotFoundError(f"CSV not found: {f}")
        frames.append(pd.read_csv(f, keep_default_na=False, na_values=["", "nan", "NaN"]))
    df = pd.concat(frames, ignore_index=True)
    for col in ("set", "anchor", "setting"):
        if col not in df.columns:
            raise ParameterError(f"{args.from_csv[0]}: no '{col}' column (rows from an older vqsim eval?)")
    df["anchor"] = df["anchor"].fillna("")
    df["setting"] = df["setting"].fillna("")
    return df, sorted(df["image"].unique())


def _eval_measure(args, anchors: tuple[str, ...]):
    """Measure the codec (and anchors) on ``--images``; rows appended to ``--csv`` as they come."""
    import csv

    import pandas as pd

    from codec.image import list_images

    from .evaluation import evaluate as _evaluate

    if not args.images:
        raise ParameterError("give --images (or --bd-rate --from-csv ROWS.csv)")
    images = _select_images(list_images(args.images), args.images_per_set)
    nets = tuple(n.strip() for n in args.nets.split(",") if n.strip())
    coders = None if args.coders is None else tuple(c.strip() for c in args.coders.split(",") if c.strip())
    sizes = args.codebook_size
    variants = args.variants or ("auto" if args.bd_rate else "both")
    if args.bd_rate and sizes is None:
        from codec.zoo import REGISTRY

        if args.model in REGISTRY:
            sizes = list(REGISTRY[args.model].codebook_sizes)
    sink: dict = {}
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    bar = not args.no_progress
    coder = (coders or ("arith_rep",))[0]

    def progress(r: dict) -> None:
        if not bar:
            bpp = r.get(f"bpp_{coder}", next((v for k, v in r.items() if k.startswith("bpp_")), float("nan")))
            print(f"  {r['image']} S={r['codebook_size']} {r['variant']}: {bpp:.4f} bpp, "
                  f"LPIPS {r.get('lpips_alex', float('nan')):.3f}", flush=True)
        if args.csv:  # appended row by row: an interrupted run keeps what it measured
            if "writer" not in sink:
                path, fields = Path(args.csv), list(r)
                old = _csv_header(path)
                if old is not None and old != fields:
                    raise ParameterError(
                        f"{path} holds rows with other columns ({len(old)}: {', '.join(old[:6])}, ...) than this "
                        f"run's ({len(fields)}: {', '.join(fields[:6])}, ...); it was left as it is: give another "
                        "--csv file"
                    )
                sink["file"] = open(path, "a" if old else "w", newline="")  # closed in the finally below
                sink["writer"] = csv.DictWriter(sink["file"], fieldnames=fields)
                if not old:
                    sink["writer"].writeheader()
            sink["writer"].writerow(r)
            sink["file"].flush()

    try:
        rows = _evaluate(images, args.model, sizes, nets=nets, device=args.device, config=args.config,
                         progress=progress, variants=variants, anchors=anchors, autocast=_autocast(args),
                         dists=args.dists, coders=coders, bar=bar, decoder=args.decoder)
    finally:
        if "file" in sink:
            sink["file"].close()
    return pd.DataFrame(rows), images


def _csv_header(path: Path) -> list[str] | None:
    """The column names of an existing, non-empty CSV file (None when there is none to extend)."""
    import csv

    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, newline="") as f:
        return next(csv.reader(f), None)


def _eval_print_summary(df, args, n_images: int) -> None:
    import pandas as pd

    quality = ("lpips_", "dists", "psnr", "lowpass_", "ssim", "ms_ssim")
    cols = ([c for c in df.columns if c.startswith("bpp_")] + [c for c in df.columns if c.startswith(quality)]
            + ["encode_ms", "decode_ms"])
    pd.set_option("display.width", 200)
    if args.per_image:
        per_image = df[["image", "codebook_size", "variant"] + cols]
        print(per_image.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    g = df.groupby(["codebook_size", "variant"], sort=False)
    summary = g[cols].mean().reset_index()
    summary.insert(2, "images", g.size().values)
    print(f"\nmeans over {n_images} image(s), model {args.model}:")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def _eval_print_bd(df, args, metrics: tuple[str, ...]) -> None:
    from codec.anchors import SWEEPS

    from .evaluation import bd_table, format_bd_table, rd_curves

    sets = list(dict.fromkeys(df["set"]))
    curves = {s: rd_curves(df[df["set"] == s], coder=args.bd_coder, metrics=metrics) for s in sets}
    nimg = {s: int(df.loc[df["set"] == s, "image"].nunique()) for s in sets}
    table = bd_table(curves, metrics=metrics, anchors=[a for a in SWEEPS if a in set(df["anchor"])],
                     paper_set=next((s for s in sets if s.lower() == "kodak"), None))
    print(f"\nBD table (vqsim rate: bpp_{args.bd_coder}, whole bitstream; LPIPS = LPIPS-Alex):")
    print(format_bd_table(table, sets, metrics, nimg))


def cmd_eval(args) -> int:
    anchors = _eval_anchors(args)
    metrics = tuple(m.strip() for m in args.bd_metrics.split(",") if m.strip())
    if not metrics:
        raise ParameterError("--bd-metrics names no metric")
    if args.from_csv:
        df, images = _eval_rows_from_csv(args)
    else:
        df, images = _eval_measure(args, anchors)
    _eval_print_summary(df, args, len(images))
    if args.bd_rate:
        _eval_print_bd(df, args, metrics)
    if args.plot:
        from .plots.rate import plot_eval_rd

        plot_eval_rd(df, args.plot)
        print(f"plot: {args.plot}")
    if args.csv and not args.from_csv:
        print(f"rows written to {args.csv}")
    return 0
