"""Rate–quality evaluation of the codec and the classical anchors, and Bjøntegaard deltas between RD curves.

``evaluate`` (the library behind ``vqsim eval``) measures one row per
(image, codebook size, variant) and per (image, anchor operating point);
``rd_curves`` averages the rows of one image set into RD curves;
``bd_table`` / ``format_bd_table`` give the paper's Table-1 layout: one row
per anchor, one column per (image set, metric), each cell the BD-rate of the
VQ codec against that anchor (``bjontegaard`` package, PCHIP interpolation as
the standards' spreadsheet; negative = the VQ codec needs fewer bits for the
same quality).  Quality metrics where lower is better (LPIPS, DISTS) are
passed negated.  A pair of curves whose quality ranges do not overlap has
no BD value: the cell is NaN and a note says why.

Every curve is the Pareto front of its mean points
(sorted by rate, each point better than every cheaper one), so an anchor's
mixed downscale/quality grid becomes the best operating point per rate, and
PCHIP sees a strictly monotone curve.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codec.entropy.tf_ar import NoContextModelError
from codec.errors import ParameterError

__all__ = [
    "evaluate", "count_rows", "rd_curves", "pareto_front", "bd_pair", "bd_table", "format_bd_table",
    "PAPER_KODAK", "SET_COLUMN",
]

#: the column naming the image set of a row (the image's parent folder name)
SET_COLUMN = "set"

#: The paper's own Kodak curve (Li et al., CUC-MIPG/VQGAN-Compression ``assets/R-D.png``), values read off its
#: published plot by eye (≈ ±0.005), not measured here: bpp, LPIPS and DISTS.
PAPER_KODAK = {
    "bpp": (0.012, 0.016, 0.020, 0.024, 0.028, 0.035, 0.043),
    "lpips_alex": (0.30, 0.27, 0.24, 0.21, 0.20, 0.18, 0.17),
    "dists": (0.17, 0.15, 0.13, 0.13, 0.11, 0.11, 0.10),
}
PAPER_LABEL = "paper's curve (read off its published plot)"

#: display names of the anchors in the table (HEIC is HEVC intra: BPG's codec)
ANCHOR_LABELS = {"jpeg": "JPEG", "webp": "WebP", "avif": "AVIF (AV1 intra)", "heic": "HEIC (HEVC intra, BPG stand-in)",
                 "jxl": "JPEG XL"}

#: metrics where lower is better (negated for BD)
LOWER_IS_BETTER = ("lpips_alex", "lpips_vgg", "dists")


# --------------------------------------------------------------------------------------------- measuring
def _codecs(model, sizes, device, config, variants, autocast):
    from codec.errors import ModelNotFoundError
    from codec.zoo import load_codec

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
    return base, codecs


def count_rows(n_images: int, n_codecs: int, anchors=()) -> int:
    """Rows ``evaluate`` produces: per image one per codec and one per anchor operating point."""
    from codec.anchors import SWEEPS

    return n_images * (n_codecs + sum(len(SWEEPS[a]) if a in SWEEPS else 1 for a in anchors))


def evaluate(images, model: str = "default", sizes=None, nets=("alex", "vgg"), device=None, config=None,
             progress=None, variants: str = "both", anchors=(), autocast: str | None = None, dists: bool = False,
             coders=None, bar: bool = False, decoder: str = "plain"):
    """Rows (dicts) of bpp per coder, LPIPS, PSNR, SSIM and timings, one per (image, codebook size, variant).

    The encoder runs once per image (timed); each codebook size then only
    re-quantizes (timed and added to its encode time) and decodes.
    ``variants`` (reduced sizes only): "kmeans" (w/o fine-tune), "finetuned"
    (sizes without a shipped fine-tune are skipped), "both", or "auto"
    (what ``load_codec`` picks). The variant is in each row's ``variant``.
    ``anchors`` (names from ``codec.anchors.ANCHORS``) add per image one row
    per single-point anchor and one per operating point of a rate sweep
    (``codec.anchors.SWEEPS``): ``codebook_size`` 0, ``anchor`` the name,
    ``setting`` the operating point (``"x3 q20"``), ``variant``
    ``"{anchor} {setting}"`` (or the name alone), the file's real byte count
    in every ``bpp_*`` column.
    ``dists``: add a ``dists`` column (``codec.metrics.dists`` of the same pair).
    ``coders``: the coders whose sizes are measured (default every symbol
    coder of ``codec.entropy.CODERS``; add ``"tf_ar"`` for the transformer
    coder, which costs ≈ 1 s per image and size where a model is shipped).
    ``bar``: show a tqdm progress bar (rows done, rate, ETA) on stderr.
    ``decoder``: decoder variant of every size (``codec.conceal.decoder_variant``: plain, robust or a decoder
    file); the encoder, indices and bits are the codec's, only the reconstruction changes (row ``variant``
    ``…+decoder:NAME``).
    Every row also has ``set`` (the image's folder name), ``anchor`` ("" for
    the codec) and ``setting`` (``"K=…"`` for the codec).
    """
    import torch

    from codec.entropy import CODERS
    from codec.image import load_image, to_tensor

    _check_variants_and_anchors(variants, anchors)
    coders = tuple(CODERS if coders is None else coders)
    base, codecs = _codecs(model, sizes, device, config, variants, autocast)
    if decoder not in (None, "plain"):
        from codec.conceal.decoder_variant import with_decoder_variant

        codecs = [with_decoder_variant(c, decoder) for c in codecs]
    total = count_rows(len(images), len(codecs), anchors)
    pbar = None
    if bar:
        from tqdm import tqdm

        pbar = tqdm(total=total, unit="row", desc="vqsim eval", dynamic_ncols=True, leave=True)
    rows: list[dict] = []

    def emit(row: dict) -> None:
        rows.append(row)
        if pbar is not None:
            pbar.update(1)
            pbar.set_postfix_str(f"{row['image']} {row['variant']}", refresh=False)
        if progress:
            progress(row)

    try:
        for path in images:
            img = load_image(path)
            x = to_tensor(img, device=base.device)
            H, W = img.shape[:2]
            common = {"set": Path(path).parent.name, "image": Path(path).name, "width": W, "height": H}
            refs = _references(x, nets, base.device, dists)  # the original's side of every metric, once per image
            with torch.no_grad():
                for row in _codec_rows(base, codecs, x, (H, W), nets, coders, refs):
                    emit({**common, **row})
            for a in anchors:
                for row in _anchor_rows(a, img, x, nets, coders, base.device, refs):
                    emit({**common, **row})
            del refs
    finally:
        if pbar is not None:
            pbar.close()
    return rows


def _check_variants_and_anchors(variants: str, anchors) -> None:
    """``evaluate``'s checks of ``variants`` and ``anchors``, before anything runs."""
    from codec.anchors import ANCHORS, SWEEPS, check_format

    if variants not in ("both", "auto", "finetuned", "kmeans"):
        raise ParameterError(f"variants must be both, auto, finetuned or kmeans, got {variants!r}")
    for a in anchors:
        if a not in ANCHORS:
            raise ParameterError(f"unknown anchor {a!r}; allowed: {', '.join(ANCHORS)}")
        if a in SWEEPS:
            check_format(a)  # a missing plug-in is reported before anything runs


