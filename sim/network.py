"""Discrete-event network model (SimPy): sender → drop-tail queue → link → channel → receiver.

Model (all times in seconds, sizes in bytes, rates in bit/s):

* **Sender** — hands packet i to the link queue at its send time.  Paced at
  ``pacing_bps``: t_i = t_0 + Σ_{j<i} 8·s_j / pacing_bps (s_j = wire size
  incl. ``LinkConfig.overhead_bytes``); ``pacing_bps=None`` sends the whole
  image as a burst at t_0.
* **Queue** — drop-tail FIFO in front of the link.  Capacity
  ``queue_packets`` waiting packets and/or ``queue_bytes`` waiting bytes
  (None = unbounded); the packet being serialized does not count.  A packet
  that does not fit on arrival is dropped (``queue_dropped``).
* **Link** — serializes one packet at a time: 8·s_i / bandwidth_bps seconds,
  then the packet propagates for propagation_s + J_i (jitter J_i drawn per
  packet, see ``LinkConfig``; jitter may reorder packets).  With a link preset
  (``sim.links``) the serialization time is the preset's airtime (LoRa: its
  symbol-count formula); with a duty cycle dc the link then stays silent for
  airtime·(1/dc − 1) before it takes the next packet (one more timeout per
  packet; packets arriving meanwhile wait in the queue).
* **Channel** — a ``LossModel`` decides per packet whether it is erased (it
  still used the link); a ``BitErrorModel`` flips bits of the packet bytes
  (header, payload, CRC, in-packet RS parity).  One channel step per *sent*
  packet, in send order (packets the queue drops consume a step too, so the
  model's state tracks packet slots); the loss mask, the bit-error masks and
  the jitter of a transmission are drawn vectorized when it is submitted, and
  the SimPy processes only consume them.  Channel state (bursts) carries over
  from one transmission to the next in the same ``NetworkSimulator``.
* **Receiver** — waits until every packet is accounted for (arrived, erased or
  dropped) or until the playout deadline t_0 + deadline_s, whichever comes
  first (packets arriving exactly at the deadline count as in time), then
  checks each packet (in-packet RS decoding only for packets whose CRC fails),
  recovers missing data packets with the FEC code, and rebuilds the IndexMap.
  Packets not arrived by then are ``late`` (= lost).

Events per packet: one serialization timeout, one arrival timeout, and one
sender timeout when paced — ~10^5 packets simulate in about a second.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import simpy

from channels.base import BitErrorModel, LossModel
from channels.stats import run_lengths
from codec.errors import ParameterError
from codec.types import IndexMap

from .fec import InPacketRS
from .links import LinkConfig
from .packet import HEADERS, CompactSession, Packet, PacketError, parse_packet
from .packetizer import DepacketizeResult, PacketizeOptions, depacketize, packetize
from .record import TransmissionRecord, percentiles

PENDING, ARRIVED, CHANNEL_LOST, QUEUE_DROPPED = 0, 1, 2, 3
"""Packet fate codes in ``PacketTrace.fate``."""

_POPCOUNT = np.array([bin(v).count("1") for v in range(256)], dtype=np.int64)
_BIT_CHUNK = 1 << 23  # bits drawn per call of the bit-error model (bounds memory at 8 MB)


@dataclass
class PacketTrace:
    """Per-packet outcome of ``NetworkSimulator.send_packets`` (arrays of shape (n,)).

    Attributes:
        send_t: time the sender handed the packet to the queue.
        arrive_t: arrival time at the receiver (NaN if not arrived by decode_t).
        fate: ``PENDING`` (late: not arrived by decode_t), ``ARRIVED``,
            ``CHANNEL_LOST`` or ``QUEUE_DROPPED``.
        flips: flipped bits per packet (bit-error channel).
        received: the bytes of each arrived packet as received (corrupted), else None.
        start_t, decode_t: transmission start and the receiver's decode time.
        airtime_s: serialization time (airtime) of each packet.
        off_s: duty-cycle silence after each packet (None without a duty-cycle rule).
    """

    send_t: np.ndarray
    arrive_t: np.ndarray
    fate: np.ndarray
    flips: np.ndarray
    received: list[bytes | None]
    start_t: float
    decode_t: float
    airtime_s: np.ndarray | None = None
    off_s: np.ndarray | None = None


class _Tx:
    """State of one in-flight transmission inside the simulator."""

    __slots__ = ("env", "wire", "size", "ser", "off", "lost", "delay", "gap", "send_t", "arrive_t", "fate",
                 "flips", "rx", "remaining", "accounted", "deadline", "start", "decode_t", "done")
    # set by NetworkSimulator.send_packets before the processes start
    size: np.ndarray  # wire bytes incl. link overhead
    ser: np.ndarray  # serialization (air) time
    off: np.ndarray | None  # duty-cycle silence after each packet
    lost: np.ndarray  # channel erasures
    delay: np.ndarray  # propagation + jitter
    gap: np.ndarray  # sender wait before each packet
    flips: np.ndarray
    rx: list[bytes]
    deadline: float | None
    start: float

    def __init__(self, env: simpy.Environment, wire: Sequence[bytes]) -> None:
        n = len(wire)
        self.env = env
        self.wire = wire
        self.send_t = np.full(n, np.nan)
        self.arrive_t = np.full(n, np.nan)
        self.fate = np.zeros(n, dtype=np.int8)
        self.remaining = n
        self.accounted = env.event()
        self.done = env.event()
        self.decode_t = math.nan
        self.off = None

    def account(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.accounted.succeed()

    def on_arrival(self, ev: simpy.Event) -> None:
        i = ev.value
        self.arrive_t[i] = self.env.now
        self.fate[i] = ARRIVED
        self.account()


class NetworkSimulator:
    """A sender–link–receiver path whose queue and channel state persist across transmissions.

    Many images sent through one simulator share its SimPy environment, link
    queue, and loss / bit-error channel state, so queueing delay and loss
    bursts carry over from one image to the next.

    Args:
        link: the link and its queue (default ``LinkConfig()``).
        channel: packet loss model (None = lossless).
        bit_channel: bit error model (None = error-free).
        rng: the only source of randomness (channel draws, jitter).
        env: an existing ``simpy.Environment`` to run in (default: a new one).
    """

    def __init__(
        self,
        *,
        link: LinkConfig | None = None,
        channel: LossModel | None = None,
        bit_channel: BitErrorModel | None = None,
        rng: np.random.Generator,
        env: simpy.Environment | None = None,
    ) -> None:
        if link is None:
            link = LinkConfig()
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if channel is not None and not isinstance(channel, LossModel):
            raise TypeError(f"channel must be a channels.LossModel, got {type(channel).__name__}")
        if bit_channel is not None and not isinstance(bit_channel, BitErrorModel):
            raise TypeError(f"bit_channel must be a channels.BitErrorModel, got {type(bit_channel).__name__}")
        if not isinstance(link, LinkConfig):
            raise TypeError(f"link must be a LinkConfig, got {type(link).__name__}")
        self.link = link
        self.channel = channel
        self.bit_channel = bit_channel
        self.rng = rng
        self.env = env if env is not None else simpy.Environment()
        self.channel_state: Any = None
        self.bit_state: Any = None
        self._queue: deque[tuple[_Tx, int]] = deque()
        self._queue_bytes = 0
        self._serving: tuple[_Tx, int] | None = None
        self._wake: simpy.Event | None = None
        self._busy_until = -math.inf  # completion time of the packet in service
        self._next_image_id = 0
        self.env.process(self._link_process())

    # ------------------------------------------------------------ processes
    def _sender_process(self, tx: _Tx) -> Generator[simpy.Event, Any, None]:
        env = self.env
        gap = tx.gap
        for i in range(len(gap)):
            g = gap[i]
            if g > 0.0:
                yield env.timeout(g)
            tx.send_t[i] = env.now
            self._enqueue(tx, i)

    def _enqueue(self, tx: _Tx, i: int) -> None:
        if self._serving is None:
            self._serving = (tx, i)
            self._busy_until = self.env.now + (tx.ser[i] if tx.off is None else tx.ser[i] + tx.off[i])
            if self._wake is not None and not self._wake.triggered:
                self._wake.succeed()
            return
        cfg = self.link
        size = int(tx.size[i])
        waiting, waiting_bytes = len(self._queue), self._queue_bytes
        if self._busy_until <= self.env.now:
            # the packet in service completes at this very instant (its event is just not processed
            # yet), so the link is free now: the head of the queue — or this packet — enters service
            if not waiting:
                self._queue.append((tx, i))
                self._queue_bytes += size
                return
            waiting -= 1
            waiting_bytes -= int(self._queue[0][0].size[self._queue[0][1]])
        if (cfg.queue_packets is not None and waiting >= cfg.queue_packets) or (
            cfg.queue_bytes is not None and waiting_bytes + size > cfg.queue_bytes
        ):
            tx.fate[i] = QUEUE_DROPPED
            tx.account()
            return
        self._queue.append((tx, i))
        self._queue_bytes += size

    def _link_process(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        while True:
            if self._serving is None:
                self._wake = env.event()
                yield self._wake
                self._wake = None
            tx, i = cast("tuple[_Tx, int]", self._serving)  # woken only once a packet is in service
            ser = float(tx.ser[i])
            off = None if tx.off is None else float(tx.off[i])
            self._busy_until = env.now + (ser if off is None else ser + off)
            yield env.timeout(ser)
            if tx.lost[i]:
                tx.fate[i] = CHANNEL_LOST
                tx.account()
            else:
                ev = env.timeout(float(tx.delay[i]), value=i)
                ev.callbacks.append(tx.on_arrival)
            if off is not None and off > 0.0:  # duty cycle: the link stays silent, waiting packets queue
                self._busy_until = env.now + off
                yield env.timeout(off)
            if self._queue:
                nxt = self._queue.popleft()
                self._queue_bytes -= int(nxt[0].size[nxt[1]])
                self._serving = nxt
            else:
                self._serving = None

    def _receiver_process(self, tx: _Tx) -> Generator[simpy.Event, Any, None]:
        env = self.env
        if tx.deadline is None:
            yield tx.accounted
        else:
            yield env.any_of([tx.accounted, env.timeout(max(0.0, tx.deadline - env.now))])
            if not tx.accounted.triggered:
                yield env.timeout(0)  # let arrivals scheduled for this very instant land first
        tx.decode_t = env.now
        tx.done.succeed()

    # ---------------------------------------------------------------- API
    def send_packets(
        self,
        wire: Sequence[bytes],
        *,
        pacing_bps: float | None = None,
        deadline_s: float | None = None,
        at: float | None = None,
    ) -> PacketTrace:
        """Simulate sending raw packets (bytes) and return what happened to each.

        Args:
            wire: the packets' bytes, in send order.
            pacing_bps: sender rate in bit/s, None = burst.
            deadline_s: the receiver decodes at start + deadline_s at the latest.
            at: start time (≥ env.now; default now).
        """
        env = self.env
        n = len(wire)
        if n == 0:
            raise ParameterError("send_packets needs at least one packet")
        if pacing_bps is not None and not (math.isfinite(pacing_bps) and pacing_bps > 0):
            raise ParameterError(f"pacing_bps must be None (burst) or a finite number > 0, got {pacing_bps}")
        if deadline_s is not None and not (math.isfinite(deadline_s) and deadline_s >= 0):
            raise ParameterError(f"deadline_s must be None (no deadline) or a finite number ≥ 0, got {deadline_s}")
        start = env.now if at is None else float(at)
        if not start >= env.now:
            raise ParameterError(f"at={at} lies before the simulator's current time {env.now}")
        tx = _Tx(env, wire)
        lens = np.fromiter((len(b) for b in wire), dtype=np.int64, count=n)
        limit = self.link.max_packet_bytes
        if limit is not None and int(lens.max()) > limit:
            raise ParameterError(f"a {int(lens.max())}-byte packet exceeds the {limit}-byte payload limit of link "
                                 f"preset {self.link.preset!r}; lower the mtu (or use header='compact')")
        tx.size = lens + self.link.overhead_bytes
        tx.ser = self.link.serialization_s(tx.size)
        tx.off = self.link.off_time_s(tx.ser)
        # channel draws for all packets at once, one step per sent packet
        if self.channel is not None:
            lost, self.channel_state = self.channel.sample(n, self.rng, self.channel_state)
            tx.lost = np.asarray(lost, dtype=bool)
            if tx.lost.shape != (n,):
                raise ParameterError(f"channel.sample returned shape {tx.lost.shape}, expected ({n},)")
        else:
            tx.lost = np.zeros(n, dtype=bool)
        tx.delay = self.link.draw_delays(n, self.rng)
        tx.flips = np.zeros(n, dtype=np.int64)
        tx.rx = self._apply_bit_errors(wire, lens, tx.flips)
        gap = np.zeros(n)
        gap[0] = start - env.now
        if pacing_bps is not None:
            gap[1:] = tx.size[:-1] * 8.0 / pacing_bps
        tx.gap = gap
        tx.start = start
        tx.deadline = None if deadline_s is None else start + deadline_s
        env.process(self._sender_process(tx))
        env.process(self._receiver_process(tx))
        env.run(until=tx.done)
        arrived = tx.fate == ARRIVED
        received = [tx.rx[i] if arrived[i] else None for i in range(n)]
        return PacketTrace(tx.send_t, np.where(arrived, tx.arrive_t, np.nan), tx.fate.copy(), tx.flips,
                           received, start, tx.decode_t, tx.ser, tx.off)

    def _apply_bit_errors(self, wire: Sequence[bytes], lens: np.ndarray, flips_out: np.ndarray) -> list[bytes]:
        """Corrupt the packets' bytes with the bit-error channel, vectorized over all of them."""
        if self.bit_channel is None:
            return list(wire)
        buf = np.frombuffer(b"".join(wire), dtype=np.uint8).copy()
        nbits = buf.size * 8
        byte_flips = np.zeros(buf.size, dtype=np.int64)
        for s in range(0, nbits, _BIT_CHUNK):
            m, self.bit_state = self.bit_channel.error_mask(min(_BIT_CHUNK, nbits - s), self.rng, self.bit_state)
            if m.any():
                packed = np.packbits(np.asarray(m, dtype=bool))
                lo = s // 8
                buf[lo:lo + packed.size] ^= packed
                byte_flips[lo:lo + packed.size] = _POPCOUNT[packed]
        offsets = np.concatenate([[0], np.cumsum(lens)])
        flips_out[:] = np.add.reduceat(byte_flips, offsets[:-1]) if buf.size else 0
        if not flips_out.any():
            return list(wire)
        return [buf[offsets[i]:offsets[i + 1]].tobytes() if flips_out[i] else wire[i] for i in range(len(wire))]

    def send(
        self,
        index_map: IndexMap,
        options: PacketizeOptions | None = None,
        *,
        image_id: int | None = None,
        inpacket_nsym: int = 0,
        pacing_bps: float | None = None,
        deadline_s: float | None = None,
        at: float | None = None,
        **packetize_options: Any,
    ) -> TransmissionRecord:
        """Packetize an index map, send it through the path, and rebuild it at the receiver.

        Args:
            index_map: the image's indices.
            options: how to packetize (``sim.packetizer.PacketizeOptions``: mtu, interleave,
                seed, coder, fec, prior, header); ``header="compact"`` gives the receiver the
                stream's ``CompactSession``, as if sent once before.
            image_id: header tag (default: 0, 1, 2, … per simulator).
            inpacket_nsym: RS parity bytes per 255-byte chunk of every packet (0 = off).
            pacing_bps, deadline_s, at: see ``send_packets``.
            **packetize_options: any field of ``PacketizeOptions`` by name (``mtu=``, …),
                replacing the one in ``options``.

        Returns:
            ``TransmissionRecord`` (with the received IndexMap and lost mask; with a link
            preset or duty cycle also ``link_stats``: airtime, silences, delivery time).
        """
        opts = PacketizeOptions.resolve(options, packetize_options)
        if image_id is None:
            image_id = self._next_image_id
        self._next_image_id = int(image_id) + 1
        if not isinstance(inpacket_nsym, (int, np.integer)) or inpacket_nsym < 0:
            raise ParameterError(f"inpacket_nsym must be an int ≥ 0, got {inpacket_nsym!r}")
        rs = InPacketRS(int(inpacket_nsym)) if inpacket_nsym else None
        header = opts.header
        if header not in HEADERS:
            raise ParameterError(f"header must be one of {HEADERS}, got {header!r}")
        packets = packetize(index_map, opts, image_id=image_id)
        session = packets[0].session if header == "compact" else None
        raw = [p.to_bytes() for p in packets] if session is None else [session.encode(p) for p in packets]
        wire = rs.encode_many(raw) if rs else raw
        trace = self.send_packets(wire, pacing_bps=pacing_bps, deadline_s=deadline_s, at=at)
        rx = _receive(trace, raw, rs, header, session)
        res = depacketize(rx.good, expected_image_id=image_id, codebook_size=index_map.codebook_size,
                          shape=index_map.shape, image_size=index_map.image_size,
                          codebook_id=index_map.codebook_id, prior=opts.prior, header=header, session=session,
                          context_coder=opts.context_coder)
        return self._record(int(image_id), index_map, packets, raw, wire, trace, rx, res)

    def _record(self, image_id: int, index_map: IndexMap, packets: Sequence[Packet], raw: Sequence[bytes],
                wire: Sequence[bytes], trace: PacketTrace, rx: _Received, res: DepacketizeResult
                ) -> TransmissionRecord:
        """The transmission's record: packet fates, bit accounting, bursts, latency and the rebuilt map."""
        n = len(packets)
        ok = rx.ok
        is_parity = np.fromiter((p.parity for p in packets), dtype=bool, count=n)
        plen = np.fromiter((len(p.payload) for p in packets), dtype=np.int64, count=n)
        wlen = np.fromiter((len(b) for b in wire), dtype=np.int64, count=n)
        rlen = np.fromiter((len(b) for b in raw), dtype=np.int64, count=n)  # header + payload + CRC
        bursts = run_lengths(~ok)
        lat = percentiles(trace.arrive_t[ok] - trace.send_t[ok])
        payload_bits = int(8 * plen[~is_parity].sum())
        header_bits = int(8 * (rlen - plen)[~is_parity].sum())
        fec_bits = int(8 * rlen[is_parity].sum())
        rs_bits = int(8 * (wlen - rlen).sum())
        link_bits = int(8 * self.link.overhead_bytes * n)
        n_data = int((~is_parity).sum())
        return TransmissionRecord(
            image_id=image_id,
            start_s=trace.start_t,
            completion_s=trace.decode_t - trace.start_t,
            packets_sent=n,
            data_packets=n_data,
            parity_packets=n - n_data,
            delivered=int(ok.sum()),
            channel_lost=int((trace.fate == CHANNEL_LOST).sum()),
            queue_dropped=int((trace.fate == QUEUE_DROPPED).sum()),
            corrupted=rx.corrupted,
            late=int((trace.fate == PENDING).sum()),
            rs_corrected=rx.rs_corrected,
            bit_errors=int(trace.flips[trace.fate == ARRIVED].sum()),
            data_lost_before_fec=int((~ok & ~is_parity).sum()),
            recovered_fec=res.recovered_fec,
            data_lost=int(res.lost_packets.sum()) if res.lost_packets.size else n_data,
            lost_indices=res.num_lost,
            num_indices=index_map.num_indices,
            loss_ratio=res.loss_ratio,
            num_bursts=int(bursts.size),
            mean_burst=float(bursts.mean()) if bursts.size else 0.0,
            max_burst=int(bursts.max()) if bursts.size else 0,
            payload_bits=payload_bits,
            header_bits=header_bits,
            fec_bits=fec_bits,
            rs_bits=rs_bits,
            link_overhead_bits=link_bits,
            total_bits=payload_bits + header_bits + fec_bits + rs_bits + link_bits,
            latency_p50=lat["p50"],
            latency_p95=lat["p95"],
            latency_p99=lat["p99"],
            latency_max=lat["max"],
            counts_by_reason=res.counts_by_reason,
            received=res.index_map,
            lost_mask=res.lost_mask,
            link_stats=self._link_stats(trace, ok),
        )

    def _link_stats(self, trace: PacketTrace, ok: np.ndarray) -> dict[str, float] | None:
        """Airtime columns of a record: only with a link preset or a duty-cycle rule (else None)."""
        if self.link.preset is None and self.link.duty_cycle is None:
            return None
        on_air = trace.fate != QUEUE_DROPPED
        off = 0.0 if trace.off_s is None else float(trace.off_s[on_air].sum())
        last = float(np.max(trace.arrive_t[ok])) - trace.start_t if ok.any() else math.nan
        airtime = 0.0 if trace.airtime_s is None else float(trace.airtime_s[on_air].sum())
        return {"airtime_s": airtime, "duty_off_s": off, "delivery_s": last}


