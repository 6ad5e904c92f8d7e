"""SimPy network model: exact hand-calculated timings, queue drops, deadlines, channel effects, determinism."""
import math

import numpy as np
import pytest

from channels import Bernoulli, BinarySymmetric, GilbertElliott
from channels.base import LossModel
from codec.types import IndexMap
from sim.fec import ErasureFEC
from sim.interleave import interleave
from sim.links import LinkConfig
from sim.network import ARRIVED, CHANNEL_LOST, PENDING, QUEUE_DROPPED, NetworkSimulator, transmit
from sim.packet import OVERHEAD
from sim.packetizer import packetize


class FixedLoss(LossModel):
    """Test double: loses exactly the packets whose global send number is in ``lost`` and counts calls."""

    def __init__(self, lost):
        self.lost = set(lost)
        self.states_seen = []

    stationary_loss_rate = property(lambda self: 0.0)
    mean_burst_length = property(lambda self: 1.0)

    def sample(self, n, rng, state=None):
        self.states_seen.append(state)
        start = 0 if state is None else state
        return np.array([start + i in self.lost for i in range(n)], dtype=bool), start + n


def rand_map(h=8, w=12, K=1024, seed=0):
    return IndexMap(np.random.default_rng(seed).integers(0, K, (h, w)), K, (16 * h, 16 * w))


def sim(**kw):
    link = kw.pop("link", LinkConfig(bandwidth_bps=8000, propagation_s=0.05))
    return NetworkSimulator(link=link, rng=np.random.default_rng(0), **kw)


def test_exact_arrival_times_burst():
    """Burst of 100/200/300-byte packets on 8 kbit/s: serialization 0.1/0.2/0.3 s back to back, +50 ms."""
    tr = sim().send_packets([bytes(100), bytes(200), bytes(300)])
    assert np.allclose(tr.send_t, 0.0)
    assert np.allclose(tr.arrive_t, [0.15, 0.35, 0.65])
    assert tr.fate.tolist() == [ARRIVED] * 3 and tr.decode_t == pytest.approx(0.65)


def test_exact_arrival_times_paced_and_overhead():
    """Paced at 4 kbit/s with 28 bytes link overhead: packet i leaves at Σ 8(s_j+28)/4000."""
    link = LinkConfig(bandwidth_bps=8000, propagation_s=0.01, overhead_bytes=28)
    tr = sim(link=link).send_packets([bytes(72), bytes(72), bytes(172)], pacing_bps=4000, at=1.0)
    assert np.allclose(tr.send_t, [1.0, 1.2, 1.4])
    assert np.allclose(tr.arrive_t, [1.0 + 0.1 + 0.01, 1.2 + 0.1 + 0.01, 1.4 + 0.2 + 0.01])


def test_queue_of_one_drops_burst():
    """5-packet burst, queue of 1 waiting packet: #0 in service, #1 waits, #2–#4 dropped."""
    link = LinkConfig(bandwidth_bps=8000, propagation_s=0.0, queue_packets=1)
    tr = sim(link=link).send_packets([bytes(100)] * 5)
    assert tr.fate.tolist() == [ARRIVED, ARRIVED] + [QUEUE_DROPPED] * 3
    assert np.allclose(tr.arrive_t[:2], [0.1, 0.2])


def test_queue_bytes_limit():
    link = LinkConfig(bandwidth_bps=8000, propagation_s=0.0, queue_bytes=250)
    tr = sim(link=link).send_packets([bytes(100)] * 5)  # 2 waiting = 200 B fit, a third would be 300 B
    assert tr.fate.tolist() == [ARRIVED] * 3 + [QUEUE_DROPPED] * 2


def test_pacing_below_link_rate_never_queues():
    link = LinkConfig(bandwidth_bps=8000, propagation_s=0.0, queue_packets=0)
    tr = sim(link=link).send_packets([bytes(100)] * 6, pacing_bps=8000)
    assert (tr.fate == ARRIVED).all() and np.allclose(np.diff(tr.arrive_t), 0.1)


def test_deadline_counts_late_packets():
    """Arrivals at 0.1 k + 0.05; deadline 0.32 → 2 in time (0.15, 0.25), ... 0.35 onwards late."""
    tr = sim().send_packets([bytes(100)] * 5, deadline_s=0.32)
    assert tr.fate.tolist() == [ARRIVED, ARRIVED, PENDING, PENDING, PENDING]
    assert tr.decode_t == pytest.approx(0.32)
    # an arrival exactly at the deadline counts as in time
    tr = sim().send_packets([bytes(100)] * 3, deadline_s=0.25)
    assert tr.fate.tolist() == [ARRIVED, ARRIVED, PENDING]


