"""Print the README model card tables (markdown) from the measurement files.

Inputs (made as docs/training.md says):
  results/kodak_codec.csv                      vqsim eval --images ../shared/data/kodak \
                                                 --codebook-size 1024 512 ... 8 --csv ...
  results/model_card_conceal/results.parquet   vqsim sweep experiments/configs/model_card_conceal.yaml

Usage: python docs/make_model_card_tables.py [codec_csv ...] [conceal_parquet ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def codec_table(*paths: Path) -> str:
    df = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    if "variant" not in df.columns:  # files from before fine-tuned sizes existed
        df["variant"] = "kmeans"
    g = df.groupby(["codebook_size", "variant"])
    m = g.mean(numeric_only=True)
    n = g.size()
    cols = [
        ("bpp_arith", "bpp arith", 4),
        ("bpp_arith_rep", "bpp arith_rep", 4),
        ("bpp_deflate", "bpp deflate", 4),
        ("bpp_raw", "bpp raw", 4),
        ("lpips_alex", "LPIPS alex", 3),
        ("lpips_vgg", "LPIPS vgg", 3),
        ("dists", "DISTS", 3),
        ("psnr", "PSNR dB", 2),
        ("lowpass_luma_psnr", "low-pass luma dB", 2),
        ("lowpass_chroma_psnr", "low-pass chroma dB", 2),
        ("ssim", "SSIM", 3),
        ("ms_ssim", "MS-SSIM", 3),
        ("codewords_used", "codewords used", 0),
    ]
    cols = [c for c in cols if c[0] in m.columns]
    lines = [
        "| codebook | variant | images | " + " | ".join(c[1] for c in cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    for S, v in sorted(m.index, key=lambda t: (-t[0], t[1])):
        row = m.loc[(S, v)]
        label = {"kmeans": "w/o fine-tune"}.get(v, v)
        # an anchor is a file of its own codec: its size goes in the first bpp column only, not under our coders
        skip = {"bpp_arith_rep", "bpp_deflate", "bpp_raw", "codewords_used"} if not S else set()
        lines.append(
            f"| {S if S else 'anchor'} | {label} | {n[(S, v)]} | "
            + " | ".join("—" if c in skip or pd.isna(row.get(c)) else f"{row[c]:.{d}f}" for c, _, d in cols)
            + " |"
        )
    return "\n".join(lines)


def conceal_table(*paths: Path) -> str:
    df = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    df = df.drop_duplicates(["unit_id", "method"])  # the same trial from two runs (sizes split over processes)
    df = df[df.method != "none"]
    methods = [
        m
        for m in ("ar", "ar_mean", "bidir", "bidir_mean", "bidir_soft", "latent_avg", "latent_avg_soft", "neighbor",
                  "mean")
        if m in set(df.method)
    ]
    out = []
    for S, d in df.groupby("codebook_size"):
        t = d.pivot_table(index="loss_rate_nominal", columns="method", values="lpips_alex_vs_lossfree", aggfunc="mean")
        o = d.pivot_table(index="loss_rate_nominal", columns="method", values="lpips_alex", aggfunc="mean")
        out.append(
            f"codebook {S} ({d.image.nunique()} images; LPIPS-alex vs the loss-free reconstruction, "
            f"in brackets vs the original; loss-free vs original {d.lossfree_lpips_alex.mean():.3f})\n"
        )
        out.append("| lost | " + " | ".join(methods) + " |")
        out.append("|---|" + "---|" * len(methods))
        for r in t.index:
            best = t.loc[r, methods].min()
            cells = [
                (f"**{t.loc[r, m]:.3f}**" if t.loc[r, m] == best else f"{t.loc[r, m]:.3f}") + f" ({o.loc[r, m]:.3f})"
                for m in methods
            ]
            out.append(f"| {r:.0%} | " + " | ".join(cells) + " |")
        out.append("")
    out.append(paired_markdown(df))
    return "\n".join(out)


def paired_markdown(df: pd.DataFrame) -> str:
    """Paired ΔLPIPS-alex (vs loss-free) of every method to the best baseline, 95 % t-interval over images × seeds."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from experiments.paired import paired_differences

    t = paired_differences(df, "lpips_alex_vs_lossfree", by=("codebook_size", "loss_rate_nominal"))
    lines = [
        "| codebook | lost | method | − best baseline | mean Δ | 95 % interval | n |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in t.iterrows():
        sig = "**" if r["better"] else ""
        lines.append(
            f"| {r['codebook_size']} | {r['loss_rate_nominal']:.0%} | {r['method']} | {r['reference']} | "
            f"{sig}{r['diff']:+.4f}{sig} | [{r['lo']:+.4f}, {r['hi']:+.4f}] | {r['n']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]]
    csvs = [a for a in args if a.suffix == ".csv"] or ([] if args else [Path("results/kodak_codec.csv")])
    parquets = [a for a in args if a.suffix == ".parquet"] or (
        [] if args else [Path("results/model_card_conceal/results.parquet")]
    )
    csvs, parquets = [a for a in csvs if a.exists()], [a for a in parquets if a.exists()]
    if csvs:
        print(codec_table(*csvs), "\n")
    if parquets:
        print(conceal_table(*parquets))
