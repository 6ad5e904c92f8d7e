"""Validation curves of the codec campaign's probes (issue 22): LPIPS-Alex, LPIPS-VGG and DISTS vs step and wall time.

Each log is the ``log.jsonl`` of ``vqsim train-codec`` (resumed runs append to it); the optional baseline is a JSON
row of ``codec.train.validate`` for the shipped model (drawn as a dashed line).
Usage: python docs/make_campaign_curves.py OUT.png [--baseline FILE.json] NAME=LOG [NAME=LOG ...]
"""
from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRICS = (("val_lpips_alex", "LPIPS-Alex (in every loss)"), ("val_lpips_vgg", "LPIPS-VGG"), ("val_dists", "DISTS"))


def read_vals(path: str) -> list[dict]:
    """The validation rows of a training log, one per step (the last one written wins after a resume)."""
    rows: dict[int, dict] = {}
    with open(path) as f:
        for line in f:
            if line.startswith("{"):
                r = json.loads(line)
                if "val_lpips_alex" in r:
                    rows[r["step"]] = r
    return [rows[s] for s in sorted(rows)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("runs", nargs="+", help="NAME=LOG")
    ap.add_argument("--baseline", default=None)
    args = ap.parse_args()
    base = json.load(open(args.baseline)) if args.baseline else None
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for name, path in (a.split("=", 1) for a in args.runs):
        vals = read_vals(path)
        for ax, (key, _) in zip(axes, METRICS, strict=False):
            ax.plot([r["step"] for r in vals if key in r], [r[key] for r in vals if key in r], marker="o", ms=3,
                    label=name)
    for ax, (key, title) in zip(axes, METRICS, strict=False):
        if base and key in base:
            ax.axhline(base[key], color="k", ls="--", lw=1, label=f"shipped (step {base.get('step', '?')})")
        ax.set(xlabel="training step (batch 8 of 128² crops)", title=f"validation {title}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("lower is better")
    axes[-1].legend(fontsize=8)
    fig.suptitle("codec probes continuing the shipped model: 16 unseen val photos, 256² centre crops", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
