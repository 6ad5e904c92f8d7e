"""The ``channels`` and ``simpy`` sections: loss-mask sampling cost and the SimPy network model's per-packet cost."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from .config import PACKET_BYTES, BenchConfig
from .timing import median_s


def bench_channels(cfg: BenchConfig) -> dict[str, Any]:
    """Loss-mask sampling time of the channel models vs ``rng.random(n) < p`` of the same n."""
    from channels import Bernoulli, FourStateMarkov, GilbertElliott

    n = int(cfg.n_draws)
    p = 0.05
    reps = max(cfg.repeats, 3)  # cheap (≤ 0.1 s a call) and the ratio needs a stable baseline
    base_s = median_s(lambda: np.random.default_rng(cfg.seed).random(n) < p, reps)
    models = {
        "Bernoulli": Bernoulli(p),
        "GilbertElliott": GilbertElliott.from_loss_and_burst(p, 4.0),
        "FourStateMarkov": FourStateMarkov(p13=0.02, p31=0.4, p32=0.1, p23=0.5, p14=0.01),
    }
    res: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        mask: list[np.ndarray] = []

        def draw(model=model, mask=mask) -> None:
            mask[:] = [model.sample(n, np.random.default_rng(cfg.seed))[0]]

        s = median_s(draw, reps)
        res[name] = {"ms": 1e3 * s, "ns_per_packet": 1e9 * s / n, "ratio_vs_rng_random": s / base_s,
                     "stationary_loss": model.stationary_loss_rate, "empirical_loss": float(mask[0].mean())}
    summary = {"rng_random_ms": 1e3 * base_s}
    summary.update({f"{k}_ms": v["ms"] for k, v in res.items()})
    summary.update({f"{k}_ratio": v["ratio_vs_rng_random"] for k, v in res.items()})
    return {"summary": summary, "packets": n, "baseline": f"rng.random({n}) < {p}", "models": res}


def bench_simpy(cfg: BenchConfig) -> dict[str, Any]:
    """SimPy network model throughput (packets per wall-clock second) vs a bare SimPy timeout loop."""
    import simpy

    from channels import Bernoulli
    from sim import LinkConfig, NetworkSimulator

    n = int(cfg.n_sim_packets)
    link = LinkConfig(bandwidth_bps=10e6, propagation_s=0.02, jitter="uniform", jitter_s=0.002)
    pacing = 9e6
    wire = [bytes(PACKET_BYTES)] * n
    traces = []

    def run() -> None:
        sim = NetworkSimulator(link=link, channel=Bernoulli(0.01), rng=np.random.default_rng(cfg.seed))
        traces[:] = [sim.send_packets(wire, pacing_bps=pacing)]

    s = median_s(run, cfg.repeats, warmup=0)

    def bare() -> None:
        env = simpy.Environment()

        def proc(env):
            for _ in range(n):
                yield env.timeout(1e-4)

        env.process(proc(env))
        env.run()

    bare_s = median_s(bare, cfg.repeats, warmup=0)
    tr = traces[0]
    sim_s = float(tr.decode_t - tr.start_t)
    summary = {"packets_per_s": n / s, "us_per_packet": 1e6 * s / n, "bare_timeouts_per_s": n / bare_s,
               "cost_vs_bare_timeout": s / bare_s, "simulated_over_wall": sim_s / s}
    return {"summary": summary, "packets": n, "packet_bytes": PACKET_BYTES, "link": asdict(link),
            "pacing_bps": pacing, "channel": "Bernoulli(0.01)", "simulated_s": sim_s,
            "delivered": int((tr.fate == 1).sum())}
