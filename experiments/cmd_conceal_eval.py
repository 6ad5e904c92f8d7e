"""``vqsim conceal-eval``: paired ΔLPIPS of concealment methods on a folder of images at exact random index loss.

For each image, codebook size K and loss fraction p, one loss mask (exactly
round(p·h·w) lost indices, ``numpy`` Generator seeded by (seed, image number,
p)) is shared by every method, so the comparison is paired.  Each method's
reconstruction (8-bit pixels, what a receiver shows) is scored by LPIPS
against the loss-free reconstruction; the time of concealment + decoding of
one image on the configured threads is recorded.  Rows go to ``OUT/rows.csv``
as they finish (a rerun with the same OUT skips finished rows: resumable);
``OUT/summary.csv`` holds per (K, p) and method the mean and the paired
difference to the reference with its 95 % interval (image as the unit,
:func:`experiments.paired.paired_differences`, Holm over the table).

Method labels: a registry name (``codec.conceal.METHODS``), optionally with
options as ``name:opt=value,...`` (``latent_avg_soft:renorm=true``), or
``name@decoder`` with a decoder-side weights file (``@FILE``) for the robust
decoder.  The reserved option ``model=FILE`` replaces the shipped concealment
transformer of a model method by a ``train-transformer`` file
(``bidir_soft:steps=1,model=runs/tf/bidir1024.pt``), so concealers can be
compared paired on the same loss masks; the file must be of the method's
kind (``ar``/``bidir``) and vocabulary (K or K + 1 tokens).

Columns per row: LPIPS of the reconstruction against the plain decoder's loss-free reconstruction
(``*_vs_lossfree``), against the original (``*_vs_original``) and against its own decoder's loss-free
reconstruction (``*_vs_decoder_lossfree``), and that decoder's loss-free LPIPS against the original
(``*_lossfree_decoder``), for each metric of ``--net`` (LPIPS-Alex, LPIPS-VGG, DISTS: score a model on metrics
its training loss does not contain).  A decoder variant renders even a loss-free map differently, so ``vs_lossfree``
charges it for that; ``--summary-metric vs_original`` compares what a viewer sees.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from codec.errors import ParameterError

#: --net choices → column prefix
METRIC_NETS = ("alex", "vgg", "dists")

DEFAULT_METHODS = ("latent_avg", "latent_avg_soft", "latent_avg_soft:renorm=true", "bidir_mean", "bidir_soft",
                   "bidir_soft_l2")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("conceal-eval", help="paired LPIPS of concealment methods vs the loss-free reconstruction")
    p.add_argument("--images", nargs="+", required=True, help="images: folders, files or globs")
    p.add_argument("--out", required=True, help="output folder (rows.csv, summary.csv); rerun to resume")
    p.add_argument("--codebook-size", type=int, nargs="+", default=[1024], help="codebook sizes (default 1024)")
    p.add_argument("--loss", type=float, nargs="+", default=[0.2, 0.4], help="loss fractions (default 0.2 0.4)")
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                   help="method labels: NAME[:opt=v,...][@DECODER_FILE]; the option model=FILE uses that concealment "
                   "transformer (train-transformer's file) instead of the shipped one (default: %(default)s)")
    p.add_argument("--reference", default="latent_avg", help="paired reference method label (default latent_avg)")
    p.add_argument("--model", default="default", help="codec model name or checkpoint (default: default)")
    p.add_argument("--seed", type=int, default=0, help="seed of the loss masks (default 0)")
    p.add_argument("--summary-metric", default="vs_lossfree", choices=("vs_lossfree", "vs_original",
                   "vs_decoder_lossfree"),
                   help="what the summary compares: LPIPS against the plain decoder's loss-free reconstruction "
                   "(default), against the original, or against each decoder's own loss-free reconstruction "
                   "(every column is in rows.csv)")
    p.add_argument("--net", nargs="+", default=["alex"], choices=METRIC_NETS,
                   help="metrics to score: LPIPS nets alex / vgg, and dists (columns lpips_alex_*, lpips_vgg_*, "
                   "dists_*); the summary uses the first (default alex)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.set_defaults(func=cmd_conceal_eval)


def parse_label(label: str) -> tuple[str, dict, str | None]:
    """``name[:k=v,...][@decoder]`` → (method, options, decoder file or None)."""
    from codec.conceal import CONCEAL_OPTIONS

    dec = None
    if "@" in label:
        label, dec = label.split("@", 1)
    name, _, rest = label.partition(":")
    if name not in CONCEAL_OPTIONS:
        raise ParameterError(f"unknown concealment method {name!r} in {label!r}")
    opts: dict = {}
    for kv in filter(None, rest.split(",")):
        k, eq, v = kv.partition("=")
        if not eq:
            raise ParameterError(f"option {kv!r} in {label!r} must be key=value")
        try:
            opts[k] = json.loads(v.lower() if v.lower() in ("true", "false") else v)
        except json.JSONDecodeError:
            opts[k] = v
    return name, opts, dec


def metric_column(net: str) -> str:
    """Column prefix of a ``--net`` choice: ``lpips_alex``, ``lpips_vgg``, ``dists``."""
    return "dists" if net == "dists" else f"lpips_{net}"


def load_label_concealer(path: str, method: str, kind: str, K: int, device: str = "cpu"):
    """The concealment transformer file named by a label's ``model=`` option, checked against the method's kind
    and the codebook size; :class:`~codec.errors.ParameterError` naming the label's problem otherwise."""
    from codec.conceal import load_transformer

    if kind is None:
        raise ParameterError(f"method {method!r} uses no concealment transformer; drop model={path}")
    if not Path(path).is_file():
        raise ParameterError(f"model={path} (method {method!r}): no such file")
    m = load_transformer(path, device=device)
    if m.config.causal != (kind == "ar"):
        have = "ar" if m.config.causal else "bidir"
        raise ParameterError(f"model={path} is a {have!r} transformer; method {method!r} needs {kind!r}")
    if m.config.vocab_size not in (K, K + 1):
        raise ParameterError(f"model={path} has {m.config.vocab_size} tokens; codebook size {K} needs {K} or {K + 1}")
    return m