@dataclass(frozen=True)
class _References:
    """One original's side of the metrics, built once per image and shared by all its rows (codec and anchors).

    ``ssim``: ``prepare_reference(x)``; ``lpips``: {net: ``lpips_features(x, net)``}; ``dists``:
    ``dists_reference(x)`` or None (no DISTS column). Each row then runs the networks on its
    reconstruction only; the numbers are the same as comparing the pair from scratch.
    """

    ssim: Any
    lpips: dict
    dists: Any | None


def _references(x, nets, device, dists: bool) -> _References:
    """The references of the original x ((1, 3, H, W) on ``device``, as ``to_tensor`` gives it)."""
    from codec.metrics import dists_reference, lpips_features, prepare_reference

    return _References(prepare_reference(x), {n: lpips_features(x, n, device) for n in nets},
                       dists_reference(x, device=device) if dists else None)


def _anchor_rows(a: str, img, x, nets, coders, device, refs: _References):
    """The rows (without the image's common columns) of anchor ``a``: one per operating point, timed."""
    from codec.anchors import SWEEPS, run_sweep

    H, W = img.shape[:2]
    points = run_sweep(a, img) if a in SWEEPS else [("", *_timed_single(a, img))]
    t0 = time.perf_counter()
    for setting, rec_a, nbytes in points:
        t_a = time.perf_counter() - t0
        m = _metrics(img, x, rec_a, nets, device, refs)
        yield {"codebook_size": 0, "variant": f"{a} {setting}" if setting else a,
               "anchor": a, "setting": setting,
               **{f"bpp_{c}": 8.0 * nbytes / (H * W) for c in coders},
               **{f"bytes_{c}": nbytes for c in coders},
               **m, "codewords_used": 0, "encode_ms": 1000 * t_a, "decode_ms": 0.0}
        t0 = time.perf_counter()


