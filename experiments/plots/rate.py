"""Rate-distortion figure: loss-free LPIPS and PSNR vs source bits per pixel (``rate_distortion``).

See :mod:`experiments.plots` for what the figure shows and when it is skipped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import PlotReport, _panels, _save, _style, mean_ci


def plot_rate_distortion(df, folder: Path, formats, report: PlotReport) -> None:
    lcol = next((c for c in ("lossfree_lpips_alex", "lossfree_lpips_vgg") if c in df.columns), None)
    if df["codebook_size"].nunique() < 2:
        report.skipped.append("rate_distortion: needs ≥ 2 codebook sizes")
        return
    u = df.drop_duplicates(["image_hash", "codebook_size"])
    cols = [c for c in (lcol, "lossfree_psnr") if c and c in u.columns]
    import matplotlib.pyplot as plt

    labels = {lcol: "loss-free LPIPS " + ("(AlexNet)" if lcol and "alex" in lcol else "(VGG)") + " ↓",
              "lossfree_psnr": "loss-free PSNR (dB) ↑"}
    with plt.rc_context(_style()):
        fig, axes = _panels(len(cols), w=2.8)
        for ax, c in zip(axes, cols):
            pts = []
            for S, g in u.groupby("codebook_size", sort=True):
                mu, lo, hi, _ = mean_ci(g[c])
                pts.append((float(g["bpp"].mean()), mu, lo, hi, int(S)))
            for img, g in u.groupby("image", sort=False):
                gg = g.sort_values("bpp")
                ax.plot(gg["bpp"], gg[c], color="0.75", lw=0.6, zorder=0)
            a = np.array([p[:4] for p in pts])
            ax.errorbar(a[:, 0], a[:, 1], yerr=[a[:, 1] - a[:, 2], a[:, 3] - a[:, 1]], fmt="o-", color="C0", capsize=2)
            for x, y, _, _, S in pts:
                ax.annotate(f"S={S}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=6)
            ax.set_xlabel("source rate (bits/pixel)")
            ax.set_ylabel(labels[c])
            ax.set_title("rate–distortion (mean over images; grey: per image)")
        fig.tight_layout()
        _save(fig, folder, "rate_distortion", formats, report)
