"""Rate-distortion figure: loss-free LPIPS and PSNR vs source bits per pixel (``rate_distortion``).

See :mod:`experiments.plots` for what the figure shows and when it is skipped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..significance import mean_ci
from .common import PlotReport, make_panels, plot_style, save_figure


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
    with plt.rc_context(plot_style()):
        fig, axes = make_panels(len(cols), w=2.8)
        for ax, c in zip(axes, cols, strict=False):
            pts = []
            for S, g in u.groupby("codebook_size", sort=True):
                mu, lo, hi, _ = mean_ci(g[c])
                pts.append((float(g["bpp"].mean()), mu, lo, hi, int(S)))
            for _img, g in u.groupby("image", sort=False):
                gg = g.sort_values("bpp")
                ax.plot(gg["bpp"], gg[c], color="0.75", lw=0.6, zorder=0)
            a = np.array([p[:4] for p in pts])
            ax.errorbar(a[:, 0], a[:, 1], yerr=[a[:, 1] - a[:, 2], a[:, 3] - a[:, 1]], fmt="o-", color="C0", capsize=2)
            for x, y, _, _, S in pts:
                ax.annotate(f"S={S}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=6)
            ax.set_xlabel("source rate (bits/pixel)")
            ax.set_ylabel(labels[c])
            ax.set_title(labels[c].replace("loss-free ", "").rstrip(" ↑↓") + " vs rate")
        fig.suptitle(f"loss-free rate–distortion per codebook size S: mean over {u['image_hash'].nunique()} images "
                     f"with 95 % t-interval; grey: each image", fontsize=7.5)
        fig.tight_layout()
        save_figure(fig, folder, "rate_distortion", formats, report)


def plot_eval_rd(df, path: str | Path, coder: str = "arith_rep", metrics=("lpips_alex", "dists", "psnr")):
    """``vqsim eval --plot``: quality vs rate of the VQ codec (one line per variant across codebook sizes)
    and of the classical anchors (one marker each), means over the evaluated images.

    ``df``: ``evaluate``'s rows. The codec's rate is ``bpp_<coder>``; an anchor's is its file's bytes.
    Returns the plotted points (a DataFrame: kind, variant, codebook_size, bpp and one column per metric).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    cols = [m for m in metrics if m in df.columns]
    if not cols:
        from codec.errors import ParameterError

        raise ParameterError(f"no metric column among {metrics} in the eval rows")
    pts = (df.groupby(["codebook_size", "variant"], sort=False)[[f"bpp_{coder}", *cols]].mean().reset_index()
           .rename(columns={f"bpp_{coder}": "bpp"}))
    pts.insert(0, "kind", np.where(pts["codebook_size"] > 0, "vq", "anchor"))
    labels = {"lpips_alex": "LPIPS (AlexNet) ↓", "dists": "DISTS ↓", "psnr": "PSNR (dB) ↑"}
    with plt.rc_context(plot_style()):
        fig, axes = make_panels(len(cols), w=2.8)
        for ax, c in zip(axes, cols, strict=False):
            vq = pts[pts["kind"] == "vq"]
            full = vq[vq["codebook_size"] == vq["codebook_size"].max()]  # the full codebook ends every line
            reduced = [v for v in vq["variant"].unique() if v not in set(full["variant"])] or list(full["variant"])
            for i, v in enumerate(reduced):
                g = pd.concat([vq[vq["variant"] == v], full]).drop_duplicates(["codebook_size", "variant"])
                g = g.sort_values("bpp")
                ax.plot(g["bpp"], g[c], "o-", color=f"C{i}", label=f"VQ ({v})", ms=3)
                for x, y, S in zip(g["bpp"], g[c], g["codebook_size"], strict=False):
                    ax.annotate(f"{int(S)}", (x, y), textcoords="offset points", xytext=(2, 2), fontsize=5)
            for j, r in enumerate(pts[pts["kind"] == "anchor"].itertuples()):
                ax.plot(r.bpp, getattr(r, c), marker="sPD^v"[j % 5], ls="none", color="0.3", label=r.variant, ms=4)
            ax.set_xscale("log")
            ax.set_xlabel("bits per pixel")
            ax.set_ylabel(labels.get(c, c))
        h, lab = axes[0].get_legend_handles_labels()
        fig.legend(h, lab, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(lab), fontsize=6, frameon=False)
        fig.suptitle(
            f"rate–quality, mean over {df['image'].nunique()} image(s); VQ: {coder} payload, labels = codebook "
            f"size (largest: full codebook); anchors: file size",
            fontsize=7,
        )
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150)
        plt.close(fig)
    return pd.DataFrame(pts)