def test_queue_backlog_carries_over_between_transmissions():
    """Image 1 (4 × 0.1 s) is cut by a 0.15 s deadline; image 2 sent at 0.15 waits for the backlog."""
    s = sim(link=LinkConfig(bandwidth_bps=8000, propagation_s=0.0))
    t1 = s.send_packets([bytes(100)] * 4, deadline_s=0.15)
    assert t1.fate.tolist() == [ARRIVED, PENDING, PENDING, PENDING]
    t2 = s.send_packets([bytes(100)], at=0.15)
    assert t2.arrive_t[0] == pytest.approx(0.5)  # after the 3 queued packets (0.2, 0.3, 0.4)


def test_channel_state_carries_over():
    ch = FixedLoss({1, 4})
    s = sim(channel=ch)
    a = s.send_packets([bytes(10)] * 3)
    b = s.send_packets([bytes(10)] * 3)
    assert a.fate.tolist() == [ARRIVED, CHANNEL_LOST, ARRIVED]
    assert b.fate.tolist() == [ARRIVED, CHANNEL_LOST, ARRIVED]  # global packet 4
    assert ch.states_seen == [None, 3]


def test_lost_packets_still_use_the_link():
    s = sim(channel=FixedLoss({0}))
    tr = s.send_packets([bytes(100), bytes(100)])
    assert tr.fate.tolist() == [CHANNEL_LOST, ARRIVED] and tr.arrive_t[1] == pytest.approx(0.25)


@pytest.mark.parametrize("kind", ["uniform", "normal", "exponential"])
def test_jitter_distributions(kind):
    link = LinkConfig(propagation_s=0.01, jitter=kind, jitter_s=0.004)
    d = link.draw_delays(200_000, np.random.default_rng(0))
    assert d.min() >= 0
    if kind == "uniform":
        assert d.min() >= 0.006 and d.max() <= 0.014 and d.mean() == pytest.approx(0.01, abs=2e-5)
    elif kind == "normal":  # truncation at −0.01 = −2.5σ: mean shift σφ(2.5)/Φ(2.5) ≈ 0.0176 σ
        assert d.std() == pytest.approx(0.004, rel=0.03) and d.mean() == pytest.approx(0.01 + 0.0176 * 0.004, abs=3e-5)
    else:
        assert d.min() >= 0.01 and d.mean() == pytest.approx(0.014, rel=0.01)
    zero = LinkConfig(propagation_s=0.0, jitter=kind, jitter_s=0.004).draw_delays(10_000, np.random.default_rng(1))
    assert zero.min() >= 0


def test_transmit_record_hand_calculation():
    """Known packet sizes → exact bits, completion time and latencies; lost packets → exact lost indices."""
    m = rand_map()  # 96 indices × 10 bits; mtu 40 → 32 indices (40 B) per packet → 3 packets
    link = LinkConfig(bandwidth_bps=80_000, propagation_s=0.02)
    rec = transmit(m, link=link, mtu=40, channel=FixedLoss({1}), rng=np.random.default_rng(0),
                   interleave="block")
    size = OVERHEAD + 40  # 80 B = 8 ms each
    assert rec.packets_sent == 3 and rec.data_packets == 3 and rec.parity_packets == 0
    assert rec.payload_bits == 3 * 40 * 8 and rec.header_bits == 3 * OVERHEAD * 8
    assert rec.total_bits == 3 * size * 8
    assert rec.delivered == 2 and rec.channel_lost == 1 and rec.late == rec.queue_dropped == rec.corrupted == 0
    assert rec.latency_max == pytest.approx(3 * 0.008 + 0.02) and rec.latency_p50 == pytest.approx(0.036)
    assert rec.completion_s == pytest.approx(0.044)
    il = interleave("block", 8, 12, 3)
    assert np.array_equal(rec.lost_mask, il.lost_mask(np.array([1])))
    assert rec.lost_indices == 32 and rec.loss_ratio == pytest.approx(1 / 3)
    assert np.array_equal(rec.received.indices[~rec.lost_mask], m.indices[~rec.lost_mask])
    assert (rec.num_bursts, rec.max_burst, rec.mean_burst) == (1, 1, 1.0)
    row = rec.to_row()
    assert row["channel_lost"] == 1 and "received" not in row and row["drop_bad_crc"] == 0


