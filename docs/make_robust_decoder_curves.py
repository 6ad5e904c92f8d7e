"""Validation curves of robust-decoder runs (``vqsim train-robust-decoder`` with ``val_every``): LPIPS-Alex,
LPIPS-VGG and DISTS against the original on the unseen validation crops, loss-free (solid) and at each validated
loss fraction (dashed), against step; one series per run and filler of the under-loss scores.

Each run is read from its saved state (``OUT.train/state.pt``: ``val_history``, kept across resumes).
Usage: python docs/make_robust_decoder_curves.py OUT.png NAME=STATE [NAME=STATE ...] [--baseline NAME=JSON]
(each split at its last "="; a baseline JSON is one row of ``validate_robust`` for a fixed decoder, drawn flat).
"""
from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRICS = (("lpips_alex", "LPIPS-Alex"), ("lpips_vgg", "LPIPS-VGG"), ("dists", "DISTS (in no loss)"))


def val_rows(state_path: str) -> dict[str, list[dict]]:
    """The validation rows of a run's state by the filler the under-loss scores used (a second stage may validate
    with another one), one per step (the last written wins), in step order."""
    import torch

    st = torch.load(state_path, map_location="cpu", weights_only=False)
    by: dict[str, dict[int, dict]] = {}
    for r in st.get("val_history", []):
        by.setdefault(r.get("val_filler", "latent_avg_soft"), {})[int(r["step"])] = r
    if not by:
        raise SystemExit(f"{state_path}: no validation rows (was the run started with val / val_every?)")
    return {f: [rows[s] for s in sorted(rows)] for f, rows in by.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("runs", nargs="+", help="NAME=STATE")
    ap.add_argument("--baseline", action="append", default=[], help="NAME=JSON (a fixed decoder's validation row)")
    args = ap.parse_args()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    series = [(f"{name} ({filler})", rows) for name, path in (a.rsplit("=", 1) for a in args.runs)
              for filler, rows in val_rows(path).items()]
    for i, (name, rows) in enumerate(series):
        steps = [r["step"] for r in rows]
        for ax, (m, title) in zip(axes, METRICS, strict=True):
            keys = [k[len("val_"):] for k in rows[-1] if k.startswith(f"val_{m}")]
            for k in sorted(keys):
                ys = [r.get(f"val_{k}") for r in rows]
                style = "-" if k == m else "--"
                label = name if k == m else f"{name}, {k.split('@')[1]} % lost"
                ax.plot(steps, ys, style, marker="o", ms=3, color=colours[i % len(colours)], label=label)
            ax.set_title(title)
            ax.set_xlabel("step")
    for j, (name, path) in enumerate(b.rsplit("=", 1) for b in args.baseline):
        row = json.load(open(path))
        for ax, (m, _) in zip(axes, METRICS, strict=True):
            for k, v in row.items():
                if k == f"val_{m}" or k.startswith(f"val_{m}@"):
                    ax.axhline(v, ls=":" if "@" in k else "-.", lw=1, color="grey" if j == 0 else "black",
                               label=f"{name}{'' if '@' not in k else ', ' + k.split('@')[1] + ' % lost'}")
    axes[0].set_ylabel("distance to the original (lower is better)")
    handles, labels = axes[-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.035 * ((len(labels) + 2) // 3), 1, 1))
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
