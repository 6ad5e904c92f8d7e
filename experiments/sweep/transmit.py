"""The transmit stage of a unit: its index map through the unit's channel (index loss or the network model), once.

The draws come from ``trial_rng(seed, realization id)``: every method, FEC setting, MTU and codebook size of a
realization faces the same channel draws (common random numbers).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .context import TrialContext
from .encode_cache import EncodedImage
from .plan import Unit, trial_rng

__all__ = ["IndexLossRecord", "Transmission", "transmit"]


@dataclass(frozen=True)
class IndexLossRecord:
    """What the index-loss channel did to one index map: indices dropped directly, no packets.

    Its row has the columns of a :class:`sim.record.TransmissionRecord` row (packet counts 0, latencies and
    completion time NaN, the bitstream as payload), in the order index-loss rows have always had.

    Attributes:
        lost_indices / num_indices: dropped and total indices.  bursts: lengths of the runs of dropped
        indices in raster order.  bits: the bitstream's size (sent whole).  reasons: the network model's
        drop reasons (each a ``drop_<reason>`` column of 0).
    """

    lost_indices: int
    num_indices: int
    bursts: np.ndarray
    bits: int
    reasons: tuple[str, ...]

    def to_row(self) -> dict[str, float | int]:
        b = self.bursts
        row: dict[str, float | int] = {
            "packets_sent": 0, "data_packets": 0, "parity_packets": 0, "delivered": 0, "channel_lost": 0,
            "queue_dropped": 0, "corrupted": 0, "late": 0, "rs_corrected": 0, "bit_errors": 0,
            "data_lost_before_fec": 0, "recovered_fec": 0, "data_lost": 0, "lost_indices": self.lost_indices,
            "num_indices": self.num_indices, "loss_ratio": self.lost_indices / self.num_indices,
            "num_bursts": int(b.size), "mean_burst": float(b.mean()) if b.size else 0.0,
            "max_burst": int(b.max()) if b.size else 0, "latency_p50": math.nan, "latency_p95": math.nan,
            "latency_p99": math.nan, "latency_max": math.nan, "completion_s": math.nan,
            "payload_bits": self.bits, "header_bits": 0, "fec_bits": 0, "rs_bits": 0, "link_overhead_bits": 0,
            "total_bits": self.bits,
        }
        row.update({f"drop_{r}": 0 for r in self.reasons})
        row["reordered"] = 0
        return row


@dataclass
class Transmission:
    """A unit's index map after its channel.

    Attributes:
        received: the received IndexMap (lost positions hold placeholders).  lost: bool (h, w) mask of the
        indices missing after FEC.  record: the channel's record (``to_row()``).  time_s: wall time.
    """

    received: Any
    lost: np.ndarray
    record: Any
    time_s: float

    def to_row(self, enc: EncodedImage) -> dict[str, float | int]:
        """The record's columns (without the per-image ``image_id`` / ``start_s``), then rates and sizes.

        ``bpp`` = source bits / pixel, ``total_bpp`` = bits on the link / pixel, ``packet_loss_ratio`` =
        undelivered / sent packets (NaN without packets); ``image_*`` pixels, ``latent_*`` indices.
        """
        tx = {k: v for k, v in self.record.to_row().items() if k not in ("image_id", "start_s")}
        H, W = enc.image_size
        pix = H * W
        h, w = enc.indices.shape
        return {
            **tx,
            "bits_source": int(enc.bits_source),
            "bpp": enc.bits_source / pix,
            "total_bpp": tx["total_bits"] / pix,
            "packet_loss_ratio": ((tx["packets_sent"] - tx["delivered"]) / tx["packets_sent"])
            if tx["packets_sent"]
            else math.nan,
            "image_h": H,
            "image_w": W,
            "latent_h": h,
            "latent_w": w,
        }


def _drop_indices(sent, channel: dict, rng: np.random.Generator) -> np.ndarray:
    """The lost mask (h, w) of the index-loss channel: mode 'exact' loses round(rate·N) positions uniformly,
    'iid' each with probability rate."""
    h, w = sent.shape
    N = h * w
    rate, mode = float(channel["rate"]), channel.get("mode", "exact")
    if mode == "exact":
        lost = np.zeros(N, dtype=bool)
        lost[rng.permutation(N)[: int(round(rate * N))]] = True
    else:
        lost = rng.random(N) < rate
    return lost.reshape(h, w)


def erasure_fec(fec: Mapping[str, Any]):
    """The packet-level erasure code of a resolved ``fec`` item (``n``, ``k``, optional ``code``); None without one."""
    from sim.fec import ErasureFEC

    return ErasureFEC(fec["n"], fec["k"], fec.get("code", "cauchy")) if fec["n"] else None


def transmit(ctx: TrialContext, unit: Unit, sent) -> Transmission:
    """Send a unit's index map ``sent`` through its channel; deterministic in the unit's realization id."""
    from channels.base import BitErrorModel
    from channels.factory import from_spec
    from channels.stats import run_lengths
    from codec.entropy import CONTEXT_CODERS
    from sim.links import LinkConfig
    from sim.network import NetworkSimulator
    from sim.packet import REASONS

    t0 = time.perf_counter()
    p = unit.params
    rng = trial_rng(p["seed"], unit.info["realization"])
    if unit.info["channel_kind"] == "index":
        lost = _drop_indices(sent, p["channel"], rng)
        flat = lost.ravel()
        bits = ctx.encoded[f"{p['codebook_size']}/{p['image_hash']}"].bits_source
        record = IndexLossRecord(int(flat.sum()), int(flat.size), run_lengths(flat), bits, tuple(REASONS))
        received = sent.with_indices(np.where(lost, 0, sent.indices))
        return Transmission(received, lost, record, time.perf_counter() - t0)
    ch = from_spec(p["channel"])
    loss, bit = (None, ch) if isinstance(ch, BitErrorModel) else (ch, None)
    il_seed = int(rng.integers(0, 2**32))
    sim = NetworkSimulator(link=LinkConfig(**p["link"]), channel=loss, bit_channel=bit, rng=rng)
    f = p["fec"]
    codec = ctx.codec(p["codebook_size"])
    rec = sim.send(
        sent,
        mtu=p["mtu"],
        interleave=p["interleave"],
        seed=il_seed,
        coder=p["coder"],
        fec=erasure_fec(f),
        inpacket_nsym=f["nsym"],
        pacing_bps=p["pacing_bps"],
        deadline_s=p["deadline_s"],
        prior=codec.prior if p["coder"].startswith("arith") else None,
        image_id=0,
        header=p.get("header", "full"),
        context_coder=ctx.tile_coder(p["codebook_size"]) if p["coder"] in CONTEXT_CODERS else None,
    )
    return Transmission(rec.received, np.asarray(rec.lost_mask, dtype=bool), rec, time.perf_counter() - t0)