def _timed_single(name, img):
    from codec.anchors import run_anchor

    return run_anchor(name, img)


def _metrics(img, x, rec, nets, device, refs: _References) -> dict:
    """The metrics of an anchor's uint8 reconstruction ``rec`` against the original (``img``, tensor ``x``)."""
    from codec.image import to_tensor
    from codec.metrics import image_metrics

    m = image_metrics(img, rec, nets=nets, device=device, ref=refs.ssim, lpips_refs=refs.lpips)
    if refs.dists is not None:
        from codec.metrics import dists as dists_distance

        m["dists"] = dists_distance(x, to_tensor(rec, device=device), device=device, ref=refs.dists)[0]
    return {k: float(v) for k, v in m.items()}


def _codec_rows(base, codecs, x, size, nets, coders, refs: _References):
    import torch

    from codec.bitstream import bits_per_pixel
    from codec.metrics import image_metrics
    from codec.types import IndexMap

    H, W = size
    sync = torch.cuda.synchronize if base.device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    h = base.encode_latents(x)
    sync()
    t_enc = time.perf_counter() - t0
    for codec in codecs:
        t0 = time.perf_counter()
        idx = codec.model.quantize.indices(h)
        sync()
        t_q = time.perf_counter() - t0
        imap = IndexMap(idx[0].cpu().numpy(), codec.codebook_size, (H, W), codec.codebook_id)
        sizes_b: dict[str, int | None] = {}
        for c in coders:
            try:
                sizes_b[c] = len(codec.compress_indices(imap, c))
            except NoContextModelError:  # no transformer for this codebook size
                sizes_b[c] = None  # no transformer shipped for this size
        t0 = time.perf_counter()
        rec = codec.decode_indices_tensor(imap)
        sync()
        t_dec = time.perf_counter() - t0
        m = image_metrics(x, rec, nets=nets, device=base.device, ref=refs.ssim, lpips_refs=refs.lpips)
        if refs.dists is not None:
            from codec.metrics import dists as dists_distance

            m["dists"] = dists_distance(x, rec, device=base.device, ref=refs.dists)[0]
        yield {
            "codebook_size": codec.codebook_size, "variant": getattr(codec, "variant", "custom"),
            "anchor": "", "setting": f"K={codec.codebook_size}",
            **{f"bpp_{c}": (float("nan") if n is None else bits_per_pixel(n, (H, W))) for c, n in sizes_b.items()},
            **{f"bytes_{c}": (-1 if n is None else n) for c, n in sizes_b.items()},
            **{k: float(v) for k, v in m.items()},
            "codewords_used": int(np.unique(imap.indices).size),
            "encode_ms": 1000 * (t_enc + t_q), "decode_ms": 1000 * t_dec,
        }




# --------------------------------------------------------------------------------------------- RD curves
@dataclass(frozen=True)
class Curve:
    """Mean RD points of one codec on one image set, sorted by rate: ``bpp`` and one array per metric."""

    name: str
    bpp: np.ndarray
    metrics: dict
    images: int
    settings: tuple = ()


def pareto_front(bpp, quality, lower_is_better: bool = True) -> np.ndarray:
    """Indices of the points on the RD front, by increasing rate: each strictly better than every cheaper one."""
    bpp, q = np.asarray(bpp, float), np.asarray(quality, float)
    good = -q if lower_is_better else q
    keep, best = [], -math.inf
    for i in np.lexsort((-good, bpp)):  # by rate, best quality first among equal rates
        if np.isfinite(good[i]) and np.isfinite(bpp[i]) and good[i] > best:
            keep.append(int(i))
            best = good[i]
    return np.asarray(keep, dtype=np.int64)


