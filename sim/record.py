"""``TransmissionRecord``: what happened to one image sent through the network model."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from codec.types import IndexMap


def percentiles(values: np.ndarray) -> dict[str, float]:
    """p50 / p95 / p99 / max of the values (NaN if there are none)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan}
    v = np.sort(v)  # linear interpolation between order statistics (numpy's default method), sans overhead
    pos = np.array([0.50, 0.95, 0.99]) * (v.size - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, v.size - 1)
    p = v[lo] + (pos - lo) * (v[hi] - v[lo])
    return {"p50": float(p[0]), "p95": float(p[1]), "p99": float(p[2]), "max": float(v.max())}


@dataclass
class TransmissionRecord:
    """Outcome of one transmission.

    Packet counts (each sent packet ends in exactly one of the first five):

    * ``delivered``      — arrived before the deadline and passed its CRC (after in-packet RS).
    * ``channel_lost``   — erased by the loss model.
    * ``queue_dropped``  — dropped by the full drop-tail queue.
    * ``corrupted``      — arrived in time but failed its CRC / header checks even after RS.
    * ``late``           — not arrived by the playout deadline (queued, in flight or late).

    ``rs_corrected`` counts delivered packets whose bit errors the in-packet RS
    code repaired; ``recovered_fec`` counts data packets rebuilt from parity.
    ``data_lost`` is the number of data packets missing after FEC and
    ``lost_indices`` / ``loss_ratio`` the residual missing indices.

    Bursts (``num_bursts``, ``mean_burst``, ``max_burst``) are runs of
    consecutive packets, in send order, that were not delivered (any reason).

    Bits: ``payload_bits`` (coded indices in data packets), ``header_bits``
    (header + CRC of data packets), ``fec_bits`` (whole parity packets),
    ``rs_bits`` (in-packet RS parity of all packets), ``link_overhead_bits``
    (``LinkConfig.overhead_bytes`` per packet), ``total_bits`` (their sum, what
    the link carried).  Times in seconds: ``latency_*`` over delivered packets
    (arrival − send), ``completion_s`` = decode time − start.

    ``link_stats`` is None unless the link has a preset or a duty-cycle rule
    (``sim.links``); then it holds ``airtime_s`` (time on air of the packets
    the queue did not drop), ``duty_off_s`` (the duty-cycle silences after
    them) and ``delivery_s`` (last delivered arrival − start, NaN if none), and
    ``to_row`` appends them as the last columns — rows of links without a
    preset or duty cycle have exactly the columns they always had.
    """

    image_id: int
    start_s: float
    completion_s: float
    packets_sent: int
    data_packets: int
    parity_packets: int
    delivered: int
    channel_lost: int
    queue_dropped: int
    corrupted: int
    late: int
    rs_corrected: int
    bit_errors: int
    data_lost_before_fec: int
    recovered_fec: int
    data_lost: int
    lost_indices: int
    num_indices: int
    loss_ratio: float
    num_bursts: int
    mean_burst: float
    max_burst: int
    payload_bits: int
    header_bits: int
    fec_bits: int
    rs_bits: int
    link_overhead_bits: int
    total_bits: int
    latency_p50: float
    latency_p95: float
    latency_p99: float
    latency_max: float
    counts_by_reason: dict[str, int] = field(default_factory=dict)
    received: IndexMap | None = field(default=None, repr=False)
    lost_mask: np.ndarray | None = field(default=None, repr=False)
    link_stats: dict[str, float] | None = None

    def to_row(self) -> dict[str, float | int]:
        """Flat dict of the scalar fields plus ``drop_<reason>`` counts and ``reordered``, for result tables."""
        row: dict[str, float | int] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                row[f.name] = v.item() if isinstance(v, np.generic) else v
        for reason, n in sorted(self.counts_by_reason.items()):
            row[reason if reason == "reordered" else f"drop_{reason}"] = int(n)
        if self.link_stats is not None:
            row.update(self.link_stats)
        return row

    def summary(self) -> str:
        """A few human-readable lines."""
        return (
            f"image {self.image_id}: sent {self.packets_sent} packets ({self.data_packets} data + "
            f"{self.parity_packets} parity), delivered {self.delivered}, channel-lost {self.channel_lost}, "
            f"queue-dropped {self.queue_dropped}, corrupted {self.corrupted}, late {self.late}\n"
            f"  FEC recovered {self.recovered_fec}, RS corrected {self.rs_corrected}; residual data packets "
            f"lost {self.data_lost}/{self.data_packets}, indices lost {self.lost_indices}/{self.num_indices} "
            f"({100 * self.loss_ratio:.2f} %)\n"
            f"  bursts {self.num_bursts} (mean {self.mean_burst:.2f}, max {self.max_burst}); bits total "
            f"{self.total_bits} = payload {self.payload_bits} + headers {self.header_bits} + FEC {self.fec_bits}"
            f" + RS {self.rs_bits} + link {self.link_overhead_bits}\n"
            f"  latency p50 {1e3 * self.latency_p50:.2f} ms, p95 {1e3 * self.latency_p95:.2f} ms, "
            f"p99 {1e3 * self.latency_p99:.2f} ms, max {1e3 * self.latency_max:.2f} ms; "
            f"completion {1e3 * self.completion_s:.2f} ms"
        ) + ("" if self.link_stats is None else (
            f"\n  link: airtime {self.link_stats['airtime_s']:.3f} s, duty-cycle silence "
            f"{self.link_stats['duty_off_s']:.3f} s, image delivered after {self.link_stats['delivery_s']:.3f} s"))
