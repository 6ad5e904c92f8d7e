"""Make the worked example of `vqsim channels fit`: a synthetic but realistic Linux ping log and a UDP sequence log.

* ``experiments/examples/ping_wifi.log``: what ``ping -c 6000 -i 0.2 192.0.2.10``
  (iputils, Linux) prints over a link whose losses follow
  ``GilbertElliott(p=0.01, r=0.2, h=0.4, k=0.998)`` (netem ``loss gemodel
  1% 20% 60% 0.2%``: Bad periods of 5 packets on average that lose 60 %,
  0.2 % background loss), drawn from ``numpy.random.default_rng(2026)``.
  RTTs: 23 ms + Gamma(2, 1.5 ms), plus Gamma(2, 10 ms) of queueing while
  the chain is Bad; two replies come back twice (``(DUP!)``) and one
  overtakes its predecessor, as on a real Wi-Fi hop.
* ``experiments/examples/udp_seq.log``: the received sequence numbers
  (arrival order, one per line, header ``seq``) of 10,000 UDP probes sent
  through netem's ``FourStateMarkov(p13=0.01, p31=0.3, p32=0.2, p23=0.7,
  p14=0.005)``, with three duplicates and two late packets.

Run:  .venv/bin/python docs/make_channel_fit_example.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from channels import FourStateMarkov, GilbertElliott  # noqa: E402

OUT = ROOT / "experiments" / "examples"


def ping_log(n: int = 6000, seed: int = 2026) -> str:
    rng = np.random.default_rng(seed)
    model = GilbertElliott(p=0.01, r=0.2, h=0.4, k=0.998)
    lost, states, _ = model.sample_states(n, rng)
    rtt = 23.0 + rng.gamma(2.0, 1.5, n) + np.where(states == 1, rng.gamma(2.0, 10.0, n), 0.0)
    host = "192.0.2.10"
    lines = [f"PING {host} ({host}) 56(84) bytes of data."]
    replies = [i for i in range(n) if not lost[i]]
    order = list(replies)
    j = order.index(replies[len(replies) // 3])          # one reply overtakes its predecessor
    order[j], order[j + 1] = order[j + 1], order[j]
    dups = set(rng.choice(replies, 2, replace=False).tolist())
    for i in order:
        lines.append(f"64 bytes from {host}: icmp_seq={i + 1} ttl=57 time={rtt[i]:.1f} ms")
        if i in dups:
            lines.append(f"64 bytes from {host}: icmp_seq={i + 1} ttl=57 time={rtt[i] + 0.3:.1f} ms (DUP!)")
    r = rtt[~lost]
    lines += ["", f"--- {host} ping statistics ---",
              f"{n} packets transmitted, {len(replies)} received, +{len(dups)} duplicates, "
              f"{100 * (n - len(replies)) / n:.4g}% packet loss, time {int(0.2 * 1000 * (n - 1) + 53)}ms",
              f"rtt min/avg/max/mdev = {r.min():.3f}/{r.mean():.3f}/{r.max():.3f}/{r.std():.3f} ms"]
    return "\n".join(lines) + "\n"


def seq_log(n: int = 10_000, seed: int = 7) -> str:
    rng = np.random.default_rng(seed)
    lost, _ = FourStateMarkov(p13=0.01, p31=0.3, p32=0.2, p23=0.7, p14=0.005).sample(n, rng)
    got = list(np.flatnonzero(~lost))
    for k in rng.choice(len(got) - 2, 2, replace=False):   # two late packets
        got[k], got[k + 1] = got[k + 1], got[k]
    for k in sorted(rng.choice(len(got), 3, replace=False), reverse=True):   # three duplicates
        got.insert(k + 1, got[k])
    return "# UDP probe receiver: received sequence numbers in arrival order\nseq\n" + "\n".join(map(str, got)) + "\n"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ping_wifi.log").write_text(ping_log())
    (OUT / "udp_seq.log").write_text(seq_log())
    for name in ("ping_wifi.log", "udp_seq.log"):
        p = OUT / name
        print(f"{p.relative_to(ROOT)}: {p.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
