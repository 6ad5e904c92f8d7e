"""Paired comparison of the fine-tuned and plain ("w/o fine-tune") decoders per codebook size.

Both variants decode the same bitstream, so the per-image difference is paired; prints the mean
Δ (fine-tuned − w/o), its 95 % t-interval over the images and how many images improved, for LPIPS-Alex (the
fine-tune's loss) and, where the files have them, LPIPS-VGG and DISTS (metrics it was not trained on).
Usage: python docs/make_model_card_paired.py results/kodak_codec_a.csv results/kodak_codec_b.csv
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments.paired import t_interval  # noqa: E402


def paired_table(df: pd.DataFrame, metric: str = "lpips_alex") -> str:
    lines = [
        f"| codebook | images | Δ{metric} fine-tuned − w/o | 95 % interval | images better |",
        "|---|---|---|---|---|",
    ]
    for S in sorted(df.codebook_size.unique(), reverse=True):
        d = df[df.codebook_size == S].pivot_table(index="image", columns="variant", values=metric)
        if not {"finetuned", "kmeans"} <= set(d.columns):
            continue
        diff = (d["finetuned"] - d["kmeans"]).dropna().to_numpy()
        m, lo, hi = t_interval(diff)
        lines.append(f"| {S} | {len(diff)} | {m:+.4f} | [{lo:+.4f}, {hi:+.4f}] | {int((diff < 0).sum())}/{len(diff)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    frame = pd.concat([pd.read_csv(p) for p in sys.argv[1:]], ignore_index=True)
    for col in ("lpips_alex", "lpips_vgg", "dists"):
        if col in frame.columns and frame[col].notna().any():
            print(paired_table(frame, col) + "\n")
