"""Paired comparison of the fine-tuned and plain ("w/o fine-tune") decoders per codebook size.

Both variants decode the same bitstream, so the per-image difference is paired; prints the mean
ΔLPIPS-Alex (fine-tuned − w/o), its 95 % t-interval over the images and how many images improved.
Usage: python docs/make_model_card_paired.py results/kodak_codec_a.csv results/kodak_codec_b.csv
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from scipy import stats


def paired_table(df: pd.DataFrame, metric: str = "lpips_alex") -> str:
    lines = [f"| codebook | images | Δ{metric} fine-tuned − w/o | 95 % interval | images better |", "|---|---|---|---|---|"]
    for S in sorted(df.codebook_size.unique(), reverse=True):
        d = df[df.codebook_size == S].pivot_table(index="image", columns="variant", values=metric)
        if not {"finetuned", "kmeans"} <= set(d.columns):
            continue
        diff = (d["finetuned"] - d["kmeans"]).dropna().to_numpy()
        half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
        lines.append(f"| {S} | {len(diff)} | {diff.mean():+.4f} | [{diff.mean() - half:+.4f}, {diff.mean() + half:+.4f}] | "
                     f"{int((diff < 0).sum())}/{len(diff)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(paired_table(pd.concat([pd.read_csv(p) for p in sys.argv[1:]], ignore_index=True)))