@dataclass
class _Received:
    """What the receiver kept: the packets that passed their CRC (after in-packet RS), in arrival order."""

    good: list[bytes]
    ok: np.ndarray  # bool (n,): packet i passed
    corrupted: int
    rs_corrected: int


def _receive(trace: PacketTrace, raw: Sequence[bytes], rs: InPacketRS | None, header: str,
             session: CompactSession | None) -> _Received:
    """CRC-check the arrived packets in arrival order; in-packet RS decoding only where the CRC fails."""
    arrived = np.flatnonzero(trace.fate == ARRIVED)
    arrived = arrived[np.argsort(trace.arrive_t[arrived], kind="stable")]
    good: list[bytes] = []
    ok = np.zeros(len(raw), dtype=bool)
    corrupted = rs_corrected = 0
    for i in arrived:
        rx = trace.received[i]
        assert rx is not None  # arrived packets always have their bytes
        if trace.flips[i] == 0:  # untouched bytes pass the CRC; skip the re-check
            good.append(raw[int(i)])
            ok[i] = True
            continue
        msg = rs.strip(rx) if rs else rx
        try:
            parse_packet(msg, header, session)
        except PacketError:
            fixed = rs.decode(rx) if rs else None
            try:
                if fixed is None:
                    raise PacketError("bad_crc") from None
                parse_packet(fixed, header, session)
            except PacketError:
                corrupted += 1
                continue
            msg = fixed
            rs_corrected += 1
        good.append(msg)
        ok[i] = True
    return _Received(good, ok, corrupted, rs_corrected)


Session = NetworkSimulator
"""Alias: a session of many transmissions sharing one path."""


def transmit(
    index_map: IndexMap,
    options: PacketizeOptions | None = None,
    *,
    channel: LossModel | None = None,
    bit_channel: BitErrorModel | None = None,
    link: LinkConfig | None = None,
    inpacket_nsym: int = 0,
    pacing_bps: float | None = None,
    deadline_s: float | None = None,
    image_id: int = 0,
    rng: np.random.Generator,
    env: simpy.Environment | None = None,
    **packetize_options: Any,
) -> TransmissionRecord:
    """Send one index map through a fresh ``NetworkSimulator`` (one-shot convenience).

    See ``NetworkSimulator`` and ``NetworkSimulator.send`` for the arguments (``link``
    defaults to ``LinkConfig()``; ``options`` / ``**packetize_options``: ``PacketizeOptions``).
    """
    sim = NetworkSimulator(link=LinkConfig() if link is None else link, channel=channel, bit_channel=bit_channel,
                           rng=rng, env=env)
    return sim.send(index_map, options, image_id=image_id, inpacket_nsym=inpacket_nsym, pacing_bps=pacing_bps,
                    deadline_s=deadline_s, **packetize_options)
