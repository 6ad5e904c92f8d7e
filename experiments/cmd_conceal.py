"""``vqsim conceal | train-transformer | index-data | train-robust-decoder | conceal-eval``: concealment, CLI."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from codec.errors import ParameterError

from .cmd_codec import add_limit_args, codec_for_bitstream, limits_from_args


def register(sub: argparse._SubParsersAction) -> None:
    """Register ``conceal``, ``train-robust-decoder``, ``conceal-eval``, ``train-transformer``, ``index-data``."""
    _register_conceal(sub)
    _register_robust_decoder(sub)

    from .cmd_conceal_eval import register as register_eval

    register_eval(sub)
    _register_train_transformer(sub)
    _register_index_data(sub)


def _register_conceal(sub: argparse._SubParsersAction) -> None:
    from codec.conceal import AR_WINDOW_RULES, CONCEAL_METHODS

    p = sub.add_parser("conceal", help="drop a random fraction of a bitstream's indices, conceal them, decode")
    p.add_argument("input", help="bitstream file (.vqb)")
    p.add_argument("output", help="image file to write (.png)")
    p.add_argument("--loss", type=float, default=0.2, help="fraction of indices lost, in [0, 1] (default 0.2)")
    p.add_argument("--method", choices=CONCEAL_METHODS, default="ar", help="concealment method (default ar)")
    p.add_argument("--seed", type=int, default=0, help="seed of the loss pattern and of sampling (default 0)")
    p.add_argument("--model", default=None,
                   help="codec model name or checkpoint (default: the one named in the bitstream)")
    p.add_argument(
        "--concealer",
        default=None,
        help="transformer file for ar/ar_naive/bidir (default: the zoo's model for this codec and codebook size)",
    )
    p.add_argument("--config", default=None, help="taming config yaml for an official codec checkpoint")
    p.add_argument("--sample", action="store_true", help="sample instead of argmax (ar, bidir)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely codewords")
    p.add_argument("--steps", type=int, default=6, help="bidir: refinement steps (default 6)")
    p.add_argument(
        "--rule",
        choices=AR_WINDOW_RULES,
        default="taming",
        help="ar: window placement (taming = the paper's sliding window; tiled = shared tiles, faster)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument(
        "--decoder",
        default="plain",
        help="decoder variant: plain (default; at K = 1024 the default codec's own decoder is the loss-aware one),"
        " robust (a shipped robust file of this codec and size, where one ships) or a decoder file from"
        " train-robust-decoder; indices and bitstreams are unchanged",
    )
    add_limit_args(p)
    p.set_defaults(func=cmd_conceal)


def _register_robust_decoder(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-robust-decoder",
        help="fine-tune a loss-aware decoder side on concealed index maps (encoder and codebook fixed)",
    )
    p.add_argument("--config", required=True, help="yaml (experiments/configs/train/robust_decoder.yaml)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.train/state.pt")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop with a saved state after this wall time (--resume continues)",
    )
    p.add_argument("--export", action="store_true",
                   help="write OUT from the last saved state (no training; evaluate a run while it goes on)")
    p.add_argument("--steps", type=int, default=None, help="override the config's steps")
    p.add_argument("--out", default=None, help="override the config's out")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the config's)")
    p.add_argument("--device", default=None, help="torch device (default: the config's, else cuda if available)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                   help="override the config's precision (bf16: decoder and LPIPS under bf16 autocast, 2.1x faster "
                   "steps measured on this CPU; weights and optimizer stay fp32)")
    p.set_defaults(func=cmd_train_robust_decoder)


def _register_train_transformer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-transformer", help="train a concealment transformer on a codec's index maps")
    p.add_argument("--codec", default="default", help="codec model name or checkpoint (default: default)")
    p.add_argument("--config", default=None, help="taming config yaml for an official codec checkpoint")
    p.add_argument("--codebook-size", type=int, default=None, help="codebook size S (default: the codec's full size)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", nargs="+", help="training images: folders, files or globs (one map each)")
    src.add_argument(
        "--data",
        help="an index-data folder for this codebook size (vqsim index-data … --out D: D/K{S});"
        " the held-out split keeps every variant of a photo on one side",
    )
    p.add_argument(
        "--data-variants",
        default=None,
        help="with --data: use only these variant numbers, e.g. 0 or 0,1 (default: all)",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop with a checkpoint after this wall time (the schedule still follows --steps; --resume continues)",
    )
    p.add_argument(
        "--bidir-mask-range",
        default=None,
        help="bidir: masking ratio r ~ U(lo, hi), given as lo,hi (default: MaskGIT's cosine schedule)",
    )
    p.add_argument(
        "--holdout",
        type=float,
        default=0.1,
        help="fraction of photos (with --data) or maps held out for evaluation (default 0.1)",
    )
    p.add_argument("--eval-windows", type=int, default=256, help="held-out windows evaluated (default 256)")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="bf16: train under bfloat16 autocast (float32 weights; faster on CPUs with AVX512-BF16)",
    )
    p.add_argument("--out", required=True, help="model file to write (training state goes to OUT.train)")
    p.add_argument("--kind", choices=["ar", "bidir"], default="ar", help="autoregressive (paper) or bidirectional")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch", type=int, default=32, help="windows per step (default 32)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument(
        "--mask-ratio-max", type=float, default=0.5, help="ar: context masking ratio α ~ U(0, this) (default 0.5)"
    )
    p.add_argument("--n-layer", type=int, default=8)
    p.add_argument("--n-head", type=int, default=8)
    p.add_argument("--n-embd", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--window", type=int, default=16, help="window side s (block size s²; default 16)")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--ckpt-every", type=int, default=1000)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--half", action="store_true", help="store the model file in float16")
    p.add_argument("--resume", action="store_true", help="continue from OUT.train")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--cache-dir",
        default="runs/index_cache",
        help="where the training images' index maps are cached (default runs/index_cache)",
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.set_defaults(func=cmd_train_transformer)


def _register_index_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index-data", help="encode shifted / mirrored variants of photos into index maps (transformer training data)"
    )
    p.add_argument("--codec", default="default", help="codec model name or checkpoint (default: default)")
    p.add_argument(
        "--codebook-size", type=int, nargs="+", required=True, help="codebook sizes to quantize to (one encoding)"
    )
    p.add_argument("--images", nargs="+", required=True, help="photos: folders, files or globs")
    p.add_argument("--out", required=True, help="dataset folder (one K{S} sub-folder per size)")
    p.add_argument(
        "--variants", default=None, help="'dy,dx[,f];…' pixel shifts, f = mirrored (default '0,0;0,0,f;8,8;8,8,f')"
    )
    p.add_argument("--part", default="0/1", help="this process's share of the photos, i/n (default 0/1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.set_defaults(func=cmd_index_data)


def load_concealer_for(codec, kind: str, path: str | None, device=None):
    """The concealment transformer: ``path`` if given, else ``codec.zoo.load_concealer``."""
    from codec.conceal import load_transformer

    if path is not None:
        return load_transformer(path, device=device or "cpu")
    import codec.zoo as zoo

    if not hasattr(zoo, "load_concealer"):
        from codec.errors import ModelNotFoundError

        raise ModelNotFoundError(f"no concealment model registry; pass --concealer PATH ({kind})")
    model = zoo.load_concealer(codec.name, codec.codebook_size, kind, device=device)
    return model


def _check_conceal_args(args) -> bool:
    """Refuse bad ``vqsim conceal`` options and missing files; whether the method is deterministic."""
    from codec.conceal import MODEL_KIND, SOFT_METHODS
    from codec.conceal.decoder_variant import check_variant_name

    if not 0.0 <= args.loss <= 1.0:
        raise ParameterError(f"--loss must be in [0, 1], got {args.loss}")
    deterministic = args.method.endswith("_mean") or args.method in SOFT_METHODS
    if args.method in MODEL_KIND and deterministic and args.sample:
        raise ParameterError(f"--sample does not apply to {args.method} (a deterministic posterior-mean estimate)")
    if args.method in MODEL_KIND and args.concealer is not None and not Path(args.concealer).is_file():
        raise FileNotFoundError(f"--concealer {args.concealer}: no such file")
    check_variant_name(args.decoder)
    if args.decoder not in ("plain", "robust") and not Path(args.decoder).is_file():
        raise FileNotFoundError(f"--decoder {args.decoder}: no such file (plain, robust or a decoder file)")
    return deterministic


def _concealer_and_options(args, codec, deterministic: bool) -> tuple[Any, dict]:
    """The transformer a model-based method needs (None otherwise) and its ``conceal`` options."""
    from codec.conceal import MODEL_KIND

    opts: dict = {}
    model = None
    if args.method in MODEL_KIND:
        kind = MODEL_KIND[args.method]
        model = load_concealer_for(codec, kind, args.concealer, device=codec.device)
        window = int(getattr(model, "meta", {}).get("window", 16))
        opts = {"window": window, "temperature": args.temperature, "top_k": args.top_k}
        if not deterministic:
            opts["sample"] = args.sample
        if kind == "bidir":
            opts["steps"] = args.steps
        else:
            opts["rule"] = args.rule
    return model, opts


def cmd_conceal(args) -> int:
    import numpy as np
    import torch

    from codec.conceal import conceal, random_loss_mask
    from codec.conceal.soft import decode_concealment, decoder_table
    from codec.image import check_output_image_path, save_image
    from codec.metrics import lpips_distance

    check_output_image_path(args.output)  # before any decoding
    if args.threads:
        torch.set_num_threads(args.threads)
    deterministic = _check_conceal_args(args)  # option and file checks before any decoding (issue 27)
    from codec.conceal.decoder_variant import with_decoder_variant

    path = Path(args.input)
    if not path.exists():
        raise FileNotFoundError(f"bitstream not found: {path}")
    data = path.read_bytes()
    limits = limits_from_args(args)
    codec = codec_for_bitstream(data, args.model, limits, device=args.device, config=args.config)
    imap = codec.decompress_indices(data, limits=limits)
    dec_codec = with_decoder_variant(codec, args.decoder)
    rng = np.random.default_rng(args.seed)
    lost = random_loss_mask(imap.shape, args.loss, rng)
    received = imap.with_indices(np.where(lost, 0, imap.indices))  # what a receiver holds
    model, opts = _concealer_and_options(args, codec, deterministic)
    t0 = time.perf_counter()
    res = conceal(
        received,
        lost,
        args.method,
        model=model,
        codebook=codec.codebook,
        decoder_codebook=decoder_table(dec_codec),
        rng=torch.Generator().manual_seed(args.seed),
        **opts,
    )
    out = res.index_map
    ms = 1000 * (time.perf_counter() - t0)
    ref = codec.decode_indices_tensor(imap)  # the plain decoder's loss-free reconstruction: the common reference
    rec = decode_concealment(dec_codec, res)
    save_image(args.output, rec)
    n_lost = int(lost.sum())
    exact = int((out.indices[lost] == imap.indices[lost]).sum())
    H, W = imap.image_size
    msg = (
        f"{args.input}: {imap.shape[0]}x{imap.shape[1]} indices, {n_lost} lost ({n_lost / lost.size:.1%}), "
        f"method {args.method}: {exact}/{n_lost} recovered exactly, {ms:.0f} ms"
    )
    if args.decoder != "plain":
        msg += f", decoder {args.decoder}"
    if min(H, W) >= 31:
        lp = float(lpips_distance(ref, rec, net="alex")[0])
        msg += f", LPIPS(alex) vs loss-free {lp:.4f}"
    print(msg + f" -> {args.output}")
    return 0


def cmd_train_robust_decoder(args) -> int:
    from codec.runtime import configure_cpu
    from codec.train.robust_decoder import RobustDecoderConfig, export_robust_decoder, train_robust_decoder

    cfg = RobustDecoderConfig.from_yaml(
        args.config, steps=args.steps, out=args.out, threads=args.threads, device=args.device,
        precision=args.precision,
    )
    if args.export:
        print(json.dumps(export_robust_decoder(cfg)))
        return 0
    configure_cpu(cfg.threads)
    res = train_robust_decoder(cfg, resume=args.resume, max_minutes=args.max_minutes)
    last = res["history"][-1] if res["history"] else {}
    print(json.dumps({"out": res["out"], "step": res["step"], "done": res["done"], "loss": last.get("loss")}))
    return 0


def cmd_train_transformer(args) -> int:
    from codec.conceal.train import TransformerTrainConfig, load_or_encode_index_maps, train_transformer
    from codec.image import list_images
    from codec.runtime import configure_cpu
    from codec.zoo import load_codec

    configure_cpu(args.threads)
    rng_mask = None
    if args.bidir_mask_range is not None:
        try:
            rng_mask = tuple(float(v) for v in args.bidir_mask_range.split(","))
        except ValueError:
            raise ParameterError(f"--bidir-mask-range must be lo,hi, got {args.bidir_mask_range!r}") from None
        if len(rng_mask) != 2:
            raise ParameterError(f"--bidir-mask-range must be lo,hi, got {args.bidir_mask_range!r}")
    cfg = TransformerTrainConfig(
        kind=args.kind, window=args.window, n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
        dropout=args.dropout, steps=args.steps, batch_size=args.batch, lr=args.lr, warmup=args.warmup,
        mask_ratio_max=args.mask_ratio_max, eval_every=args.eval_every, ckpt_every=args.ckpt_every,
        log_every=args.log_every, seed=args.seed, device=args.device, save_half=args.half,
        bidir_mask_range=rng_mask, eval_windows=args.eval_windows, precision=args.precision, holdout=args.holdout,
    )
    codec = load_codec(args.codec, args.codebook_size, device=args.device, config=args.config)
    out = Path(args.out)
    groups = None
    if args.data is not None:
        from codec.conceal.data import load_index_dataset

        variants = None if args.data_variants is None else [int(v) for v in args.data_variants.split(",")]
        ds = load_index_dataset(args.data, variants)
        maps, groups = ds.maps, ds.photo
        if any(int(m.max()) >= codec.codebook_size for m in maps):
            raise ParameterError(
                f"{args.data}: maps hold indices ≥ {codec.codebook_size}; pass the K{codec.codebook_size} folder"
            )
    else:
        maps = load_or_encode_index_maps(codec, list_images(args.images), args.cache_dir)
    from codec.zoo import checkpoint_meta

    # the codec's training steps tie the concealer to the index maps it learned (a retrained codec changes them)
    codec_steps = checkpoint_meta(args.codec, args.config).get("steps")
    meta = {
        "codec": codec.name, "codebook_id": codec.codebook_id, "codec_steps": codec_steps,
        "data_tokens": int(sum(m.size for m in maps)),
    }
    res = train_transformer(
        maps, codec.codebook_size, cfg, out=out, resume=args.resume, groups=groups, max_minutes=args.max_minutes,
        meta=meta,
    )
    last = {k: v for h in res.history for k, v in h.items()}
    print(json.dumps({
        "done": str(out), "step": res.step, "loss": last.get("loss"), "eval_loss": last.get("eval_loss"),
        "eval_acc": last.get("eval_acc"),
    }))
    return 0


def cmd_index_data(args) -> int:
    from codec.conceal.data import DEFAULT_VARIANTS, build_index_dataset, parse_variants
    from codec.image import list_images
    from codec.zoo import load_codec

    try:
        part, parts = (int(x) for x in args.part.split("/"))
    except ValueError:
        raise ParameterError(f"--part must be i/n, got {args.part!r}") from None
    from codec.runtime import configure_cpu

    configure_cpu(args.threads)
    variants = DEFAULT_VARIANTS if args.variants is None else parse_variants(args.variants)
    codecs = [load_codec(args.codec, s, device=args.device) for s in args.codebook_size]
    res = build_index_dataset(codecs, list_images(args.images), args.out, variants=variants, part=part, parts=parts)
    print(json.dumps({"done": args.out, **{k: round(v, 1) if isinstance(v, float) else v for k, v in res.items()}}))
    return 0
