"""Image grids (``grid_*``): original, loss-free, lost-index map and each method's concealed result.

See :mod:`experiments.plots` for what the grids show.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from .common import PlotReport, method_label, method_names, pick_even, plot_style, save_figure, slug


def plot_example_grids(df, results: Path, folder: Path, formats, report: PlotReport, max_grids: int = 12) -> None:
    if "example_dir" not in df.columns:
        report.skipped.append("image grids: no example_dir column")
        return
    d = df[df["example_dir"].fillna("") != ""]
    if d.empty:
        report.skipped.append("image grids: the sweep stored no examples (examples.enabled false?)")
        return
    import matplotlib.pyplot as plt
    from PIL import Image

    keys = ["channel_family", "codebook_size", "fec", "mtu", "interleave", "coder"]
    groups = list(d.groupby(keys, sort=False))
    if len(groups) > max_grids:
        report.notes.append(f"image grids: drew {max_grids} of {len(groups)}")
        groups = groups[:max_grids]
    methods = method_names(d)
    for k, g in groups:
        pts = g.drop_duplicates("unit_id").sort_values(["loss_rate_nominal", "channel_label"])
        pts = pts.iloc[pick_even(list(range(len(pts))), 4)]
        cols = ["original", "loss-free", "lost indices"] + methods
        first = Path(results) / pts["example_dir"].iloc[0]
        base = first.parent
        try:
            h0, w0 = np.asarray(Image.open(base / "original.png")).shape[:2]
        except OSError:
            report.skipped.append(f"image grid {k}: example files missing under {base}")
            continue
        cw = 1.25
        chh = cw * h0 / w0
        with plt.rc_context(plot_style()):
            fig, axes = plt.subplots(
                len(pts), len(cols), figsize=(cw * len(cols), chh * len(pts) + 0.75), squeeze=False
            )
            for r, (_, row) in enumerate(pts.iterrows()):
                ex = Path(results) / row["example_dir"]
                files = [base / "original.png", base / "lossfree.png", ex / "lost.png"] + [
                    ex / f"{m}.png" for m in methods
                ]
                urows = g[g["unit_id"] == row["unit_id"]].set_index("method")
                for c, (f, name) in enumerate(zip(files, cols, strict=False)):
                    ax = axes[r][c]
                    ax.set_xticks([])
                    ax.set_yticks([])
                    ax.grid(False)
                    if f.exists():
                        im = np.asarray(Image.open(f).convert("RGB"))
                        ax.imshow(im, interpolation="nearest" if max(im.shape[:2]) < 128 else "antialiased")
                    else:
                        ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
                    if r == 0:
                        ax.set_title(textwrap.fill(method_label(name), 22) if c >= 3 else name, fontsize=6.5)
                    if c >= 3 and name in urows.index and "lpips_alex" in urows.columns:
                        ax.text(
                            0.02,
                            0.03,
                            f"LPIPS {urows.loc[name, 'lpips_alex']:.3f}",
                            transform=ax.transAxes,
                            fontsize=5.5,
                            va="bottom",
                            ha="left",
                            bbox={"boxstyle": "square,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
                        )
                    if c == 0:
                        lab = (
                            f"{100 * row['loss_rate_nominal']:.3g} % loss"
                            if np.isfinite(row["loss_rate_nominal"])
                            else str(row["channel_label"])
                        )
                        same = df[
                            (df["channel_label"] == row["channel_label"])
                            & (df["codebook_size"] == row["codebook_size"])
                            & (df["fec"] == row["fec"])
                        ]
                        ax.set_ylabel(
                            f"{lab}: {100 * row['loss_ratio']:.1f} % lost\n"
                            f"(all draws {100 * same['loss_ratio'].mean():.1f} %)",
                            fontsize=5.5,
                        )
            fig.suptitle(
                f"{k[0]} · S={k[1]} · FEC {k[2]}"
                + (f" · MTU {k[3]} · {k[4]}" if k[3] else "")
                + "\none channel draw per row (first image, first seed); lost indices: % of this map after "
                "FEC, and the mean over all images and seeds of that point",
                fontsize=7,
            )
            fig.tight_layout(pad=0.3, w_pad=0.2, h_pad=0.3, rect=(0, 0, 1, 1 - 0.42 / fig.get_size_inches()[1]))
            save_figure(
                fig,
                folder,
                f"grid_{slug(k[0])}_S{k[1]}_{slug(k[2])}" + (f"_mtu{k[3]}_{k[4]}_{k[5]}" if k[3] else ""),
                formats,
                report,
            )