def rd_curves(df, coder: str = "arith_rep", metrics=("lpips_alex", "dists")) -> dict:
    """RD curves of one image set's rows (``evaluate``'s, as a DataFrame): {name: Curve}.

    ``"vqsim"`` (and ``"vqsim_kmeans"`` when measured): the codec across
    codebook sizes — at the trained size its own decoder, below it the
    fine-tuned decoder where the rows have one, else the K-means one — rate
    ``bpp_{coder}`` (the whole bitstream).  Each anchor: its operating points.
    Means over the images every point of a curve has (a point missing an
    image is dropped).
    """
    import pandas as pd

    metrics = [m for m in metrics if m in df.columns]
    out = {}
    vq = df[df["codebook_size"] > 0]
    if len(vq):
        pick = []
        for _, g in vq.groupby("codebook_size"):
            vs = set(g["variant"])
            v = next((v for v in ("trained", "finetuned", "kmeans", "custom") if v in vs), sorted(vs)[0])
            pick.append(g[g["variant"] == v])
        sel = _complete(pd.concat(pick), "codebook_size")
        col = f"bpp_{coder}"
        if col not in sel.columns:
            raise ParameterError(f"the rows have no {col} column (coders measured: "
                                 f"{', '.join(c[4:] for c in df.columns if c.startswith('bpp_'))})")
        m = sel.groupby("codebook_size")[[col, *metrics]].mean().sort_values(col)
        out["vqsim"] = Curve("vqsim", m[col].to_numpy(), {k: m[k].to_numpy() for k in metrics},
                             int(sel["image"].nunique()), tuple(f"K={k}" for k in m.index))
    if "setting" not in df.columns:
        return out
    an = df[(df["codebook_size"] == 0) & (df["setting"].fillna("") != "")]
    for a, g in an.groupby("anchor"):
        g = _complete(g, "setting")
        col = f"bpp_{coder}" if f"bpp_{coder}" in g.columns else next(c for c in g.columns if c.startswith("bpp_"))
        m = g.groupby("setting")[[col, *metrics]].mean()
        m.columns = ["bpp", *metrics]
        m = m.sort_values("bpp")
        out[a] = Curve(a, m["bpp"].to_numpy(), {k: m[k].to_numpy() for k in metrics}, int(g["image"].nunique()),
                       tuple(m.index))
    return out


def _complete(g, key: str):
    """The rows of the images that have every ``key`` value of ``g`` (an interrupted run's last image is dropped)."""
    n = g[key].nunique()
    have = g.groupby("image")[key].nunique()
    return g[g["image"].isin(have[have == n].index)]


def paper_curve() -> Curve:
    """The paper's Kodak curve (``PAPER_KODAK``)."""
    return Curve(PAPER_LABEL, np.asarray(PAPER_KODAK["bpp"]),
                 {k: np.asarray(v) for k, v in PAPER_KODAK.items() if k != "bpp"}, 24)


