"""``vqsim train-codec``, ``vqsim export-codec`` and ``vqsim finetune-codec``."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-codec", help="train a VQGAN codec (resumable)")
    p.add_argument("--config", default=None, help="YAML/JSON file with TrainConfig fields (flags override it)")
    p.add_argument("--out", default=None, help="run folder (checkpoints, log.jsonl); default runs/codec")
    p.add_argument("--data", nargs="+", default=None, help="training image folders or .tar archives")
    p.add_argument("--val", default=None, help="validation image folder")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--crop", type=int, default=None, help="training crop size in pixels")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--perceptual-weight", type=float, default=None, help="LPIPS loss weight (0 = off)")
    p.add_argument("--disc-start", type=int, default=None, help="step at which the GAN loss switches on")
    p.add_argument("--codebook-size", type=int, default=None, help="n_embed of a new model")
    p.add_argument("--ch", type=int, default=None, help="base channels of a new model")
    p.add_argument("--device", default=None)
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                   help="bf16: decoder and perceptual loss under bf16 autocast (2.1x faster steps on this CPU, 3.7x "
                   "with the config's channels_last; weights and optimizer stay fp32; encoder and quantizer in fp32)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (set once by the CLI)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop with a checkpoint after this wall time")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT/last.pt exists")
    p.set_defaults(func=cmd_train_codec)

    p = sub.add_parser(
        "export-codec", help="training checkpoint → shippable model file with K-means codebooks and coder priors"
    )
    p.add_argument("checkpoint", help="training checkpoint (runs/NAME/last.pt); with --base also a decoder-variant "
                   "file of train-robust-decoder made for that model at its full codebook size")
    p.add_argument("output", help="model file to write (e.g. codec/weights/default.pt)")
    p.add_argument(
        "--prior-images",
        nargs="+",
        default=["../shared/data/train256_part1.tar"],
        help="images whose index statistics become the arithmetic coder's prior",
    )
    p.add_argument("--max-prior-images", type=int, default=512)
    p.add_argument("--seed", type=int, default=0, help="K-means seed")
    p.add_argument("--base", default=None,
                   help="model file whose decoder side the checkpoint replaces (a decoder-only fine-tune: encoder, "
                   "codebooks, priors and reduced sizes' decoders are kept, so bitstreams stay valid)")
    p.set_defaults(func=cmd_export_codec)

    p = sub.add_parser(
        "finetune-codec", help="short decoder-side fine-tune of each K-means-reduced codebook (resumable per size)"
    )
    p.add_argument("model", help="model file in the project format (from export-codec)")
    p.add_argument("output", help="model file to write: the input plus the fine-tuned decoders")
    p.add_argument(
        "--data",
        nargs="+",
        default=["../shared/data/train256_part1.tar", "../shared/data/train256_part2.tar"],
        help="training image folders or .tar archives (centre-cropped to one square size)",
    )
    p.add_argument(
        "--sizes", type=int, nargs="+", default=None, help="reduced sizes to fine-tune (default: all shipped)"
    )
    # defaults None: the settings left out are FinetuneConfig's (the shipped recipe), kept in one place
    p.add_argument("--steps", type=int, default=None, help="steps per size (default 150)")
    p.add_argument("--batch-size", type=int, default=None, help="windows per step (default 8)")
    p.add_argument("--window", type=int, default=None,
                   help="latent window side per sample (pixels: window·f; default 8)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-3)")
    p.add_argument("--perceptual-weight", type=float, default=None, help="weight of the LPIPS term (default 1)")
    p.add_argument("--lpips-net", default=None,
                   help="perceptual loss: alex (default), vgg, or alex+vgg (the mean of both; the loss the shipped "
                        "K = 1024 decoder was trained with)")
    p.add_argument("--parts", nargs="+", default=None, metavar="MODULE",
                   help="decoder-side modules trained besides the decoder codebook (state_dict prefixes); 'none' "
                        "(default, the shipped recipe: on unseen photos never worse than the K-means-only decoder) "
                        "trains the decoder codebook only; the recipe before 2026-12-08 was post_quant_conv "
                        "decoder.conv_in decoder.mid.block_1 (better LPIPS at K <= 16, worse DISTS)")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--seed", type=int, default=None, help="seed of the window draws (default 0)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_finetune_codec)


def load_train_config(args):
    from codec.train.loop import TrainConfig

    data: dict = {}
    if args.config:
        from experiments.config import ConfigError
        from experiments.config.loading import read_yaml_file

        data = read_yaml_file(args.config, "--config") or {}  # JSON is YAML; bad files are one-line ConfigErrors
        if not isinstance(data, dict):
            raise ConfigError(f"--config: {args.config}: the top level must be a mapping, got {type(data).__name__}")
        from codec.types import from_dict_strict

        from_dict_strict(TrainConfig, data, f"{args.config}")  # unknown keys named before any work
    for key in (
        "out",
        "data",
        "val",
        "steps",
        "batch_size",
        "crop",
        "lr",
        "perceptual_weight",
        "disc_start",
        "device",
        "precision",
        "threads",
        "max_minutes",
    ):
        v = getattr(args, key)
        if v is not None:
            data[key] = v
    model = dict(data.get("model", {}))
    if args.codebook_size is not None:
        model["n_embed"] = args.codebook_size
    if args.ch is not None:
        model["ch"] = args.ch
    data["model"] = model
    return TrainConfig(**data)


def cmd_train_codec(args) -> int:
    from codec.runtime import configure_cpu
    from codec.train.loop import train_codec

    cfg = load_train_config(args)
    configure_cpu(cfg.threads)
    path = train_codec(cfg, resume=not args.no_resume)
    print(f"checkpoint: {path}")
    return 0


def cmd_export_codec(args) -> int:
    from codec.train.data import load_image_pool
    from codec.train.export import export_model, splice_decoder

    if args.base is not None:
        from codec.zoo import resolve_model_path

        out = splice_decoder(args.checkpoint, resolve_model_path(args.base)[1], args.output)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
        return 0
    pool = load_image_pool(args.prior_images, 64)[: args.max_prior_images]
    size = min(min(a.shape[:2]) for a in pool) // 16 * 16
    crops = [a[:size, :size] for a in pool]
    out = export_model(args.checkpoint, args.output, crops, seed=args.seed)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


def cmd_finetune_codec(args) -> int:
    from codec.runtime import configure_cpu
    from codec.train.finetune import FinetuneConfig, finetune_model

    configure_cpu(args.threads)  # threads are the CLI's to set, once (the library sets none)
    if not Path(args.model).exists():
        raise FileNotFoundError(f"model file not found: {args.model}")
    given = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "window": args.window,
        "lr": args.lr,
        "perceptual_weight": args.perceptual_weight,
        "lpips_net": args.lpips_net,
        "seed": args.seed,
        "parts": None if args.parts is None else [] if args.parts == ["none"] else list(args.parts),
    }
    cfg = FinetuneConfig(**{k: v for k, v in given.items() if v is not None})
    out = finetune_model(
        args.model, args.output, args.data, args.sizes, cfg, max_images=args.max_images, device=args.device
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0