def test_fec_recovers_within_capacity():
    m = rand_map(16, 24)
    fec = ErasureFEC(6, 4)
    pk = packetize(m, mtu=60, fec=fec)
    # lose 2 packets of every block (send order: 4 data + 2 parity per block)
    lost = {b * 6 + j for b in range(len(pk) // 6 + 1) for j in (0, 3)}
    rec = transmit(m, mtu=60, fec=fec, channel=FixedLoss(lost), rng=np.random.default_rng(0))
    assert rec.packets_sent == len(pk) and rec.parity_packets == sum(p.parity for p in pk)
    assert rec.channel_lost == sum(i < len(pk) for i in lost)
    assert rec.data_lost == 0 and rec.lost_indices == 0 and rec.recovered_fec == rec.data_lost_before_fec > 0
    assert rec.received == m
    assert rec.fec_bits == 8 * sum(p.size for p in pk if p.parity)
    # three losses in block 0 (two data) exceed n − k = 2: those two stay lost
    rec = transmit(m, mtu=60, fec=fec, channel=FixedLoss({0, 1, 4}), rng=np.random.default_rng(0))
    assert rec.data_lost == 2 and rec.recovered_fec == 0


def test_bit_errors_crc_and_inpacket_rs():
    m = rand_map(16, 24)
    ber = BinarySymmetric(2e-4)
    plain = transmit(m, mtu=100, bit_channel=ber, rng=np.random.default_rng(5))
    assert plain.bit_errors > 0 and plain.corrupted > 0
    # without RS every packet with a flipped bit fails its CRC (CRC-32 misses with prob 2^-32)
    assert plain.delivered + plain.corrupted == plain.packets_sent
    assert plain.data_lost == plain.corrupted
    coded = transmit(m, mtu=100, bit_channel=ber, inpacket_nsym=16, rng=np.random.default_rng(5))
    assert coded.rs_bits == 8 * 16 * coded.packets_sent  # 140-byte packets: one RS chunk each
    assert coded.rs_corrected > 0 and coded.corrupted == 0 and coded.received == m


def test_determinism_and_seed_dependence():
    m = rand_map(16, 24)
    kw = dict(channel=GilbertElliott(p=0.1, r=0.3, h=0.2, k=0.98), bit_channel=BinarySymmetric(1e-4),
              link=LinkConfig(jitter="normal", jitter_s=0.003, queue_packets=4), mtu=50,
              fec=ErasureFEC(8, 6), inpacket_nsym=4, interleave="random", pacing_bps=2e6)
    a = transmit(m, rng=np.random.default_rng(42), **kw)
    b = transmit(m, rng=np.random.default_rng(42), **kw)
    assert a.to_row() == b.to_row() and np.array_equal(a.lost_mask, b.lost_mask)
    rows = {tuple(transmit(m, rng=np.random.default_rng(s), **kw).to_row().items()) for s in range(5)}
    assert len(rows) > 1


def test_session_images_share_channel_and_queue():
    m = rand_map(16, 24)
    s = NetworkSimulator(link=LinkConfig(bandwidth_bps=1e6, propagation_s=0.01, queue_packets=100),
                         channel=Bernoulli(0.3), rng=np.random.default_rng(3))
    recs = [s.send(m, mtu=60) for _ in range(20)]
    assert [r.image_id for r in recs] == list(range(20))
    total = sum(r.packets_sent for r in recs)
    lost = sum(r.channel_lost for r in recs)
    assert abs(lost / total - 0.3) < 4 * math.sqrt(0.3 * 0.7 / total)
    assert all(r.delivered + r.channel_lost == r.packets_sent for r in recs)
    starts = [r.start_s for r in recs]
    assert starts == sorted(starts) and starts[-1] > 0


@pytest.mark.parametrize("kw", [dict(bandwidth_bps=0), dict(propagation_s=-1), dict(jitter="pareto"),
                                dict(jitter_s=-0.1), dict(queue_packets=-1), dict(queue_bytes=1.5),
                                dict(overhead_bytes=-2), dict(bandwidth_bps=float("inf"))])
def test_link_config_validation(kw):
    with pytest.raises(ValueError):
        LinkConfig(**kw)


def test_argument_validation():
    s = sim()
    with pytest.raises(ValueError):
        s.send_packets([])
    with pytest.raises(ValueError):
        s.send_packets([b"x"], pacing_bps=0)
    with pytest.raises(ValueError):
        s.send_packets([b"x"], deadline_s=-1)
    s.send_packets([b"x"], at=1.0)
    with pytest.raises(ValueError):
        s.send_packets([b"x"], at=0.5)
    with pytest.raises(TypeError):
        NetworkSimulator(rng=np.random.default_rng(0), channel="bernoulli")
    with pytest.raises(TypeError):
        NetworkSimulator(rng=0)
    with pytest.raises(ValueError):
        s.send(rand_map(), inpacket_nsym=-1)


def test_sim_package_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, sim, sim.network, sim.packetizer, sim.fec, experiments.cmd_sim; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    root = __import__("pathlib").Path(__file__).parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=str(root)).returncode == 0


def test_percentiles_match_numpy():
    from channels.stats import run_lengths
    from sim.record import percentiles

    for n in (1, 2, 7, 100):
        v = np.random.default_rng(n).exponential(size=n)
        p = percentiles(v)
        assert np.allclose([p["p50"], p["p95"], p["p99"], p["max"]], [*np.percentile(v, [50, 95, 99]), v.max()])
    assert math.isnan(percentiles(np.array([]))["p50"])
    assert run_lengths(np.array([1, 1, 0, 1, 0, 0, 1, 1, 1], bool)).tolist() == [2, 1, 3]
    assert run_lengths(np.zeros(4, bool)).size == 0
