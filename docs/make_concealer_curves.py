"""Learning curves of the concealment transformers (held-out nats and exact-token %) from training logs.

Each log is the JSON-lines output of ``vqsim train-transformer`` (resumed runs appended to one file).
Usage: python docs/make_concealer_curves.py OUT.png NAME=LOG [NAME=LOG ...]
"""
from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_log(path: str) -> tuple[list[tuple[int, float]], list[tuple[int, float, float]]]:
    train, evals = {}, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if "loss" in r and "step" in r and "event" not in r and "done" not in r:
                train[r["step"]] = r["loss"]
            if "eval_loss" in r and "done" not in r:
                evals[r["step"]] = (r["eval_loss"], r["eval_acc"])
    return sorted(train.items()), [(s, *v) for s, v in sorted(evals.items())]


def main() -> None:
    out, specs = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, path in specs:
        train, evals = read_log(path)
        line, = a1.plot(
            [s for s, _, _ in evals], [loss for _, loss, _ in evals], marker="o", ms=3, label=f"{name} held-out"
        )
        a1.plot([s for s, _ in train], [loss for _, loss in train], color=line.get_color(), alpha=0.35, lw=1)
        a2.plot(
            [s for s, *_ in evals], [100 * a for *_, a in evals], marker="o", ms=3, color=line.get_color(), label=name
        )
    a1.set(
        xlabel="step (32 windows of 16×16)",
        ylabel="cross-entropy (nats)",
        title="held-out (markers) and training (faint) loss",
    )
    a2.set(xlabel="step", ylabel="exact tokens (%)", title="held-out argmax accuracy")
    for a in (a1, a2):
        a.grid(alpha=0.3)
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
