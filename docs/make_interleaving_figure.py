"""Make docs/interleaving.png: lost-index masks under 20 % packet loss for each interleaver.

A random 32×48 index map (K = 1024, 10-bit raw indices) is packetized with
mtu = 120 bytes → 16 packets of 96 indices, and sent through a Bernoulli
packet-loss channel with p = 0.2 using the same seed for every scheme, so the
same packet numbers are lost in all four panels; only the interleaver — which
positions those packets carried — differs.  Note the stride ("block")
interleaver: with P = 16 dividing w = 48, packet j holds whole columns j, j+16,
j+32 — neighbours across rows travel together; "random" and "checkerboard"
leave every lost index with received neighbours.

Run:  .venv/bin/python docs/make_interleaving_figure.py [output.png]
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from channels import Bernoulli  # noqa: E402
from codec.types import IndexMap  # noqa: E402
from sim import SCHEMES, transmit  # noqa: E402


def main(out: Path = ROOT / "docs" / "interleaving.png", seed: int = 5) -> Path:
    h, w, K = 32, 48, 1024
    index_map = IndexMap(np.random.default_rng(0).integers(0, K, (h, w)), K, (16 * h, 16 * w))
    fig, axes = plt.subplots(2, 2, figsize=(8, 6))
    for ax, scheme in zip(axes.ravel(), SCHEMES, strict=False):
        rec = transmit(index_map, channel=Bernoulli(0.2), mtu=120, interleave=scheme, seed=7,
                       rng=np.random.default_rng(seed))
        ax.imshow(rec.lost_mask, cmap="gray_r", interpolation="nearest", vmin=0, vmax=1)
        ax.set_title(f"{scheme}: {rec.channel_lost}/{rec.packets_sent} packets, "
                     f"{rec.lost_indices} indices lost", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Lost indices (black) of a 32×48 map, 16 packets, 20 % Bernoulli packet loss", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


if __name__ == "__main__":
    p = main(Path(sys.argv[1])) if len(sys.argv) > 1 else main()
    print(f"wrote {p} ({p.stat().st_size} bytes)")