def cmd_conceal_eval(args) -> int:
    import numpy as np
    import pandas as pd
    import torch

    from codec.conceal import MODEL_KIND, conceal, random_loss_mask
    from codec.conceal.decoder_variant import with_decoder_variant
    from codec.conceal.soft import decode_concealment, decoder_table
    from codec.image import list_images, load_image, to_tensor
    from codec.metrics import dists, dists_reference, lpips_features, lpips_from_features
    from codec.runtime import configure_cpu
    from codec.zoo import load_codec, load_concealer

    configure_cpu(args.threads)
    nets = list(dict.fromkeys(args.net))

    def reference(m: str, img):
        """The reference side of metric m for img, computed once and compared with many reconstructions."""
        return dists_reference(img, device=args.device) if m == "dists" else lpips_features(img, m, args.device)

    def distances(m: str, refs: list, x) -> list[float]:
        """Metric m between x and each prepared reference (x's own side computed once for LPIPS)."""
        if m == "dists":
            return [float(dists(None, x, device=args.device, ref=r)[0]) for r in refs]
        fx = lpips_features(x, m, args.device)
        return [float(lpips_from_features(r, fx, net=m)[0]) for r in refs]

    specs = {lab: parse_label(lab) for lab in args.methods}
    if args.reference not in specs:
        raise ParameterError(f"--reference {args.reference!r} is not among --methods")
    for p in args.loss:
        if not 0.0 < p < 1.0:
            raise ParameterError(f"--loss values must be in (0, 1), got {p}")
    paths = list_images(args.images)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "rows.csv"
    done: set[tuple] = set()
    if rows_path.exists():
        old = pd.read_csv(rows_path)
        have = [m for m in METRIC_NETS if f"{metric_column(m)}_vs_lossfree" in old.columns]
        if set(have) != set(nets):   # appended rows must have the file's columns
            raise ParameterError(f"{rows_path} was scored with --net {' '.join(have)}, not {' '.join(nets)}; resume "
                                 "with the same nets or use another --out")
        done = set(zip(old["image"], old["codebook_size"], old["loss_rate_nominal"].round(6), old["method"],
                       strict=True))
    for K in args.codebook_size:
        codec = load_codec(args.model, K, device=args.device)
        codecs = {None: codec}
        for _, _, dec in specs.values():
            if dec is not None and dec not in codecs:
                codecs[dec] = with_decoder_variant(codec, dec)
        cb = codec.codebook
        tables = {d: decoder_table(c) for d, c in codecs.items()}
        models = {kind: load_concealer(codec.name, K, kind, device=args.device)
                  for kind in {MODEL_KIND[n] for n, o, _ in specs.values() if n in MODEL_KIND and "model" not in o}}
        for n, o, _ in specs.values():   # model=FILE: that file instead of the shipped transformer
            if "model" in o and o["model"] not in models:
                models[o["model"]] = load_label_concealer(str(o["model"]), n, MODEL_KIND.get(n), K, args.device)
        for i, path in enumerate(paths):
            todo = [(p, lab) for p in args.loss for lab in specs
                    if (path.name, K, round(p, 6), lab) not in done]
            if not todo:
                continue
            img = load_image(path)
            imap = codec.encode_indices(img)
            orig = to_tensor(img)
            lf = {}
            for d, c in codecs.items():
                x = c.decode_indices_tensor(imap)
                lf[d] = torch.floor(x.clamp(0, 1) * 255.0 + 0.5) / 255.0
            ref_orig = {m: reference(m, orig) for m in nets}                  # once per image and metric
            ref_lf = {(m, d): reference(m, x) for m in nets for d, x in lf.items()}
            lf_score = {(m, d): distances(m, [ref_orig[m]], x)[0] for m in nets for d, x in lf.items()}
            new = []
            for p in args.loss:
                lost = random_loss_mask(imap.shape, p, np.random.default_rng([args.seed, i, int(round(p * 1e6))]))
                received = imap.with_indices(np.where(lost, 0, imap.indices))
                for lab in [lab for q, lab in todo if q == p]:
                    name, opts, dec = specs[lab]
                    c = codecs[dec]
                    opts = dict(opts)
                    model = models.get(opts.pop("model", MODEL_KIND.get(name)))
                    if model is not None:
                        opts = {"window": int(getattr(model, "meta", {}).get("window", 16)), **opts}
                    t0 = time.perf_counter()
                    res = conceal(received, lost, name, model=model, codebook=cb,
                                  decoder_codebook=tables[dec], rng=torch.Generator().manual_seed(args.seed), **opts)
                    t1 = time.perf_counter()
                    x = decode_concealment(c, res)
                    x = torch.floor(x.clamp(0, 1) * 255.0 + 0.5) / 255.0
                    t2 = time.perf_counter()
                    row = {
                        "image": path.name, "codebook_size": K, "loss_rate_nominal": round(p, 6), "method": lab,
                        "decoder": dec or "plain", "seed": args.seed, "unit_id": f"{path.name}/{K}/{p:g}",
                        "n_lost": int(lost.sum()),
                        "exact": float((res.indices[lost] == imap.indices[lost]).mean())}
                    for m in nets:
                        col = metric_column(m)
                        refs = [ref_lf[m, None], ref_orig[m]] + ([ref_lf[m, dec]] if dec is not None else [])
                        vs_lf, vs_orig, *vs_dec = distances(m, refs, x)
                        row |= {f"{col}_vs_lossfree": vs_lf, f"{col}_vs_original": vs_orig,
                                f"{col}_lossfree_decoder": lf_score[m, dec],
                                f"{col}_vs_decoder_lossfree": vs_dec[0] if vs_dec else vs_lf}
                    new.append(row | {"time_conceal_s": t1 - t0, "time_decode_s": t2 - t1, "time_s": t2 - t0})
            pd.DataFrame(new).to_csv(rows_path, mode="a", header=not rows_path.exists(), index=False)
            print(json.dumps({"image": path.name, "K": K, "rows": len(new)}), flush=True)
    rows = pd.read_csv(rows_path)
    metric = f"{metric_column(nets[0])}_{args.summary_metric}"
    if metric not in rows.columns:
        raise ParameterError(f"{rows_path} has no column {metric!r} (rows of an older vqsim; use another --out)")
    summ = summarize(rows, metric, args.reference)
    summ.to_csv(out / "summary.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summ.round(4).to_string(index=False))
    return 0


def summarize(df, metric: str = "lpips_alex_vs_lossfree", reference: str = "latent_avg"):
    """Per (K, loss, method): mean, median time per image, exact-index share, images, and the paired
    difference to ``reference`` with its 95 % interval over images and Holm-adjusted p (``paired_differences``)."""
    from .paired import paired_differences

    keys = ["codebook_size", "loss_rate_nominal", "method"]
    t = paired_differences(df, metric, reference=reference, by=("codebook_size", "loss_rate_nominal"))
    agg = df.groupby(keys).agg(mean=(metric, "mean"), time_s=("time_s", "median"),
                               conceal_s=("time_conceal_s", "median"), exact=("exact", "mean"),
                               n=("image", "count")).reset_index()
    return agg.merge(t[[*keys, "diff", "lo", "hi", "p_adj"]], on=keys, how="left")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.cmd_conceal_eval")
    sub = ap.add_subparsers(dest="cmd", required=True)
    register(sub)
    args = ap.parse_args(["conceal-eval", *(argv if argv is not None else __import__("sys").argv[1:])])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
