"""ΔLPIPS of candidate concealment transformers on a few validation photos (the probe table's last columns).

For each model file: a sweep over the first N photos of ``../shared/data/val``
(481×321, 20×30 indices) at exact random index loss, the model's method
(``bidir`` / ``bidir_mean`` or ``ar`` / ``ar_mean``) and the ``latent_avg``
baseline on the same lost positions; prints mean LPIPS-Alex vs the loss-free
reconstruction and the paired difference to the best baseline.

Usage: python docs/probe_concealers.py --kind bidir --size 1024 runs/tf/p1.pt runs/tf/p2.pt [--images 8 --loss 0.2]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from experiments.paired import paired_differences
from experiments.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--kind", choices=["ar", "bidir"], required=True)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--loss", type=float, nargs="+", default=[0.2])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", default="results/probes")
    args = ap.parse_args()
    for m in args.models:
        cfg = {
            "name": f"probe_{Path(m).stem}",
            "images": {"source": str(ROOT.parent / "shared" / "data" / "val"), "limit": args.images},
            "codec": {"model": "default", "codebook_sizes": [args.size], "coder": "arith"},
            "channels": [{"model": "index_loss", "rate": list(args.loss), "mode": "exact"}],
            "concealment": {"methods": [args.kind, f"{args.kind}_mean", "latent_avg"], "models": {args.kind: str(m)}},
            "seeds": list(args.seeds),
            "metrics": {"nets": ["alex"], "structural": False},
            "examples": {"enabled": False},
        }
        res = run_sweep(cfg, Path(args.out) / Path(m).stem, overwrite=True, progress=False)
        t = paired_differences(res.results, "lpips_alex_vs_lossfree")
        for _, r in t.iterrows():
            print(
                f"{Path(m).stem}\tloss {r['loss_rate_nominal']:.2f}\t{r['method']}\t{r['mean']:.4f}\t"
                f"{r['reference']} {r['mean_ref']:.4f}\tΔ {r['diff']:+.4f} [{r['lo']:+.4f}, {r['hi']:+.4f}]",
                flush=True,
            )


if __name__ == "__main__":
    main()