# --------------------------------------------------------------------------------------------- BD
def bd_pair(anchor: Curve, test: Curve, metric: str) -> tuple[float, float, str]:
    """(BD-rate in %, BD-metric, note) of ``test`` against ``anchor`` under ``metric``.

    BD-rate: mean log-rate difference over the overlapping quality range
    (negative: ``test`` needs fewer bits); BD-metric: mean metric difference
    over the overlapping log-rate range (for LPIPS/DISTS negative = ``test``
    better).  PCHIP on each curve's Pareto front.  NaN and a note where the
    curves have < 2 front points or do not overlap.
    """
    import bjontegaard as bd

    if metric not in anchor.metrics or metric not in test.metrics:
        return math.nan, math.nan, f"{metric} not measured"
    low = metric in LOWER_IS_BETTER
    fa = pareto_front(anchor.bpp, anchor.metrics[metric], low)
    ft = pareto_front(test.bpp, test.metrics[metric], low)
    if len(fa) < 2 or len(ft) < 2:
        return math.nan, math.nan, (f"fewer than 2 RD points on a curve "
                                    f"({anchor.name}: {len(fa)}, {test.name}: {len(ft)})")
    sign = -1.0 if low else 1.0
    ra, qa = anchor.bpp[fa], sign * anchor.metrics[metric][fa]
    rt, qt = test.bpp[ft], sign * test.metrics[metric][ft]
    notes = []
    q_overlap = min(qa.max(), qt.max()) - max(qa.min(), qt.min())
    r_overlap = min(np.log10(ra).max(), np.log10(rt).max()) - max(np.log10(ra).min(), np.log10(rt).min())
    q_union = max(qa.max(), qt.max()) - min(qa.min(), qt.min())
    if 0 < q_overlap < 0.75 * q_union:  # the bjontegaard package's own warning threshold
        notes.append(f"BD-rate integrates over {100 * q_overlap / q_union:.0f} % of the joint {metric} range "
                     f"({_rng(sign * np.array([max(qa.min(), qt.min()), min(qa.max(), qt.max())]))})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if q_overlap > 0:
            rate = float(bd.bd_rate(ra, qa, rt, qt, method="pchip", require_matching_points=False, min_overlap=0))
        else:
            rate = math.nan
            notes.append(f"{metric} ranges do not overlap ({test.name} {_rng(sign * qt)}, "
                         f"{anchor.name} {_rng(sign * qa)})")
        if r_overlap > 0:
            dq = sign * float(bd.bd_psnr(ra, qa, rt, qt, method="pchip", require_matching_points=False, min_overlap=0))
        else:
            dq = math.nan
            notes.append(f"rate ranges do not overlap ({test.name} {_rng(rt)} bpp, {anchor.name} {_rng(ra)} bpp)")
    return rate, dq, "; ".join(notes)


def _rng(v) -> str:
    v = np.asarray(v)
    return f"[{v.min():.3f}, {v.max():.3f}]"


def bd_table(curves_by_set: dict, metrics=("lpips_alex", "dists"), test: str = "vqsim",
             anchors=("jpeg", "webp", "avif", "heic", "jxl"), paper_set: str | None = "kodak") -> list[dict]:
    """Rows of the Table-1 layout: one per anchor (and the paper's curve on ``paper_set``).

    ``curves_by_set``: {set name: rd_curves(...)}.  Each row: ``anchor`` and per
    (set, metric) ``{set}:bd_rate:{metric}``, ``{set}:bd_q:{metric}``, with
    ``notes`` (list of str).
    """
    rows = []
    names = list(anchors) + ([PAPER_LABEL] if paper_set else [])
    for a in names:
        row = {"anchor": a, "label": ANCHOR_LABELS.get(a, a), "notes": []}
        for s, curves in curves_by_set.items():
            for m in metrics:
                key = f"{s}:{m}"
                if a == PAPER_LABEL:
                    ref = paper_curve() if s.lower() == (paper_set or "").lower() else None
                    if ref is None:
                        row[f"{key}:rate"] = row[f"{key}:q"] = math.nan
                        continue
                else:
                    ref = curves.get(a)
                if ref is None or test not in curves:
                    row[f"{key}:rate"] = row[f"{key}:q"] = math.nan
                    row["notes"].append(f"{s}: {a if ref is None else test} not measured")
                    continue
                r, q, note = bd_pair(ref, curves[test], m)
                row[f"{key}:rate"], row[f"{key}:q"] = r, q
                if note:
                    row["notes"].append(f"{s}: {note}")
        rows.append(row)
    return rows


def format_bd_table(rows: list[dict], sets, metrics=("lpips_alex", "dists"), images: dict | None = None) -> str:
    """Markdown: BD-rate (%) and BD-metric of vqsim against each anchor, columns per (set, metric)."""
    short = {"lpips_alex": "LPIPS", "lpips_vgg": "LPIPS-VGG", "dists": "DISTS", "psnr": "PSNR", "ms_ssim": "MS-SSIM"}
    def head(s):
        n = f" ({images[s]} img)" if images and s in images else ""
        return [f"{s}{n} BD-rate {short.get(m, m)}" for m in metrics]
    cols = [c for s in sets for c in head(s)]
    qcols = [f"{s} BD-{short.get(m, m)}" for s in sets for m in metrics]
    lines = ["| anchor | " + " | ".join(cols) + " | " + " | ".join(qcols) + " |",
             "|---|" + "---:|" * (len(cols) + len(qcols))]
    notes = []
    for r in rows:
        cells = []
        for s in sets:
            for m in metrics:
                v = r.get(f"{s}:{m}:rate", math.nan)
                cells.append("n/a" if not np.isfinite(v) else f"{v:+.1f} %")
        for s in sets:
            for m in metrics:
                v = r.get(f"{s}:{m}:q", math.nan)
                cells.append("n/a" if not np.isfinite(v) else f"{v:+.4f}")
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
        notes += [f"- {r['label']}: {n}" for n in dict.fromkeys(r["notes"])]
    text = "\n".join(lines)
    text += ("\n\nBD-rate: vqsim's bits against the anchor's at equal quality (negative = vqsim needs fewer bits); "
             "BD-<metric>: vqsim's mean metric minus the anchor's at equal rate (LPIPS, DISTS: negative = vqsim "
             "better; PSNR, MS-SSIM: positive = vqsim better). "
             "bjontegaard package, PCHIP, Pareto front of each curve's mean points.")
    if notes:
        text += "\nnotes:\n" + "\n".join(notes)
    return text
